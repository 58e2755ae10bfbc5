//! Which model faults heal by themselves, and how long to wait before trying again.
//!
//! Ollama answers 503 when its queue is full (`server busy`, `maximum pending requests
//! exceeded`), 500 when the runner process of a model died (`llama runner process has
//! terminated`, reloaded on the next request), and a connection can reset or a stream end without
//! its `done` message when Ollama or a proxy restarts. These are retried after a jittered,
//! exponentially growing pause; everything else (a time limit, a model not pulled, an answer that
//! does not parse) is not, as the same request would fail the same way.

use std::time::Duration;

use super::OllamaError;

/// How transient faults are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Pause before the first retry; each next one doubles it.
    pub base: Duration,
    /// Longest pause.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The pause before retry number `retry` (from 0): `base × 2^retry`, capped, then drawn at
    /// random from its upper half so that clients failed by one busy server do not return together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let full = self.base.saturating_mul(2u32.saturating_pow(retry.min(16))).min(self.cap);
        let half = full / 2;
        let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 { 0 } else { random_u64() % (spread + 1) };
        half + Duration::from_millis(jitter)
    }
}

/// Random bits from the operating system (through a v4 UUID, already a dependency).
fn random_u64() -> u64 {
    // Truncation keeps 64 of the UUID's random bits.
    uuid::Uuid::new_v4().as_u128() as u64
}

impl OllamaError {
    /// The endpoint the failure happened at, when it names one.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            OllamaError::Unreachable { endpoint, .. }
            | OllamaError::Timeout { endpoint, .. }
            | OllamaError::FirstTokenTimeout { endpoint, .. }
            | OllamaError::StalledTimeout { endpoint, .. }
            | OllamaError::CallTimeout { endpoint, .. }
            | OllamaError::Status { endpoint, .. }
            | OllamaError::Interrupted { endpoint, .. }
            | OllamaError::Degenerate { endpoint, .. }
            | OllamaError::Malformed { endpoint, .. } => Some(endpoint),
            OllamaError::NoEndpoint(_) | OllamaError::ModelNotPulled { .. } => None,
        }
    }

    /// Whether the same request may well succeed if sent again (on this or another endpoint).
    pub fn is_transient(&self) -> bool {
        match self {
            OllamaError::Unreachable { .. } | OllamaError::Interrupted { .. } => true,
            OllamaError::Status { status, body, .. } => match status {
                502..=504 => true,
                // 200: an error message inside the stream.
                500 | 200 => {
                    let body = body.to_ascii_lowercase();
                    ["runner process has terminated", "runner process no longer running", "server busy"]
                        .iter()
                        .any(|known| body.contains(known))
                }
                _ => false,
            },
            OllamaError::NoEndpoint(_)
            | OllamaError::Timeout { .. }
            | OllamaError::FirstTokenTimeout { .. }
            | OllamaError::StalledTimeout { .. }
            | OllamaError::CallTimeout { .. }
            | OllamaError::ModelNotPulled { .. }
            | OllamaError::Malformed { .. }
            | OllamaError::Degenerate { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> OllamaError {
        OllamaError::Status { endpoint: "http://e".into(), status, body: body.into() }
    }

    #[test]
    fn busy_servers_dead_runners_and_broken_connections_are_transient() {
        assert!(status(503, "server busy, please try again.  maximum pending requests exceeded").is_transient());
        assert!(status(500, "llama runner process has terminated: signal: killed").is_transient());
        assert!(status(502, "bad gateway").is_transient());
        assert!(OllamaError::Interrupted { endpoint: "e".into(), reason: "reset".into() }.is_transient());
        assert!(OllamaError::Unreachable { endpoint: "e".into(), reason: "refused".into() }.is_transient());
    }

    #[test]
    fn limits_missing_models_and_other_errors_are_not_transient() {
        assert!(!status(500, "model requires more system memory (9 GiB) than is available").is_transient());
        assert!(!status(400, "invalid options").is_transient());
        let timeout = OllamaError::FirstTokenTimeout { model: "m".into(), endpoint: "e".into(), timeout_ms: 1 };
        assert!(!timeout.is_transient());
        assert!(!OllamaError::ModelNotPulled { model: "m".into(), where_: "e".into() }.is_transient());
    }

    #[test]
    fn pauses_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let policy = RetryPolicy { retries: 3, base: Duration::from_millis(200), cap: Duration::from_secs(5) };
        for _ in 0..50 {
            let first = policy.backoff(0);
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&first), "{first:?}");
            let third = policy.backoff(2);
            assert!((Duration::from_millis(400)..=Duration::from_millis(800)).contains(&third), "{third:?}");
            let late = policy.backoff(30);
            assert!((Duration::from_millis(2500)..=Duration::from_secs(5)).contains(&late), "{late:?}");
        }
    }
}
