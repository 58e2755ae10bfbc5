//! Mining a checkout's history for bugs (the SZZ method): commits whose message marks a bug fix
//! and that change existing lines of source files; for each, `git blame` on the fix's parent names
//! the commits that last touched those lines, the commits that introduced the bug.
//!
//! The answer key a review is scored against is, for each introducing commit, the lines (as of that
//! commit) that a later fix changed.

use std::collections::{BTreeMap, BTreeSet};

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::EvalError;
use super::lines::{self, LeftOut};
use crate::git::{Checkout, LogEntry};

/// Where and what to mine.
#[derive(Debug, Clone, Default)]
pub struct MineOptions {
    /// Only fixes committed at or after this date, and only bugs introduced at or after it
    /// (`YYYY-MM-DD`, UTC).
    pub since: Option<String>,
    /// Patterns (regular expressions, case-insensitive) of fix messages.
    pub fix_patterns: Vec<String>,
    /// Keep the newest this many introducing commits.
    pub max: Option<usize>,
}

/// A commit that fixed a bug, with what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixCommit {
    /// Full sha.
    pub sha: String,
    /// Its first parent.
    pub parent: String,
    /// First line of its message.
    pub subject: String,
    /// Committer time (seconds since the epoch).
    pub time: i64,
    /// The files it changed (paths after the fix).
    pub files: Vec<String>,
    /// The commits it blames, by sha.
    pub introducing: BTreeSet<String>,
}

/// A commit that introduced lines a later fix changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introducing {
    /// Full sha.
    pub sha: String,
    /// Its first parent (`None` for a root commit: its diff is against the empty tree).
    pub parent: Option<String>,
    /// First line of its message.
    pub subject: String,
    /// Committer time (seconds since the epoch).
    pub time: i64,
    /// The lines of this commit's version of each file that later fixes changed.
    pub lines: BTreeMap<String, BTreeSet<u32>>,
    /// The fixes that changed them.
    pub fixed_by: Vec<String>,
}

/// What mining found and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mined {
    /// Commits of the window whose message matches a fix pattern.
    pub candidates: usize,
    /// Those that changed existing lines of source files (the fixes kept), oldest first.
    pub fixes: Vec<FixCommit>,
    /// The commits the fixes blame, oldest first (at most `max`).
    pub introducing: Vec<Introducing>,
    /// Candidates left out: no existing line of a source file changed (only additions, tests,
    /// docs, or only whitespace, comments and refactoring).
    pub fixes_without_lines: usize,
    /// Lines the fixes changed but that cannot hold a bug.
    pub left_out: LeftOut,
    /// Blamed commits older than the window.
    pub older_than_window: usize,
    /// Introducing commits dropped by `max`.
    pub over_max: usize,
}

/// The fix patterns compiled; an invalid one is an error naming it.
pub fn compile(patterns: &[String]) -> Result<Vec<Regex>, EvalError> {
    patterns
        .iter()
        .map(|p| {
            RegexBuilder::new(p)
                .case_insensitive(true)
                .multi_line(true)
                .build()
                .map_err(|e| EvalError::Pattern { pattern: p.clone(), message: e.to_string().replace('\n', " ") })
        })
        .collect()
}

/// The time of `since` (`YYYY-MM-DD`, midnight UTC) in seconds since the epoch.
pub fn since_time(since: &str) -> Result<i64, EvalError> {
    let date = chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d")
        .map_err(|_| EvalError::Usage(format!("--since `{since}` is not a date: use YYYY-MM-DD")))?;
    Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or_default())
}

/// Whether a message marks a bug fix.
pub fn is_fix(message: &str, patterns: &[Regex]) -> bool {
    patterns.iter().any(|p| p.is_match(message))
}

/// The fix commits of the window, oldest first, as the log lists them (candidates only).
pub fn fix_candidates(checkout: &Checkout, options: &MineOptions) -> Result<Vec<LogEntry>, EvalError> {
    let patterns = compile(&options.fix_patterns)?;
    // Midnight UTC, as the window's start for blamed commits is (git would read a bare date in the
    // local time zone).
    let since = match options.since.as_deref() {
        Some(date) => {
            since_time(date)?;
            Some(format!("{date} 00:00:00 +0000"))
        }
        None => None,
    };
    let mut log = checkout.log(since.as_deref())?;
    log.retain(|c| !c.parents.is_empty() && is_fix(&c.message, &patterns));
    log.reverse();
    Ok(log)
}

