//! Making signed checkpoints: every `checkpoint_every` events or `checkpoint_interval`, whichever
//! comes first, and on demand (an export starts with one, so that everything it carries is covered).
//! A new checkpoint is signed only after checking that the log still extends the last one, and is
//! then sent to the configured witnesses (`crate::witness::cosigning`); a checkpoint is served with
//! the cosignatures they returned as extra signature lines, as c2sp.org/tlog-witness has it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object as Client, Pool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Signer;
use crate::merkle::Hash;
use crate::store::{self, AuditError};
use crate::tree;

/// Leaf hashes read at a time when extending the tree.
const LEAF_PAGE: i64 = 50_000;
use crate::witness::cosigning::Witnesses;

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Events covered.
    pub tree_size: i64,
    /// Merkle root over them.
    pub root_hash: Vec<u8>,
    /// The signed note, followed by the witnesses' cosignature lines received for it.
    pub signed_note: String,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The columns of a [`StoredCheckpoint`] from `checkpoints c`: the note with its cosignatures.
const COLUMNS: &str = "c.tree_size, c.root_hash,
    c.signed_note || coalesce((SELECT string_agg(w.signature_line || E'\\n', '' ORDER BY w.received_at, w.witness_key)
                               FROM cosignatures w WHERE w.tree_size = c.tree_size), ''),
    c.created_at";

fn checkpoint_row(row: &tokio_postgres::Row) -> StoredCheckpoint {
    StoredCheckpoint { tree_size: row.get(0), root_hash: row.get(1), signed_note: row.get(2), created_at: row.get(3) }
}

/// The checkpoint of `tree_size`, or the latest with `None`.
pub async fn get(client: &Client, tree_size: Option<i64>) -> Result<Option<StoredCheckpoint>, AuditError> {
    let row = match tree_size {
        Some(size) => {
            client.query_opt(&format!("SELECT {COLUMNS} FROM checkpoints c WHERE c.tree_size = $1"), &[&size]).await?
        }
        None => {
            client
                .query_opt(&format!("SELECT {COLUMNS} FROM checkpoints c ORDER BY c.tree_size DESC LIMIT 1"), &[])
                .await?
        }
    };
    Ok(row.as_ref().map(checkpoint_row))
}

/// Checkpoints with sizes in `from..=to`, by size.
pub async fn range(pool: &Pool, from: i64, to: i64) -> Result<Vec<StoredCheckpoint>, AuditError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM checkpoints c WHERE c.tree_size BETWEEN $1 AND $2 ORDER BY c.tree_size"),
            &[&from, &to],
        )
        .await?;
    Ok(rows.iter().map(checkpoint_row).collect())
}

/// How far the newest signed checkpoint lags behind the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coverage {
    /// Events not covered by the newest checkpoint: the head's sequence minus its tree size.
    pub uncovered: i64,
    /// Seconds the log has waited for a checkpoint: while events are uncovered, the age of the oldest
    /// of them (before the first checkpoint too); when none is, the age of the newest checkpoint; 0
    /// for an empty log.
    pub age_seconds: f64,
}

/// Reads the log's [`Coverage`] (for the gauges refreshed before each scrape). The age of uncovered
/// events is taken from when they were stored (`recorded_at`), not from the newest checkpoint: after a
/// quiet hour the first new event has waited seconds, not an hour, and before the first checkpoint
/// there is no checkpoint to be old.
pub async fn coverage(pool: &Pool) -> Result<Coverage, AuditError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "WITH head AS (SELECT coalesce(max(sequence), 0) AS size FROM events),
                  latest AS (SELECT tree_size, created_at FROM checkpoints ORDER BY tree_size DESC LIMIT 1)
             SELECT head.size - coalesce(latest.tree_size, 0),
                    greatest(0, extract(epoch FROM now() - CASE
                        WHEN head.size > coalesce(latest.tree_size, 0)
                            THEN (SELECT recorded_at FROM events WHERE sequence = coalesce(latest.tree_size, 0) + 1)
                        ELSE latest.created_at
                    END))::float8
             FROM head LEFT JOIN latest ON true",
            &[],
        )
        .await?;
    Ok(Coverage { uncovered: row.get(0), age_seconds: row.get::<_, Option<f64>>(1).unwrap_or(0.0) })
}

