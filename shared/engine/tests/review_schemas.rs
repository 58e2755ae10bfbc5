//! The schemas sent as Ollama's `format` list their keys in the order a model should write them
//! (Ollama compiles the grammar in that order): location and severity before prose in findings,
//! the title first in descriptions; the system prompts show the same text.

use prfix_engine::describe;
use prfix_engine::prompt::Fence;
use prfix_engine::review;
use prfix_engine::tokens::Estimator;

/// Asserts that each of `keys` (as `"key"`) first appears in `text` after the one before it.
fn in_order(text: &str, keys: &[&str]) {
    let positions: Vec<usize> = keys
        .iter()
        .map(|key| text.find(&format!("\"{key}\"")).unwrap_or_else(|| panic!("{key} missing from {text}")))
        .collect();
    for (pair, keys) in positions.windows(2).zip(keys.windows(2)) {
        assert!(pair[0] < pair[1], "{} comes after {} in {text}", keys[0], keys[1]);
    }
}

#[test]
fn the_findings_schema_puts_location_and_severity_before_prose_and_code() {
    let text = serde_json::to_string(&review::findings_format()).expect("serializes");
    in_order(&text, &["findings", "path", "line", "end_line", "severity", "category", "title", "body", "suggestion"]);
    assert_eq!(review::findings_format().to_string(), text);
}

#[test]
fn the_describe_schema_puts_the_title_first_and_labels_last() {
    let text = serde_json::to_string(&describe::format()).expect("serializes");
    in_order(&text, &["title", "summary", "walkthrough", "path", "labels"]);
    // Inside a walkthrough entry the path comes before its summary.
    let entry = text.find("\"walkthrough\"").map(|at| &text[at..]).expect("walkthrough");
    in_order(entry, &["path", "summary", "labels"]);
}

#[test]
fn prose_fields_are_bounded() {
    let schema = review::findings_schema();
    let item = &schema["properties"]["findings"]["items"]["properties"];
    for field in ["title", "body", "suggestion", "category"] {
        assert!(item[field]["maxLength"].as_u64().is_some_and(|n| n > 0), "{field} unbounded");
    }
    let describe = describe::schema();
    assert!(describe["properties"]["summary"]["maxLength"].is_u64());
}

#[test]
fn the_system_prompts_show_the_schema_in_the_order_it_is_sent() {
    let fence = Fence::new();
    assert!(review::system_prompt(&fence, "").contains(&review::findings_format().to_string()));
    assert!(describe::system_prompt(&fence).contains(&describe::format().to_string()));
}

#[test]
fn the_sorted_and_ordered_schemas_count_the_same_tokens() {
    let estimator = Estimator::new(1.3);
    assert_eq!(
        estimator.count(&review::findings_schema().to_string()),
        estimator.count(&review::findings_format().to_string())
    );
    assert_eq!(estimator.count(&describe::schema().to_string()), estimator.count(&describe::format().to_string()));
}
