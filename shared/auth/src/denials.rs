//! Audit of refused calls, aggregated per client address: the first denial of an address (and
//! caller) in a window is audited at once with everything known of it; the ones after it are
//! counted, and when the window closes (or at shutdown) one `access.denied` event carries their
//! count, first and last time, reasons and methods. A flood of refusals thus costs a map update
//! per call instead of an audit append, and is never lost silently.
//!
//! Memory is bounded: at most `max_addresses` windows are open apart; denials of further
//! addresses are counted in one "other addresses" window. Reasons and methods kept per window
//! are bounded too (the rest are counted under `other`).
//!
//! Where the events go is the service's [`DenialSink`]: the gateway appends them to the audit
//! service, the agent writes them to its outbox, the audit service appends to its own log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prfix_proto::audit::v1 as pb;
use prfix_proto::prost_types;
use prost_types::value::Kind;

/// The action of an aggregated record (not `auth.*`: those are the gateway's alone, and the
/// services write these records too).
pub const AGGREGATE_ACTION: &str = "access.denied";
/// The address of the window shared by addresses beyond the tracked ones.
pub const OTHER_ADDRESSES: &str = "other addresses";
/// Distinct reasons (and methods) kept per window; further ones are counted under `other`.
const MAX_KINDS: usize = 16;

/// Where audit events of denials are written.
#[tonic::async_trait]
pub trait DenialSink: Send + Sync {
    /// Writes `events` durably, or logs each one's content as an error when it cannot.
    async fn write(&self, events: Vec<pb::AuditEvent>);
}

/// Logs, as an error, the content of a denial's audit event that a [`DenialSink`] could not write,
/// so the refusal stays on record in the service's logs.
pub fn log_unwritten(event: &pb::AuditEvent, error: &str) {
    tracing::error!(
        %error,
        action = %event.action,
        actor = %event.actor.as_ref().map(|a| a.subject.as_str()).unwrap_or(""),
        ip = %event.actor_ip,
        request_id = %event.request_id,
        metadata = ?event.metadata,
        "denial could not be appended to the audit log"
    );
}

/// One refused call.
#[derive(Debug, Clone, Default)]
pub struct Denial {
    /// The client address (empty when unknown).
    pub address: String,
    /// The verified caller, when there was one (never a subject from an unverified token).
    pub subject: Option<String>,
    /// The verified caller's roles.
    pub roles: Vec<String>,
    /// The method path.
    pub action: String,
    /// Why it was refused.
    pub reason: String,
    /// The request id.
    pub request_id: String,
    /// The W3C trace id (empty without a trace).
    pub trace_id: String,
}

/// What a window has counted after its first denial.
struct Window {
    opened: Instant,
    address: String,
    subject: Option<String>,
    roles: Vec<String>,
    count: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    reasons: BTreeMap<String, u64>,
    actions: BTreeMap<String, u64>,
}

impl Window {
    fn new(denial: &Denial, opened: Instant) -> Self {
        Self {
            opened,
            address: denial.address.clone(),
            subject: denial.subject.clone(),
            roles: denial.roles.clone(),
            count: 0,
            first: None,
            last: None,
            reasons: BTreeMap::new(),
            actions: BTreeMap::new(),
        }
    }

    fn add(&mut self, denial: &Denial, at: DateTime<Utc>) {
        self.count += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
        bump(&mut self.reasons, &denial.reason);
        bump(&mut self.actions, &denial.action);
    }

