//! Tasks of a `prfix eval` run carry its id (`eval_run_id` in the options): on the task, and in the
//! audit records of its creation and of its end, so the audit log shows what each run sent where.
//! An id that is too long or holds other characters is refused naming the field.

use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1::AuditEvent;
use prfix_tests::git::small_change;
use prfix_tests::{Reply, spawn_app};
use tonic::Code;

const MODEL: &str = "qwen2.5-coder:14b";

fn text(event: &AuditEvent, key: &str) -> Option<String> {
    prfix_tests::metadata::text(event.metadata.as_ref(), key)
}

#[tokio::test]
async fn a_review_of_an_eval_run_keeps_the_run_id_on_the_task_and_in_its_audit_records() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let mut client = app.agent_client();
    let options = pb::ReviewOptions { eval_run_id: "eval-review:2026-12-06.a_1".into(), ..Default::default() };
    let created = client
        .create_review(pb::CreateReviewRequest { change_set: Some(small_change()), options: Some(options) })
        .await
        .expect("review created")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!(created.eval_run_id, "eval-review:2026-12-06.a_1");
    let task = prfix_tests::tasks::wait_for_end(&mut client, &created.task_id, Duration::from_secs(15)).await;
    assert_eq!(task.state, pb::TaskState::Succeeded as i32, "{}", task.error);
    assert_eq!(task.eval_run_id, "eval-review:2026-12-06.a_1");

    // A review outside a run carries no id.
    let plain = client
        .create_review(pb::CreateReviewRequest { change_set: Some(small_change()), options: None })
        .await
        .expect("review created")
        .into_inner()
        .task
        .expect("a task");
    assert_eq!(plain.eval_run_id, "");
    prfix_tests::tasks::wait_for_end(&mut client, &plain.task_id, Duration::from_secs(15)).await;

    // ListTasks finds a run's tasks by its id, and names the field when the id is not one.
    let listed = |run: &str| pb::ListTasksRequest { eval_run_id: run.into(), ..Default::default() };
    let of_run = client.list_tasks(listed("eval-review:2026-12-06.a_1")).await.expect("listed").into_inner();
    assert_eq!(of_run.tasks.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(), [created.task_id.as_str()]);
    let all = client.list_tasks(listed("")).await.expect("listed").into_inner();
    assert_eq!(all.tasks.len(), 2, "no filter lists the run's task and the plain one");
    let bad = client.list_tasks(listed("no spaces allowed")).await.expect_err("a bad id is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("eval_run_id"), "{}", bad.message());

    // The creation and the end are audited with the run id (read from the agent's outbox).
    let db = app.db.connect().await;
    let rows = db.query("SELECT payload FROM agent.audit_outbox ORDER BY id", &[]).await.expect("outbox");
    let events: Vec<AuditEvent> = rows
        .iter()
        .map(|r| {
            let bytes: Vec<u8> = r.get(0);
            <AuditEvent as prfix_proto::prost::Message>::decode(bytes.as_slice()).expect("decodes")
        })
        .collect();
    let of = |task_id: &str, action: &str| {
        events
            .iter()
            .find(|e| e.resource == format!("tasks/{task_id}") && e.action == action)
            .unwrap_or_else(|| panic!("no {action} record of {task_id}: {events:#?}"))
    };
    for action in ["agent.task.create.review", "agent.task.succeeded"] {
        assert_eq!(text(of(&task.task_id, action), "eval_run_id").as_deref(), Some("eval-review:2026-12-06.a_1"));
        assert_eq!(text(of(&plain.task_id, action), "eval_run_id"), None);
    }
    let stored: Option<String> = db
        .query_one("SELECT eval_run_id FROM agent.tasks WHERE task_id = $1::text::uuid", &[&task.task_id])
        .await
        .expect("the task's row")
        .get(0);
    assert_eq!(stored.as_deref(), Some("eval-review:2026-12-06.a_1"));
}

#[tokio::test]
async fn an_invalid_eval_run_id_is_refused_as_an_invalid_argument_naming_the_field() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    let mut client = app.agent_client();
    for bad in ["x".repeat(65), "run id".to_owned(), "../etc".to_owned(), "r\u{e9}sum\u{e9}".to_owned()] {
        let review = client
            .create_review(pb::CreateReviewRequest {
                change_set: Some(small_change()),
                options: Some(pb::ReviewOptions { eval_run_id: bad.clone(), ..Default::default() }),
            })
            .await
            .expect_err("refused");
        assert_eq!(review.code(), Code::InvalidArgument, "{bad}: {review:?}");
        assert!(review.message().contains("options.eval_run_id"), "{}", review.message());
        let fix = client
            .create_fix(pb::CreateFixRequest {
                change_set: Some(small_change()),
                problem: Some(pb::FixProblem { instruction: "return 1".into(), ..Default::default() }),
                options: Some(pb::FixOptions { eval_run_id: bad.clone(), ..Default::default() }),
            })
            .await
            .expect_err("refused");
        assert_eq!(fix.code(), Code::InvalidArgument, "{bad}: {fix:?}");
        assert!(fix.message().contains("options.eval_run_id"), "{}", fix.message());
    }
    let db = app.db.connect().await;
    let count: i64 = db.query_one("SELECT count(*) FROM agent.tasks", &[]).await.expect("count").get(0);
    assert_eq!(count, 0, "nothing was queued");
}
