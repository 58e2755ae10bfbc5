//! The worker pool: claims tasks from the shared queue, renews their leases while working, and
//! ends them. Any number of replicas run it on one database.
//!
//! A task's work, its lease renewal, its cancellation and the replica's shutdown race in one
//! `select!`: whichever ends first drops the others, and dropping the work drops its HTTP stream
//! to Ollama. All of a replica's tasks live in one `JoinSet` owned by the pool's future, so a
//! replica that is killed (the future dropped) stops working at once, and its leases run out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prfix_proto::agent::v1 as pb;
use prfix_proto::audit::v1 as audit;
use prfix_runtime::trace::TraceContext;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::run::{self, Engine, Job, RunError};
use crate::tasks::{self, Claimed, Finish};

/// Local handles on running tasks, so a CancelTask served by this replica stops the work at once
/// (other replicas notice at their next lease renewal).
#[derive(Clone, Default)]
pub struct Running {
    tokens: Arc<Mutex<HashMap<Uuid, CancellationToken>>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops the local work on `task_id`, if any.
    pub fn cancel(&self, task_id: Uuid) {
        if let Some(token) = self.lock().get(&task_id) {
            token.cancel();
        }
    }
}

/// The pool of one replica.
pub struct Workers {
    /// The replica's name in leases (host, process and a random part).
    pub id: String,
    /// Shared engine parts.
    pub engine: Arc<Engine>,
    /// Local running tasks.
    pub running: Running,
}

fn renew_every(lease: Duration) -> Duration {
    (lease / 3).min(Duration::from_secs(2)).max(Duration::from_millis(50))
}

impl Workers {
    /// Claims and works tasks until `stop`; then hands running tasks back to the queue.
    pub async fn run(self, stop: CancellationToken) {
        let settings = &self.engine.settings;
        let lease = Duration::from_millis(settings.lease_ms);
        let poll = Duration::from_millis(settings.queue_poll_ms);
        let slots = Arc::new(Semaphore::new(settings.workers));
        let mut set = JoinSet::new();
        tracing::info!(worker = %self.id, workers = settings.workers, lease_ms = settings.lease_ms, "agent workers started");
        loop {
            while set.try_join_next().is_some() {}
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            };
            // Each claim holds the lease under its own name, so two slots of this replica can never
            // both hold one task (after a pause longer than the lease, say).
            let claim_id = format!("{}/{}", self.id, &Uuid::new_v4().simple().to_string()[..8]);
            let give_up = |task: &tasks::TaskRow, error: &str| {
                completion_record(
                    task,
                    &TraceContext::parse(&task.traceparent).map(|t| t.trace_id()).unwrap_or_default(),
                    "agent.task.failed",
                    audit::AuditResult::Failure,
                    error,
                    0,
                    0,
                )
            };
            let claimed =
                match tasks::claim(&self.engine.pool, &claim_id, lease, settings.max_task_attempts, &give_up).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim a task; retrying");
                        None
                    }
                };
            let Some(claimed) = claimed else {
                drop(permit);
                let woken = self.engine.changed.notified();
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(poll) => {}
                    () = woken => {}
                }
                continue;
            };
            let token = stop.child_token();
            self.running.lock().insert(claimed.row.task_id, token.clone());
            let engine = self.engine.clone();
            let running = self.running.clone();
            let worker = claim_id;
            // The task's span joins the trace of the call that created it.
            let span = tracing::info_span!(
                "task",
                task_id = %claimed.row.task_id,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                otel.name = "agent task",
            );
            let trace = prfix_runtime::trace::attach(&span, TraceContext::parse(&claimed.row.traceparent));
            set.spawn(
                async move {
                    let task_id = claimed.row.task_id;
                    work(engine, worker, claimed, lease, token, trace).await;
                    running.lock().remove(&task_id);
                    drop(permit);
                }
                .instrument(span),
            );
        }
        // Shutdown: every task's token is a child of `stop`, so each work future hands its task back.
        while set.join_next().await.is_some() {}
        tracing::info!(worker = %self.id, "agent workers stopped");
    }
}

enum Ended {
    Done(Result<pb::TaskResult, RunError>),
    Lost,
    Stopped,
}

async fn keep_lease(engine: &Engine, task_id: Uuid, worker: &str, lease: Duration) {
    let every = renew_every(lease);
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, tasks::renew(&engine.pool, task_id, worker, lease)).await {
            Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
            Ok(Ok(false)) => return,
            Ok(Err(e)) => tracing::warn!(%task_id, error = %e, "cannot renew the task's lease"),
            Err(_) => tracing::warn!(%task_id, "renewing the task's lease timed out"),
        }
        // Stop before the lease can run out: past it another replica may have the task.
        if last_ok.elapsed() + every * 2 >= lease {
            tracing::warn!(%task_id, "the task's lease could not be renewed in time; stopping its work");
            return;
        }
    }
}

