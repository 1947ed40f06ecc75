//! Identity providers' token shapes against the real binary. For each IdP
//! the README documents, tokens are signed with exactly the header and
//! claims that IdP issues (`typ`/`kid` header, `iss` form, where the
//! audience, scopes and roles sit, string or array) and verified under the
//! README's configuration for it: the snippets in `idp_shapes/`, which the
//! README must contain verbatim. Each test shows the snippet accepts the
//! IdP's access token and forwards the identity headers an operator
//! expects, and refuses the same IdP's ID token and a token for another API
//! (401 `invalid_token`, nothing forwarded).

use std::path::Path;

use harness::client::get_with_token;
use harness::keys::{jwks, TestKey};
use harness::now;
use harness::proxy::Proxy;
use harness::servers::{KeyServer, Upstream};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};

const NOT_FOR_US: &str = "the token is not for this audience";
const NOT_REQUIRED_KIND: &str = "lacks a claim value this issuer requires";
const OTHER_ISSUER: &str = "the token's issuer is not accepted";

/// One IdP: the key its JWKS publishes, and the proxy running its README
/// snippet in front of a recording upstream.
struct Idp {
    key: TestKey,
    upstream: Upstream,
    proxy: Proxy,
    _keys: KeyServer,
}

impl Idp {
    /// The proxy with the snippet `idp_shapes/{name}.yaml`, its `jwks_uri`
    /// pointed at a local key server publishing one RSA key named `kid`.
    fn start(name: &str, kid: &str) -> Idp {
        let snippet = snippet(name);
        let upstream = Upstream::start("api");
        let key = TestKey::rsa(kid);
        let keys = KeyServer::start(jwks(&[&key]));
        let config = format!(
            "upstreams:\n  api:\n    url: \"{}\"\n{}",
            upstream.url(),
            with_jwks_uri(&snippet, &keys.jwks_uri())
        );
        let proxy = Proxy::start(&config);
        Idp { key, upstream, proxy, _keys: keys }
    }

    /// Signed with `kid` and this header `typ` (`None`: no `typ`, as
    /// Cognito and Okta send them).
    fn sign(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key.kid.clone());
        header.typ = typ.map(str::to_owned);
        self.key.sign_with_header(&header, claims)
    }

    /// `GET path` with `token` is forwarded, with exactly these values in
    /// the identity headers named (`None`: the header is absent).
    fn accepts(&self, path: &str, token: &str, headers: &[(&str, Option<&str>)]) {
        let response = get_with_token(self.proxy.addr, path, token);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let received = self.upstream.last();
        for (name, expected) in headers {
            assert_eq!(received.header(name).as_deref(), *expected, "{name}");
        }
    }

    /// `GET path` with `token` is refused as an invalid token, for `why`,
    /// and never reaches the upstream.
    fn refuses(&self, path: &str, token: &str, why: &str) {
        let before = self.upstream.count();
        let response = get_with_token(self.proxy.addr, path, token);
        assert_eq!(response.status, 401, "{path}: {}", response.text());
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let description = response.json()["error_description"].as_str().unwrap_or_default().to_owned();
        assert!(description.contains(why), "expected '{why}', got '{description}'");
        assert_eq!(self.upstream.count(), before, "a refused token reached the upstream");
    }
}

/// The snippet the README shows for an IdP, checked to be there verbatim.
fn snippet(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("e2e/idp_shapes").join(format!("{name}.yaml"));
    let snippet = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
    assert!(
        readme.contains(&format!("```yaml\n{snippet}```\n")),
        "README.md must show tests/e2e/idp_shapes/{name}.yaml verbatim in a yaml block"
    );
    snippet
}

/// The snippet with every `jwks_uri` pointing at `uri`.
fn with_jwks_uri(snippet: &str, uri: &str) -> String {
    let mut replaced = 0;
    let lines: Vec<String> = snippet
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            if line.trim_start().starts_with("jwks_uri:") {
                replaced += 1;
                format!("{}jwks_uri: \"{uri}\"", &line[..indent])
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(replaced > 0, "the snippet names no jwks_uri");
    lines.join("\n") + "\n"
}

/// `iat`, `nbf` (where the IdP sets it) and `exp` an hour from now.
fn times(claims: Value, with_nbf: bool) -> Value {
    let now = now();
    let mut claims = claims;
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 3600);
    if with_nbf {
        claims["nbf"] = json!(now);
    }
    claims
}

