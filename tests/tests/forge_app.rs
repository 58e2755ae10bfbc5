//! A GitHub connection that authenticates as a GitHub App: the agent signs an RS256 app JWT with the
//! app's key (made by the test), exchanges it for an installation token at the fake GitHub (which
//! checks the JWT against the app's public key and the exchange against GitHub's OpenAPI
//! description), and reviews with that token, kept until shortly before it expires.

use std::time::Duration;

use prfix_gateway::webhook::signature::sign;
use prfix_gateway::{ForgeConnection, ForgeKind};
use prfix_proto::agent::v1 as pb;
use prfix_tests::fake_forge::github::App;
use prfix_tests::fake_forge::{FakeGitHub, webhooks};
use prfix_tests::git::Repo;
use prfix_tests::{Reply, TestApp, spawn_app_configured};
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "github-webhook-secret-0123456789";
const REPOSITORY: &str = "octo-org/octo-repo";
const APP_ID: &str = "123456";
const INSTALLATION: u64 = 987;

const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 2, "severity": "major", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query."}
]}"#;

/// The system whose agent reaches `github` as the app with the private key `pem`.
async fn app(github: &FakeGitHub, pem: &str) -> TestApp {
    let api_url = github.api_url();
    let pem = pem.to_owned();
    let app = spawn_app_configured(
        |s| {
            let connection = ForgeConnection {
                kind: ForgeKind::GitHub,
                repositories: vec![REPOSITORY.to_owned()],
                review_drafts: false,
            };
            s.gateway.forges.insert("github".to_owned(), connection);
            s.forge_webhook_secrets.insert("github".to_owned(), SecretString::from(SECRET));
        },
        |s| {
            let forge = prfix_agent::settings::ForgeSettings {
                kind: prfix_agent::settings::ForgeKindSetting::GitHub,
                api_url,
                details_url: None,
                app_id: Some(APP_ID.to_owned()),
                installation_id: Some(INSTALLATION),
            };
            s.agent.forges.insert("github".to_owned(), forge);
            s.forge_app_keys.insert("github".to_owned(), SecretString::from(pem));
        },
    )
    .await;
    app.ollama.set_models(&["qwen2.5-coder:14b"]);
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS));
    app
}

/// A fake GitHub with pull request 7 (a one-line change) and the app installed with `ttl` tokens;
/// the app's private key in PEM.
async fn github_with_app(ttl: i64) -> (FakeGitHub, String, String) {
    let (key, pem) = prfix_auth::keys::SigningKey::generate().expect("an RSA key");
    let github = FakeGitHub::start_github("ghp_not_used_here").await;
    let jwk = key.jwk();
    github.add_app(App {
        app_id: APP_ID.to_owned(),
        installation_id: INSTALLATION,
        n: jwk.n.clone(),
        e: jwk.e.clone(),
        token_ttl_secs: ttl,
    });
    let repo = Repo::init();
    repo.write("app/db.py", "def f(conn):\n    return 1\n");
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let content = "def f(conn):\n    return conn.execute(\"SELECT \" + name)\n";
    repo.write("app/db.py", content);
    repo.commit("query");
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let diff = repo.git(&["diff", "--no-color", &format!("{base}...{head}")]);
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", content);
    (github, pem, head)
}

async fn review(app: &TestApp, head: &str) -> pb::Task {
    let mut payload = webhooks::example("webhook-pull-request-opened");
    payload["number"] = json!(7);
    payload["pull_request"]["number"] = json!(7);
    payload["pull_request"]["head"]["sha"] = json!(head);
    payload["pull_request"]["draft"] = json!(false);
    payload["repository"]["full_name"] = json!(REPOSITORY);
    let body = serde_json::to_vec(&payload).expect("JSON");
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{}/v1/forges/github/webhook", app.gateway.addr))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "app-delivery-1")
        .header("x-hub-signature-256", format!("sha256={}", sign(SECRET.as_bytes(), &body)))
        .body(body)
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("JSON");
    let task_id = answer["taskId"].as_str().expect("a review task").to_owned();
    prfix_tests::tasks::wait_for_end(&mut app.agent_client(), &task_id, Duration::from_secs(60)).await
}

#[tokio::test]
async fn a_github_app_connection_reviews_with_one_installation_token_kept_for_the_whole_review() {
    let (github, pem, head) = github_with_app(3600).await;
    let app = app(&github, &pem).await;
    let ended = review(&app, &head).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");
    assert_eq!(github.violations(), Vec::<String>::new(), "the JWT and every call are what GitHub accepts");
    let exchanges = github.calls("apps/create-installation-access-token");
    assert_eq!(exchanges.len(), 1, "the token is kept until shortly before it expires");
    let calls = github.requests().len();
    assert!(calls > 5, "the review made its calls with the installation token ({calls} requests)");
    assert_eq!(github.with(|s| s.reviews.len()), 1);
    assert_eq!(github.with(|s| s.check_runs.len()), 1, "an app's token may create check runs");
}

#[tokio::test]
async fn an_installation_token_close_to_its_expiry_is_replaced_before_the_next_call() {
    // Tokens that expire in four minutes: within the five minutes before expiry, so each call
    // needs a new one.
    let (github, pem, head) = github_with_app(240).await;
    let app = app(&github, &pem).await;
    let ended = review(&app, &head).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");
    assert_eq!(github.violations(), Vec::<String>::new());
    let exchanges = github.calls("apps/create-installation-access-token").len();
    let others = github.requests().len() - exchanges;
    assert_eq!(exchanges, others, "one fresh token per call when each is about to expire");
}
