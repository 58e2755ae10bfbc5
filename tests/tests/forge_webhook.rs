//! Forge webhooks at the gateway (`POST /v1/forges/{forge}/webhook`): a delivery is taken only with
//! the forge's signature over its exact bytes, for a configured repository, once per delivery id;
//! everything else is refused as problem+json before anything is stored; every delivery, taken or
//! refused, is in the audit log with its forge, repository, event, delivery id and sender.

use std::time::Duration;

use prfix_gateway::webhook::signature::sign;
use prfix_gateway::{ForgeConnection, ForgeKind};
use prfix_proto::audit::v1 as audit;
use prfix_tests::fake_forge::webhooks;
use prfix_tests::forge_system::meta;
use prfix_tests::{TestApp, spawn_app_with};
use secrecy::SecretString;
use serde_json::{Value, json};

const GITHUB_SECRET: &str = "github-webhook-secret-0123456789";
const GITLAB_SECRET: &str = "gitlab-webhook-token-0123456789";
const GITEA_SECRET: &str = "gitea-webhook-secret-0123456789";
const REPOSITORY: &str = "octo-org/octo-repo";
const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

/// The system with a GitHub, a GitLab and a Gitea connection, each taking one repository.
async fn app() -> TestApp {
    spawn_app_with(|s| {
        for (name, kind, secret, repository) in [
            ("github", ForgeKind::GitHub, GITHUB_SECRET, REPOSITORY),
            ("gitlab", ForgeKind::GitLab, GITLAB_SECRET, "group/sub/app"),
            ("gitea", ForgeKind::Gitea, GITEA_SECRET, "gitea-org/app"),
        ] {
            s.gateway.forges.insert(
                name.to_owned(),
                ForgeConnection { kind, repositories: vec![repository.to_owned()], review_drafts: false },
            );
            s.forge_webhook_secrets.insert(name.to_owned(), SecretString::from(secret));
        }
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client")
}

fn url(app: &TestApp, forge: &str) -> String {
    format!("http://{}/v1/forges/{forge}/webhook", app.gateway.addr)
}

/// A `pull_request` `opened` delivery for `repository`, from the webhooks description's schema and
/// examples, checked against the schema after our changes.
fn pull_request_opened(repository: &str) -> Vec<u8> {
    let mut payload = webhooks::example("webhook-pull-request-opened");
    payload["number"] = json!(7);
    payload["pull_request"]["number"] = json!(7);
    payload["pull_request"]["head"]["sha"] = json!(HEAD);
    payload["repository"]["full_name"] = json!(repository);
    payload["sender"]["login"] = json!("octocat");
    webhooks::validate("webhook-pull-request-opened", &payload).expect("a payload GitHub could send");
    serde_json::to_vec(&payload).expect("JSON")
}

/// Sends a GitHub delivery; `signature` None sends none.
async fn github(app: &TestApp, delivery: &str, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
    let mut request = client()
        .post(url(app, "github"))
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/123abc")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", delivery)
        .header("x-github-hook-id", "12312312");
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.body(body).send().await.expect("the gateway answers")
}

fn github_signature(body: &[u8]) -> Option<String> {
    Some(format!("sha256={}", sign(GITHUB_SECRET.as_bytes(), body)))
}

/// The status and problem of a refusal, checked to be problem+json.
async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = response.text().await.expect("a body");
    assert!(content_type.starts_with("application/problem+json"), "{status} {content_type}: {body}");
    (status, serde_json::from_str(&body).expect("a problem is JSON"))
}

/// The audit events of `action`, oldest first.
async fn audited(app: &TestApp, action: &str) -> Vec<audit::AuditEvent> {
    let request = audit::ListEventsRequest { action: action.to_owned(), page_size: 100, ..Default::default() };
    let mut events = app.audit_client().list_events(request).await.expect("the audit log answers").into_inner().events;
    events.sort_by_key(|e| e.sequence);
    events
}

/// The deliveries the gateway has stored.
async fn stored(app: &TestApp) -> Vec<(String, String)> {
    let db = app.db.connect().await;
    let rows = db
        .query("SELECT forge, delivery_id FROM gateway.webhook_deliveries ORDER BY received_at, delivery_id", &[])
        .await
        .expect("deliveries");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test]
