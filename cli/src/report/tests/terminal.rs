//! The terminal format: colour only when asked, code lines with their numbers.

use super::{Fixture, finding};
use crate::report::{Format, Review, render};
use prfix_proto::agent::v1 as pb;

#[test]
fn without_colour_the_terminal_report_holds_no_escape_sequence() {
    let mut fixture = Fixture::realistic();
    // Text a model or a file wrote may hold escapes of its own: they must not reach the terminal.
    fixture.findings[0].title.push_str(" \x1b[2J");
    fixture.findings[0].body.push_str("\n\x1b]8;;https://evil.example\x07link\x1b]8;;\x07");
    fixture.files.insert("src/db.rs".to_owned(), fixture.files["src/db.rs"].replace("let sql", "let \x1b[31msql"));
    let text = fixture.render(Format::Terminal, false);
    assert!(!text.contains('\x1b'), "{text}");
    assert!(text.contains("\\u{1b}[2J"), "the escape is shown as text: {text}");
}

#[test]
fn with_colour_each_severity_has_its_colour() {
    let text = Fixture::realistic().render(Format::Terminal, true);
    assert!(text.contains("\x1b[1;31mcritical\x1b[0m[security]: "), "{text}");
    assert!(text.contains("\x1b[31mmajor\x1b[0m[bug]: "), "{text}");
    assert!(text.contains("\x1b[33mminor\x1b[0m[style]: "), "{text}");
    assert!(text.contains("\x1b[34minfo\x1b[0m[maintainability]: "), "{text}");
}

#[test]
fn the_code_lines_of_a_finding_are_shown_with_their_numbers() {
    let text = Fixture::realistic().render(Format::Terminal, false);
    let expected = [
        " --> src/db.rs:5-7",
        "  |",
        "5 |     let sql = format!(\"SELECT id FROM users WHERE name = '{name}'\");",
        "6 |     let mut stmt = conn.prepare(&sql)?;",
        "7 |     let mut rows = stmt.query([])?;",
        "  |",
    ]
    .join("\n");
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("37 |     let size = size.min(MAX_PAGE_SIZE);\n38 |     total / size\n"), "{text}");
}

#[test]
fn a_finding_without_file_content_shows_only_its_location() {
    let text = Fixture::realistic().render(Format::Terminal, false);
    let section = text.split("minor[bug]: Unused import `std::fs`\n").nth(1).expect("the finding is shown");
    assert!(section.starts_with(" --> src/main.rs:12\n  = Left over after the refactor.\n"), "{section}");
}

#[test]
fn a_long_range_shows_its_first_lines_and_counts_the_rest() {
    let fixture = Fixture::realistic();
    let text = fixture.render(Format::Terminal, false);
    let section = text.split("minor[style]:").nth(1).expect("the finding is shown");
    assert!(section.contains(" 4 | pub const DEFAULT_PAGE_SIZE: usize = 50;"), "{section}");
    assert!(section.contains("15 |     pub size: usize,\n   | ... 22 more lines\n"), "{section}");
    // A range past the end of the file counts only the lines the file has.
    let mut fixture = Fixture::realistic();
    fixture.findings[2].end_line = 1_000_000;
    let text = fixture.render(Format::Terminal, false);
    assert!(text.contains("15 |     pub size: usize,\n   | ... 24 more lines\n"), "{text}");
}

#[test]
fn bidirectional_overrides_in_code_are_shown_not_obeyed() {
    let mut fixture = Fixture::realistic();
    let db = fixture.files["src/db.rs"].replace("let sql", "let \u{202e}sql");
    fixture.files.insert("src/db.rs".to_owned(), db);
    let text = fixture.render(Format::Terminal, false);
    assert!(text.contains("let \\u{202e}sql"), "{text}");
}

#[test]
fn the_summary_counts_findings_by_severity_and_notes_what_the_server_changed() {
    let text = Fixture::realistic().render(Format::Terminal, false);
    assert!(text.contains("\n6 findings: 1 critical, 1 major, 2 minor, 2 info\n"), "{text}");
    assert!(
        text.contains("note: 1 finding was placed outside the diff by the model and moved to the nearest changed line"),
        "{text}"
    );
    assert!(text.contains("note: 1 finding was dropped: its file is not part of the diff"), "{text}");
    assert!(text.contains("note: 2 secrets were redacted before the change reached the model"), "{text}");
}

#[test]
fn a_suggestion_is_shown_line_by_line() {
    let text = Fixture::realistic().render(Format::Terminal, false);
    assert!(
        text.contains(
            "   = suggestion:\n   +     let size = size.clamp(1, MAX_PAGE_SIZE);\n   +     total.div_ceil(size)\n"
        ),
        "{text}"
    );
}

#[test]
fn a_finding_without_a_line_is_shown_at_its_file() {
    let files = Default::default();
    let findings = [finding("README.md", (0, 0), pb::Severity::Info, "", "Mention the new flag", "", "")];
    let review = Review {
        findings: &findings,
        diff: "",
        files: &files,
        task_id: "",
        stats: Default::default(),
        failed_parts: &[],
    };
    let text = render(Format::Terminal, &review, false).expect("renders");
    assert_eq!(text, "info[general]: Mention the new flag\n --> README.md\n\n1 finding: 1 info\n");
}
