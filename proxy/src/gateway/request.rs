//! Per-request state carried between Pingora's phases.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::Identity;
use crate::labels::Outcome;
use crate::runtime::Runtime;
use crate::stripes::{Held, InFlight};

/// What one request has learnt so far, phase to phase.
pub(crate) struct RequestCtx {
    /// The policy this request is decided and forwarded under, loaded once.
    pub(crate) runtime: Option<Arc<Held<Runtime>>>,
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
    /// A context, counted as in flight until it is dropped.
    pub(crate) fn new(in_flight: InFlight) -> RequestCtx {
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
            _in_flight: in_flight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripes::InFlightCount;

    #[test]
    fn a_context_counts_as_in_flight_until_dropped() {
        let count = InFlightCount::new();
        let first = RequestCtx::new(count.enter());
        let second = RequestCtx::new(count.enter());
        assert_eq!(count.total(), 2);
        drop(first);
        assert_eq!(count.total(), 1);
        drop(second);
        assert_eq!(count.total(), 0);
    }
}
