//! The audit log's tamper evidence, end to end: events appended through the gateway, exported with
//! their signed checkpoints, verified offline with only the public key; then tampered with directly
//! in the database as a superuser, and caught every time.

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, Report, verify};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::TestApp;
use prfix_tests::app::channel_to;
use prfix_tests::auth::{Bearer, audit_key, operator_token};
use prfix_tests::spawn_app;

fn event(i: usize) -> audit::AuditEvent {
    let mut metadata = prost_types::Struct::default();
    metadata
        .fields
        .insert("n".into(), prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(i as f64)) });
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 123_456_789 }),
        actor: Some(audit::Actor { subject: format!("user{}", i % 3), roles: vec!["developer".into()] }),
        actor_ip: "10.1.2.3".into(),
        action: format!("demo.action{i}"),
        resource: format!("tasks/{i}"),
        result: audit::AuditResult::Success as i32,
        request_id: format!("req-{i}"),
        metadata: Some(metadata),
        ..Default::default()
    }
}

async fn append(app: &TestApp, range: std::ops::Range<usize>) {
    let events = range.map(event).collect();
    app.audit_client().append_batch(audit::AppendBatchRequest { events }).await.expect("append");
}

async fn export(app: &TestApp) -> Vec<ExportLine> {
    prfix_tests::audit_export::export_lines(&app.audit_client()).await
}

fn check(lines: &[ExportLine]) -> Report {
    verify(lines, &[VerifierKey::parse(&audit_key().verifier_key).expect("verifier key")])
}

/// A log of 20 events with checkpoints at 12 and 20.
async fn log() -> TestApp {
    let app = spawn_app().await;
    append(&app, 0..12).await;
    let first = export(&app).await;
    assert!(check(&first).ok(), "{:?}", check(&first).problems);
    append(&app, 12..20).await;
    let lines = export(&app).await;
    let report = check(&lines);
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.events, report.checkpoints), (20, 2));
    app
}

async fn superuser(app: &TestApp, sql: &str) {
    let client = app.db.connect().await;
    client.batch_execute(&format!("ALTER TABLE audit.events DISABLE TRIGGER ALL; {sql}")).await.expect(sql);
}

fn messages(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn an_export_verifies_offline_and_the_service_agrees() {
    let app = log().await;
    let verdict = app.audit_client().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(verdict.ok, "{:?}", verdict.problems);
    assert_eq!((verdict.events_checked, verdict.checkpoints_checked), (20, 2));
    // Proofs from the service check out against its checkpoints.
    let proof = app
        .audit_client()
        .get_inclusion_proof(audit::GetInclusionProofRequest { sequence: 7, tree_size: 0 })
        .await
        .expect("inclusion")
        .into_inner();
    let checkpoint = proof.checkpoint.expect("checkpoint");
    let root: [u8; 32] = checkpoint.root_hash.clone().try_into().expect("32 bytes");
    let leaf: [u8; 32] = proof.leaf_hash.clone().try_into().expect("32 bytes");
    let path: Vec<[u8; 32]> = proof.hashes.iter().map(|h| h.clone().try_into().expect("32 bytes")).collect();
    assert!(prfix_audit::merkle::verify_inclusion(6, checkpoint.tree_size as u64, &leaf, &path, &root));
    let consistency = app
        .audit_client()
        .get_consistency_proof(audit::GetConsistencyProofRequest { first_tree_size: 12, second_tree_size: 20 })
        .await
        .expect("consistency")
        .into_inner();
    let first = app
        .audit_client()
        .get_checkpoint(audit::GetCheckpointRequest { tree_size: 12 })
        .await
        .expect("12")
        .into_inner();
    let first_root: [u8; 32] = first.checkpoint.expect("c").root_hash.try_into().expect("32");
    let hashes: Vec<[u8; 32]> = consistency.hashes.iter().map(|h| h.clone().try_into().expect("32")).collect();
    assert!(prfix_audit::merkle::verify_consistency(12, 20, &hashes, &first_root, &root));
}

/// Metadata with every kind of JSON value a Struct holds: nested objects and lists, escapes and
/// non-ASCII text, integral, tiny and huge numbers.
fn rich_metadata(i: usize) -> prost_types::Struct {
    let json = serde_json::json!({
        "n": i as f64,
        "ratio": i as f64 / 7.0,
        "huge": 1e300,
        // Whole numbers that Postgres gives back as integers (the service took them in as floats).
        "ts_ns": 1.7e18 + i as f64 * 1e9,
        "neg": -1e17,
        "edge": 9.223372036854776e18,
        "tiny": -2.5e-8,
        "text": format!("line \"{i}\"\nwith\ttabs, ünïcödé and 🦀"),
        "flags": [true, false, null],
        "nested": {"z": {"deep": [1.5, "x"]}, "a": ""},
    });
    prfix_audit::json::json_to_struct(&json)
}

/// An export in JSON lines (what `prfix audit export` asks for) is, byte for byte, the file that an
/// export in items gives once each item is converted by the client: over several pages of 2,000
/// rows, chunks of 1 MiB and checkpoints; and it verifies offline.
#[tokio::test]
async fn an_export_in_json_lines_is_byte_for_byte_the_file_the_items_give() {
    let app = spawn_app().await;
    for start in (0..4_500).step_by(500) {
        let events = (start..start + 500).map(|i| audit::AuditEvent { metadata: Some(rich_metadata(i)), ..event(i) });
        app.audit_client().append_batch(audit::AppendBatchRequest { events: events.collect() }).await.expect("append");
    }
    // Straight from the audit service: an export through the gateway is itself audited, so the log
    // could grow by its access record between the two.
    let direct = AuditServiceClient::with_interceptor(channel_to(app.audit.addr), Bearer::new(&operator_token()));
    let file = prfix_tests::audit_export::export_file(&direct).await;
    let mut from_items = Vec::new();
    prfix_audit::export::write_jsonl(&prfix_tests::audit_export::export_items(&direct).await, &mut from_items)
        .expect("render");
    assert!(file.len() > 2 << 20, "the export should span several chunks: {} bytes", file.len());
    assert!(
        file == from_items,
        "the two exports differ (JSON lines {} bytes, items {} bytes)",
        file.len(),
        from_items.len()
    );
    let lines = prfix_audit::export::read_jsonl(std::str::from_utf8(&file).expect("UTF-8")).expect("parses");
    let report = check(&lines);
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.events, 4_500);
    // One at the end, and one at least inside a page (the checkpointer signs as the log passes
    // each 1,000 events).
    assert!(report.checkpoints >= 2, "{} checkpoints", report.checkpoints);
    // The service's own Verify reads the stored rows the same way.
    let verdict = direct.clone().verify(audit::VerifyRequest::default()).await.expect("verify").into_inner();
    assert!(verdict.ok, "{:?}", verdict.problems);
    // Through the gateway, as `prfix audit export` reads it: the same events first.
    let client = app.audit_client();
    let through = prfix_tests::audit_export::export_lines(&client).await;
    assert!(check(&through).ok(), "{:?}", check(&through).problems);
    let events = |lines: &[ExportLine]| -> Vec<ExportLine> {
        lines.iter().filter(|l| matches!(l, ExportLine::Event(_))).cloned().collect()
    };
    assert_eq!(events(&through)[..4_500], events(&lines)[..]);

    // A format this service does not know is refused, naming it.
    let refused = client
        .clone()
        .export_events(audit::ExportEventsRequest { format: 7, ..Default::default() })
        .await
        .expect_err("an unknown format");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("format 7"), "{}", refused.message());
}

