//! Writing revocations to Postgres, where every verifier copies them from.
//!
//! Each change is written inside the transaction of the action that causes it (a logout, a user
//! update, a key revocation), so the action and its revocation commit together or not at all. The
//! write bumps the change counter (taking its row lock, so changes commit in version order), stamps
//! the row with the new version and announces it with `pg_notify`, which Postgres delivers when the
//! transaction commits.

use prfix_auth::revocations::{CHANNEL, Change};
use tokio_postgres::Transaction;

/// Records `change` in the transaction `tx` and announces it on commit.
pub async fn record(tx: &Transaction<'_>, change: &Change) -> Result<(), tokio_postgres::Error> {
    let version: i64 =
        tx.query_one("UPDATE revocation_state SET version = version + 1 RETURNING version", &[]).await?.get(0);
    match change {
        Change::Token { jti, expires_at } => {
            tx.execute(
                "INSERT INTO revoked_tokens (jti, expires_at, version) VALUES ($1, to_timestamp($2::bigint), $3)
                 ON CONFLICT (jti) DO UPDATE SET version = EXCLUDED.version",
                &[jti, expires_at, &version],
            )
            .await?;
            // Rows of tokens past their expiry (and the verifiers' leeway) mean nothing any more.
            tx.execute("DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 minute'", &[]).await?;
        }
        Change::NotBefore { scope, id, not_before } => {
            tx.execute(
                "INSERT INTO token_not_before (scope, id, not_before, version) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (scope, id) DO UPDATE
                 SET not_before = greatest(token_not_before.not_before, EXCLUDED.not_before),
                     version = EXCLUDED.version, updated_at = now()",
                &[&scope.as_str(), id, not_before, &version],
            )
            .await?;
            // A not-before older than any token's lifetime (an hour at most) refuses nothing.
            tx.execute("DELETE FROM token_not_before WHERE updated_at < now() - interval '1 day'", &[]).await?;
        }
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &version.to_string()]).await?;
    Ok(())
}
