//! `prfix eval fix`: for each fix commit that adds or changes a test, check out its parent in a
//! temporary worktree, put the fix's version of the tests there, and run `prfix fix --check` with
//! them as the failing check. A success is a check that passes afterwards with the tests untouched.
//!
//! The check runs here, on the user's machine, as `prfix fix` runs it; the service never runs code.
//! The user's checkout is never touched: everything happens in the worktree, removed afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use prfix_proto::agent::v1 as pb;

use super::cache::{Cost, FixEntry, FixOutcome};
use super::mine::{self, MineOptions, short};
use super::report::{self, EvalFormat, FixReport};
use super::{Common, EvalError, lines};
use crate::config::Config;
use crate::error::{CliError, CliResult, EXIT_INTERRUPTED};
use crate::git::Checkout;
use crate::interrupt::interruptible;
use crate::progress::Progress;
use crate::session::Session;

/// `prfix eval fix` options.
#[derive(Debug, Clone, Default)]
pub struct FixArgs {
    /// Shared options.
    pub common: Common,
    /// The command that runs the tests, `{tests}` standing for the test files (default `[eval]
    /// test_check`).
    pub check: Option<String>,
    /// Rounds of fix and check per case (default `[fix] max_rounds`).
    pub max_rounds: Option<u32>,
}

/// A fix commit with tests: the case `prfix eval fix` replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixCase {
    /// The fix commit.
    pub sha: String,
    /// Its parent, where the fix starts from.
    pub parent: String,
    /// Its subject.
    pub subject: String,
    /// The test files it adds or changes.
    pub tests: Vec<String>,
    /// The source files it changes that exist in the parent (sent to `prfix fix` with the tests).
    pub sources: Vec<String>,
}

/// The fix commits of the window that add or change a test and change source files, oldest first
/// (the newest `max`).
pub fn cases(checkout: &Checkout, options: &MineOptions) -> Result<Vec<FixCase>, EvalError> {
    let mut found = Vec::new();
    for commit in mine::fix_candidates(checkout, options)? {
        let parent = commit.parents[0].clone();
        let diff = checkout.commit_diff(Some(&parent), &commit.sha, 0)?;
        let patches = prfix_engine::diff::parse(&diff)
            .map_err(|e| EvalError::Git(format!("cannot read the diff of {}: {e}", short(&commit.sha))))?;
        let mut case = FixCase {
            sha: commit.sha.clone(),
            parent,
            subject: commit.subject().to_owned(),
            tests: Vec::new(),
            sources: Vec::new(),
        };
        for patch in patches.iter().filter(|p| !p.binary && p.status != prfix_engine::diff::FileStatus::Deleted) {
            let path = patch.path().to_owned();
            if lines::is_test_path(&path) && patch.additions() > 0 {
                case.tests.push(path);
            } else if lines::is_reviewable(&path) && patch.old_path.is_some() {
                case.sources.push(path);
            }
        }
        if !case.tests.is_empty() && !case.sources.is_empty() {
            found.push(case);
        }
    }
    if let Some(max) = options.max
        && found.len() > max
    {
        found.drain(..found.len() - max);
    }
    Ok(found)
}

/// A temporary worktree, removed when dropped.
struct Worktree<'a> {
    checkout: &'a Checkout,
    dir: PathBuf,
}

impl Drop for Worktree<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.checkout.remove_worktree(&self.dir) {
            eprintln!("prfix: warning: {e}");
        }
    }
}

/// The check with `{tests}` replaced by the test files, each quoted for the shell.
pub fn check_command(template: &str, tests: &[String]) -> String {
    let quoted: Vec<String> = tests.iter().map(|t| format!("'{}'", t.replace('\'', r"'\''"))).collect();
    template.replace("{tests}", &quoted.join(" "))
}

/// Runs `command` with `sh -c` in `dir`; whether it passed.
async fn passes(dir: &Path, command: &str) -> CliResult<bool> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map_err(|e| CliError::new(format!("cannot run the check `{command}`: {e}")))?;
    if status.code() == Some(127) {
        return Err(CliError::new(format!("check command not found: `{command}`; is it installed and on PATH?")));
    }
    Ok(status.success())
}

