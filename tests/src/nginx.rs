//! nginx as a gRPC reverse proxy (`grpc_pass`) in front of one service: the reference the
//! gateway's own overhead is measured against in the benches. Started from a generated config in a
//! temporary directory on a free port, stopped (SIGTERM to its master) when dropped.
//!
//! nginx does no JWT check: it passes the `authorization` header through and the service behind it
//! verifies the token, as it also does behind the gateway.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::processes::{cpu_time, free_port, pids};

/// How long nginx gets to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

/// The generated configuration, for `upstream` and `listen`. `worker_processes auto` (one worker
/// per core, as a packaged nginx runs); HTTP/2 to the client and to the upstream (`grpc_pass`);
/// `keepalive_requests` raised on both sides so that no connection is closed after the default
/// 1,000 requests; `keepalive 256` idle upstream connections, since nginx sends one request per
/// upstream connection at a time (it does not multiplex upstream streams); no access log.
fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
master_process on;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    upstream backend {{
        server {upstream};
        keepalive 256;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }}
    server {{
        listen {listen} http2;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
        location / {{
            grpc_pass grpc://backend;
        }}
    }}
}}
"
    )
}

/// A running nginx.
pub struct Nginx {
    /// Where it listens (HTTP/2 without TLS).
    pub addr: SocketAddr,
    /// `nginx -v`'s answer, such as `nginx/1.22.1`.
    pub version: String,
    /// How many worker processes it runs.
    pub workers: usize,
    master: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx in front of `upstream`, installing it with `apt-get` first if it is not on
    /// `PATH`; the error says what failed and why (the caller prints it and goes on without nginx).
    pub async fn start_grpc(upstream: SocketAddr) -> anyhow::Result<Self> {
        let version = match version() {
            Ok(v) => v,
            Err(missing) => {
                install()
                    .await
                    .with_context(|| format!("nginx is not runnable ({missing:#}) and installing it failed"))?;
                version().context("nginx was installed but does not run")?
            }
        };
        let dir = tempfile::tempdir().context("failed to create nginx's directory")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), addr, upstream)).context("failed to write nginx.conf")?;
        let log =
            std::fs::File::create(dir.path().join("output.log")).context("failed to create nginx's output log")?;
        let master = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("failed to share nginx's output log")?)
            .stderr(log)
            .spawn()
            .context("failed to start nginx")?;
        let mut nginx = Self { addr, version, workers: 0, master, dir };
        nginx.wait_for_workers().await?;
        Ok(nginx)
    }

    /// CPU time (user and system) its master and workers have used so far.
    pub fn cpu_time(&self) -> Duration {
        let master = self.master.id();
        let mut total = cpu_time(&master.to_string()).unwrap_or_default();
        for worker in children(master) {
            total += cpu_time(&worker.to_string()).unwrap_or_default();
        }
        total
    }

    async fn wait_for_workers(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.master.try_wait().context("failed to check on nginx")? {
                bail!("nginx exited with {status}: {}", self.output());
            }
            let workers = children(self.master.id()).len();
            if workers > 0 && std::net::TcpStream::connect(self.addr).is_ok() {
                self.workers = workers;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen within {START_LIMIT:?}: {}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What nginx wrote (its error log and its standard output and error), for failure messages.
    fn output(&self) -> String {
        ["error.log", "output.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.path().join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would leave them running).
        let stopped = Command::new("kill").args(["-TERM", &self.master.id().to_string()]).status();
        if !matches!(stopped, Ok(s) if s.success()) {
            let _ = self.master.kill();
        }
        let _ = self.master.wait();
    }
}

/// `nginx -v` (which answers on standard error).
fn version() -> anyhow::Result<String> {
    let output = Command::new("nginx").arg("-v").output().context("failed to run `nginx -v`")?;
    if !output.status.success() {
        bail!("`nginx -v` exited with {}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stderr);
    Ok(text.trim().trim_start_matches("nginx version: ").to_owned())
}

/// `apt-get install -y nginx-light`, else `nginx` (Debian), after an `apt-get update` if the
/// package lists are stale.
async fn install() -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for update_first in [false, true] {
        if update_first {
            apt_get(&["update"]).await.context("`apt-get update` failed")?;
        }
        for package in ["nginx-light", "nginx"] {
            match apt_get(&["install", "-y", "--no-install-recommends", package]).await {
                Ok(()) => return Ok(()),
                Err(e) => failures.push(format!("{package}: {e:#}")),
            }
        }
    }
    bail!("{}", failures.join("; "))
}

async fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("running apt-get {}", args.join(" "));
    let output = tokio::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .await
        .context("failed to run apt-get")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("exited with {}: {}", output.status, stderr.trim());
    }
    Ok(())
}

/// The processes whose parent is `pid` (from `/proc/*/stat`; Linux).
fn children(pid: u32) -> Vec<u32> {
    pids()
        .filter(|candidate| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{candidate}/stat")) else { return false };
            // After the command name (in parentheses, which may hold spaces): state, then the parent.
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}
