//! The gateway as the one public endpoint: reflection and health for the whole API, generic
//! forwarding with metadata and trailers intact, and clear failures.

use std::time::{Duration, Instant};

use futures::StreamExt;
use prfix_proto::audit::v1 as audit;
use prfix_tests::app::channel_to;
use prfix_tests::spawn_app;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

fn event(action: &str) -> audit::AuditEvent {
    audit::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
        actor: Some(audit::Actor { subject: "alice".into(), roles: vec!["developer".into()] }),
        action: action.into(),
        resource: "tasks/1".into(),
        result: audit::AuditResult::Success as i32,
        ..Default::default()
    }
}

/// Service names a reflection stream lists.
async fn reflected_services_v1(channel: tonic::transport::Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream.next().await.expect("one response").expect("not an error");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection response {other:?}"),
    }
}

async fn reflected_services_v1alpha(channel: tonic::transport::Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream.next().await.expect("one response").expect("not an error");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection response {other:?}"),
    }
}

#[tokio::test]
async fn reflection_on_the_gateway_lists_every_service_of_the_api_in_v1_and_v1alpha() {
    let app = spawn_app().await;
    for services in
        [reflected_services_v1(app.channel.clone()).await, reflected_services_v1alpha(app.channel.clone()).await]
    {
        for wanted in [
            "prfix.auth.v1.AuthService",
            "prfix.agent.v1.AgentService",
            "prfix.audit.v1.AuditService",
            "grpc.health.v1.Health",
        ] {
            assert!(services.iter().any(|s| s == wanted), "{wanted} missing from {services:?}");
        }
    }
}

#[tokio::test]
async fn health_through_the_gateway_reports_the_gateway_and_each_service_serving() {
    let app = spawn_app().await;
    let mut health = app.health_client();
    for service in ["", "prfix.agent.v1.AgentService", "prfix.audit.v1.AuditService"] {
        let status = health
            .check(HealthCheckRequest { service: service.into() })
            .await
            .unwrap_or_else(|e| panic!("health of `{service}`: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service `{service}`");
    }
    let unknown =
        health.check(HealthCheckRequest { service: "nope.v1.Nope".into() }).await.expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn an_audit_event_appended_through_the_gateway_is_stored_and_listed() {
    let app = spawn_app().await;
    let mut client = app.audit_client();
    let mut sent = event("demo.append");
    sent.metadata = Some(prost_types::Struct {
        fields: [("pr".to_owned(), prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(42.0)) })]
            .into(),
    });
    let appended =
        client.append(audit::AppendRequest { event: Some(sent.clone()) }).await.expect("append").into_inner();
    assert_eq!(appended, audit::AppendResponse { sequence: 1, duplicate: false });

    // In Postgres, as sent.
    let pg = app.db.connect().await;
    let row = pg
        .query_one("SELECT event_id::text, actor_subject, action, metadata FROM audit.events WHERE sequence = 1", &[])
        .await
        .expect("the row exists");
    assert_eq!(row.get::<_, String>(0), sent.event_id);
    assert_eq!(row.get::<_, String>(1), "alice");
    assert_eq!(row.get::<_, String>(2), "demo.append");
    assert_eq!(row.get::<_, serde_json::Value>(3), serde_json::json!({"pr": 42.0}));

    // And back through the gateway.
    let listed = client.list_events(audit::ListEventsRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.events.len(), 1);
    let got = &listed.events[0];
    assert_eq!((got.sequence, got.event_id.as_str(), got.action.as_str()), (1, sent.event_id.as_str(), "demo.append"));
    assert_eq!(got.time, sent.time);
    assert_eq!(got.metadata, sent.metadata);
}

#[tokio::test]
async fn a_retried_append_returns_the_original_sequence_and_stores_nothing_twice() {
    let app = spawn_app().await;
    let mut client = app.audit_client();
    let first = event("a");
    let second = event("b");
    client.append(audit::AppendRequest { event: Some(first.clone()) }).await.expect("first");
    client.append(audit::AppendRequest { event: Some(second) }).await.expect("second");
    let retry = client.append(audit::AppendRequest { event: Some(first) }).await.expect("retry").into_inner();
    assert_eq!(retry, audit::AppendResponse { sequence: 1, duplicate: true });
    let count: i64 =
        app.db.connect().await.query_one("SELECT count(*) FROM audit.events", &[]).await.expect("count").get(0);
    assert_eq!(count, 2);
}

