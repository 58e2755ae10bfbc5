//! `/fix` in a pull request comment: the pull request is read as for a review (the commenter's
//! write access checked first, the comment acknowledged), the engine's fix pipeline (the one
//! `CreateFix` and `prfix fix` use) writes a patch for the findings of prfix's review of the head
//! and the comment's instruction (`/fix use parameters`), and the patch is posted as suggestions
//! on the lines it replaces ([`super::suggest`]), with the whole patch in the review's body. Nothing
//! is pushed: a person applies the suggestions.

use std::fmt::Write as _;

use prfix_forge::Review;
use prfix_proto::agent::v1 as pb;

use super::{incremental, suggest};
use crate::run::forge_fetch::{Fetched, fetch};
use crate::run::{Job, RunError};
use crate::tasks;

/// The hidden line that ends a fix prfix posts.
fn marker(task_id: &str) -> String {
    format!("<!-- prfix:fix {task_id} -->")
}

/// Writes the fix `request`'s `/fix` asks for and posts it as suggestions.
pub async fn run(job: &Job, request: pb::CreateForgeReviewRequest) -> Result<pb::FixResult, RunError> {
    let pb::CreateForgeReviewRequest { pull_request, full: _, model, command, coder_model } = request;
    let instruction = command.as_ref().map(|c| c.argument.trim().to_owned()).unwrap_or_default();
    let commenter = pull_request.as_ref().map(|p| p.triggered_by.clone()).unwrap_or_default();
    let Fetched { connection, pr, config: _, patches, change_set } =
        fetch(job, pull_request.clone(), command.as_ref()).await?;
    let forge = &connection.forge;

    // The findings of prfix's review of this very head: their lines are the head's.
    let pull = pb::ForgePullRequest { head_sha: pr.head_sha.clone(), ..pull_request.unwrap_or_default() };
    let findings = match incremental::earlier_review(tasks::last_review(&job.engine.pool, &pull, job.task_id).await?) {
        Some((head, review)) if head == pr.head_sha => review.findings,
        _ => Vec::new(),
    };
    if findings.is_empty() && instruction.is_empty() {
        let reply = format!(
            "@{commenter} there is nothing for `/fix` to work on yet: prfix has no findings on commit {} and the \
             comment names no change. Comment `/review` first, or say what to change: `/fix use query parameters`.",
            incremental::short(&pr.head_sha)
        );
        forge.reply(&pr, &reply).await?;
        return Err(RunError::Input(
            "`/fix` had no findings of this head to address and no instruction; the commenter was told so".to_owned(),
        ));
    }
    let work = async {
        let problem = pb::FixProblem {
            check_command: String::new(),
            check_output: String::new(),
            findings: findings.clone(),
            instruction: instruction.clone(),
        };
        let options = pb::FixOptions {
            planner_model: model,
            coder_model,
            max_attempts: 0,
            allow_new_files: false,
            eval_run_id: String::new(),
        };
        let result = crate::run::fix::run(
            job,
            pb::CreateFixRequest { change_set: Some(change_set), problem: Some(problem), options: Some(options) },
        )
        .await?;

        if !super::may_post(job).await? {
            return Ok(result);
        }
        job.progress("posting the fix as suggestions", 0, 0).await?;
        let fixed = prfix_engine::diff::parse(&result.patch)
            .map_err(|e| RunError::Model(format!("the fix's patch does not parse: {e}")))?;
        let all = suggest::suggestions(&fixed);
        let note = format!("<sub>From `/fix` by @{commenter} · prfix task `{}`.</sub>", job.task_id);
        let comments: Vec<_> = all.iter().filter_map(|s| suggest::comment(s, &patches, &note)).collect();
        let body = body(&result, findings.len(), &instruction, comments.len(), all.len(), &pr.head_sha);
        let review = Review { body, comments };
        let posted = forge.post_suggestions(&pr, &review, &marker(&job.task_id.to_string())).await?;
        let mut said = format!(
            "posted the fix to {}#{}: {} suggestion(s) on lines, {} only in the patch",
            pr.repository,
            pr.number,
            posted.comments,
            all.len().saturating_sub(posted.comments)
        );
        if let Some(reason) = posted.fallback {
            let _ = write!(said, "; {reason}");
        }
        job.progress(said, 1, 1).await?;
        Ok(result)
    };
    match work.await {
        Ok(result) => Ok(result),
        Err(e) => Err(super::told(job, forge, &pr, "/fix", e).await),
    }
}

/// The review's body: what the fix addresses, its explanation, how much of it is on lines, and the
/// whole patch (folded).
fn body(
    result: &pb::FixResult,
    findings: usize,
    instruction: &str,
    placed: usize,
    all: usize,
    head_sha: &str,
) -> String {
    let mut out = String::from("## prfix fix\n\n");
    let mut asked = Vec::new();
    if findings > 0 {
        asked.push(format!("{findings} finding(s) of prfix's review"));
    }
    if !instruction.is_empty() {
        asked.push(format!("“{}”", instruction.split_whitespace().collect::<Vec<_>>().join(" ").replace('<', "&lt;")));
    }
    let _ = writeln!(out, "For {} on commit {}.\n", asked.join(" and "), incremental::short(head_sha));
    let _ = writeln!(out, "{}\n", result.explanation.trim().replace('<', "&lt;"));
    if all == 0 {
        out.push_str("The patch changes no lines that can be suggested (it adds or deletes files).\n");
    } else if placed < all {
        let _ = writeln!(
            out,
            "{placed} of its {all} changes are suggested on their lines; the others touch lines this pull request's \
             diff does not show, so they are only in the patch below."
        );
    } else {
        let _ = writeln!(out, "Its {all} change(s) are suggested on their lines: apply them from there.");
    }
    let longest = result.patch.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let _ = write!(
        out,
        "\n<details><summary>The whole patch (<code>git apply</code>)</summary>\n\n{fence}diff\n{}\n{fence}\n\n</details>\n",
        result.patch.trim_end()
    );
    out
}
