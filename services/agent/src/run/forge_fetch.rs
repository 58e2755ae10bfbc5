//! Reading a pull request for a task a forge's webhook started: the command's permission check
//! (when a comment asked), the pull request and its head, `.prfix.toml` from the base branch (a pull
//! request cannot change how it is handled), the diff and the changed files at the head, as one
//! change set within the agent's limits.

use prfix_engine::diff::FilePatch;
use prfix_forge::PullRequest;
use prfix_proto::agent::v1 as pb;

use super::{Job, RunError};
use crate::forge::Connection;
use crate::forge::repo_config::{self, RepoConfig};

/// What a forge task works on.
pub struct Fetched<'a> {
    /// The connection it reads from and posts to.
    pub connection: &'a Connection,
    /// The pull request at the head read.
    pub pr: PullRequest,
    /// The repository's `.prfix.toml` `[review]` section (defaults when it has none).
    pub config: RepoConfig,
    /// The diff's files.
    pub patches: Vec<FilePatch>,
    /// The change set: the diff and the changed files at the head.
    pub change_set: pb::ChangeSet,
}

/// Reads the pull request `pull` (after checking the commenter of `command`, when a comment asked).
pub async fn fetch<'a>(
    job: &'a Job,
    pull: Option<pb::ForgePullRequest>,
    command: Option<&pb::ForgeCommand>,
) -> Result<Fetched<'a>, RunError> {
    let pull = pull.ok_or_else(|| RunError::Input("the stored request names no pull request".to_owned()))?;
    let connection = job.engine.forges.get(&pull.forge).ok_or_else(|| {
        RunError::Input(format!(
            "the forge connection `{}` is not configured at this agent (agent.forges.{0}); the review cannot be fetched",
            pull.forge
        ))
    })?;
    let forge = &connection.forge;
    let mut pr =
        PullRequest { repository: pull.repository.clone(), number: pull.number, head_sha: pull.head_sha.clone() };
    if let Some(command) = command {
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
    Ok(Fetched { connection, pr, config, patches, change_set })
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
    let asked: String = format!("/{} {}", command.name, command.argument).trim_end().chars().take(100).collect();
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
    job.progress(format!("`{asked}` from {commenter}, who may write to {}: working on it", pr.repository), 0, 0)
        .await?;
    Ok(())
}