#[tokio::test]
async fn list_events_filters_and_pages_in_sequence_order() {
    let app = spawn_app().await;
    let mut client = app.audit_client();
    let events: Vec<_> = (0..7).map(|i| event(if i % 2 == 0 { "even" } else { "odd" })).collect();
    client.append_batch(audit::AppendBatchRequest { events }).await.expect("batch");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_events(audit::ListEventsRequest {
                action: "even".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.events.iter().map(|e| e.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, vec![1, 3, 5, 7]);

    let bad = client
        .list_events(audit::ListEventsRequest { page_token: "not-ours".into(), ..Default::default() })
        .await
        .expect_err("foreign token refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{}", bad.message());
}

#[tokio::test]
async fn a_server_stream_passes_through_the_gateway_whole_and_in_order_with_its_trailers() {
    let app = spawn_app().await;
    let mut client = app.audit_client();
    let events: Vec<_> = (0..1_200).map(|i| event(&format!("bulk.{i}"))).collect();
    client.append_batch(audit::AppendBatchRequest { events: events[..600].to_vec() }).await.expect("batch 1");
    client.append_batch(audit::AppendBatchRequest { events: events[600..].to_vec() }).await.expect("batch 2");

    let mut stream = client.export_events(audit::ExportEventsRequest::default()).await.expect("export").into_inner();
    let mut sequences = Vec::new();
    let mut checkpoints = Vec::new();
    while let Some(item) = stream.message().await.expect("no error mid-stream") {
        match item.item {
            Some(audit::export_events_response::Item::Event(e)) => sequences.push(e.sequence),
            Some(audit::export_events_response::Item::Checkpoint(c)) => {
                checkpoints.push((sequences.len(), c.tree_size))
            }
            Some(audit::export_events_response::Item::Jsonl(_)) => panic!("JSON lines in an export of items"),
            None => panic!("an empty item"),
        }
    }
    assert_eq!(sequences, (1..=1_200).collect::<Vec<_>>());
    // The export starts by signing a checkpoint over everything, which comes after the last event.
    assert_eq!(checkpoints.last(), Some(&(1_200, 1_200)));
    // The stream ended with the upstream's OK trailers (a missing grpc-status would have been an
    // error above).
    let trailers = stream.trailers().await.expect("trailers arrive");
    assert!(trailers.is_some(), "the upstream's trailers reach the client");
}

#[tokio::test]
async fn request_metadata_reaches_the_service_and_the_request_id_comes_back() {
    let app = spawn_app().await;
    let mut request = tonic::Request::new(audit::ListEventsRequest::default());
    request.metadata_mut().insert("x-request-id", "req-1234".parse().expect("ascii"));
    let response = app.audit_client().list_events(request).await.expect("list");
    assert_eq!(response.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-1234"));

    // Without one, the gateway makes one.
    let response = app.audit_client().list_events(audit::ListEventsRequest::default()).await.expect("list");
    let id = response.metadata().get("x-request-id").and_then(|v| v.to_str().ok()).expect("an id is assigned");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn service_errors_pass_through_the_gateway_with_code_and_message() {
    let app = spawn_app().await;
    let mut bad = event("x");
    bad.event_id = "not-a-uuid".into();
    let status = app.audit_client().append(audit::AppendRequest { event: Some(bad) }).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("event_id must be a UUID"), "{}", status.message());
}

#[tokio::test]
async fn a_call_for_a_stopped_agent_fails_unavailable_within_a_second_and_names_it() {
    let mut app = spawn_app().await;
    app.agent.stop().await;
    let started = Instant::now();
    let status = app
        .agent_client()
        .list_tasks(prfix_proto::agent::v1::ListTasksRequest::default())
        .await
        .expect_err("the agent is down");
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("agent"), "{}", status.message());
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");

    // The gateway's health says so too, while the audit service is still serving.
    let mut health = app.health_client();
    let agent =
        health.check(HealthCheckRequest { service: "prfix.agent.v1.AgentService".into() }).await.expect("check");
    assert_eq!(agent.into_inner().status, ServingStatus::NotServing as i32);
    let audit =
        health.check(HealthCheckRequest { service: "prfix.audit.v1.AuditService".into() }).await.expect("check");
    assert_eq!(audit.into_inner().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn the_gateway_reconnects_to_an_agent_that_comes_back_on_its_address() {
    let mut app = spawn_app().await;
    let list = || prfix_proto::agent::v1::ListTasksRequest::default();
    // The first call opens the gateway's connection to the agent, which every later call shares.
    app.agent_client().list_tasks(list()).await.expect("the agent answers");
    let addr = app.agent.addr;
    app.agent.stop().await;
    let status = app.agent_client().list_tasks(list()).await.expect_err("the agent is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("upstream agent"), "{}", status.message());

    app.agent = app.spawn_agent(|s| s.agent.listen = addr).await;
    for _ in 0..3 {
        app.agent_client().list_tasks(list()).await.expect("the gateway reached the agent again on a new connection");
    }
}

#[tokio::test]
async fn an_unknown_service_is_unimplemented_at_the_gateway() {
    let app = spawn_app().await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/nope.v1.NopeService/Do");
    let status = grpc
        .unary::<(), (), _>(tonic::Request::new(()), path, tonic_prost::ProstCodec::default())
        .await
        .expect_err("unknown service");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("/nope.v1.NopeService/Do"), "{}", status.message());
}

#[tokio::test]
async fn the_services_answer_directly_as_well_as_through_the_gateway() {
    let app = spawn_app().await;
    let mut direct = prfix_proto::audit::v1::audit_service_client::AuditServiceClient::with_interceptor(
        channel_to(app.audit.addr),
        prfix_tests::auth::Bearer::new(&prfix_tests::auth::operator_token()),
    );
    direct.append(audit::AppendRequest { event: Some(event("direct")) }).await.expect("direct append");
    let listed = app.audit_client().list_events(audit::ListEventsRequest::default()).await.expect("list").into_inner();
    assert_eq!(listed.events.len(), 1);
}