/// Roles holding what array literals are made of (quotes, backslashes, braces, commas, spaces, an
/// empty one, `NULL`) are stored as given: they come back the same, and the log verifies.
#[tokio::test]
async fn roles_that_look_like_array_syntax_are_stored_as_given() {
    let app = spawn_app().await;
    let roles: Vec<String> =
        ["a\"b", "c\\d", "{x},y", " spaced ", "", "NULL", "ünï 🦀", "\\\""].map(String::from).to_vec();
    let events = (0..3)
        .map(|i| audit::AuditEvent {
            actor: Some(audit::Actor { subject: "u".into(), roles: roles.clone() }),
            ..event(i)
        })
        .chain([audit::AuditEvent { actor: Some(audit::Actor { subject: "v".into(), roles: vec![] }), ..event(3) }]);
    app.audit_client().append_batch(audit::AppendBatchRequest { events: events.collect() }).await.expect("append");
    let lines = export(&app).await;
    let report = check(&lines);
    assert!(report.ok(), "{:?}", report.problems);
    let stored: Vec<Vec<String>> = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Event(e) if e.action.starts_with("demo.") => Some(e.actor_roles.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec![roles.clone(), roles.clone(), roles, vec![]]);
}

#[tokio::test]
async fn one_changed_byte_is_caught_and_named() {
    let app = log().await;
    superuser(&app, "UPDATE audit.events SET action = 'demo.acti0n4' WHERE sequence = 5").await;
    let report = check(&export(&app).await);
    assert!(!report.ok());
    assert!(
        messages(&report).iter().any(|m| m.starts_with("event 5: its content does not match")),
        "{:?}",
        messages(&report)
    );
}

#[tokio::test]
async fn a_deleted_middle_row_is_caught() {
    let app = log().await;
    superuser(&app, "DELETE FROM audit.events WHERE sequence = 7").await;
    let report = check(&export(&app).await);
    assert!(!report.ok());
    assert!(
        messages(&report).iter().any(|m| m == "missing 7")
            && messages(&report).iter().any(|m| m.starts_with("chain breaks at 8 (after missing 7)")),
        "{:?}",
        messages(&report)
    );
}

