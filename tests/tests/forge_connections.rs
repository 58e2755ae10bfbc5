//! `ListForges` (GET /v1/forges): an admin sees each forge connection of the agent, whether it
//! authenticates now and which repositories it reaches (the console's Forges page shows it); a
//! connection whose token the forge refuses says the forge's answer; others than admins are refused.

use prfix_auth::Role;
use prfix_tests::fake_forge::FakeGitHub;
use prfix_tests::forge_system::{self, Connection};
use serde_json::Value;

const TOKEN: &str = "ghs_installation_token";

async fn forges(base: &str, bearer: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/forges"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("GET /v1/forges");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_admin_sees_each_connection_authenticate_and_reach_its_repositories_and_a_developer_is_refused() {
    let github = FakeGitHub::start_github(TOKEN).await;
    github.add_pull("octo-org/app", 1, "0123456789abcdef0123456789abcdef01234567", "");
    github.add_pull("octo-org/lib", 2, "89abcdef0123456789abcdef0123456789abcdef", "");
    let connection = Connection {
        name: "github",
        kind: prfix_gateway::ForgeKind::GitHub,
        api_url: github.api_url(),
        repository: "octo-org/app",
        secret: "github-webhook-secret-0123456789",
        token: TOKEN,
    };
    let app = forge_system::spawn(&connection, r#"{"findings": []}"#).await;
    let base = format!("http://{}", app.gateway.addr);

    let (status, answer) = forges(&base, &app.admin_token().await).await;
    assert_eq!(status, 200, "{answer}");
    let listed = answer["forges"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{answer}");
    let github_connection = &listed[0];
    assert_eq!(github_connection["name"], "github");
    assert_eq!(github_connection["kind"], "GitHub");
    assert_eq!(github_connection["apiUrl"], github.api_url());
    assert_eq!(github_connection["authenticated"], true, "{github_connection}");
    assert_eq!(github_connection["repositoriesReached"], 2, "{github_connection}");
    assert_eq!(github_connection["repositories"], serde_json::json!(["octo-org/app", "octo-org/lib"]));
    assert_eq!(github.violations(), Vec::<String>::new());

    let developer = app.user_token("dev", &[Role::Developer]).await;
    let (status, refused) = forges(&base, &developer).await;
    assert_eq!(status, 403, "{refused}");
}

#[tokio::test]
async fn a_connection_whose_token_is_refused_says_the_forges_answer() {
    let github = FakeGitHub::start_github("the-token-github-expects").await;
    let connection = Connection {
        name: "github",
        kind: prfix_gateway::ForgeKind::GitHub,
        api_url: github.api_url(),
        repository: "octo-org/app",
        secret: "github-webhook-secret-0123456789",
        token: "a-token-github-refuses",
    };
    let app = forge_system::spawn(&connection, r#"{"findings": []}"#).await;
    let (status, answer) = forges(&format!("http://{}", app.gateway.addr), &app.admin_token().await).await;
    assert_eq!(status, 200, "{answer}");
    let shown = &answer["forges"][0];
    assert!(!shown["authenticated"].as_bool().unwrap_or(false), "{shown}");
    let error = shown["error"].as_str().unwrap_or_default();
    assert!(error.contains("401"), "the forge's answer is named: {shown}");
}
