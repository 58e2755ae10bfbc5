//! One part of a review: ask, and when the answer is unusable (no findings list, cut off at the
//! output limit, or stopped because it degenerated) ask once more with a short note on what was
//! wrong and varied sampling; a part that still has no usable answer, or whose model call failed
//! after its retries, is a failed part with its reason.

use prfix_engine::review::{self, ReviewPart};
use prfix_proto::agent::v1 as pb;

use super::review::PartContext;
use super::{RunError, Sampling, feedback};
use crate::ollama::{ChatMessage, ChatReply, OllamaError, Role};

/// What the retry asks for: the object alone, bounded, so it neither runs on nor is cut off.
const ASK_AGAIN: &str = "Answer again with only the JSON object {\"findings\": [...]} as the schema says: at most \
                         10 findings, each body one or two sentences, and nothing after the closing brace.";

/// How a part ended.
pub(super) enum PartOutcome {
    /// Its findings, anchored to the diff.
    Reviewed(review::Anchored),
    /// It gave no usable findings; the reason says why.
    Failed(pb::FailedPart),
}

/// Why a first answer needs a retry.
struct Unusable {
    /// What was wrong, for the note and the failed part's reason.
    problem: String,
    /// The answer, when one arrived.
    answer: Option<String>,
    /// Sampling of the retry.
    sampling: Sampling,
    /// Findings read from a cut-off answer: better than none when the retry fails too.
    salvage: Option<Vec<review::RawFinding>>,
}

/// Reviews one part; an error only when the task's work must stop (lease lost, database).
pub(super) async fn review_part(cx: PartContext<'_>, part: &ReviewPart) -> Result<PartOutcome, RunError> {
    let purpose = format!("review part {} of {}", part.index + 1, part.total);
    let format = review::findings_format();
    let mut messages =
        vec![ChatMessage::new(Role::System, cx.system), ChatMessage::new(Role::User, part.user_prompt.clone())];
    let first = cx.job.chat_with(&purpose, cx.model, messages.clone(), Some(format.clone()), Sampling::default()).await;
    let unusable = match first {
        Ok(reply) => match read(&reply) {
            Ok(raw) => return Ok(PartOutcome::Reviewed(review::anchor(raw, cx.files))),
            Err(unusable) => unusable,
        },
        Err(RunError::Ollama(e @ OllamaError::Degenerate { .. })) => {
            Unusable { problem: e.to_string(), answer: None, sampling: Sampling::varied(), salvage: None }
        }
        Err(e) => return failed(e, part),
    };
    let note = feedback::retry_note(cx.fence, &unusable.problem, unusable.answer.as_deref(), ASK_AGAIN);
    messages.push(ChatMessage::new(Role::User, note));
    let again = format!("{purpose}, again");
    let retry = cx.job.chat_with(&again, cx.model, messages, Some(format), unusable.sampling).await;
    let reason = match retry {
        Ok(reply) => match read(&reply) {
            Ok(raw) => return Ok(PartOutcome::Reviewed(review::anchor(raw, cx.files))),
            // A second cut-off answer still counts for what it holds.
            Err(Unusable { salvage: Some(raw), .. }) if !raw.is_empty() => {
                return Ok(PartOutcome::Reviewed(review::anchor(raw, cx.files)));
            }
            Err(second) => second.problem,
        },
        Err(e @ (RunError::Lost | RunError::Store(_))) => return Err(e),
        Err(e) => e.to_string(),
    };
    match unusable.salvage {
        Some(raw) if !raw.is_empty() => Ok(PartOutcome::Reviewed(review::anchor(raw, cx.files))),
        _ => Ok(PartOutcome::Failed(failed_part(
            part,
            format!("no usable answer after a retry: first {}; then {reason}", unusable.problem),
        ))),
    }
}

/// The findings of a whole answer, or why the answer cannot be used as it is.
fn read(reply: &ChatReply) -> Result<Vec<review::RawFinding>, Unusable> {
    let parsed = review::parse_findings(&reply.content);
    if reply.truncated {
        return Err(Unusable {
            problem: format!(
                "the answer was cut off at the output limit ({} tokens), so it is not whole",
                reply.output_tokens
            ),
            answer: Some(reply.content.clone()),
            sampling: Sampling::varied(),
            salvage: parsed.ok(),
        });
    }
    parsed.map_err(|e| Unusable {
        problem: e.to_string(),
        answer: Some(reply.content.clone()),
        sampling: Sampling { reseed: true, repeat_penalty: None },
        salvage: None,
    })
}

/// A model call that failed for good makes the part a failed one; losing the task stops all.
fn failed(e: RunError, part: &ReviewPart) -> Result<PartOutcome, RunError> {
    match e {
        RunError::Lost | RunError::Store(_) => Err(e),
        other => Ok(PartOutcome::Failed(failed_part(part, other.to_string()))),
    }
}

fn failed_part(part: &ReviewPart, reason: String) -> pb::FailedPart {
    pb::FailedPart {
        part: i32::try_from(part.index + 1).unwrap_or(i32::MAX),
        total: i32::try_from(part.total).unwrap_or(i32::MAX),
        paths: part.paths.clone(),
        reason,
    }
}
