//! The Unleash client protocol: `GET <url>/client/features` with the client token and the
//! `UNLEASH-APPNAME`/`UNLEASH-INSTANCEID` headers, `If-None-Match` with the last `ETag` (a 304 costs
//! nothing), and the last flags fetched kept on disk so a restart during an outage serves them.
//!
//! Written here rather than taken from `unleash-api-client`: that crate keeps no copy on disk (the
//! fail-static restart this service needs), and brings its own HTTP stack and evaluation engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::{Feature, FeaturesResponse};

/// Why flags could not be fetched or kept.
#[derive(Debug, thiserror::Error)]
pub enum UnleashError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for Unleash: {0}")]
    Client(#[source] reqwest::Error),
    /// Unleash did not answer.
    #[error("cannot reach Unleash at {url}: {source}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Unleash answered with an error status.
    #[error("Unleash at {url} answered {status}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer is not the client API's JSON.
    #[error("Unleash at {url} sent flags this client cannot read: {reason}")]
    Malformed {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The copy on disk could not be written or read.
    #[error("flag backup {path}: {reason}")]
    Backup {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What a fetch found.
#[derive(Debug)]
pub enum Fetched {
    /// The flags did not change since the last fetch (304).
    NotModified,
    /// The flags as served now.
    Features {
        /// The flags.
        features: Vec<Feature>,
        /// Their `ETag`, for the next fetch.
        etag: Option<String>,
    },
}

/// A client of one Unleash server.
pub struct UnleashClient {
    http: reqwest::Client,
    url: String,
    token: SecretString,
    app_name: String,
    instance_id: String,
    etag: Option<String>,
}

impl UnleashClient {
    /// A client of the API at `base_url` (`http://unleash:4242/api`).
    pub fn new(
        base_url: &str,
        token: SecretString,
        app_name: &str,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<Self, UnleashError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(UnleashError::Client)?;
        Ok(Self {
            http,
            url: format!("{}/client/features", base_url.trim_end_matches('/')),
            token,
            app_name: app_name.to_owned(),
            instance_id: instance_id.to_owned(),
            etag: None,
        })
    }

    /// Starts from the `ETag` of flags already held (from the disk copy), so an unchanged server
    /// answers 304.
    pub fn set_etag(&mut self, etag: Option<String>) {
        self.etag = etag;
    }

    /// The features URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the flags unless they are unchanged.
    pub async fn fetch(&mut self) -> Result<Fetched, UnleashError> {
        let mut request = self
            .http
            .get(&self.url)
            .header("Authorization", self.token.expose_secret())
            .header("UNLEASH-APPNAME", &self.app_name)
            .header("UNLEASH-INSTANCEID", &self.instance_id)
            .header("UNLEASH-SDK", concat!("prfix-flags:", env!("CARGO_PKG_VERSION")))
            .header("Accept", "application/json");
        if let Some(etag) = &self.etag {
            request = request.header("If-None-Match", etag);
        }
        let url = self.url.clone();
        let response = request.send().await.map_err(|source| UnleashError::Unreachable { url: url.clone(), source })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(|source| UnleashError::Unreachable { url: url.clone(), source })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(UnleashError::Status { url, status: status.as_u16(), body: text.chars().take(300).collect() });
        }
        let parsed: FeaturesResponse = serde_json::from_slice(&body)
            .map_err(|e| UnleashError::Malformed { url: url.clone(), reason: e.to_string() })?;
        self.etag.clone_from(&etag);
        Ok(Fetched::Features { features: parsed.features, etag })
    }
}

/// The copy on disk of the last flags fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// The features URL they came from.
    pub url: String,
    /// When they were fetched.
    pub fetched_at: chrono::DateTime<chrono::Utc>,
    /// Their `ETag`.
    pub etag: Option<String>,
    /// The flags.
    pub features: Vec<Feature>,
}

impl Backup {
    /// Reads the copy at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, UnleashError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(UnleashError::Backup { path: path.to_owned(), reason: e.to_string() }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| UnleashError::Backup { path: path.to_owned(), reason: format!("not a flag backup: {e}") })
    }

    /// Writes the copy to `path` atomically (a temporary file renamed over it), so a crash leaves
    /// the old copy or the new one, never half of one.
    pub fn write(&self, path: &Path) -> Result<(), UnleashError> {
        let failed = |e: std::io::Error| UnleashError::Backup { path: path.to_owned(), reason: e.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| UnleashError::Backup { path: path.to_owned(), reason: e.to_string() })?;
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&temporary, text).map_err(failed)?;
        std::fs::rename(&temporary, path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            failed(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_survives_a_round_trip_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/flags.json");
        assert_eq!(Backup::read(&path).expect("missing is fine"), None);
        let backup = Backup {
            url: "http://u/api/client/features".into(),
            fetched_at: chrono::Utc::now(),
            etag: Some("\"x:1\"".into()),
            features: vec![Feature { name: "agent.fix".into(), enabled: false, ..Feature::default() }],
        };
        backup.write(&path).expect("written");
        assert_eq!(Backup::read(&path).expect("read"), Some(backup));
        std::fs::write(&path, b"{").expect("overwrite");
        let err = Backup::read(&path).expect_err("corrupt").to_string();
        assert!(err.contains("not a flag backup"), "{err}");
    }
}
