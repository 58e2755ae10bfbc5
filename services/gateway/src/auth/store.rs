//! Users, refresh tokens and API keys in the gateway's schema.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use prfix_auth::revocations::{Change, Scope, not_before_after};
use prfix_runtime::error::{ErrorCode, ServiceError};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// What can go wrong in the identity store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user or key exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// No such user or key.
    #[error("{0} not found")]
    NotFound(String),
    /// No database session could be had.
    #[error("gateway database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("gateway database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

impl ServiceError for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Exists(_) => ErrorCode::AlreadyExists,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Pool(_) => ErrorCode::Unavailable,
            StoreError::Query(e) if e.is_closed() => ErrorCode::Unavailable,
            StoreError::Query(_) => ErrorCode::Internal,
        }
    }
}

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Login name.
    pub username: String,
    /// PHC argon2id string.
    pub password_hash: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Last login.
    pub last_login_at: Option<DateTime<Utc>>,
}

const USER_COLUMNS: &str = "username, password_hash, roles, disabled, created_at, updated_at, last_login_at";

fn user(row: &Row) -> UserRow {
    UserRow {
        username: row.get(0),
        password_hash: row.get(1),
        roles: row.get(2),
        disabled: row.get(3),
        created_at: row.get(4),
        updated_at: row.get(5),
        last_login_at: row.get(6),
    }
}

/// A stored API key.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    /// Identifier.
    pub key_id: String,
    /// Human name.
    pub name: String,
    /// Creator.
    pub owner: String,
    /// Role names.
    pub roles: Vec<String>,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str = "key_id, name, owner, roles, secret_hash, created_at, expires_at, last_used_at, revoked_at";

fn api_key(row: &Row) -> ApiKeyRow {
    ApiKeyRow {
        key_id: row.get(0),
        name: row.get(1),
        owner: row.get(2),
        roles: row.get(3),
        secret_hash: row.get(4),
        created_at: row.get(5),
        expires_at: row.get(6),
        last_used_at: row.get(7),
        revoked_at: row.get(8),
    }
}

/// The identity store.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// When this process last wrote each key's `last_used_at`: written at most once a minute.
    touched: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