/// Makes what checkpoints need.
#[derive(Clone)]
pub struct Checkpointer {
    pool: Pool,
    signer: Arc<Signer>,
    origin: String,
    witnesses: Witnesses,
    /// Appends ring this when enough events piled up.
    pub wake: Arc<Notify>,
}

impl Checkpointer {
    /// A checkpointer for the log in `pool`.
    pub fn new(pool: Pool, signer: Arc<Signer>, origin: String) -> Self {
        Self { pool, signer, origin, witnesses: Witnesses::default(), wake: Arc::new(Notify::new()) }
    }

    /// The same checkpointer, sending each new checkpoint to `witnesses` for cosigning.
    pub fn with_witnesses(self, witnesses: Witnesses) -> Self {
        Self { witnesses, ..self }
    }

    /// The verifier key of the signer.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// Signs a checkpoint over the whole log if it grew since the last one; returns its size.
    ///
    /// O(log n + new events): the tree of the last checkpoint is read back from the stored subtree
    /// heads and the leaves above the last of them (so a changed leaf there, a changed subtree row
    /// or a missing event makes its head differ and nothing is signed), then extended with the
    /// leaves added since; subtrees completed on the way are stored for proofs.
    pub async fn checkpoint_now(&self) -> Result<i64, AuditError> {
        let client = self.pool.get().await?;
        let head = store::head(&client).await?;
        let last = get(&client, None).await?;
        let last_size = last.as_ref().map_or(0, |c| c.tree_size);
        if head <= last_size {
            return Ok(last_size);
        }
        let mut reader = tree::Reader::new(&client);
        let mut frontier = reader.frontier(u64::try_from(last_size).unwrap_or(0)).await?;
        if let Some(last) = &last
            && frontier.root().as_slice() != last.root_hash.as_slice()
        {
            tracing::error!(
                tree_size = last.tree_size,
                "the log no longer matches its last checkpoint; refusing to sign"
            );
            return Err(AuditError::Invalid(format!(
                "the log no longer matches checkpoint {}; it was changed after being signed",
                last.tree_size
            )));
        }
        // What was folded matched the signed head: it can be stored for the next reads.
        let mut completed = std::mem::take(&mut reader.folded);
        let mut at = last_size;
        while at < head {
            let count = (head - at).min(LEAF_PAGE);
            let from = u64::try_from(at).unwrap_or(0);
            for leaf in tree::leaves(&client, from, u64::try_from(count).unwrap_or(0)).await? {
                frontier.push_observed(&leaf, |level, index, hash| {
                    if level % tree::STRIDE == 0 {
                        completed.push(tree::Node { level, index, hash: *hash });
                    }
                });
            }
            at += count;
        }
        tree::store_subtrees(&client, &completed).await?;
        let root: Hash = frontier.root();
        let size = u64::try_from(head).unwrap_or(0);
        let note = self.signer.sign(&self.origin, size, &root);
        client
            .execute(
                "INSERT INTO checkpoints (tree_size, root_hash, signed_note) VALUES ($1, $2, $3) ON CONFLICT (tree_size) DO NOTHING",
                &[&head, &root.as_slice(), &note],
            )
            .await?;
        drop(client);
        tracing::info!(tree_size = head, "signed a checkpoint");
        // Failures are logged inside: a witness being down never fails the checkpoint.
        if let Err(error) = self.witnesses.cosign(&self.pool, head, &note).await {
            tracing::error!(error = %prfix_runtime::error::chain(&error), "cannot record witness cosignatures");
        }
        Ok(head)
    }

    /// Runs until `stop`: a checkpoint every `interval`, or sooner when woken.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
                () = self.wake.notified() => {}
            }
            if let Err(error) = self.checkpoint_now().await {
                tracing::error!(error = %prfix_runtime::error::chain(&error), "checkpoint failed");
            }
            // Witnesses that were down or behind at the last checkpoint get it now.
            if let Err(error) = self.witnesses.cosign_latest(&self.pool).await {
                tracing::error!(error = %prfix_runtime::error::chain(&error), "witnessing failed");
            }
        }
    }
}
