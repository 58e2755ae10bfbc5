//! `prfix fix` on a real Python project whose tests fail.

mod support;

use prfix_tests::git::Repo;
use prfix_tests::{Reply, spawn_app};
use support::{User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";
const TESTS: &str = "import unittest\n\nfrom calc import add, mul\n\n\nclass CalcTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";

const PLAN: &str = r#"{"root_cause": "add and mul are wrong", "files": ["calc.py"], "steps": ["fix add", "fix mul"]}"#;

/// `main` with a working calculator and its tests, and a branch `feature` whose last commit breaks
/// `add` and `mul`; the broken content is returned too.
fn broken_calculator() -> (Repo, String) {
    let repo = Repo::init();
    repo.write(".gitignore", "__pycache__/\n");
    repo.write("calc.py", CALC);
    repo.write("test_calc.py", TESTS);
    repo.commit("calculator");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let broken = CALC.replace("return a + b", "return a - b").replace("return a * b", "return a ** b");
    repo.write("calc.py", &broken);
    repo.commit("refactor");
    (repo, broken)
}

#[tokio::test]
async fn fix_makes_the_tests_pass_in_two_rounds_and_leaves_history_alone() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (repo, _) = broken_calculator();
    let commits_before = repo.git(&["rev-list", "--count", "HEAD"]);
    // Round 1 fixes only `add`; round 2 fixes `mul`.
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    app.ollama.push(
        "/api/chat",
        Reply::chat("calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n"),
    );
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    app.ollama.push(
        "/api/chat",
        Reply::chat("calc.py\n<<<<<<< SEARCH\n    return a ** b\n=======\n    return a * b\n>>>>>>> REPLACE\n"),
    );
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let run = user.run(repo.path(), &["fix", "--check", "python3 -m unittest -q test_calc"]).await;
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("passes after 2 rounds"), "{}", run.stdout);
    assert!(run.stderr.contains("round 1: the check still fails"), "{}", run.stderr);
    assert_eq!(repo.read("calc.py"), CALC);
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]), commits_before, "no commit without --commit");
    assert_eq!(repo.git(&["status", "--porcelain"]).trim(), "M calc.py");
    // The second request carried the remaining failure, not the first one.
    let second_plan = &app.ollama.chat_requests()[2];
    let prompt = second_plan["messages"][1]["content"].as_str().expect("prompt");
    assert!(prompt.contains("test_mul") && !prompt.contains("FAIL: test_add"), "{prompt}");
}

#[tokio::test]
async fn fix_refuses_a_dirty_tree_and_says_when_the_check_already_passes() {
    let app = spawn_app().await;
    let repo = Repo::init();
    repo.write(".gitignore", "__pycache__/\n");
    repo.write("calc.py", CALC);
    repo.write("test_calc.py", TESTS);
    repo.commit("calculator");
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let run = user.run(repo.path(), &["fix", "--check", "python3 -m unittest -q test_calc"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("already passes"), "{}", run.stdout);
    repo.write("calc.py", "broken(\n");
    let run = user.run(repo.path(), &["fix", "--check", "python3 -m unittest -q test_calc"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("uncommitted changes") && run.stderr.contains("--allow-dirty"), "{}", run.stderr);
    assert!(app.ollama.chat_requests().is_empty());
}

#[tokio::test]
async fn an_interrupted_fix_puts_the_working_tree_back_as_it_was() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let (repo, broken) = broken_calculator();
    // Round 1 applies a partial fix; round 2's model never answers.
    app.ollama.push("/api/chat", Reply::chat(PLAN));
    app.ollama.push(
        "/api/chat",
        Reply::chat("calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n"),
    );
    app.ollama.set_default("/api/chat", Reply::chat_hanging(&[]));
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let child = user.spawn(repo.path(), &["fix", "--check", "python3 -m unittest -q test_calc"]);
    for _ in 0..400 {
        if app.ollama.chat_requests().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(app.ollama.chat_requests().len(), 3, "round 2 is waiting for the model");
    assert_ne!(repo.read("calc.py"), broken, "round 1's patch is in the tree");
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let output = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("prfix stops on Ctrl-C")
        .expect("output");
    assert_eq!(output.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the working tree is as it was"), "{stderr}");
    assert_eq!(repo.read("calc.py"), broken);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}
