//! `redis:`, `revocation:` and `admin_token_env`: what replicas share and
//! who may write to it. Credentials and the hashing key come from the
//! environment, never from the file; an unreachable Redis is not a
//! configuration error (the proxy starts and reports it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::values::{bounded, positive_duration};
use super::Validator;
use crate::diag::Reporter;
use crate::file::{RedisFile, RevocationFile, Text};
use crate::model::{RedisMode, RedisSettings, RevocationSettings, Secret};

const DEFAULT_KEY_PREFIX: &str = "portcullis:";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// A shorter HMAC key could be guessed offline from a stored key and a
/// known username.
const MIN_HASH_KEY_BYTES: usize = 16;

impl Validator<'_> {
    /// The `redis:` section; `None` when absent or invalid (reported).
    pub(super) fn redis(
        &self,
        file: Option<&Spanned<RedisFile>>,
        base: &Path,
        r: &mut Reporter<'_>,
    ) -> Option<RedisSettings> {
        let section = file?;
        let redis = &section.value;
        let mut urls: Vec<&Text> = redis.url.iter().collect();
        urls.extend(redis.urls.iter().flatten());
        if redis.url.is_some() && redis.urls.is_some() {
            r.error(section, "give either url (one server) or urls (cluster nodes or sentinels), not both");
        }
        let valid_urls: Vec<String> = urls.iter().filter_map(|u| redis_url(u, r)).collect();
        let mode = match redis.mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("standalone") => {
                if urls.len() != 1 {
                    r.error(section, "standalone mode needs exactly one server: url: redis://HOST:PORT");
                }
                Some(RedisMode::Standalone)
            }
            Some("cluster") => Some(RedisMode::Cluster),
            Some("sentinel") => match &redis.master_name {
                Some(name) => Some(RedisMode::Sentinel { master_name: name.value.clone() }),
                None => {
                    r.error(section, "sentinel mode needs master_name: the name the sentinels monitor");
                    None
                }
            },
            Some(other) => {
                let text = redis.mode.as_ref().unwrap_or_else(|| unreachable!("matched Some"));
                r.error(text, format!("'{other}' is not one of: standalone, cluster, sentinel"));
                None
            }
        };
        if urls.is_empty() {
            r.error(section, "redis needs url (one server) or urls (cluster nodes or sentinels)");
        }
        if let (Some(name), Some(mode)) = (&redis.master_name, &mode) {
            if !matches!(mode, RedisMode::Sentinel { .. }) {
                r.error(name, "master_name is only for mode: sentinel");
            }
        }
        let username = redis.username_env.as_ref().and_then(|env| self.secret_text(env, r));
        let password = redis.password_env.as_ref().and_then(|env| self.secret(env, r));
        let ca_file = redis.ca_file.as_ref().and_then(|text| ca_file(text, base, r));
        let key_prefix = match &redis.key_prefix {
            None => DEFAULT_KEY_PREFIX.to_owned(),
            Some(prefix) if prefix.value.is_empty() || !prefix.value.bytes().all(|b| b.is_ascii_graphic()) => {
                r.error(prefix, "key_prefix must be printable ASCII without spaces");
                DEFAULT_KEY_PREFIX.to_owned()
            }
            Some(prefix) => prefix.value.clone(),
        };
        let connect_timeout = timeout(redis.connect_timeout.as_ref(), DEFAULT_CONNECT_TIMEOUT, r);
        let command_timeout = timeout(redis.command_timeout.as_ref(), DEFAULT_COMMAND_TIMEOUT, r);
        let hash_key = self.secret(&redis.hash_key_env, r).filter(|key| {
            let long_enough = key.expose().len() >= MIN_HASH_KEY_BYTES;
            if !long_enough {
                r.error(&redis.hash_key_env, format!("the hashing key must be at least {MIN_HASH_KEY_BYTES} bytes (32 random bytes, base64, is the norm)"));
            }
            long_enough
        });
        let hash_key = match (hash_key, self.serving()) {
            (Some(key), _) => key,
            // `check` without the environment: validate the rest.
            (None, false) => Secret::new(vec![0u8; 32]),
            (None, true) => return None,
        };
        if valid_urls.len() != urls.len() {
            return None;
        }
        Some(RedisSettings {
            mode: mode?,
            urls: valid_urls,
            username,
            password,
            ca_file,
            key_prefix,
            connect_timeout,
            command_timeout,
            required_for_readiness: redis.required_for_readiness.as_ref().is_some_and(|r| r.value),
            hash_key,
        })
    }

    /// `admin_token_env`: the admin write endpoints' bearer secret.
    pub(super) fn admin_token(&self, env: Option<&Text>, r: &mut Reporter<'_>) -> Option<Secret> {
        let env = env?;
        let token = self.secret(env, r)?;
        if token.expose().len() < MIN_HASH_KEY_BYTES {
            r.error(env, format!("the admin token must be at least {MIN_HASH_KEY_BYTES} bytes"));
            return None;
        }
        Some(token)
    }

    fn secret_text(&self, env: &Text, r: &mut Reporter<'_>) -> Option<String> {
        self.secret(env, r).and_then(|secret| String::from_utf8(secret.expose().to_vec()).ok())
    }
}

/// `revocation:`; its defaults when absent.
pub(super) fn revocation(file: Option<&Spanned<RevocationFile>>, r: &mut Reporter<'_>) -> RevocationSettings {
    let defaults = RevocationSettings::default();
    let Some(section) = file else { return defaults };
    let max_token_lifetime = section
        .value
        .max_token_lifetime
        .as_ref()
        .and_then(|t| positive_duration(t, r))
        .unwrap_or(defaults.max_token_lifetime);
    let max_entries =
        bounded(section.value.max_entries.as_ref(), defaults.max_entries as u64, 1, 10_000_000, "max_entries", r);
    RevocationSettings { max_token_lifetime, max_entries }
}

/// `redis://[host][:port][/db]` or `rediss://…`; credentials in the URL
/// are refused (they belong in the environment).
fn redis_url(text: &Text, r: &mut Reporter<'_>) -> Option<String> {
    let url = text.value.as_str();
    let Some(rest) = url.strip_prefix("redis://").or_else(|| url.strip_prefix("rediss://")) else {
        r.error(text, format!("'{url}' is not a redis:// or rediss:// URL"));
        return None;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        r.error(text, "no credentials in the URL: use username_env and password_env");
        return None;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    let port_ok = authority.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_ok_and(|p| p > 0));
    if host.is_empty() || !port_ok {
        r.error(text, format!("'{url}' needs a host and an optional port: redis://HOST:PORT"));
        return None;
    }
    Some(url.to_owned())
}

fn ca_file(text: &Text, base: &Path, r: &mut Reporter<'_>) -> Option<PathBuf> {
    let path = base.join(&text.value);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Some(path),
        _ => {
            r.error(text, format!("cannot read CA file {}", path.display()));
            None
        }
    }
}

fn timeout(text: Option<&Text>, default: Duration, r: &mut Reporter<'_>) -> Duration {
    text.and_then(|t| positive_duration(t, r)).unwrap_or(default)
}
