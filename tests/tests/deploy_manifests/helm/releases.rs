//! The checks shared with the kustomize overlays, on the three releases together, and what makes production stricter.

use std::collections::BTreeSet;

use serde_json::json;

use super::{CHARTS, Charts, VALUES_FILES, secret_values};
use crate::checks::{
    check_metrics, check_reachability, check_resources_and_probes, check_restricted, check_settings_accepted,
    secret_references, selects,
};
use crate::support::{SERVICES, find, kind, list, pod_templates, quantity, service, yaml_documents};

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
