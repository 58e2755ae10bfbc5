//! The audit monitor: a verifier that remembers the newest checkpoint it verified catches what the
//! log alone cannot show (its newest events deleted together with the checkpoint that covered
//! them), and a log with gaps or rows it did not write still exports, with every missing or foreign
//! number named and the chain cascade collapsed into one problem. Tampering is done as the
//! database owner with the append-only triggers switched off, as an administrator could.

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, Report, VerifyOptions, verify};
use prfix_audit::monitor::monitor;
use prfix_proto::audit::v1 as audit;
use prfix_tests::TestApp;
use prfix_tests::auth::audit_key;
use prfix_tests::spawn_app;

fn event(i: usize) -> audit::AuditEvent {
    let now = chrono::Utc::now();
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: format!("user{}", i % 3), roles: vec!["developer".into()] }),
        actor_ip: "10.1.2.3".into(),
        action: format!("demo.action{i}"),
        resource: format!("tasks/{i}"),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

async fn append(app: &TestApp, range: std::ops::Range<usize>) {
    let events = range.map(event).collect();
    app.audit_client().append_batch(audit::AppendBatchRequest { events }).await.expect("append");
}

/// `prfix audit export` as a library call: the stream as export lines.
async fn export(app: &TestApp) -> Vec<ExportLine> {
    prfix_tests::audit_export::export_lines(&app.audit_client()).await
}

fn key() -> VerifierKey {
    VerifierKey::parse(&audit_key().verifier_key).expect("verifier key")
}

fn options() -> VerifyOptions {
    VerifyOptions { keys: vec![key()], ..VerifyOptions::default() }
}

