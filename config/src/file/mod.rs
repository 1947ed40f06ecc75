//! The YAML file formats, exactly as operators write them.
//!
//! These types mirror the files and nothing more: every field optional where
//! the file may omit it, every value still text, every position kept
//! (`Spanned`) so that validation can point at the line. Unknown keys are
//! errors. `validate` turns them into the runtime model in `model`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

mod assertion;
mod replicas;
mod sessions;
mod tls;
pub(crate) use assertion::AssertionFile;
pub(crate) use replicas::{RedisFile, RevocationFile};
pub(crate) use sessions::{PrivateKeyJwtFile, SessionCookieFile, SessionsFile};
pub(crate) use tls::{ClientCertsFile, TlsFile};

pub(crate) type Text = Spanned<String>;

/// The main configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub listen: Option<Text>,
    /// Also accept HTTP/2 with prior knowledge (h2c) on `listen`.
    pub h2c: Option<Spanned<bool>>,
    /// `listen` serves HTTPS with these certificates.
    pub tls: Option<Spanned<TlsFile>>,
    pub admin_listen: Option<Text>,
    pub realm: Option<Text>,
    pub trusted_proxies: Option<Vec<Text>>,
    pub threads: Option<Spanned<u64>>,
    pub log_level: Option<Text>,
    pub log_format: Option<Text>,
    pub upstreams: Option<OrderedMap<UpstreamFile>>,
    pub issuers: Option<Vec<Spanned<IssuerFile>>>,
    pub identity_headers: Option<OrderedMap<Text>>,
    pub rate_limits: Option<OrderedMap<RateLimitFile>>,
    pub tokens: Option<Spanned<TokensFile>>,
    pub token_cache: Option<Spanned<TokenCacheFile>>,
    pub shutdown: Option<Spanned<ShutdownFile>>,
    pub policy_files: Option<Vec<Text>>,
    pub api_keys: Option<Spanned<ApiKeysFile>>,
    /// The CORS policy of every route that sets none of its own.
    pub cors: Option<Spanned<CorsFile>>,
    /// State shared by replicas: rate limits with `store: redis`, revocations.
    pub redis: Option<Spanned<RedisFile>>,
    /// Token revocation: how long entries must be kept.
    pub revocation: Option<Spanned<RevocationFile>>,
    /// Environment variable holding the bearer secret of the admin
    /// listener's write endpoints (`POST /revocations`).
    pub admin_token_env: Option<Text>,
    /// Browser sign-in (OpenID Connect code flow) and its session cookie.
    pub sessions: Option<Spanned<SessionsFile>>,
    /// A signed assertion of each authorised request, for upstreams.
    pub upstream_assertion: Option<Spanned<AssertionFile>>,
    pub routes: Option<Vec<Spanned<RouteFile>>>,
}

/// `cors:` in the main file or on a route; the names follow the
/// `Access-Control-Allow-*` headers they fill.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorsFile {
    /// Origins whose scripts may read answers; `[]` turns CORS off.
    pub allow_origins: Vec<Text>,
    pub allow_methods: Option<Vec<Text>>,
    pub allow_headers: Option<Vec<Text>>,
    pub expose_headers: Option<Vec<Text>>,
    pub allow_credentials: Option<Spanned<bool>>,
    pub max_age: Option<Text>,
}

/// `api_keys:` in the main file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeysFile {
    /// Key files (globs, relative to the main file).
    pub files: Vec<Text>,
    /// A header that carries the key, besides `Authorization: ApiKey`.
    pub header: Option<Text>,
    /// Names key entries may give as their `issuer`, for routes to list
    /// in `issuers:` like token issuers.
    pub issuers: Option<Vec<Text>>,
}

/// A key file: API key entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    pub keys: Option<Vec<Spanned<KeyEntryFile>>>,
}

/// One API key entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntryFile {
    pub id: Text,
    /// Hex SHA-256 of the key.
    pub sha256: Text,
    pub subject: Text,
    pub scopes: Option<Vec<Text>>,
    /// RFC 3339 UTC time (`2027-01-31T00:00:00Z`) or a date (`2027-01-31`).
    pub expires: Option<Text>,
    pub note: Option<Text>,
    /// One of `api_keys.issuers`: routes that name it in `issuers:` accept
    /// this key.
    pub issuer: Option<Text>,
}

