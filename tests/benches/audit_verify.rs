//! Offline audit verification and export, against `sha256sum` of the same file, with peak memory.
//!
//! Run: `cargo bench -p prfix-tests --bench audit_verify` (needs the test Postgres and Redis; with
//! the default 1,000,000 events, a few minutes and about 1 GB of disk).
//!
//! - A log of `PRFIX_BENCH_VERIFY_EVENTS` events (default 1,000,000) is appended to a fresh audit
//!   service with AppendBatch (real hashes, signed checkpoints every 1,000 events), then exported
//!   through the gateway's ExportEvents stream into a JSON-lines file exactly as `prfix audit export`
//!   writes it (the service's chunks of lines through a 1 MiB buffer): events per second; then from
//!   the audit service directly, and through the gateway as items converted by the client (as
//!   clients from before JSON lines export).
//! - The export and its prefix up to the checkpoint of a tenth of the events are verified as
//!   `prfix audit verify` does (the file streamed and parsed on every core), each in a child process
//!   of this bench so that its peak resident memory (VmHWM) is its own, in rounds interleaved with
//!   `sha256sum` of the same file: the ratio is verify's speed as a fraction of sha256sum's.
//!
//! Figures only; nothing here asserts a time.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, VerifyOptions};
use prfix_audit::jsonl::write_stream;
use prfix_audit::parallel::{Parallelism, verify_path};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::app::{Authed, TestApp, channel_to};
use prfix_tests::auth::{Bearer, audit_key, operator_token};

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

/// Rounds of each measurement, the two sides alternating.
const ROUNDS: usize = 3;
/// Set in the child process that verifies: the file to verify (the key is in `CHILD_KEY`).
const CHILD_FILE: &str = "PRFIX_BENCH_VERIFY_CHILD_FILE";
const CHILD_KEY: &str = "PRFIX_BENCH_VERIFY_CHILD_KEY";

fn event(i: u64) -> audit::AuditEvent {
    let mut metadata = prost_types::Struct::default();
    metadata
        .fields
        .insert("n".into(), prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(i as f64)) });
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 123_456_000 }),
        actor: Some(audit::Actor { subject: format!("user{}", i % 7), roles: vec!["developer".into()] }),
        actor_ip: "10.1.2.3".into(),
        action: "task.create".into(),
        resource: format!("tasks/{i}"),
        result: audit::AuditResult::Success as i32,
        request_id: format!("req-{i}"),
        metadata: Some(metadata),
        ..Default::default()
    }
}

/// Verifies `CHILD_FILE` and prints `<events> <ok> <VmHWM kB>` (run as a child of the bench).
fn child(file: &str) {
    let key = std::env::var(CHILD_KEY).expect("the parent passes the key");
    let keys = vec![VerifierKey::parse(&key).expect("verifier key")];
    let report =
        verify_path(Path::new(file), &VerifyOptions { keys, trusted: None }, Parallelism::default()).expect("readable");
    if !report.ok() {
        eprintln!("{:?}", report.problems.first());
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("{} {} {hwm}", report.events, report.ok());
}

/// Time, events, whether it verified, and peak memory (kB) of verifying `file` in a child process.
fn verify_in_child(file: &Path) -> (Duration, usize, bool, u64) {
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .env(CHILD_FILE, file)
        .env(CHILD_KEY, &audit_key().verifier_key)
        .output()
        .expect("the child runs");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert!(out.status.success() && fields.len() == 3, "child: {text} {}", String::from_utf8_lossy(&out.stderr));
    (took, fields[0].parse().unwrap_or(0), fields[1] == "true", fields[2].parse().unwrap_or(0))
}

fn sha256sum(file: &Path) -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("sha256sum")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sha256sum runs");
    assert!(status.success());
    started.elapsed()
}

/// Appends `size` events with batches of 1,000 from 8 callers straight to the audit service.
async fn fill(app: &TestApp, size: u64) {
    let client = AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&operator_token()));
    let took = prfix_tests::audit_fill::fill(&client, event, size).await;
    println!("  (appended {size} events in {:.1} s)", took.as_secs_f64());
}

/// Exports the log through `client` into `file`: in JSON lines rendered by the service, as `prfix
/// audit export` does (`jsonl`), or as items converted here (what clients from before JSON lines
/// do). Returns the time and the events.
async fn export(client: &AuditServiceClient<Authed>, file: &Path, jsonl: bool) -> (Duration, u64) {
    let started = Instant::now();
    let request = if jsonl { prfix_audit::jsonl::request(0, 0) } else { audit::ExportEventsRequest::default() };
    let mut stream = client.clone().export_events(request).await.expect("export").into_inner();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(file).expect("create"));
    let first = started.elapsed();
    let (events, _) = write_stream(&mut stream, &mut out).await.expect("the export streams to its end");
    out.flush().expect("flush");
    let took = started.elapsed();
    println!("    (export: answer after {:.3} s, done after {:.2} s)", first.as_secs_f64(), took.as_secs_f64());
    (took, events)
}

