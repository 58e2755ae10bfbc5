//! The agent's use of the flags: what a new task may do (its kill switch, its models, its review
//! prompt), decided once at creation and recorded on the task, so every replica works it the same
//! way whatever the flags say later.

use prfix_flags::known::{self, AGENT_DESCRIBE, AGENT_FIX, AGENT_PROMPT_REVIEW, AGENT_REVIEW, FORGE_POST};
use prfix_flags::{Context, Evaluation, Flags};
use prfix_proto::agent::v1 as pb;
use prfix_runtime::error::{ErrorCode, ServiceError};
use serde::{Deserialize, Serialize};

/// Why a task was refused by a flag.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The capability's kill switch is off for the caller's context.
    #[error("{capability} are switched off by the flag `{flag}` (from {origin}); an operator turns it back on")]
    Disabled {
        /// `reviews`, `describes` or `fixes`.
        capability: &'static str,
        /// The flag.
        flag: &'static str,
        /// Where its definition came from.
        origin: &'static str,
    },
}

impl ServiceError for FlagError {
    fn code(&self) -> ErrorCode {
        match self {
            FlagError::Disabled { .. } => ErrorCode::Unavailable,
        }
    }
}

/// The context a task's flags were evaluated for, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredContext {
    /// The owner.
    pub user: String,
    /// The owner's roles at creation.
    pub roles: Vec<String>,
    /// The change set's repository.
    pub repository: String,
    /// The forge, for tasks from a forge.
    pub forge: String,
    /// The task's (reasoning) model.
    pub model: String,
}

impl StoredContext {
    /// The flag context.
    pub fn to_context(&self) -> Context {
        Context {
            user: self.user.clone(),
            roles: self.roles.clone(),
            repository: self.repository.clone(),
            forge: self.forge.clone(),
            model: self.model.clone(),
        }
    }
}

/// One evaluation a task ran with, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredEvaluation {
    /// The flag.
    pub flag: String,
    /// Whether it was on.
    pub enabled: bool,
    /// The variant.
    pub variant: String,
    /// What the task took from it (empty: the setting applied).
    pub value: String,
    /// Where the definition came from.
    pub source: String,
}

/// The flags of one task (the `flags` column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskFlags {
    /// What they were evaluated for.
    pub context: StoredContext,
    /// The evaluations, in the order made.
    pub evaluations: Vec<StoredEvaluation>,
}

impl TaskFlags {
    fn push(&mut self, evaluation: &Evaluation, value: &str) {
        self.evaluations.push(StoredEvaluation {
            flag: evaluation.flag.clone(),
            enabled: evaluation.enabled,
            variant: evaluation.variant.clone(),
            value: value.to_owned(),
            source: evaluation.source.as_str().to_owned(),
        });
    }

    /// What the task took from `flag`, if it took anything.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.evaluations.iter().find(|e| e.flag == flag).map(|e| e.value.as_str()).filter(|v| !v.is_empty())
    }

    /// Whether `flag` was on for the task, if it was evaluated.
    pub fn enabled(&self, flag: &str) -> Option<bool> {
        self.evaluations.iter().find(|e| e.flag == flag).map(|e| e.enabled)
    }

    /// The evaluations as the API shows them.
    pub fn to_proto(&self) -> Vec<pb::TaskFlag> {
        self.evaluations
            .iter()
            .map(|e| pb::TaskFlag {
                flag: e.flag.clone(),
                enabled: e.enabled,
                variant: e.variant.clone(),
                value: e.value.clone(),
                source: e.source.clone(),
            })
            .collect()
    }

    /// Adds `flags` to an audit record's metadata: a struct of flag name to variant (switches:
    /// `on`/`off`) and, beside it, `flag_values` with what the task took from each.
    pub fn audit_into(&self, metadata: &mut prost_types::Struct) {
        use prost_types::value::Kind;
        if self.evaluations.is_empty() {
            return;
        }
        let text = |v: &str| prost_types::Value { kind: Some(Kind::StringValue(v.to_owned())) };
        let mut variants = prost_types::Struct::default();
        let mut values = prost_types::Struct::default();
        for e in &self.evaluations {
            let shown = match known::known(&e.flag).map(|k| k.kind) {
                Some(known::Kind::Switch) => if e.enabled { "on" } else { "off" }.to_owned(),
                _ => e.variant.clone(),
            };
            variants.fields.insert(e.flag.clone(), text(&shown));
            if !e.value.is_empty() {
                values.fields.insert(e.flag.clone(), text(&e.value));
            }
        }
        metadata.fields.insert("flags".to_owned(), prost_types::Value { kind: Some(Kind::StructValue(variants)) });
        if !values.fields.is_empty() {
            metadata
                .fields
                .insert("flag_values".to_owned(), prost_types::Value { kind: Some(Kind::StructValue(values)) });
        }
    }
}

/// The kill switch of a task kind, and how its refusal names the capability.
pub fn switch_of(kind: pb::TaskKind) -> Option<(&'static str, &'static str)> {
    match kind {
        // A question about a change is answered by the review capability.
        pb::TaskKind::Review | pb::TaskKind::Ask => Some((AGENT_REVIEW, "reviews")),
        pb::TaskKind::Describe => Some((AGENT_DESCRIBE, "describes")),
        pb::TaskKind::Fix => Some((AGENT_FIX, "fixes")),
        pb::TaskKind::Unspecified => None,
    }
}

