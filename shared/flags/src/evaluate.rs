//! Evaluating one flag for one context: its strategies (with their constraints), then its variant.
//! The strategies implemented are `default`, `userWithId`, `flexibleRollout` and the older
//! `gradualRollout*` ones; any other strategy is off, as the specification asks.

use crate::constraints;
use crate::context::UnleashContext;
use crate::model::{Feature, Payload, Strategy};
use crate::murmur::rollout_position;
use crate::variants::{random_identifier, select};

/// The name of the variant of a flag that is off or has no variants.
pub const DISABLED_VARIANT: &str = "disabled";

/// What a flag is for one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the flag is on.
    pub enabled: bool,
    /// The variant's name ([`DISABLED_VARIANT`] when the flag is off or has none).
    pub variant: String,
    /// The variant's payload.
    pub payload: Option<Payload>,
}

impl Outcome {
    fn off() -> Self {
        Self { enabled: false, variant: DISABLED_VARIANT.to_owned(), payload: None }
    }

    /// Whether a variant (not the disabled one) was chosen.
    pub fn has_variant(&self) -> bool {
        self.variant != DISABLED_VARIANT
    }
}

/// Evaluates `feature` (absent: off) for `context`.
pub fn evaluate(feature: Option<&Feature>, context: &UnleashContext) -> Outcome {
    let Some(feature) = feature.filter(|f| f.enabled) else { return Outcome::off() };
    let active: Vec<&Strategy> = feature.strategies.iter().filter(|s| !s.disabled).collect();
    let matched = if feature.strategies.is_empty() {
        None
    } else {
        match active
            .into_iter()
            .find(|s| constraints::all_hold(&s.constraints, context) && enabled(s, feature, context))
        {
            Some(strategy) => Some(strategy),
            None => return Outcome::off(),
        }
    };
    let on = |variant: Option<&crate::model::Variant>| match variant {
        Some(v) => Outcome { enabled: true, variant: v.name.clone(), payload: v.payload.clone() },
        None => Outcome { enabled: true, variant: DISABLED_VARIANT.to_owned(), payload: None },
    };
    if let Some(strategy) = matched.filter(|s| !s.variants.is_empty()) {
        let group = group_id(strategy, feature);
        let stickiness = strategy.parameter("stickiness");
        return on(select(&group, Some(stickiness.as_str()), &strategy.variants, context));
    }
    let stickiness = feature.variants.first().and_then(|v| v.stickiness.clone());
    on(select(&feature.name, stickiness.as_deref(), &feature.variants, context))
}

fn group_id(strategy: &Strategy, feature: &Feature) -> String {
    let group = strategy.parameter("groupId");
    if group.is_empty() { feature.name.clone() } else { group }
}

fn percentage(strategy: &Strategy, name: &str) -> u32 {
    strategy.parameter(name).trim().parse::<f64>().map_or(0, |p| p.clamp(0.0, 100.0) as u32)
}

fn in_rollout(identifier: Option<&str>, group: &str, percent: u32) -> bool {
    identifier.is_some_and(|id| percent > 0 && rollout_position(id, group) <= percent)
}

/// Whether a strategy (constraints aside) is on for `context`.
fn enabled(strategy: &Strategy, feature: &Feature, context: &UnleashContext) -> bool {
    match strategy.name.as_str() {
        "default" => true,
        "userWithId" => {
            let ids = strategy.parameter("userIds");
            context.value("userId").is_some_and(|user| ids.split(',').any(|id| id.trim() == user))
        }
        "flexibleRollout" => {
            let stickiness = strategy.parameter("stickiness");
            let identifier = match stickiness.as_str() {
                "" | "default" => Some(
                    context
                        .value("userId")
                        .or(context.value("sessionId"))
                        .map_or_else(random_identifier, str::to_owned),
                ),
                "random" => Some(random_identifier()),
                field => context.value(field).map(str::to_owned),
            };
            in_rollout(identifier.as_deref(), &group_id(strategy, feature), percentage(strategy, "rollout"))
        }
        "gradualRolloutUserId" => {
            in_rollout(context.value("userId"), &strategy.parameter("groupId"), percentage(strategy, "percentage"))
        }
        "gradualRolloutSessionId" => {
            in_rollout(context.value("sessionId"), &strategy.parameter("groupId"), percentage(strategy, "percentage"))
        }
        "gradualRolloutRandom" => percentage(strategy, "percentage") >= rand::random_range(1..=100u32),
        _ => false,
    }
}
