//! The describe pipeline: one call over the change (its first part when it does not fit), with
//! the list of the change's files.

use prfix_engine::describe;
use prfix_engine::prompt::Fence;
use prfix_engine::review::{self, PartBudget};
use prfix_proto::agent::v1 as pb;

use super::{Job, RunError, Sampling, feedback, model_or};
use crate::changeset;
use crate::ollama::{ChatMessage, Role};

/// Runs a describe.
pub async fn run(job: &Job, request: pb::CreateDescribeRequest) -> Result<pb::DescribeResult, RunError> {
    let pb::CreateDescribeRequest { change_set, options } = request;
    let pb::DescribeOptions { model, ignore_globs } = options.unwrap_or_default();
    let model = model_or(&model, &job.engine.settings.reasoning_model);
    let prepared =
        changeset::prepare(&change_set.unwrap_or_default(), &job.engine.redactor, &[]).map_err(RunError::Input)?;
    job.redactions
        .store(u32::try_from(prepared.vault.count()).unwrap_or(u32::MAX), std::sync::atomic::Ordering::Relaxed);
    let selection =
        review::select(prepared.patches.clone(), &ignore_globs).map_err(|e| RunError::Input(e.to_string()))?;
    let fence = Fence::new();
    let system = describe::system_prompt(&fence);
    let context = job.engine.ollama.model_context(&model).await?;
    // The first part of the diff, packed as a review part is, in the describe's frame; the list of
    // the change's files after it takes at most an eighth of the context. Every part keeps room
    // for a retry note, so the retry fits as well as the first call.
    let estimator = job.estimator(&model);
    let budget = PartBudget {
        context: context as usize,
        answer: job.answer_budget(context) as usize,
        margin: job.context_margin(context) as usize + feedback::note_reserve(&estimator),
        estimator,
    };
    let frame = describe::frame(&fence, &selection.files, &selection.skipped, estimator.fits(context as usize / 8));
    let parts = review::plan_framed(&selection.files, &fence, &system, &budget, &frame)
        .map_err(|e| RunError::Input(format!("model {model}: {e}")))?;
    let user = match parts.into_iter().next() {
        Some(first) => first.user_prompt,
        None => describe::user_prompt_without_diff(&frame),
    };
    let format = describe::format();
    let messages = vec![ChatMessage::new(Role::System, system), ChatMessage::new(Role::User, user)];
    let reply = job.chat_with("describe", &model, messages.clone(), Some(format.clone()), Sampling::default()).await?;
    let description = match describe::parse(&reply.content, &prepared.patches) {
        Ok(d) if !reply.truncated => d,
        first => {
            // The retry quotes only the start of the bad answer (see `feedback`).
            let problem = match first {
                Err(e) => e.to_string(),
                Ok(_) => format!("the answer was cut off at the output limit ({} tokens)", reply.output_tokens),
            };
            let note = feedback::retry_note(
                &fence,
                &problem,
                Some(&reply.content),
                "Answer again with only the JSON object the schema describes, short, and nothing after it.",
            );
            let mut messages = messages;
            messages.push(ChatMessage::new(Role::User, note));
            let retry = job.chat_with("describe, again", &model, messages, Some(format), Sampling::varied()).await?;
            describe::parse(&retry.content, &prepared.patches).map_err(|e| RunError::Model(e.to_string()))?
        }
    };
    let vault = &prepared.vault;
    Ok(pb::DescribeResult {
        title: vault.restore(&description.title),
        summary: vault.restore(&description.summary),
        walkthrough: description
            .walkthrough
            .into_iter()
            .map(|(path, summary)| pb::FileWalkthrough { path, summary: vault.restore(&summary) })
            .collect(),
        labels: description.labels,
    })
}
