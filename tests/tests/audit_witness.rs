//! Witnessing end to end: the real audit service with a real witness (`prfix audit witness`'s server
//! on port 0) in its settings. Checkpoints get cosigned as the log grows; after the newest events
//! are deleted as the database superuser, the witness refuses every checkpoint that does not extend
//! what it saw (a smaller log: 409 then refused; a forked one: 422), and the export no longer passes
//! `verify --witness`.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, verify};
use prfix_audit::settings::WitnessSettings;
use prfix_audit::witness::cosignature::{Cosigner, CosignerKey, check_export};
use prfix_audit::witness::note::{ED25519_TYPE, Vkey};
use prfix_audit::witness::protocol::AddCheckpoint;
use prfix_audit::witness::server::{self, Witness};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::TestDatabase;
use prfix_tests::app::{Authed, Running, audit_settings, channel_to, common_settings, run};
use prfix_tests::auth::{Bearer, audit_key, operator_token};

/// What the witness was sent, its status and content type.
type Seen = Arc<Mutex<Vec<(AddCheckpoint, u16, String)>>>;

/// In front of the witness's own routes: records each `add-checkpoint` request (which must parse as
/// the spec's body) with the status and content type answered.
async fn record(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    if request.uri().path() != "/add-checkpoint" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, server::MAX_BODY).await.expect("a bounded body");
    let text = std::str::from_utf8(&bytes).expect("the log sends UTF-8");
    let parsed = AddCheckpoint::parse(text).expect("the log sends a well-formed add-checkpoint body");
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.lock().expect("lock").push((parsed, response.status().as_u16(), content_type));
    response
}

struct Setup {
    audit: Running,
    db: TestDatabase,
    witness: Arc<Witness>,
    witness_key: CosignerKey,
    witness_addr: std::net::SocketAddr,
    seen: Seen,
    state_dir: tempfile::TempDir,
}

/// A witness and an audit service configured with it; the witness serves only with `witness_up`
/// (else its port is free again, and [`serve_witness`] starts it later). `tweak` adjusts the audit
/// settings.
async fn setup(witness_up: bool, tweak: impl FnOnce(&mut prfix_audit::Settings)) -> Setup {
    let state_dir = tempfile::tempdir().expect("temp dir");
    let (cosigner, _) = Cosigner::generate("witness.test/w1").expect("witness key");
    let witness_key = CosignerKey::parse(&cosigner.verifier_key()).expect("witness vkey");
    let log_key = Vkey::parse(&audit_key().verifier_key, ED25519_TYPE).expect("log vkey");
    let witness = Arc::new(
        Witness::open(cosigner, vec![("prfix-audit".into(), log_key)], state_dir.path().join("state.json"))
            .expect("witness opens"),
    );
    let listener =
        tokio::net::TcpListener::bind(std::net::SocketAddr::from(prfix_tests::app::ANY_PORT)).await.expect("bind");
    let witness_addr = listener.local_addr().expect("addr");
    let db = TestDatabase::fresh();
    let common = common_settings(&db, &format!("prfix-test:{}:", uuid::Uuid::new_v4().simple()), "http://127.0.0.1:9");
    let mut settings = audit_settings(&common);
    settings.audit.witnesses =
        vec![WitnessSettings { url: format!("http://{witness_addr}"), key: witness_key.to_string() }];
    tweak(&mut settings);
    let app = prfix_audit::Application::build(settings).await.expect("audit service starts");
    let audit = run(app.local_addr(), |stop| app.run_until_stopped(stop));
    let setup = Setup { audit, db, witness, witness_key, witness_addr, seen: Seen::default(), state_dir };
    if witness_up {
        serve_witness(&setup, listener);
    }
    setup
}

fn serve_witness(setup: &Setup, listener: tokio::net::TcpListener) {
    let router =
        server::router(setup.witness.clone()).layer(axum::middleware::from_fn_with_state(setup.seen.clone(), record));
    tokio::spawn(async move { axum::serve(listener, router).await });
}

fn log_key() -> VerifierKey {
    VerifierKey::parse(&audit_key().verifier_key).expect("log verifier key")
}

fn client(setup: &Setup) -> AuditServiceClient<Authed> {
    AuditServiceClient::with_interceptor(channel_to(setup.audit.addr), Bearer::new(&operator_token()))
}

async fn append(setup: &Setup, n: usize) {
    let now = chrono::Utc::now().timestamp();
    let events = (0..n)
        .map(|i| audit::AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            time: Some(prost_types::Timestamp { seconds: now, nanos: 0 }),
            actor: Some(audit::Actor { subject: "alice".into(), roles: vec!["developer".into()] }),
            actor_ip: "10.0.0.1".into(),
            action: format!("demo.action{i}"),
            resource: format!("tasks/{i}"),
            result: audit::AuditResult::Success as i32,
            ..Default::default()
        })
        .collect();
    client(setup).append_batch(audit::AppendBatchRequest { events }).await.expect("appends");
}

/// An export (which signs a checkpoint over everything first, and has it witnessed).
async fn export(setup: &Setup) -> Vec<ExportLine> {
    prfix_tests::audit_export::export_lines(&client(setup)).await
}

/// The length of a consistency proof from `m` to `n` leaves.
fn proof_len(m: usize, n: usize) -> usize {
    prfix_audit::merkle::consistency_proof(m, &vec![[0u8; 32]; n]).expect("m <= n").len()
}

fn statuses(setup: &Setup) -> Vec<(u64, usize, u16)> {
    setup.seen.lock().expect("lock").iter().map(|(r, status, _)| (r.old, r.proof.len(), *status)).collect()
}

