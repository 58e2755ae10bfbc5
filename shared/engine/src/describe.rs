//! Describes: a title, a summary, a walkthrough line per file and labels.

use std::sync::LazyLock;

use crate::diff::FilePatch;
use crate::json::Ordered;
use crate::prompt::Fence;
use crate::review::PartFrame;

/// A change's description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description {
    /// Pull-request title.
    pub title: String,
    /// Summary.
    pub summary: String,
    /// One line per file: path and what changed.
    pub walkthrough: Vec<(String, String)>,
    /// Labels.
    pub labels: Vec<String>,
}

/// Why an answer is no description.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// Nothing usable in the answer.
    #[error("the model's answer holds no description: {0}")]
    Unusable(String),
}

/// The schema of a describe answer as written: the title first (it is what a reader sees and what
/// a cut-off answer must still hold), then the summary, the walkthrough (each entry's path before
/// its summary) and the labels last; prose bounded.
const SCHEMA: &str = r#"{"type":"object","properties":{"title":{"type":"string","maxLength":100},"summary":{"type":"string","maxLength":1200},"walkthrough":{"type":"array","items":{"type":"object","properties":{"path":{"type":"string","maxLength":300},"summary":{"type":"string","maxLength":300}},"required":["path","summary"]}},"labels":{"type":"array","maxItems":5,"items":{"type":"string","maxLength":40}}},"required":["title","summary","walkthrough","labels"]}"#;

static FORMAT: LazyLock<Ordered> = LazyLock::new(|| Ordered::parse(SCHEMA).expect("the describe schema is valid JSON"));

/// The JSON schema of a describe answer with its keys in the order a model should write them:
/// send this as Ollama's `format`.
pub fn format() -> Ordered {
    FORMAT.clone()
}

/// The JSON schema of a describe answer as a `serde_json::Value` (keys sorted), for checks and
/// token counts.
pub fn schema() -> serde_json::Value {
    FORMAT.to_value()
}

/// The system prompt.
pub fn system_prompt(fence: &Fence) -> String {
    format!(
        "You write pull-request descriptions. Read the change and answer with JSON only, matching this schema:\n{}\n\
         title: at most 72 characters, imperative mood (\"Add ...\", \"Fix ...\"). summary: two to five sentences \
         on what changes and why it matters. walkthrough: one entry per changed file with one sentence on what \
         changed in it. labels: up to five short lowercase labels such as bug, feature, refactor, docs, tests, \
         security, performance, dependencies.\n\n{}",
        format(),
        fence.rule()
    )
}

/// The first line of a describe's user message.
const HEADING: &str = "Describe this change.\n\n";

/// What wraps the diffs a describe shows (see [`crate::review::plan_framed`]): a heading, then
/// after the diffs every file of the change with its added and removed lines (the diffs may show
/// only some), the files left out with why, at most `list_tokens` estimated tokens of them, then
/// the instruction. Paths come from the change, so the list is fenced like the diffs.
pub fn frame(fence: &Fence, files: &[FilePatch], skipped: &[(String, &str)], list_tokens: usize) -> PartFrame {
    let lines = files
        .iter()
        .map(|f| format!("{} (+{} -{})\n", f.path(), f.additions(), f.deletions()))
        .chain(skipped.iter().map(|(path, reason)| format!("{path} (not shown: {reason})\n")));
    let all = files.len() + skipped.len();
    let mut list = String::new();
    let mut cost = 0;
    let mut listed = 0;
    for line in lines {
        let line_cost = crate::tokens::estimate(&line);
        if cost + line_cost > list_tokens {
            break;
        }
        list.push_str(&line);
        cost += line_cost;
        listed += 1;
    }
    if listed < all {
        list.push_str(&format!("… and {} more files\n", all - listed));
    }
    let mut closing = fence.wrap("the files of the change", &list);
    closing.push('\n');
    closing.push_str("Answer with the JSON object only.");
    PartFrame { heading: |_, _| HEADING.to_owned(), closing, schema: schema() }
}

/// The user message of a describe whose change shows no diff (every file binary, deleted or
/// ignored): the frame alone.
pub fn user_prompt_without_diff(frame: &PartFrame) -> String {
    format!("{}{}", (frame.heading)(0, 1), frame.closing)
}

fn text(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        _ => String::new(),
    }
}

/// Reads an answer (the last description when it holds several JSON values, never an echoed
/// schema), keeps walkthrough lines of files in the diff (in diff order), fills files the
/// model left out with their line counts, and cleans the labels.
pub fn parse(answer: &str, files: &[FilePatch]) -> Result<Description, DescribeError> {
    let candidates = crate::json::candidates(answer);
    if candidates.is_empty() {
        let reason = crate::json::parse_lenient(answer).err().map_or_else(|| "no JSON".to_owned(), |e| e.to_string());
        return Err(DescribeError::Unusable(reason));
    }
    // Several values (an example, the schema echoed, then the answer): the last description wins.
    let Some(map) = candidates.iter().rev().filter_map(serde_json::Value::as_object).find(|map| {
        !map.contains_key("properties")
            && ["title", "summary"].iter().any(|k| map.get(*k).is_some_and(|v| v.is_string()))
    }) else {
        return Err(DescribeError::Unusable(format!(
            "{} JSON value(s), none an object with a title or summary",
            candidates.len()
        )));
    };
    let title: String = text(map.get("title")).lines().next().unwrap_or_default().chars().take(120).collect();
    let summary = text(map.get("summary"));
    if title.is_empty() && summary.is_empty() {
        return Err(DescribeError::Unusable("neither a title nor a summary".to_owned()));
    }
    let mut said: Vec<(String, String)> = Vec::new();
    if let Some(serde_json::Value::Array(items)) = map.get("walkthrough") {
        for item in items {
            if let serde_json::Value::Object(entry) = item {
                let path = text(entry.get("path").or_else(|| entry.get("file")));
                let path = path.trim_start_matches("./").trim_start_matches("b/").to_owned();
                said.push((path, text(entry.get("summary").or_else(|| entry.get("description")))));
            }
        }
    }
    let walkthrough = files
        .iter()
        .map(|file| {
            let path = file.path().to_owned();
            let line = said
                .iter()
                .find(|(p, s)| *p == path && !s.is_empty())
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| format!("{} lines added, {} removed", file.additions(), file.deletions()));
            (path, line)
        })
        .collect();
    let mut labels: Vec<String> = Vec::new();
    if let Some(serde_json::Value::Array(items)) = map.get("labels") {
        for label in items.iter().filter_map(|l| l.as_str()) {
            let clean: String = label
                .trim()
                .to_lowercase()
                .chars()
                .map(|c| if c.is_alphanumeric() || c == '-' || c == ':' { c } else { '-' })
                .take(40)
                .collect();
            let clean = clean.trim_matches('-').to_owned();
            if !clean.is_empty() && !labels.contains(&clean) && labels.len() < 5 {
                labels.push(clean);
            }
        }
    }
    Ok(Description { title, summary, walkthrough, labels })
}
