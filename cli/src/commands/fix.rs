//! `prfix fix`: run the check, send its failure with the change set, apply the patch with
//! `git apply`, run the check again, and repeat until it passes or the rounds run out. Never
//! commits unless asked; leaves the tree as it found it when interrupted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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
    /// What the change is (base, staged).
    pub target: Target,
    /// The files and directories to consider, from the checkout's top (all when empty): only
    /// their diffs and contents are sent (see [`checkout_paths`]).
    pub paths: Vec<String>,
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
    /// The model for both the plan and the edits (default: `[fix] planner_model` and
    /// `coder_model`).
    pub model: Option<String>,
    /// The `prfix eval` run the fix tasks belong to.
    pub eval_run_id: Option<String>,
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

/// Files of the checkout the check output names (`tests/test_x.py::t`, `src/a.rs:12:5`), for
/// context, within `paths` when some are given.
fn named_files(root: &Path, output: &str, skip: &BTreeSet<String>, paths: &[String]) -> Vec<pb::ContextFile> {
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
        if skip.contains(token) || !within(paths, token) {
            continue;
        }
        if let Some(file) = context_file(root, token) {
            files.push(file);
        }
        if files.len() >= MAX_CONTEXT_FILES {
            break;
        }
    }
    files
}

/// The file at `path` (from the top) as context, if it may be sent: a checked path to a regular
/// file (never a symlink, which could point out of the checkout) of at most 512 KiB of text
/// that git does not ignore (`.env`).
fn context_file(root: &Path, path: &str) -> Option<pb::ContextFile> {
    prfix_engine::paths::check(path).ok()?;
    let full = root.join(path);
    let meta = std::fs::symlink_metadata(&full).ok()?;
    if !meta.is_file() || meta.len() > 512 * 1024 || ignored(root, path) {
        return None;
    }
    let content = std::fs::read_to_string(&full).ok()?;
    Some(pb::ContextFile { path: path.to_owned(), content })
}

/// Whether `path` is one of `paths` or under one of them (always, when none are given).
fn within(paths: &[String], path: &str) -> bool {
    paths.is_empty()
        || paths.iter().any(|p| path == p || path.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('/')))
}

