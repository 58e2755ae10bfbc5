//! The agent service: review, describe and fix tasks over Ollama.
//!
//! `Application::build` binds, prepares the database (migrations under a lock) and returns; the
//! caller reads the bound address and then calls `run_until_stopped`.

#![forbid(unsafe_code)]

pub mod changeset;
pub mod command;
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
];
