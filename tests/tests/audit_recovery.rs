//! The audit service under a write load while Postgres restarts: it recovers by itself, nothing
//! acknowledged is lost, and the log verifies afterwards.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prfix_audit::checkpoint::VerifierKey;
use prfix_audit::export::{ExportLine, verify};
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::app::{audit_settings, channel_to, common_settings, run};
use prfix_tests::auth::{Bearer, audit_key, operator_token};
use prfix_tests::pg_server::PrivatePostgres;

fn event(writer: usize, i: usize) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: format!("writer{writer}"), roles: vec![] }),
        action: format!("load.{i}"),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn postgres_restarted_under_write_load_the_service_recovers_and_the_log_verifies() {
    let mut pg = PrivatePostgres::start().await;
    let db = prfix_tests::TestDatabase::fresh();
    let mut common =
        common_settings(&db, &format!("prfix-test:{}:", uuid::Uuid::new_v4().simple()), "http://127.0.0.1:9");
    common.database_url = secrecy::SecretString::from(pg.url("prfix"));
    let mut settings = audit_settings(&common);
    settings.audit.database_connect_timeout_ms = 1_000;
    let app = prfix_audit::Application::build(settings).await.expect("audit starts on the private cluster");
    let service = run(app.local_addr(), |stop| app.run_until_stopped(stop));
    let client = AuditServiceClient::with_interceptor(channel_to(service.addr), Bearer::new(&operator_token()));

    // Eight writers append for a while, each retrying a failed append with the same event until it
    // is acknowledged, as a durable client does.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(4);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut client = client.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let mut failures = 0u32;
                let mut i = 0;
                while Instant::now() < deadline {
                    let e = event(w, i);
                    loop {
                        match client.append(audit::AppendRequest { event: Some(e.clone()) }).await {
                            Ok(r) => {
                                acknowledged.lock().expect("lock").push((e.event_id.clone(), r.into_inner().sequence));
                                break;
                            }
                            Err(_) => {
                                failures += 1;
                                assert!(failures < 2_000, "the service never recovered");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    i += 1;
                }
                failures
            })
        })
        .collect();
    async fn started_at(url: &str) -> String {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("private cluster");
        tokio::spawn(connection);
        client.query_one("SELECT pg_postmaster_start_time()::text", &[]).await.expect("start time").get(0)
    }
    let before = started_at(&pg.url("prfix")).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let during = acknowledged.lock().expect("lock").len();
    pg.restart_abruptly().await;
    assert_ne!(started_at(&pg.url("prfix")).await, before, "the server really restarted");
    assert!(during > 0, "the load was running when Postgres went down");
    let mut failures = 0;
    for w in writers {
        failures += w.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    println!("{} events acknowledged, {failures} failed attempts during the restart", acknowledged.len());

    let lines = prfix_tests::audit_export::export_lines(&client).await;
    let report = verify(&lines, &[VerifierKey::parse(&audit_key().verifier_key).expect("key")]);
    assert!(report.ok(), "{:?}", report.problems);
    let stored: std::collections::HashMap<String, i64> = lines
        .iter()
        .filter_map(|l| match l {
            ExportLine::Event(e) => Some((e.event_id.to_string(), e.sequence)),
            ExportLine::Checkpoint { .. } => None,
        })
        .collect();
    for (id, sequence) in &acknowledged {
        assert_eq!(stored.get(id), Some(sequence), "acknowledged event {id} is stored at {sequence}");
    }
    drop(service);
}
