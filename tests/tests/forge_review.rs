//! Reviews a forge's webhook starts by itself: a signed `pull_request` delivery at the gateway
//! queues a review task at the agent, which reads the pull request from the (fake) GitHub, reviews
//! it with the (fake) model, and posts one review with comments on diff lines, one summary comment
//! and a check run, every request valid against GitHub's OpenAPI description. A push supersedes a
//! running review, and a finding already posted on an unchanged line is not posted again.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1 as audit;
use prfix_tests::fake_forge::{DiffLines, FakeGitHub};
use prfix_tests::forge_system::github::Hooks;
use prfix_tests::forge_system::{self, Branch, Connection, agent_records, meta, wait_for_end};
use prfix_tests::{Reply, TestApp};

const SECRET: &str = "github-webhook-secret-0123456789";
const TOKEN: &str = "ghs_installation_token";
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

/// The model's answer after the push: the same two, and a new one on line 11.
const FINDINGS_AFTER_PUSH: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query.", "suggestion": "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))"},
  {"path": "app/db.py", "line": 5, "severity": "minor", "category": "style", "title": "Missing docstring", "body": "find_user has no docstring."},
  {"path": "app/db.py", "line": 11, "severity": "critical", "category": "security", "title": "SQL injection in delete_user", "body": "name is concatenated into the statement."}
]}"#;

const HOOKS: Hooks = Hooks { name: "github", repository: REPOSITORY, secret: SECRET, number: 7 };

/// The system with the `github` connection to `github`, the model answering [`FINDINGS`].
async fn app(github: &FakeGitHub) -> TestApp {
    let connection = Connection {
        name: "github",
        kind: prfix_gateway::ForgeKind::GitHub,
        api_url: github.api_url(),
        repository: REPOSITORY,
        secret: SECRET,
        token: TOKEN,
    };
    forge_system::spawn(&connection, FINDINGS).await
}

async fn task(app: &TestApp, task_id: &str) -> pb::Task {
    let request = pb::GetTaskRequest { task_id: task_id.to_owned() };
    app.agent_client().get_task(request).await.expect("the task").into_inner().task.expect("a task")
}

/// The audit events of `action`, oldest first.
async fn audited(app: &TestApp, action: &str) -> Vec<audit::AuditEvent> {
    let request = audit::ListEventsRequest { action: action.to_owned(), page_size: 100, ..Default::default() };
    let mut events = app.audit_client().list_events(request).await.expect("the audit log answers").into_inner().events;
    events.sort_by_key(|e| e.sequence);
    events
}

