//! A fake Ollama HTTP server: answers from scripts and records every request it receives. The one
//! test double of the suite, standing where the network edge is.
//!
//! Requests are checked against Ollama's API contract ([`contract`]) and refused with a 400 when
//! they break it. Like Ollama, it can serve a limited number of chats at once (the others wait, as
//! in Ollama's queue), count prompt tokens from what it received, break a stream off, and it
//! records how far each streamed reply got before its client went away.

pub mod contract;
mod reply;

pub use reply::Reply;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use tokio_util::sync::CancellationToken;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path (`/api/chat`).
    pub path: String,
    /// The body as text.
    pub body: String,
    /// The `traceparent` header, when the caller sent one.
    pub traceparent: Option<String>,
    /// Why the request breaks Ollama's contract (it was answered 400), if it does.
    pub violation: Option<String>,
}

/// How far a reply's body got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// The request's path.
    pub path: String,
    /// Chunks the reply had.
    pub chunks: usize,
    /// Chunks handed to the connection before it ended.
    pub sent: usize,
    /// The client went away before the reply's end.
    pub client_left: bool,
}

/// Chooses a reply from a request's body (for calls that arrive in no fixed order).
pub type Responder = Arc<dyn Fn(&str) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Script {
    /// Replies chosen from the body, tried before the queue.
    responders: HashMap<String, Responder>,
    /// Replies used once each, in order, per path, each maybe broken off after some chunks.
    queued: HashMap<String, VecDeque<(Reply, Option<usize>)>>,
    /// Replies used when a path's queue is empty.
    default: HashMap<String, Reply>,
    recorded: Vec<RecordedRequest>,
    /// Hanging replies whose client went away.
    disconnects: usize,
    /// Each reply body's progress, in the order replies started.
    streams: Vec<StreamRecord>,
    /// Prompt tokens per estimated token, when `prompt_eval_count` is computed from the request.
    token_ratio: Option<f64>,
    /// Chats served at once; the others wait (Ollama's `OLLAMA_NUM_PARALLEL`).
    chat_slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// A running fake Ollama; stops when dropped.
pub struct FakeOllama {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    disconnected: Arc<tokio::sync::Notify>,
    chats_most: Arc<AtomicUsize>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Script>>,
    disconnected: Arc<tokio::sync::Notify>,
    /// Chats being answered now, and the most at once so far.
    chats_now: Arc<AtomicUsize>,
    chats_most: Arc<AtomicUsize>,
}

impl FakeOllama {
    /// Starts the fake on a free loopback port, with no models pulled.
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let disconnected = Arc::new(tokio::sync::Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port is free");
        let addr = listener.local_addr().expect("bound address");
        let chats_most = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            script: script.clone(),
            disconnected: disconnected.clone(),
            chats_now: Arc::new(AtomicUsize::new(0)),
            chats_most: chats_most.clone(),
        };
        let router = axum::Router::new().fallback(handle).with_state(shared);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        let fake = Self { addr, script, disconnected, chats_most, stop };
        fake.set_models(&[]);
        fake.set_default("/api/version", Reply::json(serde_json::json!({"version": "0.12.6"})));
        fake.set_default("/api/pull", Reply::pull(4_683_087_332));
        fake.set_context_length(32_768);
        fake
    }

    /// Base URL, as the agent's `ollama_url` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes `/api/tags` list these model names.
    pub fn set_models(&self, names: &[&str]) {
        let models: Vec<_> = names
            .iter()
            .map(|name| {
                serde_json::json!({
                    "name": name,
                    "model": name,
                    "modified_at": "2026-10-01T12:00:00Z",
                    "size": 4_683_087_332_i64,
                    "digest": format!("sha256:{:064x}", name.len()),
                    "details": {"format": "gguf", "family": "qwen2", "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}
                })
            })
            .collect();
        self.set_default("/api/tags", Reply::json(serde_json::json!({ "models": models })));
    }

    /// The reply for `path` whenever no queued reply is left.
    pub fn set_default(&self, path: &str, reply: Reply) {
        self.lock().default.insert(path.to_owned(), reply);
    }

    /// Makes `/api/show` report this context length for every model.
    pub fn set_context_length(&self, tokens: u32) {
        self.set_default(
            "/api/show",
            Reply::json(serde_json::json!({
                "parameters": "stop \"<|im_end|>\"",
                "model_info": {"general.architecture": "qwen2", "qwen2.context_length": tokens}
            })),
        );
    }

    /// Answers requests to `path` with `responder` when it returns a reply.
    pub fn respond_with(&self, path: &str, responder: impl Fn(&str) -> Option<Reply> + Send + Sync + 'static) {
        self.lock().responders.insert(path.to_owned(), Arc::new(responder));
    }

    /// Makes every chat answer report `prompt_eval_count` as `ratio` times the agent's estimate of
    /// the prompt it received ([`contract::estimated_prompt_tokens`]), rounded up: a model whose
    /// tokenizer is that much denser (or sparser) than the estimate.
    pub fn set_prompt_token_ratio(&self, ratio: f64) {
        self.lock().token_ratio = Some(ratio);
    }

    /// The prompt tokens this fake counts for a chat request (with its ratio, 1.0 when unset).
    pub fn counted_prompt_tokens(&self, request: &serde_json::Value) -> usize {
        let ratio = self.lock().token_ratio.unwrap_or(1.0);
        counted(request, ratio)
    }

    /// Serves at most `chats` chat replies at once; further ones wait for a slot before their first
    /// chunk, as Ollama queues requests beyond `OLLAMA_NUM_PARALLEL`.
    pub fn set_parallel(&self, chats: usize) {
        self.lock().chat_slots = Some(Arc::new(tokio::sync::Semaphore::new(chats.max(1))));
    }

    /// The most chat replies that were being sent at once.
    pub fn most_concurrent_chats(&self) -> usize {
        self.chats_most.load(Ordering::Relaxed)
    }

    /// How far each reply body got, in the order replies started.
    pub fn streams(&self) -> Vec<StreamRecord> {
        self.lock().streams.clone()
    }

    /// Requests refused for breaking Ollama's contract, with the reason.
    pub fn violations(&self) -> Vec<String> {
        self.lock().recorded.iter().filter_map(|r| r.violation.clone()).collect()
    }

    /// The bodies of the `/api/chat` requests received, parsed.
    pub fn chat_requests(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/api/chat")
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect()
    }

    /// Queues a reply for the next request to `path`.
    pub fn push(&self, path: &str, reply: Reply) {
        self.lock().queued.entry(path.to_owned()).or_default().push_back((reply, None));
    }

    /// Queues a reply for the next request to `path` that breaks the connection off (a reset)
    /// after `chunks` of its chunks.
    pub fn push_broken(&self, path: &str, reply: Reply, chunks: usize) {
        self.lock().queued.entry(path.to_owned()).or_default().push_back((reply, Some(chunks)));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().recorded.clone()
    }

    /// Stops answering: the port closes, as when Ollama is not running.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// How many hanging replies saw their client go away.
    pub fn disconnects(&self) -> usize {
        self.lock().disconnects
    }

    /// Waits until a hanging reply's client goes away; false when `limit` passes first.
    pub async fn wait_for_disconnect(&self, limit: Duration) -> bool {
        let notified = self.disconnected.notified();
        if self.disconnects() > 0 {
            return true;
        }
        tokio::time::timeout(limit, notified).await.is_ok() || self.disconnects() > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn counted(request: &serde_json::Value, ratio: f64) -> usize {
    (contract::estimated_prompt_tokens(request) as f64 * ratio).ceil() as usize
}

/// The contract violation of a request, if any.
fn violation(method: &Method, path: &str, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    match (method.as_str(), path) {
        ("POST", "/api/chat") => contract::check_chat(&text).err(),
        ("POST", "/api/show") => contract::check_show(&text).err(),
        ("POST", "/api/pull") => contract::check_pull(&text).err(),
        ("GET", "/api/tags" | "/api/version") => None,
        (method, path) if path.starts_with("/api/") => Some(format!("{method} {path} is not a call the agent makes")),
        _ => None,
    }
}

/// Sets the `prompt_eval_count` of a chat reply's `done` message to what the fake counts.
fn count_prompt(reply: &mut Reply, body: &[u8], ratio: f64) {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let tokens = counted(&request, ratio);
    for chunk in &mut reply.chunks {
        if let Ok(mut message) = serde_json::from_str::<serde_json::Value>(chunk)
            && message["done"] == true
        {
            message["prompt_eval_count"] = serde_json::json!(tokens);
            *chunk = format!("{message}\n");
        }
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let violation = violation(&method, &path, &body);
    let (reply, slots, reset_after) = {
        let mut script = shared.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        script.recorded.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
            violation: violation.clone(),
        });
        if let Some(reason) = &violation {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::json!({ "error": reason }).to_string()))
                .unwrap_or_default();
        }
        let chosen = script.responders.get(&path).and_then(|r| r(&String::from_utf8_lossy(&body)));
        let (mut reply, reset_after) = match chosen {
            Some(reply) => (Some(reply), None),
            None => match script.queued.get_mut(&path).and_then(VecDeque::pop_front) {
                Some((reply, reset_after)) => (Some(reply), reset_after),
                None => (script.default.get(&path).cloned(), None),
            },
        };
        let chat = path == "/api/chat";
        if chat && let (Some(ratio), Some(reply)) = (script.token_ratio, reply.as_mut()) {
            count_prompt(reply, &body, ratio);
        }
        (reply, if chat { script.chat_slots.clone() } else { None }, reset_after)
    };
    let Some(reply) = reply else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("404 page not found"))
            .unwrap_or_default();
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let shared = shared.clone();
    let chat = path == "/api/chat";
    tokio::spawn(async move {
        // Like Ollama's queue: a chat waits for a slot before its model says anything.
        let _slot = match slots {
            Some(slots) => slots.acquire_owned().await.ok(),
            None => None,
        };
        if chat {
            let now = shared.chats_now.fetch_add(1, Ordering::Relaxed) + 1;
            shared.chats_most.fetch_max(now, Ordering::Relaxed);
        }
        let total = reply.chunks.len();
        let (sent, client_left) = send_chunks(&tx, &reply, reset_after).await;
        if chat {
            shared.chats_now.fetch_sub(1, Ordering::Relaxed);
        }
        let mut script = shared.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        script.streams.push(StreamRecord { path, chunks: total, sent, client_left });
        if client_left && reply.hang {
            script.disconnects += 1;
            drop(script);
            shared.disconnected.notify_waiters();
        }
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .unwrap_or_default()
}

/// Sends a reply's chunks; how many were handed over, and whether the client went away first.
async fn send_chunks(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    reply: &Reply,
    reset_after: Option<usize>,
) -> (usize, bool) {
    for (sent, chunk) in reply.chunks.iter().enumerate() {
        if reset_after == Some(sent) {
            // An error in the body makes the server abort the connection mid-response.
            let _ = tx.send(Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))).await;
            return (sent, false);
        }
        if !reply.chunk_delay.is_zero() {
            tokio::time::sleep(reply.chunk_delay).await;
        }
        if tx.send(Ok(Bytes::from(chunk.clone()))).await.is_err() {
            return (sent, true);
        }
    }
    if reply.hang {
        // Keep the body open until the client goes away.
        tx.closed().await;
        return (reply.chunks.len(), true);
    }
    (reply.chunks.len(), false)
}
