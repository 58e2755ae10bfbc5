//! The edge check every gRPC call passes before it is served or forwarded: who is calling (access
//! token, or API key exchanged for a short-lived token), whether the method's policy lets them,
//! and whether their rate limit does. Denials are audited.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::middleware::Next;
use http::{Request, Response};
use prfix_auth::policy::authorize;
use prfix_auth::verifier::bearer;
use prfix_auth::{AuthError, Decision, PolicyTable, Principal, PrincipalKind, Verifier};
use prfix_proto::audit::v1::AuditResult;

use crate::auth::AuthApi;
use crate::auth::api_keys;
use crate::ratelimit::{Class, Limiter};
use crate::security_audit::{ClientInfo, SecurityEvent};

/// Lifetime of the token an API key is exchanged for.
const EXCHANGE_TTL: Duration = Duration::from_secs(300);

/// What the edge check needs.
#[derive(Clone)]
pub struct Edge {
    /// Policies by method.
    pub policies: Arc<PolicyTable>,
    /// Verifies the gateway's own tokens (with revocations).
    pub verifier: Arc<Verifier>,
    /// API keys, token minting, security events.
    pub auth: AuthApi,
    /// Rate limits.
    pub limiter: Arc<Limiter>,
    /// Access records of audited methods, shipped to the audit log by a relay.
    pub access: prfix_runtime::outbox::Outbox,
}

/// Whether the request's content type starts with `prefix`.
pub(crate) fn content_type_is<B>(request: &Request<B>, prefix: &str) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(prefix))
}

/// gRPC of any flavour (gRPC-web included).
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    content_type_is(request, "application/grpc")
}

impl Edge {
    /// Audits a refusal and answers it in the caller's protocol: a gRPC status, or for other
    /// clients an RFC 9457 problem with the usual HTTP status (and `Retry-After` and `RateLimit`
    /// headers when rate-limited).
    async fn deny(
        &self,
        client: &ClientInfo,
        call: &Call,
        principal: Option<&Principal>,
        refusal: Refusal,
    ) -> Response<Body> {
        let (status, reason, denied) = match refusal {
            Refusal::Auth(error) => {
                let kind = format!("{error:?}");
                let kind: String = kind.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                prfix_runtime::metrics::METRICS.auth_failures.with_label_values(&[&kind]).inc();
                (error.to_status(), error.to_string(), None)
            }
            Refusal::Limited(denied) => (denied.into_status(), "rate limited".to_owned(), Some(denied)),
        };
        let event = SecurityEvent {
            action: call.path.clone(),
            actor: principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject.clone()),
            roles: principal.map(Principal::role_names).unwrap_or_default(),
            resource: String::new(),
            result: AuditResult::Denied,
            reason,
        };
        self.auth.audit.record(event, client).await;
        if call.grpc {
            return status.into_http();
        }
        let mut response = crate::problem::from_status(&status, &client.request_id);
        let headers = response.headers_mut();
        if let Some(denied) = denied {
            let secs = denied.retry_after_secs();
            if let Ok(v) = secs.to_string().parse() {
                headers.insert(http::header::RETRY_AFTER, v);
            }
            if let Ok(v) = format!("limit={}, remaining=0, reset={secs}", denied.limit).parse() {
                headers.insert("ratelimit", v);
            }
        }
        response
    }

    /// The principal of a bearer credential; an API key is exchanged for a token, which replaces
    /// the credential so the services behind verify it themselves.
    async fn authenticate(&self, token: &str) -> Result<(Principal, Option<String>), AuthError> {
        if token.starts_with(api_keys::PREFIX) {
            let (subject, roles) = self.auth.authenticate_api_key(token).await?;
            let (exchanged, claims) = self
                .auth
                .issuer
                .mint_for(&subject, &roles, PrincipalKind::ApiKey, EXCHANGE_TTL)
                .map_err(AuthError::KeysUnavailable)?;
            let principal =
                Principal { subject, roles, kind: PrincipalKind::ApiKey, token_id: claims.jti, expires_at: claims.exp };
            return Ok((principal, Some(exchanged)));
        }
        Ok((self.verifier.verify(token).await?, None))
    }
}

