//! The one access-token verifier every service uses.
//!
//! It decides from the token's header before any key is touched: RS256 only, `typ: at+jwt`, a `kid`
//! of plain characters, and none of the headers that point at keys (`jku`, `x5u`, `jwk`, `x5c`) or
//! demand extensions (`crit`). Keys come only from the configured JWKS (a file or a URL); an
//! unknown `kid` re-fetches the URL at most once per cooldown, and no keys means no access.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use prfix_runtime::error::{ErrorCode, ServiceError};
use tokio::sync::{Mutex, RwLock};

use crate::claims::{Claims, Principal, Role};
use crate::keys::{Jwk, Jwks};

/// Longest token accepted (bytes); real tokens are well under 2 KiB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Largest clock skew tolerated.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);

/// Why a credential was refused. Clients see only "invalid credentials"; the variant is logged.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential was sent.
    #[error("credentials are required")]
    Missing,
    /// The credential is not a well-formed token of ours.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header asks for something we never accept.
    #[error("refused token header: {0}")]
    RefusedHeader(String),
    /// No key with this id.
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    /// Signature, issuer, audience, time or claims did not verify.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// The token was revoked: logged out, or issued before its subject's or key's not-before.
    #[error("{}", .0.as_str())]
    Revoked(crate::revocations::Refusal),
    /// The copy of the revocations could not be confirmed current within the staleness bound;
    /// failing closed.
    #[error("token revocations cannot be confirmed current: {0}")]
    RevocationsStale(String),
    /// The keys could not be had; failing closed.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// The caller lacks the role.
    #[error("permission denied")]
    Forbidden,
}

impl ServiceError for AuthError {
    fn code(&self) -> ErrorCode {
        match self {
            AuthError::KeysUnavailable(_) | AuthError::RevocationsStale(_) => ErrorCode::Unavailable,
            AuthError::Forbidden => ErrorCode::PermissionDenied,
            _ => ErrorCode::Unauthenticated,
        }
    }
}

impl AuthError {
    /// The status a client sees: the code, and no more detail than it needs.
    pub fn to_status(&self) -> tonic::Status {
        tracing::info!(reason = %self, "request refused by authentication");
        if let AuthError::RevocationsStale(_) = self {
            // The reason names the database; the client learns the cause, not the details.
            return tonic::Status::unavailable(
                "token revocations cannot be confirmed current; refusing credentials until they can",
            );
        }
        match self.code() {
            ErrorCode::PermissionDenied => tonic::Status::permission_denied("permission denied"),
            ErrorCode::Unavailable => tonic::Status::unavailable("credentials cannot be verified right now"),
            _ => tonic::Status::unauthenticated("invalid or missing credentials"),
        }
    }
}

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fixed set (from a JWKS file, or the gateway's own keys).
    Static(Jwks),
    /// A JWKS URL (the gateway's `/.well-known/jwks.json`), fetched lazily and cached.
    Url {
        /// The URL.
        url: String,
        /// Least time between two fetches.
        cooldown: Duration,
    },
}

/// What a verifier checks.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Tolerated clock skew (capped at 30 s).
    pub leeway: Duration,
    /// Where keys come from.
    pub keys: KeySource,
}

/// Decides whether a token whose signature and claims verified has been revoked since.
#[tonic::async_trait]
pub trait Revocations: Send + Sync {
    /// Refuses a token that was revoked (its `jti`, or its `iat` before the not-before of its `sub`
    /// or `key`), and every token while the revocations cannot be confirmed current.
    async fn check(&self, claims: &Claims) -> Result<(), AuthError>;
}

/// A verifier; cheap to share behind an `Arc`.
pub struct Verifier {
    config: VerifierConfig,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
    http: reqwest::Client,
    revocations: Option<Arc<dyn Revocations>>,
    /// Tokens whose signature and claims verified, by SHA-256 of the token: a token seen again
    /// skips the RSA verification and the parse until it expires; revocations are checked on
    /// every use all the same.
    verified: std::sync::Mutex<HashMap<[u8; 32], Claims>>,
}

/// Most tokens remembered as verified (when full, expired ones go, then all).
const VERIFIED_CAPACITY: usize = 10_000;

