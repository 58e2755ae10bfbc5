//! `prfix`: the command line of pr-fix-agent.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use prfix_cli::commands::review::{DescribeFormat, ReviewArgs, Target};
use prfix_cli::commands::{auth, fix, flags, forge, models, password, review, tasks};
use prfix_cli::error::{CliError, CliResult, EXIT_ERROR};
use prfix_cli::report::Format;
use prfix_cli::up;

mod args;

use args::admin::AdminCommand;
use args::audit::AuditCommand;
use args::context::{repository, settings};
use args::eval::EvalCommand;
use args::tasks::TasksCommand;

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

/// Review pull requests and write fixes for them with local models served by Ollama, through a
/// prfix gateway that authenticates, limits and audits every call.
///
/// Exit codes: 0 success; 1 findings at or above --fail-on, a failed part of the review with
/// --strict, or a check still failing after `prfix fix`; 2 an error (said in one line); 130
/// interrupted (Ctrl-C also cancels the task on the server).
#[derive(Parser)]
#[command(name = "prfix", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// TOML configuration of the services, for `prfix up` (also `PRFIX_CONFIG`).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The gateway to talk to; wins over the saved login's (default: the gateway of the profile's
    /// login, then `gateway` in ~/.config/prfix/config.toml, then http://127.0.0.1:8080).
    #[arg(long, global = true, env = "PRFIX_GATEWAY", value_name = "URL")]
    gateway: Option<String>,
    /// The saved login to use (`prfix login --profile NAME` makes one); each profile keeps its own
    /// gateway and tokens, like kubectl contexts (default: the default profile).
    #[arg(long, global = true, env = "PRFIX_PROFILE", value_name = "NAME")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Default)]
