//! REST/JSON transcoding of the gRPC API, generic over the descriptor set (like Envoy's gRPC-JSON
//! transcoder): every method's `google.api.http` rule is a route; a matched request becomes the
//! method's request message; messages are read and written with the proto3 JSON mapping; and the
//! same routes make the OpenAPI 3.1 document. Adding a method to a proto needs no code here.
//!
//! This crate is pure: the gateway does the HTTP, the gRPC calls, streaming and problem+json.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use prfix_transcode::{Match, Routes, response_json};
//!
//! let (routes, _pool) = Routes::prfix()?;
//! if let Match::Found(found) = routes.find(&http::Method::GET, "/v1/tasks/t-1") {
//!     let request = found.request(Some("x=1"), b"")?; // send to found.route.grpc_path()
//!     # let _ = (request, response_json);
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fields;
mod json;
mod openapi;
mod request;
mod routes;
mod template;

pub use json::{response_json, to_json};
pub use openapi::{OpenApiInfo, openapi};
pub use request::RequestError;
pub use routes::{BodyRule, Match, Route, RouteError, RouteMatch, Routes};
pub use template::{PathTemplate, TemplateError};
