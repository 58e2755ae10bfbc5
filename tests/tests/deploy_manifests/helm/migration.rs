//! The migration hook: `prfix-<service> --migrate` before install and upgrade.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use prfix_tests::TestDatabase;
use serde_json::Value;

use super::{CHARTS, Charts, VALUES_FILES, annotation};
use crate::checks::{Role, container_environment, role, selects};
use crate::support::{SERVICES, find, kind, list, name, write_settings_file};

/// The migration Job of a release, with the hooks it needs.
fn migration_objects<'a>(objects: &'a [Value], release: &str) -> (&'a Value, &'a Value, &'a Value) {
    let name = format!("{release}-migrate");
    (find(objects, "Job", &name), find(objects, "ServiceAccount", &name), find(objects, "NetworkPolicy", &name))
}

#[test]
fn the_migration_hook_runs_migrate_before_install_and_upgrade_with_nothing_but_the_database_url() {
    let charts = Charts::prepare();
    for values in VALUES_FILES {
        let objects = charts.objects(values);
        for service in SERVICES {
            let release = service.workload();
            let what = format!("{release} with {values}");
            let (job, account, policy) = migration_objects(&objects, &release);
            let weight = |o: &Value| -> i64 {
                annotation(o, "helm.sh/hook-weight").unwrap_or("0").parse().expect("a hook weight is a number")
            };
            for object in [job, account, policy] {
                let hooks: BTreeSet<&str> = annotation(object, "helm.sh/hook").unwrap_or_default().split(',').collect();
                assert_eq!(hooks, BTreeSet::from(["pre-install", "pre-upgrade"]), "{what}: {} is a hook", kind(object));
                let policies: BTreeSet<&str> =
                    annotation(object, "helm.sh/hook-delete-policy").unwrap_or_default().split(',').collect();
                assert_eq!(
                    policies,
                    BTreeSet::from(["before-hook-creation", "hook-succeeded"]),
                    "{what}: {} is replaced by the next run and deleted once it succeeded",
                    kind(object)
                );
            }
            // Hooks run before the release's objects exist: what the Job's pod needs must be a hook
            // created before it (a lower weight), or exist beforehand (the Secrets).
            assert!(weight(account) < weight(job) && weight(policy) < weight(job), "{what}: helpers first");
            let spec = &job["spec"]["template"]["spec"];
            assert_eq!(spec["serviceAccountName"], name(account), "{what}: the hook's own ServiceAccount");
            assert!(
                selects(&policy["spec"]["podSelector"], &job["spec"]["template"]["metadata"]["labels"]),
                "{what}: the hook's NetworkPolicy covers the Job's pod"
            );
            assert_eq!(spec["restartPolicy"], "Never", "{what}");
            assert!(job["spec"]["backoffLimit"].as_i64().is_some_and(|n| n <= 5), "{what}: bounded retries");
            assert!(job["spec"]["activeDeadlineSeconds"].as_i64().is_some(), "{what}: a deadline");

            let containers = list(&spec["containers"]);
            assert_eq!(containers.len(), 1, "{what}: one container");
            assert!(list(&spec["initContainers"]).is_empty(), "{what}: no init container");
            let container = &containers[0];
            assert_eq!(
                role(container),
                Some((service, Role::Migrate)),
                "{what}: runs `prfix-{} --migrate`",
                service.name
            );
            let deployment = find(&objects, "Deployment", &release);
            let served = &list(&deployment["spec"]["template"]["spec"]["containers"])[0];
            assert_eq!(container["image"], served["image"], "{what}: the image the release deploys");
            assert!(list(&container["envFrom"]).is_empty(), "{what}: no ConfigMap (none exists before install)");
            let secrets: Vec<&str> = list(&container["env"])
                .iter()
                .filter(|v| !v["valueFrom"].is_null())
                .filter_map(|v| v["name"].as_str())
                .collect();
            assert_eq!(secrets, ["PRFIX_DATABASE_URL"], "{what}: the database URL is the only secret it reads");
            assert!(
                !list(&spec["volumes"]).iter().any(|v| !v["secret"].is_null() || !v["projected"].is_null()),
                "{what}: no Secret mounted"
            );
        }
    }
    // Off when asked: no hook at all.
    for chart in CHARTS {
        let text = charts.render(chart, "values.yaml", &["--set", "migration.enabled=false"]);
        assert!(!text.contains("helm.sh/hook"), "{chart}: a hook without migration");
    }
}

#[tokio::test]
async fn the_migration_hooks_command_and_environment_migrate_a_fresh_database() {
    let objects = tokio::task::spawn_blocking(|| Charts::prepare().objects("values.production.yaml"))
        .await
        .expect("rendering the releases");
    let database = TestDatabase::fresh();
    // In the order docs/deployment.md installs the releases; each from nothing but its Job's
    // environment, the database URL pointed at a database that does not exist yet.
    for release in ["prfix-audit", "prfix-agent", "prfix-gateway"] {
        let (job, _, _) = migration_objects(&objects, release);
        let container = &list(&job["spec"]["template"]["spec"]["containers"])[0];
        let mut environment = container_environment(&objects, container);
        environment.insert("PRFIX_DATABASE_URL".to_owned(), database.url.clone());
        for _ in 0..2 {
            let code = migrate(release, &environment).await;
            assert_eq!(code, ExitCode::SUCCESS, "{release} --migrate with {environment:?}");
        }
    }
    let client = database.connect().await;
    let rows = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname IN ('gateway', 'agent', 'audit') ORDER BY 1", &[])
        .await
        .expect("the schemas");
    let schemas: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(schemas, ["agent", "audit", "gateway"], "every service's schema is in");
}

/// What `prfix-<service> --migrate --config <file>` does with `environment` as its settings file:
/// the service's own command line, as the hook's container runs it.
pub(super) async fn migrate(release: &str, environment: &BTreeMap<String, String>) -> ExitCode {
    let (file, _) = write_settings_file(environment);
    let args = [release.into(), "--migrate".into(), "--config".into(), file.path().as_os_str().to_owned()];
    match release {
        "prfix-gateway" => prfix_gateway::command::main(args).await,
        "prfix-agent" => prfix_agent::command::main(args).await,
        "prfix-audit" => prfix_audit::command::main(args).await,
        other => panic!("unknown release {other}"),
    }
}
