//! Changing and resetting passwords: `prfix passwd`, `prfix admin users set-password`,
//! `prfix up --reset-admin-password` and `prfix-gateway --reset-admin-password` (the library function
//! its binary runs). Each ends the user's other sessions and is audited.

mod support;

use std::time::Duration;

use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app;
use support::up::Up;
use support::{User, gateway_url};

/// Logs `user` in as `username` with `password`; the run.
async fn login(user: &User, dir: &std::path::Path, username: &str, password: &str) -> support::Run {
    user.run_with_stdin(dir, &["login", "-u", username, "--password-stdin"], &format!("{password}\n")).await
}

/// Waits (up to 10 s) until `user`'s `whoami` is refused: their session ended.
async fn session_ends(user: &User, dir: &std::path::Path) -> support::Run {
    for _ in 0..100 {
        let run = user.run(dir, &["whoami"]).await;
        if run.code != 0 {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the session still works after the password changed");
}

#[tokio::test]
async fn passwd_changes_your_password_ends_your_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    app.user_token("alice", &[prfix_auth::Role::Developer]).await;
    let url = gateway_url(&app);
    let (laptop, desktop) = (User::new(&url, None), User::new(&url, None));
    let dir = tempfile::tempdir().expect("a directory");
    for user in [&laptop, &desktop] {
        let run = login(user, dir.path(), "alice", "alice-password-123").await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    let run = laptop.run_with_stdin(dir.path(), &["passwd"], "not-my-password\nalice-new-password-4\n").await;
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.trim(), "prfix: changing your password: the current password is wrong; nothing was changed");
    let run = laptop.run_with_stdin(dir.path(), &["passwd"], "alice-password-123\nshort\n").await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("at least 12 characters") && run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    let run = laptop.run_with_stdin(dir.path(), &["passwd"], "alice-password-123\n").await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no new password on standard input"), "{}", run.stderr);

    let run = laptop.run_with_stdin(dir.path(), &["passwd"], "alice-password-123\nalice-new-password-4\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "password changed; your other sessions ended (this login goes on)");
    // This login goes on with the tokens the gateway sent; the other one ended.
    let run = laptop.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = session_ends(&desktop, dir.path()).await;
    assert!(run.stderr.contains("run `prfix login`"), "{}", run.stderr);
    // The old password is refused, the new one accepted.
    let run = login(&desktop, dir.path(), "alice", "alice-password-123").await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    let run = login(&desktop, dir.path(), "alice", "alice-new-password-4").await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Audited, the failed attempt too; the list is newest first.
    let admin = User::new(&url, Some(&app.admin_token().await));
    let run = admin.run(dir.path(), &["audit", "list", "--action", "auth.change_password"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert!(rows[0].contains("alice") && rows[0].contains("success"), "newest first: {}", run.stdout);
    assert!(rows[1].contains("alice") && rows[1].contains("failure"), "{}", run.stdout);

    // An API key has no password to change.
    let key = admin.run(dir.path(), &["admin", "keys", "create", "ci", "--roles", "developer"]).await;
    assert_eq!(key.code, 0, "{}", key.stderr);
    let ci = User::new(&url, Some(key.stdout.trim()));
    let run = ci.run_with_stdin(dir.path(), &["passwd"], "x-current-password\nx-new-password-12\n").await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("only a user logged in with a password can change it"), "{}", run.stderr);
}

#[tokio::test]
async fn an_admin_sets_a_users_password_and_the_users_sessions_end() {
    let app = spawn_app().await;
    app.user_token("bob", &[prfix_auth::Role::Developer]).await;
    let url = gateway_url(&app);
    let dir = tempfile::tempdir().expect("a directory");
    let bob = User::new(&url, None);
    let run = login(&bob, dir.path(), "bob", "bob-password-123").await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Bob is no admin.
    let run =
        bob.run_with_stdin(dir.path(), &["admin", "users", "set-password", "admin"], "bob-owns-admin-now\n").await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("prfix: setting the password: permission denied"), "{}", run.stderr);

    let admin = User::new(&url, Some(&app.admin_token().await));
    let run =
        admin.run_with_stdin(dir.path(), &["admin", "users", "set-password", "nobody"], "a-new-password-1\n").await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    let run =
        admin.run_with_stdin(dir.path(), &["admin", "users", "set-password", "bob"], "bob-reset-by-admin-1\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "user bob has a new password; their sessions ended");
    session_ends(&bob, dir.path()).await;
    let run = login(&bob, dir.path(), "bob", "bob-password-123").await;
    assert_eq!(run.code, 2);
    let run = login(&bob, dir.path(), "bob", "bob-reset-by-admin-1").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = admin.run(dir.path(), &["audit", "list", "--action", "auth.update_user", "--limit", "1"]).await;
    assert!(run.stdout.contains("users/bob"), "{}", run.stdout);
}

#[tokio::test]
async fn the_lost_password_procedure_of_a_separate_gateway_resets_admin_and_ends_its_sessions() {
    let app = spawn_app().await;
    let url = gateway_url(&app);
    let dir = tempfile::tempdir().expect("a directory");
    let admin = User::new(&url, None);
    let run = login(&admin, dir.path(), "admin", ADMIN_PASSWORD).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // What `prfix-gateway --reset-admin-password` runs, with the running gateway's settings.
    let settings = prfix_tests::app::gateway_settings(&app.common, app.agent.addr, app.audit.addr);
    let password = prfix_gateway::reset::reset_admin_password(settings, None).await.expect("the reset succeeds");
    assert!(password.len() >= 12, "{password}");

    // The running gateway hears of it: the admin's session ends there.
    session_ends(&admin, dir.path()).await;
    let run = login(&admin, dir.path(), "admin", ADMIN_PASSWORD).await;
    assert_eq!(run.code, 2, "the old password is refused");
    let run = login(&admin, dir.path(), "admin", &password).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = admin.run(dir.path(), &["audit", "list", "--action", "auth.reset_password"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("operator") && run.stdout.contains("users/admin"), "{}", run.stdout);

    // A password given on standard input is checked like any other.
    let settings = prfix_tests::app::gateway_settings(&app.common, app.agent.addr, app.audit.addr);
    let error = prfix_gateway::reset::reset_admin_password(settings, Some("short".to_owned().into()))
        .await
        .expect_err("a short password is refused");
    assert!(error.to_string().contains("at least 12 characters"), "{error}");
}

#[tokio::test]
async fn prfix_up_reset_admin_password_prints_a_new_password_once_and_the_old_one_stops_working() {
    let up = Up::start(&[]).await;
    let (database, dir, _) = up.stop().await;
    let up = Up::start_on(database, dir, &["--reset-admin-password"]).await;
    let line = up.wait_for("new password `").await;
    let password = line.split('`').nth(3).expect("the password between backticks").to_owned();
    assert!(password.len() >= 12, "{line}");
    let user = User::new(&up.gateway, None);
    let dir = tempfile::tempdir().expect("a directory");
    let run = login(&user, dir.path(), "admin", support::up::ADMIN_PASSWORD).await;
    assert_eq!(run.code, 2, "the old password still works: {}", run.stdout);
    let run = login(&user, dir.path(), "admin", &password).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = user.run(dir.path(), &["audit", "list", "--action", "auth.reset_password"]).await;
    assert!(run.stdout.contains("operator"), "{}\n{}", run.stdout, run.stderr);
    up.stop().await;
}
