//! Console sessions in `gateway.console_sessions`: created at sign-in, looked up (and their idle
//! clock reset) on every call that carries the cookie, deleted at logout. Only the SHA-256 of the
//! cookie's token is stored, so a copy of the table signs nobody in.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use rand::RngCore;

use crate::auth::sha256;

/// What can go wrong with the session table.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No database session could be had.
    #[error("gateway database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("console session query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// A live session, as the edge needs it for one call.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who signed in.
    pub username: String,
    /// Their roles now (read from the user row on every call, so a role change applies at once).
    pub roles: Vec<String>,
    /// The token state-changing calls must carry in `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends at the latest (Unix seconds).
    pub expires_at: i64,
}

/// A new session's secrets, handed to the browser once.
pub struct Created {
    /// The cookie's value.
    pub token: String,
    /// The CSRF token.
    pub csrf_token: String,
}

/// The session table with its expiry rules.
#[derive(Clone)]
pub struct Sessions {
    pool: Pool,
    idle: Duration,
    absolute: Duration,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    /// Sessions on `pool` that end after `idle` without a call or `absolute` after sign-in.
    pub fn new(pool: Pool, idle: Duration, absolute: Duration) -> Self {
        Self { pool, idle, absolute }
    }

    /// Stores a new session of `username`, begun with the Login whose refresh token hashes to
    /// `refresh_hash`. Ended sessions are swept at the same time.
    pub async fn create(&self, username: &str, refresh_hash: &[u8]) -> Result<Created, SessionError> {
        let token = random_token();
        let csrf_token = random_token();
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM console_sessions
                 WHERE expires_at <= now() OR last_seen_at <= now() - make_interval(secs => $1)",
                &[&self.idle.as_secs_f64()],
            )
            .await?;
        client
            .execute(
                "INSERT INTO console_sessions (token_hash, username, csrf_token, refresh_hash, expires_at)
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
                &[&sha256(token.as_bytes()), &username, &csrf_token, &refresh_hash, &self.absolute.as_secs_f64()],
            )
            .await?;
        Ok(Created { token, csrf_token })
    }

    /// The live session of `token`, its idle clock reset; `None` when unknown, expired (idle or
    /// absolute), its user is disabled or gone, or the refresh family of its Login was revoked (a
    /// password, role or disabled change revokes every family of the user: their sessions end too). The expiry is decided by the database's clock,
    /// the same for every replica.
    pub async fn touch(&self, token: &str) -> Result<Option<Session>, SessionError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE console_sessions s SET last_seen_at = now()
                 FROM users u
                 WHERE s.token_hash = $1 AND u.username = s.username AND NOT u.disabled
                   AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
                   AND EXISTS (SELECT 1 FROM refresh_tokens r
                               WHERE r.token_hash = s.refresh_hash AND r.revoked_at IS NULL)
                 RETURNING s.username, u.roles, s.csrf_token, extract(epoch FROM s.expires_at)::float8",
                &[&sha256(token.as_bytes()), &self.idle.as_secs_f64()],
            )
            .await?;
        Ok(row.map(|row| Session {
            username: row.get(0),
            roles: row.get(1),
            csrf_token: row.get(2),
            expires_at: row.get::<_, f64>(3) as i64,
        }))
    }

    /// Deletes the session of `token`; returns its user and the refresh-token hash of its Login
    /// when it existed.
    pub async fn delete(&self, token: &str) -> Result<Option<(String, Vec<u8>)>, SessionError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "DELETE FROM console_sessions WHERE token_hash = $1 RETURNING username, refresh_hash",
                &[&sha256(token.as_bytes())],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }
}
