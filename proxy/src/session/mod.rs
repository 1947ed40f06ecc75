//! Browser sign-in: the OpenID Connect authorization code flow with PKCE,
//! and the session it leaves in an encrypted cookie.
//!
//! A browser navigation to a `browser_login` route without a session is
//! sent to the IdP (`flow::start`), with `state`, `nonce` and the PKCE
//! verifier sealed in a short-lived sign-in cookie named after the state.
//! The callback (`flow::finish`) checks the state, exchanges the code,
//! verifies the ID token (`auth::id_token`) and seals the session into the
//! session cookie (`seal`, `cookie`), or into Redis with only its id in the
//! cookie. On each request `Sessions::lookup` opens the session, ends it
//! after `max_age` or `idle_timeout`, refreshes the access token before it
//! expires (`refresh`, one call per session) and renews the cookie; the
//! access token is then authenticated like any bearer token, so `scopes:`
//! mean the same for browsers and API clients.
//!
//! Nothing here logs a code, token, cookie value or key.

mod cookie;
mod flow;
mod oidc;
mod refresh;
mod return_to;
mod seal;

use std::sync::Arc;

use config::{IdentitySource, SessionSettings, SessionStore};
use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::IssuerState;
use crate::idp::{unix_now, IdpClient};
use crate::metrics::Metrics;
use crate::store::RedisStore;
pub(crate) use cookie::strip as strip_cookies;
use oidc::{Endpoints, OidcClient, TokenError};
pub(crate) use refresh::Refreshes;
pub(crate) use return_to::{query_value, safe_return_path};
use seal::Sealer;

/// Refresh an access token this long before it expires.
const REFRESH_AHEAD: u64 = 30;
/// Renew the cookie (idle timeout) at most this often.
const RENEW_EVERY: u64 = 60;

/// A signed-in session, sealed in the cookie (or in Redis).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionData {
    /// Random; keys single-flight refreshes and the Redis entry.
    id: String,
    access_token: String,
    expires_at: u64,
    /// When the access token was obtained (its lifetime bounds how early
    /// it is refreshed).
    #[serde(default)]
    obtained: u64,
    #[serde(default)]
    refresh_token: Option<String>,
    /// For `id_token_hint` at logout.
    #[serde(default)]
    id_token: Option<String>,
    /// The ID token's verified claims (`identity_from: id_token`).
    #[serde(default)]
    claims: Option<Map<String, Value>>,
    signed_in: u64,
    seen: u64,
}

/// What the cookie holds with `store: redis`.
#[derive(Serialize, Deserialize)]
struct SessionRef {
    id: String,
}

/// A path the proxy answers itself when sessions are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnPath {
    Callback,
    SignIn,
    Logout,
}

/// Send the browser to `location`, setting `cookies`.
#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    pub(crate) location: String,
    pub(crate) cookies: Vec<String>,
}

/// Why a sign-in did not complete. Each has a fixed answer and metric
/// label; none echoes what the browser or the IdP sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignInError {
    #[error("the sign-in is not valid or has expired; start again")]
    State,
    #[error("the identity provider did not sign the user in")]
    Refused,
    #[error("the identity provider refused the authorization code")]
    Code,
    #[error("{0}")]
    IdToken(&'static str),
    #[error("the identity provider cannot be reached; try again")]
    Unavailable,
    #[error("the identity provider did not accept this proxy's client credentials")]
    Client,
    #[error("the return path is not a path on this site")]
    ReturnPath,
    #[error("the session could not be stored")]
    Internal,
}

