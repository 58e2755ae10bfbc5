//! Fixes: a plan from the reasoning model, edits from the coding model as text, and the patch
//! built from the edited files and checked before it is returned.
//!
//! A fix scales with the size of the files by never sending more than fits: the plan step gets a
//! map of the change ([`plan_prompt`]: the problem, the diff's hunks, and an outline of each file;
//! whole files only when everything fits in half the room), the plan names regions (a symbol of
//! the outline or a line range), and the edit step gets only those regions with context lines
//! around them ([`edit_prompt`]). Every prompt is measured as assembled with the model's
//! [`Estimator`](crate::tokens::Estimator) against a [`Budget`]; what cannot be cut to fit is
//! [`FixError::TooLarge`], naming the file and region.

mod map;
mod patch;
mod prompts;
mod regions;
mod text;
mod view;

pub use map::{PlanPrompt, plan_prompt};
pub use patch::{FileStat, build_patch};
pub use prompts::{edit_system_prompt, plan_system_prompt};
pub use regions::{Region, resolve_regions};
pub use text::{head_within, tail_within};
pub use view::{EditView, edit_prompt};

use crate::tokens::Estimator;

/// What the planner decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// What is wrong.
    pub root_cause: String,
    /// Files to change.
    pub files: Vec<String>,
    /// Steps, in order.
    pub steps: Vec<String>,
    /// The places to change, as the planner named them.
    pub regions: Vec<RegionRef>,
}

/// A place the planner named: a file and a symbol of its outline or a line range (or neither,
/// for the changed parts of the file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionRef {
    /// The file.
    pub path: String,
    /// A symbol's name as the outline shows it (`Cart.total`), if one was named.
    pub symbol: Option<String>,
    /// The first line, from 1, if lines were named.
    pub start_line: Option<usize>,
    /// The last line, inclusive, if lines were named.
    pub end_line: Option<usize>,
}

/// The room for one prompt's user message, in tokens as the model counts them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// How the model's tokens are counted.
    pub estimator: Estimator,
    /// How many tokens the message may take.
    pub tokens: usize,
}

impl Budget {
    /// The counted tokens of `text`.
    pub fn count(&self, text: &str) -> usize {
        self.estimator.count(text)
    }

    /// The same counting with room for `tokens`.
    pub fn with_tokens(&self, tokens: usize) -> Self {
        Self { estimator: self.estimator, tokens }
    }
}

/// What can go wrong in a fix outside the model calls.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// The planner's answer holds no plan.
    #[error("the planner's answer holds no plan: {0}")]
    NoPlan(String),
    /// The edits touch a path they may not.
    #[error("the edits change {path}, which is refused: {reason}")]
    Path {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The patch does not reproduce the edited files (a bug of ours, never shown as a success).
    #[error("the patch for {path} does not apply to the change set: {reason}")]
    PatchCheck {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Nothing changed.
    #[error("the edits change nothing")]
    Empty,
    /// A part of a prompt that cannot be cut further does not fit the model's context.
    #[error(
        "{what} needs about {tokens} tokens, but only {budget} fit in the model's context beside the rest of the \
         prompt and the answer; {advice}"
    )]
    TooLarge {
        /// What does not fit (a file and region, or the map of the change).
        what: String,
        /// Its size in counted tokens.
        tokens: usize,
        /// The room there was.
        budget: usize,
        /// What the user can do.
        advice: String,
    },
}

/// The JSON schema of a plan: the cause, the files, the regions to change and the steps.
pub fn plan_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "root_cause": {"type": "string", "maxLength": 600},
            "files": {"type": "array", "items": {"type": "string"}},
            "regions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "symbol": {"type": "string"},
                        "start_line": {"type": "integer"},
                        "end_line": {"type": "integer"}
                    },
                    "required": ["path"]
                }
            },
            "steps": {"type": "array", "items": {"type": "string", "maxLength": 300}}
        },
        "required": ["root_cause", "files", "regions", "steps"]
    })
}

/// What a fix is asked to address, as text for prompts.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    /// The check command the user ran.
    pub check_command: String,
    /// Its output.
    pub check_output: String,
    /// Review findings, one per line (`path:line severity title: body`).
    pub findings: Vec<String>,
    /// The user's instruction.
    pub instruction: String,
}

/// Reads a plan, tolerating the usual damage.
pub fn parse_plan(answer: &str) -> Result<Plan, FixError> {
    let value = crate::json::parse_lenient(answer).map_err(|e| FixError::NoPlan(e.to_string()))?;
    let serde_json::Value::Object(map) = value else { return Err(FixError::NoPlan("not a JSON object".to_owned())) };
    let strings = |key: &str| -> Vec<String> {
        match map.get(key) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(|s| s.trim().to_owned()).or_else(|| Some(i.to_string())))
                .filter(|s| !s.is_empty())
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.trim().to_owned()],
            _ => Vec::new(),
        }
    };
    let plan = Plan {
        root_cause: map.get("root_cause").and_then(|v| v.as_str()).unwrap_or_default().trim().to_owned(),
        files: strings("files"),
        steps: strings("steps"),
        regions: regions(map.get("regions")),
    };
    if plan.root_cause.is_empty() && plan.steps.is_empty() {
        return Err(FixError::NoPlan("neither a root cause nor steps".to_owned()));
    }
    Ok(plan)
}

/// The regions of a plan's answer; entries without a path are skipped, numbers given as text read.
fn regions(value: Option<&serde_json::Value>) -> Vec<RegionRef> {
    let Some(serde_json::Value::Array(items)) = value else { return Vec::new() };
    let number = |v: Option<&serde_json::Value>| -> Option<usize> {
        match v? {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n| *n > 0)
    };
    items
        .iter()
        .filter_map(|item| {
            let path = item.get("path")?.as_str()?.trim().trim_start_matches("./").to_owned();
            let symbol = item.get("symbol").and_then(|s| s.as_str()).map(str::trim).filter(|s| !s.is_empty());
            (!path.is_empty()).then(|| RegionRef {
                path,
                symbol: symbol.map(str::to_owned),
                start_line: number(item.get("start_line")),
                end_line: number(item.get("end_line")),
            })
        })
        .collect()
}
