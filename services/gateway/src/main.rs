//! `prfix-gateway`: the gateway binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use prfix_gateway::{Application, Settings};

/// The prfix gateway: the public endpoint in front of the agent and audit services.
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
            "prfix-gateway",
            settings,
            |s| &s.common,
            Settings::database,
            prfix_gateway::MIGRATIONS,
        )
        .await;
    }
    prfix_runtime::binary::run(
        "prfix-gateway",
        settings,
        |s| &s.common,
        Application::build,
        Application::run_until_stopped,
    )
    .await
}
