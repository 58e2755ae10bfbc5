//! `prfix eval review` on a generated history with 30 planted bugs: the miner finds exactly the
//! commits that introduced them, the scripted model's catches and misses are scored exactly, and an
//! interrupted run resumes from its cache without asking the model again.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use prfix_cli::eval::mine::{self, MineOptions};
use prfix_tests::{Reply, TestApp, spawn_app};
use support::history::{self, BUG_LINE, FAR_LINE};
use support::{User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";

/// The scripted reviewer: the planted line of modules 0-17, a far line of 18-23, nothing on 24-29.
fn planted_answer(i: usize) -> Reply {
    let line = match i {
        0..18 => Some(BUG_LINE),
        18..24 => Some(FAR_LINE),
        _ => None,
    };
    Reply::chat(&history::findings_on(i, line))
}

fn script_reviewer(app: &TestApp, answered: impl Fn(usize) -> bool + Send + Sync + 'static) {
    app.ollama.respond_with("/api/chat", move |body| {
        let i = history::module_of(body)?;
        answered(i).then(|| planted_answer(i))
    });
}

/// The 95% Wilson interval, computed here from the formula for the test's own check.
fn wilson(k: f64, n: f64) -> (f64, f64) {
    let z: f64 = 1.959_963_984_540_054;
    let p = k / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    (c - h, c + h)
}

async fn tasks_of_run(app: &TestApp, run_id: &str) -> i64 {
    let db = app.db.connect().await;
    db.query_one("SELECT count(*) FROM agent.tasks WHERE eval_run_id = $1", &[&run_id]).await.expect("count").get(0)
}

#[test]
fn the_miner_finds_exactly_the_30_planted_bug_introducing_commits() {
    let (repo, planted) = history::planted_history();
    let checkout = prfix_cli::git::Checkout::discover(repo.path()).expect("a checkout");
    let options = MineOptions {
        since: Some("2025-01-01".to_owned()),
        fix_patterns: prfix_cli::config::EvalConfig::default().fix_patterns,
        max: None,
    };
    let mined = mine::mine(&checkout, &options).expect("mined");
    let found: Vec<&str> = mined.introducing.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(found, planted.iter().map(String::as_str).collect::<Vec<_>>(), "oldest first, nothing else");
    for (i, commit) in mined.introducing.iter().enumerate() {
        let lines: BTreeSet<u32> = [BUG_LINE].into_iter().collect();
        assert_eq!(commit.lines, [(history::module_path(i), lines)].into(), "{}", commit.subject);
        assert_eq!(commit.fixed_by.len(), 1);
    }
    // 30 fixes, 5 decoys and the legacy fix match the patterns; the decoys change no line that can
    // hold a bug; the legacy bug was introduced before the window.
    assert_eq!(mined.candidates, 36);
    assert_eq!(mined.fixes.len(), 31);
    assert_eq!(mined.fixes_without_lines, 5);
    assert_eq!((mined.left_out.whitespace, mined.left_out.comment, mined.left_out.refactoring), (1, 1, 2));
    assert_eq!(mined.older_than_window, 1);

    // Without the window the legacy commit is blamed too; --max keeps the newest.
    let all = mine::mine(&checkout, &MineOptions { since: None, ..options.clone() }).expect("mined");
    assert_eq!(all.introducing.len(), 31);
    assert_eq!(all.introducing[0].subject, "initial import");
    let newest = mine::mine(&checkout, &MineOptions { max: Some(10), ..options }).expect("mined");
    assert_eq!(newest.introducing.len(), 10);
    assert_eq!(newest.over_max, 20);
    assert_eq!(newest.introducing[0].sha, planted[20]);
}

#[tokio::test]
async fn eval_review_reports_the_recall_interval_and_noise_of_a_scripted_model_exactly() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    script_reviewer(&app, |_| true);
    let (repo, planted) = history::planted_history();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let args = ["eval", "review", "--since", "2025-01-01", "--model", MODEL];

    let run = user.run(repo.path(), &[&args[..], &["--format", "json"]].concat()).await;
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let key: Vec<&str> =
        report["introducing"].as_array().expect("the key").iter().filter_map(|c| c["sha"].as_str()).collect();
    assert_eq!(key, planted.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(report["mined"]["introducing_commits"], 30);
    assert_eq!(report["mined"]["fix_commits"], 31);
    assert_eq!(report["complete"], true);
    let row = &report["results"][0];
    assert_eq!((row["model"].as_str(), row["variant"].as_str()), (Some(MODEL), Some("default")));
    assert_eq!((row["successes"].as_u64(), row["cases"].as_u64()), (Some(18), Some(30)));
    assert_eq!(row["rate"].as_f64(), Some(0.6));
    let (low, high) = wilson(18.0, 30.0);
    let interval = row["interval"].as_array().expect("an interval");
    assert!((interval[0].as_f64().expect("low") - low).abs() < 1e-9, "{interval:?} vs {low}");
    assert!((interval[1].as_f64().expect("high") - high).abs() < 1e-9, "{interval:?} vs {high}");
    assert!((low - 0.4232).abs() < 1e-4 && (high - 0.7541).abs() < 1e-4);
    assert_eq!((row["findings"].as_u64(), row["noisy"].as_u64()), (Some(24), Some(6)));
    assert_eq!(row["noise_share"].as_f64(), Some(0.25));
    assert_eq!(row["findings_per_review"].as_f64(), Some(0.8));
    assert_eq!((row["failed"].as_u64(), row["failure_rate"].as_f64()), (Some(0), Some(0.0)));
    let calls = app.ollama.chat_requests().len();
    assert_eq!(calls, 30, "one model call per introducing commit");
    assert_eq!(row["model_calls"].as_u64(), Some(30));
    assert_eq!(row["prompt_tokens"].as_u64(), Some(30 * 321), "the fake counts 321 prompt tokens a call");
    assert!(row["output_tokens"].as_u64().is_some_and(|t| t > 0), "{row}");
    assert!(app.ollama.violations().is_empty(), "{:?}", app.ollama.violations());

    // Every review is a task of the run, for the audit log.
    let run_id = report["run_id"].as_str().expect("a run id");
    assert_eq!(tasks_of_run(&app, run_id).await, 30);
    let listed = user.run(repo.path(), &["tasks", "list", "--limit", "100", "--eval-run", run_id]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.stdout.lines().filter(|l| l.contains("review")).count(), 30, "{}", listed.stdout);
    let other = user.run(repo.path(), &["tasks", "list", "--eval-run", "another-run"]).await;
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(other.stdout.lines().filter(|l| l.contains("review")).count(), 0, "{}", other.stdout);

    // The same run again, as a table and as Markdown: from the cache, no model call.
    let run = user.run(repo.path(), &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(run_id), "{}", run.stdout);
    let row = run.stdout.lines().find(|l| l.starts_with(MODEL)).expect("the model's row");
    for cell in ["default", "18/30", "0.600", "0.423-0.754", "0.80", "0.250 (6/24)", "0/30 (0.000)"] {
        assert!(row.contains(cell), "`{cell}` missing from {row}");
    }
    let run = user.run(repo.path(), &[&args[..], &["--format", "markdown"]].concat()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with(&format!("# prfix eval review: {run_id}")), "{}", run.stdout);
    assert!(run.stdout.contains("| 18/30 | 0.600 | 0.423-0.754 |"), "{}", run.stdout);
    assert!(run.stdout.contains("## Answer key"), "{}", run.stdout);
    assert_eq!(app.ollama.chat_requests().len(), calls, "the cache answered");

    // A wider distance turns the far findings into hits, from the same cached reviews.
    let run = user.run(repo.path(), &[&args[..], &["--distance", "15", "--format", "json"]].concat()).await;
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["results"][0]["successes"], 24);
    assert_eq!(report["results"][0]["noisy"], 0);
    assert_eq!(app.ollama.chat_requests().len(), calls);
}

