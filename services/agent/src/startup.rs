//! Building and running the agent: bind first, prepare the database, then serve.

use std::net::SocketAddr;
use std::time::Duration;

use deadpool_postgres::Pool;
use prfix_proto::agent::v1::agent_service_server::AgentServiceServer;
use prfix_proto::service_names;
use prfix_runtime::db::{self, PrepareError};
use prfix_runtime::grpc::{self, Drain, Health};
use prfix_runtime::migrate::MigrationReport;
use prfix_runtime::shutdown::CancellationToken;
use tokio::net::TcpListener;
use tonic::service::Routes;

use std::sync::Arc;

use crate::grpc::AgentApi;
use crate::ollama::Ollama;
use crate::run::Engine;
use crate::settings::Settings;
use crate::worker::{Running, Workers};

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
    #[error("agent database: {0}")]
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
    /// The audit relay could not be set up.
    #[error("audit relay: {0}")]
    Audit(String),
    /// A forge connection could not be set up.
    #[error("agent.forges: {0}")]
    Forge(#[from] prfix_forge::ForgeError),
    /// The HTTP client for Ollama could not be built.
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The flags could not be set up.
    #[error("flags: {0}")]
    Flags(#[source] prfix_runtime::settings::SettingsError),
    /// The server failed while serving.
    #[error("agent server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A bound, ready-to-serve agent.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
    pool: Pool,
    report: MigrationReport,
    auth: prfix_auth::AuthLayer,
    tls: Option<tonic::transport::ServerTlsConfig>,
    drain: Drain,
    ollama: Ollama,
    settings: Settings,
    relay: Option<(prfix_runtime::outbox::Outbox, tonic::transport::Channel, secrecy::SecretString)>,
    flags: prfix_flags::Flags,
    forges: crate::forge::Forges,
}

impl Application {
    /// Binds the listener, then prepares the database (creating it and applying migrations).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listen = settings.agent.listen;
        let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
        let admin_listen = settings.agent.admin_listen;
        let (admin, admin_addr) = prfix_runtime::metrics::bind_admin(admin_listen)
            .await
            .map_err(|source| StartupError::Bind { addr: admin_listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?;
        let ollama = Ollama::new(
            settings.ollama_endpoints(),
            Duration::from_millis(settings.agent.ollama_connect_timeout_ms),
            Duration::from_millis(settings.agent.ollama_request_timeout_ms),
            settings.agent.default_context_tokens,
            settings.agent.ollama_parallel,
        )
        .map_err(StartupError::Http)?;
        // Flags before the database: a copy kept from Unleash is served from the first request on.
        let flags = prfix_flags::Flags::new(&settings.flags).map_err(StartupError::Flags)?;
        let (pool, report) = db::prepare(&settings.database(), crate::MIGRATIONS).await?;
        // Revocations from Postgres, kept current by LISTEN/NOTIFY; past the staleness bound every
        // token is refused until they are confirmed current again (fail closed).
        let revocations = prfix_auth::revocations::RevocationFeed::start(
            settings.database(),
            std::time::Duration::from_millis(settings.common.auth_revocations_max_staleness_ms),
        );
        let auth = prfix_auth::service_layer(&settings.common, Some(revocations as _))?;
        // The method's rate-limit class and the per-address limit on failed credentials apply at
        // this port as at the gateway, and refusals are audited (aggregated per address) into
        // its outbox: reaching the service directly gains nothing.
        let redis = prfix_runtime::redis::connect(&settings.common).await?;
        let sink = std::sync::Arc::new(prfix_runtime::outbox::Outbox::new(
            pool.clone(),
            "audit_outbox",
            settings.agent.audit_outbox_max,
        ));
        let auth = auth.with_guard(prfix_auth::layer::Guard::for_service("agent", &settings.common, redis, sink));
        let tls = grpc::server_tls(&settings.common)?;
        let relay = match &settings.audit_credential {
            Some(credential) => {
                let mut endpoint = tonic::transport::Channel::from_shared(settings.agent.audit_url.clone())
                    .map_err(|e| StartupError::Audit(format!("agent.audit_url `{}`: {e}", settings.agent.audit_url)))?;
                if settings.agent.audit_url.starts_with("https://") {
                    endpoint = endpoint
                        .tls_config(grpc::client_tls(&settings.common)?)
                        .map_err(|e| StartupError::Audit(e.to_string()))?;
                }
                let outbox =
                    prfix_runtime::outbox::Outbox::new(pool.clone(), "audit_outbox", settings.agent.audit_outbox_max);
                Some((outbox, endpoint.connect_lazy(), credential.clone()))
            }
            None => {
                tracing::warn!("PRFIX_AGENT_AUDIT_CREDENTIAL is not set: the agent's audit records wait in its outbox");
                None
            }
        };
        let forges = crate::forge::Forges::new(&settings)?;
        Ok(Self {
            forges,
            listener,
            addr,
            admin,
            admin_addr,
            pool,
            report,
            auth,
            tls,
            drain: settings.drain(),
            ollama,
            settings,
            relay,
            flags,
        })
    }

    /// The address actually bound (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the start-up migration run did.
    pub fn migration_report(&self) -> &MigrationReport {
        &self.report
    }

    /// The admin address actually bound (`/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The database pool (tests inspect tasks through it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let (health, health_service) = Health::new(&[service_names::AGENT]).await;
        let engine = Arc::new(Engine {
            limits: self.settings.call_limits(),
            retry: self.settings.retry_policy(),
            settings: self.settings.agent.clone(),
            ollama: self.ollama.clone(),
            redactor: prfix_engine::redact::Redactor::new(),
            pool: self.pool.clone(),
            changed: Arc::new(tokio::sync::Notify::new()),
            flags: self.flags.clone(),
            forges: self.forges.clone(),
        });
        let running = Running::default();
        let replica = worker_id(self.addr);
        // Every flag change this replica sees is audited (and may cancel tasks, when configured).
        self.flags.set_sink(Arc::new(crate::flag_changes::FlagChanges {
            outbox: prfix_runtime::outbox::Outbox::new(
                self.pool.clone(),
                "audit_outbox",
                self.settings.agent.audit_outbox_max,
            ),
            pool: self.pool.clone(),
            on_disable: self.settings.flags.on_disable,
            flags: self.flags.clone(),
            running: running.clone(),
            changed: engine.changed.clone(),
            replica: replica.clone(),
        }));
        // A change set may be as large as the limits allow, plus the message's own fields.
        let max_message = self.settings.agent.limits.max_total_bytes.saturating_add(1024 * 1024);
        let api = AgentServiceServer::new(AgentApi::new(engine.clone(), running.clone()))
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let routes = grpc::with_reflection(Routes::new(health_service).add_service(api))?;
        // Every call is checked against its method's policy here, whoever sent it: reaching the
        // service on the network grants nothing.
        let denials = self.auth.denials();
        let routes = Routes::from(
            routes.into_axum_router().layer(self.auth).layer(prfix_runtime::calls::GrpcMetricsLayer::new("agent")),
        );
        // Background work lives in this future: dropping it (a killed replica) stops all of it.
        let mut background = tokio::task::JoinSet::new();
        if let Some((outbox, channel, credential)) = self.relay {
            let tokens = Arc::new(prfix_runtime::outbox::StaticToken(credential));
            background.spawn(outbox.relay(channel, tokens, shutdown.clone()));
        }
        let pool = self.pool.clone();
        let refresh: prfix_runtime::metrics::Refresh = Box::new(move || {
            let pool = pool.clone();
            Box::pin(async move { crate::tasks::read_gauges(&pool).await })
        });
        background.spawn(prfix_runtime::metrics::serve_admin(self.admin, refresh, shutdown.clone()));
        background.spawn(
            self.ollama
                .clone()
                .health_loop(Duration::from_millis(self.settings.agent.ollama_health_interval_ms), shutdown.clone()),
        );
        let reload: Option<prfix_flags::Reload> = self.settings.reload_from.clone().map(|from| {
            let reload: prfix_flags::Reload = Arc::new(move || from.reload());
            reload
        });
        background.spawn(self.flags.clone().run(
            self.settings.flags.clone(),
            reload,
            replica.clone(),
            shutdown.clone(),
        ));
        let workers = Workers { id: replica, engine, running };
        background.spawn(workers.run(shutdown.clone()));
        tracing::info!(addr = %self.addr, admin = %self.admin_addr, "agent listening");
        grpc::serve(routes, self.listener, health, shutdown, self.drain, self.tls).await?;
        // Denials counted but not yet audited are written before the service ends.
        if let Some(denials) = denials {
            denials.flush_all().await;
        }
        // Workers hand their tasks back once `shutdown` fires; wait for that before returning.
        while background.join_next().await.is_some() {}
        tracing::info!("agent stopped");
        Ok(())
    }
}

/// The name this replica holds leases under: host, listening port and a random part.
fn worker_id(addr: SocketAddr) -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "agent".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", addr.port(), &random[..8])
}
