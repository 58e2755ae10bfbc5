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

fn text_of(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
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

/// Reads findings from a model's answer: an object with `findings` (or another array field), or
/// a bare array, tolerating prose, fences, trailing commas and a cut-off tail.
pub fn parse_findings(answer: &str) -> Result<Vec<RawFinding>, ReviewError> {
    let value = crate::json::parse_lenient(answer).map_err(|e| ReviewError::NoFindings(e.to_string()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut map) => match map.remove("findings") {
            Some(serde_json::Value::Array(items)) => items,
            _ => match map
                .into_iter()
                .find_map(|(_, v)| if let serde_json::Value::Array(a) = v { Some(a) } else { None })
            {
                Some(items) => items,
                None => return Err(ReviewError::NoFindings("an object without a `findings` array".to_owned())),
            },
        },
        other => return Err(ReviewError::NoFindings(format!("a JSON {} instead of an object", kind(&other)))),
    };
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let serde_json::Value::Object(map) = item else { return None };
            let get = |names: &[&str]| names.iter().find_map(|n| map.get(*n));
            let (line, range_end) = line_of(get(&["line", "start_line", "line_number", "lineNumber"]));
            let (end_line, _) = line_of(get(&["end_line", "endLine", "line_end"]));
            Some(RawFinding {
                path: text_of(get(&["path", "file", "filename", "file_path"])),
                line,
                end_line: end_line.or(range_end),
                severity: Severity::parse(&text_of(get(&["severity", "level", "priority"]))),
                category: text_of(get(&["category", "type", "kind"])),
                title: text_of(get(&["title", "summary", "issue"])),
                body: text_of(get(&["body", "description", "message", "details", "explanation"])),
                suggestion: text_of(get(&["suggestion", "fix", "replacement"])),
            })
        })
        .collect())
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
