//! What the CLI tells a user when something fails: one line, and an exit code.
//!
//! Exit codes: 0 success; 1 the work ran and found what the user asked to fail on (findings at or
//! above `--fail-on`, a failed part of a review with `--strict`, a check that still fails after
//! `prfix fix`); 2 anything that stopped the work
//! (usage, configuration, git, the gateway, the service); 130 interrupted.

use std::fmt;

/// A failure to show the user.
#[derive(Debug)]
pub struct CliError {
    /// The one line shown after `prfix: `.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

/// Exit code of a run that found what it was told to fail on.
pub const EXIT_FOUND: u8 = 1;
/// Exit code of a run that could not do its work.
pub const EXIT_ERROR: u8 = 2;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

impl CliError {
    /// A failure that stopped the work (exit 2).
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_ERROR }
    }

    /// The work ran and its result is a failure (exit 1).
    pub fn found(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_FOUND }
    }

    /// From a gRPC status, said the way a user can act on.
    pub fn from_status(what: &str, status: &tonic::Status, gateway: &str) -> Self {
        use tonic::Code;
        let message = status.message().lines().next().unwrap_or_default().trim();
        let text = match status.code() {
            Code::Unauthenticated => {
                format!("{what}: your credentials are missing, expired or revoked ({message}); run `prfix login`")
            }
            Code::PermissionDenied => format!("{what}: not allowed for your roles ({message})"),
            Code::Unavailable if message.contains("error trying to connect") || message.is_empty() => {
                format!(
                    "{what}: the gateway at {gateway} is unreachable; is prfix running there? (`prfix up` starts one)"
                )
            }
            Code::ResourceExhausted => format!("{what}: {message}"),
            Code::DeadlineExceeded => format!("{what}: timed out ({message})"),
            _ => format!("{what}: {message}"),
        };
        Self::new(text)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

macro_rules! from_one_line {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                Self::new(e.to_string())
            }
        }
    )*};
}

from_one_line!(
    crate::git::GitError,
    crate::config::ConfigError,
    crate::credentials::CredentialsError,
    crate::report::ReportError,
    std::io::Error
);

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