/// What one run needs to know.
struct Run<'a> {
    config: &'a Config,
    checkout: &'a Checkout,
    session: &'a Session,
    template: &'a str,
    rounds: u32,
    run_id: &'a str,
    /// The fix tasks whose cost is counted already (cases follow each other within a second).
    counted: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// One case with one model: worktree, check before, `prfix fix`, check after, the tests compared.
async fn fix_case(run: &Run<'_>, case: &FixCase, model: &str) -> CliResult<FixEntry> {
    let started = Instant::now();
    let since = chrono::Utc::now();
    let mut entry = FixEntry {
        commit: case.sha.clone(),
        model: model.to_owned(),
        run_id: run.run_id.to_owned(),
        outcome: FixOutcome::Failed,
        tests: case.tests.clone(),
        detail: String::new(),
        cost: Cost::default(),
    };
    let dir = std::env::temp_dir().join(format!("prfix-eval-{}-{}", std::process::id(), short(&case.sha)));
    if dir.exists() {
        run.checkout.remove_worktree(&dir)?;
    }
    let worktree = Worktree { checkout: run.checkout, dir: dir.clone() };
    run.checkout.add_worktree(&dir, &case.parent)?;
    let mut expected = Vec::new();
    for test in &case.tests {
        let content = run.checkout.file_at(&case.sha, test)?.unwrap_or_default();
        let full = dir.join(test);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, &content)?;
        expected.push((full, content));
    }
    let check = check_command(run.template, &case.tests);
    if passes(&dir, &check).await? {
        entry.outcome = FixOutcome::PassedBefore;
        entry.detail = format!("`{check}` passes on the parent: the test is no failing check");
        return Ok(entry);
    }
    let mut paths = case.tests.clone();
    paths.extend(case.sources.iter().filter(|s| dir.join(s).is_file()).cloned());
    let exe = std::env::current_exe().map_err(|e| CliError::new(format!("cannot find the prfix program: {e}")))?;
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["--gateway", run.config.gateway.as_str(), "fix", "--check", check.as_str(), "--base", "HEAD"])
        .args(["--allow-dirty", "--max-rounds", run.rounds.to_string().as_str(), "--eval-run-id", run.run_id]);
    if !model.is_empty() {
        command.args(["--model", model]);
    }
    // The same saved login as this run's (`--profile` is not in the environment when it was a flag).
    if let Some(profile) = crate::credentials::profile() {
        command.args(["--profile", profile]);
    }
    let output = command
        .arg("--")
        .args(&paths)
        .current_dir(&dir)
        .env("PRFIX_PROGRESS", "0")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| CliError::new(format!("cannot run prfix fix: {e}")))?;
    if output.status.code() == Some(i32::from(EXIT_INTERRUPTED)) {
        return Err(CliError { message: "interrupted".to_owned(), code: EXIT_INTERRUPTED });
    }
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).lines().last().unwrap_or_default().to_owned();
    let edited = expected.iter().any(|(path, content)| std::fs::read(path).ok().as_ref() != Some(content));
    entry.outcome = if edited {
        FixOutcome::EditedTest
    } else if matches!(output.status.code(), Some(0 | 1)) {
        if passes(&dir, &check).await? { FixOutcome::Fixed } else { FixOutcome::StillFailing }
    } else {
        FixOutcome::Failed
    };
    entry.detail = if output.status.success() { said(&output.stdout) } else { said(&output.stderr) };
    entry.cost = tasks_cost(run, since).await?;
    entry.cost.wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    drop(worktree);
    Ok(entry)
}

