//! `prfix models pull NAME` through the gateway, as an admin and as a developer.

mod support;

use prfix_auth::Role;
use prfix_tests::auth::token;
use prfix_tests::spawn_app;
use support::{User, gateway_url};

#[tokio::test]
async fn models_pull_prints_ollamas_progress_for_an_admin_and_is_refused_to_a_developer() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("a folder");
    let admin = User::new(&gateway_url(&app), Some(&token("ops-admin", &[Role::Admin])));
    let run = admin.run(dir.path(), &["models", "pull", "llama3.2:1b"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"pulling manifest"), "{}", run.stdout);
    assert!(lines.iter().any(|l| l.ends_with("50% of 4.7 GB")), "{}", run.stdout);
    assert!(lines.iter().any(|l| l.ends_with("100% of 4.7 GB")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("llama3.2:1b is on {}", app.ollama.url())), "{}", run.stdout);
    assert!(app.ollama.requests().iter().any(|r| r.path == "/api/pull" && r.body.contains("llama3.2:1b")));

    let developer = User::new(&gateway_url(&app), Some(&token("dev", &[Role::Developer])));
    let run = developer.run(dir.path(), &["models", "pull", "llama3.2:1b"]).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(run.stderr.contains("pulling llama3.2:1b"), "{}", run.stderr);
}
