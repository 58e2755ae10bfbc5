//! Revoked token ids in Redis (`<prefix>revoked:<jti>`, expiring with the token).

use fred::prelude::KeysInterface;
use prfix_runtime::redis::Redis;

use crate::verifier::Revocations;

/// Revocations kept in Redis, shared by every replica.
pub struct RedisRevocations {
    redis: Redis,
}

impl RedisRevocations {
    /// Reads and writes revocations under `redis`'s prefix.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn key(&self, jti: &str) -> String {
        self.redis.key(&format!("revoked:{jti}"))
    }

    /// Records `jti` as revoked until `ttl_secs` from now.
    pub async fn revoke(&self, jti: &str, ttl_secs: i64) -> Result<(), fred::error::Error> {
        let ttl = ttl_secs.max(1);
        self.redis.client.set::<(), _, _>(self.key(jti), "1", Some(fred::types::Expiration::EX(ttl)), None, false).await
    }
}

#[tonic::async_trait]
impl Revocations for RedisRevocations {
    async fn is_revoked(&self, jti: &str) -> bool {
        match self.redis.call(self.redis.client.exists::<i64, _>(self.key(jti))).await {
            Ok(n) => n > 0,
            Err(error) => {
                // The gateway keeps its own record of revocations it made; behind it, a Redis outage
                // must not stop every call.
                tracing::warn!(%error, "cannot check token revocation in redis");
                false
            }
        }
    }
}
