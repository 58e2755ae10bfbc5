//! `prfix login`, `whoami`, `logout`: tokens kept 0600 and refreshed when they expire; API keys
//! for CI.

mod support;

use std::os::unix::fs::PermissionsExt;

use prfix_tests::spawn_app;
use support::{User, gateway_url};

#[tokio::test]
async fn login_keeps_tokens_privately_refreshes_them_and_logout_revokes_them() {
    let app = spawn_app().await;
    app.user_token("alice", &[prfix_auth::Role::Developer]).await;
    let user = User::new(&gateway_url(&app), None);
    let dir = tempfile::tempdir().expect("a directory");

    let run = user.run_with_stdin(dir.path(), &["login", "--username", "alice", "--password-stdin"], "wrong\n").await;
    assert_eq!((run.code, run.stderr.trim()), (2, "prfix: login refused: wrong user name or password"));

    let run =
        user.run_with_stdin(dir.path(), &["login", "-u", "alice", "--password-stdin"], "alice-password-123\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("as alice (developer)"), "{}", run.stdout);
    let file = user.config_dir().join("credentials.toml");
    let mode = std::fs::metadata(&file).expect("credentials saved").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(user.config_dir()).expect("config dir").permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    let run = user.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("alice (developer) via user"), "{}", run.stdout);

    // An access token about to expire is refreshed before use, and the new one is kept.
    let saved = std::fs::read_to_string(&file).expect("read");
    let expired = saved
        .lines()
        .map(|l| if l.starts_with("access_expires_at") { "access_expires_at = 0".to_owned() } else { l.to_owned() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, expired).expect("write");
    let run = user.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refreshed = std::fs::read_to_string(&file).expect("read");
    assert!(!refreshed.contains("access_expires_at = 0"), "the refreshed tokens are saved");
    assert_ne!(refreshed, saved);

    let run = user.run(dir.path(), &["logout"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!file.exists());
    let run = user.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not logged in"), "{}", run.stderr);
}

#[tokio::test]
async fn an_api_key_logs_ci_in_without_a_password() {
    let app = spawn_app().await;
    let admin = User::new(&gateway_url(&app), Some(&app.admin_token().await));
    let dir = tempfile::tempdir().expect("a directory");
    let run = admin
        .run_with_stdin(
            dir.path(),
            &["admin", "users", "create", "ci-bot", "--roles", "developer"],
            "ci-bot-password-1\n",
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run =
        admin.run(dir.path(), &["admin", "keys", "create", "ci", "--roles", "developer", "--owner", "ci-bot"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let secret = run.stdout.trim().to_owned();
    assert!(secret.starts_with("prfix_"), "{secret}");

    let ci = User::new(&gateway_url(&app), None);
    let run = ci.run_with_stdin(dir.path(), &["login", "--api-key", "-"], &format!("{secret}\n")).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ci.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("(developer) via api key"), "{}", run.stdout);

    let run = admin.run(dir.path(), &["admin", "users", "list"]).await;
    assert!(run.stdout.contains("ci-bot") && run.stdout.contains("developer"), "{}", run.stdout);
    let run = ci.run(dir.path(), &["admin", "users", "list"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not allowed for your roles"), "{}", run.stderr);
}

#[tokio::test]
async fn tasks_models_and_status_show_what_the_services_have() {
    let app = spawn_app().await;
    app.ollama.set_models(&["qwen2.5-coder:14b"]);
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let dir = tempfile::tempdir().expect("a directory");
    let run = user.run(dir.path(), &["status"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("gateway") && run.stdout.contains("serving"), "{}", run.stdout);
    assert!(run.stdout.contains("prfix.agent.v1.AgentService  serving"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("ollama   {}  up", app.ollama.url())), "{}", run.stdout);
    assert!(run.stdout.contains("qwen2.5-coder:14b"), "{}", run.stdout);
    let run = user.run(dir.path(), &["models"]).await;
    assert!(run.stdout.contains("qwen2.5-coder:14b") && run.stdout.contains("Q4_K_M"), "{}", run.stdout);
    assert!(run.stdout.lines().next().is_some_and(|header| header.contains("token ratio")), "{}", run.stdout);
    let run = user.run(dir.path(), &["tasks", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = user.run(dir.path(), &["tasks", "show", "not-a-uuid"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("`not-a-uuid` is not a task id nor the start of one"), "{}", run.stderr);
    let run = user.run(dir.path(), &["audit", "list", "--limit", "5"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}
