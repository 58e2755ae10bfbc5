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
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref());
    prfix_runtime::binary::run(
        "prfix-gateway",
        settings,
        |s| &s.common,
        Application::build,
        Application::run_until_stopped,
    )
    .await
}
