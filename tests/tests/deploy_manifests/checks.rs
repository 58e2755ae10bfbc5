//! Checks of rendered Kubernetes objects, the same for the kustomize overlays (`k8s/`) and the Helm
//! charts (`charts/`): strict schema validation, the restricted Pod Security profile, resources and
//! probes, the metrics port, the settings and secrets each container is given, and who may reach
//! whom under the NetworkPolicies.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    KUBERNETES_VERSION, SECRET_VARIABLES, SERVICES, Service, UID, all_containers, find, host_port, kind, list,
    load_settings, pod_templates, quantity, required_secrets, required_urls, run_tool, service, service_of_image,
    strings, yaml_documents,
};

// ---------------------------------------------------------------------------------------------
// Schemas.

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

// ---------------------------------------------------------------------------------------------
// The settings and secrets each container is given.

/// The environment a container sees (ConfigMaps it imports, then its own variables), with
/// placeholders for values from Secrets.
pub fn container_environment(objects: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    for source in list(&container["envFrom"]) {
        let config_map = source["configMapRef"]["name"].as_str().expect("envFrom a ConfigMap");
        for (key, value) in find(objects, "ConfigMap", config_map)["data"].as_object().expect("data") {
            environment.insert(key.clone(), value.as_str().expect("a string").to_owned());
        }
    }
    for variable in list(&container["env"]) {
        let name = variable["name"].as_str().expect("a named variable").to_owned();
        let value = match (&variable["value"], &variable["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) => v.clone(),
            (_, reference) if reference.is_object() => match name.as_str() {
                "PRFIX_DATABASE_URL" => "postgres://from-a-secret:5432/prfix".to_owned(),
                "PRFIX_REDIS_URL" => "redis://from-a-secret:6379".to_owned(),
                other if SECRET_VARIABLES.contains(&other) => "from a secret".to_owned(),
                other => panic!("{other} comes from a Secret but is no secret setting"),
            },
            _ => panic!("variable {name}: neither a value nor a secretKeyRef"),
        };
        environment.insert(name, value);
    }
    environment
}

/// The Secret keys a pod's volumes mount, by volume name: `(Secret, Some(file))` per item, or
/// `(Secret, None)` for a whole Secret. Secret volumes and the secret sources of projected ones.
fn secret_volumes(spec: &Value) -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let mut volumes = BTreeMap::new();
    for volume in list(&spec["volumes"]) {
        let name = volume["name"].as_str().unwrap_or_default().to_owned();
        let mut sources: Vec<&Value> = Vec::new();
        if volume["secret"].is_object() {
            sources.push(&volume["secret"]);
        }
        for source in list(&volume["projected"]["sources"]) {
            if source["secret"].is_object() {
                sources.push(&source["secret"]);
            }
        }
        if sources.is_empty() {
            continue;
        }
        let mut files = Vec::new();
        for source in sources {
            let secret = source["secretName"].as_str().or(source["name"].as_str()).unwrap_or_default().to_owned();
            let items = list(&source["items"]);
            if items.is_empty() {
                files.push((secret.clone(), None));
            }
            for item in items {
                files.push((secret.clone(), item["path"].as_str().map(str::to_owned)));
            }
        }
        volumes.insert(name, files);
    }
    volumes
}

/// What a prfix container does in its pod.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Serves (a Deployment's container).
    Serve,
    /// `--migrate`: applies its schema's migrations and exits.
    Migrate,
}

/// The role of a container running a prfix image, from its arguments; `None` for other images.
pub fn role(container: &Value) -> Option<(Service, Role)> {
    let service = service_of_image(container["image"].as_str().unwrap_or_default())?;
    let args = strings(&container["args"]);
    match args.as_slice() {
        [] => Some((service, Role::Serve)),
        ["--migrate"] => Some((service, Role::Migrate)),
        other => panic!("{}: unexpected arguments {other:?}", container["name"]),
    }
}

