//! The observability kit tells the truth about the services. Every PromQL expression of the alerting
//! rules (`docs/observability/alerts.yaml`) and of the Grafana dashboard
//! (`docs/observability/grafana-dashboard.json`) parses, and names only series and labels that a real
//! scrape of the three services shows after traffic (histogram parts mapped to their family,
//! Prometheus's own `up` aside). The rules have what Prometheus and the on-call need (a severity, a
//! `for`, a runbook section in `docs/operations.md`), pass `promtool check rules`, and fire as their unit
//! tests (`docs/observability/alerts.test.yaml`, run by `promtool test rules`) expect; the dashboard
//! imports into Grafana with the operator's Prometheus chosen at import; every series is on the
//! dashboard and listed in `docs/observability.md`.

#[path = "observability/grafana.rs"]
mod grafana;
#[path = "observability/promql.rs"]
mod promql;
#[path = "observability/promtool.rs"]
mod promtool;
#[path = "observability/rules.rs"]
mod rules;
#[path = "observability/scrape.rs"]
mod scrape;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::grafana::{dashboard, datasources, expand, is_templated_datasource, known_variables, panels, variables};
use crate::promql::{Checker, Shape};
use crate::rules::{RuleFile, alerts, heading_anchors, is_positive_duration, rules};
use crate::scrape::{Catalog, scrape_after_traffic};

const RULES: &str = "docs/observability/alerts.yaml";
const DASHBOARD: &str = "docs/observability/grafana-dashboard.json";
const RUNBOOK: &str = "docs/operations.md";
const PAGE: &str = "docs/observability.md";

/// The repository's root (the parent of the `tests` crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is inside the workspace").to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn fail_on(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------------------------
// The queries of both files, with what each may name in its templates.

/// One PromQL expression, where it comes from and the labels its templates name.
struct Query {
    place: String,
    expr: String,
    /// Labels a legend (`{{service}}`) or an annotation (`{{ $labels.service }}`) reads from the result.
    template_labels: BTreeSet<String>,
}

/// The names inside `{{ ... }}` after `prefix` (`$labels.` for annotations, nothing for legends).
fn template_labels(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for part in text.split("{{").skip(1) {
        let inside = part.split("}}").next().unwrap_or_default().trim();
        for word in inside.split(|c: char| c.is_whitespace() || c == '|' || c == '(' || c == ')') {
            if let Some(label) = word.strip_prefix(prefix)
                && !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                labels.insert(label.to_owned());
            }
        }
    }
    labels
}

fn rule_queries(file: &RuleFile) -> Vec<Query> {
    alerts(file)
        .map(|(name, rule)| {
            let texts = rule.annotations.values().chain(rule.labels.values());
            Query {
                place: format!("alert {name}"),
                expr: rule.expr.clone(),
                template_labels: texts.flat_map(|t| template_labels(t, "$labels.")).collect(),
            }
        })
        .collect()
}

fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            queries.push(Query {
                place: format!("panel `{title}` target {}", target["refId"].as_str().unwrap_or("?")),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                template_labels: template_labels(legend, ""),
            });
        }
    }
    queries
}

fn parse(query: &Query, known: &BTreeSet<String>) -> Result<promql_parser::parser::Expr, String> {
    let expr = expand(&query.expr, known).map_err(|e| format!("{}: {e}", query.place))?;
    promql_parser::parser::parse(&expr).map_err(|e| format!("{}: `{}` does not parse: {e}", query.place, query.expr))
}

/// Checks `queries` against the scrape; returns the problems and the series they name.
fn check_against(catalog: &Catalog, queries: &[Query], known: &BTreeSet<String>) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    for query in queries {
        let expr = match parse(query, known) {
            Ok(expr) => expr,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let mut checker = Checker::new(catalog);
        let shape = checker.shape(&expr);
        problems.extend(checker.problems.iter().map(|p| format!("{}: {p}", query.place)));
        named.extend(checker.series);
        if shape == Shape::Scalar {
            problems.push(format!("{}: `{}` yields a scalar, not series", query.place, query.expr));
        }
        let yielded = shape.labels();
        for label in query.template_labels.difference(&yielded) {
            problems.push(format!(
                "{}: the template names `{label}`, which `{}` does not yield (it yields {yielded:?})",
                query.place, query.expr
            ));
        }
    }
    (problems, named)
}

// ---------------------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_alert_expression_and_dashboard_query_is_valid_promql() {
    let file = rules();
    let dashboard = dashboard();
    let known = known_variables(&dashboard);
    let queries: Vec<Query> = rule_queries(&file).into_iter().chain(dashboard_queries(&dashboard)).collect();
    assert!(queries.len() > 20, "the rules and the dashboard hold queries: {}", queries.len());
    let mut problems: Vec<String> = queries.iter().filter_map(|q| parse(q, &known).err()).collect();
    problems.extend(queries.iter().filter(|q| q.expr.trim().is_empty()).map(|q| format!("{}: no expression", q.place)));
    fail_on(&problems, "expressions that Prometheus would refuse");
}

