//! Running the `git` command: one place that sets the options every call needs, turns a missing git
//! into [`GitError::GitMissing`] and git's stderr into one line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::GitError;

/// The longest piece of git's stderr an error message carries.
const MAX_MESSAGE: usize = 600;

/// A `git` command run in `dir`, its output in a form scripts can read whatever the user's config
/// says: names not quoted for being non-ASCII, no optional index writes, no pager, no prompts.
pub(super) fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(["--no-pager", "--no-optional-locks", "-c", "core.quotepath=off", "-c", "color.ui=never"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIFF_OPTS")
        .env_remove("GIT_EXTERNAL_DIFF")
        .stdin(Stdio::null());
    command
}

/// Runs `command` (with `input` on its stdin when given) and returns what it wrote, whatever its
/// exit status.
pub(super) fn run(mut command: Command, input: Option<&[u8]>) -> Result<Output, GitError> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => GitError::GitMissing,
        _ => GitError::Spawn { source },
    })?;
    let stdin = child.stdin.take();
    std::thread::scope(|scope| {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            // git may stop reading early (e.g. a bad patch); the exit status tells what happened.
            scope.spawn(move || {
                let _ = stdin.write_all(input);
            });
        }
        child.wait_with_output().map_err(|source| GitError::Spawn { source })
    })
}

/// Runs `command` and returns its stdout, or [`GitError::Failed`] naming `what` when git fails.
pub(super) fn stdout(command: Command, what: &str) -> Result<Vec<u8>, GitError> {
    let output = run(command, None)?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(GitError::Failed { what: what.to_owned(), message: one_line(&output.stderr) })
    }
}

/// Runs `command` and returns its stdout as trimmed text, or `None` when git exits with an error
/// (the answer to a question such as "does this ref exist").
pub(super) fn answer(command: Command) -> Result<Option<String>, GitError> {
    let output = run(command, None)?;
    if output.status.success() {
        Ok(Some(String::from_utf8_lossy(&output.stdout).trim().to_owned()).filter(|text| !text.is_empty()))
    } else {
        Ok(None)
    }
}

/// git's stderr as one line: lines joined with "; ", the `fatal: `/`error: ` prefixes dropped,
/// cut at [`MAX_MESSAGE`] bytes.
pub(super) fn one_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut line = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.strip_prefix("fatal: ").or_else(|| line.strip_prefix("error: ")).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("; ");
    if line.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    if line.is_empty() { "git gave no reason".to_owned() } else { line }
}

/// Splits NUL-terminated output (`-z`) into its entries.
pub(super) fn nul_separated(output: &[u8]) -> impl Iterator<Item = String> + '_ {
    output
        .split(|&byte| byte == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
}
