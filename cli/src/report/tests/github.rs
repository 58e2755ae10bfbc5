//! The GitHub review: every comment on a RIGHT-side line of the diff, whatever the findings say.

use std::collections::BTreeMap;

use prfix_engine::diff;
use prfix_proto::agent::v1 as pb;

use super::{DIFF, Fixture, finding};
use crate::report::github::{GithubReview, build};
use crate::report::{Format, Review};

/// The lines of each file the diff shows on its new side, and the hunk each is in.
fn right_lines() -> BTreeMap<String, BTreeMap<u32, usize>> {
    let mut lines = BTreeMap::new();
    for patch in diff::parse(DIFF).expect("the fixture diff parses") {
        let mut of_file = BTreeMap::new();
        for (index, hunk) in patch.hunks.iter().enumerate() {
            for line in &hunk.lines {
                if line.kind != diff::LineKind::Removed
                    && let Some(number) = line.new_line
                {
                    of_file.insert(number, index);
                }
            }
        }
        assert_eq!(of_file.keys().copied().collect::<Vec<_>>(), patch.new_lines_in_diff());
        lines.insert(patch.path().to_owned(), of_file);
    }
    lines
}

fn assert_on_the_diff(review: &GithubReview) {
    let lines = right_lines();
    for comment in &review.comments {
        let of_file = lines.get(&comment.path).unwrap_or_else(|| panic!("{} is not in the diff", comment.path));
        assert_eq!(comment.side, "RIGHT");
        let hunk = of_file.get(&comment.line).unwrap_or_else(|| panic!("{comment:?}: line not in the diff"));
        if let Some(start) = comment.start_line {
            assert_eq!(comment.start_side.as_deref(), Some("RIGHT"), "{comment:?}");
            assert!(start < comment.line, "{comment:?}");
            assert_eq!(of_file.get(&start), Some(hunk), "{comment:?}: the range leaves its hunk");
        } else {
            assert_eq!(comment.start_side, None, "{comment:?}");
        }
    }
}

fn review_of(findings: &[pb::Finding]) -> GithubReview {
    let fixture = Fixture::realistic();
    build(&Review { findings, ..fixture.review() }).expect("the review builds")
}

#[test]
fn every_comment_of_the_fixture_review_sits_on_a_right_side_line_of_the_diff() {
    let review = review_of(&Fixture::realistic().findings);
    assert_on_the_diff(&review);
    assert_eq!(review.event, "COMMENT");
    // Five findings are on files of the diff; the one on src/main.rs goes into the body.
    assert_eq!(review.comments.len(), 5);
    assert!(review.body.contains("### Findings outside the diff"), "{}", review.body);
    assert!(review.body.contains("`src/main.rs:12`"), "{}", review.body);
}

#[test]
fn findings_on_any_line_of_any_file_become_comments_on_the_diff() {
    let mut findings = Vec::new();
    for path in ["src/db.rs", "src/pager.rs", "docs/guía de uso.md", "src/main.rs", "src/pager.rs.orig"] {
        for start in -1..45 {
            for length in [0, 1, 3, 30] {
                let title = format!("{path} {start}+{length}");
                findings.push(finding(path, (start, start + length), pb::Severity::Minor, "bug", &title, "", "x"));
            }
        }
    }
    let review = review_of(&findings);
    assert_on_the_diff(&review);
    let in_diff = findings.iter().filter(|f| right_lines().contains_key(&f.path)).count();
    assert_eq!(review.comments.len(), in_diff);
}

#[test]
fn a_finding_inside_the_diff_keeps_its_lines_and_its_suggestion() {
    let review = review_of(&Fixture::realistic().findings);
    let comment = &review.comments[1];
    assert_eq!((comment.path.as_str(), comment.start_line, comment.line), ("src/pager.rs", Some(37), 38));
    assert!(comment.body.contains("```suggestion\n    let size = size.clamp(1, MAX_PAGE_SIZE);\n"), "{}", comment.body);
    assert!(!comment.body.contains("Note from prfix"), "{}", comment.body);
}

#[test]
fn a_finding_outside_the_diff_moves_to_the_nearest_line_and_says_so() {
    let review = review_of(&Fixture::realistic().findings);
    let comment = &review.comments[3];
    assert_eq!((comment.path.as_str(), comment.start_line, comment.line), ("src/pager.rs", None, 34));
    assert!(
        comment.body.contains("about lines 25–26, which the diff does not show; it is placed on line 34"),
        "{}",
        comment.body
    );
}

#[test]
fn a_range_across_two_hunks_collapses_to_its_first_line() {
    let review = review_of(&Fixture::realistic().findings);
    let comment = &review.comments[2];
    assert_eq!((comment.path.as_str(), comment.start_line, comment.line), ("src/pager.rs", None, 4));
    assert!(
        comment.body.contains("lines 4–37, which the diff does not show in one piece; it is placed on line 4."),
        "{}",
        comment.body
    );
}

#[test]
fn a_suggestion_that_no_longer_fits_its_lines_is_not_offered_as_one() {
    let findings = [finding("src/pager.rs", (20, 21), pb::Severity::Minor, "style", "Name", "", "    fn first() {}\n")];
    let review = review_of(&findings);
    let body = &review.comments[0].body;
    assert!(!body.contains("```suggestion"), "{body}");
    assert!(body.contains("Suggested replacement:\n\n```\n    fn first() {}\n```"), "{body}");
}

#[test]
fn a_file_with_a_quoted_non_ascii_name_is_matched() {
    let review = review_of(&Fixture::realistic().findings);
    let comment = &review.comments[4];
    assert_eq!((comment.path.as_str(), comment.line), ("docs/guía de uso.md", 4));
}

#[test]
fn the_review_is_json_that_reads_back_the_same() {
    let fixture = Fixture::realistic();
    let text = fixture.render(Format::Github, false);
    let read: GithubReview = serde_json::from_str(&text).expect("the review parses");
    assert_eq!(read, build(&fixture.review()).expect("builds"));
    let value: serde_json::Value = serde_json::from_str(&text).expect("parses");
    assert_eq!(value["comments"][0].get("start_side"), Some(&serde_json::json!("RIGHT")));
    assert_eq!(value["comments"][3].get("start_line"), None, "no start_line key for one line");
}
