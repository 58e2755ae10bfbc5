//! Ctrl-C while a task runs: the command stops at once (exit 130), and the task it was following is
//! cancelled on the server, so an abandoned review does not keep a model busy. A second Ctrl-C
//! during the cancellation leaves without waiting for it.
//!
//! The task being followed is kept here, for the process (its id and gateway, never a credential),
//! because the command that is interrupted is not the code that cancels: `prfix fix` puts the
//! working tree back on Ctrl-C, then `main` cancels the task.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use prfix_proto::agent::v1 as pb;

use crate::error::{CliError, CliResult, EXIT_INTERRUPTED};
use crate::session::Session;

/// The task this process follows: `(gateway, task id)`.
static FOLLOWED: Mutex<Option<(String, String)>> = Mutex::new(None);

/// How long the cancellation may take before the command leaves anyway.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Notes that the process follows `task_id` on `gateway` (until [`finished`]).
pub fn following(gateway: &str, task_id: &str) {
    if let Ok(mut followed) = FOLLOWED.lock() {
        *followed = Some((gateway.to_owned(), task_id.to_owned()));
    }
}

/// Notes that the followed task reached a final state: there is nothing to cancel any more.
pub fn finished(task_id: &str) {
    if let Ok(mut followed) = FOLLOWED.lock()
        && followed.as_ref().is_some_and(|(_, id)| id == task_id)
    {
        *followed = None;
    }
}

/// The task followed and not yet finished, taken (so it is cancelled once).
fn take() -> Option<(String, String)> {
    FOLLOWED.lock().ok().and_then(|mut followed| followed.take())
}

/// Runs `work`; a Ctrl-C stops it and gives the interrupted error (exit 130).
pub async fn interruptible<T>(work: impl Future<Output = CliResult<T>>) -> CliResult<T> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(CliError { message: "interrupted".to_owned(), code: EXIT_INTERRUPTED }),
    }
}

/// After an interrupted command: cancels the task it followed, if any, and adds what happened to
/// `error`'s message (with the task id). A second Ctrl-C leaves at once.
pub async fn cancel_followed(mut error: CliError) -> CliError {
    let Some((gateway, task_id)) = take() else {
        return error;
    };
    let cancel = async {
        let session = Session::open(&gateway).await?;
        let id = task_id.clone();
        let task = session
            .call("cancelling the task", |mut agent| {
                let request = pb::CancelTaskRequest { task_id: id.clone() };
                async move { agent.cancel_task(request).await }
            })
            .await?
            .task
            .ok_or_else(|| CliError::new("the gateway sent no task"))?;
        Ok::<_, CliError>(task)
    };
    eprintln!("prfix: cancelling task {task_id} on the server (Ctrl-C again to leave now)");
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(CANCEL_TIMEOUT, cancel) => outcome,
        _ = tokio::signal::ctrl_c() => {
            error.message.push_str(&format!("; task {task_id} may still run: `prfix tasks cancel {task_id}` stops it"));
            return error;
        }
    };
    let said = match outcome {
        Ok(Ok(task)) => format!("; task {task_id} is {}", crate::commands::state_name(task.state)),
        Ok(Err(e)) => format!("; task {task_id} was not cancelled ({}): `prfix tasks cancel {task_id}`", e.message),
        Err(_) => format!("; task {task_id} was not cancelled in time: `prfix tasks cancel {task_id}`"),
    };
    error.message.push_str(&said);
    error
}
