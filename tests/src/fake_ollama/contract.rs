//! Ollama's API contract as the fake checks it: the request bodies of `/api/chat` and
//! `/api/show` as Ollama documents them (docs/api.md), strictly. Ollama itself ignores unknown
//! fields; the fake refuses them with a 400 so that a field the agent misspells, or invents, fails
//! a test instead of being silently dropped by the real server.

use serde_json::Value;

/// Top-level fields of a `/api/chat` request.
const CHAT_FIELDS: &[&str] = &["model", "messages", "stream", "format", "options", "keep_alive", "tools", "think"];

/// Fields of a chat message.
const MESSAGE_FIELDS: &[&str] = &["role", "content", "images", "tool_calls", "thinking", "tool_name"];

/// Message roles.
const ROLES: &[&str] = &["system", "user", "assistant", "tool"];

/// Model options that take integers (Ollama's `Options` and `Runner`).
const INTEGER_OPTIONS: &[&str] = &[
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
];

/// Model options that take numbers.
const NUMBER_OPTIONS: &[&str] =
    &["top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty"];

/// Model options that take booleans.
const BOOLEAN_OPTIONS: &[&str] = &["numa", "use_mmap", "penalize_newline"];

/// Checks a `/api/chat` body; the parsed body, or why Ollama's contract refuses it.
pub fn check_chat(body: &str) -> Result<Value, String> {
    let request: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let fields = request.as_object().ok_or("the body is not a JSON object")?;
    for key in fields.keys() {
        if !CHAT_FIELDS.contains(&key.as_str()) {
            return Err(format!("unknown field `{key}` in a chat request"));
        }
    }
    match fields.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => {}
        _ => return Err("`model` must be a non-empty string".to_owned()),
    }
    let messages = fields.get("messages").and_then(Value::as_array).ok_or("`messages` must be an array")?;
    for (i, message) in messages.iter().enumerate() {
        let message = message.as_object().ok_or(format!("messages[{i}] is not an object"))?;
        if let Some(key) = message.keys().find(|k| !MESSAGE_FIELDS.contains(&k.as_str())) {
            return Err(format!("unknown field `{key}` in messages[{i}]"));
        }
        match message.get("role").and_then(Value::as_str) {
            Some(role) if ROLES.contains(&role) => {}
            other => return Err(format!("messages[{i}].role {other:?} is not one of {ROLES:?}")),
        }
        if !message.get("content").is_some_and(Value::is_string) {
            return Err(format!("messages[{i}].content must be a string"));
        }
    }
    if fields.get("stream").is_some_and(|s| !s.is_boolean()) {
        return Err("`stream` must be a boolean".to_owned());
    }
    match fields.get("format") {
        None | Some(Value::Object(_)) => {}
        Some(Value::String(s)) if s == "json" => {}
        Some(other) => return Err(format!("`format` must be \"json\" or a JSON schema, not {other}")),
    }
    match fields.get("keep_alive") {
        None | Some(Value::String(_)) | Some(Value::Number(_)) => {}
        Some(other) => return Err(format!("`keep_alive` must be a duration or seconds, not {other}")),
    }
    if let Some(options) = fields.get("options") {
        check_options(options)?;
    }
    Ok(request)
}

fn check_options(options: &Value) -> Result<(), String> {
    let options = options.as_object().ok_or("`options` must be an object")?;
    for (key, value) in options {
        let fits = if INTEGER_OPTIONS.contains(&key.as_str()) {
            value.is_i64() || value.is_u64()
        } else if NUMBER_OPTIONS.contains(&key.as_str()) {
            value.is_number()
        } else if BOOLEAN_OPTIONS.contains(&key.as_str()) {
            value.is_boolean()
        } else if key == "stop" {
            value.as_array().is_some_and(|stops| stops.iter().all(Value::is_string))
        } else {
            return Err(format!("unknown option `{key}`"));
        };
        if !fits {
            return Err(format!("option `{key}` has the wrong type: {value}"));
        }
    }
    Ok(())
}

