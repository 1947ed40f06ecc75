//! Bearer JWTs: a JWS in compact form, verified against the pinned
//! algorithms and keys of the issuer its `iss` names.

use std::collections::HashMap;
use std::sync::Arc;

use config::{Algorithm, Issuer, KeySource};
use credentials::claims::{self, Audience};
use credentials::jws::{self, JwsError};
use credentials::keys::{KeyLookup, KeySet};
use credentials::peek;
use pingora::http::RequestHeader;
use policy::IssuerId;
use serde_json::{Map, Value};

use super::{BearerPlaces, CredentialSource, PresentationError, Verifier};
use crate::auth::cache::{self, TokenDigest};
use crate::auth::identity::Verified;
use crate::auth::issuer::IssuerState;
use crate::auth::{AuthError, Identity};
use crate::idp::unix_now;
use crate::labels::AuthPath;

/// Refusals that may not hold a little later (the refused-token set skips
/// them).
pub(crate) const NOT_YET_VALID: &str = "the token is not valid yet";
pub(crate) const UNKNOWN_KEY: &str = "the token is signed with an unknown key";
pub(crate) const NO_KID_SEVERAL_KEYS: &str = "the token has no key id and the issuer has several keys";
pub(crate) const NO_KEY_FOR_ALG: &str = "no key of the issuer can verify this algorithm";
/// All of them: a key rotation or the clock can change these answers.
pub(crate) const PASSING: [&str; 4] = [NOT_YET_VALID, UNKNOWN_KEY, NO_KID_SEVERAL_KEYS, NO_KEY_FOR_ALG];

pub(crate) struct BearerJwt {
    places: BearerPlaces,
    by_iss: HashMap<String, IssuerId>,
}

impl BearerJwt {
    pub(super) fn new(places: BearerPlaces, issuers: &[Arc<IssuerState>]) -> BearerJwt {
        let by_iss =
            issuers.iter().enumerate().map(|(i, state)| (state.config().issuer.clone(), IssuerId(i))).collect();
        BearerJwt { places, by_iss }
    }
}

impl CredentialSource for BearerJwt {
    /// A bearer token with the three parts of a compact JWS. The shape is
    /// all that is looked at here: a cached token is never parsed.
    fn find<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, PresentationError> {
        Ok(self.places.token(request)?.filter(|token| peek::split(token).is_ok()))
    }

    async fn authenticate(
        &self,
        verifier: &Verifier,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Identity, AuthError> {
        let peeked = peek::peek(token).map_err(|_| AuthError::InvalidToken("the token is malformed"))?;
        self.verify(verifier, peeked, digest).await
    }

    fn path(&self) -> AuthPath {
        AuthPath::Verified
    }
}

impl BearerJwt {
    async fn verify(
        &self,
        verifier: &Verifier,
        peeked: peek::Peeked<'_>,
        digest: &TokenDigest,
    ) -> Result<Identity, AuthError> {
        let invalid = AuthError::InvalidToken;
        let issuer_id = peeked
            .issuer
            .as_deref()
            .and_then(|iss| self.by_iss.get(iss))
            .copied()
            .ok_or(invalid("the token's issuer is not accepted"))?;
        let state = verifier.issuers.get(issuer_id.0).ok_or(invalid("the token's issuer is not accepted"))?;
        let alg = check_header(state, &peeked.header)?;
        let kid = peeked.header.kid.as_deref();
        let keys = current_keys(state, kid, alg).await?;
        let key = match keys.lookup(kid, alg) {
            KeyLookup::Found(key) => key,
            KeyLookup::UnknownKid => return Err(invalid(UNKNOWN_KEY)),
            KeyLookup::Ambiguous => return Err(invalid(NO_KID_SEVERAL_KEYS)),
            KeyLookup::Incompatible => return Err(invalid(NO_KEY_FOR_ALG)),
        };
        let signature_key = key.for_alg(alg).ok_or(invalid(NO_KEY_FOR_ALG))?;
        let issuer = state.config();
        let now = unix_now();
        let verified =
            jws::verify(&peeked, signature_key, &state.claim_rules(), now).map_err(|e| invalid(describe(e)))?;
        let key_id = (!matches!(issuer.keys, KeySource::Secret { .. })).then_some(key.id);
        let claims = verified.claims;
        check_claims(issuer, &claims)?;
        let trusted_for = cache::lifetime(verifier.cache_ttl, digest);
        let valid_until = verified.expires_at.saturating_add(issuer.leeway.as_secs()).min(now + trusted_for);
        let verified = Verified { issuer: issuer_id, key_id, claims: &claims, valid_until };
        Ok(verifier.identities.make(state, verified))
    }
}

/// The header rules before any key is looked at. `alg` is compared
/// exactly, against this issuer's pinned list only: `none`, `None`,
/// `HS256` on an RSA issuer all stop here.
fn check_header(state: &IssuerState, header: &peek::JoseHeader) -> Result<Algorithm, AuthError> {
    let invalid = AuthError::InvalidToken;
    let issuer = state.config();
    let alg = Algorithm::from_name(&header.alg)
        .filter(|a| issuer.algorithms.contains(a))
        .ok_or(invalid("the token's algorithm is not allowed"))?;
    if header.crit.is_some() {
        return Err(invalid("the token has critical header parameters this proxy does not understand"));
    }
    if !issuer.token_types.is_empty() {
        let typ = header.typ.as_deref().map(|t| t.to_ascii_lowercase());
        let typ = typ.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t));
        if !typ.is_some_and(|t| issuer.token_types.iter().any(|allowed| allowed == t)) {
            return Err(invalid("the token type is not accepted"));
        }
    }
    Ok(alg)
}

