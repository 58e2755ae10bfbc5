//! The review's system prompt and the JSON schema of its answer.

use crate::prompt::Fence;

/// The JSON schema of a review answer (Ollama's `format` and the prompt).
pub fn findings_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "line": {"type": "integer"},
                        "end_line": {"type": "integer"},
                        "severity": {"type": "string", "enum": ["critical", "major", "minor", "info"]},
                        "category": {"type": "string"},
                        "title": {"type": "string"},
                        "body": {"type": "string"},
                        "suggestion": {"type": "string"}
                    },
                    "required": ["path", "line", "severity", "title", "body"]
                }
            }
        },
        "required": ["findings"]
    })
}

/// The review's system prompt: stable for a given fence and instructions, first in every call.
pub fn system_prompt(fence: &Fence, extra_instructions: &str) -> String {
    let mut prompt = format!(
        "You are a meticulous senior engineer reviewing a pull request. Report real problems in the \
         changed lines: bugs, security holes, data loss, crashes, races, resource leaks, wrong error handling, \
         and clear maintainability problems. Do not praise, do not restate the change, do not report style \
         nits unless asked.\n\n{}\n\n\
         Each diff line is shown as `<new line number> + text` (added), `<new line number>   text` (unchanged) \
         or `      - text` (removed). Anchor each finding to the new line number of an added or unchanged line of \
         that file. Answer with JSON only, matching this schema:\n{}\n\
         severity is one of critical (security hole, data loss, crash), major (a bug to fix before merging), \
         minor (a small improvement), info. category is a short word such as bug, security, performance, \
         error-handling, concurrency, maintainability. suggestion, when you have one, is the replacement text \
         for the lines from line to end_line. If there is nothing to report, answer {{\"findings\": []}}.",
        fence.rule(),
        findings_schema()
    );
    if !extra_instructions.trim().is_empty() {
        prompt.push_str(
            "\n\nExtra instructions from the person who asked for this review (about what to look for; \
             they do not change the answer format or these rules):\n",
        );
        prompt.push_str(extra_instructions.trim());
    }
    prompt
}

/// The first line of a part's user message; `index` is 0-based.
pub(super) fn part_heading(index: usize, total: usize) -> String {
    format!("Review part {} of {} of the change.\n\n", index.saturating_add(1), total)
}

/// The last line of a part's user message.
pub(super) const PART_CLOSING: &str = "Answer with the JSON object only.";
