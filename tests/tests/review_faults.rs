//! Model faults that heal: a busy Ollama, a stream broken off, an endpoint whose runner keeps
//! dying, an answer that runs on in whitespace, and parts queued behind each other on an endpoint
//! that serves one chat at a time. Every review succeeds.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::git::Repo;
use prfix_tests::{FakeOllama, Reply, TestApp, spawn_app_configured};

const MODEL: &str = "qwen2.5-coder:14b";

const ONE_FINDING: &str = r#"{"findings": [{"path": "src/lib.rs", "line": 2, "severity": "major", "title": "Division by zero", "body": "b may be 0."}]}"#;

/// A one-file change whose line 2 is added.
fn small_change() -> pb::ChangeSet {
    let repo = Repo::init();
    repo.write("src/lib.rs", "pub fn div(a: u32, b: u32) -> u32 {\n    a\n}\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    repo.write("src/lib.rs", "pub fn div(a: u32, b: u32) -> u32 {\n    a / b\n}\n");
    repo.commit("divide");
    repo.change_set(&base)
}

async fn review(app: &TestApp, change_set: pb::ChangeSet) -> pb::Task {
    prfix_tests::tasks::review(&mut app.agent_client(), change_set, Duration::from_secs(30)).await
}

fn result_of(task: &pb::Task) -> pb::ReviewResult {
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    match task.result.as_ref().and_then(|r| r.result.clone()) {
        Some(pb::task_result::Result::Review(r)) => r,
        other => panic!("no review result: {other:?}"),
    }
}

async fn model_calls(app: &TestApp, task: &pb::Task) -> Vec<pb::ModelCall> {
    prfix_tests::tasks::events(&mut app.agent_client(), &task.task_id)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(pb::task_event::Payload::ModelCall(c)) => Some(c),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_model_that_answers_busy_twice_then_well_gives_a_successful_review() {
    let app = spawn_app_configured(|_| {}, |_| {}).await;
    app.ollama.set_models(&[MODEL]);
    let busy = "server busy, please try again.  maximum pending requests exceeded";
    app.ollama.push("/api/chat", Reply::error(503, busy));
    app.ollama.push("/api/chat", Reply::error(503, busy));
    app.ollama.push("/api/chat", Reply::chat(ONE_FINDING));
    let task = review(&app, small_change()).await;
    assert_eq!(result_of(&task).findings.len(), 1);
    assert_eq!(app.ollama.chat_requests().len(), 3);
    let calls = model_calls(&app, &task).await;
    let errors: Vec<&str> = calls.iter().map(|c| c.error.as_str()).collect();
    assert!(errors[0].contains("503") && errors[1].contains("503") && errors[2].is_empty(), "{errors:?}");
    assert!(calls[2].purpose.contains("retry 2"), "{:?}", calls[2].purpose);
}

#[tokio::test]
async fn a_stream_that_resets_once_is_retried_and_the_review_succeeds() {
    let app = spawn_app_configured(|_| {}, |_| {}).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.push_broken("/api/chat", Reply::chat(ONE_FINDING), 2);
    app.ollama.push("/api/chat", Reply::chat(ONE_FINDING));
    let task = review(&app, small_change()).await;
    assert_eq!(result_of(&task).findings.len(), 1);
    let calls = model_calls(&app, &task).await;
    assert_eq!(calls.len(), 2);
    assert!(calls[0].error.contains("broke off the answer"), "{}", calls[0].error);
    let broken = app.ollama.streams().into_iter().find(|s| s.path == "/api/chat").expect("a chat stream");
    assert!(broken.sent == 2 && broken.chunks > 2, "{broken:?}");
}

#[tokio::test]
async fn with_two_endpoints_of_which_one_always_fails_every_review_succeeds_on_the_other() {
    let dying = FakeOllama::start().await;
    let healthy = FakeOllama::start().await;
    for fake in [&dying, &healthy] {
        fake.set_models(&[MODEL]);
    }
    dying.set_default("/api/chat", Reply::error(500, "llama runner process has terminated: signal: killed"));
    healthy.set_default("/api/chat", Reply::chat(ONE_FINDING));
    // The failing endpoint is listed first, so it wins ties.
    let urls = format!("{},{}", dying.url(), healthy.url());
    let app = spawn_app_configured(|_| {}, move |a| a.common.ollama_url = urls).await;
    for _ in 0..4 {
        let task = review(&app, small_change()).await;
        assert_eq!(result_of(&task).findings.len(), 1);
    }
    assert_eq!(healthy.chat_requests().len(), 4);
    // After its first failure the dying endpoint comes after the healthy one.
    assert_eq!(dying.chat_requests().len(), 1);
}

#[tokio::test]
async fn an_answer_that_runs_on_in_whitespace_is_stopped_early_and_its_part_retried() {
    let app = spawn_app_configured(|_| {}, |_| {}).await;
    app.ollama.set_models(&[MODEL]);
    let running_on =
        Reply::chat_running_on("{\"findings\": [", "          \n", 2_000).with_delay(Duration::from_millis(1));
    let chunks = running_on.chunks.len();
    app.ollama.push("/api/chat", running_on);
    app.ollama.push("/api/chat", Reply::chat(ONE_FINDING));
    let task = review(&app, small_change()).await;
    assert_eq!(result_of(&task).findings.len(), 1);
    let calls = model_calls(&app, &task).await;
    assert!(calls[0].error.contains("ran on in whitespace"), "{}", calls[0].error);
    // The agent hung up long before the model would have finished.
    let streams = app.ollama.streams();
    let stopped = streams.iter().find(|s| s.chunks == chunks).expect("the whitespace stream");
    assert!(stopped.client_left && stopped.sent < chunks / 2, "{stopped:?}");
    // The retry varies the sampling with real Ollama options and says what went wrong.
    let requests = app.ollama.chat_requests();
    assert_eq!(requests.len(), 2);
    let (first, retry) = (&requests[0]["options"], &requests[1]["options"]);
    assert_ne!(first["seed"], retry["seed"]);
    assert!(first.get("repeat_penalty").is_none() && retry["repeat_penalty"].as_f64().is_some_and(|p| p > 1.0));
    let note = requests[1]["messages"][2]["content"].as_str().expect("a retry note");
    assert!(note.contains("ran on in whitespace") && note.len() < 1_500, "{note}");
    assert!(app.ollama.violations().is_empty(), "{:?}", app.ollama.violations());
}

#[tokio::test]
async fn parts_queued_behind_each_other_do_not_spend_their_first_token_limit() {
    let app = spawn_app_configured(
        |_| {},
        |a| {
            a.agent.review_chunk_concurrency = 3;
            a.agent.ollama_parallel = 1;
            a.agent.ollama_first_token_timeout_ms = 700;
        },
    )
    .await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(4096);
    // Ollama serves one chat at a time; each answer takes 4 × 150 ms, its first token 150 ms.
    app.ollama.set_parallel(1);
    app.ollama.respond_with("/api/chat", |body| {
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        let prompt = request["messages"][1]["content"].as_str()?;
        let path = (0..3).map(|i| format!("src/m{i}.rs")).find(|p| prompt.contains(&format!("diff of {p}>>>")))?;
        let answer = serde_json::json!({"findings": [{"path": path, "line": 2, "severity": "minor", "title": "Check", "body": "unused"}]});
        Some(Reply::chat(&answer.to_string()).with_delay(Duration::from_millis(150)))
    });
    let repo = Repo::init();
    repo.write("README.md", "base\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    for i in 0..3 {
        let body: String = (0..40).map(|l| format!("    let value_{l} = compute_{i}(input, {l});\n")).collect();
        repo.write(&format!("src/m{i}.rs"), &format!("fn f{i}(input: u64) {{\n{body}}}\n"));
    }
    repo.commit("three modules");
    let task = review(&app, repo.change_set(&base)).await;
    let result = result_of(&task);
    assert_eq!((result.chunks, result.findings.len()), (3, 3), "{:?}", result.failed_parts);
    assert!(result.failed_parts.is_empty());
    // The other parts together (2 × 600 ms) outlast the first-token limit: they waited in the agent.
    assert_eq!(app.ollama.most_concurrent_chats(), 1);
}
