//! The gateway's HTTP surface on one port: local gRPC services (health, reflection, auth), the
//! JWKS, then generic forwarding by service name, then UNIMPLEMENTED for unknown gRPC services and
//! 404 for the rest.

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use prfix_proto::auth::v1::auth_service_server::AuthServiceServer;
use prfix_proto::forge::v1::webhook_service_server::WebhookServiceServer;
use prfix_runtime::grpc::with_reflection;
use tonic::Status;
use tonic::service::Routes;
use tonic_health::pb::health_server::HealthServer;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::auth::AuthApi;
use crate::edge::Edge;
use crate::health::GatewayHealth;
use crate::upstream::{Upstreams, service_of};

/// The OWASP secure headers every response carries, whatever produced it.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), microphone=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
    ("x-xss-protection", "0"),
    // No cross-origin resource may be embedded in an answer (nothing is meant to be framed or
    // embedded), and Flash/PDF cross-domain policy files are refused.
    ("cross-origin-embedder-policy", "require-corp"),
    ("x-permitted-cross-domain-policies", "none"),
];

/// What the gateway serves to browsers and scripts besides gRPC: REST transcoding and the console.
pub(crate) struct Web {
    /// REST/JSON routes and `/openapi.json`.
    pub rest: Arc<crate::rest::Rest>,
    /// The console's pages and sessions.
    pub console: Arc<crate::console::Console>,
}

/// Builds the router.
pub(crate) fn build(
    health: GatewayHealth,
    upstreams: Upstreams,
    auth: AuthApi,
    edge: Edge,
    cors_origins: &[String],
    limits: crate::oversize::Limits,
    web: Web,
) -> Result<axum::Router, tonic_reflection::server::Error> {
    let max_request_bytes = limits.max_request_bytes;
    let upstreams = Arc::new(upstreams);
    let jwks = Arc::new(auth.issuer.jwks());
    let local = with_reflection(
        Routes::new(HealthServer::new(health))
            .add_service(AuthServiceServer::new(auth))
            .add_service(WebhookServiceServer::new(limits.webhooks.clone())),
    )?;
    let router = local
        .into_axum_router()
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json((*jwks).clone()) }
            }),
        )
        .fallback(move |request: Request<Body>| {
            let upstreams = upstreams.clone();
            async move { dispatch(&upstreams, request).await }
        })
        // Innermost: authentication, policy and limits, after CORS has answered preflights. (The
        // states of middleware are cloned for every request: shared behind an `Arc`, not copied.)
        .layer(axum::middleware::from_fn_with_state(Arc::new(edge), crate::edge::check))
        // Bodies larger than the limit are refused (413) before anything reads them.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_request_bytes))
        // Calls by method and code, whatever protocol they came in (REST and gRPC-web arrive here as gRPC).
        .layer(prfix_runtime::calls::GrpcMetricsLayer::new("gateway"));
    // Before routing: gRPC-web (binary and text) and REST/JSON become gRPC calls of the routed API,
    // so the edge and the forwarding see one protocol; `/openapi.json` is served here too.
    let translated =
        tower::Layer::layer(&axum::middleware::from_fn_with_state(web.rest, crate::rest::handle), router.clone());
    // Before that: the console's pages and sessions, and a session cookie exchanged for a bearer
    // token (after the CSRF check), so REST transcoding and the edge see an ordinary REST call.
    let consoled =
        tower::Layer::layer(&axum::middleware::from_fn_with_state(web.console, crate::console::handle), translated);
    // A gRPC call (POST, not gRPC-web) goes straight to the routed API: the console and REST
    // layers would only pass it on (each a boxed future and a copy of the service per call).
    let steered = tower::service_fn(move |request: Request<Body>| {
        if request.method() == http::Method::POST
            && is_grpc(&request)
            && request.uri().path() != crate::console::SESSION_PATH
        {
            futures::future::Either::Left(tower::ServiceExt::oneshot(router.clone(), request))
        } else {
            futures::future::Either::Right(tower::ServiceExt::oneshot(consoled.clone(), request))
        }
    });
    let mut router = axum::Router::new().fallback_service(steered);
    let origins: Vec<HeaderValue> = cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
    if !origins.is_empty() {
        // Only configured origins, never `*`, and no credentials: bearer tokens travel in headers.
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    http::Method::GET,
                    http::Method::POST,
                    http::Method::PATCH,
                    http::Method::DELETE,
                    http::Method::PUT,
                ])
                .allow_headers([
                    http::header::AUTHORIZATION,
                    http::header::CONTENT_TYPE,
                    HeaderName::from_static("x-grpc-web"),
                    HeaderName::from_static("x-user-agent"),
                    HeaderName::from_static("grpc-timeout"),
                    HeaderName::from_static("x-request-id"),
                ])
                .expose_headers([
                    HeaderName::from_static("grpc-status"),
                    HeaderName::from_static("grpc-message"),
                    HeaderName::from_static("x-request-id"),
                    HeaderName::from_static("retry-after"),
                ]),
        );
    }
    // Heads and declared bodies over the limits are answered here, inside the security headers
    // (hyper's own, bare refusals stand at a higher ceiling: see `oversize`).
    router = router.layer(axum::middleware::from_fn_with_state(Arc::new(limits), crate::oversize::refuse));
    router = secured(router);
    let outer = ServiceBuilder::new()
        // Outermost: every request gets an id (the caller's fitting `x-request-id` or a new UUID)
        // before anything logs or is forwarded; upstreams receive it and the response carries it back.
        .layer(tower::util::MapRequestLayer::new(prfix_runtime::grpc::without_unfit_request_id))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // Then a span per request with method, request id and the W3C trace context (the caller's
        // `traceparent`, or a new trace); upstreams receive this hop as their parent.
        .layer(prfix_runtime::trace::TraceLayer);
    Ok(router.layer(outer))
}

