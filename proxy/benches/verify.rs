//! Token verification cost per algorithm, and the verified-token cache hit.
//!
//! Each iteration is a full `Authenticator::authenticate_request`: the
//! bearer token found in the `Authorization` header, cache lookup (disabled
//! for the "verify" group), unverified peek, key selection, signature and
//! claim checks, scope extraction and identity headers; a forged token
//! replayed is answered from the recently refused set. `rsa2048_verify`
//! isolates what parsing a key once saves on the RSA operation itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use config::{Algorithm, ClaimPath, HeaderValueSource, IdentityHeader, Issuer, KeySource, Secret, TokenSettings};
use credentials::keys::{to_jwt_algorithm, KeyLookup, KeySet};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{EncodingKey, Header};
use pingora::http::RequestHeader;
use portcullis::{AuthSettings, Authenticator, IdpClient, IssuerState, Metrics, TokenCache};
use serde_json::json;

const ISSUER: &str = "https://bench.example.com";
const HMAC_SECRET: &[u8] = b"a-benchmark-secret-of-32-bytes!!";

/// A signing key and the JWKS that verifies it.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    jwks: Option<String>,
}

fn rsa(alg: Algorithm) -> Signer {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
    let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().expect("PKCS#8");
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(pkcs8.as_ref()));
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM");
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, to_jwt_algorithm(alg)).expect("JWK");
    let mut jwk = serde_json::to_value(jwk).expect("JWK JSON");
    jwk["kid"] = json!("k1");
    Signer { alg, key, jwks: Some(json!({ "keys": [jwk] }).to_string()) }
}

fn es256() -> Signer {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).expect("EC key");
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).expect("JWK");
    let mut jwk = serde_json::to_value(jwk).expect("JWK JSON");
    jwk["kid"] = json!("k1");
    Signer { alg: Algorithm::ES256, key, jwks: Some(json!({ "keys": [jwk] }).to_string()) }
}

fn eddsa() -> Signer {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 pair");
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwks = json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1" }] }).to_string();
    Signer { alg: Algorithm::EdDSA, key: EncodingKey::from_ed_der(pkcs8.as_ref()), jwks: Some(jwks) }
}

fn hs256() -> Signer {
    Signer { alg: Algorithm::HS256, key: EncodingKey::from_secret(HMAC_SECRET), jwks: None }
}

fn issuer(signer: &Signer) -> Issuer {
    let keys = match signer.jwks {
        Some(_) => KeySource::Jwks { uri: format!("{ISSUER}/jwks") },
        None => KeySource::Secret { env: "BENCH".into(), secret: Some(Secret::new(HMAC_SECRET.to_vec())) },
    };
    Issuer {
        name: "bench".into(),
        issuer: ISSUER.into(),
        keys,
        audiences: vec!["bench-api".into()],
        any_audience: false,
        algorithms: vec![signer.alg],
        leeway: Duration::from_secs(30),
        scope_claims: vec![ClaimPath(vec!["scope".into()])],
        token_types: Vec::new(),
        jwks_refresh: Duration::from_secs(600),
        min_refresh_interval: Duration::from_secs(30),
        http_timeout: Duration::from_secs(5),
        introspection: None,
        audience_claims: vec![ClaimPath(vec!["aud".into()])],
        required_claims: Vec::new(),
        require_bound_tokens: false,
    }
}

/// A realistic access token (about 850 bytes with RS256).
fn token(signer: &Signer, n: u64) -> String {
    let now = portcullis::unix_now();
    let claims = json!({
        "iss": ISSUER, "aud": "bench-api", "sub": format!("user-{n}"),
        "scope": "openid profile email tasks:read tasks:write",
        "iat": now, "nbf": now, "exp": now + 3600,
        "email": format!("user-{n}@example.com"), "name": "Benchmark User",
        "jti": format!("{n:032x}"),
    });
    let mut header = Header::new(to_jwt_algorithm(signer.alg));
    if signer.jwks.is_some() {
        header.kid = Some("k1".into());
    }
    jsonwebtoken::encode(&header, &claims, &signer.key).expect("sign")
}

fn authenticator(runtime: &tokio::runtime::Runtime, signer: &Signer, cache: usize) -> Authenticator {
    let client = Arc::new(IdpClient::new(runtime.handle().clone()).expect("client"));
    let metrics = Arc::new(Metrics::new());
    let issuer = issuer(signer);
    let keys = match &signer.jwks {
        Some(jwks) => KeySet::from_jwks(jwks.as_bytes(), &[signer.alg]).expect("JWKS").keys,
        None => KeySet::from_secret(HMAC_SECRET, &[signer.alg]),
    };
    let state = Arc::new(IssuerState::with_keys(issuer, keys, Arc::clone(&client), Arc::clone(&metrics)));
    let headers = vec![
        IdentityHeader {
            name: "x-auth-subject".into(),
            source: HeaderValueSource::Claim(ClaimPath(vec!["sub".into()])),
        },
        IdentityHeader { name: "x-auth-scopes".into(), source: HeaderValueSource::Scopes },
    ];
    let settings = AuthSettings {
        issuers: vec![state],
        identity_headers: headers,
        condition_claims: Vec::new(),
        tokens: &TokenSettings { max_bytes: 8192, query_parameter: None, failed_auth_budget: None },
        cache: Arc::new(TokenCache::new(cache)),
        cache_ttl: Duration::from_secs(300),
        revocations: portcullis::Revocations::new(),
    };
    Authenticator::new(settings, client, metrics)
}

