//! `prfix-gateway`: the gateway binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use prfix_gateway::{Application, Settings};
use prfix_runtime::{shutdown, telemetry};

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
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("prfix-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.common.log_format, &settings.common.log_level);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %prfix_runtime::error::chain(&e), "gateway failed to start");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(shutdown::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %prfix_runtime::error::chain(&e), "gateway failed");
            ExitCode::FAILURE
        }
    }
}
