//! `prfix-gateway`: the gateway binary (see [`prfix_gateway::command`]).

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    prfix_gateway::command::main(std::env::args_os()).await
}
