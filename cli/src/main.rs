//! `prfix`: the command line of pr-fix-agent.

#![forbid(unsafe_code)]

mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Review pull requests and write fixes for them with local models, with authentication, limits
/// and a tamper-evident audit log.
#[derive(Parser)]
#[command(name = "prfix", version, propagate_version = true)]
struct Cli {
    /// TOML configuration file (also `PRFIX_CONFIG`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway, the agent and the audit service in this process, for a laptop.
    Up,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up => up::run(cli.config.as_deref()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prfix: {}", prfix_runtime::error::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
