//! `prfix audit verify --state` run as a monitor would: export, verify and remember; then the
//! newest events are deleted together with the checkpoint that covered them, and the next run fails
//! naming the missing range, while a corrupt state file is an error, never a fresh start. With
//! `--witness`, a checkpoint the witnesses did not cosign is never remembered.

mod support;

use prfix_proto::audit::v1 as audit;
use prfix_tests::spawn_app;
use support::{User, gateway_url};

fn event(i: usize) -> audit::AuditEvent {
    let now = chrono::Utc::now();
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "alice".into(), roles: vec!["developer".into()] }),
        action: format!("demo.action{i}"),
        resource: format!("tasks/{i}"),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn verify_with_state_catches_the_newest_events_deleted_with_their_checkpoint_and_names_the_range() {
    let app = spawn_app().await;
    let events = (0..50).map(event).collect();
    app.audit_client().append_batch(audit::AppendBatchRequest { events }).await.expect("append");
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let dir = tempfile::tempdir().expect("a directory");
    let key = format!("--key={}", prfix_tests::auth::audit_key().verifier_key);
    let state = dir.path().join("monitor").join("state.json");
    std::fs::create_dir_all(state.parent().expect("a parent")).expect("mkdir");
    let state_arg = state.display().to_string();

    let run = user.run(dir.path(), &["audit", "export", "-o", "first.jsonl"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = user.run(dir.path(), &["audit", "verify", "first.jsonl", &key, "--state", &state_arg]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("state: remembered checkpoint 50 in"), "{}", run.stdout);
    let remembered = std::fs::read_to_string(&state).expect("the state file is created");

    // The export's own access record reaches the log before the tampering (else it lands as event
    // 41 after it, and the range below starts at 42).
    let db = app.db.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (pending, head): (i64, i64) = db
            .query_one(
                "SELECT (SELECT count(*) FROM gateway.access_outbox), (SELECT coalesce(max(sequence), 0) FROM audit.events)",
                &[],
            )
            .await
            .map(|r| (r.get(0), r.get(1)))
            .expect("the outbox and the log");
        if (pending == 0 && head > 50) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.db
        .connect()
        .await
        .batch_execute(
            "ALTER TABLE audit.events DISABLE TRIGGER ALL; ALTER TABLE audit.checkpoints DISABLE TRIGGER ALL;
             DELETE FROM audit.events WHERE sequence > 40; DELETE FROM audit.checkpoints WHERE tree_size > 40;",
        )
        .await
        .expect("tamper as the database owner");
    let run = user.run(dir.path(), &["audit", "export", "second.jsonl"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Without the state the shortened log verifies: the probe's finding.
    let run = user.run(dir.path(), &["audit", "verify", "second.jsonl", &key]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = user.run(dir.path(), &["audit", "verify", "second.jsonl", &key, "--state", &state_arg]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("events 41..50 missing: the log was at 50 when last verified ("), "{}", run.stdout);
    assert!(run.stdout.contains("still remembers checkpoint 50"), "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(&state).expect("state"), remembered, "a failed run does not advance it");

    std::fs::write(&state, "{ not json").expect("corrupt it");
    let run = user.run(dir.path(), &["audit", "verify", "first.jsonl", &key, "--state", &state_arg]).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("is corrupt") && run.stderr.contains("never reset"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&state).expect("state"), "{ not json", "left as it was");
}

#[tokio::test]
async fn verify_with_state_remembers_nothing_the_witnesses_do_not_vouch_for() {
    let app = spawn_app().await;
    let events = (0..5).map(event).collect();
    app.audit_client().append_batch(audit::AppendBatchRequest { events }).await.expect("append");
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let dir = tempfile::tempdir().expect("a directory");
    let key = format!("--key={}", prfix_tests::auth::audit_key().verifier_key);
    // A witness this log never sent its checkpoints to: the export carries no cosignature by it.
    let (witness, _) = prfix_audit::witness::cosignature::Cosigner::generate("witness.test/w1").expect("key");
    let witness = format!("--witness={}", witness.verifier_key());
    let state = dir.path().join("state.json");
    let state_arg = state.display().to_string();

    let run = user.run(dir.path(), &["audit", "export", "-o", "log.jsonl"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = user.run(dir.path(), &["audit", "verify", "log.jsonl", &key, &witness, "--state", &state_arg]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(" signed checkpoints verified"), "the log's own checks pass: {}", run.stdout);
    assert!(run.stdout.contains("not written: the witnesses' quorum does not hold"), "{}", run.stdout);
    assert!(!state.exists(), "a checkpoint the witnesses did not cosign is not remembered");

    // Without the witness the same export is remembered.
    let run = user.run(dir.path(), &["audit", "verify", "log.jsonl", &key, "--state", &state_arg]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(state.exists());
}
