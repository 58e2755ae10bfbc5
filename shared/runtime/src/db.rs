//! The Postgres pool: URL parsing (with `sslmode` as libpq spells it), TLS, creating a database
//! that does not exist yet, and sessions that run as the service's least-privilege role.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::tls::{self, TlsError};

pub use deadpool_postgres::Pool as PgPool;

/// How a service reaches its database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Postgres URL; `sslmode` and `sslrootcert` are understood as libpq does.
    pub url: SecretString,
    /// The service's schema (also the role's `search_path`).
    pub schema: String,
    /// Role that pooled sessions switch to (`SET ROLE` at connection start); `None` keeps the
    /// login role (when the login role already is the least-privileged one).
    pub role: Option<String>,
    /// Maximum pooled connections.
    pub pool_size: usize,
    /// How long to wait for a connection before failing.
    pub connect_timeout: Duration,
}

/// Why the database could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not a valid Postgres URL.
    #[error("invalid database_url: {0}")]
    InvalidUrl(String),
    /// TLS could not be set up.
    #[error("database TLS: {0}")]
    Tls(#[from] TlsError),
    /// Connecting failed.
    #[error("cannot connect to Postgres at {target}: {source}")]
    Connect {
        /// Host, port and database, without credentials.
        target: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database did not exist and could not be created.
    #[error(
        "database `{database}` does not exist and could not be created ({source}); create it with `createdb {database}` or grant CREATEDB"
    )]
    Create {
        /// The database name.
        database: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The pool could not be built.
    #[error("cannot build the database pool: {0}")]
    Pool(String),
}

/// TLS mode as libpq's `sslmode` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// A parsed URL: the driver's config and our TLS choice (which the driver cannot express).
struct Target {
    config: tokio_postgres::Config,
    mode: SslMode,
    root_cert: Option<PathBuf>,
}

fn parse(url: &str) -> Result<Target, DbError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    // verify-ca is served by the stricter verify-full (host name checked as well).
                    "verify-ca" | "verify-full" => SslMode::VerifyFull,
                    other => return Err(DbError::InvalidUrl(format!("unknown sslmode `{other}`"))),
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    let mut config = tokio_postgres::Config::from_str(&rebuilt).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    if mode == SslMode::VerifyFull && root_cert.is_none() {
        return Err(DbError::InvalidUrl("sslmode=verify-full needs sslrootcert=<CA file>".to_owned()));
    }
    Ok(Target { config, mode, root_cert })
}

/// Host, port and database of a config, for messages (never the password).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

/// The connector for the chosen mode, as the one type deadpool and `connect` both accept.
fn connector(target: &Target) -> Result<Tls, DbError> {
    Ok(match target.mode {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls::encrypt_only()?)),
        SslMode::VerifyFull => {
            let ca =
                target.root_cert.as_deref().ok_or_else(|| DbError::InvalidUrl("sslrootcert missing".to_owned()))?;
            Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls::verifying(ca)?))
        }
    })
}

type Tls = Option<tokio_postgres_rustls::MakeRustlsConnect>;

async fn connect_once(config: &tokio_postgres::Config, tls: &Tls) -> Result<Client, tokio_postgres::Error> {
    fn drive<F>(connection: F)
    where
        F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "postgres connection closed with an error");
            }
        });
    }
    match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            drive(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            drive(connection);
            Ok(client)
        }
    }
}

/// Opens one connection as the login role, creating the database first when it does not exist.
/// Used for migrations, which must run as the owner rather than the service role.
pub async fn connect_owner(settings: &DatabaseSettings) -> Result<Client, DbError> {
    let target = parse(settings.url.expose_secret())?;
    let tls = connector(&target)?;
    let mut config = target.config.clone();
    config.connect_timeout(settings.connect_timeout);
    match connect_once(&config, &tls).await {
        Ok(client) => Ok(client),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let database = config.get_dbname().unwrap_or("postgres").to_owned();
            create_database(&config, &tls, &database).await?;
            connect_once(&config, &tls).await.map_err(|source| DbError::Connect { target: describe(&config), source })
        }
        Err(source) => Err(DbError::Connect { target: describe(&config), source }),
    }
}

