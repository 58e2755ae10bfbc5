//! Lint, rendering, and the values schemas.

use std::collections::BTreeSet;

use super::{CHARTS, Charts, NAMESPACE, VALUES_FILES, secret_flags};
use crate::checks::validate_strictly;
use crate::support::{SERVICES, WORKLOAD_KINDS, kind, list, name, read, yaml_documents};

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
            for kind in WORKLOAD_KINDS {
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
