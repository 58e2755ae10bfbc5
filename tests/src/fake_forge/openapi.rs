//! GitHub's REST API as its official OpenAPI description states it (`api.github.com.json` from the
//! npm package `@octokit/openapi`, pinned to [`OCTOKIT_OPENAPI_VERSION`]), used by the fake GitHub
//! to refuse every request the real one would: a path and method that match no operation, a
//! missing required parameter, a parameter or body that does not validate against its schema.
//!
//! Schemas are OpenAPI 3.0 schema objects; they are turned into JSON Schema draft 4 (`$ref`s into
//! `#/components` inlined, `nullable` as a `null` type) and validated with `jsonschema`, formats
//! included. One strictness is added: an object schema that lists its `properties` refuses others,
//! so a misspelt field fails a test instead of being ignored by GitHub.
//!
//! The file is found at `$PRFIX_GITHUB_OPENAPI`, else where `scripts/test` installs it:
//! `~/.cache/prfix/octokit-openapi-<version>/node_modules/@octokit/openapi/generated/api.github.com.json`.
//! Without it, the fake panics with the command that installs it: the tests fail, never skip.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

/// The pinned version of `@octokit/openapi` (`scripts/test` installs the same).
pub const OCTOKIT_OPENAPI_VERSION: &str = "23.0.2";

/// Where the description is read from.
pub fn description_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PRFIX_GITHUB_OPENAPI").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(format!(".cache/prfix/octokit-openapi-{OCTOKIT_OPENAPI_VERSION}"))
        .join("node_modules/@octokit/openapi/generated/api.github.com.json")
}

/// The parsed description, read once per test process.
pub fn github() -> &'static Description {
    static DESCRIPTION: OnceLock<Description> = OnceLock::new();
    DESCRIPTION.get_or_init(|| {
        let path = description_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "GitHub's OpenAPI description is missing at {} ({e}). Install it (as scripts/test does) with:\n  \
                 mkdir -p ~/.cache/prfix/octokit-openapi-{v} && npm install --prefix ~/.cache/prfix/octokit-openapi-{v} \
                 --no-save --ignore-scripts @octokit/openapi@{v}\nor point PRFIX_GITHUB_OPENAPI at api.github.com.json",
                path.display(),
                v = OCTOKIT_OPENAPI_VERSION
            )
        });
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}; reinstall @octokit/openapi", path.display()));
        Description::new(doc)
    })
}

/// One path template of the description, split into segments.
struct Template {
    path: String,
    segments: Vec<String>,
}

/// The description with its path templates indexed and compiled body schemas cached.
pub struct Description {
    doc: Value,
    templates: Vec<Template>,
    bodies: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// A request that matches an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `pulls/create-review`.
    pub operation_id: String,
    /// `/repos/{owner}/{repo}/pulls/{pull_number}/reviews`.
    pub template: String,
    /// The path parameters' values by name.
    pub params: HashMap<String, String>,
}

