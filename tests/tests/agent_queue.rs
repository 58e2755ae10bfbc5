//! The task queue: replicas sharing it, leases, time limits on model calls, cancellation, watching
//! and who may see what.

use std::time::Duration;

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;
use prfix_tests::auth::{Bearer, operator_token};
use prfix_tests::git::small_change;
use prfix_tests::tasks::wait_for_end;
use prfix_tests::{Reply, TestApp, spawn_app, spawn_app_configured};
use tonic::Code;

const MODEL: &str = "qwen2.5-coder:14b";
const NO_FINDINGS: &str = r#"{"findings": []}"#;

async fn create_review(client: &mut AgentServiceClient<prfix_tests::app::Authed>) -> Result<pb::Task, tonic::Status> {
    client
        .create_review(pb::CreateReviewRequest { change_set: Some(small_change()), options: None })
        .await
        .map(|r| r.into_inner().task.expect("task"))
}

async fn get(client: &mut AgentServiceClient<prfix_tests::app::Authed>, id: &str) -> pb::Task {
    client
        .get_task(pb::GetTaskRequest { task_id: id.to_owned() })
        .await
        .expect("get task")
        .into_inner()
        .task
        .expect("task")
}

async fn events(app: &TestApp, id: &str) -> Vec<pb::TaskEvent> {
    prfix_tests::tasks::events(&mut app.agent_client(), id).await
}

fn state_changes(events: &[pb::TaskEvent]) -> Vec<pb::StateChange> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(pb::task_event::Payload::StateChange(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

async fn wait_for_chat_requests(app: &TestApp, n: usize) {
    for _ in 0..200 {
        if app.ollama.chat_requests().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the model was not called {n} times");
}

#[tokio::test]
async fn two_replicas_share_the_queue_and_no_task_is_worked_twice() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.workers = 2).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(NO_FINDINGS).with_delay(Duration::from_millis(40)));
    let _second = app.spawn_agent(|a| a.agent.workers = 2).await;
    let mut client = app.agent_client();
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(create_review(&mut client).await.expect("created").task_id);
    }
    let mut workers = std::collections::BTreeSet::new();
    for id in &ids {
        let task = wait_for_end(&mut client, id, Duration::from_secs(20)).await;
        assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
        assert_eq!(task.attempts, 1, "claimed once");
        let changes = state_changes(&events(&app, id).await);
        let claims: Vec<_> = changes.iter().filter(|c| c.to == pb::TaskState::Running as i32).collect();
        assert_eq!(claims.len(), 1, "{changes:?}");
        // "claimed by <host>:<port>:<replica>/<claim>": the replica part.
        let replica = claims[0].reason.rsplit(':').next().and_then(|r| r.split('/').next()).unwrap_or_default();
        workers.insert(replica.to_owned());
    }
    assert_eq!(app.ollama.chat_requests().len(), ids.len(), "one model call per task: none ran twice");
    assert_eq!(workers.len(), 2, "both replicas took tasks: {workers:?}");
}

