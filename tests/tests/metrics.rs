//! `/metrics` on each service's admin port, after traffic: the series operators alert on, with
//! their labels; and the audit checkpoint gauges, which must tell when events wait for a checkpoint.

use std::time::{Duration, Instant};

use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_tests::app::{Authed, audit_settings, channel_to, common_settings, run};
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::db::TestDatabase;
use prfix_tests::metrics::{MODEL, has, scrape, sum, traffic};
use prfix_tests::spawn_app;

#[tokio::test]
async fn each_service_exposes_its_series_with_their_labels_after_traffic() {
    let app = spawn_app().await;
    traffic(&app).await;
    let gateway = scrape(app.admin.gateway).await;
    let create = "/prfix.agent.v1.AgentService/CreateReview";
    for (name, labels) in [
        ("prfix_requests_total", vec![("service", "gateway"), ("method", create), ("code", "OK")]),
        ("prfix_requests_total", vec![("service", "gateway"), ("code", "UNAUTHENTICATED")]),
        ("prfix_request_duration_seconds_bucket", vec![("service", "gateway"), ("method", create)]),
        ("prfix_rate_limit_decisions_total", vec![("class", "expensive"), ("decision", "allowed")]),
        ("prfix_auth_failures_total", vec![]),
        ("prfix_outbox_backlog", vec![("table", "gateway.access_outbox")]),
        ("prfix_db_pool_connections", vec![("service", "gateway"), ("state", "max")]),
        ("prfix_redis_fallback_active", vec![]),
    ] {
        assert!(has(&gateway, name, &labels), "gateway: {name} {labels:?} missing:\n{gateway}");
    }
    let agent = scrape(app.admin.agent).await;
    for (name, labels) in [
        ("prfix_requests_total", vec![("service", "agent"), ("method", create), ("code", "OK")]),
        ("prfix_model_calls_total", vec![("model", MODEL), ("outcome", "ok")]),
        ("prfix_model_call_duration_seconds_bucket", vec![("model", MODEL)]),
        ("prfix_model_tokens_total", vec![("model", MODEL), ("kind", "prompt")]),
        ("prfix_model_tokens_total", vec![("model", MODEL), ("kind", "output")]),
        ("prfix_tasks", vec![("state", "queued")]),
        ("prfix_task_queue_oldest_seconds", vec![]),
        ("prfix_outbox_backlog", vec![("table", "agent.audit_outbox")]),
        ("prfix_db_pool_connections", vec![("service", "agent"), ("state", "in_use")]),
    ] {
        assert!(has(&agent, name, &labels), "agent: {name} {labels:?} missing:\n{agent}");
    }
    let audit = scrape(app.admin.audit).await;
    for (name, labels) in [
        ("prfix_requests_total", vec![("service", "audit")]),
        ("prfix_audit_appends_total", vec![]),
        ("prfix_audit_batch_size_bucket", vec![]),
        ("prfix_audit_checkpoint_age_seconds", vec![]),
        ("prfix_audit_uncovered_events", vec![]),
        ("prfix_db_pool_connections", vec![("service", "audit"), ("state", "idle")]),
    ] {
        assert!(has(&audit, name, &labels), "audit: {name} {labels:?} missing:\n{audit}");
    }
    // Unknown paths share one label value: a scanner cannot grow the series.
    let _ = reqwest::Client::new()
        .post(format!("http://{}/no.such.Service/Method", app.gateway.addr))
        .header("content-type", "application/grpc")
        .send()
        .await;
    let gateway = scrape(app.admin.gateway).await;
    assert!(!gateway.contains("no.such.Service"), "{gateway}");
}

/// The number of `prfix_requests_total` series in a scrape.
fn request_series(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("prfix_requests_total{")).count()
}

