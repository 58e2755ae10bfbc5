//! Generic forwarding of gRPC calls to the services behind the gateway.
//!
//! A call is routed by the service part of its path (`/package.Service/Method`) and streamed both
//! ways as HTTP/2 without decoding a message: headers (metadata, `grpc-timeout`) go up, the
//! response body and its trailers come back as the upstream sent them. When the client goes
//! away, dropping the response body resets the upstream stream, so cancellation reaches the
//! service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, Uri, Version};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::Status;
use tower::ServiceExt;

/// One service behind the gateway.
#[derive(Clone)]
pub struct Upstream {
    /// Short name for messages ("agent", "audit").
    pub name: &'static str,
    /// Base URL (scheme and authority).
    pub base: Uri,
    connection: Arc<Connection>,
}

/// The one HTTP/2 connection to an upstream that every forwarded call shares (HTTP/2 multiplexes
/// them), made when the first call needs it and made again when it closed. A call takes a handle
/// of it without waiting (a clone under a lock held for no await); only a call that finds it
/// missing or closed connects, the others that do wait for that connection instead of making
/// their own.
struct Connection {
    connector: HttpsConnector<HttpConnector>,
    sender: Mutex<Option<SendRequest<Body>>>,
    connecting: tokio::sync::Mutex<()>,
}

/// Why an upstream could not be reached.
type ConnectError = Box<dyn std::error::Error + Send + Sync>;

impl Connection {
    /// The open connection's handle, if there is one.
    fn open(&self) -> Option<SendRequest<Body>> {
        let sender = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sender.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    /// The open connection's handle, connecting to `base` first when there is none.
    async fn sender(&self, base: &Uri) -> Result<SendRequest<Body>, ConnectError> {
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let _one_at_a_time = self.connecting.lock().await;
        // Another call may have connected while this one waited.
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let io = self.connector.clone().oneshot(base.clone()).await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new()).handshake(io).await?;
        let upstream = base.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%upstream, error = %prfix_runtime::error::chain(&error), "upstream connection ended");
            }
        });
        *self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sender.clone());
        Ok(sender)
    }

    /// Sends `request` on the shared connection. A request the connection never took (it closed
    /// in between) is sent once more, on a new connection.
    async fn send(&self, base: &Uri, request: Request<Body>) -> Result<Response<hyper::body::Incoming>, ConnectError> {
        let mut sender = self.sender(base).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut error) => match error.take_message() {
                Some(request) => Ok(self.sender(base).await?.send_request(request).await?),
                None => Err(error.into_error().into()),
            },
        }
    }
}

impl Upstream {
    /// An HTTP/2 client for `base` (prior knowledge for `http://`, TLS with `tls` for `https://`),
    /// failing connects after `connect_timeout`.
    pub fn new(name: &'static str, base: Uri, connect_timeout: Duration, tls: rustls::ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http2()
            .wrap_connector(connector);
        let connection =
            Arc::new(Connection { connector, sender: Mutex::new(None), connecting: tokio::sync::Mutex::new(()) });
        Self { name, base, connection }
    }

    /// Sends `request` upstream and returns its response, or UNAVAILABLE naming the upstream.
    pub async fn forward(&self, request: Request<Body>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let mut uri = parts.uri.into_parts();
        uri.scheme = self.base.scheme().cloned();
        uri.authority = self.base.authority().cloned();
        parts.uri = match Uri::from_parts(uri) {
            Ok(uri) => uri,
            Err(e) => return Status::internal(format!("cannot build the upstream URI: {e}")).into_http(),
        };
        parts.version = Version::HTTP_2;
        // HTTP/2 carries the authority in the URI; a client's Host header must not leak upstream.
        parts.headers.remove(http::header::HOST);
        match self.connection.send(&self.base, Request::from_parts(parts, body)).await {
            Ok(response) => response.map(Body::new),
            Err(error) => {
                let reason = prfix_runtime::error::chain(&*error);
                tracing::warn!(upstream = self.name, base = %self.base, error = %reason, "upstream call failed");
                Status::unavailable(format!("upstream {} ({}) is unavailable: {reason}", self.name, self.base))
                    .into_http()
            }
        }
    }
}

/// The routing table: gRPC service name → upstream.
#[derive(Clone, Default)]
pub struct Upstreams {
    by_service: HashMap<&'static str, Upstream>,
}

impl Upstreams {
    /// Routes calls of `service` (`package.Service`) to `upstream`.
    pub fn route(mut self, service: &'static str, upstream: Upstream) -> Self {
        self.by_service.insert(service, upstream);
        self
    }

    /// The upstream serving `service`.
    pub fn get(&self, service: &str) -> Option<&Upstream> {
        self.by_service.get(service)
    }

    /// Every routed service with its upstream.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Upstream)> {
        self.by_service.iter().map(|(k, v)| (*k, v))
    }
}

/// The service part of a gRPC path (`/pkg.Service/Method` → `pkg.Service`).
pub fn service_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_come_from_the_path() {
        assert_eq!(service_of("/prfix.agent.v1.AgentService/GetTask"), Some("prfix.agent.v1.AgentService"));
        assert_eq!(service_of("/prfix.agent.v1.AgentService/"), None);
        assert_eq!(service_of("/nothing"), None);
        assert_eq!(service_of("/a/b/c"), None);
        assert_eq!(service_of(""), None);
    }
}
