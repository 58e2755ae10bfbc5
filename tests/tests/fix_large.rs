//! A fix where the failing test and the code to fix are each in a file of more than 3,000 lines,
//! against a model with a context of 8,192 tokens: the planner gets a map of the change, the
//! coder only the region the plan names, the fix applies with `git apply`, and no request the
//! fake Ollama recorded asked for more than the context.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app};

const MODEL: &str = "qwen2.5-coder:14b";
const CONTEXT: u64 = 8_192;
/// The function the change broke.
const BROKEN: usize = 217;

/// The weight of metric `i`.
fn weight(i: usize) -> usize {
    (i * 7) % 13 + 2
}

/// `calc/metrics.py`: 400 weighted means of about ten lines each.
fn metrics_module() -> String {
    let mut out = String::from("\"\"\"Weighted means used by the reports.\"\"\"\n\nimport math\n\n\n");
    for i in 0..400 {
        out.push_str(&format!(
            "def metric_{i}(values):\n    \"\"\"Weighted mean number {i} of `values` (weight {w}).\"\"\"\n    if not values:\n        return 0.0\n    total = 0\n    for v in values:\n        total += v * {w}\n    return total / len(values)\n\n\n",
            w = weight(i)
        ));
    }
    out
}

/// `tests/test_metrics.py`: a test of each metric.
fn metrics_tests() -> String {
    let mut out = String::from("import pytest\n\nfrom calc import metrics\n\n\n");
    for i in 0..400 {
        out.push_str(&format!(
            "def test_metric_{i}_is_the_weighted_mean():\n    values = [1, 2, 3, 4]\n    expected = sum(v * {w} for v in values) / len(values)\n    assert metrics.metric_{i}(values) == pytest.approx(expected)\n    assert metrics.metric_{i}([]) == 0.0\n    assert metrics.metric_{i}([5]) == {five}\n\n\n",
            w = weight(i),
            five = 5 * weight(i)
        ));
    }
    out
}

/// What pytest printed: every passing test, then the failure's traceback.
fn check_output() -> String {
    let mut out = String::from(
        "============================= test session starts ==============================\ncollected 400 items\n\n",
    );
    for i in 0..400 {
        let status = if i == BROKEN { "FAILED" } else { "PASSED" };
        out.push_str(&format!("tests/test_metrics.py::test_metric_{i}_is_the_weighted_mean {status}\n"));
    }
    out.push_str(&format!(
        "\n=================================== FAILURES ===================================\n\
         _____________________ test_metric_{BROKEN}_is_the_weighted_mean _____________________\n\n\
         \x20   def test_metric_{BROKEN}_is_the_weighted_mean():\n\
         \x20       values = [1, 2, 3, 4]\n\
         \x20       expected = sum(v * {w} for v in values) / len(values)\n\
         >       assert metrics.metric_{BROKEN}(values) == pytest.approx(expected)\n\
         E       assert 40.0 == 30.0 ± 3.0e-05\n\n\
         tests/test_metrics.py:{line}: AssertionError\n\
         =========================== short test summary info ============================\n\
         FAILED tests/test_metrics.py::test_metric_{BROKEN}_is_the_weighted_mean - assert 40.0 == 30.0\n\
         ========================= 1 failed, 399 passed in 0.41s =========================\n",
        w = weight(BROKEN),
        line = 5 + BROKEN * 8 + 4
    ));
    out
}

