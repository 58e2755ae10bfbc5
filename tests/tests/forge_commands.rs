//! `/ask` and `/fix` in pull request comments: run only for commenters who may write to the
//! repository (others get a polite reply), acknowledged with 👀, answered about the change's diff
//! in a reply (`/ask`), or posted as suggestions on the lines the fix's patch replaces (`/fix`),
//! every request valid against the forge's contract, and audited with who asked on which delivery.

use prfix_proto::agent::v1 as pb;
use prfix_tests::fake_forge::{FakeGitHub, FakeGitLab};
use prfix_tests::forge_system::github::Hooks;
use prfix_tests::forge_system::{self, Branch, Connection, agent_records, meta, wait_for_end};
use prfix_tests::{Reply, TestApp};
use serde_json::{Value, json};

const REPOSITORY: &str = "octo-org/octo-repo";
const SECRET: &str = "github-webhook-secret-0123456789";
const BASE: &str =
    "def get_user(conn, user_id):\n    return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n";
/// Lines 3 to 7 added: an SQL injection on lines 6-7.
const FIND: &str = "\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n";
const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query."}
]}"#;
const ANSWER: &str =
    r#"{"answer": "`find_user` concatenates `name` into the SQL text (app/db.py:6), so a name can change the query."}"#;

/// The fake GitHub with pull request 7 adding `find_user`, the system in front of it, and the
/// branch; `maintainer` may write, `visitor` may only read.
async fn github_pull() -> (FakeGitHub, TestApp, Branch, String) {
    let github = FakeGitHub::start_github("ghs_token").await;
    let connection = Connection {
        name: "github",
        kind: prfix_gateway::ForgeKind::GitHub,
        api_url: github.api_url(),
        repository: REPOSITORY,
        secret: SECRET,
        token: "ghs_token",
    };
    let app = forge_system::spawn(&connection, FINDINGS).await;
    let branch = Branch::new("app/db.py", BASE);
    let content = format!("{BASE}{FIND}");
    let (head, diff) = branch.commit(&content, "find users by name");
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", &content);
    github.set_permission("maintainer", "write");
    github.set_permission("visitor", "read");
    (github, app, branch, head)
}

const HOOKS: Hooks = Hooks { name: "github", repository: REPOSITORY, secret: SECRET, number: 7 };