#[tokio::test]
async fn ten_thousand_made_up_method_names_add_at_most_one_series() {
    let app = spawn_app().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("an HTTP/2 client");
    let call = |path: String| {
        h2.post(format!("http://{}{path}", app.gateway.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(vec![0u8, 0, 0, 0, 0])
            .send()
    };
    // One made-up call first, so that the `unknown` series (and its code) exist before counting.
    let _ = call("/prfix.x.v1.S/M".to_owned()).await.expect("the gateway answers");
    let before = request_series(&scrape(app.admin.gateway).await);
    let names: Vec<String> = (0..10_000).map(|i| format!("/prfix.x{i}.v1.S{i}/M{i}")).collect();
    for chunk in names.chunks(200) {
        for response in futures::future::join_all(chunk.iter().cloned().map(call)).await {
            response.expect("the gateway answers");
        }
    }
    let text = scrape(app.admin.gateway).await;
    let after = request_series(&text);
    assert!(after <= before + 1, "{before} series before, {after} after 10,000 made-up methods");
    assert!(!text.contains("prfix.x1.v1"), "a made-up method has its own label");
    assert!(
        has(&text, "prfix_requests_total", &[("service", "gateway"), ("method", "unknown")]),
        "made-up methods count under `unknown`"
    );
}

/// Events for the log, each new.
fn events(n: usize) -> Vec<audit::AuditEvent> {
    (0..n)
        .map(|i| audit::AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
            actor: Some(audit::Actor { subject: "user".into(), roles: vec!["developer".into()] }),
            action: format!("demo.action{i}"),
            result: audit::AuditResult::Success as i32,
            ..Default::default()
        })
        .collect()
}

async fn append(client: &mut AuditServiceClient<Authed>, n: usize) {
    client.append_batch(audit::AppendBatchRequest { events: events(n) }).await.expect("the events are appended");
}

/// `prfix_audit_uncovered_events` and `prfix_audit_checkpoint_age_seconds` of one scrape, with the
/// instants just before and after it.
async fn coverage(admin: std::net::SocketAddr) -> (f64, f64, Instant, Instant) {
    let before = Instant::now();
    let text = scrape(admin).await;
    let after = Instant::now();
    let uncovered =
        sum(&text, "prfix_audit_uncovered_events", &[]).unwrap_or_else(|| panic!("no uncovered events:\n{text}"));
    let age =
        sum(&text, "prfix_audit_checkpoint_age_seconds", &[]).unwrap_or_else(|| panic!("no checkpoint age:\n{text}"));
    (uncovered, age, before, after)
}

/// Room for the database's clock and the test's to disagree.
const SLACK: f64 = 0.05;

#[tokio::test]
async fn the_checkpoint_gauges_count_events_waiting_for_a_checkpoint_and_how_long_the_oldest_has_waited() {
    // Only an audit service, on a fresh database, whose checkpointer would not sign for an hour.
    let db = TestDatabase::fresh();
    let common = common_settings(&db, &format!("prfix-test:{}:", uuid::Uuid::new_v4().simple()), "http://127.0.0.1:9");
    let mut settings = audit_settings(&common);
    settings.audit.checkpoint_every = 1_000_000;
    settings.audit.checkpoint_interval_ms = 3_600_000;
    let service = prfix_audit::Application::build(settings).await.expect("the audit service starts");
    let admin = service.admin_addr();
    let mut running = run(service.local_addr(), |stop| service.run_until_stopped(stop));
    let mut client = AuditServiceClient::with_interceptor(channel_to(running.addr), Bearer::new(&operator_token()));

    let (uncovered, age, ..) = coverage(admin).await;
    assert_eq!((uncovered, age), (0.0, 0.0), "an empty log waits for nothing");

    // Before the first checkpoint: every event is uncovered, and the age is the oldest one's, not 0.
    let first_sent = Instant::now();
    append(&mut client, 3).await;
    let first_stored = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&mut client, 2).await;
    let (uncovered, age, before, after) = coverage(admin).await;
    assert_eq!(uncovered, 5.0, "no checkpoint covers the five events");
    let oldest_at_least = before.duration_since(first_stored).as_secs_f64() - SLACK;
    let oldest_at_most = after.duration_since(first_sent).as_secs_f64() + SLACK;
    assert!(
        (oldest_at_least..=oldest_at_most).contains(&age),
        "the age is the first event's wait: {age} s, not within {oldest_at_least}..={oldest_at_most}"
    );

    // An export starts with a checkpoint over the whole log: nothing waits any more, and the age is
    // the new checkpoint's.
    let exported = Instant::now();
    let mut stream =
        client.export_events(audit::ExportEventsRequest::default()).await.expect("the export starts").into_inner();
    while stream.message().await.expect("the export streams").is_some() {}
    let (uncovered, age, _, after) = coverage(admin).await;
    assert_eq!(uncovered, 0.0, "the checkpoint covers every event");
    assert!(age <= after.duration_since(exported).as_secs_f64() + SLACK, "the new checkpoint's age: {age} s");

    // After a quiet spell, a new event has waited since it was stored, not since the last checkpoint.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    append(&mut client, 1).await;
    let (uncovered, age, _, after) = coverage(admin).await;
    assert_eq!(uncovered, 1.0);
    let at_most = after.duration_since(sent).as_secs_f64() + SLACK;
    assert!(age <= at_most, "the new event's wait: {age} s, more than {at_most} s");

    running.stop().await;
}
