//! The system as forge tests run it: the services with one forge connection at the gateway
//! (webhooks) and at the agent (API calls to a fake forge), a branch of a real repository to make
//! pull requests from, signed deliveries, and the agent's audit records.
//!
//! Every forge test starts the same way; the differences (which forge, which repository, the
//! model's answer) are [`Connection`]'s fields.

pub mod github;

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1 as audit;
use secrecy::SecretString;

use crate::git::Repo;
use crate::{Reply, TestApp, spawn_app_configured};

/// The model the forge tests' connections review with.
pub const MODEL: &str = "qwen2.5-coder:14b";

/// One forge connection of the system under test.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its name (`github`), in both services' settings and the webhook's URL.
    pub name: &'static str,
    /// The forge.
    pub kind: prfix_gateway::ForgeKind,
    /// The fake forge's API URL.
    pub api_url: String,
    /// The one repository it serves.
    pub repository: &'static str,
    /// The webhook secret (GitLab: the token).
    pub secret: &'static str,
    /// The agent's token at the forge.
    pub token: &'static str,
}

/// Starts the system with `connection`, the fake model answering `answer` to every chat.
pub async fn spawn(connection: &Connection, answer: &str) -> TestApp {
    spawn_with(connection, answer, |_| {}).await
}

/// [`spawn`], with `agent` changing the agent's settings further (its flags, say).
pub async fn spawn_with(
    connection: &Connection,
    answer: &str,
    agent: impl FnOnce(&mut prfix_agent::Settings),
) -> TestApp {
    let agent_kind = match connection.kind {
        prfix_gateway::ForgeKind::GitHub => prfix_agent::settings::ForgeKindSetting::GitHub,
        prfix_gateway::ForgeKind::GitLab => prfix_agent::settings::ForgeKindSetting::GitLab,
        prfix_gateway::ForgeKind::Gitea | prfix_gateway::ForgeKind::Forgejo => {
            prfix_agent::settings::ForgeKindSetting::Gitea
        }
    };
    let app = spawn_app_configured(
        |s| {
            let gateway = prfix_gateway::ForgeConnection {
                kind: connection.kind,
                repositories: vec![connection.repository.to_owned()],
                review_drafts: false,
            };
            s.gateway.forges.insert(connection.name.to_owned(), gateway);
            s.forge_webhook_secrets.insert(connection.name.to_owned(), SecretString::from(connection.secret));
        },
        |s| {
            let forge = prfix_agent::settings::ForgeSettings {
                kind: agent_kind,
                api_url: connection.api_url.clone(),
                details_url: None,
                app_id: None,
                installation_id: None,
            };
            s.agent.forges.insert(connection.name.to_owned(), forge);
            s.forge_tokens.insert(connection.name.to_owned(), SecretString::from(connection.token));
            agent(s);
        },
    )
    .await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(answer));
    app
}

/// Waits (at most a minute) for the task `task_id` to end.
pub async fn wait_for_end(app: &TestApp, task_id: &str) -> pb::Task {
    crate::tasks::wait_for_end(&mut app.agent_client(), task_id, Duration::from_secs(60)).await
}

/// The agent's audit records of `action`, in the order written (its outbox: a relay ships them to
/// the audit log).
pub async fn agent_records(app: &TestApp, action: &str) -> Vec<audit::AuditEvent> {
    use prfix_proto::prost::Message;
    let pg = app.db.connect().await;
    let rows = pg.query("SELECT payload FROM agent.audit_outbox ORDER BY id", &[]).await.expect("read the outbox");
    rows.iter()
        .map(|r| audit::AuditEvent::decode(r.get::<_, Vec<u8>>(0).as_slice()).expect("an outbox record decodes"))
        .filter(|e| e.action == action)
        .collect()
}

/// A text value of an audit record's metadata (empty when absent).
pub fn meta(event: &audit::AuditEvent, key: &str) -> String {
    event
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(key))
        .and_then(|v| match &v.kind {
            Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A repository with `main` holding one file and a branch `feature` to commit to: the pull
/// request's history.
pub struct Branch {
    /// The repository.
    pub repo: Repo,
    /// `main`'s commit, the pull request's base.
    pub base: String,
    /// The file the commits change.
    pub path: String,
}

impl Branch {
    /// `main` with `path` holding `content`, and `feature` checked out from it.
    pub fn new(path: &str, content: &str) -> Self {
        let repo = Repo::init();
        repo.write(path, content);
        repo.commit("base");
        let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
        repo.git(&["checkout", "-q", "-b", "feature"]);
        Self { repo, base, path: path.to_owned() }
    }

    /// Commits `content` as the file; the new head and the pull request's diff (`base...head`).
    pub fn commit(&self, content: &str, message: &str) -> (String, String) {
        self.repo.write(&self.path, content);
        self.repo.commit(message);
        let head = self.repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
        let diff = self.repo.git(&["diff", "--no-color", &format!("{}...{head}", self.base)]);
        (head, diff)
    }

    /// Rewrites the branch: back to the base, then `content` committed (a force push's history).
    pub fn rewrite(&self, content: &str, message: &str) -> (String, String) {
        self.repo.git(&["reset", "-q", "--hard", &self.base]);
        self.commit(content, message)
    }
}

/// Sends a GitLab webhook delivery (`event`: `Merge Request Hook`, `Note Hook`) to the connection
/// `name` with its `token`; the task id the gateway answers with.
pub async fn deliver_gitlab(
    app: &TestApp,
    name: &str,
    token: &str,
    event: &str,
    delivery: &str,
    body: Vec<u8>,
) -> String {
    let request = webhook(app, name, body)
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", delivery)
        .header("x-gitlab-token", token);
    started(request).await
}

/// Sends a Gitea/Forgejo webhook delivery (`event`: `pull_request`, `issue_comment`) to the
/// connection `name`, signed with `secret` as Gitea signs; the task id the gateway answers with.
pub async fn deliver_gitea(
    app: &TestApp,
    name: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: Vec<u8>,
) -> String {
    let signature = prfix_gateway::webhook::signature::sign(secret.as_bytes(), &body);
    let request = webhook(app, name, body)
        .header("x-gitea-event", event)
        .header("x-gitea-delivery", delivery)
        .header("x-gitea-signature", signature);
    started(request).await
}

fn webhook(app: &TestApp, name: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("http://{}/v1/forges/{name}/webhook", app.gateway.addr))
        .header("content-type", "application/json")
        .body(body)
}

async fn started(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {answer}");
    answer["taskId"].as_str().unwrap_or_else(|| panic!("the delivery started no task: {answer}")).to_owned()
}
