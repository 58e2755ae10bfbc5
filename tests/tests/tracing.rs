//! W3C trace context end to end, with each service in its own process as in production: a client's
//! `traceparent` reaches the gateway, the agent, the agent's task and its call to Ollama, and the
//! audit service; the trace id is in each service's JSON log lines and in the audit events; and the
//! spans are exported over OTLP/gRPC to a collector, parent to child.
//!
//! The collector here is a recording OTLP trace receiver at the network edge (the services' real
//! exporter talks to it over gRPC), like the fake Ollama.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
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
use prfix_tests::auth::{ADMIN_PASSWORD, Bearer, audit_key, keys, operator_token};
use prfix_tests::{FakeOllama, Reply, TestDatabase};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MODEL: &str = "qwen2.5-coder:14b";
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

/// A service running as its own process, its JSON log lines collected as they come.
struct Service {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl Service {
    async fn start(name: &'static str, env: &[(&str, String)]) -> (Self, SocketAddr) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prfix-service"));
        command
            .arg(name)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PRFIX_LOG_FORMAT", "json")
            .env("PRFIX_LOG_LEVEL", "info")
            // Export each batch at once rather than every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start the {name} process: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for (reader, parse) in [
            (Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>, true),
            (Box::new(stderr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>, false),
        ] {
            let (lines, raw) = (lines.clone(), raw.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(reader).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if parse && let Ok(value) = serde_json::from_str::<Value>(&line) {
                        lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(value);
                    }
                    raw.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
                }
            });
        }
        let mut service = Self { name, child, lines, raw };
        let addr = service.wait_for_listening().await;
        (service, addr)
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn output(&self) -> String {
        self.raw.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n")
    }

    /// The address from the service's "… listening" line (it binds port 0).
    async fn wait_for_listening(&mut self) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let found = self.lines().iter().find_map(|line| {
                let message = line["message"].as_str()?;
                message.ends_with("listening").then(|| line["addr"].as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the {} process exited with {status} before listening:\n{}", self.name, self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the {} process did not listen within {LIMIT:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its log lines whose current span, or whose own fields, carry `trace_id`.
    fn traced_lines(&self, trace_id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["span"]["trace_id"].as_str() == Some(trace_id) || line["trace_id"] == trace_id)
            .collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("valid URI").connect_lazy()
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
    let db = TestDatabase::fresh();
    let ollama = FakeOllama::start().await;
    ollama.set_models(&[MODEL]);
    ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let collector = Collector::default();
    let collector_addr = collector.start().await;
    let data = tempfile::tempdir().expect("temp dir");
    let common = [
        ("PRFIX_DATABASE_URL", db.url.clone()),
        (
            "PRFIX_REDIS_URL",
            std::env::var("PRFIX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
        ),
        ("PRFIX_REDIS_KEY_PREFIX", format!("prfix-test:{}:", uuid::Uuid::new_v4().simple())),
        ("PRFIX_OLLAMA_URL", ollama.url()),
        ("PRFIX_AUTH_JWKS_FILE", keys().jwks_file.display().to_string()),
        ("PRFIX_OTLP_ENDPOINT", format!("http://{collector_addr}")),
    ];
    let with = |more: &[(&'static str, String)]| common.iter().chain(more).cloned().collect::<Vec<_>>();

    let (audit_service, audit_addr) = Service::start(
        "audit",
        &with(&[
            ("PRFIX_AUDIT__LISTEN", "127.0.0.1:0".into()),
            ("PRFIX_AUDIT__ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("PRFIX_AUDIT__DRAIN_DELAY_MS", "0".into()),
            ("PRFIX_AUDIT__DATA_DIR", data.path().join("audit").display().to_string()),
            ("PRFIX_AUDIT_SIGNING_KEY_FILE", audit_key().pem_file.display().to_string()),
        ]),
    )
    .await;
    // The gateway needs the agent's address and the agent a credential the gateway makes.
    let agent_port = free_port();
    let (gateway_service, gateway_addr) = Service::start(
        "gateway",
        &with(&[
            ("PRFIX_GATEWAY__LISTEN", "127.0.0.1:0".into()),
            ("PRFIX_GATEWAY__ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("PRFIX_GATEWAY__DRAIN_DELAY_MS", "0".into()),
            ("PRFIX_GATEWAY__AGENT_URL", format!("http://127.0.0.1:{agent_port}")),
            ("PRFIX_GATEWAY__AUDIT_URL", format!("http://{audit_addr}")),
            ("PRFIX_GATEWAY__DATA_DIR", data.path().join("gateway").display().to_string()),
            ("PRFIX_SIGNING_KEY_FILE", keys().pem_file.display().to_string()),
            ("PRFIX_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ]),
    )
    .await;
    let gateway = channel(gateway_addr);
    let operator = Bearer::new(&operator_token());
    let mut admin = AuthServiceClient::with_interceptor(gateway.clone(), operator.clone());
    admin
        .create_user(auth::CreateUserRequest {
            username: "agent".into(),
            password: "agent-password-123".into(),
            roles: vec![prfix_proto::options::v1::Role::Service as i32],
        })
        .await
        .expect("the operator creates the agent's service user");
    let credential = admin
        .create_api_key(auth::CreateApiKeyRequest {
            name: "agent-audit".into(),
            roles: vec![prfix_proto::options::v1::Role::Service as i32],
            ttl: None,
            owner: "agent".into(),
        })
        .await
        .expect("the operator creates the agent's API key")
        .into_inner()
        .secret;
    let (agent_service, _) = Service::start(
        "agent",
        &with(&[
            ("PRFIX_AGENT__LISTEN", format!("127.0.0.1:{agent_port}")),
            ("PRFIX_AGENT__ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("PRFIX_AGENT__DRAIN_DELAY_MS", "0".into()),
            ("PRFIX_AGENT__AUDIT_URL", format!("http://{gateway_addr}")),
            ("PRFIX_AGENT_AUDIT_CREDENTIAL", credential),
        ]),
    )
    .await;
    let logs = || {
        [&gateway_service, &agent_service, &audit_service]
            .iter()
            .map(|s| format!("--- {} ---\n{}", s.name, s.output()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The client starts the trace: a review, then a look at the audit log in the same trace.
    let mut agent = AgentServiceClient::with_interceptor(gateway.clone(), operator.clone());
    let change_set = pb::ChangeSet {
        diff: "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -1 +1 @@\n-1\n+2\n".into(),
        ..Default::default()
    };
    let task = agent
        .create_review(traced(pb::CreateReviewRequest { change_set: Some(change_set), options: None }))
        .await
        .expect("the review is created")
        .into_inner()
        .task
        .expect("task");
    let ended = prfix_tests::tasks::wait_for_end(&mut agent, &task.task_id, LIMIT).await;
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
        if ["/prfix.agent.v1.AgentService/CreateReview", "agent.task.create.review", "agent.task.succeeded"]
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
    eventually("the gateway logs the traced CreateReview", || answered(&gateway_service, create), logs).await;
    eventually("the agent logs the traced CreateReview", || answered(&agent_service, create), logs).await;
    let agent_lines = agent_service.traced_lines(TRACE_ID);
    for message in ["task queued", "task started", "task ended"] {
        assert!(agent_lines.iter().any(|l| l["message"] == message), "agent: no traced `{message}` line\n{}", logs());
    }
    let list = "/prfix.audit.v1.AuditService/ListEvents";
    eventually("the audit service logs the traced ListEvents", || answered(&audit_service, list), logs).await;
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
