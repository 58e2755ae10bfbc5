//! Typed settings, layered: built-in defaults, then an optional TOML file, then `PRFIX_...`
//! environment variables (`__` separates sections: `PRFIX_AUDIT__LISTEN`).
//!
//! Each service reads the shared top-level keys into [`CommonSettings`] and its own section
//! (`[gateway]`, `[agent]`, `[audit]`) into its own type. Tests build settings values directly
//! instead of touching the process environment.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The default database: a local Postgres with trust authentication.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/prfix";
/// The default Ollama endpoint.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file or an environment variable holds a value of the wrong shape.
    #[error("invalid setting `{key}` (from {source_name}): {reason}")]
    Parse {
        /// The setting's key (`audit.database_pool_size`).
        key: String,
        /// Where the value came from (the file, or the `PRFIX_` environment).
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file given does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value parsed but is not acceptable.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// The setting's key, as written in the file (`audit.listen`).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for collectors.
    #[default]
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// Settings shared by every service (top-level keys; `PRFIX_DATABASE_URL` and so on).
///
/// Unknown keys are not refused here because other `PRFIX_` variables (secrets read elsewhere,
/// test settings) share the environment; a file's unknown top-level keys are refused on load.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CommonSettings {
    /// Postgres URL. `sslmode` may be `disable`, `prefer`, `require` or `verify-full`
    /// (with `sslrootcert=<CA file>`).
    pub database_url: SecretString,
    /// Redis URL (`redis://` or `rediss://` for TLS); unset means no Redis.
    pub redis_url: Option<SecretString>,
    /// CA file for a `rediss://` Redis, when the server's certificate is not from a public CA.
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key this deployment writes.
    pub redis_key_prefix: String,
    /// Ollama endpoint(s), comma-separated.
    pub ollama_url: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax.
    pub log_level: String,
    /// The configuration file, when one was given (the key exists so that `PRFIX_CONFIG` is accepted).
    pub config: Option<PathBuf>,
    /// `iss` of access tokens.
    pub auth_issuer: String,
    /// `aud` of access tokens.
    pub auth_audience: String,
    /// Where services fetch the gateway's public keys.
    pub auth_jwks_url: String,
    /// A JWKS file to use instead of the URL (keys never come from the token itself).
    pub auth_jwks_file: Option<PathBuf>,
    /// Least time between two JWKS fetches, in milliseconds (an unknown `kid` fetches at most this often).
    pub auth_jwks_cooldown_ms: u64,
    /// Longest time, in milliseconds, a verifier may go without confirming that its copy of the
    /// token revocations is current; past it, tokens are refused (UNAVAILABLE) until it can.
    pub auth_revocations_max_staleness_ms: u64,
    /// CA (PEM) that signs the services' certificates: clients verify servers with it, and servers
    /// verify client certificates with it when `internal_tls_require_client_cert` is on.
    pub internal_tls_ca_file: Option<PathBuf>,
    /// This process's certificate chain (PEM) for service-to-service TLS: presented by a service's
    /// server, and by its clients for mutual TLS.
    pub internal_tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `internal_tls_cert_file`.
    pub internal_tls_key_file: Option<PathBuf>,
    /// Whether services demand a client certificate signed by the CA (mutual TLS).
    pub internal_tls_require_client_cert: bool,
    /// OTLP/gRPC endpoint of an OpenTelemetry collector (`http://collector:4317`); unset means spans
    /// are not exported (trace ids are still taken from `traceparent` and logged).
    pub otlp_endpoint: Option<String>,
    /// Share of new traces that are sampled for export, 0.0 to 1.0; a caller's sampling decision
    /// (the `traceparent` flags) is followed.
    pub trace_sample_ratio: f64,
    /// The limits by class that the agent and the audit service apply at their own ports (per
    /// principal, or per address for anonymous calls); the defaults are those of `gateway.limits`.
    pub service_limits: crate::ratelimit::Limits,
    /// Calls per client address that carry no credential or one that fails; over it, calls from
    /// the address are refused before any key is touched (gateway and services alike).
    #[serde(deserialize_with = "unauthenticated_limit")]
    pub unauthenticated_limit: crate::ratelimit::Quota,
    /// Time, in milliseconds, over which repeated denials of one address are counted into one
    /// audit event (the first is audited at once).
    pub denial_audit_window_ms: u64,
    /// Most addresses whose denials are counted apart; denials of further addresses share one
    /// record, so memory stays bounded.
    pub denial_audit_max_addresses: usize,
}