#[tokio::test]
async fn ask_from_a_collaborator_is_answered_about_the_diff_and_from_anyone_else_gets_a_reply_only() {
    let (github, app, _branch, head) = github_pull().await;
    app.ollama.set_default("/api/chat", Reply::chat(ANSWER));

    let refused = HOOKS.start(&app, "issue_comment", "c-1", HOOKS.comment("visitor", "/ask Is this safe?", 701)).await;
    let refused = wait_for_end(&app, &refused).await;
    assert_eq!((refused.state, refused.kind), (pb::TaskState::Failed as i32, pb::TaskKind::Ask as i32));
    assert!(refused.error.contains("no write access"), "{}", refused.error);
    assert!(app.ollama.chat_requests().is_empty(), "no model call for a refused command");
    assert!(github.with(|s| s.reactions.is_empty()));

    let question = "Why is find_user unsafe?\nAnd what would you use instead?";
    let body = HOOKS.comment("maintainer", &format!("/ask {question}"), 702);
    let task_id = HOOKS.start(&app, "issue_comment", "c-2", body).await;
    let task = wait_for_end(&app, &task_id).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{task:?}");
    assert_eq!(task.kind, pb::TaskKind::Ask as i32);
    let Some(pb::task_result::Result::Ask(result)) = task.result.and_then(|r| r.result) else {
        panic!("no answer recorded")
    };
    assert_eq!(result.question, question);
    assert!(result.answer.contains("concatenates `name`"), "{}", result.answer);

    // The model saw the diff and the question, fenced as data.
    let asked = app.ollama.chat_requests();
    assert_eq!(asked.len(), 1, "one call answers a question");
    let prompt = asked[0].to_string();
    assert!(prompt.contains("+ def find_user(") && prompt.contains("Why is find_user unsafe?"), "{prompt}");
    assert!(prompt.contains("the reviewer's question"), "the question is fenced: {prompt}");

    assert_eq!(github.with(|s| s.reactions.clone()), [(702, "eyes".to_owned())]);
    let comments = github.with(|s| s.comments.clone());
    assert_eq!(comments.len(), 2, "the refusal and the answer: {comments:?}");
    assert!(comments[0].2.contains("@visitor"), "{}", comments[0].2);
    let reply = &comments[1].2;
    assert!(reply.contains("> Why is find_user unsafe?\n> And what would you use instead?"), "{reply}");
    assert!(reply.contains("concatenates `name` into the SQL text") && reply.contains(&head[..12]), "{reply}");
    assert!(github.with(|s| s.reviews.is_empty() && s.check_runs.is_empty()), "an answer posts no review");
    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");

    let created = agent_records(&app, "agent.task.create.ask").await;
    let who: Vec<(String, String, String)> =
        created.iter().map(|e| (meta(e, "triggered_by"), meta(e, "author"), meta(e, "delivery_id"))).collect();
    let person = |login: &str, delivery: &str| (login.to_owned(), "octocat".to_owned(), delivery.to_owned());
    assert_eq!(who, [person("visitor", "c-1"), person("maintainer", "c-2")]);
    assert!(meta(&created[1], "command").starts_with("/ask Why is find_user unsafe?"));
    let ended = agent_records(&app, "agent.task.succeeded").await;
    let ended = ended.iter().find(|e| e.resource == format!("tasks/{task_id}")).expect("the answer's end is audited");
    assert_eq!((meta(ended, "triggered_by"), meta(ended, "delivery_id")), ("maintainer".to_owned(), "c-2".to_owned()));

    // An accepted question the model cannot answer: the commenter is told, the details stay with the
    // operator.
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"answer": "  "}"#));
    let failed = HOOKS.start(&app, "issue_comment", "c-3", HOOKS.comment("maintainer", "/ask And now?", 703)).await;
    let failed = wait_for_end(&app, &failed).await;
    assert_eq!(failed.state, pb::TaskState::Failed as i32, "{failed:?}");
    assert!(failed.error.contains("empty"), "{}", failed.error);
    let last = github.with(|s| s.comments.last().map(|c| c.2.clone())).unwrap_or_default();
    assert!(last.contains("could not finish `/ask`") && last.contains(&failed.task_id), "{last}");
    assert!(!last.contains("empty"), "the error itself is not posted: {last}");
}

const PLAN: &str = r#"{"root_cause": "find_user concatenates name into the SQL text", "files": ["app/db.py"], "steps": ["pass name as a query parameter"]}"#;
const EDIT: &str = "app/db.py\n<<<<<<< SEARCH\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n=======\n    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))\n>>>>>>> REPLACE\n";

#[tokio::test]
async fn fix_posts_the_patch_as_suggestions_on_the_lines_it_replaces() {
    let (github, app, branch, head) = github_pull().await;
    // prfix's review of the head first: its finding is what /fix addresses.
    let reviewed = HOOKS.start(&app, "pull_request", "d-1", HOOKS.pull_request("opened", &head, false)).await;
    assert_eq!(wait_for_end(&app, &reviewed).await.state, pb::TaskState::Succeeded as i32);

    app.ollama.push("/api/chat", Reply::chat(PLAN));
    app.ollama.push("/api/chat", Reply::chat(EDIT));
    let asked_before = app.ollama.chat_requests().len();
    let task_id = HOOKS.start(&app, "issue_comment", "c-fix", HOOKS.comment("maintainer", "/fix", 801)).await;
    let task = wait_for_end(&app, &task_id).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{task:?}");
    assert_eq!(task.kind, pb::TaskKind::Fix as i32);
    let Some(pb::task_result::Result::Fix(fix)) = task.result.and_then(|r| r.result) else { panic!("no fix") };
    let planned = app.ollama.chat_requests().get(asked_before).map(Value::to_string).unwrap_or_default();
    assert!(planned.contains("SQL injection"), "the review's finding is the problem: {planned}");

    // The patch applies to the head, and the suggestion replaces exactly the lines it removes.
    branch.repo.apply(&fix.patch).unwrap_or_else(|e| panic!("git apply refused the patch: {e}\n{}", fix.patch));
    assert!(branch.repo.read("app/db.py").contains("WHERE name = ?\", (name,))"));
    let patch = prfix_engine::diff::parse(&fix.patch).expect("the patch parses");
    let removed: Vec<u32> = patch[0]
        .hunks
        .iter()
        .flat_map(|h| &h.lines)
        .filter(|l| l.kind == prfix_engine::diff::LineKind::Removed)
        .filter_map(|l| l.old_line)
        .collect();
    assert_eq!(removed, [6, 7]);
    let reviews = github.with(|s| s.reviews.clone());
    assert_eq!(reviews.len(), 2, "the review, then the fix: {reviews:?}");
    let (on, posted) = &reviews[1];
    assert_eq!((on.as_str(), posted["commit_id"].as_str()), ("octo-org/octo-repo#7", Some(head.as_str())));
    let comments = posted["comments"].as_array().cloned().unwrap_or_default();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let comment = &comments[0];
    assert_eq!(
        (comment["path"].as_str(), comment["start_line"].as_u64(), comment["line"].as_u64()),
        (Some("app/db.py"), Some(6), Some(7)),
        "the suggestion spans the lines the patch replaces"
    );
    let suggestion = "```suggestion\n    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))\n```";
    assert!(comment["body"].as_str().is_some_and(|b| b.contains(suggestion)), "{comment}");
    let body = posted["body"].as_str().unwrap_or_default();
    assert!(body.contains("## prfix fix") && body.contains("```diff\n") && body.contains("1 finding(s)"), "{body}");
    assert!(body.contains(&format!("<!-- prfix:fix {task_id} -->")), "{body}");
    assert_eq!(github.with(|s| s.reactions.clone()), [(801, "eyes".to_owned())]);
    assert_eq!(github.violations(), Vec::<String>::new(), "every request is valid against GitHub's description");

    let created = agent_records(&app, "agent.task.create.fix").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        (meta(&created[0], "command"), meta(&created[0], "triggered_by"), meta(&created[0], "delivery_id")),
        ("/fix".to_owned(), "maintainer".to_owned(), "c-fix".to_owned())
    );
}

