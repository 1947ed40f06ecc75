//! The steps of a sign-in and a logout: send the browser to the IdP, take
//! it back at the callback, end the session.

use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};

use super::cookie;
use super::oidc::TokenError;
use super::return_to::{query_value, safe_return_path};
use super::{Redirect, SessionData, Sessions, SignInError};
use crate::auth::id_token::{self, Expected};
use crate::idp::unix_now;
use config::IdentitySource;

/// How long a browser may take at the IdP.
const SIGN_IN_SECONDS: u64 = 600;
/// Characters of the state in the sign-in cookie's name: one cookie per
/// sign-in, so several tabs signing in at once do not undo each other.
const STATE_IN_NAME: usize = 12;
/// Sign-ins a browser may have pending at once; starting one more ends
/// them all (prefetches or a tab storm must not fill the cookie header).
const MAX_PENDING: usize = 4;

/// Sealed in the sign-in cookie while the browser is at the IdP.
#[derive(Serialize, Deserialize)]
struct PendingSignIn {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    started: u64,
}

impl Sessions {
    /// Send the browser to sign in, and back to `return_to` (a path on this
    /// origin; anything else is refused).
    pub(crate) fn start(&self, request: &RequestHeader, return_to: &str) -> Result<Redirect, SignInError> {
        let result = self.start_sign_in(return_to).map(|mut redirect| {
            let prefix = self.pending_prefix();
            let pending: Vec<&str> = cookie::names_with_prefix(request, &prefix).collect();
            if pending.len() >= MAX_PENDING {
                redirect.cookies.extend(pending.into_iter().map(cookie::expire));
            }
            redirect
        });
        let label = match &result {
            Ok(_) => "started",
            Err(error) => error.label(),
        };
        self.metrics.sign_ins.with_label_values(&[label]).inc();
        result
    }

    fn start_sign_in(&self, return_to: &str) -> Result<Redirect, SignInError> {
        let return_to = safe_return_path(return_to, &self.settings.public_origin).ok_or(SignInError::ReturnPath)?;
        let endpoints = self.endpoints().ok_or(SignInError::Unavailable)?;
        let token = |bytes| self.sealer.random_token(bytes).ok_or(SignInError::Internal);
        let pending = PendingSignIn {
            state: token(32)?,
            nonce: token(32)?,
            verifier: token(48)?,
            return_to: return_to.to_owned(),
            started: unix_now(),
        };
        let name = self.pending_cookie(&pending.state);
        let json = serde_json::to_vec(&pending).map_err(|_| SignInError::Internal)?;
        let sealed = self.sealer.seal(name.as_bytes(), &json).ok_or(SignInError::Internal)?;
        let location = self.client.authorization_url(
            &endpoints.authorization,
            &self.settings,
            &pending.state,
            &pending.nonce,
            &pending.verifier,
        );
        Ok(Redirect { location, cookies: vec![cookie::set(&name, &sealed, SIGN_IN_SECONDS)] })
    }

    /// `sign_in_path?rd=/path`: start a sign-in on purpose (a "Sign in"
    /// link), back to `rd` (default `/`).
    pub(crate) fn start_from_query(&self, request: &RequestHeader) -> Result<Redirect, SignInError> {
        let return_to = request.uri.query().and_then(|q| query_value(q, "rd"));
        match return_to {
            Some(path) => self.start(request, &path),
            None => self.start(request, "/"),
        }
    }

    /// `Set-Cookie` values that end the sign-in a callback names (after
    /// it failed: the sign-in cannot be completed twice anyway).
    pub(crate) fn forget_sign_in(&self, request: &RequestHeader) -> Vec<String> {
        let state = request.uri.query().and_then(|q| query_value(q, "state"));
        match state {
            Some(state) if cookie::find(request, &self.pending_cookie(&state)).is_some() => {
                vec![cookie::expire(&self.pending_cookie(&state))]
            }
            _ => Vec::new(),
        }
    }

    /// The callback: check the state against the sign-in cookie, exchange
    /// the code, verify the ID token, and store the session.
    pub(crate) async fn finish(&self, request: &RequestHeader) -> Result<Redirect, SignInError> {
        let result = self.finish_sign_in(request).await;
        let label = match &result {
            Ok(_) => "completed",
            Err(error) => error.label(),
        };
        self.metrics.sign_ins.with_label_values(&[label]).inc();
        result
    }

