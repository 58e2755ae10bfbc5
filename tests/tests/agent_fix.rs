//! Fixes through the gateway against the fake Ollama: a plan, edits that need a retry, and a patch
//! that `git apply` accepts on a real checkout.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::git::Repo;
use prfix_tests::{Reply, TestApp, spawn_app};

const MODEL: &str = "qwen2.5-coder:14b";

const STATS_BASE: &str = "\
def mean(values):
    if not values:
        return 0
    total = 0
    for v in values:
        total += v
    return total / len(values)


def spread(values):
    return max(values) - min(values)
";

/// A checkout whose last commit broke `mean`.
fn broken_checkout() -> (Repo, pb::ChangeSet) {
    let repo = Repo::init();
    repo.write("calc/stats.py", STATS_BASE);
    repo.write(
        "tests/test_stats.py",
        "from calc.stats import mean\n\n\ndef test_mean():\n    assert mean([2, 4]) == 3\n",
    );
    repo.commit("base");
    repo.write("calc/stats.py", &STATS_BASE.replace("return total / len(values)", "return total / (len(values) - 1)"));
    repo.commit("use the sample size");
    let change_set = repo.change_set("HEAD~1");
    (repo, change_set)
}

async fn fix(app: &TestApp, change_set: pb::ChangeSet, allow_new_files: bool) -> pb::Task {
    let mut client = app.agent_client();
    let created = client
        .create_fix(pb::CreateFixRequest {
            change_set: Some(change_set),
            problem: Some(pb::FixProblem {
                check_command: "pytest -q".into(),
                check_output: "FAILED tests/test_stats.py::test_mean - assert 6.0 == 3".into(),
                ..Default::default()
            }),
            options: Some(pb::FixOptions { allow_new_files, ..Default::default() }),
        })
        .await
        .expect("fix created")
        .into_inner()
        .task
        .expect("task");
    prfix_tests::tasks::wait_for_end(&mut client, &created.task_id, Duration::from_secs(15)).await
}

const PLAN: &str = r#"Plan:
```json
{"root_cause": "mean divides by len(values) - 1", "files": ["calc/stats.py"], "steps": ["divide by len(values)", "return a float for empty input"],}
```"#;

#[tokio::test]
async fn a_fix_whose_first_edits_miss_is_corrected_on_the_retry_and_its_patch_applies_with_git() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (repo, change_set) = broken_checkout();
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    // Attempt 1: the first block has lost its indentation (it still applies, re-indented); the
    // second is a near miss too far from the file to be trusted.
    app.ollama.push(
        "/api/chat",
        Reply::chat(
            "I will fix the division.\n\ncalc/stats.py\n<<<<<<< SEARCH\nif not values:\n    return 0\n=======\nif not values:\n    return 0.0\n>>>>>>> REPLACE\n\ncalc/stats.py\n<<<<<<< SEARCH\n    result = sum / (count(values) - 1)\n=======\n    return total / len(values)\n>>>>>>> REPLACE\n",
        ),
    );
    // Attempt 2: the missing block, with a small typo the fuzzy match accepts.
    app.ollama.push(
        "/api/chat",
        Reply::chat("```python\ncalc/stats.py\n<<<<<<< SEARCH\n    return total / (len(values) -1)\n=======\n    return total / len(values)\n>>>>>>> REPLACE\n```"),
    );
    let task = fix(&app, change_set, false).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    let Some(pb::task_result::Result::Fix(result)) = task.result.and_then(|r| r.result) else {
        panic!("no fix result")
    };
    assert_eq!(result.attempts, 2);
    assert_eq!(result.files.len(), 1);
    assert_eq!(result.files[0].path, "calc/stats.py");
    assert_eq!((result.files[0].additions, result.files[0].deletions), (2, 2));
    assert!(result.explanation.contains("len(values) - 1"), "{}", result.explanation);

    // The retry told the model what applied and showed the closest lines of the file.
    let requests = app.ollama.chat_requests();
    assert_eq!(requests.len(), 3, "plan, attempt 1, attempt 2");
    assert!(requests[0]["format"]["required"].is_array(), "the plan is structured output");
    assert!(requests[1].get("format").is_none_or(serde_json::Value::is_null), "edits are text, not JSON");
    let messages = requests[2]["messages"].as_array().expect("messages");
    let feedback = messages.last().and_then(|m| m["content"].as_str()).expect("feedback");
    assert!(feedback.contains("return total / (len(values) - 1)"), "closest lines are shown: {feedback}");
    assert_eq!(messages[messages.len() - 2]["role"], "assistant");

    let expected = STATS_BASE.replace("        return 0\n", "        return 0.0\n");
    repo.apply(&result.patch).unwrap_or_else(|e| panic!("git apply refused the patch: {e}\n{}", result.patch));
    assert_eq!(repo.read("calc/stats.py"), expected);
    assert!(repo.git(&["status", "--porcelain"]).contains("calc/stats.py"), "only the working tree changed");
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]).trim(), "2", "history untouched");
}

