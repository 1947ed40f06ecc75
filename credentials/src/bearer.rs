//! Finding the bearer token on a request (RFC 6750 section 2).

/// Why the request's credentials are unusable. Each has a fixed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// 400 invalid_request.
    #[error("more than one Authorization header")]
    DuplicateHeader,
    /// 400 invalid_request.
    #[error("the bearer token is empty")]
    Empty,
    /// 400 invalid_request.
    #[error("the bearer token contains characters a token cannot have")]
    Malformed,
    /// 400 invalid_request (RFC 6750: one method per request).
    #[error("the token is sent in more than one place")]
    SeveralMethods,
    /// 401 invalid_token.
    #[error("the token is larger than the configured limit")]
    TooLarge,
}

/// The token from an `Authorization` header (or none). `headers` are every
/// `Authorization` value on the request; a scheme other than Bearer counts as
/// no bearer token, which answers with a plain challenge.
pub fn from_headers<'a, I>(headers: I, max_bytes: usize) -> Result<Option<&'a str>, BearerError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut headers = headers.into_iter();
    let Some(value) = headers.next() else {
        return Ok(None);
    };
    if headers.next().is_some() {
        return Err(BearerError::DuplicateHeader);
    }
    let value = std::str::from_utf8(value).map_err(|_| BearerError::Malformed)?;
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = match value.split_once([' ', '\t']) {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    token(rest.trim_start_matches([' ', '\t']), max_bytes).map(Some)
}

/// Validate a token taken from the query string (only when configured).
pub fn from_query(value: &str, max_bytes: usize) -> Result<&str, BearerError> {
    token(value, max_bytes)
}

/// The characters of a b64token body, as a table: every byte of every token
/// is checked, and a lookup is a few times cheaper than the comparisons.
const B64TOKEN_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// RFC 6750 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn token(value: &str, max_bytes: usize) -> Result<&str, BearerError> {
    if value.is_empty() {
        return Err(BearerError::Empty);
    }
    if value.len() > max_bytes {
        return Err(BearerError::TooLarge);
    }
    let body = value.trim_end_matches('=');
    let valid = !body.is_empty() && body.bytes().all(|b| B64TOKEN_CHAR[usize::from(b)]);
    if !valid {
        return Err(BearerError::Malformed);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<Option<&'static str>, BearerError> {
        let owned: Vec<&'static [u8]> =
            values.iter().map(|v| &*Box::leak(v.as_bytes().to_vec().into_boxed_slice())).collect();
        from_headers(owned, 64)
    }

    #[test]
    fn finds_the_token_with_any_scheme_case() {
        assert_eq!(parse(&["Bearer abc.def.ghi"]), Ok(Some("abc.def.ghi")));
        assert_eq!(parse(&["bearer abc"]), Ok(Some("abc")));
        assert_eq!(parse(&["BEARER  abc=="]), Ok(Some("abc==")));
        assert_eq!(parse(&["  Bearer\tabc  "]), Ok(Some("abc")));
    }

    #[test]
    fn other_schemes_and_no_header_are_no_token() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Ok(None));
        assert_eq!(parse(&["Bearerx abc"]), Ok(None));
    }

    #[test]
    fn the_character_table_is_rfc_6750_b64token() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(B64TOKEN_CHAR[usize::from(b)], expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn refuses_bad_requests() {
        assert_eq!(parse(&["Bearer a", "Bearer b"]), Err(BearerError::DuplicateHeader));
        assert_eq!(parse(&["Bearer"]), Err(BearerError::Empty));
        assert_eq!(parse(&["Bearer   "]), Err(BearerError::Empty));
        assert_eq!(parse(&["Bearer a b"]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer a,b"]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer ==="]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer a=b"]), Err(BearerError::Malformed));
        assert_eq!(from_headers([&b"Bearer \xff"[..]], 64), Err(BearerError::Malformed));
        assert_eq!(parse(&[&format!("Bearer {}", "a".repeat(65))]), Err(BearerError::TooLarge));
    }
}