/// Every prfix container's settings load with its service's own `Settings`, and it is given what
/// its role needs: a serving one its secrets (a `_FILE` naming a file of a mounted Secret), its
/// listen address on the port its probes and Service use, and URLs that name existing Services on
/// their ports; a migrating one the database URL. Returns the number of containers checked.
pub fn check_settings_accepted(what: &str, objects: &[Value]) -> usize {
    let mut checked = 0;
    for (workload, template) in pod_templates(objects) {
        let spec = &template["spec"];
        let volumes = secret_volumes(spec);
        for container in all_containers(spec) {
            let Some((service, role)) = role(container) else { continue };
            let name = container["name"].as_str().unwrap_or("?");
            let what = format!("{what} {workload} {name}");
            let environment = container_environment(objects, container);
            load_settings(service.name, &environment).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            assert!(environment.contains_key("PRFIX_DATABASE_URL"), "{what}: no database URL");
            checked += 1;
            if role == Role::Migrate {
                continue;
            }

            // Each secret the service needs is given, and a `_FILE` names a file of a mounted Secret.
            for secret in required_secrets(service.name) {
                let file = format!("{secret}_FILE");
                assert!(
                    environment.contains_key(*secret) || environment.contains_key(&file),
                    "{what}: {secret} is not given"
                );
            }
            for secret in SECRET_VARIABLES {
                let Some(path) = environment.get(&format!("{secret}_FILE")) else { continue };
                let (dir, file) = path.rsplit_once('/').expect("an absolute path");
                let mount = list(&container["volumeMounts"])
                    .iter()
                    .find(|m| m["mountPath"] == dir)
                    .unwrap_or_else(|| panic!("{what}: nothing is mounted at {dir} for {secret}_FILE"));
                let files = volumes
                    .get(mount["name"].as_str().unwrap_or_default())
                    .unwrap_or_else(|| panic!("{what}: {dir} is not a Secret volume"));
                assert!(
                    files.iter().any(|(_, f)| f.as_deref().is_none_or(|f| f == file)),
                    "{what}: {path} is not among {files:?}"
                );
            }

            // It listens on its declared port, and its URLs name Services that exist, on their ports.
            let listen = environment.get(&format!("{}LISTEN", service.prefix()));
            assert_eq!(
                listen,
                Some(&format!("0.0.0.0:{}", service.port)),
                "{what}: listens where its probes and Service look"
            );
            for variable in required_urls(service.name) {
                let url = environment.get(*variable).unwrap_or_else(|| panic!("{what}: {variable} is not set"));
                let (host, port) = host_port(url);
                let target = find(objects, "Service", &host);
                assert!(
                    list(&target["spec"]["ports"]).iter().any(|p| p["port"] == port),
                    "{what}: {variable}={url}: Service {host} has no port {port}"
                );
            }
        }
    }
    checked
}

/// The Secrets the pod templates read, by name (env `secretKeyRef`, Secret and projected volumes);
/// no container imports a whole Secret (`envFrom`).
pub fn secret_references(what: &str, objects: &[Value]) -> BTreeSet<String> {
    let mut referenced = BTreeSet::new();
    for (workload, template) in pod_templates(objects) {
        let spec = &template["spec"];
        for files in secret_volumes(spec).into_values() {
            referenced.extend(files.into_iter().map(|(secret, _)| secret));
        }
        for container in all_containers(spec) {
            for variable in list(&container["env"]) {
                if let Some(secret) = variable["valueFrom"]["secretKeyRef"]["name"].as_str() {
                    referenced.insert(secret.to_owned());
                }
            }
            for source in list(&container["envFrom"]) {
                assert!(source["secretRef"].is_null(), "{what} {workload}: envFrom a whole Secret");
            }
        }
    }
    referenced
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicies.

/// The labels of the namespace and pods Prometheus runs as (the Prometheus Operator's, in the
/// namespace `monitoring`): what both the overlays and the charts admit to the metrics ports.
pub fn monitoring() -> (Value, Value) {
    (json!({"kubernetes.io/metadata.name": "monitoring"}), json!({"app.kubernetes.io/name": "prometheus"}))
}

/// A workload of the namespace and its pods' labels.
pub struct Workload {
    pub name: String,
    pub labels: Value,
}

pub fn workloads(objects: &[Value]) -> Vec<Workload> {
    pod_templates(objects)
        .into_iter()
        .map(|(workload, template)| Workload {
            name: workload.split('/').nth(1).unwrap_or_default().to_owned(),
            labels: template["metadata"]["labels"].clone(),
        })
        .collect()
}

/// Whether a label selector selects `labels` (`{}` selects everything).
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let matches = selector["matchLabels"].as_object().is_none_or(|wanted| wanted.iter().all(|(k, v)| &labels[k] == v));
    let expressions = list(&selector["matchExpressions"]).iter().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values = strings(&e["values"]);
        let value = labels[key].as_str();
        match e["operator"].as_str().unwrap_or_default() {
            "In" => value.is_some_and(|v| values.contains(&v)),
            "NotIn" => value.is_none_or(|v| !values.contains(&v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown selector operator {other}"),
        }
    });
    matches && expressions
}

/// Where a connection comes from or goes to, as a NetworkPolicy peer may name it.
#[derive(Clone, Copy)]
pub enum Peer<'a> {
    /// A pod of this namespace.
    Pod(&'a Workload),
    /// A pod of another namespace: the namespace's labels and the pod's.
    Foreign(&'a Value, &'a Value),
    /// An address outside the cluster.
    External,
}