impl Description {
    fn new(doc: Value) -> Self {
        let templates = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .keys()
                    .map(|path| Template { path: path.clone(), segments: path.split('/').map(str::to_owned).collect() })
                    .collect()
            })
            .unwrap_or_default();
        Self { doc, templates, bodies: Mutex::new(HashMap::new()) }
    }

    /// How many operations the description has.
    pub fn operation_count(&self) -> usize {
        const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
        let items = self.doc["paths"].as_object().into_iter().flat_map(|paths| paths.values());
        items
            .filter_map(Value::as_object)
            .map(|item| item.keys().filter(|k| METHODS.contains(&k.as_str())).count())
            .sum()
    }

    /// Checks a request against the description: the operation it is, or why GitHub would refuse it.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Result<Operation, String> {
        let (template, params) = self.route(path)?;
        let item = &self.doc["paths"][&template];
        let method = method.to_ascii_lowercase();
        let Some(operation) = item.get(&method).filter(|o| o.is_object()) else {
            let allowed: Vec<String> = item
                .as_object()
                .map(|o| o.keys().filter(|k| *k != "parameters").map(|k| k.to_uppercase()).collect())
                .unwrap_or_default();
            return Err(format!(
                "{template} has no {} operation (it has {})",
                method.to_uppercase(),
                allowed.join(", ")
            ));
        };
        let operation_id = operation["operationId"].as_str().unwrap_or("(no operationId)").to_owned();
        let declared: Vec<Value> = [item.get("parameters"), operation.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| self.resolve(p, 0))
            .collect();
        self.check_parameters(&operation_id, &declared, &params, query)?;
        self.check_body(&operation_id, &method, &template, operation, body)?;
        Ok(Operation { operation_id, template, params })
    }

    /// The template matching `path` (literal segments preferred over parameters, a segment of two
    /// parameters around a literal counted as one literal) and its parameters.
    fn route(&self, path: &str) -> Result<(String, HashMap<String, String>), String> {
        let all: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, &Template, HashMap<String, String>)> = None;
        for template in &self.templates {
            // GitHub's `{path}` of a file (`/repos/{owner}/{repo}/contents/{path}`) is the rest of
            // the URL, slashes and all, as GitHub's own clients send it.
            let rest_is_path = template.segments.last().is_some_and(|s| s == "{path}");
            let segments: Vec<String> = if rest_is_path && all.len() > template.segments.len() {
                let keep = template.segments.len() - 1;
                all[..keep].iter().map(|s| (*s).to_owned()).chain([all[keep..].join("/")]).collect()
            } else {
                all.iter().map(|s| (*s).to_owned()).collect()
            };
            if template.segments.len() != segments.len() {
                continue;
            }
            let mut params = HashMap::new();
            let mut literals = 0;
            let fits = template.segments.iter().zip(&segments).all(|(t, s)| {
                // `{base}...{head}`: two parameters around a literal, more specific than one.
                if let Some((a, sep, b)) = compound(t) {
                    return match s.split_once(sep) {
                        Some((x, y)) if !x.is_empty() && !y.is_empty() => {
                            params.insert(a.to_owned(), x.to_owned());
                            params.insert(b.to_owned(), y.to_owned());
                            literals += 1;
                            true
                        }
                        _ => false,
                    };
                }
                match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) if !s.is_empty() => {
                        params.insert(name.to_owned(), s.clone());
                        true
                    }
                    Some(_) => false,
                    None => {
                        literals += 1;
                        t == s
                    }
                }
            });
            if fits && best.as_ref().is_none_or(|(n, _, _)| literals > *n) {
                best = Some((literals, template, params));
            }
        }
        best.map(|(_, t, params)| (t.path.clone(), params))
            .ok_or_else(|| format!("no operation of GitHub's REST API has the path {path}"))
    }

    fn check_parameters(
        &self,
        operation: &str,
        declared: &[Value],
        path_params: &HashMap<String, String>,
        query: &[(String, String)],
    ) -> Result<(), String> {
        for param in declared {
            let name = param["name"].as_str().unwrap_or_default();
            let value = match param["in"].as_str() {
                Some("path") => path_params.get(name).cloned(),
                Some("query") => query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
                _ => continue,
            };
            let Some(value) = value else {
                if param["required"] == true {
                    return Err(format!("{operation}: the required parameter `{name}` is missing"));
                }
                continue;
            };
            let schema = self.prepare(&param["schema"], 0);
            let typed = match schema["type"].as_str() {
                Some("integer") => value.parse::<i64>().map(Value::from).unwrap_or(Value::String(value.clone())),
                Some("boolean") => value.parse::<bool>().map(Value::from).unwrap_or(Value::String(value.clone())),
                _ => Value::String(value.clone()),
            };
            let validator = jsonschema::draft4::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| format!("{operation}: the schema of `{name}` does not compile: {e}"))?;
            if let Some(error) = validator.iter_errors(&typed).next() {
                return Err(format!("{operation}: parameter `{name}`=`{value}` is invalid: {error}"));
            }
        }
        for (key, _) in query {
            let known = declared.iter().any(|p| p["in"] == "query" && p["name"].as_str() == Some(key));
            if !known {
                return Err(format!("{operation}: `{key}` is not a query parameter of this operation"));
            }
        }
        Ok(())
    }

    fn check_body(
        &self,
        operation_id: &str,
        method: &str,
        template: &str,
        operation: &Value,
        body: &[u8],
    ) -> Result<(), String> {
        let request_body = operation.get("requestBody").map(|b| self.resolve(b, 0));
        let sent = !body.iter().all(u8::is_ascii_whitespace);
        let Some(request_body) = request_body else {
            return if sent { Err(format!("{operation_id} takes no request body")) } else { Ok(()) };
        };
        if !sent {
            return if request_body["required"] == true {
                Err(format!("{operation_id}: the request body is required"))
            } else {
                Ok(())
            };
        }
        let instance: Value =
            serde_json::from_slice(body).map_err(|e| format!("{operation_id}: the body is not JSON: {e}"))?;
        let key = format!("{method} {template}");
        let validator = {
            let mut cache = self.bodies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match cache.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let schema = self.prepare(&request_body["content"]["application/json"]["schema"], 0);
                    let compiled = jsonschema::draft4::options()
                        .should_validate_formats(true)
                        .build(&schema)
                        .map_err(|e| format!("{operation_id}: the body schema does not compile: {e}"))?;
                    let compiled = Arc::new(compiled);
                    cache.insert(key, compiled.clone());
                    compiled
                }
            }
        };
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{} at `{}`", e, e.instance_path())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{operation_id}: the body does not match the description: {}", errors.join("; ")))
        }
    }

    /// `value` with a top-level `$ref` into the description followed.
    fn resolve(&self, value: &Value, depth: usize) -> Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) if depth < 32 => {
                let target = reference.strip_prefix('#').and_then(|pointer| self.doc.pointer(pointer));
                target.map_or(Value::Null, |t| self.resolve(t, depth + 1))
            }
            _ => value.clone(),
        }
    }

    /// An OpenAPI schema object as a self-contained draft 4 JSON Schema (see the module's comment).
    fn prepare(&self, schema: &Value, depth: usize) -> Value {
        if depth > 64 {
            return Value::Object(Map::new());
        }
        let schema = self.resolve(schema, 0);
        match schema {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    let value = match key.as_str() {
                        "properties" | "patternProperties" | "definitions" => match value {
                            Value::Object(props) => Value::Object(
                                props.into_iter().map(|(k, v)| (k, self.prepare(&v, depth + 1))).collect(),
                            ),
                            other => other,
                        },
                        "items" | "additionalProperties" | "not" if value.is_object() => {
                            self.prepare(&value, depth + 1)
                        }
                        "allOf" | "anyOf" | "oneOf" => match value {
                            Value::Array(items) => {
                                Value::Array(items.iter().map(|v| self.prepare(v, depth + 1)).collect())
                            }
                            other => other,
                        },
                        _ => value,
                    };
                    out.insert(key, value);
                }
                if out.remove("nullable") == Some(Value::Bool(true))
                    && let Some(Value::String(kind)) = out.get("type").cloned()
                {
                    out.insert("type".to_owned(), Value::Array(vec![Value::String(kind), Value::from("null")]));
                    if let Some(Value::Array(choices)) = out.get_mut("enum") {
                        choices.push(Value::Null);
                    }
                }
                let composed = ["allOf", "anyOf", "oneOf"].iter().any(|k| out.contains_key(*k));
                if out.contains_key("properties") && !out.contains_key("additionalProperties") && !composed {
                    out.insert("additionalProperties".to_owned(), Value::Bool(false));
                }
                Value::Object(out)
            }
            other => other,
        }
    }
}

