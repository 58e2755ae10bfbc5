//! Building and running the audit service: bind first, prepare the database, then serve.

use std::net::SocketAddr;

use deadpool_postgres::Pool;
use prfix_proto::audit::v1::audit_service_server::AuditServiceServer;
use prfix_proto::service_names;
use prfix_runtime::db::{self, PrepareError};
use prfix_runtime::grpc::{self, Drain, Health};
use prfix_runtime::migrate::MigrationReport;
use prfix_runtime::shutdown::CancellationToken;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::grpc::AuditApi;
use crate::settings::Settings;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be prepared.
    #[error("audit database: {0}")]
    Database(#[from] PrepareError),
    /// Authentication could not be set up.
    #[error("authentication: {0}")]
    Auth(#[from] prfix_auth::SetupError),
    /// Redis could not be set up.
    #[error("redis: {0}")]
    Redis(#[from] prfix_runtime::redis::RedisError),
    /// Service-to-service TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] grpc::InternalTlsError),
    /// Reflection could not be built from the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while serving.
    #[error("audit server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A bound, ready-to-serve audit service.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    pool: Pool,
    report: MigrationReport,
    auth: prfix_auth::AuthLayer,
    tls: Option<tonic::transport::ServerTlsConfig>,
    drain: Drain,
}

impl Application {
    /// Binds the listener, then prepares the database (creating it and applying migrations).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listen = settings.audit.listen;
        let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?;
        let (pool, report) = db::prepare(&settings.database(), crate::MIGRATIONS).await?;
        let revocations = prfix_runtime::redis::connect(&settings.common)
            .await?
            .map(|r| std::sync::Arc::new(prfix_auth::revocations::RedisRevocations::new(r)) as _);
        let auth = prfix_auth::service_layer(&settings.common, revocations)?;
        let tls = grpc::server_tls(&settings.common)?;
        Ok(Self { listener, addr, pool, report, auth, tls, drain: settings.drain() })
    }

    /// The address actually bound (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the start-up migration run did.
    pub fn migration_report(&self) -> &MigrationReport {
        &self.report
    }

    /// The database pool (tests inspect the log through it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let (health, health_service) = Health::new(&[service_names::AUDIT]).await;
        let routes = grpc::with_reflection(
            Routes::new(health_service).add_service(AuditServiceServer::new(AuditApi::new(self.pool.clone()))),
        )?;
        // Every call is checked against its method's policy here, whoever sent it: reaching the
        // service on the network grants nothing.
        let routes = Routes::from(routes.into_axum_router().layer(self.auth));
        tracing::info!(addr = %self.addr, "audit service listening");
        grpc::serve(routes, self.listener, health, shutdown, self.drain, self.tls).await?;
        tracing::info!("audit service stopped");
        Ok(())
    }
}
