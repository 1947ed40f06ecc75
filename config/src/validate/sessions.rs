//! `sessions:`: browser sign-in. The client's secret or signing key and
//! the cookie keys come from the environment or a key file, never from the
//! YAML; every path the proxy answers itself is checked to be a plain,
//! normalised absolute path.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_saphyr::Spanned;

use super::values::{http_url, is_loopback, is_token_byte, one_of, positive_duration};
use super::Validator;
use crate::diag::{Positioned, Reporter};
use crate::file::{PrivateKeyJwtFile, SessionCookieFile, SessionsFile, Text};
use crate::model::{
    AssertionAudience, ClientAuth, CookieSettings, EndpointOverrides, IdentitySource, Issuer, KeySource, Secret,
    SessionSettings, SessionStore, SigningAlg,
};

const DEFAULT_COOKIE: &str = "__Host-portcullis";
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// AES-256-GCM keys.
pub const SESSION_KEY_BYTES: usize = 32;

/// What `sessions:` needs from the rest of the main file.
pub(super) struct SessionContext<'a> {
    /// Issuer name → index among the valid issuers (`None`: invalid).
    pub issuers: &'a HashMap<String, Option<usize>>,
    pub valid_issuers: &'a [Positioned<Issuer>],
    pub redis: bool,
    pub base: &'a Path,
}