    /// The aggregated record of the denials counted after the window's first.
    fn event(self, window: Duration, observed_by: &str) -> pb::AuditEvent {
        let mut metadata = prost_types::Struct::default();
        let time = |t: Option<DateTime<Utc>>| string(t.map(|t| t.to_rfc3339()).unwrap_or_default());
        metadata.fields.insert("count".to_owned(), number(self.count as f64));
        metadata.fields.insert("first_time".to_owned(), time(self.first));
        metadata.fields.insert("last_time".to_owned(), time(self.last));
        metadata.fields.insert("window_ms".to_owned(), number(window.as_millis() as f64));
        metadata.fields.insert("reasons".to_owned(), counts(self.reasons));
        metadata.fields.insert("actions".to_owned(), counts(self.actions));
        metadata.fields.insert("observed_by".to_owned(), string(observed_by.to_owned()));
        pb::AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            time: Some(prfix_runtime::time::to_timestamp(Utc::now())),
            actor: Some(pb::Actor {
                subject: self.subject.unwrap_or_else(|| "anonymous".to_owned()),
                roles: self.roles,
            }),
            actor_ip: self.address,
            action: AGGREGATE_ACTION.to_owned(),
            result: pb::AuditResult::Denied as i32,
            metadata: Some(metadata),
            ..Default::default()
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else if map.len() < MAX_KINDS {
        map.insert(key.to_owned(), 1);
    } else {
        *map.entry("other".to_owned()).or_default() += 1;
    }
}

fn string(value: String) -> prost_types::Value {
    prost_types::Value { kind: Some(Kind::StringValue(value)) }
}

fn number(value: f64) -> prost_types::Value {
    prost_types::Value { kind: Some(Kind::NumberValue(value)) }
}

fn counts(map: BTreeMap<String, u64>) -> prost_types::Value {
    let fields = map.into_iter().map(|(k, n)| (k, number(n as f64))).collect();
    prost_types::Value { kind: Some(Kind::StructValue(prost_types::Struct { fields })) }
}

/// The record of a denial audited at once (the first of its window), with `count` 1 so that the
/// counts of an address's records add up to its denials.
pub fn single_event(denial: &Denial, observed_by: &str) -> pb::AuditEvent {
    let mut metadata = prost_types::Struct::default();
    if !denial.reason.is_empty() {
        metadata.fields.insert("reason".to_owned(), string(denial.reason.clone()));
    }
    metadata.fields.insert("count".to_owned(), number(1.0));
    metadata.fields.insert("observed_by".to_owned(), string(observed_by.to_owned()));
    pb::AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        time: Some(prfix_runtime::time::to_timestamp(Utc::now())),
        actor: Some(pb::Actor {
            subject: denial.subject.clone().unwrap_or_else(|| "anonymous".to_owned()),
            roles: denial.roles.clone(),
        }),
        actor_ip: denial.address.clone(),
        action: denial.action.clone(),
        result: pb::AuditResult::Denied as i32,
        request_id: denial.request_id.clone(),
        trace_id: denial.trace_id.clone(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

/// Open windows by (address, verified subject).
#[derive(Default)]
struct Windows {
    open: HashMap<(String, Option<String>), Window>,
    other: Option<Window>,
}

/// The aggregating audit of denials of one process.
pub struct Denials {
    sink: Arc<dyn DenialSink>,
    window: Duration,
    max_addresses: usize,
    observed_by: &'static str,
    windows: Mutex<Windows>,
}

impl Denials {
    /// Audits the denials seen by `observed_by` (`gateway`, `agent`, `audit`) into `sink`, one
    /// record per address and `window`, with at most `max_addresses` windows apart. Starts a
    /// task that writes the records of closed windows; it ends when the returned value is dropped.
    pub fn start(
        sink: Arc<dyn DenialSink>,
        window: Duration,
        max_addresses: usize,
        observed_by: &'static str,
    ) -> Arc<Self> {
        let denials = Arc::new(Self::new(sink, window, max_addresses, observed_by));
        tokio::spawn(flush_closed(
            Arc::downgrade(&denials),
            (window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
        ));
        denials
    }

    /// Like [`Self::start`] without the task: closed windows are written only when
    /// [`Self::flush_closed_at`] or [`Self::flush_all`] is called (tests drive time themselves).
    pub fn new(sink: Arc<dyn DenialSink>, window: Duration, max_addresses: usize, observed_by: &'static str) -> Self {
        Self { sink, window, max_addresses: max_addresses.max(1), observed_by, windows: Mutex::default() }
    }

    /// Audits `denial`: at once when it opens a window, else counted into its window's record.
    pub async fn record(&self, denial: Denial) {
        self.record_at(denial, Instant::now()).await;
    }

    /// [`Self::record`] at `now`.
    pub async fn record_at(&self, denial: Denial, now: Instant) {
        let at = Utc::now();
        let first = {
            let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (denial.address.clone(), denial.subject.clone());
            if let Some(window) = windows.open.get_mut(&key) {
                window.add(&denial, at);
                false
            } else if windows.open.len() < self.max_addresses {
                windows.open.insert(key, Window::new(&denial, now));
                true
            } else if let Some(other) = windows.other.as_mut() {
                other.add(&denial, at);
                false
            } else {
                let mut other = Window::new(&denial, now);
                other.address = OTHER_ADDRESSES.to_owned();
                other.subject = None;
                other.roles = Vec::new();
                windows.other = Some(other);
                true
            }
        };
        if first {
            self.sink.write(vec![single_event(&denial, self.observed_by)]).await;
        }
    }

    /// Writes the records of windows open for `window` or longer at `now`, and closes them.
    pub async fn flush_closed_at(&self, now: Instant) {
        let closed = self.take(|w| now.saturating_duration_since(w.opened) >= self.window);
        self.write(closed).await;
    }

    /// Writes the records of every open window and closes them (at shutdown).
    pub async fn flush_all(&self) {
        let all = self.take(|_| true);
        self.write(all).await;
    }

    fn take(&self, closes: impl Fn(&Window) -> bool) -> Vec<Window> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let keys: Vec<_> = windows.open.iter().filter(|(_, w)| closes(w)).map(|(k, _)| k.clone()).collect();
        let mut taken: Vec<Window> = keys.iter().filter_map(|k| windows.open.remove(k)).collect();
        if windows.other.as_ref().is_some_and(&closes)
            && let Some(other) = windows.other.take()
        {
            taken.push(other);
        }
        taken
    }

    async fn write(&self, windows: Vec<Window>) {
        let events: Vec<_> =
            windows.into_iter().filter(|w| w.count > 0).map(|w| w.event(self.window, self.observed_by)).collect();
        // AppendBatch takes up to a thousand events; flood records of many addresses go in parts.
        for part in events.chunks(500) {
            self.sink.write(part.to_vec()).await;
        }
    }
}

async fn flush_closed(denials: Weak<Denials>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(denials) = denials.upgrade() else { return };
        denials.flush_closed_at(Instant::now()).await;
    }
}

/// The agent's sink: its audit outbox, relayed to the audit service like its other records.
#[tonic::async_trait]
impl DenialSink for prfix_runtime::outbox::Outbox {
    async fn write(&self, events: Vec<pb::AuditEvent>) {
        for event in &events {
            self.enqueue(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<pb::AuditEvent>>);

    #[tonic::async_trait]
    impl DenialSink for Recorded {
        async fn write(&self, events: Vec<pb::AuditEvent>) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend(events);
        }
    }

    fn denial(address: &str) -> Denial {
        Denial {
            address: address.to_owned(),
            action: "/prfix.agent.v1.AgentService/ListTasks".to_owned(),
            reason: "token rejected: InvalidSignature".to_owned(),
            ..Denial::default()
        }
    }

    fn count(event: &pb::AuditEvent) -> f64 {
        match event.metadata.as_ref().and_then(|m| m.fields.get("count")).and_then(|v| v.kind.as_ref()) {
            Some(Kind::NumberValue(n)) => *n,
            other => panic!("no count: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_flood_from_one_address_is_one_record_at_once_and_one_counted_record_per_window() {
        let sink = Arc::new(Recorded::default());
        let denials = Denials::new(sink.clone(), Duration::from_secs(60), 10, "agent");
        let start = Instant::now();
        for _ in 0..500 {
            denials.record_at(denial("10.0.0.1"), start).await;
        }
        assert_eq!(sink.0.lock().expect("lock").len(), 1, "the first denial is audited at once");
        denials.flush_closed_at(start + Duration::from_secs(59)).await;
        assert_eq!(sink.0.lock().expect("lock").len(), 1, "the window is still open");
        denials.flush_closed_at(start + Duration::from_secs(60)).await;
        let events = sink.0.lock().expect("lock").clone();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].action, AGGREGATE_ACTION);
        assert_eq!(events[1].actor_ip, "10.0.0.1");
        assert_eq!(events.iter().map(count).sum::<f64>(), 500.0, "the counts add up to the denials");
        // The next denial opens a new window and is audited at once again.
        denials.record_at(denial("10.0.0.1"), start + Duration::from_secs(61)).await;
        assert_eq!(sink.0.lock().expect("lock").len(), 3);
    }

    #[tokio::test]
    async fn addresses_beyond_the_cap_share_one_record_and_shutdown_writes_every_window() {
        let sink = Arc::new(Recorded::default());
        let denials = Denials::new(sink.clone(), Duration::from_secs(60), 2, "gateway");
        let now = Instant::now();
        for i in 0..100 {
            for _ in 0..3 {
                denials.record_at(denial(&format!("10.0.0.{i}")), now).await;
            }
        }
        // Two tracked addresses and the shared window each had one record at once.
        assert_eq!(sink.0.lock().expect("lock").len(), 3);
        denials.flush_all().await;
        let events = sink.0.lock().expect("lock").clone();
        assert_eq!(events.len(), 6);
        assert_eq!(events.iter().map(count).sum::<f64>(), 300.0, "nothing is lost");
        assert!(events.iter().any(|e| e.actor_ip == OTHER_ADDRESSES && count(e) == 98.0 * 3.0 - 1.0));
    }
}
