//! The Helm charts in `charts/`: the library chart `prfix-lib` and one application chart per service,
//! each installed as its own release (`helm install prfix-audit charts/prfix-audit ...`), rendered
//! here the way an operator installs them: the chart's values.yaml and then values.production.yaml,
//! with the names of the Secrets that exist beforehand; and the umbrella chart `prfix`, which
//! installs the three as one release (`umbrella`).

mod backup;
mod credential;
mod forges;
mod migration;
mod releases;
mod render;
mod umbrella;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Ran, run_tool, workspace_root, yaml_documents};

const CHARTS: [&str; 3] = ["prfix-gateway", "prfix-agent", "prfix-audit"];
/// The umbrella chart: the three as dependencies of one release.
const UMBRELLA: &str = "prfix";
const VALUES_FILES: [&str; 2] = ["values.yaml", "values.production.yaml"];
/// The namespace the releases are rendered for.
const NAMESPACE: &str = "prfix";

/// The existing Secrets a chart is told about (`--set <path>=<name>`): what docs/deployment.md
/// has the operator create.
fn secret_values(chart: &str) -> &'static [(&'static str, &'static str)] {
    match chart {
        "prfix-gateway" => &[
            ("secrets.database.name", "prfix-database"),
            ("secrets.redis.name", "prfix-redis"),
            ("secrets.signingKey.name", "prfix-gateway-keys"),
            ("secrets.bootstrapAdminPassword.name", "prfix-gateway-keys"),
        ],
        "prfix-agent" => &[
            ("secrets.database.name", "prfix-database"),
            ("secrets.redis.name", "prfix-redis"),
            ("secrets.auditCredential.name", "prfix-agent-audit"),
        ],
        "prfix-audit" => &[
            ("secrets.database.name", "prfix-database"),
            ("secrets.redis.name", "prfix-redis"),
            ("secrets.signingKey.name", "prfix-audit-keys"),
        ],
        other => panic!("unknown chart {other}"),
    }
}

fn secret_flags(chart: &str) -> Vec<String> {
    secret_values(chart).iter().flat_map(|(path, secret)| ["--set".to_owned(), format!("{path}={secret}")]).collect()
}

/// A copy of `charts/` with every application chart's dependency built (`helm dependency build`
/// packs the library chart into the chart's `charts/`), and helm's own configuration, cache and data
/// directories inside it: tests that run at once share nothing, and nothing is written to the tree.
struct Charts {
    dir: tempfile::TempDir,
}

impl Charts {
    fn prepare() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        copy_tree(&workspace_root().join("charts"), &dir.path().join("charts"));
        let charts = Self { dir };
        for chart in CHARTS {
            // Fails when Chart.lock and Chart.yaml disagree: the committed lock file is current.
            let ran = charts.run(&format!("helm dependency build {chart}"), &["dependency", "build", chart]);
            assert!(ran.success, "helm dependency build {chart}:\n{}", ran.report());
            let packed = charts.chart(chart).join("charts/prfix-lib-0.1.0.tgz");
            assert!(packed.is_file(), "{chart}: the library chart is packed into {}", packed.display());
        }
        // The umbrella packs the service charts as they are now, each with its library packed in.
        let ran = charts.run("helm dependency build prfix", &["dependency", "build", UMBRELLA]);
        assert!(ran.success, "helm dependency build {UMBRELLA}:\n{}", ran.report());
        charts
    }

    fn chart(&self, chart: &str) -> PathBuf {
        self.dir.path().join("charts").join(chart)
    }

    /// `helm ARGS` in the copy's `charts/`, with helm's directories in the copy.
    fn run(&self, what: &str, args: &[&str]) -> Ran {
        let home = self.dir.path().join("helm-home");
        let mut command = Command::new("helm");
        command
            .args(args)
            .current_dir(self.dir.path().join("charts"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_CONTENT_CACHE", home.join("content"));
        run_tool(what, &mut command, None, Duration::from_secs(120))
    }

    /// `helm template` of one release: the chart, named as its release, with the values file
    /// (`values.yaml` or `values.production.yaml`, over the chart's values.yaml as helm merges them),
    /// the existing Secrets' names, and `extra` flags.
    fn template(&self, chart: &str, values: &str, extra: &[&str]) -> Ran {
        let mut args: Vec<String> = vec![
            "template".into(),
            chart.into(),
            chart.into(),
            "--namespace".into(),
            NAMESPACE.into(),
            "--kube-version".into(),
            crate::support::KUBERNETES_VERSION.into(),
            "--values".into(),
            format!("{chart}/{values}"),
        ];
        args.extend(secret_flags(chart));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&format!("helm template {chart} with {values}"), &args)
    }

    fn render(&self, chart: &str, values: &str, extra: &[&str]) -> String {
        let ran = self.template(chart, values, extra);
        assert!(ran.success, "helm template {chart} -f {values} {extra:?} failed:\n{}", ran.report());
        ran.stdout
    }

    /// The three releases rendered with `values` (each chart's file of that name), as one stream.
    fn render_all(&self, values: &str) -> String {
        CHARTS.iter().map(|chart| self.render(chart, values, &[])).collect::<Vec<_>>().join("\n---\n")
    }

    fn objects(&self, values: &str) -> Vec<Value> {
        yaml_documents(&format!("the releases with {values}"), &self.render_all(values))
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a directory in the temporary directory");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            // A dependency built in the working tree is not the one under test.
            if entry.file_name() != "charts" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("a copy");
        }
    }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}
