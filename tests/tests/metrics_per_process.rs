//! `/metrics` of each service run as its own process, as deployed: after a review through the
//! gateway, each admin port shows the series of its own work, with their labels and counts, and
//! none of another service's calls (in process the three share one registry, so only separate
//! processes can show that each exposes its own).

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_proto::auth::v1 as auth;
use prfix_proto::auth::v1::auth_service_client::AuthServiceClient;
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::metrics::{MODEL, one_line_change, sum};
use prfix_tests::processes::{System, channel};
use prfix_tests::{FakeOllama, Reply};
const CREATE: &str = "/prfix.agent.v1.AgentService/CreateReview";

fn count(text: &str, name: &str, labels: &[(&str, &str)], who: &str) -> f64 {
    sum(text, name, labels).unwrap_or_else(|| panic!("{who}: no {name} {labels:?}:\n{text}"))
}

#[tokio::test]
async fn each_service_process_exposes_the_series_of_its_own_work() {
    let ollama = FakeOllama::start().await;
    ollama.set_models(&[MODEL]);
    ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let data = tempfile::tempdir().expect("temp dir");
    let system = System::start(env!("CARGO_BIN_EXE_prfix-service"), &ollama, data.path(), &[]).await;
    let gateway = channel(system.gateway.addr);

    let mut agent = AgentServiceClient::with_interceptor(gateway.clone(), Bearer::new(&operator_token()));
    let task = agent
        .create_review(pb::CreateReviewRequest { change_set: Some(one_line_change()), options: None })
        .await
        .expect("the review is created")
        .into_inner()
        .task
        .expect("task");
    let ended = prfix_tests::tasks::wait_for_end(&mut agent, &task.task_id, Duration::from_secs(30)).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{}", system.logs());
    // Refusals: a wrong password and a call without credentials.
    let mut anonymous = AuthServiceClient::with_interceptor(gateway.clone(), Bearer::new(""));
    assert!(anonymous.login(auth::LoginRequest { username: "admin".into(), password: "wrong".into() }).await.is_err());
    let mut nobody = AgentServiceClient::with_interceptor(gateway.clone(), Bearer::new(""));
    assert!(nobody.list_tasks(pb::ListTasksRequest::default()).await.is_err());

    // The records of the review reach the audit service through the outboxes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let audit = loop {
        let text = system.audit.scrape().await;
        if sum(&text, "prfix_audit_appends_total", &[]).unwrap_or(0.0) >= 3.0 {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "no audit appends:\n{text}\n{}", system.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let gateway_metrics = system.gateway.scrape().await;
    let g = |name: &str, labels: &[(&str, &str)]| count(&gateway_metrics, name, labels, "gateway");
    assert!(g("prfix_requests_total", &[("service", "gateway"), ("method", CREATE), ("code", "OK")]) >= 1.0);
    assert!(g("prfix_requests_total", &[("service", "gateway"), ("code", "UNAUTHENTICATED")]) >= 1.0);
    assert!(g("prfix_request_duration_seconds_count", &[("service", "gateway"), ("method", CREATE)]) >= 1.0);
    assert!(g("prfix_rate_limit_decisions_total", &[("class", "expensive"), ("decision", "allowed")]) >= 1.0);
    assert!(g("prfix_auth_failures_total", &[("reason", "LoginFailed")]) >= 1.0, "the wrong password");
    assert!(g("prfix_auth_failures_total", &[]) >= 2.0, "the wrong password and the missing credential");
    g("prfix_outbox_backlog", &[("table", "gateway.access_outbox")]);
    assert!(g("prfix_db_pool_connections", &[("service", "gateway"), ("state", "max")]) >= 1.0);
    assert_eq!(g("prfix_redis_fallback_active", &[]), 0.0, "Redis is up");

    let agent_metrics = system.agent.scrape().await;
    let a = |name: &str, labels: &[(&str, &str)]| count(&agent_metrics, name, labels, "agent");
    assert!(a("prfix_requests_total", &[("service", "agent"), ("method", CREATE), ("code", "OK")]) >= 1.0);
    assert!(a("prfix_model_calls_total", &[("model", MODEL), ("outcome", "ok")]) >= 1.0);
    assert!(a("prfix_model_call_duration_seconds_count", &[("model", MODEL)]) >= 1.0);
    assert!(a("prfix_model_tokens_total", &[("model", MODEL), ("kind", "prompt")]) > 0.0);
    assert!(a("prfix_model_tokens_total", &[("model", MODEL), ("kind", "output")]) > 0.0);
    assert_eq!(a("prfix_tasks", &[("state", "queued")]), 0.0, "the review ended");
    assert_eq!(a("prfix_tasks", &[("state", "running")]), 0.0, "the review ended");
    a("prfix_task_queue_oldest_seconds", &[]);
    a("prfix_outbox_backlog", &[("table", "agent.audit_outbox")]);
    assert!(a("prfix_db_pool_connections", &[("service", "agent"), ("state", "max")]) >= 1.0);

    let x = |name: &str, labels: &[(&str, &str)]| count(&audit, name, labels, "audit");
    assert!(x("prfix_requests_total", &[("service", "audit"), ("code", "OK")]) >= 1.0);
    assert!(x("prfix_audit_batch_size_count", &[]) >= 1.0);
    x("prfix_audit_checkpoint_age_seconds", &[]);
    assert!(x("prfix_db_pool_connections", &[("service", "audit"), ("state", "max")]) >= 1.0);

    // Each process counts only the calls it served.
    for (text, own) in [(&gateway_metrics, "gateway"), (&agent_metrics, "agent"), (&audit, "audit")] {
        for other in ["gateway", "agent", "audit"].into_iter().filter(|s| *s != own) {
            assert_eq!(
                sum(text, "prfix_requests_total", &[("service", other)]),
                None,
                "the {own} process shows calls of the {other} service"
            );
        }
    }
    assert_eq!(sum(&gateway_metrics, "prfix_model_calls_total", &[]), None, "the gateway makes no model calls");
}
