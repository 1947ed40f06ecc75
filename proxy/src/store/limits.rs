//! Rate limits shared by replicas: the same GCRA as the local limiter
//! (`limit` per `per`, up to `burst` at once), decided by one server-side
//! script per request, one round trip, on Redis's clock. Each key expires
//! when its bucket is full again, so Redis holds only the keys active
//! within one period.

use std::sync::OnceLock;
use std::time::Duration;

use redis::Script;

use super::{RedisStore, StoreError};
use crate::ratelimit::{KeyValue, Limiter, Refusal};

/// GCRA over the theoretical arrival time (TAT), in microseconds of Redis's
/// `TIME`. KEYS[1]: the bucket; ARGV[1]: the emission interval (µs);
/// ARGV[2]: the burst. Returns {1, 0} (allowed) or {0, µs to wait}.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, 0}
";

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(GCRA))
}

impl RedisStore {
    /// Count one request for `key` under `limiter`, across every replica.
    pub(crate) async fn check_limit(
        &self,
        limiter: &Limiter,
        key: KeyValue<'_>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let config = &limiter.config;
        let bucket = self.hashed_key("rl", &[config.name.as_bytes(), &limiter.canonical_key(key)]);
        let interval = (config.per / config.limit.max(1)).as_micros().max(1) as u64;
        let burst = config.burst.max(1);
        let (allowed, wait_micros): (u8, u64) = self
            .run_here("rate_limit", move |mut connection| async move {
                script().key(bucket).arg(interval).arg(burst).invoke_async(&mut connection).await
            })
            .await?;
        if allowed == 1 {
            return Ok(Ok(()));
        }
        let wait = Duration::from_micros(wait_micros);
        Ok(Err(Refusal { retry_after: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1) }))
    }
}
