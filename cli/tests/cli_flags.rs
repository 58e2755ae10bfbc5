//! `prfix flags`: an admin sees every flag the agent sees with its source and its value for the
//! context given; a developer is refused.

mod support;

use prfix_flags::FlagValue;
use prfix_tests::app::spawn_app_configured;
use support::{User, gateway_url};

#[tokio::test]
async fn an_admin_lists_the_flags_with_their_source_and_a_developer_is_refused() {
    let app = spawn_app_configured(
        |_| {},
        |agent| {
            agent.flags.values.insert("agent.fix".into(), FlagValue::Switch(false));
            agent.flags.values.insert("agent.model.reasoning".into(), FlagValue::Variant("qwen2.5-coder:7b".into()));
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("a directory");
    let admin = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));

    let run = admin.run(dir.path(), &["flags", "--json", "--repository", "acme/app", "--user", "dana"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let flags: Vec<serde_json::Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let flag = |name: &str| flags.iter().find(|f| f["flag"] == name).unwrap_or_else(|| panic!("{name}: {flags:?}"));
    assert_eq!(
        (flag("agent.fix")["enabled"].as_bool(), flag("agent.fix")["source"].as_str()),
        (Some(false), Some("settings"))
    );
    assert_eq!(flag("agent.model.reasoning")["payload"], "qwen2.5-coder:7b");
    assert_eq!(
        (flag("agent.review")["enabled"].as_bool(), flag("agent.review")["source"].as_str()),
        (Some(true), Some("default"))
    );
    assert_eq!(flag("agent.prompt.review")["variant"], "v1");

    let table = admin.run(dir.path(), &["flags"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("flags from settings"), "{}", table.stdout);

    let developer = app.user_token("dana", &[prfix_auth::Role::Developer]).await;
    let refused = User::new(&gateway_url(&app), Some(&developer)).run(dir.path(), &["flags"]).await;
    assert_ne!(refused.code, 0, "a developer may not list flags: {}", refused.stdout);
    assert!(
        refused.stderr.to_lowercase().contains("permission") || refused.stderr.contains("admin"),
        "{}",
        refused.stderr
    );
}
