//! What a flag is evaluated for: who asks, for which repository, forge and model.

use std::collections::BTreeMap;

/// The context of one evaluation. Empty fields are absent (a strategy that needs them does not
/// match, and a rollout sticky on them places the context at random).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The user (Unleash `userId`).
    pub user: String,
    /// The user's roles (property `roles`, comma-separated).
    pub roles: Vec<String>,
    /// The repository (property `repository`).
    pub repository: String,
    /// The forge (property `forge`: `github`, `gitlab`, ...).
    pub forge: String,
    /// The model the task would use (property `model`).
    pub model: String,
}

/// The context as Unleash strategies see it: the standard fields and free-form properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnleashContext {
    /// `userId`.
    pub user_id: Option<String>,
    /// `sessionId`.
    pub session_id: Option<String>,
    /// `remoteAddress`.
    pub remote_address: Option<String>,
    /// `environment`.
    pub environment: Option<String>,
    /// `appName`.
    pub app_name: Option<String>,
    /// `currentTime` (RFC 3339); now when absent.
    pub current_time: Option<String>,
    /// Everything else.
    pub properties: BTreeMap<String, String>,
}

impl UnleashContext {
    /// The value of a field by its Unleash name, standard fields first, then properties.
    pub fn value(&self, name: &str) -> Option<&str> {
        let standard = match name {
            "userId" => &self.user_id,
            "sessionId" => &self.session_id,
            "remoteAddress" => &self.remote_address,
            "environment" => &self.environment,
            "appName" => &self.app_name,
            "currentTime" => &self.current_time,
            _ => return self.properties.get(name).map(String::as_str).filter(|v| !v.is_empty()),
        };
        standard.as_deref().filter(|v| !v.is_empty())
    }
}

impl Context {
    /// The Unleash context for this one, in `environment` of application `app_name`.
    pub fn to_unleash(&self, app_name: &str, environment: &str) -> UnleashContext {
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        let mut properties = BTreeMap::new();
        for (key, value) in [
            ("roles", self.roles.join(",")),
            ("repository", self.repository.clone()),
            ("forge", self.forge.clone()),
            ("model", self.model.clone()),
        ] {
            if !value.is_empty() {
                properties.insert(key.to_owned(), value);
            }
        }
        UnleashContext {
            user_id: some(&self.user),
            environment: some(environment),
            app_name: some(app_name),
            properties,
            ..UnleashContext::default()
        }
    }
}
