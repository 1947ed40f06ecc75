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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamedCertificateFile {
    pub cert: Text,
    pub key: Text,
    /// Host names (`api.example.com`, `*.example.com`) it is served for.
    pub names: Vec<Text>,
}
