//! `prfix`: the command line of pr-fix-agent.

#![forbid(unsafe_code)]

mod audit;
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
    /// Export the audit log, or verify an export offline.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Write the whole audit log and its signed checkpoints to a file (JSON lines).
    Export {
        /// The gateway.
        #[arg(long, env = "PRFIX_GATEWAY", default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// An access token or API key of an auditor or admin.
        #[arg(long, env = "PRFIX_TOKEN", hide_env_values = true)]
        token: String,
        /// Where to write the export.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Check an export with only the checkpoint public key: hashes, chain, Merkle roots,
    /// signatures, consistency between checkpoints, coverage. Exit code 1 when anything fails.
    Verify {
        /// The export file.
        file: PathBuf,
        /// The verifier key (`<name>+<hash>+<key>`), or `@FILE` holding it.
        #[arg(long, env = "PRFIX_AUDIT_VERIFIER_KEY")]
        key: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up => up::run(cli.config.as_deref()).await,
        Command::Audit(AuditCommand::Export { gateway, token, output }) => {
            audit::export(&gateway, &token, &output).await
        }
        Command::Audit(AuditCommand::Verify { file, key }) => match audit::verify_file(&file, &key) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prfix: {}", prfix_runtime::error::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
