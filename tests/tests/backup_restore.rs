//! Backups and restores as an operator runs them, with `scripts/backup` and `scripts/restore`: a restore
//! drill (every row back in a new database, an audit log that verifies offline and stays append-only),
//! a restore into a fresh cluster, and the scripts' refusals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, read_jsonl, verify, write_jsonl};
use prfix_auth::Role;
use prfix_proto::agent::v1 as agent;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::auth::v1 as auth;
use prfix_tests::app::{Authed, Running, agent_settings, audit_settings, channel_to, provision_service_key, run};
use prfix_tests::auth::{Bearer, audit_key, operator_token};
use prfix_tests::db::admin_url;
use prfix_tests::git::Repo;
use prfix_tests::pg_server::PrivatePostgres;
use prfix_tests::{Reply, TestApp, TestDatabase, spawn_app};
use secrecy::SecretString;

const MODEL: &str = "qwen2.5-coder:14b";
const SCHEMAS: [&str; 3] = ["gateway", "agent", "audit"];
const EXIT_CHECKSUM: i32 = 3;
const EXIT_NOT_EMPTY: i32 = 4;

/// What a script did.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `scripts/<name>` with `args` (and without the caller's PRFIX_DATABASE_URL).
async fn script(name: &str, args: &[&str]) -> Ran {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name);
    let output = tokio::process::Command::new(&path)
        .args(args)
        .env_remove("PRFIX_DATABASE_URL")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} runs: {e}", path.display()));
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `scripts/backup --url URL --dir DIR [extra]`, which must succeed; the dump's path.
async fn backup(url: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let dir = dir.to_string_lossy();
    let mut args = vec!["--url", url, "--dir", &dir];
    args.extend_from_slice(extra);
    let ran = script("backup", &args).await;
    assert_eq!(ran.code, 0, "backup failed: {ran:?}");
    let dump = PathBuf::from(ran.stdout.trim());
    assert!(dump.is_file(), "backup printed the dump's path: {ran:?}");
    dump
}

/// `scripts/restore --target-url URL [extra] DUMP`.
async fn restore(dump: &Path, target_url: &str, extra: &[&str]) -> Ran {
    let dump = dump.to_string_lossy();
    let mut args = vec!["--target-url", target_url];
    args.extend_from_slice(extra);
    args.push(&dump);
    script("restore", &args).await
}

/// A database name no one uses, on the test server, dropped when the guard goes (even when the test
/// fails first).
fn unique_database() -> TestDatabase {
    let name = format!("prfix_restore_{}", uuid::Uuid::new_v4().simple());
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    TestDatabase { url: format!("{base}/{name}"), name }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("database reachable");
    tokio::spawn(connection);
    client
}

async fn database_exists(name: &str) -> bool {
    let admin = connect(&admin_url()).await;
    admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await.expect("pg_database").is_some()
}

/// The row count of every table in the three schemas.
async fn row_counts(client: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    let schemas: Vec<&str> = SCHEMAS.to_vec();
    let tables = client
        .query("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1) ORDER BY 1, 2", &[&schemas])
        .await
        .expect("tables");
    let mut counts = BTreeMap::new();
    for table in tables {
        let name = format!("{}.{}", table.get::<_, &str>(0), table.get::<_, &str>(1));
        let sql = format!("SELECT count(*) FROM \"{}\".\"{}\"", table.get::<_, &str>(0), table.get::<_, &str>(1));
        counts.insert(name, client.query_one(&sql, &[]).await.expect("count").get(0));
    }
    counts
}

