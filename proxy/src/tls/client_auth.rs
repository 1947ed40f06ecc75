//! Client certificates on `listen` (mTLS): the verifier the listener asks
//! during each handshake, swapped whole when `tls.client_ca` changes (like
//! the server certificates), and the identity read from a verified
//! certificate once per connection, where the request path finds it.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::tls::{
    CertificateDer, ClientCertVerified, ClientCertVerifier, DigitallySignedStruct, HandshakeSignatureValid,
    RootCertStore, RusTlsError, SignatureScheme, UnixTime, WebPkiClientVerifier,
};
use policy::{ClientCertificate, DistinguishedName};
use rustls::DistinguishedName as HintName;

/// The verifier in force, with whether a certificate is required.
struct InForce {
    verifier: Arc<dyn ClientCertVerifier>,
    required: bool,
}

/// What the listener asks about client certificates. Without `client_ca`
/// it asks for none; a reload can turn client certificates on or off.
#[derive(Default)]
pub(crate) struct ClientAuthority {
    current: ArcSwapOption<InForce>,
}

impl std::fmt::Debug for ClientAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientAuthority")
    }
}

/// A verifier for `settings`, loaded and checked; errors name the file.
pub(super) fn load(settings: Option<&config::ClientCertAuth>) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let Some(auth) = settings else { return Ok(None) };
    // `check` gets here before anything else has chosen rustls's provider.
    pingora::tls::install_default_crypto_provider();
    let path = auth.ca_file.display().to_string();
    let bytes = std::fs::read(&auth.ca_file).map_err(|e| format!("{path}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| format!("{path}: not PEM: {e}"))?;
        if pem.label == "CERTIFICATE" {
            roots
                .add(CertificateDer::from(pem.contents))
                .map_err(|e| format!("{path}: unusable CA certificate: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(format!("{path}: no PEM CA certificate"));
    }
    let builder = WebPkiClientVerifier::builder(Arc::new(roots));
    let builder = if auth.required { builder } else { builder.allow_unauthenticated() };
    builder.build().map(Some).map_err(|e| format!("{path}: {e}"))
}

impl ClientAuthority {
    /// Put a verifier from [`load`] in force (`None`: no client certificates).
    pub(super) fn set(&self, verifier: Option<Arc<dyn ClientCertVerifier>>, required: bool) {
        self.current.store(verifier.map(|verifier| Arc::new(InForce { verifier, required })));
    }

    fn with<T>(&self, f: impl FnOnce(&InForce) -> Result<T, RusTlsError>) -> Result<T, RusTlsError> {
        match self.current.load().as_deref() {
            Some(in_force) => f(in_force),
            // Only reached if client certificates were turned off between
            // the request for one and its arrival: refuse, never accept.
            None => Err(RusTlsError::General("client certificates are not accepted".into())),
        }
    }
}

impl ClientCertVerifier for ClientAuthority {
    fn offer_client_auth(&self) -> bool {
        self.current.load().is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.current.load().as_deref().is_some_and(|in_force| in_force.required)
    }

    /// No CA names are sent: they would have to outlive a reload that
    /// replaces them. Clients send the certificate they are configured
    /// with (curl, gRPC, service meshes); browsers offer all of theirs.
    fn root_hint_subjects(&self) -> &[HintName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, RusTlsError> {
        self.with(|v| v.verifier.verify_client_cert(end_entity, intermediates, now))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RusTlsError> {
        self.with(|v| v.verifier.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RusTlsError> {
        self.with(|v| v.verifier.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // The same for every WebPKI verifier of the process's provider.
        match self.current.load().as_deref() {
            Some(in_force) => in_force.verifier.supported_verify_schemes(),
            None => Vec::new(),
        }
    }
}

/// Reads the verified client certificate once, when the handshake
/// completes; the request path finds it in the connection's TLS digest.
pub(crate) struct CertificateIdentity;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for CertificateIdentity {
    async fn handshake_complete_callback(&self, tls: &TlsRef) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        // Present only when the verifier accepted it (a rejected one fails
        // the handshake before this point).
        let der = tls.peer_certificate_der()?;
        let identity = certificate_identity(der)?;
        Some(Arc::new(identity))
    }
}

/// The connection's TLS facts (`None` in plain HTTP), held by the request
/// without borrowing the session.
pub(crate) fn connection_tls(session: &pingora::prelude::Session) -> Option<Arc<SslDigest>> {
    session.digest()?.ssl_digest.clone()
}

/// The verified client certificate of a connection, if it presented one.
pub(crate) fn client_certificate(tls: Option<&SslDigest>) -> Option<&ClientCertificate> {
    tls?.extension.get::<ClientCertificate>()
}

/// Subject, SANs and SHA-256 of a certificate; `None` for one that does
/// not parse (rustls verified it with its own parser, so that is not
/// expected).
fn certificate_identity(der: &[u8]) -> Option<ClientCertificate> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut attributes = Vec::new();
    for attribute in cert.subject().iter_attributes() {
        let oid = attribute.attr_type();
        let kind = x509_parser::objects::oid2abbrev(oid, registry).map_or_else(|_| oid.to_id_string(), str::to_owned);
        let value = attribute.as_str().ok()?;
        attributes.push((kind, value.to_owned()));
    }
    // RFC 4514: the most specific attribute (the last in the certificate) first.
    let subject_text = attributes
        .iter()
        .rev()
        .map(|(kind, value)| format!("{kind}={}", policy::escape_dn_value(value)))
        .collect::<Vec<_>>()
        .join(",");
    let (mut dns_names, mut uris) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_ascii_lowercase().into_boxed_str()),
                GeneralName::URI(uri) => uris.push((*uri).into()),
                _ => {}
            }
        }
    }
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    Some(ClientCertificate {
        subject: DistinguishedName::from_attributes(attributes),
        subject_text: subject_text.into(),
        dns_names: dns_names.into(),
        uris: uris.into(),
        sha256: sha256.as_ref().try_into().ok()?,
    })
}
