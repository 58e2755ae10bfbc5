//! Incremental reviews: a push after a reviewed head is reviewed by the commits it added alone (the
//! forge's compare API gives their diff; the fake model's recorded prompts show only that diff),
//! the earlier findings on lines the push did not touch are carried over without being posted
//! again, and the one summary comment is edited to say so. A force push (the reviewed head is no
//! longer an ancestor) and `/review full` review the whole pull request again. GitHub, GitLab and
//! Gitea (whose compare names the touched files, diffed from their contents at both heads).

use prfix_proto::agent::v1 as pb;
use prfix_tests::fake_forge::{FakeGitHub, FakeGitLab, FakeGitea};
use prfix_tests::forge_system::github::Hooks;
use prfix_tests::forge_system::{self, Branch, Connection, wait_for_end};
use prfix_tests::{Reply, TestApp};
use serde_json::{Value, json};

const REPOSITORY: &str = "octo-org/octo-repo";
const BASE: &str =
    "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n";
/// Lines 3 to 7 added: an SQL injection on lines 6-7.
const FIND: &str = "\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n";
/// Lines 8 to 11 added after that: another one on line 11.
const DELETE: &str =
    "\n\ndef delete_user(conn, name):\n    return conn.execute(\"DELETE FROM users WHERE name = '\" + name + \"'\")\n";

/// The model's answer for the first head: a critical finding on lines 6-7 and a minor one on 5.
const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))"},
  {"path": "app/db.py", "line": 5, "severity": "minor", "category": "style", "title": "Missing docstring", "body": "find_user has no docstring."}
]}"#;

/// The model's answer for the pushed commit alone: the new function's injection on line 11.
const PUSHED_FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 11, "severity": "critical", "category": "security", "title": "SQL injection in delete_user", "body": "name is concatenated into the statement."}
]}"#;

/// The model's answer after the force push (delete_user alone, on lines 5-6).
const REWRITTEN_FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "severity": "critical", "category": "security", "title": "SQL injection in delete_user", "body": "name is concatenated into the statement."}
]}"#;

/// The text of the chat requests the fake model received from the `from`-th on.
fn prompts_since(app: &TestApp, from: usize) -> String {
    app.ollama.chat_requests().iter().skip(from).map(Value::to_string).collect::<Vec<_>>().join("\n")
}

fn review_of(task: &pb::Task) -> pb::ReviewResult {
    match task.result.as_ref().and_then(|r| r.result.clone()) {
        Some(pb::task_result::Result::Review(review)) => review,
        other => panic!("not a review result: {other:?}"),
    }
}

