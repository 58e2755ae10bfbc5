//! `prfix`: the command line of pr-fix-agent.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use prfix_cli::commands::review::{DescribeFormat, ReviewArgs, Target};
use prfix_cli::commands::task_ref::TaskRef;
use prfix_cli::commands::{admin, audit_list, auth, fix, flags, forge, models, password, review, tasks};
use prfix_cli::error::{CliError, CliResult, EXIT_ERROR};
use prfix_cli::report::Format;
use prfix_cli::{audit, config, git, up};

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

/// Options `prfix eval review` and `prfix eval fix` share.
#[derive(clap::Args)]
struct EvalCommon {
    /// Only bug fixes committed since this date, and only bugs introduced since (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// At most this many cases, the newest (bug-introducing commits, or fix commits with tests).
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    /// A model to compare (repeat for each; default: the configured one).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Output format.
    #[arg(long, short, value_enum)]
    format: Option<prfix_cli::eval::report::EvalFormat>,
    /// Start no new case after this long (90s, 30m, 2h); run again to go on.
    #[arg(long, value_name = "DURATION")]
    time_limit: Option<String>,
    /// The run's id, on its tasks and in the audit log (default: derived from the command and
    /// HEAD, so the same command resumes the same run).
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Where results are kept between runs (default: <git dir>/prfix/eval).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do again the cases whose review or fix failed in an earlier run.
    #[arg(long)]
    retry_failed: bool,
}