/// Wraps `router` so that every response, a panic's 500 included, carries [`SECURITY_HEADERS`].
pub fn secured(router: axum::Router) -> axum::Router {
    // A panic in a handler becomes a 500, which the header layer outside it still marks. One layer
    // sets every header (no boxing, no allocation: the names and values are made once).
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower::util::MapResponseLayer::new(with_security_headers as fn(Response<Body>) -> Response<Body>))
}

/// [`SECURITY_HEADERS`] as header names and values, made once.
static SECURITY_HEADER_VALUES: std::sync::LazyLock<Vec<(HeaderName, HeaderValue)>> = std::sync::LazyLock::new(|| {
    SECURITY_HEADERS
        .iter()
        .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_static(value)))
        .collect()
});

/// Sets the security headers on `response`. The console's pages carry their own policy
/// (`default-src 'self'`, see `console`), which stays; every other answer gets the API's
/// `default-src 'none'` (no other handler sets one), and the other headers replace any a handler
/// or an upstream set.
fn with_security_headers(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADER_VALUES.iter() {
        if name == http::header::CONTENT_SECURITY_POLICY {
            headers.entry(name.clone()).or_insert_with(|| value.clone());
        } else {
            headers.insert(name.clone(), value.clone());
        }
    }
    response
}

fn is_grpc(request: &Request<Body>) -> bool {
    crate::edge::is_grpc(request) && !crate::edge::content_type_is(request, "application/grpc-web")
}

async fn dispatch(upstreams: &Upstreams, request: Request<Body>) -> Response<Body> {
    if !is_grpc(&request) {
        let mut response = Response::new(Body::from("no such route\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let path = request.uri().path().to_owned();
    match service_of(&path).and_then(|service| upstreams.get(service)) {
        Some(upstream) => upstream.forward(request).await,
        None => Status::unimplemented(format!("no service serves `{path}` at this gateway")).into_http(),
    }
}
