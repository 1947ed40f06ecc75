//! OpenID Connect discovery documents (`.well-known/openid-configuration`),
//! as fetched from an issuer's discovery URL.
//!
//! Only what portcullis uses is read: `issuer`, to check the document is the
//! configured issuer's, the `jwks_uri` and `introspection_endpoint` it
//! then talks to, and the endpoints of browser sign-in
//! (`authorization_endpoint`, `token_endpoint`, `end_session_endpoint`).
//! Every other member is skipped.

use serde::Deserialize;

/// Endpoints learnt from OIDC discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Where the issuer publishes its JWKS; an `http(s)` URL.
    pub jwks_uri: String,
    /// RFC 8414 / 7662 introspection endpoint, if the issuer names one; an
    /// `http(s)` URL.
    pub introspection_endpoint: Option<String>,
    /// Where browsers are sent to sign in (OpenID Connect code flow).
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Option<String>,
    /// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
    pub end_session_endpoint: Option<String>,
}

/// Why a discovery document is unusable. Any of them leaves the issuer
/// without keys from this document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Not a JSON object (serde reads a struct from an array too).
    #[error("discovery document is not a JSON object")]
    NotObject,
    /// Not JSON, `issuer` or `jwks_uri` missing, a member of the wrong type,
    /// a member given twice: serde_json's message.
    #[error("discovery document: {0}")]
    Malformed(String),
    /// The document's `issuer` is not exactly the configured one.
    #[error("discovery document is for issuer '{found}', not '{expected}'")]
    WrongIssuer { found: String, expected: String },
    /// `jwks_uri` or `introspection_endpoint` is not an `http(s)` URL.
    #[error("'{0}' is not an http(s) URL")]
    NotHttpUrl(String),
}

/// Parse a discovery document; its `issuer` must be exactly
/// `expected_issuer` (OpenID Connect Discovery 1.0, section 4.3), or keys
/// from it could belong to someone else. `jwks_uri` and the other
/// endpoints (if present and not null) must start with
/// `https://` or `http://`: no `file:` or other schemes.
pub fn parse(body: &[u8], expected_issuer: &str) -> Result<Discovered, DiscoveryError> {
    #[derive(Deserialize)]
    struct Document {
        issuer: String,
        jwks_uri: String,
        #[serde(default)]
        introspection_endpoint: Option<String>,
        #[serde(default)]
        authorization_endpoint: Option<String>,
        #[serde(default)]
        token_endpoint: Option<String>,
        #[serde(default)]
        end_session_endpoint: Option<String>,
    }
    if !crate::peek::is_json_object(body) {
        return Err(DiscoveryError::NotObject);
    }
    let document: Document = serde_json::from_slice(body).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
    if document.issuer != expected_issuer {
        return Err(DiscoveryError::WrongIssuer { found: document.issuer, expected: expected_issuer.to_owned() });
    }
    let optional = [
        &document.introspection_endpoint,
        &document.authorization_endpoint,
        &document.token_endpoint,
        &document.end_session_endpoint,
    ];
    for url in std::iter::once(&document.jwks_uri).chain(optional.into_iter().flatten()) {
        if !is_http_url(url) {
            return Err(DiscoveryError::NotHttpUrl(url.clone()));
        }
    }
    Ok(Discovered {
        jwks_uri: document.jwks_uri,
        introspection_endpoint: document.introspection_endpoint,
        authorization_endpoint: document.authorization_endpoint,
        token_endpoint: document.token_endpoint,
        end_session_endpoint: document.end_session_endpoint,
    })
}

/// Whether `url` has the (lower-case) `https` or `http` scheme.
fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &[u8] = br#"{"issuer":"https://a.example.com","jwks_uri":"https://a.example.com/jwks","introspection_endpoint":"https://a.example.com/i"}"#;

    #[test]
    fn reads_the_endpoints() {
        let found = parse(FULL, "https://a.example.com").unwrap();
        assert_eq!(found.jwks_uri, "https://a.example.com/jwks");
        assert_eq!(found.introspection_endpoint.as_deref(), Some("https://a.example.com/i"));

        let found = parse(br#" {"issuer":"x","jwks_uri":"http://x/jwks","introspection_endpoint":null,"n":[1]}"#, "x");
        assert_eq!(found, Ok(Discovered { jwks_uri: "http://x/jwks".into(), ..Discovered::default() }));
    }

    #[test]
    fn must_name_the_configured_issuer() {
        assert_eq!(
            parse(FULL, "https://b.example.com"),
            Err(DiscoveryError::WrongIssuer {
                found: "https://a.example.com".into(),
                expected: "https://b.example.com".into()
            })
        );
        // Exactly: no trailing slash, no case folding.
        assert!(parse(FULL, "https://a.example.com/").is_err());
        assert!(parse(FULL, "https://A.example.com").is_err());
    }

    #[test]
    fn refuses_what_is_not_a_discovery_document() {
        assert!(matches!(parse(br#"{"issuer":"x"}"#, "x"), Err(DiscoveryError::Malformed(_))));
        assert!(matches!(parse(br#"{"issuer":1,"jwks_uri":"https://x/j"}"#, "x"), Err(DiscoveryError::Malformed(_))));
        assert!(matches!(
            parse(br#"{"issuer":"x","issuer":"x","jwks_uri":"https://x/j"}"#, "x"),
            Err(DiscoveryError::Malformed(_))
        ));
        assert!(matches!(parse(b"{", "x"), Err(DiscoveryError::Malformed(_))));
        // serde would read the struct from an array, fields in order.
        assert_eq!(parse(br#"["x", "https://x/jwks", null]"#, "x"), Err(DiscoveryError::NotObject));
        assert_eq!(parse(b"", "x"), Err(DiscoveryError::NotObject));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert_eq!(
            parse(br#"{"issuer":"x","jwks_uri":"file:///etc/passwd"}"#, "x"),
            Err(DiscoveryError::NotHttpUrl("file:///etc/passwd".into()))
        );
        assert_eq!(
            parse(br#"{"issuer":"x","jwks_uri":"https://x/j","introspection_endpoint":"gopher://x"}"#, "x"),
            Err(DiscoveryError::NotHttpUrl("gopher://x".into()))
        );
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            parse(FULL, "y").unwrap_err().to_string(),
            "discovery document is for issuer 'https://a.example.com', not 'y'"
        );
        assert_eq!(parse(b"[]", "x").unwrap_err().to_string(), "discovery document is not a JSON object");
        assert_eq!(
            parse(br#"{"issuer":"x","jwks_uri":"ftp://j"}"#, "x").unwrap_err().to_string(),
            "'ftp://j' is not an http(s) URL"
        );
        assert!(parse(b"{}", "x").unwrap_err().to_string().starts_with("discovery document: missing field"));
    }
}
