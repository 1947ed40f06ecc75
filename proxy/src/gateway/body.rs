//! Reading a login body ahead of forwarding, for `form:FIELD` rate limits.
//!
//! The body is read into Pingora's retry buffer, which Pingora replays to the
//! upstream unchanged, so the upstream receives exactly the bytes the client
//! sent. Only bodies with a `Content-Length` of at most [`MAX_BODY_BYTES`]
//! are read; anything else (larger, chunked, unreadable) leaves the body
//! alone and the limit falls back to the client address.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use pingora::prelude::Session;

pub const MAX_BODY_BYTES: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Read the whole request body if it is small enough; `None` otherwise.
pub async fn read_small_body(session: &mut Session) -> Option<Bytes> {
    let length: usize = session.req_header().headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
    if length > MAX_BODY_BYTES {
        return None;
    }
    session.as_mut().enable_retry_buffering();
    let read = async {
        let mut body = BytesMut::with_capacity(length);
        while let Some(chunk) = session.read_request_body().await.ok()? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return None;
            }
        }
        Some(body.freeze())
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.ok().flatten()
}

/// The value of `field` in a form-urlencoded or JSON body.
pub fn form_field(body: &[u8], content_type: Option<&str>, field: &str) -> Option<String> {
    let media_type = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(body).ok()?;
            text.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_form(key)? == field).then(|| decode_form(value)).flatten()
            })
        }
        "application/json" => {
            let value: serde_json::Value = serde_json::from_slice(body).ok()?;
            match value.get(field)? {
                serde_json::Value::String(text) => Some(text.clone()),
                serde_json::Value::Number(number) => Some(number.to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `Content-Type` of the request, if readable.
pub fn content_type(session: &Session) -> Option<&str> {
    session.req_header().headers.get(CONTENT_TYPE)?.to_str().ok()
}

fn decode_form(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn form_fields() {
        assert_eq!(form_field(b"username=alice&password=x", FORM, "username").as_deref(), Some("alice"));
        assert_eq!(form_field(b"password=x&username=a%40b.c+d", FORM, "username").as_deref(), Some("a@b.c d"));
        assert_eq!(form_field(b"user%6eame=bob", FORM, "username").as_deref(), Some("bob"));
        assert_eq!(form_field(b"password=x", FORM, "username"), None);
        assert_eq!(form_field(b"username=%zz", FORM, "username"), None);
        assert_eq!(form_field(b"username=alice", Some("text/plain"), "username"), None);
        assert_eq!(form_field(b"username=alice", None, "username"), None);
    }

    #[test]
    fn json_fields() {
        let json = Some("application/json");
        assert_eq!(form_field(br#"{"username":"alice","password":"x"}"#, json, "username").as_deref(), Some("alice"));
        assert_eq!(form_field(br#"{"username":42}"#, json, "username").as_deref(), Some("42"));
        assert_eq!(form_field(br#"{"username":{"a":1}}"#, json, "username"), None);
        assert_eq!(form_field(b"not json", json, "username"), None);
    }
}
