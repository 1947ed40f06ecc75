//! Where a browser may be sent back to after sign-in or logout: only a
//! path on this origin. Open redirects are the classic bug of sign-in
//! proxies (oauth2-proxy CVE-2020-11053, CVE-2021-21291): a URL that looks
//! relative but that a browser reads as another host.

use std::borrow::Cow;

/// Longest return path kept (it rides in a cookie).
const MAX_LEN: usize = 2048;

/// `candidate` when it is a same-origin path a browser cannot read as
/// another origin, else `None`. Refused: anything not starting with exactly
/// one `/` (`//evil`, `https://evil`, `evil`), any backslash (`/\evil`:
/// browsers read `\` as `/`), any control character or white space
/// (browsers drop tabs and newlines, so `/\t/evil` is `//evil`), a
/// percent-encoded slash or backslash right after the first `/`, and
/// anything that, resolved against `origin`, lands elsewhere.
pub(crate) fn safe_return_path<'a>(candidate: &'a str, origin: &str) -> Option<&'a str> {
    let bytes = candidate.as_bytes();
    if bytes.first() != Some(&b'/') || candidate.len() > MAX_LEN {
        return None;
    }
    if bytes.get(1).is_some_and(|b| matches!(b, b'/' | b'\\')) {
        return None;
    }
    if bytes.iter().any(|&b| b == b'\\' || b <= b' ' || b == 0x7f || b >= 0x80) {
        return None;
    }
    let after_slash = candidate[1..].get(..3).map(str::to_ascii_lowercase);
    if matches!(after_slash.as_deref(), Some("%2f" | "%5c")) {
        return None;
    }
    // Belt and braces: a URL parser (as browsers have) agrees it is ours.
    let base = url::Url::parse(origin).ok()?;
    let resolved = base.join(candidate).ok()?;
    (resolved.origin() == base.origin()).then_some(candidate)
}

/// The percent-decoded value of the query parameter `name` (the form
/// decoding the credential parsers use); `None` when absent, malformed or
/// not UTF-8.
pub(crate) fn query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    let raw = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })?;
    if !raw.contains(['%', '+']) {
        return Some(Cow::Borrowed(raw));
    }
    credentials::form::decode_form(raw).map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://app.example.com";

    #[test]
    fn plain_paths_are_kept() {
        for good in ["/", "/app/", "/app/page?x=1&y=%2F", "/a%2Fb", "/.well-known/x", "/app/#frag"] {
            assert_eq!(safe_return_path(good, ORIGIN), Some(good), "{good}");
        }
    }

    #[test]
    fn every_open_redirect_form_is_refused() {
        for bad in [
            "//evil.example",
            "//evil.example/app",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/%5C/evil.example",
            "/%5cevil.example",
            "/app/\\..\\..\\/evil",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_return_path(bad, ORIGIN), None, "{bad:?}");
        }
    }

    #[test]
    fn encoded_forms_decode_to_refused_paths() {
        for (query, want) in [
            ("rd=%2F%2Fevil.example", "//evil.example"),
            ("rd=%2F%5Cevil.example", "/\\evil.example"),
            ("rd=https%3A%2F%2Fevil.example", "https://evil.example"),
            ("rd=%2F%09%2Fevil.example", "/\t/evil.example"),
        ] {
            let decoded = query_value(query, "rd").expect("decodes");
            assert_eq!(decoded, want);
            assert_eq!(safe_return_path(&decoded, ORIGIN), None, "{query}");
        }
        assert_eq!(query_value("a=1&rd=%2Fapp%2F&b", "rd").as_deref(), Some("/app/"));
        assert_eq!(query_value("rd=%FF", "rd"), None);
        assert_eq!(query_value("x=1", "rd"), None);
    }

    proptest::proptest! {
        /// Whatever string is offered (built from the characters open
        /// redirects are made of), an accepted one stays on this origin
        /// and starts with exactly one `/`.
        #[test]
        fn accepted_paths_stay_on_this_origin(candidate in "[/\\\\%2fFcC5.:a-z@?#\t ]{0,12}") {
            if let Some(path) = safe_return_path(&candidate, ORIGIN) {
                proptest::prop_assert!(path.starts_with('/') && !path.starts_with("//"));
                let resolved = url::Url::parse(ORIGIN).and_then(|b| b.join(path)).expect("resolves");
                proptest::prop_assert_eq!(resolved.origin(), url::Url::parse(ORIGIN).expect("origin").origin());
            }
        }
    }

    #[test]
    fn never_a_path_to_another_origin() {
        // Whatever is accepted resolves to this origin.
        let samples = ["/a", "/%2e%2e/x", "/..//x", "/.//evil", "/a/..//evil", "/;//evil", "/?//evil", "/#//evil"];
        for sample in samples {
            if let Some(path) = safe_return_path(sample, ORIGIN) {
                let resolved = url::Url::parse(ORIGIN).and_then(|b| b.join(path)).expect("resolves");
                assert_eq!(resolved.host_str(), Some("app.example.com"), "{sample}");
            }
        }
    }
}
