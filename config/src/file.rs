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

pub(crate) type Text = Spanned<String>;

/// The main configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub listen: Option<Text>,
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
    pub routes: Option<Vec<Spanned<RouteFile>>>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensFile {
    pub max_bytes: Option<Spanned<u64>>,
    /// Query parameter that may carry the token (off unless set).
    pub query_parameter: Option<Text>,
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