/// `claims` with `changes` applied (a `null` removes the claim).
fn changed(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (name, value) in changes.as_object().into_iter().flatten() {
        match (value, out.as_object_mut()) {
            (Value::Null, Some(map)) => {
                map.remove(name);
            }
            _ => out[name] = value.clone(),
        }
    }
    out
}

#[test]
fn keycloak() {
    let idp = Idp::start("keycloak", "ZxKq3v8YbT1WcN5rHm2LpA9sD4fG7jE0uIoV6yB-tCk");
    let iss = "https://sso.example.com/realms/shop";
    // An access token for the API, with the Audience mapper's orders-api
    // next to Keycloak's own `account`, and `typ: Bearer` in the payload.
    let access = times(
        json!({
            "auth_time": now() - 10, "jti": "onrtac:5f0e7d2a-9c1b-4e6f-8a3d-2b7c9e1f0a4d",
            "iss": iss, "aud": ["orders-api", "account"], "sub": "f4c9a8d2-3b1e-4c6f-9a7d-2e5b8c1d0f3a",
            "typ": "Bearer", "azp": "shop-web", "sid": "0b3c6a1e-7d2f-4e8a-9b5c-1f4d7a2e6c3b", "acr": "1",
            "allowed-origins": ["https://shop.example.com"],
            "realm_access": {"roles": ["default-roles-shop", "offline_access", "uma_authorization"]},
            "resource_access": {
                "orders-api": {"roles": ["orders-admin"]},
                "account": {"roles": ["manage-account", "view-profile"]},
            },
            "scope": "openid profile email orders:read",
            "email_verified": true, "name": "Alice Example", "preferred_username": "alice",
            "given_name": "Alice", "family_name": "Example", "email": "alice@example.com",
        }),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &access),
        &[
            ("x-auth-subject", Some("f4c9a8d2-3b1e-4c6f-9a7d-2e5b8c1d0f3a")),
            ("x-auth-user", Some("alice")),
            ("x-auth-email", Some("alice@example.com")),
            ("x-auth-client", Some("shop-web")),
            (
                "x-auth-scopes",
                Some(
                    "default-roles-shop email offline_access openid orders-admin orders:read profile uma_authorization",
                ),
            ),
        ],
    );
    // A client-credentials token of the other allowed client: no user.
    let service = changed(
        &access,
        json!({"azp": "shop-cli", "sub": "9a1b2c3d-service-account", "preferred_username": "service-account-shop-cli",
               "email": null, "scope": "orders:read", "realm_access": null, "resource_access": null}),
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &service),
        &[
            ("x-auth-user", Some("service-account-shop-cli")),
            ("x-auth-email", None),
            ("x-auth-scopes", Some("orders:read")),
        ],
    );

    // The ID token of the same login: `typ: ID`, for the front end's client.
    let id = times(
        json!({
            "auth_time": now() - 10, "jti": "3e1a9c7b-2d4f-4b8e-a6c1-7f0d5e2b9a8c", "iss": iss, "aud": "shop-web",
            "sub": "f4c9a8d2-3b1e-4c6f-9a7d-2e5b8c1d0f3a", "typ": "ID", "azp": "shop-web",
            "nonce": "n-0S6_WzA2Mj", "sid": "0b3c6a1e-7d2f-4e8a-9b5c-1f4d7a2e6c3b",
            "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "acr": "1", "email_verified": true, "name": "Alice Example",
            "preferred_username": "alice", "email": "alice@example.com",
        }),
        false,
    );
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &id), NOT_FOR_US);
    // Where the front end and the API share one client, the ID token's
    // audience is the API's: Keycloak's `typ` marker still refuses it.
    let shared = changed(&id, json!({"aud": "orders-api", "azp": "shop-web"}));
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &shared), NOT_REQUIRED_KIND);
    // An access token for another API of the realm, and one of a client
    // this API does not serve.
    idp.refuses(
        "/orders/7",
        &idp.sign(Some("JWT"), &changed(&access, json!({"aud": ["billing-api", "account"]}))),
        NOT_FOR_US,
    );
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &changed(&access, json!({"aud": "account"}))), NOT_FOR_US);
    idp.refuses(
        "/orders/7",
        &idp.sign(Some("JWT"), &changed(&access, json!({"azp": "partner-app"}))),
        NOT_REQUIRED_KIND,
    );
}

