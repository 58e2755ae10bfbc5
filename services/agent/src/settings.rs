//! The agent's settings: the shared ones and the `[agent]` section.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use prfix_runtime::db::DatabaseSettings;
use prfix_runtime::settings::{CommonSettings, Layers, SettingsError};
use serde::Deserialize;

/// Everything the agent reads.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Shared settings (database, Ollama, logs).
    pub common: CommonSettings,
    /// The `[agent]` section.
    pub agent: AgentSettings,
    /// Credential for appending to the audit log through `agent.audit_url`: an API key of a user
    /// with role `service` (`PRFIX_AGENT_AUDIT_CREDENTIAL` or `..._FILE`; never from the file).
    pub audit_credential: Option<secrecy::SecretString>,
    /// The `[flags]` section.
    pub flags: prfix_flags::FlagSettings,
    /// The API token of each forge connection of `agent.forges`, by connection name
    /// (`PRFIX_FORGE_<NAME>_TOKEN` or `..._FILE`; never from the file, never in the database).
    pub forge_tokens: std::collections::BTreeMap<String, secrecy::SecretString>,
    /// The GitHub App private key (PEM) of each connection with an `app_id`
    /// (`PRFIX_FORGE_<NAME>_APP_KEY` or `..._FILE`).
    pub forge_app_keys: std::collections::BTreeMap<String, secrecy::SecretString>,
    /// Where the settings were read from, so SIGHUP re-reads the flags from there; `None` for
    /// settings built in code (tests), which have nothing to re-read.
    pub reload_from: Option<ReloadFrom>,
}

/// The sources the settings were loaded from.
#[derive(Debug, Clone, Default)]
pub struct ReloadFrom {
    /// The file given on the command line (else `PRFIX_CONFIG`, read again).
    pub file: Option<std::path::PathBuf>,
}

impl ReloadFrom {
    /// Re-reads the `[flags]` section from the same file and the environment.
    pub fn reload(&self) -> Result<prfix_flags::FlagSettings, SettingsError> {
        let layers = Layers::load(self.file.as_deref())?;
        prfix_flags::FlagSettings::from_layers(&layers)
    }
}

