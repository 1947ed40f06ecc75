//! Browser sessions kept in Redis (`sessions.store: redis`): the session,
//! sealed as in a cookie, under `<prefix>session:<HMAC of its id>`, with a
//! time to live that is the idle timeout (capped by what is left of the
//! session's maximum age). The browser holds only the sealed id, so a
//! logout or an expiry ends the session on every replica at once.

use std::time::Duration;

use redis::AsyncCommands;

use super::{RedisStore, StoreError};

impl RedisStore {
    fn session_key(&self, id: &str) -> String {
        self.hashed_key("session", &[id.as_bytes()])
    }

    /// Store (or replace) a session for `ttl`.
    pub(crate) async fn put_session(&self, id: &str, sealed: String, ttl: Duration) -> Result<(), StoreError> {
        let key = self.session_key(id);
        let millis = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        self.run("session_put", move |mut connection| async move {
            connection.pset_ex::<_, _, ()>(key, sealed, millis).await
        })
        .await
    }

    /// The sealed session, or `None` when it ended (expired or logged out).
    pub(crate) async fn get_session(&self, id: &str) -> Result<Option<String>, StoreError> {
        let key = self.session_key(id);
        self.run("session_get", move |mut connection| async move { connection.get(key).await }).await
    }

    pub(crate) async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        let key = self.session_key(id);
        self.run("session_delete", move |mut connection| async move { connection.del::<_, ()>(key).await }).await
    }
}
