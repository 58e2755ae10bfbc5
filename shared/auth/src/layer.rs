//! A tower layer that authenticates and authorizes every call to a gRPC server by the method's
//! policy, and puts the [`Principal`] into the request extensions for the handlers. With a
//! [`Guard`] it also does at the service's own port what the gateway does at the edge: refuses
//! addresses that keep failing before any key is touched, applies the method's rate-limit class,
//! and audits every refusal (aggregated per address), so that a caller who reaches a service
//! directly gains nothing.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use prfix_runtime::ratelimit::{Class, Limiter};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::address_limit::AddressLimiter;
use crate::claims::Principal;
use crate::denials::{Denial, Denials};
use crate::policy::{Decision, PolicyTable, authorize};
use crate::verifier::{AuthError, Verifier, bearer};

/// Checks a call to `path` with the `authorization` header value against the method's policy;
/// returns the principal when a token was verified.
pub async fn check(
    verifier: &Verifier,
    policies: &PolicyTable,
    path: &str,
    authorization: Option<&str>,
) -> Result<Option<Principal>, AuthError> {
    let policy = match policies.decide(path) {
        Decision::Open | Decision::Unknown => return Ok(None),
        Decision::NoPolicy => return Err(AuthError::Forbidden),
        Decision::Policy(policy) => policy,
    };
    if crate::policy::without_token(&policy) {
        return Ok(None);
    }
    let token = authorization.and_then(bearer).ok_or(AuthError::Missing)?;
    let principal = verifier.verify(token).await?;
    authorize(&policy, Some(&principal))?;
    Ok(Some(principal))
}

/// What a service enforces beyond the policy's roles.
pub struct Guard {
    /// Limits by the method's class, per principal (per address for anonymous calls).
    pub limiter: Arc<Limiter>,
    /// Failed or missing credentials per address, checked before verification.
    pub unauthenticated: Arc<AddressLimiter>,
    /// Where refusals are audited.
    pub denials: Arc<Denials>,
}

impl Guard {
    /// The guard of the service `scope` (`agent`, `audit`) from the shared settings: the limits
    /// of `service_limits` (shared through `redis` when given), `unauthenticated_limit` per
    /// address, and denials audited into `sink` per `denial_audit_window_ms`.
    pub fn for_service(
        scope: &'static str,
        common: &prfix_runtime::settings::CommonSettings,
        redis: Option<prfix_runtime::redis::Redis>,
        sink: Arc<dyn crate::denials::DenialSink>,
    ) -> Self {
        let limiter = Arc::new(Limiter::scoped(scope, common.service_limits, redis));
        // Buckets of keys seen once are forgotten once full again, so memory follows the callers.
        let pruned = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(limiter) = pruned.upgrade() else { return };
                limiter.prune();
            }
        });
        Self {
            limiter,
            unauthenticated: Arc::new(AddressLimiter::new(
                common.unauthenticated_limit,
                common.denial_audit_max_addresses,
            )),
            denials: Denials::start(
                sink,
                std::time::Duration::from_millis(common.denial_audit_window_ms),
                common.denial_audit_max_addresses,
                scope,
            ),
        }
    }
}

/// The layer; clone it into each server.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    policies: Arc<PolicyTable>,
    guard: Option<Arc<Guard>>,
}

impl AuthLayer {
    /// Enforces `policies` with tokens checked by `verifier`.
    pub fn new(verifier: Arc<Verifier>, policies: Arc<PolicyTable>) -> Self {
        Self { verifier, policies, guard: None }
    }

    /// The guard's audit of denials, whose open windows are to be written at shutdown.
    pub fn denials(&self) -> Option<Arc<Denials>> {
        self.guard.as_ref().map(|g| g.denials.clone())
    }

    /// Also limits and audits as `guard` says.
    #[must_use]
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = Some(Arc::new(guard));
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            policies: self.policies.clone(),
            guard: self.guard.clone(),
        }
    }
}

/// The service the layer makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    policies: Arc<PolicyTable>,
    guard: Option<Arc<Guard>>,
}

/// The client address of a call to a tonic server (plain or TLS), as text; empty when unknown.
pub fn client_address<B>(request: &Request<B>) -> String {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|c| c.get_ref().remote_addr()))
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// The name of an error's kind, for the `prfix_auth_failures_total` label.
pub fn failure_kind(error: &AuthError) -> String {
    format!("{error:?}").chars().take_while(char::is_ascii_alphanumeric).collect()
}

