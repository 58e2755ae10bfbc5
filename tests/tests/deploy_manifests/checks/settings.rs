//! The settings and secrets each container is given, loaded by the services' own `Settings`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::{
    SECRET_VARIABLES, Service, all_containers, find, host_port, list, load_settings, pod_templates, required_secrets,
    required_urls, service_of_image, strings,
};

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
