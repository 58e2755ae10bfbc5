//! The fixed parts of a fix's prompts: the system prompts and the problem as text.

use super::text::tail_within;
use super::{Plan, Problem, plan_schema};
use crate::prompt::Fence;
use crate::tokens::Estimator;

/// The problem as fenced text, the check output cut to its end so the whole fits `max` tokens
/// (the instruction and findings are kept; they are short by nature).
pub(super) fn problem_text(fence: &Fence, problem: &Problem, max: usize, estimator: &Estimator) -> String {
    let mut out = String::new();
    if !problem.instruction.trim().is_empty() {
        out.push_str(&fence.wrap("instruction from the user who asked for the fix", problem.instruction.trim()));
    }
    if !problem.findings.is_empty() {
        out.push_str(&fence.wrap("review findings to address", &problem.findings.join("\n")));
    }
    if !problem.check_command.trim().is_empty() || !problem.check_output.trim().is_empty() {
        let label = format!("output of the failing check `{}`", problem.check_command.trim());
        let frame = estimator.count(&fence.wrap(&label, "")) + estimator.count(&out);
        let output = tail_within(&problem.check_output, max.saturating_sub(frame), estimator);
        out.push_str(&fence.wrap(&label, &output));
    }
    out
}

/// The plan as text for the coder.
pub(super) fn plan_text(plan: &Plan) -> String {
    format!(
        "Root cause: {}\nFiles: {}\nSteps:\n{}\n",
        plan.root_cause,
        plan.files.join(", "),
        plan.steps.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect::<Vec<_>>().join("\n")
    )
}

/// The planner's system prompt.
pub fn plan_system_prompt(fence: &Fence) -> String {
    format!(
        "You are a senior engineer planning the smallest correct fix for a problem in a code change. You do not \
         write code now. Answer with JSON only, matching this schema:\n{}\n\
         root_cause: what is wrong and where. files: the paths to change (from the files shown; a new file only \
         when unavoidable). regions: each place to change, as the file's path and either `symbol` (a function, \
         method or class exactly as the outline names it, like `Cart.total`) or `start_line` and `end_line`; name \
         the smallest region that holds the change, never a whole large file. steps: short concrete steps.\n\
         Large files are shown as an outline of their symbols with line ranges, and the change as diff hunks; the \
         coder will see only the regions you name.\n\n{}",
        plan_schema(),
        fence.rule()
    )
}

/// The coder's system prompt: the edit format, and which files may be rewritten whole (those
/// shown whole and small); every other file is shown in regions and edited with SEARCH/REPLACE.
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
         an empty SEARCH part. A file shown as `lines A-B of N` is longer than what you see: copy SEARCH lines only \
         from the lines shown, never write it whole. Do not run anything; do not explain at length: a sentence \
         before the blocks is enough.\n\n{}",
        fence.rule()
    )
}
