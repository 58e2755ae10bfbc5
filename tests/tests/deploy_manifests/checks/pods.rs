//! Schemas, the restricted Pod Security profile, resources, probes and the metrics port.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::settings::container_environment;
use crate::support::{
    KUBERNETES_VERSION, SERVICES, UID, all_containers, find, list, pod_templates, quantity, run_tool, service_of_image,
    strings, yaml_documents,
};

/// Validates a YAML stream against the Kubernetes schemas with kubernetes-validate, strictly (an
/// unknown field is an error), and checks that every object was checked, none skipped for want of
/// a schema. Returns the objects.
pub fn validate_strictly(what: &str, yaml: &str) -> Vec<Value> {
    let documents = yaml_documents(what, yaml);
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().expect("a temporary file");
    file.write_all(yaml.as_bytes()).expect("the temporary file is writable");
    let ran = run_tool(
        &format!("validating {what}"),
        Command::new("kubernetes-validate").args(["--strict", "-k", KUBERNETES_VERSION]).arg(file.path()),
        None,
        Duration::from_secs(120),
    );
    assert!(ran.success, "{what} does not validate against Kubernetes {KUBERNETES_VERSION}:\n{}", ran.report());
    let passed = ran.stdout.lines().filter(|l| l.contains(" passed for resource ")).count();
    assert_eq!(passed, documents.len(), "{what}: validated {passed} of {} objects:\n{}", documents.len(), ran.report());
    documents
}

// ---------------------------------------------------------------------------------------------
// Pod Security "restricted", resources, probes.

