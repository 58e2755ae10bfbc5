//! Reviews and describes through the gateway against the fake Ollama: findings anchored to lines
//! of the diff whatever shape the model's answer takes, chunking, and what reaches the model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::git::Repo;
use prfix_tests::{Reply, TestApp, spawn_app, spawn_app_configured};

const MODEL: &str = "qwen2.5-coder:14b";

/// A repository whose branch adds three files' worth of changes over a base commit.
fn multi_file_change() -> (Repo, pb::ChangeSet) {
    let repo = Repo::init();
    repo.write("app/orders.py", &(1..=30).map(|i| format!("def f{i}(x):\n    return x + {i}\n")).collect::<String>());
    repo.write("src/lib.rs", "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n");
    repo.write("Cargo.lock", "# lock\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let mut orders = repo.read("app/orders.py");
    orders = orders.replace("def f10(x):\n    return x + 10\n", "def f10(x):\n    total = x / 0\n    return total\n");
    orders.push_str("def charge(card, amount):\n    query = \"SELECT * FROM cards WHERE id = \" + card\n    return db.execute(query)\n");
    repo.write("app/orders.py", &orders);
    repo.write("src/lib.rs", "pub fn add(a: u32, b: u32) -> u32 {\n    a.wrapping_add(b)\n}\n\npub fn div(a: u32, b: u32) -> u32 {\n    a / b\n}\n");
    repo.write("src/new_module.rs", "pub fn parse(s: &str) -> i64 {\n    s.parse().unwrap()\n}\n");
    repo.write("Cargo.lock", "# lock\nversion = 4\n");
    repo.commit("change");
    let change_set = repo.change_set(&base);
    (repo, change_set)
}

/// The new-side lines each file of the diff shows.
fn diff_lines(diff: &str) -> BTreeMap<String, BTreeSet<u32>> {
    prfix_engine::diff::parse(diff)
        .expect("git's diff parses")
        .iter()
        .map(|f| (f.path().to_owned(), f.new_lines_in_diff().into_iter().collect()))
        .collect()
}

async fn wait_for_end(app: &TestApp, task_id: &str) -> pb::Task {
    prfix_tests::tasks::wait_for_end(&mut app.agent_client(), task_id, Duration::from_secs(15)).await
}

async fn review(app: &TestApp, change_set: pb::ChangeSet) -> pb::Task {
    let created = app
        .agent_client()
        .create_review(pb::CreateReviewRequest { change_set: Some(change_set), options: None })
        .await
        .expect("review created")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(created.state, pb::TaskState::Queued as i32);
    wait_for_end(app, &created.task_id).await
}

fn findings_of(task: &pb::Task) -> pb::ReviewResult {
    match task.result.as_ref().and_then(|r| r.result.clone()) {
        Some(pb::task_result::Result::Review(r)) => r,
        other => panic!("task {} has no review result: {other:?} (error: {})", task.task_id, task.error),
    }
}

#[tokio::test]
async fn review_findings_are_anchored_to_diff_lines_whatever_shape_the_models_answer_takes() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (_repo, change_set) = multi_file_change();
    let lines = diff_lines(&change_set.diff);
    let orders_sql_line = 63; // `query = ...` in the new app/orders.py
    assert!(lines["app/orders.py"].contains(&orders_sql_line), "{lines:?}");

    let good = format!(
        r#"{{"findings": [
          {{"path": "app/orders.py", "line": {orders_sql_line}, "end_line": 64, "severity": "critical", "category": "security",
            "title": "SQL injection", "body": "card is concatenated into SQL.", "suggestion": "use a parameter"}},
          {{"path": "src/lib.rs", "line": 6, "severity": "major", "category": "bug", "title": "Division by zero", "body": "b may be 0."}}
        ]}}"#
    );
    let cases: Vec<(&str, String, usize)> = vec![
        ("prose around the JSON", format!("Sure! Here is my review:\n{good}\nLet me know if you need more."), 2),
        ("fenced JSON with a trailing comma", format!("```json\n{}\n```", good.replace("\"b may be 0.\"}", "\"b may be 0.\",}"),), 2),
        ("a truncated array", good[..good.find("\"Division by zero\"").expect("marker")].to_owned(), 1),
        (
            "wrong line numbers",
            r#"{"findings": [{"path": "app/orders.py", "line": 2000, "severity": "major", "title": "Unsafe division", "body": "x / 0"},
                             {"path": "./src/lib.rs", "line": 500, "end_line": 900, "severity": "minor", "title": "Overflow", "body": "wrapping hides overflow"}]}"#
                .to_owned(),
            2,
        ),
        (
            "a file that is not in the diff",
            r#"{"findings": [{"path": "src/elsewhere.rs", "line": 3, "severity": "major", "title": "Ghost", "body": "not in the diff"},
                             {"path": "new_module.rs", "line": 2, "severity": "major", "title": "Panics on bad input", "body": "unwrap"}]}"#
                .to_owned(),
            1,
        ),
    ];
    for (case, answer, expected) in cases {
        app.ollama.push("/api/chat", Reply::chat(&answer));
        let task = review(&app, change_set.clone()).await;
        assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{case}: {}", task.error);
        let result = findings_of(&task);
        assert_eq!(result.findings.len(), expected, "{case}: {:?}", result.findings);
        for f in &result.findings {
            let shown = lines.get(&f.path).unwrap_or_else(|| panic!("{case}: {} is not in the diff", f.path));
            for line in f.line..=f.end_line {
                assert!(shown.contains(&(line as u32)), "{case}: {}:{line} is not a line of the diff", f.path);
            }
        }
        // Most severe first.
        assert!(result.findings.windows(2).all(|w| w[0].severity >= w[1].severity), "{case}");
        match case {
            "wrong line numbers" => {
                assert_eq!(result.reanchored_findings, 2, "{case}");
                assert!(result.findings.iter().any(|f| f.path == "src/lib.rs"), "a ./ prefix is understood");
            }
            "a file that is not in the diff" => {
                assert_eq!(result.dropped_findings, 1, "{case}");
                assert_eq!(result.findings[0].path, "src/new_module.rs", "a unique suffix is matched");
            }
            _ => assert_eq!((result.reanchored_findings, result.dropped_findings), (0, 0), "{case}"),
        }
    }
    // The lock file never reached the model; every call set num_ctx and a JSON schema.
    for body in app.ollama.chat_requests() {
        let prompt = body["messages"][1]["content"].as_str().expect("a user message");
        assert!(!prompt.contains("Cargo.lock"), "lock files are not reviewed");
        assert!(prompt.contains("app/orders.py") && prompt.contains("src/new_module.rs"));
        assert!(body["options"]["num_ctx"].as_u64().is_some_and(|n| n >= 2048), "{body}");
        assert_eq!(body["format"]["required"][0], "findings");
        assert_eq!(body["stream"], true);
    }
}