/// The flags' decisions for a new task, made in order: the models (where the request names none),
/// then the kill switch (its context carries the task's model, so one model can be switched off),
/// then the review prompt.
pub struct Decider<'a> {
    /// The flags.
    pub flags: &'a Flags,
    /// What is recorded.
    pub record: TaskFlags,
}

impl<'a> Decider<'a> {
    /// Starts the decisions for a task of `context`.
    pub fn new(flags: &'a Flags, context: StoredContext) -> Self {
        Self { flags, record: TaskFlags { context, evaluations: Vec::new() } }
    }

    /// The model for `role` (`reasoning`, `coding`): the request's when it names one (no flag is
    /// evaluated), else the flag's variant, else `configured`.
    pub fn model(&mut self, role: &str, requested: &str, configured: &str) -> String {
        if !requested.trim().is_empty() {
            return requested.trim().to_owned();
        }
        let Some(flag) = known::model_flag(role) else { return configured.to_owned() };
        let mut context = self.record.context.to_context();
        context.model = configured.to_owned();
        let evaluation = self.flags.evaluate(flag, &context);
        let chosen = evaluation.value().map(str::to_owned);
        self.record.push(&evaluation, chosen.as_deref().unwrap_or_default());
        chosen.unwrap_or_else(|| configured.to_owned())
    }

    /// Refuses the task when the kind's kill switch is off for the task's context (with `model`).
    pub fn allow(&mut self, kind: pb::TaskKind, model: &str) -> Result<(), FlagError> {
        let Some((flag, capability)) = switch_of(kind) else { return Ok(()) };
        self.record.context.model = model.to_owned();
        let evaluation = self.flags.evaluate(flag, &self.record.context.to_context());
        if !evaluation.enabled {
            return Err(FlagError::Disabled { capability, flag, origin: evaluation.source.as_str() });
        }
        self.record.push(&evaluation, "");
        Ok(())
    }

    /// Whether a forge task's result is posted on the forge (`forge.post`; off: computed and kept on
    /// the task, not posted). Recorded, so the task and its audit records say which it was.
    pub fn forge_post(&mut self) -> bool {
        let evaluation = self.flags.evaluate(FORGE_POST, &self.record.context.to_context());
        let on = evaluation.enabled;
        self.record.push(&evaluation, if on { "post" } else { "hold" });
        on
    }

    /// The review prompt version: the flag's variant when it names a known version, else the first.
    pub fn review_prompt(&mut self) -> String {
        let evaluation = self.flags.evaluate(AGENT_PROMPT_REVIEW, &self.record.context.to_context());
        let versions = prfix_engine::review::PROMPT_VERSIONS;
        let version = match evaluation.value() {
            Some(v) if versions.contains(&v) => v.to_owned(),
            Some(other) => {
                tracing::warn!(variant = other, "agent.prompt.review names no known prompt version; using the first");
                versions[0].to_owned()
            }
            None => versions[0].to_owned(),
        };
        self.record.push(&evaluation, &version);
        version
    }
}

#[cfg(test)]
mod tests {
    use prfix_flags::model::{Constraint, Feature, Strategy};
    use prfix_flags::{FlagSettings, FlagValue, Source};

    use super::*;

    #[tokio::test]
    async fn a_constraint_on_the_model_switches_one_model_off() {
        let flags = Flags::new(&FlagSettings::default()).expect("the defaults are valid");
        let not_bad = Constraint {
            context_name: "model".into(),
            operator: "NOT_IN".into(),
            values: vec!["bad:7b".into()],
            ..Constraint::default()
        };
        let review = Feature {
            name: AGENT_REVIEW.into(),
            enabled: true,
            strategies: vec![Strategy { name: "default".into(), constraints: vec![not_bad], ..Strategy::default() }],
            ..Feature::default()
        };
        flags.replace_remote(vec![review], Source::Unleash, None).await;
        let context = StoredContext { user: "dana".into(), ..StoredContext::default() };
        Decider::new(&flags, context.clone()).allow(pb::TaskKind::Review, "good:14b").expect("other models run");
        let refused = Decider::new(&flags, context).allow(pb::TaskKind::Review, "bad:7b").expect_err("off for it");
        let text = refused.to_string();
        assert!(text.contains("`agent.review`") && text.contains("unleash") && text.starts_with("reviews"), "{text}");
    }

    #[test]
    fn a_model_flag_chooses_the_model_unless_the_request_names_one_and_both_are_recorded() {
        let mut settings = FlagSettings::default();
        settings.values.insert("agent.model.reasoning".into(), FlagValue::Variant("small:7b".into()));
        let flags = Flags::new(&settings).expect("valid");
        let mut decider = Decider::new(&flags, StoredContext::default());
        assert_eq!(decider.model("reasoning", "", "big:14b"), "small:7b");
        assert_eq!(decider.model("coding", "", "coder:14b"), "coder:14b");
        assert_eq!(decider.model("reasoning", "asked:3b", "big:14b"), "asked:3b");
        let recorded: Vec<(&str, &str, &str)> =
            decider.record.evaluations.iter().map(|e| (e.flag.as_str(), e.value.as_str(), e.source.as_str())).collect();
        // The request's own model evaluates no flag.
        assert_eq!(
            recorded,
            [("agent.model.reasoning", "small:7b", "settings"), ("agent.model.coding", "", "default")]
        );
        assert_eq!(decider.review_prompt(), "v1");
    }
}
