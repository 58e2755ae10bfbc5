//! The pieces every gRPC server of ours has: health that is NOT_SERVING until ready and during
//! drain, reflection v1 and v1alpha over the whole API, request ids and request spans in the caller's trace, and a
//! serve loop with graceful shutdown.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// The health reporter of a server, with the service names it answers for.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<String>,
}

impl Health {
    /// A reporter for the overall server ("") and `services`, all NOT_SERVING, and its gRPC service.
    pub async fn new(
        services: &[&str],
    ) -> (Self, tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let health = Self { reporter, services: services.iter().map(|s| (*s).to_owned()).collect() };
        health.set(ServingStatus::NotServing).await;
        (health, server)
    }

    /// Marks the server and its services SERVING.
    pub async fn serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    /// Marks the server and its services NOT_SERVING (start-up, drain).
    pub async fn not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// Adds reflection services (v1 and v1alpha: grpcurl speaks only v1alpha) over the whole prfix
/// API and the health service.
pub fn with_reflection(routes: Routes) -> Result<Routes, tonic_reflection::server::Error> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(prfix_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(prfix_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(routes.add_service(v1).add_service(v1alpha))
}

/// How a server stops.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Time between NOT_SERVING and closing the listener, for load balancers to notice.
    pub delay: Duration,
    /// Time in-flight calls then get to finish before their connections are closed (long streams
    /// such as watches would otherwise hold the process forever).
    pub grace: Duration,
}

/// Why service-to-service TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("internal TLS: {0}")]
pub struct InternalTlsError(pub String);

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, InternalTlsError> {
    std::fs::read(path).map_err(|e| InternalTlsError(format!("{}: {e}", path.display())))
}

/// The server side of service-to-service TLS, when a certificate is configured: the service's
/// identity, and the CA that client certificates must chain to when mutual TLS is required.
pub fn server_tls(
    common: &crate::settings::CommonSettings,
) -> Result<Option<tonic::transport::ServerTlsConfig>, InternalTlsError> {
    let (Some(cert), Some(key)) = (&common.internal_tls_cert_file, &common.internal_tls_key_file) else {
        return Ok(None);
    };
    let identity = tonic::transport::Identity::from_pem(read_pem(cert)?, read_pem(key)?);
    let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
    if common.internal_tls_require_client_cert {
        let ca = common.internal_tls_ca_file.as_deref().ok_or_else(|| InternalTlsError("no CA file".to_owned()))?;
        config =
            config.client_ca_root(tonic::transport::Certificate::from_pem(read_pem(ca)?)).client_auth_optional(false);
    }
    Ok(Some(config))
}

/// The client side for a tonic channel to an `https://` service: the CA to trust and, when
/// configured, this process's certificate for mutual TLS.
pub fn client_tls(
    common: &crate::settings::CommonSettings,
) -> Result<tonic::transport::ClientTlsConfig, InternalTlsError> {
    let mut config = tonic::transport::ClientTlsConfig::new();
    if let Some(ca) = &common.internal_tls_ca_file {
        config = config.ca_certificate(tonic::transport::Certificate::from_pem(read_pem(ca)?));
    }
    if let (Some(cert), Some(key)) = (&common.internal_tls_cert_file, &common.internal_tls_key_file) {
        config = config.identity(tonic::transport::Identity::from_pem(read_pem(cert)?, read_pem(key)?));
    }
    Ok(config)
}

/// Serves `routes` on `listener` until `shutdown` is cancelled, then drains: health goes
/// NOT_SERVING, load balancers get `drain.delay` to notice, in-flight calls get `drain.grace`.
pub async fn serve(
    routes: Routes,
    listener: TcpListener,
    health: Health,
    shutdown: CancellationToken,
    drain: Drain,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<(), tonic::transport::Error> {
    // Small answers go out at once: without TCP_NODELAY, Nagle's algorithm holds a response's last
    // segment until the client's delayed ACK (tens of milliseconds per call under load).
    let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });
    let signal = drain_signal(health.clone(), shutdown.clone(), drain.delay);
    health.serving().await;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        // Outermost: every request gets an id (the caller's fitting `x-request-id` or a new UUID)
        // before anything logs, and the id goes back in the response headers.
        .layer(tower::util::MapRequestLayer::new(without_unfit_request_id))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // Then a span per request carrying method, request id and the W3C trace context, which it
        // also hands on in the request's `traceparent`.
        .layer(crate::trace::TraceLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, signal);
    with_grace(server, shutdown, drain).await.unwrap_or(Ok(()))
}

/// The longest `x-request-id` a caller may choose.
pub const MAX_REQUEST_ID: usize = 200;

/// `request` without its `x-request-id` when the caller's is longer than [`MAX_REQUEST_ID`] or
/// holds anything but visible ASCII, so that the request-id layer gives it a new one. The id goes
/// into logs and into audit records, whose fields the audit service bounds: an id it would refuse
/// must not cost a call its access record.
pub fn without_unfit_request_id<B>(mut request: http::Request<B>) -> http::Request<B> {
    let fits = |id: &http::HeaderValue| {
        id.len() <= MAX_REQUEST_ID && !id.is_empty() && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
    };
    if request.headers().get("x-request-id").is_some_and(|id| !fits(id)) {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// Runs `server` to its end, or until `drain.delay + drain.grace` after `shutdown`, whichever
/// comes first; `None` when the grace ran out (the remaining connections are dropped).
pub async fn with_grace<F: std::future::Future>(
    server: F,
    shutdown: CancellationToken,
    drain: Drain,
) -> Option<F::Output> {
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(drain.delay + drain.grace).await;
    };
    tokio::select! {
        output = server => Some(output),
        () = deadline => {
            tracing::warn!(grace_ms = drain.grace.as_millis() as u64, "in-flight calls did not finish within the grace period; closing them");
            None
        }
    }
}

async fn drain_signal(health: Health, shutdown: CancellationToken, delay: Duration) {
    shutdown.cancelled().await;
    health.not_serving().await;
    tracing::info!(delay_ms = delay.as_millis() as u64, "draining");
    tokio::time::sleep(delay).await;
}
