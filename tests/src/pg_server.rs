//! A private PostgreSQL cluster for tests that stop and restart Postgres (the shared server must
//! stay up for the other tests). It is the cluster `prfix up` runs when no `database_url` is set
//! (prfix-embedded-postgres), on a loopback port and without fsync: as root it runs as the
//! `postgres` system user, since Postgres refuses to run as root.

use prfix_embedded_postgres::{Cluster, Listen, Options};

/// A throwaway cluster on a free loopback port, removed when dropped.
pub struct PrivatePostgres {
    /// Its port.
    pub port: u16,
    // Fields drop in order: the cluster stops (its own Drop) before its folder is removed.
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// Creates and starts a cluster (trust authentication, user `postgres`).
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("prfix-pg-").tempdir().expect("a temporary folder");
        // The server's account (`postgres` when the tests run as root) enters it to reach the cluster.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .expect("the folder's permissions");
        let cluster = Cluster::start(Options {
            dir: dir.path().join("cluster"),
            install_dir: None,
            listen: Listen::Loopback(0),
            durable: false,
            progress: false,
        })
        .await
        .unwrap_or_else(|e| panic!("a private PostgreSQL cluster starts: {e}"));
        let Listen::Loopback(port) = cluster.listen() else { panic!("the cluster listens on a port") };
        Self { port, cluster, _dir: dir }
    }

    /// Its URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    /// Stops the server at once (as a crash would: no clean shutdown) and starts it again.
    pub async fn restart_abruptly(&mut self) {
        self.cluster.restart_abruptly().await.unwrap_or_else(|e| panic!("the cluster restarts: {e}"));
    }
}
