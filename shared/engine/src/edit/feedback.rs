//! The text a model gets after some of its blocks did not apply.

use std::fmt::Write as _;

use super::lines::truncate_chars;
use super::{BlockFailure, Closest, Edit, EditOutcome};

/// At most this many lines of a closest window are shown.
const MAX_SHOWN_LINES: usize = 30;
/// Longer shown lines are cut to this many characters.
const MAX_SHOWN_LINE_CHARS: usize = 300;

/// The message for the model's next attempt: which blocks applied (not to be sent again), why
/// each other block failed with the file's closest lines numbered, and the rules for SEARCH.
pub fn retry_feedback(edits: &[Edit], outcome: &EditOutcome) -> String {
    let mut out = String::new();
    if outcome.failed.is_empty() {
        let _ = writeln!(out, "All blocks applied ({}).", outcome.applied.len());
        return out;
    }
    if outcome.applied.is_empty() {
        out.push_str("No block applied.\n");
    } else {
        let applied: Vec<String> =
            outcome.applied.iter().map(|(i, _)| format!("{} ({})", i + 1, path_of(edits, *i))).collect();
        let _ = writeln!(
            out,
            "These blocks applied and are now part of the files; do not send them again: {}.",
            applied.join(", ")
        );
    }
    for (index, failure) in &outcome.failed {
        out.push('\n');
        describe_failure(&mut out, edits, *index, failure);
    }
    out.push_str(
        "\nSend again only the blocks that failed, corrected, in this form:\n\
         path/to/file\n<<<<<<< SEARCH\nlines copied exactly from the file\n=======\nnew lines\n>>>>>>> REPLACE\n\
         \nRules: the SEARCH part must copy the file's current lines exactly, character for character \
         (indentation, spaces, comments, blank lines); include enough lines around the change that the \
         SEARCH matches exactly one place in the file; the blocks that applied have already changed the file.\n",
    );
    out
}

/// The path of edit `index`, or `?` if there is no such edit.
fn path_of(edits: &[Edit], index: usize) -> &str {
    edits.get(index).map_or("?", Edit::path)
}

/// One paragraph about a failed block.
fn describe_failure(out: &mut String, edits: &[Edit], index: usize, failure: &BlockFailure) {
    let path = path_of(edits, index);
    let start = match edits.get(index) {
        Some(Edit::SearchReplace { search, .. }) => search
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(", SEARCH starting `{}`", truncate_chars(l.trim(), 80)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let _ = write!(out, "Block {} ({path}{start}) did not apply: ", index + 1);
    match failure {
        BlockFailure::NotFound { closest: Some(closest) } => {
            let _ = writeln!(out, "its SEARCH lines are not in {path}.");
            show_closest(out, path, closest);
        }
        BlockFailure::NotFound { closest: None } => {
            let _ = writeln!(out, "its SEARCH lines are not in {path}, which is empty.");
        }
        BlockFailure::Ambiguous { matches } => {
            let _ = writeln!(
                out,
                "its SEARCH lines match {matches} places in {path}; add the lines around the change so it matches \
                 exactly one."
            );
        }
        BlockFailure::UnknownFile => {
            let _ = writeln!(out, "{path} is not one of the files you were given; check the path.");
        }
        BlockFailure::FileExists => {
            let _ = writeln!(
                out,
                "an empty SEARCH creates a new file, but {path} already exists; copy the lines to change into SEARCH."
            );
        }
        BlockFailure::IndentationUnclear { closest, reason } => {
            let _ = writeln!(
                out,
                "its SEARCH lines match {path} only with their indentation ignored, and {reason}. Copy the lines \
                 with their exact indentation, as below, and indent the new lines as the file does."
            );
            show_closest(out, path, closest);
        }
        BlockFailure::EmptySearch => {
            let _ = writeln!(out, "its SEARCH part is empty; copy the lines to change from {path} into SEARCH.");
        }
    }
}

/// The closest lines, numbered, in a fence.
fn show_closest(out: &mut String, path: &str, closest: &Closest) {
    let lines: Vec<&str> = closest.text.split('\n').collect();
    let shown = lines.len().min(MAX_SHOWN_LINES);
    let last = closest.start_line.saturating_add(shown.saturating_sub(1));
    let width = last.to_string().len();
    let _ = writeln!(
        out,
        "The most similar lines of {path} ({}% alike) are lines {}-{last} (the numbers and `|` are not part of \
         the file):\n```",
        closest.score_permille / 10,
        closest.start_line
    );
    for (offset, line) in lines.iter().take(shown).enumerate() {
        let number = closest.start_line.saturating_add(offset);
        let _ = writeln!(out, "{number:>width$} | {}", truncate_chars(line, MAX_SHOWN_LINE_CHARS));
    }
    if lines.len() > shown {
        let _ = writeln!(out, "… ({} more lines)", lines.len() - shown);
    }
    out.push_str("```\n");
}
