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

/// The memory allocator of every binary (`#[global_allocator] static ALLOCATOR: Allocator =
/// Allocator;` in each `main.rs` and bench): mimalloc, whose thread-local heaps cost a request
/// path of many small allocations much less than glibc's malloc with its arena locks.
pub use mimalloc::MiMalloc as Allocator;