#[tokio::test]
async fn checkpoints_are_cosigned_until_the_log_loses_its_tail_then_the_witness_refuses() {
    let setup = setup(true, |_| {}).await;
    append(&setup, 6).await;
    let lines = export(&setup).await;
    assert_eq!(check_export(&lines, std::slice::from_ref(&setup.witness_key), 1), Vec::new());
    append(&setup, 4).await;
    let lines = export(&setup).await;
    assert_eq!(check_export(&lines, std::slice::from_ref(&setup.witness_key), 1), Vec::new());
    // The cosignature lines do not disturb the log's own signature: the export verifies with its key.
    let report = verify(&lines, &[log_key()]);
    assert!(report.ok(), "{:?}", report.problems);
    // The first from nothing, the second with a proof from 6 to 10.
    assert_eq!(statuses(&setup), vec![(0, 0, 200), (6, proof_len(6, 10), 200)]);
    let state = std::fs::read_to_string(setup.state_dir.path().join("state.json")).expect("state written");
    assert!(state.contains("\"size\": 10"), "{state}");

    // The database superuser deletes events 7..10 with the checkpoint and cosignature covering them.
    let db = setup.db.connect().await;
    db.batch_execute(
        "ALTER TABLE audit.events DISABLE TRIGGER ALL; ALTER TABLE audit.checkpoints DISABLE TRIGGER ALL;
         ALTER TABLE audit.cosignatures DISABLE TRIGGER ALL;
         DELETE FROM audit.cosignatures WHERE tree_size > 6; DELETE FROM audit.checkpoints WHERE tree_size > 6;
         DELETE FROM audit.events WHERE sequence > 6;",
    )
    .await
    .expect("tamper");

    // A smaller log (9 events): the witness has seen 10, so nothing it can be shown extends that.
    append(&setup, 3).await;
    let lines = export(&setup).await;
    let problems = check_export(&lines, std::slice::from_ref(&setup.witness_key), 1);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].tree_size, Some(9));
    assert!(problems[0].to_string().contains("cosigned by 0 of the 1"), "{}", problems[0]);
    // The log's own checks find nothing: the deleted events went with the checkpoint covering them.
    let report = verify(&lines, &[log_key()]);
    assert!(report.ok(), "only the witness catches this: {:?}", report.problems);
    // Asked from the size it last cosigned here (6), the witness answers 409 with 10.
    assert_eq!(statuses(&setup)[2..], [(6, proof_len(6, 9), 409)]);

    // A forked log (11 events, 7..11 not the ones it saw): the proof from 10 fails, 422.
    append(&setup, 2).await;
    let lines = export(&setup).await;
    let problems = check_export(&lines, std::slice::from_ref(&setup.witness_key), 1);
    assert_eq!(problems.iter().map(|p| p.tree_size).collect::<Vec<_>>(), vec![Some(11)], "{problems:?}");
    assert_eq!(statuses(&setup)[3..], [(6, proof_len(6, 11), 409), (10, proof_len(10, 11), 422)]);
    let state = std::fs::read_to_string(setup.state_dir.path().join("state.json")).expect("state");
    assert!(state.contains("\"size\": 10"), "the witness still holds what it saw: {state}");
    let conflicts: Vec<String> =
        setup.seen.lock().expect("lock").iter().filter(|(_, s, _)| *s == 409).map(|(_, _, t)| t.clone()).collect();
    assert_eq!(conflicts, ["text/x.tlog.size", "text/x.tlog.size"]);
    // Monitors can ask the witness what it saw: the checkpoint of 10, signed by the log and cosigned.
    let origin_hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"prfix-audit").as_ref());
    let url = format!("http://{}/{origin_hash}/checkpoint", setup.witness_addr);
    let seen_by_witness = reqwest::get(&url).await.expect("get").text().await.expect("text");
    assert!(seen_by_witness.starts_with("prfix-audit\n10\n"), "{seen_by_witness}");
    let (_, size, _) = log_key().verify(&seen_by_witness).expect("the log's signature");
    assert_eq!(size, 10);
    assert_eq!(
        prfix_audit::witness::cosignature::cosigners(&seen_by_witness, std::slice::from_ref(&setup.witness_key)),
        Ok(vec![0])
    );
}

#[tokio::test]
async fn a_witness_that_is_down_does_not_stop_appends_and_gets_the_checkpoint_when_back() {
    let setup = setup(false, |s| {
        s.audit.checkpoint_interval_ms = 100;
        s.audit.witness_timeout_ms = 500;
    })
    .await;
    append(&setup, 3).await;
    let lines = export(&setup).await;
    let checkpoints = lines.iter().filter(|l| matches!(l, ExportLine::Checkpoint { .. })).count();
    assert_eq!(checkpoints, 1, "the export is signed although the witness is down");
    let problems = check_export(&lines, std::slice::from_ref(&setup.witness_key), 1);
    assert_eq!(problems.iter().map(|p| p.tree_size).collect::<Vec<_>>(), vec![Some(3)]);

    // The witness comes back on its address; the next checkpointer tick sends it the checkpoint.
    let listener = tokio::net::TcpListener::bind(setup.witness_addr).await.expect("the witness's port is free again");
    serve_witness(&setup, listener);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let db = setup.db.connect().await;
    loop {
        let row =
            db.query_one("SELECT count(*) FROM audit.cosignatures WHERE tree_size = 3", &[]).await.expect("query");
        if row.get::<_, i64>(0) == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the checkpoint was not witnessed after the witness came back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let lines = export(&setup).await;
    assert_eq!(check_export(&lines, std::slice::from_ref(&setup.witness_key), 1), Vec::new());
    assert_eq!(statuses(&setup), vec![(0, 0, 200)]);
}
