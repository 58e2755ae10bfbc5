//! The subcommands that talk to the gateway.

pub mod admin;
pub mod auth;
pub mod fix;
pub mod review;
pub mod tasks;

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;

use crate::error::{CliError, CliResult};
use crate::progress::Progress;
use crate::session::Session;

/// Follows a task's events until it ends (updating `progress`), then reads the task.
pub async fn follow(session: &Session, task_id: &str, progress: &Progress) -> CliResult<pb::Task> {
    let mut agent = session.agent();
    let watched = agent.watch_task(pb::WatchTaskRequest { task_id: task_id.to_owned(), after_sequence: 0 }).await;
    if let Ok(stream) = watched {
        let mut stream = stream.into_inner();
        while let Some(Ok(item)) = stream.next().await {
            if let Some(text) = item.event.as_ref().and_then(describe_event) {
                progress.set(crate::report::printable(&text));
            }
        }
    }
    // The stream ended (or broke): the task's state says where it is; poll until it is final.
    loop {
        let task = agent
            .get_task(pb::GetTaskRequest { task_id: task_id.to_owned() })
            .await
            .map_err(|s| session.fail("reading the task", &s))?
            .into_inner()
            .task
            .ok_or_else(|| CliError::new("the gateway sent no task"))?;
        if task.state >= pb::TaskState::Succeeded as i32 {
            return Ok(task);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// One line for a task event, for progress and `prfix tasks watch`.
pub fn describe_event(event: &pb::TaskEvent) -> Option<String> {
    use pb::task_event::Payload;
    Some(match event.payload.as_ref()? {
        Payload::StateChange(c) => format!("{} ({})", state_name(c.to), c.reason),
        Payload::ModelCall(c) if c.error.is_empty() => format!(
            "{}: {} on {} ({} prompt + {} output tokens, {:.1} s)",
            c.purpose,
            c.model,
            c.endpoint,
            c.prompt_tokens,
            c.output_tokens,
            c.duration_ms as f64 / 1000.0
        ),
        Payload::ModelCall(c) => format!("{}: {} failed: {}", c.purpose, c.model, c.error),
        Payload::Finding(f) => format!("finding: {}:{} {}", f.path, f.line, f.title),
        Payload::Patch(p) => format!("patch ready: {} files", p.files.len()),
        Payload::Progress(p) => p.message.clone(),
    })
}

/// A timestamp as `2026-11-26 03:12:23` (UTC), `-` when unset.
pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// `running`, `succeeded`...
pub fn state_name(state: i32) -> String {
    pb::TaskState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("TASK_STATE_").to_lowercase())
        .unwrap_or_else(|_| format!("state {state}"))
}

/// `review`, `describe`, `fix`.
pub fn kind_name(kind: i32) -> String {
    pb::TaskKind::try_from(kind)
        .map(|k| k.as_str_name().trim_start_matches("TASK_KIND_").to_lowercase())
        .unwrap_or_else(|_| format!("kind {kind}"))
}

/// A task that did not succeed, said in one line.
pub fn not_succeeded(what: &str, task: &pb::Task) -> CliError {
    if task.state == pb::TaskState::Cancelled as i32 {
        CliError::new(format!("{what} was cancelled (task {})", task.task_id))
    } else {
        CliError::new(format!("{what} failed: {} (task {})", task.error, task.task_id))
    }
}