/// The cost of the fix tasks of this run created since `since` and not counted yet: those of the
/// case just run (cases run one after the other).
async fn tasks_cost(run: &Run<'_>, since: chrono::DateTime<chrono::Utc>) -> CliResult<Cost> {
    let (session, run_id) = (run.session, run.run_id);
    let request = pb::ListTasksRequest {
        page_size: 50,
        kind: pb::TaskKind::Fix as i32,
        eval_run_id: run_id.to_owned(),
        ..Default::default()
    };
    let tasks = session
        .call("listing the fix tasks", |mut agent| {
            let request = request.clone();
            async move { agent.list_tasks(request).await }
        })
        .await?
        .tasks;
    let mut cost = Cost::default();
    for task in tasks.iter().filter(|t| t.eval_run_id == run_id) {
        let created = task.create_time.as_ref().map_or(0, |t| t.seconds);
        let new = run.counted.lock().map(|mut counted| counted.insert(task.task_id.clone())).unwrap_or(false);
        if created >= since.timestamp() && new {
            cost.add(super::replay::task_cost(session, &task.task_id).await?);
        }
    }
    Ok(cost)
}

/// `prfix eval fix`: mine the cases, replay each with each model, report.
pub async fn fix(config: &Config, checkout: &Checkout, args: FixArgs) -> CliResult {
    let common = &args.common;
    let format = common.format.unwrap_or(EvalFormat::Terminal);
    let template = args.check.clone().or_else(|| config.eval.test_check.clone()).ok_or_else(|| {
        CliError::new("no test command: pass --check \"<command> {tests}\" or set [eval] test_check in .prfix.toml")
    })?;
    let rounds = args.max_rounds.unwrap_or(config.fix.max_rounds).max(1);
    let deadline = common.time_limit.as_deref().map(super::parse_duration).transpose()?.map(|d| Instant::now() + d);
    let models = super::models(&common.models, config.fix.coder_model.as_ref());
    let mut parts = vec![format!("since={:?}", common.since), format!("max={:?}", common.max), template.clone()];
    parts.extend(models.iter().map(|m| format!("model={m}")));
    let run_id = super::run_id("fix", common.run_id.as_deref(), &checkout.head()?, &parts)?;
    let cache = super::open_cache(checkout, common.cache_dir.as_ref())?;
    let options =
        MineOptions { since: common.since.clone(), fix_patterns: config.eval.fix_patterns.clone(), max: common.max };
    let cases = cases(checkout, &options)?;
    eprintln!(
        "prfix: {} fix commits add or change a test; run {run_id}, results in {}",
        cases.len(),
        cache.dir().display()
    );
    let session = Session::open(&config.gateway).await?;
    let run = Run {
        config,
        checkout,
        session: &session,
        template: &template,
        rounds,
        run_id: &run_id,
        counted: Default::default(),
    };
    let mut entries = Vec::new();
    let mut pending = Vec::new();
    let work = async {
        for (i, case) in cases.iter().enumerate() {
            for model in &models {
                let path = cache.fix_path(model, &case.sha);
                if let Some(entry) = cache.load::<FixEntry>(&path)?
                    && !(common.retry_failed && entry.outcome == FixOutcome::Failed)
                {
                    entries.push(entry);
                    continue;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    pending.push((case.sha.clone(), model.clone()));
                    continue;
                }
                let progress = Progress::start(&format!("fixing {}/{}: {}", i + 1, cases.len(), short(&case.sha)));
                let entry = fix_case(&run, case, model).await?;
                progress.finish();
                cache.store(&path, &entry)?;
                entries.push(entry);
            }
        }
        Ok::<_, CliError>(())
    };
    interruptible(work).await?;
    let report = FixReport {
        run_id,
        since: common.since.clone(),
        fix_commits_with_tests: cases.len(),
        results: report::fix_totals(&entries, &models, &pending),
        complete: pending.is_empty(),
    };
    print!("{}", super::render::render_fix(&report, format));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_names_each_test_quoted_for_the_shell() {
        let tests = vec!["test_a.py".to_owned(), "it's/test_b.py".to_owned()];
        assert_eq!(
            check_command("python3 -m pytest -q {tests}", &tests),
            r"python3 -m pytest -q 'test_a.py' 'it'\''s/test_b.py'"
        );
        assert_eq!(check_command("make test", &tests), "make test");
    }
}