/// A GitLab `Note Hook` delivery: `note` on merge request 5 at `head` by `username`.
fn note_hook(username: &str, note: &str, note_id: u64, head: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object_kind": "note",
        "event_type": "note",
        "user": { "id": 7, "name": username, "username": username },
        "project": { "id": 42, "name": "app", "path_with_namespace": "group/app" },
        "object_attributes": { "id": note_id, "note": note, "noteable_type": "MergeRequest" },
        "merge_request": { "id": 99, "iid": 5, "last_commit": { "id": head } }
    }))
    .expect("JSON")
}

#[tokio::test]
async fn ask_in_a_gitlab_note_from_a_developer_is_answered_in_a_note() {
    let branch = Branch::new("app/db.py", BASE);
    let content = format!("{BASE}{FIND}");
    let (head, diff) = branch.commit(&content, "find users by name");
    let base = branch.base.clone();
    let gitlab = FakeGitLab::start_gitlab("glpat-token", ("42", "group/app"), 5, (&base, &base, &head), &diff).await;
    gitlab.add_file(&head, "app/db.py", &content);
    gitlab.add_member("dev", 30);
    let connection = Connection {
        name: "gitlab",
        kind: prfix_gateway::ForgeKind::GitLab,
        api_url: gitlab.api_url(),
        repository: "group/app",
        secret: "gitlab-webhook-token-0123456789",
        token: "glpat-token",
    };
    let app = forge_system::spawn(&connection, ANSWER).await;
    let body = note_hook("dev", "/ask Why is find_user unsafe?", 901, &head);
    let task_id = forge_system::deliver_gitlab(&app, "gitlab", connection.secret, "Note Hook", "note-ask", body).await;
    let task = wait_for_end(&app, &task_id).await;
    assert_eq!((task.state, task.kind), (pb::TaskState::Succeeded as i32, pb::TaskKind::Ask as i32), "{task:?}");
    assert_eq!(gitlab.with(|s| s.awards.clone()), [(901, "eyes".to_owned())]);
    let notes = gitlab.with(|s| s.notes.clone());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].1.contains("> Why is find_user unsafe?") && notes[0].1.contains("concatenates"), "{}", notes[0].1);
    assert!(gitlab.with(|s| s.discussions.is_empty()));
    assert_eq!(gitlab.violations(), Vec::<String>::new(), "every request has GitLab's documented shape");
    let created = agent_records(&app, "agent.task.create.ask").await;
    assert_eq!(
        (meta(&created[0], "triggered_by"), meta(&created[0], "delivery_id")),
        ("dev".into(), "note-ask".into())
    );
}
