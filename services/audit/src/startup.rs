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

use std::sync::Arc;

use crate::checkpoint::{Signer, pem_to_pkcs8, pkcs8_to_pem};
use crate::checkpointer::Checkpointer;
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
    /// The checkpoint signing key is missing or unusable.
    #[error("checkpoint signing key: {0}")]
    SigningKey(String),
    /// The witnesses could not be set up.
    #[error("witnesses: {0}")]
    Witnesses(String),
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
    admin: TcpListener,
    admin_addr: SocketAddr,
    pool: Pool,
    /// The one writer of the log in this process (appends and the port's own denial records).
    writer: crate::writer::Writer,
    report: MigrationReport,
    auth: prfix_auth::AuthLayer,
    tls: Option<tonic::transport::ServerTlsConfig>,
    checkpointer: Checkpointer,
    checkpoint_every: i64,
    checkpoint_interval: std::time::Duration,
    previous_keys: Vec<crate::checkpoint::VerifierKey>,
    admission: crate::admission::Admission,
    drain: Drain,
}

impl Application {
    /// Binds the listener, then prepares the database (creating it and applying migrations).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listen = settings.audit.listen;
        let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
        let admin_listen = settings.audit.admin_listen;
        let (admin, admin_addr) = prfix_runtime::metrics::bind_admin(admin_listen)
            .await
            .map_err(|source| StartupError::Bind { addr: admin_listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?;
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
        // its own log: reaching the service directly gains nothing.
        let redis = prfix_runtime::redis::connect(&settings.common).await?;
        let writer = crate::writer::Writer::start(pool.clone());
        let sink = crate::denials::OwnLog::new(writer.clone());
        let auth = auth.with_guard(prfix_auth::layer::Guard::for_service("audit", &settings.common, redis, sink));
        let tls = grpc::server_tls(&settings.common)?;
        let signer = Arc::new(load_signer(&settings)?);
        let witnesses = crate::witness::cosigning::from_settings(&settings.audit).map_err(StartupError::Witnesses)?;
        let checkpointer =
            Checkpointer::new(pool.clone(), signer, settings.audit.origin.clone()).with_witnesses(witnesses);
        Ok(Self {
            admin,
            admin_addr,
            listener,
            addr,
            pool,
            writer,
            report,
            auth,
            tls,
            checkpointer,
            checkpoint_every: settings.audit.checkpoint_every,
            admission: crate::admission::Admission {
                max_clock_skew: std::time::Duration::from_secs(settings.audit.max_clock_skew_secs),
            },
            checkpoint_interval: std::time::Duration::from_millis(settings.audit.checkpoint_interval_ms),
            // Checked when the settings were read.
            previous_keys: settings
                .audit
                .previous_verifier_keys
                .iter()
                .filter_map(|k| crate::checkpoint::VerifierKey::parse(k).ok())
                .collect(),
            drain: settings.drain(),
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

    /// The key that verifies this log's checkpoints (`<name>+<hash>+<key>`).
    pub fn verifier_key(&self) -> String {
        self.checkpointer.verifier_key()
    }

    /// The database pool (tests inspect the log through it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Serves until `shutdown` is cancelled, then drains.
    /// The admin address actually bound (`/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let (health, health_service) = Health::new(&[service_names::AUDIT]).await;
        let routes = grpc::with_reflection(
            Routes::new(health_service).add_service(AuditServiceServer::new(
                AuditApi::new(
                    self.pool.clone(),
                    self.writer,
                    self.checkpointer.clone(),
                    self.checkpoint_every,
                    self.previous_keys,
                )
                .with_admission(self.admission),
            )),
        )?;
        // Every call is checked against its method's policy here, whoever sent it: reaching the
        // service on the network grants nothing.
        let denials = self.auth.denials();
        let routes = Routes::from(
            routes.into_axum_router().layer(self.auth).layer(prfix_runtime::calls::GrpcMetricsLayer::new("audit")),
        );
        let pool = self.pool.clone();
        let refresh: prfix_runtime::metrics::Refresh = Box::new(move || {
            let pool = pool.clone();
            Box::pin(async move {
                let metrics = &prfix_runtime::metrics::METRICS;
                metrics.pool("audit", &pool);
                // Only this service sets the checkpoint gauges: the others do not expose them at all.
                // On a database error they keep the last value read, like the other refreshed gauges.
                if let Ok(coverage) = crate::checkpointer::coverage(&pool).await {
                    metrics.uncovered_events.set(coverage.uncovered);
                    metrics.checkpoint_age_seconds.set(coverage.age_seconds);
                }
            })
        });
        tokio::spawn(prfix_runtime::metrics::serve_admin(self.admin, refresh, shutdown.clone()));
        tokio::spawn(self.checkpointer.clone().run(self.checkpoint_interval, shutdown.clone()));
        tracing::info!(addr = %self.addr, admin = %self.admin_addr, "audit service listening");
        grpc::serve(routes, self.listener, health, shutdown, self.drain, self.tls).await?;
        // Denials counted but not yet audited are written before the service ends.
        if let Some(denials) = denials {
            denials.flush_all().await;
        }
        tracing::info!("audit service stopped");
        Ok(())
    }
}

/// The checkpoint signer: from `audit.signing_key_file`, or (development) generated once in the
/// data directory. Never from the database.
fn load_signer(settings: &Settings) -> Result<Signer, StartupError> {
    let name = &settings.audit.key_name;
    let failed = |e: String| StartupError::SigningKey(e);
    if let Some(pem) = &settings.signing_key_pem {
        let der = pem_to_pkcs8(secrecy::ExposeSecret::expose_secret(pem))
            .map_err(|e| failed(format!("PRFIX_AUDIT_SIGNING_KEY: {e}")))?;
        return Signer::from_pkcs8(name, &der).map_err(|e| failed(format!("PRFIX_AUDIT_SIGNING_KEY: {e}")));
    }
    let path = match (&settings.audit.signing_key_file, settings.audit.development) {
        (Some(path), _) => path.clone(),
        (None, true) => settings.audit.data_dir.join("audit-signing-key.pem"),
        (None, false) => {
            return Err(failed(
                "set PRFIX_AUDIT_SIGNING_KEY (PEM) or audit.signing_key_file (PRFIX_AUDIT__SIGNING_KEY_FILE) to an Ed25519 PKCS#8 key"
                    .to_owned(),
            ));
        }
    };
    if path.exists() {
        let pem = std::fs::read_to_string(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        let der = pem_to_pkcs8(&pem).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        return Signer::from_pkcs8(name, &der).map_err(|e| failed(format!("{}: {e}", path.display())));
    }
    if settings.audit.signing_key_file.is_some() {
        return Err(failed(format!("{} does not exist", path.display())));
    }
    let (signer, der) = Signer::generate(name).map_err(|e| failed(e.to_string()))?;
    std::fs::create_dir_all(&settings.audit.data_dir).map_err(|e| failed(e.to_string()))?;
    prfix_runtime::binary::write_private(&path, &pkcs8_to_pem(&der))
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let _ =
        std::fs::write(settings.audit.data_dir.join("audit-verifier-key.txt"), format!("{}\n", signer.verifier_key()));
    tracing::warn!(path = %path.display(), "development mode: generated the checkpoint signing key; use your own in production");
    Ok(signer)
}
