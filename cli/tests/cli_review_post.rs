//! `prfix review --post` in simulated CI jobs (GitHub Actions, GitLab CI, Gitea Actions) against the
//! services with the fake Ollama, posting to fake forges that check every request against the
//! forge's own contract (GitHub's OpenAPI description; GitLab's and Gitea's documented shapes).

mod support;

use prfix_tests::fake_forge::{Answer, DiffLines, FakeGitHub, FakeGitLab, FakeGitea};
use prfix_tests::git::Repo;
use prfix_tests::{Reply, TestApp, spawn_app};
use support::{User, gateway_url};

const MODEL: &str = "qwen2.5-coder:14b";
const FORGE_TOKEN: &str = "ghs_job_token";

/// `main` with a working module, and a branch `feature` that adds an SQL injection.
fn repo_with_a_bug() -> Repo {
    let repo = Repo::init();
    repo.write(
        "app/db.py",
        "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n",
    );
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "app/db.py",
        "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n",
    );
    repo.commit("find users by name");
    repo
}

/// A critical finding on a range of added lines, and a minor one placed off the diff by the model.
const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))"},
  {"path": "app/db.py", "line": 40, "severity": "minor", "category": "style", "title": "Missing docstring", "body": "find_user has no docstring."}
]}"#;

/// The app with the model answering [`FINDINGS`], the repository, its base and head, and the diff
/// the forge shows for the pull request.
async fn setup() -> (TestApp, Repo, String, String, String) {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS));
    let repo = repo_with_a_bug();
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let base = repo.git(&["rev-parse", "main"]).trim().to_owned();
    let diff = repo.git(&["diff", "--no-color", &format!("{base}...{head}")]);
    (app, repo, base, head, diff)
}

/// A user in a CI job: the pull request event (GitHub-style) written into the home, `vars` set.
fn ci_user(app: &TestApp, head: &str, base: &str, vars: &[(&str, String)]) -> User {
    let mut user = User::new(&gateway_url(app), Some(&prfix_tests::auth::operator_token()));
    let event = user.home.path().join("event.json");
    let payload = serde_json::json!({
        "action": "synchronize",
        "number": 7,
        "pull_request": {"number": 7, "head": {"sha": head, "ref": "feature"}, "base": {"sha": base, "ref": "main"}},
    });
    std::fs::write(&event, payload.to_string()).expect("write the event");
    user.env.push(("GITHUB_EVENT_PATH".to_owned(), event.display().to_string()));
    user.env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    user
}