/// The claim rules after the signature and the registered claims: the
/// kind of token (`required_claims`), then the audience when it is read
/// from claims other than `aud` (`jws::check_claims` checks `aud` itself).
fn check_claims(issuer: &Issuer, claims: &Map<String, Value>) -> Result<(), AuthError> {
    let invalid = AuthError::InvalidToken;
    if !claims::has_required(claims, &issuer.required_claims) {
        return Err(invalid("the token lacks a claim value this issuer requires (not an access token for it?)"));
    }
    if issuer.any_audience || issuer.audience_is_aud() {
        return Ok(());
    }
    match claims::audience(claims, &issuer.audience_claims, &issuer.audiences) {
        Audience::Accepted => Ok(()),
        Audience::Other => Err(invalid("the token is not for this audience")),
        Audience::Missing => Err(invalid("the token has no audience")),
    }
}

/// The issuer's keys, refreshed once (single-flight, rate-limited) when
/// they do not know `kid`.
pub(crate) async fn current_keys(
    state: &IssuerState,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Arc<KeySet>, AuthError> {
    if state.keys.keys().is_none() {
        state.keys.wait_for_first_keys().await;
    }
    let Some(keys) = state.keys.keys() else {
        return Err(AuthError::IssuerUnavailable { retry_after: state.retry_after() });
    };
    if matches!(keys.lookup(kid, alg), KeyLookup::UnknownKid) {
        state.keys.refresh_for_unknown_key().await;
        if let Some(fresh) = state.keys.keys() {
            return Ok(fresh);
        }
    }
    Ok(keys)
}

/// A fixed description per failure: informative for the client's developer,
/// never containing token content.
pub(crate) fn describe(error: JwsError) -> &'static str {
    match error {
        JwsError::Malformed => "the token is malformed",
        JwsError::BadSignature => "the token's signature is invalid",
        JwsError::MissingClaim("exp") => "the token has no expiry (exp)",
        JwsError::MissingClaim("aud") => "the token has no audience (aud)",
        JwsError::MissingClaim("iss") => "the token has no issuer (iss)",
        JwsError::MissingClaim(_) => "the token lacks a required claim",
        JwsError::MalformedTime => "a time claim of the token is malformed",
        JwsError::Expired => "the token has expired",
        JwsError::NotYetValid => NOT_YET_VALID,
        JwsError::WrongIssuer => "the token's issuer is not accepted",
        JwsError::WrongAudience => "the token is not for this audience",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use credentials::keys::to_jwt_algorithm;
    use jsonwebtoken::{EncodingKey, Header};

    use crate::auth::cache::{self, TokenCache};
    use crate::auth::{AuthSettings, Authenticator};
    use crate::idp::{unix_now, IdpClient};
    use crate::metrics::Metrics;
    use crate::test_support::request_with;
    use crate::{IssuerState, Revocations};

    const SECRET: &[u8] = b"a test secret of thirty-two bytes!";
    const ISSUER: &str = "https://idp.test.example";
    const TTL: Duration = Duration::from_secs(300);

    /// An authenticator for one HS256 issuer, configured as an operator
    /// would (`token_cache.ttl` 5m, the default).
    fn authenticator() -> Authenticator {
        let yaml = format!(
            "listen: 127.0.0.1:0\nupstreams:\n  api:\n    url: http://127.0.0.1:1\nissuers:\n  - name: test\n    \
             issuer: {ISSUER}\n    audiences: [api]\n    algorithms: [HS256]\n    secret_env: TEST_SECRET\n\
             routes:\n  - path: /**\n    public: true\n"
        );
        let secret = String::from_utf8_lossy(SECRET).into_owned();
        let env = move |name: &str| (name == "TEST_SECRET").then(|| secret.clone());
        let config = config::load_str(std::path::Path::new("<test>"), &yaml, config::Mode::Serve, &env)
            .expect("a valid configuration")
            .config;
        assert_eq!(config.token_cache.ttl, TTL);
        let client = Arc::new(IdpClient::new(tokio::runtime::Handle::current()).expect("client"));
        let metrics = Arc::new(Metrics::new());
        let issuer = config.issuers.into_iter().next().expect("one issuer");
        let keys = KeySet::from_secret(SECRET, &[Algorithm::HS256]);
        let state = Arc::new(IssuerState::with_keys(issuer, keys, Arc::clone(&client), Arc::clone(&metrics)));
        let settings = AuthSettings {
            issuers: vec![state],
            identity_headers: Vec::new(),
            condition_claims: Vec::new(),
            tokens: &config.tokens,
            cache: Arc::new(TokenCache::new(1_000)),
            cache_ttl: config.token_cache.ttl,
            revocations: Revocations::new(),
        };
        Authenticator::new(settings, client, metrics)
    }

    fn token(n: u64, expires_in: u64) -> String {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": "api", "sub": format!("user-{n}"), "iat": now, "exp": now + expires_in,
        });
        let header = Header::new(to_jwt_algorithm(Algorithm::HS256));
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).expect("sign")
    }

    /// Tokens verified in the same second are trusted for different
    /// lengths of time within the ttl, each for its own digest's share; a
    /// token that expires sooner is trusted until it expires.
    #[tokio::test]
    async fn identities_verified_together_are_trusted_for_spread_lifetimes() {
        let auth = authenticator();
        let mut lifetimes = std::collections::BTreeSet::new();
        for n in 0..200 {
            let token = token(n, 3_600);
            let before = unix_now();
            let request = request_with("GET", &[("authorization", &format!("Bearer {token}"))]);
            let identity = auth.authenticate_request(&request).await.expect("a credential").expect("valid");
            let after = unix_now();
            let trusted_for = cache::lifetime(TTL, &cache::digest(&token));
            assert!(
                (before + trusted_for..=after + trusted_for).contains(&identity.valid_until),
                "token {n}: valid until {}, expected {trusted_for} s from {before}",
                identity.valid_until
            );
            lifetimes.insert(trusted_for);
        }
        assert!(lifetimes.len() >= 50, "{} distinct lifetimes among 200 tokens", lifetimes.len());
        assert!(lifetimes.iter().all(|s| (225..=300).contains(s)), "{lifetimes:?}");

        let short = token(1_000, 60);
        let request = request_with("GET", &[("authorization", &format!("Bearer {short}"))]);
        let identity = auth.authenticate_request(&request).await.expect("a credential").expect("valid");
        let expected = unix_now() + 60 + 30;
        assert!(identity.valid_until + 1 >= expected && identity.valid_until <= expected, "{}", identity.valid_until);
    }
}
