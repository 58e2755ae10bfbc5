//! The `[flags]` settings section: flag values (the source when no Unleash is configured, and the
//! fallback when Unleash never answered), and how to reach Unleash.

use std::collections::BTreeMap;
use std::path::PathBuf;

use prfix_runtime::settings::SettingsError;
use secrecy::SecretString;
use serde::Deserialize;

use crate::known::{KNOWN, Kind, known};
use crate::model::{Feature, Payload, Variant};

/// A flag's value in the settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FlagValue {
    /// A switch on or off.
    Switch(bool),
    /// A variant's name (for model flags: the model).
    Variant(String),
    /// A variant named by a number (the environment turns `2` into a number).
    Number(i64),
}

/// What happens to queued and running tasks of a capability whose kill switch goes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnDisable {
    /// They finish; only new tasks are refused.
    #[default]
    Finish,
    /// They are cancelled, with the flag named as the reason.
    Cancel,
}

/// The `[flags]` section (`PRFIX_FLAGS__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlagSettings {
    /// Flag values by name (`"agent.fix" = false`, `"agent.prompt.review" = "v2"`); in the
    /// environment `PRFIX_FLAGS__VALUES__AGENT_FIX=false` (dots written as `_`).
    pub values: BTreeMap<String, FlagValue>,
    /// Base URL of the Unleash API (`http://unleash:4242/api`); empty: flags come from `values`.
    pub unleash_url: String,
    /// The application name sent to Unleash (`UNLEASH-APPNAME`, and the context's `appName`).
    pub unleash_app_name: String,
    /// The context's `environment` (the token decides which Unleash environment is served).
    pub unleash_environment: String,
    /// Time between fetches from Unleash, in milliseconds: changes are seen within it.
    pub refresh_interval_ms: u64,
    /// Longest fetch, in milliseconds.
    pub request_timeout_ms: u64,
    /// Where the last flags fetched from Unleash are kept, so that a restart during an Unleash
    /// outage serves them.
    pub backup_file: PathBuf,
    /// What happens to queued and running tasks when their kill switch goes off.
    pub on_disable: OnDisable,
    /// The Unleash client (backend) token: `PRFIX_FLAGS_UNLEASH_TOKEN` or `..._FILE`, never the file.
    #[serde(skip)]
    pub unleash_token: Option<SecretString>,
}

impl Default for FlagSettings {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
            unleash_url: String::new(),
            unleash_app_name: "prfix".to_owned(),
            unleash_environment: "default".to_owned(),
            refresh_interval_ms: 15_000,
            request_timeout_ms: 5_000,
            backup_file: PathBuf::from(".prfix-data/unleash-flags.json"),
            on_disable: OnDisable::Finish,
            unleash_token: None,
        }
    }
}

