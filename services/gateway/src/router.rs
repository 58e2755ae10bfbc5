//! The gateway's HTTP surface on one port: local gRPC services (health, reflection), then generic
//! forwarding by service name, then UNIMPLEMENTED for unknown gRPC services and 404 for the rest.

use axum::body::Body;
use http::{Request, Response, StatusCode};
use prfix_runtime::grpc::{request_span, with_reflection};
use tonic::Status;
use tonic::service::Routes;
use tonic_health::pb::health_server::HealthServer;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::health::GatewayHealth;
use crate::upstream::{Upstreams, service_of};

/// Builds the router; `health` answers for every service, `upstreams` receive forwarded calls.
pub fn build(health: GatewayHealth, upstreams: Upstreams) -> Result<axum::Router, tonic_reflection::server::Error> {
    let local = with_reflection(Routes::new(HealthServer::new(health)))?;
    let layers = ServiceBuilder::new()
        // Outermost: every request gets an id (the caller's `x-request-id` or a new UUID) before
        // anything logs or is forwarded; upstreams receive it and the response carries it back.
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // Then a span per request with method and request id, so the gateway's log lines of one
        // call can be found together.
        .layer(TraceLayer::new_for_grpc().make_span_with(request_span));
    Ok(local
        .into_axum_router()
        .fallback(move |request: Request<Body>| {
            let upstreams = upstreams.clone();
            async move { dispatch(&upstreams, request).await }
        })
        .layer(layers))
}

fn is_grpc(request: &Request<Body>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc") && !ct.starts_with("application/grpc-web"))
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