impl SignInError {
    /// The `result` label of `portcullis_sign_ins_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            SignInError::State => "failed_state",
            SignInError::Refused => "failed_refused",
            SignInError::Code => "failed_code",
            SignInError::IdToken(_) => "failed_id_token",
            SignInError::Unavailable => "failed_unavailable",
            SignInError::Client => "failed_client",
            SignInError::ReturnPath => "failed_return_path",
            SignInError::Internal => "failed_internal",
        }
    }

    pub(crate) fn status(self) -> u16 {
        match self {
            SignInError::State | SignInError::Code | SignInError::ReturnPath => 400,
            SignInError::Refused | SignInError::IdToken(_) => 401,
            SignInError::Unavailable | SignInError::Client => 502,
            SignInError::Internal => 500,
        }
    }
}

/// The session a request carries.
pub(crate) enum Lookup {
    /// No session cookie.
    Absent,
    /// A cookie that does not (or no longer) stand for a session: expired,
    /// idle, tampered with, sealed with a removed key, logged out, refresh
    /// refused. `cookies` expire it.
    Ended {
        reason: &'static str,
        cookies: Vec<String>,
    },
    /// The session store (Redis) cannot be read now.
    Unavailable,
    Active(Active),
}

/// A session in force.
pub(crate) struct Active {
    pub(crate) credential: SessionCredential,
    /// `Set-Cookie` values that renew the session (idle timeout, refreshed
    /// tokens); empty when nothing changed.
    pub(crate) cookies: Vec<String>,
    /// Unix time of the sign-in (revoking a subject "before T" ends the
    /// sessions signed in before T, whatever their tokens' `iat`).
    pub(crate) signed_in: u64,
}

/// What the identity is built from.
pub(crate) enum SessionCredential {
    /// Authenticated like a bearer token.
    AccessToken(String),
    /// `identity_from: id_token`: claims verified at sign-in.
    Claims { claims: Map<String, Value>, valid_until: u64, session_id: String },
}

/// Browser sign-in under one configuration.
pub(crate) struct Sessions {
    settings: SessionSettings,
    sealer: Sealer,
    client: OidcClient,
    issuer: Arc<IssuerState>,
    /// With `store: redis`.
    redis: Option<Arc<RedisStore>>,
    refreshes: Arc<Refreshes>,
    metrics: Arc<Metrics>,
}

