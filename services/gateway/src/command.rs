//! The `prfix-gateway` command line, in the library so that the binary and the tests that run the
//! service as its own process share one entry point.

use std::ffi::OsString;
use std::process::ExitCode;

use prfix_runtime::binary::ServiceBinary;

use crate::{Application, Settings};

/// Runs the command line `args` (the program name first): `--config FILE`, `--migrate` (apply the
/// migrations and exit), `--reset-admin-password` ([`crate::reset`]), or serve until SIGTERM or
/// SIGINT.
pub async fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // The lost-password procedure is a mode of its own (it serves nothing), with its own arguments.
    if crate::reset::requested(&args) {
        return crate::reset::main(args).await;
    }
    ServiceBinary {
        name: "prfix-gateway",
        about: "The prfix gateway: the public endpoint in front of the agent and audit services.\n\
                Lost the admin password? `prfix-gateway --reset-admin-password [--config FILE]` sets a new one.",
        load: Settings::load,
        common: |s| &s.common,
        database: Settings::database,
        migrations: crate::MIGRATIONS,
    }
    .main(args, Application::build, Application::run_until_stopped)
    .await
}
