//! What an operator relies on from `prfix status`, `prfix whoami` and `prfix audit list`: exit codes
//! that say when something is down, the saved identity when the gateway is, and the audit log newest
//! first within a time window.

mod support;

use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app;
use support::{User, gateway_url};

#[tokio::test]
async fn status_exits_1_naming_what_is_down_and_0_when_everything_serves() {
    let mut app = spawn_app().await;
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let dir = tempfile::tempdir().expect("a directory");
    let run = user.run(dir.path(), &["status"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    app.agent.stop().await;
    let run = user.run(dir.path(), &["status"]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("prfix.agent.v1.AgentService  not serving"), "{}", run.stdout);
    assert_eq!(run.stderr.trim(), "prfix: not serving: agent");

    app.gateway.stop().await;
    let run = user.run(dir.path(), &["status"]).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
}

#[tokio::test]
async fn whoami_shows_the_saved_login_when_the_gateway_is_down_and_says_so() {
    let mut app = spawn_app().await;
    let url = gateway_url(&app);
    let user = User::new(&url, None);
    let dir = tempfile::tempdir().expect("a directory");
    let run = user
        .run_with_stdin(dir.path(), &["login", "-u", "admin", "--password-stdin"], &format!("{ADMIN_PASSWORD}\n"))
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    app.gateway.stop().await;
    let run = user.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stdout.trim(),
        format!("admin via a password login at {url} (saved login; not confirmed: the gateway is down)")
    );
    assert!(run.stderr.contains("the identity above is the saved login, not checked by the gateway"), "{}", run.stderr);
    // Nobody logged in: only the unreachable gateway is said.
    let stranger = User::new(&url, None);
    let run = stranger.run(dir.path(), &["whoami"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
}

/// The sequence numbers of `prfix audit list`'s rows, in the order printed.
fn sequences(stdout: &str) -> Vec<i64> {
    stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

#[tokio::test]
async fn audit_list_is_newest_first_within_since_and_until_and_export_takes_its_file_like_verify() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.admin_token().await;
    }
    let admin = User::new(&gateway_url(&app), Some(&app.admin_token().await));
    let dir = tempfile::tempdir().expect("a directory");

    let run = admin.run(dir.path(), &["audit", "list", "--action", "auth.login", "--limit", "3"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let newest = sequences(&run.stdout);
    assert_eq!(newest.len(), 3, "{}", run.stdout);
    assert!(newest.windows(2).all(|w| w[0] > w[1]), "newest first: {newest:?}");
    let run = admin.run(dir.path(), &["audit", "list", "--action", "auth.login", "--limit", "1000"]).await;
    let all = sequences(&run.stdout);
    assert_eq!(&all[..3], &newest[..], "the first page is the newest events");
    assert!(all.len() >= 4, "{all:?}");

    let run = admin.run(dir.path(), &["audit", "list", "--action", "auth.login", "--since", "1h"]).await;
    assert_eq!(sequences(&run.stdout), all, "every login was within the hour");
    let run = admin.run(dir.path(), &["audit", "list", "--until", "2000-01-01"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(sequences(&run.stdout).is_empty(), "{}", run.stdout);
    let run = admin.run(dir.path(), &["audit", "list", "--since", "2100-01-01T00:00:00Z"]).await;
    assert!(sequences(&run.stdout).is_empty(), "{}", run.stdout);
    let run = admin.run(dir.path(), &["audit", "list", "--since", "last tuesday"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("prfix: --since: `last tuesday` is not a time"), "{}", run.stderr);
    let run = admin.run(dir.path(), &["audit", "list", "--since", "1h", "--until", "2h"]).await;
    assert_eq!((run.code, run.stderr.trim()), (2, "prfix: --since must be before --until"));
    let run = admin.run(dir.path(), &["audit", "list", "--help"]).await;
    for action in ["auth.login", "auth.change_password", "agent.task.create.review", "access.denied"] {
        assert!(run.stdout.contains(action), "`audit list --help` does not name {action}:\n{}", run.stdout);
    }

    // export FILE, as verify FILE.
    let run = admin.run(dir.path(), &["audit", "export", "log.jsonl"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(std::fs::metadata(dir.path().join("log.jsonl")).is_ok_and(|m| m.len() > 0));
    let run = admin.run(dir.path(), &["audit", "export"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("FILE"), "{}", run.stderr);
}
