//! The `forge.post` kill switch: with it off, a pull request's review is still computed and kept on
//! its task, and nothing is posted on the forge (no review, no comment, no check); the task and its
//! audit record say the flag held it.

use prfix_flags::FlagValue;
use prfix_proto::agent::v1 as pb;
use prfix_tests::fake_forge::FakeGitHub;
use prfix_tests::forge_system::github::Hooks;
use prfix_tests::forge_system::{self, Branch, Connection, agent_records, wait_for_end};

const SECRET: &str = "github-webhook-secret-0123456789";
const TOKEN: &str = "ghs_installation_token";
const REPOSITORY: &str = "octo-org/octo-repo";
const HOOKS: Hooks = Hooks { name: "github", repository: REPOSITORY, secret: SECRET, number: 7 };

const BASE: &str = "def get_user(conn, user_id):\n    return conn.execute(\"SELECT 1\")\n";
const FIND: &str = "\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n";
const FINDINGS: &str = r#"{"findings": [
  {"path": "app/db.py", "line": 6, "end_line": 7, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query."}
]}"#;

#[tokio::test]
async fn with_forge_post_off_the_review_is_computed_and_kept_but_nothing_is_posted() {
    let github = FakeGitHub::start_github(TOKEN).await;
    let connection = Connection {
        name: "github",
        kind: prfix_gateway::ForgeKind::GitHub,
        api_url: github.api_url(),
        repository: REPOSITORY,
        secret: SECRET,
        token: TOKEN,
    };
    let app = forge_system::spawn_with(&connection, FINDINGS, |agent| {
        agent.flags.values.insert("forge.post".to_owned(), FlagValue::Switch(false));
    })
    .await;
    let project = Branch::new("app/db.py", BASE);
    let (head, diff) = project.commit(&format!("{BASE}{FIND}"), "find users by name");
    github.add_pull(REPOSITORY, 7, &head, &diff);
    github.add_file(REPOSITORY, &head, "app/db.py", &format!("{BASE}{FIND}"));

    let body = HOOKS.pull_request("opened", &head, false);
    let task_id = HOOKS.start(&app, "pull_request", "5d2a6b1e-0001-4c1f-9d43-6f1b2c3d4e5f", body).await;
    let ended = wait_for_end(&app, &task_id).await;
    assert_eq!(ended.state, pb::TaskState::Succeeded as i32, "{ended:?}");

    // Computed and kept on the task.
    let review = match ended.result.as_ref().and_then(|r| r.result.as_ref()) {
        Some(pb::task_result::Result::Review(review)) => review.clone(),
        other => panic!("a review result: {other:?}"),
    };
    assert_eq!(review.findings.len(), 1, "{review:?}");
    assert_eq!(review.findings[0].title, "SQL injection");

    // Nothing posted: the pull request was read, never written to.
    let (reviews, comments, runs) = github.with(|s| (s.reviews.len(), s.comments.len(), s.check_runs.len()));
    assert_eq!((reviews, comments, runs), (0, 0, 0), "nothing is posted with forge.post off");
    assert!(!github.calls("pulls/get").is_empty(), "the pull request was read");
    assert_eq!(github.violations(), Vec::<String>::new());

    // The task and its creation record say the flag held the result.
    let held = ended.flags.iter().find(|f| f.flag == "forge.post").expect("forge.post is recorded on the task");
    assert!(!held.enabled && held.value == "hold", "{held:?}");
    let created = agent_records(&app, "agent.task.create.review").await;
    let flags = created[0].metadata.as_ref().and_then(|m| m.fields.get("flags")).expect("the record names the flags");
    let shown = match &flags.kind {
        Some(prost_types::value::Kind::StructValue(s)) => s.fields.get("forge.post").cloned(),
        _ => None,
    };
    assert_eq!(
        shown.and_then(|v| match v.kind {
            Some(prost_types::value::Kind::StringValue(s)) => Some(s),
            _ => None,
        }),
        Some("off".to_owned())
    );
}
