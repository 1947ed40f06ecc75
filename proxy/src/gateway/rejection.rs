//! What the proxy answers itself: a [`Rejection`] is the whole answer
//! (status, JSON body, challenge, retry hint, extra headers), described
//! before anything is written, and [`send`] writes it. Which rejection a
//! reason calls for is decided in `respond`.

use std::borrow::Cow;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::protocols::http::HttpTask;

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

    /// `{"error":…,"error_description":…}`, serialised straight into one
    /// buffer (no intermediate JSON value: every refusal renders one).
    fn body(&self) -> Bytes {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let body = Body { error: self.error, error_description: &self.description };
        // Two strings cannot fail to serialise; an empty body would still
        // leave the status and the challenge.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

/// The head of an answer the proxy writes itself. No copy of each name's
/// spelling is kept beside the header map (as for a proxied response, whose
/// spelling is the upstream's to keep): every insert writes one map instead
/// of two, about 2,000 instructions less per refusal. HTTP/1.1 spells the
/// common names in title case (`Content-Type`), the rest in lower case;
/// HTTP/2 in lower case, as always.
pub(crate) fn own_answer(status: u16, headers: usize) -> pingora::Result<ResponseHeader> {
    ResponseHeader::build_no_case(status, Some(headers))
}

/// Write the rejection as the whole response: JSON, or for a gRPC call
/// the gRPC form of the same answer.
pub(crate) async fn send(session: &mut Session, rejection: &Rejection) -> pingora::Result<()> {
    if let Some(form) = grpc_form(session.req_header()) {
        return send_grpc(session, rejection, form).await;
    }
    let body = rejection.body();
    let mut header = own_answer(rejection.status, 8)?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    answer_headers(&mut header, session, rejection)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// What every form of an answer carries: the challenge, the retry hint,
/// the extra headers (appended: several `Set-Cookie` headers are several
/// cookies), and closing the connection when asked.
fn answer_headers(header: &mut ResponseHeader, session: &mut Session, rejection: &Rejection) -> pingora::Result<()> {
    if let Some(challenge) = &rejection.www_authenticate {
        header.insert_header("www-authenticate", challenge.as_str())?;
    }
    if let Some(seconds) = rejection.retry_after {
        header.insert_header("retry-after", seconds.to_string())?;
    }
    for (name, value) in &rejection.headers {
        header.append_header(*name, value.as_str())?;
    }
    if rejection.close {
        session.set_keepalive(None);
    }
    Ok(())
}

/// A JSON document the proxy publishes (the assertion JWKS): 200,
/// cacheable for five minutes (a key roll-over publishes the new key well
/// before it signs).
pub(crate) async fn send_document(session: &mut Session, body: Bytes) -> pingora::Result<()> {
    let mut header = own_answer(200, 4)?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "public, max-age=300")?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Which gRPC protocol a request speaks, by its media type: a refusal is
/// answered in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcForm {
    /// `application/grpc`, `+proto`, `+json`, …
    Grpc,
    /// gRPC-Web (`application/grpc-web`, `+proto`, …), as browsers send it
    /// through a proxy that translates to gRPC.
    Web,
    /// gRPC-Web's base64 form (`application/grpc-web-text`).
    WebText,
}

impl GrpcForm {
    /// The answer's media type. Trailers-only, the answer has no message,
    /// so the suffix does not matter; gRPC-Web clients expect `+proto`.
    fn content_type(self) -> &'static str {
        match self {
            GrpcForm::Grpc => "application/grpc",
            GrpcForm::Web => "application/grpc-web+proto",
            GrpcForm::WebText => "application/grpc-web-text+proto",
        }
    }
}

/// The gRPC form of a request, `None` for anything else.
pub(crate) fn grpc_form(request: &pingora::http::RequestHeader) -> Option<GrpcForm> {
    let media = request.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())?;
    // The media type before any parameters and `+suffix`, compared without
    // allocating: this runs for every refusal.
    let base = media.split([';', '+']).next()?.trim();
    [
        ("application/grpc", GrpcForm::Grpc),
        ("application/grpc-web", GrpcForm::Web),
        ("application/grpc-web-text", GrpcForm::WebText),
    ]
    .into_iter()
    .find_map(|(name, form)| base.eq_ignore_ascii_case(name).then_some(form))
}

