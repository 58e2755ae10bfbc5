//! Building and running the gateway: bind first, prepare the database, then serve.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use deadpool_postgres::Pool;
use prfix_proto::service_names;
use prfix_runtime::db::{self, PrepareError};
use prfix_runtime::grpc::Drain;
use prfix_runtime::migrate::MigrationReport;
use prfix_runtime::redis::{self, Redis, RedisError};
use prfix_runtime::shutdown::CancellationToken;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::health::{GatewayHealth, Readiness};
use crate::settings::Settings;
use crate::upstream::{Upstream, Upstreams};

/// Why the gateway could not start or stopped with an error.
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
    /// An upstream URL is not usable.
    #[error("invalid upstream URL `{url}`: {reason}")]
    Upstream {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The database could not be prepared.
    #[error("gateway database: {0}")]
    Database(#[from] PrepareError),
    /// Redis could not be set up.
    #[error("gateway redis: {0}")]
    Redis(#[from] RedisError),
    /// Reflection could not be built from the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while serving.
    #[error("gateway server: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, ready-to-serve gateway.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    pool: Pool,
    redis: Option<Redis>,
    report: MigrationReport,
    router: axum::Router,
    readiness: Readiness,
    drain: Drain,
}

fn upstream(
    name: &'static str,
    url: &str,
    connect_timeout: Duration,
) -> Result<(Upstream, HealthClient<Channel>), StartupError> {
    let invalid = |reason: String| StartupError::Upstream { url: url.to_owned(), reason };
    let base: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    let channel = Channel::from_shared(url.to_owned())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(connect_timeout)
        .connect_lazy();
    Ok((Upstream::new(name, base, connect_timeout), HealthClient::new(channel)))
}

impl Application {
    /// Binds the listener, prepares the database and builds the router.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listen = settings.gateway.listen;
        let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?;

        let connect_timeout = Duration::from_millis(settings.gateway.upstream_connect_timeout_ms);
        let (agent, agent_health) = upstream("agent", &settings.gateway.agent_url, connect_timeout)?;
        let (audit, audit_health) = upstream("audit", &settings.gateway.audit_url, connect_timeout)?;
        let upstreams = Upstreams::default().route(service_names::AGENT, agent).route(service_names::AUDIT, audit);
        let readiness = Readiness::new();
        let health = GatewayHealth::new(
            readiness.clone(),
            // The gateway's own services; AuthService joins when edge security serves it.
            Vec::new(),
            HashMap::from([(service_names::AGENT, agent_health), (service_names::AUDIT, audit_health)]),
        );
        let router = crate::router::build(health, upstreams)?;

        let (pool, report) = db::prepare(&settings.database(), crate::MIGRATIONS).await?;
        let redis = redis::connect(&settings.common).await?;
        Ok(Self { listener, addr, pool, redis, report, router, readiness, drain: settings.drain() })
    }

    /// The address actually bound (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the start-up migration run did.
    pub fn migration_report(&self) -> &MigrationReport {
        &self.report
    }

    /// The database pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The Redis client, when `redis_url` is set.
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_ref()
    }

    /// Serves until `shutdown` is cancelled, then drains: NOT_SERVING, `drain_delay`, in-flight
    /// calls finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let readiness = self.readiness.clone();
        let drain = self.drain;
        let stopping = shutdown.clone();
        let signal = async move {
            stopping.cancelled().await;
            readiness.set(ServingStatus::NotServing);
            tracing::info!(delay_ms = drain.delay.as_millis() as u64, "draining");
            tokio::time::sleep(drain.delay).await;
        };
        self.readiness.set(ServingStatus::Serving);
        tracing::info!(addr = %self.addr, "gateway listening");
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(signal).into_future();
        if let Some(result) = prfix_runtime::grpc::with_grace(server, shutdown, drain).await {
            result.map_err(StartupError::Serve)?;
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}
