//! Client certificates as identities: what a verified certificate says
//! (subject, SANs, fingerprint) and the rules a route writes about which
//! certificates it accepts (`client_certs:`). Verification of the chain is
//! the TLS layer's job; this module only compares what it verified.

use std::fmt;

use crate::route::HostPattern;

/// A distinguished name as a set of `(TYPE, value)` attributes: types upper
/// case (`CN`, `O`, `EMAILADDRESS`, or a dotted OID), values as written,
/// sorted so that two spellings of one name compare equal whatever the
/// order of their attributes (RFC 4514 strings list the most specific
/// first, certificates and `openssl -subj` the least).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(Vec<(Box<str>, Box<str>)>);

/// Why a subject in `client_certs:` is not a distinguished name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("an empty distinguished name")]
    Empty,
    #[error("'{0}' is not TYPE=value")]
    NotAnAttribute(String),
    #[error("a trailing backslash")]
    TrailingEscape,
}

impl DistinguishedName {
    /// From the attributes of a certificate, in any order.
    pub fn from_attributes<I, T, V>(attributes: I) -> DistinguishedName
    where
        I: IntoIterator<Item = (T, V)>,
        T: AsRef<str>,
        V: Into<Box<str>>,
    {
        let mut pairs: Vec<(Box<str>, Box<str>)> =
            attributes.into_iter().map(|(t, v)| (canonical_type(t.as_ref()).into(), v.into())).collect();
        pairs.sort();
        DistinguishedName(pairs)
    }

    /// An RFC 4514 string (`CN=billing,O=Example`): attributes separated by
    /// `,` or `+`, `\` escaping the next character, spaces around types and
    /// values ignored.
    pub fn parse(text: &str) -> Result<DistinguishedName, DnError> {
        let mut attributes = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        let finish = |current: &mut String, attributes: &mut Vec<(String, String)>| {
            let part = std::mem::take(current);
            let (kind, value) = part.split_once('=').ok_or_else(|| DnError::NotAnAttribute(part.trim().to_owned()))?;
            let (kind, value) = (kind.trim(), value.trim());
            let valid_type =
                !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid_type || value.is_empty() {
                return Err(DnError::NotAnAttribute(part.trim().to_owned()));
            }
            attributes.push((kind.to_owned(), value.to_owned()));
            Ok(())
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.push(chars.next().ok_or(DnError::TrailingEscape)?),
                ',' | '+' => finish(&mut current, &mut attributes)?,
                c => current.push(c),
            }
        }
        if current.trim().is_empty() && attributes.is_empty() {
            return Err(DnError::Empty);
        }
        finish(&mut current, &mut attributes)?;
        Ok(DistinguishedName::from_attributes(attributes))
    }
}

/// One name for each attribute type, whichever spelling was used: the
/// RFC 4514 short names, their long forms, and OpenSSL's `emailAddress`.
fn canonical_type(kind: &str) -> String {
    let upper = kind.trim().to_ascii_uppercase();
    let short = match upper.as_str() {
        "COMMONNAME" => "CN",
        "ORGANIZATIONNAME" => "O",
        "ORGANIZATIONALUNITNAME" => "OU",
        "COUNTRYNAME" => "C",
        "LOCALITYNAME" => "L",
        "STATEORPROVINCENAME" => "ST",
        "DOMAINCOMPONENT" => "DC",
        "USERID" => "UID",
        "EMAIL" | "E" => "EMAILADDRESS",
        other => other,
    };
    short.to_owned()
}

impl fmt::Display for DistinguishedName {
    /// `TYPE=value` pairs in the canonical (sorted) order, `,`-separated,
    /// values escaped as RFC 4514 requires.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (kind, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{kind}={}", escape_dn_value(value))?;
        }
        Ok(())
    }
}

/// An attribute value as RFC 4514 section 2.4 writes it: the special
/// characters escaped, and a leading space or `#` and a trailing space.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i == last && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What portcullis knows of a verified client certificate: computed once
/// per connection, when the handshake completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub subject: DistinguishedName,
    /// The subject as RFC 4514 text (most specific first), for headers.
    pub subject_text: Box<str>,
    /// DNS names from the subject alternative names, lower case.
    pub dns_names: Box<[Box<str>]>,
    /// URIs from the subject alternative names (SPIFFE IDs among them).
    pub uris: Box<[Box<str>]>,
    /// SHA-256 of the certificate's DER: RFC 8705's `x5t#S256`.
    pub sha256: [u8; 32],
}

/// A URI a route accepts: exact, or a prefix written with a final `/*`
/// (`spiffe://cluster.local/ns/billing/*` accepts every identity below it,
/// not the prefix itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriPattern {
    Exact(Box<str>),
    Below(Box<str>),
}

