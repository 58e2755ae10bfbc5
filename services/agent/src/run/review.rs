//! The review pipeline: select files, plan parts that fit the model's context (measured with its
//! learned token ratio), ask per part (several at once), parse tolerantly, anchor, deduplicate,
//! order and cap. A part whose answer stays unusable after one retry, or whose model call fails,
//! is reported as a failed part; the review fails only when no part succeeded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};

use futures::StreamExt;
use prfix_engine::prompt::Fence;
use prfix_engine::review::{self, Finding, PartBudget, ReviewPart, Severity, SuggestionCheck};
use prfix_proto::agent::v1 as pb;

use super::part::{PartOutcome, review_part};
use super::{Job, RunError, feedback, model_or};
use crate::changeset;

/// A finding as the API sends it, with redacted secrets put back (the user owns the code).
pub fn to_proto(f: &Finding, vault: &prfix_engine::redact::Vault) -> pb::Finding {
    pb::Finding {
        path: f.path.clone(),
        line: i32::try_from(f.line).unwrap_or(i32::MAX),
        end_line: i32::try_from(f.end_line).unwrap_or(i32::MAX),
        side: pb::Side::New as i32,
        severity: f.severity as i32,
        category: f.category.clone(),
        title: vault.restore(&f.title),
        body: vault.restore(&f.body),
        suggestion: vault.restore(&f.suggestion),
    }
}

fn min_severity(value: i32) -> Option<Severity> {
    match pb::Severity::try_from(value) {
        Ok(pb::Severity::Critical) => Some(Severity::Critical),
        Ok(pb::Severity::Major) => Some(Severity::Major),
        Ok(pb::Severity::Minor) => Some(Severity::Minor),
        Ok(pb::Severity::Info) => Some(Severity::Info),
        _ => None,
    }
}

/// Model calls a review of `parts` parts may make: two answers per part (the ask and one retry)
/// and, across the task, `retries` retries of faults that heal per part; at least the setting.
fn call_budget(parts: usize, retries: u32, floor: u32) -> u32 {
    let per_part = 2u32.saturating_add(retries);
    u32::try_from(parts).unwrap_or(u32::MAX).saturating_mul(per_part).max(floor)
}

/// Runs a review.
pub async fn run(job: &Job, request: pb::CreateReviewRequest) -> Result<pb::ReviewResult, RunError> {
    let pb::CreateReviewRequest { change_set, options } = request;
    let change_set = change_set.unwrap_or_default();
    // The eval run id only tags the task (stored and audited at creation); the review ignores it.
    let pb::ReviewOptions { model, ignore_globs, min_severity: min, max_findings, extra_instructions, eval_run_id: _ } =
        options.unwrap_or_default();
    let settings = &job.engine.settings;
    let model = model_or(&model, &settings.reasoning_model);
    let mut prepared =
        changeset::prepare(&change_set, &job.engine.redactor, &[&extra_instructions]).map_err(RunError::Input)?;
    let extra_instructions = job.engine.redactor.redact(&extra_instructions, &mut prepared.vault);
    job.redactions.store(u32::try_from(prepared.vault.count()).unwrap_or(u32::MAX), Ordering::Relaxed);
    let selection =
        review::select(prepared.patches.clone(), &ignore_globs).map_err(|e| RunError::Input(e.to_string()))?;
    if selection.files.is_empty() {
        job.progress("nothing to review: every file is binary, deleted or ignored", 0, 0).await?;
        return Ok(pb::ReviewResult { redactions: count(prepared.vault.count()), ..Default::default() });
    }
    let fence = Fence::new();
    // The prompt version the flags chose when the task was created (tasks from before flags: v1).
    let version = job.flags.value(prfix_flags::known::AGENT_PROMPT_REVIEW).unwrap_or("v1");
    let system = review::system_prompt_version(version, &fence, &extra_instructions);
    let context = job.engine.ollama.model_context(&model).await?;
    // Every part keeps room for a retry note, so its retry fits as well as its first call.
    let estimator = job.estimator(&model);
    let budget = PartBudget {
        context: context as usize,
        answer: job.answer_budget(context) as usize,
        margin: job.context_margin(context) as usize + feedback::note_reserve(&estimator),
        estimator,
    };
    let parts = review::plan_parts(&selection.files, &fence, &system, &budget)
        .map_err(|e| RunError::Input(format!("model {model}: {e}")))?;
    let total = parts.len();
    job.allow_calls(call_budget(total, job.engine.retry.retries, settings.max_model_calls_per_task));
    job.progress(
        format!(
            "reviewing {} in {} with {model} ({} left out)",
            plural(selection.files.len(), "file"),
            plural(total, "part"),
            selection.skipped.len()
        ),
        0,
        count(total),
    )
    .await?;
    let concurrency = settings.review_chunk_concurrency.max(1);
    let files = &selection.files;
    // Parts report their own events: this loop must not await the database while a part's
    // future, paused inside an event's transaction, holds the task's row lock.
    let done = AtomicI32::new(0);
    let mut waiting = parts.iter();
    let mut outcomes = futures::stream::FuturesUnordered::new();
    let mut all: Vec<Finding> = Vec::new();
    let (mut reanchored, mut dropped, mut dropped_suggestions, mut failed) = (0usize, 0usize, 0usize, Vec::new());
    loop {
        while outcomes.len() < concurrency {
            let Some(part) = waiting.next() else { break };
            let context = PartContext {
                job,
                model: &model,
                system: &system,
                fence: &fence,
                files,
                contents: &prepared.files,
                vault: &prepared.vault,
            };
            outcomes.push(run_part(context, part, &done));
        }
        let Some(outcome) = outcomes.next().await else { break };
        let (outcome, suggestions_dropped) = outcome?;
        dropped_suggestions += suggestions_dropped;
        match outcome {
            PartOutcome::Reviewed(anchored) => {
                reanchored += anchored.reanchored;
                dropped += anchored.dropped;
                all.extend(anchored.findings);
            }
            PartOutcome::Failed(part) => failed.push(part),
        }
    }
    failed.sort_by_key(|p: &pb::FailedPart| p.part);
    if failed.len() == total {
        let reasons: Vec<String> =
            failed.iter().map(|p| format!("part {} of {}: {}", p.part, p.total, p.reason)).collect();
        return Err(RunError::Model(format!("no part of the review gave usable findings: {}", reasons.join("; "))));
    }
    let requested = usize::try_from(max_findings).unwrap_or(0);
    let cap = if requested == 0 { settings.max_findings } else { requested.min(settings.max_findings) };
    let findings = review::finalize(all, min_severity(min), cap);
    Ok(pb::ReviewResult {
        findings: findings.iter().map(|f| to_proto(f, &prepared.vault)).collect(),
        reanchored_findings: count(reanchored),
        dropped_findings: count(dropped),
        redactions: count(prepared.vault.count()),
        chunks: count(total),
        failed_parts: failed,
        dropped_suggestions: count(dropped_suggestions),
        // Set by a forge review that reviewed only a push's commits.
        incremental_from: String::new(),
        carried_over_findings: 0,
    })
}

