//! What every service binary does: take its command line (`--config`, `--migrate`), read settings
//! (exit 2 naming a bad one), start logging, build the application (exit 1 when it cannot start), and
//! serve until SIGTERM or SIGINT; or, with `--migrate`, apply the migrations and exit.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use tokio_util::sync::CancellationToken;

use crate::db::DatabaseSettings;
use crate::migrate::Migration;
use crate::settings::{CommonSettings, SettingsError};

/// The command line of every service binary.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (also `PRFIX_CONFIG`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Apply this service's database migrations, then exit (0 when the schema is current) without
    /// serving: for a migration Job ahead of a rollout.
    #[arg(long)]
    migrate: bool,
}

/// What a service binary is made of; [`ServiceBinary::main`] is its whole `main`.
pub struct ServiceBinary<S: 'static> {
    /// The program name (`prfix-gateway`).
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Reads the settings from defaults, the file and the environment.
    pub load: fn(Option<&Path>) -> Result<S, SettingsError>,
    /// The shared part of the settings.
    pub common: fn(&S) -> &CommonSettings,
    /// The service's database and schema.
    pub database: fn(&S) -> DatabaseSettings,
    /// The schema's migrations.
    pub migrations: &'static [Migration],
}

impl<S: 'static> ServiceBinary<S> {
    /// Runs the command line `args` (the program name first): `--migrate` applies the migrations and
    /// exits; otherwise the application `build` makes is served by `serve` until SIGTERM or SIGINT.
    /// `--help` and `--version` print and exit, as does a bad argument (with its usage, status 2).
    pub async fn main<A, E, B, BF, R, RF>(
        &self,
        args: impl IntoIterator<Item = OsString>,
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
        let matches = Args::command().name(self.name).bin_name(self.name).about(self.about).get_matches_from(args);
        let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let settings = (self.load)(args.config.as_deref());
        if args.migrate {
            migrate(self.name, settings, self.common, self.database, self.migrations).await
        } else {
            run(self.name, settings, self.common, build, serve).await
        }
    }
}

/// The settings, or exit status 2 after printing why they are refused.
fn settings_or_exit<S>(name: &str, settings: Result<S, SettingsError>) -> Result<S, ExitCode> {
    settings.map_err(|e| {
        eprintln!("{name}: {e}");
        ExitCode::from(2)
    })
}

/// Runs a service binary named `name`.
async fn run<S, A, E, B, BF, R, RF>(
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
    let settings = match settings_or_exit(name, settings) {
        Ok(s) => s,
        Err(code) => return code,
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
async fn migrate<S>(
    name: &str,
    settings: Result<S, SettingsError>,
    common: fn(&S) -> &CommonSettings,
    database: fn(&S) -> DatabaseSettings,
    migrations: &[Migration],
) -> ExitCode {
    let settings = match settings_or_exit(name, settings) {
        Ok(s) => s,
        Err(code) => return code,
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
