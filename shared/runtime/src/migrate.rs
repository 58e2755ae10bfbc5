//! SQL migrations, applied at start-up under an advisory lock so that replicas starting together
//! apply each migration exactly once, in order, each in its own transaction.
//!
//! The ledger `<schema>.schema_migrations` records version, name and a SHA-256 of the SQL; a
//! migration whose text changed after it was applied stops start-up rather than being ignored.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::db::quote_ident;

/// One migration, embedded in the service binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Ordering key (the file's numeric prefix).
    pub version: i32,
    /// The file name, for messages.
    pub name: &'static str,
    /// The SQL, run as one transaction.
    pub sql: &'static str,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions this run applied.
    pub applied: Vec<i32>,
    /// Versions found already applied.
    pub already_applied: usize,
}

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A statement failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        /// The migration's version.
        version: i32,
        /// Its file name.
        name: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Bookkeeping around the migrations failed (lock, ledger).
    #[error("migration bookkeeping for schema `{schema}` failed: {source}")]
    Ledger {
        /// The schema.
        schema: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// An applied migration's text differs from the embedded one.
    #[error("migration {version} ({name}) was changed after it was applied; add a new migration instead")]
    Changed {
        /// The migration's version.
        version: i32,
        /// Its file name.
        name: &'static str,
    },
    /// The database has a migration this binary does not know (a newer release ran).
    #[error("schema `{schema}` has migration {version}, which this binary does not know; run a newer release")]
    Unknown {
        /// The schema.
        schema: String,
        /// The unknown version.
        version: i32,
    },
}

/// The advisory-lock key of a schema's migrations: stable across releases and processes.
fn lock_key(schema: &str) -> i64 {
    let digest = Sha256::digest(format!("prfix-migrate:{schema}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applies the pending `migrations` to `schema`. `client` must be a session of the schema's owner.
pub async fn run(client: &mut Client, schema: &str, migrations: &[Migration]) -> Result<MigrationReport, MigrateError> {
    let ledger_err = |source| MigrateError::Ledger { schema: schema.to_owned(), source };
    let key = lock_key(schema);
    // Session-level lock: held across the per-migration transactions below, released at the end
    // (or when the session dies, so a crashed replica never leaves it held).
    client.execute("SELECT pg_advisory_lock($1)", &[&key]).await.map_err(ledger_err)?;
    let result = run_locked(client, schema, migrations).await;
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
    let report = result?;
    unlock.map_err(ledger_err)?;
    Ok(report)
}

async fn run_locked(
    client: &mut Client,
    schema: &str,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    let ledger_err = |source| MigrateError::Ledger { schema: schema.to_owned(), source };
    let quoted = quote_ident(schema);
    client
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             CREATE SCHEMA IF NOT EXISTS {quoted};
             CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(ledger_err)?;
    let rows = client
        .query(&format!("SELECT version, checksum FROM {quoted}.schema_migrations ORDER BY version"), &[])
        .await
        .map_err(ledger_err)?;
    let mut report = MigrationReport::default();
    let mut applied = std::collections::HashMap::new();
    for row in rows {
        let version: i32 = row.get(0);
        let sum: String = row.get(1);
        applied.insert(version, sum);
    }
    for version in applied.keys() {
        if !migrations.iter().any(|m| m.version == *version) {
            return Err(MigrateError::Unknown { schema: schema.to_owned(), version: *version });
        }
    }
    let mut ordered: Vec<&Migration> = migrations.iter().collect();
    ordered.sort_by_key(|m| m.version);
    for migration in ordered {
        let sum = checksum(migration.sql);
        match applied.get(&migration.version) {
            Some(existing) if *existing == sum => report.already_applied += 1,
            Some(_) => return Err(MigrateError::Changed { version: migration.version, name: migration.name }),
            None => {
                let failed = |source| MigrateError::Failed { version: migration.version, name: migration.name, source };
                let tx = client.transaction().await.map_err(failed)?;
                tx.batch_execute(migration.sql).await.map_err(failed)?;
                tx.execute(
                    &format!("INSERT INTO {quoted}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"),
                    &[&migration.version, &migration.name, &sum],
                )
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                tracing::info!(schema, version = migration.version, name = migration.name, "applied migration");
                report.applied.push(migration.version);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_per_schema_and_are_stable() {
        assert_eq!(lock_key("audit"), lock_key("audit"));
        assert_ne!(lock_key("audit"), lock_key("agent"));
    }
}
