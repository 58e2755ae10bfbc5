//! Who may reach whom under the NetworkPolicies.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{SERVICES, kind, list, pod_templates, service, strings};

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
