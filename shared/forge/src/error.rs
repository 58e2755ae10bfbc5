//! Why a call to a forge failed, said so that the reader knows which call, what the forge answered
//! and what to do.

/// A failed forge call. Every variant names the call (`creating the review (POST
/// /repos/o/r/pulls/7/reviews)`).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The API URL cannot be used.
    #[error("the forge API URL `{url}` is not usable: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The forge answered with an error status.
    #[error("{call} failed: HTTP {status}: {message}")]
    Status {
        /// The call.
        call: String,
        /// The HTTP status.
        status: u16,
        /// The forge's message (and its listed errors), or the start of the body.
        message: String,
    },
    /// Rate-limited (or failing passingly) on every try.
    #[error("{call} failed: still {reason} after {tries} tries; try again later")]
    GaveUp {
        /// The call.
        call: String,
        /// How many times it was sent.
        tries: u32,
        /// The last answer: `rate-limited (HTTP 403: ...)`, `HTTP 502`.
        reason: String,
    },
    /// The forge asked to wait longer than the policy allows.
    #[error("{call} failed: rate-limited and the forge asks to wait {seconds} s, more than the {limit} s allowed")]
    WaitTooLong {
        /// The call.
        call: String,
        /// The wait the forge asked for.
        seconds: u64,
        /// The longest wait allowed.
        limit: u64,
    },
    /// The forge could not be reached (connection, TLS, timeout).
    #[error("{call} failed: {source}")]
    Transport {
        /// The call.
        call: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The forge's answer is not what its API documents.
    #[error("{call}: unexpected answer from the forge: {reason}")]
    Answer {
        /// The call.
        call: String,
        /// What is missing or wrong.
        reason: String,
    },
}

impl ForgeError {
    /// The HTTP status of a [`ForgeError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The forge's message from an error body: GitHub's and Gitea's `message` (with GitHub's `errors`),
/// GitLab's `message` or `error`; else the start of the body.
pub(crate) fn forge_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
        return if text.is_empty() { "(no message)".to_owned() } else { crate::truncate(&text, 300) };
    };
    let mut parts = Vec::new();
    for key in ["message", "error", "error_description"] {
        match value.get(key) {
            Some(serde_json::Value::String(s)) => parts.push(s.clone()),
            Some(other @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => parts.push(other.to_string()),
            _ => {}
        }
    }
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
        let listed: Vec<String> = errors
            .iter()
            .map(|e| match e {
                serde_json::Value::String(s) => s.clone(),
                other => other.get("message").and_then(|m| m.as_str()).map_or_else(|| other.to_string(), str::to_owned),
            })
            .collect();
        if !listed.is_empty() {
            parts.push(format!("({})", listed.join("; ")));
        }
    }
    if parts.is_empty() { crate::truncate(&value.to_string(), 300) } else { crate::truncate(&parts.join(" "), 600) }
}

#[cfg(test)]
mod tests {
    use super::forge_message;

    #[test]
    fn the_forges_message_and_listed_errors_are_kept() {
        let github =
            r#"{"message":"Unprocessable Entity","errors":["Line could not be resolved"],"documentation_url":"x"}"#;
        assert_eq!(forge_message(github), "Unprocessable Entity (Line could not be resolved)");
        assert_eq!(forge_message(r#"{"message":{"note":["is too long"]}}"#), r#"{"note":["is too long"]}"#);
        assert_eq!(forge_message(r#"{"error":"insufficient_scope"}"#), "insufficient_scope");
        assert_eq!(forge_message("<html>\n bad gateway </html>"), "<html> bad gateway </html>");
        assert_eq!(forge_message(""), "(no message)");
    }
}
