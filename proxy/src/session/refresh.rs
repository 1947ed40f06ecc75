//! Refreshing a session's access token once, however many requests of the
//! session arrive while it runs (single flight per session): the first
//! request calls the token endpoint, the others wait for its answer, and
//! the answer is kept a little while for requests that still carry the old
//! cookie (with refresh-token rotation, the old refresh token is spent).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::oidc::{TokenError, TokenSet};

/// How long an answer is kept for late requests with the old cookie.
const KEEP: Duration = Duration::from_secs(30);
/// Refreshes remembered at most; beyond, refreshes still work, without
/// sharing (bounded memory whatever the number of sessions).
const MAX_FLIGHTS: usize = 65_536;

type Answer = Result<TokenSet, TokenError>;

struct Flight {
    started: Instant,
    answer: Arc<OnceCell<Answer>>,
}

/// The refreshes in flight or just done, by session id. Shared by every
/// configuration (a reload must not split a flight in two).
#[derive(Default)]
pub(crate) struct Refreshes {
    flights: Mutex<HashMap<String, Flight>>,
}

impl Refreshes {
    pub(crate) fn new() -> Arc<Refreshes> {
        Arc::new(Refreshes::default())
    }

    /// The answer of the one refresh of `session` (started by this call
    /// when none is in flight). The lock is never held across the call.
    pub(crate) async fn run<F, Fut>(&self, session: &str, refresh: F) -> Answer
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        let cell = self.flight(session);
        match cell {
            Some(cell) => cell.get_or_init(refresh).await.clone(),
            None => refresh().await,
        }
    }

    fn flight(&self, session: &str) -> Option<Arc<OnceCell<Answer>>> {
        let mut flights = self.flights.lock().ok()?;
        let now = Instant::now();
        if let Some(flight) = flights.get(session).filter(|f| now.duration_since(f.started) < KEEP) {
            return Some(Arc::clone(&flight.answer));
        }
        if flights.len() >= MAX_FLIGHTS / 2 {
            flights.retain(|_, flight| now.duration_since(flight.started) < KEEP);
        }
        if flights.len() >= MAX_FLIGHTS {
            return None;
        }
        let answer = Arc::new(OnceCell::new());
        flights.insert(session.to_owned(), Flight { started: now, answer: Arc::clone(&answer) });
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_requests_of_one_session_refresh_once() {
        let refreshes = Refreshes::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (refreshes, calls) = (Arc::clone(&refreshes), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                refreshes
                    .run("s1", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(TokenSet { access_token: "new".into(), expires_at: 1, refresh_token: None, id_token: None })
                    })
                    .await
            }));
        }
        for task in tasks {
            let answer = task.await.expect("task");
            assert_eq!(answer.map(|t| t.access_token).ok().as_deref(), Some("new"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let other = refreshes.run("s2", || async { Err(TokenError::Refused(400)) }).await;
        assert_eq!(other.err(), Some(TokenError::Refused(400)));
    }
}
