//! Signing keys and tokens for tests, honest and forged.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A key a test signs with, and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub jwk: Value,
    /// For RSA keys: the public key's DER (SubjectPublicKeyInfo), for the
    /// HS256-with-the-public-key forgery.
    pub public_der: Option<Vec<u8>>,
}

/// RSA key generation is slow; each kid's key is made once per process.
fn rsa_pkcs8(kid: &str) -> Vec<u8> {
    static KEYS: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    let mut keys = keys.lock().expect("key cache");
    keys.entry(kid.to_owned())
        .or_insert_with(|| {
            let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().expect("RSA PKCS#8");
            der.as_ref().to_vec()
        })
        .clone()
}

impl TestKey {
    fn with_jwk(kid: &str, alg: Algorithm, encoding: EncodingKey, public_der: Option<Vec<u8>>) -> TestKey {
        let jwk = Jwk::from_encoding_key(&encoding, alg).expect("JWK from key");
        let mut jwk = serde_json::to_value(jwk).expect("JWK as JSON");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey { kid: kid.to_owned(), alg, encoding, jwk, public_der }
    }

    pub fn rsa(kid: &str) -> TestKey {
        TestKey::rsa_with(kid, Algorithm::RS256)
    }

    /// An RSA key used with `alg` (RS* or PS*).
    pub fn rsa_with(kid: &str, alg: Algorithm) -> TestKey {
        let pkcs8 = rsa_pkcs8(kid);
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).expect("RSA key");
        use aws_lc_rs::signature::KeyPair as _;
        let public = pair.public_key();
        let spki: aws_lc_rs::encoding::PublicKeyX509Der<'_> = public.as_der().expect("public key DER");
        // jsonwebtoken signs RSA with PKCS#1; its PEM reader unwraps PKCS#8.
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", pem_body(&pkcs8));
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM");
        TestKey::with_jwk(kid, alg, encoding, Some(spki.as_ref().to_vec()))
    }

    pub fn es256(kid: &str) -> TestKey {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).expect("EC key");
        TestKey::with_jwk(kid, Algorithm::ES256, EncodingKey::from_ec_der(pkcs8.as_ref()), None)
    }

    pub fn eddsa(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key pair");
        use aws_lc_rs::signature::KeyPair as _;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "kid": kid, "use": "sig"});
        TestKey {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk,
            public_der: None,
        }
    }

    /// A shared secret (no JWK is published for these).
    pub fn hmac(secret: &[u8]) -> TestKey {
        TestKey {
            kid: String::new(),
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            jwk: Value::Null,
            public_der: None,
        }
    }

    /// The same key material under another `kid` (its JWK too).
    pub fn with_kid(&self, kid: &str) -> TestKey {
        let mut key = self.clone();
        key.kid = kid.to_owned();
        if key.jwk.is_object() {
            key.jwk["kid"] = json!(kid);
        }
        key
    }

    /// Sign `claims` with this key, `kid` in the header unless empty.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        if !self.kid.is_empty() {
            header.kid = Some(self.kid.clone());
        }
        self.sign_with_header(&header, claims)
    }

    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("signing")
    }
}

/// Base64 in 64-column lines, as PEM wants.
pub fn pem_body(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\n")
}

/// A JWKS document with these keys.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Standard claims: issuer, audience, subject, scopes, valid for an hour.
pub fn claims(iss: &str, aud: &str, sub: &str, scope: &str) -> Value {
    let now = crate::now();
    json!({ "iss": iss, "aud": aud, "sub": sub, "scope": scope, "iat": now, "nbf": now - 1, "exp": now + 3600 })
}

/// A compact JWS from arbitrary header and payload JSON and signature bytes:
/// for forgeries the signing library would refuse to produce.
pub fn forge(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// HMAC-SHA256 over `header.payload` with `secret`: the classic
/// "HS256 signed with the RSA public key" forgery.
pub fn forge_hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}
