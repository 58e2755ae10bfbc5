//! Applying a list of edits to a set of files, in order.

use std::collections::BTreeMap;

use super::lines::{FileLines, block_lines};
use super::matching::apply_search_replace;
use super::{BlockFailure, Edit, EditOutcome, MatchKind};

/// Applies `edits` in order to a copy of `files`, each on the result of the previous ones.
///
/// A SEARCH/REPLACE block for a missing file fails with [`BlockFailure::UnknownFile`], unless
/// its SEARCH is empty: then it creates the file (as does a whole file for a missing path;
/// both are listed in `created`). An empty SEARCH for an existing non-empty file fails with
/// [`BlockFailure::FileExists`]. A whole file replaces an existing one, keeping its line
/// endings and final-newline state. A failed edit leaves its file as it was before that edit.
pub fn apply_edits(files: &BTreeMap<String, String>, edits: &[Edit], fuzzy_threshold_permille: u16) -> EditOutcome {
    let mut outcome = EditOutcome { files: files.clone(), ..EditOutcome::default() };
    for (index, edit) in edits.iter().enumerate() {
        match apply_one(&outcome.files, edit, fuzzy_threshold_permille) {
            Ok((content, kind)) => {
                let path = edit.path().to_string();
                if !outcome.files.contains_key(&path) {
                    outcome.created.push(path.clone());
                }
                outcome.files.insert(path, content);
                outcome.applied.push((index, kind));
            }
            Err(failure) => outcome.failed.push((index, failure)),
        }
    }
    outcome
}

/// The new content of the edit's file.
fn apply_one(
    files: &BTreeMap<String, String>,
    edit: &Edit,
    threshold: u16,
) -> Result<(String, MatchKind), BlockFailure> {
    let existing = files.get(edit.path());
    match (edit, existing) {
        (Edit::WholeFile { content, .. }, Some(old)) => Ok((in_style_of(old, content), MatchKind::Exact)),
        (Edit::WholeFile { content, .. }, None) => Ok((content.clone(), MatchKind::Exact)),
        (Edit::SearchReplace { search, replace, .. }, None) if search.trim().is_empty() => {
            Ok((replace.clone(), MatchKind::Exact))
        }
        (Edit::SearchReplace { .. }, None) => Err(BlockFailure::UnknownFile),
        (Edit::SearchReplace { search, .. }, Some(old)) if search.trim().is_empty() && !old.is_empty() => {
            Err(BlockFailure::FileExists)
        }
        (Edit::SearchReplace { search, replace, .. }, Some(old)) => {
            apply_search_replace(old, search, replace, threshold)
        }
    }
}

/// `content` with the line endings and final-newline state of the non-empty file `old`.
fn in_style_of(old: &str, content: &str) -> String {
    if old.is_empty() {
        return content.to_string();
    }
    let style = FileLines::new(old);
    let lines = block_lines(content);
    let mut out = lines.join(style.dominant);
    if style.final_newline && !lines.is_empty() {
        out.push_str(style.dominant);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_file_takes_the_old_files_crlf_and_missing_final_newline() {
        assert_eq!(in_style_of("a\r\nb", "x\ny\n"), "x\r\ny");
        assert_eq!(in_style_of("a\r\nb\r\n", "x\ny"), "x\r\ny\r\n");
        assert_eq!(in_style_of("", "x\n"), "x\n");
    }
}