async fn a_signed_github_pull_request_opened_delivery_is_taken_once_and_audited() {
    let app = app().await;
    let body = pull_request_opened(REPOSITORY);
    let delivery = "0b989ba4-242f-11e5-81e1-c7b6966d2516";

    let taken = github(&app, delivery, body.clone(), github_signature(&body)).await;
    assert!(taken.status().is_success(), "{}", taken.status());
    let answer: Value = taken.json().await.expect("JSON");
    assert_eq!(answer["deliveryId"], delivery);
    assert_eq!(answer["repository"], REPOSITORY);
    assert_eq!(answer["event"], "pull_request");
    assert_ne!(answer["duplicate"], true);
    assert_eq!(stored(&app).await, vec![("github".to_owned(), delivery.to_owned())]);

    // GitHub's redelivery: the same id and bytes, acknowledged, nothing more stored.
    let again = github(&app, delivery, body.clone(), github_signature(&body)).await;
    assert!(again.status().is_success(), "{}", again.status());
    let answer: Value = again.json().await.expect("JSON");
    assert_eq!(answer["duplicate"], true);
    assert_eq!(stored(&app).await, vec![("github".to_owned(), delivery.to_owned())]);

    let events = audited(&app, "forge.webhook.received").await;
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(event.result, audit::AuditResult::Success as i32);
        assert_eq!(event.actor.as_ref().map(|a| a.subject.as_str()), Some("forge:github"));
        assert_eq!(event.resource, format!("forges/github/repositories/{REPOSITORY}"));
        assert_eq!(meta(event, "forge"), "github");
        assert_eq!(meta(event, "repository"), REPOSITORY);
        assert_eq!(meta(event, "event"), "pull_request");
        assert_eq!(meta(event, "delivery_id"), delivery);
        assert_eq!(meta(event, "sender"), "octocat");
    }
    assert_eq!(meta(&events[0], "duplicate"), "false");
    assert_eq!(meta(&events[1], "duplicate"), "true");
    assert!(audited(&app, "forge.webhook.refused").await.is_empty());
}

#[tokio::test]
async fn github_deliveries_without_a_good_signature_or_for_other_repositories_are_refused_unstored_and_audited() {
    let app = app().await;
    let body = pull_request_opened(REPOSITORY);

    let (status, bad) =
        problem(github(&app, "d-bad", body.clone(), Some(format!("sha256={}", "0".repeat(64)))).await).await;
    assert_eq!(status, 401, "{bad}");
    assert_eq!(bad["code"], "UNAUTHENTICATED");

    let (status, missing) = problem(github(&app, "d-missing", body.clone(), None).await).await;
    assert_eq!(status, 401, "{missing}");
    assert!(missing["detail"].as_str().unwrap_or_default().contains("X-Hub-Signature-256"), "{missing}");

    // Signed with the right secret, but over other bytes than those sent.
    let mut tampered = body.clone();
    tampered.push(b' ');
    let (status, _) = problem(github(&app, "d-tampered", tampered, github_signature(&body)).await).await;
    assert_eq!(status, 401);

    let other = pull_request_opened("someone/else");
    let (status, unknown) = problem(github(&app, "d-other", other.clone(), github_signature(&other)).await).await;
    assert_eq!(status, 404, "{unknown}");

    let (status, _) = problem(
        client()
            .post(url(&app, "nowhere"))
            .header("content-type", "application/json")
            .header("x-github-delivery", "d-nowhere")
            .body(body.clone())
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, 404);

    assert!(stored(&app).await.is_empty(), "nothing refused is stored");
    assert!(audited(&app, "forge.webhook.received").await.is_empty());
    let refused = audited(&app, "forge.webhook.refused").await;
    let ids: Vec<String> = refused.iter().map(|e| meta(e, "delivery_id")).collect();
    assert_eq!(ids, ["d-bad", "d-missing", "d-tampered", "d-other", ""], "{refused:?}");
    for event in &refused {
        assert_eq!(event.result, audit::AuditResult::Denied as i32, "{event:?}");
        assert!(!meta(event, "reason").is_empty(), "{event:?}");
    }
    assert_eq!(meta(&refused[0], "event"), "pull_request");
    assert_eq!(meta(&refused[0], "forge"), "github");
    assert_eq!(meta(&refused[3], "repository"), "someone/else");
    assert_eq!(meta(&refused[3], "sender"), "octocat");
    assert_eq!(meta(&refused[4], "forge"), "nowhere");
}