impl Validator<'_> {
    /// The `sessions:` section; `None` when absent or invalid (reported).
    pub(super) fn sessions(
        &self,
        file: Option<&Spanned<SessionsFile>>,
        context: &SessionContext<'_>,
        r: &mut Reporter<'_>,
    ) -> Option<SessionSettings> {
        let section = file?;
        let s = &section.value;
        let errors_before = super::count_errors(r);
        let issuer = match context.issuers.get(&s.issuer.value) {
            Some(Some(index)) => Some(*index),
            Some(None) => None,
            None => {
                let known = super::known(context.issuers.keys());
                r.error(&s.issuer, format!("unknown issuer '{}'{known}", s.issuer.value));
                None
            }
        };
        let discovery = issuer
            .and_then(|i| context.valid_issuers.get(i))
            .is_some_and(|issuer| matches!(issuer.value.keys, KeySource::Discovery { .. }));
        let endpoints = EndpointOverrides {
            authorization: s.authorization_endpoint.as_ref().and_then(|t| http_url(t, "authorization_endpoint", r)),
            token: s.token_endpoint.as_ref().and_then(|t| http_url(t, "token_endpoint", r)),
            end_session: s.end_session_endpoint.as_ref().and_then(|t| http_url(t, "end_session_endpoint", r)),
        };
        if issuer.is_some() && !discovery && (endpoints.authorization.is_none() || endpoints.token.is_none()) {
            r.error(
                &s.issuer,
                "this issuer has no discovery document: give sessions.authorization_endpoint and sessions.token_endpoint",
            );
        }
        let public_origin = public_origin(&s.public_url, r);
        let client_id = self.client_id(section, r);
        let client_auth = self.client_auth(section, context.base, r);
        let scopes = scopes(s.scopes.as_deref(), section, r);
        let authorize_params = authorize_params(s, r);
        let identity_from = match s.identity_from.as_ref().and_then(|t| one_of(t, &["access_token", "id_token"], r)) {
            Some("id_token") => IdentitySource::IdToken,
            _ => IdentitySource::AccessToken,
        };
        let mut paths = Vec::new();
        let mut path = |text: Option<&Text>, default: &str, what: &str, r: &mut Reporter<'_>| {
            let value = text.map_or(default, |t| t.value.as_str()).to_owned();
            if let Some(text) = text {
                if !is_plain_path(&value) {
                    r.error(
                        text,
                        format!(
                            "{what} must be a plain absolute path like '{default}' (no '..', '//', '?', '#' or '\\')"
                        ),
                    );
                }
            }
            paths.push((value.clone(), text.map(|t| t.referenced)));
            value
        };
        let callback_path = path(s.callback_path.as_ref(), "/.portcullis/callback", "callback_path", r);
        let sign_in_path = path(s.sign_in_path.as_ref(), "/.portcullis/sign_in", "sign_in_path", r);
        let logout_path = path(s.logout_path.as_ref(), "/.portcullis/logout", "logout_path", r);
        let post_logout_path = path(s.post_logout_path.as_ref(), "/", "post_logout_path", r);
        for (i, (value, at)) in paths.iter().enumerate().take(3) {
            if paths[..i].iter().any(|(other, _)| other == value) {
                let message = format!("'{value}' is used for two of callback_path, sign_in_path, logout_path");
                r.error_at(at.unwrap_or(section.referenced), message);
            }
        }
        let cookie = self.cookie(s.cookie.as_ref(), section, r);
        let store = match s.store.as_ref().and_then(|t| one_of(t, &["cookie", "redis"], r)) {
            Some("redis") => {
                if !context.redis {
                    let at = s.store.as_ref().unwrap_or_else(|| unreachable!("matched Some"));
                    r.error(at, "store: redis needs the redis section");
                }
                SessionStore::Redis
            }
            _ => SessionStore::Cookie,
        };
        if super::count_errors(r) > errors_before {
            return None;
        }
        Some(SessionSettings {
            issuer: issuer?,
            public_origin: public_origin?,
            client_id: client_id?,
            client_auth: client_auth?,
            scopes,
            authorize_params,
            identity_from,
            callback_path,
            sign_in_path,
            logout_path,
            post_logout_path,
            endpoints,
            cookie: cookie?,
            store,
        })
    }

    fn client_id(&self, section: &Spanned<SessionsFile>, r: &mut Reporter<'_>) -> Option<String> {
        let s = &section.value;
        match (&s.client_id, &s.client_id_env) {
            (Some(id), None) if !id.value.is_empty() => Some(id.value.clone()),
            (None, Some(env)) => match self.secret(env, r) {
                Some(id) => String::from_utf8(id.expose().to_vec()).ok(),
                None if !self.serving() => Some("unset".to_owned()),
                None => None,
            },
            _ => {
                r.error(section, "sessions needs exactly one of client_id and client_id_env");
                None
            }
        }
    }

    fn client_auth(&self, section: &Spanned<SessionsFile>, base: &Path, r: &mut Reporter<'_>) -> Option<ClientAuth> {
        let s = &section.value;
        match (&s.client_secret_env, &s.private_key_jwt) {
            (Some(env), None) => match self.secret(env, r) {
                Some(secret) => Some(ClientAuth::Secret(secret)),
                // `check` without the environment: validate the rest.
                None if !self.serving() => Some(ClientAuth::Secret(Secret::new(Vec::new()))),
                None => None,
            },
            (None, Some(key)) => private_key_jwt(key, base, r),
            _ => {
                let message = "sessions needs exactly one way to authenticate to the token endpoint: client_secret_env or private_key_jwt";
                r.error(section, message);
                None
            }
        }
    }

    fn cookie(
        &self,
        file: Option<&Spanned<SessionCookieFile>>,
        section: &Spanned<SessionsFile>,
        r: &mut Reporter<'_>,
    ) -> Option<CookieSettings> {
        let Some(file) = file else {
            r.error(section, "sessions needs cookie.key_env: the variable holding the session sealing keys");
            return None;
        };
        let c = &file.value;
        let name = c.name.as_ref().map_or(DEFAULT_COOKIE, |t| t.value.as_str()).to_owned();
        if let Some(text) = &c.name {
            if name.is_empty() || !name.bytes().all(is_token_byte) || name.len() > 64 {
                r.error(text, "the cookie name must be 1 to 64 letters, digits or !#$%&'*+-.^_`|~");
            }
        }
        let max_age = duration_or(c.max_age.as_ref(), DEFAULT_MAX_AGE, r);
        let idle_timeout = duration_or(c.idle_timeout.as_ref(), DEFAULT_IDLE_TIMEOUT, r);
        if let Some(text) = &c.idle_timeout {
            if idle_timeout > max_age {
                r.warn(text, "idle_timeout is longer than max_age: sessions end at max_age first");
            }
        }
        let Some(env) = &c.key_env else {
            r.error(file, "cookie.key_env is required: the variable holding the session sealing keys");
            return None;
        };
        let keys = match self.secret(env, r) {
            Some(value) => session_keys(&value, env, r)?,
            None if !self.serving() => vec![Secret::new(vec![0u8; SESSION_KEY_BYTES])],
            None => return None,
        };
        Some(CookieSettings { name, keys, max_age, idle_timeout })
    }
}