impl Default for CommonSettings {
    fn default() -> Self {
        Self {
            database_url: SecretString::from(DEFAULT_DATABASE_URL),
            redis_url: None,
            redis_ca_file: None,
            redis_key_prefix: "prfix:".to_owned(),
            ollama_url: DEFAULT_OLLAMA_URL.to_owned(),
            log_format: LogFormat::default(),
            log_level: "info".to_owned(),
            config: None,
            auth_issuer: "prfix".to_owned(),
            auth_audience: "prfix-api".to_owned(),
            auth_jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".to_owned(),
            auth_jwks_file: None,
            auth_jwks_cooldown_ms: 10_000,
            auth_revocations_max_staleness_ms: 5_000,
            internal_tls_ca_file: None,
            internal_tls_cert_file: None,
            internal_tls_key_file: None,
            internal_tls_require_client_cert: false,
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            service_limits: crate::ratelimit::Limits::default(),
            unauthenticated_limit: UNAUTHENTICATED_LIMIT,
            denial_audit_window_ms: 60_000,
            denial_audit_max_addresses: 10_000,
        }
    }
}

/// The default of `unauthenticated_limit`.
const UNAUTHENTICATED_LIMIT: crate::ratelimit::Quota = crate::ratelimit::Quota { per_minute: 600, burst: 100 };

/// `unauthenticated_limit` given in part: the rest is its default.
fn unauthenticated_limit<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<crate::ratelimit::Quota, D::Error> {
    Ok(crate::ratelimit::GivenQuota::deserialize(deserializer)?.or(UNAUTHENTICATED_LIMIT))
}

impl CommonSettings {
    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.internal_tls_cert_file.is_some() != self.internal_tls_key_file.is_some() {
            return Err(SettingsError::Invalid {
                key: "internal_tls_cert_file",
                reason: "internal_tls_cert_file and internal_tls_key_file go together".to_owned(),
            });
        }
        if self.internal_tls_require_client_cert && self.internal_tls_ca_file.is_none() {
            return Err(SettingsError::Invalid {
                key: "internal_tls_require_client_cert",
                reason: "needs internal_tls_ca_file to verify client certificates".to_owned(),
            });
        }
        self.service_limits.check([
            "service_limits.default",
            "service_limits.expensive",
            "service_limits.strict",
            "service_limits.internal",
        ])?;
        self.unauthenticated_limit.check("unauthenticated_limit")?;
        if !(100..=600_000).contains(&self.auth_revocations_max_staleness_ms) {
            return Err(SettingsError::Invalid {
                key: "auth_revocations_max_staleness_ms",
                reason: "must be between 100 and 600000 (milliseconds)".to_owned(),
            });
        }
        let url = self.database_url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(SettingsError::Invalid {
                key: "database_url",
                reason: "must start with postgres:// or postgresql://".to_owned(),
            });
        }
        if let Some(redis) = &self.redis_url {
            let redis = redis.expose_secret();
            if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
                return Err(SettingsError::Invalid {
                    key: "redis_url",
                    reason: "must start with redis:// or rediss://".to_owned(),
                });
            }
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(SettingsError::Invalid {
                key: "otlp_endpoint",
                reason: format!("`{url}` must start with http:// or https://"),
            });
        }
        if !(100..=3_600_000).contains(&self.denial_audit_window_ms) {
            return Err(SettingsError::Invalid {
                key: "denial_audit_window_ms",
                reason: "must be between 100 and 3600000 (milliseconds)".to_owned(),
            });
        }
        if self.denial_audit_max_addresses == 0 {
            return Err(SettingsError::Invalid {
                key: "denial_audit_max_addresses",
                reason: "must be at least 1".to_owned(),
            });
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err(SettingsError::Invalid {
                key: "trace_sample_ratio",
                reason: format!("{} is not between 0.0 and 1.0", self.trace_sample_ratio),
            });
        }
        for url in self.ollama_url.split(',') {
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SettingsError::Invalid {
                    key: "ollama_url",
                    reason: format!("`{url}` must start with http:// or https://"),
                });
            }
        }
        Ok(())
    }
}

impl SettingsError {
    /// Our error for figment's, with the key written as in the file (`audit.listen`).
    fn from_figment(error: figment::Error, section: Option<&str>) -> Self {
        let mut path: Vec<String> = error.path.iter().map(|p| p.to_lowercase()).collect();
        // extract_inner reports the section after the field; put it first.
        if let Some(section) = section {
            if path.last().map(String::as_str) == Some(section) {
                path.pop();
            }
            if path.first().map(String::as_str) != Some(section) {
                path.insert(0, section.to_owned());
            }
        }
        let source_name = match error.metadata.as_ref() {
            Some(m) => match &m.source {
                Some(figment::Source::File(path)) => format!("file {}", path.display()),
                _ => m.name.to_string(),
            },
            None => "settings".to_owned(),
        };
        Self::Parse { key: path.join("."), source_name, reason: error.kind.to_string() }
    }
}

