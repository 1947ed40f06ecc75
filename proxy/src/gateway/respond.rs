//! Answers the proxy gives itself: 400/401/403/429/431/502/503/504, each
//! with a JSON body and, for auth failures, an RFC 6750 challenge.

use std::borrow::Cow;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// A refusal, fully described before anything is written.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    /// `error` in the JSON body.
    pub error: &'static str,
    pub description: Cow<'static, str>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
    /// Extra headers (rate-limit policy and state).
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    pub fn new(status: u16, error: &'static str, description: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn challenge(mut self, value: String) -> Rejection {
        self.www_authenticate = Some(value);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Rejection {
        self.retry_after = Some(seconds);
        self
    }

    pub fn header(mut self, name: &'static str, value: String) -> Rejection {
        self.headers.push((name, value));
        self
    }

    fn body(&self) -> Bytes {
        let body = serde_json::json!({ "error": self.error, "error_description": self.description });
        Bytes::from(body.to_string())
    }
}

/// Write the rejection as the whole response.
pub async fn send(session: &mut Session, rejection: &Rejection) -> Result<()> {
    let body = rejection.body();
    let mut header = ResponseHeader::build(rejection.status, Some(8))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    if let Some(challenge) = &rejection.www_authenticate {
        header.insert_header("www-authenticate", challenge.as_str())?;
    }
    if let Some(seconds) = rejection.retry_after {
        header.insert_header("retry-after", seconds.to_string())?;
    }
    for (name, value) in &rejection.headers {
        header.insert_header(*name, value.as_str())?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