impl Sessions {
    pub(crate) fn new(
        settings: SessionSettings,
        issuer: Arc<IssuerState>,
        idp: Arc<IdpClient>,
        redis: Option<Arc<RedisStore>>,
        refreshes: Arc<Refreshes>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Sessions> {
        let sealer = Sealer::new(&settings.cookie.keys)
            .ok_or_else(|| anyhow::anyhow!("sessions: the cookie keys are not usable AES-256 keys"))?;
        let client = OidcClient::new(&settings, &issuer.config().issuer, idp)?;
        let redis =
            match settings.store {
                SessionStore::Cookie => None,
                SessionStore::Redis => Some(redis.ok_or_else(|| {
                    anyhow::anyhow!("sessions.store: redis needs the redis section configured at start")
                })?),
            };
        Ok(Sessions { settings, sealer, client, issuer, redis, refreshes, metrics })
    }

    pub(crate) fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Which of the proxy's own paths `path` is, if any.
    pub(crate) fn own_path(&self, path: &str) -> Option<OwnPath> {
        let s = &self.settings;
        [(&s.callback_path, OwnPath::Callback), (&s.sign_in_path, OwnPath::SignIn), (&s.logout_path, OwnPath::Logout)]
            .into_iter()
            .find_map(|(own, which)| (own == path).then_some(which))
    }

    /// Whether a cookie of this name belongs to the proxy (the session, its
    /// parts, sign-in cookies): never forwarded upstream.
    pub(crate) fn is_own_cookie(&self, name: &str) -> bool {
        name.strip_prefix(self.settings.cookie.name.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    }

    /// Whether the request carries any of the proxy's own cookies.
    pub(crate) fn carries_own_cookie(&self, request: &RequestHeader) -> bool {
        cookie::any(request, |name| self.is_own_cookie(name))
    }

    /// The IdP's endpoints: configured, else discovered.
    fn endpoints(&self) -> Option<Endpoints> {
        let overrides = &self.settings.endpoints;
        let discovered = self.issuer.keys.discovered();
        let pick =
            |own: &Option<String>, found: Option<&Option<String>>| own.clone().or_else(|| found.and_then(Clone::clone));
        Some(Endpoints {
            authorization: pick(&overrides.authorization, discovered.as_ref().map(|d| &d.authorization_endpoint))?,
            token: pick(&overrides.token, discovered.as_ref().map(|d| &d.token_endpoint))?,
            end_session: pick(&overrides.end_session, discovered.as_ref().map(|d| &d.end_session_endpoint)),
        })
    }

    /// The request's session: opened, checked against its limits,
    /// refreshed when its access token is about to expire, renewed.
    pub(crate) async fn lookup(&self, request: &RequestHeader) -> Lookup {
        let name = &self.settings.cookie.name;
        let Some((sealed, parts)) = cookie::find_chunked(request, name) else { return Lookup::Absent };
        let ended = |reason| Lookup::Ended { reason, cookies: cookie::expire_chunked(name, parts) };
        let mut data = match self.open(&sealed).await {
            Ok(data) => data,
            Err(Opened::Unavailable) => return Lookup::Unavailable,
            Err(Opened::Ended(reason)) => return ended(reason),
        };
        let now = unix_now();
        let cookie = &self.settings.cookie;
        if now >= data.signed_in.saturating_add(cookie.max_age.as_secs()) {
            return ended("the session has expired");
        }
        if now >= data.seen.saturating_add(cookie.idle_timeout.as_secs()) {
            return ended("the session was idle too long");
        }
        let mut changed = false;
        if self.settings.identity_from == IdentitySource::AccessToken {
            match (&data.refresh_token, refresh_due(&data, now)) {
                (Some(_), true) => match self.refresh(&mut data).await {
                    Ok(()) => changed = true,
                    Err(TokenError::Unavailable) if data.expires_at > now => {}
                    Err(TokenError::Unavailable) => return Lookup::Unavailable,
                    Err(_) => return ended("the session could not be refreshed"),
                },
                // Without a refresh token the session lasts as long as its
                // access token, to the second.
                (None, _) if data.expires_at <= now => return ended("the session's access token has expired"),
                _ => {}
            }
        }
        let mut cookies = Vec::new();
        if changed || now >= data.seen.saturating_add(RENEW_EVERY) {
            data.seen = now;
            match self.persist(&data, parts).await {
                Ok(renewed) => cookies = renewed,
                // Not renewed this time; the session itself is still good.
                Err(error) => tracing::debug!(%error, "could not renew a session"),
            }
        }
        let signed_in = data.signed_in;
        let credential = match self.settings.identity_from {
            IdentitySource::AccessToken => SessionCredential::AccessToken(data.access_token),
            IdentitySource::IdToken => SessionCredential::Claims {
                claims: data.claims.unwrap_or_default(),
                valid_until: data.signed_in.saturating_add(cookie.max_age.as_secs()),
                session_id: data.id,
            },
        };
        Lookup::Active(Active { credential, cookies, signed_in })
    }

    /// Whether the request carries a session cookie at all (opened or not).
    pub(crate) fn has_cookie(&self, request: &RequestHeader) -> bool {
        cookie::find(request, &self.settings.cookie.name).is_some()
    }

    /// `Set-Cookie` values that end the request's session cookie.
    pub(crate) fn end_cookies(&self, request: &RequestHeader) -> Vec<String> {
        let name = &self.settings.cookie.name;
        cookie::find_chunked(request, name).map_or_else(Vec::new, |(_, parts)| cookie::expire_chunked(name, parts))
    }

    /// A new access token for the session, one token-endpoint call per
    /// session however many requests wait for it.
    async fn refresh(&self, data: &mut SessionData) -> Result<(), TokenError> {
        let (Some(refresh_token), Some(endpoints)) = (data.refresh_token.clone(), self.endpoints()) else {
            return Err(TokenError::Refused(0));
        };
        // Counted where the IdP is called: once per flight, not per request.
        let call = || async {
            let answer = self.client.refresh(&endpoints.token, &refresh_token).await;
            let result = match &answer {
                Ok(_) => "ok",
                Err(TokenError::Unavailable) => "unavailable",
                Err(_) => "refused",
            };
            self.metrics.session_refreshes.with_label_values(&[result]).inc();
            answer
        };
        let tokens = self.refreshes.run(&data.id, call).await?;
        data.access_token = tokens.access_token;
        data.expires_at = tokens.expires_at;
        data.obtained = unix_now();
        if tokens.refresh_token.is_some() {
            data.refresh_token = tokens.refresh_token;
        }
        Ok(())
    }

    /// The session a sealed cookie value stands for.
    async fn open(&self, sealed: &str) -> Result<SessionData, Opened> {
        let name = self.settings.cookie.name.as_bytes();
        let plain = self.sealer.open(name, sealed).map_err(|_| Opened::Ended("the session cookie is not valid"))?;
        let Some(redis) = &self.redis else {
            return serde_json::from_slice(&plain).map_err(|_| Opened::Ended("the session cookie is not valid"));
        };
        let reference: SessionRef =
            serde_json::from_slice(&plain).map_err(|_| Opened::Ended("the session cookie is not valid"))?;
        let stored = match redis.get_session(&reference.id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Err(Opened::Ended("the session has ended")),
            Err(_) => return Err(Opened::Unavailable),
        };
        let plain = self
            .sealer
            .open(redis_purpose(&reference.id).as_bytes(), &stored)
            .map_err(|_| Opened::Ended("the stored session is not valid"))?;
        serde_json::from_slice(&plain).map_err(|_| Opened::Ended("the stored session is not valid"))
    }

    /// Store the session; the `Set-Cookie` values that carry it, replacing
    /// a cookie of `previous_parts` parts.
    async fn persist(&self, data: &SessionData, previous_parts: usize) -> Result<Vec<String>, PersistError> {
        let cookie = &self.settings.cookie;
        let left = data.signed_in.saturating_add(cookie.max_age.as_secs()).saturating_sub(unix_now());
        let json = serde_json::to_vec(data).map_err(|_| PersistError::Seal)?;
        let value = match &self.redis {
            None => json,
            Some(redis) => {
                let sealed = self.sealer.seal(redis_purpose(&data.id).as_bytes(), &json).ok_or(PersistError::Seal)?;
                let ttl = cookie.idle_timeout.min(std::time::Duration::from_secs(left.max(1)));
                redis.put_session(&data.id, sealed, ttl).await.map_err(|_| PersistError::Store)?;
                serde_json::to_vec(&SessionRef { id: data.id.clone() }).map_err(|_| PersistError::Seal)?
            }
        };
        let sealed = self.sealer.seal(cookie.name.as_bytes(), &value).ok_or(PersistError::Seal)?;
        cookie::set_chunked(&cookie.name, &sealed, left, previous_parts).ok_or(PersistError::TooLarge)
    }
}

enum Opened {
    Ended(&'static str),
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
enum PersistError {
    #[error("sealing failed")]
    Seal,
    #[error("the session store is unavailable")]
    Store,
    #[error("the session is too large for cookies (use sessions.store: redis)")]
    TooLarge,
}

/// Whether the access token should be refreshed now: `REFRESH_AHEAD`
/// before it expires, or half-way through a shorter life.
fn refresh_due(data: &SessionData, now: u64) -> bool {
    let lifetime = data.expires_at.saturating_sub(data.obtained);
    let ahead = REFRESH_AHEAD.min(lifetime / 2);
    data.expires_at <= now.saturating_add(ahead)
}

/// Additional data of a session stored in Redis: bound to its id, so one
/// stored session cannot be read as another.
fn redis_purpose(id: &str) -> String {
    format!("session:{id}")
}
