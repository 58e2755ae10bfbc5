//! REST/JSON for browsers and scripts, generic over the descriptor set: a request that matches a
//! method's `google.api.http` rule becomes that method's gRPC call, sent through the same edge
//! (authentication, policy, rate limits, audit) and routing as any gRPC call; the answer comes
//! back as proto3 JSON, server streams as NDJSON or server-sent events, errors as problem+json.
//! `GET /openapi.json` describes every route.

mod frames;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::middleware::Next;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prfix_transcode::{Match, Route, RouteMatch, Routes};
use prost::Message;

use crate::edge::{content_type_is, is_grpc};
use crate::problem;

/// The REST surface: routes and the OpenAPI document.
pub struct Rest {
    routes: Routes,
    openapi: Bytes,
    max_body: usize,
    /// Audits forge deliveries refused here for their size.
    webhooks: crate::webhook::WebhookApi,
}

/// Why the REST surface could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The descriptor set does not decode.
    #[error("the API's descriptor set does not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// A rule of the API is not valid.
    #[error("REST routes: {0}")]
    Routes(#[from] prfix_transcode::RouteError),
}

impl Rest {
    /// Routes of every method of the API, and its OpenAPI document.
    pub fn new(max_body: usize, webhooks: crate::webhook::WebhookApi) -> Result<Self, RestError> {
        let pool = prost_reflect::DescriptorPool::decode(prfix_proto::FILE_DESCRIPTOR_SET)?;
        let routes = Routes::from_pool(&pool)?;
        let info = prfix_transcode::OpenApiInfo {
            title: "pr-fix-agent".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Reviews and fixes of pull requests with local models, every call authenticated, \
                          limited and audited. The same API is served as gRPC, gRPC-web and this REST/JSON \
                          mapping on one port."
                .to_owned(),
        };
        let openapi = Bytes::from(prfix_transcode::openapi(&routes, &pool, info).to_string());
        Ok(Self { routes, openapi, max_body, webhooks })
    }
}

fn request_id<B>(request: &Request<B>) -> String {
    request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The middleware, before routing: gRPC-web is translated by tonic-web, REST requests are
/// transcoded, gRPC and everything else pass.
pub async fn handle(State(rest): State<Arc<Rest>>, request: Request<Body>, next: Next) -> Response<Body> {
    if content_type_is(&request, "application/grpc-web") {
        let next =
            tower::ServiceBuilder::new().map_request(|r: Request<tonic::body::Body>| r.map(Body::new)).service(next);
        let web = tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), next);
        return match tower::ServiceExt::oneshot(web, request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        };
    }
    if is_grpc(&request) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    if path == "/openapi.json" && request.method() == Method::GET {
        let mut response = Response::new(Body::from(rest.openapi.clone()));
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return response;
    }
    let id = request_id(&request);
    match rest.routes.find(request.method(), &path) {
        Match::Found(found) => transcode(&rest, found, request, next).await,
        Match::MethodNotAllowed { allowed } => {
            let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            let mut response = problem::response(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                &format!("{} is not allowed on {path}; allowed: {}", request.method(), names.join(", ")),
                &id,
                None,
            );
            if let Ok(value) = names.join(", ").parse() {
                response.headers_mut().insert(http::header::ALLOW, value);
            }
            response
        }
        Match::NotFound if path.starts_with("/v1/") || path == "/v1" => problem::response(
            StatusCode::NOT_FOUND,
            "ROUTE_NOT_FOUND",
            &format!("no route serves {} {path}; see /openapi.json", request.method()),
            &id,
            None,
        ),
        Match::NotFound => next.run(request).await,
    }
}

fn bad_request(error: &prfix_transcode::RequestError, id: &str) -> Response<Body> {
    let mut item = serde_json::json!({ "message": error.to_string() });
    if let (Some(field), Some(map)) = (error.field(), item.as_object_mut()) {
        map.insert("field".to_owned(), serde_json::Value::String(field.to_owned()));
    }
    let extra = serde_json::json!({ "errors": [item] });
    problem::response(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &error.to_string(), id, Some(extra))
}

/// Reads the body (within the limit), builds the gRPC call, runs it through the inner stack, and
/// turns its answer into JSON.
async fn transcode(rest: &Rest, found: RouteMatch<'_>, request: Request<Body>, next: Next) -> Response<Body> {
    let id = request_id(&request);
    let (parts, body) = request.into_parts();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let body = match http_body_util::Limited::new(body, rest.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            let detail = format!("the request body is over the limit of {} bytes", rest.max_body);
            rest.webhooks.refused_oversize(parts.uri.path(), &parts.headers, &parts.extensions, &detail).await;
            return problem::response(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &detail, &id, None);
        }
        Err(error) => {
            return problem::response(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &format!("cannot read the body: {error}"),
                &id,
                None,
            );
        }
    };
    // An HttpBody takes the bytes as they came, of any type (a forge's signed payload).
    if !found.route.raw_body()
        && !body.is_empty()
        && !content_type.is_empty()
        && !content_type.starts_with("application/json")
    {
        return problem::response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            &format!("the body must be application/json, not {content_type}"),
            &id,
            None,
        );
    }
    let message = match found.request_with_type(parts.uri.query(), content_type, &body) {
        Ok(message) => message,
        Err(error) => return bad_request(&error, &id),
    };
    let route = found.route;
    let grpc = grpc_request(route, &parts, message.encode_to_vec());
    let sse = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let response = next.run(grpc).await;
    if route.server_streaming() {
        frames::stream(route.clone(), response, sse, id).await
    } else {
        frames::unary(route, response, &id).await
    }
}

/// The gRPC request for a REST call: the method's path, the caller's credentials and request id,
/// the connection's extensions (client address) kept.
fn grpc_request(route: &Route, parts: &http::request::Parts, message: Vec<u8>) -> Request<Body> {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut request = Request::new(Body::from(framed));
    *request.method_mut() = Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    if let Ok(uri) = route.grpc_path().parse() {
        *request.uri_mut() = uri;
    }
    *request.extensions_mut() = parts.extensions.clone();
    let headers = request.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    for name in [http::header::AUTHORIZATION, http::header::USER_AGENT] {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    for name in ["x-request-id", "traceparent", "tracestate", "grpc-timeout"] {
        if let Some(value) = parts.headers.get(name) {
            headers.insert(name, value.clone());
        }
    }
    // A raw body's handler gets the sender's own headers too (a forge's signature, event and
    // delivery id), unchanged, as metadata.
    if route.raw_body() {
        for (name, value) in &parts.headers {
            if name.as_str().starts_with("x-") && !headers.contains_key(name) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    request
}