#[tokio::test]
async fn a_delivery_id_replayed_with_another_body_is_a_conflict_and_changes_nothing() {
    let app = app().await;
    let body = pull_request_opened(REPOSITORY);
    let taken = github(&app, "d-1", body.clone(), github_signature(&body)).await;
    assert!(taken.status().is_success());

    let mut payload: Value = serde_json::from_slice(&body).expect("JSON");
    payload["pull_request"]["head"]["sha"] = json!("0000000000000000000000000000000000000000");
    let replayed = serde_json::to_vec(&payload).expect("JSON");
    let (status, conflict) = problem(github(&app, "d-1", replayed.clone(), github_signature(&replayed)).await).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["code"], "ALREADY_EXISTS");

    assert_eq!(stored(&app).await, vec![("github".to_owned(), "d-1".to_owned())]);
    let refused = audited(&app, "forge.webhook.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(meta(&refused[0], "delivery_id"), "d-1");
    assert_eq!(refused[0].result, audit::AuditResult::Failure as i32);
}

#[tokio::test]
async fn a_delivery_over_the_body_limit_is_refused_with_413_unstored_and_audited() {
    let app = app().await;
    let body = vec![b' '; 30 * 1024 * 1024];
    let response = github(&app, "d-huge", body, Some(format!("sha256={}", "0".repeat(64)))).await;
    let (status, too_large) = problem(response).await;
    assert_eq!(status, 413, "{too_large}");
    assert!(stored(&app).await.is_empty());
    let refused = audited(&app, "forge.webhook.refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(meta(&refused[0], "forge"), "github");
    assert_eq!(meta(&refused[0], "delivery_id"), "d-huge");
}

#[tokio::test]
async fn a_delivery_without_a_length_that_grows_over_the_limit_is_refused_with_413_and_audited() {
    let app = spawn_app_with(|s| {
        s.gateway.max_request_bytes = 64 * 1024;
        s.gateway.forges.insert(
            "github".to_owned(),
            ForgeConnection {
                kind: ForgeKind::GitHub,
                repositories: vec![REPOSITORY.to_owned()],
                review_drafts: false,
            },
        );
        s.forge_webhook_secrets.insert("github".to_owned(), SecretString::from(GITHUB_SECRET));
    })
    .await;
    // Chunked: no Content-Length, so the transcoder finds the size while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..100).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = client()
        .post(url(&app, "github"))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "d-chunked")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("answered");
    let (status, _) = problem(response).await;
    assert_eq!(status, 413);
    assert!(stored(&app).await.is_empty());
    let refused = audited(&app, "forge.webhook.refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(meta(&refused[0], "delivery_id"), "d-chunked");
    assert_eq!(meta(&refused[0], "event"), "pull_request");
}

/// A GitLab `Merge Request Hook` delivery, as GitLab's documentation shows one (abridged).
fn merge_request_hook() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": { "id": 1, "name": "Administrator", "username": "root" },
        "project": { "id": 1, "name": "app", "path_with_namespace": "group/sub/app", "default_branch": "main" },
        "object_attributes": {
            "id": 99, "iid": 3, "action": "open", "state": "opened",
            "source_branch": "feature", "target_branch": "main",
            "last_commit": { "id": HEAD, "message": "Fix" }
        }
    }))
    .expect("JSON")
}

async fn gitlab(app: &TestApp, delivery: &str, token: &str) -> reqwest::Response {
    client()
        .post(url(app, "gitlab"))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Merge Request Hook")
        .header("x-gitlab-event-uuid", delivery)
        .header("x-gitlab-token", token)
        .body(merge_request_hook())
        .send()
        .await
        .expect("answered")
}