    async fn finish_sign_in(&self, request: &RequestHeader) -> Result<Redirect, SignInError> {
        let query = request.uri.query().unwrap_or("");
        let state = query_value(query, "state").ok_or(SignInError::State)?;
        if state.len() < STATE_IN_NAME || !state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(SignInError::State);
        }
        let name = self.pending_cookie(&state);
        let sealed = cookie::find(request, &name).ok_or(SignInError::State)?;
        let plain = self.sealer.open(name.as_bytes(), sealed).map_err(|_| SignInError::State)?;
        let pending: PendingSignIn = serde_json::from_slice(&plain).map_err(|_| SignInError::State)?;
        // The cookie's name holds only part of the state: compare it all.
        let same_state = aws_lc_rs::constant_time::verify_slices_are_equal(pending.state.as_bytes(), state.as_bytes());
        if same_state.is_err() || unix_now() > pending.started.saturating_add(SIGN_IN_SECONDS) {
            return Err(SignInError::State);
        }
        if query_value(query, "error").is_some() {
            return Err(SignInError::Refused);
        }
        let code = query_value(query, "code").filter(|c| !c.is_empty()).ok_or(SignInError::Code)?;
        let endpoints = self.endpoints().ok_or(SignInError::Unavailable)?;
        let redirect_uri = self.settings.redirect_uri();
        let tokens =
            self.client.exchange_code(&endpoints.token, &code, &redirect_uri, &pending.verifier).await.map_err(
                |error| match error {
                    TokenError::Refused(_) | TokenError::Invalid => SignInError::Code,
                    TokenError::Unavailable => SignInError::Unavailable,
                    TokenError::Signing => SignInError::Internal,
                },
            )?;
        let id_token =
            tokens.id_token.as_deref().ok_or(SignInError::IdToken("the identity provider sent no ID token"))?;
        let expected = Expected {
            client_id: &self.settings.client_id,
            nonce: &pending.nonce,
            access_token: Some(&tokens.access_token),
        };
        let claims = id_token::verify(&self.issuer, id_token, &expected).await.map_err(|error| match error {
            crate::auth::AuthError::InvalidToken(why) => SignInError::IdToken(why),
            _ => SignInError::Unavailable,
        })?;
        let now = unix_now();
        let data = SessionData {
            id: self.sealer.random_token(16).ok_or(SignInError::Internal)?,
            access_token: tokens.access_token,
            expires_at: tokens.expires_at,
            obtained: now,
            refresh_token: tokens.refresh_token,
            // Only needed for logout at the IdP.
            id_token: endpoints.end_session.is_some().then(|| id_token.to_owned()),
            claims: (self.settings.identity_from == IdentitySource::IdToken).then_some(claims),
            signed_in: now,
            seen: now,
        };
        let previous = cookie::find_chunked(request, &self.settings.cookie.name).map_or(0, |(_, parts)| parts);
        let mut cookies = self.persist(&data, previous).await.map_err(|error| {
            tracing::warn!(%error, "could not store a new session");
            SignInError::Internal
        })?;
        cookies.push(cookie::expire(&name));
        Ok(Redirect { location: pending.return_to, cookies })
    }

    /// End the session here (cookie, Redis entry) and, when the IdP offers
    /// it, at the IdP (RP-initiated logout with `id_token_hint`).
    pub(crate) async fn logout(&self, request: &RequestHeader) -> Redirect {
        let name = &self.settings.cookie.name;
        let found = cookie::find_chunked(request, name);
        let parts = found.as_ref().map_or(0, |(_, parts)| *parts);
        let data = match &found {
            Some((sealed, _)) => self.open(sealed).await.ok(),
            None => None,
        };
        if let (Some(redis), Some(data)) = (&self.redis, &data) {
            if let Err(error) = redis.delete_session(&data.id).await {
                tracing::warn!(%error, "could not delete a session from Redis; it ends at its idle timeout");
            }
        }
        self.metrics.logouts.inc();
        let origin = &self.settings.public_origin;
        let landing = request
            .uri
            .query()
            .and_then(|q| query_value(q, "rd"))
            .and_then(|rd| safe_return_path(&rd, origin).map(str::to_owned))
            .unwrap_or_else(|| self.settings.post_logout_path.clone());
        let location = match self.endpoints().and_then(|e| e.end_session) {
            Some(end_session) => {
                let post_logout = format!("{origin}{}", self.settings.post_logout_path);
                let hint = data.as_ref().and_then(|d| d.id_token.as_deref());
                self.client.logout_url(&end_session, hint, &post_logout)
            }
            None => landing,
        };
        Redirect { location, cookies: cookie::expire_chunked(name, parts.max(1)) }
    }

    fn pending_prefix(&self) -> String {
        format!("{}-signin-", self.settings.cookie.name)
    }

    fn pending_cookie(&self, state: &str) -> String {
        let short: String = state.chars().take(STATE_IN_NAME).collect();
        format!("{}{short}", self.pending_prefix())
    }
}