#[tokio::test]
async fn a_pull_request_opened_delivery_posts_one_review_on_diff_lines_a_summary_and_a_check_run() {
    let github = FakeGitHub::start_github(TOKEN).await;
    let app = app(&github).await;
    let project = Branch::new("app/db.py", BASE);
    let (head, diff) = project.commit(&format!("{BASE}{FIND}"), "find users by name");
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", &format!("{BASE}{FIND}"));
    github.add_file(REPOSITORY, "main", ".prfix.toml", "[review]\nfail_on = \"major\"\n");

    let delivery = "2a7e3f10-242f-11e5-81e1-c7b6966d2516";
    let body = HOOKS.pull_request("opened", &head, false);
    let answer = HOOKS.deliver(&app, "pull_request", delivery, body.clone()).await;
    let task_id = answer["taskId"].as_str().expect("the delivery started a task").to_owned();
    let ended = wait_for_end(&app, &task_id).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");
    let pull = ended.forge_pull_request.clone().expect("the task records its pull request");
    assert_eq!(
        (pull.forge.as_str(), pull.repository.as_str(), pull.number, pull.head_sha.as_str()),
        ("github", REPOSITORY, 7, head.as_str())
    );
    assert_eq!(
        (pull.triggered_by.as_str(), pull.author.as_str(), pull.delivery_id.as_str()),
        ("pusher", "octocat", delivery)
    );

    // The same delivery again: acknowledged, and nothing more happens.
    let again = HOOKS.deliver(&app, "pull_request", delivery, body).await;
    assert_eq!(again["duplicate"], true);
    assert!(again.get("taskId").is_none(), "{again}");

    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");
    let shown = DiffLines::parse(&diff);
    let reviews = github.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1, "one review: {reviews:?}");
    let (on, review) = &reviews[0];
    assert_eq!(on, &format!("{REPOSITORY}#7"));
    assert_eq!((review["event"].as_str(), review["commit_id"].as_str()), (Some("COMMENT"), Some(head.as_str())));
    let comments = review["comments"].as_array().cloned().unwrap_or_default();
    assert_eq!(comments.len(), 2, "{review}");
    assert_eq!((comments[0]["start_line"].as_u64(), comments[0]["line"].as_u64()), (Some(6), Some(7)));
    assert!(comments[0]["body"].as_str().is_some_and(|b| b.contains("```suggestion")), "{}", comments[0]);
    for comment in &comments {
        let line = comment["line"].as_u64().and_then(|l| u32::try_from(l).ok()).unwrap_or(0);
        assert!(shown.new_line("app/db.py", line).is_some(), "on a line of the diff: {comment}");
        assert!(comment["body"].as_str().is_some_and(|b| b.contains("<!-- prfix:finding ")), "{comment}");
    }
    let summaries = github.with(|s| s.comments.clone());
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(summaries[0].2.starts_with(prfix_forge::SUMMARY_MARKER) && summaries[0].2.contains("SQL injection"));
    let runs = github.with(|s| s.check_runs.clone());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["head_sha"], head.as_str());
    assert_eq!(runs[0]["conclusion"], "failure", "a critical finding fails the check with fail_on = major");
    // .prfix.toml was read from the base branch, the file from the head.
    let reads: Vec<String> =
        github.calls("repos/get-content").iter().map(|r| format!("{}?{:?}", r.path, r.query)).collect();
    assert!(reads.iter().any(|r| r.contains(".prfix.toml") && r.contains("main")), "{reads:?}");

    let created = agent_records(&app, "agent.task.create.review").await;
    assert_eq!(created.len(), 1, "one review task for one delivery sent twice");
    let record = &created[0];
    assert_eq!(record.resource, format!("tasks/{task_id}"));
    assert_eq!(record.actor.as_ref().map(|a| a.subject.as_str()), Some("service:gateway"));
    for (key, value) in
        [("triggered_by", "pusher"), ("author", "octocat"), ("delivery_id", delivery), ("pull_request", "7")]
    {
        assert_eq!(meta(record, key), value, "{key}");
    }
    let received = audited(&app, "forge.webhook.received").await;
    assert_eq!(meta(&received[0], "task_id"), task_id);
}

