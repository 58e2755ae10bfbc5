//! The live copy of the revocations: loaded from Postgres, kept current by `LISTEN`, confirmed by a
//! periodic check of the store's change counter, and refusing every token once it cannot be
//! confirmed current within the staleness bound (fail closed).
//!
//! One task per verifier owns a dedicated connection (outside the pool, as the service's role). On
//! every (re)connect it listens first and then loads everything, so no change can fall between the
//! load and the first notification. Afterwards a notification, a tick of the checker, or a verifier
//! that found the copy stale makes it read the changes above the version it holds. A lost
//! connection is retried with backoff; the task ends when the verifier is dropped.

use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use prfix_runtime::db::{self, DatabaseSettings};
use tokio::sync::{Notify, watch};

use super::set::{Change, RevocationSet, Scope};
use crate::claims::Claims;
use crate::verifier::{AuthError, MAX_LEEWAY, Revocations};

/// The channel every change is announced on (`pg_notify`), in the transaction that makes it.
pub const CHANNEL: &str = "prfix_revocations";

/// First wait after a failed connection; doubled per failure up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Least time between two attempts even when verifiers keep asking (a flood of calls during an
/// outage must not become a flood of connections).
const MIN_ATTEMPT_GAP: Duration = Duration::from_millis(250);
/// Longest a single load or check may take before the connection is given up as hung.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a verifier waits for a stale copy to be confirmed before refusing.
const MAX_CONFIRM_WAIT: Duration = Duration::from_secs(1);
/// The problem before the first load.
const NOT_LOADED: &str = "not loaded yet";

/// What the feed task and the verifiers share.
struct Shared {
    set: RwLock<RevocationSet>,
    /// When the copy was last confirmed current: the instant the confirming read began.
    confirmed: watch::Sender<Option<Instant>>,
    /// Why the last attempt to connect, load or check failed (empty while healthy).
    problem: Mutex<String>,
    max_staleness: Duration,
}

impl Shared {
    fn is_fresh(&self, confirmed: Option<Instant>) -> bool {
        confirmed.is_some_and(|at| at.elapsed() <= self.max_staleness)
    }
}

/// Revocations copied from Postgres; what every verifier consults.
pub struct RevocationFeed {
    shared: Arc<Shared>,
    /// Wakes the task to confirm at once (a verifier found the copy stale).
    poke: Arc<Notify>,
}

impl RevocationFeed {
    /// Starts the feed on a connection of its own to `database` (as its role) and returns at once;
    /// verifiers wait (boundedly) for the first load. Must be called inside a Tokio runtime.
    pub fn start(database: DatabaseSettings, max_staleness: Duration) -> Arc<Self> {
        let (confirmed, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            set: RwLock::new(RevocationSet::default()),
            confirmed,
            problem: Mutex::new(NOT_LOADED.to_owned()),
            max_staleness,
        });
        let poke = Arc::new(Notify::new());
        tokio::spawn(run(Arc::downgrade(&shared), poke.clone(), database));
        Arc::new(Self { shared, poke })
    }

    /// Applies a change this process has just committed, so it holds here before any notification
    /// comes back (the gateway calls it after each revocation it writes).
    pub fn apply_local(&self, change: Change) {
        self.shared.set.write().unwrap_or_else(PoisonError::into_inner).apply(change);
    }

    /// The earliest `iat` a new token for `subject` (and `key`) may carry: see
    /// [`RevocationSet::earliest_iat`].
    pub fn earliest_iat(&self, subject: &str, key: Option<&str>, now_secs: i64) -> i64 {
        self.shared.set.read().unwrap_or_else(PoisonError::into_inner).earliest_iat(subject, key, now_secs)
    }

    /// Succeeds when the copy is confirmed current within the bound, asking the feed to confirm
    /// at once (and waiting briefly) when it is not.
    async fn ensure_current(&self) -> Result<(), AuthError> {
        let shared = &self.shared;
        if shared.is_fresh(*shared.confirmed.borrow()) {
            return Ok(());
        }
        let mut confirmed = shared.confirmed.subscribe();
        self.poke.notify_one();
        let wait = shared.max_staleness.min(MAX_CONFIRM_WAIT);
        if let Ok(Ok(_)) = tokio::time::timeout(wait, confirmed.wait_for(|c| shared.is_fresh(*c))).await {
            return Ok(());
        }
        let age = shared.confirmed.borrow().map(|at| format!("{} ms ago", at.elapsed().as_millis()));
        let problem = shared.problem.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Err(AuthError::RevocationsStale(format!(
            "last confirmed current {} (bound {} ms): {problem}",
            age.as_deref().unwrap_or("never"),
            shared.max_staleness.as_millis()
        )))
    }
}

#[tonic::async_trait]
impl Revocations for RevocationFeed {
    async fn check(&self, claims: &Claims) -> Result<(), AuthError> {
        self.ensure_current().await?;
        let set = self.shared.set.read().unwrap_or_else(PoisonError::into_inner);
        match set.refusal(&claims.jti, &claims.sub, claims.key.as_deref(), claims.iat) {
            Some(refusal) => Err(AuthError::Revoked(refusal)),
            None => Ok(()),
        }
    }
}

/// Why a session ended.
enum Ended {
    /// The verifier is gone: stop.
    Dropped,
    /// The connection or a read failed; retry.
    Failed(String),
}

