//! `prfix review` in a real checkout against the services and the fake Ollama.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app};
use support::{User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";

/// `main` with a working module, and a branch `feature` that adds an SQL injection.
fn repo_with_a_bug() -> Repo {
    let repo = Repo::init();
    repo.write(
        "app/db.py",
        "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n",
    );
    repo.write("README.md", "# demo\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "app/db.py",
        "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n",
    );
    repo.commit("find users by name");
    repo
}

const FINDINGS: &str = r#"Here is the review:
```json
{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))"},
  {"path": "app/db.py", "line": 40, "severity": "minor", "category": "style", "title": "Missing docstring", "body": "find_user has no docstring."}
]}
```"#;

fn diff_lines(repo: &Repo) -> BTreeMap<String, BTreeSet<u32>> {
    let diff = repo.git(&["diff", "main"]);
    prfix_engine::diff::parse(&diff)
        .expect("diff parses")
        .iter()
        .map(|f| (f.path().to_owned(), f.new_lines_in_diff().into_iter().collect()))
        .collect()
}

#[tokio::test]
async fn review_prints_findings_on_the_right_lines_in_every_format() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS));
    let repo = repo_with_a_bug();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));

    // The terminal view: each finding at its place, with the code line.
    let run = user.run(repo.path(), &["review"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("app/db.py:6"), "{}", run.stdout);
    assert!(run.stdout.contains("SQL injection"), "{}", run.stdout);
    assert!(
        run.stdout.contains("query = \"SELECT * FROM users WHERE name = '\""),
        "code lines are shown:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains('\x1b') && run.stderr.is_empty(),
        "no colour and no spinner on a pipe: {:?}",
        run.stderr
    );
    let lines = diff_lines(&repo);

    // JSON: both findings, the one off the diff moved onto it.
    let run = user.run(repo.path(), &["review", "--format", "json"]).await;
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    let findings = json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 2);
    for f in findings {
        let line = f["line"].as_u64().expect("line") as u32;
        assert!(lines["app/db.py"].contains(&line), "{f}");
    }
    assert_eq!(findings[0]["severity"], "critical");

    // SARIF 2.1.0 with the finding's region.
    let run = user.run(repo.path(), &["review", "--format", "sarif"]).await;
    let sarif: serde_json::Value = serde_json::from_str(&run.stdout).expect("SARIF output");
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["locations"][0]["physicalLocation"]["region"]["startLine"], 6);
    assert_eq!(result["level"], "error");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sarif-schema-2.1.0.json"))
            .expect("the vendored SARIF schema"),
    )
    .expect("schema parses");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&sarif).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "SARIF does not validate: {errors:?}");

    // GitHub review comments: each on a line the diff contains.
    let run = user.run(repo.path(), &["review", "--format", "github"]).await;
    let review: serde_json::Value = serde_json::from_str(&run.stdout).expect("GitHub review JSON");
    let comments = review["comments"].as_array().expect("comments");
    assert_eq!(comments.len(), 2);
    for c in comments {
        let path = c["path"].as_str().expect("path");
        for key in ["line", "start_line"] {
            if let Some(line) = c[key].as_u64() {
                assert!(lines[path].contains(&(line as u32)), "{key} {line} of {path} is not in the diff: {c}");
            }
        }
        assert_eq!(c["side"], "RIGHT");
    }

    // Markdown for a PR comment.
    let run = user.run(repo.path(), &["review", "--format", "markdown"]).await;
    assert!(run.stdout.contains("SQL injection") && run.stdout.contains("`app/db.py:6"), "{}", run.stdout);
}

#[tokio::test]
async fn fail_on_sets_the_exit_code_for_ci() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS));
    let repo = repo_with_a_bug();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let run = user.run(repo.path(), &["review", "--format", "json", "--fail-on", "major"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim(), "prfix: 1 finding(s) at or above major (--fail-on major)");
    let run = user.run(repo.path(), &["review", "--format", "json", "--fail-on", "none"]).await;
    assert_eq!(run.code, 0);
    // The repository's own setting counts as of the base: a change cannot loosen its own review.
    repo.write(".prfix.toml", "[review]\nfail_on = \"none\"\n");
    let run = user.run(repo.path(), &["review", "--format", "json", "--fail-on", "major"]).await;
    assert_eq!(run.code, 1, "the flag wins: {}", run.stderr);
    repo.git(&["checkout", "-q", "main"]);
    repo.write(".prfix.toml", "[review]\nfail_on = \"minor\"\n");
    repo.commit("review settings");
    repo.git(&["checkout", "-q", "feature"]);
    repo.git(&["merge", "-q", "--no-edit", "main"]);
    repo.write(".prfix.toml", "[review]\nfail_on = \"none\"\nignore = [\"**\"]\n");
    let run = user.run(repo.path(), &["review", "--format", "json"]).await;
    assert_eq!(run.code, 1, "main's settings hold, the branch's do not: {}", run.stderr);
    assert!(run.stderr.contains("using .prfix.toml as of main"), "{}", run.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.stdout).expect("JSON")["findings"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn describe_prints_a_title_and_a_line_per_file() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default(
        "/api/chat",
        Reply::chat(r#"{"title": "Find users by name", "summary": "Adds find_user.", "walkthrough": [{"path": "app/db.py", "summary": "Adds find_user()."}], "labels": ["feature"]}"#),
    );
    let repo = repo_with_a_bug();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let run = user.run(repo.path(), &["describe"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("Find users by name\n\nAdds find_user."), "{}", run.stdout);
    assert!(run.stdout.contains("app/db.py: Adds find_user()."), "{}", run.stdout);
}
