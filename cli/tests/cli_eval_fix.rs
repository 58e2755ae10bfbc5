//! `prfix eval fix` on 10 planted fix commits with tests: each replayed from its parent in a
//! temporary worktree with the new test as the failing check; the scripted model fixes 7, writes a
//! wrong fix for 2 and edits the test of 1, which never counts as a fix.

mod support;

use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app};
use support::history::{Clock, WINDOW_START};
use support::{User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";

fn module(i: usize) -> String {
    format!("def value_{i}():\n    return {i} - 1\n")
}

fn test_of(i: usize) -> String {
    format!(
        "import unittest\n\nfrom mod_{i} import value_{i}\n\n\nclass ValueTest(unittest.TestCase):\n    def test_value(self):\n        self.assertEqual(value_{i}(), {})\n",
        i + 1
    )
}

/// Ten modules whose value is off by two, each fixed by a commit that adds its test; and one fix
/// commit whose new test already passes before the fix (it is no failing check).
fn history_with_tested_fixes() -> Repo {
    let repo = Repo::init();
    let mut clock = Clock::starting(WINDOW_START + 3600);
    repo.write(".gitignore", "__pycache__/\n");
    repo.write("extra.py", "def one():\n    return 1\n");
    clock.commit(&repo, "initial");
    for i in 0..10 {
        repo.write(&format!("mod_{i}.py"), &module(i));
        clock.commit(&repo, &format!("Add value {i}"));
    }
    for i in 0..10 {
        repo.write(&format!("mod_{i}.py"), &module(i).replace(" - 1", " + 1"));
        repo.write(&format!("test_mod_{i}.py"), &test_of(i));
        clock.commit(&repo, &format!("Fix value_{i} (off by two) and test it"));
    }
    repo.write("extra.py", "def one():\n    return 2 - 1\n");
    repo.write(
        "test_extra.py",
        "import unittest\n\nfrom extra import one\n\n\nclass OneTest(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(one(), 1)\n",
    );
    clock.commit(&repo, "fix: spell out one, with a test");
    repo
}

/// Which module a fix request is about.
fn module_of(body: &str) -> Option<usize> {
    (0..10).find(|i| body.contains(&format!("value_{i}(")))
}

fn edit(path: &str, search: &str, replace: &str) -> String {
    format!("{path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n")
}

#[tokio::test]
async fn eval_fix_counts_seven_of_ten_and_an_edited_test_is_never_a_fix() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.respond_with("/api/chat", |body| {
        let i = module_of(body)?;
        let request: serde_json::Value = serde_json::from_str(body).ok()?;
        if request.get("format").is_some() {
            let plan = format!(
                r#"{{"root_cause": "value_{i} is off by two", "files": ["mod_{i}.py", "test_mod_{i}.py"], "steps": ["add instead of subtract"]}}"#
            );
            return Some(Reply::chat(&plan));
        }
        let answer = match i {
            0..7 => edit(&format!("mod_{i}.py"), &format!("    return {i} - 1"), &format!("    return {i} + 1")),
            7 | 8 => edit(&format!("mod_{i}.py"), &format!("    return {i} - 1"), &format!("    return {i} * 1")),
            _ => edit(
                &format!("test_mod_{i}.py"),
                &format!("        self.assertEqual(value_{i}(), {})", i + 1),
                &format!("        self.assertEqual(value_{i}(), {})", i - 1),
            ),
        };
        Some(Reply::chat(&answer))
    });
    let repo = history_with_tested_fixes();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let args = [
        "eval",
        "fix",
        "--model",
        MODEL,
        "--check",
        "python3 -m unittest -q {tests}",
        "--max-rounds",
        "1",
        "--format",
        "json",
    ];
    let run = user.run(repo.path(), &args).await;
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["fix_commits_with_tests"], 11);
    let row = &report["results"][0];
    assert_eq!((row["successes"].as_u64(), row["cases"].as_u64()), (Some(7), Some(10)), "{row}");
    assert_eq!(row["rate"].as_f64(), Some(0.7));
    assert_eq!((row["still_failing"].as_u64(), row["edited_test"].as_u64()), (Some(2), Some(1)), "{row}");
    assert_eq!((row["passed_before"].as_u64(), row["failed"].as_u64()), (Some(1), Some(0)), "{row}");
    assert_eq!(row["model_calls"].as_u64(), Some(20), "a plan and an edit per case: {row}");
    assert!(app.ollama.violations().is_empty(), "{:?}", app.ollama.violations());

    // The user's checkout is as it was: same commit, nothing changed, no worktree left behind.
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.git(&["worktree", "list", "--porcelain"]).matches("worktree ").count(), 1);
    assert_eq!(repo.read("test_mod_9.py"), test_of(9), "the test is the fix commit's");

    // Each fix was a task of the run.
    let run_id = report["run_id"].as_str().expect("a run id");
    let db = app.db.connect().await;
    let tasks: i64 = db
        .query_one("SELECT count(*) FROM agent.tasks WHERE eval_run_id = $1 AND kind = 3", &[&run_id])
        .await
        .expect("count")
        .get(0);
    assert_eq!(tasks, 10);

    // Again, as a table, from the cache.
    let calls = app.ollama.chat_requests().len();
    let run = user.run(repo.path(), &args[..args.len() - 2]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let row = run.stdout.lines().find(|l| l.starts_with(MODEL)).expect("the model's row");
    assert!(row.contains("7/10") && row.contains("0.700"), "{row}");
    assert_eq!(app.ollama.chat_requests().len(), calls);
}