/// Whether one `from`/`to` peer list admits `peer` (absent or empty: everyone). An ipBlock is taken
/// to admit any address, pods' included.
fn peers_admit(peers: &Value, peer: Peer) -> bool {
    let peers = list(peers);
    if peers.is_empty() {
        return true;
    }
    peers.iter().any(|p| {
        if !p["ipBlock"].is_null() {
            return true;
        }
        match peer {
            Peer::Pod(workload) => p["namespaceSelector"].is_null() && selects(&p["podSelector"], &workload.labels),
            Peer::Foreign(namespace, pod) => {
                !p["namespaceSelector"].is_null()
                    && selects(&p["namespaceSelector"], namespace)
                    && selects(&p["podSelector"], pod)
            }
            Peer::External => false,
        }
    })
}

/// Whether a rule's ports admit `protocol`/`port` (absent: every port).
fn ports_admit(ports: &Value, protocol: &str, port: i64) -> bool {
    let ports = list(ports);
    ports.is_empty()
        || ports.iter().any(|p| p["protocol"].as_str().unwrap_or("TCP") == protocol && p["port"].as_i64() == Some(port))
}

/// The policies that govern `pod` in `direction` (`Ingress` or `Egress`).
fn governing<'a>(policies: &[&'a Value], pod: &Workload, direction: &str) -> Vec<&'a Value> {
    policies
        .iter()
        .filter(|p| strings(&p["spec"]["policyTypes"]).contains(&direction))
        .filter(|p| selects(&p["spec"]["podSelector"], &pod.labels))
        .copied()
        .collect()
}

/// Whether the policies of one direction let `pod` talk with `other` on `protocol`/`port`:
/// `Egress` (pod sends) or `Ingress` (pod receives).
pub fn direction_allows(
    policies: &[&Value],
    pod: &Workload,
    direction: &str,
    other: Peer,
    protocol: &str,
    port: i64,
) -> bool {
    let (rules, peers) = if direction == "Egress" { ("egress", "to") } else { ("ingress", "from") };
    let governing = governing(policies, pod, direction);
    // Not selected by any policy of this direction: open.
    governing.is_empty()
        || governing.iter().any(|p| {
            list(&p["spec"][rules])
                .iter()
                .any(|r| peers_admit(&r[peers], other) && ports_admit(&r["ports"], protocol, port))
        })
}

/// Whether `from` may open `protocol`/`port` to `to`: the sender's egress and, for a pod of this
/// namespace, the receiver's ingress both allow it.
pub fn allowed(policies: &[&Value], from: Peer, to: Peer, protocol: &str, port: i64) -> bool {
    let egress = match from {
        Peer::Pod(pod) => direction_allows(policies, pod, "Egress", to, protocol, port),
        _ => true,
    };
    let ingress = match to {
        Peer::Pod(pod) => direction_allows(policies, pod, "Ingress", from, protocol, port),
        _ => true,
    };
    egress && ingress
}

