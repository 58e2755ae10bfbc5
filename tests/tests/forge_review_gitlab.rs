//! A review a GitLab webhook starts by itself: a `Merge Request Hook` `open` delivery at the gateway
//! queues a review, the agent reads the merge request from the fake GitLab (which checks GitLab's
//! documented request shapes), and posts one discussion per finding positioned on the merge
//! request's diff version, one summary note and a commit status.

use std::time::Duration;

use prfix_gateway::ForgeKind;
use prfix_proto::agent::v1 as pb;
use prfix_tests::TestApp;
use prfix_tests::fake_forge::{DiffLines, FakeGitLab};
use prfix_tests::forge_system::{self, Connection};
use prfix_tests::git::Repo;
use serde_json::{Value, json};

const SECRET: &str = "gitlab-webhook-token-0123456789";
const TOKEN: &str = "glpat-project-token";
const PROJECT: &str = "group/app";

/// A finding on an added line (6-7, a range) and one on an unchanged line (2).
const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))"},
  {"path": "app/db.py", "line": 2, "severity": "minor", "category": "style", "title": "Positional parameters", "body": "Named parameters read better."}
]}"#;

const BASE: &str =
    "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n";
const HEAD: &str = "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n";

async fn app(gitlab: &FakeGitLab) -> TestApp {
    let connection = Connection {
        name: "gitlab",
        kind: ForgeKind::GitLab,
        api_url: gitlab.api_url(),
        repository: PROJECT,
        secret: SECRET,
        token: TOKEN,
    };
    forge_system::spawn(&connection, FINDINGS).await
}

/// A `Merge Request Hook` `open` delivery for merge request 5 at `head`, as GitLab documents one
/// (abridged).
fn merge_request_hook(head: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": { "id": 1, "name": "Administrator", "username": "root" },
        "project": { "id": 42, "name": "app", "path_with_namespace": PROJECT, "default_branch": "main" },
        "object_attributes": {
            "id": 99, "iid": 5, "action": "open", "state": "opened", "draft": false,
            "source_branch": "feature", "target_branch": "main",
            "last_commit": { "id": head, "message": "find users by name" }
        }
    }))
    .expect("JSON")
}

#[tokio::test]
async fn a_merge_request_hook_posts_discussions_on_the_diff_version_a_summary_note_and_a_status() {
    let repo = Repo::init();
    repo.write("app/db.py", BASE);
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("app/db.py", HEAD);
    repo.commit("find users by name");
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let diff = repo.git(&["diff", "--no-color", "-U3", &format!("{base}...{head}")]);
    let gitlab = FakeGitLab::start_gitlab(TOKEN, ("42", PROJECT), 5, (&base, &base, &head), &diff).await;
    gitlab.add_file(&head, "app/db.py", HEAD);
    gitlab.add_file("main", ".prfix.toml", "[review]\nfail_on = \"critical\"\n");
    let app = app(&gitlab).await;

    let body = merge_request_hook(&head);
    let task_id = forge_system::deliver_gitlab(&app, "gitlab", SECRET, "Merge Request Hook", "gl-review-1", body).await;
    let ended = prfix_tests::tasks::wait_for_end(&mut app.agent_client(), &task_id, Duration::from_secs(60)).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");

    assert_eq!(gitlab.violations(), Vec::<String>::new(), "every request has GitLab's documented shape");
    let shown = DiffLines::parse(&diff);
    let discussions = gitlab.with(|s| s.discussions.clone());
    assert_eq!(discussions.len(), 2, "{discussions:?}");
    for discussion in &discussions {
        let position = &discussion["position"];
        assert_eq!(
            (position["base_sha"].as_str(), position["start_sha"].as_str(), position["head_sha"].as_str()),
            (Some(base.as_str()), Some(base.as_str()), Some(head.as_str()))
        );
        let line = position["new_line"].as_u64().and_then(|l| u32::try_from(l).ok()).unwrap_or(0);
        let on = shown.new_line("app/db.py", line).expect("a line of the diff");
        assert_eq!(position["old_line"].as_u64().map(|l| l as u32), on.old, "old_line only for an unchanged line");
    }
    let range = discussions.iter().find(|d| d["position"]["new_line"] == 7).expect("the range ends on line 7");
    assert!(range["body"].as_str().is_some_and(|b| b.contains("```suggestion:-1+0")), "{range}");
    let unchanged = discussions.iter().find(|d| d["position"]["new_line"] == 2).expect("the unchanged line 2");
    assert_eq!(unchanged["position"]["old_line"], 2);
    let notes = gitlab.with(|s| s.notes.clone());
    assert_eq!(notes.len(), 1, "one summary note: {notes:?}");
    assert!(notes[0].1.starts_with(prfix_forge::SUMMARY_MARKER));
    let statuses = gitlab.with(|s| s.statuses.clone());
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].1["state"], "failed", "a critical finding fails with fail_on = critical");
}

