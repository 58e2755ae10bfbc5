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
}

/// The `[agent]` section (`PRFIX_AGENT__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
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
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_role: "prfix_agent".to_owned(),
            database_pool_size: 16,
            database_connect_timeout_ms: 5_000,
            drain_delay_ms: 0,
            shutdown_grace_ms: 30_000,
            ollama_connect_timeout_ms: 2_000,
            ollama_request_timeout_ms: 10_000,
            audit_url: "http://127.0.0.1:8080".to_owned(),
            audit_outbox_max: 100_000,
        }
    }
}

impl Settings {
    /// Defaults, then `file` (or `PRFIX_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let layers = Layers::load(file)?;
        Self::from_layers(&layers)
    }

    /// Reads and validates both parts from already loaded layers.
    pub fn from_layers(layers: &Layers) -> Result<Self, SettingsError> {
        let settings = Self {
            common: layers.common()?,
            agent: layers.section("agent")?,
            audit_credential: prfix_runtime::settings::secret_from_env("PRFIX_AGENT_AUDIT_CREDENTIAL")?,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        if self.agent.database_pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "agent.database_pool_size",
                reason: "must be at least 1".to_owned(),
            });
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
