//! Issuing access tokens with the gateway's signing keys, and remembering the ones revoked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use prfix_auth::revocations::RedisRevocations;
use prfix_auth::verifier::Revocations;
use prfix_auth::{Claims, Jwks, PrincipalKind, Role, SigningKey};

/// Signs access tokens; publishes the public keys.
pub struct Issuer {
    keys: Vec<SigningKey>,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Issuer {
    /// An issuer signing with the first of `keys` (the others are published for rotation).
    pub fn new(keys: Vec<SigningKey>, issuer: String, audience: String, ttl: Duration) -> Self {
        Self { keys, issuer, audience, ttl }
    }

    /// The JWKS of every key.
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: self.keys.iter().map(|k| k.jwk().clone()).collect() }
    }

    /// Mints an access token; returns it with its claims.
    pub fn mint(&self, subject: &str, roles: &[Role], kind: PrincipalKind) -> Result<(String, Claims), String> {
        self.mint_for(subject, roles, kind, self.ttl)
    }

    /// Mints a token with its own lifetime (short-lived exchange tokens for API keys).
    pub fn mint_for(
        &self,
        subject: &str,
        roles: &[Role],
        kind: PrincipalKind,
        ttl: Duration,
    ) -> Result<(String, Claims), String> {
        let key = self.keys.first().ok_or("no signing key")?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.to_owned(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(900),
            kind,
        };
        let token = key.sign(&claims).map_err(|e| e.to_string())?;
        Ok((token, claims))
    }
}

/// Revocations the gateway made, kept locally (so they hold at once, Redis or not) and in Redis
/// (so other replicas and the services see them).
pub struct GatewayRevocations {
    local: Mutex<HashMap<String, i64>>,
    redis: Option<RedisRevocations>,
}

impl GatewayRevocations {
    /// Revocations with an optional Redis.
    pub fn new(redis: Option<RedisRevocations>) -> Self {
        Self { local: Mutex::new(HashMap::new()), redis }
    }

    /// Revokes `jti` until `exp` (seconds since the epoch).
    pub async fn revoke(&self, jti: &str, exp: i64) {
        let now = Utc::now().timestamp();
        {
            let mut local = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            local.retain(|_, e| *e > now);
            local.insert(jti.to_owned(), exp);
        }
        if let Some(redis) = &self.redis
            && let Err(error) = redis.revoke(jti, exp - now).await
        {
            tracing::error!(%error, "cannot record a token revocation in redis; other replicas may accept it until it expires");
        }
    }
}

#[tonic::async_trait]
impl Revocations for GatewayRevocations {
    async fn is_revoked(&self, jti: &str) -> bool {
        let local = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(jti);
        if local {
            return true;
        }
        match &self.redis {
            Some(redis) => redis.is_revoked(jti).await,
            None => false,
        }
    }
}
