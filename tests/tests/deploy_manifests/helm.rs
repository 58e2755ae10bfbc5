//! The Helm charts in `charts/`: the library chart `prfix-lib` and one application chart per service,
//! each installed as its own release (`helm install prfix-audit charts/prfix-audit ...`), rendered
//! here the way an operator installs them: the chart's values.yaml and then values.production.yaml,
//! with the names of the Secrets that exist beforehand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime};

use prfix_tests::TestDatabase;
use serde_json::{Value, json};

use crate::checks::{
    Role, check_metrics, check_reachability, check_resources_and_probes, check_restricted, check_settings_accepted,
    container_environment, role, secret_references, selects, validate_strictly,
};
use crate::support::{
    Ran, SERVICES, find, kind, list, name, pod_templates, quantity, read, run_tool, service, shellcheck,
    workspace_root, write_settings_file, yaml_documents,
};

const CHARTS: [&str; 3] = ["prfix-gateway", "prfix-agent", "prfix-audit"];
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

// ---------------------------------------------------------------------------------------------
// Lint, rendering, schemas.

#[test]
fn every_chart_builds_its_library_dependency_and_passes_helm_lint_strict_with_each_values_file() {
    let charts = Charts::prepare();
    let library = yaml_documents("charts/prfix-lib/Chart.yaml", &read("charts/prfix-lib/Chart.yaml"));
    assert_eq!(library[0]["type"], "library", "prfix-lib is a library chart");
    let ran = charts.run("helm lint prfix-lib", &["lint", "--strict", "prfix-lib"]);
    assert!(ran.success, "helm lint --strict prfix-lib:\n{}", ran.report());

    for chart in CHARTS {
        let manifest = &yaml_documents(chart, &read(&format!("charts/{chart}/Chart.yaml")))[0];
        assert_eq!(manifest["apiVersion"], "v2", "{chart}");
        assert_eq!(manifest["type"], "application", "{chart}");
        let dependencies = list(&manifest["dependencies"]);
        assert_eq!(dependencies.len(), 1, "{chart}: one dependency, the library");
        assert_eq!(dependencies[0]["name"], "prfix-lib", "{chart}");
        assert_eq!(dependencies[0]["repository"], "file://../prfix-lib", "{chart}");
        assert_eq!(dependencies[0]["version"], library[0]["version"], "{chart}: the library's version");
        assert_eq!(manifest["appVersion"], env!("CARGO_PKG_VERSION"), "{chart}: appVersion is the workspace's version");

        for values in VALUES_FILES {
            let mut args = vec![
                "lint".to_owned(),
                "--strict".to_owned(),
                "--kube-version".to_owned(),
                crate::support::KUBERNETES_VERSION.to_owned(),
                chart.to_owned(),
                "--values".to_owned(),
                format!("{chart}/{values}"),
            ];
            args.extend(secret_flags(chart));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ran = charts.run(&format!("helm lint {chart}"), &args);
            assert!(ran.success, "helm lint --strict {chart} -f {values}:\n{}", ran.report());
            assert!(!ran.stdout.contains("[WARNING]"), "{chart} -f {values}:\n{}", ran.report());
        }
    }
}

#[test]
fn every_chart_renders_with_each_values_file_and_validates_strictly_against_the_kubernetes_1_30_schemas() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        let what = format!("the releases with {values}");
        let documents = validate_strictly(&what, &charts.render_all(values));
        let rendered: BTreeSet<(String, String)> =
            documents.iter().map(|o| (kind(o).to_owned(), name(o).to_owned())).collect();
        let mut expected: Vec<(&str, String)> = Vec::new();
        for service in SERVICES {
            let release = service.workload();
            for kind in [
                "ServiceAccount",
                "Deployment",
                "Service",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "NetworkPolicy",
            ] {
                expected.push((kind, release.clone()));
            }
            expected.push(("ConfigMap", format!("{release}-settings")));
            for kind in ["Job", "ServiceAccount", "NetworkPolicy"] {
                expected.push((kind, format!("{release}-migrate")));
            }
        }
        for kind in ["CronJob", "ServiceAccount", "NetworkPolicy"] {
            expected.push((kind, "prfix-audit-backup".to_owned()));
        }
        expected.push(("ConfigMap", "prfix-audit-backup-scripts".to_owned()));
        expected.push(("PersistentVolumeClaim", "prfix-audit-backups".to_owned()));
        let expected: BTreeSet<(String, String)> = expected.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
        assert_eq!(rendered, expected, "{what}: the objects rendered");
        assert_eq!(rendered.len(), documents.len(), "{what}: no object twice");
        for object in &documents {
            let (k, n) = (kind(object), name(object));
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{what}: {k} {n} is in the release's namespace");
            assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm", "{what}: {k} {n}");
            assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/part-of"], "prfix", "{what}: {k} {n}");
        }
        // The ServiceMonitor is off by default (its CRD may not exist).
        assert!(!documents.iter().any(|o| kind(o) == "ServiceMonitor"), "{what}");
    }
}