/// The `[agent]` section (`PRFIX_AGENT__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Address of the admin HTTP server (`GET /metrics` for Prometheus); keep it off the public network.
    pub admin_listen: SocketAddr,
    /// Role the pooled sessions run as; empty keeps the login role.
    pub database_role: String,
    /// Maximum pooled database connections.
    pub database_pool_size: usize,
    /// Time to wait for a database connection, in milliseconds.
    pub database_connect_timeout_ms: u64,
    /// Time between NOT_SERVING and closing the listener at shutdown, in milliseconds.
    pub drain_delay_ms: u64,
    /// Time in-flight calls get to finish after the listener closed, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Time to connect to an Ollama endpoint, in milliseconds.
    pub ollama_connect_timeout_ms: u64,
    /// Time for a short Ollama call (model list, version), in milliseconds.
    pub ollama_request_timeout_ms: u64,
    /// Where the audit outbox relay appends (the gateway, which exchanges the API key).
    pub audit_url: String,
    /// Most audit records waiting in the outbox.
    pub audit_outbox_max: i64,
    /// Time from a chat request to the model's first token (includes loading the model), in ms.
    pub ollama_first_token_timeout_ms: u64,
    /// Longest silence between two tokens of an answer, in ms.
    pub ollama_token_gap_timeout_ms: u64,
    /// Longest whole chat call, in ms.
    pub ollama_call_timeout_ms: u64,
    /// Time between health checks of each Ollama endpoint, in ms.
    pub ollama_health_interval_ms: u64,
    /// How long Ollama keeps a model loaded after a call (Ollama duration syntax, `"30m"`).
    pub ollama_keep_alive: String,
    /// Stream answers from Ollama (off for proxies that buffer streamed responses: only the call
    /// limit applies then).
    pub ollama_stream: bool,
    /// Chat calls each Ollama endpoint serves at once (Ollama's `OLLAMA_NUM_PARALLEL`, 1 by
    /// default for one model); further calls wait in the agent, where their time limits have not
    /// started yet.
    pub ollama_parallel: usize,
    /// Retries of a model call that failed with a fault that heals (503 busy, a runner that died,
    /// a broken stream), on another endpoint when one has the model.
    pub ollama_retries: u32,
    /// Pause before the first such retry, in ms; each next one doubles it (with jitter).
    pub ollama_retry_base_ms: u64,
    /// Longest pause between such retries, in ms.
    pub ollama_retry_max_ms: u64,
    /// Context length assumed when `/api/show` does not report one, in tokens.
    pub default_context_tokens: u32,
    /// Model for reviews, describes and fix plans (the reasoning model).
    pub reasoning_model: String,
    /// Model for fix edits (the coding model).
    pub coding_model: String,
    /// Further models a request may ask for; the two above are always allowed.
    pub model_allowlist: Vec<String>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Sampling seed, for repeatable answers (`-1`: none).
    pub seed: i64,
    /// Most tokens a model may write in one answer.
    pub max_output_tokens: u32,
    /// Tasks this replica works at once.
    pub workers: usize,
    /// How long a claimed task is held without renewal before another replica may take it, in ms.
    pub lease_ms: u64,
    /// Time between looks at the queue when it was empty, in ms.
    pub queue_poll_ms: u64,
    /// Claims of one task before it fails (a task that keeps killing its worker).
    pub max_task_attempts: i32,
    /// Queued and running tasks one user may have.
    pub max_active_tasks_per_user: i64,
    /// Queued and running tasks in all.
    pub max_active_tasks: i64,
    /// Model calls one task may make; a review of many parts may make up to three per part and
    /// the retries of one call more (this is the floor).
    pub max_model_calls_per_task: u32,
    /// Chunks of one review sent to models at once.
    pub review_chunk_concurrency: usize,
    /// Findings a review returns at most, unless the request asks for fewer.
    pub max_findings: usize,
    /// Attempts to get fix edits that apply, unless the request asks for fewer.
    pub max_fix_attempts: u32,
    /// Lowest similarity, in thousandths, for a fuzzy SEARCH match.
    pub fuzzy_match_permille: u16,
    /// Files up to this many lines are rewritten whole by the coding model; larger ones by
    /// SEARCH/REPLACE blocks.
    pub whole_file_max_lines: usize,
    /// Limits of a change set.
    pub limits: ChangeSetLimits,
    /// Forge connections the agent reads pull requests from and posts reviews to, by name: the
    /// same names as `gateway.forges`, whose webhooks start the reviews (docs/forges.md).
    pub forges: std::collections::BTreeMap<String, ForgeSettings>,
}

/// Which API a forge connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKindSetting {
    /// GitHub or GitHub Enterprise Server.
    GitHub,
    /// GitLab.
    GitLab,
    /// Gitea.
    Gitea,
    /// Forgejo (Gitea's API).
    Forgejo,
}

impl ForgeKindSetting {
    /// The client's kind.
    pub fn client_kind(self) -> prfix_forge::ForgeKind {
        match self {
            Self::GitHub => prfix_forge::ForgeKind::GitHub,
            Self::GitLab => prfix_forge::ForgeKind::GitLab,
            Self::Gitea | Self::Forgejo => prfix_forge::ForgeKind::Gitea,
        }
    }
}

/// One forge connection of the agent (`[agent.forges.<name>]`); its token comes from
/// `PRFIX_FORGE_<NAME>_TOKEN` (or `..._FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeSettings {
    /// `github`, `gitlab`, `gitea` or `forgejo`.
    pub kind: ForgeKindSetting,
    /// The API's base URL: `https://api.github.com`, `https://HOST/api/v3` (Enterprise Server),
    /// `https://HOST/api/v4` (GitLab), `https://HOST/api/v1` (Gitea, Forgejo).
    pub api_url: String,
    /// The web address prfix's check links to (the gateway's public URL), when set.
    #[serde(default)]
    pub details_url: Option<String>,
    /// GitHub only: authenticate as this GitHub App (its id or client id) instead of with a token;
    /// its private key comes from `PRFIX_FORGE_<NAME>_APP_KEY` (or `..._FILE`).
    #[serde(default)]
    pub app_id: Option<String>,
    /// GitHub only, with `app_id`: the app's installation on the account of the repositories.
    #[serde(default)]
    pub installation_id: Option<u64>,
}

/// The environment variable holding the GitHub App private key of the forge connection `name`.
pub fn forge_app_key_variable(name: &str) -> String {
    format!("PRFIX_FORGE_{}_APP_KEY", name.to_ascii_uppercase().replace('-', "_"))
}