#[tokio::test]
async fn a_fix_never_writes_under_git_nor_creates_files_it_was_not_asked_to() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (_repo, change_set) = broken_checkout();
    let cases = [
        (".git/hooks/pre-commit", "under `.git/`"),
        ("scripts/new_helper.py", "creating files was not asked for"),
        ("../outside.py", "contains `..`"),
    ];
    for (path, expected) in cases {
        app.ollama.push("/api/chat", Reply::chat(PLAN));
        let edit = format!("{path}\n<<<<<<< FILE\nprint('hello')\n>>>>>>> FILE\n");
        app.ollama.push("/api/chat", Reply::chat(&edit));
        let task = fix(&app, change_set.clone(), false).await;
        assert_eq!(task.state, pb::TaskState::Failed as i32, "{path}");
        assert!(task.error.contains(expected), "{path}: {}", task.error);
    }
    // Asked for, a new file is fine.
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    app.ollama.push("/api/chat", Reply::chat("scripts/new_helper.py\n<<<<<<< FILE\nprint('hello')\n>>>>>>> FILE\n"));
    let task = fix(&app, change_set, true).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    let Some(pb::task_result::Result::Fix(result)) = task.result.and_then(|r| r.result) else {
        panic!("no fix result")
    };
    assert!(result.patch.contains("new file mode 100644") && result.patch.contains("+++ b/scripts/new_helper.py"));
    assert_eq!(result.files[0].change, pb::FileChangeKind::Added as i32);
}

#[tokio::test]
async fn a_fix_puts_back_secrets_the_model_only_saw_as_placeholders() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let repo = Repo::init();
    let token = format!("ghp_{}", "Zq8xY3wV".repeat(4)) + "abcd";
    let config = format!("TOKEN = \"{token}\"\nTIMEOUT = 5\n");
    repo.write("app/config.py", &config);
    repo.commit("base");
    repo.write("app/config.py", &config.replace("TIMEOUT = 5", "TIMEOUT = -5"));
    repo.commit("break it");
    let change_set = repo.change_set("HEAD~1");
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    // The model rewrites the whole small file, placeholder included.
    app.ollama.push(
        "/api/chat",
        Reply::chat("app/config.py\n<<<<<<< FILE\nTOKEN = \"PRFIX_REDACTED_1\"\nTIMEOUT = 5\n>>>>>>> FILE\n"),
    );
    let task = fix(&app, change_set, false).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    let Some(pb::task_result::Result::Fix(result)) = task.result.and_then(|r| r.result) else {
        panic!("no fix result")
    };
    repo.apply(&result.patch).expect("the patch applies");
    assert_eq!(repo.read("app/config.py"), config, "the secret line is untouched by the patch");
    assert!(!result.patch.contains("PRFIX_REDACTED"), "{}", result.patch);
    for request in app.ollama.requests() {
        assert!(!request.body.contains(&token), "the token reached the model");
    }
}

#[tokio::test]
async fn a_fix_that_copies_a_secret_from_the_check_output_into_a_file_is_refused() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (_repo, change_set) = broken_checkout();
    let password = "Pr0d-Passw0rd-9x7";
    let mut client = app.agent_client();
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    // The check output's connection string is redacted as PRFIX_REDACTED_1; the model pastes it.
    app.ollama.push(
        "/api/chat",
        Reply::chat("calc/stats.py\n<<<<<<< SEARCH\ndef spread(values):\n=======\nDB = \"PRFIX_REDACTED_1\"\n\n\ndef spread(values):\n>>>>>>> REPLACE\n"),
    );
    let created = client
        .create_fix(pb::CreateFixRequest {
            change_set: Some(change_set),
            problem: Some(pb::FixProblem {
                check_command: "pytest".into(),
                check_output: format!("E   could not connect to postgres://app:{password}@db:5432/app"),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .expect("created")
        .into_inner()
        .task
        .expect("task");
    let task = prfix_tests::tasks::wait_for_end(&mut client, &created.task_id, Duration::from_secs(15)).await;
    assert_eq!(task.state, pb::TaskState::Failed as i32);
    assert!(task.error.contains("refused") && task.error.contains("PRFIX_REDACTED_1"), "{}", task.error);
    assert!(!task.error.contains(password));
    for request in app.ollama.requests() {
        assert!(!request.body.contains(password), "the password reached the model");
    }
}