#[test]
fn the_values_schemas_reject_a_wrong_type_an_unknown_key_and_a_missing_secret_naming_the_key() {
    let charts = Charts::prepare();
    let refused = |chart: &str, extra: &[&str], with_secrets: bool| -> String {
        let ran = if with_secrets {
            charts.template(chart, "values.yaml", extra)
        } else {
            let mut args = vec!["template", chart, chart, "--values"];
            let values = format!("{chart}/values.yaml");
            args.push(&values);
            args.extend(extra);
            charts.run(&format!("helm template {chart} without secrets"), &args)
        };
        assert!(!ran.success, "{chart} {extra:?}: rendered:\n{}", ran.stdout);
        assert!(ran.stderr.contains("values don't meet the specifications of the schema"), "{}", ran.report());
        ran.stderr
    };
    for chart in CHARTS {
        let error = refused(chart, &["--set", "replicaCount=two"], true);
        assert!(error.contains("/replicaCount") && error.contains("want integer"), "{chart}: {error}");
        let error = refused(chart, &["--set", "replicas=3"], true);
        assert!(error.contains("additional properties 'replicas' not allowed"), "{chart}: {error}");
        let error = refused(chart, &["--set", "service.portt=1"], true);
        assert!(error.contains("/service") && error.contains("'portt'"), "{chart}: {error}");
        let error = refused(chart, &["--set", "resources.limits.memory=lots"], true);
        assert!(error.contains("/resources/limits/memory"), "{chart}: {error}");
        // Secrets are named, never defaulted: without the names nothing renders, and the error says
        // which value is missing.
        let error = refused(chart, &[], false);
        assert!(error.contains("/secrets/database/name") && error.contains("/secrets/redis/name"), "{chart}: {error}");
        // The chart sets the database URL from its Secret: a setting cannot carry it.
        let error = refused(chart, &["--set", "settings.PRFIX_DATABASE_URL=postgres://x"], true);
        assert!(error.contains("PRFIX_DATABASE_URL"), "{chart}: {error}");
        // Metrics are never open to everyone.
        let error = refused(chart, &["--set-json", "metrics.networkPolicy.from=[]"], true);
        assert!(error.contains("/metrics/networkPolicy/from"), "{chart}: {error}");
    }
    let error = refused("prfix-gateway", &[], false);
    assert!(error.contains("/secrets/signingKey/name"), "{error}");
    let error = refused("prfix-audit", &["--set", "backup.retention.keep=0"], true);
    assert!(error.contains("/backup/retention/keep"), "{error}");
    // Only the gateway is public: the agent and audit always name their callers.
    for chart in ["prfix-agent", "prfix-audit"] {
        let error = refused(chart, &["--set-json", "networkPolicy.from=[]"], true);
        assert!(error.contains("/networkPolicy/from"), "{chart}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// The shared checks, on what the charts render.

#[test]
fn every_helm_pod_template_meets_the_restricted_pod_security_profile() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        let objects = charts.objects(values);
        let kinds = check_restricted(&format!("the releases with {values}"), &objects);
        let expected: BTreeSet<String> = ["Deployment", "Job", "CronJob"].map(str::to_owned).into();
        assert_eq!(kinds, expected, "{values}: the workloads checked");
        assert_eq!(pod_templates(&objects).len(), 7, "{values}: three Deployments, three migrations, the backups");
    }
}

#[test]
fn every_helm_container_has_resources_and_every_service_grpc_probes_on_its_own_port() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        check_resources_and_probes(&format!("the releases with {values}"), &charts.objects(values));
    }
}

