//! `prfix fix`: run the check, send its failure with the change set, apply the patch with
//! `git apply`, run the check again, and repeat until it passes or the rounds run out. Never
//! commits unless asked; leaves the tree as it found it when interrupted.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use prfix_proto::agent::v1 as pb;

use crate::config::Config;
use crate::error::{CliError, CliResult, EXIT_INTERRUPTED};
use crate::git::Checkout;
use crate::progress::Progress;
use crate::session::Session;

use super::review::{Target, collect};

/// Most bytes of check output sent (its end, where failures are).
const MAX_CHECK_OUTPUT: usize = 64 * 1024;
/// Most files named in the check output sent as context.
const MAX_CONTEXT_FILES: usize = 20;

/// `prfix fix` options.
#[derive(Debug, Clone, Default)]
pub struct FixArgs {
    /// What the change is (base, staged, paths).
    pub target: Target,
    /// The check command (default from `.prfix.toml`).
    pub check: Option<String>,
    /// Rounds of fix and check.
    pub max_rounds: Option<u32>,
    /// Show the first patch without applying it.
    pub dry_run: bool,
    /// Commit the result when the check passes.
    pub commit: bool,
    /// Start even with uncommitted changes.
    pub allow_dirty: bool,
}

/// The outcome of running the check.
struct CheckRun {
    passed: bool,
    output: String,
}

async fn run_check(root: &Path, command: &str) -> CliResult<CheckRun> {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(root)
        .stdin(Stdio::null())
        // Patches land within seconds of the previous run: Python's bytecode cache keys on the
        // source's mtime in whole seconds and would run the old code.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .map_err(|e| CliError::new(format!("cannot run the check `{command}`: {e}")))?;
    if output.status.code() == Some(127) {
        return Err(CliError::new(format!("check command not found: `{command}`; is it installed and on PATH?")));
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if text.len() > MAX_CHECK_OUTPUT {
        text = tail(&text, MAX_CHECK_OUTPUT);
    }
    Ok(CheckRun { passed: output.status.success(), output: text })
}

/// The end of `text`, at most `max` bytes, cut at a line start; leading lines that look like the
/// middle of a key block (base64 without its BEGIN line) are dropped too, so no secret is sent in
/// a shape the redaction would not recognise.
fn tail(text: &str, max: usize) -> String {
    let mut cut = text.len().saturating_sub(max);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let rest = &text[cut..];
    let rest = rest.find('\n').map_or("", |i| &rest[i + 1..]);
    let base64ish = |line: &str| {
        let line = line.trim();
        line.len() >= 16 && line.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    };
    let kept: Vec<&str> = rest.lines().skip_while(|l| base64ish(l) || l.trim_start().starts_with("-----END")).collect();
    format!("[... {} bytes cut ...]\n{}", text.len() - kept.iter().map(|l| l.len() + 1).sum::<usize>(), kept.join("\n"))
}

/// Files of the checkout the check output names (`tests/test_x.py::t`, `src/a.rs:12:5`), for context.
fn named_files(root: &Path, output: &str, skip: &BTreeSet<String>) -> Vec<pb::ContextFile> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for token in
        output.split(|c: char| c.is_whitespace() || matches!(c, ':' | '(' | ')' | '"' | '\'' | ',' | '[' | ']'))
    {
        let token = token.trim_start_matches("./");
        if token.is_empty()
            || token.len() > 300
            || token.contains("..")
            || token.starts_with('/')
            || !seen.insert(token)
        {
            continue;
        }
        if skip.contains(token) || prfix_engine::paths::check(token).is_err() {
            continue;
        }
        let path = root.join(token);
        // Never a symlink (it could point out of the checkout), never an ignored file (`.env`).
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() || meta.len() > 512 * 1024 || ignored(root, token) {
            continue;
        }
        if let Ok(content) = std::fs::read_to_string(&path) {
            files.push(pb::ContextFile { path: token.to_owned(), content });
        }
        if files.len() >= MAX_CONTEXT_FILES {
            break;
        }
    }
    files
}

/// Whether git ignores `path` (such files are never sent).
fn ignored(root: &Path, path: &str) -> bool {
    std::process::Command::new("git")
        .args(["check-ignore", "-q", "--", path])
        .current_dir(root)
        .status()
        .map(|s| s.success())
        .unwrap_or(true)
}

/// Runs the fix loop; exit 1 (as an error) when the check still fails after the last round.
pub async fn fix(config: &Config, checkout: &Checkout, args: FixArgs) -> CliResult {
    let check =
        args.check.clone().or_else(|| config.fix.check.clone()).filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            CliError::new("no check to run: pass --check \"<command>\" or set [fix] check in .prfix.toml")
        })?;
    let rounds = args.max_rounds.unwrap_or(config.fix.max_rounds).max(1);
    if !args.allow_dirty && checkout.is_dirty()? {
        return Err(CliError::new(
            "the working tree has uncommitted changes: commit or stash them first, or pass --allow-dirty",
        ));
    }
    let root = checkout.root().to_path_buf();
    let first = run_check(&root, &check).await?;
    if first.passed {
        println!("the check `{check}` already passes: nothing to fix");
        return Ok(());
    }
    let session = Session::open(&config.gateway).await?;
    let snapshot = checkout.snapshot()?;
    let work = fix_rounds(config, checkout, &session, &args, &check, rounds, first);
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            snapshot.restore()?;
            Err(CliError { message: "interrupted: the working tree is as it was before `prfix fix`".to_owned(), code: EXIT_INTERRUPTED })
        }
    }
}

