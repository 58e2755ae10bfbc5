//! A review a forge's webhook started: the pull request is read through the forge's API (its head
//! and base, `.prfix.toml` from the base branch, the diff, the changed files at the head), reviewed
//! by the same pipeline as a review created with a change set, and posted back: one review with
//! the new findings on their lines, the one summary comment (edited in place), and a check on the
//! head whose verdict follows the repository's `fail_on`.
//!
//! A push after a reviewed head is reviewed by its new commits alone, the earlier findings on lines
//! they did not touch carried over ([`crate::forge::incremental`]); the summary says which it was.
//!
//! Posting comes last and only once the review succeeded, so a review cancelled by a newer push
//! (the task stops at its next lease renewal) posts nothing.

use prfix_forge::{PostedCheck, Review};
use prfix_proto::agent::v1 as pb;

use super::forge_fetch::{Fetched, fetch};
use super::{Job, RunError, review};
use crate::forge::incremental::{self, Scope};
use crate::forge::render;
use crate::tasks;

/// Runs the review of `request`'s pull request and posts it.
pub async fn run(job: &Job, request: pb::CreateForgeReviewRequest) -> Result<pb::ReviewResult, RunError> {
    let pb::CreateForgeReviewRequest { pull_request, full, model, command, coder_model: _ } = request;
    let pull = pull_request.clone().unwrap_or_default();
    let Fetched { connection, pr, config, patches, change_set } = fetch(job, pull_request, command.as_ref()).await?;
    let forge = &connection.forge;
    let pull = pb::ForgePullRequest { head_sha: pr.head_sha.clone(), ..pull };
    let earlier = incremental::earlier_review(tasks::last_review(&job.engine.pool, &pull, job.task_id).await?);
    let scope = incremental::plan(forge, &pr, earlier, &patches, full).await;
    let (change_set, incremental) = match scope {
        Scope::Incremental(plan) => {
            job.progress(
                format!(
                    "reviewing only the commits since {}, the head reviewed before",
                    incremental::short(&plan.from)
                ),
                0,
                0,
            )
            .await?;
            let paths: Vec<&str> = plan.patches.iter().map(|p| p.path()).collect();
            let files = change_set.files.iter().filter(|f| paths.contains(&f.path.as_str())).cloned().collect();
            (pb::ChangeSet { diff: plan.diff.clone(), files, ..change_set }, Ok(plan))
        }
        Scope::Full { why } => (change_set, Err(why)),
    };
    let options = pb::ReviewOptions {
        model,
        ignore_globs: config.ignore.clone(),
        min_severity: config.min_severity.map_or(0, |s| s as i32),
        max_findings: config.max_findings.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        extra_instructions: config.instructions.clone(),
        eval_run_id: String::new(),
    };
    let nothing_new = incremental.is_ok() && change_set.diff.trim().is_empty();
    let mut result = if nothing_new {
        pb::ReviewResult::default()
    } else {
        review::run(job, pb::CreateReviewRequest { change_set: Some(change_set), options: Some(options) }).await?
    };
    let scope = match &incremental {
        Ok(plan) => {
            let carried = incremental::carried_over(&plan.earlier, &plan.patches);
            incremental::merge(&mut result, &plan.from, carried);
            format!(
                "Incremental review: only the commits since {} (reviewed before) were reviewed; {} earlier finding(s) on \
                 lines they did not touch are carried over. Comment `/review full` to review the whole pull request.",
                incremental::short(&plan.from),
                result.carried_over_findings
            )
        }
        Err(why) if why.is_empty() => String::new(),
        Err(why) => format!("Full review: {why}."),
    };

    if !crate::forge::may_post(job).await? {
        return Ok(result);
    }
    job.progress("posting the review to the pull request", 0, 0).await?;
    let posted = render::posted_fingerprints(&forge.line_comment_bodies(&pr).await?);
    let rendered = render::render(&result, &patches, &pr.head_sha, &posted, &job.task_id.to_string(), &scope);
    let summary = forge.upsert_summary(&pr, &rendered.summary).await?;
    let review = Review { body: rendered.review_body.clone(), comments: rendered.comments.clone() };
    let placed = forge.post_review(&pr, &review).await?;
    let mut check = render::check(&result, config.fail_on, &rendered.summary);
    check.details_url = summary.url.clone().or_else(|| connection.details_url.clone());
    let reported = forge.report_check(&pr, &check).await?;
    let mut said = format!(
        "posted to {}#{}: {} comment(s) on lines, {} already there; summary comment {}",
        pr.repository,
        pr.number,
        placed.comments,
        rendered.already_posted,
        if summary.updated { "edited" } else { "created" }
    );
    if let Some(reason) = placed.fallback {
        said.push_str(&format!("; {reason}"));
    }
    match reported {
        PostedCheck::CheckRun { .. } => said.push_str("; check run reported"),
        PostedCheck::CommitStatus { fallback } => {
            said.push_str("; commit status set");
            if let Some(reason) = fallback {
                said.push_str(&format!(" ({reason})"));
            }
        }
    }
    job.progress(said, 1, 1).await?;
    Ok(result)
}