/// Why a guarded call is refused.
enum Refusal {
    Auth(AuthError),
    Limited(prfix_runtime::ratelimit::Denied),
}

impl Guard {
    /// The checks of one call, in order: policy, the address's failure budget (before any key),
    /// the credential, the roles, the class limit. Returns the principal, or the refusal with the
    /// principal known when it was refused.
    async fn check(
        &self,
        verifier: &Verifier,
        policies: &PolicyTable,
        path: &str,
        address: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Principal>, (Refusal, Option<Principal>)> {
        let policy = match policies.decide(path) {
            Decision::Open | Decision::Unknown => return Ok(None),
            Decision::NoPolicy => return Err((Refusal::Auth(AuthError::Forbidden), None)),
            Decision::Policy(policy) => policy,
        };
        let class = Class::from_proto(policy.rate_limit);
        let principal = if crate::policy::without_token(&policy) {
            None
        } else {
            if let Err(denied) = self.unauthenticated.admit(address) {
                decision("unauthenticated", false);
                return Err((Refusal::Limited(denied), None));
            }
            let verified = match authorization.and_then(bearer) {
                Some(token) => verifier.verify(token).await,
                None => Err(AuthError::Missing),
            };
            match verified {
                Ok(principal) => Some(principal),
                Err(error) => {
                    self.unauthenticated.failed(address);
                    return Err((Refusal::Auth(error), None));
                }
            }
        };
        if let Err(error) = authorize(&policy, principal.as_ref()) {
            return Err((Refusal::Auth(error), principal));
        }
        let key = principal.as_ref().map_or_else(|| format!("ip:{address}"), |p| format!("sub:{}", p.subject));
        let limited = self.limiter.check(class, &key).await;
        decision(class.name(), limited.is_ok());
        if let Err(denied) = limited {
            return Err((Refusal::Limited(denied), principal));
        }
        Ok(principal)
    }

    /// Audits a refusal and makes its status.
    async fn refuse(
        &self,
        refusal: Refusal,
        principal: Option<&Principal>,
        path: String,
        address: String,
        request_id: String,
        trace_id: String,
    ) -> tonic::Status {
        let (status, reason) = match refusal {
            Refusal::Auth(error) => {
                prfix_runtime::metrics::METRICS.auth_failures.with_label_values(&[&failure_kind(&error)]).inc();
                (error.to_status(), error.to_string())
            }
            Refusal::Limited(denied) => (denied.into_status(), "rate limited".to_owned()),
        };
        let denial = Denial {
            address,
            subject: principal.map(|p| p.subject.clone()),
            roles: principal.map(Principal::role_names).unwrap_or_default(),
            action: path,
            reason,
            request_id,
            trace_id,
        };
        self.denials.record(denial).await;
        status
    }
}

fn decision(class: &str, allowed: bool) {
    prfix_runtime::metrics::METRICS
        .rate_limit_decisions
        .with_label_values(&[class, if allowed { "allowed" } else { "denied" }])
        .inc();
}

fn header(request: &Request<impl Sized>, name: impl http::header::AsHeaderName) -> Option<String> {
    request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl<S, B, RB> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policies = self.policies.clone();
        let guard = self.guard.clone();
        let path = request.uri().path().to_owned();
        let authorization = header(&request, http::header::AUTHORIZATION);
        Box::pin(async move {
            let Some(guard) = guard else {
                return match check(&verifier, &policies, &path, authorization.as_deref()).await {
                    Ok(principal) => {
                        if let Some(principal) = principal {
                            prfix_runtime::trace::record_subject(&principal.subject);
                            request.extensions_mut().insert(principal);
                        }
                        inner.call(request).await
                    }
                    Err(error) => Ok(error.to_status().into_http()),
                };
            };
            let address = client_address(&request);
            match guard.check(&verifier, &policies, &path, &address, authorization.as_deref()).await {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        prfix_runtime::trace::record_subject(&principal.subject);
                        request.extensions_mut().insert(principal);
                    }
                    inner.call(request).await
                }
                Err((refusal, principal)) => {
                    let request_id = header(&request, "x-request-id").unwrap_or_default();
                    let trace_id = prfix_runtime::trace::TraceContext::from_headers(request.headers())
                        .map(|t| t.trace_id())
                        .unwrap_or_default();
                    let status = guard.refuse(refusal, principal.as_ref(), path, address, request_id, trace_id).await;
                    Ok(status.into_http())
                }
            }
        })
    }
}