impl UriPattern {
    pub fn new(text: &str) -> UriPattern {
        match text.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => UriPattern::Below(prefix.into()),
            _ => UriPattern::Exact(text.into()),
        }
    }

    pub fn matches(&self, uri: &str) -> bool {
        match self {
            UriPattern::Exact(exact) => **exact == *uri,
            UriPattern::Below(prefix) => uri.len() > prefix.len() && uri.starts_with(&**prefix),
        }
    }
}

impl fmt::Display for UriPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriPattern::Exact(uri) => f.write_str(uri),
            UriPattern::Below(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// `client_certs:` on a route: a verified certificate is required, and it
/// must match at least one entry of any list. Empty lists accept any
/// certificate the client CA verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateRule {
    pub subjects: Vec<DistinguishedName>,
    pub dns_names: Vec<HostPattern>,
    pub uris: Vec<UriPattern>,
    pub fingerprints: Vec<[u8; 32]>,
}

/// What a route's certificate rule says of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateVerdict {
    Accepted,
    /// The connection has no verified client certificate.
    Missing,
    /// A verified certificate that matches no entry of the rule.
    NotAllowed,
}

impl CertificateRule {
    fn accepts_any(&self) -> bool {
        self.subjects.is_empty() && self.dns_names.is_empty() && self.uris.is_empty() && self.fingerprints.is_empty()
    }

    pub fn allows(&self, certificate: &ClientCertificate) -> bool {
        self.accepts_any()
            || self.subjects.contains(&certificate.subject)
            || self.fingerprints.contains(&certificate.sha256)
            || certificate.dns_names.iter().any(|name| self.dns_names.iter().any(|p| p.matches(name)))
            || certificate.uris.iter().any(|uri| self.uris.iter().any(|p| p.matches(uri)))
    }

    pub fn verdict(&self, certificate: Option<&ClientCertificate>) -> CertificateVerdict {
        match certificate {
            None => CertificateVerdict::Missing,
            Some(c) if self.allows(c) => CertificateVerdict::Accepted,
            Some(_) => CertificateVerdict::NotAllowed,
        }
    }
}