#[tokio::test]
async fn a_fix_in_files_of_three_thousand_lines_fits_a_context_of_8192_tokens_and_applies() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_context_length(CONTEXT as u32);
    // The fake counts each prompt as the agent estimates it, so the learned ratio stays 1.
    app.ollama.set_prompt_token_ratio(1.0);
    let repo = Repo::init();
    let module = metrics_module();
    let tests = metrics_tests();
    assert!(module.lines().count() > 3_000 && tests.lines().count() > 3_000);
    repo.write("calc/__init__.py", "");
    repo.write("calc/metrics.py", &module);
    repo.write("tests/test_metrics.py", &tests);
    repo.commit("metrics and their tests");
    let w = weight(BROKEN);
    let good = format!("        total += v * {w}\n    return total / len(values)\n\n\ndef metric_{}(", BROKEN + 1);
    let bad = good.replace("total / len(values)", "total / (len(values) - 1)");
    repo.write("calc/metrics.py", &module.replacen(&good, &bad, 1));
    repo.commit("use the sample size");
    let mut change_set = repo.change_set("HEAD~1");
    // As `prfix fix` sends it: the test module the check output names, as context.
    change_set.context_files.push(pb::ContextFile { path: "tests/test_metrics.py".into(), content: tests.clone() });

    let plan = serde_json::json!({
        "root_cause": format!("metric_{BROKEN} divides by len(values) - 1 instead of len(values)"),
        "files": ["calc/metrics.py"],
        "regions": [{"path": "calc/metrics.py", "symbol": format!("metric_{BROKEN}")}],
        "steps": ["divide by len(values)"]
    })
    .to_string();
    let edit = format!(
        "Divide by the number of values.\n\ncalc/metrics.py\n<<<<<<< SEARCH\n    for v in values:\n        total += v * {w}\n    return total / (len(values) - 1)\n=======\n    for v in values:\n        total += v * {w}\n    return total / len(values)\n>>>>>>> REPLACE\n"
    );
    app.ollama.respond_with("/api/chat", move |body| {
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        let structured = request.get("format").is_some_and(|f| !f.is_null());
        Some(Reply::chat(if structured { &plan } else { &edit }))
    });

    let mut client = app.agent_client();
    let created = client
        .create_fix(pb::CreateFixRequest {
            change_set: Some(change_set),
            problem: Some(pb::FixProblem {
                check_command: "pytest -q".into(),
                check_output: check_output(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .expect("fix created")
        .into_inner()
        .task
        .expect("task");
    let task = prfix_tests::tasks::wait_for_end(&mut client, &created.task_id, Duration::from_secs(30)).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    let Some(pb::task_result::Result::Fix(result)) = task.result.and_then(|r| r.result) else {
        panic!("no fix result")
    };
    assert!(result.patch.contains("+    return total / len(values)"), "{}", result.patch);
    assert!(result.patch.contains("-    return total / (len(values) - 1)"), "{}", result.patch);
    repo.apply(&result.patch).unwrap_or_else(|e| panic!("git apply refused the patch: {e}\n{}", result.patch));
    assert_eq!(repo.read("calc/metrics.py"), module, "the fix restores the function");

    let requests = app.ollama.chat_requests();
    assert_eq!(requests.len(), 2, "a plan and one edit");
    for (i, request) in requests.iter().enumerate() {
        let prompt = app.ollama.counted_prompt_tokens(request);
        let answer = request["options"]["num_predict"].as_u64().expect("num_predict is set");
        assert!(prompt as u64 + answer <= CONTEXT, "request {i}: prompt {prompt} + answer {answer} > {CONTEXT}");
        assert!(request["options"]["num_ctx"].as_u64().is_some_and(|n| n <= CONTEXT), "request {i}: num_ctx");
    }
    let user = |i: usize| requests[i]["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
    let (plan_prompt, edit_prompt) = (user(0), user(1));
    assert!(plan_prompt.contains("outline of calc/metrics.py"), "the planner gets outlines");
    assert!(plan_prompt.contains(&format!("function metric_{BROKEN} (lines")), "with the changed function");
    assert!(plan_prompt.contains("E       assert 40.0 == 30.0"), "and the end of the check output");
    assert!(!plan_prompt.contains("def metric_3(values):"), "not the whole module");
    assert!(edit_prompt.contains(&format!("def metric_{BROKEN}(values):")), "the coder gets the region");
    assert!(!edit_prompt.contains("def metric_3(values):"), "and not the whole module");
}