/// Each append-only trigger of the audit log and how it is enabled (`A`: always).
async fn audit_triggers(client: &tokio_postgres::Client) -> BTreeMap<String, String> {
    client
        .query(
            "SELECT c.relname || '.' || g.tgname, g.tgenabled::text FROM pg_trigger g
             JOIN pg_class c ON c.oid = g.tgrelid WHERE c.relnamespace = 'audit'::regnamespace AND NOT g.tgisinternal",
            &[],
        )
        .await
        .expect("triggers")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

fn all_enabled_always() -> BTreeMap<String, String> {
    [
        "checkpoints.checkpoints_refuse_truncate",
        "checkpoints.checkpoints_refuse_update_delete",
        "cosignatures.cosignatures_refuse_truncate",
        "cosignatures.cosignatures_refuse_update_delete",
        "events.events_refuse_truncate",
        "events.events_refuse_update_delete",
        "subtrees.subtrees_refuse_truncate",
        "subtrees.subtrees_refuse_update_delete",
    ]
    .into_iter()
    .map(|t| (t.to_owned(), "A".to_owned()))
    .collect()
}

fn audit_event(i: usize) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 250_000_000 }),
        actor: Some(audit::Actor { subject: "ops".into(), roles: vec!["admin".into()] }),
        actor_ip: "10.0.0.7".into(),
        action: format!("drill.step{i}"),
        resource: format!("drills/{i}"),
        result: audit::AuditResult::Success as i32,
        request_id: format!("drill-{i}"),
        ..Default::default()
    }
}

/// The whole log with its checkpoints, from an audit client (through the gateway or direct).
async fn export(client: &mut AuditServiceClient<Authed>) -> Vec<ExportLine> {
    prfix_tests::audit_export::export_lines(client).await
}

fn events(lines: &[ExportLine]) -> Vec<&ExportLine> {
    lines.iter().filter(|l| matches!(l, ExportLine::Event(_))).collect()
}

/// An audit service started on the database at `url`, and a client that talks to it directly.
async fn audit_service_on(app: &TestApp, url: &str) -> (Running, AuditServiceClient<Authed>) {
    let mut common = app.common.clone();
    common.database_url = SecretString::from(url.to_owned());
    let service = prfix_audit::Application::build(audit_settings(&common)).await.expect("audit starts on the restore");
    let running = run(service.local_addr(), |stop| service.run_until_stopped(stop));
    let client = AuditServiceClient::with_interceptor(channel_to(running.addr), Bearer::new(&operator_token()));
    (running, client)
}

/// Polls `count` until it returns 0; panics after `limit`.
async fn wait_for_zero(client: &tokio_postgres::Client, sql: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left: i64 = client.query_one(sql, &[]).await.expect(sql).get(0);
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{sql} still {left} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Users, an API key, a review task made with that key, the agent's audit records shipped by a
/// relaying agent replica, and audit events appended directly: a system with some history.
async fn create_history(app: &TestApp) -> Running {
    app.ollama.set_models(&[MODEL]);
    let admin = app.admin_token().await;
    let admin_client = || app.auth_client_as(&admin);
    let dana = app.user_token("dana", &[Role::Developer]).await;
    app.auth_client_as(&dana).who_am_i(auth::WhoAmIRequest::default()).await.expect("dana is logged in");
    let dana_key = admin_client()
        .create_api_key(auth::CreateApiKeyRequest {
            name: "ci".into(),
            roles: vec![Role::Developer.to_proto() as i32],
            ttl: None,
            owner: "dana".into(),
        })
        .await
        .expect("an API key for dana")
        .into_inner()
        .secret;

    // The agent's audit credential, as an operator provisions it, and a replica that relays with it.
    let service_key = provision_service_key(admin_client(), "agent").await;
    let mut settings = agent_settings(&app.common);
    settings.audit_credential = Some(SecretString::from(service_key));
    settings.agent.audit_url = format!("http://{}", app.gateway.addr);
    let relaying = prfix_agent::Application::build(settings).await.expect("agent with a relay");
    let relaying = run(relaying.local_addr(), |stop| relaying.run_until_stopped(stop));

    // A review, made with the API key.
    let repo = Repo::init();
    repo.write("src/lib.rs", "pub fn div(a: u32, b: u32) -> u32 {\n    a\n}\n");
    repo.commit("base");
    repo.write("src/lib.rs", "pub fn div(a: u32, b: u32) -> u32 {\n    a / b\n}\n");
    repo.commit("divide");
    app.ollama.push(
        "/api/chat",
        Reply::chat(
            r#"{"findings": [{"path": "src/lib.rs", "line": 2, "severity": "major", "category": "bug",
                "title": "Division by zero", "body": "b may be 0."}]}"#,
        ),
    );
    let mut tasks = app.agent_client_as(&dana_key);
    let task = tasks
        .create_review(agent::CreateReviewRequest { change_set: Some(repo.change_set("HEAD~1")), options: None })
        .await
        .expect("review created with the API key")
        .into_inner()
        .task
        .expect("task");
    let done = prfix_tests::tasks::wait_for_end(&mut tasks, &task.task_id, Duration::from_secs(15)).await;
    assert_eq!(done.state, agent::TaskState::Succeeded as i32, "{}", done.error);

    // Audit events appended directly, in two batches with a checkpoint (an export) between them.
    app.audit_client()
        .append_batch(audit::AppendBatchRequest { events: (0..8).map(audit_event).collect() })
        .await
        .expect("append");
    let _ = export(&mut app.audit_client()).await;
    app.audit_client()
        .append_batch(audit::AppendBatchRequest { events: (8..12).map(audit_event).collect() })
        .await
        .expect("append");

    // The agent's records (task created, task succeeded) reach the log through the relay.
    let pg = app.db.connect().await;
    wait_for_zero(&pg, "SELECT count(*) FROM agent.audit_outbox", Duration::from_secs(20)).await;
    let shipped = app
        .audit_client()
        .list_events(audit::ListEventsRequest { resource: format!("tasks/{}", task.task_id), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .events;
    let actions: Vec<&str> = shipped.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"agent.task.create.review") && actions.contains(&"agent.task.succeeded"), "{actions:?}");
    relaying
}

