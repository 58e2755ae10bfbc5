//! The subcommands that talk to the gateway.

pub mod admin;
pub mod audit_list;
pub mod auth;
pub mod fix;
pub mod flags;
pub mod forge;
pub mod models;
pub mod password;
pub mod post;
pub mod review;
pub mod show;
pub mod task_ref;
pub mod tasks;

use futures::StreamExt;
use prfix_proto::agent::v1 as pb;

use crate::error::{CliError, CliResult};
use crate::progress::Progress;
use crate::session::{RenewError, Session};

/// Reconnections to WatchTask in a row without a new event before following gives up.
const MAX_RECONNECTS: u32 = 8;

/// Follows a task's events until it ends (updating `progress`), then reads the task.
///
/// A dropped WatchTask stream is resumed after the last event seen (`after_sequence`), with a
/// growing pause between attempts; the token is renewed as it nears its expiry, so a wait of any
/// length stays signed in. While it follows, the task is the one Ctrl-C cancels
/// ([`crate::interrupt`]).
pub async fn follow(session: &Session, task_id: &str, progress: &Progress) -> CliResult<pb::Task> {
    crate::interrupt::following(&session.gateway, task_id);
    let mut after_sequence = 0;
    let mut attempts = 0u32;
    loop {
        let seen = after_sequence;
        match watch(session, task_id, after_sequence, progress, &mut after_sequence).await {
            Ok(()) | Err(Failed::Transient) => {}
            Err(Failed::Fatal(e)) => return Err(e),
        }
        if after_sequence > seen {
            attempts = 0;
        }
        // The stream ended or broke: the task's state says whether it is over.
        match read_task(session, task_id).await {
            Ok(task) if task.state >= pb::TaskState::Succeeded as i32 => {
                crate::interrupt::finished(task_id);
                return Ok(task);
            }
            Ok(_) | Err(Failed::Transient) => {}
            Err(Failed::Fatal(e)) => return Err(e),
        }
        attempts += 1;
        if attempts > MAX_RECONNECTS {
            return Err(CliError::new(format!(
                "lost the connection to the gateway at {} while following task {task_id}; the task goes on: \
                 `prfix tasks watch {task_id}` follows it again",
                session.gateway
            )));
        }
        tokio::time::sleep(backoff(attempts)).await;
    }
}

/// Why following stopped for a moment or for good.
enum Failed {
    /// The connection dropped, or the gateway or a service is busy or restarting: try again.
    Transient,
    /// A refusal (the task is not there, not yours, the login is gone): stop with this error.
    Fatal(CliError),
}

impl Failed {
    fn of(session: &Session, what: &str, status: &tonic::Status) -> Self {
        use tonic::Code;
        match status.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted => {
                Self::Transient
            }
            _ => Self::Fatal(session.fail(what, status)),
        }
    }

    fn renewal(e: RenewError) -> Self {
        if e.unreachable { Self::Transient } else { Self::Fatal(e.error) }
    }
}

/// One WatchTask stream from `after`, until it ends: each event shown on `progress` (a failed
/// part as a line that stays), its sequence kept in `last`.
async fn watch(
    session: &Session,
    task_id: &str,
    after: i64,
    progress: &Progress,
    last: &mut i64,
) -> Result<(), Failed> {
    const WHAT: &str = "watching the task";
    session.renew(false).await.map_err(Failed::renewal)?;
    let request = pb::WatchTaskRequest { task_id: task_id.to_owned(), after_sequence: after };
    let stream = match session.agent().watch_task(request.clone()).await {
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            session.renew(true).await.map_err(Failed::renewal)?;
            session.agent().watch_task(request).await
        }
        other => other,
    };
    let mut stream = stream.map_err(|s| Failed::of(session, WHAT, &s))?.into_inner();
    while let Some(item) = stream.next().await {
        let Some(event) = item.map_err(|s| Failed::of(session, WHAT, &s))?.event else { continue };
        *last = (*last).max(event.sequence);
        if let Some(text) = describe_event(&event) {
            let text = crate::report::printable(&text);
            if matches!(event.payload, Some(pb::task_event::Payload::FailedPart(_))) {
                progress.keep(&text);
            }
            progress.set(text);
        }
    }
    Ok(())
}

/// GetTask with a fresh token.
async fn read_task(session: &Session, task_id: &str) -> Result<pb::Task, Failed> {
    const WHAT: &str = "reading the task";
    session.renew(false).await.map_err(Failed::renewal)?;
    let request = pb::GetTaskRequest { task_id: task_id.to_owned() };
    let response = match session.agent().get_task(request.clone()).await {
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            session.renew(true).await.map_err(Failed::renewal)?;
            session.agent().get_task(request).await
        }
        other => other,
    };
    let task = response.map_err(|s| Failed::of(session, WHAT, &s))?.into_inner().task;
    task.ok_or_else(|| Failed::Fatal(CliError::new("the gateway sent no task")))
}

/// The pause before attempt `attempt` (from 1): 0.5 s doubling to at most 8 s.
fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(500u64 << attempt.saturating_sub(1).min(4))
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
        Payload::FailedPart(p) => format!("warning: review {}", crate::report::failed_part_line(p)),
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