/// What keeps a pod spec from the restricted Pod Security profile (and from this project's
/// stricter rules: uid 10001, read-only root filesystem, no service account token, /tmp an emptyDir).
pub fn restricted_violations(workload: &str, spec: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let mut fail = |what: String| violations.push(format!("{workload}: {what}"));
    for flag in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[flag] == json!(true) {
            fail(format!("{flag} is on"));
        }
    }
    if !spec["securityContext"]["sysctls"].is_null() {
        fail("sets sysctls".to_owned());
    }
    if spec["automountServiceAccountToken"] != json!(false) {
        fail("mounts a service account token".to_owned());
    }
    if spec["serviceAccountName"].as_str().is_none_or(|s| s == "default") {
        fail("runs as the default service account".to_owned());
    }
    const VOLUME_TYPES: [&str; 8] =
        ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
    let mut empty_dirs = BTreeSet::new();
    for volume in list(&spec["volumes"]) {
        let object = volume.as_object().expect("a volume is a mapping");
        for key in object.keys().filter(|k| *k != "name") {
            if !VOLUME_TYPES.contains(&key.as_str()) {
                fail(format!("volume {} is a {key}", volume["name"]));
            }
        }
        if object.contains_key("emptyDir") {
            empty_dirs.insert(volume["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    let pod = &spec["securityContext"];
    for (key, wanted) in [("runAsNonRoot", json!(true)), ("runAsUser", json!(UID)), ("runAsGroup", json!(UID))] {
        if pod[key] != wanted {
            fail(format!("pod securityContext.{key} is {}, not {wanted}", pod[key]));
        }
    }
    if pod["seccompProfile"]["type"] != "RuntimeDefault" {
        fail("pod seccompProfile is not RuntimeDefault".to_owned());
    }
    for container in all_containers(spec) {
        let name = container["name"].as_str().unwrap_or("?");
        let mut fail = |what: String| violations.push(format!("{workload} container {name}: {what}"));
        let own = &container["securityContext"];
        let effective = |key: &str| if own[key].is_null() { pod[key].clone() } else { own[key].clone() };
        if effective("runAsNonRoot") != json!(true) {
            fail("runAsNonRoot is not true".to_owned());
        }
        if effective("runAsUser") != json!(UID) {
            fail(format!("runs as uid {}, not {UID}", effective("runAsUser")));
        }
        if effective("seccompProfile")["type"] != "RuntimeDefault" {
            fail("seccompProfile is not RuntimeDefault".to_owned());
        }
        if own["allowPrivilegeEscalation"] != json!(false) {
            fail("allowPrivilegeEscalation is not false".to_owned());
        }
        if own["privileged"] == json!(true) {
            fail("is privileged".to_owned());
        }
        if !strings(&own["capabilities"]["drop"]).contains(&"ALL") {
            fail("does not drop ALL capabilities".to_owned());
        }
        if !list(&own["capabilities"]["add"]).is_empty() {
            fail(format!("adds capabilities {}", own["capabilities"]["add"]));
        }
        if own["readOnlyRootFilesystem"] != json!(true) {
            fail("root filesystem is writable".to_owned());
        }
        if !own["procMount"].is_null() && own["procMount"] != "Default" {
            fail("procMount is not Default".to_owned());
        }
        if !own["seLinuxOptions"].is_null() || own["windowsOptions"]["hostProcess"] == json!(true) {
            fail("sets seLinuxOptions or hostProcess".to_owned());
        }
        for port in list(&container["ports"]) {
            if port["hostPort"].as_i64().unwrap_or(0) != 0 {
                fail(format!("uses hostPort {}", port["hostPort"]));
            }
        }
        let tmp = list(&container["volumeMounts"]).iter().find(|m| m["mountPath"] == "/tmp");
        if !tmp.is_some_and(|m| empty_dirs.contains(m["name"].as_str().unwrap_or_default())) {
            fail("/tmp is not an emptyDir".to_owned());
        }
    }
    violations
}

/// Every pod template of `objects` meets the restricted profile; returns the kinds of workload seen.
pub fn check_restricted(what: &str, objects: &[Value]) -> BTreeSet<String> {
    let templates = pod_templates(objects);
    let violations: Vec<String> =
        templates.iter().flat_map(|(workload, template)| restricted_violations(workload, &template["spec"])).collect();
    assert!(violations.is_empty(), "{what} breaks the restricted profile:\n{}", violations.join("\n"));
    templates.iter().map(|(w, _)| w.split('/').next().unwrap_or_default().to_owned()).collect()
}

/// Requests and limits of CPU and memory, each request within its limit.
pub fn resource_violations(workload: &str, container: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let name = container["name"].as_str().unwrap_or("?");
    for resource in ["cpu", "memory"] {
        let request = &container["resources"]["requests"][resource];
        let limit = &container["resources"]["limits"][resource];
        if request.is_null() || limit.is_null() {
            violations.push(format!("{workload} {name}: {resource} request or limit missing"));
        } else if quantity(request) > quantity(limit) {
            violations.push(format!("{workload} {name}: {resource} request {request} above its limit {limit}"));
        }
    }
    violations
}

/// Every container has resources; every Deployment runs one prfix service with startup, readiness
/// and liveness probes that are gRPC health on the service's own port, which it declares, and the
/// one-off workloads (Jobs, CronJobs) have no probe and serve no port.
pub fn check_resources_and_probes(what: &str, objects: &[Value]) {
    let mut violations = Vec::new();
    for (workload, template) in pod_templates(objects) {
        let spec = &template["spec"];
        for container in all_containers(spec) {
            violations.extend(resource_violations(&workload, container));
            if !workload.starts_with("Deployment/") {
                let name = container["name"].as_str().unwrap_or("?");
                for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                    if !container[probe].is_null() {
                        violations.push(format!("{workload} {name}: a one-off with a {probe}"));
                    }
                }
                if !list(&container["ports"]).is_empty() {
                    violations.push(format!("{workload} {name}: a one-off that declares ports"));
                }
                if container["restartPolicy"] == "Always" {
                    violations.push(format!("{workload} {name}: a sidecar"));
                }
            }
        }
        if !workload.starts_with("Deployment/") {
            continue;
        }
        for container in list(&spec["containers"]) {
            let name = container["name"].as_str().unwrap_or("?");
            let service = service_of_image(container["image"].as_str().unwrap_or_default())
                .unwrap_or_else(|| panic!("{what} {workload} {name}: not a prfix image"));
            let ports: Vec<i64> =
                list(&container["ports"]).iter().filter_map(|p| p["containerPort"].as_i64()).collect();
            if !ports.contains(&service.port) {
                violations.push(format!("{workload} {name}: does not declare port {}", service.port));
            }
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                if container[probe]["grpc"]["port"].as_i64() != Some(service.port) {
                    violations.push(format!("{workload} {name}: {probe} is not gRPC health on port {}", service.port));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{what}:\n{}", violations.join("\n"));
}

/// Every service serves Prometheus /metrics on its admin port: the container listens there on every
/// address (`PRFIX_<SERVICE>__ADMIN_LISTEN`, whose default is 127.0.0.1), declares it as the port
/// `metrics`, its Service exposes it, and its pods carry the `prometheus.io/*` annotations.
pub fn check_metrics(what: &str, objects: &[Value]) {
    for service in SERVICES {
        let workload = service.workload();
        let deployment = find(objects, "Deployment", &workload);
        let template = &deployment["spec"]["template"];
        let container = &list(&template["spec"]["containers"])[0];
        let port = list(&container["ports"]).iter().find(|p| p["name"] == "metrics");
        assert_eq!(
            port.and_then(|p| p["containerPort"].as_i64()),
            Some(service.metrics_port),
            "{what} {workload}: the container port `metrics`"
        );
        let environment = container_environment(objects, container);
        assert_eq!(
            environment.get(&format!("{}ADMIN_LISTEN", service.prefix())),
            Some(&format!("0.0.0.0:{}", service.metrics_port)),
            "{what} {workload}: /metrics listens on the pod's addresses"
        );
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{what} {workload}");
        assert_eq!(annotations["prometheus.io/port"], service.metrics_port.to_string(), "{what} {workload}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{what} {workload}");
        let svc = find(objects, "Service", &workload);
        let exposed = list(&svc["spec"]["ports"]).iter().find(|p| p["name"] == "metrics");
        assert!(
            exposed.is_some_and(|p| p["port"] == service.metrics_port && p["targetPort"] == "metrics"),
            "{what} {workload}: the Service exposes the metrics port: {}",
            svc["spec"]["ports"]
        );
    }
}
