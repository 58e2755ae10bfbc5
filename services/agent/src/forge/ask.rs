//! `/ask <question>` in a pull request comment: the pull request is read as for a review (the
//! commenter's write access checked first, the comment acknowledged), the model answers the
//! question about the change's diff in one call, and the answer is posted as a reply comment.
//!
//! The question is untrusted like the diff: it is fenced and redacted with the same vault, so it
//! can neither instruct the model nor carry a secret to it. The diff shown is the first part that
//! fits the model's context (as a describe shows it), with the list of the change's files.

use std::fmt::Write as _;

use prfix_engine::prompt::Fence;
use prfix_engine::review::{self, PartBudget, PartFrame};
use prfix_proto::agent::v1 as pb;

use crate::changeset;
use crate::ollama::{ChatMessage, Role};
use crate::run::forge_fetch::{Fetched, fetch};
use crate::run::{Job, RunError, Sampling, model_or};

/// The hidden first line of an answer prfix posts.
const MARKER: &str = "<!-- prfix:ask -->";

/// The schema of an answer: one Markdown text, bounded.
const SCHEMA: &str =
    r#"{"type":"object","properties":{"answer":{"type":"string","maxLength":4000}},"required":["answer"]}"#;

/// The system prompt.
fn system_prompt(fence: &Fence) -> String {
    format!(
        "You answer a reviewer's question about a pull request's change. Read the change and the question, then \
         answer with JSON only, matching this schema:\n{SCHEMA}\n\
         answer: Markdown, at most a few short paragraphs, naming files and lines (`path:line`) where it helps. \
         Say so when the change does not show enough to answer; never guess at code you were not shown.\n\n{}",
        fence.rule()
    )
}

fn heading(_: usize, _: usize) -> String {
    "Answer a question about this change.\n\n".to_owned()
}

/// The text after the diffs: the question, fenced, and the instruction.
fn closing(fence: &Fence, question: &str) -> String {
    let mut out = fence.wrap("the reviewer's question", question);
    out.push_str("\nAnswer the question with the JSON object only.");
    out
}

/// The answer in a model's reply: the `answer` of its JSON, or the text itself when the model wrote
/// prose instead.
fn parse(content: &str) -> Option<String> {
    let trimmed = content.trim();
    let start = trimmed.find('{');
    let from_json = start.and_then(|at| {
        let end = trimmed.rfind('}')?;
        let value: serde_json::Value = serde_json::from_str(trimmed.get(at..=end)?).ok()?;
        value.get("answer")?.as_str().map(str::to_owned)
    });
    let answer = from_json.unwrap_or_else(|| trimmed.to_owned());
    (!answer.trim().is_empty()).then(|| answer.trim().to_owned())
}

/// Answers the question of `request`'s `/ask` about its pull request and replies with the answer.
pub async fn run(job: &Job, request: pb::CreateForgeReviewRequest) -> Result<pb::AskResult, RunError> {
    let pb::CreateForgeReviewRequest { pull_request, full: _, model, command, coder_model: _ } = request;
    let question = command.as_ref().map(|c| c.argument.trim().to_owned()).unwrap_or_default();
    let Fetched { connection, pr, config, patches: _, change_set } = fetch(job, pull_request, command.as_ref()).await?;
    let forge = &connection.forge;
    if question.is_empty() {
        forge
            .reply(&pr, "`/ask` needs a question after it, for example: `/ask why is this query built by hand?`")
            .await?;
        return Err(RunError::Input("`/ask` came without a question; the commenter was told how to ask".to_owned()));
    }
    let work = async {
        let model = model_or(&model, &job.engine.settings.reasoning_model);
        let mut prepared =
            changeset::prepare(&change_set, &job.engine.redactor, &[&question]).map_err(RunError::Input)?;
        let asked = job.engine.redactor.redact(&question, &mut prepared.vault);
        job.redactions
            .store(u32::try_from(prepared.vault.count()).unwrap_or(u32::MAX), std::sync::atomic::Ordering::Relaxed);
        let selection =
            review::select(prepared.patches.clone(), &config.ignore).map_err(|e| RunError::Input(e.to_string()))?;
        let fence = Fence::new();
        let system = system_prompt(&fence);
        let format = prfix_engine::json::Ordered::parse(SCHEMA)
            .map_err(|e| RunError::Input(format!("the answer schema is not JSON: {e}")))?;
        let schema = format.to_value();
        let context = job.engine.ollama.model_context(&model).await?;
        let estimator = job.estimator(&model);
        let budget = PartBudget {
            context: context as usize,
            answer: job.answer_budget(context) as usize,
            margin: job.context_margin(context) as usize,
            estimator,
        };
        let frame = PartFrame { heading, closing: closing(&fence, &asked), schema: schema.clone() };
        let parts = review::plan_framed(&selection.files, &fence, &system, &budget, &frame)
            .map_err(|e| RunError::Input(format!("model {model}: {e}")))?;
        let shown = parts.first().map(|p| p.paths.len()).unwrap_or(0);
        let user = match parts.into_iter().next() {
            Some(first) => first.user_prompt,
            None => format!("{}{}", heading(0, 1), frame.closing),
        };
        job.progress(format!("asking {model} about {shown} file(s) of the change"), 0, 1).await?;
        let messages = vec![ChatMessage::new(Role::System, system), ChatMessage::new(Role::User, user)];
        let reply = job.chat_with("ask", &model, messages, Some(format), Sampling::default()).await?;
        let answer = parse(&reply.content)
            .ok_or_else(|| RunError::Model("the model's answer to the question was empty".to_owned()))?;
        let answer = prepared.vault.restore(&answer);

        if !super::may_post(job).await? {
            return Ok(pb::AskResult { question: question.clone(), answer });
        }
        job.progress("posting the answer to the pull request", 0, 0).await?;
        forge.reply(&pr, &markdown(&question, &answer, &pr.head_sha, &job.task_id.to_string())).await?;
        job.progress(format!("posted the answer to {}#{}", pr.repository, pr.number), 1, 1).await?;
        Ok(pb::AskResult { question: question.clone(), answer })
    };
    match work.await {
        Ok(result) => Ok(result),
        Err(e) => Err(super::told(job, forge, &pr, "/ask", e).await),
    }
}

/// The reply: the question quoted, the answer, the commit it is about.
fn markdown(question: &str, answer: &str, head_sha: &str, task_id: &str) -> String {
    let mut out = format!("{MARKER}\n");
    for line in question.lines() {
        let _ = writeln!(out, "> {}", line.replace('<', "&lt;"));
    }
    let _ = write!(out, "\n{}\n", answer.trim());
    let short = head_sha.get(..12).unwrap_or(head_sha);
    let _ = write!(out, "\n<sub>Answered about commit {short} · prfix task `{task_id}`.</sub>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn an_answer_is_read_from_json_or_from_prose() {
        assert_eq!(parse("{\"answer\": \"It joins users.\"}").as_deref(), Some("It joins users."));
        assert_eq!(parse("Sure:\n```json\n{\"answer\": \"x\"}\n```").as_deref(), Some("x"));
        assert_eq!(parse("It joins users.").as_deref(), Some("It joins users."));
        assert_eq!(parse("  "), None);
    }
}
