//! The umbrella chart `charts/prfix`: the three service charts as `file://` dependencies of one
//! release, the gateway's optional Ingress and Gateway API HTTPRoute, and the order `helm install`
//! runs things in. The credential hook itself is in `credential`.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{CHARTS, Charts, NAMESPACE, UMBRELLA, VALUES_FILES, annotation};
use crate::checks::{
    check_metrics, check_reachability, check_resources_and_probes, check_restricted, check_settings_accepted,
    secret_references, validate_strictly,
};
use crate::support::{KUBERNETES_VERSION, Ran, find, kind, list, name, read, run_tool, workspace_root, yaml_documents};

/// The umbrella's release name in these tests (any name gives the same object names).
const RELEASE: &str = "prfix";
/// The gateway exposed both ways: an Ingress with TLS and an HTTPRoute attached to a Gateway.
pub(super) const EXPOSED: [&str; 8] = [
    "--set",
    "prfix-gateway.ingress.enabled=true,prfix-gateway.ingress.host=prfix.example.com",
    "--set",
    "prfix-gateway.ingress.className=nginx,prfix-gateway.ingress.tls.secretName=prfix-tls",
    "--set",
    "prfix-gateway.httpRoute.enabled=true",
    "--set-json",
    r#"prfix-gateway.httpRoute={"enabled":true,"parentRefs":[{"name":"public","namespace":"gateway-system","sectionName":"https"}],"hostnames":["prfix.example.com"]}"#,
];
/// The objects the umbrella adds to the three releases': the credential hook and its Secret.
pub(super) const CREDENTIAL: &str = "prfix-agent-credential";
pub(super) const CREDENTIAL_SECRET: &str = "prfix-agent-audit";

impl Charts {
    /// `helm template` of the umbrella as release `prfix`, with its values file and `extra` flags.
    pub(super) fn umbrella(&self, values: &str, extra: &[&str]) -> Ran {
        let values = format!("{UMBRELLA}/{values}");
        let mut args = vec![
            "template",
            RELEASE,
            UMBRELLA,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBERNETES_VERSION,
            "--values",
            values.as_str(),
        ];
        args.extend(extra);
        self.run(&format!("helm template {UMBRELLA} with {values} {extra:?}"), &args)
    }

    pub(super) fn umbrella_objects(&self, values: &str, extra: &[&str]) -> Vec<Value> {
        let ran = self.umbrella(values, extra);
        assert!(ran.success, "helm template {UMBRELLA} -f {values} {extra:?}:\n{}", ran.report());
        yaml_documents(&format!("{UMBRELLA} with {values}"), &ran.stdout)
    }
}

