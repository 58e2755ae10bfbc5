//! W3C trace context end to end, with each service in its own process as in production: a client's
//! `traceparent` reaches the gateway, the agent, the agent's task and its call to Ollama, and the
//! audit service; the trace id is in each service's JSON log lines and in the audit events; and the
//! spans are exported over OTLP/gRPC to a collector, parent to child.
//!
//! The collector here is a recording OTLP trace receiver at the network edge (the services' real
//! exporter talks to it over gRPC), like the fake Ollama.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::audit::v1 as audit;
use prfix_proto::audit::v1::audit_service_client::AuditServiceClient;
use prfix_proto::auth::v1 as auth;
use prfix_proto::auth::v1::auth_service_client::AuthServiceClient;
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::metrics::{MODEL, one_line_change};
use prfix_tests::processes::{Service, System, channel};
use prfix_tests::{FakeOllama, Reply};
use serde_json::Value;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const LIMIT: Duration = Duration::from_secs(30);

/// One exported span.
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP/gRPC trace receiver that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(ExportedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
        let addr = listener.local_addr().expect("address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        addr
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Waits until `check` holds, polling; panics with `what` and `context()` after [`LIMIT`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {LIMIT:?}:\n{}", context());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01").parse().expect("ascii");
    request.metadata_mut().insert("traceparent", value);
    request
}

#[tokio::test]
async fn a_clients_trace_id_is_in_every_services_logs_in_the_audit_events_and_in_the_exported_spans() {
    let ollama = FakeOllama::start().await;
    ollama.set_models(&[MODEL]);
    ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let collector = Collector::default();
    let collector_addr = collector.start().await;
    let data = tempfile::tempdir().expect("temp dir");
    // The audit service's `audit event appended` lines are at debug.
    let otlp = [
        ("PRFIX_OTLP_ENDPOINT", format!("http://{collector_addr}")),
        ("PRFIX_LOG_LEVEL", "info,prfix_audit=debug".to_owned()),
    ];
    let system = System::start(env!("CARGO_BIN_EXE_prfix-service"), &ollama, data.path(), &otlp).await;
    let (gateway_service, agent_service, audit_service) = (&system.gateway, &system.agent, &system.audit);
    let gateway = channel(gateway_service.addr);
    let operator = Bearer::new(&operator_token());
    let logs = || system.logs();

    // The client starts the trace: a review, then a look at the audit log in the same trace.
    let mut agent = AgentServiceClient::with_interceptor(gateway.clone(), operator.clone());
    let task = agent
        .create_review(traced(pb::CreateReviewRequest { change_set: Some(one_line_change()), options: None }))
        .await
        .expect("the review is created")
        .into_inner()
        .task
        .expect("task");
    let ended = prfix_tests::tasks::wait_for_end(&mut agent, &task.task_id, LIMIT).await;
    // A failed login in the same trace: the gateway appends its security event directly.
    let mut anonymous = AuthServiceClient::with_interceptor(gateway.clone(), Bearer::new(""));
    let login = auth::LoginRequest { username: "mallory".into(), password: "guess-123".into() };
    assert!(anonymous.login(traced(login)).await.is_err(), "a wrong password is refused");
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}\n{}", logs());

    // Ollama got the trace with the model call's span as the parent.
    let chats: Vec<_> = ollama.requests().into_iter().filter(|r| r.path == "/api/chat").collect();
    assert!(!chats.is_empty(), "no chat reached Ollama");
    let ollama_parents: Vec<String> = chats
        .iter()
        .map(|r| {
            let value = r.traceparent.clone().unwrap_or_else(|| panic!("a chat came without traceparent: {r:?}"));
            let context = prfix_runtime::trace::TraceContext::parse(&value)
                .unwrap_or_else(|| panic!("Ollama got an invalid traceparent `{value}`"));
            assert_eq!(context.trace_id(), TRACE_ID, "Ollama's traceparent `{value}`");
            context.span_id()
        })
        .collect();

    // The audit events the call caused carry the trace id: the gateway's access record, the
    // agent's creation and completion records. They reach the log through the outboxes.
    let task_resource = format!("tasks/{}", task.task_id);
    let mut audit_log = AuditServiceClient::with_interceptor(gateway.clone(), operator.clone());
    let deadline = tokio::time::Instant::now() + LIMIT;
    let events = loop {
        let events = audit_log
            .list_events(traced(audit::ListEventsRequest { page_size: 100, ..Default::default() }))
            .await
            .expect("the audit log lists")
            .into_inner()
            .events;
        let traced_actions: Vec<&str> =
            events.iter().filter(|e| e.trace_id == TRACE_ID).map(|e| e.action.as_str()).collect();
        if [
            "/prfix.agent.v1.AgentService/CreateReview",
            "agent.task.create.review",
            "agent.task.succeeded",
            "auth.login",
        ]
        .iter()
        .all(|a| traced_actions.contains(a))
        {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the traced audit events did not all arrive: {traced_actions:?}\n{events:#?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for event in events.iter().filter(|e| e.resource == task_resource) {
        assert_eq!(event.trace_id, TRACE_ID, "an event of the task is outside the trace: {event:?}");
    }
    // Every event has a trace id; calls that came without one (the operator's set-up calls)
    // started traces of their own.
    for event in &events {
        assert!(
            prfix_runtime::trace::TraceContext::parse(&format!("00-{}-{CLIENT_SPAN}-01", event.trace_id)).is_some(),
            "an event without a valid trace id: {event:?}"
        );
    }
    assert!(events.iter().any(|e| e.trace_id != TRACE_ID), "untraced calls should start traces of their own");

    // The trace id in each service's log lines.
    let create = "/prfix.agent.v1.AgentService/CreateReview";
    let answered = |service: &Service, method: &str| {
        service
            .traced_lines(TRACE_ID)
            .into_iter()
            .any(|l| l["message"] == "call answered" && l["span"]["method"] == method && l["code"] == "OK")
    };
    eventually("the gateway logs the traced CreateReview", || answered(gateway_service, create), logs).await;
    eventually("the agent logs the traced CreateReview", || answered(agent_service, create), logs).await;
    let agent_lines = agent_service.traced_lines(TRACE_ID);
    for message in ["task queued", "task started", "task ended"] {
        assert!(agent_lines.iter().any(|l| l["message"] == message), "agent: no traced `{message}` line\n{}", logs());
    }
    let list = "/prfix.audit.v1.AuditService/ListEvents";
    let append = "/prfix.audit.v1.AuditService/Append";
    eventually("the audit service logs the traced security event's Append", || answered(audit_service, append), logs)
        .await;
    eventually("the audit service logs the traced ListEvents", || answered(audit_service, list), logs).await;
    eventually(
        "the audit service logs the traced events it appended",
        || {
            let appended: Vec<Value> = audit_service
                .lines()
                .into_iter()
                .filter(|l| l["message"] == "audit event appended" && l["trace_id"] == TRACE_ID)
                .collect();
            ["agent.task.create.review", "agent.task.succeeded"]
                .iter()
                .all(|a| appended.iter().any(|l| l["action"] == *a))
        },
        logs,
    )
    .await;
    // Every span of the gateway's and agent's lines for the call shares the one trace id.
    for line in gateway_service.lines().iter().chain(agent_service.lines().iter()) {
        if line["span"]["method"] == create {
            assert_eq!(line["span"]["trace_id"], TRACE_ID, "a line of the traced call with another trace: {line}");
        }
    }

    // The exported spans: one trace, parent to child across the processes.
    let spans_of = |service: &str, name: &str| -> Vec<ExportedSpan> {
        collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == TRACE_ID && s.service == service && s.name == name)
            .collect()
    };
    let exported = || format!("{:#?}", collector.spans());
    eventually(
        "the spans of the trace are exported by all three services",
        || {
            !spans_of("prfix-gateway", create).is_empty()
                && !spans_of("prfix-agent", create).is_empty()
                && !spans_of("prfix-agent", "agent task").is_empty()
                && spans_of("prfix-agent", "ollama chat").len() == chats.len()
                && !spans_of("prfix-audit", list).is_empty()
        },
        exported,
    )
    .await;
    let gateway_span = &spans_of("prfix-gateway", create)[0];
    assert_eq!(gateway_span.parent_span_id, CLIENT_SPAN, "the gateway's span continues the client's");
    let agent_span = &spans_of("prfix-agent", create)[0];
    assert_eq!(agent_span.parent_span_id, gateway_span.span_id, "the agent's span is the gateway's child");
    let task_span = &spans_of("prfix-agent", "agent task")[0];
    assert_eq!(task_span.parent_span_id, agent_span.span_id, "the task's span is the creating call's child");
    let mut model_spans: Vec<String> = spans_of("prfix-agent", "ollama chat")
        .iter()
        .inspect(|s| assert_eq!(s.parent_span_id, task_span.span_id, "a model call outside its task: {s:?}"))
        .map(|s| s.span_id.clone())
        .collect();
    let mut ollama_parents = ollama_parents;
    model_spans.sort();
    ollama_parents.sort();
    assert_eq!(model_spans, ollama_parents, "Ollama's parent spans are the exported model-call spans");
    let gateway_spans: HashMap<String, String> =
        collector.spans().into_iter().filter(|s| s.service == "prfix-gateway").map(|s| (s.span_id, s.name)).collect();
    let audit_span = &spans_of("prfix-audit", list)[0];
    assert_eq!(
        gateway_spans.get(&audit_span.parent_span_id).map(String::as_str),
        Some(list),
        "the audit service's span is the child of the gateway's ListEvents span"
    );
}
