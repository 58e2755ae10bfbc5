//! The edge check every gRPC call passes before it is served or forwarded: who is calling (access
//! token, or API key exchanged for a short-lived token), whether the method's policy lets them,
//! and whether their rate limit does. An address whose credentials keep failing is refused before
//! any key is touched. Denials are audited, aggregated per address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::middleware::Next;
use http::{Request, Response};
use prfix_auth::policy::{authorize, without_token};
use prfix_auth::verifier::bearer;
use prfix_auth::{AuthError, Decision, PolicyTable, Principal, PrincipalKind, Verifier};

use crate::auth::AuthApi;
use crate::auth::api_keys;
use crate::ratelimit::{Class, Limiter};
use crate::security_audit::ClientInfo;

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
    /// Failed or missing credentials per address, checked before any key is touched.
    pub unauthenticated: Arc<prfix_auth::address_limit::AddressLimiter>,
    /// Refusals, audited per address and window.
    pub denials: Arc<prfix_auth::denials::Denials>,
    /// Tokens API keys were exchanged for, reused until shortly before they expire.
    pub key_tokens: Arc<crate::auth::key_cache::KeyTokens>,
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
                let kind = prfix_auth::layer::failure_kind(&error);
                prfix_runtime::metrics::METRICS.auth_failures.with_label_values(&[&kind]).inc();
                (error.to_status(), error.to_string(), None)
            }
            Refusal::Limited(denied) => (denied.into_status(), "rate limited".to_owned(), Some(denied)),
        };
        let denial = prfix_auth::denials::Denial {
            address: client.ip.clone(),
            subject: principal.map(|p| p.subject.clone()),
            roles: principal.map(Principal::role_names).unwrap_or_default(),
            action: call.path.clone(),
            reason,
            request_id: client.request_id.clone(),
            trace_id: client.trace_id(),
        };
        self.denials.record(denial).await;
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
            // A token this key was exchanged for before, verified as any token is (so revoking the
            // key or its owner refuses it at once).
            if let Some(exchanged) = self.key_tokens.get(token) {
                match self.verifier.verify(&exchanged).await {
                    Ok(principal) => return Ok((principal, Some(exchanged))),
                    Err(_) => self.key_tokens.drop_key(token),
                }
            }
            // The key acts for its owner: the token's subject is the owner, and `key` names the key,
            // so what the key does belongs to the owner and records which credential did it.
            let holder = self.auth.authenticate_api_key(token).await?;
            let (exchanged, claims) = self
                .auth
                .issuer
                .mint_for(&holder.owner, &holder.roles, PrincipalKind::ApiKey, Some(&holder.key_id), EXCHANGE_TTL)
                .map_err(AuthError::KeysUnavailable)?;
            let principal = Principal {
                subject: holder.owner,
                roles: holder.roles,
                kind: PrincipalKind::ApiKey,
                token_id: claims.jti,
                expires_at: claims.exp,
                key_id: claims.key,
                issued_at: claims.iat,
            };
            self.key_tokens.put(token, exchanged.clone(), principal.expires_at, holder.expires_at);
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
pub async fn check(State(edge): State<Arc<Edge>>, mut request: Request<Body>, next: Next) -> Response<Body> {
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
    // A method authenticated by a forge's signature takes no token: a credential sent along is
    // ignored, so the call is limited by address and the handler's check decides.
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .filter(|_| !policy.forge_signature)
        .map(str::to_owned);
    // An address whose credentials keep failing is refused before any key (or key table) is
    // touched; a public method is served to it as to an anonymous caller.
    let admitted = edge.unauthenticated.admit(&ip);
    if let Err(denied) = admitted
        && !without_token(&policy)
    {
        limit_decision("unauthenticated", false);
        return edge.deny(&client, &call, None, Refusal::Limited(denied)).await;
    }
    let mut principal = None;
    if let Some(token) = token.filter(|_| admitted.is_ok()) {
        match edge.authenticate(&token).await {
            Ok((found, exchanged)) => {
                if let Some(exchanged) = exchanged
                    && let Ok(value) = format!("Bearer {exchanged}").parse()
                {
                    request.headers_mut().insert(http::header::AUTHORIZATION, value);
                }
                principal = Some(found);
            }
            // A public method ignores a bad credential; the others refuse it. Either way it counts
            // against the address.
            Err(error) => {
                edge.unauthenticated.failed(&ip);
                if !without_token(&policy) {
                    return edge.deny(&client, &call, None, Refusal::Auth(error)).await;
                }
            }
        }
    }
    if let Err(error) = authorize(&policy, principal.as_ref()) {
        if principal.is_none() {
            edge.unauthenticated.failed(&ip);
        }
        return edge.deny(&client, &call, principal.as_ref(), Refusal::Auth(error)).await;
    }
    let key = principal.as_ref().map_or_else(|| format!("ip:{ip}"), |p| format!("sub:{}", p.subject));
    let class = Class::from_proto(policy.rate_limit);
    let decision = edge.limiter.check(class, &key).await;
    limit_decision(class.name(), decision.is_ok());
    if let Err(denied) = decision {
        return edge.deny(&client, &call, principal.as_ref(), Refusal::Limited(denied)).await;
    }
    if let Some(principal) = principal.clone() {
        prfix_runtime::trace::record_subject(&principal.subject);
        request.extensions_mut().insert(principal);
    }
    let response = next.run(request).await;
    if policy.audit {
        edge.access.enqueue(&access_record(&call, &client, principal.as_ref(), &response)).await;
    }
    response
}

/// Counts a rate-limit decision of `class` (`unauthenticated`: the per-address failure budget).
fn limit_decision(class: &str, allowed: bool) {
    prfix_runtime::metrics::METRICS
        .rate_limit_decisions
        .with_label_values(&[class, if allowed { "allowed" } else { "denied" }])
        .inc();
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
