//! Tolerant parsing of the JSON a small model writes: wrapped in reasoning, prose or Markdown
//! fences, sprinkled with JavaScript and Python habits, or cut short by the token limit.
//!
//! Strict JSON takes a fast path. Otherwise the parser drops `<think>` blocks, tries each fenced
//! block, then each `{` or `[` in the text in turn, repairing the first value that can be repaired:
//! trailing and missing commas, comments, single quotes, unquoted keys, `True`/`False`/`None`, raw
//! control characters and bad escapes in strings, and a truncated tail (every complete member is
//! kept, the incomplete one is dropped, open strings, arrays and objects are closed). An array never
//! gets a partial element: an element cut short is dropped whole.

mod number;
mod ordered;
mod repair;
mod wrappers;

pub use ordered::Ordered;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// How many `{`/`[` positions of one text are tried before giving up (bounds the work on
/// pathological input).
const MAX_STARTS: usize = 64;

/// How many characters of the answer an error message quotes.
const PREVIEW_CHARS: usize = 80;

/// Why no JSON value could be recovered from a model's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The answer holds no `{` or `[` at all, and is not a JSON value either.
    #[error("no JSON object or array found in the model's answer (first 80 chars: {preview})")]
    NotFound {
        /// The answer's first characters, control characters shown as spaces.
        preview: String,
    },
    /// The answer holds JSON-like text, but none of it could be repaired into JSON.
    #[error("the model's answer holds JSON-like text that could not be repaired: {reason} (first 80 chars: {preview})")]
    Unrepairable {
        /// Why the first candidate failed.
        reason: String,
        /// The answer's first characters, control characters shown as spaces.
        preview: String,
    },
    /// JSON was recovered, but none of it has the shape the caller asked for.
    #[error("the model's JSON does not have the expected shape: {reason} (first 80 chars: {preview})")]
    WrongShape {
        /// The deserialization error of the first value recovered.
        reason: String,
        /// The answer's first characters, control characters shown as spaces.
        preview: String,
    },
}

/// What had to be repaired to get JSON out of an answer (all zero/false for strict JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repairs {
    /// `<think>…</think>` reasoning was removed.
    pub stripped_think: bool,
    /// Text before or after the value was dropped.
    pub stripped_prose: bool,
    /// The value was taken from inside a Markdown code fence.
    pub stripped_fence: bool,
    /// Commas right before a closing bracket that were dropped.
    pub trailing_commas: usize,
    /// Commas inserted between two members written without one.
    pub missing_commas: usize,
    /// `//` and `/* */` comments removed.
    pub comments: usize,
    /// Strings written in single quotes.
    pub single_quoted_strings: usize,
    /// Object keys written without quotes.
    pub unquoted_keys: usize,
    /// `True`/`False`/`None` (and `NaN`/`Infinity`/`undefined`) rewritten as JSON literals.
    pub python_literals: usize,
    /// Raw newlines, tabs and other control characters escaped inside strings.
    pub escaped_control_chars: usize,
    /// Backslash escapes JSON does not allow (`\'`, `\d`, lone surrogates) made valid.
    pub invalid_escapes: usize,
    /// Numbers JSON does not allow (`+1`, `.5`, `5.`, `007`) rewritten.
    pub normalized_numbers: usize,
    /// The answer ended before the value closed; open strings, arrays and objects were closed.
    pub truncated: bool,
    /// An incomplete member or element at the cut was dropped.
    pub dropped_incomplete: bool,
}

impl Repairs {
    /// Whether nothing had to be repaired (the answer was strict JSON).
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// The first JSON value recoverable from a model's answer.
pub fn parse_lenient(text: &str) -> Result<Value, JsonError> {
    parse_lenient_with_report(text).map(|(value, _)| value)
}

/// The first JSON value recoverable from a model's answer, and what was repaired to get it.
pub fn parse_lenient_with_report(text: &str) -> Result<(Value, Repairs), JsonError> {
    search(text, Ok)
}

/// The first value recoverable from a model's answer that deserializes into `T`: values of another
/// shape (a stray `[1]` in the prose, a wrapper object) are skipped in favour of later candidates,
/// including values nested inside them.
pub fn parse_lenient_as<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    search(text, |value| serde_json::from_value(value).map_err(|error| error.to_string())).map(|(found, _)| found)
}

/// Every top-level JSON value recoverable from a model's answer, in the order written: an example
/// before the real answer, a schema echoed before it, or several fenced blocks each give one
/// (values nested inside another are not repeated). Reasoning blocks are left out, each value is
/// repaired as [`parse_lenient`] would, and text that repairs to nothing is skipped. Callers pick
/// the candidate that has the shape they need.
pub fn candidates(text: &str) -> Vec<Value> {
    let stripped = wrappers::strip_think(text);
    let work = stripped.as_deref().unwrap_or(text);
    if let Ok(value) = serde_json::from_str::<Value>(work) {
        return vec![value];
    }
    let bytes = work.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    for _ in 0..MAX_STARTS {
        let Some(start) = bytes.get(from..).and_then(|rest| rest.iter().position(|&b| b == b'{' || b == b'[')) else {
            break;
        };
        let start = from + start;
        let mut repairs = Repairs::default();
        let value = repair::repair_value(work, start, &mut repairs)
            .ok()
            .and_then(|repaired| serde_json::from_str::<Value>(&repaired.json).ok().map(|v| (v, repaired.end)));
        match value {
            Some((value, end)) => {
                found.push(value);
                from = end.max(start + 1);
            }
            None => from = start + 1,
        }
    }
    found
}

