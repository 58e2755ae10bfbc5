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
use tonic::Status;

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
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl Edge {
    async fn deny(
        &self,
        client: &ClientInfo,
        path: &str,
        principal: Option<&Principal>,
        status: Status,
        reason: &str,
    ) -> Response<Body> {
        let event = SecurityEvent {
            action: path.to_owned(),
            actor: principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject.clone()),
            roles: principal.map(Principal::role_names).unwrap_or_default(),
            resource: String::new(),
            result: AuditResult::Denied,
            reason: reason.to_owned(),
        };
        self.auth.audit.record(event, client).await;
        status.into_http()
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

/// The middleware.
pub async fn check(State(edge): State<Edge>, mut request: Request<Body>, next: Next) -> Response<Body> {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let client = ClientInfo { ip: ip.clone(), request_id };
    request.extensions_mut().insert(client.clone());
    if !is_grpc(&request) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let policy = match edge.policies.decide(&path) {
        Decision::Open | Decision::Unknown => return next.run(request).await,
        Decision::NoPolicy => {
            return edge
                .deny(&client, &path, None, Status::permission_denied("permission denied"), "method has no policy")
                .await;
        }
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
            Err(error) if !policy.public => {
                let reason = error.to_string();
                return edge.deny(&client, &path, None, error.to_status(), &reason).await;
            }
            Err(_) => {}
        }
    }
    if let Err(error) = authorize(&policy, principal.as_ref()) {
        let reason = error.to_string();
        return edge.deny(&client, &path, principal.as_ref(), error.to_status(), &reason).await;
    }
    let key = principal.as_ref().map_or_else(|| format!("ip:{ip}"), |p| format!("sub:{}", p.subject));
    if let Err(denied) = edge.limiter.check(Class::from_proto(policy.rate_limit), &key).await {
        return edge.deny(&client, &path, principal.as_ref(), denied.into_status(), "rate limited").await;
    }
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}
