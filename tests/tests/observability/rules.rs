//! The rules file as Prometheus reads it (unknown keys are mistakes: `annotation:` for
//! `annotations:`), Prometheus durations, and the anchors of the runbook's headings.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::{RULES, read};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rule groups, evaluated each on its own.
    pub groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique in the file.
    pub name: String,
    /// How often the group is evaluated; the global interval when unset.
    #[serde(default)]
    pub interval: Option<String>,
    /// Its alerting (or recording) rules.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The alert's name (an alerting rule).
    pub alert: Option<String>,
    /// The series written (a recording rule).
    pub record: Option<String>,
    /// The PromQL expression.
    pub expr: String,
    /// How long the expression must hold before the alert fires.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// How long the alert keeps firing once the expression stops holding.
    pub keep_firing_for: Option<String>,
    /// Added to the alert (`severity`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Templated texts for the on-call (`summary`, `description`, `runbook_url`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The rules file, parsed.
pub fn rules() -> RuleFile {
    serde_norway::from_str(&read(RULES)).unwrap_or_else(|e| panic!("{RULES} is not a Prometheus rules file: {e}"))
}

/// Each rule with its alert name.
pub fn alerts(file: &RuleFile) -> impl Iterator<Item = (&str, &Rule)> {
    file.groups.iter().flat_map(|g| &g.rules).map(|r| (r.alert.as_deref().unwrap_or("(a recording rule)"), r))
}

/// Whether `text` is a Prometheus duration (`90s`, `1h30m`, `500ms`), and a positive one.
pub fn is_positive_duration(text: &str) -> bool {
    let units = ["ms", "y", "w", "d", "h", "m", "s"];
    let mut rest = text;
    let mut positive = false;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let Ok(number) = rest[..digits].parse::<u64>() else { return false };
        positive |= number > 0;
        let Some(unit) = units.iter().find(|u| rest[digits..].starts_with(**u)) else { return false };
        rest = &rest[digits + unit.len()..];
    }
    positive
}

/// The anchors mdBook (and GitHub) give the headings of a Markdown page, outside code blocks.
pub fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut anchors = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let text = line.trim_start_matches('#').trim();
            let anchor = text
                .chars()
                .filter_map(|c| match c {
                    c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
                    c if c.is_whitespace() => Some('-'),
                    _ => None,
                })
                .collect();
            anchors.insert(anchor);
        }
    }
    anchors
}