/// A file named by `policy_files`: more routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    pub routes: Option<Vec<Spanned<RouteFile>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamFile {
    pub url: Text,
    pub connect_timeout: Option<Text>,
    pub read_timeout: Option<Text>,
    /// TLS server name when it differs from the URL's host.
    pub sni: Option<Text>,
    /// The forwarding headers portcullis sets from what it saw.
    pub forwarded_headers: Option<Vec<Text>>,
    /// Speak HTTP/2 to the upstream (h2c for `http://`, ALPN h2 for
    /// `https://`): gRPC needs it.
    pub http2: Option<Spanned<bool>>,
    /// `https://` upstreams: PEM CA bundle to verify the upstream with,
    /// instead of the system roots.
    pub ca_file: Option<Text>,
    /// `https://` upstreams: a client certificate (mTLS to the upstream).
    pub client_cert: Option<Text>,
    pub client_key: Option<Text>,
    /// `false` turns certificate verification off (explicitly; `check`
    /// warns).
    pub tls_verify: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssuerFile {
    pub name: Text,
    pub issuer: Text,
    pub jwks_uri: Option<Text>,
    pub audiences: Option<Vec<Text>>,
    /// Explicit opt-out of the audience check.
    pub allow_any_audience: Option<Spanned<bool>>,
    pub algorithms: Option<Vec<Text>>,
    pub leeway: Option<Text>,
    pub scope_claims: Option<Vec<Text>>,
    pub secret_env: Option<Text>,
    pub jwks_refresh: Option<Text>,
    pub min_refresh_interval: Option<Text>,
    pub http_timeout: Option<Text>,
    /// Accepted `typ` header values (case-insensitive); absent means any.
    pub token_types: Option<Vec<Text>>,
    pub introspection: Option<Spanned<IntrospectionFile>>,
    /// Claims that hold the token's audience (default `[aud]`).
    pub audience_claims: Option<Spanned<Vec<Text>>>,
    /// Claim path → the value, or values, every token of the issuer must carry.
    pub required_claims: Option<Spanned<OrderedMap<Spanned<ClaimValuesFile>>>>,
    /// Only certificate-bound tokens (RFC 8705 `cnf.x5t#S256`) are accepted.
    pub require_bound_tokens: Option<Spanned<bool>>,
}

/// A `required_claims` value: a string or boolean, or a list of them.
#[derive(Debug)]
pub(crate) struct ClaimValuesFile(pub Vec<ClaimScalarFile>);

/// One string or boolean claim value.
#[derive(Debug)]
pub(crate) enum ClaimScalarFile {
    String(String),
    Bool(bool),
}

impl<'de> Deserialize<'de> for ClaimScalarFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ClaimValuesFile(mut values) = deserializer.deserialize_any(ClaimValuesVisitor { list: false })?;
        values.pop().ok_or_else(|| de::Error::custom("expected a string or a boolean"))
    }
}

impl<'de> Deserialize<'de> for ClaimValuesFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimValuesVisitor { list: true })
    }
}

/// Reads a string or boolean as one value and, when `list`, a sequence of
/// them as several (a list inside the list is an error).
struct ClaimValuesVisitor {
    list: bool,
}

