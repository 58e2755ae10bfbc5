//! Getting the log's checkpoints cosigned: after each new checkpoint (and again on each checkpointer
//! tick for the newest one, until every witness has it), every configured witness that has not
//! cosigned it is sent the checkpoint with a consistency proof from the size it last cosigned, and
//! each verified cosignature is stored. A witness that is down or refuses is logged; appends never
//! wait for witnesses, and the next tick tries again.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::Mutex;

use crate::store::AuditError;
use crate::witness::client::{SubmitError, WitnessClient};

/// The configured witnesses and what the log knows of them.
#[derive(Clone, Default)]
pub struct Witnesses {
    clients: Arc<Vec<WitnessClient>>,
    quorum: usize,
    /// One round at a time, so two rounds do not race each other's `old` sizes.
    round: Arc<Mutex<()>>,
    /// Per witness key: a size the witness refused for good (no retry until the log grows).
    refused: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for Witnesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnesses").field("count", &self.clients.len()).field("quorum", &self.quorum).finish()
    }
}

/// Why one witness did not cosign one checkpoint.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(
        "the witness has cosigned size {seen}, larger than this checkpoint ({size}): the log lost events it showed the witness"
    )]
    Truncated { seen: u64, size: u64 },
    #[error(transparent)]
    Store(#[from] AuditError),
}

impl Witnesses {
    /// `clients`, and the cosignatures a checkpoint should get (0: all of them).
    pub fn new(clients: Vec<WitnessClient>, quorum: usize) -> Self {
        let quorum = if quorum == 0 { clients.len() } else { quorum };
        Self { clients: Arc::new(clients), quorum, ..Self::default() }
    }

    /// True when no witness is configured.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Asks every witness that has not cosigned the newest checkpoint to cosign it.
    pub async fn cosign_latest(&self, pool: &Pool) -> Result<(), AuditError> {
        if self.is_empty() {
            return Ok(());
        }
        let client = pool.get().await?;
        let Some(row) = client
            .query_opt("SELECT tree_size, root_hash, signed_note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", &[])
            .await?
        else {
            return Ok(());
        };
        let (size, root, note): (i64, Vec<u8>, String) = (row.get(0), row.get(1), row.get(2));
        drop(client);
        if self.missing(pool, size).await?.is_empty() {
            return Ok(());
        }
        let client = pool.get().await?;
        let stored = crate::tree::Reader::new(&client).root(u64::try_from(size).unwrap_or(0)).await?;
        drop(client);
        if stored.as_slice() != root.as_slice() {
            tracing::error!(
                tree_size = size,
                "the log no longer matches its newest checkpoint; not sending it to witnesses"
            );
            return Ok(());
        }
        self.cosign(pool, size, &note).await
    }

    /// Asks every witness that has not cosigned checkpoint `size` (signed `note` over the log's first
    /// `size` events) to cosign it, and stores what they return.
    pub async fn cosign(&self, pool: &Pool, size: i64, note: &str) -> Result<(), AuditError> {
        if self.is_empty() {
            return Ok(());
        }
        let _round = self.round.lock().await;
        let missing = self.missing(pool, size).await?;
        let rounds = missing.iter().map(|witness| async move {
            let key = witness.key().0.name.clone();
            let outcome = self.ask(pool, witness, size, note).await;
            (witness, key, outcome)
        });
        for (witness, name, outcome) in futures::future::join_all(rounds).await {
            match outcome {
                Ok(()) => tracing::info!(witness = %name, tree_size = size, "a witness cosigned the checkpoint"),
                Err(error) => {
                    if !matches!(error, RoundError::Submit(SubmitError::Unreachable(_)) | RoundError::Store(_)) {
                        self.refused.lock().await.insert(witness_key(witness), size);
                    }
                    tracing::error!(
                        witness = %name,
                        url = %witness.url(),
                        tree_size = size,
                        error = %prfix_runtime::error::chain(&error),
                        "a witness did not cosign the checkpoint"
                    );
                }
            }
        }
        let have = self.clients.len() - self.missing(pool, size).await?.len();
        if have < self.quorum {
            tracing::error!(
                tree_size = size,
                cosignatures = have,
                quorum = self.quorum,
                "checkpoint below the witness quorum"
            );
        }
        Ok(())
    }

    /// The witnesses without a stored cosignature of `size` that did not already refuse it.
    async fn missing(&self, pool: &Pool, size: i64) -> Result<Vec<&WitnessClient>, AuditError> {
        let client = pool.get().await?;
        let rows = client.query("SELECT witness_key FROM cosignatures WHERE tree_size = $1", &[&size]).await?;
        let have: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let refused = self.refused.lock().await;
        Ok(self
            .clients
            .iter()
            .filter(|w| {
                let key = witness_key(w);
                !have.contains(&key) && refused.get(&key).is_none_or(|s| *s != size)
            })
            .collect())
    }

    /// One witness, one checkpoint: from the size it last cosigned here (or what its 409 says).
    async fn ask(&self, pool: &Pool, witness: &WitnessClient, size: i64, note: &str) -> Result<(), RoundError> {
        let key = witness_key(witness);
        let client = pool.get().await.map_err(AuditError::from)?;
        let last: Option<i64> = client
            .query_one(
                "SELECT max(tree_size) FROM cosignatures WHERE witness_key = $1 AND tree_size <= $2",
                &[&key, &size],
            )
            .await
            .map_err(AuditError::from)?
            .get(0);
        drop(client);
        let size_u = u64::try_from(size).unwrap_or(0);
        let mut old = last.and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
        let mut attempts = 0;
        let cosignature = loop {
            attempts += 1;
            let proof = if old == 0 {
                Vec::new()
            } else if old > size_u {
                return Err(RoundError::Truncated { seen: old, size: size_u });
            } else {
                let client = pool.get().await.map_err(AuditError::from)?;
                crate::tree::Reader::new(&client).consistency_proof(old, size_u).await?
            };
            match witness.add_checkpoint(old, &proof, note).await {
                Ok(cosignature) => break cosignature,
                Err(SubmitError::Conflict(seen)) if attempts < 3 && seen != old => {
                    if seen > size_u {
                        return Err(RoundError::Truncated { seen, size: size_u });
                    }
                    old = seen;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let cosigned_at = chrono::DateTime::from_timestamp(i64::try_from(cosignature.time).unwrap_or(i64::MAX), 0)
            .unwrap_or_default();
        let client = pool.get().await.map_err(AuditError::from)?;
        client
            .execute(
                "INSERT INTO cosignatures (tree_size, witness_key, signature_line, cosigned_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tree_size, witness_key) DO NOTHING",
                &[&size, &key, &cosignature.line, &cosigned_at],
            )
            .await
            .map_err(AuditError::from)?;
        Ok(())
    }
}

/// The stored identity of a witness: its verifier key as configured (normalised by re-encoding).
fn witness_key(witness: &WitnessClient) -> String {
    witness.key().to_string()
}

/// The witnesses of `[audit]` (already validated), each with the configured request timeout.
pub fn from_settings(audit: &crate::settings::AuditSettings) -> Result<Witnesses, String> {
    let timeout = std::time::Duration::from_millis(audit.witness_timeout_ms);
    let clients = audit
        .witnesses
        .iter()
        .map(|w| {
            let key = crate::witness::cosignature::CosignerKey::parse(&w.key).map_err(|e| e.to_string())?;
            WitnessClient::new(&w.url, key, timeout).map_err(|e| format!("witness {}: {e}", w.url))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Witnesses::new(clients, audit.witness_quorum))
}