#[tokio::test]
async fn the_alerts_name_only_series_and_labels_that_the_services_expose() {
    let catalog = scrape_after_traffic().await;
    let (problems, _) = check_against(&catalog, &rule_queries(&rules()), &BTreeSet::new());
    fail_on(&problems, &format!("{RULES} does not match the services' series"));
}

#[tokio::test]
async fn the_dashboard_names_only_series_and_labels_that_the_services_expose() {
    let catalog = scrape_after_traffic().await;
    let dashboard = dashboard();
    let known = known_variables(&dashboard);
    let (mut problems, _) = check_against(&catalog, &dashboard_queries(&dashboard), &known);
    // The variables' own queries: `label_values(selector, label)`.
    for variable in variables(&dashboard).into_iter().filter(|v| v["type"] == "query") {
        let name = variable["name"].as_str().unwrap_or("?");
        let text = variable["query"]["query"].as_str().or(variable["query"].as_str()).unwrap_or_default();
        if variable["definition"].as_str().is_some_and(|d| d != text) {
            problems.push(format!("variable {name}: its definition (shown in Grafana) is not its query `{text}`"));
        }
        let Some(inner) = text.strip_prefix("label_values(").and_then(|t| t.strip_suffix(')')) else {
            problems.push(format!("variable {name}: `{text}` is not label_values(selector, label)"));
            continue;
        };
        let (selector, label) = inner.rsplit_once(',').unwrap_or(("", inner));
        let query = Query {
            place: format!("variable {name}"),
            expr: selector.trim().to_owned(),
            template_labels: BTreeSet::from([label.trim().to_owned()]),
        };
        problems.extend(check_against(&catalog, &[query], &known).0);
    }
    fail_on(&problems, &format!("{DASHBOARD} does not match the services' series"));
}

#[tokio::test]
async fn every_series_of_the_services_is_on_the_dashboard_and_listed_in_the_observability_page() {
    let catalog = scrape_after_traffic().await;
    let dashboard = dashboard();
    let (_, on_dashboard) = check_against(&catalog, &dashboard_queries(&dashboard), &known_variables(&dashboard));
    let on_dashboard: BTreeSet<&str> = on_dashboard.iter().filter_map(|s| catalog.family(s)).collect();
    let ours: BTreeSet<&str> =
        catalog.families.keys().map(String::as_str).filter(|f| f.starts_with("prfix_")).collect();
    assert!(ours.len() >= 15, "the scrape holds every family of shared/runtime/src/metrics.rs: {ours:?}");
    let missing: Vec<&&str> = ours.difference(&on_dashboard).collect();
    assert!(missing.is_empty(), "series with no panel in {DASHBOARD}: {missing:?}");

    let page = read(PAGE);
    let mentioned: BTreeSet<&str> = page
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| w.starts_with("prfix_") && w.len() > "prfix_".len())
        .collect();
    let unlisted: Vec<&&str> = ours.iter().filter(|f| !mentioned.contains(**f)).collect();
    assert!(unlisted.is_empty(), "series not listed in {PAGE}: {unlisted:?}");
    let unknown: Vec<&&str> = mentioned.iter().filter(|m| catalog.family(m).is_none()).collect();
    assert!(unknown.is_empty(), "{PAGE} names series the services do not expose: {unknown:?}");
}

