//! Property tests: arbitrary answers and contents never panic, rendered edits parse back, and a
//! unique run of whole lines is replaced exactly.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::parse::marker;
use super::{Edit, MatchKind, apply_edits, apply_search_replace, parse_edits, parse_edits_report};

/// A path from a plain alphabet.
fn path() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}(/[a-z0-9_]{1,6}){0,2}(\\.[a-z]{1,3})?"
}

/// Block text: lines of printable ASCII and tabs, none of them a marker, each ending in `\n`.
fn block_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[ -~\t]{0,24}".prop_filter("not a marker", |l: &String| marker(l).is_none()), 0..6)
        .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (path(), block_text(), block_text()).prop_map(|(path, search, replace)| Edit::SearchReplace {
            path,
            search,
            replace
        }),
        (path(), block_text()).prop_map(|(path, content)| Edit::WholeFile { path, content }),
    ]
}

/// Answers made of the pieces models use, in any order, with LF or CRLF.
fn answer() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<<<<<<< SEARCH".to_string()),
        Just("<<<<< file".to_string()),
        Just("=======".to_string()),
        Just(">>>>>>> REPLACE".to_string()),
        Just(">>>>>>>>".to_string()),
        Just("```".to_string()),
        Just("```python src/a.py".to_string()),
        Just("~~~~".to_string()),
        Just("File: ./src/a.py".to_string()),
        Just("**`b.rs`**:".to_string()),
        Just("Then in `c.go`, change:".to_string()),
        "\\PC{0,12}",
        "[ \t#*`:/.a-z]{0,12}",
    ];
    (prop::collection::vec(piece, 0..24), any::<bool>())
        .prop_map(|(lines, crlf)| lines.join(if crlf { "\r\n" } else { "\n" }))
}

/// Lines of a few letters, so repeats and near misses are common.
fn small_lines(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[ab ]{0,4}|x[a-c]{1,6}|\\PC{0,6}", 0..max)
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_parser(text in any::<String>()) {
        let _ = parse_edits(&text);
    }

    #[test]
    fn answers_made_of_markers_fences_and_paths_never_panic_the_parser(text in answer()) {
        let report = parse_edits_report(&text);
        prop_assert!(!report.edits.is_empty() || !report.problems.is_empty());
    }

    #[test]
    fn a_rendered_edit_parses_back_to_itself(edit in edit()) {
        prop_assert_eq!(parse_edits(&edit.render()), Ok(vec![edit]));
    }

    #[test]
    fn rendered_edits_in_a_row_parse_back_in_order(edits in prop::collection::vec(edit(), 1..5), blank in any::<bool>()) {
        let sep = if blank { "\n" } else { "" };
        let text: Vec<String> = edits.iter().map(Edit::render).collect();
        prop_assert_eq!(parse_edits(&text.join(sep)), Ok(edits));
    }

    #[test]
    fn arbitrary_content_search_and_replace_never_panic(
        content in any::<String>(), search in any::<String>(), replace in any::<String>(), threshold in any::<u16>()
    ) {
        let _ = apply_search_replace(&content, &search, &replace, threshold);
    }

    #[test]
    fn line_shaped_inputs_never_panic_at_any_level(
        content in small_lines(30), search in small_lines(6), replace in small_lines(4),
        crlf in any::<bool>(), threshold in 0u16..1100,
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let content = content.join(eol);
        let _ = apply_search_replace(&content, &search.join("\n"), &replace.join("\n"), threshold);
    }

    #[test]
    fn a_unique_run_of_whole_lines_is_replaced_exactly(
        lines in prop::collection::vec("[a-d ]{0,5}", 1..25), from in any::<prop::sample::Index>(),
        len in 1usize..5, replace in prop::collection::vec("[a-z]{0,5}", 0..4),
    ) {
        let start = from.index(lines.len());
        let end = (start + len).min(lines.len());
        let run = &lines[start..end];
        let occurrences = lines.windows(run.len()).filter(|w| *w == run).count();
        prop_assume!(occurrences == 1 && run.iter().any(|l| !l.trim().is_empty()));
        let text = |ls: &[String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
        let expected: Vec<String> = [&lines[..start], &replace[..], &lines[end..]].concat();
        let result = apply_search_replace(&text(&lines), &text(run), &text(&replace), 900);
        prop_assert_eq!(result, Ok((text(&expected), MatchKind::Exact)));
    }

    #[test]
    fn a_crlf_file_stays_crlf_whatever_the_rule(
        lines in prop::collection::vec("[a-d ]{1,6}", 2..20), from in any::<prop::sample::Index>(),
        search_len in 1usize..4, replace in prop::collection::vec("[a-z]{1,5}", 0..4), final_newline in any::<bool>(),
    ) {
        let mut content = lines.join("\r\n");
        if final_newline {
            content.push_str("\r\n");
        }
        let start = from.index(lines.len());
        let search = lines[start..(start + search_len).min(lines.len())].join("\n").to_uppercase();
        if let Ok((out, _)) = apply_search_replace(&content, &search, &replace.join("\n"), 0) {
            prop_assert!(!out.replace("\r\n", "").contains('\n'), "{:?}", out);
            prop_assert!(out.is_empty() || out.ends_with('\n') == final_newline, "{:?}", out);
        }
    }

    #[test]
    fn every_edit_is_either_applied_or_failed(
        edits in prop::collection::vec(edit(), 0..6), content in block_text(),
    ) {
        let files: BTreeMap<String, String> = edits.iter().map(|e| (e.path().to_string(), content.clone())).take(2).collect();
        let outcome = apply_edits(&files, &edits, 800);
        let mut seen: Vec<usize> = outcome.applied.iter().map(|(i, _)| *i).chain(outcome.failed.iter().map(|(i, _)| *i)).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..edits.len()).collect::<Vec<_>>());
        let _ = super::retry_feedback(&edits, &outcome);
    }
}
