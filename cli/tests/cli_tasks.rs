//! Following, interrupting and showing tasks again: `prfix tasks show` renders a stored review with
//! no model call, Ctrl-C cancels the task on the server, and a wait longer than the access token's
//! lifetime stays signed in.

mod support;

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app, spawn_app_with};
use support::{User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";

const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))\n"}
]}"#;

/// `main` with a module, and a branch `feature` that adds an SQL injection to it.
fn repo_with_a_bug() -> Repo {
    let repo = Repo::init();
    repo.write("app/db.py", "def get_user(conn, user_id):\n    return conn.execute(\"SELECT 1\", (user_id,))\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "app/db.py",
        "def get_user(conn, user_id):\n    return conn.execute(\"SELECT 1\", (user_id,))\n\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n",
    );
    repo.commit("find users by name");
    repo
}

fn sarif_violations(log: &serde_json::Value) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sarif-schema-2.1.0.json"))
        .expect("the vendored SARIF schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    let validator =
        jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&schema).expect("the schema compiles");
    validator.iter_errors(log).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

#[tokio::test]
async fn tasks_show_renders_a_finished_review_from_its_prefix_with_no_model_call_and_valid_sarif() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS));
    let repo = repo_with_a_bug();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));

    let run = user.run(repo.path(), &["review", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reviewed: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let task_id = reviewed["task_id"].as_str().expect("a task id").to_owned();
    let calls = app.ollama.chat_requests().len();
    assert!(calls > 0, "the review asked the model");

    let run = user.run(repo.path(), &["tasks", "show", &task_id[..8], "--format", "sarif"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log: serde_json::Value = serde_json::from_str(&run.stdout).expect("SARIF is JSON");
    let errors = sarif_violations(&log);
    assert!(errors.is_empty(), "the SARIF does not validate: {errors:#?}");
    assert_eq!(log["runs"][0]["properties"]["taskId"], task_id.as_str());
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["locations"][0]["physicalLocation"]["region"], serde_json::json!({"startLine": 6, "endLine": 7}));

    // The newest task, as JSON: the same document the review printed.
    let run = user.run(repo.path(), &["tasks", "show", "--last", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(shown, reviewed);

    // The GitHub review keeps the server's anchors, the suggestion on its two lines.
    let run = user.run(repo.path(), &["tasks", "show", &task_id.to_uppercase()[..6], "--format", "github"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let github: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        (github["comments"][0]["start_line"].as_u64(), github["comments"][0]["line"].as_u64()),
        (Some(6), Some(7))
    );
    assert!(github["comments"][0]["body"].as_str().is_some_and(|b| b.contains("```suggestion\n")), "{github}");

    assert_eq!(app.ollama.chat_requests().len(), calls, "showing a stored review asks no model");

    // A prefix no task has, and one too short, are clear errors.
    let unknown = if task_id.starts_with("ffff") { "eeee" } else { "ffff" };
    let run = user.run(repo.path(), &["tasks", "show", unknown]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.trim(),
        format!("prfix: no task of yours starts with `{unknown}` (`prfix tasks list` shows them)")
    );
    let run = user.run(repo.path(), &["tasks", "cancel", &task_id[..3]]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("too short: give at least 4 characters"), "{}", run.stderr);
}

/// Waits until the agent runs a task and returns it.
async fn running_task(app: &prfix_tests::TestApp, token: &str) -> pb::Task {
    for _ in 0..200 {
        let tasks = app
            .agent_client_as(token)
            .list_tasks(pb::ListTasksRequest { page_size: 10, ..Default::default() })
            .await
            .expect("tasks list")
            .into_inner()
            .tasks;
        if let Some(task) = tasks.into_iter().find(|t| t.state == pb::TaskState::Running as i32) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no task started running");
}

#[tokio::test]
async fn ctrl_c_on_review_cancels_the_task_on_the_server_and_prints_its_id() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat_hanging(&["{\"findings\": ["]));
    let repo = repo_with_a_bug();
    let token = prfix_tests::auth::operator_token();
    let user = User::new(&gateway_url(&app), Some(&token));

    let child = user.spawn(repo.path(), &["review"]);
    let task = running_task(&app, &token).await;
    let pid = child.id().expect("prfix runs").to_string();
    let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("prfix leaves after Ctrl-C")
        .expect("prfix ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains(&format!("task {} is cancelled", task.task_id)), "{stderr}");

    let task = app
        .agent_client_as(&token)
        .get_task(pb::GetTaskRequest { task_id: task.task_id.clone() })
        .await
        .expect("the task")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!(task.state, pb::TaskState::Cancelled as i32, "{task:?}");
}

#[tokio::test]
async fn a_review_that_outlasts_the_access_token_finishes_without_logging_in_again() {
    let app = spawn_app_with(|s| s.gateway.access_token_ttl_secs = 20).await;
    app.ollama.set_models(&[MODEL]);
    // Four chunks, 7 s before each: the answer ends about 28 s after the call starts.
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS).with_delay(Duration::from_secs(7)));
    app.user_token("alice", &[prfix_auth::Role::Developer]).await;
    let repo = repo_with_a_bug();
    let user = User::new(&gateway_url(&app), None);
    let run =
        user.run_with_stdin(repo.path(), &["login", "-u", "alice", "--password-stdin"], "alice-password-123\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = user.config_dir().join("credentials.toml");
    let before = std::fs::read_to_string(&file).expect("saved credentials");

    let started = std::time::Instant::now();
    let run = user.run(repo.path(), &["review", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(started.elapsed() > Duration::from_secs(20), "the wait outlasted the token: {:?}", started.elapsed());
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(1), "{json}");
    assert!(!run.stderr.contains("login"), "{}", run.stderr);
    assert_ne!(std::fs::read_to_string(&file).expect("credentials"), before, "the renewed tokens are saved");
}
