//! Fixes: a plan from the reasoning model, edits from the coding model as text, and the patch
//! built from the edited files and checked before it is returned.

use std::collections::BTreeMap;

use crate::diff;
use crate::prompt::Fence;

/// What the planner decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// What is wrong.
    pub root_cause: String,
    /// Files to change.
    pub files: Vec<String>,
    /// Steps, in order.
    pub steps: Vec<String>,
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
}

/// The JSON schema of a plan.
pub fn plan_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "root_cause": {"type": "string"},
            "files": {"type": "array", "items": {"type": "string"}},
            "steps": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["root_cause", "files", "steps"]
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

fn problem_text(fence: &Fence, problem: &Problem) -> String {
    let mut out = String::new();
    if !problem.instruction.trim().is_empty() {
        out.push_str(&fence.wrap("instruction from the user who asked for the fix", problem.instruction.trim()));
    }
    if !problem.check_command.trim().is_empty() || !problem.check_output.trim().is_empty() {
        out.push_str(
            &fence.wrap(
                &format!("output of the failing check `{}`", problem.check_command.trim()),
                &problem.check_output,
            ),
        );
    }
    if !problem.findings.is_empty() {
        out.push_str(&fence.wrap("review findings to address", &problem.findings.join("\n")));
    }
    out
}

fn files_text(fence: &Fence, files: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (path, content) in files {
        out.push_str(&fence.wrap(&format!("file {path}"), content));
    }
    out
}

/// The planner's system prompt.
pub fn plan_system_prompt(fence: &Fence) -> String {
    format!(
        "You are a senior engineer planning the smallest correct fix for a problem in a code change. You do not \
         write code now. Answer with JSON only, matching this schema:\n{}\n\
         root_cause: what is wrong and where. files: the paths to change (from the files shown; a new file only \
         when unavoidable). steps: short concrete steps.\n\n{}",
        plan_schema(),
        fence.rule()
    )
}

/// The planner's user message.
pub fn plan_prompt(fence: &Fence, problem: &Problem, files: &BTreeMap<String, String>, diff_text: &str) -> String {
    format!(
        "The problem:\n{}\nThe change that introduced it:\n{}\nThe files:\n{}\nAnswer with the JSON plan only.",
        problem_text(fence, problem),
        fence.wrap("diff of the change", diff_text),
        files_text(fence, files)
    )
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
    };
    if plan.root_cause.is_empty() && plan.steps.is_empty() {
        return Err(FixError::NoPlan("neither a root cause nor steps".to_owned()));
    }
    Ok(plan)
}

/// The coder's system prompt: the edit format, which files are rewritten whole.
pub fn edit_system_prompt(fence: &Fence, whole_files: &[String]) -> String {
    let whole = if whole_files.is_empty() {
        "none".to_owned()
    } else {
        whole_files.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
    };
    format!(
        "You are an expert programmer making a planned fix. Write edits as text, never inside JSON.\n\n\
         For a file listed as small ({whole}) write its entire new content:\n\
         path/to/file\n<<<<<<< FILE\nthe whole new content of the file\n>>>>>>> FILE\n\n\
         For any other file write one or more SEARCH/REPLACE blocks:\n\
         path/to/file\n<<<<<<< SEARCH\nlines copied exactly from the current file\n=======\nthe lines to put instead\n>>>>>>> REPLACE\n\n\
         Rules: the SEARCH part must copy the current lines exactly, with their indentation, and include enough \
         lines to be unique in the file; keep blocks small; edit only what the fix needs; to create a new file use \
         an empty SEARCH part. Do not run anything; do not explain at length: a sentence before the blocks is \
         enough.\n\n{}",
        fence.rule()
    )
}

/// The coder's first user message.
pub fn edit_prompt(fence: &Fence, problem: &Problem, plan: &Plan, files: &BTreeMap<String, String>) -> String {
    format!(
        "The problem:\n{}\nThe plan:\nRoot cause: {}\nFiles: {}\nSteps:\n{}\n\nThe current files:\n{}\nWrite the edits now.",
        problem_text(fence, problem),
        plan.root_cause,
        plan.files.join(", "),
        plan.steps.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect::<Vec<_>>().join("\n"),
        files_text(fence, files)
    )
}

/// Per-file figures of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Path.
    pub path: String,
    /// Whether the file is new.
    pub added: bool,
    /// Lines added.
    pub additions: usize,
    /// Lines removed.
    pub deletions: usize,
}

/// Builds the git-style patch from `original` to `edited`, checking every path (relative, no `..`,
/// nothing under `.git/`, no new file unless `allow_new`), and checks that the patch applied to the
/// originals gives the edited files exactly.
pub fn build_patch(
    original: &BTreeMap<String, String>,
    edited: &BTreeMap<String, String>,
    allow_new: bool,
) -> Result<(String, Vec<FileStat>), FixError> {
    let mut patch = String::new();
    let mut stats = Vec::new();
    for (path, new) in edited {
        let old = original.get(path);
        if old == Some(new) {
            continue;
        }
        let checked =
            crate::paths::check(path).map_err(|e| FixError::Path { path: path.clone(), reason: e.to_string() })?;
        if checked != *path {
            return Err(FixError::Path { path: path.clone(), reason: format!("write it as `{checked}`") });
        }
        if old.is_none() && !allow_new {
            return Err(FixError::Path {
                path: path.clone(),
                reason: "it is not in the change set and creating files was not asked for".to_owned(),
            });
        }
        let text = diff::unified_diff(path, path, old.map(String::as_str), Some(new), 3);
        let parsed =
            diff::parse(&text).map_err(|e| FixError::PatchCheck { path: path.clone(), reason: e.to_string() })?;
        let Some(file) = parsed.first() else {
            return Err(FixError::PatchCheck { path: path.clone(), reason: "the diff is empty".to_owned() });
        };
        let applied = diff::apply(old.map(String::as_str), file)
            .map_err(|e| FixError::PatchCheck { path: path.clone(), reason: e.to_string() })?;
        if applied.as_deref() != Some(new.as_str()) {
            return Err(FixError::PatchCheck {
                path: path.clone(),
                reason: "applying it does not give the edited file".to_owned(),
            });
        }
        stats.push(FileStat {
            path: path.clone(),
            added: old.is_none(),
            additions: file.additions(),
            deletions: file.deletions(),
        });
        patch.push_str(&text);
    }
    if patch.is_empty() {
        return Err(FixError::Empty);
    }
    Ok((patch, stats))
}