/// Copies the lines of `file` up to the first checkpoint of at least `prefix` events into `prefix_file`.
fn cut_prefix(file: &Path, prefix: u64, prefix_file: &Path) {
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("open"));
    let mut cut = std::io::BufWriter::new(std::fs::File::create(prefix_file).expect("create"));
    for line in reader.lines() {
        let line = line.expect("read");
        writeln!(cut, "{line}").expect("write");
        if let Ok(ExportLine::Checkpoint { signed_note }) = serde_json::from_str(&line)
            && prfix_audit::verify::note_size(&signed_note).is_some_and(|s| s >= prefix)
        {
            break;
        }
    }
    cut.flush().expect("flush");
}

fn measure(file: &Path) {
    let bytes = std::fs::metadata(file).map_or(0, |m| m.len());
    let (mut ours, mut theirs, mut peak) = (Duration::ZERO, Duration::ZERO, 0u64);
    let mut events = 0;
    for _ in 0..ROUNDS {
        theirs += sha256sum(file);
        let (took, n, ok, hwm) = verify_in_child(file);
        assert!(ok, "the export verifies");
        ours += took;
        events = n;
        peak = peak.max(hwm);
    }
    let (ours, theirs) = (ours / ROUNDS as u32, theirs / ROUNDS as u32);
    println!(
        "  {events:>8} events, {:>5.0} MB: verify {:.2} s ({:.0} events/s, {:.0} MB/s), sha256sum {:.2} s ({:.0} MB/s): {:.2}x sha256sum's speed; peak memory {:.1} MB",
        bytes as f64 / 1e6,
        ours.as_secs_f64(),
        events as f64 / ours.as_secs_f64(),
        bytes as f64 / 1e6 / ours.as_secs_f64(),
        theirs.as_secs_f64(),
        bytes as f64 / 1e6 / theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        peak as f64 / 1024.0,
    );
}

fn main() {
    if let Ok(file) = std::env::var(CHILD_FILE) {
        return child(&file);
    }
    let size: u64 = std::env::var("PRFIX_BENCH_VERIFY_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let prefix = (size / 10).max(1_000) / 1_000 * 1_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, prefix_file): (PathBuf, PathBuf) = (dir.path().join("export.jsonl"), dir.path().join("prefix.jsonl"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let high = prfix_runtime::ratelimit::Quota { per_minute: 60_000_000, burst: 1_000_000 };
        let app =
            prfix_tests::app::spawn_app_shared(|common| common.service_limits.internal = high, |_| {}, |_| {}).await;
        println!("audit export and offline verify of {size} events");
        fill(&app, size).await;
        let client = app.audit_client();
        let direct = AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&operator_token()));
        let mut events = 0;
        for (label, client, jsonl) in [
            ("through the gateway in JSON lines (prfix audit export)", &client, true),
            ("from the audit service directly in JSON lines", &direct, true),
            ("through the gateway as items converted by the client", &client, false),
        ] {
            let mut best = Duration::MAX;
            for _ in 0..ROUNDS {
                let (took, n) = export(client, &file, jsonl).await;
                best = best.min(took);
                events = n;
            }
            println!(
                "  export {label}: {events} events in {:.2} s = {:.0} events/s (best of {ROUNDS})",
                best.as_secs_f64(),
                events as f64 / best.as_secs_f64()
            );
        }
        cut_prefix(&file, prefix, &prefix_file);
        // The floor: the same pages read by SQL alone, as the service reads them.
        let db = app.db.connect().await;
        let page = db
            .prepare(&format!(
                "SELECT {} FROM audit.events WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence",
                prfix_audit::store::COLUMNS
            ))
            .await
            .expect("prepare");
        let started = Instant::now();
        let head: i64 = db.query_one("SELECT max(sequence) FROM audit.events", &[]).await.expect("head").get(0);
        let (mut next, mut rows) = (1i64, 0usize);
        while next <= head {
            rows += db.query(&page, &[&next, &(next + 1_999)]).await.expect("page").len();
            next += 2_000;
        }
        let took = started.elapsed().as_secs_f64();
        println!("  the same pages by SQL alone: {rows} rows in {took:.2} s = {:.0} rows/s", rows as f64 / took);
    });
    println!("verify (a child process each, {ROUNDS} rounds interleaved with sha256sum of the same file):");
    measure(&prefix_file);
    measure(&file);
}
