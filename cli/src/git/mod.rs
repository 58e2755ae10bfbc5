//! The change set of a checkout, read with the `git` command (never a git library, so the user's
//! git, its config and its credentials are the ones used).
//!
//! [`Checkout::discover`] finds the repository around a directory; [`Checkout::collect`] gathers
//! the diff to review (committed, staged, unstaged and untracked changes against a base) with the
//! new content of every changed text file; [`Checkout::apply`] applies a fix; [`Checkout::snapshot`]
//! remembers the working tree so that an interrupted `prfix fix` can put it back; `history` reads
//! commits, blames lines and adds temporary worktrees for `prfix eval`.
//!
//! Every call runs git with options that keep its output machine-readable whatever the user's
//! config says (no color, no external diff or textconv, `a/` and `b/` prefixes, unquoted non-ASCII
//! names), and never writes the index, the stash list or a commit.

mod collect;
mod command;
mod history;
mod snapshot;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use command::{answer, git, one_line, run, stdout};

pub use collect::{ChangedFile, Collected, DiffSpec};
pub use history::{BlameLine, LogEntry};
pub use snapshot::Snapshot;

/// What went wrong running git; each message is one line saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` program cannot be found.
    #[error("git is not installed or not on PATH: install git to use prfix")]
    GitMissing,
    /// The `git` program could not be started or waited for.
    #[error("cannot run git: {source}")]
    Spawn {
        /// Why.
        source: std::io::Error,
    },
    /// The directory is not inside a git working tree.
    #[error("not a git repository (or any parent of {}): run prfix inside a checkout", dir.display())]
    NotARepository {
        /// The directory prfix looked from.
        dir: PathBuf,
    },
    /// The repository has no commit yet, so there is nothing to compare against.
    #[error("the repository has no commits yet: commit once, then run prfix again")]
    NoCommits,
    /// No default branch to compare against could be found.
    #[error("cannot tell the default branch (no origin/HEAD, main, master or upstream): pass --base <branch>")]
    NoDefaultBranch,
    /// A revision does not name a commit.
    #[error("base ref `{rev}` not found: check the name, fetch it (git fetch) or pass another --base")]
    RefNotFound {
        /// The revision as given.
        rev: String,
    },
    /// Two revisions have no common ancestor.
    #[error("`{a}` and `{b}` share no history: pass --base with a commit of this branch's history")]
    NoMergeBase {
        /// The first revision.
        a: String,
        /// The second revision.
        b: String,
    },
    /// `git apply` refused the patch.
    #[error("the patch does not apply: {message}")]
    ApplyFailed {
        /// git's explanation, on one line.
        message: String,
    },
    /// git's diff output could not be read.
    #[error("cannot read the diff git produced: {message}")]
    BadDiff {
        /// The parser's explanation.
        message: String,
    },
    /// A file of the working tree could not be read or written.
    #[error("cannot {what} {}: {source}", path.display())]
    File {
        /// What was being done ("read", "remove", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Another git command failed.
    #[error("git could not {what}: {message}")]
    Failed {
        /// What prfix asked git to do.
        what: String,
        /// git's explanation, on one line.
        message: String,
    },
}

/// A git working tree: where its top is and the directory it was found from (pathspecs are read
/// relative to that directory, as git reads them).
#[derive(Debug, Clone)]
pub struct Checkout {
    root: PathBuf,
    cwd: PathBuf,
}

impl Checkout {
    /// Finds the working tree that holds `dir` (`git rev-parse --show-toplevel`).
    pub fn discover(dir: &Path) -> Result<Self, GitError> {
        let mut command = git(dir);
        command.args(["rev-parse", "--show-toplevel"]).env("LC_ALL", "C");
        let output = run(command, None)?;
        let message = one_line(&output.stderr);
        if !output.status.success() {
            return Err(if message.contains("not a git repository") || message.contains("cannot change to") {
                GitError::NotARepository { dir: dir.to_path_buf() }
            } else {
                GitError::Failed { what: "find the repository".to_owned(), message }
            });
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let top = text.trim_end_matches(['\n', '\r']);
        if top.is_empty() {
            // Inside `.git` itself, or a bare repository: there is no working tree to review.
            return Err(GitError::NotARepository { dir: dir.to_path_buf() });
        }
        Ok(Self { root: PathBuf::from(top), cwd: dir.to_path_buf() })
    }

    /// The top directory of the working tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The branch changes are compared against when no base is given: the target of
    /// `origin/HEAD` (e.g. `origin/main`), else a local `main`, then `master`, then the current
    /// branch's upstream.
    pub fn default_branch(&self) -> Result<String, GitError> {
        let mut command = git(&self.root);
        command.args(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"]);
        if let Some(target) = answer(command)?
            && self.commit_of(&target)?.is_some()
        {
            return Ok(target);
        }
        for local in ["main", "master"] {
            if self.commit_of(&format!("refs/heads/{local}"))?.is_some() {
                return Ok(local.to_owned());
            }
        }
        let mut command = git(&self.root);
        command.args(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"]);
        answer(command)?.ok_or(GitError::NoDefaultBranch)
    }

    /// The full sha of the commit `rev` names.
    pub fn resolve(&self, rev: &str) -> Result<String, GitError> {
        self.commit_of(rev)?.ok_or_else(|| GitError::RefNotFound { rev: rev.to_owned() })
    }

    /// The best common ancestor of two revisions (`git merge-base`), as a full sha.
    pub fn merge_base(&self, a: &str, b: &str) -> Result<String, GitError> {
        let (first, second) = (self.resolve(a)?, self.resolve(b)?);
        let mut command = git(&self.root);
        command.args(["merge-base", &first, &second]);
        answer(command)?.ok_or_else(|| GitError::NoMergeBase { a: a.to_owned(), b: b.to_owned() })
    }

    /// The full sha of the commit checked out.
    pub fn head(&self) -> Result<String, GitError> {
        self.commit_of("HEAD")?.ok_or(GitError::NoCommits)
    }

    /// Whether the working tree differs from `HEAD`: changes to tracked files (staged or not) or
    /// untracked files that are not ignored.
    pub fn is_dirty(&self) -> Result<bool, GitError> {
        let mut command = git(&self.root);
        command.args(["status", "--porcelain", "-z", "--untracked-files=normal"]);
        Ok(!stdout(command, "read the status of the working tree")?.is_empty())
    }

    /// Applies a patch made by `git diff` to the working tree (`git apply`), or only checks that it
    /// would apply when `check_only`. Nothing changes when the patch does not apply.
    pub fn apply(&self, patch: &str, check_only: bool) -> Result<(), GitError> {
        let mut command = git(&self.root);
        command.args(["apply", "--whitespace=nowarn"]);
        if check_only {
            command.arg("--check");
        }
        command.arg("-");
        let output = run(command, Some(patch.as_bytes()))?;
        if output.status.success() { Ok(()) } else { Err(GitError::ApplyFailed { message: one_line(&output.stderr) }) }
    }

    /// The sha of the commit `rev` names, or `None` when it names none.
    fn commit_of(&self, rev: &str) -> Result<Option<String>, GitError> {
        // A leading `-` would be read as an option.
        if rev.is_empty() || rev.starts_with('-') {
            return Ok(None);
        }
        let mut command = git(&self.root);
        command.args(["rev-parse", "--verify", "--quiet"]).arg(format!("{rev}^{{commit}}"));
        answer(command)
    }
}
