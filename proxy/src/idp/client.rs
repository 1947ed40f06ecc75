//! The HTTP client every IdP call goes through: GET for discovery and JWKS,
//! form POST for introspection, each with a timeout and a size limit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use credentials::cache_control;
use tokio::runtime::Handle;

/// Largest IdP response read (discovery, JWKS, introspection).
pub(crate) const MAX_RESPONSE_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("HTTP {0}")]
    Status(u16),
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("invalid document: {0}")]
    Invalid(String),
}

impl FetchError {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "http_error",
            FetchError::TooLarge => "too_large",
            FetchError::Transport(_) => "unreachable",
            FetchError::Invalid(_) => "invalid",
        }
    }
}

/// A fetched document and how long the IdP says it stays fresh.
pub struct Fetched {
    pub body: Bytes,
    pub max_age: Option<Duration>,
}

/// HTTP client for IdP calls, bound to the IdP runtime.
pub struct IdpClient {
    handle: Handle,
    http: reqwest::Client,
}

impl IdpClient {
    /// Build the client inside `handle`'s runtime: reqwest's connection
    /// tasks must live on the runtime that outlives them.
    pub fn new(handle: Handle) -> anyhow::Result<IdpClient> {
        let _guard = handle.enter();
        let http = reqwest::Client::builder()
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(3))
            .no_proxy()
            .build()?;
        Ok(IdpClient { handle, http })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub async fn get(&self, url: &str, timeout: Duration) -> Result<Fetched, FetchError> {
        let request = self.http.get(url).header("accept", "application/json").timeout(timeout);
        self.run(request, timeout).await
    }

    /// POST a form with HTTP Basic client authentication (RFC 7662 / 6749 2.3.1).
    pub async fn post_form(
        &self,
        url: &str,
        client_id: &str,
        client_secret: &[u8],
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let secret = String::from_utf8_lossy(client_secret);
        let request = self
            .http
            .post(url)
            .basic_auth(form_urlencode(client_id), Some(form_urlencode(&secret)))
            .header("accept", "application/json")
            .form(form)
            .timeout(timeout);
        self.run(request, timeout).await
    }

    /// POST a form without HTTP authentication (a `private_key_jwt` client
    /// authenticates inside the form).
    pub(crate) async fn post_form_unauthenticated(
        &self,
        url: &str,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let request = self.http.post(url).header("accept", "application/json").form(form).timeout(timeout);
        self.run(request, timeout).await
    }

    /// Send on the IdP runtime and read a bounded body.
    async fn run(&self, request: reqwest::RequestBuilder, timeout: Duration) -> Result<Fetched, FetchError> {
        let task = self.handle.spawn(async move {
            let mut response = request.send().await.map_err(transport_error)?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
                return Err(FetchError::TooLarge);
            }
            let max_age = response.headers().get(reqwest::header::CACHE_CONTROL).and_then(cache_control::max_age);
            let mut body = BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(FetchError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched { body: body.freeze(), max_age })
        });
        // Belt and braces: the request has its own timeout, this bounds
        // everything else (DNS, a stuck body).
        match tokio::time::timeout(timeout + Duration::from_millis(500), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(FetchError::Transport(join.to_string())),
            Err(_) => Err(FetchError::Timeout),
        }
    }
}

fn transport_error(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Transport(e.without_url().to_string())
    }
}

/// RFC 6749 2.3.1: client credentials are form-urlencoded before Basic.
pub(crate) fn form_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'*') {
            out.push(byte as char);
        } else if byte == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_are_form_encoded() {
        assert_eq!(form_urlencode("a b:c%"), "a+b%3Ac%25");
        assert_eq!(form_urlencode("plain-id_1.x"), "plain-id_1.x");
    }
}