#[tokio::test]
async fn a_task_of_a_killed_replica_is_finished_by_another_after_its_lease_runs_out() {
    let lease = |a: &mut prfix_agent::Settings| {
        a.agent.lease_ms = 1_500;
        a.agent.workers = 1;
    };
    let mut app = spawn_app_configured(|_| {}, lease).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.push("/api/chat", Reply::chat_hanging(&["{\"findings\": ["]));
    app.ollama.set_default("/api/chat", Reply::chat(NO_FINDINGS));
    let task = create_review(&mut app.agent_client()).await.expect("created");
    wait_for_chat_requests(&app, 1).await;
    let second = app.spawn_agent(lease).await;
    app.agent.kill().await;
    // The gateway forwards to the killed replica: ask the survivor directly.
    let channel = prfix_tests::app::channel_to(second.addr);
    let mut survivor = AgentServiceClient::with_interceptor(channel, Bearer::new(&operator_token()));
    let started = tokio::time::Instant::now();
    let ended = wait_for_end(&mut survivor, &task.task_id, Duration::from_secs(15)).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{}", ended.error);
    assert_eq!(ended.attempts, 2);
    assert!(started.elapsed() >= Duration::from_millis(500), "taken over only once the lease ran out");
    assert_eq!(app.ollama.chat_requests().len(), 2);
    let mut stream = survivor
        .watch_task(pb::WatchTaskRequest { task_id: task.task_id.clone(), after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    let mut reasons = Vec::new();
    while let Some(item) = stream.next().await {
        if let Some(pb::task_event::Payload::StateChange(c)) = item.expect("event").event.and_then(|e| e.payload) {
            reasons.push(c.reason);
        }
    }
    assert!(reasons.iter().any(|r| r.contains("ran out; resumed by")), "{reasons:?}");
}

async fn failing_task(app: &TestApp, reply: Reply) -> pb::Task {
    app.ollama.push("/api/chat", reply);
    let mut client = app.agent_client();
    let task = create_review(&mut client).await.expect("created");
    wait_for_end(&mut client, &task.task_id, Duration::from_secs(15)).await
}

#[tokio::test]
async fn a_model_that_hangs_is_cut_off_by_each_time_limit_with_its_own_error() {
    let app = spawn_app_configured(
        |_| {},
        |a| {
            a.agent.ollama_first_token_timeout_ms = 400;
            a.agent.ollama_token_gap_timeout_ms = 300;
            a.agent.ollama_call_timeout_ms = 5_000;
        },
    )
    .await;
    app.ollama.set_models(&[MODEL]);
    let silent = failing_task(&app, Reply::chat_hanging(&[])).await;
    assert_eq!(silent.state, pb::TaskState::Failed as i32);
    assert!(silent.error.contains("no token within 400 ms") && silent.error.contains(MODEL), "{}", silent.error);
    let stalled = failing_task(&app, Reply::chat_hanging(&["{\"find"])).await;
    assert!(stalled.error.contains("silent for 300 ms"), "{}", stalled.error);
    let slow: Vec<String> = (0..100)
        .map(|i| format!("{}\n", serde_json::json!({"message": {"content": format!("{i} ")}, "done": false})))
        .collect();
    let endless = Reply { status: 200, chunks: slow, chunk_delay: Duration::from_millis(100), hang: false };
    let app2 = spawn_app_configured(|_| {}, |a| a.agent.ollama_call_timeout_ms = 800).await;
    app2.ollama.set_models(&[MODEL]);
    let long = failing_task(&app2, endless).await;
    assert!(long.error.contains("did not finish within 800 ms"), "{}", long.error);
    // Each failed call is an event with its error.
    let calls: Vec<_> = events(&app, &silent.task_id)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(pb::task_event::Payload::ModelCall(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].error.contains("first-token"), "{:?}", calls[0]);
}

#[tokio::test]
async fn a_model_that_is_not_pulled_is_refused_with_the_pull_command() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.model_allowlist = vec!["llama3.1:70b".to_owned()]).await;
    app.ollama.set_models(&["something-else:7b"]);
    let status = app
        .agent_client()
        .create_review(pb::CreateReviewRequest {
            change_set: Some(small_change()),
            options: Some(pb::ReviewOptions { model: "llama3.1:70b".to_owned(), ..Default::default() }),
        })
        .await
        .expect_err("not pulled");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("ollama pull llama3.1:70b"), "{}", status.message());
    let status = app
        .agent_client()
        .create_review(pb::CreateReviewRequest {
            change_set: Some(small_change()),
            options: Some(pb::ReviewOptions { model: "unlisted:1b".to_owned(), ..Default::default() }),
        })
        .await
        .expect_err("not allowed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("unlisted:1b") && status.message().contains("allowed"), "{}", status.message());
    // Pulled on the endpoint list but deleted since: Ollama's own 404 says the same.
    app.ollama.set_models(&[MODEL]);
    let failed =
        failing_task(&app, Reply::error(404, &format!("model \"{MODEL}\" not found, try pulling it first"))).await;
    assert_eq!(failed.state, pb::TaskState::Failed as i32);
    assert!(failed.error.contains(&format!("ollama pull {MODEL}")), "{}", failed.error);
}

