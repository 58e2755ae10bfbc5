//! The agent service: review, describe and fix tasks over Ollama.
//!
//! `Application::build` binds, prepares the database (migrations under a lock) and returns; the
//! caller reads the bound address and then calls `run_until_stopped`.

#![forbid(unsafe_code)]

pub mod changeset;
pub mod command;
mod flag_changes;
pub mod flags;
pub mod forge;
mod grpc;
pub mod ollama;
pub mod run;
pub mod settings;
mod startup;
pub mod tasks;
pub mod worker;

pub use settings::{AgentSettings, Settings};
pub use startup::{Application, StartupError};

/// The embedded migrations of the `agent` schema.
pub const MIGRATIONS: &[prfix_runtime::migrate::Migration] = &[
    prfix_runtime::migrate::Migration {
        version: 1,
        name: "0001_tasks.sql",
        sql: include_str!("../../../migrations/agent/0001_tasks.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 2,
        name: "0002_outbox_relay.sql",
        sql: include_str!("../../../migrations/agent/0002_outbox_relay.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 3,
        name: "0003_task_queue.sql",
        sql: include_str!("../../../migrations/agent/0003_task_queue.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 4,
        name: "0004_task_trace.sql",
        sql: include_str!("../../../migrations/agent/0004_task_trace.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 5,
        name: "0005_task_api_key.sql",
        sql: include_str!("../../../migrations/agent/0005_task_api_key.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 6,
        name: "0006_task_eval_run.sql",
        sql: include_str!("../../../migrations/agent/0006_task_eval_run.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 7,
        name: "0007_task_flags.sql",
        sql: include_str!("../../../migrations/agent/0007_task_flags.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 8,
        name: "0008_task_forge.sql",
        sql: include_str!("../../../migrations/agent/0008_task_forge.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 9,
        name: "0009_task_kind_ask.sql",
        sql: include_str!("../../../migrations/agent/0009_task_kind_ask.sql"),
    },
];