#[tokio::test]
async fn review_post_in_github_actions_posts_a_review_on_diff_lines_one_summary_and_a_check_run() {
    let (app, repo, base, head, diff) = setup().await;
    let github = FakeGitHub::start_github(FORGE_TOKEN).await;
    github.add_pull("octo/app", 7, &head, &diff);
    let user = ci_user(
        &app,
        &head,
        &base,
        &[
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_EVENT_NAME", "pull_request".to_owned()),
            ("GITHUB_REPOSITORY", "octo/app".to_owned()),
            ("GITHUB_API_URL", github.api_url()),
            ("GITHUB_TOKEN", FORGE_TOKEN.to_owned()),
        ],
    );

    let first = user.run(repo.path(), &["review", "--post", "--format", "json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains("posted the summary comment on #7"), "{}", first.stderr);
    assert!(first.stderr.contains("posted a review with 2 comment(s) on lines"), "{}", first.stderr);
    assert!(first.stderr.contains("created the check run `prfix review`"), "{}", first.stderr);
    // The same head again, failing on critical findings: the summary is edited, not added.
    let second = user.run(repo.path(), &["review", "--post", "--format", "json", "--fail-on", "critical"]).await;
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(second.stderr.contains("updated the summary comment on #7"), "{}", second.stderr);
    assert!(second.stderr.contains("already has prfix's review"), "{}", second.stderr);

    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");
    let shown = DiffLines::parse(&diff);
    let reviews = github.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1, "one review of the head, however often the job runs");
    for (pull, review) in &reviews {
        assert_eq!(pull, "octo/app#7");
        assert_eq!((review["event"].as_str(), review["commit_id"].as_str()), (Some("COMMENT"), Some(head.as_str())));
        let comments = review["comments"].as_array().cloned().unwrap_or_default();
        assert_eq!(comments.len(), 2, "{review}");
        assert_eq!((comments[0]["start_line"].as_u64(), comments[0]["line"].as_u64()), (Some(6), Some(7)));
        assert!(comments[0]["body"].as_str().is_some_and(|b| b.contains("```suggestion")), "{}", comments[0]);
        let line = comments[1]["line"].as_u64().and_then(|l| u32::try_from(l).ok()).unwrap_or(0);
        assert!(
            shown.new_line("app/db.py", line).is_some(),
            "the finding off the diff is moved onto it: {}",
            comments[1]
        );
    }
    let summaries = github.with(|s| s.comments.clone());
    assert_eq!(summaries.len(), 1, "one summary comment after two runs: {summaries:?}");
    let summary = &summaries[0].2;
    assert!(summary.starts_with(prfix_forge::SUMMARY_MARKER) && summary.contains("SQL injection"), "{summary}");
    assert_eq!(github.calls("issues/update-comment").len(), 1);
    let runs = github.with(|s| s.check_runs.clone());
    let verdicts: Vec<(&str, &str)> =
        runs.iter().map(|r| (r["head_sha"].as_str().unwrap_or(""), r["conclusion"].as_str().unwrap_or(""))).collect();
    assert_eq!(verdicts, [(head.as_str(), "success"), (head.as_str(), "failure")]);
    assert!(runs[0]["details_url"].as_str().is_some_and(|u| u.contains("#issuecomment-")), "{}", runs[0]);
}

#[tokio::test]
async fn review_post_in_gitlab_ci_positions_each_discussion_on_the_merge_requests_diff() {
    let (app, repo, base, head, diff) = setup().await;
    let gitlab = FakeGitLab::start_gitlab(FORGE_TOKEN, ("42", "group/app"), 5, (&base, &base, &head), &diff).await;
    let user = ci_user(
        &app,
        &head,
        &base,
        &[
            ("GITLAB_CI", "true".to_owned()),
            ("CI_API_V4_URL", gitlab.api_url()),
            ("CI_PROJECT_ID", "42".to_owned()),
            ("CI_MERGE_REQUEST_IID", "5".to_owned()),
            ("CI_COMMIT_SHA", head.clone()),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", base.clone()),
            ("CI_JOB_TOKEN", "job-token".to_owned()),
            ("PRFIX_GITLAB_TOKEN", FORGE_TOKEN.to_owned()),
        ],
    );
    for _ in 0..2 {
        let run = user.run(repo.path(), &["review", "--post"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(gitlab.violations(), Vec::<String>::new(), "positions, notes and statuses as GitLab documents them");
    let discussions = gitlab.with(|s| s.discussions.clone());
    assert_eq!(discussions.len(), 2, "two comments, posted once for the head");
    let position = &discussions[0]["position"];
    assert_eq!((position["new_path"].as_str(), position["new_line"].as_u64()), (Some("app/db.py"), Some(7)));
    assert_eq!(
        (position["base_sha"].as_str(), position["head_sha"].as_str()),
        (Some(base.as_str()), Some(head.as_str()))
    );
    assert!(discussions[0]["body"].as_str().is_some_and(|b| b.contains("suggestion:-1+0")), "{}", discussions[0]);
    assert_eq!(gitlab.with(|s| s.notes.len()), 1, "the summary note is edited in place");
    assert_eq!(gitlab.calls("update-note").len(), 1);
    assert_eq!(gitlab.with(|s| s.statuses.len()), 2);
}

#[tokio::test]
async fn review_post_in_gitea_actions_uses_the_gitea_api_with_the_github_variables() {
    let (app, repo, base, head, diff) = setup().await;
    let gitea = FakeGitea::start_gitea(FORGE_TOKEN, "octo/app", 7, &head, &diff).await;
    let user = ci_user(
        &app,
        &head,
        &base,
        &[
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITEA_ACTIONS", "true".to_owned()),
            ("GITHUB_REPOSITORY", "octo/app".to_owned()),
            ("GITHUB_API_URL", gitea.api_url()),
            ("GITHUB_TOKEN", "not-used".to_owned()),
            ("GITEA_TOKEN", FORGE_TOKEN.to_owned()),
        ],
    );
    for _ in 0..2 {
        let run = user.run(repo.path(), &["review", "--post"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("set the commit status `prfix review`"), "{}", run.stderr);
    }
    assert_eq!(gitea.violations(), Vec::<String>::new());
    let reviews = gitea.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1);
    let lines: Vec<u64> =
        reviews[0]["comments"].as_array().into_iter().flatten().filter_map(|c| c["new_position"].as_u64()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], 7, "a range sits on its last line");
    assert_eq!(gitea.with(|s| s.comments.len()), 1, "one summary comment, edited");
    assert_eq!(gitea.with(|s| s.statuses.len()), 2);
}

#[tokio::test]
async fn review_post_outside_ci_fails_before_any_work_naming_the_variables() {
    let (app, repo, _base, _head, _diff) = setup().await;
    let user = User::new(&gateway_url(&app), Some(&prfix_tests::auth::operator_token()));
    let run = user.run(repo.path(), &["review", "--post"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("GITHUB_ACTIONS") && run.stderr.contains("GITLAB_CI"), "{}", run.stderr);
    assert!(app.ollama.chat_requests().is_empty(), "nothing was reviewed");
    // In GitHub Actions without the token, the missing variable is named.
    let user =
        ci_user(&app, "h", "b", &[("GITHUB_ACTIONS", "true".to_owned()), ("GITHUB_REPOSITORY", "o/r".to_owned())]);
    let run = user.run(repo.path(), &["review", "--post"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("GITHUB_TOKEN is not set"), "{}", run.stderr);
}

#[tokio::test]
async fn review_post_waits_out_a_secondary_rate_limit_and_names_the_limit_when_it_persists() {
    let (app, repo, base, head, diff) = setup().await;
    let github = FakeGitHub::start_github(FORGE_TOKEN).await;
    github.add_pull("octo/app", 7, &head, &diff);
    let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
    github.push_answer("pulls/create-review", Answer::message(403, secondary).with_header("retry-after", "0"));
    // Five sends in all (the default), every one limited: the check is given up on.
    for _ in 0..5 {
        github.push_answer(
            "checks/create",
            Answer::message(429, "API rate limit exceeded").with_header("retry-after", "0"),
        );
    }
    let user = ci_user(
        &app,
        &head,
        &base,
        &[
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_REPOSITORY", "octo/app".to_owned()),
            ("GITHUB_API_URL", github.api_url()),
            ("GITHUB_TOKEN", FORGE_TOKEN.to_owned()),
        ],
    );
    let run = user.run(repo.path(), &["review", "--post"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("posted a review with 2 comment(s)"), "the review got through: {}", run.stderr);
    assert!(
        run.stderr.contains("creating the review (POST /repos/octo/app/pulls/7/reviews): rate-limited (HTTP 403: You have exceeded a secondary rate limit")
            && run.stderr.contains("trying again in 0.0 s (try 2 of 5)"),
        "the wait is said: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "prfix: posting to GitHub (GitHub Actions): creating the check run (POST /repos/octo/app/check-runs) failed: \
             still rate-limited (HTTP 429: API rate limit exceeded) after 5 tries; try again later"
        ),
        "{}",
        run.stderr
    );
    let reviews: Vec<u16> = github.calls("pulls/create-review").iter().map(|r| r.status).collect();
    assert_eq!(reviews, [403, 200]);
    assert_eq!(github.calls("checks/create").len(), 5);
    assert_eq!(github.violations(), Vec::<String>::new());
}
