//! Applying one SEARCH/REPLACE block to a file's content: exact, then looser matches.

use super::fuzzy::{Window, ranked_windows};
use super::lines::{FileLines, block_lines};
use super::preserve;
use super::{BlockFailure, Closest, FUZZY_UNIQUE_MARGIN_PERMILLE, MatchKind};

/// Replaces the lines `search` of `content` by `replace`, finding them by the first rule that
/// matches (exact, ignoring trailing whitespace, ignoring indentation, fuzzy at or above
/// `fuzzy_threshold_permille`); see the [module docs](super) for the rules.
///
/// The result keeps `content`'s line endings and final-newline state. An empty (or blank) SEARCH
/// sets empty content to `replace` and fails with [`BlockFailure::EmptySearch`] otherwise.
pub fn apply_search_replace(
    content: &str,
    search: &str,
    replace: &str,
    fuzzy_threshold_permille: u16,
) -> Result<(String, MatchKind), BlockFailure> {
    let search_lines = block_lines(search);
    if search_lines.iter().all(|l| l.trim().is_empty()) {
        return if content.is_empty() {
            Ok((replace.to_string(), MatchKind::Exact))
        } else {
            Err(BlockFailure::EmptySearch)
        };
    }
    let file = FileLines::new(content);
    let replace_lines = block_lines(replace);

    let rules: [(MatchKind, LineEq); 3] = [
        (MatchKind::Exact, |a, b| a == b),
        (MatchKind::IgnoringTrailingWhitespace, |a, b| a.trim_end() == b.trim_end()),
        (MatchKind::IgnoringIndentation, |a, b| a.trim() == b.trim()),
    ];
    for (kind, same) in rules {
        let starts = matching_starts(&file.text, &search_lines, same);
        match starts.as_slice() {
            [] => continue,
            [start] => {
                let n = search_lines.len();
                let new_lines = if kind == MatchKind::IgnoringIndentation {
                    let window = &file.text[*start..start + n];
                    let aligned: Vec<Option<usize>> = (0..n).map(Some).collect();
                    preserve::replacement(&search_lines, &replace_lines, window, &aligned).map_err(|reason| {
                        BlockFailure::IndentationUnclear {
                            closest: closest(&file, Window { start: *start, len: n, score: 1000 }),
                            reason,
                        }
                    })?
                } else {
                    replace_lines
                };
                return Ok((file.splice(*start, n, &new_lines), kind));
            }
            many => return Err(BlockFailure::Ambiguous { matches: many.len() }),
        }
    }
    fuzzy(&file, &search_lines, &replace_lines, fuzzy_threshold_permille)
}

/// How one rule compares a file line with a SEARCH line.
type LineEq = fn(&str, &str) -> bool;

/// Every line index where the SEARCH lines start, comparing lines with `same`.
fn matching_starts(file: &[&str], search: &[String], same: LineEq) -> Vec<usize> {
    if search.len() > file.len() {
        return Vec::new();
    }
    (0..=file.len() - search.len())
        .filter(|&start| search.iter().zip(&file[start..]).all(|(s, f)| same(f, s)))
        .collect()
}

/// Rule 4: the most similar window, if it reaches the threshold and is clearly the best.
fn fuzzy(
    file: &FileLines<'_>,
    search: &[String],
    replace: &[String],
    threshold: u16,
) -> Result<(String, MatchKind), BlockFailure> {
    let ranked = ranked_windows(&file.text, search);
    let Some(best) = ranked.first().copied() else { return Err(BlockFailure::NotFound { closest: None }) };
    if best.score < threshold {
        return Err(BlockFailure::NotFound { closest: Some(closest(file, best)) });
    }
    // A rival is too close if it is not lower by the margin — or, for a near-perfect best, by
    // as much as the best is from perfect (twice as different as the best is clearly worse).
    let gap_needed = FUZZY_UNIQUE_MARGIN_PERMILLE.min(1000u16.saturating_sub(best.score)).max(1);
    let rivals =
        ranked.iter().skip(1).filter(|w| !w.overlaps(&best) && best.score.saturating_sub(w.score) < gap_needed).count();
    if rivals > 0 {
        return Err(BlockFailure::Ambiguous { matches: rivals + 1 });
    }
    let window = &file.text[best.start..best.start + best.len];
    let aligned = preserve::align(search, window);
    let new_lines = preserve::replacement(search, replace, window, &aligned)
        .map_err(|reason| BlockFailure::IndentationUnclear { closest: closest(file, best), reason })?;
    Ok((file.splice(best.start, best.len, &new_lines), MatchKind::Fuzzy { score_permille: best.score }))
}

/// The window as shown to the model.
fn closest(file: &FileLines<'_>, window: Window) -> Closest {
    Closest {
        start_line: window.start + 1,
        text: file.text[window.start..window.start + window.len].join("\n"),
        score_permille: window.score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_repeats_count_as_separate_matches() {
        assert_eq!(
            apply_search_replace("a\na\na\n", "a\na\n", "b\n", 900),
            Err(BlockFailure::Ambiguous { matches: 2 })
        );
    }

    #[test]
    fn a_blank_search_fills_empty_content_and_refuses_other_content() {
        assert_eq!(apply_search_replace("", "\n", "new\n", 900), Ok(("new\n".to_string(), MatchKind::Exact)));
        assert_eq!(apply_search_replace("x\n", "", "new\n", 900), Err(BlockFailure::EmptySearch));
    }

    #[test]
    fn trailing_whitespace_in_the_file_does_not_prevent_a_match() {
        let (out, kind) = apply_search_replace("a  \nb\t\nc\n", "a\nb\n", "x\n", 900).expect("matches");
        assert_eq!((out.as_str(), kind), ("x\nc\n", MatchKind::IgnoringTrailingWhitespace));
    }

    #[test]
    fn content_without_lines_reports_no_closest_window() {
        assert_eq!(apply_search_replace("", "a\n", "b\n", 900), Err(BlockFailure::NotFound { closest: None }));
    }
}
