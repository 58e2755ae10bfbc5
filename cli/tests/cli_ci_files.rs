//! The CI files prfix ships: `action.yml` (a composite GitHub Action) and the GitLab CI template
//! validate against the schemas check-jsonschema bundles, and the Action's steps, run as GitHub's
//! runner runs them, post a review from a simulated GitHub Actions job.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use prfix_tests::fake_forge::FakeGitHub;
use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app};
use support::gateway_url;

const TOOLS_HINT: &str = "`scripts/test` installs it: python3 -m pip install check-jsonschema==0.39.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the cli crate is inside the workspace").to_path_buf()
}

fn check_jsonschema(schema: &str, file: &str) {
    let output = std::process::Command::new("check-jsonschema")
        .args(["--builtin-schema", schema])
        .arg(root().join(file))
        .output()
        .unwrap_or_else(|e| panic!("cannot run check-jsonschema ({e}); {TOOLS_HINT}"));
    assert!(
        output.status.success(),
        "{file} does not validate against {schema}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_action_and_the_gitlab_template_validate_against_their_schemas() {
    check_jsonschema("vendor.github-actions", "action.yml");
    check_jsonschema("vendor.gitlab-ci", "ci/gitlab/prfix-review.gitlab-ci.yml");
}

#[test]
fn the_scripts_of_the_action_and_the_gitlab_template_pass_shellcheck() {
    let action: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(root().join("action.yml")).expect("action.yml")).expect("YAML");
    let template: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(root().join("ci/gitlab/prfix-review.gitlab-ci.yml")).expect("the template"),
    )
    .expect("YAML");
    let mut scripts: Vec<(String, String)> = action["runs"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            (
                format!("action.yml: {}", step["name"]),
                format!("#!/usr/bin/env bash\n{}", step["run"].as_str().unwrap_or("")),
            )
        })
        .collect();
    let lines: Vec<&str> =
        template[".prfix-review"]["script"].as_array().expect("a script").iter().filter_map(|l| l.as_str()).collect();
    scripts.push(("the GitLab template".to_owned(), format!("#!/bin/sh\n{}", lines.join("\n"))));
    let dir = tempfile::tempdir().expect("a directory");
    for (name, script) in scripts {
        assert!(!script.contains("${{"), "{name}: expressions belong in `env:`, not in the script");
        let file = dir.path().join("script.sh");
        std::fs::write(&file, script).expect("write the script");
        let output = std::process::Command::new("shellcheck").arg(&file).output().unwrap_or_else(|e| {
            panic!("cannot run shellcheck ({e}); `bash .ci/run` installs it (apt-get install shellcheck)")
        });
        assert!(output.status.success(), "{name}:\n{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// `text` with its `${{ ... }}` expressions evaluated from `inputs` and `github`; any other
/// expression fails the test (the runner would need a context this test does not model).
fn evaluate(text: &str, inputs: &BTreeMap<String, String>, github: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("an expression ends") + start;
        let expression = rest[start + 3..end].trim();
        let value = if let Some(name) = expression.strip_prefix("inputs.") {
            inputs.get(name).cloned().unwrap_or_else(|| panic!("the action reads an undeclared input `{name}`"))
        } else if let Some(name) = expression.strip_prefix("github.") {
            github.get(name).cloned().unwrap_or_else(|| panic!("the action reads `github.{name}`, not modelled here"))
        } else {
            panic!("the action uses an expression this test does not model: {expression}")
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_actions_steps_post_a_review_from_a_github_actions_job() {
    let app = spawn_app().await;
    app.ollama.set_models(&["qwen2.5-coder:14b"]);
    app.ollama.set_default(
        "/api/chat",
        Reply::chat(r#"{"findings": [{"path": "app/db.py", "line": 3, "severity": "major", "category": "security", "title": "SQL injection", "body": "name is concatenated."}]}"#),
    );
    let repo = Repo::init();
    repo.write("app/db.py", "def f():\n    pass\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("app/db.py", "def f():\n    pass\nq = \"SELECT \" + name\n");
    repo.commit("query");
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let base = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let github = FakeGitHub::start_github("ghs_actions").await;
    github.add_pull("octo/app", 9, &head, &repo.git(&["diff", "--no-color", &format!("{base}...{head}")]));

    let runner = tempfile::tempdir().expect("a runner directory");
    let event = runner.path().join("event.json");
    let payload = serde_json::json!({"pull_request": {"number": 9, "head": {"sha": head}, "base": {"sha": base}}});
    std::fs::write(&event, payload.to_string()).expect("write the event");
    let github_path = runner.path().join("github_path");
    std::fs::write(&github_path, "").expect("create GITHUB_PATH");
    let prfix_dir = Path::new(env!("CARGO_BIN_EXE_prfix")).parent().expect("the binary's directory").to_path_buf();

    let action: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(root().join("action.yml")).expect("action.yml"))
            .expect("action.yml is YAML");
    assert_eq!(action["runs"]["using"], "composite");
    let given: BTreeMap<&str, String> = [
        ("server-url", gateway_url(&app)),
        ("api-key", prfix_tests::auth::operator_token()),
        ("fail-on", "critical".to_owned()),
    ]
    .into();
    let contexts: BTreeMap<&str, String> =
        [("token", "ghs_actions".to_owned()), ("action_path", root().display().to_string())].into();
    let mut inputs = BTreeMap::new();
    for (name, spec) in action["inputs"].as_object().expect("inputs") {
        let default = evaluate(spec["default"].as_str().unwrap_or(""), &BTreeMap::new(), &contexts);
        let required = spec["required"].as_bool().unwrap_or(false);
        assert!(!required || given.contains_key(name.as_str()), "the required input `{name}` is not given here");
        inputs.insert(name.clone(), given.get(name.as_str()).cloned().unwrap_or(default));
    }

    let home = tempfile::tempdir().expect("a home");
    let mut path = format!("{}:{}", prfix_dir.display(), std::env::var("PATH").unwrap_or_default());
    for step in action["runs"]["steps"].as_array().expect("steps") {
        let script = step["run"].as_str().expect("every step runs a script");
        assert_eq!(step["shell"], "bash");
        let file = runner.path().join("step.sh");
        std::fs::write(&file, evaluate(script, &inputs, &contexts)).expect("write the step");
        // As the runner runs `shell: bash`.
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&file)
            .current_dir(repo.path())
            .env_clear()
            .env("PATH", &path)
            .env("HOME", home.path())
            .env("PRFIX_CONFIG_DIR", home.path().join("config"))
            .env("NO_COLOR", "1")
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_EVENT_PATH", &event)
            .env("GITHUB_REPOSITORY", "octo/app")
            .env("GITHUB_API_URL", github.api_url())
            .env("GITHUB_PATH", &github_path)
            .env("RUNNER_TEMP", runner.path())
            .stdin(Stdio::null());
        for (name, value) in step["env"].as_object().into_iter().flatten() {
            command.env(name, evaluate(value.as_str().unwrap_or(""), &inputs, &contexts));
        }
        let output = command.output().await.expect("bash runs");
        assert!(
            output.status.success(),
            "step `{}` failed:\n{}{}",
            step["name"],
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Later steps see what a step added to GITHUB_PATH.
        for dir in std::fs::read_to_string(&github_path).unwrap_or_default().lines().filter(|l| !l.is_empty()) {
            path = format!("{dir}:{path}");
        }
    }

    assert_eq!(github.violations(), Vec::<String>::new());
    assert_eq!(github.with(|s| s.reviews.len()), 1);
    assert_eq!(github.with(|s| s.comments.len()), 1);
    let runs = github.with(|s| s.check_runs.clone());
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0]["head_sha"].as_str(), runs[0]["conclusion"].as_str()), (Some(head.as_str()), Some("success")));
}
