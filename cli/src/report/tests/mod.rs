//! The report formats on one realistic review: a `git diff` of a small Rust change (see
//! `cli/tests/fixtures/review.diff`) with findings inside, outside and beside the diff.

mod github;
mod markdown;
mod partial;
mod sarif;
mod terminal;
mod text;

use std::collections::BTreeMap;

use prfix_proto::agent::v1 as pb;

use super::{Format, Review, ReviewStats, render};

/// The diff the fixture review is about: `src/db.rs` (one hunk, new lines 1–12), `src/pager.rs`
/// (hunks on new lines 1–10 and 34–39) and the new `docs/guía de uso.md` (lines 1–4).
pub(super) const DIFF: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/review.diff"));

pub(super) const TASK_ID: &str = "7f3c2a9e-5b1d-4e8a-9c0f-2d6b8e4a1c3f";

const DB_RS: &str = r#"use rusqlite::Connection;

/// Looks up a user by name.
pub fn find_user(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    let sql = format!("SELECT id FROM users WHERE name = '{name}'");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}
"#;

const PAGER_RS: &str = r#"//! Splits results into pages.

/// How many items one page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The largest page a caller may ask for.
pub const MAX_PAGE_SIZE: usize = 500;

/// A window over a result list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Zero-based page number.
    pub number: usize,
    /// Items per page.
    pub size: usize,
}

impl Page {
    /// The first page with the default size.
    pub fn first() -> Self {
        Self { number: 0, size: DEFAULT_PAGE_SIZE }
    }

    /// The index of the first item on the page.
    pub fn offset(&self) -> usize {
        self.number * self.size
    }

    /// The next page.
    pub fn next(&self) -> Self {
        Self { number: self.number + 1, size: self.size }
    }
}

/// How many pages `total` items fill.
pub fn page_count(total: usize, size: usize) -> usize {
    let size = size.min(MAX_PAGE_SIZE);
    total / size
}
"#;

const GUIDE_MD: &str = "# Guía de uso\n\nEjecuta `prfix review` en la raíz del repositorio.\nLos resultados aparecen con su línea — «así».\n";

/// A finding with the given fields.
pub(super) fn finding(
    path: &str,
    lines: (i32, i32),
    severity: pb::Severity,
    category: &str,
    title: &str,
    body: &str,
    suggestion: &str,
) -> pb::Finding {
    pb::Finding {
        path: path.to_owned(),
        line: lines.0,
        end_line: lines.1,
        side: pb::Side::New as i32,
        severity: severity as i32,
        category: category.to_owned(),
        title: title.to_owned(),
        body: body.to_owned(),
        suggestion: suggestion.to_owned(),
    }
}

/// What a review needs besides references: the findings and file contents it borrows.
pub(super) struct Fixture {
    pub(super) findings: Vec<pb::Finding>,
    pub(super) files: BTreeMap<String, String>,
    pub(super) stats: ReviewStats,
    pub(super) failed_parts: Vec<pb::FailedPart>,
}

impl Fixture {
    /// The realistic review: six findings of every severity, on lines inside the diff, a range,
    /// a range across two hunks, a line outside the diff, a non-ASCII file and a file the diff
    /// does not touch.
    pub(super) fn realistic() -> Self {
        use pb::Severity::{Critical, Info, Major, Minor};
        let findings = vec![
            finding(
                "src/db.rs",
                (5, 7),
                Critical,
                "security",
                "SQL query built from the user's name",
                "`name` comes from the request and is pasted into the SQL text: a name like `x' OR '1'='1` \
                 reads every user.\nBind it as a parameter instead.",
                "    let mut stmt = conn.prepare(\"SELECT id FROM users WHERE name = ?1\")?;\n    \
                 let mut rows = stmt.query([name])?;\n",
            ),
            finding(
                "src/pager.rs",
                (37, 38),
                Major,
                "bug",
                "Division by zero when `size` is 0",
                "The old code returned 0 pages for a zero size; `size.min(MAX_PAGE_SIZE)` keeps 0 and `total / size` \
                 panics.\nIt also rounds down: 41 items in pages of 20 give 2 pages, not 3.",
                "    let size = size.clamp(1, MAX_PAGE_SIZE);\n    total.div_ceil(size)\n",
            ),
            finding(
                "src/pager.rs",
                (4, 37),
                Minor,
                "style",
                "Page limits | defaults are far apart",
                "`DEFAULT_PAGE_SIZE` may exceed `MAX_PAGE_SIZE` one day.\n| keep | them |\n# together",
                "",
            ),
            finding(
                "src/pager.rs",
                (25, 26),
                Info,
                "maintainability",
                "`offset` can overflow",
                "number * size overflows for huge page numbers; consider `checked_mul`.",
                "",
            ),
            finding(
                "docs/guía de uso.md",
                (4, 4),
                Info,
                "docs",
                "Comillas «así» — fine",
                "La línea usa comillas angulares; ✓ coherent with the rest of the guide.",
                "",
            ),
            finding(
                "src/main.rs",
                (12, 12),
                Minor,
                "bug",
                "Unused import `std::fs`",
                "Left over after the refactor.",
                "",
            ),
        ];
        let files = [("src/db.rs", DB_RS), ("src/pager.rs", PAGER_RS), ("docs/guía de uso.md", GUIDE_MD)]
            .into_iter()
            .map(|(path, content)| (path.to_owned(), content.to_owned()))
            .collect();
        let stats = ReviewStats { reanchored: 1, dropped: 1, redactions: 2, chunks: 1, dropped_suggestions: 0 };
        Self { findings, files, stats, failed_parts: Vec::new() }
    }

