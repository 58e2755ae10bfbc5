//! Incremental reviews: on a push after a reviewed head, only the commits since that head are
//! reviewed, and the earlier review's findings on lines those commits did not touch are carried
//! over (moved to where their lines are now).
//!
//! The earlier head and its findings are the newest succeeded review task of the same pull request
//! (the database, not the forge, so nothing a commenter writes can change them). The diff between
//! the two heads comes from the forge's compare API ([`prfix_forge::Forge::compare`]; on Gitea,
//! whose compare names files only, from their contents at both heads); when the earlier head is not
//! an ancestor of the new one (a force push) or the compare fails, the whole pull request is
//! reviewed and the summary says why. `/review full`
//! always reviews the whole pull request.

use prfix_engine::diff::{FilePatch, LineKind};
use prfix_forge::{Comparison, Forge, PullRequest};
use prfix_proto::agent::v1 as pb;
use prfix_proto::prost::Message;

/// What a review of a pull request's head covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// The whole pull request; `why` says why not incrementally when an earlier head was reviewed.
    Full {
        /// Why the whole pull request (empty for its first review).
        why: String,
    },
    /// Only the commits since `from`.
    Incremental(Incremental),
}

/// An incremental review's plan.
#[derive(Debug, Clone)]
pub struct Incremental {
    /// The head reviewed before.
    pub from: String,
    /// The diff from `from` to the new head, restricted to the pull request's files.
    pub diff: String,
    /// Its files.
    pub patches: Vec<FilePatch>,
    /// The earlier review's findings.
    pub earlier: Vec<pb::Finding>,
}

/// The earlier review of the pull request, if one succeeded: its head and result.
pub fn earlier_review(stored: Option<(String, Vec<u8>)>) -> Option<(String, pb::ReviewResult)> {
    let (head, bytes) = stored?;
    match pb::TaskResult::decode(bytes.as_slice()).ok()?.result? {
        pb::task_result::Result::Review(review) if !head.is_empty() => Some((head, review)),
        _ => None,
    }
}

/// Decides what the review of `pr` covers, given the earlier review and the pull request's files
/// (`pull_patches`); `full` when `/review full` asked for everything.
pub async fn plan(
    forge: &Forge,
    pr: &PullRequest,
    earlier: Option<(String, pb::ReviewResult)>,
    pull_patches: &[FilePatch],
    full: bool,
) -> Scope {
    let Some((from, result)) = earlier else { return Scope::Full { why: String::new() } };
    if full {
        return Scope::Full { why: "`/review full` asked for the whole pull request".to_owned() };
    }
    if from == pr.head_sha {
        // The same head again (`/review`): nothing to compare, nothing to say.
        return Scope::Full { why: String::new() };
    }
    let diff = match forge.compare(&pr.repository, &from, &pr.head_sha).await {
        Ok(Comparison::Ahead { diff }) => diff,
        Ok(Comparison::Files { paths }) => match diff_of_files(forge, pr, &from, &paths, pull_patches).await {
            Ok(diff) => diff,
            Err(e) => {
                return Scope::Full { why: format!("the files changed since {} could not be read: {e}", short(&from)) };
            }
        },
        Ok(Comparison::Unrelated(why)) => return Scope::Full { why },
        Err(e) => {
            tracing::warn!(error = %e, "cannot compare the reviewed head with the new one; reviewing in full");
            return Scope::Full { why: format!("the forge could not compare {} with the new head: {e}", short(&from)) };
        }
    };
    let diff = only_files_of(&diff, pull_patches);
    let patches = match prfix_engine::diff::parse(&diff) {
        Ok(patches) => patches,
        Err(e) => return Scope::Full { why: format!("the forge's diff since {} does not parse: {e}", short(&from)) },
    };
    Scope::Incremental(Incremental { from, diff, patches, earlier: result.findings })
}

/// The diff from `from` to the head of the pull request's files among `paths`, made from their
/// contents at both commits (for a forge whose compare names files but gives no diff).
async fn diff_of_files(
    forge: &Forge,
    pr: &PullRequest,
    from: &str,
    paths: &[String],
    pull_patches: &[FilePatch],
) -> Result<String, prfix_forge::ForgeError> {
    let mut diff = String::new();
    for path in paths.iter().filter(|p| pull_patches.iter().any(|q| q.path() == p.as_str())) {
        let old = forge.file_at(&pr.repository, path, from).await?;
        let new = forge.file_at(&pr.repository, path, &pr.head_sha).await?;
        diff.push_str(&prfix_engine::diff::unified_diff(path, path, old.as_deref(), new.as_deref(), 3));
    }
    Ok(diff)
}

/// The sections of `diff` (as [`prfix_forge`] writes it, one `diff --git` section per file) whose
/// file the pull request changes: a merge of the base branch brings in files that are not the pull
/// request's.
fn only_files_of(diff: &str, pull_patches: &[FilePatch]) -> String {
    let mut out = String::new();
    for section in sections(diff) {
        let Ok(patches) = prfix_engine::diff::parse(section) else { continue };
        if patches.iter().all(|p| pull_patches.iter().any(|q| q.path() == p.path())) {
            out.push_str(section);
        }
    }
    out
}

