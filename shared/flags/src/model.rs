//! The flag definitions as the Unleash client API serves them (`GET /api/client/features`), which is
//! also how flags from the settings are represented, so one evaluator serves both sources.
//!
//! Unknown fields are ignored (newer servers add some); missing ones take the API's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The body of `GET /api/client/features`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeaturesResponse {
    /// Format version.
    pub version: u32,
    /// Every flag of the token's project and environment.
    pub features: Vec<Feature>,
}

/// One flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Feature {
    /// The flag's name (`agent.fix`).
    pub name: String,
    /// Whether the flag is on in the environment at all.
    pub enabled: bool,
    /// Activation strategies: the flag is on for a context when one of them is (all when empty).
    pub strategies: Vec<Strategy>,
    /// Variants of the flag, used when the matching strategy has none.
    pub variants: Vec<Variant>,
}

/// An activation strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Strategy {
    /// `default`, `flexibleRollout`, `userWithId`, ...
    pub name: String,
    /// The strategy's parameters (the API sends strings; numbers are accepted too).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// All must hold for the strategy to apply.
    pub constraints: Vec<Constraint>,
    /// Variants chosen when this strategy is the one that enabled the flag.
    pub variants: Vec<Variant>,
    /// A disabled strategy is skipped.
    pub disabled: bool,
}

impl Strategy {
    /// A parameter as text (`""` when missing).
    pub fn parameter(&self, name: &str) -> String {
        match self.parameters.get(name) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }
}

/// A condition on one context field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Constraint {
    /// The field (`userId`, `environment`, or a property such as `repository`).
    pub context_name: String,
    /// `IN`, `NOT_IN`, `STR_CONTAINS`, `NUM_GT`, `DATE_AFTER`, ...
    pub operator: String,
    /// Values of the list operators.
    pub values: Vec<String>,
    /// Value of the single-value operators.
    pub value: Option<String>,
    /// Compare strings without regard to case.
    pub case_insensitive: bool,
    /// Negate the outcome.
    pub inverted: bool,
}

/// A variant of a flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Variant {
    /// Its name (what a task records).
    pub name: String,
    /// Its share, relative to the other variants' weights.
    pub weight: u32,
    /// What the variant carries (a model name, say).
    pub payload: Option<Payload>,
    /// The context field that keeps a context on one variant (`default`: user, session, address).
    pub stickiness: Option<String>,
    /// Contexts that always get this variant.
    pub overrides: Vec<Override>,
}

/// A variant's payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Payload {
    /// `string`, `json`, `csv` or `number`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value, as text.
    pub value: String,
}

/// Context values that always get one variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Override {
    /// The field.
    pub context_name: String,
    /// The values.
    pub values: Vec<String>,
}