/// The layered sources, read once; sections are extracted from it.
pub struct Layers {
    figment: Figment,
}

impl Layers {
    /// Reads the optional file (`file`, else `PRFIX_CONFIG`) and the `PRFIX_` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let env_file = std::env::var_os("PRFIX_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        Self::from_sources(file.as_deref(), Env::prefixed("PRFIX_").split("__"))
    }

    /// Reads the given file and environment provider (tests pass a provider of their own).
    pub fn from_sources(file: Option<&Path>, env: Env) -> Result<Self, SettingsError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(SettingsError::MissingFile(file.to_path_buf()));
            }
            check_file_keys(file)?;
            figment = figment.merge(Toml::file(file));
        }
        // Secrets may come from files mounted by the orchestrator: `PRFIX_X_FILE` is read by
        // the code that needs `X`; the environment layer ignores those keys' suffix.
        Ok(Self { figment: figment.merge(env) })
    }

    /// The shared top-level settings; service sections are read by [`Layers::section`].
    pub fn common(&self) -> Result<CommonSettings, SettingsError> {
        let common: CommonSettings = self.figment.extract().map_err(|e| SettingsError::from_figment(e, None))?;
        common.validate()?;
        Ok(common)
    }

    /// Whether `key` (`database_url`, `gateway.data_dir`) was given in the file or the environment,
    /// as opposed to left at its default (`prfix up` runs its own Postgres when `database_url` is not).
    pub fn is_set(&self, key: &str) -> bool {
        self.figment.find_value(key).is_ok()
    }

    /// A service's own section (`[audit]` in the file, `PRFIX_AUDIT__...` in the environment);
    /// defaults when absent. Unknown keys in the section are errors that name them.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, SettingsError> {
        if self.figment.find_value(name).is_err() {
            return Ok(T::default());
        }
        self.figment.extract_inner::<T>(name).map_err(|e| SettingsError::from_figment(e, Some(name)))
    }
}

/// Top-level keys a file may have: the shared settings and the sections.
const FILE_KEYS: &[&str] = &[
    "database_url",
    "redis_url",
    "redis_ca_file",
    "redis_key_prefix",
    "ollama_url",
    "log_format",
    "log_level",
    "auth_issuer",
    "auth_audience",
    "auth_jwks_url",
    "auth_jwks_file",
    "auth_jwks_cooldown_ms",
    "auth_revocations_max_staleness_ms",
    "internal_tls_ca_file",
    "internal_tls_cert_file",
    "internal_tls_key_file",
    "internal_tls_require_client_cert",
    "service_limits",
    "unauthenticated_limit",
    "denial_audit_window_ms",
    "denial_audit_max_addresses",
    "flags",
    "gateway",
    "agent",
    "audit",
    "cli",
];

/// Refuses a file whose top level has a key nobody reads (a typo would otherwise pass silently).
fn check_file_keys(file: &Path) -> Result<(), SettingsError> {
    let top: figment::value::Dict =
        Figment::from(Toml::file(file)).extract().map_err(|e| SettingsError::from_figment(e, None))?;
    match top.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
        Some(unknown) => Err(SettingsError::Parse {
            key: unknown.clone(),
            source_name: format!("file {}", file.display()),
            reason: format!("unknown setting; expected one of {}", FILE_KEYS.join(", ")),
        }),
        None => Ok(()),
    }
}

