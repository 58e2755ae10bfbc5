//! Forge credentials in the charts: `secrets.forges` mounts each connection's webhook secret (gateway)
//! and token or GitHub App key (agent) from existing Secrets as the files the services read
//! (`PRFIX_FORGE_<NAME>_..._FILE`), like every other secret; without entries nothing is added.

use serde_json::Value;

use super::Charts;
use crate::checks::validate_strictly;
use crate::support::{kind, list};

/// A container's environment: (name, value).
type Env = Vec<(String, String)>;
/// The projected secret volume's items: (secret, key, path).
type Items = Vec<(String, String, String)>;

/// The Deployment's container environment and its projected secret volume's items.
fn mounted(rendered: &str, what: &str) -> (Env, Items) {
    let objects = validate_strictly(what, rendered);
    let deployment = objects.iter().find(|o| kind(o) == "Deployment").expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let env = list(&pod["containers"][0]["env"])
        .iter()
        .map(|e| {
            (e["name"].as_str().unwrap_or_default().to_owned(), e["value"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let items = list(&pod["volumes"])
        .iter()
        .filter(|v| v["name"] == "secrets")
        .flat_map(|v| list(&v["projected"]["sources"]).to_vec())
        .flat_map(|source: Value| {
            let secret = source["secret"]["name"].as_str().unwrap_or_default().to_owned();
            list(&source["secret"]["items"])
                .iter()
                .map(|i| {
                    (
                        secret.clone(),
                        i["key"].as_str().unwrap_or_default().to_owned(),
                        i["path"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    (env, items)
}

#[test]
fn forge_secrets_are_mounted_as_the_files_the_services_read() {
    let charts = Charts::prepare();
    let agent = charts.render(
        "prfix-agent",
        "values.yaml",
        &[
            "--set-json",
            r#"secrets.forges=[{"connection":"github-enterprise","name":"prfix-forge-ghe","key":"app-key.pem","appKey":true},{"connection":"gitlab","name":"prfix-forge-gitlab","key":"token"}]"#,
        ],
    );
    let (env, items) = mounted(&agent, "prfix-agent with two forge connections");
    let dir = "/var/run/secrets/prfix/agent";
    for (variable, file) in [
        ("PRFIX_FORGE_GITHUB_ENTERPRISE_APP_KEY_FILE", "forge-github-enterprise-app-key"),
        ("PRFIX_FORGE_GITLAB_TOKEN_FILE", "forge-gitlab-token"),
    ] {
        assert!(env.contains(&(variable.to_owned(), format!("{dir}/{file}"))), "{variable} -> {dir}/{file} in {env:?}");
    }
    assert!(items.contains(&(
        "prfix-forge-ghe".into(),
        "app-key.pem".into(),
        "forge-github-enterprise-app-key".into()
    )));
    assert!(items.contains(&("prfix-forge-gitlab".into(), "token".into(), "forge-gitlab-token".into())));

    let gateway = charts.render(
        "prfix-gateway",
        "values.yaml",
        &[
            "--set-json",
            r#"secrets.forges=[{"connection":"github","name":"prfix-forge-github","key":"webhook-secret"}]"#,
        ],
    );
    let (env, items) = mounted(&gateway, "prfix-gateway with a forge connection");
    assert!(
        env.contains(&(
            "PRFIX_FORGE_GITHUB_WEBHOOK_SECRET_FILE".to_owned(),
            "/var/run/secrets/prfix/gateway/forge-github-webhook-secret".to_owned()
        )),
        "{env:?}"
    );
    assert!(items.contains(&(
        "prfix-forge-github".into(),
        "webhook-secret".into(),
        "forge-github-webhook-secret".into()
    )));

    // Without entries, the agent mounts no secret files at all.
    let (env, items) = mounted(&charts.render("prfix-agent", "values.yaml", &[]), "prfix-agent without forges");
    assert!(env.iter().all(|(name, _)| !name.starts_with("PRFIX_FORGE_")), "{env:?}");
    assert!(items.is_empty(), "{items:?}");

    // A value the schema refuses: a key without a Secret's name.
    let refused = charts.template(
        "prfix-gateway",
        "values.yaml",
        &["--set-json", r#"secrets.forges=[{"connection":"github","key":"webhook-secret"}]"#],
    );
    assert!(!refused.success, "an entry without `name` is refused by the values schema");
}
