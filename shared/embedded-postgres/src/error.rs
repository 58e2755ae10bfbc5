//! Why the embedded cluster could not be set up, started or stopped. Every message names what to do,
//! and the ones where the machine cannot provide a server name `database_url`, the setting that
//! points prfix at an existing server instead.

use std::path::PathBuf;

/// What went wrong with the embedded cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No server binaries of a supported version on the machine, and installing the pinned one failed
    /// (typically: no network).
    #[error(
        "no PostgreSQL server binaries of version {supported} were found on this machine (looked in {looked}), \
         and installing PostgreSQL {version} into {dir} failed: {reason}. Install PostgreSQL's server package \
         (Debian: postgresql), or set `database_url` (--database-url, PRFIX_DATABASE_URL) to an existing server"
    )]
    Install {
        /// The supported major versions, as text (`15-18`).
        supported: String,
        /// Where binaries were looked for.
        looked: String,
        /// The pinned version that was to be installed.
        version: String,
        /// Where it was to be installed.
        dir: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// The cluster was made by a major version whose binaries are not on the machine.
    #[error(
        "the cluster in {dir} was made by PostgreSQL {cluster_major}, whose server binaries are not on this machine \
         (found: {found}); install PostgreSQL {cluster_major}'s server package, or move the folder away to start a \
         new cluster (its data would not be seen), or set `database_url` to an existing server"
    )]
    VersionMismatch {
        /// The cluster's folder.
        dir: PathBuf,
        /// The major version in its `PG_VERSION`.
        cluster_major: u32,
        /// The versions found, as text.
        found: String,
    },
    /// Running as root with no unprivileged account for the server (Postgres refuses to run as root).
    #[error(
        "prfix runs as root and PostgreSQL refuses to: there is no system user `{user}` to run the server as \
         ({reason}); create it (Debian's postgresql package does), run prfix as an ordinary user, or set \
         `database_url` to an existing server"
    )]
    NoServerAccount {
        /// The account looked for.
        user: String,
        /// Why it could not be used.
        reason: String,
    },
    /// The server's account cannot enter a folder on the way to the cluster.
    #[error(
        "the `{user}` user that runs PostgreSQL cannot enter {dir} (mode {mode:o}); choose a data directory it can \
         reach (--data-dir, e.g. /var/lib/prfix), or set `database_url` to an existing server"
    )]
    Unreachable {
        /// The server's account.
        user: String,
        /// The folder it cannot enter.
        dir: PathBuf,
        /// The folder's permission bits.
        mode: u32,
    },
    /// The Unix socket's path would be longer than the system allows.
    #[error(
        "the path of PostgreSQL's socket in {dir} would be {length} bytes, over the {limit} the system allows; \
         choose a shorter data directory (--data-dir), or set `database_url` to an existing server"
    )]
    SocketPathTooLong {
        /// The socket's folder.
        dir: PathBuf,
        /// The socket path's length.
        length: usize,
        /// The longest allowed.
        limit: usize,
    },
    /// A file or folder of the cluster could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot create`).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL tool failed or could not be run.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The tool and what it was doing (`initdb`, `pg_ctl start`).
        tool: String,
        /// Its error output, or why it could not run, and the server log's last lines when useful.
        detail: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}
