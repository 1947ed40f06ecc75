//! TLS termination on `listen`: rustls through Pingora (the `rustls`
//! feature: pure Rust, no cmake, no OpenSSL; TLS 1.2 and 1.3 only, with
//! rustls's suites, none of them weak), certificates chosen by SNI, and
//! swapped whole when their files change.
//!
//! The listener's rustls configuration never changes; it asks
//! [`Certificates`] for the certificate of each handshake. Applying a
//! configuration (at start, and at every reload, which a changed
//! certificate or key file triggers like a changed policy file) loads every
//! pair first and only then swaps the set: a handshake in flight keeps the
//! certificate it was given, and a bad new file leaves the old set in
//! place (the reload fails, naming the file).

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use config::CertificateFiles;
use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

use crate::idp::unix_now;

mod client_auth;
pub(crate) use client_auth::{client_certificate, connection_tls, ClientAuthority};

/// Warn when a certificate expires within this many days.
const EXPIRY_WARNING_DAYS: u64 = 14;

/// One certificate chain with its key, ready for handshakes.
struct Loaded {
    key: Arc<CertifiedKey>,
    /// `notAfter` of the leaf, Unix seconds.
    not_after: u64,
    /// The private key as read (an upstream client certificate hands it to
    /// Pingora's connector).
    key_der: Vec<u8>,
}

/// The certificates in force.
struct CertificateSet {
    default: Arc<CertifiedKey>,
    /// Lower-case names (`*.example.com` for one label) and their chains.
    named: Vec<(String, Arc<CertifiedKey>)>,
    /// Each certificate file and its leaf's `notAfter` (Unix seconds).
    expiries: Vec<(String, u64)>,
    /// `min_version: "1.3"`.
    tls13_only: bool,
}

/// What the listener asks for a certificate; swapped by configurations.
pub(crate) struct Certificates {
    current: ArcSwap<CertificateSet>,
    /// Client certificates (`tls.client_ca`), swapped with the rest.
    client: Arc<ClientAuthority>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Certificates")
    }
}

impl Certificates {
    /// Load every certificate of `settings`, or say which file is wrong.
    pub(crate) fn load(settings: &config::TlsSettings) -> Result<Arc<Certificates>, String> {
        let set = load_set(settings)?;
        let client = Arc::new(ClientAuthority::default());
        client.set(client_auth::load(settings.client_auth.as_ref())?, client_required(settings));
        Ok(Arc::new(Certificates { current: ArcSwap::from_pointee(set), client }))
    }

    /// Load `settings` and put them in force; on any error the certificates
    /// (and client CAs) in force stay.
    pub(crate) fn replace(&self, settings: &config::TlsSettings) -> Result<(), String> {
        let set = load_set(settings)?;
        let client = client_auth::load(settings.client_auth.as_ref())?;
        self.current.store(Arc::new(set));
        self.client.set(client, client_required(settings));
        Ok(())
    }

    /// Each certificate file in force and when its leaf expires (Unix
    /// seconds), for the expiry metric.
    pub(crate) fn expiries(&self) -> Vec<(String, u64)> {
        self.current.load().expiries.clone()
    }

    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let set = self.current.load();
        let Some(name) = server_name.map(str::to_ascii_lowercase) else { return Arc::clone(&set.default) };
        set.named
            .iter()
            .find(|(pattern, _)| name_matches(pattern, &name))
            .map_or_else(|| Arc::clone(&set.default), |(_, key)| Arc::clone(key))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Pingora's rustls listener fixes the versions to 1.2 and 1.3, and
        // rustls picks 1.3 whenever the client offers it: a client that
        // offers no TLS 1.3 suite is one that would get 1.2, and gets no
        // certificate (the handshake fails) when 1.3 is the minimum.
        if self.current.load().tls13_only && !hello.cipher_suites().iter().any(|suite| is_tls13(u16::from(*suite))) {
            return None;
        }
        Some(self.pick(hello.server_name()))
    }
}

/// The TLS 1.3 cipher suites (RFC 8446 appendix B.4): 0x1301 to 0x1305.
fn is_tls13(suite: u16) -> bool {
    (0x1301..=0x1305).contains(&suite)
}