async fn create_database(config: &tokio_postgres::Config, tls: &Tls, database: &str) -> Result<(), DbError> {
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let client = connect_once(&maintenance, tls)
        .await
        .map_err(|source| DbError::Create { database: database.to_owned(), source })?;
    let statement = format!("CREATE DATABASE {}", quote_ident(database));
    match client.batch_execute(&statement).await {
        Ok(()) => {
            tracing::info!(database, "created database");
            Ok(())
        }
        // Another replica created it first: that is what we wanted.
        Err(e) if matches!(e.code(), Some(c) if *c == SqlState::DUPLICATE_DATABASE || *c == SqlState::UNIQUE_VIOLATION) => {
            Ok(())
        }
        Err(source) => Err(DbError::Create { database: database.to_owned(), source }),
    }
}

/// A session of its own (outside the pool) as `settings.role`, whose server notifications (`LISTEN`)
/// arrive on the returned channel. The channel closes when the connection ends, so a listener
/// learns of a lost connection as soon as the driver does.
pub async fn connect_listening(
    settings: &DatabaseSettings,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>), DbError> {
    async fn forward<S, T>(
        mut connection: tokio_postgres::Connection<S, T>,
        sender: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use futures::StreamExt;
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(notification)) => {
                    if sender.send(notification).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "postgres listening connection closed with an error");
                    return;
                }
            }
        }
    }
    let target = parse(settings.url.expose_secret())?;
    let mut config = target.config.clone();
    config.connect_timeout(settings.connect_timeout);
    config.options(session_options(settings));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let failed = |source| DbError::Connect { target: describe(&config), source };
    let client = match connector(&target)? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(forward(connection, sender));
            client
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(forward(connection, sender));
            client
        }
    };
    Ok((client, receiver))
}

/// The settings every session of a service starts with: the service schema first on the path, the
/// service's role, and no JIT compilation. The services run short indexed queries; JIT is worth it
/// only for long scans, and Postgres decides by the plan's estimated cost, which for a lateral range
/// read over a large table is far above the real one: an audit proof at 10,000,000 events spent
/// 124 ms compiling a query that then ran in 0.5 ms.
fn session_options(settings: &DatabaseSettings) -> String {
    let mut options = format!("-c search_path={} -c jit=off", settings.schema);
    if let Some(role) = &settings.role {
        options.push_str(&format!(" -c role={role}"));
    }
    options
}

/// Builds the pool; its sessions run as `settings.role` with the service schema first on the path.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    let target = parse(settings.url.expose_secret())?;
    let mut config = target.config.clone();
    config.connect_timeout(settings.connect_timeout);
    config.options(session_options(settings));
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match connector(&target)? {
        Some(tls) => Manager::from_config(config, tls, manager_config),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(settings.connect_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_as_libpq_spells_it() {
        let t = parse("postgres://u:p@db:5433/x?sslmode=disable&application_name=a").expect("parses");
        assert_eq!(t.mode, SslMode::Disable);
        assert_eq!(t.config.get_application_name(), Some("a"));
        assert_eq!(describe(&t.config), "db:5433/x");
        let t = parse("postgres://db/x?sslmode=verify-full&sslrootcert=/ca.pem").expect("parses");
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn verify_full_without_a_ca_file_is_refused() {
        let err = parse("postgres://db/x?sslmode=verify-full").err().expect("refused").to_string();
        assert!(err.contains("sslrootcert"), "{err}");
        let err = parse("postgres://db/x?sslmode=sometimes").err().expect("refused").to_string();
        assert!(err.contains("sometimes"), "{err}");
    }

    #[test]
    fn messages_never_carry_the_password() {
        let t = parse("postgres://user:hunter2@db/x").expect("parses");
        assert!(!describe(&t.config).contains("hunter2"));
    }
}

/// Why a service's database could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Connecting or creating failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    /// The pool's first session (as the service role) failed.
    #[error("cannot open a session as the service role: {0}")]
    Session(String),
}

/// Makes the database ready for a service: creates it if needed, applies the migrations under the
/// lock as the owner, then builds the pool and opens one session as the service role to prove it.
pub async fn prepare(
    settings: &DatabaseSettings,
    migrations: &[crate::migrate::Migration],
) -> Result<(Pool, crate::migrate::MigrationReport), PrepareError> {
    let mut owner = connect_owner(settings).await?;
    let report = crate::migrate::run(&mut owner, &settings.schema, migrations).await?;
    drop(owner);
    let pool = pool(settings)?;
    let session = pool.get().await.map_err(|e| PrepareError::Session(crate::error::chain(&e)))?;
    session.simple_query("SELECT 1").await.map_err(|e| PrepareError::Session(crate::error::chain(&e)))?;
    Ok((pool, report))
}
