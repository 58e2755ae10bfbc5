//! Token revocations: revoked token ids (logout) and not-before times per subject and per API key
//! (a user disabled, a role removed, a password changed, a key revoked).
//!
//! Postgres is the source of truth (`gateway.revoked_tokens`, `gateway.token_not_before`, written
//! by the gateway); every verifier holds a copy in memory ([`RevocationFeed`]) that `LISTEN`/`NOTIFY`
//! keeps current and a periodic check confirms. A verifier that cannot confirm its copy within
//! `auth_revocations_max_staleness_ms` refuses tokens (UNAVAILABLE) rather than accept one that may
//! have been revoked. Redis is not consulted.

mod feed;
mod set;

pub use feed::{CHANNEL, RevocationFeed};
pub use set::{Change, Refusal, RevocationSet, Scope, not_before_after};