#[test]
fn auth0() {
    let idp = Idp::start("auth0", "0sKdmWqVb3nXyZ8aR1tQf");
    let iss = "https://example-shop.eu.auth0.com/";
    let client = "Xy1AbC2dEf3GhI4jKl5MnO6pQr7StU8v";
    // A user's access token with `openid` requested: the API's identifier
    // and the userinfo URL in `aud`, RBAC permissions in `permissions`.
    let access = times(
        json!({
            "iss": iss, "sub": "auth0|64f1c2a9e4b0c8d2a1b3c4d5",
            "aud": ["https://orders.example.com", "https://example-shop.eu.auth0.com/userinfo"],
            "scope": "openid profile email read:orders", "azp": client,
            "permissions": ["read:orders", "write:orders"],
        }),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &access),
        &[
            ("x-auth-subject", Some("auth0|64f1c2a9e4b0c8d2a1b3c4d5")),
            ("x-auth-client", Some(client)),
            ("x-auth-scopes", Some("email openid profile read:orders write:orders")),
        ],
    );
    // A machine-to-machine token (client credentials): `aud` a string.
    let m2m = times(
        json!({
            "iss": iss, "sub": format!("{client}@clients"), "aud": "https://orders.example.com",
            "scope": "read:orders", "gty": "client-credentials", "azp": client, "permissions": ["read:orders"],
        }),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &m2m),
        &[("x-auth-subject", Some(&format!("{client}@clients"))), ("x-auth-scopes", Some("read:orders"))],
    );

    // The ID token: for the application's client id.
    let id = times(
        json!({
            "nickname": "alice", "name": "alice@example.com", "picture": "https://s.gravatar.com/avatar/a1.png",
            "updated_at": "2024-05-01T10:00:00.000Z", "email": "alice@example.com", "email_verified": true,
            "iss": iss, "aud": client, "sub": "auth0|64f1c2a9e4b0c8d2a1b3c4d5",
            "sid": "Hs2hQx6Yt0oGmV1bKc3nZr9pLw4eDa7J", "nonce": "bm9uY2UtMTIz",
        }),
        false,
    );
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &id), NOT_FOR_US);
    let billing = json!({"aud": ["https://billing.example.com", "https://example-shop.eu.auth0.com/userinfo"]});
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &changed(&access, billing)), NOT_FOR_US);
    // The issuer is compared exactly: without its trailing slash it is not Auth0's.
    let no_slash = changed(&access, json!({"iss": "https://example-shop.eu.auth0.com"}));
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &no_slash), OTHER_ISSUER);
}

