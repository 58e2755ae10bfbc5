//! The SARIF format: valid against the OASIS SARIF 2.1.0 schema, and shaped as GitHub code
//! scanning reads it.

use prfix_proto::agent::v1 as pb;
use serde_json::Value;

use super::{Fixture, finding};
use crate::report::{Format, Review, render};

const SCHEMA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sarif-schema-2.1.0.json"));

/// Every schema violation of `log`, as `path: message`.
fn violations(log: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the vendored schema is JSON");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the vendored schema compiles");
    validator.iter_errors(log).map(|error| format!("{}: {error}", error.instance_path())).collect()
}

fn sarif(fixture: &Fixture) -> Value {
    serde_json::from_str(&fixture.render(Format::Sarif, false)).expect("the SARIF log is JSON")
}

#[test]
fn the_sarif_log_of_a_realistic_review_validates_against_the_sarif_2_1_0_schema() {
    let mut fixture = Fixture::realistic();
    fixture.findings.push(finding("src/ünï côdé.rs", (0, -3), pb::Severity::Unspecified, "", "", "", ""));
    let log = sarif(&fixture);
    let errors = violations(&log);
    assert!(errors.is_empty(), "{} schema violations:\n{}", errors.len(), errors.join("\n"));
}

#[test]
fn the_sarif_log_of_a_review_with_failed_parts_validates_against_the_schema() {
    let log = sarif(&Fixture::partial());
    let errors = violations(&log);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(log["runs"][0]["invocations"][0]["toolExecutionNotifications"].as_array().map(Vec::len), Some(2));
}

#[test]
fn the_sarif_log_of_a_review_without_findings_validates_too() {
    let log = sarif(&Fixture::empty());
    let errors = violations(&log);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn the_schema_check_catches_an_invalid_log() {
    let mut log = sarif(&Fixture::realistic());
    log["runs"][0]["results"][0]["level"] = serde_json::json!("fatal");
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = serde_json::json!(0);
    assert_eq!(violations(&log).len(), 2, "{:#?}", violations(&log));
}

#[test]
fn the_log_names_the_tool_its_version_and_one_rule_per_category() {
    let log = sarif(&Fixture::realistic());
    assert_eq!(log["$schema"], "https://json.schemastore.org/sarif-2.1.0.json");
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "prfix");
    assert_eq!(driver["semanticVersion"], env!("CARGO_PKG_VERSION"));
    let ids: Vec<&str> = driver["rules"].as_array().expect("rules").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["security", "bug", "style", "maintainability", "docs"]);
    assert!(run["originalUriBaseIds"]["%SRCROOT%"].is_object());
    for result in run["results"].as_array().expect("results") {
        let index = result["ruleIndex"].as_u64().expect("a rule index") as usize;
        assert_eq!(driver["rules"][index]["id"], result["ruleId"]);
    }
}

#[test]
fn results_carry_level_location_fingerprint_and_security_severity() {
    let log = sarif(&Fixture::realistic());
    let results = log["runs"][0]["results"].as_array().expect("results").clone();
    let levels: Vec<&str> = results.iter().filter_map(|r| r["level"].as_str()).collect();
    assert_eq!(levels, ["error", "error", "warning", "note", "note", "warning"]);
    let first = &results[0];
    assert_eq!(
        first["message"]["text"].as_str().map(|t| t.starts_with("SQL query built from the user's name\n\n")),
        Some(true)
    );
    let location = &first["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"], serde_json::json!({ "uri": "src/db.rs", "uriBaseId": "%SRCROOT%" }));
    assert_eq!(location["region"], serde_json::json!({ "startLine": 5, "endLine": 7 }));
    assert_eq!(first["properties"]["security-severity"], "9.5");
    assert_eq!(log["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["security-severity"], "9.5");
    assert_eq!(results[1]["properties"].get("security-severity"), None, "only security findings have one");
    assert_eq!(
        results[4]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "docs/gu%C3%ADa%20de%20uso.md"
    );
}

#[test]
fn fingerprints_follow_path_category_and_title_not_lines() {
    let fingerprint = |f: &pb::Finding| -> Value {
        let files = Default::default();
        let review = Review {
            findings: std::slice::from_ref(f),
            diff: "",
            files: &files,
            task_id: "",
            stats: Default::default(),
            failed_parts: &[],
        };
        let log: Value = serde_json::from_str(&render(Format::Sarif, &review, false).expect("renders")).expect("JSON");
        log["runs"][0]["results"][0]["partialFingerprints"]["prfixFindingHash/v1"].clone()
    };
    let base = finding("src/a.rs", (3, 3), pb::Severity::Minor, "bug", "Off by one", "body", "");
    let moved = pb::Finding { line: 40, end_line: 41, body: "other words".to_owned(), ..base.clone() };
    let renamed = pb::Finding { title: "Off by two".to_owned(), ..base.clone() };
    assert_eq!(fingerprint(&base), fingerprint(&moved));
    assert_ne!(fingerprint(&base), fingerprint(&renamed));
    assert_eq!(fingerprint(&base).as_str().map(str::len), Some(16));
}

#[test]
fn lines_are_never_below_one() {
    let mut fixture = Fixture::realistic();
    fixture.findings = vec![finding("src/db.rs", (0, 0), pb::Severity::Info, "docs", "Whole file", "", "")];
    let log = sarif(&fixture);
    let region = &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region, &serde_json::json!({ "startLine": 1, "endLine": 1 }));
}
