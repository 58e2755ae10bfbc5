//! `prfix eval review` and `prfix eval fix`.

use std::path::PathBuf;

use clap::Subcommand;
use prfix_cli::error::CliResult;

use super::context::repository;

/// Options `prfix eval review` and `prfix eval fix` share.
#[derive(clap::Args)]
pub struct EvalCommon {
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
pub enum EvalCommand {
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

impl EvalCommand {
    pub async fn run(self, gateway: Option<String>) -> CliResult {
        let (config, checkout) = repository(gateway, None)?;
        match self {
            EvalCommand::Review { common, variants, distance } => {
                let args = prfix_cli::eval::ReviewArgs { common: common.into(), variants, distance };
                prfix_cli::eval::review(&config, &checkout, args).await
            }
            EvalCommand::Fix { common, check, max_rounds } => {
                let args = prfix_cli::eval::fix::FixArgs { common: common.into(), check, max_rounds };
                prfix_cli::eval::fix::fix(&config, &checkout, args).await
            }
        }
    }
}
