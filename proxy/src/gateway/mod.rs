//! The Pingora glue: a thin `ProxyHttp` whose phases call into
//! [`admission`] (decide), [`upstream`] (peer and request shaping),
//! [`respond`] (the proxy's own answers) and [`access_log`].

pub mod access_log;
pub mod admission;
pub mod body;
pub mod outcome;
pub mod respond;
pub mod upstream;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::runtime::Current;
use admission::RequestCtx;
use respond::Rejection;

/// The proxy service.
pub struct Gateway {
    current: Current,
    in_flight: Arc<AtomicUsize>,
}

impl Gateway {
    pub fn new(current: Current, in_flight: Arc<AtomicUsize>) -> Gateway {
        Gateway { current, in_flight }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::counted(&self.in_flight)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let runtime = self.current.load_full();
        let verdict = admission::admit(session, &runtime, ctx).await;
        ctx.runtime = Some(runtime);
        match verdict {
            Ok(()) => Ok(false),
            Err(rejection) => {
                ctx.local_status = Some(rejection.status);
                respond::send(session, &rejection).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let target = ctx.runtime.as_ref().zip(ctx.route).and_then(|(runtime, route)| runtime.upstream_of(route));
        match target {
            Some(target) => Ok(upstream::peer(target)),
            // Admission only lets matched routes through; this is unreachable
            // in practice and fails closed if not.
            None => Error::e_explain(ErrorType::InternalError, "no upstream for an admitted request"),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match &ctx.runtime {
            Some(runtime) => upstream::rewrite(upstream_request, runtime, ctx),
            None => Error::e_explain(ErrorType::InternalError, "request reached the upstream phase undecided"),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(target) =
            ctx.runtime.as_ref().zip(ctx.route).and_then(|(runtime, route)| runtime.upstream_of(route))
        {
            target.count_status(upstream_response.status.as_u16());
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let rejection = match (e.esource(), e.etype()) {
            (_, ErrorType::HTTPStatus(code)) => Some(Rejection::new(*code, "error", "request failed")),
            (
                ErrorSource::Upstream,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => Some(Rejection::new(504, "gateway_timeout", "the upstream did not answer in time")),
            (ErrorSource::Upstream, _) => Some(Rejection::new(502, "bad_gateway", "the upstream is unreachable")),
            (ErrorSource::Downstream, ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed) => {
                None
            }
            (ErrorSource::Downstream, _) => Some(Rejection::new(400, "invalid_request", "the request is malformed")),
            (ErrorSource::Internal | ErrorSource::Unset, _) => {
                Some(Rejection::new(500, "internal_error", "the proxy failed to handle the request"))
            }
        };
        let code = match rejection {
            Some(rejection) => {
                if let Err(error) = respond::send(session, &rejection).await {
                    tracing::debug!(%error, "could not send the error response");
                }
                rejection.status
            }
            None => 0,
        };
        if code != 0 {
            ctx.local_status = Some(code);
            if matches!(code, 502 | 504) {
                ctx.outcome = outcome::Outcome::UpstreamError;
            }
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        access_log::record(session, error, ctx);
    }
}