#[test]
fn every_release_serves_prometheus_metrics_on_its_admin_port_and_a_service_monitor_only_when_asked() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        check_metrics(&format!("the releases with {values}"), &charts.objects(values));
    }
    for chart in CHARTS {
        let port = service(chart.trim_start_matches("prfix-")).metrics_port;
        let objects = yaml_documents(
            chart,
            &charts.render(chart, "values.yaml", &["--set", "metrics.serviceMonitor.enabled=true"]),
        );
        let monitor = find(&objects, "ServiceMonitor", chart);
        let svc = find(&objects, "Service", chart);
        assert!(selects(&monitor["spec"]["selector"], &svc["metadata"]["labels"]), "{chart}: selects the Service");
        let endpoint = &list(&monitor["spec"]["endpoints"])[0];
        assert_eq!(endpoint["port"], "metrics", "{chart}");
        assert_eq!(endpoint["path"], "/metrics", "{chart}");
        assert!(list(&svc["spec"]["ports"]).iter().any(|p| p["name"] == "metrics" && p["port"] == port), "{chart}");
        // Without metrics, no port, no admin address, no annotation, no rule.
        let objects = yaml_documents(chart, &charts.render(chart, "values.yaml", &["--set", "metrics.enabled=false"]));
        let deployment = find(&objects, "Deployment", chart);
        let text = deployment.to_string();
        assert!(!text.contains("ADMIN_LISTEN") && !text.contains("prometheus.io"), "{chart}: {text}");
        let policy = find(&objects, "NetworkPolicy", chart);
        assert_eq!(list(&policy["spec"]["ingress"]).len(), 1, "{chart}: the service's port alone");
    }
}

#[test]
fn the_three_releases_admit_only_the_callers_the_design_names_and_metrics_only_from_monitoring() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        check_reachability(&format!("the releases with {values}"), &charts.objects(values));
    }
    // A store narrowed to where it runs: the rule names it, and the migration follows.
    let narrowed = charts.render(
        "prfix-audit",
        "values.yaml",
        &[
            "--set-json",
            r#"networkPolicy.external=[{"name":"postgres","port":5432,"to":[{"ipBlock":{"cidr":"10.1.2.0/24"}}]},{"name":"redis","port":6379}]"#,
        ],
    );
    let objects = yaml_documents("prfix-audit narrowed", &narrowed);
    for policy in ["prfix-audit", "prfix-audit-migrate", "prfix-audit-backup"] {
        let rules = list(&find(&objects, "NetworkPolicy", policy)["spec"]["egress"]);
        let postgres = rules
            .iter()
            .find(|r| list(&r["ports"]).iter().any(|p| p["port"] == 5432))
            .unwrap_or_else(|| panic!("{policy}: no rule for Postgres"));
        assert_eq!(postgres["to"], json!([{"ipBlock": {"cidr": "10.1.2.0/24"}}]), "{policy}");
    }
}

#[test]
fn the_settings_and_secrets_the_charts_give_are_accepted_by_every_service() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        let what = format!("the releases with {values}");
        let objects = charts.objects(values);
        let checked = check_settings_accepted(&what, &objects);
        assert_eq!(checked, 6, "{what}: three Deployments and three migrations");
        assert!(!objects.iter().any(|o| kind(o) == "Secret"), "{what}: a Secret is rendered");
        let given: BTreeSet<String> =
            CHARTS.iter().flat_map(|c| secret_values(c).iter().map(|(_, s)| (*s).to_owned())).collect();
        assert_eq!(secret_references(&what, &objects), given, "{what}: the Secrets read are those named");
        // The secret files are mounted read-only, readable by the group only (fsGroup 10001).
        for service in SERVICES {
            let deployment = find(&objects, "Deployment", &service.workload());
            for volume in list(&deployment["spec"]["template"]["spec"]["volumes"]) {
                if !volume["projected"].is_null() {
                    assert_eq!(volume["projected"]["defaultMode"], 0o440, "{what} {}", service.workload());
                }
            }
        }
    }
    // The agent's credential may be left out, and is optional when named (made after the gateway runs).
    let objects = yaml_documents(
        "prfix-agent",
        &charts.render("prfix-agent", "values.yaml", &["--set", "secrets.auditCredential.name="]),
    );
    let deployment = find(&objects, "Deployment", "prfix-agent");
    assert!(!deployment.to_string().contains("PRFIX_AGENT_AUDIT_CREDENTIAL"), "left out");
    let objects = yaml_documents("prfix-agent", &charts.render("prfix-agent", "values.yaml", &[]));
    let container = &list(&find(&objects, "Deployment", "prfix-agent")["spec"]["template"]["spec"]["containers"])[0];
    let credential = list(&container["env"]).iter().find(|v| v["name"] == "PRFIX_AGENT_AUDIT_CREDENTIAL");
    assert_eq!(
        credential.map(|v| v["valueFrom"]["secretKeyRef"].clone()),
        Some(json!({"name": "prfix-agent-audit", "key": "credential", "optional": true}))
    );
}