/// Mines the checkout: fixes, and the commits they blame.
pub fn mine(checkout: &Checkout, options: &MineOptions) -> Result<Mined, EvalError> {
    let since = options.since.as_deref().map(since_time).transpose()?;
    let candidates = fix_candidates(checkout, options)?;
    let mut mined = Mined { candidates: candidates.len(), ..Default::default() };
    let mut introducing: BTreeMap<String, Introducing> = BTreeMap::new();
    // Blamed commits older than the window.
    let mut old: BTreeSet<String> = BTreeSet::new();
    for commit in &candidates {
        let parent = &commit.parents[0];
        let diff = checkout.commit_diff(Some(parent), &commit.sha, 0)?;
        let patches = prfix_engine::diff::parse(&diff)
            .map_err(|e| EvalError::Git(format!("cannot read the diff of {}: {e}", short(&commit.sha))))?;
        let added = lines::added_lines(&patches);
        let mut blamed: BTreeSet<String> = BTreeSet::new();
        let mut any_line = false;
        for patch in &patches {
            let Some(old_path) = patch.old_path.as_deref() else { continue };
            if !lines::is_reviewable(old_path) {
                continue;
            }
            let new_content = checkout
                .file_at(&commit.sha, patch.path())?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let (fixed, left) = lines::fixed_lines(patch, &new_content, &added);
            mined.left_out.add(left);
            if fixed.is_empty() {
                continue;
            }
            any_line = true;
            for line in checkout.blame(parent, old_path, &ranges(&fixed))? {
                if old.contains(&line.sha) {
                    continue;
                }
                if !introducing.contains_key(&line.sha) {
                    let entry = checkout.commit_entry(&line.sha)?;
                    if since.is_some_and(|s| entry.time < s) {
                        old.insert(line.sha.clone());
                        continue;
                    }
                    let found = Introducing {
                        sha: entry.sha.clone(),
                        parent: entry.parents.first().cloned(),
                        subject: entry.subject().to_owned(),
                        time: entry.time,
                        lines: BTreeMap::new(),
                        fixed_by: Vec::new(),
                    };
                    introducing.insert(line.sha.clone(), found);
                }
                let Some(origin) = introducing.get_mut(&line.sha) else { continue };
                origin.lines.entry(line.orig_path.clone()).or_default().insert(line.orig_line);
                if !origin.fixed_by.contains(&commit.sha) {
                    origin.fixed_by.push(commit.sha.clone());
                }
                blamed.insert(line.sha);
            }
        }
        if !any_line {
            mined.fixes_without_lines += 1;
            continue;
        }
        mined.fixes.push(FixCommit {
            sha: commit.sha.clone(),
            parent: parent.clone(),
            subject: commit.subject().to_owned(),
            time: commit.time,
            files: patches.iter().map(|p| p.path().to_owned()).collect(),
            introducing: blamed.into_iter().filter(|sha| introducing.contains_key(sha)).collect(),
        });
    }
    mined.older_than_window = old.len();
    let mut found: Vec<Introducing> = introducing.into_values().collect();
    found.sort_by(|a, b| (a.time, &a.sha).cmp(&(b.time, &b.sha)));
    if let Some(max) = options.max
        && found.len() > max
    {
        mined.over_max = found.len() - max;
        found.drain(..found.len() - max);
    }
    mined.introducing = found;
    Ok(mined)
}

/// Line numbers as ranges of consecutive lines, for `git blame -L`.
fn ranges(lines: &BTreeSet<u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &line in lines {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == line => *end = line,
            _ => out.push((line, line)),
        }
    }
    out
}

/// The first 10 characters of a sha.
pub fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_lines_make_one_range() {
        let lines: BTreeSet<u32> = [1, 2, 3, 7, 9, 10].into_iter().collect();
        assert_eq!(ranges(&lines), vec![(1, 3), (7, 7), (9, 10)]);
    }

    #[test]
    fn the_default_patterns_know_fix_words_and_closed_issues_but_not_prefixes() {
        let patterns = compile(&crate::config::EvalConfig::default().fix_patterns).expect("the defaults compile");
        for message in ["Fix off-by-one in pager", "fixes a crash", "hotfix: timeout", "Closes #12", "resolves ABC-42"]
        {
            assert!(is_fix(message, &patterns), "{message}");
        }
        for message in ["Add prfix review", "prefix the names", "affixed labels", "Document the API"] {
            assert!(!is_fix(message, &patterns), "{message}");
        }
    }

    #[test]
    fn an_invalid_pattern_is_an_error_that_names_it() {
        let error = compile(&["fix(".to_owned()]).expect_err("invalid");
        assert!(error.to_string().contains("`fix(`"), "{error}");
    }
}