#[tokio::test]
async fn a_gitlab_delivery_is_taken_with_its_token_and_refused_with_another() {
    let app = app().await;
    let taken = gitlab(&app, "gl-1", GITLAB_SECRET).await;
    assert!(taken.status().is_success(), "{}", taken.status());
    let (status, _) = problem(gitlab(&app, "gl-2", "gitlab-webhook-token-wrong").await).await;
    assert_eq!(status, 401);
    assert_eq!(stored(&app).await, vec![("gitlab".to_owned(), "gl-1".to_owned())]);
    let received = audited(&app, "forge.webhook.received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(meta(&received[0], "repository"), "group/sub/app");
    assert_eq!(meta(&received[0], "sender"), "root");
    assert_eq!(meta(&received[0], "event"), "Merge Request Hook");
    let refused = audited(&app, "forge.webhook.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(meta(&refused[0], "delivery_id"), "gl-2");
}

/// A Gitea `pull_request` delivery (abridged from Gitea's documentation).
fn gitea_pull_request() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "opened",
        "number": 2,
        "pull_request": { "id": 10, "number": 2, "head": { "ref": "feature", "sha": HEAD }, "base": { "ref": "main" } },
        "repository": { "id": 5, "name": "app", "full_name": "gitea-org/app" },
        "sender": { "id": 1, "login": "gitea-user", "username": "gitea-user" }
    }))
    .expect("JSON")
}

async fn gitea(app: &TestApp, delivery: &str, signature: &str) -> reqwest::Response {
    client()
        .post(url(app, "gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", "pull_request")
        .header("x-gitea-delivery", delivery)
        .header("x-gitea-signature", signature)
        .body(gitea_pull_request())
        .send()
        .await
        .expect("answered")
}

#[tokio::test]
async fn a_gitea_delivery_is_taken_with_its_signature_and_refused_with_another() {
    let app = app().await;
    let good = sign(GITEA_SECRET.as_bytes(), &gitea_pull_request());
    let taken = gitea(&app, "gt-1", &good).await;
    assert!(taken.status().is_success(), "{}", taken.status());
    let bad = sign(b"another-secret-of-some-length", &gitea_pull_request());
    let (status, _) = problem(gitea(&app, "gt-2", &bad).await).await;
    assert_eq!(status, 401);
    assert_eq!(stored(&app).await, vec![("gitea".to_owned(), "gt-1".to_owned())]);
    let received = audited(&app, "forge.webhook.received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(meta(&received[0], "repository"), "gitea-org/app");
    assert_eq!(meta(&received[0], "sender"), "gitea-user");
    assert_eq!(audited(&app, "forge.webhook.refused").await.len(), 1);
}

#[tokio::test]
async fn a_review_delivery_the_agent_cannot_take_is_refused_with_503_and_forgotten_so_a_redelivery_is_taken() {
    let app = app().await;
    // A second gateway whose agent cannot be reached (nothing listens on port 9).
    let unreachable = app
        .spawn_gateway(|s| {
            s.gateway.agent_url = "http://127.0.0.1:9".to_owned();
            let connection = ForgeConnection {
                kind: ForgeKind::GitHub,
                repositories: vec![REPOSITORY.to_owned()],
                review_drafts: false,
            };
            s.gateway.forges.insert("github".to_owned(), connection);
            s.forge_webhook_secrets.insert("github".to_owned(), SecretString::from(GITHUB_SECRET));
        })
        .await;
    let body = pull_request_opened(REPOSITORY);
    let delivery = "d-agent-down";
    let response = client()
        .post(format!("http://{}/v1/forges/github/webhook", unreachable.addr))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", github_signature(&body).unwrap_or_default())
        .body(body.clone())
        .send()
        .await
        .expect("answered");
    let (status, problem) = problem(response).await;
    assert_eq!(status, 503, "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("send it again")), "{problem}");
    assert!(stored(&app).await.is_empty(), "the delivery is not kept");
    let refused = audited(&app, "forge.webhook.refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(meta(&refused[0], "delivery_id"), delivery);

    // GitHub's redelivery reaches a gateway whose agent answers: taken, not a duplicate.
    let again = github(&app, delivery, body.clone(), github_signature(&body)).await;
    assert!(again.status().is_success(), "{}", again.status());
    let answer: Value = again.json().await.expect("JSON");
    assert_ne!(answer["duplicate"], true, "{answer}");
    assert_eq!(stored(&app).await, vec![("github".to_owned(), delivery.to_owned())]);
}
