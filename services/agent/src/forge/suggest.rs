//! A fix's patch as suggestions on a pull request's lines: each run of changed lines of the patch
//! becomes one suggestion that replaces the head's lines it removes (a pure insertion replaces the
//! line before it, kept, with the new lines after it). A suggestion can sit only on lines the pull
//! request's diff shows, all in one hunk; the others are left to the patch shown whole.

use std::fmt::Write as _;

use prfix_engine::diff::{FilePatch, LineKind};
use prfix_forge::InlineComment;

/// One change of the patch, on the head's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The file.
    pub path: String,
    /// The first line it replaces (in the head).
    pub start: u32,
    /// The last line it replaces.
    pub end: u32,
    /// The lines that replace them (none: they are deleted).
    pub lines: Vec<String>,
}

/// The suggestions of `patch` (a fix's diff against the head's files). Files the patch adds or
/// deletes have none.
pub fn suggestions(patch: &[FilePatch]) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for file in patch {
        if file.new_path.is_none() || file.old_path.is_none() {
            continue;
        }
        for hunk in &file.hunks {
            let lines = &hunk.lines;
            let mut i = 0;
            while i < lines.len() {
                if lines[i].kind == LineKind::Context {
                    i += 1;
                    continue;
                }
                let run_start = i;
                while i < lines.len() && lines[i].kind != LineKind::Context {
                    i += 1;
                }
                let run = &lines[run_start..i];
                let removed: Vec<u32> =
                    run.iter().filter(|l| l.kind == LineKind::Removed).filter_map(|l| l.old_line).collect();
                let added: Vec<String> =
                    run.iter().filter(|l| l.kind == LineKind::Added).map(|l| l.text.clone()).collect();
                let suggestion = match (removed.first(), removed.last()) {
                    (Some(&start), Some(&end)) => Some((start, end, added)),
                    _ => {
                        // A pure insertion: the line before it (kept) and the new lines, or the new
                        // lines and the line after it at the start of a hunk.
                        let before = lines[..run_start].iter().rev().find(|l| l.kind == LineKind::Context);
                        let after = lines[i..].iter().find(|l| l.kind == LineKind::Context);
                        match (before, after) {
                            (Some(b), _) => b.old_line.map(|n| {
                                let mut kept = vec![b.text.clone()];
                                kept.extend(added);
                                (n, n, kept)
                            }),
                            (None, Some(a)) => a.old_line.map(|n| {
                                let mut kept = added;
                                kept.push(a.text.clone());
                                (n, n, kept)
                            }),
                            (None, None) => None,
                        }
                    }
                };
                if let Some((start, end, lines)) = suggestion {
                    out.push(Suggestion { path: file.path().to_owned(), start, end, lines });
                }
            }
        }
    }
    out
}

/// A fence of backticks longer than any run of backticks in `lines`.
fn fence(lines: &[String]) -> String {
    let longest = lines.iter().flat_map(|l| l.split(|c| c != '`')).map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// The comment of `suggestion` on the pull request whose diff is `pull`, when every line it
/// replaces is shown by that diff in one hunk; `None` otherwise. `note` ends the body.
pub fn comment(suggestion: &Suggestion, pull: &[FilePatch], note: &str) -> Option<InlineComment> {
    let patch = pull.iter().find(|p| p.path() == suggestion.path && p.new_path.is_some())?;
    let hunk_of = |n: u32| {
        patch.hunks.iter().position(|h| h.lines.iter().any(|l| l.kind != LineKind::Removed && l.new_line == Some(n)))
    };
    let hunk = hunk_of(suggestion.start)?;
    if (suggestion.start..=suggestion.end).any(|n| hunk_of(n) != Some(hunk)) {
        return None;
    }
    let last =
        patch.hunks[hunk].lines.iter().find(|l| l.kind != LineKind::Removed && l.new_line == Some(suggestion.end))?;
    let old_line = (last.kind == LineKind::Context).then_some(last.old_line).flatten();
    let fence = fence(&suggestion.lines);
    let mut body = String::from("**prfix fix:** ");
    body.push_str(if suggestion.lines.is_empty() { "delete these lines." } else { "change these lines to:" });
    let _ = write!(body, "\n\n{fence}suggestion\n");
    for line in &suggestion.lines {
        let _ = writeln!(body, "{line}");
    }
    let _ = write!(body, "{fence}\n\n{note}");
    Some(InlineComment {
        path: suggestion.path.clone(),
        old_path: patch.old_path.clone().filter(|old| *old != suggestion.path),
        line: suggestion.end,
        start_line: (suggestion.start < suggestion.end).then_some(suggestion.start),
        old_line,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines 2-3 replaced by one, a line inserted after 5, line 8 deleted.
    const FIX: &str = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,8 +1,7 @@\n one\n-two\n-three\n+TWO\n four\n five\n+five and a half\n six\n seven\n-eight\n";

    #[test]
    fn each_run_of_changes_is_one_suggestion_on_the_heads_lines() {
        let patch = prfix_engine::diff::parse(FIX).unwrap_or_default();
        let got: Vec<(u32, u32, Vec<String>)> =
            suggestions(&patch).into_iter().map(|s| (s.start, s.end, s.lines)).collect();
        assert_eq!(
            got,
            [
                (2, 3, vec!["TWO".to_owned()]),
                (5, 5, vec!["five".to_owned(), "five and a half".to_owned()]),
                (8, 8, vec![]),
            ]
        );
    }

    #[test]
    fn a_suggestion_sits_only_on_lines_the_pull_requests_diff_shows() {
        // The pull request added lines 2-4 and shows 1-7.
        let pull = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,4 +1,7 @@\n one\n+two\n+three\n+four\n five\n six\n seven\n";
        let pull = prfix_engine::diff::parse(pull).unwrap_or_default();
        let fix = prfix_engine::diff::parse(FIX).unwrap_or_default();
        let all = suggestions(&fix);
        let placed = comment(&all[0], &pull, "").expect("lines 2-3 are shown");
        assert_eq!((placed.start_line, placed.line, placed.old_line), (Some(2), 3, None));
        assert!(placed.body.contains("```suggestion\nTWO\n```"), "{}", placed.body);
        let context = comment(&all[1], &pull, "").expect("line 5 is shown as context");
        assert_eq!((context.line, context.old_line), (5, Some(2)));
        assert!(comment(&all[2], &pull, "").is_none(), "line 8 is not in the pull request's diff");
    }
}