#[test]
fn the_umbrella_chart_builds_its_dependencies_from_this_checkout_and_passes_helm_lint_strict() {
    let charts = Charts::prepare();
    let manifest = &yaml_documents("charts/prfix/Chart.yaml", &read("charts/prfix/Chart.yaml"))[0];
    assert_eq!(manifest["type"], "application");
    assert_eq!(manifest["appVersion"], env!("CARGO_PKG_VERSION"), "appVersion is the workspace's version");
    // Every dependency is a chart of this checkout, at its version: `helm dependency build` packs
    // them without a repository or a network (Charts::prepare ran it with an empty helm home).
    let mut named = BTreeSet::new();
    for dependency in list(&manifest["dependencies"]) {
        let chart = dependency["name"].as_str().expect("a dependency's name");
        assert_eq!(dependency["repository"], format!("file://../{chart}"), "{chart}: from this checkout");
        let own = &yaml_documents(chart, &read(&format!("charts/{chart}/Chart.yaml")))[0];
        assert_eq!(dependency["version"], own["version"], "{chart}: the version the chart has");
        assert!(dependency["condition"].is_null(), "{chart}: always installed");
        let packed =
            charts.chart(UMBRELLA).join(format!("charts/{chart}-{}.tgz", own["version"].as_str().unwrap_or("?")));
        assert!(packed.is_file(), "{chart} is packed into {}", packed.display());
        named.insert(chart.to_owned());
    }
    let expected: BTreeSet<String> = CHARTS.iter().map(|c| (*c).to_owned()).chain(["prfix-lib".to_owned()]).collect();
    assert_eq!(named, expected, "the three services and the library");
    let lock = &yaml_documents("charts/prfix/Chart.lock", &read("charts/prfix/Chart.lock"))[0];
    let locked: BTreeSet<String> =
        list(&lock["dependencies"]).iter().filter_map(|d| d["name"].as_str().map(str::to_owned)).collect();
    assert_eq!(locked, expected, "Chart.lock is committed and current");

    // Production is each service's values.production.yaml, under its chart's name, unchanged.
    let production = &yaml_documents("prfix", &read("charts/prfix/values.production.yaml"))[0];
    for chart in CHARTS {
        let own = &yaml_documents(chart, &read(&format!("charts/{chart}/values.production.yaml")))[0];
        assert_eq!(&production[chart], own, "charts/prfix/values.production.yaml's {chart} is {chart}'s own");
    }

    for (values, extra) in
        [("values.yaml", &[][..]), ("values.production.yaml", &[][..]), ("values.yaml", &EXPOSED[..])]
    {
        let file = format!("{UMBRELLA}/{values}");
        let mut args = vec![
            "lint",
            "--strict",
            "--kube-version",
            KUBERNETES_VERSION,
            UMBRELLA,
            "--namespace",
            NAMESPACE,
            "--values",
            file.as_str(),
        ];
        args.extend(extra);
        let ran = charts.run("helm lint prfix", &args);
        assert!(ran.success, "helm lint --strict {UMBRELLA} -f {values} {extra:?}:\n{}", ran.report());
        assert!(!ran.stdout.contains("[WARNING]"), "{values} {extra:?}:\n{}", ran.report());
    }
    // Its schema refuses what it does not know, naming it; each service's schema still applies.
    for (extra, expected) in [
        (["--set", "agentCredential.waitSeconds=soon"], "/agentCredential/waitSeconds"),
        (["--set", "agentCredential.image.tagg=1"], "'tagg'"),
        (["--set", "gateway.replicas=3"], "'gateway'"),
        (["--set", "prfix-gateway.replicas=3"], "'replicas'"),
        (["--set", "prfix-gateway.ingress.hostname=x"], "'hostname'"),
    ] {
        let ran = charts.umbrella("values.yaml", &extra);
        assert!(!ran.success, "{extra:?} rendered");
        assert!(ran.stderr.contains("values don't meet the specifications of the schema"), "{}", ran.report());
        assert!(ran.stderr.contains(expected), "{extra:?}: {}", ran.stderr);
    }
    // Exposing the gateway needs to know where.
    let ran = charts.umbrella("values.yaml", &["--set", "prfix-gateway.ingress.enabled=true"]);
    assert!(!ran.success && ran.stderr.contains("ingress.host"), "{}", ran.report());
    let ran = charts.umbrella("values.yaml", &["--set", "prfix-gateway.httpRoute.enabled=true"]);
    assert!(!ran.success && ran.stderr.contains("httpRoute.parentRefs"), "{}", ran.report());
}

