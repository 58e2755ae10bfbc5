//! A review a Gitea (Forgejo) webhook starts by itself: a signed `pull_request` `opened` delivery at
//! the gateway queues a review, the agent reads the pull request and its `.diff` from the fake Gitea
//! (which checks Gitea's request shapes), and posts one review whose comments sit on new-file lines
//! of the diff, one summary comment and a commit status.

use std::time::Duration;

use prfix_gateway::ForgeKind;
use prfix_proto::agent::v1 as pb;
use prfix_tests::TestApp;
use prfix_tests::fake_forge::{DiffLines, FakeGitea};
use prfix_tests::forge_system::{self, Connection};
use prfix_tests::git::Repo;
use serde_json::json;

const SECRET: &str = "gitea-webhook-secret-0123456789";
const TOKEN: &str = "gitea-access-token";
const PROJECT: &str = "gitea-org/app";

/// A finding on an added line (6-7, a range) and one on an unchanged line (2).
const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))"},
  {"path": "app/db.py", "line": 2, "severity": "minor", "category": "style", "title": "Positional parameters", "body": "Named parameters read better."}
]}"#;

const BASE: &str =
    "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n";
const HEAD: &str = "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n";

async fn app(gitea: &FakeGitea) -> TestApp {
    let connection = Connection {
        name: "gitea",
        kind: ForgeKind::Gitea,
        api_url: gitea.api_url(),
        repository: PROJECT,
        secret: SECRET,
        token: TOKEN,
    };
    forge_system::spawn(&connection, FINDINGS).await
}

/// A Gitea `pull_request` `opened` delivery for pull request 2 at `head` (as Gitea's documentation
/// shows one, abridged).
fn pull_request_opened(head: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "opened",
        "number": 2,
        "pull_request": {
            "id": 10, "number": 2, "draft": false, "user": { "login": "gitea-user" },
            "head": { "ref": "feature", "sha": head }, "base": { "ref": "main" }
        },
        "repository": { "id": 5, "name": "app", "full_name": PROJECT },
        "sender": { "id": 1, "login": "gitea-user", "username": "gitea-user" }
    }))
    .expect("JSON")
}

#[tokio::test]
async fn a_gitea_pull_request_delivery_posts_a_review_on_new_file_lines_a_summary_and_a_status() {
    let repo = Repo::init();
    repo.write("app/db.py", BASE);
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("app/db.py", HEAD);
    repo.commit("find users by name");
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let diff = repo.git(&["diff", "--no-color", &format!("{base}...{head}")]);
    let gitea = FakeGitea::start_gitea(TOKEN, PROJECT, 2, &head, &diff).await;
    gitea.add_file(&head, "app/db.py", HEAD);
    gitea.add_file("main", ".prfix.toml", "[review]\nfail_on = \"critical\"\n");
    let app = app(&gitea).await;

    let body = pull_request_opened(&head);
    let task_id = forge_system::deliver_gitea(&app, "gitea", SECRET, "pull_request", "gt-review-1", body).await;
    let ended = prfix_tests::tasks::wait_for_end(&mut app.agent_client(), &task_id, Duration::from_secs(60)).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");

    assert_eq!(gitea.violations(), Vec::<String>::new(), "every request has Gitea's shape");
    let shown = DiffLines::parse(&diff);
    let reviews = gitea.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["commit_id"], head.as_str());
    let comments = reviews[0]["comments"].as_array().cloned().unwrap_or_default();
    assert_eq!(comments.len(), 2, "{comments:?}");
    for comment in &comments {
        let line = comment["new_position"].as_u64().and_then(|l| u32::try_from(l).ok()).unwrap_or(0);
        assert!(shown.new_line("app/db.py", line).is_some(), "on a new-file line of the diff: {comment}");
        assert_eq!(comment["old_position"], 0);
    }
    let lines: Vec<u64> = comments.iter().filter_map(|c| c["new_position"].as_u64()).collect();
    assert!(lines.contains(&7) && lines.contains(&2), "the range ends on 7, the unchanged line is 2: {lines:?}");
    let summaries = gitea.with(|s| s.comments.clone());
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(summaries[0].1.starts_with(prfix_forge::SUMMARY_MARKER));
    let statuses = gitea.with(|s| s.statuses.clone());
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].1["state"], "failure", "a critical finding fails with fail_on = critical");
}
