//! The HTTP side of every forge call: the base URL, the token in the header the forge reads, JSON in
//! and out, rate limits and passing failures tried again ([`crate::retry`]), and errors that say
//! which call failed.

use std::time::SystemTime;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::error::{ForgeError, forge_message};
use crate::retry::{self, RetryPolicy};
use crate::{ForgeConfig, ForgeKind, PostedSummary};

/// A forge's REST API.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    retry: RetryPolicy,
    on_retry: Option<fn(&str)>,
    /// A GitHub App installation whose tokens the calls carry (instead of a fixed token).
    installation: Option<std::sync::Arc<crate::app_auth::Installation>>,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

impl Api {
    /// A client for the API `config` names, sending its token on every call.
    pub fn new(config: ForgeConfig) -> Result<Self, ForgeError> {
        let base = config.api_url.trim_end_matches('/').to_owned();
        let invalid = |reason: &str| ForgeError::InvalidUrl { url: config.api_url.clone(), reason: reason.to_owned() };
        let url = reqwest::Url::parse(&base).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("expected an http(s) URL with a host"));
        }
        let mut headers = HeaderMap::new();
        let app = config.github_app.as_ref().filter(|_| config.kind == ForgeKind::GitHub);
        if app.is_none() {
            let token = config.token.expose_secret();
            let (name, value) = match config.kind {
                ForgeKind::GitHub => ("authorization", format!("Bearer {token}")),
                ForgeKind::GitLab => ("private-token", token.to_owned()),
                ForgeKind::Gitea => ("authorization", format!("token {token}")),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| ForgeError::InvalidUrl {
                url: config.api_url.clone(),
                reason: "the token holds characters that cannot be sent in a header".to_owned(),
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if config.kind == ForgeKind::GitHub {
            headers.insert("accept", HeaderValue::from_static("application/vnd.github+json"));
            headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
        } else {
            headers.insert("accept", HeaderValue::from_static("application/json"));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("prfix/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ForgeError::Transport { call: "building the HTTP client".to_owned(), source: e })?;
        let mut retry = config.retry;
        retry.max_tries = retry.max_tries.max(1);
        let installation = app
            .map(|app| crate::app_auth::Installation::new(app, &base, client.clone()).map(std::sync::Arc::new))
            .transpose()?;
        Ok(Self { client, base, retry, on_retry: config.on_retry, installation })
    }

    /// The GitHub App installation the calls authenticate as, if they do.
    pub fn installation_id(&self) -> Option<u64> {
        self.installation.as_ref().map(|i| i.id())
    }

    /// Sends `method path?query` with `body` as JSON; `what` says what the call is for, in errors
    /// (`creating the review`). Rate limits and passing failures are tried again.
    pub async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, ForgeError> {
        let call = format!("{what} ({method} {path})");
        let (status, text) = self.send(&call, method, path, query, body).await?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|e| ForgeError::Answer { call: call.clone(), reason: format!("the body is not JSON ({e})") })?
        };
        Ok(Reply { status, body })
    }

    /// `GET path`, whose answer is text (a diff), not JSON.
    pub(crate) async fn call_text(&self, what: &str, path: &str) -> Result<String, ForgeError> {
        let call = format!("{what} (GET {path})");
        Ok(self.send(&call, Method::GET, path, &[], None).await?.1)
    }

    /// Sends one request, tried again on rate limits and passing failures; the 2xx status and the
    /// body's text.
    async fn send(
        &self,
        call: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, String), ForgeError> {
        let call = call.to_owned();
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ForgeError::Answer { call: call.clone(), reason: format!("the URL cannot be built: {e}") })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let mut request = self.client.request(method.clone(), url.clone());
            if let Some(installation) = &self.installation {
                request = request.header("authorization", installation.authorization().await?);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| ForgeError::Transport { call: call.clone(), source: e })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.map_err(|e| ForgeError::Transport { call: call.clone(), source: e })?;
            if (200..300).contains(&status) {
                return Ok((status, text));
            }
            let message = forge_message(&text);
            let Some(passing) = retry::classify(status, &headers, &message, SystemTime::now()) else {
                return Err(ForgeError::Status { call, status, message });
            };
            if tries >= self.retry.max_tries {
                return Err(ForgeError::GaveUp { call, tries, reason: passing.reason });
            }
            let wait = self.retry.wait(&passing, tries + 1).map_err(|asked| ForgeError::WaitTooLong {
                call: call.clone(),
                seconds: asked.as_secs(),
                limit: self.retry.max_wait.as_secs(),
            })?;
            tracing::warn!(call = %call, reason = %passing.reason, wait_ms = wait.as_millis() as u64, "forge call will be tried again");
            if let Some(notify) = self.on_retry {
                let (next, max) = (tries + 1, self.retry.max_tries);
                notify(&format!(
                    "{call}: {}; trying again in {:.1} s (try {next} of {max})",
                    passing.reason,
                    wait.as_secs_f64()
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Every item of a paged list (`per_page=100&page=N`, as GitHub and GitLab page), in order.
    pub async fn list_all(&self, what: &str, path: &str) -> Result<Vec<Value>, ForgeError> {
        const PER_PAGE: usize = 100;
        // A bound on pages, so a forge that ignores `page` cannot keep this looping.
        const MAX_PAGES: usize = 100;
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let query = [("per_page", PER_PAGE.to_string()), ("page", page.to_string())];
            let batch = self.get_array(what, path, &query).await?;
            let last = batch.len() < PER_PAGE;
            items.extend(batch);
            if last {
                break;
            }
        }
        Ok(items)
    }
}

impl Api {
    /// `GET path?query`, whose answer must be a JSON array.
    pub async fn get_array(&self, what: &str, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, ForgeError> {
        match self.call(what, Method::GET, path, query, None).await?.body {
            Value::Array(items) => Ok(items),
            _ => Err(ForgeError::Answer {
                call: format!("{what} (GET {path})"),
                reason: "expected a JSON array".to_owned(),
            }),
        }
    }

    /// Edits the comment of `existing` that is prfix's summary ([`crate::SUMMARY_MARKER`] on its first
    /// line) to `body` with `edit(id)` (method and path), or creates one with `POST create`. `noun`
    /// names it in errors (`comment`, `note`).
    pub(crate) async fn upsert_summary(
        &self,
        noun: &str,
        existing: &[Value],
        edit: impl Fn(u64) -> (Method, String),
        create: &str,
        body: &str,
    ) -> Result<PostedSummary, ForgeError> {
        let payload = serde_json::json!({ "body": body });
        let found = existing.iter().find(|c| c.get("body").and_then(Value::as_str).is_some_and(crate::is_summary));
        let (call, reply, updated) = match found {
            Some(comment) => {
                let call = format!("editing the summary {noun}");
                let (method, path) = edit(id_of(&format!("listing the {noun}s"), comment)?);
                let reply = self.call(&call, method, &path, &[], Some(&payload)).await?;
                (call, reply, true)
            }
            None => {
                let call = format!("creating the summary {noun}");
                (call.clone(), self.call(&call, Method::POST, create, &[], Some(&payload)).await?, false)
            }
        };
        Ok(PostedSummary { id: id_of(&call, &reply.body)?, updated, url: text_of(&reply.body, "html_url") })
    }
}

/// Whether the body of one of `items` contains `marker`.
pub(crate) fn any_body_contains(items: &[Value], marker: &str) -> bool {
    items.iter().any(|item| item.get("body").and_then(Value::as_str).is_some_and(|body| body.contains(marker)))
}

/// The `id` of a created object, as the forges return it.
pub(crate) fn id_of(call: &str, body: &Value) -> Result<u64, ForgeError> {
    body.get("id").and_then(Value::as_u64).ok_or_else(|| ForgeError::Answer {
        call: call.to_owned(),
        reason: "the answer has no numeric `id`".to_owned(),
    })
}

/// A string field of an answer, when present.
pub(crate) fn text_of(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}
