//! The agent through the gateway: models from Ollama, tasks from Postgres, deadlines and
//! cancellation carried all the way to Ollama.

use std::time::{Duration, Instant};

use prfix_proto::agent::v1 as pb;
use prfix_proto::prost::Message;
use prfix_tests::{Reply, spawn_app};
use tonic::Code;

/// The change set the tasks inserted below were created with.
const STORED_DIFF: &str = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n";

#[tokio::test]
async fn list_models_through_the_gateway_asks_ollama_for_its_tags() {
    let app = spawn_app().await;
    app.ollama.set_models(&["qwen2.5-coder:7b", "llama3.1:8b"]);
    let models = app.agent_client().list_models(pb::ListModelsRequest {}).await.expect("models").into_inner();
    let names: Vec<_> = models.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["qwen2.5-coder:7b", "llama3.1:8b"]);
    let first = &models.models[0];
    assert_eq!(first.endpoint, app.ollama.url());
    assert_eq!((first.parameter_size.as_str(), first.quantization_level.as_str()), ("7.6B", "Q4_K_M"));
    let requests = app.ollama.requests();
    assert!(requests.iter().any(|r| r.method == "GET" && r.path == "/api/tags"), "{requests:?}");
}

#[tokio::test]
async fn list_models_says_clearly_when_ollama_is_unreachable() {
    let app = spawn_app().await;
    let url = app.ollama.url();
    app.ollama.stop();
    let status = app.agent_client().list_models(pb::ListModelsRequest {}).await.expect_err("ollama is down");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains(&url), "{}", status.message());
    assert!(status.message().contains("ollama serve"), "{}", status.message());
}

#[tokio::test]
async fn an_ollama_error_status_is_reported_with_the_endpoint() {
    let app = spawn_app().await;
    app.ollama.push("/api/tags", Reply::error(500, "model store corrupted"));
    let status = app.agent_client().list_models(pb::ListModelsRequest {}).await.expect_err("ollama failed");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("500") && status.message().contains("model store corrupted"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_client_deadline_passes_through_the_gateway_and_stops_the_ollama_call() {
    let app = spawn_app().await;
    app.ollama.set_default(
        "/api/tags",
        Reply { status: 200, chunks: vec!["{\"models\":".into()], chunk_delay: Duration::ZERO, hang: true },
    );
    let mut request = tonic::Request::new(pb::ListModelsRequest {});
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = app.agent_client().list_models(request).await.expect_err("deadline passes");
    // The agent's server enforces the `grpc-timeout` the client sent through the gateway; without it
    // the call would wait for the agent's own 10 s Ollama limit.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    assert!(app.ollama.wait_for_disconnect(Duration::from_secs(5)).await, "the request to Ollama was not closed");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_call_all_the_way_to_ollama() {
    let app = spawn_app().await;
    app.ollama.set_default("/api/tags", Reply { status: 200, chunks: vec![], chunk_delay: Duration::ZERO, hang: true });
    let mut client = app.agent_client();
    let call = client.list_models(pb::ListModelsRequest {});
    // Give the call time to reach Ollama, then abandon it as a client that quits would.
    let abandoned = tokio::time::timeout(Duration::from_millis(300), call).await;
    assert!(abandoned.is_err(), "the call should still be waiting on Ollama");
    assert!(app.ollama.wait_for_disconnect(Duration::from_secs(5)).await, "the request to Ollama was not closed");
}

async fn insert_task(app: &prfix_tests::TestApp, owner: &str, state: pb::TaskState) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let result = pb::TaskResult {
        result: Some(pb::task_result::Result::Describe(pb::DescribeResult {
            title: "Fix the off-by-one".into(),
            ..Default::default()
        })),
    };
    let request = pb::CreateDescribeRequest {
        change_set: Some(pb::ChangeSet { diff: STORED_DIFF.to_owned(), ..Default::default() }),
        options: None,
    };
    let pg = app.db.connect().await;
    pg.execute(
        "INSERT INTO agent.tasks (task_id, kind, state, owner, request, result) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &(pb::TaskKind::Describe as i16),
            &(state as i16),
            &owner,
            &request.encode_to_vec(),
            &result.encode_to_vec(),
        ],
    )
    .await
    .expect("insert task");
    id
}

#[tokio::test]
async fn tasks_stored_in_postgres_are_read_through_the_gateway() {
    let app = spawn_app().await;
    let id = insert_task(&app, "alice", pb::TaskState::Succeeded).await;
    let task = app
        .agent_client()
        .get_task(pb::GetTaskRequest { task_id: id.to_string() })
        .await
        .expect("get")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!(task.task_id, id.to_string());
    assert_eq!(task.state, pb::TaskState::Succeeded as i32);
    assert_eq!(task.owner, "alice");
    assert_eq!(task.diff, STORED_DIFF, "GetTask carries the change set's diff");
    match task.result.and_then(|r| r.result) {
        Some(pb::task_result::Result::Describe(d)) => assert_eq!(d.title, "Fix the off-by-one"),
        other => panic!("unexpected result {other:?}"),
    }
}

#[tokio::test]
async fn list_tasks_pages_newest_first_and_filters() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    // Ended states only: a queued task of these (whose request is empty) would be claimed by the
    // agent's worker and fail while the test lists, making the filter's answer a race.
    for i in 0..5 {
        let state = if i == 2 { pb::TaskState::Failed } else { pb::TaskState::Succeeded };
        ids.push(insert_task(&app, if i % 2 == 0 { "alice" } else { "bob" }, state).await);
    }
    let mut client = app.agent_client();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_tasks(pb::ListTasksRequest { page_size: 2, page_token: token.clone(), ..Default::default() })
            .await
            .expect("page")
            .into_inner();
        assert!(page.tasks.iter().all(|t| t.diff.is_empty()), "lists leave the diff out");
        seen.extend(page.tasks.into_iter().map(|t| t.task_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let newest_first: Vec<_> = ids.iter().rev().map(ToString::to_string).collect();
    assert_eq!(seen, newest_first);

    let failed = client
        .list_tasks(pb::ListTasksRequest { state: pb::TaskState::Failed as i32, ..Default::default() })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(failed.tasks.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>(), [ids[2].to_string()]);
    let bobs = client
        .list_tasks(pb::ListTasksRequest { owner: "bob".into(), ..Default::default() })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(bobs.tasks.len(), 2);
}

#[tokio::test]
async fn a_missing_task_is_not_found_and_a_malformed_id_is_named() {
    let app = spawn_app().await;
    let mut client = app.agent_client();
    let missing = uuid::Uuid::new_v4();
    let status = client.get_task(pb::GetTaskRequest { task_id: missing.to_string() }).await.expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&missing.to_string()));
    let status = client.get_task(pb::GetTaskRequest { task_id: "42".into() }).await.expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("task_id"), "{}", status.message());
}