impl From<EvalCommon> for prfix_cli::eval::Common {
    fn from(c: EvalCommon) -> Self {
        let EvalCommon { since, max, models, format, time_limit, run_id, cache_dir, retry_failed } = c;
        Self { since, max, models, format, time_limit, run_id, cache_dir, retry_failed }
    }
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Review the commits that introduced bugs later fixed (found with git blame from fix
    /// commits) and report how many each model and prompt variant catches.
    Review {
        #[command(flatten)]
        common: EvalCommon,
        /// A prompt variant: `default`, a name of [eval.prompts] in .prfix.toml, or @FILE (repeat
        /// to compare).
        #[arg(long = "prompt-variant", value_name = "V")]
        variants: Vec<String>,
        /// Lines between a finding and a line the fix changed that still count as a hit
        /// (default: [eval] distance, then 3).
        #[arg(long, value_name = "LINES")]
        distance: Option<u32>,
    },
    /// Replay fix commits that add or change a test from their parent with `prfix fix --check`
    /// and report how many each model fixes without editing the test.
    Fix {
        #[command(flatten)]
        common: EvalCommon,
        /// The command that runs the tests, `{tests}` standing for the test files, e.g.
        /// "python3 -m pytest -q {tests}" (default: [eval] test_check).
        #[arg(long, value_name = "COMMAND")]
        check: Option<String>,
        /// Rounds of fix and check per case (default: [fix] max_rounds, then 3).
        #[arg(long, value_name = "N")]
        max_rounds: Option<u32>,
    },
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

#[derive(Subcommand)]
enum TasksCommand {
    /// List tasks, newest first (yours; all for admins).
    List {
        /// Only tasks in this state: queued, running, succeeded, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Tasks per page.
        #[arg(long, default_value_t = 50)]
        limit: i32,
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
        /// Only the tasks of this `prfix eval` run (its id is in the eval report).
        #[arg(long, value_name = "RUN_ID")]
        eval_run: Option<String>,
    },
    /// Show a task and its result; with --format, the stored result rendered as the command that
    /// made it printed it (no model call).
    Show {
        #[command(flatten)]
        task: TaskArg,
        /// Print the result in this format: terminal, json, sarif, markdown or github for a review;
        /// terminal, json or markdown for a description or a fix.
        #[arg(long, short, value_enum)]
        format: Option<Format>,
    },
    /// Print a task's events from the start, following it until it ends.
    Watch {
        #[command(flatten)]
        task: TaskArg,
    },
    /// Cancel a queued or running task.
    Cancel {
        #[command(flatten)]
        task: TaskArg,
    },
}

/// A task named on the command line.
#[derive(clap::Args)]
struct TaskArg {
    /// The task id, or a unique prefix of one of your tasks (at least 4 characters).
    #[arg(value_name = "ID", required_unless_present = "last", conflicts_with = "last")]
    task_id: Option<String>,
    /// Your newest task.
    #[arg(long)]
    last: bool,
}

impl TaskArg {
    fn task_ref(self) -> CliResult<TaskRef> {
        TaskRef::from_args(self.task_id, self.last)
    }
}

#[derive(Subcommand)]
enum AuditCommand {
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

#[derive(Subcommand)]
enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// List users.
    List,
    /// Create a user; the password is read from standard input.
    Create {
        /// Login name.
        username: String,
        /// Roles, comma-separated: admin, developer, auditor, service.
        #[arg(long, default_value = "developer")]
        roles: String,
    },
    /// Disable a user (their tokens and keys stop working).
    Disable {
        /// Login name.
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        username: String,
    },
    /// Set a user's password (their sessions end). Asked twice without echo on a terminal,
    /// otherwise read from the first line of standard input.
    SetPassword {
        /// Login name.
        username: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List API keys.
    List {
        /// Include revoked keys.
        #[arg(long)]
        revoked: bool,
    },
    /// Create an API key and print its secret once.
    Create {
        /// A name for the key.
        name: String,
        /// Roles, comma-separated (at most those of the owner).
        #[arg(long, default_value = "developer")]
        roles: String,
        /// The user the key belongs to (admins; default: you).
        #[arg(long)]
        owner: Option<String>,
        /// Days until it expires.
        #[arg(long, value_name = "DAYS")]
        ttl_days: Option<u32>,
    },
    /// Revoke an API key.
    Revoke {
        /// The key id.
        key_id: String,
    },
}

/// The checkout of the current directory and the configuration. The repository's `.prfix.toml`
/// is read as of the base of the change (`--base`, else the default branch) where there is one, so
/// the change under review cannot loosen its own review (ignore everything, lower `fail_on`).
fn repository(gateway: Option<String>, base: Option<&str>) -> CliResult<(config::Config, git::Checkout)> {
    let cwd = std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the current directory: {e}")))?;
    let checkout = git::Checkout::discover(&cwd)?;
    let target = match base {
        Some(b) => Some(b.to_owned()),
        None => checkout.default_branch().ok(),
    };
    let at_base = target.as_deref().and_then(|t| {
        let rev = checkout.merge_base(t, "HEAD").ok()?;
        Some((t.to_owned(), rev))
    });
    let mut config = match at_base {
        Some((name, rev)) => {
            let output = std::process::Command::new("git")
                .args(["show", &format!("{rev}:.prfix.toml")])
                .current_dir(checkout.root())
                .output()
                .map_err(|e| CliError::new(format!("cannot run git: {e}")))?;
            let text = output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned());
            let local = std::fs::read_to_string(checkout.root().join(".prfix.toml")).ok();
            if local.is_some() && local != text {
                eprintln!(
                    "prfix: using .prfix.toml as of {name}; this checkout's changes to it take effect once they are merged"
                );
            }
            let shown = std::path::PathBuf::from(format!("{name}:.prfix.toml"));
            config::load_with_repo_text(text.as_deref().map(|t| (t, shown.as_path())))?
        }
        None => config::load(Some(checkout.root()))?,
    };
    config.gateway = gateway_for(gateway.as_deref(), &config);
    Ok((config, checkout))
}

/// The configuration without a repository (commands that need none).
fn settings(gateway: Option<String>) -> CliResult<config::Config> {
    let root = std::env::current_dir().ok().and_then(|cwd| git::Checkout::discover(&cwd).ok());
    let mut config = config::load(root.as_ref().map(|c| c.root()))?;
    config.gateway = gateway_for(gateway.as_deref(), &config);
    Ok(config)
}

/// The gateway of this command ([`config::resolve_gateway`]): `--gateway`/`PRFIX_GATEWAY`, else the
/// profile's saved login's, else the configured one. A damaged credentials file is said by the
/// command that reads it, not here.
fn gateway_for(explicit: Option<&str>, config: &config::Config) -> String {
    let saved = prfix_cli::credentials::load().ok().flatten().map(|c| c.gateway);
    config::resolve_gateway(explicit, saved.as_deref(), &config.gateway)
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
        Command::Eval(EvalCommand::Review { common, variants, distance }) => {
            let (config, checkout) = repository(gateway, None)?;
            let args = prfix_cli::eval::ReviewArgs { common: common.into(), variants, distance };
            prfix_cli::eval::review(&config, &checkout, args).await
        }
        Command::Eval(EvalCommand::Fix { common, check, max_rounds }) => {
            let (config, checkout) = repository(gateway, None)?;
            let args = prfix_cli::eval::fix::FixArgs { common: common.into(), check, max_rounds };
            prfix_cli::eval::fix::fix(&config, &checkout, args).await
        }
        Command::Tasks(command) => {
            let config = settings(gateway)?;
            let gateway = &config.gateway;
            match command {
                TasksCommand::List { state, limit, all, eval_run } => {
                    tasks::list(gateway, state, limit, all, eval_run).await
                }
                TasksCommand::Show { task, format } => {
                    tasks::show(gateway, &task.task_ref()?, format, review::use_color(&config)).await
                }
                TasksCommand::Watch { task } => tasks::watch(gateway, &task.task_ref()?).await,
                TasksCommand::Cancel { task } => tasks::cancel(gateway, &task.task_ref()?).await,
            }
        }
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
        Command::Audit(AuditCommand::List { actor, action, since, until, limit }) => {
            let args = audit_list::ListArgs { actor, action, since, until, limit };
            audit_list::list(&settings(gateway)?.gateway, args).await
        }
        Command::Audit(AuditCommand::Export { token, file, output }) => {
            let output =
                file.or(output).ok_or_else(|| CliError::new("name the file to write: prfix audit export FILE"))?;
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
        Command::Audit(AuditCommand::Verify { file, key, state, witness, witness_quorum }) => {
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
        Command::Audit(AuditCommand::Witness { listen, state, key, name, logs, generate_key }) => {
            let args = prfix_cli::witness::WitnessArgs { listen, state, key, name, logs, generate_key };
            prfix_cli::witness::run(args).await.map_err(|e| CliError::new(e.to_string()))
        }
        Command::Admin(AdminCommand::Users(command)) => {
            let gateway = settings(gateway)?.gateway;
            match command {
                UsersCommand::List => admin::users_list(&gateway).await,
                UsersCommand::Create { username, roles } => admin::users_create(&gateway, &username, &roles).await,
                UsersCommand::Disable { username } => admin::users_set_disabled(&gateway, &username, true).await,
                UsersCommand::Enable { username } => admin::users_set_disabled(&gateway, &username, false).await,
                UsersCommand::SetPassword { username } => password::set_password(&gateway, &username).await,
            }
        }
        Command::Admin(AdminCommand::Keys(command)) => {
            let gateway = settings(gateway)?.gateway;
            match command {
                KeysCommand::List { revoked } => admin::keys_list(&gateway, revoked).await,
                KeysCommand::Create { name, roles, owner, ttl_days } => {
                    admin::keys_create(&gateway, &name, &roles, owner, ttl_days).await
                }
                KeysCommand::Revoke { key_id } => admin::keys_revoke(&gateway, &key_id).await,
            }
        }
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