#[test]
fn every_release_has_a_disruption_budget_and_an_autoscaler_and_production_is_stricter() {
    let charts = Charts::prepare();
    let defaults = charts.objects("values.yaml");
    let production = charts.objects("values.production.yaml");
    for (values, objects) in [("values.yaml", &defaults), ("values.production.yaml", &production)] {
        for service in SERVICES {
            let name = service.workload();
            let what = format!("{name} with {values}");
            let deployment = find(objects, "Deployment", &name);
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            assert!(selects(&deployment["spec"]["selector"], labels), "{what}: the selector selects its own pods");
            // The Service, the budget and the autoscaler cover the service's pods, and none of the
            // one-off pods (migration, backups).
            let svc = find(objects, "Service", &name);
            let service_selector = json!({"matchLabels": svc["spec"]["selector"]});
            let budget = find(objects, "PodDisruptionBudget", &name);
            for (workload, template) in pod_templates(objects) {
                let pods = &template["metadata"]["labels"];
                let own = workload == format!("Deployment/{name}");
                assert_eq!(selects(&service_selector, pods), own, "{what}: the Service and {workload}");
                assert_eq!(selects(&budget["spec"]["selector"], pods), own, "{what}: the budget and {workload}");
            }
            let autoscaler = find(objects, "HorizontalPodAutoscaler", &name);
            assert_eq!(autoscaler["spec"]["scaleTargetRef"]["name"], name.as_str(), "{what}: autoscaler target");
            let min = autoscaler["spec"]["minReplicas"].as_i64().expect("minReplicas");
            let max = autoscaler["spec"]["maxReplicas"].as_i64().expect("maxReplicas");
            assert!(1 <= min && min < max, "{what}: autoscaling {min}..{max}");
            // The autoscaler owns the count: an upgrade must not reset it.
            assert!(deployment["spec"]["replicas"].is_null(), "{what}: replicas set beside an autoscaler");
            let strategy = &deployment["spec"]["strategy"]["rollingUpdate"];
            assert_eq!(strategy["maxUnavailable"], 0, "{what}: a rollout never lowers capacity");
            let container = &list(&deployment["spec"]["template"]["spec"]["containers"])[0];
            let image = container["image"].as_str().expect("an image");
            assert_eq!(
                image,
                format!("registry.example.com/prfix/{name}:{}", env!("CARGO_PKG_VERSION")),
                "{what}: the image, tagged with the release"
            );
            if values == "values.yaml" {
                continue;
            }

            let spec = &deployment["spec"]["template"]["spec"];
            let floor = if service.name == "gateway" { 3 } else { 2 };
            assert!(min >= floor, "{what}: the autoscaler keeps {floor} at least");
            let keep = budget["spec"]["minAvailable"].as_i64().unwrap_or_else(|| panic!("{what}: minAvailable"));
            assert!(1 <= keep && keep < min, "{what}: {keep} kept available of {min}");
            for constraint in list(&spec["topologySpreadConstraints"]) {
                assert!(selects(&constraint["labelSelector"], labels), "{what}: spreads its own pods");
            }
            let keys: Vec<&str> =
                list(&spec["topologySpreadConstraints"]).iter().filter_map(|c| c["topologyKey"].as_str()).collect();
            assert_eq!(keys, ["topology.kubernetes.io/zone", "kubernetes.io/hostname"], "{what}: zones, then nodes");
            let resources = &container["resources"];
            assert_eq!(
                quantity(&resources["requests"]["memory"]),
                quantity(&resources["limits"]["memory"]),
                "{what}: memory requested as limited"
            );
            let default = &list(&find(&defaults, "Deployment", &name)["spec"]["template"]["spec"]["containers"])[0];
            for resource in ["cpu", "memory"] {
                for bound in ["requests", "limits"] {
                    let (more, less) = (&resources[bound][resource], &default["resources"][bound][resource]);
                    assert!(quantity(more) >= quantity(less), "{what}: {bound}.{resource} {more} below {less}");
                }
            }
            let default_min = find(&defaults, "HorizontalPodAutoscaler", &name)["spec"]["minReplicas"].as_i64();
            assert!(Some(min) > default_min, "{what}: more replicas than values.yaml");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The migration hook.

/// The migration Job of a release, with the hooks it needs.
fn migration_objects<'a>(objects: &'a [Value], release: &str) -> (&'a Value, &'a Value, &'a Value) {
    let name = format!("{release}-migrate");
    (find(objects, "Job", &name), find(objects, "ServiceAccount", &name), find(objects, "NetworkPolicy", &name))
}

#[test]
fn the_migration_hook_runs_migrate_before_install_and_upgrade_with_nothing_but_the_database_url() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        let objects = charts.objects(values);
        for service in SERVICES {
            let release = service.workload();
            let what = format!("{release} with {values}");
            let (job, account, policy) = migration_objects(&objects, &release);
            let weight = |o: &Value| -> i64 {
                annotation(o, "helm.sh/hook-weight").unwrap_or("0").parse().expect("a hook weight is a number")
            };
            for object in [job, account, policy] {
                let hooks: BTreeSet<&str> = annotation(object, "helm.sh/hook").unwrap_or_default().split(',').collect();
                assert_eq!(hooks, BTreeSet::from(["pre-install", "pre-upgrade"]), "{what}: {} is a hook", kind(object));
                let policies: BTreeSet<&str> =
                    annotation(object, "helm.sh/hook-delete-policy").unwrap_or_default().split(',').collect();
                assert_eq!(
                    policies,
                    BTreeSet::from(["before-hook-creation", "hook-succeeded"]),
                    "{what}: {} is replaced by the next run and deleted once it succeeded",
                    kind(object)
                );
            }
            // Hooks run before the release's objects exist: what the Job's pod needs must be a hook
            // created before it (a lower weight), or exist beforehand (the Secrets).
            assert!(weight(account) < weight(job) && weight(policy) < weight(job), "{what}: helpers first");
            let spec = &job["spec"]["template"]["spec"];
            assert_eq!(spec["serviceAccountName"], name(account), "{what}: the hook's own ServiceAccount");
            assert!(
                selects(&policy["spec"]["podSelector"], &job["spec"]["template"]["metadata"]["labels"]),
                "{what}: the hook's NetworkPolicy covers the Job's pod"
            );
            assert_eq!(spec["restartPolicy"], "Never", "{what}");
            assert!(job["spec"]["backoffLimit"].as_i64().is_some_and(|n| n <= 5), "{what}: bounded retries");
            assert!(job["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{what}: a deadline");

            let containers = list(&spec["containers"]);
            assert_eq!(containers.len(), 1, "{what}: one container");
            assert!(list(&spec["initContainers"]).is_empty(), "{what}: no init container");
            let container = &containers[0];
            assert_eq!(
                role(container),
                Some((service, Role::Migrate)),
                "{what}: runs `prfix-{} --migrate`",
                service.name
            );
            let deployment = find(&objects, "Deployment", &release);
            let served = &list(&deployment["spec"]["template"]["spec"]["containers"])[0];
            assert_eq!(container["image"], served["image"], "{what}: the image the release deploys");
            assert!(list(&container["envFrom"]).is_empty(), "{what}: no ConfigMap (none exists before install)");
            let secrets: Vec<&str> = list(&container["env"])
                .iter()
                .filter(|v| !v["valueFrom"].is_null())
                .filter_map(|v| v["name"].as_str())
                .collect();
            assert_eq!(secrets, ["PRFIX_DATABASE_URL"], "{what}: the database URL is the only secret it reads");
            assert!(
                !list(&spec["volumes"]).iter().any(|v| !v["secret"].is_null() || !v["projected"].is_null()),
                "{what}: no Secret mounted"
            );
        }
    }
    // Off when asked: no hook at all.
    for chart in CHARTS {
        let text = charts.render(chart, "values.yaml", &["--set", "migration.enabled=false"]);
        assert!(!text.contains("helm.sh/hook"), "{chart}: a hook without migration");
    }
}

#[tokio::test]
async fn the_migration_hooks_command_and_environment_migrate_a_fresh_database() {
    let objects = tokio::task::spawn_blocking(|| Charts::prepare().objects("values.production.yaml"))
        .await
        .expect("rendering the releases");
    let database = TestDatabase::fresh();
    // In the order docs/deployment.md installs the releases; each from nothing but its Job's
    // environment, the database URL pointed at a database that does not exist yet.
    for release in ["prfix-audit", "prfix-agent", "prfix-gateway"] {
        let (job, _, _) = migration_objects(&objects, release);
        let container = &list(&job["spec"]["template"]["spec"]["containers"])[0];
        let mut environment = container_environment(&objects, container);
        environment.insert("PRFIX_DATABASE_URL".to_owned(), database.url.clone());
        for _ in 0..2 {
            let code = migrate(release, &environment).await;
            assert_eq!(code, ExitCode::SUCCESS, "{release} --migrate with {environment:?}");
        }
    }
    let client = database.connect().await;
    let rows = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname IN ('gateway', 'agent', 'audit') ORDER BY 1", &[])
        .await
        .expect("the schemas");
    let schemas: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(schemas, ["agent", "audit", "gateway"], "every service's schema is in");
}

/// What `prfix-<service> --migrate` does with `environment` (as its settings file).
async fn migrate(release: &str, environment: &BTreeMap<String, String>) -> ExitCode {
    let (file, _) = write_settings_file(environment);
    let path = Some(file.path());
    match release {
        "prfix-gateway" => {
            let settings = prfix_gateway::Settings::load(path);
            prfix_runtime::binary::migrate(
                release,
                settings,
                |s| &s.common,
                prfix_gateway::Settings::database,
                prfix_gateway::MIGRATIONS,
            )
            .await
        }
        "prfix-agent" => {
            let settings = prfix_agent::Settings::load(path);
            prfix_runtime::binary::migrate(
                release,
                settings,
                |s| &s.common,
                prfix_agent::Settings::database,
                prfix_agent::MIGRATIONS,
            )
            .await
        }
        "prfix-audit" => {
            let settings = prfix_audit::Settings::load(path);
            prfix_runtime::binary::migrate(
                release,
                settings,
                |s| &s.common,
                prfix_audit::Settings::database,
                prfix_audit::MIGRATIONS,
            )
            .await
        }
        other => panic!("unknown release {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The audit chart's backups.

#[test]
fn the_audit_charts_backup_cronjob_runs_pg_dump_into_its_volume_with_retention() {
    let charts = Charts::prepare();
    for (values, keep, max_age) in [("values.yaml", "7", "30"), ("values.production.yaml", "30", "30")] {
        let what = format!("prfix-audit with {values}");
        let objects = yaml_documents(&what, &charts.render("prfix-audit", values, &[]));
        let cron = find(&objects, "CronJob", "prfix-audit-backup");
        let spec = &cron["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Forbid", "{what}: one backup at a time");
        assert!(spec["schedule"].as_str().is_some_and(|s| s.split(' ').count() == 5), "{what}: {}", spec["schedule"]);
        assert!(spec["jobTemplate"]["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{what}: a deadline");
        let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never", "{what}");
        let container = &list(&pod["containers"])[0];
        let image = container["image"].as_str().unwrap_or_default();
        assert!(image.starts_with("docker.io/library/postgres:"), "{what}: a Postgres client image: {image}");
        assert_eq!(container["command"], json!(["bash", "/opt/prfix/backup-job"]), "{what}");
        let environment: BTreeMap<&str, &Value> =
            list(&container["env"]).iter().map(|v| (v["name"].as_str().unwrap_or_default(), v)).collect();
        assert_eq!(environment["BACKUP_KEEP"]["value"], keep, "{what}: keeps the newest {keep}");
        assert_eq!(environment["BACKUP_MAX_AGE_DAYS"]["value"], max_age, "{what}: none older than {max_age} days");
        assert_eq!(
            environment["PRFIX_DATABASE_URL"]["valueFrom"]["secretKeyRef"],
            json!({"name": "prfix-database", "key": "url"}),
            "{what}: the database URL from its Secret"
        );
        let dir = environment["BACKUP_DIR"]["value"].as_str().expect("BACKUP_DIR");

        // The volumes: the dumps on the claim, the scripts from the ConfigMap.
        let mounts: BTreeMap<&str, &str> = list(&container["volumeMounts"])
            .iter()
            .map(|m| (m["mountPath"].as_str().unwrap_or_default(), m["name"].as_str().unwrap_or_default()))
            .collect();
        let volume = |name: &str| {
            list(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{what}: no volume {name}"))
        };
        let claim = volume(mounts[dir])["persistentVolumeClaim"]["claimName"].as_str().expect("a claim");
        let pvc = find(&objects, "PersistentVolumeClaim", claim);
        assert_eq!(annotation(pvc, "helm.sh/resource-policy"), Some("keep"), "{what}: the backups outlive the release");
        let scripts = volume(mounts["/opt/prfix"])["configMap"]["name"].as_str().expect("a ConfigMap");
        let data = &find(&objects, "ConfigMap", scripts)["data"];
        // scripts/backup runs pg_dump --format=custom and keeps the newest N (--keep); the job
        // passes it the directory and N.
        let backup = data["backup"].as_str().expect("the backup script");
        assert!(backup.contains("pg_dump --format=custom"), "{what}: scripts/backup dumps in the custom format");
        let job = data["backup-job"].as_str().expect("the job's script");
        assert!(job.contains(r#"--dir "$dir" --keep "$keep""#), "{what}: {job}");
        assert!(job.contains("BACKUP_MAX_AGE_DAYS"), "{what}: {job}");
        // A change of the scripts rolls into the next run.
        let template = &spec["jobTemplate"]["spec"]["template"];
        assert!(template["metadata"]["annotations"]["checksum/scripts"].is_string(), "{what}");
    }

    // An existing claim is used as it is, and no other is made; retention follows the values.
    let objects = yaml_documents(
        "prfix-audit with an existing claim",
        &charts.render(
            "prfix-audit",
            "values.production.yaml",
            &[
                "--set",
                "backup.persistence.existingClaim=audit-dumps",
                "--set",
                "backup.retention.keep=5",
                "--set",
                "backup.retention.maxAgeDays=0",
                "--set",
                "backup.database.name=prfix-backup-reader",
            ],
        ),
    );
    assert!(!objects.iter().any(|o| kind(o) == "PersistentVolumeClaim"), "no claim is made");
    let cron = find(&objects, "CronJob", "prfix-audit-backup");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert!(
        list(&pod["volumes"]).iter().any(|v| v["persistentVolumeClaim"]["claimName"] == "audit-dumps"),
        "the existing claim is mounted"
    );
    let env = &list(&pod["containers"])[0]["env"];
    let value = |n: &str| list(env).iter().find(|v| v["name"] == n).cloned().unwrap_or(Value::Null);
    assert_eq!(value("BACKUP_KEEP")["value"], "5");
    assert_eq!(value("BACKUP_MAX_AGE_DAYS")["value"], "0");
    assert_eq!(value("PRFIX_DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"], "prfix-backup-reader");
    // And off when asked.
    let text = charts.render("prfix-audit", "values.yaml", &["--set", "backup.enabled=false"]);
    assert!(!text.contains("kind: CronJob") && !text.contains("PersistentVolumeClaim"), "backups off");
}

#[test]
fn the_charts_backup_scripts_pass_shellcheck_and_ship_scripts_backup_unchanged() {
    assert_eq!(
        read("charts/prfix-audit/files/backup"),
        read("scripts/backup"),
        "charts/prfix-audit/files/backup is a copy of scripts/backup: copy it again"
    );
    shellcheck(&["charts/prfix-audit/files/backup", "charts/prfix-audit/files/backup-job"]);
}

/// The date in a dump's name (`prfix-20260102T030405.678Z.dump`), as scripts/backup writes it.
fn dump_name(days_ago: u64, n: u64) -> (String, SystemTime) {
    let when = SystemTime::now() - Duration::from_secs(days_ago * 86_400 + n * 60);
    let stamp = chrono::DateTime::<chrono::Utc>::from(when).format("%Y%m%dT%H%M%S%.3fZ");
    (format!("prfix-{stamp}.dump"), when)
}

#[tokio::test]
async fn the_backup_cronjobs_script_dumps_the_database_and_keeps_only_the_newest_and_recent_dumps() {
    let objects = tokio::task::spawn_blocking(|| {
        let charts = Charts::prepare();
        yaml_documents(
            "prfix-audit",
            &charts.render(
                "prfix-audit",
                "values.yaml",
                &["--set", "backup.retention.keep=4", "--set", "backup.retention.maxAgeDays=10"],
            ),
        )
    })
    .await
    .expect("rendering prfix-audit");
    let cron = find(&objects, "CronJob", "prfix-audit-backup");
    let container = &list(&cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"])[0];
    let data = &find(&objects, "ConfigMap", "prfix-audit-backup-scripts")["data"];

    // The scripts as the ConfigMap mounts them, a backup directory in place of the claim.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let scripts = dir.path().join("opt-prfix");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&scripts).expect("a directory");
    std::fs::create_dir_all(&backups).expect("a directory");
    for file in ["backup", "backup-job"] {
        std::fs::write(scripts.join(file), data[file].as_str().expect("a script")).expect("writable");
    }
    // Earlier dumps: two recent ones, three past the age limit, and a file that is no dump of ours.
    let mut earlier = Vec::new();
    for (days, n) in [(1, 0), (2, 0), (11, 0), (12, 0), (40, 0)] {
        let (file, when) = dump_name(days, n);
        let path = backups.join(&file);
        std::fs::write(&path, "an earlier dump").expect("writable");
        std::fs::write(backups.join(format!("{file}.sha256")), "checksum").expect("writable");
        std::fs::File::options().write(true).open(&path).expect("open").set_modified(when).expect("set mtime");
        earlier.push((file, days));
    }
    std::fs::write(backups.join("notes.txt"), "kept").expect("writable");

    // A database with the audit schema in it, to dump.
    let database = TestDatabase::fresh();
    let mut environment = BTreeMap::new();
    environment.insert("PRFIX_DATABASE_URL".to_owned(), database.url.clone());
    assert_eq!(migrate("prfix-audit", &environment).await, ExitCode::SUCCESS);

    let variables: BTreeMap<String, String> = list(&container["env"])
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].as_str()?.to_owned())))
        .collect();
    let ran = tokio::task::spawn_blocking({
        let (scripts, backups, url) = (scripts.clone(), backups.clone(), database.url.clone());
        move || {
            let mut command = Command::new("bash");
            command
                .arg(scripts.join("backup-job"))
                .envs(&variables)
                .env("BACKUP_DIR", &backups)
                .env("PRFIX_DATABASE_URL", url)
                .env("HOME", backups.parent().expect("a parent"));
            run_tool("the backup job", &mut command, None, Duration::from_secs(120))
        }
    })
    .await
    .expect("the backup job");
    assert!(ran.success, "the backup job failed:\n{}", ran.report());
    let made = PathBuf::from(ran.stdout.trim());
    assert_eq!(made.parent(), Some(backups.as_path()), "{}", ran.report());

    // The new dump reads back as a custom-format archive holding the audit log, with its checksum.
    let listing = run_tool(
        "pg_restore --list",
        Command::new("pg_restore").arg("--list").arg(&made),
        None,
        Duration::from_secs(60),
    );
    assert!(listing.success && listing.stdout.contains("audit events"), "{}", listing.report());
    let sum = std::fs::read_to_string(format!("{}.sha256", made.display())).expect("the checksum");
    assert!(sum.ends_with(&format!("  {}\n", made.file_name().expect("a name").to_string_lossy())), "{sum}");

    // Kept: the newest four (the new one and the three next), minus those older than ten days.
    let present: BTreeSet<String> = std::fs::read_dir(&backups)
        .expect("readable")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    let new = made.file_name().expect("a name").to_string_lossy().into_owned();
    let mut expected: BTreeSet<String> = BTreeSet::from(["notes.txt".to_owned()]);
    for file in [new.clone(), earlier[0].0.clone(), earlier[1].0.clone()] {
        expected.insert(format!("{file}.sha256"));
        expected.insert(file);
    }
    assert_eq!(present, expected, "{}", ran.report());
}
