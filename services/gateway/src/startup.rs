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

use std::sync::Arc;

use prfix_auth::revocations::RevocationFeed;
use prfix_auth::{KeySource, PolicyTable, SigningKey, Verifier, VerifierConfig};
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::AuthApi;
use crate::auth::passwords::Passwords;
use crate::auth::store::Store;
use crate::auth::tokens::Issuer;
use crate::edge::Edge;
use crate::health::{GatewayHealth, Readiness};
use crate::ratelimit::Limiter;
use crate::security_audit::SecurityAudit;
use crate::settings::Mode;
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
    /// No signing key was given in production mode, or one could not be read.
    #[error("signing key: {0}")]
    SigningKey(String),
    /// The TLS certificate or key could not be used.
    #[error("{0}")]
    Tls(String),
    /// The first admin could not be created.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// The policy table could not be read.
    #[error("policy: {0}")]
    Policy(#[from] prfix_auth::policy::PolicyError),
    /// The REST routes could not be built from the descriptor set.
    #[error("{0}")]
    Rest(#[from] crate::rest::RestError),
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
    admin: TcpListener,
    admin_addr: SocketAddr,
    pool: Pool,
    redis: Option<Redis>,
    report: MigrationReport,
    router: axum::Router,
    readiness: Readiness,
    generated_admin_password: Option<String>,
    jwks: prfix_auth::Jwks,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: crate::serve::ConnectionLimits,
    access: prfix_runtime::outbox::Outbox,
    audit_channel: Channel,
    security_audit: SecurityAudit,
    /// Denials counted at the edge; their open windows are written at shutdown.
    denials: Arc<prfix_auth::denials::Denials>,
    auth: AuthApi,
    drain: Drain,
}

/// A channel to an upstream service, with TLS for `https://` URLs.
pub(crate) fn channel(
    url: &str,
    connect_timeout: Duration,
    common: &prfix_runtime::settings::CommonSettings,
) -> Result<Channel, StartupError> {
    let invalid = |reason: String| StartupError::Upstream { url: url.to_owned(), reason };
    let mut endpoint =
        Channel::from_shared(url.to_owned()).map_err(|e| invalid(e.to_string()))?.connect_timeout(connect_timeout);
    if url.starts_with("https://") {
        let tls = prfix_runtime::grpc::client_tls(common).map_err(|e| invalid(e.to_string()))?;
        endpoint = endpoint.tls_config(tls).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

/// rustls settings toward the services: trust the internal CA, present our certificate when one
/// is configured (mutual TLS).
fn upstream_tls(common: &prfix_runtime::settings::CommonSettings) -> Result<rustls::ClientConfig, StartupError> {
    let failed = |reason: String| StartupError::Tls(format!("internal TLS: {reason}"));
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &common.internal_tls_ca_file {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| failed(format!("{}: {e}", ca.display())))?;
        for cert in certs {
            roots.add(cert).map_err(|e| failed(format!("{}: {e}", ca.display())))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_root_certificates(roots);
    match (&common.internal_tls_cert_file, &common.internal_tls_key_file) {
        (Some(cert), Some(key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| failed(format!("{}: {e}", cert.display())))?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| failed(format!("{}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| failed(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn upstream(
    name: &'static str,
    url: &str,
    connect_timeout: Duration,
    common: &prfix_runtime::settings::CommonSettings,
    tls: &rustls::ClientConfig,
) -> Result<(Upstream, HealthClient<Channel>), StartupError> {
    let invalid = |reason: String| StartupError::Upstream { url: url.to_owned(), reason };
    let base: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    let channel = channel(url, connect_timeout, common)?;
    Ok((Upstream::new(name, base, connect_timeout, tls.clone()), HealthClient::new(channel)))
}

impl Application {
    /// Binds the listener, prepares the database and builds the router.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listen = settings.gateway.listen;
        let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?;
        let admin_listen = settings.gateway.admin_listen;
        let (admin, admin_addr) = prfix_runtime::metrics::bind_admin(admin_listen)
            .await
            .map_err(|source| StartupError::Bind { addr: admin_listen, source })?;

        let connect_timeout = Duration::from_millis(settings.gateway.upstream_connect_timeout_ms);
        let tls = upstream_tls(&settings.common)?;
        let (agent, agent_health) =
            upstream("agent", &settings.gateway.agent_url, connect_timeout, &settings.common, &tls)?;
        let (audit, audit_health) =
            upstream("audit", &settings.gateway.audit_url, connect_timeout, &settings.common, &tls)?;
        let upstreams = Upstreams::default().route(service_names::AGENT, agent).route(service_names::AUDIT, audit);
        let readiness = Readiness::new();
        let health = GatewayHealth::new(
            readiness.clone(),
            // The gateway's own services; AuthService joins when edge security serves it.
            Vec::new(),
            HashMap::from([(service_names::AGENT, agent_health), (service_names::AUDIT, audit_health)]),
        );

        let (pool, report) = db::prepare(&settings.database(), crate::MIGRATIONS).await?;
        let redis = redis::connect(&settings.common).await?;

        // Revocations from Postgres, kept current by LISTEN/NOTIFY; the gateway refuses tokens
        // when it cannot confirm them current, as the services do.
        let revocations = RevocationFeed::start(
            settings.database(),
            Duration::from_millis(settings.common.auth_revocations_max_staleness_ms),
        );
        let issuer = Arc::new(
            Issuer::new(
                load_keys(&settings)?,
                settings.common.auth_issuer.clone(),
                settings.common.auth_audience.clone(),
                Duration::from_secs(settings.gateway.access_token_ttl_secs),
            )
            .with_revocations(revocations.clone()),
        );
        let verifier = Arc::new(
            Verifier::new(
                VerifierConfig {
                    issuer: settings.common.auth_issuer.clone(),
                    audience: settings.common.auth_audience.clone(),
                    leeway: Duration::from_secs(30),
                    keys: KeySource::Static(issuer.jwks()),
                },
                Some(revocations.clone() as Arc<dyn prfix_auth::verifier::Revocations>),
            )
            .map_err(|e| StartupError::Tls(format!("JWKS client: {e}")))?,
        );
        let audit_channel = channel(&settings.gateway.audit_url, connect_timeout, &settings.common)?;
        let limiter = Arc::new(Limiter::new(settings.gateway.limits, redis.clone()));
        let pruned = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(limiter) = pruned.upgrade() else { return };
                limiter.prune();
            }
        });
        let passwords = Passwords::new(
            settings.gateway.password_hash_memory_mib,
            Duration::from_millis(settings.gateway.password_hash_queue_ms),
        )
        .map_err(|e| StartupError::Bootstrap(e.to_string()))?;
        let store = Store::new(pool.clone());
        let generated_admin_password = bootstrap_admin(&settings, &store, &passwords).await?;
        let auth = AuthApi {
            store,
            passwords,
            issuer: issuer.clone(),
            revocations,
            audit: SecurityAudit::new(audit_channel.clone(), issuer.clone()),
            limiter: limiter.clone(),
            login_limits: crate::auth::login_limits::LoginLimits::new(settings.gateway.login_limits, redis.clone()),
            refresh_ttl: Duration::from_secs(settings.gateway.refresh_token_ttl_secs),
        };
        let jwks = issuer.jwks();
        let access =
            prfix_runtime::outbox::Outbox::new(pool.clone(), "access_outbox", settings.gateway.access_outbox_max);
        let security_audit = auth.audit.clone();
        let common = &settings.common;
        let denials = prfix_auth::denials::Denials::start(
            Arc::new(security_audit.clone()),
            Duration::from_millis(common.denial_audit_window_ms),
            common.denial_audit_max_addresses,
            "gateway",
        );
        let edge = Edge {
            policies: Arc::new(PolicyTable::prfix()?),
            verifier,
            auth: auth.clone(),
            limiter,
            access: access.clone(),
            unauthenticated: Arc::new(prfix_auth::address_limit::AddressLimiter::new(
                common.unauthenticated_limit,
                common.denial_audit_max_addresses,
            )),
            denials: denials.clone(),
            key_tokens: Arc::default(),
        };
        // The agent directly (not through the edge): the webhook queues reviews with the gateway's
        // own service identity.
        let agent_channel = channel(&settings.gateway.agent_url, connect_timeout, &settings.common)?;
        let webhooks = crate::webhook::WebhookApi::new(&settings, pool.clone(), security_audit.clone(), agent_channel);
        let router = crate::router::build(
            health,
            upstreams,
            auth.clone(),
            edge,
            &settings.gateway.cors_allowed_origins,
            crate::oversize::Limits {
                max_request_bytes: settings.gateway.max_request_bytes,
                webhooks: webhooks.clone(),
            },
            crate::router::Web {
                rest: Arc::new(crate::rest::Rest::new(settings.gateway.max_request_bytes, webhooks)?),
                console: Arc::new(crate::console::Console {
                    auth: auth.clone(),
                    sessions: crate::console::sessions::Sessions::new(
                        pool.clone(),
                        Duration::from_secs(settings.gateway.console_idle_secs),
                        Duration::from_secs(settings.gateway.console_absolute_secs),
                    ),
                    tls: settings.gateway.tls_cert_file.is_some() && settings.gateway.tls_key_file.is_some(),
                    absolute_secs: settings.gateway.console_absolute_secs,
                }),
            },
        )?;
        let tls = match (&settings.gateway.tls_cert_file, &settings.gateway.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::serve::tls_acceptor(cert, key).map_err(|e| StartupError::Tls(e.0))?),
            _ => None,
        };
        let limits = crate::serve::ConnectionLimits {
            max_request_bytes: settings.gateway.max_request_bytes,
            max_header_bytes: settings.gateway.max_header_bytes,
            max_concurrent_streams: settings.gateway.max_concurrent_streams,
            header_read_timeout: Duration::from_millis(settings.gateway.header_read_timeout_ms),
        };
        Ok(Self {
            listener,
            addr,
            admin,
            admin_addr,
            pool,
            redis,
            report,
            router,
            readiness,
            generated_admin_password,
            jwks,
            tls,
            limits,
            access,
            audit_channel,
            security_audit,
            denials,
            auth,
            drain: settings.drain(),
        })
    }

    /// AuthService's implementation, for an operator's action on the running gateway's own state
    /// (`prfix up --reset-admin-password`).
    pub fn auth_api(&self) -> AuthApi {
        self.auth.clone()
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

    /// Creates (when missing) the user `username` with role `service` and a new API key of it, and
    /// returns the key's secret: the credential another service (the agent) appends to the audit
    /// log with. Used by `prfix up` and tests; operators do the same through AuthService.
    pub async fn provision_service_credential(&self, username: &str) -> Result<String, StartupError> {
        let failed = |e: String| StartupError::Bootstrap(format!("service credential for `{username}`: {e}"));
        if self.auth.store.user(username).await.map_err(|e| failed(e.to_string()))?.is_none() {
            let mut bytes = [0u8; 24];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            let password = SecretString::from(hex::encode(bytes));
            let hash = self.auth.passwords.hash(&password).await.map_err(|e| failed(e.to_string()))?;
            match self.auth.store.create_user(username, &hash, &["service".to_owned()]).await {
                Ok(_) | Err(crate::auth::store::StoreError::Exists(_)) => {}
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        let owner = prfix_auth::Principal {
            subject: username.to_owned(),
            roles: vec![prfix_auth::Role::Service],
            kind: prfix_auth::PrincipalKind::User,
            token_id: String::new(),
            expires_at: 0,
            key_id: None,
            issued_at: 0,
        };
        let roles = [prfix_auth::Role::Service.to_proto() as i32];
        let (_, secret) =
            crate::auth::api_keys::create(&self.auth.store, &owner, &format!("{username}-audit"), &roles, None, "")
                .await
                .map_err(|s| failed(s.message().to_owned()))?;
        Ok(secret)
    }

    /// The public keys the gateway signs with.
    pub fn jwks(&self) -> prfix_auth::Jwks {
        self.jwks.clone()
    }

    /// The password of the `admin` user this start generated (development mode, empty user table),
    /// to be shown once.
    pub fn generated_admin_password(&self) -> Option<&str> {
        self.generated_admin_password.as_deref()
    }

    /// The Redis client, when `redis_url` is set.
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_ref()
    }

    /// Serves until `shutdown` is cancelled, then drains: NOT_SERVING, `drain_delay`, in-flight
    /// calls finish.
    /// The admin address actually bound (`/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let pool = self.pool.clone();
        let refresh: prfix_runtime::metrics::Refresh = Box::new(move || {
            let pool = pool.clone();
            Box::pin(async move {
                prfix_runtime::metrics::METRICS.pool("gateway", &pool);
                prfix_runtime::metrics::read_outbox_backlog(&pool, "gateway.access_outbox", "access_outbox").await;
            })
        });
        tokio::spawn(prfix_runtime::metrics::serve_admin(self.admin, refresh, shutdown.clone()));
        self.readiness.set(ServingStatus::Serving);
        tokio::spawn(self.access.clone().relay(
            self.audit_channel.clone(),
            Arc::new(self.security_audit.clone()),
            shutdown.clone(),
        ));
        tracing::info!(addr = %self.addr, admin = %self.admin_addr, tls = self.tls.is_some(), "gateway listening");
        // The accept loop stops after the drain delay, so load balancers see NOT_SERVING first.
        let stop_accepting = CancellationToken::new();
        let readiness = self.readiness.clone();
        let drain = self.drain;
        let stopper = stop_accepting.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            readiness.set(ServingStatus::NotServing);
            tracing::info!(delay_ms = drain.delay.as_millis() as u64, "draining");
            tokio::time::sleep(drain.delay).await;
            stopper.cancel();
        });
        crate::serve::serve(self.listener, self.router, self.tls, self.limits, stop_accepting, drain.grace).await;
        // Denials counted but not yet audited are written before the process ends.
        self.denials.flush_all().await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

pub(crate) fn load_keys(settings: &Settings) -> Result<Vec<SigningKey>, StartupError> {
    let mut keys = Vec::new();
    if let Some(pem) = &settings.signing_key_pem {
        keys.push(
            SigningKey::from_pem(pem.expose_secret())
                .map_err(|e| StartupError::SigningKey(format!("PRFIX_SIGNING_KEY: {e}")))?,
        );
    }
    for file in &settings.gateway.signing_key_files {
        let error = |e: String| StartupError::SigningKey(format!("{}: {e}", file.display()));
        let pem = std::fs::read_to_string(file).map_err(|e| error(e.to_string()))?;
        keys.push(SigningKey::from_pem(&pem).map_err(|e| error(e.to_string()))?);
    }
    if !keys.is_empty() {
        return Ok(keys);
    }
    if settings.gateway.mode == Mode::Production {
        return Err(StartupError::SigningKey(
            "none given: set gateway.signing_key_files or PRFIX_SIGNING_KEY (PEM) / PRFIX_SIGNING_KEY_FILE".to_owned(),
        ));
    }
    let path = settings.gateway.data_dir.join("signing-key.pem");
    let error = |e: String| StartupError::SigningKey(format!("{}: {e}", path.display()));
    if path.exists() {
        let pem = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
        return Ok(vec![SigningKey::from_pem(&pem).map_err(|e| error(e.to_string()))?]);
    }
    let (key, pem) = SigningKey::generate().map_err(|e| error(e.to_string()))?;
    std::fs::create_dir_all(&settings.gateway.data_dir).map_err(|e| error(e.to_string()))?;
    prfix_runtime::binary::write_private(&path, &pem).map_err(|e| error(e.to_string()))?;
    tracing::warn!(path = %path.display(), "development mode: generated a signing key; use your own in production");
    Ok(vec![key])
}

/// Creates `admin` when there is no user: with the given password, or (development mode) a
/// generated one that is returned to be shown once. Production without a password refuses to start.
async fn bootstrap_admin(
    settings: &Settings,
    store: &Store,
    passwords: &Passwords,
) -> Result<Option<String>, StartupError> {
    let failed = |e: String| StartupError::Bootstrap(e);
    if store.has_users().await.map_err(|e| failed(e.to_string()))? {
        return Ok(None);
    }
    let (password, generated) = match (&settings.bootstrap_admin_password, settings.gateway.mode) {
        (Some(p), _) => (p.clone(), None),
        (None, Mode::Development) => {
            let text = crate::auth::generated_password();
            (SecretString::from(text.clone()), Some(text))
        }
        (None, Mode::Production) => {
            return Err(failed(
                "there is no user yet: set PRFIX_BOOTSTRAP_ADMIN_PASSWORD (or PRFIX_BOOTSTRAP_ADMIN_PASSWORD_FILE) to create `admin`".to_owned(),
            ));
        }
    };
    if password.expose_secret().chars().count() < crate::auth::MIN_PASSWORD_CHARS {
        return Err(failed(format!(
            "the bootstrap admin password must have at least {} characters",
            crate::auth::MIN_PASSWORD_CHARS
        )));
    }
    let hash = passwords.hash(&password).await.map_err(|e| failed(e.to_string()))?;
    // The first admin also reviews: `developer` lets them run reviews and give CI a developer key
    // (a key never carries a role its owner lacks). docs/security.md says how roles relate.
    match store.create_user("admin", &hash, &["admin".to_owned(), "developer".to_owned()]).await {
        Ok(_) => {
            tracing::info!("created the first user `admin`");
            Ok(generated)
        }
        // Another replica created it at the same moment.
        Err(crate::auth::store::StoreError::Exists(_)) => Ok(None),
        Err(e) => Err(failed(e.to_string())),
    }
}