#[tokio::test]
async fn a_draft_is_not_reviewed_until_it_is_marked_ready() {
    let github = FakeGitHub::start_github(TOKEN).await;
    let app = app(&github).await;
    let project = Branch::new("app/db.py", BASE);
    let (head, diff) = project.commit(&format!("{BASE}{FIND}"), "find users by name");
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", &format!("{BASE}{FIND}"));

    let draft = HOOKS.deliver(&app, "pull_request", "d-draft", HOOKS.pull_request("opened", &head, true)).await;
    assert!(draft.get("taskId").is_none(), "{draft}");
    assert!(draft["ignored"].as_str().is_some_and(|r| r.contains("draft")), "{draft}");

    let ready =
        HOOKS.deliver(&app, "pull_request", "d-ready", HOOKS.pull_request("ready_for_review", &head, false)).await;
    let task_id = ready["taskId"].as_str().expect("marked ready: reviewed").to_owned();
    assert_eq!(wait_for_end(&app, &task_id).await.state, pb::TaskState::Succeeded as i32);
    assert_eq!(github.with(|s| s.reviews.len()), 1);
    assert_eq!(github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_push_cancels_the_running_review_and_the_next_posts_only_new_findings_and_edits_the_summary() {
    let github = FakeGitHub::start_github(TOKEN).await;
    let app = app(&github).await;
    let project = Branch::new("app/db.py", BASE);
    let first = format!("{BASE}{FIND}");
    let (head1, diff1) = project.commit(&first, "find users by name");
    github.add_pull(REPOSITORY, 7, &head1, &diff1);
    github.add_file(REPOSITORY, &head1, "app/db.py", &first);

    // The first head is reviewed and posted.
    let opened = HOOKS.deliver(&app, "pull_request", "d-1", HOOKS.pull_request("opened", &head1, false)).await;
    let task1 = opened["taskId"].as_str().expect("a task").to_owned();
    assert_eq!(wait_for_end(&app, &task1).await.state, pb::TaskState::Succeeded as i32);

    // A push whose review hangs in the model...
    let second = format!("{first}{DELETE}");
    let (head2, diff2) = project.commit(&second, "delete users");
    github.push(REPOSITORY, 7, &head2, &diff2);
    github.add_file(REPOSITORY, &head2, "app/db.py", &second);
    app.ollama.push("/api/chat", Reply::chat_hanging(&["{\"findings\": ["]));
    let pushed = HOOKS.deliver(&app, "pull_request", "d-2", HOOKS.pull_request("synchronize", &head2, false)).await;
    let task2 = pushed["taskId"].as_str().expect("a task").to_owned();
    for _ in 0..400 {
        if task(&app, &task2).await.state == pb::TaskState::Running as i32 && app.ollama.chat_requests().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(task(&app, &task2).await.state, pb::TaskState::Running as i32, "the second review is running");

    // ...and another push while it runs: the running review is cancelled, the new one posts.
    let third = format!("{second}\n# end\n");
    let (head3, diff3) = project.commit(&third, "a comment");
    github.push(REPOSITORY, 7, &head3, &diff3);
    github.add_file(REPOSITORY, &head3, "app/db.py", &third);
    app.ollama.set_default("/api/chat", Reply::chat(FINDINGS_AFTER_PUSH));
    let pushed = HOOKS.deliver(&app, "pull_request", "d-3", HOOKS.pull_request("synchronize", &head3, false)).await;
    let task3 = pushed["taskId"].as_str().expect("a task").to_owned();
    let cancelled = wait_for_end(&app, &task2).await;
    assert_eq!(cancelled.state, pb::TaskState::Cancelled as i32, "{cancelled:?}");
    assert!(cancelled.error.contains("superseded"), "{}", cancelled.error);
    assert_eq!(wait_for_end(&app, &task3).await.state, pb::TaskState::Succeeded as i32);

    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");
    let reviews = github.with(|s| s.reviews.clone());
    let heads: Vec<&str> = reviews.iter().map(|(_, r)| r["commit_id"].as_str().unwrap_or("")).collect();
    assert_eq!(heads, [head1.as_str(), head3.as_str()], "no review of the cancelled head");
    let new_comments = reviews[1].1["comments"].as_array().cloned().unwrap_or_default();
    assert_eq!(new_comments.len(), 1, "only the new finding is posted: {new_comments:?}");
    assert_eq!(new_comments[0]["line"].as_u64(), Some(11));
    assert!(reviews[1].1["body"].as_str().is_some_and(|b| b.contains("2 of them were posted")), "{}", reviews[1].1);
    let summaries = github.with(|s| s.comments.clone());
    assert_eq!(summaries.len(), 1, "one summary comment, edited: {summaries:?}");
    assert!(summaries[0].2.contains(&head3[..12]) && summaries[0].2.contains("3 findings"), "{}", summaries[0].2);
    // The fake GitHub was told no history, so its compare answers 404: the push is reviewed in full
    // (forge_incremental.rs reviews pushes by their commits).
    assert!(summaries[0].2.contains("Full review: the forge could not compare"), "{}", summaries[0].2);
    assert_eq!(github.calls("issues/update-comment").len(), 1);
    let runs = github.with(|s| s.check_runs.clone());
    let checked: Vec<&str> = runs.iter().map(|r| r["head_sha"].as_str().unwrap_or("")).collect();
    assert_eq!(checked, [head1.as_str(), head3.as_str()]);

    let cancels = agent_records(&app, "agent.task.cancel").await;
    assert_eq!(cancels[0].resource, format!("tasks/{task2}"));
    assert!(meta(&cancels[0], "reason").contains(&head3), "{cancels:?}");
}

#[tokio::test]
async fn review_in_a_comment_from_a_collaborator_reviews_and_from_anyone_else_gets_a_reply_only() {
    let github = FakeGitHub::start_github(TOKEN).await;
    let app = app(&github).await;
    let project = Branch::new("app/db.py", BASE);
    let (head, diff) = project.commit(&format!("{BASE}{FIND}"), "find users by name");
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", &format!("{BASE}{FIND}"));
    github.set_permission("maintainer", "write");
    github.set_permission("visitor", "read");

    // Someone who may only read: a polite reply, no review, no model call.
    let asked = HOOKS.deliver(&app, "issue_comment", "c-1", HOOKS.comment("visitor", "/review", 501)).await;
    let refused = wait_for_end(&app, asked["taskId"].as_str().expect("a task")).await;
    assert_eq!(refused.state, pb::TaskState::Failed as i32);
    assert!(refused.error.contains("no write access"), "{}", refused.error);
    let replies = github.with(|s| s.comments.clone());
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].2.contains("@visitor") && replies[0].2.contains("write access"), "{}", replies[0].2);
    assert!(github.with(|s| s.reviews.is_empty() && s.reactions.is_empty()));
    assert!(app.ollama.chat_requests().is_empty(), "no model call for a refused command");

    // A comment that is no command starts nothing.
    let chat = HOOKS.deliver(&app, "issue_comment", "c-2", HOOKS.comment("maintainer", "Looks good to me", 502)).await;
    assert!(chat.get("taskId").is_none(), "{chat}");

    // A collaborator with write access: 👀 on the comment, then the review.
    let asked = HOOKS.deliver(&app, "issue_comment", "c-3", HOOKS.comment("maintainer", "/review", 503)).await;
    let task_id = asked["taskId"].as_str().expect("a task").to_owned();
    let reviewed = wait_for_end(&app, &task_id).await;
    assert_eq!(reviewed.state, pb::TaskState::Succeeded as i32, "{reviewed:?}");
    assert_eq!(
        reviewed.forge_pull_request.map(|p| (p.triggered_by, p.head_sha)),
        Some(("maintainer".to_owned(), head.clone()))
    );
    assert_eq!(github.with(|s| s.reactions.clone()), [(503, "eyes".to_owned())]);
    let reviews = github.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].1["commit_id"], head.as_str());
    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");

    let created = agent_records(&app, "agent.task.create.review").await;
    let commands: Vec<(String, String)> =
        created.iter().map(|e| (meta(e, "triggered_by"), meta(e, "command"))).collect();
    assert_eq!(
        commands,
        [("visitor".to_owned(), "/review".to_owned()), ("maintainer".to_owned(), "/review".to_owned())]
    );
}

