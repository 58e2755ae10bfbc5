//! The audit service: the only writer of the append-only audit log.
//!
//! `Application::build` binds, prepares the database (migrations under a lock) and returns; the
//! caller reads the bound address and then calls `run_until_stopped`.

#![forbid(unsafe_code)]

pub mod admission;
pub mod canonical;
pub mod checkpoint;
pub mod checkpointer;
pub mod command;
pub mod denials;
pub mod export;
mod export_stream;
pub mod frontier;
pub mod group;
mod grpc;
pub mod json;
pub mod jsonl;
pub mod merkle;
pub mod monitor;
pub mod parallel;
pub mod settings;
mod startup;
pub mod store;
pub mod tree;
pub mod verifier;
pub mod verify;
pub mod witness;
pub mod writer;

pub use settings::{AuditSettings, Settings};
pub use startup::{Application, StartupError};

/// The embedded migrations of the `audit` schema.
pub const MIGRATIONS: &[prfix_runtime::migrate::Migration] = &[
    prfix_runtime::migrate::Migration {
        version: 1,
        name: "0001_events.sql",
        sql: include_str!("../../../migrations/audit/0001_events.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 2,
        name: "0002_append_only.sql",
        sql: include_str!("../../../migrations/audit/0002_append_only.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 3,
        name: "0003_hash_chain.sql",
        sql: include_str!("../../../migrations/audit/0003_hash_chain.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 4,
        name: "0004_appender.sql",
        sql: include_str!("../../../migrations/audit/0004_appender.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 5,
        name: "0005_cosignatures.sql",
        sql: include_str!("../../../migrations/audit/0005_cosignatures.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 6,
        name: "0006_subtrees.sql",
        sql: include_str!("../../../migrations/audit/0006_subtrees.sql"),
    },
];