struct TargetArgs {
    /// Diff against this revision (default: the merge base with the default branch).
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// Review what is staged instead of the working tree.
    #[arg(long)]
    staged: bool,
    /// Limit the change to these paths.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

impl From<TargetArgs> for Target {
    fn from(t: TargetArgs) -> Self {
        Target { base: t.base, staged: t.staged, paths: t.paths }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway, the agent and the audit service in this process, for a laptop: on the
    /// Postgres `database_url` names, or on a PostgreSQL of its own in the data directory.
    Up {
        /// Where keys and the embedded PostgreSQL live (default: $XDG_DATA_HOME/prfix, else
        /// ~/.local/share/prfix; /var/lib/prfix for root).
        #[arg(long, env = "PRFIX_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// An existing PostgreSQL server to use instead of the embedded one (wins over
        /// `database_url` and PRFIX_DATABASE_URL).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Give the user `admin` a new generated password (shown once in the banner), enable it and
        /// end its sessions: the lost-password procedure (audited).
        #[arg(long)]
        reset_admin_password: bool,
    },
    /// Log in to a gateway and keep the tokens (0600) in your config directory.
    Login {
        /// User name (prompted on a terminal when missing).
        #[arg(long, short)]
        username: Option<String>,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Log in with an API key instead (CI); `-` reads it from standard input.
        #[arg(long, value_name = "KEY", env = "PRFIX_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Revoke your session at the gateway and forget the tokens.
    Logout,
    /// Change your password (your other sessions end). On a terminal both are asked without echo;
    /// otherwise standard input holds the current password on its first line and the new one on
    /// its second.
    Passwd,
    /// List the saved logins: each profile's gateway and user (`*` marks the one in use).
    Profiles,
    /// Show who the gateway takes you for.
    Whoami,
    /// Review the changes of this checkout and print the findings.
    Review {
        #[command(flatten)]
        target: TargetArgs,
        /// Output format (default: `[output] format` of the config, then terminal).
        #[arg(long, short, value_enum, env = "PRFIX_FORMAT")]
        format: Option<Format>,
        /// Exit with 1 when a finding is at least this severe: info, minor, major, critical or none.
        #[arg(long, value_name = "SEVERITY", env = "PRFIX_FAIL_ON")]
        fail_on: Option<String>,
        /// Leave out findings below this severity.
        #[arg(long, value_name = "SEVERITY")]
        min_severity: Option<String>,
        /// Model to review with (must be allowed by the agent).
        #[arg(long, env = "PRFIX_REVIEW_MODEL")]
        model: Option<String>,
        /// Exit with 1 when a part of the review failed (the other parts' findings are printed
        /// either way; without --strict a failed part is a warning).
        #[arg(long)]
        strict: bool,
        /// Post the review to the pull request this CI job runs for (GitHub Actions, GitLab CI,
        /// Gitea/Forgejo Actions): comments on lines, one summary comment edited in place, a check
        /// on the head commit. Without --base, the diff starts at the pull request's base.
        #[arg(long)]
        post: bool,
    },
    /// Print a title, a summary and a walkthrough of the changes of this checkout.
    Describe {
        #[command(flatten)]
        target: TargetArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "terminal")]
        format: DescribeFormat,
    },
    /// Run a check, ask for a fix of its failure, apply it, and repeat until the check passes.
    Fix {
        /// Diff against this revision (default: the merge base with the default branch).
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        /// The check to run, e.g. "cargo test" (default: `[fix] check` of .prfix.toml).
        #[arg(long, value_name = "COMMAND", env = "PRFIX_FIX_CHECK")]
        check: Option<String>,
        /// Rounds of fix and check (default: `[fix] max_rounds`, then 3).
        #[arg(long, value_name = "N")]
        max_rounds: Option<u32>,
        /// Print the first patch instead of applying it.
        #[arg(long)]
        dry_run: bool,
        /// Commit the changes once the check passes (never otherwise).
        #[arg(long)]
        commit: bool,
        /// Start even when the working tree has uncommitted changes.
        #[arg(long)]
        allow_dirty: bool,
        /// The model for both the plan and the edits (default: `[fix] planner_model` and
        /// `coder_model` of the config, then the agent's).
        #[arg(long)]
        model: Option<String>,
        /// Tag the fix's tasks with this `prfix eval` run id (set by `prfix eval fix`).
        #[arg(long, value_name = "ID")]
        eval_run_id: Option<String>,
        /// Consider only these files or directories (relative to the current directory or the
        /// repository's top): only their contents and diffs are sent.
        #[arg(value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Measure which model and prompt review and fix best, on this checkout's own history.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// List, show, follow or cancel tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// List the models of the Ollama endpoints behind the agent (`models pull NAME` pulls one).
    Models {
        #[command(subcommand)]
        command: Option<ModelsCommand>,
    },
    /// Health of the gateway, each service and each Ollama endpoint, with their models.
    Status,
    /// Read, export or verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage users and API keys (admins).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// List the flags the agent sees, where each comes from, and its value for a context (admins).
    Flags {
        /// The user to evaluate for.
        #[arg(long)]
        user: Option<String>,
        /// The user's roles, comma-separated.
        #[arg(long)]
        roles: Option<String>,
        /// The repository to evaluate for.
        #[arg(long)]
        repository: Option<String>,
        /// The forge to evaluate for (github, gitlab).
        #[arg(long)]
        forge: Option<String>,
        /// The model to evaluate for.
        #[arg(long)]
        model: Option<String>,
        /// One JSON object per flag instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the agent's forge connections: whether each authenticates, which repositories it reaches.
    #[command(subcommand)]
    Forge(ForgeCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `prfix forge ...`.
#[derive(Subcommand)]
enum ForgeCommand {
    /// For each `[agent.forges.<name>]` of the agent's settings (the file given with --config, else
    /// PRFIX_CONFIG, and the environment with the tokens): does it authenticate, and which
    /// repositories does it reach? Exits with 1 when one does not authenticate.
    Check,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Pull a model onto one of the agent's Ollama endpoints, showing Ollama's progress (admins).
    Pull {
        /// The model, for example qwen2.5-coder:14b.
        name: String,
        /// The endpoint, as the agent's `ollama_url` names it (default: its first).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
    },
}

async fn run(cli: Cli) -> CliResult {
    let gateway = cli.gateway;
    prfix_cli::credentials::use_profile(cli.profile).map_err(|e| CliError::new(e.to_string()))?;
    match cli.command {
        Command::Up { data_dir, database_url, reset_admin_password } => {
            let args = up::UpArgs {
                config: cli.config,
                data_dir,
                database_url: database_url.map(Into::into),
                reset_admin_password,
            };
            up::run(args).await.map_err(|e| CliError::new(prfix_runtime::error::chain(e.as_ref())))
        }
        Command::Login { username, password_stdin, api_key } => {
            let config = settings(gateway)?;
            auth::login(auth::LoginArgs { gateway: config.gateway, username, password_stdin, api_key }).await
        }
        Command::Logout => auth::logout().await,
        Command::Passwd => password::passwd(&settings(gateway)?.gateway).await,
        Command::Profiles => auth::profiles(),
        Command::Whoami => auth::whoami(&settings(gateway)?.gateway).await,
        Command::Review { mut target, format, fail_on, min_severity, model, strict, post } => {
            // The CI job is read first: outside one, --post fails before any work, naming the variable.
            let post = if post {
                let job = prfix_cli::ci::detect(&|name: &str| std::env::var(name).ok());
                Some(job.map_err(|e| CliError::new(e.to_string()))?)
            } else {
                None
            };
            if target.base.is_none() {
                target.base = post.as_ref().and_then(|job| job.base_sha.clone());
            }
            let (config, checkout) = repository(gateway, target.base.as_deref())?;
            review::review(
                &config,
                &checkout,
                ReviewArgs { target: target.into(), format, fail_on, model, min_severity, strict, post },
            )
            .await
        }
        Command::Describe { target, format } => {
            let (config, checkout) = repository(gateway, target.base.as_deref())?;
            review::describe(&config, &checkout, target.into(), format).await
        }
        Command::Fix { base, check, max_rounds, dry_run, commit, allow_dirty, model, eval_run_id, paths } => {
            let (config, checkout) = repository(gateway, base.as_deref())?;
            let paths = fix::checkout_paths(&checkout, &paths)?;
            let target = Target { base, ..Default::default() };
            let args =
                fix::FixArgs { target, paths, check, max_rounds, dry_run, commit, allow_dirty, model, eval_run_id };
            fix::fix(&config, &checkout, args).await
        }
        Command::Eval(command) => command.run(gateway).await,
        Command::Tasks(command) => command.run(gateway).await,
        Command::Models { command: None } => tasks::models(&settings(gateway)?.gateway).await,
        Command::Models { command: Some(ModelsCommand::Pull { name, endpoint }) } => {
            models::pull(&settings(gateway)?.gateway, &name, endpoint).await
        }
        Command::Forge(ForgeCommand::Check) => forge::check(cli.config.as_deref()).await,
        Command::Flags { user, roles, repository, forge, model, json } => {
            let context = flags::FlagContext { user, roles, repository, forge, model };
            flags::list(&settings(gateway)?.gateway, context, json).await
        }
        Command::Status => tasks::status(&settings(gateway)?.gateway).await,
        Command::Audit(command) => command.run(gateway).await,
        Command::Admin(command) => command.run(gateway).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "prfix", &mut std::io::stdout());
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match run(cli).await {
        // Interrupted while following a task (review, describe, fix): cancel it on the server.
        Err(e) if e.code == prfix_cli::error::EXIT_INTERRUPTED => Err(prfix_cli::interrupt::cancel_followed(e).await),
        other => other,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prfix: {}", e.message);
            ExitCode::from(if e.code == 0 { EXIT_ERROR } else { e.code })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let path = format!("{path} {}", command.get_name());
        if command.get_about().is_none() {
            missing.push(format!("`{path}` has no description"));
        }
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("`{path}` argument `{}` has no help", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &path, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_help() {
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "", &mut missing);
        missing.retain(|m| !m.starts_with("`  prfix help"));
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
