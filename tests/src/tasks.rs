//! Waiting for agent tasks and reading their events, as a client would.

use std::time::Duration;

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;
use prfix_proto::agent::v1::agent_service_client::AgentServiceClient;

use crate::app::Authed;

/// Polls a task until it reaches a final state; panics after `limit`.
pub async fn wait_for_end(client: &mut AgentServiceClient<Authed>, task_id: &str, limit: Duration) -> pb::Task {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let task = client
            .get_task(pb::GetTaskRequest { task_id: task_id.to_owned() })
            .await
            .expect("get task")
            .into_inner()
            .task
            .expect("a task");
        if task.state >= pb::TaskState::Succeeded as i32 {
            return task;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {task_id} did not end within {limit:?}: {task:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a review of `change_set` with default options and waits for its end; panics after
/// `limit`.
pub async fn review(client: &mut AgentServiceClient<Authed>, change_set: pb::ChangeSet, limit: Duration) -> pb::Task {
    let created = client
        .create_review(pb::CreateReviewRequest { change_set: Some(change_set), options: None })
        .await
        .expect("review created")
        .into_inner()
        .task
        .expect("a task");
    wait_for_end(client, &created.task_id, limit).await
}

/// Every event of a task, by watching it from the start to its end.
pub async fn events(client: &mut AgentServiceClient<Authed>, task_id: &str) -> Vec<pb::TaskEvent> {
    let mut stream = client
        .watch_task(pb::WatchTaskRequest { task_id: task_id.to_owned(), after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.expect("event").event.expect("event"));
    }
    out
}