#[tokio::test]
async fn describe_in_a_comment_from_a_collaborator_replies_with_the_description() {
    let github = FakeGitHub::start_github(TOKEN).await;
    let app = app(&github).await;
    let project = Branch::new("app/db.py", BASE);
    let (head, diff) = project.commit(&format!("{BASE}{FIND}"), "find users by name");
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", &format!("{BASE}{FIND}"));
    github.set_permission("maintainer", "admin");
    let description = r#"{"title": "Find users by name", "summary": "Adds find_user, which looks users up by name.", "walkthrough": [{"path": "app/db.py", "summary": "find_user queries users by name."}], "labels": ["feature"]}"#;
    app.ollama.set_default("/api/chat", Reply::chat(description));

    let asked = HOOKS.deliver(&app, "issue_comment", "c-describe", HOOKS.comment("maintainer", "/describe", 601)).await;
    let task = wait_for_end(&app, asked["taskId"].as_str().expect("a task")).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{task:?}");
    assert_eq!(task.kind, pb::TaskKind::Describe as i32);
    assert_eq!(github.with(|s| s.reactions.clone()), [(601, "eyes".to_owned())]);
    let comments = github.with(|s| s.comments.clone());
    assert_eq!(comments.len(), 1, "{comments:?}");
    let reply = &comments[0].2;
    assert!(reply.contains("## Find users by name") && reply.contains("| `app/db.py` | find_user queries"), "{reply}");
    assert!(github.with(|s| s.reviews.is_empty() && s.check_runs.is_empty()), "a describe posts no review");
    assert_eq!(github.violations(), Vec::<String>::new());
    let created = agent_records(&app, "agent.task.create.describe").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        (meta(&created[0], "command"), meta(&created[0], "triggered_by")),
        ("/describe".to_owned(), "maintainer".to_owned())
    );
}
