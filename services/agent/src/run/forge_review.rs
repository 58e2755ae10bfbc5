//! A review a forge's webhook started: the pull request is read through the forge's API (its head
//! and base, `.prfix.toml` from the base branch, the diff, the changed files at the head), reviewed
//! by the same pipeline as a review created with a change set, and posted back: one review with
//! the new findings on their lines, the one summary comment (edited in place), and a check on the
//! head whose verdict follows the repository's `fail_on`.
//!
//! Posting comes last and only once the review succeeded, so a review cancelled by a newer push
//! (the task stops at its next lease renewal) posts nothing.

use prfix_forge::{PostedCheck, PullRequest, Review};
use prfix_proto::agent::v1 as pb;

use super::{Job, RunError, review};
use crate::forge::{render, repo_config};

/// Runs the review of `request`'s pull request and posts it.
pub async fn run(job: &Job, request: pb::CreateForgeReviewRequest) -> Result<pb::ReviewResult, RunError> {
    let pb::CreateForgeReviewRequest { pull_request, full: _, model, command } = request;
    let pull = pull_request.ok_or_else(|| RunError::Input("the stored request names no pull request".to_owned()))?;
    let connection = job.engine.forges.get(&pull.forge).ok_or_else(|| {
        RunError::Input(format!(
            "the forge connection `{}` is not configured at this agent (agent.forges.{0}); the review cannot be fetched",
            pull.forge
        ))
    })?;
    let forge = &connection.forge;
    let mut pr =
        PullRequest { repository: pull.repository.clone(), number: pull.number, head_sha: pull.head_sha.clone() };
    if let Some(command) = &command {
        answer_command(job, forge, &pr, &pull.triggered_by, command).await?;
    }
    job.progress(format!("reading {}#{} from {}", pr.repository, pr.number, forge.kind().name()), 0, 0).await?;
    let info = forge.pull_info(&pr.repository, pr.number).await?;
    if command.is_some() && pr.head_sha.is_empty() {
        pr.head_sha.clone_from(&info.head_sha);
        if !crate::tasks::set_forge_head(&job.engine.pool, job.task_id, &job.worker, &pr.head_sha).await? {
            return Err(RunError::Lost);
        }
    }
    if info.head_sha != pr.head_sha {
        return Err(RunError::Input(format!(
            "the pull request's head is now {}, not {}: it was pushed to after this review was queued, and the push \
             starts a review of its own",
            info.head_sha, pr.head_sha
        )));
    }
    let config = match forge.file_at(&pr.repository, repo_config::FILE, &info.base_ref).await? {
        Some(text) => repo_config::parse(&text).map_err(RunError::Input)?,
        None => repo_config::RepoConfig::default(),
    };
    let (diff, _) = forge.pull_diff(&pr).await?;
    let patches = prfix_engine::diff::parse(&diff)
        .map_err(|e| RunError::Input(format!("the forge's diff of the pull request does not parse: {e}")))?;
    let mut files = Vec::new();
    for patch in &patches {
        if patch.binary || patch.new_path.is_none() {
            continue;
        }
        if let Some(content) = forge.file_at(&pr.repository, patch.path(), &pr.head_sha).await? {
            files.push(pb::ChangedFile { path: patch.path().to_owned(), new_content: content, old_content: None });
        }
    }
    let change_set = pb::ChangeSet {
        diff,
        files,
        context_files: Vec::new(),
        base_ref: info.base_sha.clone(),
        head_ref: pr.head_sha.clone(),
        repository: pr.repository.clone(),
    };
    crate::changeset::validate(&change_set, &job.engine.settings.limits, true).map_err(RunError::Input)?;
    let options = pb::ReviewOptions {
        model,
        ignore_globs: config.ignore.clone(),
        min_severity: config.min_severity.map_or(0, |s| s as i32),
        max_findings: config.max_findings.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        extra_instructions: config.instructions.clone(),
        eval_run_id: String::new(),
    };
    let result =
        review::run(job, pb::CreateReviewRequest { change_set: Some(change_set), options: Some(options) }).await?;

    job.progress("posting the review to the pull request", 0, 0).await?;
    let posted = render::posted_fingerprints(&forge.line_comment_bodies(&pr).await?);
    let rendered = render::render(&result, &patches, &pr.head_sha, &posted, &job.task_id.to_string());
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

/// A command from a comment: run only for a commenter who may write to the repository (asked of
/// the forge); others get a polite reply and the task ends there. An accepted command gets a 👀.
async fn answer_command(
    job: &Job,
    forge: &prfix_forge::Forge,
    pr: &PullRequest,
    commenter: &str,
    command: &pb::ForgeCommand,
) -> Result<(), RunError> {
    let asked = format!("/{} {}", command.name, command.argument).trim_end().to_owned();
    if commenter.is_empty() || !forge.can_write(&pr.repository, commenter).await? {
        let reply = format!(
            "@{commenter} thanks for asking! Only people with write access to this repository can ask prfix to run \
             `{asked}`; someone who has it can ask in a comment."
        );
        forge.reply(pr, &reply).await?;
        return Err(RunError::Input(format!(
            "`{asked}` from {commenter} was refused: the forge says they have no write access to {}; they were told so \
             in a reply",
            pr.repository
        )));
    }
    forge.acknowledge(pr, command.comment_id).await?;
    job.progress(format!("`{asked}` from {commenter}, who may write to {}: reviewing", pr.repository), 0, 0).await?;
    Ok(())
}