/// A template segment of two parameters around a literal (`{base}...{head}`): the names and the
/// literal.
fn compound(segment: &str) -> Option<(&str, &str, &str)> {
    let (a, rest) = segment.strip_prefix('{')?.split_once('}')?;
    let (sep, rest) = rest.split_once('{')?;
    let b = rest.strip_suffix('}')?;
    (!sep.is_empty() && !b.contains('{')).then_some((a, sep, b))
}

#[cfg(test)]
mod tests {
    use super::github;

    fn check(method: &str, path: &str, query: &[(&str, &str)], body: &str) -> Result<String, String> {
        let query: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        github().check(method, path, &query, body.as_bytes()).map(|op| op.operation_id)
    }

    #[test]
    fn the_calls_prfix_makes_are_operations_of_the_description() {
        assert!(github().operation_count() > 1000, "{}", github().operation_count());
        let review = r#"{"commit_id":"abc","body":"b","event":"COMMENT","comments":[{"path":"a.py","line":7,"side":"RIGHT","start_line":6,"start_side":"RIGHT","body":"c"}]}"#;
        assert_eq!(check("POST", "/repos/o/r/pulls/7/reviews", &[], review).as_deref(), Ok("pulls/create-review"));
        let list = [("per_page", "100"), ("page", "2")];
        assert_eq!(check("GET", "/repos/o/r/issues/7/comments", &list, "").as_deref(), Ok("issues/list-comments"));
        assert_eq!(
            check("PATCH", "/repos/o/r/issues/comments/12", &[], r#"{"body":"x"}"#).as_deref(),
            Ok("issues/update-comment")
        );
        let status = r#"{"state":"success","context":"prfix review","description":null}"#;
        assert_eq!(check("POST", "/repos/o/r/statuses/abc", &[], status).as_deref(), Ok("repos/create-commit-status"));
    }

    #[test]
    fn requests_github_would_refuse_are_refused_with_the_reason() {
        // method, path, query, body, and what the refusal names
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case; 7] = [
            ("POST", "/repos/o/r/pull/7/reviews", &[], "{}", "no operation"),
            ("PUT", "/repos/o/r/check-runs", &[], "{}", "has no PUT operation"),
            ("POST", "/repos/o/r/check-runs", &[], r#"{"name":"x"}"#, "head_sha"),
            ("POST", "/repos/o/r/pulls/7/reviews", &[], r#"{"event":"COMMENTED"}"#, "COMMENTED"),
            ("POST", "/repos/o/r/pulls/7/reviews", &[], r#"{"comments":[{"path":"a","body":"b","lines":3}]}"#, "lines"),
            ("GET", "/repos/o/r/issues/7/comments", &[("per_page", "many")], "", "per_page"),
            ("GET", "/repos/o/r/issues/7/comments", &[("limit", "5")], "", "`limit` is not a query parameter"),
        ];
        for (method, path, query, body, expected) in cases {
            let error = check(method, path, query, body).expect_err(expected);
            assert!(error.contains(expected), "{method} {path} {body}: {error}");
        }
        let error = check("POST", "/repos/o/r/pulls/seven/reviews", &[], "{}").expect_err("a number");
        assert!(error.contains("pull_number"), "{error}");
        let error = check("POST", "/repos/o/r/check-runs", &[], "").expect_err("a body");
        assert!(error.contains("request body is required"), "{error}");
    }
}
