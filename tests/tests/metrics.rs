//! `/metrics` on each service's admin port, after traffic: the series operators alert on, with
//! their labels.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::{Reply, TestApp, spawn_app};

const MODEL: &str = "qwen2.5-coder:14b";

async fn scrape(addr: std::net::SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.expect("the admin port answers");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/plain")));
    response.text().await.expect("text")
}

/// Whether a sample of `name` carries every label of `labels`.
fn has(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    text.lines().filter(|l| !l.starts_with('#')).any(|line| {
        let Some(rest) = line.strip_prefix(name) else { return false };
        (rest.starts_with('{') || rest.starts_with(' '))
            && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
    })
}

async fn traffic(app: &TestApp) {
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let change_set = pb::ChangeSet {
        diff: "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -1 +1 @@\n-1\n+2\n".into(),
        ..Default::default()
    };
    let mut client = app.agent_client();
    let task = client
        .create_review(pb::CreateReviewRequest { change_set: Some(change_set), options: None })
        .await
        .expect("created")
        .into_inner()
        .task
        .expect("task");
    prfix_tests::tasks::wait_for_end(&mut client, &task.task_id, Duration::from_secs(15)).await;
    // Refusals: a wrong password and a call without credentials.
    assert!(app.login("admin", "wrong-password").await.is_err());
    assert!(app.agent_client_as("").list_tasks(pb::ListTasksRequest::default()).await.is_err());
}

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
