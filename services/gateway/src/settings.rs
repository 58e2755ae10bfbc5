//! The gateway's settings: the shared ones and the `[gateway]` section.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prfix_runtime::db::DatabaseSettings;
use prfix_runtime::settings::{CommonSettings, Layers, SettingsError};
use secrecy::SecretString;
use serde::Deserialize;

use crate::ratelimit::Limits;

/// How strict start-up is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every secret must be given; nothing is generated.
    #[default]
    Production,
    /// `prfix up`: a missing signing key or admin password is generated (with a warning).
    Development,
}

/// Everything the gateway reads.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Shared settings (database, Redis, logs).
    pub common: CommonSettings,
    /// The `[gateway]` section.
    pub gateway: GatewaySettings,
    /// Password of the `admin` user created on first start (`PRFIX_BOOTSTRAP_ADMIN_PASSWORD` or
    /// `..._FILE`; never from the file).
    pub bootstrap_admin_password: Option<SecretString>,
    /// A signing key in PEM (`PRFIX_SIGNING_KEY` or `..._FILE`), used before `signing_key_files`.
    pub signing_key_pem: Option<SecretString>,
    /// The webhook secret of each forge connection of `gateway.forges`, by connection name
    /// (`PRFIX_FORGE_<NAME>_WEBHOOK_SECRET` or `..._FILE`; never from the file, never in the database).
    pub forge_webhook_secrets: BTreeMap<String, SecretString>,
}

/// Which forge sends a connection's webhooks, and so how they are signed and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// GitHub (`X-Hub-Signature-256`: HMAC-SHA256 of the body).
    GitHub,
    /// GitLab (`X-Gitlab-Token`: the secret token itself).
    GitLab,
    /// Gitea (`X-Gitea-Signature`: HMAC-SHA256 of the body); Forgejo's headers are accepted too.
    Gitea,
    /// Forgejo (`X-Forgejo-Signature`, or Gitea's headers, which Forgejo sends as well).
    Forgejo,
}

impl ForgeKind {
    /// The lowercase name, as configured and audited.
    pub fn name(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Gitea => "gitea",
            Self::Forgejo => "forgejo",
        }
    }
}

/// One forge that sends webhooks to `POST /v1/forges/<name>/webhook` (`[gateway.forges.<name>]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConnection {
    /// `github`, `gitlab`, `gitea` or `forgejo`.
    pub kind: ForgeKind,
    /// The repositories whose deliveries are taken (`owner/name`; GitLab's full project path
    /// `group/subgroup/project`); a delivery for any other is refused (404).
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Review draft pull requests too (off: a draft is reviewed once it is marked ready).
    #[serde(default)]
    pub review_drafts: bool,
}

/// The environment variable holding the webhook secret of the forge connection `name`.
pub fn forge_secret_variable(name: &str) -> String {
    format!("PRFIX_FORGE_{}_WEBHOOK_SECRET", name.to_ascii_uppercase().replace('-', "_"))
}

