//! What the agent does with the flag changes it sees: an audit record of each (through its outbox),
//! and, when `flags.on_disable = "cancel"`, the cancellation of queued and running tasks whose kill
//! switch is now off for their own context.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::Pool;
use prfix_flags::{ChangeSink, FlagChange, Flags, OnDisable};
use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1 as audit;
use prfix_runtime::outbox::Outbox;
use uuid::Uuid;

use crate::flags::switch_of;
use crate::tasks;
use crate::worker::Running;

/// The agent's sink of flag changes.
pub struct FlagChanges {
    /// Where audit records go.
    pub outbox: Outbox,
    /// The task store.
    pub pool: Pool,
    /// What happens to tasks whose kill switch goes off.
    pub on_disable: OnDisable,
    /// The flags (to evaluate the switch for each task's context).
    pub flags: Flags,
    /// This replica's running tasks (stopped at once when cancelled here).
    pub running: Running,
    /// Woken after cancellations (watchers see them at once).
    pub changed: Arc<tokio::sync::Notify>,
    /// This replica's name, in the records.
    pub replica: String,
}

fn text(value: &str) -> prost_types::Value {
    prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(value.to_owned())) }
}

fn service_record(action: &str, resource: String, fields: Vec<(&str, String)>) -> audit::AuditEvent {
    let mut metadata = prost_types::Struct::default();
    for (key, value) in fields {
        metadata.fields.insert(key.to_owned(), text(&value));
    }
    audit::AuditEvent {
        event_id: Uuid::new_v4().to_string(),
        time: Some(prfix_runtime::time::to_timestamp(chrono::Utc::now())),
        actor: Some(audit::Actor { subject: "service:agent".to_owned(), roles: vec!["service".to_owned()] }),
        action: action.to_owned(),
        resource,
        result: audit::AuditResult::Success as i32,
        metadata: Some(metadata),
        ..Default::default()
    }
}

impl FlagChanges {
    async fn record(&self, change: &FlagChange) {
        let record = service_record(
            "flags.changed",
            format!("flags/{}", change.flag),
            vec![
                ("flag", change.flag.clone()),
                ("source", change.source.as_str().to_owned()),
                ("before", FlagChange::describe(change.before.as_ref(), 2000)),
                ("after", FlagChange::describe(change.after.as_ref(), 2000)),
                ("replica", self.replica.clone()),
            ],
        );
        self.outbox.enqueue(&record).await;
    }

    /// Cancels the active tasks of `kind` whose switch `flag` is off for their context.
    async fn cancel_switched_off(&self, kind: pb::TaskKind, flag: &str) {
        let active = match tasks::active_of_kind(&self.pool, kind as i16).await {
            Ok(active) => active,
            Err(e) => {
                tracing::error!(flag, error = %e, "cannot list the tasks to cancel for a switched-off flag");
                return;
            }
        };
        for (task_id, flags) in active {
            let evaluation = self.flags.peek(flag, &flags.context.to_context());
            if evaluation.enabled {
                continue;
            }
            let by = format!("flag {flag}");
            let record = service_record(
                "agent.task.cancel",
                format!("tasks/{task_id}"),
                vec![("kind", kind.as_str_name().to_owned()), ("reason", format!("the flag `{flag}` is off"))],
            );
            match tasks::cancel(&self.pool, task_id, &by, &record).await {
                Ok(_) => {
                    self.running.cancel(task_id);
                    tracing::info!(%task_id, flag, "task cancelled: its kill switch is off");
                }
                // Ended meanwhile, or cancelled by another replica that saw the same change.
                Err(tasks::TaskError::WrongState(_)) => {}
                Err(e) => tracing::warn!(%task_id, flag, error = %e, "cannot cancel a task whose kill switch is off"),
            }
        }
        self.changed.notify_waiters();
    }
}

impl ChangeSink for FlagChanges {
    fn changed(&self, changes: Vec<FlagChange>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for change in &changes {
                self.record(change).await;
            }
            if self.on_disable != OnDisable::Cancel {
                return;
            }
            for kind in [pb::TaskKind::Review, pb::TaskKind::Describe, pb::TaskKind::Fix, pb::TaskKind::Ask] {
                if let Some((flag, _)) = switch_of(kind)
                    && changes.iter().any(|c| c.flag == flag)
                {
                    self.cancel_switched_off(kind, flag).await;
                }
            }
        })
    }
}