#[tokio::test]
async fn a_large_review_is_split_into_chunks_that_run_concurrently_and_all_report() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.review_chunk_concurrency = 3).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(4096);
    let repo = Repo::init();
    repo.write("README.md", "base\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    for i in 0..6 {
        let body: String =
            (0..60).map(|l| format!("    let value_{l} = compute_something_{i}(input, {l});\n")).collect();
        repo.write(&format!("src/m{i}.rs"), &format!("fn f{i}(input: u64) {{\n{body}}}\n"));
    }
    repo.commit("six modules");
    let change_set = repo.change_set(&base);
    // Each part gets a finding on the first file it shows, at line 2.
    app.ollama.respond_with("/api/chat", |body| {
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        let prompt = request["messages"][1]["content"].as_str()?.to_owned();
        let path = (0..6).map(|i| format!("src/m{i}.rs")).find(|p| prompt.contains(&format!("diff of {p}")))?;
        let answer = serde_json::json!({"findings": [{"path": path, "line": 2, "severity": "minor", "title": format!("Check {path}"), "body": "unused"}]});
        Some(Reply::chat(&answer.to_string()).with_delay(Duration::from_millis(30)))
    });
    let task = review(&app, change_set).await;
    let result = findings_of(&task);
    assert!(result.chunks >= 3, "chunks: {}", result.chunks);
    assert_eq!(app.ollama.chat_requests().len(), result.chunks as usize);
    // A file split over two parts gets the same finding twice: it is reported once.
    let paths: std::collections::BTreeSet<_> = result.findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!((paths.len(), result.findings.len()), (6, 6), "{:?}", result.findings);
    for body in app.ollama.chat_requests() {
        assert!(body["options"]["num_ctx"].as_u64().is_some_and(|n| n <= 4096), "num_ctx fits the model: {body}");
    }
}

