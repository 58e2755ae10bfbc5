//! Unit and property tests of the tolerant JSON parser, on answers shaped like real model output.

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

#[derive(Debug, Deserialize, PartialEq)]
struct Finding {
    file: String,
    line: u32,
    severity: String,
    message: String,
}

fn finding(n: u32) -> String {
    format!(r#"{{"file": "src/lib.rs", "line": {n}, "severity": "high", "message": "unchecked index {n}"}}"#)
}

fn three_findings() -> String {
    format!("[{}, {}, {}]", finding(1), finding(2), finding(3))
}

fn lines_of(value: &Value) -> Vec<u64> {
    value.as_array().map(|items| items.iter().filter_map(|item| item["line"].as_u64()).collect()).unwrap_or_default()
}

#[test]
fn strict_json_takes_the_fast_path_with_a_clean_report() {
    let (value, repairs) = parse_lenient_with_report(&three_findings()).expect("strict JSON parses");
    assert_eq!(lines_of(&value), [1, 2, 3]);
    assert!(repairs.is_clean(), "{repairs:?}");
}

#[test]
fn findings_wrapped_in_prose_are_found() {
    let answer = format!(
        "Sure! I reviewed the diff.\nHere are the findings:\n{}\nLet me know if you need more.",
        three_findings()
    );
    let (value, repairs) = parse_lenient_with_report(&answer).expect("the array is found");
    assert_eq!(lines_of(&value), [1, 2, 3]);
    assert!(repairs.stripped_prose && !repairs.stripped_fence);
}

#[test]
fn a_fenced_block_wins_over_brackets_in_the_prose() {
    let answer = format!("Issues [see below]:\n\n```json\n{}\n```\n\nThat's all.", three_findings());
    let (value, repairs) = parse_lenient_with_report(&answer).expect("the fenced block is found");
    assert_eq!(lines_of(&value), [1, 2, 3]);
    assert!(repairs.stripped_fence && repairs.stripped_prose);
}

#[test]
fn the_first_fenced_block_that_parses_wins() {
    let answer = format!("Run this:\n```bash\ncargo test [--all]\n```\nResult:\n```json\n[{}]\n```\n", finding(7));
    assert_eq!(lines_of(&parse_lenient(&answer).expect("the JSON fence is used")), [7]);
}

#[test]
fn a_fence_on_one_line_and_an_unclosed_fence_are_read() {
    assert_eq!(parse_lenient(r#"```json {"ok": true}```"#).expect("one-line fence"), json!({"ok": true}));
    let cut = format!("```json\n[{}, {}", finding(1), &finding(2)[..20]);
    assert_eq!(lines_of(&parse_lenient(&cut).expect("an unclosed fence is read to the end")), [1]);
}

#[test]
fn reasoning_blocks_are_removed_before_parsing() {
    let answer = format!("<think>The user wants [an array]. Let me check {{ braces }}.</think>\n{}", three_findings());
    let (value, repairs) = parse_lenient_with_report(&answer).expect("think block removed");
    assert_eq!(lines_of(&value), [1, 2, 3]);
    assert!(repairs.stripped_think);

    let opened_by_template = format!("reasoning about [x] without an opening tag</think>{}", finding(4));
    assert_eq!(parse_lenient(&opened_by_template).expect("closing tag alone")["line"], 4);
}

#[test]
fn an_unclosed_reasoning_block_is_dropped_but_searched_as_a_last_resort() {
    let cut_while_thinking = "<think>Let me think about the diff. The first issue is";
    assert!(matches!(parse_lenient(cut_while_thinking), Err(JsonError::NotFound { .. })));
    let json_inside = format!("<think>draft: {}", finding(9));
    assert_eq!(parse_lenient(&json_inside).expect("JSON inside the unclosed block")["line"], 9);
}

#[test]
fn trailing_commas_are_dropped_and_counted() {
    let (value, repairs) =
        parse_lenient_with_report(r#"{"files": ["a.rs", "b.rs",], "done": true,}"#).expect("trailing commas");
    assert_eq!(value, json!({"files": ["a.rs", "b.rs"], "done": true}));
    assert_eq!(repairs.trailing_commas, 2);
}

#[test]
fn comments_are_removed() {
    let answer = "{\n  // the file with the bug\n  \"file\": \"a.rs\", /* 1-based */ \"line\": 3\n}";
    let (value, repairs) = parse_lenient_with_report(answer).expect("comments");
    assert_eq!(value, json!({"file": "a.rs", "line": 3}));
    assert_eq!(repairs.comments, 2);
}

#[test]
fn single_quotes_unquoted_keys_and_python_literals_are_rewritten() {
    let answer = "{file: 'src/a.rs', fixed: True, reason: None, 'note': 'say \"hi\", it\\'s fine', ok: False}";
    let (value, repairs) = parse_lenient_with_report(answer).expect("JSON5-ish and Python");
    assert_eq!(
        value,
        json!({"file": "src/a.rs", "fixed": true, "reason": null, "note": "say \"hi\", it's fine", "ok": false})
    );
    assert_eq!(repairs.unquoted_keys, 4);
    assert_eq!(repairs.single_quoted_strings, 3);
    assert_eq!(repairs.python_literals, 3);
}

#[test]
fn true_false_none_inside_strings_are_left_alone() {
    let value = parse_lenient("{'a': 'True or None', b: [True]}").expect("literals");
    assert_eq!(value, json!({"a": "True or None", "b": [true]}));
}

#[test]
fn raw_newlines_and_tabs_inside_strings_are_escaped() {
    let answer = "{\"replace\": \"fn main() {\n\tprintln!(\\\"hi\\\");\n}\"}";
    let (value, repairs) = parse_lenient_with_report(answer).expect("raw control characters");
    assert_eq!(value["replace"], "fn main() {\n\tprintln!(\"hi\");\n}");
    assert_eq!(repairs.escaped_control_chars, 3);
}

#[test]
fn invalid_escapes_and_lone_surrogates_become_valid() {
    let value = parse_lenient(r#"{"pattern": "\d+\.rs", "odd": "\ud800x", "pair": "\ud83d\ude00"}"#).expect("escapes");
    assert_eq!(value, json!({"pattern": "\\d+\\.rs", "odd": "\u{fffd}x", "pair": "😀"}));
}

#[test]
fn missing_commas_and_loose_numbers_are_repaired() {
    let (value, repairs) = parse_lenient_with_report("{\"a\": 1 \"b\": [+2 .5 5. 007]}").expect("commas, numbers");
    assert_eq!(value, json!({"a": 1, "b": [2, 0.5, 5.0, 7]}));
    assert_eq!(repairs.missing_commas, 4);
    assert_eq!(repairs.normalized_numbers, 4);
}

#[test]
fn an_answer_cut_after_two_and_a_half_findings_gives_two_findings() {
    let full = three_findings();
    let third = full.rfind("{\"file\"").expect("the third finding");
    let cut = &full[..third + 40];
    let (value, repairs) = parse_lenient_with_report(&format!("Here you go:\n```json\n{cut}")).expect("truncated");
    assert_eq!(lines_of(&value), [1, 2]);
    assert!(repairs.truncated && repairs.dropped_incomplete);
}

#[test]
fn a_cut_inside_a_wrapper_object_keeps_the_complete_findings() {
    let full = format!(r#"{{"summary": "3 issues", "findings": {}}}"#, three_findings());
    let cut = &full[..full.rfind("unchecked index 3").expect("third message")];
    let value = parse_lenient(cut).expect("truncated wrapper");
    assert_eq!(value["summary"], "3 issues");
    assert_eq!(lines_of(&value["findings"]), [1, 2]);
}

#[test]
fn every_kind_of_cut_leaves_only_complete_members() {
    let cases = [
        (r#"{"a": 1, "b": "hal"#, json!({"a": 1})),
        (r#"{"a": 1, "b": 12"#, json!({"a": 1})),
        (r#"{"a": 1, "lo"#, json!({"a": 1})),
        (r#"{"a": 1, "b""#, json!({"a": 1})),
        (r#"{"a": 1, "b":"#, json!({"a": 1})),
        (r#"{"a": 1,"#, json!({"a": 1})),
        (r#"{"a": tru"#, json!({})),
        (r#"[1, 2, 3"#, json!([1, 2])),
        (r#"[1, 2, 3 "#, json!([1, 2, 3])),
        (r#"[[1, 2], [3"#, json!([[1, 2]])),
        (r#"{"a": {"b": 1, "c": [1, {"d"#, json!({"a": {"b": 1, "c": [1]}})),
        (r#"["x\u00"#, json!([])),
        (r#"{"a": 1} /* unclosed"#, json!({"a": 1})),
        (r#"{"a": 1, /* cut"#, json!({"a": 1})),
    ];
    for (cut, expected) in cases {
        let (value, repairs) = parse_lenient_with_report(cut).unwrap_or_else(|e| panic!("{cut}: {e}"));
        assert_eq!(value, expected, "{cut}");
        assert_eq!(repairs.truncated, cut != r#"{"a": 1} /* unclosed"#, "{cut}");
    }
}

#[test]
fn an_answer_without_json_says_so_and_quotes_its_start() {
    let answer = "I could not find any issue in this diff. ".repeat(5);
    let error = parse_lenient(&answer).expect_err("no JSON");
    let message = error.to_string();
    assert!(message.starts_with("no JSON object or array found in the model's answer (first 80 chars: I could"));
    assert!(message.contains('…'), "{message}");
}

#[test]
fn json_like_text_that_cannot_be_repaired_says_why() {
    let error = parse_lenient("The config {uses this syntax} here.").expect_err("not repairable");
    assert!(matches!(error, JsonError::Unrepairable { .. }), "{error}");
    assert!(error.to_string().contains("expected ':' after a key"), "{error}");
}

#[test]
fn typed_parsing_skips_values_of_another_shape() {
    let answer = format!("I found [2] issues. The first: {{\"result\": {}}}", finding(5));
    let found: Finding = parse_lenient_as(&answer).expect("the nested finding");
    assert_eq!(found.line, 5);
    let found: Vec<Finding> = parse_lenient_as(&format!("[1] and {}", three_findings())).expect("the list");
    assert_eq!(found.len(), 3);
}

#[test]
fn typed_parsing_reports_the_wrong_shape() {
    let error = parse_lenient_as::<Vec<Finding>>(r#"{"status": "ok"}"#).expect_err("not a list");
    assert!(matches!(error, JsonError::WrongShape { .. }), "{error}");
    assert!(error.to_string().contains("expected a sequence"), "{error}");
}

#[test]
fn scalars_are_accepted_as_strict_json_only() {
    assert_eq!(parse_lenient(" 42 ").expect("a number"), json!(42));
    assert_eq!(parse_lenient("```\n\"done\"\n```").expect("a fenced string"), json!("done"));
    assert!(parse_lenient("the answer is 42").is_err());
}

#[test]
fn deeply_nested_input_fails_without_overflowing_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_lenient(&deep).is_err());
    let open = "{\"a\":".repeat(50_000);
    let _ = parse_lenient(&open);
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // At most 13 significant digits: serde_json (without `float_roundtrip`) reads longer
        // decimals back up to one ulp off, on its own strict path too.
        (any::<i32>(), 0i32..4).prop_map(|(mantissa, exp)| Value::from(f64::from(mantissa) / 2f64.powi(exp))),
        any::<String>().prop_map(Value::String),
        "[a-z'\"\\\\/ {}\\[\\],:\n\t]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn container() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(value(), 0..5).prop_map(Value::Array),
        prop::collection::btree_map("[a-z_]{1,8}", value(), 0..5)
            .prop_map(|map| Value::Object(map.into_iter().collect())),
    ]
}

fn objects() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(
        prop::collection::btree_map("[a-z]{1,6}", value(), 0..4)
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        0..6,
    )
}

/// Floors `at` to a char boundary of `text`.
fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_lenient_with_report(&text);
        let _ = parse_lenient_as::<Vec<Finding>>(&text);
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(text in "[\\[\\]{}\"',:a-zTFN0-9 .+eE\\\\/*\n\tu<>`-]{0,120}") {
        let _ = parse_lenient_with_report(&text);
    }

    #[test]
    fn any_serialized_value_parses_back_to_itself(value in value()) {
        prop_assert_eq!(parse_lenient(&value.to_string()).expect("strict JSON"), value.clone());
        let pretty = serde_json::to_string_pretty(&value).expect("serializable");
        prop_assert_eq!(parse_lenient(&pretty).expect("pretty JSON"), value);
    }

    #[test]
    fn a_value_in_prose_or_a_fence_parses_back_to_itself(
        value in container(),
        before in "[A-Za-z0-9 .,:!\n]{0,40}",
        after in "[A-Za-z0-9 .,:!{}\\[\\]\n]{0,40}",
    ) {
        let text = value.to_string();
        let (in_prose, repairs) = parse_lenient_with_report(&format!("{before}\n{text}\n{after}")).expect("in prose");
        prop_assert_eq!(&in_prose, &value);
        prop_assert!(!repairs.truncated && repairs.trailing_commas == 0 && repairs.escaped_control_chars == 0);
        prop_assert_eq!(repairs.invalid_escapes + repairs.normalized_numbers + repairs.missing_commas, 0);
        let fenced = parse_lenient(&format!("{before}\n```json\n{text}\n```\n{after}")).expect("fenced");
        prop_assert_eq!(fenced, value);
    }

    #[test]
    fn a_cut_array_of_objects_gives_a_prefix_of_its_elements(
        items in objects(),
        cut in any::<prop::sample::Index>(),
        pretty in any::<bool>(),
    ) {
        let full = if pretty {
            serde_json::to_string_pretty(&items).expect("serializable")
        } else {
            serde_json::to_string(&items).expect("serializable")
        };
        let at = boundary(&full, cut.index(full.len() + 1));
        let parsed = parse_lenient(&full[..at]);
        if full[..at].trim().is_empty() {
            prop_assert!(parsed.is_err());
        } else {
            let parsed = parsed.expect("a cut array is recovered");
            let got = parsed.as_array().expect("an array");
            prop_assert!(got.len() <= items.len());
            for (i, item) in got.iter().enumerate() {
                prop_assert_eq!(item, &items[i]);
            }
        }
    }
}
