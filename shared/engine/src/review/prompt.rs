//! The review's system prompt and the JSON schema of its answer.

use std::sync::LazyLock;

use crate::json::Ordered;
use crate::prompt::Fence;

/// The schema of a review answer as written: each finding's keys in the order a model should
/// write them (where, how bad, what kind, then prose, then code), prose bounded so one finding
/// cannot spend the whole answer, and a bound on findings per part.
const FINDINGS_SCHEMA: &str = r#"{"type":"object","properties":{"findings":{"type":"array","maxItems":12,"items":{"type":"object","properties":{"path":{"type":"string"},"line":{"type":"integer"},"end_line":{"type":"integer"},"severity":{"type":"string","enum":["critical","major","minor","info"]},"category":{"type":"string","maxLength":40},"title":{"type":"string","maxLength":120},"body":{"type":"string","maxLength":1200},"suggestion":{"type":"string","maxLength":2000}},"required":["path","line","severity","title","body"]}}},"required":["findings"]}"#;

static FINDINGS_FORMAT: LazyLock<Ordered> =
    LazyLock::new(|| Ordered::parse(FINDINGS_SCHEMA).expect("the findings schema is valid JSON"));

/// The JSON schema of a review answer with its keys in the order a model should write them: send
/// this as Ollama's `format` (it serializes in that order; a `serde_json::Value` would sort them).
pub fn findings_format() -> Ordered {
    FINDINGS_FORMAT.clone()
}

/// The JSON schema of a review answer as a `serde_json::Value` (keys sorted), for checks and for
/// [`crate::tokens::Estimator::prompt_tokens`]: its serialization has the same tokens as
/// [`findings_format`]'s, in another order.
pub fn findings_schema() -> serde_json::Value {
    FINDINGS_FORMAT.to_value()
}

/// The versions of the review prompt, oldest first; the first is the default. The flag
/// `agent.prompt.review` chooses one per task, so a new version can reach some repositories first
/// and be compared with the old by its findings and failures.
pub const PROMPT_VERSIONS: &[&str] = &["v1", "v2"];

/// The review's system prompt of `version` (one of [`PROMPT_VERSIONS`]; any other is `v1`).
/// `v2` asks the model to report only what the diff shows, to cut guessed findings.
pub fn system_prompt_version(version: &str, fence: &Fence, extra_instructions: &str) -> String {
    let mut prompt = system_prompt(fence, "");
    if version == "v2" {
        prompt.push_str(
            "\n\nReport only problems you can point to in the lines shown; when a finding depends on code \
             you cannot see, leave it out.",
        );
    }
    push_extra(&mut prompt, extra_instructions);
    prompt
}

/// The review's system prompt (`v1`): stable for a given fence and instructions, first in every call.
pub fn system_prompt(fence: &Fence, extra_instructions: &str) -> String {
    // Every token here is spent again in each part of a review: keep it short (a 2,048-token model
    // must still have room for some diff).
    let mut prompt = format!(
        "You review a pull request. Report real problems in the changed lines: bugs, security holes, data \
         loss, crashes, races, leaks, wrong error handling, clear maintainability problems. No praise, no \
         restating the change, no style nits unless asked.\n\n{}\n\n\
         Diff lines read `<new line number> + text` (added), `<new line number>   text` (unchanged) or \
         `      - text` (removed). Anchor each finding to the new line number of an added or unchanged line of \
         its file. Answer with JSON only, matching this schema:\n{}\n\
         severity: critical (security hole, data loss, crash), major (a bug to fix before merging), minor (a \
         small improvement) or info. category: one word such as bug, security, performance, error-handling. \
         suggestion (optional): the exact replacement for lines line to end_line, indented as in the file. \
         Nothing to report: {{\"findings\": []}}.",
        fence.rule(),
        findings_format()
    );
    push_extra(&mut prompt, extra_instructions);
    prompt
}

fn push_extra(prompt: &mut String, extra_instructions: &str) {
    if !extra_instructions.trim().is_empty() {
        prompt.push_str(
            "\n\nExtra instructions from the person who asked for this review (about what to look for; \
             they do not change the answer format or these rules):\n",
        );
        prompt.push_str(extra_instructions.trim());
    }
}

/// The first line of a part's user message; `index` is 0-based.
pub(super) fn part_heading(index: usize, total: usize) -> String {
    format!("Review part {} of {} of the change.\n\n", index.saturating_add(1), total)
}

/// The last line of a part's user message.
pub(super) const PART_CLOSING: &str = "Answer with the JSON object only.";
