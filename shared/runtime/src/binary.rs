//! What every service binary does: read settings (exit 2 naming a bad one), start logging, build
//! the application (exit 1 when it cannot start), and serve until SIGTERM or SIGINT.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::settings::{CommonSettings, SettingsError};

/// Runs a service binary named `name`.
pub async fn run<S, A, E, B, BF, R, RF>(
    name: &str,
    settings: Result<S, SettingsError>,
    common: fn(&S) -> &CommonSettings,
    build: B,
    serve: R,
) -> ExitCode
where
    B: FnOnce(S) -> BF,
    BF: Future<Output = Result<A, E>>,
    R: FnOnce(A, CancellationToken) -> RF,
    RF: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let shared = common(&settings);
    crate::telemetry::init(shared.log_format, &shared.log_level);
    let app = match build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %crate::error::chain(&e), "{name} failed to start");
            return ExitCode::FAILURE;
        }
    };
    match serve(app, crate::shutdown::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %crate::error::chain(&e), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Writes a secret (a private key) readable by its owner only; refuses to overwrite.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}
