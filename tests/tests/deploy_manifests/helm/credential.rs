//! The umbrella chart's credential hook: the Job that gives the agent its audit credential once the
//! gateway runs (charts/prfix/templates/agent-credential.yaml, charts/prfix/files/agent-credential.sh).
//! What it may do (its Role, its NetworkPolicy, its restricted pod), and its script run for real
//! against a live gateway and a fake Kubernetes API that grants what the rendered Role grants.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::spawn_app;
use serde_json::{Value, json};

use super::umbrella::{CREDENTIAL, CREDENTIAL_SECRET};
use super::{Charts, NAMESPACE, VALUES_FILES};
use crate::checks::{Peer, allowed, check_restricted, workloads};
use crate::support::{find, kind, list, run_tool, shellcheck, strings};

#[test]
fn the_credential_hook_may_touch_one_secret_and_the_agent_and_runs_restricted() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        let what = format!("the umbrella with {values}");
        let objects = charts.umbrella_objects(values, &[]);
        let job = find(&objects, "Job", CREDENTIAL);
        let kinds = check_restricted(&what, std::slice::from_ref(job));
        assert_eq!(kinds, BTreeSet::from(["Job".to_owned()]), "{what}: the hook's pod is checked");
        let spec = &job["spec"]["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Never", "{what}");
        assert!(job["spec"]["backoffLimit"].as_i64().is_some_and(|n| n <= 5), "{what}: bounded retries");
        assert!(job["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{what}: a deadline");

        // Its own identity, bound to a Role that names one Secret and the agent's Deployment.
        assert_eq!(spec["serviceAccountName"], CREDENTIAL, "{what}");
        assert_eq!(find(&objects, "ServiceAccount", CREDENTIAL)["automountServiceAccountToken"], false, "{what}");
        assert_eq!(
            find(&objects, "Role", CREDENTIAL)["rules"],
            json!([
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [CREDENTIAL_SECRET], "verbs": ["get", "patch"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["prfix-agent"], "verbs": ["patch"]}
            ]),
            "{what}: least privilege"
        );
        let binding = find(&objects, "RoleBinding", CREDENTIAL);
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CREDENTIAL})
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": CREDENTIAL, "namespace": NAMESPACE}])
        );
        assert!(!objects.iter().any(|o| kind(o).starts_with("Cluster")), "{what}: nothing cluster-wide");

        // One name throughout: the Secret the release makes, the one the Role names, the one the
        // script writes, the one the agent reads; and the Deployment it restarts is the agent's.
        let container = &list(&spec["containers"])[0];
        let env: BTreeMap<&str, &Value> =
            list(&container["env"]).iter().map(|v| (v["name"].as_str().unwrap_or_default(), v)).collect();
        assert_eq!(env["SECRET"]["value"], CREDENTIAL_SECRET, "{what}");
        assert_eq!(env["DEPLOYMENT"]["value"], "prfix-agent", "{what}");
        assert_eq!(env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace", "{what}");
        find(&objects, "Secret", CREDENTIAL_SECRET);
        let agent = &list(&find(&objects, "Deployment", "prfix-agent")["spec"]["template"]["spec"]["containers"])[0];
        let reads = list(&agent["env"]).iter().find(|v| v["name"] == "PRFIX_AGENT_AUDIT_CREDENTIAL").expect("read");
        assert_eq!(
            reads["valueFrom"]["secretKeyRef"],
            json!({"name": CREDENTIAL_SECRET, "key": env["SECRET_KEY"]["value"], "optional": true}),
            "{what}: the agent reads what the hook writes, and starts before it"
        );

        // The one token in the pod is projected, short-lived, into the hook's container; besides
        // it, the bootstrap admin password and the script, read-only.
        let volumes: BTreeMap<&str, &Value> =
            list(&spec["volumes"]).iter().map(|v| (v["name"].as_str().unwrap_or_default(), v)).collect();
        let sources = list(&volumes["kubernetes"]["projected"]["sources"]);
        let token = sources.iter().find(|s| !s["serviceAccountToken"].is_null()).expect("a projected token");
        let lifetime = token["serviceAccountToken"]["expirationSeconds"].as_i64().expect("expirationSeconds");
        assert!((600..=3600).contains(&lifetime), "{what}: a token for {lifetime} s");
        assert!(sources.iter().any(|s| s["configMap"]["name"] == "kube-root-ca.crt"), "{what}: the cluster's CA");
        let password = &list(&volumes["admin"]["projected"]["sources"])[0]["secret"];
        assert_eq!(password["name"], "prfix-gateway-keys", "{what}: the gateway's bootstrap password");
        assert_eq!(password["items"], json!([{"key": "bootstrap-admin-password", "path": "password"}]));
        assert_eq!(volumes["script"]["configMap"]["name"], CREDENTIAL, "{what}");
        assert_eq!(volumes.len(), 4, "{what}: tmp, kubernetes, admin, script: {volumes:?}");
        for mount in list(&container["volumeMounts"]).iter().filter(|m| m["name"] != "tmp") {
            assert_eq!(mount["readOnly"], true, "{what}: {mount}");
        }
        assert_eq!(strings(&container["command"]), ["/bin/sh", "/var/run/prfix/agent-credential.sh"], "{what}");

        // Its network: nothing in; out, DNS, the gateway's port and the API server's, nothing else.
        let policies: Vec<&Value> = objects.iter().filter(|o| kind(o) == "NetworkPolicy").collect();
        let all = workloads(&objects);
        let hook = all.iter().find(|w| w.name == CREDENTIAL).expect("the hook's workload");
        let pod = |n: &str| all.iter().find(|w| w.name == n).unwrap_or_else(|| panic!("no workload {n}"));
        for workload in all.iter().filter(|w| w.name != CREDENTIAL) {
            for port in [8080, 50051, 50052, 9090, 443] {
                assert!(
                    !allowed(&policies, Peer::Pod(workload), Peer::Pod(hook), "TCP", port),
                    "{what}: {}",
                    workload.name
                );
            }
        }
        assert!(!allowed(&policies, Peer::External, Peer::Pod(hook), "TCP", 8080), "{what}: reachable from outside");
        assert!(allowed(&policies, Peer::Pod(hook), Peer::Pod(pod("prfix-gateway")), "TCP", 8080), "{what}");
        for (callee, port) in [("prfix-agent", 50051), ("prfix-audit", 50052), ("prfix-gateway", 9090)] {
            assert!(
                !allowed(&policies, Peer::Pod(hook), Peer::Pod(pod(callee)), "TCP", port),
                "{what}: {callee}:{port}"
            );
        }
        for port in [443, 6443] {
            assert!(
                allowed(&policies, Peer::Pod(hook), Peer::External, "TCP", port),
                "{what}: the API server on {port}"
            );
        }
        for port in [5432, 6379, 11434, 80] {
            assert!(!allowed(&policies, Peer::Pod(hook), Peer::External, "TCP", port), "{what}: out on {port}");
        }
        let dns = (json!({"kubernetes.io/metadata.name": "kube-system"}), json!({"k8s-app": "kube-dns"}));
        assert!(allowed(&policies, Peer::Pod(hook), Peer::Foreign(&dns.0, &dns.1), "UDP", 53), "{what}: DNS");
    }
}

