//! Reading a checkout's history, for `prfix eval`: the commits of a window with their messages, the
//! diff of one commit, a file as of a commit, who last touched lines (`git blame`), and temporary
//! worktrees at a commit. Nothing here writes a ref, the index or the working tree of the checkout.

use std::path::Path;

use super::command::{answer, git, one_line, run, stdout};
use super::{Checkout, GitError};

/// Diff options that keep git's output plain whatever the user's config says (as for reviews).
const DIFF_OPTIONS: [&str; 7] =
    ["--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", "--submodule=short", "-M"];

/// One commit of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Full sha.
    pub sha: String,
    /// Parents' shas (none for a root commit).
    pub parents: Vec<String>,
    /// Committer time, in seconds since the epoch.
    pub time: i64,
    /// The whole message.
    pub message: String,
}

impl LogEntry {
    /// The first line of the message.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }
}

/// Who last changed one line, as `git blame` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlameLine {
    /// The line's number in the blamed revision.
    pub line: u32,
    /// The commit that last changed it.
    pub sha: String,
    /// The file's path in that commit.
    pub orig_path: String,
    /// The line's number in that commit's version of the file.
    pub orig_line: u32,
}

impl Checkout {
    /// The non-merge commits reachable from `HEAD`, newest first, committed at or after `since`
    /// (a date git understands, e.g. `2026-01-31`) when given.
    pub fn log(&self, since: Option<&str>) -> Result<Vec<LogEntry>, GitError> {
        let mut command = git(&self.root);
        command.args(["log", "--no-merges", "-z", "--format=%H%x1f%P%x1f%ct%x1f%B"]);
        if let Some(since) = since {
            command.arg(format!("--since={since}"));
        }
        command.args(["HEAD", "--"]);
        let output = stdout(command, "list the commits")?;
        let text = String::from_utf8_lossy(&output);
        let mut entries = Vec::new();
        for record in text.split('\0').filter(|r| !r.trim().is_empty()) {
            let mut fields = record.trim_start_matches('\n').splitn(4, '\x1f');
            let (Some(sha), Some(parents), Some(time), Some(message)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(GitError::Failed {
                    what: "list the commits".to_owned(),
                    message: format!("unexpected log record `{}`", record.chars().take(80).collect::<String>()),
                });
            };
            let time = time.trim().parse().map_err(|_| GitError::Failed {
                what: "list the commits".to_owned(),
                message: format!("commit {sha} has the time `{time}`, not a number"),
            })?;
            entries.push(LogEntry {
                sha: sha.to_owned(),
                parents: parents.split_whitespace().map(str::to_owned).collect(),
                time,
                message: message.trim_end().to_owned(),
            });
        }
        Ok(entries)
    }

    /// One commit as a [`LogEntry`].
    pub fn commit_entry(&self, rev: &str) -> Result<LogEntry, GitError> {
        let sha = self.resolve(rev)?;
        let mut command = git(&self.root);
        command.args(["log", "-1", "-z", "--format=%H%x1f%P%x1f%ct%x1f%B", &sha, "--"]);
        let output = stdout(command, "read a commit")?;
        let text = String::from_utf8_lossy(&output);
        let mut fields = text.trim_end_matches('\0').splitn(4, '\x1f');
        let (Some(sha), Some(parents), Some(time), Some(message)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(GitError::Failed { what: format!("read commit {rev}"), message: "no log record".to_owned() });
        };
        Ok(LogEntry {
            sha: sha.to_owned(),
            parents: parents.split_whitespace().map(str::to_owned).collect(),
            time: time.trim().parse().unwrap_or_default(),
            message: message.trim_end().to_owned(),
        })
    }

    /// The diff a commit made against `parent` (the empty tree when `None`), with `context` lines.
    pub fn commit_diff(&self, parent: Option<&str>, sha: &str, context: u32) -> Result<String, GitError> {
        let from = match parent {
            Some(p) => p.to_owned(),
            None => self.empty_tree()?,
        };
        let mut command = git(&self.root);
        command.arg("diff").args(DIFF_OPTIONS).arg(format!("-U{context}")).args([&from, sha, "--"]);
        Ok(String::from_utf8_lossy(&stdout(command, &format!("diff commit {sha}"))?).into_owned())
    }

    /// The bytes of `path` as of `rev`; `None` when it is not a file there.
    pub fn file_at(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let mut command = git(&self.root);
        command.args(["cat-file", "blob", &format!("{rev}:{path}")]);
        let output = run(command, None)?;
        Ok(output.status.success().then_some(output.stdout))
    }