async fn fix_rounds(
    config: &Config,
    checkout: &Checkout,
    session: &Session,
    args: &FixArgs,
    check: &str,
    rounds: u32,
    mut last: CheckRun,
) -> CliResult {
    let root = checkout.root().to_path_buf();
    // The files the patches touched: what `--commit` commits, nothing else.
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for round in 1..=rounds {
        let (_, mut change_set) = collect_for_fix(checkout, &args.target)?;
        let known: BTreeSet<String> = change_set.files.iter().map(|f| f.path.clone()).collect();
        change_set.context_files = named_files(&root, &last.output, &known);
        let options = pb::FixOptions {
            planner_model: config.fix.planner_model.clone().unwrap_or_default(),
            coder_model: config.fix.coder_model.clone().unwrap_or_default(),
            max_attempts: 0,
            allow_new_files: config.fix.allow_new_files,
        };
        let problem = pb::FixProblem {
            check_command: check.to_owned(),
            check_output: last.output.clone(),
            findings: Vec::new(),
            instruction: String::new(),
        };
        let progress = Progress::start(&format!("round {round} of {rounds}: asking for a fix"));
        let task = session
            .agent()
            .create_fix(pb::CreateFixRequest {
                change_set: Some(change_set),
                problem: Some(problem),
                options: Some(options),
            })
            .await
            .map_err(|s| session.fail("fix", &s))?
            .into_inner()
            .task
            .ok_or_else(|| CliError::new("the gateway sent no task"))?;
        let task = super::follow(session, &task.task_id, &progress).await?;
        progress.finish();
        let Some(pb::task_result::Result::Fix(result)) = task.result.as_ref().and_then(|r| r.result.clone()) else {
            return Err(super::not_succeeded(&format!("the fix (round {round})"), &task));
        };
        if args.dry_run {
            print!("{}", result.patch);
            eprintln!("dry run: the patch above was not applied");
            return Ok(());
        }
        checkout
            .apply(&result.patch, true)
            .map_err(|e| CliError::new(format!("the patch of round {round} does not apply: {e}")))?;
        checkout.apply(&result.patch, false)?;
        let p = crate::report::printable;
        eprintln!("round {round}: {}", p(result.explanation.lines().next().unwrap_or("patch applied")));
        for file in &result.files {
            eprintln!("  {} (+{} -{})", p(&file.path), file.additions, file.deletions);
            changed.insert(file.path.clone());
        }
        last = run_check(&root, check).await?;
        if last.passed {
            println!("the check `{check}` passes after {round} round{}", if round == 1 { "" } else { "s" });
            if args.commit {
                commit(&root, check, &changed)?;
            } else {
                println!("the changes are in the working tree, not committed (`git diff` shows them)");
            }
            return Ok(());
        }
        eprintln!("round {round}: the check still fails");
    }
    Err(CliError::found(format!(
        "the check `{check}` still fails after {rounds} round{}; the changes are left in the working tree (`git diff` shows them, `git checkout -- .` drops them)",
        if rounds == 1 { "" } else { "s" }
    )))
}

/// The change set for a fix: like a review's, but an empty diff is fine (the bug may predate it).
fn collect_for_fix(checkout: &Checkout, target: &Target) -> CliResult<(crate::git::Collected, pb::ChangeSet)> {
    match collect(checkout, target) {
        Ok(found) => Ok(found),
        Err(e) if e.message.starts_with("nothing to review") => {
            Ok((crate::git::Collected::default(), pb::ChangeSet { repository: String::new(), ..Default::default() }))
        }
        Err(e) => Err(e),
    }
}

fn commit(root: &Path, check: &str, paths: &BTreeSet<String>) -> CliResult {
    let run = |args: &[&str]| -> CliResult {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .status()
            .map_err(|e| CliError::new(format!("cannot run git: {e}")))?;
        if status.success() { Ok(()) } else { Err(CliError::new(format!("git {} failed", args.join(" ")))) }
    };
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    // Only the patched files: whatever else the check wrote or the user had is left alone.
    let mut add = vec!["add", "--"];
    add.extend(&paths);
    run(&add)?;
    let message = format!("prfix: fix `{check}`");
    let mut commit = vec!["commit", "-q", "-m", &message, "--"];
    commit.extend(&paths);
    run(&commit)?;
    println!("committed {}", paths.join(", "));
    Ok(())
}