/// The environment variable holding the API token of the forge connection `name`.
pub fn forge_token_variable(name: &str) -> String {
    format!("PRFIX_FORGE_{}_TOKEN", name.to_ascii_uppercase().replace('-', "_"))
}

/// Limits of a change set (`[agent.limits]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeSetLimits {
    /// Bytes of the diff.
    pub max_diff_bytes: usize,
    /// Files in `files`.
    pub max_files: usize,
    /// Files in `context_files`.
    pub max_context_files: usize,
    /// Bytes of one file's content.
    pub max_file_bytes: usize,
    /// Bytes of everything together.
    pub max_total_bytes: usize,
    /// Bytes of a fix's check output or instruction.
    pub max_problem_bytes: usize,
}

impl Default for ChangeSetLimits {
    fn default() -> Self {
        Self {
            max_diff_bytes: 2 * 1024 * 1024,
            max_files: 500,
            max_context_files: 50,
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 12 * 1024 * 1024,
            max_problem_bytes: 256 * 1024,
        }
    }
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            database_role: "prfix_agent".to_owned(),
            database_pool_size: 16,
            database_connect_timeout_ms: 5_000,
            drain_delay_ms: 0,
            shutdown_grace_ms: 30_000,
            ollama_connect_timeout_ms: 2_000,
            ollama_request_timeout_ms: 10_000,
            audit_url: "http://127.0.0.1:8080".to_owned(),
            audit_outbox_max: 100_000,
            ollama_first_token_timeout_ms: 180_000,
            ollama_token_gap_timeout_ms: 60_000,
            ollama_call_timeout_ms: 900_000,
            ollama_health_interval_ms: 15_000,
            ollama_keep_alive: "30m".to_owned(),
            ollama_stream: true,
            ollama_parallel: 1,
            ollama_retries: 3,
            ollama_retry_base_ms: 200,
            ollama_retry_max_ms: 5_000,
            default_context_tokens: 8_192,
            reasoning_model: "qwen2.5-coder:14b".to_owned(),
            coding_model: "qwen2.5-coder:14b".to_owned(),
            model_allowlist: Vec::new(),
            temperature: 0.1,
            seed: 42,
            max_output_tokens: 4_096,
            workers: 2,
            lease_ms: 30_000,
            queue_poll_ms: 500,
            max_task_attempts: 3,
            max_active_tasks_per_user: 8,
            max_active_tasks: 1_000,
            max_model_calls_per_task: 40,
            review_chunk_concurrency: 2,
            max_findings: 50,
            max_fix_attempts: 3,
            fuzzy_match_permille: 850,
            whole_file_max_lines: 150,
            limits: ChangeSetLimits::default(),
            forges: std::collections::BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Defaults, then `file` (or `PRFIX_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let layers = Layers::load(file)?;
        let mut settings = Self::from_layers(&layers)?;
        settings.reload_from = Some(ReloadFrom { file: file.map(Path::to_path_buf) });
        Ok(settings)
    }

    /// Reads and validates both parts from already loaded layers.
    pub fn from_layers(layers: &Layers) -> Result<Self, SettingsError> {
        let mut settings = Self {
            common: layers.common()?,
            agent: layers.section("agent")?,
            audit_credential: prfix_runtime::settings::secret_from_env("PRFIX_AGENT_AUDIT_CREDENTIAL")?,
            flags: prfix_flags::FlagSettings::from_layers(layers)?,
            forge_tokens: std::collections::BTreeMap::new(),
            forge_app_keys: std::collections::BTreeMap::new(),
            reload_from: None,
        };
        for name in settings.agent.forges.keys() {
            if let Some(token) = prfix_runtime::settings::secret_from_env(&forge_token_variable(name))? {
                settings.forge_tokens.insert(name.clone(), token);
            }
            if let Some(key) = prfix_runtime::settings::secret_from_env(&forge_app_key_variable(name))? {
                settings.forge_app_keys.insert(name.clone(), key);
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.flags.validate()?;
        if self.agent.database_pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "agent.database_pool_size",
                reason: "must be at least 1".to_owned(),
            });
        }
        let positive: [(&'static str, u64); 10] = [
            ("agent.ollama_parallel", self.agent.ollama_parallel as u64),
            ("agent.ollama_first_token_timeout_ms", self.agent.ollama_first_token_timeout_ms),
            ("agent.ollama_token_gap_timeout_ms", self.agent.ollama_token_gap_timeout_ms),
            ("agent.ollama_call_timeout_ms", self.agent.ollama_call_timeout_ms),
            ("agent.ollama_health_interval_ms", self.agent.ollama_health_interval_ms),
            ("agent.lease_ms", self.agent.lease_ms),
            ("agent.queue_poll_ms", self.agent.queue_poll_ms),
            ("agent.workers", self.agent.workers as u64),
            ("agent.review_chunk_concurrency", self.agent.review_chunk_concurrency as u64),
            ("agent.max_model_calls_per_task", u64::from(self.agent.max_model_calls_per_task)),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(SettingsError::Invalid { key, reason: "must be at least 1".to_owned() });
            }
        }
        if self.agent.reasoning_model.trim().is_empty() || self.agent.coding_model.trim().is_empty() {
            return Err(SettingsError::Invalid {
                key: "agent.reasoning_model",
                reason: "agent.reasoning_model and agent.coding_model must name models".to_owned(),
            });
        }
        if self.agent.fuzzy_match_permille > 1000 {
            return Err(SettingsError::Invalid {
                key: "agent.fuzzy_match_permille",
                reason: "is in thousandths: at most 1000".to_owned(),
            });
        }
        for (name, forge) in &self.agent.forges {
            let invalid = |reason: String| SettingsError::Invalid { key: "agent.forges", reason };
            match (&forge.app_id, forge.installation_id) {
                (Some(_), _) if forge.kind != ForgeKindSetting::GitHub => {
                    return Err(invalid(format!("`{name}`: app_id is for GitHub connections only")));
                }
                (Some(_), None) => return Err(invalid(format!("`{name}`: app_id needs installation_id"))),
                (None, Some(_)) => return Err(invalid(format!("`{name}`: installation_id needs app_id"))),
                (Some(_), Some(_)) if !self.forge_app_keys.contains_key(name) => {
                    return Err(invalid(format!(
                        "`{name}` needs the GitHub App's private key in {} (or {0}_FILE)",
                        forge_app_key_variable(name)
                    )));
                }
                (Some(_), Some(_)) => {}
                (None, None) if !self.forge_tokens.contains_key(name) => {
                    return Err(invalid(format!(
                        "`{name}` needs an API token in {} (or {0}_FILE)",
                        forge_token_variable(name)
                    )));
                }
                (None, None) => {}
            }
            let url = forge.api_url.trim();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(SettingsError::Invalid {
                    key: "agent.forges",
                    reason: format!("`{name}`: api_url `{url}` is not an http(s) URL"),
                });
            }
        }
        if self.agent.ollama_request_timeout_ms == 0 {
            return Err(SettingsError::Invalid {
                key: "agent.ollama_request_timeout_ms",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }

    /// How the server stops.
    pub fn drain(&self) -> prfix_runtime::grpc::Drain {
        prfix_runtime::grpc::Drain {
            delay: Duration::from_millis(self.agent.drain_delay_ms),
            grace: Duration::from_millis(self.agent.shutdown_grace_ms),
        }
    }

    /// How to reach the database.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.common.database_url.clone(),
            schema: "agent".to_owned(),
            role: Some(self.agent.database_role.clone()).filter(|r| !r.is_empty()),
            pool_size: self.agent.database_pool_size,
            connect_timeout: Duration::from_millis(self.agent.database_connect_timeout_ms),
        }
    }

    /// Time limits of one chat call.
    pub fn call_limits(&self) -> crate::ollama::CallLimits {
        crate::ollama::CallLimits {
            first_token: Duration::from_millis(self.agent.ollama_first_token_timeout_ms),
            token_gap: Duration::from_millis(self.agent.ollama_token_gap_timeout_ms),
            total: Duration::from_millis(self.agent.ollama_call_timeout_ms),
        }
    }

    /// How model calls that failed with a fault that heals are retried.
    pub fn retry_policy(&self) -> crate::ollama::RetryPolicy {
        crate::ollama::RetryPolicy {
            retries: self.agent.ollama_retries,
            base: Duration::from_millis(self.agent.ollama_retry_base_ms),
            cap: Duration::from_millis(self.agent.ollama_retry_max_ms.max(self.agent.ollama_retry_base_ms)),
        }
    }

    /// The Ollama endpoints, in the order given.
    pub fn ollama_endpoints(&self) -> Vec<String> {
        self.common
            .ollama_url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }
}
