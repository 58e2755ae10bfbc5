//! `prfix up`: the three services in one process, each on its own port, as in production, on the
//! database `database_url` names or, when none is set, on a PostgreSQL cluster of its own in the
//! per-user data directory.

mod data_dir;
mod database;
mod models;

use std::path::PathBuf;

use prfix_runtime::settings::{Layers, LogFormat};
use prfix_runtime::{shutdown, telemetry};
use secrecy::SecretString;
use tokio::task::JoinSet;

use database::Database;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What `prfix up` takes on its command line.
#[derive(Debug, Default)]
pub struct UpArgs {
    /// The settings file (`--config`).
    pub config: Option<PathBuf>,
    /// `--data-dir`: where keys and the embedded cluster live (default: per user).
    pub data_dir: Option<PathBuf>,
    /// `--database-url`: an existing server (wins over `database_url` from the settings).
    pub database_url: Option<SecretString>,
    /// `--reset-admin-password`: `admin` gets a new generated password, shown once (the
    /// lost-password procedure; audited, and `admin`'s sessions end).
    pub reset_admin_password: bool,
}

/// Starts audit, agent and gateway, prints where they listen, and runs until Ctrl-C or SIGTERM;
/// then stops the embedded cluster when it started one.
pub async fn run(args: UpArgs) -> Result<(), BoxError> {
    let layers = Layers::load(args.config.as_deref())?;
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

    // One data directory per user, whatever the current directory; settings naming a folder win.
    let root = prfix_embedded_postgres::account::is_root();
    let cwd = std::env::current_dir()?;
    let data_dir = data_dir::resolve(args.data_dir.as_deref(), &|name| std::env::var_os(name), root, &cwd)?;
    data_dir::create(&data_dir, root)?;
    if !layers.is_set("gateway.data_dir") {
        gateway_settings.gateway.data_dir = data_dir.clone();
    }
    if !layers.is_set("audit.data_dir") {
        audit_settings.audit.data_dir = data_dir.clone();
    }
    if !layers.is_set("flags.backup_file") {
        agent_settings.flags.backup_file = data_dir.join("unleash-flags.json");
    }
    let legacy = cwd.join(data_dir::LEGACY_DIR);
    if legacy.is_dir() && std::fs::canonicalize(&legacy).ok() != std::fs::canonicalize(&data_dir).ok() {
        eprintln!(
            "note: {} holds the keys of an earlier prfix, which kept them in the current directory; \
             this one uses {} (pass --data-dir {} to keep using them)",
            legacy.display(),
            data_dir.display(),
            data_dir::LEGACY_DIR
        );
    }

    // `database_url` given (flag, file or environment): that server, as in production.
    let given = match args.database_url {
        Some(url) => Some(url),
        None => layers.is_set("database_url").then(|| audit_settings.common.database_url.clone()),
    };
    // Signals are taken from here on: Ctrl-C while the cluster is being set up or the services built
    // still ends in a clean stop of both (the services stop as soon as they are up).
    let stop = shutdown::on_signal();
    let database = tokio::select! {
        database = Database::open(given, &data_dir) => database?,
        () = stop.cancelled() => return Err("interrupted while starting PostgreSQL".into()),
    };
    for common in [&mut audit_settings.common, &mut agent_settings.common, &mut gateway_settings.common] {
        common.database_url = database.url();
        common.validate()?;
    }
    let served =
        serve(audit_settings, agent_settings, gateway_settings, &database.describe(), args.reset_admin_password, stop)
            .await;
    let stopped = database.stop().await;
    telemetry::shutdown().await;
    served?;
    stopped?;
    Ok(())
}

/// Builds the three services, prints the banner and serves until a signal or a failure.
async fn serve(
    mut audit_settings: prfix_audit::Settings,
    mut agent_settings: prfix_agent::Settings,
    gateway_settings: prfix_gateway::Settings,
    database: &str,
    reset_admin_password: bool,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), BoxError> {
    let ollama = agent_settings.common.ollama_url.clone();
    let wanted = [agent_settings.agent.reasoning_model.clone(), agent_settings.agent.coding_model.clone()];
    let models = models::report(&ollama, &wanted).await;

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
    for line in &models {
        println!("            {line}");
    }
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
    println!("  open http://{gateway_addr}/ in a browser      (the web console: docs/console.md)");
    println!("Press Ctrl-C to stop.");

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
