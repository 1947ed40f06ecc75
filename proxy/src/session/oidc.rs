//! The OpenID Connect client side of browser sign-in: the authorization
//! request (code flow, PKCE S256), and the token endpoint (code exchange,
//! refresh) with the client authenticated by secret (`client_secret_basic`)
//! or by a signed assertion (`private_key_jwt`).

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::{AssertionAudience, ClientAuth, Secret, SessionSettings, SigningAlg};
use jsonwebtoken::{EncodingKey, Header};
use serde::Deserialize;

use crate::idp::{form_urlencode, unix_now, FetchError, IdpClient};

/// A token endpoint call waits at most this long.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// When neither `expires_in` nor the token says, an access token is
/// trusted this long.
const DEFAULT_LIFETIME: u64 = 300;

/// Where the IdP's endpoints are, from configuration or discovery.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) authorization: String,
    pub(crate) token: String,
    pub(crate) end_session: Option<String>,
}

/// What the token endpoint answered.
#[derive(Debug, Clone)]
pub(crate) struct TokenSet {
    pub(crate) access_token: String,
    /// Unix time the access token expires.
    pub(crate) expires_at: u64,
    pub(crate) refresh_token: Option<String>,
    pub(crate) id_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// 4xx: the code or refresh token is not (or no longer) good.
    #[error("the identity provider refused the grant (HTTP {0})")]
    Refused(u16),
    #[error("the identity provider could not be reached")]
    Unavailable,
    #[error("the identity provider's answer is not a token response")]
    Invalid,
    #[error("the client assertion could not be signed")]
    Signing,
}

enum Credentials {
    Secret(Secret),
    Assertion { key: EncodingKey, alg: jsonwebtoken::Algorithm, kid: Option<String>, audience: Option<String> },
}

/// The confidential client portcullis is towards the IdP.
pub(crate) struct OidcClient {
    client_id: String,
    credentials: Credentials,
    http: Arc<IdpClient>,
}

impl OidcClient {
    /// `issuer`: the issuer's `iss`, for assertions addressed to it.
    pub(crate) fn new(settings: &SessionSettings, issuer: &str, http: Arc<IdpClient>) -> anyhow::Result<OidcClient> {
        let credentials = match &settings.client_auth {
            ClientAuth::Secret(secret) => Credentials::Secret(secret.clone()),
            ClientAuth::PrivateKeyJwt { key_pem, alg, kid, audience } => {
                let (key, alg) = match alg {
                    SigningAlg::Es256 => (EncodingKey::from_ec_pem(key_pem.expose()), jsonwebtoken::Algorithm::ES256),
                    SigningAlg::Rs256 => (EncodingKey::from_rsa_pem(key_pem.expose()), jsonwebtoken::Algorithm::RS256),
                };
                let key =
                    key.map_err(|e| anyhow::anyhow!("sessions.private_key_jwt: the key file is unusable: {e}"))?;
                let audience = (*audience == AssertionAudience::Issuer).then(|| issuer.to_owned());
                Credentials::Assertion { key, alg, kid: kid.clone(), audience }
            }
        };
        Ok(OidcClient { client_id: settings.client_id.clone(), credentials, http })
    }

    /// The URL a browser is sent to: code flow with PKCE S256, `state` and
    /// `nonce`, plus the operator's extra parameters.
    pub(crate) fn authorization_url(
        &self,
        endpoint: &str,
        settings: &SessionSettings,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        let scope = settings.scopes.join(" ");
        let redirect_uri = settings.redirect_uri();
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", &scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        params.extend(settings.authorize_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        with_query(endpoint, &params)
    }

    /// RP-initiated logout at the IdP.
    pub(crate) fn logout_url(&self, endpoint: &str, id_token: Option<&str>, post_logout_redirect: &str) -> String {
        let mut params =
            vec![("client_id", self.client_id.as_str()), ("post_logout_redirect_uri", post_logout_redirect)];
        if let Some(hint) = id_token {
            params.push(("id_token_hint", hint));
        }
        with_query(endpoint, &params)
    }

