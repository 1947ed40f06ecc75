//! Header-level hygiene: sizes and the framing ambiguities behind request
//! smuggling. Pingora's parser accepts some of these; an auth proxy must not
//! forward a request whose body boundaries two servers could read
//! differently.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use pingora::http::RequestHeader;

use super::respond::Denied;

/// Largest request head accepted (all header names and values together).
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields accepted.
pub(crate) const MAX_HEADER_COUNT: usize = 100;

/// Refuse a request head that is too large or framed ambiguously.
pub(crate) fn check_headers(request: &RequestHeader) -> Result<(), Denied> {
    let headers = &request.headers;
    if headers.len() > MAX_HEADER_COUNT {
        return Err(Denied::bad_request(431, "too many header fields"));
    }
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > MAX_HEADER_BYTES {
        return Err(Denied::bad_request(431, "request header fields too large"));
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let valid = !first.is_empty() && first.as_bytes().iter().all(u8::is_ascii_digit);
        if !valid || lengths.next().is_some() {
            return Err(Denied::bad_framing("invalid or repeated Content-Length"));
        }
        if headers.contains_key(TRANSFER_ENCODING) {
            return Err(Denied::bad_framing("both Content-Length and Transfer-Encoding"));
        }
    }
    let mut encodings = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = encodings.next() {
        if !first.as_bytes().eq_ignore_ascii_case(b"chunked") || encodings.next().is_some() {
            return Err(Denied::bad_framing("unsupported Transfer-Encoding"));
        }
    }
    if headers.get_all(HOST).iter().count() > 1 {
        return Err(Denied::bad_request(400, "more than one Host header"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        crate::test_support::request_with("POST", headers)
    }

    fn status(headers: &[(&str, &str)]) -> Option<u16> {
        check_headers(&request(headers)).err().map(|denied| denied.rejection.status)
    }

    #[test]
    fn refuses_ambiguous_framing() {
        assert_eq!(status(&[("content-length", "3")]), None);
        assert_eq!(status(&[("content-length", "3"), ("content-length", "3")]), Some(400));
        assert_eq!(status(&[("content-length", "+3")]), Some(400));
        assert_eq!(status(&[("content-length", "3"), ("transfer-encoding", "chunked")]), Some(400));
        assert_eq!(status(&[("transfer-encoding", "gzip, chunked")]), Some(400));
        assert_eq!(status(&[("host", "a"), ("host", "b")]), Some(400));
    }

    #[test]
    fn refuses_oversized_heads() {
        let many: Vec<(String, &str)> = (0..=MAX_HEADER_COUNT).map(|i| (format!("x-h{i}"), "v")).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert_eq!(status(&many), Some(431));
        let big = "v".repeat(MAX_HEADER_BYTES);
        assert_eq!(status(&[("x-big", &big)]), Some(431));
    }
}
