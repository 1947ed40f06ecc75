//! What the proxy answers itself: a [`Rejection`] is the whole answer
//! (status, JSON body, challenge, retry hint, extra headers), described
//! before anything is written, and [`send`] writes it. Which rejection a
//! reason calls for is decided in `respond`.

use std::borrow::Cow;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;

/// The answer to a refused request, fully described before anything is
/// written.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub(crate) status: u16,
    /// `error` in the JSON body.
    pub(crate) error: &'static str,
    pub(crate) description: Cow<'static, str>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) retry_after: Option<u64>,
    /// Extra headers (rate-limit policy and state).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Close the connection after the answer: the request's framing is in
    /// doubt, so nothing after it on the connection can be read as a request.
    pub(crate) close: bool,
}

impl Rejection {
    pub(crate) fn new(status: u16, error: &'static str, description: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
            headers: Vec::new(),
            close: false,
        }
    }

    pub(crate) fn closing(mut self) -> Rejection {
        self.close = true;
        self
    }

    pub(crate) fn challenge(mut self, value: String) -> Rejection {
        self.www_authenticate = Some(value);
        self
    }

    pub(crate) fn retry_after(mut self, seconds: u64) -> Rejection {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: String) -> Rejection {
        self.headers.push((name, value));
        self
    }

    fn body(&self) -> Bytes {
        let body = serde_json::json!({ "error": self.error, "error_description": self.description });
        Bytes::from(body.to_string())
    }
}

/// Write the rejection as the whole response.
pub(crate) async fn send(session: &mut Session, rejection: &Rejection) -> pingora::Result<()> {
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
    // Appended: several `Set-Cookie` headers are several cookies.
    for (name, value) in &rejection.headers {
        header.append_header(*name, value.as_str())?;
    }
    if rejection.close {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
