//! Applying one SEARCH/REPLACE block to a file's content: exact, then looser matches.

use super::fuzzy::{Window, ranked_windows};
use super::lines::{FileLines, block_lines};
use super::reindent::Reindenter;
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
                    let pairs = search_lines.iter().map(String::as_str).zip(window.iter().copied());
                    reindented(&replace_lines, pairs, &search_lines, window)
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

/// The REPLACE lines re-indented from the model's indentation to the file's.
fn reindented<'a>(
    replace: &'a [String],
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    search: &'a [String],
    window: &[&str],
) -> Vec<String> {
    let model_lines = search.iter().chain(replace).map(String::as_str);
    let reindenter = Reindenter::new(pairs, model_lines, window);
    replace.iter().map(|l| reindenter.apply(l)).collect()
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
    let new_lines = reindented(replace, anchor_pairs(search, window), search, window);
    Ok((file.splice(best.start, best.len, &new_lines), MatchKind::Fuzzy { score_permille: best.score }))
}

/// SEARCH and window lines that are equal once trimmed, paired in order; the first non-blank
/// lines of each when none are.
fn anchor_pairs<'a>(search: &'a [String], window: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = Vec::new();
    let mut next = 0;
    for line in search.iter().filter(|l| !l.trim().is_empty()) {
        if let Some(found) = window[next.min(window.len())..].iter().position(|f| f.trim() == line.trim()) {
            pairs.push((line.as_str(), window[next + found]));
            next += found + 1;
        }
    }
    if pairs.is_empty() {
        let first_search = search.iter().find(|l| !l.trim().is_empty());
        let first_window = window.iter().find(|l| !l.trim().is_empty());
        if let (Some(s), Some(f)) = (first_search, first_window) {
            pairs.push((s.as_str(), *f));
        }
    }
    pairs
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
