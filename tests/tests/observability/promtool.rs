//! The rules as Prometheus itself reads and evaluates them: `promtool check rules` on the rules file
//! and `promtool test rules` on its unit tests (`docs/observability/alerts.test.yaml`), which show
//! each alert firing, with its labels and annotations, on input that must trigger it and staying quiet
//! on healthy input. promtool is a test dependency like the database: without it these tests fail,
//! never skip.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;

use crate::rules::{alerts, rules};
use crate::{RULES, read, root};

/// The unit tests of the rules, in promtool's format.
const RULE_TESTS: &str = "docs/observability/alerts.test.yaml";

/// Runs `promtool` with `args` in the repository's root; returns whether it succeeded and what it
/// printed.
fn promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool").args(args).current_dir(root()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `promtool {}`: {e}. The rules tests need promtool on the PATH: `bash .ci/run` installs it \
             (from Debian's prometheus package)",
            args.join(" ")
        )
    });
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The parts of promtool's test file read here (promtool itself checks the rest).
#[derive(Debug, Deserialize)]
struct RuleTestFile {
    rule_files: Vec<String>,
    tests: Vec<RuleTest>,
}

#[derive(Debug, Deserialize)]
struct RuleTest {
    name: String,
    #[serde(default)]
    alert_rule_test: Vec<AlertRuleTest>,
}

#[derive(Debug, Deserialize)]
struct AlertRuleTest {
    alertname: String,
    /// The alerts expected to fire at `eval_time`: none is a check that it stays quiet.
    #[serde(default)]
    exp_alerts: Vec<serde_norway::Value>,
}

#[test]
fn promtool_accepts_the_rules_file() {
    let (ok, text) = promtool(&["check", "rules", RULES]);
    assert!(ok, "promtool check rules {RULES}:\n{text}");
    let count = rules().groups.iter().map(|g| g.rules.len()).sum::<usize>();
    assert!(text.contains(&format!("SUCCESS: {count} rules found")), "promtool reads every rule:\n{text}");
}

#[test]
fn promtool_unit_tests_show_each_alert_firing_on_its_trigger_and_quiet_on_healthy_input() {
    let file: RuleTestFile = serde_norway::from_str(&read(RULE_TESTS))
        .unwrap_or_else(|e| panic!("{RULE_TESTS} is not a promtool test file: {e}"));
    // promtool reads the rule files relative to the test file: it must test the published rules.
    assert_eq!(file.rule_files, ["alerts.yaml"], "{RULE_TESTS} tests {RULES}");
    // Each alert needs a case where it fires and one where it does not.
    let rules = rules();
    let mut cases: BTreeMap<&str, (usize, usize)> = alerts(&rules).map(|(name, _)| (name, (0, 0))).collect();
    let mut problems = Vec::new();
    for test in &file.tests {
        for check in &test.alert_rule_test {
            match cases.get_mut(check.alertname.as_str()) {
                Some((fires, _)) if !check.exp_alerts.is_empty() => *fires += 1,
                Some((_, quiet)) => *quiet += 1,
                None => {
                    problems.push(format!("`{}` checks {}, which {RULES} does not define", test.name, check.alertname))
                }
            }
        }
    }
    for (alert, (fires, quiet)) in &cases {
        if *fires == 0 {
            problems.push(format!("{alert}: no case where it fires"));
        }
        if *quiet == 0 {
            problems.push(format!("{alert}: no case where it stays quiet"));
        }
    }
    assert!(problems.is_empty(), "{RULE_TESTS} does not test every alert both ways:\n  {}", problems.join("\n  "));

    let (ok, text) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(ok, "promtool test rules {RULE_TESTS}:\n{text}");
}
