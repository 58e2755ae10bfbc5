//! `AgentService.PullModel` through the gateway: an admin pulls a model onto one of the agent's
//! Ollama endpoints and sees Ollama's progress as it comes; the fake Ollama checks the `/api/pull`
//! body against Ollama's API; developers are refused; every call is in the audit log.

use std::time::Duration;

use futures::StreamExt;
use prfix_auth::Role;
use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1 as audit;
use prfix_tests::auth::token;
use prfix_tests::{Reply, spawn_app};
use tonic::Code;

const PULL_MODEL: &str = "/prfix.agent.v1.AgentService/PullModel";

#[tokio::test]
async fn an_admin_pulls_a_model_with_ollamas_progress_and_the_call_is_audited() {
    let app = spawn_app().await;
    let admin = token("ops-admin", &[Role::Admin]);
    let mut client = app.agent_client_as(&admin);
    let request = pb::PullModelRequest { name: "llama3.2:1b".into(), endpoint: String::new() };
    let mut stream = client.pull_model(request).await.expect("an admin may pull").into_inner();
    let mut steps = Vec::new();
    while let Some(step) = stream.next().await {
        steps.push(step.expect("a progress step"));
    }
    let statuses: Vec<&str> = steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"pulling manifest"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"success"), "{statuses:?}");
    let layer = steps.iter().filter(|s| s.total_bytes > 0).map(|s| s.completed_bytes).collect::<Vec<_>>();
    assert_eq!(layer, [2_341_543_666, 4_683_087_332], "the layer's progress, as Ollama reported it");
    assert!(steps.iter().all(|s| s.endpoint == app.ollama.url()), "{steps:?}");

    // Ollama was asked as its API documents it (the fake answers 400 to anything else).
    let pulls: Vec<_> = app.ollama.requests().into_iter().filter(|r| r.path == "/api/pull").collect();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].violation, None);
    let body: serde_json::Value = serde_json::from_str(&pulls[0].body).expect("JSON");
    assert_eq!(body["model"], "llama3.2:1b");

    // The call is in the audit log, with the admin as its actor.
    let mut audit_client = app.audit_client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = audit_client
            .list_events(audit::ListEventsRequest { action: PULL_MODEL.into(), page_size: 100, ..Default::default() })
            .await
            .expect("list events")
            .into_inner()
            .events;
        if events.iter().any(|e| {
            e.result == audit::AuditResult::Success as i32 && e.actor.as_ref().is_some_and(|a| a.subject == "ops-admin")
        }) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no access record of the pull: {events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_developer_may_not_pull_and_an_unknown_endpoint_or_an_ollama_error_is_said() {
    let app = spawn_app().await;
    let developer = token("dev", &[Role::Developer]);
    let refused = app
        .agent_client_as(&developer)
        .pull_model(pb::PullModelRequest { name: "llama3.2:1b".into(), endpoint: String::new() })
        .await
        .expect_err("developers may not pull");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let admin = token("ops-admin", &[Role::Admin]);
    let mut client = app.agent_client_as(&admin);
    let elsewhere = client
        .pull_model(pb::PullModelRequest { name: "llama3.2:1b".into(), endpoint: "http://127.0.0.2:11434".into() })
        .await
        .expect_err("only the agent's endpoints");
    assert_eq!(elsewhere.code(), Code::InvalidArgument, "{elsewhere:?}");
    assert!(elsewhere.message().contains("not one of the agent's endpoints"), "{elsewhere:?}");
    let blank = client
        .pull_model(pb::PullModelRequest { name: " ".into(), endpoint: String::new() })
        .await
        .expect_err("a name is needed");
    assert_eq!(blank.code(), Code::InvalidArgument, "{blank:?}");
    assert!(app.ollama.requests().iter().all(|r| r.path != "/api/pull"), "nothing reached Ollama for refused pulls");

    // Ollama's own refusal (an unknown model) ends the stream with its message.
    app.ollama.push("/api/pull", Reply::error(500, "pull model manifest: file does not exist"));
    let outcome =
        client.pull_model(pb::PullModelRequest { name: "no-such-model".into(), endpoint: String::new() }).await;
    let error = match outcome {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            let mut last = None;
            while let Some(step) = stream.next().await {
                if let Err(status) = step {
                    last = Some(status);
                }
            }
            last.expect("the stream ends with an error")
        }
    };
    assert!(error.message().contains("file does not exist"), "{error:?}");
}
