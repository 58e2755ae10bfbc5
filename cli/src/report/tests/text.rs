//! The JSON document, the summary and the Markdown escaping helpers.

use super::Fixture;
use crate::report::json::{Document, document};
use crate::report::{Format, ReviewStats, escape, notes, summary};

#[test]
fn the_json_report_reads_back_as_the_same_document() {
    let fixture = Fixture::realistic();
    let text = fixture.render(Format::Json, false);
    let read: Document = serde_json::from_str(&text).expect("the JSON report parses");
    assert_eq!(read, document(&fixture.review()));
    let value: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let first = &value["findings"][0];
    assert_eq!(value["task_id"], super::TASK_ID);
    assert_eq!(first["severity"], "critical");
    assert_eq!((first["line"].as_i64(), first["end_line"].as_i64()), (Some(5), Some(7)));
    assert_eq!(value["findings"][2]["suggestion"], serde_json::Value::Null);
    assert_eq!(value["findings"][4]["path"], "docs/guía de uso.md");
    assert_eq!(
        value["stats"],
        serde_json::json!({ "reanchored": 1, "dropped": 1, "redactions": 2, "chunks": 1, "dropped_suggestions": 0 })
    );
}

#[test]
fn the_summary_counts_each_severity_from_the_most_severe() {
    let fixture = Fixture::realistic();
    assert_eq!(summary(&fixture.findings), "6 findings: 1 critical, 1 major, 2 minor, 2 info");
    assert_eq!(summary(&fixture.findings[..1]), "1 finding: 1 critical");
    assert_eq!(summary(&[]), "no findings");
}

#[test]
fn notes_appear_only_for_what_happened() {
    assert!(notes(&ReviewStats::default()).is_empty());
    let stats = ReviewStats { reanchored: 2, dropped: 0, redactions: 1, chunks: 3, dropped_suggestions: 0 };
    assert_eq!(
        notes(&stats),
        [
            "2 findings were placed outside the diff by the model and moved to the nearest changed line",
            "1 secret was redacted before the change reached the model",
            "the diff was reviewed in 3 chunks",
        ]
    );
}

#[test]
fn code_spans_outlast_the_backticks_inside_them() {
    assert_eq!(escape::code("a.rs:3", false), "`a.rs:3`");
    assert_eq!(escape::code("we`ird.rs", false), "``we`ird.rs``");
    assert_eq!(escape::code("`edge`", false), "`` `edge` ``");
    assert_eq!(escape::code("a|b\nc", true), "`a\\|b c`");
}

#[test]
fn inline_text_escapes_what_markdown_would_read() {
    assert_eq!(
        escape::inline("a | b\n*c* <d> [e](f) _g_ ~h~ &amp; \\"),
        "a \\| b \\*c\\* \\<d\\> \\[e\\](f) \\_g\\_ \\~h\\~ \\&amp; \\\\"
    );
}

#[test]
fn a_table_cell_keeps_code_spans_and_escapes_every_pipe() {
    assert_eq!(escape::cell("use `a|b` | c\nd"), "use `a\\|b` \\| c d");
    assert_eq!(escape::inline("use `a|b` | c"), "use `a|b` \\| c");
}

#[test]
fn prose_keeps_its_lines_and_closed_code_spans() {
    assert_eq!(escape::prose("Use `a|b` here\n\n    - indented"), "Use `a|b` here\n\n   \\- indented");
    assert_eq!(escape::prose("12) step and `` x ` y `` ok"), "12\\) step and `` x ` y `` ok");
    assert_eq!(escape::prose("an ` unclosed"), "an \\` unclosed");
}