#[tokio::test]
async fn a_restore_drill_brings_back_every_row_and_an_audit_log_that_verifies_offline_and_stays_append_only() {
    let mut app = spawn_app().await;
    let mut relaying = create_history(&app).await;
    let before_backup = export(&mut app.audit_client()).await;
    assert!(verify(&before_backup, &[VerifierKey::parse(&audit_key().verifier_key).expect("key")]).ok());
    // Quiet the system so that the source's counts after the backup are the backup's counts.
    relaying.stop().await;
    app.gateway.stop().await;
    app.agent.stop().await;
    app.audit.stop().await;

    let backups = tempfile::tempdir().expect("temp dir");
    let dump = backup(&app.db.url, backups.path(), &[]).await;
    let restored = unique_database();
    let ran = restore(&dump, &restored.url, &[]).await;
    assert_eq!(ran.code, 0, "restore failed: {ran:?}");

    // (a) Every table of the three schemas has the same rows, and there was something to restore.
    let source = app.db.connect().await;
    let target = restored.connect().await;
    let counts = row_counts(&target).await;
    assert_eq!(counts, row_counts(&source).await, "row counts differ between source and restore");
    for (table, at_least) in [
        ("gateway.users", 3),
        ("gateway.api_keys", 2),
        ("gateway.refresh_tokens", 2),
        ("agent.tasks", 1),
        ("agent.task_events", 1),
        ("audit.events", 16),
        ("audit.checkpoints", 2),
    ] {
        assert!(counts.get(table).copied().unwrap_or(0) >= at_least, "{table}: {counts:?}");
    }
    let last_chain = "SELECT chain_hash FROM audit.events ORDER BY sequence DESC LIMIT 1";
    let chain: Vec<u8> = target.query_one(last_chain, &[]).await.expect("chain").get(0);
    assert_eq!(chain, source.query_one(last_chain, &[]).await.expect("chain").get::<_, Vec<u8>>(0));

    // (b) An audit service on the restored database exports a log that verifies offline, as
    // `prfix audit export` then `prfix audit verify --key` do, and that extends what was exported before.
    let (mut service, mut client) = audit_service_on(&app, &restored.url).await;
    let lines = export(&mut client).await;
    let file = backups.path().join("restored-audit.jsonl");
    write_jsonl(&lines, &mut std::fs::File::create(&file).expect("create")).expect("write the export");
    let read = read_jsonl(&std::fs::read_to_string(&file).expect("read")).expect("the export parses");
    let report = verify(&read, &[VerifierKey::parse(&audit_key().verifier_key).expect("verifier key")]);
    assert!(report.ok(), "the restored log does not verify: {:?}", report.problems);
    assert_eq!(report.events as i64, counts["audit.events"]);
    let earlier = events(&before_backup);
    assert_eq!(events(&read)[..earlier.len()], earlier[..], "the restored log is not the log that was exported");
    let verdict = client.verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(verdict.ok, "{:?}", verdict.problems);
    service.stop().await;

    // (c) The restored log is still append-only, for a superuser too and in replica mode.
    for sql in [
        "UPDATE audit.events SET action = 'tampered' WHERE sequence = 1",
        "DELETE FROM audit.events WHERE sequence = 1",
        "TRUNCATE audit.events",
        "UPDATE audit.checkpoints SET signed_note = '' WHERE tree_size > 0",
        "SET session_replication_role = replica; UPDATE audit.events SET action = 'tampered' WHERE sequence = 1",
    ] {
        let refused = target.batch_execute(&format!("BEGIN; {sql}; COMMIT;")).await.expect_err(sql);
        assert!(refused.as_db_error().is_some_and(|e| e.message().contains("append-only")), "{sql}: {refused}");
        target.batch_execute("ROLLBACK; RESET session_replication_role").await.expect("rollback");
    }
    assert_eq!(audit_triggers(&target).await, all_enabled_always());
    let privileges = target
        .query_one(
            "SELECT has_table_privilege('prfix_audit', 'audit.events', 'INSERT'),
                    has_table_privilege('prfix_audit', 'audit.events', 'UPDATE'),
                    has_table_privilege('prfix_gateway', 'gateway.users', 'UPDATE'),
                    has_table_privilege('prfix_agent', 'agent.tasks', 'DELETE')",
            &[],
        )
        .await
        .expect("privileges");
    let privileges: [bool; 4] = std::array::from_fn(|i| privileges.get(i));
    assert_eq!(privileges, [true, false, true, true], "the grants to the service roles came back");
}

