//! The HTTP server every fake forge runs on: records each request, asks the forge's contract
//! whether it is valid, answers a scripted answer when one is queued for its operation, else lets
//! the forge answer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct ForgeRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The path below the API's prefix, still percent-encoded (`/projects/group%2Fapp/...`).
    pub path: String,
    /// The query's pairs, decoded.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

impl ForgeRequest {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The page of `items` the request's query asks for: `size_key` items a page (`per_page` on
    /// GitHub and GitLab, `limit` on Gitea; `default` when absent), page `page` from 1.
    pub fn page(&self, items: Vec<Value>, size_key: &str, default: usize) -> Vec<Value> {
        let number = |key: &str| self.query.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse::<usize>().ok());
        let (size, page) = (number(size_key).unwrap_or(default), number("page").unwrap_or(1));
        items.into_iter().skip(size * page.saturating_sub(1)).take(size).collect()
    }

    /// The path's segments after the leading `/`, percent-decoded.
    pub fn segments(&self) -> Vec<String> {
        self.path.trim_start_matches('/').split('/').map(percent_decode).collect()
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`...
    pub method: String,
    /// The path below the API's prefix.
    pub path: String,
    /// The query's pairs.
    pub query: Vec<(String, String)>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    /// The operation it matched (`pulls/create-review`), when valid.
    pub operation: Option<String>,
    /// Why the forge would refuse it, when it would.
    pub violation: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// An answer: status, headers, JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (`Null`: empty).
    pub body: Value,
    /// A body that is text, not JSON (a diff), sent as `text/plain` instead of `body`.
    pub text: Option<String>,
}

impl Answer {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: Vec::new(), body, text: None }
    }

    /// `status` with a text body (`text/plain`).
    pub fn text(status: u16, text: &str) -> Self {
        Self { status, headers: Vec::new(), body: Value::Null, text: Some(text.to_owned()) }
    }

    /// `status` with `{"message": message}`.
    pub fn message(status: u16, message: &str) -> Self {
        Self::json(status, serde_json::json!({ "message": message }))
    }

    /// The same answer with a header added.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What makes a fake forge: its contract and its answers.
pub trait Contract: Send + 'static {
    /// The operation `request` is (a stable name), or why the forge refuses it, with the status it
    /// refuses it with.
    fn check(&self, request: &ForgeRequest) -> Result<String, (u16, String)>;
    /// The answer to a valid request for `operation`; `base` is the fake's base URL, for links.
    fn answer(&mut self, operation: &str, request: &ForgeRequest, base: &str) -> Answer;
}

struct Inner<C> {
    contract: C,
    recorded: Vec<Recorded>,
    /// Answers for the next valid requests of an operation, in order.
    scripted: VecDeque<(String, Answer)>,
}

/// A running fake forge with contract `C`; stops when dropped.
pub struct FakeForge<C: Contract> {
    addr: SocketAddr,
    prefix: String,
    inner: Arc<Mutex<Inner<C>>>,
    stop: CancellationToken,
}

impl<C: Contract> FakeForge<C> {
    /// Starts the fake on a free loopback port, serving its API under `prefix` (`/api/v4`, or ``).
    pub async fn start(contract: C, prefix: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner { contract, recorded: Vec::new(), scripted: VecDeque::new() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port is free");
        let addr = listener.local_addr().expect("bound address");
        let state = (inner.clone(), prefix.to_owned(), format!("http://{addr}"));
        let router = axum::Router::new().fallback(handle::<C>).with_state(state);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Self { addr, prefix: prefix.to_owned(), inner, stop }
    }

    /// The API's base URL (with the prefix), as a client is configured with it.
    pub fn api_url(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    /// The server's URL without the API prefix.
    pub fn server_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next valid request for `operation` with `answer` instead of the forge's own.
    pub fn push_answer(&self, operation: &str, answer: Answer) {
        self.lock().scripted.push_back((operation.to_owned(), answer));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().recorded.clone()
    }

    /// The requests the forge would have refused, with the reasons.
    pub fn violations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.violation.as_ref().map(|v| format!("{} {}: {v}", r.method, r.path)))
            .collect()
    }

    /// The valid requests of `operation`.
    pub fn calls(&self, operation: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.operation.as_deref() == Some(operation)).collect()
    }

    /// Reads the forge's state.
    pub fn with<T>(&self, read: impl FnOnce(&C) -> T) -> T {
        read(&self.lock().contract)
    }

    /// Changes the forge's state.
    pub fn with_mut<T>(&self, change: impl FnOnce(&mut C) -> T) -> T {
        change(&mut self.lock().contract)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<C>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C: Contract> Drop for FakeForge<C> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Shared<C> = (Arc<Mutex<Inner<C>>>, String, String);

async fn handle<C: Contract>(
    State((inner, prefix, base)): State<Shared<C>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let full = uri.path();
    let request = ForgeRequest {
        method: method.to_string(),
        path: full.strip_prefix(prefix.as_str()).unwrap_or(full).to_owned(),
        query,
        headers,
        body,
    };
    let mut inner = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let checked = if full.starts_with(prefix.as_str()) {
        inner.contract.check(&request)
    } else {
        Err((404, format!("{full} is outside the API's prefix `{prefix}`")))
    };
    let (answer, operation, violation) = match checked {
        Ok(operation) => {
            let scripted = inner.scripted.iter().position(|(op, _)| *op == operation);
            let answer = match scripted.and_then(|at| inner.scripted.remove(at)) {
                Some((_, answer)) => answer,
                None => inner.contract.answer(&operation, &request, &base),
            };
            (answer, Some(operation), None)
        }
        Err((status, reason)) => (Answer::message(status, &reason), None, Some(reason)),
    };
    inner.recorded.push(Recorded {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        body: request.json(),
        operation,
        violation,
        status: answer.status,
    });
    let content_type = if answer.text.is_some() { "text/plain; charset=utf-8" } else { "application/json" };
    let mut response = Response::builder().status(answer.status).header("content-type", content_type);
    for (name, value) in &answer.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    let body = match (&answer.text, answer.body.is_null()) {
        (Some(text), _) => Body::from(text.clone()),
        (None, true) => Body::empty(),
        (None, false) => Body::from(answer.body.to_string()),
    };
    response.body(body).unwrap_or_default()
}

/// `%2F` → `/`, `+` → space (query strings).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