/// `diff` cut before each line that starts with `diff --git `.
fn sections(diff: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = diff.match_indices("diff --git ").map(|(at, _)| at).collect();
    starts.retain(|&at| at == 0 || diff.as_bytes()[at - 1] == b'\n');
    let mut out = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(diff.len());
        out.push(&diff[start..end]);
    }
    out
}

/// Where old line `line` (through `end`) of a file is after `patch`: `None` when the patch touched
/// one of those lines (removed or replaced them, or put lines between them), or removed the file.
fn moved(patch: &FilePatch, line: u32, end: u32) -> Option<(u32, u32)> {
    // A deleted file keeps none of its lines.
    patch.new_path.as_ref()?;
    let mut delta: i64 = 0;
    for hunk in &patch.hunks {
        // The last old line passed: the line before the hunk (a hunk adding to an empty range
        // names the line it follows).
        let mut old = if hunk.old_count == 0 { hunk.old_start } else { hunk.old_start.saturating_sub(1) };
        for l in &hunk.lines {
            match l.kind {
                LineKind::Context => old = l.old_line.unwrap_or(old + 1),
                LineKind::Removed => {
                    old = l.old_line.unwrap_or(old + 1);
                    if (line..=end).contains(&old) {
                        return None;
                    }
                    if old < line {
                        delta -= 1;
                    }
                }
                LineKind::Added => {
                    // Inserted after old line `old`.
                    if (line..end).contains(&old) {
                        return None;
                    }
                    if old < line {
                        delta += 1;
                    }
                }
            }
        }
    }
    let shift = |n: u32| u32::try_from(i64::from(n) + delta).ok().filter(|n| *n > 0);
    Some((shift(line)?, shift(end)?))
}

/// The earlier findings still valid after the commits of `patches`: those on files the commits did
/// not change as they were, and those on lines they did not touch, moved to their new numbers
/// (and to the new path of a renamed file).
pub fn carried_over(earlier: &[pb::Finding], patches: &[FilePatch]) -> Vec<pb::Finding> {
    let mut out = Vec::new();
    for finding in earlier {
        let patch = patches.iter().find(|p| p.old_path.as_deref() == Some(finding.path.as_str()));
        let Some(patch) = patch else {
            // A file the commits did not change (or one they added, which the finding cannot be on).
            if !patches.iter().any(|p| p.path() == finding.path) {
                out.push(finding.clone());
            }
            continue;
        };
        let line = u32::try_from(finding.line.max(1)).unwrap_or(1);
        let end = u32::try_from(finding.end_line).unwrap_or(0).max(line);
        let Some((line, end)) = moved(patch, line, end) else { continue };
        let mut kept = finding.clone();
        kept.path = patch.path().to_owned();
        kept.line = i32::try_from(line).unwrap_or(i32::MAX);
        kept.end_line = if finding.end_line > 0 { i32::try_from(end).unwrap_or(i32::MAX) } else { 0 };
        out.push(kept);
    }
    out
}

/// Adds the carried findings to `result` (the review of the new commits), skipping any the new
/// review found again on the same line, most severe first, and records the scope.
pub fn merge(result: &mut pb::ReviewResult, from: &str, carried: Vec<pb::Finding>) {
    let mut kept = 0;
    for finding in carried {
        let again = result.findings.iter().any(|f| {
            f.path == finding.path
                && f.line == finding.line
                && f.title.trim().eq_ignore_ascii_case(finding.title.trim())
        });
        if !again {
            result.findings.push(finding);
            kept += 1;
        }
    }
    result.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    result.incremental_from = from.to_owned();
    result.carried_over_findings = kept;
}

/// The first 12 characters of a commit id.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(path: &str, line: i32, end_line: i32) -> pb::Finding {
        pb::Finding { path: path.to_owned(), line, end_line, title: "t".to_owned(), ..Default::default() }
    }

    /// Two lines inserted after line 2, line 5 replaced.
    const PUSH: &str = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,6 +1,8 @@\n one\n two\n+new1\n+new2\n three\n four\n-five\n+FIVE\n six\n";

    #[test]
    fn findings_on_untouched_lines_move_with_them_and_touched_ones_are_dropped() {
        let patches = prfix_engine::diff::parse(PUSH).unwrap_or_default();
        let earlier = [
            finding("a.py", 1, 2),
            finding("a.py", 3, 0),
            finding("a.py", 5, 0),
            finding("a.py", 6, 0),
            finding("a.py", 2, 3),
            finding("b.py", 9, 0),
        ];
        let kept: Vec<(String, i32, i32)> =
            carried_over(&earlier, &patches).into_iter().map(|f| (f.path, f.line, f.end_line)).collect();
        assert_eq!(
            kept,
            [
                ("a.py".to_owned(), 1, 2),
                ("a.py".to_owned(), 5, 0),
                ("a.py".to_owned(), 8, 0),
                ("b.py".to_owned(), 9, 0),
            ],
            "line 5 was replaced and lines 2-3 had lines put between them"
        );
    }

    #[test]
    fn only_the_pull_requests_files_are_kept_from_a_compare() {
        let pull = prfix_engine::diff::parse(PUSH).unwrap_or_default();
        let other = "diff --git a/merged.py b/merged.py\n--- a/merged.py\n+++ b/merged.py\n@@ -1 +1 @@\n-x\n+y\n";
        assert_eq!(only_files_of(&format!("{other}{PUSH}"), &pull), PUSH);
    }
}
