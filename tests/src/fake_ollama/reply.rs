//! Scripted replies of the fake Ollama, shaped as Ollama sends them.

use std::time::Duration;

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

    /// A streamed `/api/pull` answer as Ollama's API documents it: the manifest, one layer of
    /// `total` bytes in two steps, the digest check, the manifest write, `success`.
    pub fn pull(total: i64) -> Self {
        let digest = "sha256:2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8";
        let lines = [
            serde_json::json!({"status": "pulling manifest"}),
            serde_json::json!({"status": format!("pulling {digest}"), "digest": digest, "total": total, "completed": total / 2}),
            serde_json::json!({"status": format!("pulling {digest}"), "digest": digest, "total": total, "completed": total}),
            serde_json::json!({"status": "verifying sha256 digest"}),
            serde_json::json!({"status": "writing manifest"}),
            serde_json::json!({"status": "success"}),
        ];
        let chunks = lines.iter().map(|line| format!("{line}\n")).collect();
        Self { status: 200, chunks, chunk_delay: Duration::ZERO, hang: false }
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

    /// A streamed chat that opens an answer and then writes `pieces` pieces of `piece` (say, blank
    /// space) until the output limit stops it: `done` with `done_reason: length`, as Ollama ends an
    /// answer cut off by `num_predict`.
    pub fn chat_running_on(start: &str, piece: &str, pieces: usize) -> Self {
        let message = |text: &str| {
            format!(
                "{}\n",
                serde_json::json!({"model": "m", "message": {"role": "assistant", "content": text}, "done": false})
            )
        };
        let mut chunks = vec![message(start)];
        chunks.extend(std::iter::repeat_n(message(piece), pieces));
        chunks.push(format!(
            "{}\n",
            serde_json::json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,
                "done_reason": "length", "prompt_eval_count": 321, "eval_count": pieces + 1})
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