/// Who may reach whom. The services are the Deployments `prfix-gateway`, `prfix-agent` and
/// `prfix-audit`; every other workload (migration, backups) is a one-off that serves nobody, calls
/// no service and reaches Postgres and DNS only. Checked:
/// - every pod is governed by policies in both directions (so what no rule names is refused);
/// - from outside the namespace (an address outside the cluster, or any pod of another namespace)
///   only the gateway is reachable, on its gRPC port only;
/// - each service's gRPC port admits only its callers: the agent the gateway, audit the gateway and
///   the agent, and the calls the system makes go through (gateway→agent, gateway→audit,
///   agent→audit, and agent and audit→gateway for the JWKS and the agent's audit appends);
/// - each metrics port admits only the monitoring pods: not another namespace's pod of the same
///   name, not another pod of the monitoring namespace, not the workloads of this one;
/// - out: DNS for every pod; Postgres for all, Redis for the services, Ollama for the agent alone,
///   nothing else (no 443).
pub fn check_reachability(what: &str, objects: &[Value]) {
    let policies: Vec<&Value> = objects.iter().filter(|o| kind(o) == "NetworkPolicy").collect();
    let workloads = workloads(objects);
    let by_name = |n: &str| workloads.iter().find(|w| w.name == n).unwrap_or_else(|| panic!("{what}: no workload {n}"));
    let is_service = |w: &Workload| SERVICES.iter().any(|s| s.workload() == w.name);
    let one_offs: Vec<&Workload> = workloads.iter().filter(|w| !is_service(w)).collect();
    assert!(!one_offs.is_empty(), "{what}: a migration workload at least");

    for workload in &workloads {
        for direction in ["Ingress", "Egress"] {
            assert!(
                !governing(&policies, workload, direction).is_empty(),
                "{what}: no NetworkPolicy governs {}'s {direction}: it would be open",
                workload.name
            );
        }
    }

    let (monitoring_namespace, prometheus) = monitoring();
    let elsewhere = json!({"kubernetes.io/metadata.name": "elsewhere"});
    let nobody = json!({});
    let outside = [
        Peer::External,
        Peer::Foreign(&elsewhere, &nobody),
        Peer::Foreign(&elsewhere, &prometheus),
        Peer::Foreign(&monitoring_namespace, &nobody),
    ];
    let mut ports: Vec<i64> = SERVICES.iter().flat_map(|s| [s.port, s.metrics_port]).collect();
    ports.extend([5432, 6379]);

    // From outside the namespace: only the gateway, on its port.
    for workload in &workloads {
        for peer in outside {
            for port in &ports {
                let open = allowed(&policies, peer, Peer::Pod(workload), "TCP", *port);
                let expected = workload.name == "prfix-gateway" && *port == service("gateway").port;
                assert_eq!(open, expected, "{what}: {} port {port} from outside the namespace", workload.name);
            }
        }
    }

    // Inside: each service admits only its callers, on its port...
    for service in SERVICES {
        let target = service.workload();
        let admitted: BTreeSet<&str> = workloads
            .iter()
            .filter(|w| w.name != target)
            .filter(|w| direction_allows(&policies, by_name(&target), "Ingress", Peer::Pod(w), "TCP", service.port))
            .map(|w| w.name.as_str())
            .collect();
        let expected: BTreeSet<&str> = match service.name {
            // The public endpoint admits anyone; the one-offs' own egress keeps them from it.
            "gateway" => workloads.iter().map(|w| w.name.as_str()).filter(|n| *n != target).collect(),
            "agent" => BTreeSet::from(["prfix-gateway"]),
            _ => BTreeSet::from(["prfix-gateway", "prfix-agent"]),
        };
        assert_eq!(admitted, expected, "{what}: whom {target} admits");
    }
    for one_off in &one_offs {
        for workload in workloads.iter().filter(|w| w.name != one_off.name) {
            for port in &ports {
                let open = direction_allows(&policies, one_off, "Ingress", Peer::Pod(workload), "TCP", *port);
                assert!(!open, "{what}: {} admits {} on {port}", one_off.name, workload.name);
            }
        }
    }
    // ...and the calls the system makes go through.
    for (from, to) in
        [("gateway", "agent"), ("gateway", "audit"), ("agent", "audit"), ("agent", "gateway"), ("audit", "gateway")]
    {
        let (from, to) = (service(from), service(to));
        let path = allowed(
            &policies,
            Peer::Pod(by_name(&from.workload())),
            Peer::Pod(by_name(&to.workload())),
            "TCP",
            to.port,
        );
        assert!(path, "{what}: {} cannot call {}", from.workload(), to.workload());
    }
    for one_off in &one_offs {
        for service in SERVICES {
            let path =
                allowed(&policies, Peer::Pod(one_off), Peer::Pod(by_name(&service.workload())), "TCP", service.port);
            assert!(!path, "{what}: {} can call {}", one_off.name, service.workload());
        }
    }

    // Metrics: the monitoring pods alone.
    for service in SERVICES {
        let target = by_name(&service.workload());
        assert!(
            allowed(
                &policies,
                Peer::Foreign(&monitoring_namespace, &prometheus),
                Peer::Pod(target),
                "TCP",
                service.metrics_port
            ),
            "{what}: Prometheus cannot scrape {}",
            target.name
        );
        for workload in workloads.iter().filter(|w| w.name != target.name) {
            let open = allowed(&policies, Peer::Pod(workload), Peer::Pod(target), "TCP", service.metrics_port);
            assert!(!open, "{what}: {} reaches {}'s metrics", workload.name, target.name);
        }
    }

    // Out: DNS for all, the stores, Ollama for the agent alone, nothing else.
    let kube_system = json!({"kubernetes.io/metadata.name": "kube-system"});
    let kube_dns = json!({"k8s-app": "kube-dns"});
    for workload in &workloads {
        let pod = Peer::Pod(workload);
        for protocol in ["UDP", "TCP"] {
            assert!(
                allowed(&policies, pod, Peer::Foreign(&kube_system, &kube_dns), protocol, 53),
                "{what}: {} resolves names over {protocol}",
                workload.name
            );
        }
        assert!(allowed(&policies, pod, Peer::External, "TCP", 5432), "{what}: {} reaches Postgres", workload.name);
        let redis = allowed(&policies, pod, Peer::External, "TCP", 6379);
        assert_eq!(redis, is_service(workload), "{what}: {} and Redis", workload.name);
        let ollama = allowed(&policies, pod, Peer::External, "TCP", 11434);
        assert_eq!(ollama, workload.name == "prfix-agent", "{what}: {} and Ollama", workload.name);
        assert!(!allowed(&policies, pod, Peer::External, "TCP", 443), "{what}: {} reaches anything", workload.name);
    }
}
