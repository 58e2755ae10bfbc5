//! A fix's prompts stay within their budget however large the files: the plan step gets a map
//! of the change (hunks, check output, outlines), the edit step only the regions the plan names.

use std::collections::BTreeMap;

use prfix_engine::diff::unified_diff;
use prfix_engine::fix::{
    Budget, FixError, Plan, Problem, RegionRef, edit_prompt, parse_plan, plan_prompt, resolve_regions,
};
use prfix_engine::prompt::Fence;
use prfix_engine::tokens::Estimator;

/// A Python module of `functions` small functions (about 8 lines each).
fn big_module(functions: usize) -> String {
    let mut out = String::from("import math\n\n\n");
    for i in 0..functions {
        out.push_str(&format!(
            "def metric_{i}(values):\n    \"\"\"Metric number {i}.\"\"\"\n    total = 0\n    for v in values:\n        total += v * {i}\n    return total / len(values)\n\n\n"
        ));
    }
    out
}

fn budget(tokens: usize) -> Budget {
    Budget { estimator: Estimator::new(1.2), tokens }
}

fn problem(output: &str) -> Problem {
    Problem { check_command: "pytest -q".into(), check_output: output.into(), ..Problem::default() }
}

#[test]
fn small_files_are_sent_whole_to_the_planner() {
    let files = BTreeMap::from([("a.py".to_owned(), "def f():\n    return 1\n".to_owned())]);
    let prompt = plan_prompt(&Fence::new(), &problem("E assert 1 == 2"), &files, "", &budget(4000)).expect("fits");
    assert!(prompt.whole_files);
    assert!(prompt.text.contains("def f():\n    return 1\n"));
}

#[test]
fn the_planner_gets_hunks_outlines_and_the_end_of_the_output_of_large_files_within_its_budget() {
    let old = big_module(400);
    let new = old.replace("        total += v * 217\n", "        total += v * 217 + 1\n");
    assert!(new.lines().count() > 3000);
    let diff = unified_diff("stats/metrics.py", "stats/metrics.py", Some(&old), Some(&new), 3);
    let files = BTreeMap::from([("stats/metrics.py".to_owned(), new.clone())]);
    let output: String =
        (0..3000).map(|i| format!("collected line {i}\n")).collect::<String>() + "E   assert 218 == 217\n";
    let b = budget(3000);
    let prompt = plan_prompt(&Fence::new(), &problem(&output), &files, &diff, &b).expect("fits");
    assert!(!prompt.whole_files);
    assert!(b.count(&prompt.text) <= b.tokens, "{} > {}", b.count(&prompt.text), b.tokens);
    assert!(prompt.text.contains("+        total += v * 217 + 1"), "the hunk is shown");
    assert!(prompt.text.contains("E   assert 218 == 217"), "the end of the check output is kept");
    assert!(prompt.text.contains("earlier lines cut"));
    assert!(prompt.text.contains("function metric_217 (lines"), "the outline names the changed symbol");
    assert!(prompt.text.contains("[changed]"));
    assert!(!prompt.text.contains("def metric_100(values):"), "the file is not sent whole");
}

#[test]
fn the_coder_sees_only_the_named_region_with_context_lines_around_it() {
    let content = big_module(400);
    let files = BTreeMap::from([("stats/metrics.py".to_owned(), content.clone())]);
    let plan = parse_plan(
        r#"{"root_cause": "metric_217 adds one", "files": ["stats/metrics.py"],
            "regions": [{"path": "./stats/metrics.py", "symbol": "metric_217"}], "steps": ["drop the + 1"]}"#,
    )
    .expect("a plan");
    assert_eq!(
        plan.regions,
        vec![RegionRef { path: "stats/metrics.py".into(), symbol: Some("metric_217".into()), ..RegionRef::default() }]
    );
    let regions = resolve_regions(&plan, &files, "");
    let b = budget(2500);
    let view = edit_prompt(&Fence::new(), &problem("E assert"), &plan, &files, &regions, 200, &b).expect("fits");
    assert!(b.count(&view.prompt) <= b.tokens);
    assert!(view.whole_files.is_empty(), "a large file is never rewritten whole");
    assert_eq!(view.shown.len(), 1);
    let start = content.lines().position(|l| l == "def metric_217(values):").expect("present") + 1;
    assert_eq!(view.shown[0].start_line, start - 15);
    assert!(view.prompt.contains("def metric_217(values):\n"));
    assert!(view.prompt.contains(&format!("lines {}-{} of {}", start - 15, start + 5 + 15, content.lines().count())));
    assert!(!view.prompt.contains("def metric_100(values):"));
}

#[test]
fn a_region_too_large_for_the_context_is_named_in_the_error() {
    let content = big_module(400);
    let files = BTreeMap::from([("stats/metrics.py".to_owned(), content)]);
    let plan = Plan {
        root_cause: "x".into(),
        regions: vec![RegionRef {
            path: "stats/metrics.py".into(),
            start_line: Some(10),
            end_line: Some(2500),
            ..RegionRef::default()
        }],
        ..Plan::default()
    };
    let regions = resolve_regions(&plan, &files, "");
    let err =
        edit_prompt(&Fence::new(), &problem("E"), &plan, &files, &regions, 200, &budget(2500)).expect_err("too large");
    let FixError::TooLarge { what, tokens, budget, .. } = &err else { panic!("{err}") };
    assert_eq!(what, "stats/metrics.py lines 10-2500 (lines 10-2500)");
    assert!(tokens > budget);
    assert!(err.to_string().contains("stats/metrics.py lines 10-2500"), "{err}");
}
