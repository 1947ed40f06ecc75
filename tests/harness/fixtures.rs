//! The standard test world: an upstream, an OIDC-discovery key server with an
//! RSA key, an HS256 issuer, and the proxy with a policy shaped like the
//! reference configuration.

use crate::config::TestConfig;
use crate::keys::{claims, jwks, TestKey};
use crate::proxy::{Proxy, ProxyOptions};
use crate::servers::{KeyServer, Upstream};

pub const AUDIENCE: &str = "todo-api";
pub const HS_ISSUER: &str = "local-issuer";
pub const HS_SECRET: &str = "an-hs256-test-secret-of-32-bytes!";
pub const HS_ENV: &str = "TEST_HS_SECRET";

/// The standard policy for `issuer` (a discovery URL) and `upstream`.
/// `extra` is appended to the top level (more rate limits, tokens, ...).
/// To change anything else, use [`TestConfig`].
pub fn standard_config(issuer: &str, upstream: &str, extra: &str) -> String {
    TestConfig::new(issuer, upstream).extra(extra).render()
}

/// Everything a typical end-to-end test talks to.
pub struct World {
    pub upstream: Upstream,
    pub keys: KeyServer,
    pub rsa: TestKey,
    pub proxy: Proxy,
}

impl World {
    pub fn start() -> World {
        World::start_with("")
    }

    /// With `extra` top-level configuration.
    pub fn start_with(extra: &str) -> World {
        World::start_configured(|config| config.extra(extra))
    }

    /// With the standard configuration as `configure` changes it.
    pub fn start_configured(configure: impl FnOnce(TestConfig) -> TestConfig) -> World {
        World::start_with_env(configure, &[])
    }

    /// [`World::start_configured`] with more environment variables (secrets
    /// the configuration names).
    pub fn start_with_env(configure: impl FnOnce(TestConfig) -> TestConfig, env: &[(&str, &str)]) -> World {
        let upstream = Upstream::start("api");
        let rsa = TestKey::rsa("rsa-1");
        let keys = KeyServer::start(jwks(&[&rsa]));
        let config = configure(TestConfig::new(&keys.issuer(), &upstream.url())).render();
        let env: Vec<(&str, &str)> = [(HS_ENV, HS_SECRET)].into_iter().chain(env.iter().copied()).collect();
        let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &env, wait_ready: true });
        World { upstream, keys, rsa, proxy }
    }

    /// A valid RS256 token from the discovery issuer.
    pub fn token(&self, sub: &str, scope: &str) -> String {
        self.rsa.sign(&claims(&self.keys.issuer(), AUDIENCE, sub, scope))
    }

    /// Claims for the discovery issuer, to modify before signing.
    pub fn claims(&self, sub: &str, scope: &str) -> serde_json::Value {
        claims(&self.keys.issuer(), AUDIENCE, sub, scope)
    }
}

/// An `issuers:` section with the HS256 issuer `local` alone (for tests
/// whose subject is not the token).
pub fn hs_issuers() -> String {
    format!(
        "issuers:\n  - name: local\n    issuer: \"{HS_ISSUER}\"\n    secret_env: {HS_ENV}\n    audiences: [\"{AUDIENCE}\"]\n    algorithms: [HS256]\n"
    )
}

/// A valid HS256 token from the shared-secret issuer.
pub fn hs_token(sub: &str, scope: &str) -> String {
    TestKey::hmac(HS_SECRET.as_bytes()).sign(&claims(HS_ISSUER, AUDIENCE, sub, scope))
}