#[tokio::test]
async fn a_push_after_a_review_is_reviewed_by_its_commits_alone_and_keeps_the_earlier_findings() {
    let github = FakeGitHub::start_github("ghs_token").await;
    let connection = Connection {
        name: "github",
        kind: prfix_gateway::ForgeKind::GitHub,
        api_url: github.api_url(),
        repository: REPOSITORY,
        secret: "github-webhook-secret-0123456789",
        token: "ghs_token",
    };
    let hooks = Hooks { name: "github", repository: REPOSITORY, secret: connection.secret, number: 7 };
    let app = forge_system::spawn(&connection, FINDINGS).await;
    let branch = Branch::new("app/db.py", BASE);

    // The pull request is opened and reviewed in full.
    let first = format!("{BASE}{FIND}");
    let (head1, diff1) = branch.commit(&first, "find users by name");
    github.add_pull(REPOSITORY, 7, &head1, &diff1);
    github.add_file(REPOSITORY, &head1, "app/db.py", &first);
    let task1 = hooks.start(&app, "pull_request", "d-1", hooks.pull_request("opened", &head1, false)).await;
    let reviewed = wait_for_end(&app, &task1).await;
    assert_eq!(reviewed.state, pb::TaskState::Succeeded as i32, "{reviewed:?}");
    assert_eq!(review_of(&reviewed).incremental_from, "", "a first review is a full one");

    // A push of one commit: only its diff reaches the model.
    let second = format!("{first}{DELETE}");
    let (head2, diff2) = branch.commit(&second, "delete users");
    github.push(REPOSITORY, 7, &head2, &diff2);
    github.add_file(REPOSITORY, &head2, "app/db.py", &second);
    github.add_history(REPOSITORY, &branch.repo, &[&head1, &head2]);
    app.ollama.set_default("/api/chat", Reply::chat(PUSHED_FINDINGS));
    let asked_before = app.ollama.chat_requests().len();
    let task2 = hooks.start(&app, "pull_request", "d-2", hooks.pull_request("synchronize", &head2, false)).await;
    let pushed = wait_for_end(&app, &task2).await;
    assert_eq!(pushed.state, pb::TaskState::Succeeded as i32, "{pushed:?}");
    let prompts = prompts_since(&app, asked_before);
    assert!(prompts.contains("+ def delete_user("), "the pushed commit's added lines reach the model: {prompts}");
    assert!(!prompts.contains("+ def find_user("), "the reviewed commit's added lines do not: {prompts}");
    let compares: Vec<String> = github.calls("repos/compare-commits").iter().map(|r| r.path.clone()).collect();
    assert_eq!(compares, [format!("/repos/{REPOSITORY}/compare/{head1}...{head2}")]);

    let result = review_of(&pushed);
    assert_eq!((result.incremental_from.as_str(), result.carried_over_findings), (head1.as_str(), 2));
    let titles: Vec<(&str, i32)> = result.findings.iter().map(|f| (f.title.as_str(), f.line)).collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    for expected in [("SQL injection in delete_user", 11), ("SQL injection", 6), ("Missing docstring", 5)] {
        assert!(titles.contains(&expected), "{expected:?} in {titles:?}");
    }
    // Only the new finding is posted; the carried ones are on their lines already.
    let reviews = github.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    let comments = reviews[1].1["comments"].as_array().cloned().unwrap_or_default();
    assert_eq!(comments.iter().map(|c| c["line"].as_u64()).collect::<Vec<_>>(), [Some(11)], "{comments:?}");
    let summaries = github.with(|s| s.comments.clone());
    assert_eq!(summaries.len(), 1, "one summary comment, edited: {summaries:?}");
    let summary = &summaries[0].2;
    assert!(summary.contains("3 findings") && summary.contains("Incremental review"), "{summary}");
    assert!(summary.contains(&head1[..12]) && summary.contains("2 earlier finding(s)"), "{summary}");
    assert_eq!(github.calls("issues/update-comment").len(), 1);

    // A force push: the reviewed head is no ancestor of the new one, so the whole change is reviewed.
    let rewritten = format!("{BASE}{DELETE}");
    let (head3, diff3) = branch.rewrite(&rewritten, "delete users, without find_user");
    github.push(REPOSITORY, 7, &head3, &diff3);
    github.add_file(REPOSITORY, &head3, "app/db.py", &rewritten);
    github.add_history(REPOSITORY, &branch.repo, &[&head2, &head3]);
    app.ollama.set_default("/api/chat", Reply::chat(REWRITTEN_FINDINGS));
    let task3 = hooks.start(&app, "pull_request", "d-3", hooks.pull_request("synchronize", &head3, false)).await;
    let forced = wait_for_end(&app, &task3).await;
    assert_eq!(forced.state, pb::TaskState::Succeeded as i32, "{forced:?}");
    let result = review_of(&forced);
    assert_eq!((result.incremental_from.as_str(), result.carried_over_findings), ("", 0));
    assert_eq!(result.findings.len(), 1, "nothing is carried over a rewritten history: {:?}", result.findings);
    let summary = github.with(|s| s.comments[0].2.clone());
    assert!(summary.contains("Full review") && summary.contains("force-pushed"), "{summary}");
    assert_eq!(github.with(|s| s.comments.len()), 1);

    // `/review full` reviews everything although the head was reviewed.
    github.set_permission("maintainer", "write");
    let asked_before = app.ollama.chat_requests().len();
    let task4 = hooks.start(&app, "issue_comment", "c-full", hooks.comment("maintainer", "/review full", 901)).await;
    let full = wait_for_end(&app, &task4).await;
    assert_eq!(full.state, pb::TaskState::Succeeded as i32, "{full:?}");
    assert_eq!(review_of(&full).incremental_from, "");
    assert!(prompts_since(&app, asked_before).contains("+ def delete_user("));
    assert!(github.with(|s| s.comments[0].2.contains("`/review full` asked for the whole pull request")));
    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");
}

