//! A review some of whose parts failed: every format says how many parts failed and why, and still
//! carries the findings of the other parts.

use serde_json::{Value, json};

use super::Fixture;
use crate::report::Format;

#[test]
fn the_terminal_report_of_a_partial_review_warns_with_each_failed_part_and_its_reason() {
    let text = Fixture::partial().render(Format::Terminal, false);
    insta::assert_snapshot!("terminal_partial", text);
    assert!(text.contains(
        "warning: 2 of 5 parts of the review failed (their files have no findings); the findings are those of the \
         other parts:\n  part 2 of 5 (src/cache.rs): the model's answer was not JSON after a retry"
    ));
    assert!(
        text.contains(
            "  part 4 of 5 (src/api/handlers.rs, src/api/routes.rs): the model call failed: 503 server busy\n"
        )
    );
    assert!(text.contains("note: 1 suggestion was dropped: applying it to its lines would not change the file"));
}

#[test]
fn the_warning_is_yellow_with_colour_and_a_reason_cannot_act_on_the_terminal() {
    let mut fixture = Fixture::partial();
    fixture.failed_parts[0].reason = "bad \x1b[2J answer".to_owned();
    fixture.failed_parts[0].paths = vec!["src/\x1b]0;x\x07.rs".to_owned()];
    let text = fixture.render(Format::Terminal, true);
    assert!(text.contains("\x1b[1m\x1b[33mwarning\x1b[0m: 2 of 5 parts"), "{text}");
    assert!(text.contains("part 2 of 5 (src/\\u{1b}]0;x\\u{7}.rs): bad \\u{1b}[2J answer"), "{text}");
}

#[test]
fn the_markdown_report_of_a_partial_review_has_a_warning_block() {
    let text = Fixture::partial().render(Format::Markdown, false);
    insta::assert_snapshot!("markdown_partial", text);
    assert!(text.contains(
        "\n> [!WARNING]\n> 2 of 5 parts of the review failed (their files have no findings); the findings are those \
         of the other parts.\n> - Part 2 of 5 (`src/cache.rs`): the model's answer was not JSON after a retry:"
    ));
    assert!(text.contains(
        "> - Part 4 of 5 (`src/api/handlers.rs`, `src/api/routes.rs`): the model call failed: 503 server busy\n"
    ));
    assert!(text.contains("6 findings"), "the findings of the other parts are there: {text}");
}

#[test]
fn the_github_review_body_of_a_partial_review_has_the_warning_and_the_comments_stay() {
    let fixture = Fixture::partial();
    let review: Value = serde_json::from_str(&fixture.render(Format::Github, false)).expect("JSON");
    let body = review["body"].as_str().expect("a body");
    assert!(body.contains("> [!WARNING]\n> 2 of 5 parts of the review failed"), "{body}");
    assert!(body.contains("> - Part 4 of 5 (`src/api/handlers.rs`, `src/api/routes.rs`)"), "{body}");
    let complete: Value = serde_json::from_str(&Fixture::realistic().render(Format::Github, false)).expect("JSON");
    assert_eq!(review["comments"], complete["comments"]);
    assert!(!complete["body"].as_str().unwrap_or_default().contains("WARNING"));
}

#[test]
fn the_json_report_lists_the_failed_parts_and_the_dropped_suggestions() {
    let json: Value = serde_json::from_str(&Fixture::partial().render(Format::Json, false)).expect("JSON");
    assert_eq!(
        json["failed_parts"],
        json!([
            {"part": 2, "total": 5, "paths": ["src/cache.rs"],
             "reason": "the model's answer was not JSON after a retry: `{\"findings\": [` ... (cut off)"},
            {"part": 4, "total": 5, "paths": ["src/api/handlers.rs", "src/api/routes.rs"],
             "reason": "the model call failed:\n503 server busy"},
        ])
    );
    assert_eq!(json["stats"]["dropped_suggestions"], 1);
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(6));
    let complete: Value = serde_json::from_str(&Fixture::realistic().render(Format::Json, false)).expect("JSON");
    assert_eq!(complete["failed_parts"], json!([]));
}

#[test]
fn the_sarif_log_reports_each_failed_part_as_a_tool_execution_notification() {
    let log: Value = serde_json::from_str(&Fixture::partial().render(Format::Sarif, false)).expect("JSON");
    let invocation = &log["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], true);
    let notifications = invocation["toolExecutionNotifications"].as_array().expect("notifications");
    assert_eq!(notifications.len(), 2);
    let second = &notifications[1];
    assert_eq!(second["level"], "error");
    assert_eq!(second["descriptor"]["id"], "prfix/review-part-failed");
    assert_eq!(
        second["message"]["text"],
        "Review part 4 of 5 (src/api/handlers.rs, src/api/routes.rs): the model call failed: 503 server busy; its \
         files have no findings."
    );
    let uris: Vec<&str> = second["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .filter_map(|l| l["physicalLocation"]["artifactLocation"]["uri"].as_str())
        .collect();
    assert_eq!(uris, ["src/api/handlers.rs", "src/api/routes.rs"]);
    assert_eq!(
        second["properties"],
        json!({"part": 4, "total": 5, "reason": "the model call failed:\n503 server busy"})
    );
    assert_eq!(log["runs"][0]["results"].as_array().map(Vec::len), Some(6));
    let complete: Value = serde_json::from_str(&Fixture::realistic().render(Format::Sarif, false)).expect("JSON");
    assert_eq!(complete["runs"][0]["invocations"], json!([{"executionSuccessful": true}]));
}

#[test]
fn entries_that_are_not_repository_paths_get_no_sarif_location() {
    let mut fixture = Fixture::partial();
    fixture.failed_parts[0].paths = vec!["/etc/passwd".to_owned(), "../up.rs".to_owned(), "src/ok.rs".to_owned()];
    let log: Value = serde_json::from_str(&fixture.render(Format::Sarif, false)).expect("JSON");
    let locations = &log["runs"][0]["invocations"][0]["toolExecutionNotifications"][0]["locations"];
    assert_eq!(locations.as_array().map(Vec::len), Some(1), "{locations}");
    fixture.failed_parts[0].paths.clear();
    let log: Value = serde_json::from_str(&fixture.render(Format::Sarif, false)).expect("JSON");
    assert_eq!(log["runs"][0]["invocations"][0]["toolExecutionNotifications"][0].get("locations"), None);
}
