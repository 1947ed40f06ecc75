//! The Pingora glue: a thin `ProxyHttp` whose phases each call into one
//! module: [`admission`] decides (with `hygiene`, `client`, `routing`,
//! `limits` and `authenticate` doing one job each), [`upstream`] picks the
//! peer and shapes the request, [`respond`] writes the proxy's own answers,
//! [`access_log`] records the outcome.

mod access_log;
mod admission;
mod authenticate;
mod body;
mod client;
mod cors;
mod forwarding;
mod hygiene;
mod limits;
mod overrides;
mod rejection;
mod request;
pub(crate) mod respond;
mod routing;
mod sessions;
mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};

use crate::labels::Outcome;
use crate::runtime::Current;
use crate::stripes::InFlightCount;
use admission::Admitted;
use request::RequestCtx;
use respond::Denied;

/// The proxy service.
pub(crate) struct Gateway {
    current: Current,
    in_flight: Arc<InFlightCount>,
}

impl Gateway {
    pub(crate) fn new(current: Current, in_flight: Arc<InFlightCount>) -> Gateway {
        Gateway { current, in_flight }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// A fresh context, counted as in flight until the request is done.
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.in_flight.enter())
    }

    /// HTTP/1.1 pipelining (RFC 9112 9.3.2): requests a client sends
    /// back to back are each read, admitted and answered in order, each in
    /// its own session through every phase here. Without this Pingora
    /// answered the first and closed the connection, dropping the rest.
    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<()> {
        session.set_pipelining_enabled(true);
        Ok(())
    }

    /// Admission: forward, or answer here and stop.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let runtime = self.current.hold();
        let verdict = admission::admit(session, &runtime, ctx).await;
        ctx.runtime = Some(runtime);
        match verdict {
            Ok(Admitted::Forward(outcome)) => {
                ctx.outcome = outcome;
                Ok(false)
            }
            Ok(Admitted::Document(body)) => {
                ctx.outcome = Outcome::Public;
                ctx.local_status = Some(200);
                respond::send_document(session, body).await?;
                Ok(true)
            }
            Ok(Admitted::Preflight(answer)) => {
                ctx.outcome = Outcome::Preflight;
                ctx.local_status = Some(204);
                cors::send_preflight(session, &answer).await?;
                Ok(true)
            }
            Err(Denied { outcome, mut rejection }) => {
                ctx.outcome = outcome;
                ctx.local_status = Some(rejection.status);
                // A refused preflight must give the browser nothing to use.
                if outcome != Outcome::CorsRefused {
                    let policy = ctx.runtime.as_ref().and_then(|runtime| runtime.cors_of(ctx.route));
                    cors::on_refusal(policy, session.req_header(), &mut rejection);
                }
                respond::send(session, &rejection).await?;
                Ok(true)
            }
        }
    }

    /// The matched route's upstream, resolved when the policy was applied.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let target = ctx.runtime.as_ref().zip(ctx.route).and_then(|(runtime, route)| runtime.upstream_of(route));
        match target {
            Some(target) => Ok(upstream::peer(target)),
            // Admission only lets matched routes through; this is unreachable
            // in practice and fails closed if not.
            None => Error::e_explain(ErrorType::InternalError, "no upstream for an admitted request"),
        }
    }

    /// What the upstream receives: identity headers, canonical target.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match &ctx.runtime {
            Some(runtime) => {
                let seen = client::seen(session, runtime.trusted_proxies(), ctx.client_ip);
                let connection = crate::tls::connection_tls(session);
                let certificate = crate::tls::client_certificate(connection.as_deref());
                upstream::rewrite(upstream_request, runtime, ctx, seen, certificate)
            }
            None => Error::e_explain(ErrorType::InternalError, "request reached the upstream phase undecided"),
        }
    }

    /// Count the upstream's answer by status class; a gateway error from
    /// the upstream itself counts as an upstream error.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if let Some(target) =
            ctx.runtime.as_ref().zip(ctx.route).and_then(|(runtime, route)| runtime.upstream_of(route))
        {
            target.count_status(status);
        }
        if matches!(status, 502 | 504) {
            ctx.outcome = Outcome::UpstreamError;
        }
        Ok(())
    }

    /// The answer the client receives from the upstream: the renewed
    /// session cookie, and CORS headers where the route has a policy.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let cookies = std::mem::take(&mut ctx.session_cookies);
        if !cookies.is_empty() {
            // A shared cache must never keep (and hand to others) an answer
            // that carries someone's session.
            upstream_response.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
        }
        for cookie in cookies {
            upstream_response.append_header(http::header::SET_COOKIE, cookie)?;
        }
        match ctx.runtime.as_ref().and_then(|runtime| runtime.cors_of(ctx.route)) {
            Some(policy) => cors::on_upstream_response(policy, session.req_header(), upstream_response),
            None => Ok(()),
        }
    }

    /// The answer to a failure: 502/504 for the upstream, 400 for a
    /// malformed request, nothing when the client is gone.
    async fn fail_to_proxy(&self, session: &mut Session, error: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let Some(Denied { outcome, mut rejection }) = Denied::proxy_failure(error, ctx.outcome) else {
            if respond::is_client_disconnect(error) {
                self.current.load().metrics().client_disconnects.inc();
            }
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        };
        let policy = ctx.runtime.as_ref().and_then(|runtime| runtime.cors_of(ctx.route));
        cors::on_refusal(policy, session.req_header(), &mut rejection);
        if let Err(error) = respond::send(session, &rejection).await {
            tracing::debug!(%error, "could not send the error response");
        }
        ctx.outcome = outcome;
        ctx.local_status = Some(rejection.status);
        FailToProxy { error_code: rejection.status, can_reuse_downstream: false }
    }

    /// Client disconnects are routine (counted, logged at debug); every
    /// other failure keeps Pingora's error line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        let disconnect = respond::is_client_disconnect(error);
        if disconnect {
            tracing::debug!(error = %error, "client closed the connection");
        }
        disconnect
    }

    /// One access line and the request metrics.
    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        access_log::record(session, error, ctx);
    }
}