async fn work(
    engine: Arc<Engine>,
    worker: String,
    claimed: Claimed,
    lease: Duration,
    token: CancellationToken,
    trace: TraceContext,
) {
    let task_id = claimed.row.task_id;
    let kind = claimed.row.kind;
    tracing::info!(%task_id, kind, attempt = claimed.row.attempts, "task started");
    let job = Job::new(task_id, worker.clone(), engine.clone(), trace, claimed.row.flags.clone());
    let ended = tokio::select! {
        result = run::execute(&job, kind, claimed.row.forge.is_some(), &claimed.request) => Ended::Done(result),
        () = keep_lease(&engine, task_id, &worker, lease) => Ended::Lost,
        () = token.cancelled() => Ended::Stopped,
    };
    let finish = match ended {
        Ended::Done(Ok(result)) => Finish::Succeeded(result),
        Ended::Done(Err(RunError::Lost)) | Ended::Lost => {
            tracing::info!(%task_id, "task stopped here: cancelled, or its lease went to another replica");
            return;
        }
        Ended::Done(Err(e)) => Finish::Failed(e.to_string()),
        Ended::Stopped => {
            // A local cancel already ended the task in the database; a shutdown hands it back.
            match tasks::release(&engine.pool, task_id, &worker).await {
                Ok(true) => tracing::info!(%task_id, "task handed back to the queue"),
                Ok(false) => tracing::info!(%task_id, "task cancelled"),
                Err(e) => tracing::warn!(%task_id, error = %e, "cannot hand the task back; its lease will run out"),
            }
            return;
        }
    };
    let (action, result, detail) = match &finish {
        Finish::Succeeded(_) => ("agent.task.succeeded", audit::AuditResult::Success, String::new()),
        Finish::Failed(e) => ("agent.task.failed", audit::AuditResult::Failure, e.clone()),
    };
    let record = completion_record(
        &claimed.row,
        &trace.trace_id(),
        action,
        result,
        &detail,
        job.calls(),
        job.redactions.load(std::sync::atomic::Ordering::Relaxed),
    );
    let stored = tasks::finish(&engine.pool, task_id, &worker, finish, &record).await;
    engine.changed.notify_waiters();
    match stored {
        Ok(true) => tracing::info!(%task_id, action, calls = job.calls(), "task ended"),
        Ok(false) => tracing::info!(%task_id, "task result dropped: cancelled, or the lease went to another replica"),
        Err(e) => {
            tracing::warn!(%task_id, error = %e, "cannot store the task's end; another replica will take it over")
        }
    }
}

fn completion_record(
    task: &tasks::TaskRow,
    trace_id: &str,
    action: &str,
    result: audit::AuditResult,
    detail: &str,
    model_calls: u32,
    redactions: u32,
) -> audit::AuditEvent {
    use prost_types::value::Kind;
    let (task_id, owner, kind) = (task.task_id, task.owner.as_str(), task.kind);
    let mut metadata = prost_types::Struct::default();
    let mut put = |k: &str, v: Kind| {
        metadata.fields.insert(k.to_owned(), prost_types::Value { kind: Some(v) });
    };
    put("owner", Kind::StringValue(owner.to_owned()));
    if let Some(key) = &task.api_key_id {
        put("api_key_id", Kind::StringValue(key.clone()));
    }
    if let Some(run) = &task.eval_run_id {
        put("eval_run_id", Kind::StringValue(run.clone()));
    }
    put(
        "kind",
        Kind::StringValue(pb::TaskKind::try_from(i32::from(kind)).map_or("unknown", |k| k.as_str_name()).to_owned()),
    );
    put("model_calls", Kind::NumberValue(f64::from(model_calls)));
    put("redactions", Kind::NumberValue(f64::from(redactions)));
    if !detail.is_empty() {
        put("error", Kind::StringValue(detail.chars().take(500).collect()));
    }
    // A forge task's end names its pull request and who caused it, as its creation does.
    if let Some(pull) = &task.forge {
        for (key, value) in [
            ("forge", pull.forge.clone()),
            ("repository", pull.repository.clone()),
            ("pull_request", pull.number.to_string()),
            ("head_sha", pull.head_sha.clone()),
            ("triggered_by", pull.triggered_by.clone()),
            ("author", pull.author.clone()),
            ("delivery_id", pull.delivery_id.clone()),
        ] {
            if !value.is_empty() {
                put(key, Kind::StringValue(value));
            }
        }
    }
    // The variants the task ran with, so findings and failures can be compared by variant.
    task.flags.audit_into(&mut metadata);
    audit::AuditEvent {
        event_id: Uuid::new_v4().to_string(),
        time: Some(prfix_runtime::time::to_timestamp(chrono::Utc::now())),
        actor: Some(audit::Actor { subject: "service:agent".to_owned(), roles: vec!["service".to_owned()] }),
        action: action.to_owned(),
        resource: format!("tasks/{task_id}"),
        result: result as i32,
        trace_id: trace_id.to_owned(),
        metadata: Some(metadata),
        ..Default::default()
    }
}
