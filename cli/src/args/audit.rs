//! `prfix audit list|export|verify|witness`.

use std::path::PathBuf;

use clap::Subcommand;
use prfix_cli::audit;
use prfix_cli::commands::audit_list;
use prfix_cli::error::{CliError, CliResult};

use super::context::settings;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List {
        /// Only events of this actor (a user name, `service:<name>`, `operator`).
        #[arg(long)]
        actor: Option<String>,
        /// Only events of this action: auth.login, auth.refresh, auth.logout, auth.change_password,
        /// auth.reset_password, auth.create_user, auth.update_user, auth.create_api_key,
        /// auth.revoke_api_key, access.denied, agent.task.create.review (.describe, .fix),
        /// agent.task.succeeded, agent.task.failed, agent.task.cancel, forge.post,
        /// forge.webhook.received, forge.webhook.refused, flags.changed, or a gRPC method path
        /// such as /prfix.agent.v1.AgentService/ListTasks.
        #[arg(long, value_name = "ACTION")]
        action: Option<String>,
        /// Only events at or after this time: 2026-05-01T12:00:00Z, 2026-05-01 (UTC), or an age
        /// such as 30m, 2h, 7d.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events before this time (same forms as --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Events to show (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: i32,
    },
    /// Write the whole audit log and its signed checkpoints to a file (JSON lines).
    Export {
        /// An access token or API key of an auditor or admin (default: your login).
        #[arg(long, env = "PRFIX_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Where to write the export (the file `verify` then takes the same way).
        #[arg(value_name = "FILE", required_unless_present = "output")]
        file: Option<PathBuf>,
        /// The same as FILE (kept for scripts written before FILE).
        #[arg(long, short, value_name = "FILE", conflicts_with = "file")]
        output: Option<PathBuf>,
    },
    /// Check an export with only the checkpoint public key: hashes, chain, Merkle roots,
    /// signatures, consistency between checkpoints, coverage; with --state, also that the log
    /// still extends the checkpoint verified last time. Exit code 1 when anything fails.
    Verify {
        /// The export file.
        file: PathBuf,
        /// The verifier key (`<name>+<hash>+<key>`), or `@FILE` holding it. After a signing-key
        /// rotation, give each key the log was signed with (repeat `--key`, or comma-separate them in
        /// the environment variable): every checkpoint must verify with one of them.
        #[arg(long, env = "PRFIX_AUDIT_VERIFIER_KEY", value_delimiter = ',', required = true)]
        key: Vec<String>,
        /// Monitor mode: the file (JSON) where the newest checkpoint verified is remembered. The
        /// export must still hold every event of the remembered checkpoint and reproduce its root,
        /// else it fails naming the missing events; the file is created when absent and advanced
        /// only when everything holds. Keep it on a machine the database admin does not control.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// A witness's verifier key (`<name>+<key ID>+<key>`, or `@FILE`): the newest checkpoint
        /// must carry cosignatures by enough of the given witnesses (repeat for each witness).
        #[arg(long, value_name = "KEY")]
        witness: Vec<String>,
        /// How many of the --witness keys must have cosigned (default: all of them).
        #[arg(long, value_name = "N", requires = "witness")]
        witness_quorum: Option<usize>,
    },
    /// Run a witness (c2sp.org/tlog-witness) for audit logs: it cosigns a log's checkpoint only
    /// when it extends the last one it cosigned. Run it on a machine the log's operators do not
    /// control; it prints its verifier key for the log's settings and for `verify --witness`.
    Witness {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: std::net::SocketAddr,
        /// The state file (JSON): the newest checkpoint cosigned for each log.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// The witness's Ed25519 key (PEM PKCS#8).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The witness's name, by convention a schema-less URL (`witness.example.com/w1`).
        #[arg(long)]
        name: String,
        /// A log to witness: `ORIGIN=VERIFIERKEY` (its checkpoints' origin line and signing key);
        /// repeat for each log.
        #[arg(long = "log", value_name = "ORIGIN=VERIFIERKEY", required = true)]
        logs: Vec<String>,
        /// Create the key file when it does not exist.
        #[arg(long)]
        generate_key: bool,
    },
}

impl AuditCommand {
    pub async fn run(self, gateway: Option<String>) -> CliResult {
        match self {
            AuditCommand::List { actor, action, since, until, limit } => {
                let args = audit_list::ListArgs { actor, action, since, until, limit };
                audit_list::list(&settings(gateway)?.gateway, args).await
            }
            AuditCommand::Export { token, file, output } => export(gateway, token, file.or(output)).await,
            AuditCommand::Verify { file, key, state, witness, witness_quorum } => {
                // The witnesses' quorum is checked first (and printed apart from the log's own checks):
                // the state file remembers a checkpoint only when the witnesses vouch for it too, so a
                // truncated log that fails the quorum cannot become the monitor's new reference.
                let verified = prfix_cli::witness::verify_file(&file, &witness, witness_quorum).and_then(|witnessed| {
                    let remember = if witnessed { state.as_deref() } else { None };
                    let ok = audit::verify_file(&file, &key, remember)?;
                    if let (false, Some(path)) = (witnessed, &state) {
                        println!("state: {} not written: the witnesses' quorum does not hold", path.display());
                    }
                    Ok(witnessed && ok)
                });
                match verified {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(CliError::found("the export does not verify (see above)")),
                    Err(e) => Err(CliError::new(e.to_string())),
                }
            }
            AuditCommand::Witness { listen, state, key, name, logs, generate_key } => {
                let args = prfix_cli::witness::WitnessArgs { listen, state, key, name, logs, generate_key };
                prfix_cli::witness::run(args).await.map_err(|e| CliError::new(e.to_string()))
            }
        }
    }
}

/// `prfix audit export FILE`: with --token, or the saved login's token when it is for this gateway.
async fn export(gateway: Option<String>, token: Option<String>, output: Option<PathBuf>) -> CliResult {
    let output = output.ok_or_else(|| CliError::new("name the file to write: prfix audit export FILE"))?;
    let config = settings(gateway)?;
    let token = match token {
        Some(t) => t,
        None => {
            let saved = prfix_cli::credentials::load()?
                .ok_or_else(|| CliError::new("not logged in: run `prfix login` or pass --token"))?;
            // Saved tokens go only to the gateway they came from.
            if saved.gateway.trim_end_matches('/') != config.gateway.trim_end_matches('/') {
                return Err(CliError::new(format!(
                    "not logged in to {}: the saved login is for {}; run `prfix login --gateway {}` or pass --token",
                    config.gateway, saved.gateway, config.gateway
                )));
            }
            saved.api_key.unwrap_or(saved.access_token)
        }
    };
    audit::export(&config.gateway, &token, &output).await.map_err(|e| CliError::new(e.to_string()))
}