impl Store {
    /// A store on `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool, touched: Default::default() }
    }

    /// Whether any user exists (first start creates the admin when none does).
    pub async fn has_users(&self) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.query_one("SELECT EXISTS (SELECT 1 FROM users)", &[]).await?.get(0))
    }

    /// Creates a user.
    pub async fn create_user(&self, username: &str, hash: &str, roles: &[String]) -> Result<UserRow, StoreError> {
        let client = self.pool.get().await?;
        let result = client
            .query_one(
                &format!(
                    "INSERT INTO users (username, password_hash, roles) VALUES ($1, $2, $3) RETURNING {USER_COLUMNS}"
                ),
                &[&username, &hash, &roles],
            )
            .await;
        match result {
            Ok(row) => Ok(user(&row)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Exists(format!("user `{username}`")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A user by name.
    pub async fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let client = self.pool.get().await?;
        let row =
            client.query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"), &[&username]).await?;
        Ok(row.as_ref().map(user))
    }

    /// Users after `after` by name, at most `limit`.
    pub async fn users(&self, after: &str, limit: i64) -> Result<Vec<UserRow>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username > $1 ORDER BY username LIMIT $2"),
                &[&after, &limit],
            )
            .await?;
        Ok(rows.iter().map(user).collect())
    }

    /// Changes what is given and, in the same transaction, ends every session started before: the
    /// user's refresh tokens are revoked and their not-before set (so access tokens issued before
    /// are refused at every verifier). Returns the user after the change and the revocation made.
    pub async fn update_user(
        &self,
        username: &str,
        roles: Option<&[String]>,
        disabled: Option<bool>,
        password_hash: Option<&str>,
    ) -> Result<(UserRow, Change), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE users SET roles = coalesce($2, roles), disabled = coalesce($3, disabled),
                            password_hash = coalesce($4, password_hash), updated_at = now()
                     WHERE username = $1 RETURNING {USER_COLUMNS}"
                ),
                &[&username, &roles, &disabled, &password_hash],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user `{username}`")))?;
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE username = $1 AND revoked_at IS NULL",
            &[&username],
        )
        .await?;
        let change = Change::NotBefore {
            scope: Scope::Subject,
            id: username.to_owned(),
            not_before: not_before_after(Utc::now().timestamp()),
        };
        super::revoke::record(&tx, &change).await?;
        tx.commit().await?;
        Ok((user(&row), change))
    }

    /// Revokes one access token (logout) until its expiry `expires_at` (seconds since the epoch).
    pub async fn revoke_token(&self, jti: &str, expires_at: i64) -> Result<Change, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let change = Change::Token { jti: jti.to_owned(), expires_at };
        super::revoke::record(&tx, &change).await?;
        tx.commit().await?;
        Ok(change)
    }

    /// Records a successful login.
    pub async fn touch_login(&self, username: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute("UPDATE users SET last_login_at = now() WHERE username = $1", &[&username]).await?;
        Ok(())
    }

    /// Stores a refresh token of `family`.
    pub async fn insert_refresh(
        &self,
        hash: &[u8],
        family: Uuid,
        username: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO refresh_tokens (token_hash, family, username, expires_at) VALUES ($1, $2, $3, $4)",
                &[&hash, &family, &username, &expires_at],
            )
            .await?;
        Ok(())
    }

    /// Rotates a refresh token in one transaction: the presented token is spent and `new_hash`
    /// stored in its family with the family's absolute expiry, so a concurrent reuse always sees
    /// (and revokes) the new token too. A spent or revoked token revokes its whole family.
    pub async fn rotate_refresh(&self, hash: &[u8], new_hash: &[u8]) -> Result<Spend, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT family, username, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                &[&hash],
            )
            .await?
        else {
            return Ok(Spend::Unknown);
        };
        let family: Uuid = row.get(0);
        let username: String = row.get(1);
        let expires_at: DateTime<Utc> = row.get(2);
        let used_at: Option<DateTime<Utc>> = row.get(3);
        let revoked_at: Option<DateTime<Utc>> = row.get(4);
        if used_at.is_some() || revoked_at.is_some() {
            // Reuse of a spent token: someone holds a copy. End the whole family.
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
                &[&family],
            )
            .await?;
            tx.commit().await?;
            return Ok(Spend::Reused { family, username });
        }
        if expires_at <= Utc::now() {
            return Ok(Spend::Expired);
        }
        let user = tx
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1 FOR SHARE"), &[&username])
            .await?
            .map(|r| user(&r));
        let Some(user) = user.filter(|u| !u.disabled) else {
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
                &[&family],
            )
            .await?;
            tx.commit().await?;
            return Ok(Spend::Disabled { username });
        };
        tx.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", &[&hash]).await?;
        tx.execute(
            "INSERT INTO refresh_tokens (token_hash, family, username, expires_at) VALUES ($1, $2, $3, $4)",
            &[&new_hash, &family, &username, &expires_at],
        )
        .await?;
        tx.commit().await?;
        Ok(Spend::Ok { user: Box::new(user), expires_at })
    }

    /// Revokes every token of the family `hash` belongs to; returns the owner when known.
    pub async fn revoke_family_of(&self, hash: &[u8]) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        // A family has one row per rotation: take the owner from any of them.
        let rows = client
            .query(
                "UPDATE refresh_tokens SET revoked_at = now()
                 WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL
                 RETURNING username",
                &[&hash],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// Stores a new API key.
    pub async fn create_api_key(&self, key: &ApiKeyRow) -> Result<ApiKeyRow, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO api_keys (key_id, name, owner, roles, secret_hash, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}"
                ),
                &[&key.key_id, &key.name, &key.owner, &key.roles, &key.secret_hash, &key.expires_at],
            )
            .await?;
        Ok(api_key(&row))
    }

    /// An API key by id.
    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let client = self.pool.get().await?;
        let row =
            client.query_opt(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1"), &[&key_id]).await?;
        Ok(row.as_ref().map(api_key))
    }

    /// Records a use of a key.
    ///
    /// At most once a minute per key: this process skips the write within a minute of its last
    /// one, and the statement skips a row another replica wrote within the minute (a minute's
    /// precision is what the field promises; a write per call was a commit per call).
    pub async fn touch_api_key(&self, key_id: &str) -> Result<(), StoreError> {
        const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
        let now = std::time::Instant::now();
        {
            let mut touched = self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if touched.get(key_id).is_some_and(|at| now.duration_since(*at) < EVERY) {
                return Ok(());
            }
            if touched.len() >= 10_000 {
                touched.retain(|_, at| now.duration_since(*at) < EVERY);
            }
            touched.insert(key_id.to_owned(), now);
        }
        let client = self.pool.get().await?;
        let written = client
            .execute(
                "UPDATE api_keys SET last_used_at = now()
                 WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                &[&key_id],
            )
            .await;
        if written.is_err() {
            // Tried again on the next use.
            self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key_id);
        }
        written?;
        Ok(())
    }

    /// Keys, newest first, after the page cursor.
    pub async fn api_keys(
        &self,
        include_revoked: bool,
        before: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>, StoreError> {
        let client = self.pool.get().await?;
        let (before_time, before_id) = before.map_or((None, None), |(t, id)| (Some(t), Some(id)));
        let rows = client
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys
                     WHERE ($1 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())))
                       AND ($2::timestamptz IS NULL OR (created_at, key_id) < ($2, $3::text))
                     ORDER BY created_at DESC, key_id DESC LIMIT $4"
                ),
                &[&include_revoked, &before_time, &before_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(api_key).collect())
    }

    /// Revokes a key at once and, in the same transaction, sets its not-before so that the tokens
    /// it was exchanged for are refused at every verifier. Returns the key and the revocation made.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<(ApiKeyRow, Change), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 RETURNING {KEY_COLUMNS}"
                ),
                &[&key_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("API key `{key_id}`")))?;
        let change = Change::NotBefore {
            scope: Scope::ApiKey,
            id: key_id.to_owned(),
            not_before: not_before_after(Utc::now().timestamp()),
        };
        super::revoke::record(&tx, &change).await?;
        tx.commit().await?;
        Ok((api_key(&row), change))
    }
}

/// The outcome of spending a refresh token.
#[derive(Debug, Clone)]
pub enum Spend {
    /// Valid; now spent, and its successor stored.
    Ok {
        /// Its owner.
        user: Box<UserRow>,
        /// The family's absolute expiry (the successor's too).
        expires_at: DateTime<Utc>,
    },
    /// The owner is disabled or gone; the family is revoked.
    Disabled {
        /// The owner.
        username: String,
    },
    /// Already spent or revoked: the family is now revoked.
    Reused {
        /// The family.
        family: Uuid,
        /// Its owner.
        username: String,
    },
    /// Past its expiry.
    Expired,
    /// Not a token we issued.
    Unknown,
}
