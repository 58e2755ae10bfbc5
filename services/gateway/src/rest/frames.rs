//! Reading a gRPC answer for a REST client: length-prefixed messages, then the status in the
//! trailers (or in the headers of a trailers-only answer).

use axum::body::{Body, Bytes};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use prfix_transcode::Route;
use prost_reflect::DynamicMessage;

use crate::problem;

/// Splits whole messages off the front of `buffer`; `Err` for a compressed or oversized frame.
fn next_message(buffer: &mut Vec<u8>) -> Result<Option<Bytes>, String> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    if buffer[0] != 0 {
        return Err("the service sent a compressed message, which REST clients cannot read".to_owned());
    }
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if buffer.len() < 5 + len {
        return Ok(None);
    }
    let message = Bytes::copy_from_slice(&buffer[5..5 + len]);
    buffer.drain(..5 + len);
    Ok(Some(message))
}

fn json_of(route: &Route, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let message = DynamicMessage::decode(route.method.output(), bytes)
        .map_err(|e| format!("the service's answer does not decode: {e}"))?;
    Ok(prfix_transcode::response_json(route, &message))
}

/// A non-OK status as a problem, with `Retry-After` when the call was rate-limited.
fn failed(status: &tonic::Status, headers: &HeaderMap, request_id: &str) -> Response<Body> {
    let mut response = problem::from_status(status, request_id);
    if let Some(retry) = headers.get("retry-after") {
        response.headers_mut().insert(http::header::RETRY_AFTER, retry.clone());
    }
    response
}

fn internal(detail: &str, request_id: &str) -> Response<Body> {
    problem::response(StatusCode::BAD_GATEWAY, "INTERNAL", detail, request_id, None)
}

/// A unary answer as JSON.
pub async fn unary(route: &Route, response: Response<Body>, request_id: &str) -> Response<Body> {
    let (parts, body) = response.into_parts();
    if let Some(status) = tonic::Status::from_header_map(&parts.headers)
        && status.code() != tonic::Code::Ok
    {
        return failed(&status, &parts.headers, request_id);
    }
    let collected = match body.collect().await {
        Ok(c) => c,
        Err(e) => return internal(&format!("the service's answer broke off: {e}"), request_id),
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = tonic::Status::from_header_map(&trailers).or_else(|| tonic::Status::from_header_map(&parts.headers));
    match status {
        Some(status) if status.code() != tonic::Code::Ok => return failed(&status, &trailers, request_id),
        Some(_) => {}
        None => return internal("the service answered without a gRPC status", request_id),
    }
    let mut buffer = collected.to_bytes().to_vec();
    let message = match next_message(&mut buffer) {
        Ok(Some(m)) => m,
        Ok(None) => return internal("the service's answer holds no message", request_id),
        Err(e) => return internal(&e, request_id),
    };
    match json_of(route, &message) {
        Ok(json) => {
            let mut response = Response::new(Body::from(json.to_string()));
            response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => internal(&e, request_id),
    }
}

struct Streaming {
    body: Body,
    buffer: Vec<u8>,
    done: bool,
    /// Whether the trailers said OK.
    ok: bool,
    route: Route,
    sse: bool,
    request_id: String,
}

impl Streaming {
    fn line(&self, json: &serde_json::Value) -> Bytes {
        if self.sse { Bytes::from(format!("data: {json}\n\n")) } else { Bytes::from(format!("{json}\n")) }
    }

    fn error(&self, code: &str, status: StatusCode, detail: &str) -> Bytes {
        let problem = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
            "code": code,
            "request_id": self.request_id,
        });
        if self.sse {
            Bytes::from(format!("event: error\ndata: {problem}\n\n"))
        } else {
            Bytes::from(format!("{}\n", serde_json::json!({ "error": problem })))
        }
    }

    /// The next chunk for the client: a message, or the error that ended the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            match next_message(&mut self.buffer) {
                Ok(Some(message)) => {
                    return Some(match json_of(&self.route, &message) {
                        Ok(json) => self.line(&json),
                        Err(e) => {
                            self.done = true;
                            self.error("INTERNAL", StatusCode::BAD_GATEWAY, &e)
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(self.error("INTERNAL", StatusCode::BAD_GATEWAY, &e));
                }
            }
            match self.body.frame().await {
                None => {
                    self.done = true;
                    // A stream that ends without its OK status (or mid-message) did not finish.
                    if !self.ok || !self.buffer.is_empty() {
                        return Some(self.error(
                            "UNAVAILABLE",
                            StatusCode::BAD_GATEWAY,
                            "the stream ended without its final status",
                        ));
                    }
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(self.error(
                        "UNAVAILABLE",
                        StatusCode::BAD_GATEWAY,
                        &format!("the stream broke off: {e}"),
                    ));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        let status = frame.into_trailers().ok().and_then(|t| tonic::Status::from_header_map(&t));
                        self.ok = status.as_ref().is_some_and(|s| s.code() == tonic::Code::Ok);
                        if let Some(status) = status
                            && status.code() != tonic::Code::Ok
                        {
                            self.done = true;
                            return Some(self.error(
                                problem::code_name(status.code()),
                                problem::http_status(status.code()),
                                status.message(),
                            ));
                        }
                    }
                },
            }
        }
    }
}

/// A server stream as NDJSON (or server-sent events), a line per message as it arrives.
pub async fn stream(route: Route, response: Response<Body>, sse: bool, request_id: String) -> Response<Body> {
    let (parts, body) = response.into_parts();
    if let Some(status) = tonic::Status::from_header_map(&parts.headers)
        && status.code() != tonic::Code::Ok
    {
        return failed(&status, &parts.headers, &request_id);
    }
    let state = Streaming { body, buffer: Vec::new(), done: false, ok: false, route, sse, request_id };
    let chunks = futures::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), state))
    });
    let mut response = Response::new(Body::from_stream(chunks));
    let content_type = if sse { "text/event-stream" } else { "application/x-ndjson" };
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
