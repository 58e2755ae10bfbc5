//! `prfix up`: the three services in one process, each on its own port, as in production.

use std::path::Path;

use prfix_runtime::settings::{Layers, LogFormat};
use prfix_runtime::{shutdown, telemetry};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;

/// Starts audit, agent and gateway, prints where they listen, and runs until Ctrl-C or SIGTERM.
/// With `reset_admin_password`, `admin` gets a new generated password, shown once (the
/// lost-password procedure; audited, and `admin`'s sessions end).
pub async fn run(
    config: Option<&Path>,
    reset_admin_password: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let layers = Layers::load(config)?;
    let mut audit_settings = prfix_audit::Settings::from_layers(&layers)?;
    let mut agent_settings = prfix_agent::Settings::from_layers(&layers)?;
    let mut gateway_settings = prfix_gateway::Settings::from_layers(&layers)?;
    // A laptop: a missing signing key or admin password is generated (and said so), not refused.
    gateway_settings.gateway.mode = prfix_gateway::Mode::Development;
    audit_settings.audit.development = true;
    // On a terminal, readable lines unless the operator chose a format.
    let format = if std::env::var_os("PRFIX_LOG_FORMAT").is_some() {
        audit_settings.common.log_format
    } else {
        LogFormat::Pretty
    };
    // Spans go to `otlp_endpoint` when one is set, as one service `prfix` (the three run here).
    let mut logging = audit_settings.common.clone();
    logging.log_format = format;
    telemetry::init_service("prfix", &logging)?;
    // Every call passes the gateway: its access line is the call's, the services' are DEBUG.
    prfix_runtime::calls::log_access_only_of("gateway");
    let database = redact(audit_settings.common.database_url.expose_secret());
    let ollama = agent_settings.common.ollama_url.clone();

    // The gateway first: the services trust its public keys, which it publishes to the data
    // directory here (the same keys its `/.well-known/jwks.json` serves).
    let data_dir = gateway_settings.gateway.data_dir.clone();
    let gateway = prfix_gateway::Application::build(gateway_settings).await?;
    if audit_settings.common.auth_jwks_file.is_none() {
        let jwks_file = data_dir.join("jwks.json");
        std::fs::write(&jwks_file, serde_json::to_vec_pretty(&gateway.jwks())?)?;
        audit_settings.common.auth_jwks_file = Some(jwks_file.clone());
        agent_settings.common.auth_jwks_file = Some(jwks_file);
    }
    // The agent appends its audit records through the gateway, as a `service` user's API key.
    if agent_settings.audit_credential.is_none() {
        agent_settings.audit_credential = Some(gateway.provision_service_credential("agent").await?.into());
        agent_settings.agent.audit_url = format!("http://{}", gateway.local_addr());
    }
    // The reset runs beside start-up: its audit event waits until the audit service serves.
    let reset = reset_admin_password.then(|| {
        let auth = gateway.auth_api();
        tokio::spawn(async move { auth.reset_password("admin", None).await })
    });
    let audit = prfix_audit::Application::build(audit_settings).await?;
    let agent = prfix_agent::Application::build(agent_settings).await?;

    let gateway_addr = gateway.local_addr();
    println!("prfix is up:");
    println!("  gateway   http://{gateway_addr}   (the public endpoint: gRPC, gRPC-web, REST, health, reflection)");
    println!("  agent     http://{}", agent.local_addr());
    println!("  audit     http://{}", audit.local_addr());
    println!(
        "  metrics   http://{}/metrics  http://{}/metrics  http://{}/metrics",
        gateway.admin_addr(),
        agent.admin_addr(),
        audit.admin_addr()
    );
    println!("  database  {database}");
    println!("  ollama    {ollama}");
    if let Some(password) = gateway.generated_admin_password() {
        println!("  admin     user `admin`, password `{password}` (generated now, shown once: keep it)");
    }
    let gateway_flag = if gateway_addr.to_string() == "127.0.0.1:8080" {
        String::new()
    } else {
        format!(" --gateway http://{gateway_addr}")
    };
    println!("Next, in another terminal:");
    println!("  prfix login{gateway_flag} --username admin   (then `prfix passwd` to choose your own password)");
    println!("  cd your-repository && prfix review           (reviews the checkout's uncommitted and branch changes)");
    println!("  buf curl --protocol grpc --http2-prior-knowledge http://{gateway_addr} --list-methods   (the API)");
    println!("Press Ctrl-C to stop.");

    let stop = shutdown::on_signal();
    let mut services = JoinSet::new();
    let token = stop.clone();
    services.spawn(async move {
        audit.run_until_stopped(token).await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    });
    let token = stop.clone();
    services.spawn(async move {
        agent.run_until_stopped(token).await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    });
    let token = stop.clone();
    services.spawn(async move {
        gateway.run_until_stopped(token).await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    });

    if let Some(reset) = reset {
        match reset.await {
            Ok(Ok(password)) => println!(
                "  admin     user `admin`, new password `{password}` (reset now, shown once: keep it; its sessions ended)"
            ),
            Ok(Err(status)) => {
                stop.cancel();
                return Err(format!("cannot reset the admin password: {}", status.message()).into());
            }
            Err(e) => {
                stop.cancel();
                return Err(format!("cannot reset the admin password: {e}").into());
            }
        }
    }
    // One service failing stops the others: a half-running system would mislead.
    let mut first_error = None;
    while let Some(joined) = services.join_next().await {
        let outcome = joined.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).and_then(|r| r);
        if let Err(e) = outcome {
            stop.cancel();
            first_error.get_or_insert(e);
        }
    }
    telemetry::shutdown().await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
