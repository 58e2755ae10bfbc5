//! The three services as separate processes, as in production: each its own global log subscriber,
//! metrics registry and exporter, started through the `prfix-service` helper binary (the services'
//! own command line) with settings from the environment, their JSON log lines collected as they come.
//! Cargo names that binary to integration tests only: they pass `env!("CARGO_BIN_EXE_prfix-service")`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prfix_proto::auth::v1::auth_service_client::AuthServiceClient;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::auth::{ADMIN_PASSWORD, Bearer, audit_key, keys, operator_token};
use crate::{FakeOllama, TestDatabase};

/// How long a process gets to start.
const START_LIMIT: Duration = Duration::from_secs(30);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One service process (killed when dropped).
pub struct Service {
    /// `gateway`, `agent` or `audit`.
    pub name: &'static str,
    /// Its gRPC address.
    pub addr: SocketAddr,
    /// Its admin (`/metrics`) address.
    pub admin: SocketAddr,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts `<program> <name>` (`program` is the `prfix-service` binary) with `env` (on top of JSON
    /// logs at `info`) and waits for its "… listening" line, which gives the addresses it bound.
    pub async fn start(program: &str, name: &'static str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(program);
        command
            .arg(name)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PRFIX_LOG_FORMAT", "json")
            .env("PRFIX_LOG_LEVEL", "info")
            // Export each batch of spans at once rather than every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start the {name} process: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for (reader, parse) in [
            (Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>, true),
            (Box::new(stderr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>, false),
        ] {
            let (lines, raw) = (lines.clone(), raw.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(reader).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if parse && let Ok(value) = serde_json::from_str::<Value>(&line) {
                        lock(&lines).push(value);
                    }
                    lock(&raw).push(line);
                }
            });
        }
        let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut service = Self { name, addr: unbound, admin: unbound, child, lines, raw };
        (service.addr, service.admin) = service.wait_for_listening().await;
        service
    }

    /// Sends it a signal (`HUP`, `TERM`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap_or_else(|| panic!("the {} process has exited", self.name));
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its JSON log lines so far.
    pub fn lines(&self) -> Vec<Value> {
        lock(&self.lines).clone()
    }

    /// Everything it wrote so far (standard output and error), for failure messages.
    pub fn output(&self) -> String {
        lock(&self.raw).join("\n")
    }

    async fn wait_for_listening(&mut self) -> (SocketAddr, SocketAddr) {
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            let found = self.lines().iter().find_map(|line| {
                let message = line["message"].as_str()?;
                let addr = line["addr"].as_str()?.parse().ok()?;
                let admin = line["admin"].as_str()?.parse().ok()?;
                message.ends_with("listening").then_some((addr, admin))
            });
            if let Some(found) = found {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the {} process exited with {status} before listening:\n{}", self.name, self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the {} process did not listen within {START_LIMIT:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its log lines whose current span, or whose own fields, carry `trace_id`.
    pub fn traced_lines(&self, trace_id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["span"]["trace_id"].as_str() == Some(trace_id) || line["trace_id"] == trace_id)
            .collect()
    }

    /// `GET /metrics` of its admin port.
    pub async fn scrape(&self) -> String {
        crate::metrics::scrape(self.admin).await
    }

    /// Its resident memory now, in bytes (`VmRSS` of `/proc/<pid>/status`; Linux).
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().unwrap_or_else(|| panic!("the {} process has exited", self.name));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("cannot read the {} process's status: {e}", self.name));
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no VmRSS in the {} process's status", self.name));
        kib * 1024
    }
}

/// CPU time (user and system) the process `pid` (a number, or `self`) has used so far:
/// `utime + stime` of `/proc/<pid>/stat`, in clock ticks (`getconf CLK_TCK`, usually 100 a second,
/// so 10 ms resolution); Linux.
pub fn cpu_time(pid: &str) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name (in parentheses, which may hold spaces) come fields 3 onwards;
    // utime and stime are fields 14 and 15.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no utime/stime in /proc/{pid}/stat"),
        ));
    };
    Ok(from_ticks(utime + stime))
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 when it cannot be asked).
fn ticks_per_second() -> u64 {
    static TICKS_PER_SECOND: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS_PER_SECOND.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The ids of the processes running now (the numeric entries of `/proc`); Linux.
pub fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
}

/// `count` clock ticks of `/proc` times as a duration.
fn from_ticks(count: u64) -> Duration {
    Duration::from_nanos(count * 1_000_000_000 / ticks_per_second())
}

/// CPU time every process named `command` (`/proc/<pid>/comm`, e.g. `postgres`: its backends,
/// WAL writer and checkpointer) has used so far; processes that ended since are not counted.
pub fn cpu_time_of_command(command: &str) -> Duration {
    pids()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == command))
        .filter_map(|pid| cpu_time(&pid.to_string()).ok())
        .sum()
}

/// The whole machine's CPU time so far, all cores together, from the first line of `/proc/stat`:
/// (busy, idle). Busy is user, nice, system, irq and softirq; idle counts I/O wait too; time stolen
/// by the hypervisor is in neither.
pub fn machine_cpu() -> std::io::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let counts: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| rest.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    let [user, nice, system, idle, iowait, irq, softirq, ..] = counts[..] else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "no CPU totals in /proc/stat"));
    };
    Ok((from_ticks(user + nice + system + irq + softirq), from_ticks(idle + iowait)))
}