    /// The realistic review of a diff in five parts, two of which failed: the findings are those of
    /// the other three.
    pub(super) fn partial() -> Self {
        let failed = |part: i32, paths: &[&str], reason: &str| pb::FailedPart {
            part,
            total: 5,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            reason: reason.to_owned(),
        };
        let mut fixture = Self::realistic();
        fixture.stats.chunks = 5;
        fixture.stats.dropped_suggestions = 1;
        fixture.failed_parts = vec![
            failed(
                2,
                &["src/cache.rs"],
                "the model's answer was not JSON after a retry: `{\"findings\": [` ... (cut off)",
            ),
            failed(4, &["src/api/handlers.rs", "src/api/routes.rs"], "the model call failed:\n503 server busy"),
        ];
        fixture
    }

    /// The same change with no findings.
    pub(super) fn empty() -> Self {
        Self { findings: Vec::new(), ..Self::realistic() }
    }

    pub(super) fn review(&self) -> Review<'_> {
        Review {
            findings: &self.findings,
            diff: DIFF,
            files: &self.files,
            task_id: TASK_ID,
            stats: self.stats,
            failed_parts: &self.failed_parts,
        }
    }

    pub(super) fn render(&self, format: Format, color: bool) -> String {
        render(format, &self.review(), color).expect("the fixture review renders")
    }
}

#[test]
fn the_terminal_report_of_the_fixture_review_is_stable() {
    insta::assert_snapshot!("terminal", Fixture::realistic().render(Format::Terminal, false));
}

#[test]
fn the_markdown_report_of_the_fixture_review_is_stable() {
    insta::assert_snapshot!("markdown", Fixture::realistic().render(Format::Markdown, false));
}

#[test]
fn the_github_review_of_the_fixture_review_is_stable() {
    insta::assert_snapshot!("github", Fixture::realistic().render(Format::Github, false));
}

#[test]
fn every_format_renders_a_review_without_findings() {
    let fixture = Fixture::empty();
    assert!(fixture.render(Format::Terminal, false).contains("no findings"));
    assert!(fixture.render(Format::Markdown, false).contains("No findings."));
    let json: serde_json::Value =
        serde_json::from_str(&fixture.render(Format::Json, false)).expect("the JSON report parses");
    assert_eq!(json["findings"], serde_json::json!([]));
    let github: serde_json::Value =
        serde_json::from_str(&fixture.render(Format::Github, false)).expect("the GitHub review parses");
    assert_eq!(github["comments"], serde_json::json!([]));
    assert!(github["body"].as_str().is_some_and(|body| body.contains("No findings.")));
}

#[test]
fn severity_names_are_the_lower_case_words_users_see() {
    let names: Vec<&str> = (0..=5).map(super::severity_name).collect();
    assert_eq!(names, ["unspecified", "info", "minor", "major", "critical", "unspecified"]);
    assert_eq!(super::severity_name(-1), "unspecified");
}

#[test]
fn the_format_names_on_the_command_line_are_the_lower_case_names() {
    use clap::ValueEnum;
    let names: Vec<String> = Format::value_variants()
        .iter()
        .filter_map(|format| format.to_possible_value().map(|value| value.get_name().to_owned()))
        .collect();
    assert_eq!(names, ["terminal", "json", "sarif", "markdown", "github"]);
}

#[test]
fn an_unreadable_diff_is_an_error_that_says_what_to_pass() {
    let fixture = Fixture::realistic();
    let review = Review { diff: "@@ -1 +1 @@\n-a\n+b\n", ..fixture.review() };
    let error = render(Format::Github, &review, false).expect_err("a hunk without a file header is refused");
    let message = error.to_string();
    assert!(message.contains("`git diff`"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}
