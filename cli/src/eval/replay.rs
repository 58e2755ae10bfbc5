//! Replaying history through the service: each bug-introducing commit's diff is reviewed, once per
//! model and prompt variant, with the same API as `prfix review` (CreateReview, then following the
//! task), its tasks tagged with the run id. Results go to the cache as each review ends.

use std::time::Instant;

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;

use super::cache::{Cache, Cost, ReviewEntry};
use super::mine::{Introducing, short};
use super::score::Spot;
use crate::error::{CliError, CliResult};
use crate::git::Checkout;
use crate::progress::Progress;
use crate::session::Session;

/// A prompt variant: a name and the extra instructions the reviewer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The name, as reports show it.
    pub name: String,
    /// The extra instructions (empty: none).
    pub instructions: String,
}

/// What to replay and within which limits.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Models to review with (an empty name: the agent's default).
    pub models: Vec<String>,
    /// Prompt variants.
    pub variants: Vec<Variant>,
    /// The run id the tasks are tagged with.
    pub run_id: String,
    /// Start no review after this instant.
    pub deadline: Option<Instant>,
    /// Review again the cases whose review failed last time.
    pub retry_failed: bool,
    /// Globs of paths left out of reviews (`[review] ignore`).
    pub ignore_globs: Vec<String>,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// One entry per commit, model and variant that has an outcome (cached or new).
    pub entries: Vec<ReviewEntry>,
    /// Cases left for a later run (the time limit).
    pub pending: Vec<(String, String, String)>,
    /// Reviews made by this run (not from the cache).
    pub reviewed_now: usize,
}

/// Reviews every introducing commit with every model and variant, taking what the cache holds.
pub async fn replay(
    session: &Session,
    checkout: &Checkout,
    cache: &Cache,
    introducing: &[Introducing],
    plan: &Plan,
) -> CliResult<Replayed> {
    let mut replayed = Replayed::default();
    let total = introducing.len() * plan.models.len() * plan.variants.len();
    let mut done = 0usize;
    for commit in introducing {
        let mut change_set: Option<pb::ChangeSet> = None;
        for model in &plan.models {
            for variant in &plan.variants {
                done += 1;
                let path = cache.review_path(model, &variant.name, &variant.instructions, &commit.sha);
                if let Some(entry) = cache.load::<ReviewEntry>(&path)?
                    && !(plan.retry_failed && entry.error.is_some())
                {
                    replayed.entries.push(entry);
                    continue;
                }
                if plan.deadline.is_some_and(|d| Instant::now() >= d) {
                    replayed.pending.push((commit.sha.clone(), model.clone(), variant.name.clone()));
                    continue;
                }
                if change_set.is_none() {
                    change_set = Some(commit_change_set(checkout, commit)?);
                }
                let this_change = change_set.clone().unwrap_or_default();
                let shown = if model.is_empty() { "the default model" } else { model.as_str() };
                let progress = Progress::start(&format!(
                    "reviewing {done}/{total}: {} with {shown} ({})",
                    short(&commit.sha),
                    variant.name
                ));
                let entry = review_one(session, this_change, commit, model, variant, plan, &progress).await?;
                progress.finish();
                cache.store(&path, &entry)?;
                replayed.reviewed_now += 1;
                replayed.entries.push(entry);
            }
        }
    }
    Ok(replayed)
}

/// The change set of a commit as `prfix review` would send it: its diff against its parent and
/// the new content of each changed text file.
pub fn commit_change_set(checkout: &Checkout, commit: &Introducing) -> CliResult<pb::ChangeSet> {
    let diff = checkout.commit_diff(commit.parent.as_deref(), &commit.sha, 3)?;
    let patches = prfix_engine::diff::parse(&diff)
        .map_err(|e| CliError::new(format!("cannot read the diff of {}: {e}", short(&commit.sha))))?;
    let mut files = Vec::new();
    for patch in patches.iter().filter(|p| !p.binary && p.status != prfix_engine::diff::FileStatus::Deleted) {
        if let Some(Ok(content)) = checkout.file_at(&commit.sha, patch.path())?.map(String::from_utf8) {
            files.push(pb::ChangedFile { path: patch.path().to_owned(), new_content: content, old_content: None });
        }
    }
    Ok(pb::ChangeSet {
        diff,
        files,
        context_files: Vec::new(),
        base_ref: commit.parent.clone().unwrap_or_default(),
        head_ref: commit.sha.clone(),
        repository: checkout.root().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    })
}