#[test]
fn entra_id_v1_and_v2() {
    let idp = Idp::start("entra", "KQ2tAcrE7lBaViGmZDycbmyt6Cc");
    let tenant = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
    let v2 = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    let v1 = format!("https://sts.windows.net/{tenant}/");
    let api = "00001111-aaaa-2222-bbbb-3333cccc4444";
    let spa = "11112222-bbbb-3333-cccc-4444dddd5555";
    let user = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb";
    // v2.0, delegated: `aud` the API's client id, permissions in `scp`.
    let access_v2 = times(
        json!({
            "aud": api, "iss": v2, "aio": "AWQAm/8TAAAA", "azp": spa, "azpacr": "0", "name": "Alice Example",
            "oid": user, "preferred_username": "alice@contoso.example", "rh": "0.AX0AQ7bN5JrU-kS",
            "scp": "Orders.Read Orders.Write", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "tid": tenant, "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
        }),
        true,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &access_v2),
        &[
            ("x-auth-subject", Some(user)),
            ("x-auth-tenant", Some(tenant)),
            ("x-auth-name", Some("Alice Example")),
            ("x-auth-scopes", Some("Orders.Read Orders.Write")),
        ],
    );
    // v2.0, application (client credentials): app roles in `roles`.
    let daemon = "cccccccc-3333-4444-5555-dddddddddddd";
    let app_v2 = times(
        json!({
            "aud": api, "iss": v2, "aio": "E2ZgYJj", "azp": "22223333-cccc-4444-dddd-5555eeee6666", "azpacr": "1",
            "idtyp": "app", "oid": daemon, "rh": "0.AX0AQ7bN5JrU-kS", "roles": ["Orders.Read.All"],
            "sub": daemon, "tid": tenant, "uti": "x2mVJcZ0rE6bB4QkR1YvAA", "ver": "2.0",
        }),
        true,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &app_v2),
        &[("x-auth-subject", Some(daemon)), ("x-auth-name", None), ("x-auth-scopes", Some("Orders.Read.All"))],
    );
    // v1.0: the sts.windows.net issuer, the App ID URI as audience,
    // `x5t` next to `kid` in the header.
    let access_v1 = times(
        json!({
            "aud": "api://orders-api", "iss": v1, "acr": "1", "aio": "ATQAy/8TAAAA", "amr": ["pwd", "mfa"],
            "appid": spa, "appidacr": "0", "family_name": "Example", "given_name": "Alice",
            "ipaddr": "203.0.113.7", "name": "Alice Example", "oid": user, "rh": "0.AX0AQ7bN5JrU-kS",
            "scp": "Orders.Read", "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA", "tid": tenant,
            "unique_name": "alice@contoso.example", "upn": "alice@contoso.example",
            "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "1.0",
        }),
        true,
    );
    let mut v1_header = Header::new(Algorithm::RS256);
    v1_header.kid = Some(idp.key.kid.clone());
    v1_header.x5t = Some(idp.key.kid.clone());
    idp.accepts(
        "/orders/7",
        &idp.key.sign_with_header(&v1_header, &access_v1),
        &[("x-auth-subject", Some(user)), ("x-auth-tenant", Some(tenant)), ("x-auth-scopes", Some("Orders.Read"))],
    );

    // ID tokens (v2.0 and v1.0): for the single-page app's client id.
    let id_v2 = times(
        json!({
            "aud": spa, "iss": v2, "aio": "Df2UVXL1ix", "name": "Alice Example", "nonce": "123523",
            "oid": user, "preferred_username": "alice@contoso.example", "rh": "I3ZqHjTZ9Hk",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "tid": tenant, "uti": "Mn8lQhBc9UG", "ver": "2.0",
        }),
        true,
    );
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &id_v2), NOT_FOR_US);
    let id_v1 = changed(
        &id_v2,
        json!({"iss": v1, "ver": "1.0", "unique_name": "alice@contoso.example", "upn": "alice@contoso.example",
               "preferred_username": null}),
    );
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &id_v1), NOT_FOR_US);
    // Tokens for other APIs: Microsoft Graph (v1.0), another app (v2.0).
    let graph = changed(&access_v1, json!({"aud": "https://graph.microsoft.com", "scp": "User.Read"}));
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &graph), NOT_FOR_US);
    let other = changed(&access_v2, json!({"aud": "99998888-ffff-7777-eeee-6666dddd5555"}));
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &other), NOT_FOR_US);
    // The v2.0 audience under the v1.0 issuer is fine (a client may ask
    // for either), the App ID URI under the v2.0 issuer is not.
    let uri_in_v2 = changed(&access_v2, json!({"aud": "api://orders-api"}));
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &uri_in_v2), NOT_FOR_US);
}

