//! Strategy constraints, as the Unleash client specification defines them. An operator this crate
//! does not know makes the constraint fail (never pass), inverted or not.

use crate::context::UnleashContext;
use crate::model::Constraint;

/// Whether every constraint holds for `context`.
pub fn all_hold(constraints: &[Constraint], context: &UnleashContext) -> bool {
    constraints.iter().all(|c| holds(c, context))
}

/// Whether one constraint holds.
pub fn holds(constraint: &Constraint, context: &UnleashContext) -> bool {
    let value = context.value(&constraint.context_name);
    let outcome = match constraint.operator.as_str() {
        "IN" | "NOT_IN" => {
            let found = value.is_some_and(|v| constraint.values.iter().any(|c| c.trim() == v));
            Some(if constraint.operator == "IN" { found } else { !found })
        }
        "STR_CONTAINS" | "STR_STARTS_WITH" | "STR_ENDS_WITH" => Some(string_operator(constraint, value)),
        "NUM_EQ" | "NUM_GT" | "NUM_GTE" | "NUM_LT" | "NUM_LTE" => Some(number_operator(constraint, value)),
        "DATE_AFTER" | "DATE_BEFORE" => Some(date_operator(constraint, context)),
        _ => None,
    };
    match outcome {
        Some(result) => result != constraint.inverted,
        None => false,
    }
}

fn string_operator(constraint: &Constraint, value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let fold = |s: &str| if constraint.case_insensitive { s.to_lowercase() } else { s.to_owned() };
    let value = fold(value);
    constraint.values.iter().map(|c| fold(c)).any(|c| match constraint.operator.as_str() {
        "STR_CONTAINS" => value.contains(&c),
        "STR_STARTS_WITH" => value.starts_with(&c),
        _ => value.ends_with(&c),
    })
}

fn number_operator(constraint: &Constraint, value: Option<&str>) -> bool {
    let parse = |s: Option<&str>| s.and_then(|s| s.trim().parse::<f64>().ok());
    let (Some(actual), Some(wanted)) = (parse(value), parse(constraint.value.as_deref())) else { return false };
    match constraint.operator.as_str() {
        "NUM_EQ" => actual == wanted,
        "NUM_GT" => actual > wanted,
        "NUM_GTE" => actual >= wanted,
        "NUM_LT" => actual < wanted,
        _ => actual <= wanted,
    }
}

fn date_operator(constraint: &Constraint, context: &UnleashContext) -> bool {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&chrono::Utc));
    let Some(wanted) = constraint.value.as_deref().and_then(parse) else { return false };
    let now = match context.value("currentTime") {
        Some(text) => match parse(text) {
            Some(time) => time,
            None => return false,
        },
        None => chrono::Utc::now(),
    };
    if constraint.operator == "DATE_AFTER" { now > wanted } else { now < wanted }
}
