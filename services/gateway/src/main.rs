//! `prfix-gateway`: the gateway binary (see [`prfix_gateway::command`]).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    prfix_gateway::command::main(std::env::args_os()).await
}
