//! What the services' `/metrics` show after traffic: each series with its label names, each
//! family with its type.

use std::collections::{BTreeMap, BTreeSet};

use prfix_tests::metrics::{scrape, traffic};
use prfix_tests::spawn_app;

/// Labels Prometheus adds to every series it scrapes.
pub const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Series Prometheus writes itself for each target (`up` and the scrape's own figures).
const GENERATED: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// How a series changes, from its family's `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (or resets): `rate`, `increase`. The `_bucket`, `_sum` and `_count` series of a
    /// histogram are counters too.
    Counter,
    /// Goes up and down: read as is, `deriv`, `*_over_time`.
    Gauge,
}

/// Every series of a set of scrapes.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Series name as written in the exposition (`x_bucket`, not `x`) → label names seen on it.
    pub series: BTreeMap<String, BTreeSet<String>>,
    /// Family name → its `# TYPE` (`counter`, `gauge`, `histogram`...).
    pub families: BTreeMap<String, String>,
}

impl Catalog {
    /// Adds the series of one exposition text.
    pub fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    self.families.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("a sample line has a value: {line}"));
            let labels = self.series.entry(line[..end].to_owned()).or_default();
            if line[end..].starts_with('{') {
                labels.extend(label_names(&line[end + 1..]));
            }
        }
    }

    /// The family a series belongs to: itself, or the histogram or summary it is a part of.
    pub fn family(&self, series: &str) -> Option<&str> {
        if self.families.contains_key(series) {
            return self.families.get_key_value(series).map(|(name, _)| name.as_str());
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = series.strip_suffix(suffix)?;
            let (name, kind) = self.families.get_key_value(base)?;
            matches!(kind.as_str(), "histogram" | "summary").then_some(name.as_str())
        })
    }

    /// The labels a query of `series` can see: the scraped ones and the target labels; `None` when
    /// neither a service nor Prometheus writes it.
    pub fn labels(&self, series: &str) -> Option<BTreeSet<String>> {
        let mut labels = if GENERATED.contains(&series) {
            BTreeSet::new()
        } else {
            self.family(series)?;
            self.series.get(series)?.clone()
        };
        labels.extend(TARGET_LABELS.iter().map(|l| (*l).to_owned()));
        Some(labels)
    }

    /// Whether `series` is a counter or a gauge.
    pub fn kind(&self, series: &str) -> Option<Kind> {
        if GENERATED.contains(&series) {
            return Some(Kind::Gauge);
        }
        let family = self.family(series)?;
        match self.families.get(family)?.as_str() {
            "counter" => Some(Kind::Counter),
            "gauge" => Some(Kind::Gauge),
            // The `_bucket`, `_sum` and `_count` series; a summary's quantiles are neither.
            "histogram" | "summary" if family != series => Some(Kind::Counter),
            _ => None,
        }
    }
}

/// The names of `name="value",...}`, values being quoted with `\"` and `\\` escapes.
fn label_names(mut rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        rest = rest.trim_start_matches(',');
        if rest.starts_with('}') || rest.is_empty() {
            return names;
        }
        let eq = rest.find('=').unwrap_or_else(|| panic!("a label has a value: {rest}"));
        names.push(rest[..eq].trim().to_owned());
        let value = rest[eq + 1..].strip_prefix('"').unwrap_or_else(|| panic!("a label value is quoted: {rest}"));
        let mut escaped = false;
        let close = value
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map(|(at, _)| at)
            .unwrap_or_else(|| panic!("a label value ends: {rest}"));
        rest = &value[close + 1..];
    }
}

/// Starts the three services, sends them traffic and scrapes each admin port.
pub async fn scrape_after_traffic() -> Catalog {
    let app = spawn_app().await;
    traffic(&app).await;
    let mut catalog = Catalog::default();
    for addr in [app.admin.gateway, app.admin.agent, app.admin.audit] {
        catalog.add(&scrape(addr).await);
    }
    assert!(catalog.series.keys().any(|s| s.starts_with("prfix_")), "the scrapes hold prfix series: {catalog:?}");
    catalog
}