#[tokio::test]
async fn cancelling_a_running_task_closes_the_request_to_ollama_and_ends_the_watch() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.push("/api/chat", Reply::chat_hanging(&["{"]));
    let mut client = app.agent_client();
    let task = create_review(&mut client).await.expect("created");
    let mut watch = client
        .watch_task(pb::WatchTaskRequest { task_id: task.task_id.clone(), after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    wait_for_chat_requests(&app, 1).await;
    let cancelled = client
        .cancel_task(pb::CancelTaskRequest { task_id: task.task_id.clone() })
        .await
        .expect("cancelled")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(cancelled.state, pb::TaskState::Cancelled as i32);
    assert!(app.ollama.wait_for_disconnect(Duration::from_secs(5)).await, "the request to Ollama was not closed");
    let mut last = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("the watch ends") {
        last = item.expect("event").event;
    }
    match last.and_then(|e| e.payload) {
        Some(pb::task_event::Payload::StateChange(c)) => assert_eq!(c.to, pb::TaskState::Cancelled as i32),
        other => panic!("the watch should end on the cancellation: {other:?}"),
    }
    let again = client.cancel_task(pb::CancelTaskRequest { task_id: task.task_id.clone() }).await.expect_err("ended");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("already ended"), "{}", again.message());
    // The worker does not overwrite the cancellation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&mut client, &task.task_id).await.state, pb::TaskState::Cancelled as i32);
}

#[tokio::test]
async fn a_late_watcher_sees_every_event_from_the_start_and_a_live_one_sees_them_as_they_happen() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.push(
        "/api/chat",
        Reply::chat(r#"{"findings": [{"path": "src/lib.rs", "line": 2, "severity": "major", "title": "Wrong value", "body": "2 is not one"}]}"#)
            .with_delay(Duration::from_millis(300)),
    );
    let mut client = app.agent_client();
    let task = create_review(&mut client).await.expect("created");
    let mut live = client
        .watch_task(pb::WatchTaskRequest { task_id: task.task_id.clone(), after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    let first = live.next().await.expect("an event").expect("ok").event.expect("event");
    let first_seen = tokio::time::Instant::now();
    assert_eq!(first.sequence, 1);
    let state_then = get(&mut client, &task.task_id).await.state;
    assert!(state_then < pb::TaskState::Succeeded as i32, "the first event arrives while the task still runs");
    let mut live_events = vec![first];
    while let Some(item) = live.next().await {
        live_events.push(item.expect("event").event.expect("event"));
    }
    // The model's answer takes four 300 ms chunks: the stream spans it rather than arriving at the end.
    assert!(first_seen.elapsed() >= Duration::from_millis(900), "events came all at once");
    let late = events(&app, &task.task_id).await;
    assert_eq!(late, live_events);
    let sequences: Vec<i64> = late.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=late.len() as i64).collect::<Vec<_>>(), "no gaps");
    let kinds: Vec<&str> = late
        .iter()
        .map(|e| match &e.payload {
            Some(pb::task_event::Payload::StateChange(_)) => "state",
            Some(pb::task_event::Payload::ModelCall(_)) => "model_call",
            Some(pb::task_event::Payload::Finding(_)) => "finding",
            Some(pb::task_event::Payload::Progress(_)) => "progress",
            _ => "other",
        })
        .filter(|k| *k != "progress")
        .collect();
    assert_eq!(kinds, ["state", "state", "model_call", "finding", "state"]);
    let call = late.iter().find_map(|e| match &e.payload {
        Some(pb::task_event::Payload::ModelCall(c)) => Some(c.clone()),
        _ => None,
    });
    let call = call.expect("a model call");
    assert_eq!((call.model.as_str(), call.prompt_tokens), (MODEL, 321));
    assert!(call.output_tokens > 0 && call.duration_ms >= 300, "{call:?}");
    // Resuming after a sequence replays only what follows.
    let mut resumed = client
        .watch_task(pb::WatchTaskRequest { task_id: task.task_id.clone(), after_sequence: 3 })
        .await
        .expect("watch")
        .into_inner();
    let next = resumed.next().await.expect("event").expect("ok").event.expect("event");
    assert_eq!(next.sequence, 4);
}

