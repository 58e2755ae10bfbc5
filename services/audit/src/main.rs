//! `prfix-audit`: the audit service binary (see [`prfix_audit::command`]).

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    prfix_audit::command::main(std::env::args_os()).await
}