/// The `PATH…` arguments of `prfix fix` as paths from the checkout's top, each read from the
/// current directory first, then from the top. A path that does not exist, or that leads out
/// of the checkout (`..`, a symlink) or into `.git`, is an error naming it; a path that is the
/// top itself narrows nothing.
pub fn checkout_paths(checkout: &Checkout, given: &[String]) -> CliResult<Vec<String>> {
    let root = checkout
        .root()
        .canonicalize()
        .map_err(|e| CliError::new(format!("cannot read the checkout {}: {e}", checkout.root().display())))?;
    let cwd = std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the current directory: {e}")))?;
    let mut paths = Vec::new();
    for path in given {
        // The first reading that exists inside the checkout (the current directory may be outside it).
        let found: Vec<PathBuf> =
            [cwd.join(path), root.join(path)].into_iter().filter_map(|p| p.canonicalize().ok()).collect();
        if found.is_empty() {
            return Err(CliError::new(format!(
                "{path}: no such file or directory in the checkout (paths are read from the current directory, \
                 then from {})",
                root.display()
            )));
        }
        let Some(relative) = found.iter().find_map(|f| f.strip_prefix(&root).ok()) else {
            return Err(CliError::new(format!("{path} is outside the checkout {}", root.display())));
        };
        let parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if parts.first().is_some_and(|p| p == ".git") {
            return Err(CliError::new(format!("{path} is inside .git, which is never sent")));
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        paths.push(parts.join("/"));
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
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
        let (_, mut change_set) = collect_for_fix(checkout, &args.target, &args.paths)?;
        let mut known: BTreeSet<String> = change_set.files.iter().map(|f| f.path.clone()).collect();
        // The files named on the command line are sent even when the change did not touch them
        // (the bug may predate it); then the files the check output names, within those paths.
        for path in &args.paths {
            if !known.contains(path)
                && let Some(file) = context_file(&root, path)
            {
                known.insert(file.path.clone());
                change_set.context_files.push(file);
            }
        }
        change_set.context_files.extend(named_files(&root, &last.output, &known, &args.paths));
        let options = pb::FixOptions {
            planner_model: args.model.clone().or_else(|| config.fix.planner_model.clone()).unwrap_or_default(),
            coder_model: args.model.clone().or_else(|| config.fix.coder_model.clone()).unwrap_or_default(),
            max_attempts: 0,
            allow_new_files: config.fix.allow_new_files,
            eval_run_id: args.eval_run_id.clone().unwrap_or_default(),
        };
        let problem = pb::FixProblem {
            check_command: check.to_owned(),
            check_output: last.output.clone(),
            findings: Vec::new(),
            instruction: String::new(),
        };
        let progress = Progress::start(&format!("round {round} of {rounds}: asking for a fix"));
        let request =
            pb::CreateFixRequest { change_set: Some(change_set), problem: Some(problem), options: Some(options) };
        let task = session
            .call_patiently("fix", |mut agent| {
                let request = request.clone();
                async move { agent.create_fix(request).await }
            })
            .await?
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

/// The change set for a fix: like a review's, but an empty diff is fine (the bug may predate
/// it); limited to `paths` (from the checkout's top) when some are given.
fn collect_for_fix(
    checkout: &Checkout,
    target: &Target,
    paths: &[String],
) -> CliResult<(crate::git::Collected, pb::ChangeSet)> {
    let mut target = target.clone();
    if !paths.is_empty() {
        // Pathspecs from the top, read literally (a `*` in a name is a `*`).
        target.paths = paths.iter().map(|p| format!(":(top,literal){p}")).collect();
    }
    match collect(checkout, &target) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A git checkout in a temp dir with `src/big.py` and `tests/test_big.py`.
    fn checkout() -> (tempfile::TempDir, Checkout) {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |args: &[&str]| {
            let status = std::process::Command::new("git").args(args).current_dir(dir.path()).status();
            assert!(status.is_ok_and(|s| s.success()), "git {args:?}");
        };
        run(&["init", "-q"]);
        for (path, text) in [("src/big.py", "x = 1\n"), ("tests/test_big.py", "def test(): pass\n")] {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("a parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        let checkout = Checkout::discover(dir.path()).expect("a checkout");
        (dir, checkout)
    }

    #[test]
    fn paths_from_the_top_are_accepted_and_kept_sorted_without_repeats() {
        let (_dir, checkout) = checkout();
        let given = ["tests/test_big.py".to_owned(), "src".to_owned(), "./src/".to_owned()];
        assert_eq!(checkout_paths(&checkout, &given).expect("valid"), vec!["src", "tests/test_big.py"]);
        assert!(checkout_paths(&checkout, &[".".to_owned()]).expect("the top").is_empty(), "the top narrows nothing");
    }

    #[test]
    fn a_path_not_in_the_checkout_is_an_error_that_names_it() {
        let (_dir, checkout) = checkout();
        let missing = checkout_paths(&checkout, &["src/nope.py".to_owned()]).expect_err("missing");
        assert!(
            missing.message.contains("src/nope.py: no such file or directory in the checkout"),
            "{}",
            missing.message
        );
        let outside = checkout_paths(&checkout, &["..".to_owned()]).expect_err("outside");
        assert!(outside.message.contains("is outside the checkout"), "{}", outside.message);
        let git = checkout_paths(&checkout, &[".git/config".to_owned()]).expect_err("inside .git");
        assert!(git.message.contains("inside .git"), "{}", git.message);
    }

    #[test]
    fn narrowing_keeps_a_path_and_what_is_under_it_only() {
        let paths = vec!["src".to_owned(), "tests/test_big.py".to_owned()];
        assert!(within(&paths, "src/big.py") && within(&paths, "src") && within(&paths, "tests/test_big.py"));
        assert!(!within(&paths, "srcx/a.py") && !within(&paths, "tests/other.py"));
        assert!(within(&[], "anything"));
    }

    #[test]
    fn context_files_named_by_the_check_output_stay_within_the_paths() {
        let (dir, _checkout) = checkout();
        let output = "FAILED tests/test_big.py::test - src/big.py:1: boom";
        let all = named_files(dir.path(), output, &BTreeSet::new(), &[]);
        assert_eq!(all.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), vec!["tests/test_big.py", "src/big.py"]);
        let narrowed = named_files(dir.path(), output, &BTreeSet::new(), &["src".to_owned()]);
        assert_eq!(narrowed.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), vec!["src/big.py"]);
    }
}
