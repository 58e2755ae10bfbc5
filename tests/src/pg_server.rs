//! A private PostgreSQL cluster for tests that stop and restart Postgres (the shared server must
//! stay up for the other tests). It runs as the `postgres` system user when the tests run as root,
//! since Postgres refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A throwaway cluster on a free loopback port.
pub struct PrivatePostgres {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries.filter_map(Result::ok).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin (the CI script installs them)")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn run(bin: &Path, program: &str, args: &[&str]) {
    let tool = bin.join(program);
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&tool);
        c
    } else {
        Command::new(&tool)
    };
    let status = command.args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("the tool runs");
    assert!(status.success(), "{program} {args:?} failed");
}

impl PrivatePostgres {
    /// Creates and starts a cluster (trust authentication, user `postgres`).
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("prfix-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        if is_root() {
            let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().expect("chown runs");
            assert!(status.success(), "chown of {}", dir.display());
        }
        let bin = bin_dir();
        let data = dir.join("data");
        run(&bin, "initdb", &["-D", &data.to_string_lossy(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        let pg = Self { port, dir, bin };
        pg.up();
        pg
    }

    /// Its URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    fn up(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        run(
            &self.bin,
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-o", &options, "-l", &log.to_string_lossy(), "-w", "start"],
        );
    }

    /// Stops the server at once (as a crash would: no clean shutdown) and starts it again.
    pub fn restart_abruptly(&self) {
        let data = self.dir.join("data");
        run(&self.bin, "pg_ctl", &["-D", &data.to_string_lossy(), "-m", "immediate", "-w", "stop"]);
        self.up();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let tool = self.bin.join("pg_ctl");
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            Command::new(&tool)
        };
        let _ = command
            .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
