//! Generated histories with planted bugs, for `prfix eval`: each bug introduced by one commit and
//! fixed by a later one whose message says so, with clean commits and decoys around them.

#![allow(dead_code)]

use prfix_tests::git::Repo;

/// 2025-01-01T00:00:00Z.
pub const WINDOW_START: i64 = 1_735_689_600;

/// Commits at chosen times (author and committer), one hour apart from `start`.
pub struct Clock {
    next: i64,
}

impl Clock {
    /// The first commit at `start` (seconds since the epoch).
    pub fn starting(start: i64) -> Self {
        Self { next: start }
    }

    /// Stages everything and commits with `message` at the next hour; returns the sha.
    pub fn commit(&mut self, repo: &Repo, message: &str) -> String {
        let date = format!("@{} +0000", self.next);
        self.next += 3600;
        repo.git(&["add", "-A"]);
        let output = std::process::Command::new("git")
            .args(["commit", "-q", "--allow-empty", "-m", message])
            .current_dir(repo.path())
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .expect("git commit runs");
        assert!(output.status.success(), "commit {message}: {}", String::from_utf8_lossy(&output.stderr));
        repo.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }
}

/// The line of each planted module that holds the bug.
pub const BUG_LINE: u32 = 3;
/// A line of each planted module far from the bug (more than the default distance of 3).
pub const FAR_LINE: u32 = 18;

/// `src/mod_NN.py`: 20 lines, the bug (`x - N`) on line 3.
pub fn module(i: usize) -> String {
    let mut text = format!("def f_{i}(x):\n    \"\"\"Return x plus {i}.\"\"\"\n    return x - {i}\n\n\n");
    for k in 0..5 {
        text.push_str(&format!("def g_{i}_{k}(y):\n    return y * {k}\n\n"));
    }
    assert_eq!(text.lines().count(), 20);
    text
}

/// The path of planted module `i`.
pub fn module_path(i: usize) -> String {
    format!("src/mod_{i:02}.py")
}

/// `src/helper_J.py`: clean code, with a comment, a spaced line and a local to rename.
pub fn helper(j: usize) -> String {
    format!(
        "# Helpers, part {j}.\n\n\ndef helper_{j}(y):\n    total = y + {j}\n    return total\n\n\ndef twice_{j}(y):\n    return y*2\n"
    )
}

/// A history of 30 planted bugs (each added with its module by one commit, fixed on line 3 by a
/// later "Fix …" commit) and 20 clean commits, in the window from [`WINDOW_START`]; before it, a
/// legacy bug fixed inside the window (its introducing commit is older than the window); and decoy
/// fix commits that change no line that can hold a bug: a README typo, a comment, whitespace, a
/// rename, a pure addition. Returns the repository and the 30 introducing commits, oldest first.
pub fn planted_history() -> (Repo, Vec<String>) {
    let repo = Repo::init();
    let mut old = Clock::starting(WINDOW_START - 200 * 24 * 3600);
    repo.write("README.md", "# demo\n\nA calculater.\n");
    repo.write("src/legacy.py", "def legacy(x):\n    return round(x, 1)\n");
    old.commit(&repo, "initial import");
    let mut clock = Clock::starting(WINDOW_START + 3600);
    let mut introducing = Vec::new();
    for i in 0..30 {
        repo.write(&module_path(i), &module(i));
        introducing.push(clock.commit(&repo, &format!("Add module {i}")));
        if i < 20 {
            repo.write(&format!("src/helper_{i}.py"), &helper(i));
            clock.commit(&repo, &format!("Add helper {i}"));
        }
    }
    for i in 0..30 {
        repo.write(&module_path(i), &module(i).replace(&format!("return x - {i}\n"), &format!("return x + {i}\n")));
        clock.commit(&repo, &format!("Fix wrong sign in f_{i}"));
        match i {
            3 => {
                repo.write("README.md", "# demo\n\nA calculator.\n");
                clock.commit(&repo, "Fix typo in the README");
            }
            6 => {
                repo.write("src/helper_0.py", &helper(0).replace("# Helpers, part 0.", "# Helper functions, part 0."));
                clock.commit(&repo, "fix comment wording in helper 0");
            }
            9 => {
                repo.write("src/helper_1.py", &helper(1).replace("return y*2", "return y * 2"));
                clock.commit(&repo, "fix spacing in helper 1");
            }
            12 => {
                repo.write("src/helper_2.py", &helper(2).replace("total", "result"));
                clock.commit(&repo, "fix naming: total is a result");
            }
            15 => {
                repo.write("src/helper_3.py", &format!("{}\n\ndef check_3(y):\n    return y > 0\n", helper(3)));
                clock.commit(&repo, "fix missing check in helper 3");
            }
            18 => {
                repo.write("src/legacy.py", "def legacy(x):\n    return round(x, 2)\n");
                clock.commit(&repo, "fix legacy rounding");
            }
            _ => {}
        }
    }
    // A change that is not a fix: its lines are never blamed.
    repo.write("src/helper_4.py", &helper(4).replace("y + 4", "y + 40"));
    clock.commit(&repo, "Tune helper 4");
    (repo, introducing)
}

/// The review answer for a planted module: a finding on `line`, or none.
pub fn findings_on(i: usize, line: Option<u32>) -> String {
    match line {
        Some(line) => format!(
            r#"{{"findings": [{{"path": "{}", "line": {line}, "severity": "major", "category": "bug", "title": "Wrong sign", "body": "f_{i} subtracts where it should add."}}]}}"#,
            module_path(i)
        ),
        None => r#"{"findings": []}"#.to_owned(),
    }
}

/// Which planted module a review request is about (the first `src/mod_NN.py` its prompt names).
pub fn module_of(body: &str) -> Option<usize> {
    let at = body.find("src/mod_")?;
    body.get(at + 8..at + 10)?.parse().ok()
}