/// A GitLab `Merge Request Hook` of `action` for merge request 5 at `head` (`update` with the head
/// before, `oldrev`, as GitLab sends for a push), as GitLab documents one, abridged.
fn merge_request_hook(action: &str, head: &str, oldrev: Option<&str>) -> Vec<u8> {
    let mut attributes = json!({
        "id": 99, "iid": 5, "action": action, "state": "opened", "draft": false,
        "source_branch": "feature", "target_branch": "main",
        "last_commit": { "id": head, "message": "a commit" }
    });
    if let Some(oldrev) = oldrev {
        attributes["oldrev"] = json!(oldrev);
    }
    serde_json::to_vec(&json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": { "id": 1, "name": "Administrator", "username": "root" },
        "project": { "id": 42, "name": "app", "path_with_namespace": "group/app", "default_branch": "main" },
        "object_attributes": attributes,
    }))
    .expect("JSON")
}

async fn deliver_gitlab(app: &TestApp, delivery: &str, body: Vec<u8>) -> String {
    let token = "gitlab-webhook-token-0123456789";
    forge_system::deliver_gitlab(app, "gitlab", token, "Merge Request Hook", delivery, body).await
}

#[tokio::test]
async fn a_push_to_a_gitlab_merge_request_is_reviewed_by_the_repository_compare() {
    let branch = Branch::new("app/db.py", BASE);
    let first = format!("{BASE}{FIND}");
    let (head1, diff1) = branch.commit(&first, "find users by name");
    let base = branch.base.clone();
    let gitlab = FakeGitLab::start_gitlab("glpat-token", ("42", "group/app"), 5, (&base, &base, &head1), &diff1).await;
    gitlab.add_file(&head1, "app/db.py", &first);
    let connection = Connection {
        name: "gitlab",
        kind: prfix_gateway::ForgeKind::GitLab,
        api_url: gitlab.api_url(),
        repository: "group/app",
        secret: "gitlab-webhook-token-0123456789",
        token: "glpat-token",
    };
    let app = forge_system::spawn(&connection, FINDINGS).await;
    let task1 = deliver_gitlab(&app, "gl-1", merge_request_hook("open", &head1, None)).await;
    assert_eq!(wait_for_end(&app, &task1).await.state, pb::TaskState::Succeeded as i32);
    assert_eq!(gitlab.with(|s| s.discussions.len()), 2);

    let second = format!("{first}{DELETE}");
    let (head2, diff2) = branch.commit(&second, "delete users");
    gitlab.push(&head2, &diff2);
    gitlab.add_file(&head2, "app/db.py", &second);
    gitlab.add_history(&branch.repo, &[&head1, &head2]);
    app.ollama.set_default("/api/chat", Reply::chat(PUSHED_FINDINGS));
    let asked_before = app.ollama.chat_requests().len();
    let task2 = deliver_gitlab(&app, "gl-2", merge_request_hook("update", &head2, Some(&head1))).await;
    let pushed = wait_for_end(&app, &task2).await;
    assert_eq!(pushed.state, pb::TaskState::Succeeded as i32, "{pushed:?}");
    let prompts = prompts_since(&app, asked_before);
    assert!(prompts.contains("+ def delete_user(") && !prompts.contains("+ def find_user("), "{prompts}");
    let result = review_of(&pushed);
    assert_eq!((result.incremental_from.as_str(), result.carried_over_findings), (head1.as_str(), 2));

    // Both compares name only documented parameters: the new head back to the old (no commits:
    // an ancestor), then the old head to the new (the diff).
    let asked: Vec<Vec<(String, String)>> = gitlab.calls("compare").iter().map(|r| r.query.clone()).collect();
    let pair = |from: &str, to: &str| vec![("from".to_owned(), from.to_owned()), ("to".to_owned(), to.to_owned())];
    assert_eq!(asked, [pair(&head2, &head1), pair(&head1, &head2)]);
    let discussions = gitlab.with(|s| s.discussions.clone());
    assert_eq!(discussions.len(), 3, "only the new finding is posted: {discussions:?}");
    assert_eq!(discussions[2]["position"]["new_line"], 11);
    assert_eq!(discussions[2]["position"]["head_sha"], head2.as_str());
    let notes = gitlab.with(|s| s.notes.clone());
    assert_eq!(notes.len(), 1, "one summary note, edited: {notes:?}");
    assert!(notes[0].1.contains("Incremental review") && notes[0].1.contains("3 findings"), "{}", notes[0].1);
    assert_eq!(gitlab.violations(), Vec::<String>::new(), "every request has GitLab's documented shape");
}