async fn run(shared: Weak<Shared>, poke: Arc<Notify>, database: DatabaseSettings) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let attempt = Instant::now();
        let (ended, confirmed) = session(&shared, &poke, &database).await;
        let Some(live) = shared.upgrade() else { return };
        match ended {
            Ended::Dropped => return,
            Ended::Failed(problem) => {
                tracing::warn!(%problem, "token revocation feed interrupted; retrying");
                *live.problem.lock().unwrap_or_else(PoisonError::into_inner) = problem;
            }
        }
        drop(live);
        if confirmed {
            backoff = INITIAL_BACKOFF;
        }
        // Wait out the backoff, or less when a verifier is waiting, but never hammer the server.
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = poke.notified() => {
                tokio::time::sleep(MIN_ATTEMPT_GAP.saturating_sub(attempt.elapsed())).await;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: listen, load, then keep current until something fails. Returns why it
/// ended and whether it confirmed the copy at least once.
async fn session(shared: &Weak<Shared>, poke: &Notify, database: &DatabaseSettings) -> (Ended, bool) {
    let failed = |e: String| (Ended::Failed(e), false);
    let (mut client, mut notifications) = match db::connect_listening(database).await {
        Ok(connected) => connected,
        Err(e) => return failed(prfix_runtime::error::chain(&e)),
    };
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        return failed(format!("LISTEN {CHANNEL}: {}", prfix_runtime::error::chain(&e)));
    }
    // Listening before loading: a change committed during the load is announced afterwards.
    if let Err(e) = confirm(shared, &mut client, true).await {
        return failed(e);
    }
    tracing::info!("token revocations loaded; following changes");
    let check_every = shared
        .upgrade()
        .map_or(MAX_BACKOFF, |s| (s.max_staleness / 4).clamp(Duration::from_millis(25), Duration::from_secs(1)));
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notification = notifications.recv() => {
                if notification.is_none() {
                    return (Ended::Failed("the listening connection closed".to_owned()), true);
                }
                // Several changes may be waiting: one read catches up with all of them.
                while notifications.try_recv().is_ok() {}
            }
            _ = tick.tick() => {}
            () = poke.notified() => {}
        }
        if shared.strong_count() == 0 {
            return (Ended::Dropped, true);
        }
        if let Err(e) = confirm(shared, &mut client, false).await {
            return (Ended::Failed(e), true);
        }
    }
}

/// Reads what changed (everything when `full`) and marks the copy confirmed as of the read's start.
async fn confirm(shared: &Weak<Shared>, client: &mut tokio_postgres::Client, full: bool) -> Result<(), String> {
    let started = Instant::now();
    let Some(live) = shared.upgrade() else { return Ok(()) };
    let held = if full { None } else { Some(live.set.read().unwrap_or_else(PoisonError::into_inner).version()) };
    let read = tokio::time::timeout(QUERY_TIMEOUT, read_changes(client, held)).await;
    let read = read.map_err(|_| format!("reading revocations took longer than {} s", QUERY_TIMEOUT.as_secs()))?;
    let read = read.map_err(|e| format!("reading revocations: {}", prfix_runtime::error::chain(&e)))?;
    let horizon = chrono::Utc::now().timestamp() - i64::try_from(MAX_LEEWAY.as_secs()).unwrap_or(30);
    {
        let mut set = live.set.write().unwrap_or_else(PoisonError::into_inner);
        match read {
            Read::Unchanged => {}
            Read::All { version, changes } => {
                let mut fresh = RevocationSet::default();
                changes.into_iter().for_each(|c| fresh.apply(c));
                fresh.set_version(version);
                *set = fresh;
            }
            Read::Since { version, changes } => {
                changes.into_iter().for_each(|c| set.apply(c));
                set.set_version(version);
            }
        }
        set.prune(horizon);
    }
    let recovered = live.problem.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
    if !recovered.is_empty() && recovered != NOT_LOADED {
        tracing::info!(after = %recovered, "token revocation feed current again");
    }
    live.confirmed.send_replace(Some(started));
    Ok(())
}

/// What one read found.
enum Read {
    /// Nothing since the version held.
    Unchanged,
    /// Everything (first load, or the store's version went backwards, as after a restore).
    All { version: i64, changes: Vec<Change> },
    /// The changes above the version held.
    Since { version: i64, changes: Vec<Change> },
}

/// Reads in one snapshot the store's version and the changes above `held` (all when `None`).
/// Before the gateway's migration has created the tables nothing can have been revoked: that is
/// an empty store at version 0, not an error.
async fn read_changes(client: &mut tokio_postgres::Client, held: Option<i64>) -> Result<Read, tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = 'gateway' AND c.relname = 'revocation_state')",
            &[],
        )
        .await?
        .get(0);
    let version: i64 =
        if exists { tx.query_one("SELECT version FROM gateway.revocation_state", &[]).await?.get(0) } else { 0 };
    let since = match held {
        Some(held) if held == version => {
            tx.commit().await?;
            return Ok(Read::Unchanged);
        }
        Some(held) if held < version => Some(held),
        _ => None,
    };
    let mut changes = Vec::new();
    if exists {
        let after = since.unwrap_or(0);
        for row in tx
            .query(
                "SELECT jti, extract(epoch FROM expires_at)::bigint FROM gateway.revoked_tokens
                 WHERE version > $1 AND expires_at > now() - interval '1 minute'",
                &[&after],
            )
            .await?
        {
            changes.push(Change::Token { jti: row.get(0), expires_at: row.get(1) });
        }
        for row in
            tx.query("SELECT scope, id, not_before FROM gateway.token_not_before WHERE version > $1", &[&after]).await?
        {
            let scope: String = row.get(0);
            // The table's CHECK admits only known scopes.
            if let Some(scope) = Scope::parse(&scope) {
                changes.push(Change::NotBefore { scope, id: row.get(1), not_before: row.get(2) });
            }
        }
    }
    tx.commit().await?;
    Ok(match since {
        Some(_) => Read::Since { version, changes },
        None => Read::All { version, changes },
    })
}
