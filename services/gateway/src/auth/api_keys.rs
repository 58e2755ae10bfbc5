//! API keys: `prfix_<key id>_<secret>`, shown once, stored as SHA-256 of the secret, scoped to
//! roles the creator holds, with optional expiry; accepted as bearer credentials and exchanged at
//! the gateway for a short-lived access token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use prfix_auth::{AuthError, Principal, Role};
use prfix_proto::auth::v1 as pb;
use prfix_runtime::error::to_status;
use prfix_runtime::time::to_timestamp;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tonic::Status;

use super::store::{ApiKeyRow, Store};
use super::{role_names, sha256};

/// Longest API key lifetime (two years).
pub const MAX_TTL_SECS: i64 = 2 * 366 * 24 * 3600;

/// The prefix that tells an API key from a JWT.
pub const PREFIX: &str = "prfix_";

/// The proto form of a stored key (never the secret).
pub fn to_proto(row: &ApiKeyRow) -> pb::ApiKey {
    pb::ApiKey {
        key_id: row.key_id.clone(),
        name: row.name.clone(),
        owner: row.owner.clone(),
        roles: row.roles.iter().filter_map(|r| Role::parse(r)).map(|r| r.to_proto() as i32).collect(),
        create_time: Some(to_timestamp(row.created_at)),
        expire_time: row.expires_at.map(to_timestamp),
        last_used_time: row.last_used_at.map(to_timestamp),
        revoke_time: row.revoked_at.map(to_timestamp),
    }
}

/// Creates a key for `creator`; returns its record and the one-time secret.
pub async fn create(
    store: &Store,
    creator: &Principal,
    name: &str,
    roles: &[i32],
    ttl: Option<prost_types::Duration>,
    owner: &str,
) -> Result<(pb::ApiKey, String), Status> {
    if creator.kind == prfix_auth::PrincipalKind::ApiKey {
        return Err(Status::permission_denied("an API key cannot create API keys; log in as a user"));
    }
    if name.trim().is_empty() || name.len() > 128 {
        return Err(Status::invalid_argument("name must be 1 to 128 characters"));
    }
    let roles = role_names(roles)?;
    if roles.is_empty() {
        return Err(Status::invalid_argument("roles must name at least one role"));
    }
    // The key belongs to the caller, or (admins only) to another user; it never carries a role its
    // owner does not hold.
    let (owner, owner_roles) = if owner.is_empty() || owner == creator.subject {
        (creator.subject.clone(), creator.role_names())
    } else {
        if !creator.has(Role::Admin) {
            return Err(Status::permission_denied("only admins create keys for other users"));
        }
        let user = store
            .user(owner)
            .await
            .map_err(to_status)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| Status::not_found(format!("user `{owner}` not found or disabled")))?;
        (user.username, user.roles)
    };
    if let Some(role) = roles.iter().find(|r| !owner_roles.contains(r)) {
        return Err(Status::permission_denied(format!(
            "a key cannot carry the role `{role}`, which its owner does not hold"
        )));
    }
    let expires_at = match ttl {
        None => None,
        Some(d) if d.seconds > 0 && d.seconds <= MAX_TTL_SECS && d.nanos >= 0 => {
            chrono::TimeDelta::try_seconds(d.seconds).and_then(|delta| Utc::now().checked_add_signed(delta))
        }
        Some(_) => {
            return Err(Status::invalid_argument(format!("ttl must be between 1 second and {MAX_TTL_SECS} seconds")));
        }
    };
    let mut id_bytes = [0u8; 9];
    rand::rng().fill_bytes(&mut id_bytes);
    let key_id = hex::encode(id_bytes);
    let mut secret_bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut secret_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let row = ApiKeyRow {
        key_id: key_id.clone(),
        name: name.trim().to_owned(),
        owner,
        roles,
        secret_hash: sha256(secret.as_bytes()),
        created_at: Utc::now(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let stored = store.create_api_key(&row).await.map_err(to_status)?;
    Ok((to_proto(&stored), format!("{PREFIX}{key_id}_{secret}")))
}

/// A key that checked out: it acts for its owner, with the roles of the key its owner still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    /// The key's owner (a user name): the subject of what the key does.
    pub owner: String,
    /// The key's id: the credential that acted, recorded beside the owner.
    pub key_id: String,
    /// Roles in force.
    pub roles: Vec<Role>,
    /// When the key expires, if it does.
    pub expires_at: Option<chrono::DateTime<Utc>>,
}

/// Checks a presented key; returns its owner, id and roles.
pub async fn authenticate(store: &Store, presented: &str) -> Result<KeyHolder, AuthError> {
    let rest = presented.strip_prefix(PREFIX).ok_or(AuthError::Malformed("not an API key"))?;
    let (key_id, secret) = rest.split_once('_').ok_or(AuthError::Malformed("API key without a secret"))?;
    if key_id.len() != 18 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Malformed("API key id"));
    }
    let row = store
        .api_key(key_id)
        .await
        .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?
        .ok_or_else(|| AuthError::Rejected("unknown API key".to_owned()))?;
    if !bool::from(sha256(secret.as_bytes()).ct_eq(&row.secret_hash)) {
        return Err(AuthError::Rejected("API key secret does not match".to_owned()));
    }
    if row.revoked_at.is_some() {
        return Err(AuthError::Rejected("API key revoked".to_owned()));
    }
    if row.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(AuthError::Rejected("API key expired".to_owned()));
    }
    // A key is worth no more than its owner now: a disabled owner's keys stop, and a demoted
    // owner's keys lose the roles the owner lost.
    let owner = store
        .user(&row.owner)
        .await
        .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?
        .filter(|u| !u.disabled)
        .ok_or_else(|| AuthError::Rejected("API key owner is disabled or gone".to_owned()))?;
    let roles: Vec<Role> =
        row.roles.iter().filter(|r| owner.roles.contains(r)).filter_map(|r| Role::parse(r)).collect();
    if roles.is_empty() {
        return Err(AuthError::Rejected("API key owner no longer holds any of its roles".to_owned()));
    }
    if let Err(error) = store.touch_api_key(key_id).await {
        tracing::warn!(%error, key_id, "cannot record API key use");
    }
    Ok(KeyHolder { owner: owner.username, key_id: key_id.to_owned(), roles, expires_at: row.expires_at })
}

/// A page of keys, newest first.
pub async fn list(
    store: &Store,
    page_size: i32,
    page_token: &str,
    include_revoked: bool,
) -> Result<(Vec<pb::ApiKey>, String), Status> {
    if page_size < 0 {
        return Err(Status::invalid_argument("page_size must not be negative"));
    }
    let size = if page_size == 0 { 50 } else { page_size.min(500) } as usize;
    let refused = || Status::invalid_argument("page_token is not a token this service issued");
    let before = if page_token.is_empty() {
        None
    } else {
        let text =
            String::from_utf8(URL_SAFE_NO_PAD.decode(page_token).map_err(|_| refused())?).map_err(|_| refused())?;
        let (micros, id) = text.split_once('|').ok_or_else(refused)?;
        let time =
            chrono::DateTime::from_timestamp_micros(micros.parse().map_err(|_| refused())?).ok_or_else(refused)?;
        Some((time, id.to_owned()))
    };
    let mut rows = store.api_keys(include_revoked, before, size as i64 + 1).await.map_err(to_status)?;
    let next = if rows.len() > size {
        rows.truncate(size);
        rows.last()
            .map(|r| URL_SAFE_NO_PAD.encode(format!("{}|{}", r.created_at.timestamp_micros(), r.key_id)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((rows.iter().map(to_proto).collect(), next))
}