/// A `Note Hook` delivery: `note` on merge request 5 at `head` by `username` (as GitLab documents
/// one, abridged).
fn note_hook(username: &str, note: &str, note_id: u64, head: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object_kind": "note",
        "event_type": "note",
        "user": { "id": 7, "name": username, "username": username },
        "project": { "id": 42, "name": "app", "path_with_namespace": PROJECT },
        "object_attributes": { "id": note_id, "note": note, "noteable_type": "MergeRequest" },
        "merge_request": { "id": 99, "iid": 5, "last_commit": { "id": head } }
    }))
    .expect("JSON")
}

#[tokio::test]
async fn review_in_a_note_runs_for_a_developer_and_gets_a_guest_a_reply_only() {
    let repo = Repo::init();
    repo.write("app/db.py", BASE);
    repo.commit("base");
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("app/db.py", HEAD);
    repo.commit("find users by name");
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    let diff = repo.git(&["diff", "--no-color", &format!("{base}...{head}")]);
    let gitlab = FakeGitLab::start_gitlab(TOKEN, ("42", PROJECT), 5, (&base, &base, &head), &diff).await;
    gitlab.add_file(&head, "app/db.py", HEAD);
    gitlab.add_member("dev", 30);
    gitlab.add_member("guest", 10);
    let app = app(&gitlab).await;
    let send = |delivery: &'static str, body: Vec<u8>| {
        let url = format!("http://{}/v1/forges/gitlab/webhook", app.gateway.addr);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("x-gitlab-event", "Note Hook")
                .header("x-gitlab-event-uuid", delivery)
                .header("x-gitlab-token", SECRET)
                .body(body)
                .send()
                .await
                .expect("the gateway answers");
            assert!(response.status().is_success(), "{}", response.status());
            response.json::<Value>().await.expect("JSON")
        }
    };
    let wait = |task: Value| {
        let mut client = app.agent_client();
        async move {
            let task_id = task["taskId"].as_str().expect("a task").to_owned();
            prfix_tests::tasks::wait_for_end(&mut client, &task_id, Duration::from_secs(60)).await
        }
    };

    let refused = wait(send("note-1", note_hook("guest", "/review", 801, &head)).await).await;
    assert_eq!(refused.state, pb::TaskState::Failed as i32);
    let notes = gitlab.with(|s| s.notes.clone());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].1.contains("@guest") && notes[0].1.contains("write access"), "{}", notes[0].1);
    assert!(gitlab.with(|s| s.discussions.is_empty() && s.awards.is_empty()));

    let reviewed = wait(send("note-2", note_hook("dev", "/review", 802, &head)).await).await;
    assert_eq!(reviewed.state, pb::TaskState::Succeeded as i32, "{reviewed:?}");
    assert_eq!(gitlab.with(|s| s.awards.clone()), [(802, "eyes".to_owned())]);
    assert_eq!(gitlab.with(|s| s.discussions.len()), 2);
    assert_eq!(gitlab.violations(), Vec::<String>::new());
}
