//! What every service binary does: read settings (exit 2 naming a bad one), start logging, build
//! the application (exit 1 when it cannot start), and serve until SIGTERM or SIGINT.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::settings::{CommonSettings, SettingsError};

/// Runs a service binary named `name`.
pub async fn run<S, A, E, B, BF, R, RF>(
    name: &str,
    settings: Result<S, SettingsError>,
    common: fn(&S) -> &CommonSettings,
    build: B,
    serve: R,
) -> ExitCode
where
    B: FnOnce(S) -> BF,
    BF: Future<Output = Result<A, E>>,
    R: FnOnce(A, CancellationToken) -> RF,
    RF: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let shared = common(&settings);
    if let Err(e) = crate::telemetry::init_service(name, shared) {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    let app = match build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %crate::error::chain(&e), "{name} failed to start");
            return ExitCode::FAILURE;
        }
    };
    let code = match serve(app, crate::shutdown::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %crate::error::chain(&e), "{name} failed");
            ExitCode::FAILURE
        }
    };
    crate::telemetry::shutdown().await;
    code
}

/// Runs a service binary's `--migrate` mode: creates the database if needed, applies the pending
/// migrations of the service's schema (under the same advisory lock start-up takes), checks that the
/// service role can open a session, logs what was applied, and exits: 0 when the schema is current,
/// 1 when it could not be made so, 2 for bad settings. Nothing is served and no other secret is read,
/// so a migration Job (a Helm pre-install/pre-upgrade hook) needs the database URL only.
pub async fn migrate<S>(
    name: &str,
    settings: Result<S, SettingsError>,
    common: fn(&S) -> &CommonSettings,
    database: fn(&S) -> crate::db::DatabaseSettings,
    migrations: &[crate::migrate::Migration],
) -> ExitCode {
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let shared = common(&settings);
    crate::telemetry::init(shared.log_format, &shared.log_level);
    let database = database(&settings);
    match crate::db::prepare(&database, migrations).await {
        Ok((_pool, report)) => {
            tracing::info!(
                schema = %database.schema,
                applied = ?report.applied,
                already_applied = report.already_applied,
                "{name}: migrations are current"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(schema = %database.schema, error = %crate::error::chain(&e), "{name}: migrations failed");
            ExitCode::FAILURE
        }
    }
}

/// Writes a secret (a private key) readable by its owner only; refuses to overwrite.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}