#[tokio::test]
async fn no_secret_of_the_corpus_reaches_the_model_and_the_redactions_are_counted() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let corpus = prfix_engine::redact::samples::secret_corpus();
    let repo = Repo::init();
    repo.write("config/settings.py", "DEBUG = False\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let content: String = corpus.iter().map(|(_, line, _)| format!("{line}\n")).collect();
    repo.write("config/settings.py", &format!("DEBUG = False\n{content}"));
    repo.commit("add settings");
    let change_set = repo.change_set(&base);

    app.ollama.push("/api/chat", Reply::chat(r#"{"findings": [{"path": "config/settings.py", "line": 2, "severity": "critical", "title": "Secret in code", "body": "PRFIX_REDACTED_1 is committed"}]}"#));
    let task = review(&app, change_set.clone()).await;
    let result = findings_of(&task);
    assert!(result.redactions as usize >= corpus.len(), "redactions {} of {}", result.redactions, corpus.len());
    // The user gets their own text back where the model quoted a placeholder.
    assert!(!result.findings[0].body.contains("PRFIX_REDACTED_"), "{}", result.findings[0].body);

    app.ollama.push(
        "/api/chat",
        Reply::chat(
            r#"{"title": "Add settings", "summary": "Adds settings.", "walkthrough": [], "labels": ["config"]}"#,
        ),
    );
    let created = app
        .agent_client()
        .create_describe(pb::CreateDescribeRequest { change_set: Some(change_set.clone()), options: None })
        .await
        .expect("describe created")
        .into_inner()
        .task
        .expect("task");
    let task = wait_for_end(&app, &created.task_id).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);

    // The count of redactions is in the audit record of each task's end.
    let client = app.db.connect().await;
    let rows = client.query("SELECT payload FROM agent.audit_outbox ORDER BY id", &[]).await.expect("outbox");
    let ends: Vec<_> = rows
        .iter()
        .map(|r| {
            let bytes: Vec<u8> = r.get(0);
            <prfix_proto::audit::v1::AuditEvent as prfix_proto::prost::Message>::decode(bytes.as_slice())
                .expect("decodes")
        })
        .filter(|e| e.action == "agent.task.succeeded")
        .collect();
    assert_eq!(ends.len(), 2);
    for end in &ends {
        let redactions = &end.metadata.as_ref().expect("metadata").fields["redactions"];
        assert_eq!(redactions.kind, Some(prost_types::value::Kind::NumberValue(f64::from(result.redactions))));
    }

    let requests = app.ollama.requests();
    assert!(requests.iter().filter(|r| r.path == "/api/chat").count() >= 2);
    for request in &requests {
        for (rule, _, secret) in &corpus {
            assert!(!request.body.contains(secret.as_str()), "a {rule} secret reached the model: {}", request.path);
        }
    }
}

#[tokio::test]
async fn a_describe_gives_a_title_summary_and_a_walkthrough_line_for_every_file() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (_repo, change_set) = multi_file_change();
    app.ollama.push(
        "/api/chat",
        Reply::chat(
            "```json\n{\"title\": \"Add charging and division\", \"summary\": \"Adds a charge function.\", \"walkthrough\": [{\"path\": \"app/orders.py\", \"summary\": \"Adds charge().\"}], \"labels\": [\"Feature\", \"feature\", \"needs review!\"]}\n```",
        ),
    );
    let created = app
        .agent_client()
        .create_describe(pb::CreateDescribeRequest { change_set: Some(change_set), options: None })
        .await
        .expect("describe created")
        .into_inner()
        .task
        .expect("task");
    let task = wait_for_end(&app, &created.task_id).await;
    let Some(pb::task_result::Result::Describe(d)) = task.result.and_then(|r| r.result) else {
        panic!("no describe result: {}", task.error)
    };
    assert_eq!(d.title, "Add charging and division");
    let paths: Vec<&str> = d.walkthrough.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["Cargo.lock", "app/orders.py", "src/lib.rs", "src/new_module.rs"]);
    assert_eq!(d.walkthrough[1].summary, "Adds charge().");
    assert!(d.walkthrough[2].summary.contains("added"), "files the model skipped get their counts");
    assert_eq!(d.labels, ["feature", "needs-review"]);
}

