//! `docker/compose.yaml` and its helper scripts (`docker/secrets.sh`, `docker/provision.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app;
use serde_json::{Value, json};

use crate::support::{
    SERVICES, host_port, list, load_settings, read, required_secrets, run_tool, shellcheck, strings, workspace_root,
    yaml_documents,
};

pub fn compose() -> Value {
    let mut documents = yaml_documents("docker/compose.yaml", &read("docker/compose.yaml"));
    assert_eq!(documents.len(), 1, "docker/compose.yaml is one document");
    documents.remove(0)
}

pub fn compose_services(compose: &Value) -> Vec<(&String, &Value)> {
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
            let port = crate::support::service(target).port;
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
        let prfix = crate::support::service(target);
        assert_eq!(environment[&format!("{}LISTEN", prfix.prefix())], format!("0.0.0.0:{}", prfix.port), "{name}");
        // /metrics on the backend network (the default admin address is 127.0.0.1), not published.
        assert_eq!(
            environment.get(&format!("{}ADMIN_LISTEN", prfix.prefix())),
            Some(&format!("0.0.0.0:{}", prfix.metrics_port)),
            "{name}: metrics on the backend network"
        );
        let exposed: Vec<String> =
            list(&service["expose"]).iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect();
        assert!(
            exposed.contains(&prfix.metrics_port.to_string()),
            "{name}: exposes {}: {exposed:?}",
            prfix.metrics_port
        );
        let published = strings(&service["ports"]);
        let expected: &[&str] = if target == "gateway" { &["127.0.0.1:8080:8080"] } else { &[] };
        assert_eq!(published, expected, "{name}: only the gateway's port is published, on 127.0.0.1");
        for (variable, url) in &environment {
            if variable.ends_with("_URL") && url.starts_with("http") {
                let (host, port) = host_port(url);
                let listens = match host.as_str() {
                    "ollama" => port == 11434,
                    other => SERVICES.iter().any(|s| s.name == other && s.port == port),
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
    shellcheck(&["docker/secrets.sh", "docker/provision.sh"]);
}
