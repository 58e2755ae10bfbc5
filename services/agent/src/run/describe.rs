//! The describe pipeline: one call over the change (its first part when it does not fit).

use prfix_engine::describe;
use prfix_engine::prompt::Fence;
use prfix_engine::review;
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
    let answer = job.answer_budget(context);
    // What the first file parts may take: the context without the system prompt, the schema, the
    // answer, the margin, room for a retry note and the describe prompt's own words.
    let estimator = job.estimator(&model);
    let format = describe::format();
    let fixed = estimator.prompt_tokens(&[&system, ""], Some(&format.to_value()))
        + answer as usize
        + job.context_margin(context) as usize
        + feedback::note_reserve(&estimator)
        + estimator.scale(200);
    let budget = estimator.fits((context as usize).saturating_sub(fixed)).max(256);
    let chunks = review::chunk(&selection.files, budget);
    let mut parts = chunks.first().map(|c| c.parts.clone()).unwrap_or_default();
    if chunks.len() > 1 {
        let rest: Vec<String> = selection
            .files
            .iter()
            .filter(|f| !parts.iter().any(|(p, _)| p == f.path()))
            .map(|f| format!("{} (+{} -{})", f.path(), f.additions(), f.deletions()))
            .collect();
        parts.push(("the files not shown".to_owned(), rest.join("\n")));
    }
    for (path, reason) in &selection.skipped {
        parts.push((format!("{path} (not shown: {reason})"), String::new()));
    }
    let messages = vec![
        ChatMessage::new(Role::System, system),
        ChatMessage::new(Role::User, describe::user_prompt(&fence, &parts)),
    ];
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
