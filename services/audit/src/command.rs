//! The `prfix-audit` command line, in the library so that the binary and the tests that run the
//! service as its own process share one entry point.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::{Application, Settings};

/// The prfix audit service: the append-only, hash-chained audit log.
#[derive(Parser)]
#[command(name = "prfix-audit", version)]
struct Args {
    /// TOML configuration file (also `PRFIX_CONFIG`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Apply this service's database migrations, then exit (0 when the schema is current) without
    /// serving: for a migration Job ahead of a rollout.
    #[arg(long)]
    migrate: bool,
}

/// Runs the command line `args` (the program name first): `--migrate` applies the migrations and
/// exits; otherwise the service serves until SIGTERM or SIGINT. `--help` and `--version` print and exit.
pub async fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    let settings = Settings::load(args.config.as_deref());
    if args.migrate {
        return prfix_runtime::binary::migrate(
            "prfix-audit",
            settings,
            |s| &s.common,
            Settings::database,
            crate::MIGRATIONS,
        )
        .await;
    }
    prfix_runtime::binary::run(
        "prfix-audit",
        settings,
        |s| &s.common,
        Application::build,
        Application::run_until_stopped,
    )
    .await
}
