//! Signed GitHub deliveries for the system under test, their payloads taken from GitHub's webhooks
//! description (`@octokit/openapi-webhooks`) examples and checked against its schemas after the
//! test's changes, signed the way GitHub signs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::TestApp;
use crate::fake_forge::webhooks;

/// Deliveries of one repository's events to the connection `name`.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// The connection's name (the webhook's URL).
    pub name: &'static str,
    /// `owner/name`.
    pub repository: &'static str,
    /// The webhook secret the deliveries are signed with.
    pub secret: &'static str,
    /// The pull request the events are about.
    pub number: u64,
}

impl Hooks {
    /// A `pull_request` delivery of `action` for the head `head`, opened by `octocat`, sent by
    /// `pusher`.
    pub fn pull_request(&self, action: &str, head: &str, draft: bool) -> Vec<u8> {
        let schema = format!("webhook-pull-request-{}", action.replace('_', "-"));
        let mut payload = webhooks::example(&schema);
        payload["number"] = json!(self.number);
        payload["pull_request"]["number"] = json!(self.number);
        payload["pull_request"]["head"]["sha"] = json!(head);
        payload["pull_request"]["draft"] = json!(draft);
        payload["pull_request"]["user"]["login"] = json!("octocat");
        payload["repository"]["full_name"] = json!(self.repository);
        payload["sender"]["login"] = json!("pusher");
        webhooks::validate(&schema, &payload).expect("a payload GitHub could send");
        serde_json::to_vec(&payload).expect("JSON")
    }

    /// An `issue_comment` `created` delivery: `body` commented on the pull request (opened by
    /// `octocat`) by `login`.
    pub fn comment(&self, login: &str, body: &str, comment_id: u64) -> Vec<u8> {
        let schema = "webhook-issue-comment-created";
        let (repository, number) = (self.repository, self.number);
        let mut payload = webhooks::example(schema);
        payload["issue"]["number"] = json!(number);
        payload["issue"]["pull_request"] = json!({
            "url": format!("https://api.github.com/repos/{repository}/pulls/{number}"),
            "html_url": format!("https://github.com/{repository}/pull/{number}"),
            "diff_url": format!("https://github.com/{repository}/pull/{number}.diff"),
            "patch_url": format!("https://github.com/{repository}/pull/{number}.patch"),
        });
        payload["issue"]["user"]["login"] = json!("octocat");
        // The description's own example of the app a comment was made through does not meet its
        // schema (`events` is a string where an array is asked): a person's comment names no app.
        payload["comment"]["performed_via_github_app"] = Value::Null;
        if let Some(issue) = payload["issue"].as_object_mut() {
            issue.insert("performed_via_github_app".to_owned(), Value::Null);
        }
        payload["comment"]["id"] = json!(comment_id);
        payload["comment"]["body"] = json!(body);
        payload["comment"]["user"]["login"] = json!(login);
        payload["repository"]["full_name"] = json!(repository);
        payload["sender"]["login"] = json!(login);
        webhooks::validate(schema, &payload).expect("a payload GitHub could send");
        serde_json::to_vec(&payload).expect("JSON")
    }

    /// Sends a signed delivery of `event` to the gateway; its answer (which must be a success
    /// within a second).
    pub async fn deliver(&self, app: &TestApp, event: &str, delivery: &str, body: Vec<u8>) -> Value {
        let started = std::time::Instant::now();
        let signature = prfix_gateway::webhook::signature::sign(self.secret.as_bytes(), &body);
        let response = reqwest::Client::new()
            .post(format!("http://{}/v1/forges/{}/webhook", app.gateway.addr, self.name))
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/123abc")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", format!("sha256={signature}"))
            .body(body)
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status();
        let answer: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "{status}: {answer}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the webhook answers within a second: {:?}",
            started.elapsed()
        );
        answer
    }

    /// Sends a signed delivery and returns the id of the task it started.
    pub async fn start(&self, app: &TestApp, event: &str, delivery: &str, body: Vec<u8>) -> String {
        let answer = self.deliver(app, event, delivery, body).await;
        answer["taskId"].as_str().unwrap_or_else(|| panic!("the delivery started no task: {answer}")).to_owned()
    }
}
