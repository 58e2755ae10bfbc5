//! The kustomize base and overlays in `k8s/`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::checks::{
    check_metrics, check_reachability, check_resources_and_probes, check_restricted, check_settings_accepted,
    container_environment, secret_references, selects, validate_strictly,
};
use crate::support::{
    SERVICES, WORKLOAD_KINDS, find, kind, list, name, quantity, read, run_tool, service_of_image, strings,
    workspace_root,
};

const OVERLAYS: [&str; 2] = ["dev", "production"];
/// The Secrets the manifests may name; none is committed (k8s/base/kustomization.yaml).
const SECRET_NAMES: [&str; 5] =
    ["prfix-database", "prfix-redis", "prfix-gateway-keys", "prfix-audit-keys", "prfix-agent-audit"];

/// `kustomize build` of an overlay: the YAML stream.
fn render(overlay: &str) -> String {
    let dir = workspace_root().join("k8s/overlays").join(overlay);
    let ran = run_tool(
        &format!("rendering the {overlay} overlay"),
        Command::new("kustomize").arg("build").arg(&dir),
        None,
        Duration::from_secs(60),
    );
    assert!(ran.success, "kustomize build {} failed:\n{}", dir.display(), ran.report());
    ran.stdout
}

/// The rendered objects of an overlay.
fn objects(overlay: &str) -> Vec<Value> {
    crate::support::yaml_documents(&format!("the {overlay} overlay"), &render(overlay))
}

#[test]
fn every_overlay_renders_with_kustomize_and_validates_strictly_against_the_kubernetes_1_30_schemas() {
    for overlay in OVERLAYS {
        let documents = validate_strictly(&format!("the {overlay} overlay"), &render(overlay));
        let rendered: BTreeSet<(String, String)> =
            documents.iter().map(|o| (kind(o).to_owned(), name(o).to_owned())).collect();
        let mut expected: Vec<(&str, String)> = vec![
            ("Namespace", if overlay == "dev" { "prfix-dev" } else { "prfix" }.to_owned()),
            ("ServiceAccount", "prfix-migrate".to_owned()),
            ("Job", "prfix-migrate".to_owned()),
            ("NetworkPolicy", "default-deny".to_owned()),
            ("NetworkPolicy", "allow-dns".to_owned()),
        ];
        for service in SERVICES {
            for kind in WORKLOAD_KINDS {
                expected.push((kind, service.workload()));
            }
        }
        for (kind, name) in expected {
            assert!(rendered.contains(&(kind.to_owned(), name.clone())), "{overlay}: no {kind} {name} is rendered");
        }
        assert!(
            documents.iter().any(|o| kind(o) == "ConfigMap" && name(o).starts_with("prfix-settings")),
            "{overlay}: the settings ConfigMap is rendered"
        );
        let namespace = if overlay == "dev" { "prfix-dev" } else { "prfix" };
        for object in documents.iter().filter(|o| kind(o) != "Namespace") {
            assert_eq!(object["metadata"]["namespace"], namespace, "{overlay}: {} {}", kind(object), name(object));
        }
    }
}

#[test]
fn no_secret_value_is_committed_and_every_secret_reference_names_a_documented_secret() {
    let documented = read("k8s/base/kustomization.yaml");
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        assert!(
            !objects.iter().any(|o| kind(o) == "Secret"),
            "{overlay}: a Secret is rendered: its values would be committed"
        );
        let referenced = secret_references(overlay, &objects);
        assert!(!referenced.is_empty(), "{overlay}: the workloads read Secrets");
        for secret in &referenced {
            assert!(
                SECRET_NAMES.contains(&secret.as_str()),
                "{overlay}: Secret {secret} is not one of {SECRET_NAMES:?}"
            );
            assert!(
                documented.contains(secret.as_str()),
                "k8s/base/kustomization.yaml does not document Secret {secret}"
            );
        }
    }
    // No key material anywhere in the committed deployment files.
    let mut pending =
        vec![workspace_root().join("k8s"), workspace_root().join("docker"), workspace_root().join("charts")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "secrets") {
                    pending.push(path);
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.contains("PRIVATE KEY-----"), "{} holds a private key", path.display());
        }
    }
}

#[test]
fn every_pod_template_meets_the_restricted_pod_security_profile() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let kinds = check_restricted(&format!("the {overlay} overlay"), &objects);
        assert_eq!(
            kinds,
            BTreeSet::from(["Deployment".to_owned(), "Job".to_owned()]),
            "{overlay}: the workloads checked"
        );
        let namespace = objects.iter().find(|o| kind(o) == "Namespace").expect("a Namespace is rendered");
        assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted", "{overlay}");
    }
}

#[test]
fn every_container_has_resources_and_every_service_grpc_probes_on_its_own_port() {
    for overlay in OVERLAYS {
        check_resources_and_probes(&format!("the {overlay} overlay"), &objects(overlay));
    }
}

#[test]
fn every_service_serves_prometheus_metrics_on_its_admin_port() {
    for overlay in OVERLAYS {
        check_metrics(&format!("the {overlay} overlay"), &objects(overlay));
    }
}