fn messages(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

/// Runs `sql` as the database owner with every trigger of the audit tables off.
async fn tamper(app: &TestApp, sql: &str) {
    let client = app.db.connect().await;
    client
        .batch_execute(&format!(
            "ALTER TABLE audit.events DISABLE TRIGGER ALL; ALTER TABLE audit.checkpoints DISABLE TRIGGER ALL;
             {sql}
             ALTER TABLE audit.events ENABLE TRIGGER ALL; ALTER TABLE audit.checkpoints ENABLE TRIGGER ALL;"
        ))
        .await
        .expect(sql);
}

/// A log of 50 events that a monitor verified (its state file remembers checkpoint 50).
async fn monitored_log() -> (TestApp, tempfile::TempDir, std::path::PathBuf) {
    let app = spawn_app().await;
    append(&app, 0..25).await;
    append(&app, 25..50).await;
    let dir = tempfile::tempdir().expect("a directory");
    let state = dir.path().join("monitor-state.json");
    let first = monitor(&export(&app).await, &options(), &state, chrono::Utc::now()).expect("monitors");
    assert!(first.report.ok(), "{:?}", messages(&first.report));
    assert_eq!(first.advanced.map(|s| s.tree_size), Some(50));
    (app, dir, state)
}

#[tokio::test]
async fn deleting_the_newest_events_with_their_checkpoint_is_caught_by_the_monitor_naming_the_range() {
    let (app, _dir, state) = monitored_log().await;
    let remembered = std::fs::read_to_string(&state).expect("state");
    tamper(&app, "DELETE FROM audit.events WHERE sequence > 40; DELETE FROM audit.checkpoints WHERE tree_size > 40;")
        .await;
    let lines = export(&app).await;
    // On its own the shortened log holds together: this is what the monitor is for.
    assert!(verify(&lines, &[key()]).ok(), "{:?}", messages(&verify(&lines, &[key()])));
    let run = monitor(&lines, &options(), &state, chrono::Utc::now()).expect("monitors");
    let found = messages(&run.report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("events 41..50 missing: the log was at 50 when last verified ("), "{found:?}");
    assert!(run.advanced.is_none());
    assert_eq!(std::fs::read_to_string(&state).expect("state"), remembered, "the state is not advanced");
}

#[tokio::test]
async fn a_log_with_a_deleted_middle_event_still_exports_and_verify_names_the_gap_and_collapses_the_cascade() {
    let (app, _dir, state) = monitored_log().await;
    tamper(&app, "DELETE FROM audit.events WHERE sequence = 17;").await;
    // New events after the gap: the service cannot sign over the log any more, and used to refuse
    // the whole export.
    append(&app, 50..60).await;
    let lines = export(&app).await;
    let events = lines.iter().filter(|l| matches!(l, ExportLine::Event(_))).count();
    assert_eq!(events, 59, "every stored row is exported");
    let report = verify(&lines, &[key()]);
    assert_eq!(
        messages(&report),
        [
            "missing 17",
            "chain breaks at 18 (after missing 17); 42 later events do not chain from it",
            "checkpoint 50: is signed over 50 events, but only 49 of them are in the export (the others are missing or foreign)",
            "events 51..60 are not covered by a signed checkpoint",
        ]
    );
    let run = monitor(&lines, &options(), &state, chrono::Utc::now()).expect("monitors");
    assert!(
        messages(&run.report).iter().any(|m| m.starts_with("event 17 missing: the log was at 50 when last verified")),
        "{:?}",
        messages(&run.report)
    );
    // The service's own Verify reads the same stored rows.
    let verdict = app.audit_client().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(!verdict.ok);
    let missing = verdict.problems.iter().find(|p| p.message == "missing 17").expect("the gap is named");
    assert_eq!((missing.sequence, missing.last_sequence), (17, 17));
}

#[tokio::test]
async fn a_row_the_log_did_not_write_still_exports_and_is_named_foreign() {
    let (app, _dir, _state) = monitored_log().await;
    tamper(
        &app,
        "CREATE TEMP TABLE forged AS SELECT * FROM audit.events WHERE sequence = 5;
         UPDATE forged SET sequence = 51, event_id = gen_random_uuid(), action = 'demo.forged',
                           leaf_hash = decode(repeat('07', 32), 'hex'), chain_hash = decode(repeat('08', 32), 'hex');
         INSERT INTO audit.events SELECT * FROM forged;",
    )
    .await;
    let report = verify(&export(&app).await, &[key()]);
    let found = messages(&report);
    assert!(found.iter().any(|m| m.starts_with("foreign 51:")), "{found:?}");
    assert!(!found.iter().any(|m| m.starts_with("missing")), "{found:?}");
}

#[tokio::test]
async fn the_service_verify_with_a_remembered_checkpoint_catches_the_deleted_tail() {
    let (app, _dir, _state) = monitored_log().await;
    let remembered = app
        .audit_client()
        .get_checkpoint(audit::GetCheckpointRequest { tree_size: 50 })
        .await
        .expect("checkpoint 50")
        .into_inner()
        .checkpoint
        .expect("a checkpoint")
        .signed_note;
    let asked = |note: String| audit::VerifyRequest { trusted_checkpoint: note, ..Default::default() };
    let verdict = app.audit_client().verify(asked(remembered.clone())).await.expect("verify").into_inner();
    assert!(verdict.ok, "{:?}", verdict.problems);

    tamper(&app, "DELETE FROM audit.events WHERE sequence > 40; DELETE FROM audit.checkpoints WHERE tree_size > 40;")
        .await;
    let plain = app.audit_client().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(plain.ok, "without a remembered checkpoint the shortened log looks whole: {:?}", plain.problems);
    let verdict = app.audit_client().verify(asked(remembered)).await.expect("verify").into_inner();
    assert!(!verdict.ok);
    assert_eq!(verdict.problems.len(), 1, "{:?}", verdict.problems);
    let problem = &verdict.problems[0];
    assert_eq!(problem.message, "events 41..50 missing: the log was at 50 in the trusted checkpoint given");
    assert_eq!((problem.sequence, problem.last_sequence), (41, 50));

    // A note this log did not sign is the caller's mistake.
    let (other, _) = prfix_audit::checkpoint::Signer::generate("someone-else").expect("key");
    let refused = app.audit_client().verify(asked(other.sign("elsewhere", 50, &[0; 32]))).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("trusted_checkpoint"), "{}", refused.message());
}
