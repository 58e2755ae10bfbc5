//! Streams are counted when they end: a watch the client drops counts as `CANCELLED`, a watch that
//! follows its task to the end as `OK`, and its duration is the whole stream's, not the time to the
//! response headers.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::metrics::{MODEL, one_line_change, sum};
use prfix_tests::{Reply, TestApp, spawn_app};
const WATCH: &str = "/prfix.agent.v1.AgentService/WatchTask";

async fn scrape(app: &TestApp) -> String {
    prfix_tests::metrics::scrape(app.admin.agent).await
}

/// The value of the sample of `name` with these `labels`, or 0.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(text, name, labels).unwrap_or(0.0)
}

async fn review(app: &TestApp) -> String {
    app.agent_client()
        .create_review(pb::CreateReviewRequest { change_set: Some(one_line_change()), options: None })
        .await
        .expect("created")
        .into_inner()
        .task
        .expect("task")
        .task_id
}

async fn eventually(app: &TestApp, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(app).await;
        if check(&text) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dropped_watch_counts_as_cancelled_and_a_finished_one_as_ok_with_its_whole_duration() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let agent = |code: &'static str| [("service", "agent"), ("method", WATCH), ("code", code)];

    // A watch the client drops while the model is still answering.
    app.ollama.set_default("/api/chat", Reply::chat_hanging(&["{"]));
    let hanging = review(&app).await;
    let mut stream = app
        .agent_client()
        .watch_task(pb::WatchTaskRequest { task_id: hanging.clone(), after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    stream.message().await.expect("an event").expect("the first event");
    assert_eq!(sample(&scrape(&app).await, "prfix_requests_total", &agent("OK")), 0.0, "the watch is still open");
    drop(stream);
    eventually(&app, "the dropped watch is counted as CANCELLED", |text| {
        sample(text, "prfix_requests_total", &agent("CANCELLED")) == 1.0
    })
    .await;
    app.agent_client().cancel_task(pb::CancelTaskRequest { task_id: hanging }).await.expect("cancel");

    // A watch that follows a task of about half a second to its end.
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#).with_delay(Duration::from_millis(500)));
    let slow = review(&app).await;
    let mut stream = app
        .agent_client()
        .watch_task(pb::WatchTaskRequest { task_id: slow, after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    while stream.message().await.expect("events").is_some() {}
    let text = eventually(&app, "the finished watch is counted as OK", |text| {
        sample(text, "prfix_requests_total", &agent("OK")) == 1.0
    })
    .await;
    let duration = [("service", "agent"), ("method", WATCH)];
    let total = sample(&text, "prfix_request_duration_seconds_sum", &duration);
    assert!(total >= 0.4, "the watches' durations cover the streams, not their headers: {total} s");
}