#[tokio::test]
async fn developers_see_and_cancel_only_their_own_tasks_and_their_active_tasks_are_limited() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.max_active_tasks_per_user = 1).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat_hanging(&[]));
    let alice = app.user_token("alice", &[prfix_auth::Role::Developer]).await;
    let bob = app.user_token("bob", &[prfix_auth::Role::Developer]).await;
    let mut alice_client = app.agent_client_as(&alice);
    let mut bob_client = app.agent_client_as(&bob);
    let task = create_review(&mut alice_client).await.expect("alice creates");
    assert_eq!(task.owner, "alice");
    let limited = create_review(&mut alice_client).await.expect_err("one active task per user");
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert!(limited.message().contains("most allowed per user (1)"), "{}", limited.message());
    create_review(&mut bob_client).await.expect("bob has his own allowance");

    let hidden = bob_client.get_task(pb::GetTaskRequest { task_id: task.task_id.clone() }).await.expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    let refused =
        bob_client.cancel_task(pb::CancelTaskRequest { task_id: task.task_id.clone() }).await.expect_err("no");
    assert_eq!(refused.code(), Code::NotFound);
    let watch = bob_client.watch_task(pb::WatchTaskRequest { task_id: task.task_id.clone(), after_sequence: 0 }).await;
    assert_eq!(watch.expect_err("hidden").code(), Code::NotFound);
    let listed = bob_client.list_tasks(pb::ListTasksRequest::default()).await.expect("list").into_inner();
    assert!(listed.tasks.iter().all(|t| t.owner == "bob"), "{:?}", listed.tasks);
    let other = bob_client
        .list_tasks(pb::ListTasksRequest { owner: "alice".into(), ..Default::default() })
        .await
        .expect_err("not his");
    assert_eq!(other.code(), Code::PermissionDenied);
    let all = app.agent_client().list_tasks(pb::ListTasksRequest::default()).await.expect("admin lists").into_inner();
    assert_eq!(all.tasks.len(), 2, "admins see every task");
    alice_client.cancel_task(pb::CancelTaskRequest { task_id: task.task_id.clone() }).await.expect("own task");
    create_review(&mut alice_client).await.expect("a slot is free again");
}

#[tokio::test]
async fn a_bad_change_set_is_refused_with_the_field_and_the_limit_and_nothing_is_queued() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.limits.max_diff_bytes = 2_000).await;
    app.ollama.set_models(&[MODEL]);
    let mut client = app.agent_client();
    let big = pb::ChangeSet { diff: small_change().diff.repeat(40), ..Default::default() };
    let cases = [
        (pb::ChangeSet::default(), "change_set.diff is empty"),
        (big, "over the limit of 2000 bytes"),
        (
            pb::ChangeSet { diff: "@@ -1 +1 @@\n-a\n+b\n".into(), ..Default::default() },
            "change_set.diff is not a unified diff",
        ),
        (
            pb::ChangeSet {
                diff: small_change().diff,
                files: vec![pb::ChangedFile { path: "../etc/passwd".into(), ..Default::default() }],
                ..Default::default()
            },
            "change_set.files[0].path",
        ),
    ];
    for (change_set, expected) in cases {
        let status = client
            .create_review(pb::CreateReviewRequest { change_set: Some(change_set), options: None })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains(expected), "{expected}: {}", status.message());
    }
    let listed = client.list_tasks(pb::ListTasksRequest::default()).await.expect("list").into_inner();
    assert!(listed.tasks.is_empty());
}