impl FlagSettings {
    /// Reads the section from loaded layers, with the token from the environment, and validates it.
    pub fn from_layers(layers: &prfix_runtime::settings::Layers) -> Result<Self, SettingsError> {
        let mut settings: Self = layers.section("flags")?;
        settings.unleash_token = prfix_runtime::settings::secret_from_env("PRFIX_FLAGS_UNLEASH_TOKEN")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what parsing cannot: every value names a known flag and has its kind.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.features()?;
        if !self.unleash_url.is_empty() {
            if !(self.unleash_url.starts_with("http://") || self.unleash_url.starts_with("https://")) {
                return Err(SettingsError::Invalid {
                    key: "flags.unleash_url",
                    reason: format!("`{}` must start with http:// or https://", self.unleash_url),
                });
            }
            if self.unleash_token.is_none() {
                return Err(SettingsError::Invalid {
                    key: "flags.unleash_url",
                    reason: "Unleash needs a client token: set PRFIX_FLAGS_UNLEASH_TOKEN (or ..._FILE)".to_owned(),
                });
            }
        }
        if !(100..=3_600_000).contains(&self.refresh_interval_ms) {
            return Err(SettingsError::Invalid {
                key: "flags.refresh_interval_ms",
                reason: "must be between 100 and 3600000 (milliseconds)".to_owned(),
            });
        }
        if self.request_timeout_ms == 0 {
            return Err(SettingsError::Invalid {
                key: "flags.request_timeout_ms",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.unleash_app_name.trim().is_empty() {
            return Err(SettingsError::Invalid {
                key: "flags.unleash_app_name",
                reason: "must not be empty".to_owned(),
            });
        }
        Ok(())
    }

    /// Whether flags come from Unleash.
    pub fn uses_unleash(&self) -> bool {
        !self.unleash_url.is_empty()
    }

    /// The flags the settings define, as definitions, by name: each given value, then the known
    /// flags' defaults for the rest. The bool says whether the value was given (not a default).
    pub fn features(&self) -> Result<BTreeMap<String, (Feature, bool)>, SettingsError> {
        let mut out = BTreeMap::new();
        for (key, value) in &self.values {
            // The environment cannot spell dots in a key: `agent_fix` is `agent.fix`.
            let flag = known(key).or_else(|| known(&key.replace('_', "."))).ok_or_else(|| SettingsError::Parse {
                key: format!("flags.values.{key}"),
                source_name: "settings".to_owned(),
                reason: format!(
                    "unknown flag; known flags: {}",
                    KNOWN.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ),
            })?;
            let feature = match (flag.kind, value) {
                (_, FlagValue::Switch(on)) => {
                    Feature { name: flag.name.to_owned(), enabled: *on, ..Feature::default() }
                }
                (Kind::Variant, FlagValue::Variant(name)) => variant_feature(flag.name, name),
                (Kind::Variant, FlagValue::Number(n)) => variant_feature(flag.name, &n.to_string()),
                (Kind::Switch, _) => {
                    return Err(SettingsError::Parse {
                        key: format!("flags.values.{key}"),
                        source_name: "settings".to_owned(),
                        reason: format!("{} is a switch: true or false", flag.name),
                    });
                }
            };
            out.insert(flag.name.to_owned(), (feature, true));
        }
        for flag in KNOWN {
            if out.contains_key(flag.name) {
                continue;
            }
            let feature = if flag.default_variant.is_empty() {
                Feature { name: flag.name.to_owned(), enabled: flag.default_on, ..Feature::default() }
            } else {
                variant_feature(flag.name, flag.default_variant)
            };
            out.insert(flag.name.to_owned(), (feature, false));
        }
        Ok(out)
    }
}

/// A flag that is on for everyone with the one variant `name` (its payload is the name too).
fn variant_feature(flag: &str, name: &str) -> Feature {
    Feature {
        name: flag.to_owned(),
        enabled: true,
        variants: vec![Variant {
            name: name.to_owned(),
            weight: 1000,
            payload: Some(Payload { kind: "string".to_owned(), value: name.to_owned() }),
            ..Variant::default()
        }],
        ..Feature::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_known_flags_with_dots_or_underscores() {
        let mut settings = FlagSettings::default();
        settings.values.insert("agent.fix".into(), FlagValue::Switch(false));
        settings.values.insert("agent_prompt_review".into(), FlagValue::Variant("v2".into()));
        let features = settings.features().expect("valid");
        assert!(!features["agent.fix"].0.enabled && features["agent.fix"].1);
        assert_eq!(features["agent.prompt.review"].0.variants[0].name, "v2");
        assert!(features["agent.review"].0.enabled && !features["agent.review"].1);
    }

    #[test]
    fn an_unknown_flag_or_a_variant_for_a_switch_is_refused_with_its_name() {
        let mut settings = FlagSettings::default();
        settings.values.insert("agent.fixx".into(), FlagValue::Switch(false));
        let err = settings.validate().expect_err("unknown").to_string();
        assert!(err.contains("flags.values.agent.fixx") && err.contains("agent.fix"), "{err}");
        let mut settings = FlagSettings::default();
        settings.values.insert("agent.fix".into(), FlagValue::Variant("yes".into()));
        let err = settings.validate().expect_err("not a switch").to_string();
        assert!(err.contains("is a switch"), "{err}");
    }

    #[test]
    fn unleash_needs_a_token() {
        let settings = FlagSettings { unleash_url: "http://unleash:4242/api".into(), ..FlagSettings::default() };
        let err = settings.validate().expect_err("no token").to_string();
        assert!(err.contains("PRFIX_FLAGS_UNLEASH_TOKEN"), "{err}");
    }
}
