//! `WatchTask`'s stream: a task's events from a position, then the new ones as they come.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use prfix_proto::agent::v1 as pb;
use prfix_runtime::error::to_status;
use tonic::Status;
use uuid::Uuid;

use crate::run::Engine;
use crate::tasks;

/// How often a watcher looks for events another replica appended.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// Replays a task's events after `after`, then follows new ones until the final state change.
/// Events this replica appends wake the stream at once; others are found by polling.
pub(super) fn async_stream_events(
    engine: Arc<Engine>,
    task_id: Uuid,
    after: i64,
) -> impl Stream<Item = Result<pb::WatchTaskResponse, Status>> + Send {
    futures::stream::unfold(
        (engine, after, std::collections::VecDeque::<pb::TaskEvent>::new(), false),
        move |(engine, mut last, mut buffered, mut ended)| async move {
            loop {
                if let Some(event) = buffered.pop_front() {
                    last = event.sequence;
                    if let Some(pb::task_event::Payload::StateChange(change)) = &event.payload
                        && change.to >= pb::TaskState::Succeeded as i32
                    {
                        ended = true;
                        buffered.clear();
                    }
                    let item = Ok(pb::WatchTaskResponse { event: Some(event) });
                    return Some((item, (engine, last, buffered, ended)));
                }
                if ended {
                    return None;
                }
                let changed = engine.changed.clone();
                let woken = changed.notified();
                match tasks::events_after(&engine.pool, task_id, last, 200).await {
                    Ok(events) if !events.is_empty() => {
                        buffered.extend(events);
                        continue;
                    }
                    Ok(_) => {
                        // Nothing new: a final task whose last event was already sent ends the stream
                        // (a watcher resuming after the end, or past it).
                        match tasks::position(&engine.pool, task_id).await {
                            Ok((state, last_sequence)) if state >= tasks::state::SUCCEEDED && last >= last_sequence => {
                                return None;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                ended = true;
                                return Some((Err(to_status(e)), (engine, last, buffered, ended)));
                            }
                        }
                    }
                    Err(e) => {
                        ended = true;
                        return Some((Err(to_status(e)), (engine, last, buffered, ended)));
                    }
                }
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep(WATCH_POLL) => {}
                }
            }
        },
    )
}
