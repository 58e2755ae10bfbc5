//! GitHub's webhook payloads as its official description states them (`api.github.com.json` from the
//! npm package `@octokit/openapi-webhooks`, pinned to [`OCTOKIT_WEBHOOKS_VERSION`], which `scripts/test`
//! installs next to `@octokit/openapi`): [`example`] builds a payload of an event from the event's
//! schema, every required member present and filled with the description's own example value
//! (`examples[0]`) where it gives one, and [`validate`] checks a payload against the schema
//! (JSON Schema 2020-12, as OpenAPI 3.1 schemas are), so a test's changes to the example stay a
//! payload GitHub could send.
//!
//! The file is found at `$PRFIX_GITHUB_WEBHOOKS_OPENAPI`, else where `scripts/test` installs it. Without
//! it, this panics with the command that installs it: the tests fail, never skip.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The pinned version of `@octokit/openapi-webhooks` (`scripts/test` installs the same).
pub const OCTOKIT_WEBHOOKS_VERSION: &str = "12.1.0";

/// Where the description is read from.
pub fn description_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PRFIX_GITHUB_WEBHOOKS_OPENAPI").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(format!(".cache/prfix/octokit-openapi-webhooks-{OCTOKIT_WEBHOOKS_VERSION}"))
        .join("node_modules/@octokit/openapi-webhooks/generated/api.github.com.json")
}

/// The description, read once.
fn description() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = description_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "GitHub's webhooks description is missing at {} ({e}). Install it (as scripts/test does) with:\n  \
                 mkdir -p ~/.cache/prfix/octokit-openapi-webhooks-{v} && npm install --prefix \
                 ~/.cache/prfix/octokit-openapi-webhooks-{v} --no-save --ignore-scripts @octokit/openapi-webhooks@{v}\n\
                 or point PRFIX_GITHUB_WEBHOOKS_OPENAPI at its api.github.com.json",
                path.display(),
                v = OCTOKIT_WEBHOOKS_VERSION
            )
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    })
}

/// The schema `#/components/schemas/<name>`.
fn schema(name: &str) -> &'static Value {
    let found = &description()["components"]["schemas"][name];
    assert!(found.is_object(), "the webhooks description has no schema `{name}`");
    found
}

/// `value` with `$ref`s followed.
fn resolve(value: &Value) -> &Value {
    let mut value = value;
    for _ in 0..32 {
        match value.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => value = description().pointer(pointer).unwrap_or(&Value::Null),
            None => break,
        }
    }
    value
}

/// A payload of the schema `name` (`webhook-pull-request-opened`): every required member, with the
/// description's example values.
pub fn example(name: &str) -> Value {
    instance(schema(name), 0)
}

/// An instance of `schema`.
fn instance(schema: &Value, depth: usize) -> Value {
    let schema = resolve(schema);
    if depth > 40 {
        return Value::Null;
    }
    if let Some(first) = schema.get("examples").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.iter().find(|v| !v.is_null())) {
        return first.clone();
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(object) = instance(part, depth + 1) {
                merged.extend(object);
            }
        }
        return Value::Object(merged);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(choices) = schema.get(key).and_then(Value::as_array) {
            // The richest branch: an object over a scalar, anything over null.
            let rank = |s: &Value| match type_of(resolve(s)) {
                "object" => 0,
                "null" => 2,
                _ => 1,
            };
            let mut choices: Vec<&Value> = choices.iter().collect();
            choices.sort_by_key(|s| rank(s));
            return choices.first().map_or(Value::Null, |s| instance(s, depth + 1));
        }
    }
    match type_of(schema) {
        "object" => {
            let mut object = Map::new();
            let required = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            for name in required.iter().filter_map(Value::as_str) {
                let property = &schema["properties"][name];
                object.insert(name.to_owned(), instance(property, depth + 1));
            }
            Value::Object(object)
        }
        "array" => json!([]),
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-01-02T03:04:05Z"),
            Some("uri" | "uri-template") => json!("https://github.com/octo-org/octo-repo"),
            Some("email") => json!("octocat@github.com"),
            _ => json!("example"),
        },
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

/// The first non-null type a schema names (`object` when it has properties and names none).
fn type_of(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "",
    }
}

/// Checks `payload` against the schema `name`.
pub fn validate(name: &str, payload: &Value) -> Result<(), String> {
    let root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": description()["components"],
    });
    let validator = jsonschema::draft202012::new(&root).map_err(|e| format!("the schema `{name}` compiles: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(payload).map(|e| format!("{}: {e}", e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_of_a_pull_request_opened_delivery_is_valid() {
        let payload = example("webhook-pull-request-opened");
        assert_eq!(payload["action"], "opened");
        validate("webhook-pull-request-opened", &payload).expect("valid");
    }
}
