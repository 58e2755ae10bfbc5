//! `prfix-agent`: the agent binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use prfix_agent::{Application, Settings};

/// The prfix agent: review, describe and fix tasks over local models.
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref());
    if args.migrate {
        return prfix_runtime::binary::migrate(
            "prfix-agent",
            settings,
            |s| &s.common,
            Settings::database,
            prfix_agent::MIGRATIONS,
        )
        .await;
    }
    prfix_runtime::binary::run(
        "prfix-agent",
        settings,
        |s| &s.common,
        Application::build,
        Application::run_until_stopped,
    )
    .await
}
