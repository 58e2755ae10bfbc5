//! The gateway's accept loop: HTTP/1.1 and HTTP/2 (prior knowledge or ALPN) on one port, TLS when
//! a certificate is configured, the header, stream and time limits of the edge, and a graceful
//! stop that gives in-flight calls a bounded grace period.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest request body, bytes (bounds how much of an unread body is read after an early
    /// answer).
    pub max_request_bytes: usize,
    /// Largest header block, bytes, counted as an HTTP/2 header list; enforced by
    /// [`crate::oversize`] with a 431 that carries the security headers (hyper's own limits stand
    /// at [`crate::oversize::hard_ceiling`] of it).
    pub max_header_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Time to receive a request's headers (HTTP/1) and to finish a TLS handshake.
    pub header_read_timeout: Duration,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsSetupError(pub String);

/// A TLS acceptor for the certificate chain and key in PEM files, offering h2 and http/1.1.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsSetupError(format!("{}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(TlsSetupError(format!("{}: no certificate", cert_file.display())));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsSetupError(format!("{}: {e}", key_file.display())))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsSetupError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until `stop` is cancelled, then closes the listener and gives
/// open connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    stop: CancellationToken,
    grace: Duration,
) {
    // hyper answers heads over its limits by itself (a bare 431, a reset stream), so its limits
    // stand above ours and the router answers the configured one with every header.
    let ceiling = crate::oversize::hard_ceiling(limits.max_header_bytes);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(ceiling);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Idle HTTP/2 connections are pinged and dropped when the peer is gone.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(ceiling).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let head_limit = crate::oversize::HeadLimit(limits.max_header_bytes);
        let linger = crate::oversize::linger_bytes(limits.max_request_bytes);
        let service = router.clone().map_request(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request.extensions_mut().insert(head_limit);
            // HTTP/2: a body answered before its end is read to its end, not reset (`oversize`).
            if request.version() == http::Version::HTTP_2 {
                request.map(|body| axum::body::Body::new(crate::oversize::Lingering::new(body, linger)))
            } else {
                request.map(axum::body::Body::new)
            }
        });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let handshake_limit = limits.header_read_timeout;
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(error) = watcher.watch(connection.into_owned()).await {
                            tracing::debug!(%remote, error = %error, "connection ended with an error");
                        }
                    }
                    Ok(Err(error)) => tracing::info!(%remote, %error, "TLS handshake failed"),
                    Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                },
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(%remote, error = %error, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "in-flight calls did not finish within the grace period; closing them"
        );
    }
}