/// What the edge knows of a call before checking it.
struct Call {
    path: String,
    grpc: bool,
}

/// Why a call is refused.
enum Refusal {
    Auth(AuthError),
    Limited(crate::ratelimit::Denied),
}

/// The middleware. Every request to a method of the API is checked by the method's policy,
/// whatever its protocol; other paths (JWKS, health, reflection, unknown) pass.
pub async fn check(State(edge): State<Edge>, mut request: Request<Body>, next: Next) -> Response<Body> {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    // The trace layer outside put this hop's span in `traceparent`.
    let trace = prfix_runtime::trace::TraceContext::from_headers(request.headers());
    let client = ClientInfo { ip: ip.clone(), request_id, trace };
    request.extensions_mut().insert(client.clone());
    let call = Call { path: request.uri().path().to_owned(), grpc: is_grpc(&request) };
    let policy = match edge.policies.decide(&call.path) {
        Decision::Open | Decision::Unknown => return next.run(request).await,
        Decision::NoPolicy => return edge.deny(&client, &call, None, Refusal::Auth(AuthError::Forbidden)).await,
        Decision::Policy(policy) => policy,
    };
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_owned);
    let mut principal = None;
    if let Some(token) = token {
        match edge.authenticate(&token).await {
            Ok((found, exchanged)) => {
                if let Some(exchanged) = exchanged
                    && let Ok(value) = format!("Bearer {exchanged}").parse()
                {
                    request.headers_mut().insert(http::header::AUTHORIZATION, value);
                }
                principal = Some(found);
            }
            // A public method ignores a bad credential; the others refuse it.
            Err(error) if !policy.public => return edge.deny(&client, &call, None, Refusal::Auth(error)).await,
            Err(_) => {}
        }
    }
    if let Err(error) = authorize(&policy, principal.as_ref()) {
        return edge.deny(&client, &call, principal.as_ref(), Refusal::Auth(error)).await;
    }
    let key = principal.as_ref().map_or_else(|| format!("ip:{ip}"), |p| format!("sub:{}", p.subject));
    let class = Class::from_proto(policy.rate_limit);
    let decision = edge.limiter.check(class, &key).await;
    prfix_runtime::metrics::METRICS
        .rate_limit_decisions
        .with_label_values(&[class.name(), if decision.is_ok() { "allowed" } else { "denied" }])
        .inc();
    if let Err(denied) = decision {
        return edge.deny(&client, &call, principal.as_ref(), Refusal::Limited(denied)).await;
    }
    if let Some(principal) = principal.clone() {
        request.extensions_mut().insert(principal);
    }
    let response = next.run(request).await;
    if policy.audit {
        edge.access.enqueue(&access_record(&call, &client, principal.as_ref(), &response)).await;
    }
    response
}

/// The access record of an audited call, with the outcome its response headers tell (a gRPC error
/// that comes in trailers after a streamed body counts as success here).
fn access_record(
    call: &Call,
    client: &ClientInfo,
    principal: Option<&Principal>,
    response: &Response<Body>,
) -> prfix_proto::audit::v1::AuditEvent {
    use prfix_proto::audit::v1 as pb;
    let grpc_status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
    let ok = response.status().is_success() && grpc_status == "0";
    let mut metadata = prost_types::Struct::default();
    metadata.fields.insert(
        "http_status".into(),
        prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(f64::from(response.status().as_u16()))) },
    );
    metadata.fields.insert(
        "grpc_status".into(),
        prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(grpc_status)) },
    );
    pb::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prfix_runtime::time::to_timestamp(chrono::Utc::now())),
        actor: Some(pb::Actor {
            subject: principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject.clone()),
            roles: principal.map(Principal::role_names).unwrap_or_default(),
        }),
        actor_ip: client.ip.clone(),
        action: call.path.clone(),
        result: if ok { pb::AuditResult::Success } else { pb::AuditResult::Failure } as i32,
        request_id: client.request_id.clone(),
        trace_id: client.trace_id(),
        metadata: Some(metadata),
        ..Default::default()
    }
}
