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

pub(super) use credentials::form::{form_field_values, MAX_BODY_BYTES};

const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Read the whole request body if it is small enough; `None` otherwise.
pub(super) async fn read_small_body(session: &mut Session) -> Option<Bytes> {
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

/// The `Content-Type` of the request, if readable.
pub(super) fn content_type(session: &Session) -> Option<&str> {
    session.req_header().headers.get(CONTENT_TYPE)?.to_str().ok()
}
