//! The gateway: the only public endpoint. It serves health and reflection for the whole API and
//! forwards gRPC calls to the agent and audit services generically, by service name.
//!
//! `Application::build` binds, prepares the database and returns; the caller reads the bound
//! address and then calls `run_until_stopped`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod command;
pub mod console;
mod edge;
pub mod health;
mod oversize;
mod problem;
pub mod ratelimit;
pub mod reset;
mod rest;
pub mod router;
pub mod security_audit;
mod serve;
pub mod settings;
mod startup;
pub mod upstream;
pub mod webhook;

pub use settings::{ForgeConnection, ForgeKind, GatewaySettings, Mode, Settings};
pub use startup::{Application, StartupError};

/// The embedded migrations of the `gateway` schema.
pub const MIGRATIONS: &[prfix_runtime::migrate::Migration] = &[
    prfix_runtime::migrate::Migration {
        version: 1,
        name: "0001_role.sql",
        sql: include_str!("../../../migrations/gateway/0001_role.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 2,
        name: "0002_identity.sql",
        sql: include_str!("../../../migrations/gateway/0002_identity.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 3,
        name: "0003_access_outbox.sql",
        sql: include_str!("../../../migrations/gateway/0003_access_outbox.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 4,
        name: "0004_revocations.sql",
        sql: include_str!("../../../migrations/gateway/0004_revocations.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 5,
        name: "0005_webhook_deliveries.sql",
        sql: include_str!("../../../migrations/gateway/0005_webhook_deliveries.sql"),
    },
    prfix_runtime::migrate::Migration {
        version: 6,
        name: "0006_console_sessions.sql",
        sql: include_str!("../../../migrations/gateway/0006_console_sessions.sql"),
    },
];