#[test]
fn the_umbrella_renders_the_three_releases_objects_and_its_own_and_validates_strictly() {
    let charts = Charts::prepare();
    let hook: BTreeSet<(String, String)> =
        ["ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "ConfigMap", "Job"]
            .iter()
            .map(|k| ((*k).to_owned(), CREDENTIAL.to_owned()))
            .chain([("Secret".to_owned(), CREDENTIAL_SECRET.to_owned())])
            .collect();
    for values in VALUES_FILES {
        let what = format!("{UMBRELLA} with {values}");
        let ran = charts.umbrella(values, &[]);
        assert!(ran.success, "{what}:\n{}", ran.report());
        let objects = validate_strictly(&what, &ran.stdout);
        let rendered: BTreeSet<(String, String)> =
            objects.iter().map(|o| (kind(o).to_owned(), name(o).to_owned())).collect();
        assert_eq!(rendered.len(), objects.len(), "{what}: no object twice");
        // What the three releases render on their own, under the same names, and the hook.
        let alone: BTreeSet<(String, String)> =
            charts.objects(values).iter().map(|o| (kind(o).to_owned(), name(o).to_owned())).collect();
        let expected: BTreeSet<(String, String)> = alone.union(&hook).cloned().collect();
        assert_eq!(rendered, expected, "{what}: the objects rendered");
        for object in &objects {
            let (k, n) = (kind(object), name(object));
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{what}: {k} {n}");
            assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/instance"], RELEASE, "{what}: {k} {n}");
            assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/part-of"], "prfix", "{what}: {k} {n}");
        }
        assert!(!objects.iter().any(|o| matches!(kind(o), "Ingress" | "HTTPRoute")), "{what}: exposed by default");

        // The checks the releases pass alone hold for them together.
        let kinds = check_restricted(&what, &objects);
        let expected: BTreeSet<String> = ["CronJob", "Deployment", "Job"].map(str::to_owned).into();
        assert_eq!(kinds, expected, "{what}");
        check_resources_and_probes(&what, &objects);
        check_metrics(&what, &objects);
        assert_eq!(check_settings_accepted(&what, &objects), 6, "{what}: three Deployments, three migrations");
        let services: Vec<Value> = objects.iter().filter(|o| !name(o).starts_with(CREDENTIAL)).cloned().collect();
        check_reachability(&what, &services);
        let secrets: BTreeSet<String> =
            ["prfix-database", "prfix-redis", "prfix-gateway-keys", "prfix-audit-keys", CREDENTIAL_SECRET]
                .map(str::to_owned)
                .into();
        assert_eq!(secret_references(&what, &objects), secrets, "{what}: the Secrets docs/deployment.md makes");
    }
}

#[test]
fn the_gateway_is_exposed_by_an_ingress_and_an_httproute_that_validate_and_reach_its_grpc_port_over_h2c() {
    let charts = Charts::prepare();
    let ran = charts.umbrella("values.yaml", &EXPOSED);
    assert!(ran.success, "{}", ran.report());
    let objects = yaml_documents("exposed", &ran.stdout);
    let (routes, others): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(|o| kind(o) == "HTTPRoute");
    let stream: Vec<String> = others.iter().map(Value::to_string).collect();
    let others = validate_strictly("the umbrella with an Ingress", &stream.join("\n---\n"));
    assert_eq!(routes.len(), 1, "one HTTPRoute");
    validate_httproute(&routes[0]);

    let service = find(&others, "Service", "prfix-gateway");
    let grpc = list(&service["spec"]["ports"]).iter().find(|p| p["name"] == "grpc").expect("the port grpc");
    // gRPC needs HTTP/2 to the pods: the port says so to whatever proxies to it.
    assert_eq!(grpc["appProtocol"], "kubernetes.io/h2c", "{service}");

    let ingress = find(&others, "Ingress", "prfix-gateway");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"], json!([{"hosts": ["prfix.example.com"], "secretName": "prfix-tls"}]));
    let rules = list(&ingress["spec"]["rules"]);
    assert_eq!(rules.len(), 1, "{ingress}");
    assert_eq!(rules[0]["host"], "prfix.example.com");
    let paths = list(&rules[0]["http"]["paths"]);
    assert_eq!(paths.len(), 1, "gRPC, gRPC-web and REST share one path: {ingress}");
    assert_eq!((paths[0]["path"].as_str(), paths[0]["pathType"].as_str()), (Some("/"), Some("Prefix")));
    assert_eq!(paths[0]["backend"]["service"], json!({"name": "prfix-gateway", "port": {"name": "grpc"}}));

    let route = &routes[0];
    assert_eq!(route["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"name": "public", "namespace": "gateway-system", "sectionName": "https"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!(["prfix.example.com"]));
    let rules = list(&route["spec"]["rules"]);
    assert_eq!(rules.len(), 1, "{route}");
    assert_eq!(rules[0]["matches"], json!([{"path": {"type": "PathPrefix", "value": "/"}}]));
    assert_eq!(rules[0]["backendRefs"], json!([{"name": "prfix-gateway", "port": grpc["port"]}]));

    // The gateway's NetworkPolicy admits what comes through them (anyone, on its port) already.
    let policy = find(&others, "NetworkPolicy", "prfix-gateway");
    let open = list(&policy["spec"]["ingress"])
        .iter()
        .any(|rule| list(&rule["from"]).is_empty() && list(&rule["ports"]).iter().any(|p| p["port"] == grpc["port"]));
    assert!(open, "{policy}");
}

/// Validates an HTTPRoute with check-jsonschema against the `v1` schema of the Gateway API 1.0.0
/// HTTPRoute CRD (vendored in tests/fixtures/gateway-api, kubernetes-validate has no CRDs), made
/// strict as kubernetes-validate is: an unknown field is an error. The CRD's CEL rules
/// (x-kubernetes-validations) are not evaluated.
pub(super) fn validate_httproute(route: &Value) {
    let check = |route: &Value| -> Ran {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = workspace_root().join("tests/fixtures/gateway-api/httproute-v1.0.0.schema.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut schema: Value = serde_json::from_str(&text).expect("the vendored schema is JSON");
        refuse_unknown_fields(&mut schema);
        let schema_file = dir.path().join("httproute.schema.json");
        std::fs::write(&schema_file, schema.to_string()).expect("writable");
        let route_file = dir.path().join("route.json");
        std::fs::File::create(&route_file)
            .and_then(|mut f| f.write_all(route.to_string().as_bytes()))
            .expect("writable");
        run_tool(
            "check-jsonschema on an HTTPRoute",
            Command::new("check-jsonschema").arg("--schemafile").arg(&schema_file).arg(&route_file),
            None,
            Duration::from_secs(60),
        )
    };
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1", "{route}");
    let ran = check(route);
    assert!(ran.success, "the HTTPRoute does not validate against Gateway API 1.0.0:\n{}\n{route}", ran.report());
    // The check can fail: a misspelt field is refused.
    let mut wrong = route.clone();
    wrong["spec"]["rules"][0]["backendRef"] = json!([]);
    let ran = check(&wrong);
    assert!(
        !ran.success && ran.report().contains("'backendRef' was unexpected"),
        "a misspelt field passed:\n{}",
        ran.report()
    );
}

/// Every object schema with properties and no word on others refuses others.
fn refuse_unknown_fields(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            map.values_mut().for_each(refuse_unknown_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(refuse_unknown_fields),
        _ => {}
    }
}

/// `helm install --dry-run=client` of the umbrella: its hooks, its objects, and its notes.
struct DryRun {
    hooks: Vec<Value>,
    manifest: Vec<Value>,
    notes: String,
}

fn dry_run(charts: &Charts, extra: &[&str]) -> DryRun {
    let mut args = vec!["install", RELEASE, UMBRELLA, "--namespace", NAMESPACE, "--dry-run=client"];
    args.extend(extra);
    let ran = charts.run("helm install --dry-run", &args);
    assert!(ran.success, "helm install --dry-run=client {extra:?}:\n{}", ran.report());
    let section = |start: &str, end: &str| -> String {
        let (_, rest) =
            ran.stdout.split_once(&format!("\n{start}:\n")).unwrap_or_else(|| panic!("no {start}:\n{}", ran.stdout));
        rest.split_once(&format!("\n{end}:\n")).map_or(rest, |(s, _)| s).to_owned()
    };
    DryRun {
        hooks: yaml_documents("the hooks", &section("HOOKS", "MANIFEST")),
        manifest: yaml_documents("the manifest", &section("MANIFEST", "NOTES")),
        notes: ran.stdout.split_once("\nNOTES:\n").map(|(_, notes)| notes.to_owned()).unwrap_or_default(),
    }
}

fn weight(object: &Value) -> i64 {
    annotation(object, "helm.sh/hook-weight").unwrap_or("0").parse().expect("a hook weight is a number")
}

fn events(object: &Value) -> BTreeSet<&str> {
    annotation(object, "helm.sh/hook").unwrap_or_default().split(',').filter(|e| !e.is_empty()).collect()
}

#[test]
fn helm_install_runs_the_migrations_first_and_the_credential_hook_once_the_gateway_exists() {
    let charts = Charts::prepare();
    let run = dry_run(&charts, &[]);
    // What `helm install` does, in order: the pre-install hooks by weight (then name), the release's
    // objects, then the post-install hooks by weight; each hook waits for its Job to finish.
    let by_weight = |event: &str| -> Vec<&Value> {
        let mut hooks: Vec<&Value> = run.hooks.iter().filter(|h| events(h).contains(event)).collect();
        hooks.sort_by_key(|h| (weight(h), name(h).to_owned()));
        hooks
    };
    let sequence: Vec<(String, String)> = by_weight("pre-install")
        .into_iter()
        .chain(run.manifest.iter())
        .chain(by_weight("post-install"))
        .map(|o| (kind(o).to_owned(), name(o).to_owned()))
        .collect();
    let at = |k: &str, n: &str| -> usize {
        sequence
            .iter()
            .position(|(kk, nn)| kk == k && nn == n)
            .unwrap_or_else(|| panic!("{k} {n} is not installed: {sequence:?}"))
    };
    let credential = at("Job", CREDENTIAL);
    for (k, n) in [("Deployment", "prfix-gateway"), ("Service", "prfix-gateway"), ("Deployment", "prfix-agent")] {
        assert!(at(k, n) < credential, "{k} {n} exists before the credential hook runs: {sequence:?}");
    }
    for chart in CHARTS {
        assert!(at("Job", &format!("{chart}-migrate")) < at("Deployment", chart), "{chart} migrates first");
    }
    // The gateway is an object of the release, not a hook; the credential Job is a hook after it,
    // at install and upgrade, and its helpers come before it.
    assert!(run.manifest.iter().any(|o| kind(o) == "Deployment" && name(o) == "prfix-gateway"));
    let job = run.hooks.iter().find(|h| kind(h) == "Job" && name(h) == CREDENTIAL).expect("the credential hook");
    assert_eq!(events(job), BTreeSet::from(["post-install", "post-upgrade"]), "{job}");
    for helper in run.hooks.iter().filter(|h| name(h) == CREDENTIAL && kind(h) != "Job") {
        assert_eq!(events(helper), events(job), "{} {}", kind(helper), name(helper));
        assert!(weight(helper) < weight(job), "{} before the Job", kind(helper));
    }
    let hooked: BTreeSet<&str> = run.hooks.iter().filter(|h| name(h) == CREDENTIAL).map(kind).collect();
    assert_eq!(hooked, BTreeSet::from(["ConfigMap", "Job", "NetworkPolicy", "Role", "RoleBinding", "ServiceAccount"]));
    for hook in run.hooks.iter().filter(|h| name(h) == CREDENTIAL) {
        let policies: BTreeSet<&str> =
            annotation(hook, "helm.sh/hook-delete-policy").unwrap_or_default().split(',').collect();
        assert_eq!(policies, BTreeSet::from(["before-hook-creation", "hook-succeeded"]), "{}", kind(hook));
    }
    // The Secret it fills is the release's, and outlives it.
    let secret = find(&run.manifest, "Secret", CREDENTIAL_SECRET);
    assert_eq!(annotation(secret, "helm.sh/resource-policy"), Some("keep"), "{secret}");
    assert!(secret["data"].is_null() && secret["stringData"].is_null(), "the chart holds no credential: {secret}");

    // The notes say what to do next: reach the gateway, log in, review.
    for line in [
        "kubectl -n prfix port-forward service/prfix-gateway 8080:8080",
        "export PRFIX_GATEWAY=http://127.0.0.1:8080",
        "kubectl -n prfix get secret prfix-gateway-keys -o jsonpath='{.data.bootstrap-admin-password}' | base64 -d",
        "prfix login -u admin",
        "prfix review",
    ] {
        assert!(run.notes.contains(line), "the notes lack `{line}`:\n{}", run.notes);
    }
    let exposed = dry_run(&charts, &EXPOSED);
    assert!(exposed.notes.contains("export PRFIX_GATEWAY=https://prfix.example.com"), "{}", exposed.notes);
    assert!(!exposed.notes.contains("port-forward"), "{}", exposed.notes);
    let off = dry_run(&charts, &["--set", "agentCredential.enabled=false"]);
    assert!(!off.hooks.iter().chain(&off.manifest).any(|o| name(o) == CREDENTIAL || name(o) == CREDENTIAL_SECRET));
    assert!(off.notes.contains("hook is off"), "{}", off.notes);
}
