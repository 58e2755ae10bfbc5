//! Reading findings out of a model's answer.

use super::{ReviewError, Severity};

/// A finding as the model wrote it, before anchoring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawFinding {
    /// Path as written.
    pub path: String,
    /// First line, when readable.
    pub line: Option<u32>,
    /// Last line, when readable.
    pub end_line: Option<u32>,
    /// Severity, when readable.
    pub severity: Option<Severity>,
    /// Category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Suggested replacement.
    pub suggestion: String,
}

/// A prose field: trimmed.
fn text_of(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A code field: kept byte for byte (indentation is meaning in Python and YAML), except a Markdown
/// fence the model wrapped around it; blank means none.
fn code_of(value: Option<&serde_json::Value>) -> String {
    let Some(serde_json::Value::String(code)) = value else { return String::new() };
    if code.trim().is_empty() {
        return String::new();
    }
    unfence(code).unwrap_or(code).to_owned()
}

/// The inside of "```lang\n…\n```" (blank lines around the fence allowed), or `None`.
fn unfence(code: &str) -> Option<&str> {
    let open = code.trim_start_matches(['\n', '\r']).strip_prefix("```")?;
    let (tag, inner) = open.split_once('\n')?;
    if !tag.trim().chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.')) {
        return None;
    }
    let inner = inner.trim_end_matches(['\n', '\r', ' ', '\t']).strip_suffix("```")?;
    Some(inner.strip_suffix('\n').map_or(inner, |i| i.strip_suffix('\r').unwrap_or(i)))
}

/// Reads `12`, `"12"`, `"12-14"`, `"L12"`; the second value is an end line found in a range.
fn line_of(value: Option<&serde_json::Value>) -> (Option<u32>, Option<u32>) {
    match value {
        Some(serde_json::Value::Number(n)) => {
            (n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)).and_then(|n| u32::try_from(n).ok()), None)
        }
        Some(serde_json::Value::String(s)) => {
            let mut numbers =
                s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).filter_map(|p| p.parse::<u32>().ok());
            (numbers.next(), numbers.next())
        }
        _ => (None, None),
    }
}

/// Reads findings from a model's answer: an object with `findings` (or another array of objects),
/// or a bare array, tolerating prose, fences, trailing commas and a cut-off tail. When the answer
/// holds several JSON values (an example, then the real answer; the schema echoed, then the
/// answer), the last one that reads as findings wins and schemas are never taken for answers.
/// Prose fields are trimmed; `suggestion` is kept byte for byte (a wrapping fence removed).
pub fn parse_findings(answer: &str) -> Result<Vec<RawFinding>, ReviewError> {
    let candidates = crate::json::candidates(answer);
    if candidates.is_empty() {
        let reason = crate::json::parse_lenient(answer).err().map_or_else(|| "no JSON".to_owned(), |e| e.to_string());
        return Err(ReviewError::NoFindings(reason));
    }
    let mut schemas = 0;
    let mut chosen = None;
    for candidate in &candidates {
        if is_schema(candidate) {
            schemas += 1;
        } else if let Some(items) = findings_list(candidate) {
            chosen = Some(items);
        }
    }
    let Some(items) = chosen else {
        let shapes: Vec<&str> = candidates.iter().map(|c| if is_schema(c) { "a schema" } else { kind(c) }).collect();
        return Err(ReviewError::NoFindings(format!(
            "{} JSON value(s) ({}), none a findings list{}",
            candidates.len(),
            shapes.join(", "),
            if schemas > 0 { "; the schema is not an answer" } else { "" }
        )));
    };
    Ok(items.iter().filter_map(raw_finding).collect())
}

/// A JSON schema rather than an answer: an object with `properties`, or a `type` without findings.
fn is_schema(value: &serde_json::Value) -> bool {
    value.as_object().is_some_and(|map| {
        map.contains_key("properties") || (map.contains_key("type") && !map.contains_key("findings"))
    })
}

/// The findings of a candidate when it reads as a findings list: a bare array or an object's
/// `findings` (or another array of objects) whose items are objects, at least one of them with a
/// path and something to say; an empty list reads as "no findings".
fn findings_list(value: &serde_json::Value) -> Option<&Vec<serde_json::Value>> {
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(map) => match map.get("findings") {
            Some(serde_json::Value::Array(items)) => items,
            _ => map.values().find_map(|v| v.as_array().filter(|a| a.iter().any(|i| i.is_object())))?,
        },
        _ => return None,
    };
    let readable = |item: &serde_json::Value| {
        item.as_object().is_some_and(|map| {
            let has = |names: &[&str]| names.iter().any(|n| map.contains_key(*n));
            has(PATH_KEYS) && (has(TITLE_KEYS) || has(BODY_KEYS) || has(LINE_KEYS))
        })
    };
    (items.is_empty() || (items.iter().all(serde_json::Value::is_object) && items.iter().any(readable)))
        .then_some(items)
}

const PATH_KEYS: &[&str] = &["path", "file", "filename", "file_path"];
const LINE_KEYS: &[&str] = &["line", "start_line", "line_number", "lineNumber"];
const TITLE_KEYS: &[&str] = &["title", "summary", "issue"];
const BODY_KEYS: &[&str] = &["body", "description", "message", "details", "explanation"];

fn raw_finding(item: &serde_json::Value) -> Option<RawFinding> {
    let serde_json::Value::Object(map) = item else { return None };
    let get = |names: &[&str]| names.iter().find_map(|n| map.get(*n));
    let (line, range_end) = line_of(get(LINE_KEYS));
    let (end_line, _) = line_of(get(&["end_line", "endLine", "line_end"]));
    Some(RawFinding {
        path: text_of(get(PATH_KEYS)),
        line,
        end_line: end_line.or(range_end),
        severity: Severity::parse(&text_of(get(&["severity", "level", "priority"]))),
        category: text_of(get(&["category", "type", "kind"])),
        title: text_of(get(TITLE_KEYS)),
        body: text_of(get(BODY_KEYS)),
        suggestion: code_of(get(&["suggestion", "fix", "replacement"])),
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}