/// Where the search stands: the first failure of each kind, kept for the error message.
#[derive(Default)]
struct Misses {
    saw_candidate: bool,
    repair: Option<String>,
    shape: Option<String>,
}

impl Misses {
    fn repair_failed(&mut self, reason: String) {
        self.saw_candidate = true;
        self.repair.get_or_insert(reason);
    }

    fn into_error(self, text: &str) -> JsonError {
        let preview = preview(text);
        match (self.shape, self.repair) {
            (Some(reason), _) => JsonError::WrongShape { reason, preview },
            (None, Some(reason)) if self.saw_candidate => JsonError::Unrepairable { reason, preview },
            _ => JsonError::NotFound { preview },
        }
    }
}

/// Tries the candidates of `text` in order and returns the first one `accept` takes.
fn search<R>(text: &str, mut accept: impl FnMut(Value) -> Result<R, String>) -> Result<(R, Repairs), JsonError> {
    let mut misses = Misses::default();
    let mut offer = |value: Value, repairs: Repairs, misses: &mut Misses| match accept(value) {
        Ok(found) => Some((found, repairs)),
        Err(reason) => {
            misses.shape.get_or_insert(reason);
            None
        }
    };

    if let Ok(value) = serde_json::from_str::<Value>(text)
        && let Some(found) = offer(value, Repairs::default(), &mut misses)
    {
        return Ok(found);
    }
    let stripped = wrappers::strip_think(text);
    let base = Repairs { stripped_think: stripped.is_some(), ..Repairs::default() };
    let work = stripped.as_deref().unwrap_or(text);
    if stripped.is_some()
        && let Ok(value) = serde_json::from_str::<Value>(work)
        && let Some(found) = offer(value, base.clone(), &mut misses)
    {
        return Ok(found);
    }
    for fence in wrappers::fences(work) {
        let repairs = Repairs { stripped_fence: true, ..base.clone() };
        let content = work.get(fence.start..fence.end).unwrap_or_default();
        if let Ok(value) = serde_json::from_str::<Value>(content) {
            let after = work.get(fence.end..).unwrap_or_default();
            let stripped_prose = fence.prose_before || !after_fence(after).is_empty();
            if let Some(found) = offer(value, Repairs { stripped_prose, ..repairs.clone() }, &mut misses) {
                return Ok(found);
            }
        }
        // The value may run past the "closing" fence when a string inside it holds one.
        let rest = work.get(fence.start..).unwrap_or_default();
        let limit = fence.end - fence.start;
        let prose = |before: &str, after: &str| {
            fence.prose_before || !before.trim().is_empty() || !after_fence(after).is_empty()
        };
        if let Some(found) = scan(rest, limit, &repairs, &mut misses, &mut offer, prose) {
            return Ok(found);
        }
    }
    let prose = |before: &str, after: &str| !before.trim().is_empty() || !after.trim().is_empty();
    if let Some(found) = scan(work, work.len(), &base, &mut misses, &mut offer, prose) {
        return Ok(found);
    }
    if stripped.is_some()
        && let Some(found) = scan(text, text.len(), &Repairs::default(), &mut misses, &mut offer, prose)
    {
        return Ok(found);
    }
    Err(misses.into_error(text))
}

/// What follows a fenced value once its closing fence is skipped, trimmed.
fn after_fence(after: &str) -> &str {
    let after = after.trim();
    after.strip_prefix(wrappers::MARK).unwrap_or(after).trim()
}

/// Repairs the value at each `{` or `[` among the first `limit` bytes of `text` in turn until
/// `offer` takes one; `prose` says whether the text before and after the value is prose.
fn scan<R>(
    text: &str,
    limit: usize,
    base: &Repairs,
    misses: &mut Misses,
    offer: &mut impl FnMut(Value, Repairs, &mut Misses) -> Option<R>,
    prose: impl Fn(&str, &str) -> bool,
) -> Option<R> {
    let head = text.as_bytes().get(..limit).unwrap_or_default();
    let starts = head.iter().enumerate().filter(|&(_, &b)| b == b'{' || b == b'[').map(|(at, _)| at);
    for start in starts.take(MAX_STARTS) {
        misses.saw_candidate = true;
        let mut repairs = base.clone();
        let repaired = match repair::repair_value(text, start, &mut repairs) {
            Ok(repaired) => repaired,
            Err(failure) => {
                misses.repair_failed(format!("{} at byte {}", failure.reason, failure.at));
                continue;
            }
        };
        let value = match serde_json::from_str::<Value>(&repaired.json) {
            Ok(value) => value,
            Err(error) => {
                misses.repair_failed(format!("the repaired text is still not JSON: {error}"));
                continue;
            }
        };
        let before = text.get(..start).unwrap_or_default();
        let after = text.get(repaired.end..).unwrap_or_default();
        repairs.stripped_prose |= prose(before, after);
        if let Some(found) = offer(value, repairs, misses) {
            return Some(found);
        }
    }
    None
}

/// The first characters of an answer for an error message, control characters shown as spaces.
fn preview(text: &str) -> String {
    let mut shown: String = text.chars().take(PREVIEW_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        shown.push('…');
    }
    shown
}
