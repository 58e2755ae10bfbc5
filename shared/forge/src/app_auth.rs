//! GitHub App authentication: the app signs a short JSON Web Token (RS256, `iss` its id, at most ten
//! minutes long) with its private key, and exchanges it for an installation access token
//! (`POST /app/installations/{installation_id}/access_tokens`), which the calls then carry. The
//! installation token lasts an hour; it is kept and used until [`REFRESH_BEFORE`] before it
//! expires, then exchanged anew, so a long review never sends an expired token.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::error::ForgeError;

/// How long before its expiry an installation token is replaced.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// The app JWT's lifetime (GitHub allows ten minutes at most).
const JWT_LIFETIME: i64 = 9 * 60;
/// How far back the JWT's `iat` is set, for clocks that run a little apart (GitHub's advice).
const CLOCK_SKEW: i64 = 60;

/// A GitHub App installation to authenticate as.
#[derive(Clone)]
pub struct GitHubApp {
    /// The app's id (or its client id), the JWT's `iss`.
    pub app_id: String,
    /// The installation on the account whose repositories are reviewed.
    pub installation_id: u64,
    /// The app's private key (PEM, PKCS#1 or PKCS#8), from the environment or a mounted file.
    pub private_key: SecretString,
}

impl std::fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

/// Installation tokens of one app installation, cached.
pub(crate) struct Installation {
    app_id: String,
    installation_id: u64,
    key: EncodingKey,
    client: reqwest::Client,
    /// `{base}/app/installations/{id}/access_tokens`.
    url: String,
    cached: Mutex<Option<(SecretString, i64)>>,
}

impl std::fmt::Debug for Installation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installation").field("installation_id", &self.installation_id).finish_non_exhaustive()
    }
}

impl Installation {
    /// Tokens for `app` from the API at `base` through `client`.
    pub(crate) fn new(app: &GitHubApp, base: &str, client: reqwest::Client) -> Result<Self, ForgeError> {
        let key = EncodingKey::from_rsa_pem(app.private_key.expose_secret().as_bytes()).map_err(|e| {
            ForgeError::InvalidUrl {
                url: base.to_owned(),
                reason: format!("the GitHub App's private key is not an RSA key in PEM ({e})"),
            }
        })?;
        Ok(Self {
            app_id: app.app_id.clone(),
            installation_id: app.installation_id,
            key,
            client,
            url: format!("{base}/app/installations/{}/access_tokens", app.installation_id),
            cached: Mutex::new(None),
        })
    }

    /// The installation's id.
    pub(crate) fn id(&self) -> u64 {
        self.installation_id
    }

    /// The app's JWT, valid from a minute ago for nine minutes.
    fn app_jwt(&self, now: i64) -> Result<String, ForgeError> {
        let claims = Claims { iat: now - CLOCK_SKEW, exp: now + JWT_LIFETIME, iss: &self.app_id };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| ForgeError::Answer { call: "signing the GitHub App's JWT".to_owned(), reason: e.to_string() })
    }

    /// An `Authorization` value with a current installation token.
    pub(crate) async fn authorization(&self) -> Result<HeaderValue, ForgeError> {
        let mut cached = self.cached.lock().await;
        let now = chrono::Utc::now().timestamp();
        let fresh = cached.as_ref().filter(|(_, expires)| expires - now > REFRESH_BEFORE.as_secs() as i64);
        let token = match fresh {
            Some((token, _)) => token.expose_secret().to_owned(),
            None => {
                let (token, expires) = self.exchange(now).await?;
                *cached = Some((SecretString::from(token.clone()), expires));
                token
            }
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ForgeError::Answer {
            call: format!("creating an installation access token (POST {})", self.path()),
            reason: "the token holds characters that cannot be sent in a header".to_owned(),
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn path(&self) -> String {
        format!("/app/installations/{}/access_tokens", self.installation_id)
    }

    /// Exchanges a new app JWT for an installation token and its expiry (Unix seconds).
    async fn exchange(&self, now: i64) -> Result<(String, i64), ForgeError> {
        let call = format!("creating an installation access token (POST {})", self.path());
        let jwt = self.app_jwt(now)?;
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(jwt)
            .send()
            .await
            .map_err(|e| ForgeError::Transport { call: call.clone(), source: e })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| ForgeError::Transport { call: call.clone(), source: e })?;
        if status != 201 && status != 200 {
            let message = crate::error::forge_message(&text);
            return Err(ForgeError::Status { call, status, message });
        }
        let body: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ForgeError::Answer { call: call.clone(), reason: format!("the body is not JSON ({e})") })?;
        let token = body
            .get("token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ForgeError::Answer { call: call.clone(), reason: "the answer has no `token`".to_owned() })?;
        let expires = body
            .get("expires_at")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .ok_or_else(|| ForgeError::Answer { call, reason: "the answer has no RFC 3339 `expires_at`".to_owned() })?;
        Ok((token.to_owned(), expires))
    }
}
