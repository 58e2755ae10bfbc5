//! The review pipeline: select files, chunk to the model's context, ask per chunk (several at
//! once), parse tolerantly, anchor, deduplicate, order and cap.

use std::sync::atomic::{AtomicI32, Ordering};

use futures::StreamExt;
use prfix_engine::prompt::Fence;
use prfix_engine::review::{self, Finding, Severity};
use prfix_engine::tokens;
use prfix_proto::agent::v1 as pb;

use super::{Job, RunError, model_or};
use crate::changeset;
use crate::ollama::{ChatMessage, Role};

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

struct ChunkOutcome {
    anchored: review::Anchored,
    error: Option<String>,
}

/// Runs a review.
pub async fn run(job: &Job, request: pb::CreateReviewRequest) -> Result<pb::ReviewResult, RunError> {
    let pb::CreateReviewRequest { change_set, options } = request;
    let change_set = change_set.unwrap_or_default();
    let pb::ReviewOptions { model, ignore_globs, min_severity: min, max_findings, extra_instructions } =
        options.unwrap_or_default();
    let settings = &job.engine.settings;
    let model = model_or(&model, &settings.reasoning_model);
    let mut prepared =
        changeset::prepare(&change_set, &job.engine.redactor, &[&extra_instructions]).map_err(RunError::Input)?;
    let extra_instructions = job.engine.redactor.redact(&extra_instructions, &mut prepared.vault);
    job.redactions
        .store(u32::try_from(prepared.vault.count()).unwrap_or(u32::MAX), std::sync::atomic::Ordering::Relaxed);
    let selection =
        review::select(prepared.patches.clone(), &ignore_globs).map_err(|e| RunError::Input(e.to_string()))?;
    if selection.files.is_empty() {
        job.progress("nothing to review: every file is binary, deleted or ignored", 0, 0).await?;
        return Ok(pb::ReviewResult { redactions: count(prepared.vault.count()), ..Default::default() });
    }
    let fence = Fence::new();
    let system = review::system_prompt(&fence, &extra_instructions);
    let context = job.engine.ollama.model_context(&model).await?;
    let answer = job.answer_budget(context);
    let fixed = tokens::estimate(&system) + 200 + tokens::estimate(&review::findings_schema().to_string());
    let budget = (context as usize).saturating_sub(fixed + answer as usize + super::CONTEXT_MARGIN as usize).max(256);
    let chunks = review::chunk(&selection.files, budget);
    let total = chunks.len();
    job.progress(
        format!(
            "reviewing {} in {} with {model} ({} left out)",
            plural(selection.files.len(), "file"),
            plural(total, "part"),
            selection.skipped.len()
        ),
        0,
        i32::try_from(total).unwrap_or(i32::MAX),
    )
    .await?;
    let concurrency = settings.review_chunk_concurrency.max(1);
    let files = &selection.files;
    // Chunks report their own events: this loop must not await the database while a chunk's
    // future, paused inside an event's transaction, holds the task's row lock.
    let done = AtomicI32::new(0);
    let mut waiting = chunks.iter().enumerate();
    let mut outcomes = futures::stream::FuturesUnordered::new();
    let mut all: Vec<Finding> = Vec::new();
    let (mut reanchored, mut dropped, mut failures) = (0usize, 0usize, Vec::new());
    loop {
        while outcomes.len() < concurrency {
            let Some((i, chunk)) = waiting.next() else { break };
            let messages = vec![
                ChatMessage::new(Role::System, system.clone()),
                ChatMessage::new(Role::User, review::chunk_prompt(&fence, chunk, i, total)),
            ];
            outcomes.push(review_chunk(job, &model, messages, i, total, files, &prepared.vault, &done));
        }
        let Some(outcome) = outcomes.next().await else { break };
        let outcome = outcome?;
        reanchored += outcome.anchored.reanchored;
        dropped += outcome.anchored.dropped;
        if let Some(error) = outcome.error {
            failures.push(error);
        }
        all.extend(outcome.anchored.findings);
    }
    if failures.len() == total {
        return Err(RunError::Model(format!("no part of the review gave usable findings: {}", failures.join("; "))));
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
    })
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// One chunk: ask, and when the answer holds no findings list ask once more saying why; then
/// report its findings and the progress as events.
#[allow(clippy::too_many_arguments)]
async fn review_chunk(
    job: &Job,
    model: &str,
    messages: Vec<ChatMessage>,
    index: usize,
    total: usize,
    files: &[prfix_engine::diff::FilePatch],
    vault: &prfix_engine::redact::Vault,
    done: &AtomicI32,
) -> Result<ChunkOutcome, RunError> {
    let outcome = ask_chunk(job, model, messages, index, total, files).await?;
    for finding in &outcome.anchored.findings {
        job.event(pb::task_event::Payload::Finding(to_proto(finding, vault))).await?;
    }
    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
    let total = i32::try_from(total).unwrap_or(i32::MAX);
    job.progress(format!("reviewed part {finished} of {total}"), finished, total).await?;
    Ok(outcome)
}

async fn ask_chunk(
    job: &Job,
    model: &str,
    mut messages: Vec<ChatMessage>,
    index: usize,
    total: usize,
    files: &[prfix_engine::diff::FilePatch],
) -> Result<ChunkOutcome, RunError> {
    let purpose = format!("review part {} of {total}", index + 1);
    let reply = job.chat(&purpose, model, messages.clone(), Some(review::findings_schema())).await?;
    let raw = match review::parse_findings(&reply.content) {
        Ok(raw) => raw,
        Err(first) => {
            messages.push(ChatMessage::new(Role::Assistant, reply.content));
            messages.push(ChatMessage::new(
                Role::User,
                format!("{first}. Answer again with only the JSON object {{\"findings\": [...]}} as the schema says."),
            ));
            let retry =
                job.chat(&format!("{purpose}, again"), model, messages, Some(review::findings_schema())).await?;
            match review::parse_findings(&retry.content) {
                Ok(raw) => raw,
                Err(e) => {
                    return Ok(ChunkOutcome {
                        anchored: review::Anchored::default(),
                        error: Some(format!("part {}: {e}", index + 1)),
                    });
                }
            }
        }
    };
    Ok(ChunkOutcome { anchored: review::anchor(raw, files), error: None })
}
