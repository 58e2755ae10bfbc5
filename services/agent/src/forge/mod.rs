//! The agent's forge connections (`[agent.forges.<name>]`): a [`prfix_forge::Forge`] client per
//! connection, made once at start-up from its settings and token, and what a review started by a
//! webhook posts back (rendered by [`render`], configured by the repository's `.prfix.toml`,
//! [`repo_config`]), what a push's review covers ([`incremental`]), and the `/ask` and `/fix`
//! commands ([`ask`], [`fix`]).

pub mod ask;
pub mod create;
pub mod fix;
pub mod incremental;
pub mod render;
pub mod repo_config;
pub mod suggest;

use std::collections::BTreeMap;

use prfix_forge::{Forge, ForgeConfig, ForgeError, GitHubApp, PullRequest, RetryPolicy};

use crate::settings::Settings;

/// The forge clients by connection name.
#[derive(Debug, Clone, Default)]
pub struct Forges {
    clients: BTreeMap<String, Connection>,
}

/// One connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its client.
    pub forge: Forge,
    /// Where the check links to, when configured.
    pub details_url: Option<String>,
}

impl Forges {
    /// The clients of `settings.agent.forges` (each one's token checked present by
    /// [`Settings::validate`]).
    pub fn new(settings: &Settings) -> Result<Self, ForgeError> {
        let mut clients = BTreeMap::new();
        for (name, forge) in &settings.agent.forges {
            let github_app = match (&forge.app_id, forge.installation_id, settings.forge_app_keys.get(name)) {
                (Some(app_id), Some(installation_id), Some(key)) => {
                    Some(GitHubApp { app_id: app_id.clone(), installation_id, private_key: key.clone() })
                }
                _ => None,
            };
            let token = match (settings.forge_tokens.get(name), &github_app) {
                (Some(token), _) => token.clone(),
                (None, Some(_)) => secrecy::SecretString::from(String::new()),
                (None, None) => continue,
            };
            let config = ForgeConfig {
                kind: forge.kind.client_kind(),
                api_url: forge.api_url.trim().to_owned(),
                token,
                retry: RetryPolicy::default(),
                on_retry: None,
                github_app,
            };
            let connection = Connection { forge: Forge::new(config)?, details_url: forge.details_url.clone() };
            clients.insert(name.clone(), connection);
        }
        Ok(Self { clients })
    }

    /// The connection `name`.
    pub fn get(&self, name: &str) -> Option<&Connection> {
        self.clients.get(name)
    }

    /// Every connection, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Connection)> {
        self.clients.iter()
    }
}

/// Tells the commenter that the accepted command `command` did not finish (the 👀 alone would
/// promise an answer), pointing at the task whose error says why: the error itself stays with the
/// operator (it can name internal endpoints). Best effort; `error` is returned as it came. A task
/// that was cancelled or lost to another replica says nothing.
pub(crate) async fn told(
    job: &crate::run::Job,
    forge: &Forge,
    pr: &PullRequest,
    command: &str,
    error: crate::run::RunError,
) -> crate::run::RunError {
    if matches!(error, crate::run::RunError::Lost) {
        return error;
    }
    let reply = format!(
        "prfix could not finish `{command}` on commit {} (task `{}`); an operator can see why in the task's error.",
        incremental::short(&pr.head_sha),
        job.task_id
    );
    if let Err(e) = forge.reply(pr, &reply).await {
        tracing::warn!(task_id = %job.task_id, error = %e, "cannot tell the commenter that the command failed");
    }
    error
}

/// Whether a forge task may post its result now: `forge.post` was on when the task was created (as
/// recorded on it) and is still on for the task's context, so an operator who turns it off stops
/// posting at once, also for tasks already queued or running. When it is off the result is kept on
/// the task, and a progress event says why nothing was posted.
pub(crate) async fn may_post(job: &crate::run::Job) -> Result<bool, crate::run::RunError> {
    use prfix_flags::known::FORGE_POST;
    let held_at_creation = job.flags.enabled(FORGE_POST) == Some(false);
    let now = job.engine.flags.evaluate(FORGE_POST, &job.flags.context.to_context());
    if !held_at_creation && now.enabled {
        return Ok(true);
    }
    let when =
        if held_at_creation { "when the task was created".to_owned() } else { format!("from {}", now.source.as_str()) };
    job.progress(
        format!(
            "not posted to the pull request: the flag `{FORGE_POST}` is off ({when}); the result is kept on the task"
        ),
        1,
        1,
    )
    .await?;
    Ok(false)
}