    pub(crate) async fn exchange_code(
        &self,
        endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenSet, TokenError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        self.call(endpoint, &form).await
    }

    pub(crate) async fn refresh(&self, endpoint: &str, refresh_token: &str) -> Result<TokenSet, TokenError> {
        self.call(endpoint, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> Result<TokenSet, TokenError> {
        let fetched = match &self.credentials {
            Credentials::Secret(secret) => {
                self.http.post_form(endpoint, &self.client_id, secret.expose(), form, TOKEN_TIMEOUT).await
            }
            Credentials::Assertion { key, alg, kid, audience } => {
                let audience = audience.as_deref().unwrap_or(endpoint);
                let assertion = self.assertion(audience, key, *alg, kid.as_deref())?;
                let mut form = form.to_vec();
                form.push(("client_id", &self.client_id));
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
                form.push(("client_assertion", &assertion));
                self.http.post_form_unauthenticated(endpoint, &form, TOKEN_TIMEOUT).await
            }
        };
        let body = match fetched {
            Ok(fetched) => fetched.body,
            Err(FetchError::Status(status)) if (400..500).contains(&status) => return Err(TokenError::Refused(status)),
            Err(_) => return Err(TokenError::Unavailable),
        };
        parse_token_response(&body)
    }

    /// RFC 7523 client assertion: this client about itself, for
    /// `audience` (the token endpoint, or the issuer), valid one minute,
    /// never reused.
    fn assertion(
        &self,
        audience: &str,
        key: &EncodingKey,
        alg: jsonwebtoken::Algorithm,
        kid: Option<&str>,
    ) -> Result<String, TokenError> {
        let now = unix_now();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| TokenError::Signing)?;
        let claims = serde_json::json!({
            "iss": self.client_id, "sub": self.client_id, "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti), "iat": now, "exp": now + 60,
        });
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, key).map_err(|_| TokenError::Signing)
    }
}

fn parse_token_response(body: &[u8]) -> Result<TokenSet, TokenError> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: String,
        #[serde(default)]
        token_type: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
        #[serde(default)]
        refresh_token: Option<String>,
        #[serde(default)]
        id_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| TokenError::Invalid)?;
    // RFC 6749 5.1: token_type is case-insensitive; only bearer is usable.
    if answer.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) || answer.access_token.is_empty()
    {
        return Err(TokenError::Invalid);
    }
    let now = unix_now();
    // Without `expires_in` (it is only RECOMMENDED), refresh early; a JWT's
    // own `exp` is enforced anyway when it is verified.
    let expires_at = now.saturating_add(answer.expires_in.unwrap_or(DEFAULT_LIFETIME).min(365 * 24 * 3600));
    Ok(TokenSet {
        access_token: answer.access_token,
        expires_at,
        refresh_token: answer.refresh_token.filter(|t| !t.is_empty()),
        id_token: answer.id_token,
    })
}

/// `endpoint` with `params` added to its query.
fn with_query(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut url = endpoint.to_owned();
    let mut separator = if endpoint.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        url.push(separator);
        url.push_str(&form_urlencode(name));
        url.push('=');
        url.push_str(&form_urlencode(value));
        separator = '&';
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let set = parse_token_response(
            br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","id_token":"i"}"#,
        )
        .expect("valid");
        assert_eq!(set.access_token, "a");
        assert!(set.expires_at >= unix_now() + 59);
        assert_eq!(set.refresh_token.as_deref(), Some("r"));
        assert_eq!(
            parse_token_response(br#"{"access_token":"a","token_type":"DPoP"}"#).err(),
            Some(TokenError::Invalid)
        );
        assert_eq!(parse_token_response(br#"{"error":"invalid_grant"}"#).err(), Some(TokenError::Invalid));
    }

    #[test]
    fn query_parameters_are_encoded() {
        let url = with_query("https://idp/auth?x=1", &[("redirect_uri", "https://a/cb?x"), ("scope", "openid email")]);
        assert_eq!(url, "https://idp/auth?x=1&redirect_uri=https%3A%2F%2Fa%2Fcb%3Fx&scope=openid+email");
    }
}