#[tokio::test]
async fn a_restore_into_a_fresh_cluster_creates_the_roles_and_their_grants_and_the_audit_service_runs_on_it() {
    let app = spawn_app().await;
    app.audit_client()
        .append_batch(audit::AppendBatchRequest { events: (0..5).map(audit_event).collect() })
        .await
        .expect("append");
    let _ = export(&mut app.audit_client()).await;
    let backups = tempfile::tempdir().expect("temp dir");
    let dump = backup(&app.db.url, backups.path(), &[]).await;

    let cluster = PrivatePostgres::start().await;
    let target_url = cluster.url("prfix");
    let ran = restore(&dump, &target_url, &[]).await;
    assert_eq!(ran.code, 0, "restore failed: {ran:?}");
    for role in ["prfix_gateway", "prfix_agent", "prfix_audit"] {
        assert!(ran.stderr.contains(&format!("created role {role}")), "{ran:?}");
    }
    let target = connect(&target_url).await;
    let roles: Vec<(String, bool)> = target
        .query("SELECT rolname::text, rolcanlogin FROM pg_roles WHERE rolname LIKE 'prfix\\_%' ORDER BY 1", &[])
        .await
        .expect("roles")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = ["prfix_agent", "prfix_audit", "prfix_gateway"].map(|r| (r.to_owned(), false));
    assert_eq!(roles, expected, "the NOLOGIN roles the migrations expect");
    assert_eq!(audit_triggers(&target).await, all_enabled_always());

    // The service runs as prfix_audit on the new cluster: the grants are what it needs.
    let (mut service, mut client) = audit_service_on(&app, &target_url).await;
    let verdict = client.verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(verdict.ok && verdict.events_checked >= 5, "{verdict:?}");
    client
        .append(audit::AppendRequest { event: Some(audit_event(5)) })
        .await
        .expect("the restored log takes new events");
    service.stop().await;
}

