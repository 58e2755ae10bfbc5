//! End-to-end test harness: the three services started in process on port 0, against a fresh
//! database per test and a fresh Redis key prefix per test, with a fake Ollama at the network edge.
//!
//! Postgres and Redis are real: `PRFIX_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a role that may create databases) and
//! `PRFIX_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
//!
//! Fake forges ([`fake_forge`]: GitHub checked against its OpenAPI description, GitLab, Gitea) stand
//! at the other network edge, for `prfix review --post`.

#![forbid(unsafe_code)]

pub mod app;
pub mod audit_export;
pub mod audit_fill;
pub mod auth;
pub mod browser;
pub mod db;
pub mod fake_forge;
pub mod fake_ollama;
pub mod flags;
pub mod forge_system;
pub mod git;
pub mod metadata;
pub mod metrics;
pub mod nginx;
pub mod pg_server;
pub mod pr_fixture;
pub mod processes;
pub mod redis_server;
pub mod tasks;
pub mod unleash;

pub use app::{TestApp, spawn_app, spawn_app_configured, spawn_app_with};
pub use db::TestDatabase;
pub use fake_ollama::{FakeOllama, RecordedRequest, Reply};