/// What every part of one review shares.
#[derive(Clone, Copy)]
pub(super) struct PartContext<'a> {
    /// The task.
    pub job: &'a Job,
    /// The model asked.
    pub model: &'a str,
    /// The system prompt.
    pub system: &'a str,
    /// The fence of this review's data.
    pub fence: &'a Fence,
    /// The reviewed files, to anchor findings.
    pub files: &'a [prfix_engine::diff::FilePatch],
    /// The changed files' contents (redacted, as the model saw them), to check suggestions.
    pub contents: &'a BTreeMap<String, String>,
    /// The redactions, to restore the user's text in findings.
    pub vault: &'a prfix_engine::redact::Vault,
}

/// One part: reviewed, its findings' suggestions checked, then its findings (or its failure) and
/// the progress reported as events; with the number of suggestions dropped.
async fn run_part(cx: PartContext<'_>, part: &ReviewPart, done: &AtomicI32) -> Result<(PartOutcome, usize), RunError> {
    let mut outcome = review_part(cx, part).await?;
    let dropped_suggestions = match &mut outcome {
        PartOutcome::Reviewed(anchored) => check_suggestions(&mut anchored.findings, cx.contents),
        PartOutcome::Failed(_) => 0,
    };
    let job = cx.job;
    let total = count(part.total);
    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
    match &outcome {
        PartOutcome::Reviewed(anchored) => {
            for finding in &anchored.findings {
                job.event(pb::task_event::Payload::Finding(to_proto(finding, cx.vault))).await?;
            }
            job.progress(format!("reviewed part {finished} of {total}"), finished, total).await?;
        }
        PartOutcome::Failed(failed) => {
            job.event(pb::task_event::Payload::FailedPart(failed.clone())).await?;
            job.progress(
                format!("part {} of {total} failed ({finished} of {total} done): {}", failed.part, failed.reason),
                finished,
                total,
            )
            .await?;
        }
    }
    Ok((outcome, dropped_suggestions))
}

/// Checks each finding's suggestion against its file as changed, as GitHub would apply it: a
/// suggestion that changes the file is kept (re-indented when the model flattened it), one that
/// would not change it or whose lines are not in the file is dropped; the number dropped. Files
/// whose content the change set does not carry are left as they are.
fn check_suggestions(findings: &mut [Finding], contents: &BTreeMap<String, String>) -> usize {
    let mut dropped = 0;
    for finding in findings {
        let Some(file) = contents.get(&finding.path) else { continue };
        match review::check_suggestion(file, finding) {
            SuggestionCheck::Keep(suggestion) => finding.suggestion = suggestion,
            SuggestionCheck::Unchanged | SuggestionCheck::OutOfRange => {
                finding.suggestion.clear();
                dropped += 1;
            }
            SuggestionCheck::Absent => {}
        }
    }
    dropped
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_budget_grows_with_the_parts_and_never_falls_below_the_setting() {
        assert_eq!(call_budget(3, 3, 40), 40);
        assert_eq!(call_budget(30, 3, 40), 150);
        assert_eq!(call_budget(30, 0, 40), 60);
        assert_eq!(call_budget(usize::MAX, 3, 40), u32::MAX);
    }
}
