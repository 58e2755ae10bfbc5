//! Reviews of pull requests of real size: a branch of 86 changed files (one over 2,000 lines) and
//! over +9,000 −3,400 lines, made with real git, reviewed with the default settings against a
//! scripted model that reports an 8,192- and a 32,768-token context. Every review must succeed,
//! with findings from every part, a describe must succeed too, and no prompt the model receives
//! may exceed its context.

use std::collections::BTreeSet;
use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::pr_fixture::{self, LARGE_MODULE};
use prfix_tests::{Reply, TestApp, spawn_app_configured};

const MODEL: &str = "qwen2.5-coder:14b";

/// The fake model's tokenizer: the engine's estimate of every message and the schema, as the
/// agent measures a prompt (so a learned ratio stays 1.0 and the context check is exact).
fn counted_tokens(request: &serde_json::Value) -> usize {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let texts: Vec<String> = messages.iter().map(|m| m["content"].as_str().unwrap_or_default().to_owned()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let format = request.get("format").filter(|f| !f.is_null());
    prfix_engine::tokens::Estimator::default().prompt_tokens(&refs, format)
}

/// The first added line of each file the part shows, as `(path, new line number)`: the fence's
/// label says `diff of <path>`, and added lines read `<number> + text`.
fn added_lines_of_part(user_prompt: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut path: Option<String> = None;
    let mut taken = false;
    for line in user_prompt.lines() {
        if let Some(rest) = line.strip_prefix("<<<DATA ") {
            path = rest.split_once(" diff of ").map(|(_, p)| p.trim_end_matches(">>>").to_owned());
            taken = false;
            continue;
        }
        if line.starts_with("<<<END DATA") {
            path = None;
            continue;
        }
        let Some(current) = &path else { continue };
        if taken {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some((number, text)) = trimmed.split_once(' ')
            && text.starts_with("+ ")
            && let Ok(n) = number.parse::<u32>()
        {
            out.push((current.clone(), n));
            taken = true;
        }
    }
    out
}

/// Answers each review part with one finding per file it shows, on that file's first added line,
/// and counts prompt tokens the way [`counted_tokens`] does.
fn script_reviewer(app: &TestApp) {
    app.ollama.respond_with("/api/chat", |body| {
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        let user = request["messages"].as_array()?.iter().rev().find(|m| m["role"] == "user")?["content"].as_str()?;
        let findings: Vec<serde_json::Value> = added_lines_of_part(user)
            .into_iter()
            .map(|(path, line)| {
                serde_json::json!({"path": path, "line": line, "severity": "minor", "category": "maintainability",
                    "title": format!("Check {path}:{line}"), "body": "The new code repeats the lookup."})
            })
            .collect();
        let mut reply = Reply::chat(&serde_json::json!({ "findings": findings }).to_string());
        if let Some(last) = reply.chunks.last_mut()
            && let Ok(mut done) = serde_json::from_str::<serde_json::Value>(last)
        {
            done["prompt_eval_count"] = serde_json::json!(counted_tokens(&request));
            *last = format!("{done}\n");
        }
        Some(reply)
    })
}

async fn review_at_context(context: u32) {
    let branch = pr_fixture::refactoring_branch();
    let all = branch.numstat(None);
    let large = branch.numstat(Some(LARGE_MODULE));
    assert!(
        all.files >= 80 && all.added >= 9_027 && all.removed >= 3_488,
        "the fixture is smaller than claimed: {all:?}"
    );
    assert!(large.added >= 563 && large.removed >= 259, "{LARGE_MODULE} changes less than claimed: {large:?}");
    assert!(branch.lines_of(LARGE_MODULE) >= 2_000, "{LARGE_MODULE} is under 2,000 lines");
    let change_set = branch.repo.change_set(&branch.base);

    // Default settings, except that the test keeps every finding to see each part's.
    let app = spawn_app_configured(|_| {}, |agent| agent.agent.max_findings = 100_000).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(context);
    script_reviewer(&app);

    let task = prfix_tests::tasks::review(&mut app.agent_client(), change_set.clone(), Duration::from_secs(300)).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "context {context}: {}", task.error);
    let Some(pb::task_result::Result::Review(result)) = task.result.and_then(|r| r.result) else {
        panic!("context {context}: no review result");
    };
    assert!(result.failed_parts.is_empty(), "context {context}: failed parts {:?}", result.failed_parts);

    // No prompt exceeded the context, and each asked for no more than fits.
    let requests = app.ollama.chat_requests();
    assert_eq!(requests.len(), result.chunks as usize, "one call per part, no retries");
    for request in &requests {
        let prompt = counted_tokens(request);
        let answer = request["options"]["num_predict"].as_u64().unwrap_or(0) as usize;
        let num_ctx = request["options"]["num_ctx"].as_u64().unwrap_or(0) as usize;
        assert!(prompt + answer <= context as usize, "context {context}: prompt {prompt} + answer {answer} tokens");
        assert!(prompt + answer <= num_ctx && num_ctx <= context as usize, "num_ctx {num_ctx}, prompt {prompt}");
    }

    // Every part's findings came through, anchored on lines of the diff.
    let mut asked: BTreeSet<(String, u32)> = BTreeSet::new();
    for request in &requests {
        let user = request["messages"][1]["content"].as_str().unwrap_or_default();
        asked.extend(added_lines_of_part(user));
    }
    let found: BTreeSet<(String, u32)> = result.findings.iter().map(|f| (f.path.clone(), f.line as u32)).collect();
    assert!(asked.is_subset(&found), "context {context}: findings missing: {:?}", asked.difference(&found).take(5));
    let diff_lines: std::collections::BTreeMap<String, BTreeSet<u32>> = prfix_engine::diff::parse(&change_set.diff)
        .expect("git's diff parses")
        .iter()
        .map(|f| (f.path().to_owned(), f.new_lines_in_diff().into_iter().collect()))
        .collect();
    for f in &result.findings {
        assert!(diff_lines[&f.path].contains(&(f.line as u32)), "{}:{} is not a diff line", f.path, f.line);
    }
    let reviewed: BTreeSet<&str> = result.findings.iter().map(|f| f.path.as_str()).collect();
    assert!(reviewed.contains(LARGE_MODULE), "the large module got no findings");
    assert!(reviewed.len() >= 80, "findings in only {} files", reviewed.len());
    eprintln!(
        "context {context}: {} files, +{} -{}, {} parts, {} findings",
        all.files,
        all.added,
        all.removed,
        result.chunks,
        result.findings.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_size_branch_is_reviewed_whole_at_an_8192_token_context() {
    review_at_context(8_192).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_size_branch_is_reviewed_whole_at_a_32768_token_context() {
    review_at_context(32_768).await;
}

async fn describe_at_context(context: u32) {
    let branch = pr_fixture::refactoring_branch();
    let change_set = branch.repo.change_set(&branch.base);
    let app = spawn_app_configured(|_| {}, |_| {}).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(context);
    app.ollama.set_default(
        "/api/chat",
        Reply::chat(r#"{"title": "Refactor the shop", "summary": "Rewrites functions.", "walkthrough": [], "labels": ["refactor"]}"#),
    );
    let task = app
        .agent_client()
        .create_describe(pb::CreateDescribeRequest { change_set: Some(change_set), options: None })
        .await
        .expect("describe created")
        .into_inner()
        .task
        .expect("task");
    let task = prfix_tests::tasks::wait_for_end(&mut app.agent_client(), &task.task_id, Duration::from_secs(120)).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "context {context}: {}", task.error);
    let requests = app.ollama.chat_requests();
    assert!(!requests.is_empty());
    for request in &requests {
        let prompt = counted_tokens(request);
        let answer = request["options"]["num_predict"].as_u64().unwrap_or(0) as usize;
        assert!(prompt + answer <= context as usize, "context {context}: prompt {prompt} + answer {answer} tokens");
        // The diff shows only the first files; the list after it names the others.
        let user = request["messages"][1]["content"].as_str().unwrap_or_default();
        assert!(user.contains("the files of the change") && user.contains(LARGE_MODULE), "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_size_branch_is_described_at_an_8192_token_context() {
    describe_at_context(8_192).await;
}
