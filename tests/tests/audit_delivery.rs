//! Per-call access records of audited methods survive the audit service being down: they wait in
//! the gateway's outbox and are appended once it is back.

use std::time::{Duration, Instant};

use prfix_auth::Role;
use prfix_proto::agent::v1 as agent;
use prfix_proto::audit::v1 as audit;
use prfix_tests::app::{audit_settings, run};
use prfix_tests::auth::token;
use prfix_tests::{spawn_app, spawn_app_with};

/// An access record of `action` at `time`, with a fresh event id, as an outbox would hold it.
fn record(action: &str, time: chrono::DateTime<chrono::Utc>) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "dana".into(), roles: vec!["developer".into()] }),
        action: action.into(),
        resource: "tasks/42".into(),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

/// How many copies of `payload` are in the gateway's outbox, asked until there are none or `within`
/// passed.
async fn left_in_outbox(pg: &tokio_postgres::Client, payload: &[u8], within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let left: i64 = pg
            .query_one("SELECT count(*) FROM gateway.access_outbox WHERE payload = $1", &[&payload])
            .await
            .expect("count")
            .get(0);
        if left == 0 || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The logged events of `action`, asked for until there are at least `wanted` or `within` passed.
async fn events_of(
    app: &prfix_tests::TestApp,
    action: &str,
    wanted: usize,
    within: Duration,
) -> Vec<audit::AuditEvent> {
    let deadline = Instant::now() + within;
    loop {
        let events = app
            .audit_client()
            .list_events(audit::ListEventsRequest { action: action.into(), ..Default::default() })
            .await
            .map(|r| r.into_inner().events)
            .unwrap_or_default();
        if events.len() >= wanted || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the audit service of `app` again on `addr`, where it listened before it was stopped.
async fn restart_audit(app: &mut prfix_tests::TestApp, addr: std::net::SocketAddr) {
    let mut settings = audit_settings(&app.common);
    settings.audit.listen = addr;
    let restarted = prfix_audit::Application::build(settings).await.expect("audit restarts");
    app.audit = run(restarted.local_addr(), |stop| restarted.run_until_stopped(stop));
}

#[tokio::test]
async fn access_records_made_while_audit_is_down_are_delivered_when_it_returns() {
    let mut app = spawn_app().await;
    let developer = token("dana", &[Role::Developer]);
    // An audited call while everything is up reaches the log.
    let _ = app.agent_client_as(&developer).cancel_task(agent::CancelTaskRequest { task_id: "t-up".into() }).await;

    let audit_addr = app.audit.addr;
    app.audit.stop().await;
    for i in 0..5 {
        // Audited (CancelTask's policy says so); the agent answers, the audit service is down.
        let _ = app
            .agent_client_as(&developer)
            .cancel_task(agent::CancelTaskRequest { task_id: format!("t-down-{i}") })
            .await;
    }
    let pg = app.db.connect().await;
    let pending: i64 = pg.query_one("SELECT count(*) FROM gateway.access_outbox", &[]).await.expect("count").get(0);
    assert!(pending >= 5, "the records wait in the outbox ({pending})");

    // The audit service comes back on the same address.
    restart_audit(&mut app, audit_addr).await;

    let delivered = events_of(&app, "/prfix.agent.v1.AgentService/CancelTask", 6, Duration::from_secs(20)).await;
    assert_eq!(delivered.len(), 6, "one record per audited call, none lost, none twice");
    assert!(delivered.iter().all(|e| e.actor.as_ref().is_some_and(|a| a.subject == "dana")));
    assert!(
        delivered.iter().all(|e| e.result == audit::AuditResult::Failure as i32),
        "CancelTask is refused by the agent today"
    );
    // The listing calls above are audited too (ListEvents' policy says so): their records drain next.
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left: i64 = pg.query_one("SELECT count(*) FROM gateway.access_outbox", &[]).await.expect("count").get(0);
        if left == 0 || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(left, 0, "the outbox empties once the audit service answers");
}

#[tokio::test]
async fn the_agents_outbox_is_relayed_through_the_gateway_with_a_service_api_key() {
    use prfix_proto::prost::Message;
    let app = spawn_app().await;
    // An operator provisions the agent's credential: a `service` user and an API key of it.
    let admin = app.admin_token().await;
    let key = prfix_tests::app::provision_service_key(app.auth_client_as(&admin), "agent").await;

    let mut settings = prfix_tests::app::agent_settings(&app.common);
    settings.audit_credential = Some(secrecy::SecretString::from(key));
    settings.agent.audit_url = format!("http://{}", app.gateway.addr);
    let relaying = prfix_agent::Application::build(settings).await.expect("agent with a relay");
    let _agent = run(relaying.local_addr(), |stop| relaying.run_until_stopped(stop));

    // A record the task engine will write in the same transaction as a state change.
    let record = record("task.state", chrono::Utc::now());
    let pg = app.db.connect().await;
    pg.execute("INSERT INTO agent.audit_outbox (payload) VALUES ($1)", &[&record.encode_to_vec()])
        .await
        .expect("queue");

    let found = events_of(&app, "task.state", 1, Duration::from_secs(15)).await;
    assert_eq!(found.len(), 1, "the agent's record reached the audit log");
    assert_eq!(found[0].event_id, record.event_id);
    let left: i64 = pg.query_one("SELECT count(*) FROM agent.audit_outbox", &[]).await.expect("count").get(0);
    assert_eq!(left, 0);
}

/// A record that waited in the outbox longer than the audit service's clock skew is refused for its
/// time, then sent once more stamped with the time of sending, its own time kept as `queued_time`;
/// a record refused for anything else is dropped. Either way the outbox empties.
#[tokio::test]
async fn a_record_older_than_the_clock_skew_is_restamped_once_and_one_refused_otherwise_is_dropped() {
    use prfix_proto::prost::Message;
    let app = spawn_app().await;
    let hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    let late = record("demo.late", hours_ago);
    let mut unfit = record("demo.unfit", hours_ago);
    unfit.event_id = "not a uuid".into();
    let pg = app.db.connect().await;
    for event in [&late, &unfit] {
        pg.execute("INSERT INTO gateway.access_outbox (payload) VALUES ($1)", &[&event.encode_to_vec()])
            .await
            .expect("queue");
    }

    let found = events_of(&app, "demo.late", 1, Duration::from_secs(15)).await;
    assert_eq!(found.len(), 1, "the late record reached the log once");
    assert_eq!(found[0].event_id, late.event_id);
    let stamped = found[0].time.as_ref().map_or(0, |t| t.seconds);
    assert!(stamped > hours_ago.timestamp() + 3_600, "stamped with the time of sending: {stamped}");
    let queued = found[0].metadata.as_ref().and_then(|m| m.fields.get("queued_time")).and_then(|v| v.kind.clone());
    let original = hours_ago.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S.000000Z").to_string();
    assert_eq!(queued, Some(prost_types::value::Kind::StringValue(original)), "its own time kept");

    let left = left_in_outbox(&pg, &unfit.encode_to_vec(), Duration::from_secs(10)).await;
    assert_eq!(left, 0, "the record refused for good left the outbox");
    let unfit_found = app
        .audit_client()
        .list_events(audit::ListEventsRequest { action: "demo.unfit".into(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .events;
    assert!(unfit_found.is_empty(), "and is not in the log");
}

/// A malformed record alone in the outbox is not dropped on its own word (a refusal of every record
/// could be about the relay, not the record): it waits, and is dropped once it is sent beside a
/// record the service takes, which is delivered.
#[tokio::test]
async fn a_lone_malformed_record_waits_and_is_dropped_once_sent_beside_one_the_service_takes() {
    use prfix_proto::prost::Message;
    let app = spawn_app().await;
    let unfit = audit::AuditEvent { event_id: "not a uuid".into(), ..record("demo.unfit", chrono::Utc::now()) };
    let unfit = unfit.encode_to_vec();
    let pg = app.db.connect().await;
    pg.execute("INSERT INTO gateway.access_outbox (payload) VALUES ($1)", &[&unfit]).await.expect("queue");
    // The relay tries it (its attempts count goes up) and keeps it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempts: i32 = pg
            .query_one("SELECT coalesce(max(attempts), 0) FROM gateway.access_outbox WHERE payload = $1", &[&unfit])
            .await
            .expect("attempts")
            .get(0);
        if attempts > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the relay never tried the record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left_in_outbox(&pg, &unfit, Duration::ZERO).await, 1, "a lone refused record waits");

    // A good record beside it: sent together, refused together, then one by one.
    let good = record("demo.good", chrono::Utc::now());
    pg.execute("INSERT INTO gateway.access_outbox (payload) VALUES ($1)", &[&good.encode_to_vec()])
        .await
        .expect("queue");
    pg.execute("UPDATE gateway.access_outbox SET next_attempt_at = now()", &[]).await.expect("due now");
    let found = events_of(&app, "demo.good", 1, Duration::from_secs(40)).await;
    assert_eq!(found.len(), 1, "the good record is delivered");
    assert_eq!(found[0].event_id, good.event_id);
    let left = left_in_outbox(&pg, &unfit, Duration::from_secs(10)).await;
    assert_eq!(left, 0, "the malformed record was never dropped");
}

/// The request ids of `calls` audited calls made at once by `developer`, each with its own id.
async fn audited_burst(app: &prfix_tests::TestApp, developer: &str, calls: usize, tag: &str) -> Vec<String> {
    let ids: Vec<String> = (0..calls).map(|i| format!("{tag}-{i}")).collect();
    let answers = futures::future::join_all(ids.iter().map(|id| {
        let mut client = app.agent_client_as(developer);
        let mut request = tonic::Request::new(agent::CancelTaskRequest { task_id: "t-none".into() });
        request.metadata_mut().insert("x-request-id", id.parse().expect("an ASCII request id"));
        async move { client.cancel_task(request).await }
    }))
    .await;
    for answer in &answers {
        // The agent's own answer (no such task): neither the edge nor the outbox refused the call.
        let code = answer.as_ref().err().map(tonic::Status::code);
        assert_eq!(code, Some(tonic::Code::InvalidArgument), "{answer:?}");
    }
    ids
}

#[tokio::test]
async fn every_record_of_a_burst_of_concurrent_audited_calls_reaches_the_log_once() {
    let app = spawn_app().await;
    let developer = token("dana", &[Role::Developer]);
    // Concurrent callers' records are committed in groups.
    let ids = audited_burst(&app, &developer, 60, "burst").await;
    // One page holds them all (60 of ListEvents' default 100).
    let logged = events_of(&app, "/prfix.agent.v1.AgentService/CancelTask", ids.len(), Duration::from_secs(30)).await;
    let logged: Vec<String> = logged.into_iter().map(|e| e.request_id).collect();
    let mut logged_sorted = logged.clone();
    logged_sorted.sort();
    logged_sorted.dedup();
    assert_eq!(logged_sorted.len(), logged.len(), "no record twice");
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(logged_sorted, expected, "one record per call, each with its call's request id");
}

#[tokio::test]
async fn the_outbox_keeps_at_most_its_maximum_while_concurrent_calls_overflow_it() {
    let max = 20;
    let mut app = spawn_app_with(|s| s.gateway.access_outbox_max = max).await;
    let developer = token("dana", &[Role::Developer]);
    app.audit.stop().await;
    // More calls than the outbox holds, at once, committed in groups: the calls beyond the bound
    // are answered all the same (their records are dropped, loudly).
    audited_burst(&app, &developer, 3 * usize::try_from(max).expect("small"), "over").await;
    let pg = app.db.connect().await;
    let stored: i64 = pg.query_one("SELECT count(*) FROM gateway.access_outbox", &[]).await.expect("count").get(0);
    assert_eq!(stored, max, "the outbox is filled to its maximum and not past it");
    let audit_addr = app.audit.addr;
    restart_audit(&mut app, audit_addr).await;
    let delivered = events_of(&app, "/prfix.agent.v1.AgentService/CancelTask", 20, Duration::from_secs(20)).await;
    assert_eq!(delivered.len(), 20, "the records the outbox took are delivered");
    assert!(delivered.iter().all(|e| e.request_id.starts_with("over-")));
}

#[tokio::test]
async fn a_caller_chosen_request_id_the_audit_log_would_refuse_is_replaced_and_the_call_is_still_recorded() {
    let app = spawn_app().await;
    let developer = token("dana", &[Role::Developer]);
    let mut answered = Vec::new();
    // Longer than the log's 1,024-character fields, and one with a character no id holds: each
    // would have made the log refuse the call's record. The longest id a caller may choose is kept.
    for id in ["x".repeat(5_000), "a\tb".to_owned(), "k".repeat(200)] {
        let mut request = tonic::Request::new(agent::CancelTaskRequest { task_id: "t-none".into() });
        request.metadata_mut().insert("x-request-id", id.parse().expect("a header value"));
        let status = app.agent_client_as(&developer).cancel_task(request).await.expect_err("no such task");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        let given = status.metadata().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        answered.push(given.to_owned());
    }
    assert!(uuid::Uuid::parse_str(&answered[0]).is_ok(), "a new id, not the caller's: {}", &answered[0]);
    assert!(uuid::Uuid::parse_str(&answered[1]).is_ok(), "a new id, not the caller's: {}", &answered[1]);
    assert_eq!(answered[2], "k".repeat(200));
    let logged = events_of(&app, "/prfix.agent.v1.AgentService/CancelTask", 3, Duration::from_secs(10)).await;
    let mut logged: Vec<String> = logged.into_iter().map(|e| e.request_id).collect();
    logged.sort();
    answered.sort();
    assert_eq!(logged, answered, "every call's record is in the log under the id its answer carried");
}