#[test]
fn the_migration_job_runs_each_service_with_migrate_audit_agent_then_gateway_and_then_completes() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let job = find(&objects, "Job", "prfix-migrate");
        let spec = &job["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Never", "{overlay}");
        assert!(job["spec"]["backoffLimit"].as_i64().is_some(), "{overlay}: a bounded number of retries");
        assert!(job["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{overlay}: a deadline");
        // Init containers run one after the other, each to success, then the Job's container: the
        // services' migrations in this order, each in its own `--migrate` run.
        let steps: Vec<&Value> = list(&spec["initContainers"]).iter().chain(list(&spec["containers"])).collect();
        let order: Vec<&str> = steps
            .iter()
            .map(|c| service_of_image(c["image"].as_str().unwrap_or_default()).map_or("?", |s| s.name))
            .collect();
        assert_eq!(order, ["audit", "agent", "gateway"], "{overlay}: the migrations, in order");
        assert_eq!(list(&spec["containers"]).len(), 1, "{overlay}: the last one ends the Job");
        for step in &steps {
            let container = step["name"].as_str().unwrap_or("?");
            assert_eq!(step["args"], json!(["--migrate"]), "{overlay} {container}: runs --migrate");
            assert!(step["restartPolicy"].is_null(), "{overlay} {container}: not a sidecar: it exits");
            assert!(list(&step["ports"]).is_empty(), "{overlay} {container}: serves nothing");
            // The database URL is all it needs: no key is mounted into the Job.
            let environment = container_environment(&objects, step);
            assert!(environment.contains_key("PRFIX_DATABASE_URL"), "{overlay} {container}");
            assert!(
                !environment.keys().any(|k| k.ends_with("_FILE") || k == "PRFIX_AGENT_AUDIT_CREDENTIAL"),
                "{overlay} {container}: given a secret it does not need"
            );
        }
        assert!(
            !list(&spec["volumes"]).iter().any(|v| !v["secret"].is_null() || !v["projected"].is_null()),
            "{overlay}: the Job mounts no Secret"
        );
    }
}

#[test]
fn the_settings_and_secrets_each_overlay_gives_are_accepted_by_every_service() {
    for overlay in OVERLAYS {
        let checked = check_settings_accepted(&format!("the {overlay} overlay"), &objects(overlay));
        assert_eq!(checked, 6, "{overlay}: three Deployments and three migrations");
    }
}

#[test]
fn only_the_gateway_is_reachable_from_outside_each_service_only_from_its_callers_and_metrics_only_from_monitoring() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let policies: Vec<&Value> = objects.iter().filter(|o| kind(o) == "NetworkPolicy").collect();
        let deny_all = policies.iter().any(|p| {
            p["spec"]["podSelector"].as_object().is_some_and(|s| s.is_empty())
                && strings(&p["spec"]["policyTypes"]).contains(&"Ingress")
                && strings(&p["spec"]["policyTypes"]).contains(&"Egress")
                && list(&p["spec"]["ingress"]).is_empty()
                && list(&p["spec"]["egress"]).is_empty()
        });
        assert!(deny_all, "{overlay}: no default-deny policy (all pods, ingress and egress, no rule)");
        check_reachability(&format!("the {overlay} overlay"), &objects);
    }
}

#[test]
fn every_deployment_has_a_service_a_disruption_budget_and_an_autoscaler_and_production_is_stricter() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        for service in SERVICES {
            let name = service.workload();
            let deployment = find(&objects, "Deployment", &name);
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            let selector = &deployment["spec"]["selector"];
            assert!(selects(selector, labels), "{overlay} {name}: the selector selects its own pods");
            let svc = find(&objects, "Service", &name);
            assert!(
                selects(&json!({"matchLabels": svc["spec"]["selector"]}), labels),
                "{overlay} {name}: Service selects the pods"
            );
            assert!(
                list(&svc["spec"]["ports"]).iter().any(|p| p["port"] == service.port),
                "{overlay} {name}: Service port {}",
                service.port
            );
            let budget = find(&objects, "PodDisruptionBudget", &name);
            assert!(selects(&budget["spec"]["selector"], labels), "{overlay} {name}: the budget covers the pods");
            let autoscaler = find(&objects, "HorizontalPodAutoscaler", &name);
            assert_eq!(autoscaler["spec"]["scaleTargetRef"]["name"], name.as_str(), "{overlay}: autoscaler target");
            let (min, max) = (autoscaler["spec"]["minReplicas"].as_i64(), autoscaler["spec"]["maxReplicas"].as_i64());
            let (min, max) = (min.expect("minReplicas"), max.expect("maxReplicas"));
            assert!(1 <= min && min < max, "{overlay} {name}: autoscaling {min}..{max}");
            let replicas = deployment["spec"]["replicas"].as_i64().expect("replicas");
            assert!(min <= replicas && replicas <= max, "{overlay} {name}: {replicas} replicas within {min}..{max}");

            let spec = &deployment["spec"]["template"]["spec"];
            let container = &list(&spec["containers"])[0];
            let image = container["image"].as_str().expect("an image");
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            assert!(
                image.contains('/') && tag != "latest",
                "{overlay} {name}: image {image} names a registry and a tag"
            );
            if overlay == "production" {
                assert!(replicas >= if service.name == "gateway" { 3 } else { 2 }, "{overlay} {name}: replicas");
                assert!(min >= 2, "{overlay} {name}: the autoscaler keeps two at least");
                let keys: Vec<&str> =
                    list(&spec["topologySpreadConstraints"]).iter().filter_map(|c| c["topologyKey"].as_str()).collect();
                assert!(keys.contains(&"topology.kubernetes.io/zone"), "{overlay} {name}: spread over zones");
                assert!(keys.contains(&"kubernetes.io/hostname"), "{overlay} {name}: spread over nodes");
                let resources = &container["resources"];
                assert_eq!(
                    quantity(&resources["requests"]["memory"]),
                    quantity(&resources["limits"]["memory"]),
                    "{overlay} {name}: memory requested as limited"
                );
                assert!(!tag.contains("dev"), "{overlay} {name}: a release tag, not {tag}");
            }
        }
    }
}