#[tokio::test]
async fn a_model_whose_tokenizer_is_denser_than_the_estimate_teaches_its_ratio_and_the_next_review_fits() {
    const CONTEXT: usize = 8192;
    let app = spawn_app_configured(|_| {}, |a| a.agent.review_chunk_concurrency = 1).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(CONTEXT as u32);
    // The model counts 1.6 tokens for each token of the agent's estimate.
    app.ollama.set_prompt_token_ratio(1.6);
    app.ollama.respond_with("/api/chat", |body| {
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        let prompt = request["messages"][1]["content"].as_str()?.to_owned();
        let path = (0..8).map(|i| format!("src/m{i}.rs")).find(|p| prompt.contains(&format!("diff of {p}>>>")))?;
        let answer = serde_json::json!({"findings": [{"path": path, "line": 2, "severity": "minor", "title": format!("Check {path}"), "body": "unused"}]});
        Some(Reply::chat(&answer.to_string()))
    });
    let repo = Repo::init();
    repo.write("README.md", "base\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    for i in 0..8 {
        let body: String =
            (0..120).map(|l| format!("    let value_{l} = compute_something_{i}(input, {l});\n")).collect();
        repo.write(&format!("src/m{i}.rs"), &format!("fn f{i}(input: u64) {{\n{body}}}\n"));
    }
    repo.commit("eight modules");
    let change_set = repo.change_set(&base);
    let overflows = |bodies: &[serde_json::Value]| {
        bodies
            .iter()
            .filter(|body| {
                let predict = body["options"]["num_predict"].as_u64().unwrap_or(0) as usize;
                app.ollama.counted_prompt_tokens(body) + predict > CONTEXT
            })
            .count()
    };

    // The first review is sized by the plain estimate: its first answer teaches the ratio.
    let first = review(&app, change_set.clone()).await;
    assert_eq!(first.state, pb::TaskState::Succeeded as i32, "{}", first.error);
    let asked_first = app.ollama.chat_requests();
    assert!(overflows(&asked_first) >= 1, "the plain estimate overflows this model's context");

    // The second is sized with the learned ratio: every prompt and its answer fit the context.
    let second = review(&app, change_set).await;
    let result = findings_of(&second);
    assert!(result.failed_parts.is_empty(), "{:?}", result.failed_parts);
    assert_eq!(result.findings.len(), 8);
    let asked_second = app.ollama.chat_requests().split_off(asked_first.len());
    assert_eq!(asked_second.len(), result.chunks as usize);
    assert_eq!(overflows(&asked_second), 0);
    for body in &asked_second {
        let predict = body["options"]["num_predict"].as_u64().unwrap_or(0) as usize;
        let num_ctx = body["options"]["num_ctx"].as_u64().unwrap_or(0) as usize;
        assert!(app.ollama.counted_prompt_tokens(body) + predict <= num_ctx, "num_ctx holds the prompt: {num_ctx}");
    }

    let models = app.agent_client().list_models(pb::ListModelsRequest {}).await.expect("models").into_inner();
    let model = models.models.iter().find(|m| m.name == MODEL).expect("the model is listed");
    assert!((1.6..1.7).contains(&model.token_ratio), "ratio {}", model.token_ratio);
    assert!(model.token_ratio_samples >= 2, "{}", model.token_ratio_samples);
    assert!(app.ollama.violations().is_empty(), "{:?}", app.ollama.violations());
}