/// A Gitea `pull_request` delivery of `action` for pull request 2 at `head` (as Gitea documents
/// one, abridged).
fn gitea_pull_request(action: &str, head: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": action,
        "number": 2,
        "pull_request": {
            "id": 10, "number": 2, "draft": false, "user": { "login": "gitea-user" },
            "head": { "ref": "feature", "sha": head }, "base": { "ref": "main" }
        },
        "repository": { "id": 5, "name": "app", "full_name": "gitea-org/app" },
        "sender": { "id": 1, "login": "gitea-user", "username": "gitea-user" }
    }))
    .expect("JSON")
}

async fn deliver_gitea(app: &TestApp, delivery: &str, body: Vec<u8>) -> String {
    let secret = "gitea-webhook-secret-0123456789";
    forge_system::deliver_gitea(app, "gitea", secret, "pull_request", delivery, body).await
}

#[tokio::test]
async fn a_push_to_a_gitea_pull_request_is_reviewed_by_the_files_its_commits_touch() {
    let branch = Branch::new("app/db.py", BASE);
    let first = format!("{BASE}{FIND}");
    let (head1, diff1) = branch.commit(&first, "find users by name");
    let gitea = FakeGitea::start_gitea("gitea-token", "gitea-org/app", 2, &head1, &diff1).await;
    gitea.add_file(&head1, "app/db.py", &first);
    let connection = Connection {
        name: "gitea",
        kind: prfix_gateway::ForgeKind::Gitea,
        api_url: gitea.api_url(),
        repository: "gitea-org/app",
        secret: "gitea-webhook-secret-0123456789",
        token: "gitea-token",
    };
    let app = forge_system::spawn(&connection, FINDINGS).await;
    let task1 = deliver_gitea(&app, "gt-1", gitea_pull_request("opened", &head1)).await;
    assert_eq!(wait_for_end(&app, &task1).await.state, pb::TaskState::Succeeded as i32);

    let second = format!("{first}{DELETE}");
    let (head2, diff2) = branch.commit(&second, "delete users");
    gitea.push(&head2, &diff2);
    gitea.add_file(&head2, "app/db.py", &second);
    gitea.add_history(&branch.repo, &[&head1, &head2]);
    app.ollama.set_default("/api/chat", Reply::chat(PUSHED_FINDINGS));
    let asked_before = app.ollama.chat_requests().len();
    let task2 = deliver_gitea(&app, "gt-2", gitea_pull_request("synchronized", &head2)).await;
    let pushed = wait_for_end(&app, &task2).await;
    assert_eq!(pushed.state, pb::TaskState::Succeeded as i32, "{pushed:?}");
    let prompts = prompts_since(&app, asked_before);
    assert!(prompts.contains("+ def delete_user(") && !prompts.contains("+ def find_user("), "{prompts}");
    let result = review_of(&pushed);
    assert_eq!((result.incremental_from.as_str(), result.carried_over_findings), (head1.as_str(), 2));
    let compares: Vec<String> = gitea.calls("compare").iter().map(|r| r.path.clone()).collect();
    let path = |from: &str, to: &str| format!("/repos/gitea-org/app/compare/{from}...{to}");
    assert_eq!(compares, [path(&head2, &head1), path(&head1, &head2)], "back (no commits: an ancestor), then forward");
    let reviews = gitea.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    let lines: Vec<Option<u64>> =
        reviews[1]["comments"].as_array().into_iter().flatten().map(|c| c["new_position"].as_u64()).collect();
    assert_eq!(lines, [Some(11)], "only the new finding is posted");
    let comments = gitea.with(|s| s.comments.clone());
    assert_eq!(comments.len(), 1, "one summary comment, edited: {comments:?}");
    assert!(comments[0].1.contains("Incremental review") && comments[0].1.contains("3 findings"), "{}", comments[0].1);
    assert_eq!(gitea.violations(), Vec::<String>::new(), "every request has Gitea's shape");
}
