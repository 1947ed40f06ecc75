//! The signed identity assertion (`upstream_assertion:`): for every
//! request it forwards after authenticating it, portcullis adds a short JWT
//! it signs itself (ES256 or EdDSA), saying who the caller is, with which
//! scopes, for which upstream, and the method and path portcullis
//! authorised. The public keys are served as a JWKS on `listen`, so an
//! upstream can verify that a request went through portcullis and was
//! authorised for exactly what it asks, however it reached the upstream.
//! A roll-over publishes the next key before it signs and the previous one
//! until its last assertion has expired.

use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::{AssertionAlg, AssertionKey, AssertionSettings};

use crate::auth::Identity;
use crate::idp::unix_now;

/// Signs assertions under one configuration.
pub(crate) struct AssertionSigner {
    issuer: String,
    header_name: http::HeaderName,
    lifetime: Duration,
    jwks_path: String,
    /// Parsed once: building the key pair from PKCS#8 per signature cost
    /// more than the signature itself.
    key: SigningKey,
    /// The JWS header, base64url, rendered once.
    header: String,
    rng: SystemRandom,
    /// The JWKS document, rendered once.
    jwks: bytes::Bytes,
}

enum SigningKey {
    /// `FIXED` encoding: r ‖ s, as JWS wants (RFC 7518 3.4).
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// What one assertion states.
pub(crate) struct Assertion<'a> {
    pub(crate) identity: &'a Identity,
    pub(crate) upstream: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
}

impl AssertionSigner {
    pub(crate) fn new(settings: &AssertionSettings) -> anyhow::Result<AssertionSigner> {
        let key = SigningKey::parse(&settings.key)?;
        let (jwk, kid) = key.public_jwk()?;
        let mut keys = vec![jwk];
        for other in &settings.published {
            keys.push(SigningKey::parse(other)?.public_jwk()?.0);
        }
        let jwks = serde_json::json!({ "keys": keys }).to_string();
        let header = serde_json::json!({ "alg": key.alg().name(), "kid": kid, "typ": "JWT" }).to_string();
        let header = URL_SAFE_NO_PAD.encode(header);
        Ok(AssertionSigner {
            issuer: settings.issuer.clone(),
            header_name: http::HeaderName::from_bytes(settings.header.as_bytes())?,
            lifetime: settings.lifetime,
            jwks_path: settings.jwks_path.clone(),
            key,
            header,
            rng: SystemRandom::new(),
            jwks: bytes::Bytes::from(jwks),
        })
    }

    pub(crate) fn header_name(&self) -> &http::HeaderName {
        &self.header_name
    }

    pub(crate) fn jwks_path(&self) -> &str {
        &self.jwks_path
    }

    pub(crate) fn jwks(&self) -> &bytes::Bytes {
        &self.jwks
    }

    /// The signed assertion for one request.
    pub(crate) fn sign(&self, assertion: &Assertion<'_>) -> Option<String> {
        let now = unix_now();
        let mut jti = [0u8; 12];
        aws_lc_rs::rand::fill(&mut jti).ok()?;
        let scope: Vec<&str> = assertion.identity.scopes.iter().collect();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": assertion.identity.subject.as_deref(),
            "aud": assertion.upstream,
            "iat": now,
            "exp": now + self.lifetime.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "scope": scope.join(" "),
            "method": assertion.method,
            "path": assertion.path,
        });
        let mut jwt = self.header.clone();
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims).ok()?, &mut jwt);
        let signature = match &self.key {
            SigningKey::Es256(pair) => pair.sign(&self.rng, jwt.as_bytes()).ok()?,
            SigningKey::EdDsa(pair) => pair.sign(jwt.as_bytes()),
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jwt);
        Some(jwt)
    }
}

impl SigningKey {
    fn parse(key: &AssertionKey) -> anyhow::Result<SigningKey> {
        let unusable = || anyhow::anyhow!("upstream_assertion: {} is not a usable key", key.file.display());
        let pkcs8 = key.pkcs8.expose();
        Ok(match key.alg {
            AssertionAlg::Es256 => SigningKey::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|_| unusable())?,
            ),
            AssertionAlg::EdDsa => {
                SigningKey::EdDsa(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| unusable())?)
            }
        })
    }

    fn alg(&self) -> AssertionAlg {
        match self {
            SigningKey::Es256(_) => AssertionAlg::Es256,
            SigningKey::EdDsa(_) => AssertionAlg::EdDsa,
        }
    }

    /// The public JWK, and its RFC 7638 thumbprint (its `kid`).
    fn public_jwk(&self) -> anyhow::Result<(serde_json::Value, String)> {
        let (canonical, mut jwk) = match self {
            SigningKey::Es256(pair) => {
                let point = pair.public_key().as_ref();
                anyhow::ensure!(point.len() == 65, "upstream_assertion: unexpected P-256 point encoding");
                let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..]));
                // RFC 7638: the required members, in lexicographic order.
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                (canonical, serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}))
            }
            SigningKey::EdDsa(pair) => {
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                (canonical, serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".into(), kid.clone().into());
            members.insert("alg".into(), self.alg().name().into());
            members.insert("use".into(), "sig".into());
        }
        Ok((jwk, kid))
    }
}