#[test]
fn the_rules_have_unique_alerts_each_with_a_severity_a_for_and_a_runbook_section() {
    let file = rules();
    let anchors = heading_anchors(&read(RUNBOOK));
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut runbooks = BTreeSet::new();
    assert!(!file.groups.is_empty(), "{RULES} has rule groups");
    let groups: BTreeSet<&str> = file.groups.iter().map(|g| g.name.as_str()).collect();
    if groups.len() != file.groups.len() {
        problems.push("two groups share a name".to_owned());
    }
    for group in &file.groups {
        if group.rules.is_empty() {
            problems.push(format!("group {} has no rule", group.name));
        }
        if let Some(interval) = &group.interval
            && !is_positive_duration(interval)
        {
            problems.push(format!("group {}: interval `{interval}` is not a duration", group.name));
        }
    }
    for (name, rule) in alerts(&file) {
        if rule.alert.is_none() || rule.record.is_some() {
            problems.push(format!("{name}: every rule here is an alert (alert set, record unset)"));
        }
        if !names.insert(name) {
            problems.push(format!("{name}: two alerts share the name"));
        }
        match rule.for_.as_deref() {
            Some(d) if is_positive_duration(d) => {}
            other => problems.push(format!("{name}: `for` is {other:?}, not a positive duration")),
        }
        if let Some(d) = &rule.keep_firing_for
            && !is_positive_duration(d)
        {
            problems.push(format!("{name}: keep_firing_for `{d}` is not a duration"));
        }
        let severity = rule.labels.get("severity").map(String::as_str);
        if !matches!(severity, Some("critical" | "warning" | "info")) {
            problems.push(format!("{name}: severity is {severity:?}, not critical, warning or info"));
        }
        for key in ["summary", "description", "runbook_url"] {
            if rule.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        let url = rule.annotations.get("runbook_url").map(String::as_str).unwrap_or_default();
        match url.strip_prefix(&format!("{RUNBOOK}#")) {
            Some(anchor) if anchors.contains(anchor) => {
                if !runbooks.insert(anchor) {
                    problems.push(format!("{name}: another alert has the runbook section #{anchor}"));
                }
            }
            Some(anchor) => problems.push(format!("{name}: {RUNBOOK} has no heading with the anchor #{anchor}")),
            None => problems.push(format!("{name}: runbook_url `{url}` is not {RUNBOOK}#<heading>")),
        }
    }
    // Each alert's section, and no section for an alert that is gone.
    let sections: BTreeSet<String> = anchors.into_iter().filter(|a| a.starts_with("prfix")).collect();
    let expected: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    for stale in sections.difference(&expected) {
        problems.push(format!("{RUNBOOK} has the section #{stale} for an alert {RULES} does not define"));
    }
    fail_on(&problems, &format!("{RULES} is not ready for the on-call"));
}

#[test]
fn the_alerts_watch_what_an_operator_must_hear_about() {
    let file = rules();
    let catalog = Catalog::default();
    let mut watched = BTreeSet::new();
    for query in rule_queries(&file) {
        let expr = parse(&query, &BTreeSet::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut checker = Checker::new(&catalog);
        checker.shape(&expr);
        watched.extend(checker.series);
    }
    for (series, why) in [
        ("up", "a service is down"),
        ("prfix_requests_total", "calls fail"),
        ("prfix_outbox_backlog", "audit records wait or are about to be dropped"),
        ("prfix_audit_checkpoint_age_seconds", "audit events wait long for a checkpoint"),
        ("prfix_audit_uncovered_events", "audit events are not covered by a checkpoint"),
        ("prfix_redis_fallback_active", "rate limits run on local state without Redis"),
        ("prfix_task_queue_oldest_seconds", "tasks wait for a worker"),
        ("prfix_model_calls_total", "model calls fail"),
        ("prfix_db_pool_connections", "the database pool is exhausted"),
    ] {
        assert!(watched.contains(series), "no alert reads {series}: nobody hears when {why}");
    }
}

#[test]
fn the_dashboard_imports_into_grafana_with_the_prometheus_chosen_by_the_operator() {
    let dashboard = dashboard();
    let text = read(DASHBOARD);
    let mut problems = Vec::new();
    if dashboard["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push(format!("schemaVersion {} is not a number from Grafana 9 on", dashboard["schemaVersion"]));
    }
    for key in ["title", "uid"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    if !dashboard["id"].is_null() {
        problems.push("`id` is set: an import would overwrite another dashboard".to_owned());
    }
    if text.contains("${DS_") && dashboard["__inputs"].as_array().is_none_or(Vec::is_empty) {
        problems.push("`${DS_...}` is used without `__inputs` declaring it".to_owned());
    }

    let vars = variables(&dashboard);
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problems.push(format!("no `datasource` variable of type datasource for prometheus: {other:?}")),
    }
    for name in ["job", "instance"] {
        match var(name) {
            Some(v) if v["type"] == "query" && is_templated_datasource(&v["datasource"]) => {}
            other => problems.push(format!("no `{name}` query variable on the chosen datasource: {other:?}")),
        }
    }

    let mut found = Vec::new();
    datasources(&dashboard, "", &mut found);
    for (path, value) in found {
        if !is_templated_datasource(value) {
            problems.push(format!("{path} is {value}, not the `datasource` variable (a hard-coded datasource)"));
        }
    }

    let all = panels(&dashboard);
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
    for panel in &all {
        let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
        match panel["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            id => problems.push(format!("panel `{title}`: id {id:?} is missing or not unique")),
        }
        let pos = &panel["gridPos"];
        let dims: Vec<Option<u64>> = ["x", "y", "w", "h"].iter().map(|k| pos[*k].as_u64()).collect();
        match dims[..] {
            [Some(x), Some(y), Some(w), Some(h)] if w >= 1 && h >= 1 && x + w <= 24 => {
                for (other, [ox, oy, ow, oh]) in &boxes {
                    if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                        problems.push(format!("panel `{title}` overlaps panel `{other}`"));
                    }
                }
                boxes.push((title.clone(), [x, y, w, h]));
            }
            _ => problems.push(format!("panel `{title}`: gridPos {pos} is not within the 24-column grid")),
        }
        if panel["type"] == "row" {
            continue;
        }
        if panel["type"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("panel `{title}` has no type"));
        }
        if !is_templated_datasource(&panel["datasource"]) {
            problems.push(format!("panel `{title}` has no datasource of the `datasource` variable"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel `{title}` has no target"));
        }
        let mut refs = BTreeSet::new();
        for target in &targets {
            match target["refId"].as_str() {
                Some(r) if !r.is_empty() && refs.insert(r.to_owned()) => {}
                r => problems.push(format!("panel `{title}`: refId {r:?} is missing or repeated")),
            }
            if target["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                problems.push(format!("panel `{title}`: a target has no expr"));
            }
        }
    }
    assert!(all.iter().filter(|p| p["type"] != "row").count() >= 20, "the dashboard has its panels");
    fail_on(&problems, &format!("{DASHBOARD} would not import cleanly"));
}