#[test]
fn the_credential_hook_script_passes_shellcheck() {
    shellcheck(&["charts/prfix/files/agent-credential.sh"]);
}

/// The fake Kubernetes API server: the one Secret and the one Deployment of the namespace, each
/// request authorized by the rendered Role's rules as RBAC would (a verb on a resource of a group,
/// limited to the names given), with the token the pod presents.
#[derive(Clone)]
struct Kubernetes {
    token: String,
    rules: Vec<Value>,
    state: Arc<Mutex<Cluster>>,
}

#[derive(Default)]
struct Cluster {
    /// The Secret's `data`, base64 values as the API stores them.
    secret: BTreeMap<String, String>,
    /// The annotations each patch of the Deployment's pod template set.
    restarts: Vec<Value>,
    /// Every request, `VERB path`.
    requests: Vec<String>,
}

fn status(code: StatusCode, message: String) -> Response {
    let body =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("a response")
}

fn object(value: Value) -> Response {
    // The API server indents its answers to curl.
    let text = serde_json::to_string_pretty(&value).expect("JSON");
    Response::builder().header("content-type", "application/json").body(Body::from(text)).expect("a response")
}

async fn serve(State(api): State<Kubernetes>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    api.state.lock().expect("the fake's state").requests.push(format!("{method} {path}"));
    let bearer = format!("Bearer {}", api.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized".to_owned());
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", "apps", "v1", rest @ ..] => ("apps", rest),
        _ => return status(StatusCode::NOT_FOUND, format!("no API at {path}")),
    };
    let ["namespaces", namespace, resource, name] = rest else {
        return status(StatusCode::FORBIDDEN, format!("{path}: not one named object of a namespace"));
    };
    let verb = match method {
        Method::GET => "get",
        Method::PATCH => "patch",
        Method::PUT => "update",
        Method::POST => "create",
        Method::DELETE => "delete",
        _ => "other",
    };
    let granted = *namespace == NAMESPACE
        && api.rules.iter().any(|rule| {
            strings(&rule["apiGroups"]).contains(&group)
                && strings(&rule["resources"]).contains(resource)
                && strings(&rule["verbs"]).contains(&verb)
                && (list(&rule["resourceNames"]).is_empty() || strings(&rule["resourceNames"]).contains(name))
        });
    if !granted {
        return status(StatusCode::FORBIDDEN, format!("cannot {verb} {resource} {name} in {namespace}"));
    }
    if verb == "patch"
        && headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/merge-patch+json")
    {
        return status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the patch is not a JSON merge patch".to_owned());
    }
    let patch: Value = if verb == "patch" {
        match serde_json::from_slice(&body) {
            Ok(patch) => patch,
            Err(error) => return status(StatusCode::BAD_REQUEST, format!("the patch is not JSON: {error}")),
        }
    } else {
        Value::Null
    };
    let mut cluster = api.state.lock().expect("the fake's state");
    match (*resource, verb) {
        ("secrets", "get") => {}
        ("secrets", "patch") => {
            let only_string_data = patch.as_object().is_some_and(|o| o.keys().all(|k| k == "stringData"));
            let fields = patch.get("stringData").and_then(Value::as_object).filter(|_| only_string_data);
            let Some(fields) = fields else {
                return status(StatusCode::UNPROCESSABLE_ENTITY, format!("unexpected patch of the Secret: {patch}"));
            };
            for (key, value) in fields {
                let Some(text) = value.as_str() else {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, format!("stringData.{key} is not a string"));
                };
                cluster.secret.insert(key.clone(), BASE64.encode(text));
            }
        }
        ("deployments", "patch") => {
            let annotations = &patch["spec"]["template"]["metadata"]["annotations"];
            let only = json!({"spec": {"template": {"metadata": {"annotations": annotations}}}});
            if !annotations.is_object() || patch != only {
                return status(StatusCode::UNPROCESSABLE_ENTITY, format!("not a restart: {patch}"));
            }
            cluster.restarts.push(annotations.clone());
            return object(json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": name}}));
        }
        _ => return status(StatusCode::METHOD_NOT_ALLOWED, format!("{verb} {resource} is not served here")),
    }
    object(json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": cluster.secret,
    }))
}