    /// Who last changed each line of `ranges` (1-based, inclusive) of `path` as of `rev`, ignoring
    /// whitespace changes (`-w`) and the revisions listed in `.git-blame-ignore-revs` when the
    /// checkout has one.
    pub fn blame(&self, rev: &str, path: &str, ranges: &[(u32, u32)]) -> Result<Vec<BlameLine>, GitError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = git(&self.root);
        command.args(["blame", "-w", "--line-porcelain"]);
        if self.root.join(".git-blame-ignore-revs").is_file() {
            command.args(["--ignore-revs-file", ".git-blame-ignore-revs"]);
        }
        for (start, end) in ranges {
            command.arg(format!("-L{start},{end}"));
        }
        command.args([rev, "--", path]);
        let output = stdout(command, &format!("blame {path} as of {rev}"))?;
        Ok(parse_line_porcelain(&String::from_utf8_lossy(&output)))
    }

    /// The git directory shared by all worktrees (where `prfix eval` keeps its cache).
    pub fn common_dir(&self) -> Result<std::path::PathBuf, GitError> {
        let mut command = git(&self.root);
        command.args(["rev-parse", "--path-format=absolute", "--git-common-dir"]);
        let dir = answer(command)?.ok_or_else(|| GitError::Failed {
            what: "find the git directory".to_owned(),
            message: "git gave no directory".to_owned(),
        })?;
        Ok(std::path::PathBuf::from(dir))
    }

    /// Adds a detached worktree of `sha` at `dir` (which must not exist yet).
    pub fn add_worktree(&self, dir: &Path, sha: &str) -> Result<Checkout, GitError> {
        let mut command = git(&self.root);
        command.args(["worktree", "add", "--detach", "--quiet"]).arg(dir).arg(sha);
        stdout(command, &format!("add a worktree at {sha}"))?;
        Checkout::discover(dir)
    }

    /// Removes the worktree at `dir`, whatever it holds, and forgets it.
    pub fn remove_worktree(&self, dir: &Path) -> Result<(), GitError> {
        let mut command = git(&self.root);
        command.args(["worktree", "remove", "--force"]).arg(dir);
        let output = run(command, None)?;
        let mut prune = git(&self.root);
        prune.args(["worktree", "prune"]);
        run(prune, None)?;
        if output.status.success() || !dir.exists() {
            Ok(())
        } else {
            Err(GitError::Failed {
                what: format!("remove the worktree {}", dir.display()),
                message: one_line(&output.stderr),
            })
        }
    }

    /// The id of the empty tree in this repository's hash.
    fn empty_tree(&self) -> Result<String, GitError> {
        let mut command = git(&self.root);
        command.args(["hash-object", "-t", "tree", "--stdin"]);
        let output = run(command, Some(b""))?;
        let sha = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() && !sha.is_empty() {
            Ok(sha)
        } else {
            Err(GitError::Failed { what: "name the empty tree".to_owned(), message: one_line(&output.stderr) })
        }
    }
}

/// `git blame --line-porcelain` output: a header `<sha> <orig line> <final line> [<count>]` per
/// line, then `key value` lines (`filename` among them), then the line's text after a tab.
fn parse_line_porcelain(text: &str) -> Vec<BlameLine> {
    let mut lines = Vec::new();
    let mut current: Option<(String, u32, u32)> = None;
    let mut filename = String::new();
    for row in text.lines() {
        if row.starts_with('\t') {
            if let Some((sha, orig_line, line)) = current.take() {
                lines.push(BlameLine { line, sha, orig_path: std::mem::take(&mut filename), orig_line });
            }
        } else if let Some(name) = row.strip_prefix("filename ") {
            filename = name.to_owned();
        } else if current.is_none() {
            let mut fields = row.split(' ');
            if let (Some(sha), Some(orig), Some(fin)) = (fields.next(), fields.next(), fields.next())
                && sha.len() >= 40
                && sha.chars().all(|c| c.is_ascii_hexdigit())
                && let (Ok(orig), Ok(fin)) = (orig.parse(), fin.parse())
            {
                current = Some((sha.to_owned(), orig, fin));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_porcelain_gives_each_lines_commit_origin_and_path() {
        let sha = "a".repeat(40);
        let other = "b".repeat(40);
        let text = format!(
            "{sha} 3 5 1\nauthor A\nsummary s\nfilename old/name.py\n\treturn x - 1\n\
             {other} 7 6\nauthor B\nprevious {sha} x\nfilename new.py\n\tpass\n"
        );
        assert_eq!(
            parse_line_porcelain(&text),
            vec![
                BlameLine { line: 5, sha: sha.clone(), orig_path: "old/name.py".into(), orig_line: 3 },
                BlameLine { line: 6, sha: other, orig_path: "new.py".into(), orig_line: 7 },
            ]
        );
    }
}
