//! Runtime pieces every prfix service shares: typed settings, telemetry, the Postgres pool and
//! migrations, the Redis client, the mapping of domain errors to `tonic::Status`, the pieces of a
//! gRPC server (health, reflection, request ids, trace context) and shutdown.

pub mod binary;
pub mod calls;
pub mod db;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod migrate;
pub mod outbox;
mod outbox_group;
pub mod pretty;
pub mod ratelimit;
pub mod redis;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod time;
mod tls;
pub mod trace;
