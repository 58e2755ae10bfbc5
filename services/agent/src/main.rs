//! `prfix-agent`: the agent binary (see [`prfix_agent::command`]).

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    prfix_agent::command::main(std::env::args_os()).await
}
