//! What the gateway adds to a unary call, with authentication, policy and rate limits on, against
//! the agent called directly and against nginx `grpc_pass` in front of the same agent.
//!
//! Run: `cargo bench -p prfix-tests --bench gateway_overhead` (needs the test Postgres and Redis).
//! nginx is started from a generated config (see `prfix_tests::nginx`: `worker_processes auto`,
//! `keepalive_requests` raised, upstream keepalive, no access log) on a free port and stopped at the
//! end; if it is not on `PATH` the bench installs it with `apt-get`, and if that fails it prints why
//! and skips the nginx rows. nginx does no JWT check: it passes the bearer token through and the
//! agent verifies it (the agent verifies it behind the gateway too).
//!
//! Every row is a ratio against a reference measured in the same run, in interleaved rounds (each
//! round measures every target once, in turn), so that drift of the machine hits all alike:
//! - the token call (`GetTask` of a task that does not exist: one one-row lookup at the agent) to
//!   the agent directly, through the gateway and through nginx: throughput with 8 client
//!   connections (each its own tonic channel, so its own HTTP/2 connection) × 8 concurrent streams
//!   each, latency p50/p99 at one stream, and the latency each proxy adds at p50 (its p50 minus the
//!   direct p50);
//! - the same through the gateway as its own process (the `prfix-service` binary, the gateway's
//!   own command line, with the same settings and limits, in front of the same agent), as nginx
//!   is its own processes;
//! - CPU per forwarded call of each proxy. nginx and the gateway process run as their own
//!   processes: their `utime + stime` (`/proc/<pid>/stat`, nginx's master and workers) over the
//!   throughput windows, divided by the calls. The in-process gateway's CPU is found by
//!   difference: the bench process's CPU per call in its windows minus that in the direct windows.
//!   That difference assumes the clients and the agent do the same work per call at the direct
//!   rate as at a proxy's (about 0.4x of it); the bench process's CPU per call in the nginx and
//!   gateway-process windows, printed beside, shows how far that holds (they do more per call at
//!   the lower rate: fewer calls share each wake-up and each system call). The row to hold against
//!   nginx is the gateway process's, measured as nginx's is. CPU of Postgres and Redis (the
//!   gateway's rate limits) is counted for neither proxy;
//! - three kinds of call through the gateway, each as a ratio of the first: the token call, an
//!   audited call (`CancelTask`, whose access record goes to the outbox; the same one-row lookup
//!   at the agent) and an API-key call (`GetTask` with an API key).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prfix_auth::Role;
use prfix_gateway::ratelimit::Quota;
use prfix_proto::agent::v1 as agent;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_tests::app::{Authed, TestApp, channel_to};
use prfix_tests::auth::{Bearer, token};
use prfix_tests::nginx::Nginx;
use prfix_tests::processes::{MachineCpu, Service, common_env, cpu_time, gateway_env};

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

/// Client connections per target, each its own HTTP/2 connection.
const CONNECTIONS: usize = 8;
/// Concurrent streams (callers) on each connection.
const STREAMS: usize = 8;
/// Rounds; each measures every target (or call kind) once, in turn.
const ROUNDS: usize = 5;
/// One target's throughput window per round.
const WINDOW: Duration = Duration::from_secs(2);
/// Sequential calls on one stream per target per round, for the latency rows.
const LATENCY_CALLS: usize = 600;

/// Limits on, but high enough that the benchmark measures their cost rather than their refusals.
const HIGH: Quota = Quota { per_minute: 60_000_000, burst: 1_000_000 };

#[derive(Clone, Copy)]
enum Kind {
    Token,
    Audited,
}

/// One call of `kind`, with a task id that is not a UUID: the agent answers INVALID_ARGUMENT before
/// any lookup, so either kind costs the same at the agent and the rows measure the path to it (and,
/// for audited calls, the access record). Refusals by the edge or failures would measure something
/// else.
async fn call(client: &mut AgentServiceClient<Authed>, kind: Kind) {
    let status = match kind {
        Kind::Token => client.get_task(agent::GetTaskRequest { task_id: "t-none".into() }).await.err(),
        Kind::Audited => client.cancel_task(agent::CancelTaskRequest { task_id: "t-none".into() }).await.err(),
    };
    let code = status.as_ref().map(tonic::Status::code);
    assert!(
        !matches!(
            code,
            Some(
                tonic::Code::Unauthenticated
                    | tonic::Code::PermissionDenied
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unavailable
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
            )
        ),
        "{code:?} {}",
        status.as_ref().map(tonic::Status::message).unwrap_or_default()
    );
}

/// What throughput windows measured, summed over rounds.
#[derive(Default, Clone, Copy)]
struct Windows {
    calls: u64,
    elapsed: Duration,
    /// CPU time of the bench process (clients, agent, audit and the in-process gateway).
    bench_cpu: Duration,
    /// CPU time of the proxy's own processes (nginx, the gateway process).
    proxy_cpu: Duration,
}

