//! `tls:` as operators write it.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Text;

/// `tls:` in the main file: `listen` serves HTTPS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// PEM certificate chain, leaf first (relative to the main file).
    pub cert: Text,
    pub key: Text,
    /// More certificates, chosen by the name the client asks for (SNI).
    pub certificates: Option<Vec<Spanned<NamedCertificateFile>>>,
    /// A plain-HTTP listener that only redirects to HTTPS.
    pub redirect_listen: Option<Text>,
    /// PEM bundle of the CAs whose client certificates are verified (mTLS).
    pub client_ca: Option<Text>,
    /// `required` (default) or `optional`.
    pub client_auth: Option<Text>,
    /// `"1.2"` (default) or `"1.3"`.
    pub min_version: Option<Text>,
}

/// `client_certs:` on a route: which verified client certificates it accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientCertsFile {
    /// Subject distinguished names (RFC 4514).
    pub subjects: Option<Vec<Text>>,
    /// DNS subject alternative names (`*.domain` for one label).
    pub dns_names: Option<Vec<Text>>,
    /// URI subject alternative names (SPIFFE IDs), exact or `prefix/*`.
    pub uris: Option<Vec<Text>>,
    /// SHA-256 fingerprints of the certificates.
    pub fingerprints: Option<Vec<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamedCertificateFile {
    pub cert: Text,
    pub key: Text,
    /// Host names (`api.example.com`, `*.example.com`) it is served for.
    pub names: Vec<Text>,
}