/// A request carrying `token` as its bearer credential.
fn request(token: &str) -> RequestHeader {
    let mut request = RequestHeader::build("GET", b"/", None).expect("request");
    request.insert_header("authorization", format!("Bearer {token}")).expect("header");
    request
}

/// Authenticated, as the proxy would on a request.
async fn verifies(auth: &Authenticator, request: &RequestHeader) -> bool {
    matches!(auth.authenticate_request(request).await, Some(Ok(_)))
}

/// The time of `iterations` calls of `call`, each awaited in turn on
/// `runtime` (what criterion's `iter_custom` wants).
fn awaited<F, Fut>(runtime: &tokio::runtime::Runtime, iterations: u64, mut call: F) -> Duration
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    runtime.block_on(async {
        let start = Instant::now();
        for i in 0..iterations {
            std::hint::black_box(call(i).await);
        }
        start.elapsed()
    })
}

/// Refused, as the proxy would refuse it.
async fn refuses(auth: &Authenticator, request: &RequestHeader) -> bool {
    matches!(auth.authenticate_request(request).await, Some(Err(_)))
}

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("verify");
    let signers = [
        ("RS256", rsa(Algorithm::RS256)),
        ("PS256", rsa(Algorithm::PS256)),
        ("ES256", es256()),
        ("EdDSA", eddsa()),
        ("HS256", hs256()),
    ];
    for (name, signer) in &signers {
        let auth = authenticator(&runtime, signer, 0);
        let request = request(&token(signer, 1));
        assert!(runtime.block_on(verifies(&auth, &request)), "{name} token verifies");
        let (auth, request) = (&auth, &request);
        group.bench_function(*name, |b| {
            b.iter_custom(|n| awaited(&runtime, n, move |_| verifies(auth, std::hint::black_box(request))))
        });
    }
    group.finish();

    let signer = &signers[0].1;
    let auth = authenticator(&runtime, signer, 100_000);
    let tokens: Vec<String> = (0..1000).map(|n| token(signer, n)).collect();
    let requests: Vec<RequestHeader> = tokens.iter().map(|token| request(token)).collect();
    for request in &requests {
        assert!(runtime.block_on(verifies(&auth, request)));
    }
    let (hits, requests) = (&auth, &requests);
    c.bench_function("cache_hit/RS256_of_1000", |b| {
        b.iter_custom(|n| {
            awaited(&runtime, n, move |i| verifies(hits, std::hint::black_box(&requests[(i % 1000) as usize])))
        })
    });
    println!("token size (RS256): {} bytes", tokens[0].len());

    // One forged token replayed (signed by another key under the same kid):
    // verified and refused once, then answered from the set of recently
    // refused digests.
    let forger = rsa(Algorithm::RS256);
    let forged = request(&token(&forger, 1));
    assert!(runtime.block_on(refuses(&auth, &forged)), "a forged token is refused");
    let forged = &forged;
    c.bench_function("refused_replay/RS256_forged", |b| {
        b.iter_custom(|n| awaited(&runtime, n, move |_| refuses(hits, std::hint::black_box(forged))))
    });
}

/// The RSA-2048 public operation alone, with the key rebuilt from `n` and
/// `e` for each signature (what jsonwebtoken did per token) and with the
/// key parsed once when the JWKS is loaded (what portcullis keeps): the
/// difference is the per-verification key set-up, Montgomery context
/// included.
fn rsa_key_setup(c: &mut Criterion) {
    use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
    let signer = rsa(Algorithm::RS256);
    let jwks = signer.jwks.as_deref().expect("an RSA signer has a JWKS");
    let document: serde_json::Value = serde_json::from_str(jwks).expect("JWKS JSON");
    let part = |name: &str| URL_SAFE_NO_PAD.decode(document["keys"][0][name].as_str().expect(name)).expect(name);
    let components = RsaPublicKeyComponents { n: part("n"), e: part("e") };
    let keys = KeySet::from_jwks(jwks.as_bytes(), &[Algorithm::RS256]).expect("JWKS").keys;
    let KeyLookup::Found(key) = keys.lookup(Some("k1"), Algorithm::RS256) else { panic!("the key is in its JWKS") };
    let parsed = key.for_alg(Algorithm::RS256).expect("prepared for RS256");
    let token = token(&signer, 1);
    let (message, signature) = token.rsplit_once('.').expect("a JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url signature");
    let message = message.as_bytes();
    assert!(components.verify(&RSA_PKCS1_2048_8192_SHA256, message, &signature).is_ok());
    assert!(parsed.verifies(message, &signature));
    let mut group = c.benchmark_group("rsa2048_verify");
    group.bench_function("key_from_components_each_time", |b| {
        b.iter(|| components.verify(&RSA_PKCS1_2048_8192_SHA256, std::hint::black_box(message), &signature))
    });
    group.bench_function("key_parsed_once", |b| b.iter(|| parsed.verifies(std::hint::black_box(message), &signature)));
    group.finish();
}

criterion_group!(benches, verification, rsa_key_setup);
criterion_main!(benches);