/// Checks a `/api/show` body (`{"model": ..., "verbose"?: bool}`).
pub fn check_show(body: &str) -> Result<(), String> {
    let request: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let fields = request.as_object().ok_or("the body is not a JSON object")?;
    if let Some(key) = fields.keys().find(|k| !["model", "verbose"].contains(&k.as_str())) {
        return Err(format!("unknown field `{key}` in a show request"));
    }
    match fields.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(()),
        _ => Err("`model` must be a non-empty string".to_owned()),
    }
}

/// Checks a `/api/pull` body as Ollama's API documents it (`{"model": ..., "insecure"?: bool,
/// "stream"?: bool}`).
pub fn check_pull(body: &str) -> Result<(), String> {
    let request: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let fields = request.as_object().ok_or("the body is not a JSON object")?;
    if let Some(key) = fields.keys().find(|k| !["model", "insecure", "stream"].contains(&k.as_str())) {
        return Err(format!("unknown field `{key}` in a pull request"));
    }
    for flag in ["insecure", "stream"] {
        if fields.get(flag).is_some_and(|v| !v.is_boolean()) {
            return Err(format!("`{flag}` must be a boolean"));
        }
    }
    match fields.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(()),
        _ => Err("`model` must be a non-empty string".to_owned()),
    }
}

/// The prompt of a chat request as the agent measures one (`prfix_engine::tokens`, ratio 1.0):
/// each message's estimate with its overhead, and the `format` schema.
pub fn estimated_prompt_tokens(request: &Value) -> usize {
    let texts: Vec<&str> = request["messages"]
        .as_array()
        .map(|messages| messages.iter().filter_map(|m| m["content"].as_str()).collect())
        .unwrap_or_default();
    let format = request.get("format").filter(|f| !f.is_null());
    prfix_engine::tokens::Estimator::default().prompt_tokens(&texts, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_as_ollama_documents_it_passes() {
        let body = serde_json::json!({
            "model": "qwen2.5-coder:14b",
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "stream": true,
            "format": {"type": "object"},
            "options": {"num_ctx": 8192, "num_predict": 2048, "temperature": 0.1, "seed": 42, "repeat_penalty": 1.15},
            "keep_alive": "30m"
        });
        assert!(check_chat(&body.to_string()).is_ok());
    }

    #[test]
    fn a_pull_request_as_ollama_documents_it_passes_and_others_are_refused() {
        assert_eq!(check_pull(r#"{"model": "llama3.2", "stream": true}"#), Ok(()));
        assert_eq!(check_pull(r#"{"model": "llama3.2", "insecure": false}"#), Ok(()));
        assert!(check_pull(r#"{"name": "llama3.2"}"#).is_err(), "the old field name");
        assert!(check_pull(r#"{"model": ""}"#).is_err());
        assert!(check_pull(r#"{"model": "m", "stream": "yes"}"#).is_err());
    }

    #[test]
    fn unknown_fields_options_roles_and_wrong_types_are_refused() {
        let base = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "u"}]});
        let cases = [
            ("prompt", serde_json::json!("x"), "unknown field `prompt`"),
            ("options", serde_json::json!({"context_window": 1}), "unknown option `context_window`"),
            ("options", serde_json::json!({"num_ctx": 1.5}), "option `num_ctx` has the wrong type"),
            ("messages", serde_json::json!([{"role": "bot", "content": "u"}]), "messages[0].role"),
            ("messages", serde_json::json!([{"role": "user", "text": "u"}]), "unknown field `text`"),
            ("stream", serde_json::json!("yes"), "`stream` must be a boolean"),
            ("format", serde_json::json!("yaml"), "`format` must be"),
        ];
        for (field, value, expected) in cases {
            let mut body = base.clone();
            body[field] = value;
            let error = check_chat(&body.to_string()).expect_err(expected);
            assert!(error.contains(expected), "{field}: {error}");
        }
        assert!(check_show(r#"{"model": "m"}"#).is_ok());
        assert!(check_show(r#"{"name": "m", "model": "m", "x": 1}"#).is_err());
    }
}
