//! `--migrate`: each service binary applies its schema's migrations and exits without serving, as a
//! migration Job (a Helm pre-install/pre-upgrade hook) runs it, with the database URL as its only
//! setting.

use std::process::Output;
use std::time::Duration;

use prfix_tests::TestDatabase;

async fn migrate(service: &str, database_url: &str) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_prfix-service"))
        .args([service, "--migrate"])
        .env_clear()
        .env("PRFIX_DATABASE_URL", database_url)
        .env("PRFIX_LOG_FORMAT", "json")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("`{service} --migrate` did not exit within a minute"))
        .expect("the service process starts")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The `migrations are current` line's `applied` list and `already_applied` count.
fn report(output: &Output) -> (String, u64) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"].as_str().is_some_and(|m| m.ends_with("migrations are current")))
        .unwrap_or_else(|| panic!("no `migrations are current` line:\n{}", text(output)));
    (line["applied"].as_str().unwrap_or_default().to_owned(), line["already_applied"].as_u64().unwrap_or(u64::MAX))
}

#[tokio::test]
async fn each_service_migrates_its_schema_and_exits_and_a_second_run_finds_it_current() {
    let db = TestDatabase::fresh();
    for (service, schema) in [("gateway", "gateway"), ("agent", "agent"), ("audit", "audit")] {
        let first = migrate(service, &db.url).await;
        assert!(first.status.success(), "`{service} --migrate` failed:\n{}", text(&first));
        let (applied, already) = report(&first);
        assert!(applied.starts_with("[1, 2, 3"), "{service}: the first run applies every migration: {applied}");
        assert_eq!(already, 0);

        let client = db.connect().await;
        let versions: Vec<i32> = client
            .query(&format!("SELECT version FROM {schema}.schema_migrations ORDER BY version"), &[])
            .await
            .expect("the ledger exists")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(format!("{versions:?}"), applied, "{service}: the ledger holds what the run reported");

        let second = migrate(service, &db.url).await;
        assert!(second.status.success(), "the second `{service} --migrate` failed:\n{}", text(&second));
        assert_eq!(report(&second), ("[]".to_owned(), versions.len() as u64), "{service}: nothing left to apply");
    }
    // Nothing was served: no service left a listener or a task behind, and the audit log is empty.
    let client = db.connect().await;
    let events: i64 = client.query_one("SELECT count(*) FROM audit.events", &[]).await.expect("count").get(0);
    assert_eq!(events, 0);
}

#[tokio::test]
async fn a_bad_database_url_exits_2_naming_the_setting_and_an_unreachable_database_exits_1() {
    let bad = migrate("agent", "mysql://somewhere/prfix").await;
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("database_url"), "the error names the setting:\n{}", text(&bad));

    let unreachable = migrate("audit", "postgres://postgres@127.0.0.1:1/prfix?connect_timeout=2").await;
    assert_eq!(unreachable.status.code(), Some(1), "{}", text(&unreachable));
    assert!(text(&unreachable).contains("migrations failed"), "{}", text(&unreachable));
}