/// A SHA-256 fingerprint as operators copy it: 64 hex digits, upper or
/// lower case, with or without `:` between bytes, optionally after
/// `sha256:` (as `openssl x509 -fingerprint -sha256` prints, without its
/// `SHA256 Fingerprint=`).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let hex = text.strip_prefix("sha256:").or_else(|| text.strip_prefix("SHA256:")).unwrap_or(text);
    let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let high = crate::path::hex_value(pair[0])?;
        let low = crate::path::hex_value(pair[1])?;
        *byte = high << 4 | low;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn certificate(subject: &str, dns: &[&str], uris: &[&str]) -> ClientCertificate {
        ClientCertificate {
            subject: DistinguishedName::parse(subject).unwrap(),
            subject_text: subject.into(),
            dns_names: dns.iter().map(|s| (*s).into()).collect(),
            uris: uris.iter().map(|s| (*s).into()).collect(),
            sha256: [7; 32],
        }
    }

    #[test]
    fn distinguished_names_compare_whatever_the_order_and_spacing() {
        let a = DistinguishedName::parse("CN=billing,O=Example Corp").unwrap();
        let b = DistinguishedName::parse(" o = Example Corp , cn=billing").unwrap();
        assert_eq!(a, b);
        let c = DistinguishedName::from_attributes([("O", "Example Corp"), ("CN", "billing")]);
        assert_eq!(a, c);
        assert_ne!(a, DistinguishedName::parse("CN=billing,O=Example").unwrap());
        assert_ne!(a, DistinguishedName::parse("CN=Billing,O=Example Corp").unwrap(), "values are case-sensitive");
        assert_ne!(a, DistinguishedName::parse("CN=billing").unwrap(), "every attribute counts");
        let long = DistinguishedName::parse("commonName=billing,organizationName=Example Corp").unwrap();
        assert_eq!(a, long);
        assert_eq!(
            DistinguishedName::parse("emailAddress=a@example.com").unwrap(),
            DistinguishedName::from_attributes([("Email", "a@example.com")])
        );
    }

    #[test]
    fn escapes_and_bad_names() {
        let escaped = DistinguishedName::parse(r"CN=Smith\, John,O=Example").unwrap();
        assert_eq!(escaped, DistinguishedName::from_attributes([("CN", "Smith, John"), ("O", "Example")]));
        assert_eq!(escaped.to_string(), r"CN=Smith\, John,O=Example");
        assert_eq!(DistinguishedName::parse(&escaped.to_string()), Ok(escaped));
        assert_eq!(DistinguishedName::parse(""), Err(DnError::Empty));
        assert!(matches!(DistinguishedName::parse("billing"), Err(DnError::NotAnAttribute(_))));
        assert!(matches!(DistinguishedName::parse("CN=a,,O=b"), Err(DnError::NotAnAttribute(_))));
        assert!(matches!(DistinguishedName::parse("CN="), Err(DnError::NotAnAttribute(_))));
        assert_eq!(DistinguishedName::parse("CN=a\\"), Err(DnError::TrailingEscape));
    }

    #[test]
    fn values_are_escaped_as_rfc_4514_says() {
        assert_eq!(escape_dn_value("Smith, John"), "Smith\\, John");
        assert_eq!(escape_dn_value(" lead"), "\\ lead");
        assert_eq!(escape_dn_value("#1"), "\\#1");
        assert_eq!(escape_dn_value("plain"), "plain");
    }

    #[test]
    fn uri_patterns() {
        let exact = UriPattern::new("spiffe://cluster.local/ns/x/sa/y");
        assert!(exact.matches("spiffe://cluster.local/ns/x/sa/y"));
        assert!(!exact.matches("spiffe://cluster.local/ns/x/sa/yy"));
        let below = UriPattern::new("spiffe://cluster.local/ns/x/*");
        assert!(below.matches("spiffe://cluster.local/ns/x/sa/y"));
        assert!(!below.matches("spiffe://cluster.local/ns/x/"));
        assert!(!below.matches("spiffe://cluster.local/ns/xy/sa/y"));
        assert_eq!(below.to_string(), "spiffe://cluster.local/ns/x/*");
        // A `*` not after a slash is literal: no partial-segment globs.
        assert!(!UriPattern::new("spiffe://a/b*").matches("spiffe://a/bc"));
    }

    #[test]
    fn rules_accept_any_listed_identity() {
        let cert =
            certificate("CN=billing,O=Example", &["billing.internal"], &["spiffe://cluster.local/ns/billing/sa/api"]);
        let any = CertificateRule::default();
        assert_eq!(any.verdict(Some(&cert)), CertificateVerdict::Accepted);
        assert_eq!(any.verdict(None), CertificateVerdict::Missing);
        let by_uri = CertificateRule {
            uris: vec![UriPattern::new("spiffe://cluster.local/ns/billing/*")],
            ..Default::default()
        };
        assert!(by_uri.allows(&cert));
        let other_ns =
            CertificateRule { uris: vec![UriPattern::new("spiffe://cluster.local/ns/shop/*")], ..Default::default() };
        assert_eq!(other_ns.verdict(Some(&cert)), CertificateVerdict::NotAllowed);
        let by_dns = CertificateRule { dns_names: vec![HostPattern::new("*.internal")], ..Default::default() };
        assert!(by_dns.allows(&cert));
        let by_subject = CertificateRule {
            subjects: vec![DistinguishedName::parse("O=Example, CN=billing").unwrap()],
            ..Default::default()
        };
        assert!(by_subject.allows(&cert));
        let by_print = CertificateRule { fingerprints: vec![[7; 32]], ..other_ns.clone() };
        assert!(by_print.allows(&cert));
        let wrong_print = CertificateRule { fingerprints: vec![[8; 32]], ..Default::default() };
        assert!(!wrong_print.allows(&cert));
    }

    #[test]
    fn fingerprints_in_the_spellings_operators_copy() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(parse_fingerprint(&colons), Some([0xab; 32]));
        assert_eq!(parse_fingerprint(&format!("sha256:{}", "ab".repeat(32))), Some([0xab; 32]));
        assert_eq!(parse_fingerprint(&"ab".repeat(31)), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }

    proptest! {
        /// Order never matters, and a name always equals its own parse.
        #[test]
        fn dn_order_is_irrelevant(values in proptest::collection::vec("[a-zA-Z0-9 ._-]{1,12}", 1..5)) {
            let types = ["CN", "O", "OU", "L", "C"];
            let attributes: Vec<(&str, String)> =
                values.iter().enumerate().map(|(i, v)| (types[i], v.trim().to_owned())).filter(|(_, v)| !v.is_empty()).collect();
            prop_assume!(!attributes.is_empty());
            let forward: Vec<String> = attributes.iter().map(|(t, v)| format!("{t}={v}")).collect();
            let mut backward = forward.clone();
            backward.reverse();
            let a = DistinguishedName::parse(&forward.join(",")).unwrap();
            let b = DistinguishedName::parse(&backward.join(", ")).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a, DistinguishedName::from_attributes(attributes));
        }

        /// A `Below` pattern never accepts a URI outside its prefix.
        #[test]
        fn below_stays_below(prefix in "[a-z]{1,6}://[a-z]{1,6}/", rest in "[a-z/]{0,8}", other in "[a-z:/]{0,20}") {
            let pattern = UriPattern::new(&format!("{prefix}*"));
            prop_assert_eq!(pattern.matches(&format!("{prefix}{rest}")), !rest.is_empty());
            if !other.starts_with(&prefix) {
                prop_assert!(!pattern.matches(&other));
            }
        }
    }
}
