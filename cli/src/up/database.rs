//! The database `prfix up` runs on: the server `database_url` (or `--database-url`) names, exactly as
//! the services use it in production, or, when none is given, a PostgreSQL cluster of its own in the
//! data directory (prfix-embedded-postgres), started before the services and stopped after them.

use std::io::IsTerminal;
use std::path::Path;

use prfix_embedded_postgres::{Cluster, Listen, Options};
use secrecy::{ExposeSecret, SecretString};

/// The database of this run.
pub enum Database {
    /// A server of the operator's.
    External(SecretString),
    /// prfix's own cluster.
    Embedded(Cluster),
}

/// The database's name in the embedded cluster.
const DATABASE: &str = "prfix";

impl Database {
    /// The external server when `given` (the flag, or `database_url` from the settings), else the
    /// embedded cluster in `data_dir/postgres`, installed into `data_dir/postgresql` when the machine
    /// has no server binaries that fit.
    pub async fn open(given: Option<SecretString>, data_dir: &Path) -> Result<Self, prfix_embedded_postgres::Error> {
        if let Some(url) = given {
            return Ok(Self::External(url));
        }
        let cluster = Cluster::start(Options {
            dir: data_dir.join("postgres"),
            install_dir: Some(data_dir.join("postgresql")),
            listen: Listen::Socket,
            durable: true,
            progress: std::io::stderr().is_terminal(),
        })
        .await?;
        Ok(Self::Embedded(cluster))
    }

    /// The URL the services connect with.
    pub fn url(&self) -> SecretString {
        match self {
            Self::External(url) => url.clone(),
            Self::Embedded(cluster) => SecretString::from(cluster.url(DATABASE)),
        }
    }

    /// What `prfix up` prints about it (never a password).
    pub fn describe(&self) -> String {
        match self {
            Self::External(url) => format!("{} (database_url)", super::redact(url.expose_secret())),
            Self::Embedded(cluster) => format!(
                "embedded PostgreSQL {} in {} (no database_url set); psql '{}'",
                cluster.binaries().version,
                cluster.dir().display(),
                cluster.url(DATABASE)
            ),
        }
    }

    /// Stops the embedded cluster (an external server is left alone).
    pub async fn stop(self) -> Result<(), prfix_embedded_postgres::Error> {
        match self {
            Self::External(_) => Ok(()),
            Self::Embedded(cluster) => cluster.stop().await,
        }
    }
}