/// The gRPC status for an HTTP answer (gRPC's status codes, chosen so a
/// client library reports the same thing the JSON would say).
pub(crate) fn grpc_status(status: u16) -> u8 {
    match status {
        401 => 16,                              // UNAUTHENTICATED
        403 => 7,                               // PERMISSION_DENIED
        429 => 8,                               // RESOURCE_EXHAUSTED
        400 | 405 | 411 | 413 | 414 | 431 => 3, // INVALID_ARGUMENT
        404 => 12,                              // UNIMPLEMENTED
        502..=504 => 14,                        // UNAVAILABLE
        _ => 13,                                // INTERNAL
    }
}

/// A gRPC "trailers-only" answer: HTTP 200 and one header block that ends
/// the stream, with `grpc-status`, `grpc-message` (the same description as
/// the JSON body, percent-encoded as gRPC requires), and the challenge and
/// retry hint kept.
async fn send_grpc(session: &mut Session, rejection: &Rejection, form: GrpcForm) -> pingora::Result<()> {
    let mut header = own_answer(200, 8)?;
    header.insert_header("content-type", form.content_type())?;
    header.insert_header("grpc-status", grpc_status(rejection.status).to_string())?;
    header.insert_header("grpc-message", grpc_message(&rejection.description))?;
    if !session.downstream_session.is_http2() {
        // gRPC-Web over HTTP/1.1; for gRPC, not real gRPC (that needs
        // HTTP/2), but a well-framed answer.
        header.insert_header("content-length", "0")?;
    }
    answer_headers(&mut header, session, rejection)?;
    // One header block that ends the stream: Pingora's proxy session would
    // follow a header with an empty DATA frame, which gRPC clients read as
    // a broken stream.
    let task = HttpTask::Header(Box::new(header), true);
    session.downstream_session.response_duplex_vec(vec![task]).await.map(|_| ())
}

/// gRPC's percent-encoding of `grpc-message`: everything outside printable
/// ASCII, and `%`, as `%XX` of its UTF-8 bytes.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
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
    fn grpc_requests_are_recognised_by_content_type() {
        let request = |value: &str| {
            let mut request = pingora::http::RequestHeader::build("POST", b"/pkg.Svc/Call", None).expect("request");
            request.insert_header("content-type", value.to_owned()).expect("header");
            request
        };
        let form = |value: &str| grpc_form(&request(value));
        for grpc in ["application/grpc", "application/grpc+proto", "Application/GRPC+json", "application/grpc; x=1"] {
            assert_eq!(form(grpc), Some(GrpcForm::Grpc), "{grpc}");
        }
        for web in ["application/grpc-web", "application/grpc-web+proto", "application/GRPC-WEB+json; x=1"] {
            assert_eq!(form(web), Some(GrpcForm::Web), "{web}");
        }
        for text in ["application/grpc-web-text", "application/grpc-web-text+proto"] {
            assert_eq!(form(text), Some(GrpcForm::WebText), "{text}");
        }
        for no in ["application/json", "application/grpcx", "application/grpc-webx", "text/plain", ""] {
            assert_eq!(form(no), None, "{no}");
        }
        let mut bare = pingora::http::RequestHeader::build("POST", b"/pkg.Svc/Call", None).expect("request");
        assert_eq!(grpc_form(&bare), None);
        bare.insert_header("content-type", "application/grpc-web-text").expect("header");
        assert_eq!(grpc_form(&bare).map(GrpcForm::content_type), Some("application/grpc-web-text+proto"));
    }

    #[test]
    fn the_body_is_the_error_and_its_description_as_json() {
        let rejection = Rejection::new(401, "invalid_token", "the \"kid\" is unknown");
        let body = rejection.body();
        assert_eq!(&body[..], br#"{"error":"invalid_token","error_description":"the \"kid\" is unknown"}"#);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(parsed["error_description"], "the \"kid\" is unknown");
    }

    #[test]
    fn statuses_and_messages_map_to_grpc() {
        assert_eq!([401, 403, 429, 503, 502, 400, 500].map(grpc_status), [16, 7, 8, 14, 14, 3, 13]);
        assert_eq!(grpc_message("the token's 100% bad: é"), "the token's 100%25 bad: %C3%A9");
    }
}
