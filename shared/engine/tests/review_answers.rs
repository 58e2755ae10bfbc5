//! Answers that hold several JSON values give the real findings (or description): an example
//! block before the answer, or the schema echoed before it; an answer with nothing usable is an
//! error, never an empty list.

use prfix_engine::describe;
use prfix_engine::diff::file_patch;
use prfix_engine::review::{self, ReviewError};

const REAL: &str = r#"{"findings": [
  {"path": "src/db.py", "line": 41, "severity": "critical", "category": "security",
   "title": "SQL built from user input", "body": "Use a parameterised query."},
  {"path": "src/db.py", "line": 57, "severity": "minor", "title": "Unused variable", "body": "`rows` is never read."}
]}"#;

fn titles(answer: &str) -> Vec<String> {
    review::parse_findings(answer).expect("findings parse").into_iter().map(|f| f.title).collect()
}

#[test]
fn an_example_block_before_the_real_findings_gives_the_real_findings() {
    let answer = format!(
        "The answer format is like this example:\n```json\n{{\"findings\": [{{\"path\": \"a.py\", \"line\": 1, \
         \"severity\": \"info\", \"title\": \"Example\", \"body\": \"An example.\"}}]}}\n```\n\
         Here are my findings:\n```json\n{REAL}\n```\n"
    );
    assert_eq!(titles(&answer), ["SQL built from user input", "Unused variable"]);
}

#[test]
fn a_schema_echoed_before_the_answer_is_not_taken_for_findings() {
    let schema = review::findings_format().to_string();
    assert_eq!(titles(&format!("{schema}\n{REAL}")), ["SQL built from user input", "Unused variable"]);
    assert_eq!(titles(&format!("Schema:\n```json\n{schema}\n```\nAnswer:\n```json\n{REAL}\n```")).len(), 2);
}

#[test]
fn a_schema_alone_is_an_error_that_says_so() {
    let error = review::parse_findings(&review::findings_format().to_string()).expect_err("no answer");
    let ReviewError::NoFindings(reason) = error else { panic!("{error:?}") };
    assert!(reason.contains("schema"), "{reason}");
}

#[test]
fn a_stray_value_after_the_findings_does_not_hide_them() {
    let answer = format!("{REAL}\nConfidence: [0.9]");
    assert_eq!(titles(&answer).len(), 2);
}

#[test]
fn an_empty_findings_list_is_no_findings_not_an_error() {
    assert!(review::parse_findings("Nothing to report.\n{\"findings\": []}").expect("parses").is_empty());
}

#[test]
fn a_description_after_an_example_and_the_echoed_schema_is_the_one_read() {
    let files = vec![file_patch("src/db.py", "src/db.py", Some("a\n"), Some("b\n"), 3).expect("a change")];
    let answer = format!(
        "Example: {{\"title\": \"Add a thing\", \"summary\": \"Example.\", \"walkthrough\": [], \"labels\": []}}\n\
         {}\n```json\n{{\"title\": \"Use parameterised queries\", \"summary\": \"Closes an injection.\", \
         \"walkthrough\": [{{\"path\": \"src/db.py\", \"summary\": \"Parameterised.\"}}], \"labels\": [\"security\"]}}\n```",
        describe::format()
    );
    let description = describe::parse(&answer, &files).expect("a description");
    assert_eq!(description.title, "Use parameterised queries");
    assert_eq!(description.labels, ["security"]);
}
