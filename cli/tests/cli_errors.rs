//! The errors a new user meets: each is one line on standard error and a non-zero exit code, no
//! backtrace. Frozen as snapshots.

mod support;

use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app, spawn_app_configured};
use support::{Run, User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";

fn one_line(run: &Run, app_port: Option<u16>) -> String {
    assert_ne!(run.code, 0, "should fail: {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "one line, got: {}", run.stderr);
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("backtrace"), "{}", run.stderr);
    let _ = app_port;
    let text = format!("exit {}: {}", run.code, run.stderr.trim_end());
    // Ports and temporary paths change from run to run.
    let text =
        regex_lite_replace(&text, "127.0.0.1:", |rest| rest.chars().take_while(char::is_ascii_digit).count(), "<port>");
    regex_lite_replace(&text, "/tmp/", |rest| rest.find([')', ' ', ':']).unwrap_or(rest.len()), "<tmp>")
}

/// Replaces what follows each `marker` (as long as `len` says) with `by`.
fn regex_lite_replace(text: &str, marker: &str, len: impl Fn(&str) -> usize, by: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        let after = &rest[i + marker.len()..];
        let n = len(after);
        if n > 0 {
            out.push_str(by);
        }
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

fn changed_repo() -> Repo {
    let repo = Repo::init();
    repo.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("src/lib.rs", "pub fn one() -> u32 {\n    2\n}\n");
    repo.commit("change");
    repo
}

#[tokio::test]
async fn the_errors_a_new_user_meets_are_one_clear_line() {
    let app = spawn_app().await;
    app.ollama.set_models(&["other-model:7b"]);
    let port = app.gateway.addr.port();
    let repo = changed_repo();
    let token = prfix_tests::auth::operator_token();
    let user = User::new(&gateway_url(&app), Some(&token));

    let unreachable = User::new("http://127.0.0.1:9", Some(&token));
    insta::assert_snapshot!("gateway_unreachable", one_line(&unreachable.run(repo.path(), &["whoami"]).await, None));

    let anonymous = User::new(&gateway_url(&app), None);
    insta::assert_snapshot!("not_logged_in", one_line(&anonymous.run(repo.path(), &["review"]).await, Some(port)));

    let revoked = User::new(&gateway_url(&app), Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
    insta::assert_snapshot!("credentials_refused", one_line(&revoked.run(repo.path(), &["whoami"]).await, Some(port)));

    let outside = tempfile::tempdir().expect("a directory");
    insta::assert_snapshot!("not_a_repository", one_line(&user.run(outside.path(), &["review"]).await, Some(port)));

    insta::assert_snapshot!(
        "base_ref_not_found",
        one_line(&user.run(repo.path(), &["review", "--base", "no-such-branch"]).await, Some(port))
    );

    insta::assert_snapshot!("model_not_pulled", one_line(&user.run(repo.path(), &["review"]).await, Some(port)));

    insta::assert_snapshot!(
        "check_command_not_found",
        one_line(&user.run(repo.path(), &["fix", "--check", "no-such-test-runner --all"]).await, Some(port))
    );

    repo.git(&["checkout", "-q", "main"]);
    repo.write(".prfix.toml", "[review]\nmodle = \"x\"\n");
    repo.commit("settings");
    repo.git(&["checkout", "-q", "feature"]);
    repo.git(&["merge", "-q", "--no-edit", "main"]);
    let run = user.run(repo.path(), &["review"]).await;
    let text = one_line(&run, Some(port)).replace(&repo.path().display().to_string(), "<repo>");
    insta::assert_snapshot!("unknown_config_key", text);
}

#[tokio::test]
async fn a_diff_over_the_limit_says_the_limit_and_how_to_narrow_the_review() {
    let app = spawn_app_configured(|_| {}, |a| a.agent.limits.max_diff_bytes = 300).await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let repo = changed_repo();
    repo.write("src/big.rs", &"// a long comment line to make the diff large\n".repeat(20));
    repo.commit("big");
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let run = user.run(repo.path(), &["review"]).await;
    insta::assert_snapshot!("diff_over_the_limit", one_line(&run, Some(app.gateway.addr.port())));
    // Narrowed to one path, it fits.
    let run = user.run(repo.path(), &["review", "src/lib.rs"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test]
async fn help_is_complete_and_completions_are_generated() {
    let user = User::new("http://127.0.0.1:9", None);
    let dir = tempfile::tempdir().expect("a directory");
    let run = user.run(dir.path(), &["--help"]).await;
    assert_eq!(run.code, 0);
    for command in [
        "login",
        "logout",
        "whoami",
        "review",
        "describe",
        "fix",
        "tasks",
        "models",
        "status",
        "audit",
        "admin",
        "up",
        "completions",
    ] {
        assert!(run.stdout.contains(&format!("  {command} ")), "`{command}` is missing from --help:\n{}", run.stdout);
    }
    for path in [
        &["review"][..],
        &["fix"],
        &["login"],
        &["tasks", "list"],
        &["tasks", "watch"],
        &["audit", "verify"],
        &["admin", "keys", "create"],
    ] {
        let mut args: Vec<&str> = path.to_vec();
        args.push("--help");
        let run = user.run(dir.path(), &args).await;
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(run.stdout.starts_with(char::is_uppercase), "{args:?} has a description:\n{}", run.stdout);
    }
    insta::assert_snapshot!("review_help", user.run(dir.path(), &["review", "--help"]).await.stdout);
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = user.run(dir.path(), &["completions", shell]).await;
        assert_eq!(run.code, 0, "{shell}");
        assert!(run.stdout.contains("review") && run.stdout.contains("fail-on"), "{shell} completions");
    }
}