/// A secret given either directly (`PRFIX_X`) or as a file path (`PRFIX_X_FILE`), as mounted
/// secrets are. Returns `None` when neither is set.
pub fn secret_from_env(name: &str) -> Result<Option<SecretString>, SettingsError> {
    if let Ok(value) = std::env::var(name) {
        return Ok(Some(SecretString::from(value)));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var_os(&file_var) {
        None => Ok(None),
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned()))),
            Err(e) => Err(SettingsError::Invalid {
                key: "secret file",
                reason: format!("{file_var}={}: {e}", PathBuf::from(path).display()),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        listen: String,
        workers: u16,
    }

    /// Layers from a file's text and environment pairs, mapped the way `Env::split("__")` maps them.
    fn layers(toml: &str, env: &[(&str, &str)]) -> Result<Layers, SettingsError> {
        let mut file = tempfile();
        file.1.write_all(toml.as_bytes()).expect("temp file is writable");
        let mut figment = Figment::new().merge(Toml::file(&file.0));
        for (k, v) in env {
            let key = k.trim_start_matches("PRFIX_").to_lowercase().replace("__", ".");
            // Env parses values the same way (numbers and booleans inferred from the text).
            let value: figment::value::Value = v.parse().expect("any text parses to a value");
            figment = figment.merge(figment::providers::Serialized::default(&key, value));
        }
        Ok(Layers { figment })
    }

    fn tempfile() -> (PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("prfix-settings-{}.toml", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&path).expect("temp dir is writable");
        (path, file)
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let layers = layers(
            "log_level = \"debug\"\n[audit]\nlisten = \"0.0.0.0:1\"\nworkers = 3\n",
            &[("PRFIX_AUDIT__WORKERS", "7")],
        )
        .expect("layers");
        let common = layers.common().expect("common settings");
        assert_eq!(common.log_level, "debug");
        assert_eq!(common.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        let section: Section = layers.section("audit").expect("section");
        assert_eq!(section, Section { listen: "0.0.0.0:1".into(), workers: 7 });
        let missing: Section = layers.section("agent").expect("absent section is default");
        assert_eq!(missing, Section::default());
    }

    #[test]
    fn a_setting_left_at_its_default_is_told_from_one_given() {
        let layers =
            layers("[gateway]\ndata_dir = \"/srv/prfix\"\n", &[("PRFIX_REDIS_URL", "redis://r")]).expect("layers");
        assert!(layers.is_set("gateway.data_dir"));
        assert!(layers.is_set("redis_url"));
        assert!(!layers.is_set("database_url"));
        assert!(!layers.is_set("audit.data_dir"));
    }

    #[test]
    fn a_wrong_type_names_the_setting() {
        let layers = layers("[audit]\nworkers = \"many\"\n", &[]).expect("layers");
        let err = layers.section::<Section>("audit").expect_err("must fail").to_string();
        assert!(err.contains("`audit.workers`"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let layers = layers("[audit]\nlistne = \"x\"\n", &[]).expect("layers");
        let err = layers.section::<Section>("audit").expect_err("must fail").to_string();
        assert!(err.contains("`audit.listne`"), "{err}");
    }

    #[test]
    fn an_unknown_top_level_key_in_a_file_is_named() {
        let (path, mut file) = tempfile();
        file.write_all(b"databse_url = \"postgres://x\"\n").expect("writable");
        let err =
            Layers::from_sources(Some(&path), Env::prefixed("PRFIX_NOTHING_")).err().expect("refused").to_string();
        assert!(err.contains("`databse_url`"), "{err}");
    }

    #[test]
    fn a_bad_database_url_names_the_setting() {
        let layers = layers("database_url = \"mysql://x\"\n", &[]).expect("layers");
        let err = layers.common().expect_err("must fail").to_string();
        assert!(err.contains("database_url"), "{err}");
    }

    #[test]
    fn a_quota_faster_than_the_limiter_resolves_names_the_setting_from_a_file_or_the_environment() {
        let file = layers("[service_limits.internal]\nper_minute = 70000000\nburst = 10\n", &[]).expect("layers");
        let err = file.common().expect_err("must fail").to_string();
        assert!(err.contains("service_limits.internal") && err.contains("1 to 60000000"), "{err}");
        let env = layers("", &[("PRFIX_UNAUTHENTICATED_LIMIT__BURST", "0")]).expect("layers");
        let err = env.common().expect_err("must fail").to_string();
        assert!(err.contains("unauthenticated_limit") && err.contains("burst"), "{err}");
    }

    #[test]
    fn a_quota_given_in_part_keeps_the_rest_of_its_default() {
        use crate::ratelimit::Quota;
        let common = layers(
            "[service_limits.default]\nburst = 7\n[service_limits.internal]\nper_minute = 120000\n",
            &[("PRFIX_UNAUTHENTICATED_LIMIT__BURST", "9")],
        )
        .expect("layers")
        .common()
        .expect("valid");
        assert_eq!(common.service_limits.default, Quota { per_minute: 1_200, burst: 7 });
        assert_eq!(common.service_limits.internal, Quota { per_minute: 120_000, burst: 1_000 });
        assert_eq!(common.service_limits.strict, crate::ratelimit::Limits::default().strict);
        assert_eq!(common.unauthenticated_limit, Quota { per_minute: 600, burst: 9 });
        let err = layers("[service_limits.default]\nburts = 7\n", &[]).expect("layers").common().expect_err("typo");
        assert!(err.to_string().contains("burts"), "{err}");
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let err = Layers::from_sources(Some(Path::new("/nonexistent/prfix.toml")), Env::prefixed("PRFIX_"))
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains("/nonexistent/prfix.toml"), "{err}");
    }
}