#[tokio::test]
async fn an_interrupted_eval_resumes_from_its_cache_without_asking_the_model_again() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    // Modules 0-4 are answered; the review of module 5 hangs until the run is interrupted.
    script_reviewer(&app, |i| i < 5);
    app.ollama.set_default("/api/chat", Reply::chat_hanging(&[]));
    let (repo, _) = history::planted_history();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let args = ["eval", "review", "--since", "2025-01-01", "--model", MODEL, "--format", "json"];

    let child = user.spawn(repo.path(), &args);
    for _ in 0..1200 {
        if app.ollama.chat_requests().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let first: Vec<Option<usize>> =
        app.ollama.requests().iter().filter(|r| r.path == "/api/chat").map(|r| history::module_of(&r.body)).collect();
    assert_eq!(first, (0..6).map(Some).collect::<Vec<_>>(), "modules 0-4 answered, 5 waiting");
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("prfix stops on Ctrl-C")
        .expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("is cancelled"), "the waiting review is cancelled on the server: {stderr}");

    // The same command again: the model is asked about modules 5-29 only.
    script_reviewer(&app, |_| true);
    let run = user.run(repo.path(), &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let again: Vec<Option<usize>> = app
        .ollama
        .requests()
        .iter()
        .filter(|r| r.path == "/api/chat")
        .skip(6)
        .map(|r| history::module_of(&r.body))
        .collect();
    assert_eq!(again, (5..30).map(Some).collect::<Vec<_>>(), "finished commits come from the cache");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let row = &report["results"][0];
    assert_eq!(
        (row["successes"].as_u64(), row["cases"].as_u64(), row["noisy"].as_u64()),
        (Some(18), Some(30), Some(6))
    );
    // Both runs are one run: the interrupted review's task and all the others carry its id.
    let run_id = report["run_id"].as_str().expect("a run id");
    assert!(stderr.contains(run_id), "{stderr}");
    assert_eq!(tasks_of_run(&app, run_id).await, 31);
}

#[tokio::test]
async fn a_time_limit_stops_starting_reviews_and_the_next_run_finishes_them() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    script_reviewer(&app, |_| true);
    let (repo, _) = history::planted_history();
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let args = ["eval", "review", "--since", "2025-01-01", "--model", MODEL, "--format", "json", "--max", "4"];
    let run = user.run(repo.path(), &[&args[..], &["--time-limit", "0s"]].concat()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["complete"], false);
    assert_eq!((report["results"][0]["pending"].as_u64(), report["results"][0]["cases"].as_u64()), (Some(4), Some(0)));
    assert!(app.ollama.chat_requests().is_empty());
    let run = user.run(repo.path(), &args).await;
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["complete"], true);
    // The newest four modules (26-29) are all misses of the scripted model.
    assert_eq!(
        (report["results"][0]["successes"].as_u64(), report["results"][0]["cases"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(app.ollama.chat_requests().len(), 4);
}
