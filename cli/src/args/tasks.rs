//! `prfix tasks list|show|watch|cancel`.

use clap::Subcommand;
use prfix_cli::commands::task_ref::TaskRef;
use prfix_cli::commands::{review, tasks};
use prfix_cli::error::CliResult;
use prfix_cli::report::Format;

use super::context::settings;

#[derive(Subcommand)]
pub enum TasksCommand {
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
pub struct TaskArg {
    /// The task id, or a unique prefix of one of your tasks (at least 4 characters).
    #[arg(value_name = "ID", required_unless_present = "last", conflicts_with = "last")]
    task_id: Option<String>,
    /// Your newest task.
    #[arg(long)]
    last: bool,
}

impl TaskArg {
    pub fn task_ref(self) -> CliResult<TaskRef> {
        TaskRef::from_args(self.task_id, self.last)
    }
}

impl TasksCommand {
    pub async fn run(self, gateway: Option<String>) -> CliResult {
        let config = settings(gateway)?;
        let gateway = &config.gateway;
        match self {
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
}