impl<'de> Visitor<'de> for ClaimValuesVisitor {
    type Value = ClaimValuesFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.list {
            "a string or boolean the claim must equal, or a list of them"
        } else {
            "a string or a boolean"
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ClaimValuesFile, E> {
        Ok(ClaimValuesFile(vec![ClaimScalarFile::String(v.to_owned())]))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ClaimValuesFile, E> {
        Ok(ClaimValuesFile(vec![ClaimScalarFile::Bool(v)]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ClaimValuesFile, A::Error> {
        if !self.list {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<ClaimScalarFile>()? {
            values.push(value);
        }
        Ok(ClaimValuesFile(values))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntrospectionFile {
    pub endpoint: Option<Text>,
    pub client_id: Option<Text>,
    pub client_id_env: Option<Text>,
    pub client_secret_env: Text,
    pub max_ttl: Option<Text>,
    pub negative_ttl: Option<Text>,
    pub max_entries: Option<Spanned<u64>>,
    /// Calls to the endpoint per second, at most (a flood of made-up opaque
    /// tokens must not become a flood at the IdP).
    pub max_calls_per_second: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitFile {
    pub key: Text,
    pub limit: Spanned<u64>,
    pub per: Text,
    pub burst: Option<Spanned<u64>>,
    pub max_keys: Option<Spanned<u64>>,
    pub ipv6_prefix: Option<Spanned<u8>>,
    /// `local` (default) or `redis`: shared by every replica.
    pub store: Option<Text>,
    /// With `store: redis`, when Redis fails: `local` (default), `allow`,
    /// `deny`.
    pub on_store_error: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensFile {
    pub max_bytes: Option<Spanned<u64>>,
    /// Query parameter that may carry the token (off unless set).
    pub query_parameter: Option<Text>,
    /// Invalid bearer tokens a client may send before its requests that
    /// need a verification get 429 (off unless set).
    pub failed_auth_budget: Option<Spanned<FailedAuthFile>>,
}

/// `tokens.failed_auth_budget`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailedAuthFile {
    pub limit: Spanned<u64>,
    pub per: Text,
    pub burst: Option<Spanned<u64>>,
    pub max_keys: Option<Spanned<u64>>,
    pub ipv6_prefix: Option<Spanned<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenCacheFile {
    pub max_entries: Option<Spanned<u64>>,
    pub ttl: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShutdownFile {
    pub grace_period: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub name: Option<Text>,
    pub path: Text,
    pub methods: Option<Vec<Text>>,
    pub hosts: Option<Vec<Text>>,
    pub upstream: Option<Text>,
    pub public: Option<Spanned<bool>>,
    pub scopes: Option<Vec<Text>>,
    pub any_scopes: Option<Vec<Text>>,
    pub issuers: Option<Vec<Text>>,
    pub rate_limit: Option<Spanned<OneOrMany>>,
    /// Claim conditions: claim path → condition.
    pub claims: Option<OrderedMap<Spanned<ClaimConditionFile>>>,
    /// Credential kinds accepted (`bearer`, `api_key`); default every
    /// configured kind.
    pub credentials: Option<Spanned<Vec<Text>>>,
    /// Method- or URL-override headers let through to the upstream.
    pub allow_override: Option<Vec<Text>>,
    /// This route's CORS policy, instead of the main file's.
    pub cors: Option<Spanned<CorsFile>>,
    /// A browser navigation without a session is sent to sign in.
    pub browser_login: Option<Spanned<bool>>,
    /// A verified client certificate is required, one of these.
    pub client_certs: Option<Spanned<ClientCertsFile>>,
}

/// One claim condition as written: a scalar the claim must equal (a string
/// `"{name}"` means the path segment captured by `{name}`), or a mapping
/// with exactly one of `any_of`, `all_of`, `none_of` (lists of strings) or
/// `exists` (a boolean).
#[derive(Debug)]
pub(crate) enum ClaimConditionFile {
    String(String),
    Number(f64),
    Bool(bool),
    Mapping(ClaimOperatorsFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimOperatorsFile {
    pub any_of: Option<Vec<Text>>,
    pub all_of: Option<Vec<Text>>,
    pub none_of: Option<Vec<Text>>,
    pub exists: Option<Spanned<bool>>,
}

impl<'de> Deserialize<'de> for ClaimConditionFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConditionVisitor;
        impl<'de> Visitor<'de> for ConditionVisitor {
            type Value = ClaimConditionFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean the claim must equal, or a mapping with one of any_of, all_of, none_of, exists")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClaimConditionFile, E> {
                Ok(ClaimConditionFile::String(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ClaimConditionFile, E> {
                Ok(ClaimConditionFile::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ClaimConditionFile, E> {
                Ok(ClaimConditionFile::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ClaimConditionFile, E> {
                Ok(ClaimConditionFile::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ClaimConditionFile, E> {
                Ok(ClaimConditionFile::Number(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ClaimConditionFile, A::Error> {
                let operators = ClaimOperatorsFile::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ClaimConditionFile::Mapping(operators))
            }
        }
        deserializer.deserialize_any(ConditionVisitor)
    }
}

/// `rate_limit: auth` or `rate_limit: [per-ip, per-user]`.
#[derive(Debug)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(OneOrMany(names))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

/// A YAML mapping read in file order, each key with its position. Duplicate
/// keys are refused by the parser before this sees them.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub Vec<(Text, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<Text, V>()? {
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}
