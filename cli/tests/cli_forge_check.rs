//! `prfix forge check` against a fake GitHub (which checks each call against GitHub's OpenAPI
//! description): a connection whose token works is named with its account and the repositories it
//! reaches; one whose token is refused is named with the forge's answer, and the command fails.

mod support;

use prfix_tests::fake_forge::FakeGitHub;
use support::User;

const TOKEN: &str = "ghp_operator_token";
const DIFF: &str = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n";

#[tokio::test]
async fn forge_check_names_the_account_and_repositories_of_a_working_connection_and_fails_on_a_refused_one() {
    let github = FakeGitHub::start_github(TOKEN).await;
    github.add_pull("octo-org/app", 1, "0123456789abcdef0123456789abcdef01234567", DIFF);
    github.add_pull("octo-org/lib", 2, "89abcdef0123456789abcdef0123456789abcdef", DIFF);
    let mut user = User::new("http://127.0.0.1:9", None);
    let config = user.home.path().join("agent.toml");
    let text = format!(
        "[agent.forges.github]\nkind = \"github\"\napi_url = \"{url}\"\n\n[agent.forges.other]\nkind = \"github\"\napi_url = \"{url}\"\n",
        url = github.api_url()
    );
    std::fs::write(&config, text).expect("write the settings");
    user.env.push(("PRFIX_FORGE_GITHUB_TOKEN".to_owned(), TOKEN.to_owned()));
    user.env.push(("PRFIX_FORGE_OTHER_TOKEN".to_owned(), "ghp_revoked".to_owned()));

    let config = config.display().to_string();
    let run = user.run(user.home.path(), &["forge", "check", "--config", &config]).await;
    assert_eq!(run.code, 1, "one connection fails: {}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("github (GitHub, ")
            && run.stdout.contains("authenticated as prfix-bot; reaches 2 repositories"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  octo-org/app\n  octo-org/lib\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("other (GitHub, ") && run.stdout.contains("HTTP 401: Bad credentials"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("1 of the forge connections failed: other"), "{}", run.stderr);
    assert_eq!(github.violations().len(), 1, "only the refused token's call: {:?}", github.violations());

    // Without a token for a connection, the settings name the variable to set.
    user.env.retain(|(k, _)| k != "PRFIX_FORGE_OTHER_TOKEN");
    let run = user.run(user.home.path(), &["forge", "check", "--config", &config]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("PRFIX_FORGE_OTHER_TOKEN"), "{}", run.stderr);
}
