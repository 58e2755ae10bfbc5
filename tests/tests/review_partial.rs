//! A review one of whose parts never gets a usable answer: the task succeeds with the findings of
//! the other parts and reports the failed part with its reason, in its result and in the events
//! WatchTask streams; the retry quotes only a short excerpt of the bad answer.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app_configured};

const MODEL: &str = "qwen2.5-coder:14b";

/// Five new modules of `lines` lines each, over a base commit.
fn five_modules(lines: usize) -> (Repo, pb::ChangeSet) {
    let repo = Repo::init();
    repo.write("README.md", "base\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    for i in 0..5 {
        let body: String = (0..lines).map(|l| format!("    let value_{l} = compute_{i}(input, {l});\n")).collect();
        repo.write(&format!("src/m{i}.rs"), &format!("fn f{i}(input: u64) {{\n{body}}}\n"));
    }
    repo.commit("five modules");
    let change_set = repo.change_set(&base);
    (repo, change_set)
}

/// The files a part's prompt shows (`diff of <path>` in each fence's label).
fn shown_paths(prompt: &str) -> Vec<String> {
    (0..5).map(|i| format!("src/m{i}.rs")).filter(|p| prompt.contains(&format!("diff of {p}>>>"))).collect()
}

#[tokio::test]
async fn a_part_whose_answers_stay_garbage_fails_alone_and_the_review_succeeds_with_the_other_parts() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.review_chunk_concurrency = 2).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(4096);
    let garbage = "I am sorry, I cannot review this part. ".repeat(500);
    let bad_answer = garbage.clone();
    app.ollama.respond_with("/api/chat", move |body| {
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        let prompt = request["messages"][1]["content"].as_str()?;
        let paths = shown_paths(prompt);
        if paths.iter().any(|p| p == "src/m2.rs") {
            return Some(Reply::chat(&bad_answer));
        }
        let findings: Vec<_> = paths
            .iter()
            .map(|p| serde_json::json!({"path": p, "line": 2, "severity": "minor", "title": format!("Check {p}"), "body": "unused"}))
            .collect();
        Some(Reply::chat(&serde_json::json!({ "findings": findings }).to_string()))
    });
    let (_repo, change_set) = five_modules(40);
    let mut client = app.agent_client();
    let task = prfix_tests::tasks::review(&mut client, change_set, Duration::from_secs(30)).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    let Some(pb::task_result::Result::Review(result)) = task.result.and_then(|r| r.result) else {
        panic!("no review result")
    };
    assert_eq!(result.chunks, 5, "one module per part");
    let paths: std::collections::BTreeSet<_> = result.findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["src/m0.rs", "src/m1.rs", "src/m3.rs", "src/m4.rs"].into_iter().collect());
    assert_eq!(result.failed_parts.len(), 1, "{:?}", result.failed_parts);
    let failed = &result.failed_parts[0];
    assert_eq!((failed.total, failed.paths.as_slice()), (5, ["src/m2.rs".to_owned()].as_slice()));
    assert!((1..=5).contains(&failed.part));
    assert!(failed.reason.contains("no usable answer after a retry"), "{}", failed.reason);

    // WatchTask streams the same failed part, and a finding event for each finding.
    let events = prfix_tests::tasks::events(&mut client, &task.task_id).await;
    let streamed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(pb::task_event::Payload::FailedPart(p)) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, result.failed_parts);
    let finding_events =
        events.iter().filter(|e| matches!(e.payload, Some(pb::task_event::Payload::Finding(_)))).count();
    assert_eq!(finding_events, 4);

    // Five asks and one retry; the retry says what was wrong and quotes only the answer's start.
    let requests = app.ollama.chat_requests();
    assert_eq!(requests.len(), 6);
    let retry = requests.iter().find(|r| r["messages"].as_array().is_some_and(|m| m.len() == 3)).expect("a retry");
    let messages = retry["messages"].as_array().expect("messages");
    assert!(messages.iter().all(|m| m["role"] != "assistant"), "the bad answer is not echoed back");
    let note = messages[2]["content"].as_str().expect("a note");
    assert!(note.len() < 1_500 && garbage.len() > 15_000, "{note}");
    // The garbage repeats itself, so the stream was stopped early and the note says so.
    assert!(note.contains("could not be used") && note.contains("repeated the same text"), "{note}");
    assert!(app.ollama.violations().is_empty(), "{:?}", app.ollama.violations());
}
