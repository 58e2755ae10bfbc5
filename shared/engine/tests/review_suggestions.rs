//! Suggestions are exact: a model's `suggestion` is read byte for byte, replaces lines
//! `line..=end_line` as GitHub's "Commit suggestion" does, keeps the file's indentation and line
//! endings, and is dropped when it would not change the file. The Python result must compile.

use std::process::Command;

use prfix_engine::review::{self, Finding, Severity, SuggestionCheck, apply_suggestion, check_suggestion};

const BEFORE: &str = "\
def total(items):
    result = 0
    for item in items:
        if item.price > 0:
            result += item.price
        else:
            pass
    return result
";

const INTENDED: &str = "\
def total(items):
    result = 0
    for item in items:
        if item.price is not None and item.price > 0:
            result += item.price * item.quantity
        else:
            pass
    return result
";

fn finding(line: u32, end_line: u32, suggestion: &str) -> Finding {
    Finding {
        path: "shop/total.py".to_owned(),
        line,
        end_line,
        severity: Severity::Major,
        category: "bug".to_owned(),
        title: "Quantity ignored".to_owned(),
        body: "The total ignores the quantity and None prices.".to_owned(),
        suggestion: suggestion.to_owned(),
    }
}

/// The suggestion as a model writes it in JSON, read through the findings parser.
fn parsed_suggestion(suggestion: &str) -> String {
    let answer = serde_json::json!({"findings": [{
        "path": "shop/total.py", "line": 4, "end_line": 5, "severity": "major", "category": "bug",
        "title": "  Quantity ignored  ", "body": " The total ignores the quantity. ", "suggestion": suggestion
    }]})
    .to_string();
    let raw = review::parse_findings(&answer).expect("findings parse");
    assert_eq!(raw[0].title, "Quantity ignored", "prose is trimmed");
    raw[0].suggestion.clone()
}

fn py_compiles(source: &str) -> bool {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("total.py");
    std::fs::write(&path, source).expect("write the file");
    Command::new("python3").args(["-m", "py_compile"]).arg(&path).status().expect("python3 runs").success()
}

#[test]
fn a_python_suggestion_inside_an_indented_block_applies_as_github_would_and_compiles() {
    let written =
        "        if item.price is not None and item.price > 0:\n            result += item.price * item.quantity\n";
    let suggestion = parsed_suggestion(written);
    assert_eq!(suggestion, written, "the suggestion is kept byte for byte");
    let finding = finding(4, 5, &suggestion);
    assert!(matches!(check_suggestion(BEFORE, &finding), SuggestionCheck::Keep(_)));
    let applied = apply_suggestion(BEFORE, &finding).expect("in range");
    assert_eq!(applied, INTENDED);
    assert!(py_compiles(&applied));
    // What GitHub would commit had the parser trimmed the suggestion, as it used to: the first
    // line loses its indentation and the file no longer compiles.
    let lines: Vec<&str> = BEFORE.lines().collect();
    let trimmed = format!("{}\n{}\n{}\n", lines[..3].join("\n"), written.trim(), lines[5..].join("\n"));
    assert!(!py_compiles(&trimmed));
}

#[test]
fn a_suggestion_in_a_markdown_fence_keeps_its_inner_indentation() {
    let fenced = "```python\n        if item.price is not None and item.price > 0:\n            result += item.price * item.quantity\n```";
    let suggestion = parsed_suggestion(fenced);
    assert_eq!(
        suggestion,
        "        if item.price is not None and item.price > 0:\n            result += item.price * item.quantity"
    );
    assert_eq!(apply_suggestion(BEFORE, &finding(4, 5, &suggestion)).as_deref(), Some(INTENDED));
}

#[test]
fn a_flattened_suggestion_gets_the_replaced_blocks_indentation_back() {
    let flat = "if item.price is not None and item.price > 0:\n    result += item.price * item.quantity";
    let finding = finding(4, 5, flat);
    let SuggestionCheck::Keep(published) = check_suggestion(BEFORE, &finding) else { panic!("kept") };
    assert!(published.starts_with("        if item.price is not None"), "{published}");
    let applied = apply_suggestion(BEFORE, &finding).expect("in range");
    assert_eq!(applied, INTENDED);
    assert!(py_compiles(&applied));
}

#[test]
fn a_crlf_file_stays_crlf_and_a_last_line_without_newline_stays_so() {
    let before = BEFORE.replace('\n', "\r\n");
    let applied = apply_suggestion(
        &before,
        &finding(
            4,
            5,
            "        if item.price is not None and item.price > 0:\n            result += item.price * item.quantity\n",
        ),
    )
    .expect("in range");
    assert_eq!(applied, INTENDED.replace('\n', "\r\n"));
    let no_newline = "a = 1\nb = 2";
    assert_eq!(apply_suggestion(no_newline, &finding(2, 2, "b = 3\n")).as_deref(), Some("a = 1\nb = 3"));
}

#[test]
fn a_suggestion_that_changes_nothing_or_lies_outside_the_file_is_dropped() {
    let same = "        if item.price > 0:\n            result += item.price\n";
    assert_eq!(check_suggestion(BEFORE, &finding(4, 5, same)), SuggestionCheck::Unchanged);
    assert_eq!(
        check_suggestion(BEFORE, &finding(4, 5, "if item.price > 0:\n    result += item.price")),
        SuggestionCheck::Unchanged
    );
    assert_eq!(check_suggestion(BEFORE, &finding(8, 9, "return 0")), SuggestionCheck::OutOfRange);
    assert_eq!(check_suggestion(BEFORE, &finding(0, 1, "x")), SuggestionCheck::OutOfRange);
    assert_eq!(check_suggestion(BEFORE, &finding(4, 5, "")), SuggestionCheck::Absent);
    assert_eq!(apply_suggestion(BEFORE, &finding(9, 9, "x")), None);
}

#[test]
fn a_suggestion_with_its_own_indentation_is_kept_as_written() {
    // Four spaces where the block has eight: the model chose it, so it is not second-guessed.
    let own = "    if item.price:\n        result += 1";
    let SuggestionCheck::Keep(published) = check_suggestion(BEFORE, &finding(4, 5, own)) else { panic!("kept") };
    assert_eq!(published, own);
}
