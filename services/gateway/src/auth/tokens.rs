//! Issuing access tokens with the gateway's signing keys.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use prfix_auth::revocations::RevocationFeed;
use prfix_auth::{Claims, Jwks, PrincipalKind, Role, SigningKey};

/// Signs access tokens; publishes the public keys.
pub struct Issuer {
    keys: Vec<SigningKey>,
    issuer: String,
    audience: String,
    ttl: Duration,
    revocations: Option<Arc<RevocationFeed>>,
}

impl Issuer {
    /// An issuer signing with the first of `keys` (the others are published for rotation).
    pub fn new(keys: Vec<SigningKey>, issuer: String, audience: String, ttl: Duration) -> Self {
        Self { keys, issuer, audience, ttl, revocations: None }
    }

    /// Stamps new tokens no earlier than their subject's or key's not-before, so that a token
    /// issued in the same second as a revocation (a login right after a re-enable) is not refused.
    pub fn with_revocations(mut self, revocations: Arc<RevocationFeed>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// The JWKS of every key.
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: self.keys.iter().map(|k| k.jwk().clone()).collect() }
    }

    /// Mints an access token; returns it with its claims.
    pub fn mint(&self, subject: &str, roles: &[Role], kind: PrincipalKind) -> Result<(String, Claims), String> {
        self.mint_for(subject, roles, kind, None, self.ttl)
    }

    /// Mints a token with its own lifetime (short-lived exchange tokens for API keys, which name
    /// the key in `key`).
    pub fn mint_for(
        &self,
        subject: &str,
        roles: &[Role],
        kind: PrincipalKind,
        api_key: Option<&str>,
        ttl: Duration,
    ) -> Result<(String, Claims), String> {
        let key = self.keys.first().ok_or("no signing key")?;
        let now = Utc::now().timestamp();
        // At most a second ahead of the clock (a not-before is the next second boundary), well
        // within every verifier's leeway.
        let now = self.revocations.as_ref().map_or(now, |r| r.earliest_iat(subject, api_key, now));
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
            key: api_key.map(str::to_owned),
        };
        let token = key.sign(&claims).map_err(|e| e.to_string())?;
        Ok((token, claims))
    }
}
