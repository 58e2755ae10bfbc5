//! `prfix-service gateway|agent|audit [ARGS]`: runs one service exactly as its own binary does
//! (same entry point, settings from the environment, logging, signals), for the tests that need
//! the services as separate processes (their own logs, their own global subscriber). Cargo builds
//! it for the integration tests of this package, which the service binaries are not.

use std::ffi::OsString;
use std::process::ExitCode;

// The services' binaries' allocator, as theirs.
#[global_allocator]
static ALLOCATOR: prfix_runtime::Allocator = prfix_runtime::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let service = std::env::args_os().nth(1).and_then(|s| s.into_string().ok()).unwrap_or_default();
    let program = |name: &str| std::iter::once(OsString::from(name)).chain(std::env::args_os().skip(2));
    match service.as_str() {
        "gateway" => prfix_gateway::command::main(program("prfix-gateway")).await,
        "agent" => prfix_agent::command::main(program("prfix-agent")).await,
        "audit" => prfix_audit::command::main(program("prfix-audit")).await,
        other => {
            eprintln!("prfix-service: `{other}` is not a service; use gateway, agent or audit");
            ExitCode::from(2)
        }
    }
}