#[test]
fn okta() {
    let idp = Idp::start("okta", "45js03w0djwedsw");
    let iss = "https://example.okta.com/oauth2/default";
    let client = "0oa1b2c3d4e5f6g7h8i9";
    // A custom authorization server's access token: no `typ` header, `scp`
    // an array, the client in `cid`, the user id in `uid`.
    let access = times(
        json!({
            "ver": 1, "jti": "AT.upfoOoeVVF3j4hsR3aCLoZMCj_-4aM7fhyyZcH2IClw", "iss": iss, "aud": "api://default",
            "cid": client, "uid": "00uk1u7AsAk6dZL3z0g3", "scp": ["openid", "email", "orders:read"],
            "auth_time": now() - 10, "sub": "alice@example.com", "groups": ["Everyone", "Orders"],
        }),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(None, &access),
        &[
            ("x-auth-subject", Some("alice@example.com")),
            ("x-auth-user-id", Some("00uk1u7AsAk6dZL3z0g3")),
            ("x-auth-client", Some(client)),
            ("x-auth-scopes", Some("Everyone Orders email openid orders:read")),
        ],
    );
    // Client credentials: `sub` is the client, no `uid`.
    let m2m = changed(
        &access,
        json!({"sub": client, "uid": null, "groups": null, "auth_time": null, "scp": ["orders:read"]}),
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(None, &m2m),
        &[("x-auth-subject", Some(client)), ("x-auth-user-id", None), ("x-auth-scopes", Some("orders:read"))],
    );

    // The ID token: for the client id, no `cid`.
    let id = times(
        json!({
            "ver": 1, "sub": "00uk1u7AsAk6dZL3z0g3", "iss": iss, "aud": client,
            "jti": "ID.4eAWJOCMB3SX8XewDfVR", "amr": ["pwd"], "idp": "00ok1u7AsAk6dZL3z0g2",
            "nonce": "n-0S6_WzA2Mj", "auth_time": now() - 10, "at_hash": "preview_at_hash",
            "name": "Alice Example", "email": "alice@example.com", "preferred_username": "alice@example.com",
        }),
        false,
    );
    idp.refuses("/orders/7", &idp.sign(None, &id), NOT_FOR_US);
    // Another authorization server's audience, another client.
    idp.refuses("/orders/7", &idp.sign(None, &changed(&access, json!({"aud": "api://billing"}))), NOT_FOR_US);
    idp.refuses(
        "/orders/7",
        &idp.sign(None, &changed(&access, json!({"cid": "0oa9z8y7x6w5v4u3t2s1"}))),
        NOT_REQUIRED_KIND,
    );
    // The org authorization server's tokens are for Okta's own APIs.
    let org = changed(&access, json!({"iss": "https://example.okta.com", "aud": "https://example.okta.com"}));
    idp.refuses("/orders/7", &idp.sign(Some("application/okta-internal-at+jwt"), &org), OTHER_ISSUER);
}