/// The `[gateway]` section (`PRFIX_GATEWAY__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address the public endpoint listens on (gRPC, and later REST and gRPC-web, on one port).
    pub listen: SocketAddr,
    /// Address of the admin HTTP server (`GET /metrics` for Prometheus); keep it off the public network.
    pub admin_listen: SocketAddr,
    /// The agent service's address.
    pub agent_url: String,
    /// The audit service's address.
    pub audit_url: String,
    /// Time to open a connection to an upstream before answering UNAVAILABLE, in milliseconds.
    pub upstream_connect_timeout_ms: u64,
    /// Role the pooled sessions run as; empty keeps the login role.
    pub database_role: String,
    /// Maximum pooled database connections.
    pub database_pool_size: usize,
    /// Time to wait for a database connection, in milliseconds.
    pub database_connect_timeout_ms: u64,
    /// Time between NOT_SERVING and closing the listener at shutdown, in milliseconds.
    pub drain_delay_ms: u64,
    /// `production` (every secret given) or `development` (generated when missing).
    pub mode: Mode,
    /// PEM files of RS256 signing keys: the first signs, all are published (rotation).
    pub signing_key_files: Vec<PathBuf>,
    /// Where development mode keeps what it generates.
    pub data_dir: PathBuf,
    /// Access-token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Memory for password hashing, MiB: each hash at once takes 19 MiB, so this sets how many
    /// run at once (40: two). Allocated at start-up and reused.
    pub password_hash_memory_mib: usize,
    /// Longest wait for a hashing slot before RESOURCE_EXHAUSTED, in milliseconds.
    pub password_hash_queue_ms: u64,
    /// Rate limits per class.
    pub limits: Limits,
    /// Login limits by (user, address) and by account (docs/security.md, "Login limits").
    pub login_limits: crate::auth::login_limits::LoginLimitSettings,
    /// Most access records waiting for the audit service (beyond, new ones are dropped loudly).
    pub access_outbox_max: i64,
    /// Origins allowed to call from browsers (CORS); empty allows none.
    pub cors_allowed_origins: Vec<String>,
    /// PEM certificate chain; with `tls_key_file`, the gateway terminates TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Largest request body (a whole gRPC stream, REST body), bytes.
    pub max_request_bytes: usize,
    /// Largest header block, bytes.
    pub max_header_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Time to receive request headers and to finish a TLS handshake, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Time in-flight calls get to finish after the listener closed, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Forge connections by name: the name is the `{forge}` of `POST /v1/forges/{forge}/webhook`
    /// (docs/forges.md, "Webhooks"); each one's secret comes from `PRFIX_FORGE_<NAME>_WEBHOOK_SECRET`.
    pub forges: BTreeMap<String, ForgeConnection>,
    /// A console session ends after this many seconds without a call (docs/console.md).
    pub console_idle_secs: u64,
    /// A console session ends this many seconds after sign-in, however busy.
    pub console_absolute_secs: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            agent_url: "http://127.0.0.1:50051".to_owned(),
            audit_url: "http://127.0.0.1:50052".to_owned(),
            upstream_connect_timeout_ms: 1_000,
            database_role: "prfix_gateway".to_owned(),
            database_pool_size: 16,
            database_connect_timeout_ms: 5_000,
            drain_delay_ms: 0,
            shutdown_grace_ms: 30_000,
            mode: Mode::Production,
            signing_key_files: Vec::new(),
            data_dir: PathBuf::from(".prfix-data"),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            password_hash_memory_mib: 40,
            password_hash_queue_ms: 1_000,
            limits: Limits::default(),
            login_limits: crate::auth::login_limits::LoginLimitSettings::default(),
            access_outbox_max: 100_000,
            cors_allowed_origins: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            max_request_bytes: 16 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_concurrent_streams: 256,
            header_read_timeout_ms: 10_000,
            forges: BTreeMap::new(),
            console_idle_secs: 30 * 60,
            console_absolute_secs: 12 * 3600,
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
        let mut settings = Self {
            common: layers.common()?,
            gateway: layers.section("gateway")?,
            bootstrap_admin_password: prfix_runtime::settings::secret_from_env("PRFIX_BOOTSTRAP_ADMIN_PASSWORD")?,
            signing_key_pem: prfix_runtime::settings::secret_from_env("PRFIX_SIGNING_KEY")?,
            forge_webhook_secrets: BTreeMap::new(),
        };
        for name in settings.gateway.forges.keys() {
            if let Some(secret) = prfix_runtime::settings::secret_from_env(&forge_secret_variable(name))? {
                settings.forge_webhook_secrets.insert(name.clone(), secret);
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.gateway.limits.check([
            "gateway.limits.default",
            "gateway.limits.expensive",
            "gateway.limits.strict",
            "gateway.limits.internal",
        ])?;
        let login = &self.gateway.login_limits;
        for (key, quota) in [
            ("gateway.login_limits.pair", login.pair),
            ("gateway.login_limits.account_failures", login.account_failures),
            ("gateway.login_limits.throttled_pair", login.throttled_pair),
        ] {
            quota.check(key)?;
        }
        for (key, url) in
            [("gateway.agent_url", &self.gateway.agent_url), ("gateway.audit_url", &self.gateway.audit_url)]
        {
            let parsed: http::Uri = url
                .parse()
                .map_err(|e| SettingsError::Invalid { key, reason: format!("`{url}` is not a URL: {e}") })?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.authority().is_none() {
                return Err(SettingsError::Invalid {
                    key,
                    reason: format!("`{url}` must look like http(s)://host:port"),
                });
            }
            if parsed.scheme_str() == Some("https") && self.common.internal_tls_ca_file.is_none() {
                return Err(SettingsError::Invalid {
                    key,
                    reason: format!(
                        "`{url}` is https: set internal_tls_ca_file to the CA of the services' certificates"
                    ),
                });
            }
        }
        if self.gateway.password_hash_memory_mib < crate::auth::passwords::MIB_PER_HASH {
            return Err(SettingsError::Invalid {
                key: "gateway.password_hash_memory_mib",
                reason: format!(
                    "must be at least {} (the memory of one argon2id hash)",
                    crate::auth::passwords::MIB_PER_HASH
                ),
            });
        }
        if self.gateway.upstream_connect_timeout_ms == 0 {
            return Err(SettingsError::Invalid {
                key: "gateway.upstream_connect_timeout_ms",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.gateway.access_token_ttl_secs == 0 || self.gateway.access_token_ttl_secs > 3600 {
            return Err(SettingsError::Invalid {
                key: "gateway.access_token_ttl_secs",
                reason: "must be between 1 and 3600".to_owned(),
            });
        }
        if self.gateway.console_idle_secs == 0 || self.gateway.console_absolute_secs < self.gateway.console_idle_secs {
            return Err(SettingsError::Invalid {
                key: "gateway.console_absolute_secs",
                reason: "console_idle_secs must be at least 1 and console_absolute_secs at least console_idle_secs"
                    .to_owned(),
            });
        }
        for origin in &self.gateway.cors_allowed_origins {
            if origin == "*" || !(origin.starts_with("https://") || origin.starts_with("http://")) {
                return Err(SettingsError::Invalid {
                    key: "gateway.cors_allowed_origins",
                    reason: format!("`{origin}` must be an origin such as https://app.example.com (never *)"),
                });
            }
        }
        if self.gateway.tls_cert_file.is_some() != self.gateway.tls_key_file.is_some() {
            return Err(SettingsError::Invalid {
                key: "gateway.tls_cert_file",
                reason: "tls_cert_file and tls_key_file go together".to_owned(),
            });
        }
        if self.gateway.max_header_bytes < 1024 || self.gateway.max_request_bytes < 1024 {
            return Err(SettingsError::Invalid {
                key: "gateway.max_header_bytes",
                reason: "max_header_bytes and max_request_bytes must be at least 1024".to_owned(),
            });
        }
        for name in self.gateway.forges.keys() {
            let plain =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !plain {
                return Err(SettingsError::Invalid {
                    key: "gateway.forges",
                    reason: format!("`{name}`: a connection's name is lowercase letters, digits and `-`"),
                });
            }
            let secret = self.forge_webhook_secrets.get(name).map(|s| secrecy::ExposeSecret::expose_secret(s).len());
            if secret.unwrap_or(0) < 16 {
                return Err(SettingsError::Invalid {
                    key: "gateway.forges",
                    reason: format!(
                        "`{name}` needs a webhook secret of at least 16 characters in {} (or {}_FILE)",
                        forge_secret_variable(name),
                        forge_secret_variable(name)
                    ),
                });
            }
        }
        if self.gateway.database_pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "gateway.database_pool_size",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }

    /// How the server stops.
    pub fn drain(&self) -> prfix_runtime::grpc::Drain {
        prfix_runtime::grpc::Drain {
            delay: Duration::from_millis(self.gateway.drain_delay_ms),
            grace: Duration::from_millis(self.gateway.shutdown_grace_ms),
        }
    }

    /// How to reach the database.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.common.database_url.clone(),
            schema: "gateway".to_owned(),
            role: Some(self.gateway.database_role.clone()).filter(|r| !r.is_empty()),
            pool_size: self.gateway.database_pool_size,
            connect_timeout: Duration::from_millis(self.gateway.database_connect_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_forge(name: &str, secret: Option<&str>) -> Settings {
        let mut settings = Settings::default();
        let connection =
            ForgeConnection { kind: ForgeKind::GitHub, repositories: vec!["o/r".to_owned()], review_drafts: false };
        settings.gateway.forges.insert(name.to_owned(), connection);
        if let Some(secret) = secret {
            settings.forge_webhook_secrets.insert(name.to_owned(), SecretString::from(secret));
        }
        settings
    }

    #[test]
    fn a_forge_connection_without_its_secret_names_the_variable_to_set() {
        let err = with_forge("github-enterprise", None).validate().expect_err("refused").to_string();
        assert!(err.contains("PRFIX_FORGE_GITHUB_ENTERPRISE_WEBHOOK_SECRET"), "{err}");
        let short = with_forge("github", Some("short")).validate().expect_err("refused").to_string();
        assert!(short.contains("at least 16"), "{short}");
        with_forge("github", Some("0123456789abcdef")).validate().expect("a secret of 16 characters");
    }

    #[test]
    fn a_forge_connection_name_must_be_usable_in_a_url_and_a_variable() {
        let err = with_forge("Git Hub", Some("0123456789abcdef")).validate().expect_err("refused").to_string();
        assert!(err.contains("gateway.forges"), "{err}");
    }

    #[test]
    fn forge_connections_read_from_toml() {
        let file = std::env::temp_dir().join(format!("prfix-forges-{}.toml", uuid::Uuid::new_v4()));
        let text = "[gateway.forges.gitlab]\nkind = \"gitlab\"\nrepositories = [\"group/sub/app\"]\n\
                    [gateway.forges.codeberg]\nkind = \"forgejo\"\n";
        std::fs::write(&file, text).expect("a temporary file");
        let layers = Layers::load(Some(&file));
        let _ = std::fs::remove_file(&file);
        let section: GatewaySettings = layers.expect("loads").section("gateway").expect("parses");
        assert_eq!(section.forges["gitlab"].kind, ForgeKind::GitLab);
        assert_eq!(section.forges["gitlab"].repositories, ["group/sub/app"]);
        assert_eq!(section.forges["codeberg"].kind, ForgeKind::Forgejo);
    }

    #[test]
    fn limits_given_in_part_keep_the_rest_of_their_defaults_and_a_bad_one_is_named() {
        use prfix_runtime::ratelimit::Quota;
        let file = std::env::temp_dir().join(format!("prfix-limits-{}.toml", uuid::Uuid::new_v4()));
        let text = "[gateway.limits.default]\nburst = 500\n[gateway.login_limits.pair]\nper_minute = 20\n\
                    [gateway.login_limits]\nthrottle_secs = 60\n";
        std::fs::write(&file, text).expect("a temporary file");
        let layers = Layers::load(Some(&file));
        let _ = std::fs::remove_file(&file);
        let section: GatewaySettings = layers.expect("loads").section("gateway").expect("parses");
        assert_eq!(section.limits.default, Quota { per_minute: 1_200, burst: 500 });
        assert_eq!(section.limits.expensive, prfix_runtime::ratelimit::Limits::default().expensive);
        assert_eq!(section.login_limits.pair, Quota { per_minute: 20, burst: 5 });
        assert_eq!(section.login_limits.account_failures, Quota { per_minute: 2, burst: 20 });
        assert_eq!(section.login_limits.throttle_secs, 60);
        let mut settings = Settings::default();
        settings.gateway.limits.expensive = Quota { per_minute: 0, burst: 10 };
        let err = settings.validate().expect_err("refused").to_string();
        assert!(err.contains("gateway.limits.expensive") && err.contains("per_minute is 0"), "{err}");
        let mut settings = Settings::default();
        settings.gateway.login_limits.account_failures = Quota { per_minute: 2, burst: 0 };
        let err = settings.validate().expect_err("refused").to_string();
        assert!(err.contains("gateway.login_limits.account_failures") && err.contains("burst is 0"), "{err}");
    }

    #[test]
    fn an_upstream_url_without_a_scheme_is_named() {
        let mut settings = Settings::default();
        settings.gateway.agent_url = "127.0.0.1:50051".to_owned();
        let err = settings.validate().expect_err("refused").to_string();
        assert!(err.contains("gateway.agent_url"), "{err}");
    }
}
