//! Generic forwarding of gRPC calls to the services behind the gateway.
//!
//! A call is routed by the service part of its path (`/package.Service/Method`) and streamed both
//! ways as HTTP/2 without decoding a message: headers (metadata, `grpc-timeout`) go up, the
//! response body and its trailers come back as the upstream sent them. When the client goes
//! away, dropping the response body resets the upstream stream, so cancellation reaches the
//! service.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::Status;

/// One service behind the gateway.
#[derive(Clone)]
pub struct Upstream {
    /// Short name for messages ("agent", "audit").
    pub name: &'static str,
    /// Base URL (scheme and authority).
    pub base: Uri,
    client: Client<HttpsConnector<HttpConnector>, Body>,
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
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        Self { name, base, client }
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
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => response.map(Body::new),
            Err(error) => {
                let reason = prfix_runtime::error::chain(&error);
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