#[test]
fn amazon_cognito() {
    let idp = Idp::start("cognito", "abcdefghijklmnopqrsexample=");
    let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
    let client = "1example23456789abcdefghij";
    // A user pool access token: no `aud` and no `typ` header, the client in
    // `client_id`, `token_use: access`, groups in `cognito:groups`.
    let access = times(
        json!({
            "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "cognito:groups": ["admins"], "iss": iss,
            "version": 2, "client_id": client, "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "event_id": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa", "token_use": "access",
            "scope": "openid email orders-api/orders.read", "auth_time": now() - 10,
            "jti": "bbbbbbbb-cccc-dddd-eeee-ffffffffffff", "username": "alice",
        }),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(None, &access),
        &[
            ("x-auth-subject", Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")),
            ("x-auth-user", Some("alice")),
            ("x-auth-client", Some(client)),
            ("x-auth-groups", Some("admins")),
            ("x-auth-scopes", Some("admins email openid orders-api/orders.read")),
        ],
    );
    // Client credentials: `sub` is the client, no user.
    let m2m = times(
        json!({"sub": client, "token_use": "access", "scope": "orders-api/orders.read", "auth_time": now(),
               "iss": iss, "version": 2, "jti": "dddddddd-eeee-ffff-aaaa-bbbbbbbbbbbb", "client_id": client}),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(None, &m2m),
        &[("x-auth-subject", Some(client)), ("x-auth-user", None), ("x-auth-scopes", Some("orders-api/orders.read"))],
    );

    // The ID token: `token_use: id`, the client in `aud`, no `client_id`.
    let id = times(
        json!({
            "at_hash": "HaOZmPp8bnRUSzzqAyzsOw", "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "cognito:groups": ["admins"], "email_verified": true, "iss": iss, "cognito:username": "alice",
            "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "aud": client,
            "event_id": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa", "token_use": "id", "auth_time": now() - 10,
            "jti": "eeeeeeee-ffff-aaaa-bbbb-cccccccccccc", "email": "alice@example.com",
        }),
        false,
    );
    idp.refuses("/orders/7", &idp.sign(None, &id), NOT_REQUIRED_KIND);
    // Even with the client id copied into `client_id`, `token_use` refuses it.
    idp.refuses("/orders/7", &idp.sign(None, &changed(&id, json!({"client_id": client}))), NOT_REQUIRED_KIND);
    // An access token of another app client of the pool.
    let other = changed(&access, json!({"client_id": "7otherclient8901234567abcd"}));
    idp.refuses("/orders/7", &idp.sign(None, &other), NOT_FOR_US);
    // No `client_id` at all: no audience, never waved through.
    idp.refuses("/orders/7", &idp.sign(None, &changed(&access, json!({"client_id": null}))), "has no audience");
}

#[test]
fn google() {
    let idp = Idp::start("google", "6719678351a5faedc2e70274bbea62da2a8c4a12");
    let iss = "https://accounts.google.com";
    let caller = "orders-sync@example-project.iam.gserviceaccount.com";
    // A service account's ID token minted for this service's URL (metadata
    // server, `gcloud auth print-identity-token --audiences=…`, Cloud
    // Scheduler or Pub/Sub push): the only Google JWTs meant for an API.
    let sa = times(
        json!({
            "aud": "https://orders.example.com", "azp": "112233445566778899001", "email": caller,
            "email_verified": true, "iss": iss, "sub": "112233445566778899001",
        }),
        false,
    );
    idp.accepts(
        "/orders/7",
        &idp.sign(Some("JWT"), &sa),
        &[("x-auth-subject", Some("112233445566778899001")), ("x-auth-email", Some(caller))],
    );

    // Minted for another service.
    idp.refuses(
        "/orders/7",
        &idp.sign(Some("JWT"), &changed(&sa, json!({"aud": "https://billing.example.com"}))),
        NOT_FOR_US,
    );
    // Another caller, or an unverified address.
    let intruder = json!({"email": "intruder@other-project.iam.gserviceaccount.com", "sub": "998877665544332211009"});
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &changed(&sa, intruder)), NOT_REQUIRED_KIND);
    idp.refuses(
        "/orders/7",
        &idp.sign(Some("JWT"), &changed(&sa, json!({"email_verified": false}))),
        NOT_REQUIRED_KIND,
    );
    // A "Sign in with Google" ID token: for a web client id.
    let web = "1234567890-abc123def456.apps.googleusercontent.com";
    let sign_in = times(
        json!({
            "iss": iss, "azp": web, "aud": web, "sub": "110169484474386276334", "email": "alice@gmail.com",
            "email_verified": true, "at_hash": "X_B3Z3Fi4udZ2mf75RWo3w", "nonce": "0394852-3190485-2490358",
            "name": "Alice Example", "picture": "https://lh3.googleusercontent.com/a/photo.jpg",
            "given_name": "Alice", "family_name": "Example",
        }),
        false,
    );
    idp.refuses("/orders/7", &idp.sign(Some("JWT"), &sign_in), NOT_FOR_US);
    // Google's OAuth access tokens are opaque, and Google offers no RFC 7662
    // introspection: refused.
    let response = get_with_token(idp.proxy.addr, "/orders/7", "ya29.a0AfB_byC4mQ8xv2Rk7sLp1N9dWfEhT3uJ6yZ0");
    assert_eq!(response.status, 401);
}
