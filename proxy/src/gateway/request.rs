//! Per-request state carried between Pingora's phases, and the in-flight
//! count that graceful shutdown waits on.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::Identity;
use crate::labels::Outcome;
use crate::runtime::Runtime;

/// What one request has learnt so far, phase to phase.
pub(crate) struct RequestCtx {
    /// The policy this request is decided and forwarded under, loaded once.
    pub(crate) runtime: Option<Arc<Runtime>>,
    pub(crate) start: Instant,
    /// Index of the matched route in the runtime's route table.
    pub(crate) route: Option<usize>,
    /// Set once, from admission's verdict or a failure to proxy.
    pub(crate) outcome: Outcome,
    pub(crate) identity: Option<Arc<Identity>>,
    pub(crate) client_ip: Option<IpAddr>,
    /// Request target to send upstream when it differs from the client's.
    pub(crate) forwarded_target: Option<String>,
    /// Status answered by the proxy itself, for the access log.
    pub(crate) local_status: Option<u16>,
    /// Override headers the route let through (admission decided on them).
    pub(crate) kept_overrides: Vec<&'static str>,
    /// `Set-Cookie` values renewing the request's browser session, added
    /// to the upstream's answer.
    pub(crate) session_cookies: Vec<String>,
    /// Counts this request as in flight until the context is dropped.
    _in_flight: InFlight,
}

impl RequestCtx {
    /// A context counted in `in_flight`.
    pub(crate) fn counted(in_flight: &Arc<AtomicUsize>) -> RequestCtx {
        RequestCtx {
            runtime: None,
            start: Instant::now(),
            route: None,
            outcome: Outcome::Undecided,
            identity: None,
            client_ip: None,
            forwarded_target: None,
            local_status: None,
            kept_overrides: Vec::new(),
            session_cookies: Vec::new(),
            _in_flight: InFlight::new(in_flight),
        }
    }
}

/// Holds one unit of the in-flight count; graceful shutdown waits for zero.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_counts_as_in_flight_until_dropped() {
        let counter = Arc::new(AtomicUsize::new(0));
        let first = RequestCtx::counted(&counter);
        let second = RequestCtx::counted(&counter);
        assert_eq!(counter.load(Ordering::Acquire), 2);
        drop(first);
        assert_eq!(counter.load(Ordering::Acquire), 1);
        drop(second);
        assert_eq!(counter.load(Ordering::Acquire), 0);
    }
}
