//! Requests over the size limits get a proper answer: 431 for a header block over
//! `max_header_bytes`, 413 for a declared body over `max_request_bytes`, both as problems that
//! pass through the security-header layers like any other response.
//!
//! hyper refuses heads over its own buffer and header-list limits by itself, with a bare 431 (and
//! a reset stream on HTTP/2) that no layer of ours ever sees; so the accept loop
//! ([`crate::serve`]) sets hyper's limits to a hard ceiling above the configured one
//! ([`hard_ceiling`]) and this middleware enforces the configured limit. Bodies are refused by
//! their `content-length` before any byte is read; bodies without a length are limited while they
//! are read (the REST transcoder and the body-limit layer answer 413 then).
//!
//! An answer sent before the request body ended must not be followed by a reset: an HTTP/2 server
//! that drops a request body it has not read resets the stream (`RST_STREAM`, NO_ERROR once the
//! answer is out), and clients such as curl then report a stream error instead of the 413 they
//! were sent. So on HTTP/2 the accept loop wraps request bodies in [`Lingering`], which reads what
//! is left of a dropped body in the background, within [`linger_bytes`] and [`LINGER_TIME`],
//! and only then lets it go.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};

/// How long the rest of a dropped request body is read before the stream is let go (reset).
pub const LINGER_TIME: Duration = Duration::from_secs(10);

/// How much of a dropped request body is read before the stream is let go: four times the body
/// limit, at least 16 MiB. An upload far over the limit still ends in a reset after its answer.
pub fn linger_bytes(max_request_bytes: usize) -> usize {
    max_request_bytes.saturating_mul(4).max(16 * 1024 * 1024)
}

/// A request body that, when dropped before its end, is read to its end in the background
/// (within a byte and a time bound), so that the stream closes without a reset.
pub struct Lingering {
    inner: Option<Incoming>,
    bound: usize,
}

impl Lingering {
    /// Wraps `body`; at most `bound` more bytes are read after it is dropped.
    pub fn new(body: Incoming, bound: usize) -> Self {
        Self { inner: Some(body), bound }
    }
}

impl http_body::Body for Lingering {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        if http_body::Body::is_end_stream(&body) {
            return;
        }
        let bound = self.bound;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(LINGER_TIME, drain(body, bound)).await;
            });
        }
    }
}

/// Reads and discards `body` until it ends, fails, or `bound` bytes have been read.
async fn drain(mut body: Incoming, bound: usize) {
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
        if read > bound {
            return;
        }
    }
}

/// The configured header limit of the connection a request came in on, put into the request's
/// extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimit(pub usize);

/// hyper's own limits: four times the configured header limit, at least 64 KiB. Heads between
/// the two get this module's 431 with every header; only heads over the ceiling get hyper's bare
/// one.
pub fn hard_ceiling(max_header_bytes: usize) -> usize {
    max_header_bytes.saturating_mul(4).max(64 * 1024)
}

/// The size of the request's header block as HTTP/2 counts a header list (RFC 9113 §6.5.2: name,
/// value and 32 bytes per field, the pseudo-header fields included), whatever the protocol, so
/// that one limit means the same over HTTP/1.1 and HTTP/2.
pub fn header_list_size<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let pseudo = [
        (":method".len(), request.method().as_str().len()),
        (":scheme".len(), uri.scheme_str().map_or(4, str::len)),
        (":authority".len(), uri.authority().map_or(0, |a| a.as_str().len())),
        (":path".len(), uri.path_and_query().map_or(1, |p| p.as_str().len())),
    ];
    let pseudo: usize = pseudo.iter().map(|(name, value)| name + value + 32).sum();
    let fields: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum();
    pseudo + fields
}

/// What [`refuse`] needs: the body limit, and the webhooks, whose refusals are audited.
#[derive(Clone)]
pub struct Limits {
    /// `gateway.max_request_bytes`.
    pub max_request_bytes: usize,
    /// Audits a webhook delivery refused here.
    pub webhooks: crate::webhook::WebhookApi,
}

/// The middleware.
pub async fn refuse(
    State(limits): State<std::sync::Arc<Limits>>,
    request: Request<Body>,
    next: Next,
) -> Response<Body> {
    let max_request_bytes = limits.max_request_bytes;
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(HeadLimit(limit)) = request.extensions().get::<HeadLimit>().copied() {
        let size = header_list_size(&request);
        if size > limit {
            return crate::problem::response(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HEADERS_TOO_LARGE",
                &format!("the request's headers take {size} bytes, over the limit of {limit} bytes"),
                request_id,
                None,
            );
        }
    }
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > u64::try_from(max_request_bytes).unwrap_or(u64::MAX)
    {
        let detail = format!("the request body is over the limit of {max_request_bytes} bytes");
        limits.webhooks.refused_oversize(request.uri().path(), request.headers(), request.extensions(), &detail).await;
        return crate::problem::response(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &detail, request_id, None);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_list_counts_names_values_and_32_bytes_per_field() {
        let request = Request::get("/x").header("x-a", "bc").body(()).expect("a valid request");
        // :method GET, :scheme http (assumed), :authority empty, :path /x, then x-a: bc.
        let pseudo = (7 + 3 + 32) + (7 + 4 + 32) + (10 + 32) + (5 + 2 + 32);
        assert_eq!(header_list_size(&request), pseudo + 3 + 2 + 32);
    }

    #[test]
    fn the_ceiling_is_four_times_the_limit_and_at_least_64_kib() {
        assert_eq!(hard_ceiling(4 * 1024), 64 * 1024);
        assert_eq!(hard_ceiling(32 * 1024), 128 * 1024);
    }
}
