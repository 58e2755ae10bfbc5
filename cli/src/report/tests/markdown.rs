//! The Markdown format: a pull-request comment nothing in a finding can break.

use super::{Fixture, finding};
use crate::report::{Format, Review, render};
use prfix_proto::agent::v1 as pb;

fn table_rows(text: &str) -> Vec<&str> {
    text.lines().filter(|line| line.starts_with("| ")).collect()
}

#[test]
fn a_pipe_or_a_line_break_in_a_finding_stays_inside_its_table_cell() {
    let mut fixture = Fixture::realistic();
    fixture.findings[1].title = "Two\nlines | and a pipe".to_owned();
    fixture.findings[1].path = "src/we|rd.rs".to_owned();
    let text = fixture.render(Format::Markdown, false);
    let rows = table_rows(&text);
    // Header, the delimiter row, one row per finding: a line break would have made more rows.
    assert_eq!(rows.len(), 2 + fixture.findings.len(), "{text}");
    let row = rows[3];
    assert!(row.contains("| Two lines \\| and a pipe |"), "{row}");
    assert!(row.contains("`src/we\\|rd.rs:37-38`"), "{row}");
    for row in rows {
        // Every unescaped `|` is a cell border: four columns have five.
        let borders = row.match_indices('|').filter(|(at, _)| !row[..*at].ends_with('\\')).count();
        assert_eq!(borders, 5, "{row}");
    }
}

#[test]
fn markdown_in_a_finding_shows_as_written_and_cannot_open_blocks() {
    let body = "# not a heading\n> not a quote\n- not a list\n1. not a list\n<script>alert(1)</script>\n\
                ```\nnot a fence\n**not bold** and `code stays code`";
    let findings = [finding("src/db.rs", (5, 5), pb::Severity::Minor, "style", "[link](http://x) *star*", body, "")];
    let fixture = Fixture::realistic();
    let review = Review { findings: &findings, ..fixture.review() };
    let text = render(Format::Markdown, &review, false).expect("renders");
    assert!(text.contains("### 1. 🟡 \\[link\\](http://x) \\*star\\*\n"), "{text}");
    for escaped in [
        "\\# not a heading",
        "\\> not a quote",
        "\\- not a list",
        "1\\. not a list",
        "\\<script\\>alert(1)\\</script\\>",
        "\\`\\`\\`\nnot a fence",
        "\\*\\*not bold\\*\\* and `code stays code`",
    ] {
        assert!(text.contains(escaped), "{escaped:?} in {text}");
    }
}

#[test]
fn a_suggestion_is_a_suggestion_block_only_when_its_lines_are_known() {
    let text = Fixture::realistic().render(Format::Markdown, false);
    assert!(
        text.contains("```suggestion\n    let size = size.clamp(1, MAX_PAGE_SIZE);\n    total.div_ceil(size)\n```\n"),
        "{text}"
    );
    let findings = [finding("src/db.rs", (0, 0), pb::Severity::Minor, "style", "Rename", "", "let user_sql = x;")];
    let fixture = Fixture::realistic();
    let review = Review { findings: &findings, ..fixture.review() };
    let text = render(Format::Markdown, &review, false).expect("renders");
    assert!(!text.contains("```suggestion"), "{text}");
    assert!(text.contains("Suggested replacement:\n\n```\nlet user_sql = x;\n```\n"), "{text}");
}

#[test]
fn a_suggestion_holding_a_fence_gets_a_longer_fence() {
    let suggestion = "/// ```\n/// let x = 1;\n/// ```\n";
    let findings = [finding("src/db.rs", (3, 3), pb::Severity::Info, "docs", "Example", "", suggestion)];
    let fixture = Fixture::realistic();
    let review = Review { findings: &findings, ..fixture.review() };
    let text = render(Format::Markdown, &review, false).expect("renders");
    assert!(text.contains("````suggestion\n/// ```\n/// let x = 1;\n/// ```\n````\n"), "{text}");
}

#[test]
fn the_comment_opens_with_a_heading_and_the_summary() {
    let text = Fixture::realistic().render(Format::Markdown, false);
    assert!(text.starts_with("## prfix review\n\n6 findings: 1 critical, 1 major, 2 minor, 2 info.\n"), "{text}");
    assert!(text.contains("> Note: 2 secrets were redacted before the change reached the model."), "{text}");
    assert!(text.contains("`7f3c2a9e-5b1d-4e8a-9c0f-2d6b8e4a1c3f`"), "{text}");
}