#[tokio::test]
async fn deleted_last_rows_are_caught_by_the_checkpoint_that_covered_them() {
    let app = log().await;
    superuser(&app, "DELETE FROM audit.events WHERE sequence > 17").await;
    let report = check(&export(&app).await);
    assert!(!report.ok());
    assert!(
        messages(&report).iter().any(|m| m.starts_with("checkpoint 20: is signed over 20 events, but only 17")),
        "{:?}",
        messages(&report)
    );
}

#[tokio::test]
async fn two_swapped_rows_are_caught() {
    let app = log().await;
    superuser(
        &app,
        "UPDATE audit.events SET sequence = 1000 WHERE sequence = 3;
         UPDATE audit.events SET sequence = 3 WHERE sequence = 4;
         UPDATE audit.events SET sequence = 4 WHERE sequence = 1000;",
    )
    .await;
    let report = check(&export(&app).await);
    assert!(!report.ok());
    let found = messages(&report);
    assert!(
        found.iter().any(|m| m.starts_with("foreign 3..4: ")),
        "both swapped rows are named, as rows out of place: {found:?}"
    );
    assert!(found.iter().any(|m| m.starts_with("chain breaks at 5 (after foreign 4); 15 later events")), "{found:?}");
}

#[tokio::test]
async fn a_chain_recomputed_without_the_signing_key_is_caught_by_the_checkpoints() {
    let app = log().await;
    let client = app.db.connect().await;
    client.batch_execute("ALTER TABLE audit.events DISABLE TRIGGER ALL").await.expect("disable");
    client.execute("UPDATE audit.events SET action = 'demo.rewritten' WHERE sequence = 5", &[]).await.expect("change");
    // Recompute every leaf and chain hash from the changed rows, as an attacker with database
    // access (and our code) would: only the checkpoints' signatures stand in the way.
    let mut lines = export(&app).await;
    let mut chain = [0u8; 32];
    for line in &mut lines {
        if let ExportLine::Event(e) = line {
            // In the event's own encoding (v2: with its appender and receive time).
            let leaf = e.recomputed_leaf().expect("a readable event");
            chain = prfix_audit::canonical::chain_hash(&chain, &leaf);
            client
                .execute(
                    "UPDATE audit.events SET leaf_hash = $2, chain_hash = $3 WHERE sequence = $1",
                    &[&e.sequence, &leaf.as_slice(), &chain.as_slice()],
                )
                .await
                .expect("rewrite hashes");
        }
    }
    let report = check(&export(&app).await);
    assert!(!report.ok());
    let found = messages(&report);
    assert!(found.iter().all(|m| !m.starts_with("event ")), "the rows themselves look consistent: {found:?}");
    assert!(found.iter().any(|m| m.starts_with("checkpoint 12: its signed root does not match")), "{found:?}");
    // The service refuses to sign over a log that no longer extends its last checkpoint.
    let verdict = app.audit_client().verify(audit::VerifyRequest::default()).await;
    assert!(verdict.map(|v| !v.into_inner().ok).unwrap_or(true));
}

#[tokio::test]
async fn sixteen_concurrent_appenders_some_killed_leave_a_contiguous_log_with_every_acknowledged_event_once() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    let app = spawn_app().await;
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for writer in 0..16usize {
        let mut client = app.audit_client();
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25usize {
                let mut e = event(writer * 100 + i);
                e.actor = Some(audit::Actor { subject: format!("writer{writer}"), roles: vec![] });
                let id = e.event_id.clone();
                let response = client.append(audit::AppendRequest { event: Some(e.clone()) }).await.expect("append");
                let sequence = response.into_inner().sequence;
                acknowledged.lock().expect("lock").push((id, sequence));
                // Every fifth event is sent again, as a client that lost the answer would.
                if i % 5 == 4 {
                    let again =
                        client.append(audit::AppendRequest { event: Some(e) }).await.expect("retry").into_inner();
                    assert!(again.duplicate && again.sequence == sequence, "a retry returns the original sequence");
                }
            }
        }));
    }
    // Kill four of the writers mid-run, wherever they are (mid-call included).
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    for task in tasks.iter().take(4) {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    let lines = export(&app).await;
    let report = check(&lines);
    assert!(report.ok(), "{:?}", report.problems);
    let stored: Vec<(String, i64)> = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Event(e) => Some((e.event_id.to_string(), e.sequence)),
            ExportLine::Checkpoint { .. } => None,
        })
        .collect();
    let sequences: Vec<i64> = stored.iter().map(|(_, s)| *s).collect();
    assert_eq!(sequences, (1..=stored.len() as i64).collect::<Vec<_>>(), "contiguous from 1");
    let ids: HashSet<&String> = stored.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 12 * 25, "the twelve writers left alone finished");
    for (id, sequence) in &acknowledged {
        assert!(stored.contains(&(id.clone(), *sequence)), "acknowledged event {id} at {sequence} is stored there");
    }
    println!("{} events stored, {} acknowledged", stored.len(), acknowledged.len());
}