impl Windows {
    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn micros_per_call(cpu: Duration, calls: u64) -> f64 {
        cpu.as_secs_f64() * 1e6 / calls as f64
    }
}

fn bench_cpu() -> Duration {
    cpu_time("self").expect("the bench process's CPU time")
}

/// One window of calls of `kind` by `STREAMS` callers on each of `connections`, added to `sums`.
async fn throughput(
    connections: &[AgentServiceClient<Authed>],
    kind: Kind,
    proxy: Option<&Proxy<'_>>,
    sums: &mut Windows,
) {
    let (cpu_before, proxy_before) = (bench_cpu(), proxy.map(Proxy::cpu_time).unwrap_or_default());
    let started = Instant::now();
    let deadline = started + WINDOW;
    let workers: Vec<_> = connections
        .iter()
        .flat_map(|client| std::iter::repeat_n(client, STREAMS))
        .map(|client| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    call(&mut client, kind).await;
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    for worker in workers {
        sums.calls += worker.await.expect("worker finishes");
    }
    sums.elapsed += started.elapsed();
    sums.bench_cpu += bench_cpu() - cpu_before;
    sums.proxy_cpu += proxy.map(Proxy::cpu_time).unwrap_or_default() - proxy_before;
}

/// `LATENCY_CALLS` sequential token calls on one stream, added to `samples`.
async fn latencies(client: &AgentServiceClient<Authed>, samples: &mut Vec<Duration>) {
    let mut client = client.clone();
    for _ in 0..LATENCY_CALLS {
        let started = Instant::now();
        call(&mut client, Kind::Token).await;
        samples.push(started.elapsed());
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `CONNECTIONS` clients of `addr`, each on its own channel (its own HTTP/2 connection).
fn connections(addr: SocketAddr, credential: &str) -> Vec<AgentServiceClient<Authed>> {
    (0..CONNECTIONS).map(|_| AgentServiceClient::with_interceptor(channel_to(addr), Bearer::new(credential))).collect()
}

async fn warm_up(connections: &[AgentServiceClient<Authed>], kind: Kind) {
    for client in connections {
        let mut client = client.clone();
        for _ in 0..50 {
            call(&mut client, kind).await;
        }
    }
}

/// A proxy that runs as its own processes, whose CPU time is read from `/proc`.
enum Proxy<'a> {
    Nginx(&'a Nginx),
    Gateway(&'a Service),
}

impl Proxy<'_> {
    fn cpu_time(&self) -> Duration {
        match self {
            Self::Nginx(nginx) => nginx.cpu_time(),
            Self::Gateway(service) => {
                let pid = service.pid().expect("the gateway process runs");
                cpu_time(&pid.to_string()).expect("the gateway process's CPU time")
            }
        }
    }
}

/// A way to reach the agent, measured in turn with the others.
struct Target<'a> {
    name: &'static str,
    connections: Vec<AgentServiceClient<Authed>>,
    /// The proxy's own processes, when it runs apart from the bench process.
    proxy: Option<Proxy<'a>>,
    windows: Windows,
    latencies: Vec<Duration>,
}

impl<'a> Target<'a> {
    fn new(name: &'static str, addr: SocketAddr, credential: &str, proxy: Option<Proxy<'a>>) -> Self {
        Self {
            name,
            connections: connections(addr, credential),
            proxy,
            windows: Windows::default(),
            latencies: Vec::new(),
        }
    }

    fn bench_per_call(&self) -> f64 {
        Windows::micros_per_call(self.windows.bench_cpu, self.windows.calls)
    }
}

/// The gateway as its own process (the `prfix-service` binary runs the gateway's own command
/// line), in front of the same agent and audit service, on the same database and Redis, with the
/// same limits as the gateway in the bench process. Its access log lines are off, as nginx's are.
async fn gateway_process(app: &TestApp, data: &std::path::Path) -> Service {
    let (per_minute, burst) = (HIGH.per_minute.to_string(), HIGH.burst.to_string());
    let mut env = common_env(&app.db.url);
    env.extend(gateway_env(app.agent.addr, app.audit.addr, data));
    env.extend([
        ("PRFIX_LOG_LEVEL", "info,prfix::access=warn".to_owned()),
        ("PRFIX_GATEWAY__LIMITS__DEFAULT__PER_MINUTE", per_minute.clone()),
        ("PRFIX_GATEWAY__LIMITS__DEFAULT__BURST", burst.clone()),
        ("PRFIX_GATEWAY__LIMITS__EXPENSIVE__PER_MINUTE", per_minute),
        ("PRFIX_GATEWAY__LIMITS__EXPENSIVE__BURST", burst),
    ]);
    Service::start(env!("CARGO_BIN_EXE_prfix-service"), "gateway", &env).await
}

/// Direct vs gateway vs nginx for the token call.
async fn proxies(app: &TestApp, token: &str, nginx: &Result<Nginx, anyhow::Error>, process: &Service) {
    // Direct first (the reference), then the gateway in this process and as its own, then nginx
    // if it runs.
    let mut targets = vec![
        Target::new("direct to agent", app.agent.addr, token, None),
        Target::new("through gateway", app.gateway.addr, token, None),
        Target::new("gateway process", process.addr, token, Some(Proxy::Gateway(process))),
    ];
    let nginx = nginx.as_ref().ok();
    if let Some(nginx) = nginx {
        targets.push(Target::new("through nginx", nginx.addr, token, Some(Proxy::Nginx(nginx))));
    }
    for target in &targets {
        warm_up(&target.connections, Kind::Token).await;
    }
    for _ in 0..ROUNDS {
        for target in &mut targets {
            throughput(&target.connections, Kind::Token, target.proxy.as_ref(), &mut target.windows).await;
            latencies(&target.connections[0], &mut target.latencies).await;
        }
    }
    for target in &mut targets {
        target.latencies.sort();
    }

    println!("token call (GetTask), {ROUNDS} interleaved rounds; auth, policy and rate limits on at the gateway");
    println!("throughput, {CONNECTIONS} connections x {STREAMS} streams, {WINDOW:?} windows");
    let direct = targets[0].windows.per_second();
    let by_nginx = targets.get(3).map(|t| t.windows.per_second());
    for target in &targets {
        let rate = target.windows.per_second();
        let vs_nginx = by_nginx.map(|n| format!("   {:>5.2}x nginx", rate / n)).unwrap_or_default();
        println!("  {:<16} {:>5.2}x direct{vs_nginx}   ({rate:>7.0} calls/s)", target.name, rate / direct);
    }
    println!("latency, one stream, {} calls each", ROUNDS * LATENCY_CALLS);
    let direct50 = percentile(&targets[0].latencies, 0.5);
    for (i, target) in targets.iter().enumerate() {
        let (p50, p99) = (percentile(&target.latencies, 0.5), percentile(&target.latencies, 0.99));
        let added =
            if i == 0 { String::new() } else { format!("   adds {:>6.3} ms at p50", millis(p50) - millis(direct50)) };
        println!(
            "  {:<16} p50 {:>5.2}x direct ({:>6.3} ms)   p99 {:>6.3} ms{added}",
            target.name,
            p50.as_secs_f64() / direct50.as_secs_f64(),
            millis(p50),
            millis(p99)
        );
    }
    println!("CPU per forwarded call (throughput windows)");
    let bench_direct = targets[0].bench_per_call();
    let in_process = targets[1].bench_per_call() - bench_direct;
    println!(
        "  gateway in the bench process {in_process:>6.1} µs   by difference (bench process {:.1} µs/call through it, {bench_direct:.1} µs/call direct)",
        targets[1].bench_per_call()
    );
    let own = |t: &Target| Windows::micros_per_call(t.windows.proxy_cpu, t.windows.calls);
    let process = own(&targets[2]);
    println!(
        "  gateway process              {process:>6.1} µs   its own CPU time (bench process {:.1} µs/call through it)",
        targets[2].bench_per_call()
    );
    if let (Some(nginx), Some(target)) = (nginx, targets.get(3)) {
        let nginx_own = own(target);
        println!(
            "  nginx                        {nginx_own:>6.1} µs   its own CPU time, {} workers (bench process {:.1} µs/call through it)",
            nginx.workers,
            target.bench_per_call()
        );
        println!(
            "  gateway process/nginx: {:.2}x   (in the bench process, by difference: {:.2}x)",
            process / nginx_own,
            in_process / nginx_own
        );
    }
}

/// One kind of call to one target only (`direct` or `gateway`: token calls; `audited`: audited
/// calls through the gateway) for `PRFIX_BENCH_PROFILE_SECS` (30 by default), for a profiler
/// attached to the bench process: `PRFIX_BENCH_PROFILE=gateway cargo bench -p prfix-tests --bench
/// gateway_overhead`, then `perf record -p <pid>` while it says it runs. Besides the bench process's
/// CPU per call it prints the whole machine's (busy time of all cores, from `/proc/stat`) and the
/// share of it Postgres used, and how much of the machine stood idle: a call kind that leaves
/// cores idle is held back by waiting (a lock, a round trip, a commit), not by work.
async fn profile(app: &TestApp, token: &str, target: &str) {
    let (addr, kind) = match target {
        "direct" => (app.agent.addr, Kind::Token),
        "gateway" => (app.gateway.addr, Kind::Token),
        "audited" => (app.gateway.addr, Kind::Audited),
        other => panic!("PRFIX_BENCH_PROFILE={other}: expected `direct`, `gateway` or `audited`"),
    };
    let secs: u64 = std::env::var("PRFIX_BENCH_PROFILE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let connections = connections(addr, token);
    warm_up(&connections, kind).await;
    println!("profiling: {target} calls for {secs} s in process {}", std::process::id());
    let mut sums = Windows::default();
    let groups = &prfix_runtime::metrics::METRICS.audit_batch_size;
    let (groups_before, grouped_before) = (groups.get_sample_count(), groups.get_sample_sum());
    let before = MachineCpu::now();
    for _ in 0..secs.div_ceil(WINDOW.as_secs()) {
        throughput(&connections, kind, None, &mut sums).await;
    }
    let used = MachineCpu::now().since(&before);
    println!(
        "{target}: {:.0} calls/s, bench process {:.1} µs CPU per call",
        sums.per_second(),
        Windows::micros_per_call(sums.bench_cpu, sums.calls)
    );
    println!(
        "machine: {:.1} µs CPU per call (Postgres {:.1} µs of it), {:.0}% of the cores idle",
        Windows::micros_per_call(used.busy, sums.calls),
        Windows::micros_per_call(used.postgres, sums.calls),
        used.idle_percent()
    );
    // The audit writer's group commits while the calls ran (audited calls' access records).
    let commits = groups.get_sample_count() - groups_before;
    if commits > 0 {
        let events = groups.get_sample_sum() - grouped_before;
        println!("audit writer: {commits} group commits, {:.1} events each", events / commits as f64);
    }
}

/// An API key of the bootstrap admin (who holds the admin role; GetTask allows it).
async fn developer_key(app: &TestApp) -> String {
    use prfix_proto::auth::v1 as auth;
    let admin = app.admin_token().await;
    let created = app
        .auth_client_as(&admin)
        .create_api_key(auth::CreateApiKeyRequest {
            name: "bench".into(),
            roles: vec![prfix_proto::options::v1::Role::Admin as i32],
            ttl: None,
            owner: String::new(),
        })
        .await
        .expect("an API key")
        .into_inner();
    created.secret
}

/// Token vs audited vs API-key calls through the gateway.
async fn call_kinds(app: &TestApp, token: &str) {
    let by_token = connections(app.gateway.addr, token);
    let by_key = connections(app.gateway.addr, &developer_key(app).await);
    let rows: [(&str, &[AgentServiceClient<Authed>], Kind); 3] = [
        ("token call (GetTask)", &by_token, Kind::Token),
        ("audited call (CancelTask)", &by_token, Kind::Audited),
        ("API-key call (GetTask)", &by_key, Kind::Token),
    ];
    for (_, connections, kind) in &rows {
        warm_up(connections, *kind).await;
    }
    let mut sums = [Windows::default(); 3];
    for _ in 0..ROUNDS {
        for (i, (_, connections, kind)) in rows.iter().enumerate() {
            throughput(connections, *kind, None, &mut sums[i]).await;
        }
    }
    println!(
        "call kinds through the gateway, {CONNECTIONS} connections x {STREAMS} streams, {ROUNDS} interleaved rounds of {WINDOW:?}"
    );
    let reference = sums[0].per_second();
    for (i, (name, ..)) in rows.iter().enumerate() {
        let rate = sums[i].per_second();
        println!("  {name:<28} {:>5.2}x the token call   ({rate:>7.0} calls/s)", rate / reference);
    }
}

#[tokio::main]
async fn main() {
    // The agent applies the method limits at its own port too: high there as well.
    let app = prfix_tests::app::spawn_app_shared(
        |common| {
            common.service_limits.default = HIGH;
            common.service_limits.expensive = HIGH;
        },
        |s| {
            s.gateway.limits.default = HIGH;
            s.gateway.limits.expensive = HIGH;
        },
        |_| {},
    )
    .await;
    let nginx = Nginx::start_grpc(app.agent.addr).await;
    match &nginx {
        Ok(nginx) => println!(
            "nginx: {} grpc_pass to the agent, {} workers (worker_processes auto); it does no JWT check: it passes the bearer token through and the agent verifies it",
            nginx.version, nginx.workers
        ),
        Err(e) => println!("nginx rows skipped: {e:#}"),
    }
    let token = token("bench", &[Role::Developer]);
    if let Ok(target) = std::env::var("PRFIX_BENCH_PROFILE") {
        profile(&app, &token, &target).await;
        return;
    }
    let data = tempfile::tempdir().expect("a data directory for the gateway process");
    let process = gateway_process(&app, data.path()).await;
    println!("gateway process: {} (prfix-service gateway), pid {}", process.addr, process.pid().unwrap_or_default());
    proxies(&app, &token, &nginx, &process).await;
    drop(process);
    call_kinds(&app, &token).await;
    drop(nginx);
}