/// The CPU time of the whole machine ([`machine_cpu`]) and of Postgres at one moment: two of them
/// measure a stretch of work ([`MachineCpu::since`]).
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    /// Busy time of all cores.
    pub busy: Duration,
    /// Idle time of all cores.
    pub idle: Duration,
    /// CPU time of the `postgres` processes.
    pub postgres: Duration,
}

impl MachineCpu {
    /// The times now.
    pub fn now() -> Self {
        let (busy, idle) = machine_cpu().expect("the machine's CPU times");
        Self { busy, idle, postgres: cpu_time_of_command("postgres") }
    }

    /// What was used between `before` and `self` (a Postgres process that ended in between takes
    /// its time with it, so Postgres's part is at least zero).
    pub fn since(&self, before: &Self) -> Self {
        Self {
            busy: self.busy.saturating_sub(before.busy),
            idle: self.idle.saturating_sub(before.idle),
            postgres: self.postgres.saturating_sub(before.postgres),
        }
    }

    /// The share of the cores left idle, in percent.
    pub fn idle_percent(&self) -> f64 {
        100.0 * self.idle.as_secs_f64() / (self.busy + self.idle).as_secs_f64()
    }
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A channel to `addr`.
pub fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("valid URI").connect_lazy()
}

/// What every service process of a test is given: the database at `database_url`, the test Redis
/// under a fresh key prefix, and the test keys' JWKS.
pub fn common_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PRFIX_DATABASE_URL", database_url.to_owned()),
        ("PRFIX_REDIS_URL", crate::app::redis_url()),
        ("PRFIX_REDIS_KEY_PREFIX", format!("prfix-test:{}:", uuid::Uuid::new_v4().simple())),
        ("PRFIX_AUTH_JWKS_FILE", keys().jwks_file.display().to_string()),
    ]
}

/// What a gateway process is given besides [`common_env`]: any free ports, no drain delay, the
/// agent and audit service at `agent` and `audit`, its data in `data_dir`, the test signing key and
/// the bootstrap admin's password.
pub fn gateway_env(agent: SocketAddr, audit: SocketAddr, data_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PRFIX_GATEWAY__LISTEN", "127.0.0.1:0".to_owned()),
        ("PRFIX_GATEWAY__ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("PRFIX_GATEWAY__DRAIN_DELAY_MS", "0".to_owned()),
        ("PRFIX_GATEWAY__AGENT_URL", format!("http://{agent}")),
        ("PRFIX_GATEWAY__AUDIT_URL", format!("http://{audit}")),
        ("PRFIX_GATEWAY__DATA_DIR", data_dir.display().to_string()),
        ("PRFIX_SIGNING_KEY_FILE", keys().pem_file.display().to_string()),
        ("PRFIX_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]
}

/// The three services started in order (audit, gateway, agent with an API key the operator makes
/// through the gateway), on a fresh database, a fresh Redis prefix and `ollama`.
pub struct System {
    /// The gateway process.
    pub gateway: Service,
    /// The agent process.
    pub agent: Service,
    /// The audit process.
    pub audit: Service,
    /// The database (dropped after the processes).
    pub db: TestDatabase,
}

impl System {
    /// Starts the system with `program` (the `prfix-service` binary); `extra` settings (such as
    /// `PRFIX_OTLP_ENDPOINT`) go to every service.
    pub async fn start(program: &str, ollama: &FakeOllama, data_dir: &Path, extra: &[(&str, String)]) -> Self {
        let db = TestDatabase::fresh();
        let mut common = common_env(&db.url);
        common.push(("PRFIX_OLLAMA_URL", ollama.url()));
        common.extend(extra.iter().cloned());
        let with = |more: &[(&'static str, String)]| common.iter().chain(more).cloned().collect::<Vec<_>>();
        let any = || "127.0.0.1:0".to_owned();

        let audit = Service::start(
            program,
            "audit",
            &with(&[
                ("PRFIX_AUDIT__LISTEN", any()),
                ("PRFIX_AUDIT__ADMIN_LISTEN", any()),
                ("PRFIX_AUDIT__DRAIN_DELAY_MS", "0".into()),
                ("PRFIX_AUDIT__DATA_DIR", data_dir.join("audit").display().to_string()),
                ("PRFIX_AUDIT_SIGNING_KEY_FILE", audit_key().pem_file.display().to_string()),
            ]),
        )
        .await;
        // The gateway needs the agent's address and the agent a credential the gateway makes.
        let agent_port = free_port();
        let gateway = Service::start(
            program,
            "gateway",
            &with(&gateway_env(SocketAddr::from(([127, 0, 0, 1], agent_port)), audit.addr, &data_dir.join("gateway"))),
        )
        .await;
        let admin = AuthServiceClient::with_interceptor(channel(gateway.addr), Bearer::new(&operator_token()));
        let credential = crate::app::provision_service_key(admin, "agent").await;
        let agent = Service::start(
            program,
            "agent",
            &with(&[
                ("PRFIX_AGENT__LISTEN", format!("127.0.0.1:{agent_port}")),
                ("PRFIX_AGENT__ADMIN_LISTEN", any()),
                ("PRFIX_AGENT__DRAIN_DELAY_MS", "0".into()),
                ("PRFIX_AGENT__AUDIT_URL", format!("http://{}", gateway.addr)),
                ("PRFIX_AGENT_AUDIT_CREDENTIAL", credential),
            ]),
        )
        .await;
        Self { gateway, agent, audit, db }
    }

    /// Every process's output, for failure messages.
    pub fn logs(&self) -> String {
        [&self.gateway, &self.agent, &self.audit]
            .iter()
            .map(|s| format!("--- {} ---\n{}", s.name, s.output()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