/// One review: created, followed to its end, its findings and cost read. A review the service
/// refuses for this change (too large, say) or that fails is an entry with its error; a refusal
/// that would hit every review (credentials, a model not allowed) stops the run.
async fn review_one(
    session: &Session,
    change_set: pb::ChangeSet,
    commit: &Introducing,
    model: &str,
    variant: &Variant,
    plan: &Plan,
    progress: &Progress,
) -> CliResult<ReviewEntry> {
    let started = Instant::now();
    let options = pb::ReviewOptions {
        model: model.to_owned(),
        ignore_globs: plan.ignore_globs.clone(),
        min_severity: 0,
        max_findings: 0,
        extra_instructions: variant.instructions.clone(),
        eval_run_id: plan.run_id.clone(),
    };
    let request = pb::CreateReviewRequest { change_set: Some(change_set), options: Some(options) };
    let mut entry = ReviewEntry {
        commit: commit.sha.clone(),
        model: model.to_owned(),
        variant: variant.name.clone(),
        run_id: plan.run_id.clone(),
        task_id: String::new(),
        error: None,
        findings: Vec::new(),
        cost: Cost::default(),
    };
    let created = match create(session, request).await? {
        Ok(task) => task,
        Err(refusal) => {
            entry.error = Some(refusal);
            entry.cost.wall_ms = elapsed_ms(started);
            return Ok(entry);
        }
    };
    entry.task_id = created.task_id.clone();
    let task = crate::commands::follow(session, &created.task_id, progress).await?;
    entry.cost = task_cost(session, &task.task_id).await?;
    entry.cost.wall_ms = elapsed_ms(started);
    match task.result.and_then(|r| r.result) {
        Some(pb::task_result::Result::Review(result)) => {
            entry.findings = result
                .findings
                .iter()
                .map(|f| Spot {
                    path: f.path.clone(),
                    line: u32::try_from(f.line).unwrap_or(0),
                    end_line: u32::try_from(f.end_line.max(f.line)).unwrap_or(0),
                    severity: crate::report::severity_name(f.severity).to_owned(),
                    title: f.title.clone(),
                })
                .collect();
        }
        _ => {
            let state = crate::commands::state_name(task.state);
            entry.error = Some(if task.error.is_empty() { state } else { format!("{state}: {}", task.error) });
        }
    }
    Ok(entry)
}

/// CreateReview with a fresh token, waiting out the gateway's rate limit: the task, or the
/// service's refusal of this change (an INVALID_ARGUMENT about the change set); any other error
/// stops the run.
async fn create(session: &Session, request: pb::CreateReviewRequest) -> CliResult<Result<pb::Task, String>> {
    let refusal = std::sync::Mutex::new(None);
    let answer = session
        .call_patiently("review", |mut agent| {
            let request = request.clone();
            let refusal = &refusal;
            async move {
                match agent.create_review(request).await {
                    Err(status)
                        if status.code() == tonic::Code::InvalidArgument
                            && !status.message().starts_with("options.") =>
                    {
                        if let Ok(mut slot) = refusal.lock() {
                            *slot = Some(format!("refused: {}", status.message()));
                        }
                        Ok(tonic::Response::new(pb::CreateReviewResponse { task: None }))
                    }
                    other => other,
                }
            }
        })
        .await?;
    if let Some(refusal) = refusal.into_inner().ok().flatten() {
        return Ok(Err(refusal));
    }
    answer.task.map(Ok).ok_or_else(|| CliError::new("the gateway sent no task"))
}

/// The model calls of a finished task, from its events.
pub async fn task_cost(session: &Session, task_id: &str) -> CliResult<Cost> {
    let request = pb::WatchTaskRequest { task_id: task_id.to_owned(), after_sequence: 0 };
    let mut stream = session
        .agent()
        .watch_task(request)
        .await
        .map_err(|s| session.fail("reading the task's events", &s))?
        .into_inner();
    let mut cost = Cost::default();
    while let Some(item) = stream.next().await {
        let item = item.map_err(|s| session.fail("reading the task's events", &s))?;
        if let Some(pb::TaskEvent { payload: Some(pb::task_event::Payload::ModelCall(call)), .. }) = item.event {
            cost.model_calls += 1;
            cost.prompt_tokens += u64::try_from(call.prompt_tokens).unwrap_or(0);
            cost.output_tokens += u64::try_from(call.output_tokens).unwrap_or(0);
        }
    }
    Ok(cost)
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
