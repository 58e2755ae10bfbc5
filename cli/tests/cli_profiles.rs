//! Which gateway a command talks to, and several saved logins: `--gateway` and `PRFIX_GATEWAY` win
//! over the saved login's gateway (and saved tokens never go to another gateway), `--profile` and
//! `PRFIX_PROFILE` keep one login per profile, `prfix profiles` lists them.

mod support;

use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app;
use support::{Run, User, gateway_url};

/// A user without `PRFIX_GATEWAY`: the gateway comes from flags, profiles and the config.
fn user_without_gateway() -> User {
    let mut user = User::new("unused", None);
    user.env.retain(|(key, _)| key != "PRFIX_GATEWAY");
    user
}

async fn login(user: &User, dir: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["login", "-u", "admin", "--password-stdin"];
    args.extend_from_slice(extra);
    user.run_with_stdin(dir, &args, &format!("{ADMIN_PASSWORD}\n")).await
}

#[tokio::test]
async fn the_gateway_flag_and_variable_win_over_the_saved_login_whose_tokens_stay_with_their_gateway() {
    let (first, second) = (spawn_app().await, spawn_app().await);
    let (a, b) = (gateway_url(&first), gateway_url(&second));
    let user = user_without_gateway();
    let dir = tempfile::tempdir().expect("a directory");

    let run = login(&user, dir.path(), &["--gateway", &a]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Without a flag, the saved login's gateway.
    let run = user.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("at {a}")), "{}", run.stdout);
    // The config file's gateway does not override the saved login.
    std::fs::write(user.config_dir().join("config.toml"), format!("gateway = \"{b}\"\n")).expect("config");
    let run = user.run(dir.path(), &["whoami"]).await;
    assert!(run.stdout.contains(&format!("at {a}")), "{}{}", run.stdout, run.stderr);

    // --gateway and PRFIX_GATEWAY win: the command goes to B, without A's tokens.
    let expected = format!("prfix: not logged in to {b}: the saved login is for {a}");
    let run = user.run(dir.path(), &["--gateway", &b, "whoami"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with(&expected), "{}", run.stderr);
    let mut with_variable = user_without_gateway();
    with_variable.home = user.home;
    with_variable.env = vec![
        ("PRFIX_CONFIG_DIR".to_owned(), with_variable.home.path().join("config").display().to_string()),
        ("PRFIX_GATEWAY".to_owned(), b.clone()),
    ];
    let run = with_variable.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with(&expected), "{}", run.stderr);
    // B's status is B's, named by the variable (health needs no login).
    let run = with_variable.run(dir.path(), &["status"]).await;
    assert!(run.stdout.starts_with(&format!("gateway  {b}  serving")), "{}", run.stdout);
    // Logging in with the variable set logs in to B.
    let run = login(&with_variable, dir.path(), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("logged in to {b}")), "{}", run.stdout);
}

#[tokio::test]
async fn profiles_keep_a_login_each_and_are_chosen_by_flag_or_variable() {
    let (first, second) = (spawn_app().await, spawn_app().await);
    let (a, b) = (gateway_url(&first), gateway_url(&second));
    let user = user_without_gateway();
    let dir = tempfile::tempdir().expect("a directory");

    let run = user.run(dir.path(), &["profiles"]).await;
    assert_eq!(run.stdout.trim(), "no saved login: run `prfix login` (add `--profile NAME` to keep several)");
    assert_eq!(login(&user, dir.path(), &["--gateway", &a]).await.code, 0);
    let run = login(&user, dir.path(), &["--profile", "second", "--gateway", &b]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(user.config_dir().join("profiles/second.toml").exists());

    let run = user.run(dir.path(), &["whoami"]).await;
    assert!(run.stdout.contains(&format!("at {a}")), "the default profile: {}", run.stdout);
    let run = user.run(dir.path(), &["--profile", "second", "whoami"]).await;
    assert!(run.stdout.contains(&format!("at {b}")), "{}{}", run.stdout, run.stderr);
    let run = user.run(dir.path(), &["whoami", "--profile", "second"]).await;
    assert!(run.stdout.contains(&format!("at {b}")), "the flag after the command: {}", run.stdout);
    let mut by_variable = user_without_gateway();
    by_variable.home = user.home;
    by_variable.env = vec![
        ("PRFIX_CONFIG_DIR".to_owned(), by_variable.home.path().join("config").display().to_string()),
        ("PRFIX_PROFILE".to_owned(), "second".to_owned()),
    ];
    let run = by_variable.run(dir.path(), &["whoami"]).await;
    assert!(run.stdout.contains(&format!("at {b}")), "{}{}", run.stdout, run.stderr);

    let run = by_variable.run(dir.path(), &["profiles"]).await;
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[1].starts_with("  (default)") && lines[1].contains(&a), "{}", run.stdout);
    assert!(lines[2].starts_with("* second") && lines[2].contains(&b) && lines[2].ends_with("admin"), "{}", run.stdout);

    // Logging out of one profile leaves the other.
    let run = by_variable.run(dir.path(), &["logout"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = by_variable.run(dir.path(), &["--gateway", &b, "whoami"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not logged in (profile second): run `prfix login --profile second`"),
        "{}",
        run.stderr
    );
    let run = by_variable.run(dir.path(), &["--profile", "../escape", "whoami"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("profile name `../escape` is not"), "{}", run.stderr);
    let mut default = user_without_gateway();
    default.home = by_variable.home;
    default.env = vec![("PRFIX_CONFIG_DIR".to_owned(), default.home.path().join("config").display().to_string())];
    let run = default.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("at {a}")), "{}", run.stdout);
}
