//! Deliveries taken, by forge and delivery id, in Postgres: the unique key makes "seen before"
//! hold across replicas and restarts.

use deadpool_postgres::Pool;

/// What recording a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The delivery id is new: it is recorded now.
    New,
    /// The same delivery (id and body) was taken before.
    Duplicate,
    /// The delivery id was taken before with another body.
    Replayed,
}

/// Why a delivery could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("recording the delivery failed: {0:#}")]
pub struct StoreError(#[from] anyhow::Error);

/// One delivery to record.
pub struct NewDelivery<'a> {
    /// The connection's name.
    pub forge: &'a str,
    /// The forge's delivery id.
    pub delivery_id: &'a str,
    /// SHA-256 of the raw body.
    pub body_sha256: &'a [u8],
    /// The event.
    pub event: &'a str,
    /// The repository.
    pub repository: &'a str,
}

/// Records `delivery` unless its id was seen before, and says which it was.
pub async fn record(pool: &Pool, delivery: &NewDelivery<'_>) -> Result<Recorded, StoreError> {
    use anyhow::Context;
    let client = pool.get().await.context("failed to get a database connection")?;
    let inserted = client
        .execute(
            "INSERT INTO webhook_deliveries (forge, delivery_id, body_sha256, event, repository)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT ON CONSTRAINT webhook_deliveries_forge_delivery_key DO NOTHING",
            &[&delivery.forge, &delivery.delivery_id, &delivery.body_sha256, &delivery.event, &delivery.repository],
        )
        .await
        .context("failed to insert the delivery")?;
    if inserted == 1 {
        return Ok(Recorded::New);
    }
    let row = client
        .query_one(
            "SELECT body_sha256 FROM webhook_deliveries WHERE forge = $1 AND delivery_id = $2",
            &[&delivery.forge, &delivery.delivery_id],
        )
        .await
        .context("failed to read the delivery seen before")?;
    let seen: Vec<u8> = row.get(0);
    Ok(if seen == delivery.body_sha256 { Recorded::Duplicate } else { Recorded::Replayed })
}

/// Forgets a delivery taken a moment ago whose work could not be started, so that the forge's
/// redelivery is taken anew.
pub async fn forget(pool: &Pool, forge: &str, delivery_id: &str) -> Result<(), StoreError> {
    use anyhow::Context;
    let client = pool.get().await.context("failed to get a database connection")?;
    client
        .execute("DELETE FROM webhook_deliveries WHERE forge = $1 AND delivery_id = $2", &[&forge, &delivery_id])
        .await
        .context("failed to delete the delivery")?;
    Ok(())
}