#[tokio::test]
async fn the_credential_hook_gives_the_agent_a_working_key_once_and_replaces_one_the_gateway_refuses() {
    let objects = tokio::task::spawn_blocking(|| Charts::prepare().umbrella_objects("values.production.yaml", &[]))
        .await
        .expect("rendering the umbrella");
    let script = find(&objects, "ConfigMap", CREDENTIAL)["data"]["agent-credential.sh"]
        .as_str()
        .expect("the script in its ConfigMap")
        .to_owned();
    let job = find(&objects, "Job", CREDENTIAL);
    let container = &list(&job["spec"]["template"]["spec"]["containers"])[0];
    let key = list(&container["env"]).iter().find(|v| v["name"] == "SECRET_KEY").expect("SECRET_KEY")["value"]
        .as_str()
        .expect("a key")
        .to_owned();

    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubernetes_dir = dir.path().join("kubernetes");
    std::fs::create_dir(&kubernetes_dir).expect("writable");
    let token = format!("token-{}", uuid::Uuid::new_v4());
    std::fs::write(kubernetes_dir.join("token"), &token).expect("writable");
    // The fake speaks plain HTTP: curl reads no CA for it, but the file is where the pod has it.
    std::fs::write(kubernetes_dir.join("ca.crt"), "").expect("writable");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, ADMIN_PASSWORD).expect("writable");
    let script_file = dir.path().join("agent-credential.sh");
    std::fs::write(&script_file, &script).expect("writable");

    let api = Kubernetes {
        token,
        rules: list(&find(&objects, "Role", CREDENTIAL)["rules"]).to_vec(),
        state: Arc::new(Mutex::new(Cluster::default())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let api_url = format!("http://{}", listener.local_addr().expect("bound"));
    let router = axum::Router::new().fallback(serve).with_state(api.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    // The Job's environment as rendered, the cluster's parts pointed at this test's.
    let mut environment: BTreeMap<String, String> = list(&container["env"])
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].as_str()?.to_owned())))
        .collect();
    environment.insert("NAMESPACE".into(), NAMESPACE.into());
    environment.insert("GATEWAY".into(), format!("http://{}", app.gateway.addr));
    environment.insert("KUBERNETES_API".into(), api_url);
    environment.insert("KUBERNETES_DIR".into(), kubernetes_dir.display().to_string());
    environment.insert("PASSWORD_FILE".into(), password_file.display().to_string());
    environment.insert("HOME".into(), dir.path().display().to_string());
    let run = move |overrides: Vec<(&'static str, String)>| {
        let (script_file, mut environment) = (script_file.clone(), environment.clone());
        environment.extend(overrides.into_iter().map(|(k, v)| (k.to_owned(), v)));
        async move {
            tokio::task::spawn_blocking(move || {
                let mut command = Command::new("sh");
                command.arg(&script_file).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
                command.envs(&environment);
                run_tool("the credential hook", &mut command, None, Duration::from_secs(60))
            })
            .await
            .expect("the hook's run")
        }
    };
    let stored = |api: &Kubernetes| -> Option<String> {
        let cluster = api.state.lock().expect("the fake's state");
        let encoded = cluster.secret.get(&key)?;
        Some(String::from_utf8(BASE64.decode(encoded).expect("base64")).expect("UTF-8"))
    };
    let http = reqwest::Client::new();
    let gateway = format!("http://{}", app.gateway.addr);
    let whoami = |bearer: String| {
        let (http, url) = (http.clone(), format!("{gateway}/v1/auth/whoami"));
        async move {
            let response = http.get(url).bearer_auth(bearer).send().await.expect("whoami");
            assert!(response.status().is_success(), "the key is refused: {}", response.status());
            response.json::<Value>().await.expect("JSON")
        }
    };

    // First install: a key of the service user, in the Secret, and the agent restarted once.
    let ran = run(vec![]).await;
    assert!(ran.success, "the hook failed:\n{}", ran.report());
    let first = stored(&api).expect("the credential is written");
    assert!(first.starts_with("prfix_"), "an API key: {first}");
    let me = whoami(first.clone()).await;
    assert_eq!(me["roles"], json!(["ROLE_SERVICE"]), "a service credential: {me}");
    let restarts = api.state.lock().expect("state").restarts.clone();
    assert_eq!(restarts.len(), 1, "the agent is restarted to read it");
    assert!(restarts[0]["prfix.dev/audit-credential-at"].is_string(), "{restarts:?}");

    // An upgrade: the key works, so nothing changes; only the Secret is read.
    api.state.lock().expect("state").requests.clear();
    let ran = run(vec![]).await;
    assert!(ran.success && ran.stdout.contains("kept"), "{}", ran.report());
    assert_eq!(stored(&api), Some(first.clone()), "the key is kept");
    {
        let cluster = api.state.lock().expect("state");
        assert_eq!(cluster.requests, [format!("GET /api/v1/namespaces/{NAMESPACE}/secrets/{CREDENTIAL_SECRET}")]);
        assert_eq!(cluster.restarts.len(), 1, "no restart for a key kept");
    }

    // A key the gateway refuses (revoked, or a restored database): a new one for the same user.
    api.state.lock().expect("state").secret.insert(key.clone(), BASE64.encode("prfix_revoked"));
    let ran = run(vec![]).await;
    assert!(ran.success && ran.stdout.contains("refused"), "{}", ran.report());
    let second = stored(&api).expect("written again");
    assert!(second != first && second != "prfix_revoked", "a new key");
    assert_eq!(whoami(second).await["roles"], json!(["ROLE_SERVICE"]));
    assert_eq!(api.state.lock().expect("state").restarts.len(), 2, "the agent restarted again");

    // Without the Role's grant, or without a gateway, it fails and says why.
    let ran = run(vec![("SECRET", "prfix-gateway-keys".to_owned())]).await;
    assert!(
        !ran.success && ran.stderr.contains("reading the Secret prfix-gateway-keys failed (HTTP 403)"),
        "{}",
        ran.report()
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("bound");
    let ran = run(vec![("GATEWAY", format!("http://{closed}")), ("WAIT_SECONDS", "1".to_owned())]).await;
    assert!(!ran.success && ran.stderr.contains("did not answer within 1 s"), "{}", ran.report());
    let ran = run(vec![("PASSWORD_FILE", dir.path().join("script-missing").display().to_string())]).await;
    // The key from before is still accepted: no password is needed, nothing is made.
    assert!(ran.success && ran.stdout.contains("kept"), "{}", ran.report());
}
