//! Helpers shared by unit tests.

use pingora::http::RequestHeader;

/// A request head with `method`, path `/` and these header fields, in order.
pub(crate) fn request_with(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut request = RequestHeader::build(method, b"/", None).expect("a valid request line");
    for (name, value) in headers {
        request.append_header(name.to_string(), *value).expect("a valid header field");
    }
    request
}
