//! Reading a Grafana dashboard: its panels (inside rows too), its template variables, its
//! queries as Prometheus receives them, and where it names a data source.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{DASHBOARD, read};

/// Grafana's interval variables, replaced by a duration so that the expression parses as Prometheus
/// receives it. Any other `$variable` must be one of the dashboard's and stand inside a string.
const GRAFANA_INTERVALS: [&str; 3] = ["__rate_interval", "__interval", "__range"];

/// The dashboard, parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, those inside collapsed rows too.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let mut pending: Vec<&Value> = dashboard["panels"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    pending.reverse();
    while let Some(panel) = pending.pop() {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            pending.extend(nested.iter().rev());
        }
    }
    all
}

/// The template variables.
pub fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"].as_array().map(|l| l.iter().collect()).unwrap_or_default()
}

/// `expr` as Prometheus receives it: Grafana's intervals replaced; other variables left, once known.
pub fn expand(expr: &str, known: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or_else(|| format!("an unclosed `${{` in `{expr}`"))?;
                (braced[..end].split(':').next().unwrap_or_default(), end + 2)
            }
            None => {
                let end = after.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if GRAFANA_INTERVALS.contains(&name) {
            out.push_str("5m");
        } else if known.contains(name) {
            out.push_str(&rest[at..at + 1 + used]);
        } else {
            return Err(format!("`${name}` is not a variable of the dashboard in `{expr}`"));
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The names of the template variables.
pub fn known_variables(dashboard: &Value) -> BTreeSet<String> {
    variables(dashboard).iter().filter_map(|v| v["name"].as_str()).map(str::to_owned).collect()
}

/// Whether a `datasource` value is the dashboard's variable (or Grafana's built-in annotations).
pub fn is_templated_datasource(value: &Value) -> bool {
    let templated = |uid: &str| uid == "${datasource}" || uid == "$datasource";
    match value {
        Value::String(uid) => templated(uid),
        Value::Object(o) => match (o.get("type").and_then(Value::as_str), o.get("uid").and_then(Value::as_str)) {
            (Some("prometheus"), Some(uid)) => templated(uid),
            (Some("grafana"), Some("-- Grafana --")) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Every `datasource` value in the document, with its path.
pub fn datasources<'v>(value: &'v Value, path: &str, found: &mut Vec<(String, &'v Value)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let here = format!("{path}.{key}");
                if key == "datasource" {
                    found.push((here.clone(), child));
                }
                datasources(child, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasources(child, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}