#[tokio::test]
async fn calls_go_to_the_least_busy_healthy_endpoint_that_has_the_model() {
    let busy = prfix_tests::FakeOllama::start().await;
    let idle = prfix_tests::FakeOllama::start().await;
    let down = prfix_tests::FakeOllama::start().await;
    for fake in [&busy, &idle, &down] {
        fake.set_models(&[MODEL]);
    }
    down.stop();
    let urls = format!("{},{},{}", down.url(), busy.url(), idle.url());
    let app = spawn_app_configured(
        |_| {},
        move |a| {
            a.common.ollama_url = urls;
            a.agent.workers = 2;
            a.agent.ollama_health_interval_ms = 100;
        },
    )
    .await;
    busy.set_default("/api/chat", Reply::chat_hanging(&[]));
    idle.set_default("/api/chat", Reply::chat(NO_FINDINGS));
    let mut client = app.agent_client();
    // The first task occupies one endpoint with a call that never ends...
    let first = create_review(&mut client).await.expect("created");
    for _ in 0..200 {
        if busy.chat_requests().len() + idle.chat_requests().len() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Ties go to the first endpoint listed that has the model: `busy` (the one down is skipped).
    assert_eq!(busy.chat_requests().len(), 1, "the first call goes to the first healthy endpoint");
    // ...so the next ones go to the other, never to the endpoint that is down.
    for _ in 0..3 {
        let task = create_review(&mut client).await.expect("created");
        let ended = wait_for_end(&mut client, &task.task_id, Duration::from_secs(10)).await;
        assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{}", ended.error);
    }
    assert_eq!((busy.chat_requests().len(), idle.chat_requests().len()), (1, 3));
    assert!(down.chat_requests().is_empty());
    client.cancel_task(pb::CancelTaskRequest { task_id: first.task_id }).await.ok();
}

#[tokio::test]
async fn a_replica_that_stops_gracefully_hands_its_task_back_at_once() {
    let long_lease = |a: &mut prfix_agent::Settings| {
        a.agent.lease_ms = 60_000;
        a.agent.workers = 1;
    };
    let mut app = spawn_app_configured(|_| {}, long_lease).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.push("/api/chat", Reply::chat_hanging(&[]));
    app.ollama.set_default("/api/chat", Reply::chat(NO_FINDINGS));
    let task = create_review(&mut app.agent_client()).await.expect("created");
    wait_for_chat_requests(&app, 1).await;
    let second = app.spawn_agent(long_lease).await;
    app.agent.stop().await;
    let channel = prfix_tests::app::channel_to(second.addr);
    let mut survivor = AgentServiceClient::with_interceptor(channel, Bearer::new(&operator_token()));
    // Well inside the 60 s lease: the task was handed back, not left to expire.
    let ended = wait_for_end(&mut survivor, &task.task_id, Duration::from_secs(10)).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{}", ended.error);
    assert_eq!(ended.attempts, 1, "a handed-back claim does not count as a failed attempt");
}

#[tokio::test]
async fn a_task_stops_at_its_limit_of_model_calls() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.max_model_calls_per_task = 1).await;
    app.ollama.set_models(&[MODEL]);
    // An unusable description asks for a second call, which the limit refuses. (A review's limit
    // is at least what its parts need, with the setting as its floor: agent_review.rs.)
    app.ollama.push("/api/chat", Reply::chat("I cannot describe this."));
    let mut client = app.agent_client();
    let task = client
        .create_describe(pb::CreateDescribeRequest { change_set: Some(small_change()), options: None })
        .await
        .expect("created")
        .into_inner()
        .task
        .expect("task");
    let failed = wait_for_end(&mut client, &task.task_id, Duration::from_secs(15)).await;
    assert_eq!(failed.state, pb::TaskState::Failed as i32);
    assert!(failed.error.contains("limit of 1 model calls"), "{}", failed.error);
    assert_eq!(app.ollama.chat_requests().len(), 1);
}

#[tokio::test]
async fn an_unstreamed_answer_is_read_whole_when_streaming_is_off() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.ollama_stream = false).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.push(
        "/api/chat",
        Reply::json(serde_json::json!({"message": {"role": "assistant", "content": NO_FINDINGS}, "done": true,
            "prompt_eval_count": 10, "eval_count": 3})),
    );
    let mut client = app.agent_client();
    let task = create_review(&mut client).await.expect("created");
    let ended = wait_for_end(&mut client, &task.task_id, Duration::from_secs(10)).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{}", ended.error);
    assert_eq!(app.ollama.chat_requests()[0]["stream"], false);
}

#[tokio::test]
async fn a_watch_that_resumes_at_or_past_the_end_of_a_finished_task_ends_at_once() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(NO_FINDINGS));
    let mut client = app.agent_client();
    let task = create_review(&mut client).await.expect("created");
    wait_for_end(&mut client, &task.task_id, Duration::from_secs(10)).await;
    let last = events(&app, &task.task_id).await.last().map(|e| e.sequence).expect("events");
    for after in [last, last + 100] {
        let mut stream = client
            .watch_task(pb::WatchTaskRequest { task_id: task.task_id.clone(), after_sequence: after })
            .await
            .expect("watch")
            .into_inner();
        let next = tokio::time::timeout(Duration::from_secs(3), stream.next()).await.expect("the stream ends at once");
        assert!(next.is_none(), "after {after}: {next:?}");
    }
}
