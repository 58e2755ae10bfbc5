//! A fake Ollama HTTP server: answers from scripts and records every request it receives. The one
//! test double of the suite, standing where the network edge is.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use tokio_util::sync::CancellationToken;

/// A scripted reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body chunks, sent in order (NDJSON lines for streaming endpoints).
    pub chunks: Vec<String>,
    /// Pause before each chunk.
    pub chunk_delay: Duration,
    /// Never finish the body after the chunks (a hanging model).
    pub hang: bool,
}

impl Reply {
    /// A 200 with a JSON body.
    pub fn json(value: serde_json::Value) -> Self {
        Self { status: 200, chunks: vec![value.to_string()], chunk_delay: Duration::ZERO, hang: false }
    }

    /// An error status with a JSON `{"error": ...}` body, as Ollama sends them.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(serde_json::json!({ "error": message })).with_status(status)
    }

    /// A streamed `/api/chat` answer: `content` in a few NDJSON messages, then `done` with token
    /// counts, as Ollama sends it.
    pub fn chat(content: &str) -> Self {
        let chars: Vec<char> = content.chars().collect();
        let piece = chars.len().div_ceil(3).max(1);
        let mut chunks: Vec<String> = chars
            .chunks(piece)
            .map(|part| {
                let text: String = part.iter().collect();
                format!(
                    "{}\n",
                    serde_json::json!({"model": "m", "message": {"role": "assistant", "content": text}, "done": false})
                )
            })
            .collect();
        chunks.push(format!(
            "{}\n",
            serde_json::json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,
                "done_reason": "stop", "prompt_eval_count": 321, "eval_count": chars.len() / 4 + 1,
                "total_duration": 1_000_000})
        ));
        Self { status: 200, chunks, chunk_delay: Duration::ZERO, hang: false }
    }

    /// A chat that sends `tokens` (maybe none) and then nothing more, never finishing.
    pub fn chat_hanging(tokens: &[&str]) -> Self {
        let chunks = tokens
            .iter()
            .map(|t| {
                format!("{}\n", serde_json::json!({"message": {"role": "assistant", "content": t}, "done": false}))
            })
            .collect();
        Self { status: 200, chunks, chunk_delay: Duration::ZERO, hang: true }
    }

    /// The same reply with a pause before each chunk.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// The same reply with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

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
}

/// Chooses a reply from a request's body (for calls that arrive in no fixed order).
pub type Responder = Arc<dyn Fn(&str) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Script {
    /// Replies chosen from the body, tried before the queue.
    responders: HashMap<String, Responder>,
    /// Replies used once each, in order, per path.
    queued: HashMap<String, VecDeque<Reply>>,
    /// Replies used when a path's queue is empty.
    default: HashMap<String, Reply>,
    recorded: Vec<RecordedRequest>,
    /// Hanging replies whose client went away.
    disconnects: usize,
}

/// A running fake Ollama; stops when dropped.
pub struct FakeOllama {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    disconnected: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Script>>,
    disconnected: Arc<tokio::sync::Notify>,
}

impl FakeOllama {
    /// Starts the fake on a free loopback port, with no models pulled.
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let disconnected = Arc::new(tokio::sync::Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port is free");
        let addr = listener.local_addr().expect("bound address");
        let shared = Shared { script: script.clone(), disconnected: disconnected.clone() };
        let router = axum::Router::new().fallback(handle).with_state(shared);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        let fake = Self { addr, script, disconnected, stop };
        fake.set_models(&[]);
        fake.set_default("/api/version", Reply::json(serde_json::json!({"version": "0.12.6"})));
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
        self.lock().queued.entry(path.to_owned()).or_default().push_back(reply);
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

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let reply = {
        let mut script = shared.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        script.recorded.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
        });
        let chosen = script.responders.get(&path).and_then(|r| r(&String::from_utf8_lossy(&body)));
        chosen
            .or_else(|| script.queued.get_mut(&path).and_then(VecDeque::pop_front))
            .or_else(|| script.default.get(&path).cloned())
    };
    let Some(reply) = reply else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("404 page not found"))
            .unwrap_or_default();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let shared = shared.clone();
    tokio::spawn(async move {
        for chunk in reply.chunks {
            if !reply.chunk_delay.is_zero() {
                tokio::time::sleep(reply.chunk_delay).await;
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
        if reply.hang {
            // Keep the body open until the client goes away, and say that it did.
            tx.closed().await;
            shared.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner).disconnects += 1;
            shared.disconnected.notify_waiters();
        }
    });
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .unwrap_or_default()
}
