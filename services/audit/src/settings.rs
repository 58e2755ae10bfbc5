//! The audit service's settings: the shared ones and the `[audit]` section.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prfix_runtime::db::DatabaseSettings;
use prfix_runtime::settings::{CommonSettings, Layers, SettingsError};
use serde::Deserialize;

/// Everything the audit service reads.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Shared settings (database, logs).
    pub common: CommonSettings,
    /// The `[audit]` section.
    pub audit: AuditSettings,
    /// The checkpoint signing key as PEM from the environment (`PRFIX_AUDIT_SIGNING_KEY` or
    /// `..._FILE`), used before `audit.signing_key_file`.
    pub signing_key_pem: Option<secrecy::SecretString>,
}

/// The `[audit]` section (`PRFIX_AUDIT__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
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
    /// The log's origin line in checkpoints (names this log).
    pub origin: String,
    /// Name of the checkpoint signing key (in signatures and the verifier key).
    pub key_name: String,
    /// Ed25519 signing key (PKCS#8, PEM `PRIVATE KEY`); required unless `development` is on.
    pub signing_key_file: Option<PathBuf>,
    /// Generate a signing key in `data_dir` when none is given (`prfix up`).
    pub development: bool,
    /// Where development mode keeps its key.
    pub data_dir: PathBuf,
    /// A checkpoint after this many new events...
    pub checkpoint_every: i64,
    /// ...or after this long, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Time in-flight calls get to finish after the listener closed, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Verifier keys (`<name>+<hash>+<key>`) of earlier signing keys, after a key rotation: the
    /// checkpoints they signed still verify (the `Verify` method checks with these and the current key).
    pub previous_verifier_keys: Vec<String>,
    /// Witnesses (c2sp.org/tlog-witness) asked to cosign each new checkpoint; empty: none.
    pub witnesses: Vec<WitnessSettings>,
    /// Cosignatures each checkpoint should get; a checkpoint with fewer is logged as an error.
    /// 0 means every configured witness.
    pub witness_quorum: usize,
    /// Time one request to a witness may take, in milliseconds (a checkpoint waits for it).
    pub witness_timeout_ms: u64,
    /// Largest distance, in seconds, between an appended event's time and the time the service
    /// receives it; events further off (backdated or from a clock far off) are refused.
    pub max_clock_skew_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            database_role: "prfix_audit".to_owned(),
            database_pool_size: 16,
            database_connect_timeout_ms: 5_000,
            drain_delay_ms: 0,
            origin: "prfix-audit".to_owned(),
            key_name: "prfix-audit".to_owned(),
            signing_key_file: None,
            development: false,
            data_dir: PathBuf::from(".prfix-data"),
            checkpoint_every: 1_000,
            checkpoint_interval_ms: 10_000,
            shutdown_grace_ms: 30_000,
            previous_verifier_keys: Vec::new(),
            witnesses: Vec::new(),
            witness_quorum: 0,
            witness_timeout_ms: 5_000,
            max_clock_skew_secs: 300,
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
            audit: layers.section("audit")?,
            signing_key_pem: prfix_runtime::settings::secret_from_env("PRFIX_AUDIT_SIGNING_KEY")?,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        if self.audit.checkpoint_every < 1 || self.audit.checkpoint_interval_ms == 0 {
            return Err(SettingsError::Invalid {
                key: "audit.checkpoint_every",
                reason: "checkpoint_every and checkpoint_interval_ms must be at least 1".to_owned(),
            });
        }
        for key in &self.audit.previous_verifier_keys {
            crate::checkpoint::VerifierKey::parse(key).map_err(|e| SettingsError::Invalid {
                key: "audit.previous_verifier_keys",
                reason: format!("`{key}`: {e}"),
            })?;
        }
        if self.audit.max_clock_skew_secs == 0 || self.audit.max_clock_skew_secs > 7 * 24 * 3600 {
            return Err(SettingsError::Invalid {
                key: "audit.max_clock_skew_secs",
                reason: format!("must be between 1 and 604800 (a week), got {}", self.audit.max_clock_skew_secs),
            });
        }
        validate_witnesses(&self.audit)?;
        if self.audit.database_pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "audit.database_pool_size",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }

    /// How the server stops.
    pub fn drain(&self) -> prfix_runtime::grpc::Drain {
        prfix_runtime::grpc::Drain {
            delay: Duration::from_millis(self.audit.drain_delay_ms),
            grace: Duration::from_millis(self.audit.shutdown_grace_ms),
        }
    }

    /// How to reach the database.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.common.database_url.clone(),
            schema: "audit".to_owned(),
            role: Some(self.audit.database_role.clone()).filter(|r| !r.is_empty()),
            pool_size: self.audit.database_pool_size,
            connect_timeout: Duration::from_millis(self.audit.database_connect_timeout_ms),
        }
    }
}

/// One witness (`[[audit.witnesses]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSettings {
    /// The witness's submission prefix: `<url>/add-checkpoint` is called.
    pub url: String,
    /// The witness's verifier key (`<name>+<key ID>+<base64(0x04 || key)>`), printed by
    /// `prfix audit witness`.
    pub key: String,
}

fn validate_witnesses(audit: &AuditSettings) -> Result<(), SettingsError> {
    let invalid = |key, reason: String| Err(SettingsError::Invalid { key, reason });
    let mut keys = Vec::new();
    for witness in &audit.witnesses {
        if !(witness.url.starts_with("http://") || witness.url.starts_with("https://")) {
            return invalid("audit.witnesses", format!("url `{}` must start with http:// or https://", witness.url));
        }
        let key = crate::witness::cosignature::CosignerKey::parse(&witness.key)
            .map_err(|e| SettingsError::Invalid { key: "audit.witnesses", reason: e.to_string() })?;
        if keys.contains(&key) {
            return invalid("audit.witnesses", format!("witness key `{}` is given twice", witness.key));
        }
        keys.push(key);
    }
    if audit.witness_quorum > audit.witnesses.len() {
        return invalid(
            "audit.witness_quorum",
            format!("{} is more than the {} witnesses configured", audit.witness_quorum, audit.witnesses.len()),
        );
    }
    if audit.witness_timeout_ms == 0 {
        return invalid("audit.witness_timeout_ms", "must be at least 1".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod witness_tests {
    use super::*;

    #[test]
    fn witness_settings_are_checked_naming_the_setting() {
        let key = crate::witness::cosignature::Cosigner::generate("w1").expect("key").0.verifier_key();
        let witness = |url: &str, key: &str| WitnessSettings { url: url.to_owned(), key: key.to_owned() };
        let with = |witnesses: Vec<WitnessSettings>, quorum: usize| {
            let mut settings = Settings::default();
            settings.audit.witnesses = witnesses;
            settings.audit.witness_quorum = quorum;
            validate_witnesses(&settings.audit)
        };
        assert!(with(vec![witness("http://w.example", &key)], 1).is_ok());
        let refused = |result: Result<(), SettingsError>| match result {
            Err(SettingsError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid setting, got {other:?}"),
        };
        assert_eq!(refused(with(vec![witness("w.example", &key)], 0)), "audit.witnesses");
        assert_eq!(refused(with(vec![witness("http://w.example", "w1+00+AA==")], 0)), "audit.witnesses");
        assert_eq!(refused(with(vec![witness("http://a", &key), witness("http://b", &key)], 0)), "audit.witnesses");
        assert_eq!(refused(with(vec![witness("http://w.example", &key)], 2)), "audit.witness_quorum");
    }
}