/// `public_url`: an origin (scheme, host, port), nothing after it.
fn public_origin(text: &Text, r: &mut Reporter<'_>) -> Option<String> {
    let Ok(url) = url::Url::parse(&text.value) else {
        r.error(text, format!("public_url must be an absolute URL like https://app.example.com, got '{}'", text.value));
        return None;
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        r.error(text, "public_url must be an http(s) URL");
        return None;
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        r.error(text, "public_url is an origin only: no path, query, fragment or user");
        return None;
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        r.error(
            text,
            "public_url must be https: session cookies are Secure, and browsers send those over http only to localhost",
        );
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn scopes(list: Option<&[Text]>, section: &Spanned<SessionsFile>, r: &mut Reporter<'_>) -> Vec<String> {
    let Some(list) = list else { return ["openid", "email", "profile"].map(str::to_owned).to_vec() };
    for scope in list {
        if scope.value.is_empty() || !scope.value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            r.error(scope, format!("'{}' is not a valid scope", scope.value));
        }
    }
    if !list.iter().any(|s| s.value == "openid") {
        r.error(section, "sessions.scopes must include openid (this is an OpenID Connect sign-in)");
    }
    list.iter().map(|s| s.value.clone()).collect()
}

/// Parameters the proxy sets itself cannot be overridden.
const OWN_PARAMETERS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

fn authorize_params(s: &SessionsFile, r: &mut Reporter<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in s.authorize_params.iter().flat_map(|m| m.0.iter()) {
        if OWN_PARAMETERS.contains(&name.value.as_str()) {
            r.error(name, format!("'{}' is set by portcullis itself", name.value));
        } else if name.value.is_empty() || !name.value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            r.error(name, format!("'{}' is not a parameter name", name.value));
        } else {
            out.push((name.value.clone(), value.value.clone()));
        }
    }
    out
}

fn private_key_jwt(key: &Spanned<PrivateKeyJwtFile>, base: &Path, r: &mut Reporter<'_>) -> Option<ClientAuth> {
    let k = &key.value;
    let path = base.join(&k.key_file.value);
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) => {
            r.error(&k.key_file, format!("cannot read key file {}: {e}", path.display()));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&pem);
    let kind = ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"]
        .into_iter()
        .find(|label| text.contains(&format!("-----BEGIN {label}-----")));
    let alg = match k.alg.as_ref().map(|t| (t, t.value.as_str())) {
        None if kind == Some("RSA PRIVATE KEY") => SigningAlg::Rs256,
        None | Some((_, "ES256")) => SigningAlg::Es256,
        Some((_, "RS256")) => SigningAlg::Rs256,
        Some((text, other)) => {
            r.error(text, format!("'{other}' is not one of: ES256, RS256"));
            return None;
        }
    };
    match (kind, alg) {
        (None, _) => r.error(&k.key_file, format!("{} holds no PEM private key", path.display())),
        (Some("EC PRIVATE KEY"), _) => r.error(
            &k.key_file,
            format!(
                "{} is an EC key in SEC1 form; convert it to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8",
                path.display()
            ),
        ),
        (Some("RSA PRIVATE KEY"), SigningAlg::Es256) => {
            r.error(&k.key_file, format!("{} does not hold a key for {}", path.display(), alg.name()))
        }
        _ => {}
    }
    kind.filter(|kind| *kind != "EC PRIVATE KEY")?;
    let kid = k.kid.as_ref().map(|t| t.value.clone());
    let audience = match k.audience.as_ref().and_then(|t| one_of(t, &["token_endpoint", "issuer"], r)) {
        Some("issuer") => AssertionAudience::Issuer,
        _ => AssertionAudience::TokenEndpoint,
    };
    Some(ClientAuth::PrivateKeyJwt { key_pem: Secret::new(pem), alg, kid, audience })
}

/// The sealing keys: base64 of 32 bytes each, separated by commas or
/// white space (padding optional, standard or URL-safe alphabet).
fn session_keys(value: &Secret, env: &Text, r: &mut Reporter<'_>) -> Option<Vec<Secret>> {
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engines = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, config),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
    ];
    let text = String::from_utf8_lossy(value.expose());
    let mut keys = Vec::new();
    for (i, part) in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()).enumerate() {
        match engines.iter().find_map(|engine| engine.decode(part).ok()) {
            Some(key) if key.len() == SESSION_KEY_BYTES => keys.push(Secret::new(key)),
            _ => {
                // Never echo the value: it is a key.
                r.error(
                    env,
                    format!(
                        "key {} in {} is not base64 of 32 bytes (make one with: openssl rand -base64 32)",
                        i + 1,
                        env.value
                    ),
                );
                return None;
            }
        }
    }
    if keys.is_empty() {
        r.error(env, format!("{} holds no keys", env.value));
        return None;
    }
    Some(keys)
}

fn duration_or(text: Option<&Text>, default: Duration, r: &mut Reporter<'_>) -> Duration {
    text.and_then(|t| positive_duration(t, r)).unwrap_or(default)
}

/// A path the proxy answers itself: absolute, no dot segments, no empty
/// segments, no query or fragment, printable ASCII.
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_graphic() && !b"?#\\%".contains(&b))
        && (path == "/" || !path.split('/').skip(1).any(|s| s.is_empty() || s == "." || s == ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        for good in ["/", "/.portcullis/callback", "/a/b"] {
            assert!(is_plain_path(good), "{good}");
        }
        for bad in ["", "a", "//x", "/a/../b", "/a/./b", "/a?x", "/a#x", "/a\\b", "/a/", "/a%2e", "/a b"] {
            assert!(!is_plain_path(bad), "{bad}");
        }
    }
}