/// `*.example.com` matches exactly one label before `example.com`.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == domain),
        None => pattern == name,
    }
}

fn client_required(settings: &config::TlsSettings) -> bool {
    settings.client_auth.as_ref().is_some_and(|auth| auth.required)
}

/// The listener's TLS settings: Pingora's rustls acceptor (TLS 1.2 and
/// 1.3, ALPN `h2` then `http/1.1`) with certificates from `certificates`,
/// client certificates verified by its [`ClientAuthority`], and the
/// verified one read once per connection ([`client_auth::CertificateIdentity`]).
pub(crate) fn listener_settings(certificates: Arc<Certificates>) -> pingora::Result<TlsSettings> {
    let mut settings = TlsSettings::with_callbacks(Box::new(client_auth::CertificateIdentity))?;
    settings.set_client_cert_verifier(Arc::clone(&certificates.client) as _);
    settings.set_cert_resolver(certificates);
    settings.enable_h2();
    Ok(settings)
}

fn load_set(settings: &config::TlsSettings) -> Result<CertificateSet, String> {
    let mut expiries = Vec::new();
    let mut load = |files: &CertificateFiles| {
        let loaded = load_pair(files)?;
        expiries.push((path_text(&files.cert), loaded.not_after));
        Ok::<_, String>(loaded.key)
    };
    let default = load(&settings.default)?;
    let mut named = Vec::new();
    for entry in &settings.named {
        let key = load(&entry.files)?;
        named.extend(entry.names.iter().map(|name| (name.clone(), Arc::clone(&key))));
    }
    Ok(CertificateSet { default, named, expiries, tls13_only: settings.tls13_only })
}

/// One chain and key, checked: the key is the certificate's, and the
/// certificate is valid now. Errors start with the file they are about.
fn load_pair(files: &CertificateFiles) -> Result<Loaded, String> {
    pingora::tls::install_default_crypto_provider();
    let (cert, key) = (path_text(&files.cert), path_text(&files.key));
    let pair = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| format!("{cert}: cannot read the certificate or {key}: {e}"))?;
    let Some((chain, private_key)) = pair else {
        return Err(format!("{cert}: no PEM certificate, or {key}: no PEM private key"));
    };
    let provider = CryptoProvider::get_default().ok_or_else(|| "no TLS crypto provider".to_owned())?;
    let key_der = private_key.secret_der().to_vec();
    let signing =
        provider.key_provider.load_private_key(private_key).map_err(|e| format!("{key}: unusable private key: {e}"))?;
    let leaf = chain.first().ok_or_else(|| format!("{cert}: no certificate"))?;
    let not_after = not_after(leaf.as_ref()).map_err(|e| format!("{cert}: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| format!("{key}: the key does not match the certificate in {cert}"))?;
    if not_after <= unix_now() {
        return Err(format!("{cert}: the certificate expired (notAfter {})", rfc3339(not_after)));
    }
    Ok(Loaded { key: Arc::new(certified), not_after, key_der })
}

fn not_after(der: &[u8]) -> Result<u64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    u64::try_from(cert.validity().not_after.timestamp()).map_err(|_| "notAfter is before 1970".to_owned())
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `portcullis check`'s view of the certificates: errors (unreadable,
/// mismatched key, expired) and warnings (expiring within 14 days), each
/// with the position of its entry.
pub(crate) fn inspect(settings: &config::TlsSettings) -> Vec<(config::Position, config::Severity, String)> {
    let mut out = Vec::new();
    if let Some(auth) = &settings.client_auth {
        if let Err(message) = client_auth::load(Some(auth)) {
            out.push((auth.position.clone(), config::Severity::Error, message));
        }
    }
    let entries = std::iter::once(&settings.default).chain(settings.named.iter().map(|n| &n.files));
    for files in entries {
        match load_pair(files) {
            Err(message) => out.push((files.position.clone(), config::Severity::Error, message)),
            Ok(loaded) => {
                let left = loaded.not_after.saturating_sub(unix_now());
                if left < EXPIRY_WARNING_DAYS * 86_400 {
                    let message = format!(
                        "{}: the certificate expires in {} days ({})",
                        files.cert.display(),
                        left / 86_400,
                        rfc3339(loaded.not_after)
                    );
                    out.push((files.position.clone(), config::Severity::Warning, message));
                }
            }
        }
    }
    out
}

/// What portcullis presents and trusts towards one `https://` upstream,
/// parsed once, so no connection can fail on a bad file (Pingora would
/// panic on a key it cannot read).
#[derive(Default)]
pub(crate) struct UpstreamCredentials {
    pub(crate) ca: Option<Arc<pingora::protocols::tls::CaType>>,
    pub(crate) client: Option<Arc<pingora::utils::tls::CertKey>>,
}

impl UpstreamCredentials {
    pub(crate) fn load(settings: &config::UpstreamTls) -> Result<UpstreamCredentials, String> {
        let ca = settings.ca_file.as_deref().map(load_ca).transpose()?;
        let client = settings.client_certificate.as_ref().map(load_client).transpose()?;
        Ok(UpstreamCredentials { ca, client })
    }
}

fn load_ca(path: &Path) -> Result<Arc<pingora::protocols::tls::CaType>, String> {
    use pingora::utils::tls::{parse_x509, WrappedX509};
    let text = path_text(path);
    let bytes = std::fs::read(path).map_err(|e| format!("{text}: {e}"))?;
    let mut certificates = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| format!("{text}: not PEM: {e}"))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        // Parsed here first: Pingora's parser panics on a bad one.
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| format!("{text}: bad certificate: {e}"))?;
        certificates.push(WrappedX509::new(pem.contents, parse_x509));
    }
    if certificates.is_empty() {
        return Err(format!("{text}: no PEM certificate"));
    }
    Ok(Arc::from(certificates.into_boxed_slice()))
}

