//! TLS termination on `listen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::diag::Position;

/// `tls:`: the certificates `listen` serves, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Served when no named certificate matches the client's SNI (or it
    /// sends none).
    pub default: CertificateFiles,
    /// Chosen by SNI, first match in file order.
    pub named: Vec<NamedCertificate>,
    /// A plain-HTTP listener answering every request with a redirect to
    /// HTTPS.
    pub redirect_listen: Option<SocketAddr>,
    /// Client certificates (mTLS), when `client_ca` is set.
    pub client_auth: Option<ClientCertAuth>,
    /// `min_version: "1.3"`: clients that cannot speak TLS 1.3 are refused.
    pub tls13_only: bool,
}

/// `tls.client_ca` and `tls.client_auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertAuth {
    /// PEM bundle of the CAs client certificates must chain to.
    pub ca_file: PathBuf,
    /// A handshake without a client certificate fails; else it succeeds
    /// and only routes with `client_certs:` refuse the request.
    pub required: bool,
    pub position: Position,
}

/// `client_certs:` on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCertificates {
    pub rule: policy::CertificateRule,
    /// `credentials: [client_cert]`: the certificate alone admits the
    /// request; no token is looked at.
    pub alone: bool,
}

/// A certificate chain and its key, as files (read when the configuration
/// is applied, and again whenever they change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the entry is, for `check`.
    pub position: Position,
}

/// TLS towards one upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM CA bundle verifying the upstream, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate portcullis presents (mTLS to the upstream).
    pub client_certificate: Option<CertificateFiles>,
    /// Certificate verification; off only when the file says so.
    pub verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCertificate {
    pub files: CertificateFiles,
    /// Lower-case host names; `*.example.com` matches one label.
    pub names: Vec<String>,
}