#[tokio::test]
async fn a_dump_whose_checksum_does_not_match_or_is_missing_is_refused_before_anything_is_created() {
    let app = spawn_app().await;
    let backups = tempfile::tempdir().expect("temp dir");
    let dump = backup(&app.db.url, backups.path(), &[]).await;
    let checksum = PathBuf::from(format!("{}.sha256", dump.display()));
    let expected = std::fs::read_to_string(&checksum).expect("checksum file");
    let name = dump.file_name().expect("a file name").to_string_lossy().into_owned();
    assert!(expected.ends_with(&format!("  {name}\n")) && expected.len() == 64 + 2 + name.len() + 1, "{expected}");

    // One flipped byte in the middle of the dump.
    let mut bytes = std::fs::read(&dump).expect("dump");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&dump, &bytes).expect("damage the dump");
    let restored = unique_database();
    let ran = restore(&dump, &restored.url, &[]).await;
    assert_eq!(ran.code, EXIT_CHECKSUM, "{ran:?}");
    assert!(ran.stderr.contains("checksum mismatch"), "{ran:?}");
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {ran:?}");
    assert!(!database_exists(&restored.name).await, "nothing was created");

    // The undamaged dump without its checksum file.
    bytes[middle] ^= 0x01;
    std::fs::write(&dump, &bytes).expect("repair the dump");
    std::fs::remove_file(&checksum).expect("remove the checksum");
    let ran = restore(&dump, &restored.url, &[]).await;
    assert_eq!(ran.code, EXIT_CHECKSUM, "{ran:?}");
    assert!(ran.stderr.contains("no checksum file"), "{ran:?}");
    assert!(!database_exists(&restored.name).await, "nothing was created");
}

#[tokio::test]
async fn a_restore_into_a_database_that_has_prfix_schemas_is_refused_unless_forced() {
    let mut app = spawn_app().await;
    app.audit_client()
        .append_batch(audit::AppendBatchRequest { events: (0..3).map(audit_event).collect() })
        .await
        .expect("append");
    // Quiet, so that the database's rows stay what the backup holds.
    app.gateway.stop().await;
    app.agent.stop().await;
    app.audit.stop().await;
    let backups = tempfile::tempdir().expect("temp dir");
    let dump = backup(&app.db.url, backups.path(), &[]).await;
    let source = app.db.connect().await;
    let before = row_counts(&source).await;

    // Into the database it came from.
    let ran = restore(&dump, &app.db.url, &[]).await;
    assert_eq!(ran.code, EXIT_NOT_EMPTY, "{ran:?}");
    assert!(ran.stderr.contains("already has prfix schemas (agent, audit, gateway)"), "{ran:?}");
    assert_eq!(row_counts(&source).await, before, "the database was not touched");

    // Into a new database, then again into that one: refused, then replaced with --force.
    let restored = unique_database();
    let ran = restore(&dump, &restored.url, &[]).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let target = restored.connect().await;
    target.batch_execute("INSERT INTO agent.audit_outbox (payload) VALUES ('\\x00')").await.expect("a later row");
    let ran = restore(&dump, &restored.url, &[]).await;
    assert_eq!(ran.code, EXIT_NOT_EMPTY, "{ran:?}");
    assert_eq!(
        target.query_one("SELECT count(*) FROM agent.audit_outbox", &[]).await.expect("count").get::<_, i64>(0),
        1
    );
    let ran = restore(&dump, &restored.url, &["--force"]).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(row_counts(&restored.connect().await).await, before, "--force replaced the database's content");
    assert_eq!(audit_triggers(&restored.connect().await).await, all_enabled_always());
}

#[tokio::test]
async fn a_dump_taken_with_audit_triggers_switched_off_restores_with_them_enabled_always() {
    let app = spawn_app().await;
    let source = app.db.connect().await;
    source
        .batch_execute(
            "ALTER TABLE audit.events DISABLE TRIGGER events_refuse_update_delete;
             ALTER TABLE audit.checkpoints ENABLE TRIGGER checkpoints_refuse_truncate;",
        )
        .await
        .expect("switch triggers off as a superuser");
    let backups = tempfile::tempdir().expect("temp dir");
    let dump = backup(&app.db.url, backups.path(), &[]).await;
    let restored = unique_database();
    let ran = restore(&dump, &restored.url, &[]).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("re-enabled events_refuse_update_delete on audit.events"), "{ran:?}");
    assert!(ran.stderr.contains("re-enabled checkpoints_refuse_truncate on audit.checkpoints"), "{ran:?}");
    assert_eq!(audit_triggers(&restored.connect().await).await, all_enabled_always());
}

/// A database with one small table (the scripts do not need a prfix database to back up).
async fn small_database() -> TestDatabase {
    let db = unique_database();
    connect(&admin_url()).await.batch_execute(&format!("CREATE DATABASE \"{}\"", db.name)).await.expect("create");
    db.connect().await.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)").await.expect("a table");
    db
}