fn load_client(files: &CertificateFiles) -> Result<Arc<pingora::utils::tls::CertKey>, String> {
    // The same checks as a listener's pair: the key is the certificate's,
    // the certificate is valid now.
    let Loaded { key: certified, key_der, .. } = load_pair(files)?;
    // What Pingora's connector does with the key, checked once here.
    pingora::tls::PrivateKeyDer::try_from(key_der.clone()).map_err(|e| format!("{}: {e}", files.key.display()))?;
    let chain: Vec<Vec<u8>> = certified.cert.iter().map(|c| c.as_ref().to_vec()).collect();
    Ok(Arc::new(pingora::utils::tls::CertKey::new(chain, key_der)))
}

/// The plain-HTTP listener of `tls.redirect_listen`: every request is
/// sent to the same host and target over HTTPS (308 keeps the method and
/// body), nothing is proxied.
pub(crate) struct RedirectToHttps {
    /// The HTTPS port, when it is not 443.
    pub(crate) https_port: u16,
}

#[async_trait::async_trait]
impl pingora::apps::http_app::ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut pingora::protocols::http::ServerSession) -> http::Response<Vec<u8>> {
        let request = session.req_header();
        let host = request
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| policy::normalize_host(h).ok())
            .map(|h| h.split(':').next().unwrap_or_default().to_owned());
        let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut response = http::Response::new(Vec::new());
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            *response.status_mut() = http::StatusCode::BAD_REQUEST;
            return response;
        };
        let port = if self.https_port == 443 { String::new() } else { format!(":{}", self.https_port) };
        // The target is the client's own (origin-form): a path on the same
        // host, never another host.
        let path = if target.starts_with('/') { target } else { "/" };
        *response.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
        if let Ok(location) = http::HeaderValue::from_str(&format!("https://{host}{port}{path}")) {
            response.headers_mut().insert(http::header::LOCATION, location);
        }
        response.headers_mut().insert(http::header::CONTENT_LENGTH, 0.into());
        response
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let (hour, minute, second) = (seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("api.example.com", "api.example.com"));
        assert!(name_matches("*.example.com", "api.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "apiexample.com"));
        assert!(!name_matches("api.example.com", "www.example.com"));
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }
}
