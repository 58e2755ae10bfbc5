//! RFC 9457 problem responses (`application/problem+json`), the one error shape every non-gRPC
//! client gets: refusals at the edge, REST calls that fail, routes that do not exist.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};
use prfix_runtime::error::ErrorCode;

/// The canonical gRPC name of a code (`NOT_FOUND`), the stable `code` of a problem.
pub fn code_name(code: tonic::Code) -> &'static str {
    prfix_runtime::error::grpc_code_name(code)
}

/// The HTTP status a gRPC code maps to (the usual mapping: 400, 401, 403, 404, 409, 429, 499, 500,
/// 501, 503, 504).
pub fn http_status(code: tonic::Code) -> StatusCode {
    match code {
        tonic::Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        tonic::Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Aborted | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        tonic::Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        other => ErrorCode::from_grpc(other).http(),
    }
}

/// A problem response: `status`, a stable `code`, the `detail`, the request id, and any `extra`
/// members (e.g. `errors`).
pub fn response(
    status: StatusCode,
    code: &str,
    detail: &str,
    request_id: &str,
    extra: Option<serde_json::Value>,
) -> Response<Body> {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
        "request_id": request_id,
    });
    if let (Some(serde_json::Value::Object(extra)), Some(map)) = (extra, body.as_object_mut()) {
        map.extend(extra);
    }
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// A problem for a gRPC status.
pub fn from_status(status: &tonic::Status, request_id: &str) -> Response<Body> {
    response(http_status(status.code()), code_name(status.code()), status.message(), request_id, None)
}