#[tokio::test]
async fn keep_two_leaves_the_two_newest_backups_and_touches_no_other_file() {
    let db = small_database().await;
    let backups = tempfile::tempdir().expect("temp dir");
    let dir = backups.path();
    // An older backup of ours, and files that only look like ours.
    let strangers =
        ["notes.txt", "prfix-manual.dump", "prfix-20200101T000000Z.dump", "prfix-20200101T000000.000Z.dump.old"];
    for file in strangers.iter().chain(&["prfix-20000101T000000.000Z.dump", "prfix-20000101T000000.000Z.dump.sha256"]) {
        std::fs::write(dir.join(file), "x").expect("write");
    }

    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(backup(&db.url, dir, &["--keep", "2"]).await);
    }
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected: Vec<String> = strangers.iter().map(|s| (*s).to_owned()).collect();
    for dump in &made[1..] {
        let name = dump.file_name().expect("name").to_string_lossy().into_owned();
        expected.push(format!("{name}.sha256"));
        expected.push(name);
    }
    expected.sort();
    assert_eq!(left, expected, "the two newest backups (with their checksums) and the strangers are left");
    assert!(made.windows(2).all(|w| w[0] < w[1]), "names sort as times do: {made:?}");

    // --keep takes a number of at least 1.
    for bad in ["0", "-1", "two"] {
        let ran = script("backup", &["--url", &db.url, "--dir", &dir.to_string_lossy(), "--keep", bad]).await;
        assert_eq!(ran.code, 2, "{ran:?}");
    }
}

#[tokio::test]
async fn passwords_in_urls_are_never_printed_and_failures_are_one_line_errors() {
    let secret = "s3cret-Pa55word";
    let db = small_database().await;
    let backups = tempfile::tempdir().expect("temp dir");
    let dir = backups.path().join("new");
    let dir = dir.to_string_lossy();
    let with_password = |url: &str| url.replacen("postgres://postgres@", &format!("postgres://postgres:{secret}@"), 1);
    assert!(db.url.starts_with("postgres://postgres@"), "the test server's URL has the expected shape: {}", db.url);

    // Trust authentication ignores the password: the backup works and says where from, without it.
    let ran = script("backup", &["--url", &with_password(&db.url), "--dir", &dir]).await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let dump = PathBuf::from(ran.stdout.trim());
    let mut runs = vec![ran];

    let missing = format!("{}_missing", db.url);
    let ran = script("backup", &["--url", &with_password(&missing), "--dir", &dir]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stderr.starts_with("backup: error: pg_dump failed") && ran.stderr.lines().count() == 1, "{ran:?}");
    runs.push(ran);
    let in_query = format!("postgres://postgres@127.0.0.1:1/{}?password={secret}", db.name);
    let ran = script("backup", &["--url", &in_query, "--dir", &dir]).await;
    assert_eq!((ran.code, ran.stderr.lines().count()), (1, 1), "{ran:?}");
    runs.push(ran);
    let left: Vec<_> = std::fs::read_dir(&*dir).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left.len(), 2, "failed backups leave nothing behind: {left:?}");

    let ran = restore(&dump, &format!("postgres://postgres:{secret}@127.0.0.1:1/prfix_restored"), &[]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stderr.contains("error: cannot connect to postgres://postgres@127.0.0.1:1/postgres"), "{ran:?}");
    runs.push(ran);
    for ran in &runs {
        assert!(!ran.stdout.contains(secret) && !ran.stderr.contains(secret), "{ran:?}");
        assert!(ran.stderr.lines().all(|l| l.starts_with("backup: ") || l.starts_with("restore: ")), "{ran:?}");
    }

    // Usage: --help answers, a mistake is exit status 2 with a one-line reason.
    for name in ["backup", "restore"] {
        let help = script(name, &["--help"]).await;
        assert!(help.code == 0 && help.stdout.starts_with("Usage: scripts/"), "{help:?}");
        let wrong = script(name, &["--bogus"]).await;
        assert_eq!((wrong.code, wrong.stderr.lines().count()), (2, 1), "{wrong:?}");
    }
    let no_url = script("backup", &[]).await;
    assert!(no_url.code == 2 && no_url.stderr.contains("PRFIX_DATABASE_URL"), "{no_url:?}");
}
