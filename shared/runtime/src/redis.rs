//! The Redis client: optional (no URL, no Redis), TLS for `rediss://`, every key under a prefix so
//! that deployments and test runs sharing one server never see each other's keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, Config, ReconnectPolicy};
use secrecy::ExposeSecret;

use crate::settings::CommonSettings;
use crate::tls::{self, TlsError};

pub use fred::clients::Client as RedisClient;

/// Why Redis could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL does not parse.
    #[error("invalid redis_url: {0}")]
    InvalidUrl(String),
    /// TLS could not be set up.
    #[error("redis TLS: {0}")]
    Tls(#[from] TlsError),
    /// The client could not be built.
    #[error("cannot build the Redis client: {0}")]
    Client(String),
}

/// How long one Redis call may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis is left alone after a failure before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A connected-or-connecting Redis client with the deployment's key prefix.
#[derive(Clone)]
pub struct Redis {
    /// The client; it reconnects by itself.
    pub client: RedisClient,
    /// Prefix for every key.
    pub prefix: String,
    down_until: Arc<Mutex<Option<Instant>>>,
    /// Calls not made or failed because Redis was down (a metric's source).
    pub failures: Arc<AtomicU64>,
}

/// Redis did not answer (down, or too slow); callers fall back to what works without it.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct Unavailable(pub String);

impl Redis {
    /// The full key for `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one Redis call with a short limit. After a failure, calls are refused at once for
    /// [`RETRY_AFTER`] (so an outage costs callers nothing), then Redis is tried again.
    pub async fn call<T, F>(&self, call: F) -> Result<T, Unavailable>
    where
        F: std::future::Future<Output = Result<T, fred::error::Error>>,
    {
        if self.down_until.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|t| Instant::now() < t) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(Unavailable("marked down after a recent failure".to_owned()));
        }
        let reason = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => {
                if self.down_until.lock().unwrap_or_else(PoisonError::into_inner).take().is_some() {
                    crate::metrics::METRICS.redis_fallback.set(0);
                    tracing::info!("redis answers again");
                }
                return Ok(value);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", CALL_TIMEOUT.as_millis()),
        };
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut down = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        if down.is_none() {
            crate::metrics::METRICS.redis_fallback.set(1);
            tracing::warn!(%reason, "redis failed; falling back until it answers");
        }
        *down = Some(Instant::now() + RETRY_AFTER);
        Err(Unavailable(reason))
    }
}

/// Builds the client when `redis_url` is set and starts connecting in the background; callers
/// must tolerate Redis being down (limits fall back to local ones, for example).
pub async fn connect(common: &CommonSettings) -> Result<Option<Redis>, RedisError> {
    let Some(url) = &common.redis_url else { return Ok(None) };
    let url = url.expose_secret();
    let mut config = Config::from_url(url).map_err(|e| RedisError::InvalidUrl(e.details().to_owned()))?;
    if url.starts_with("rediss://") {
        let client_config = match &common.redis_ca_file {
            Some(ca) => tls::verifying(ca)?,
            None => {
                return Err(RedisError::InvalidUrl(
                    "rediss:// needs redis_ca_file (the CA that signed the server's certificate)".to_owned(),
                ));
            }
        };
        config.tls = Some(fred::types::config::TlsConnector::from(client_config).into());
    }
    let client = fred::types::Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(1);
            c.internal_command_timeout = Duration::from_secs(1);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(1);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()
        .map_err(|e| RedisError::Client(e.to_string()))?;
    // Connect in the background: a Redis outage must not stop a service from starting.
    let _connection_task = client.connect();
    let _ = tokio::time::timeout(Duration::from_secs(1), client.wait_for_connect()).await;
    Ok(Some(Redis {
        client,
        prefix: common.redis_key_prefix.clone(),
        down_until: Arc::new(Mutex::new(None)),
        failures: Arc::new(AtomicU64::new(0)),
    }))
}
