//! The gateway's rate limits: the shared limiter (the services apply the same one at their own
//! ports), re-exported here so that the gateway's settings and callers keep their paths.

pub use prfix_runtime::ratelimit::{Class, Denied, Limiter, Limits, Quota};