fn decoding_keys(jwks: &Jwks) -> HashMap<String, DecodingKey> {
    jwks.keys
        .iter()
        .filter(|k| k.kty == "RSA" && k.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter_map(|k: &Jwk| DecodingKey::from_rsa_components(&k.n, &k.e).ok().map(|d| (k.kid.clone(), d)))
        .collect()
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= 128 && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Verifier {
    /// A verifier for `config`, optionally consulting `revocations`; fails only when the HTTP
    /// client for the JWKS cannot be built.
    pub fn new(config: VerifierConfig, revocations: Option<Arc<dyn Revocations>>) -> Result<Self, reqwest::Error> {
        let keys = match &config.keys {
            KeySource::Static(jwks) => decoding_keys(jwks),
            KeySource::Url { .. } => HashMap::new(),
        };
        Ok(Self {
            config,
            keys: RwLock::new(keys),
            last_fetch: Mutex::new(None),
            http: jwks_client()?,
            revocations,
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Verifies a bearer token and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("token too long"));
        }
        let id: [u8; 32] = {
            use sha2::{Digest, Sha256};
            Sha256::digest(token.as_bytes()).into()
        };
        let now = chrono::Utc::now().timestamp();
        let known = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned();
        // Verified before and not expired since (without the leeway: a cached token ends on time).
        if let Some(claims) = known.filter(|c| c.exp > now) {
            return self.principal(claims).await;
        }
        let kid = check_header(token)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.leeway = self.config.leeway.min(MAX_LEEWAY).as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| AuthError::Rejected(e.to_string()))?;
        let claims = data.claims;
        let principal = self.principal(claims.clone()).await?;
        // Not-yet-valid tokens (within the leeway) are not remembered: they are checked again.
        if claims.exp > now && claims.nbf <= now {
            let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.retain(|_, c| c.exp > now);
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
            }
            verified.insert(id, claims);
        }
        Ok(principal)
    }

    /// The principal of claims whose signature verified, unless they are empty or revoked.
    async fn principal(&self, claims: Claims) -> Result<Principal, AuthError> {
        if claims.jti.is_empty() || claims.sub.is_empty() {
            return Err(AuthError::Rejected("empty jti or sub".to_owned()));
        }
        let roles = claims
            .roles
            .iter()
            .map(|r| Role::parse(r).ok_or_else(|| AuthError::Rejected(format!("unknown role `{r}`"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(revocations) = &self.revocations {
            revocations.check(&claims).await?;
        }
        Ok(Principal {
            subject: claims.sub,
            roles,
            kind: claims.kind,
            token_id: claims.jti,
            expires_at: claims.exp,
            key_id: claims.key,
            issued_at: claims.iat,
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        let KeySource::Url { url, cooldown } = &self.config.keys else {
            return Err(AuthError::UnknownKey(kid.to_owned()));
        };
        {
            let mut last = self.last_fetch.lock().await;
            if last.is_some_and(|t| t.elapsed() < *cooldown) {
                // Fetched recently: a flood of made-up kids must not become a flood of fetches.
                return self.keys.read().await.get(kid).cloned().ok_or_else(|| AuthError::UnknownKey(kid.to_owned()));
            }
            *last = Some(Instant::now());
            let jwks = self.fetch(url).await?;
            let fetched = decoding_keys(&jwks);
            if fetched.is_empty() {
                // An empty or unusable JWKS is a fault of the publisher, not a reason to forget the
                // keys we have.
                return Err(AuthError::KeysUnavailable(format!("{url} published no usable RS256 key")));
            }
            *self.keys.write().await = fetched;
        }
        self.keys.read().await.get(kid).cloned().ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self, url: &str) -> Result<Jwks, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::KeysUnavailable(format!("{url}: {e}"));
        let response = self.http.get(url).send().await.map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(unavailable(&response.status()));
        }
        response.json::<Jwks>().await.map_err(|e| unavailable(&e))
    }
}

/// The HTTP client for JWKS fetches: short limits and no redirects (keys come from the configured
/// URL and nowhere else).
fn jwks_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Checks the header and returns the `kid`.
fn check_header(token: &str) -> Result<String, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("header is not JSON"))?;
    let object = value.as_object().ok_or(AuthError::Malformed("header is not an object"))?;
    for refused in ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"] {
        if object.contains_key(refused) {
            return Err(AuthError::RefusedHeader(format!("`{refused}` is not accepted")));
        }
    }
    match object.get("alg").and_then(|a| a.as_str()) {
        Some("RS256") => {}
        other => return Err(AuthError::RefusedHeader(format!("alg {other:?} is not RS256"))),
    }
    match object.get("typ").and_then(|t| t.as_str()) {
        Some(t) if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") => {}
        other => return Err(AuthError::RefusedHeader(format!("typ {other:?} is not at+jwt"))),
    }
    let kid = object.get("kid").and_then(|k| k.as_str()).ok_or(AuthError::Malformed("no kid"))?;
    if !valid_kid(kid) {
        return Err(AuthError::RefusedHeader("kid has characters outside [A-Za-z0-9_-]".to_owned()));
    }
    Ok(kid.to_owned())
}

/// The bearer token of an `authorization` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::Refusal;

    #[test]
    fn a_revoked_token_is_unauthenticated_and_unconfirmed_revocations_are_unavailable_saying_why() {
        let revoked = AuthError::Revoked(Refusal::SubjectNotBefore).to_status();
        assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
        assert_eq!(revoked.message(), "invalid or missing credentials");
        let stale = AuthError::RevocationsStale("cannot connect to Postgres at db:5432/prfix".to_owned()).to_status();
        assert_eq!(stale.code(), tonic::Code::Unavailable);
        assert!(stale.message().contains("revocations cannot be confirmed current"), "{stale:?}");
        assert!(!stale.message().contains("db:5432"), "the database's address stays in the log: {stale:?}");
    }
}
