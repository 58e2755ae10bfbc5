//! Who runs the server. PostgreSQL refuses to run as root, so when prfix (or the test suite) runs as
//! root the tools run as the system user `postgres`, and the cluster's folder belongs to it; otherwise
//! they run as the caller. Every PostgreSQL tool is started through [`Account::command`], so both
//! cases share one code path but for the user id the child takes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Error;

/// The user the server runs as when prfix runs as root.
pub const SERVER_USER: &str = "postgres";

/// The account the PostgreSQL tools run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// The calling user (not root).
    Caller,
    /// Another user: prfix runs as root.
    User {
        /// Its name.
        name: String,
        /// Its user id.
        uid: u32,
        /// Its primary group id.
        gid: u32,
    },
}

fn id_of(flag: &str, user: &str) -> Result<u32, String> {
    let output = Command::new("id").args([flag, user]).output().map_err(|e| format!("cannot run `id`: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().map_err(|e| format!("`id {flag} {user}`: {e}"))
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
pub fn is_root() -> bool {
    match std::fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
    }
}

impl Account {
    /// The account for this process: the caller, or `postgres` when running as root.
    pub fn for_this_process() -> Result<Self, Error> {
        if !is_root() {
            return Ok(Self::Caller);
        }
        let failed = |reason| Error::NoServerAccount { user: SERVER_USER.to_owned(), reason };
        let uid = id_of("-u", SERVER_USER).map_err(failed)?;
        let gid = id_of("-g", SERVER_USER).map_err(failed)?;
        if uid == 0 {
            return Err(failed("it is root too".to_owned()));
        }
        Ok(Self::User { name: SERVER_USER.to_owned(), uid, gid })
    }

    /// A name for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Caller => "current".to_owned(),
            Self::User { name, .. } => name.clone(),
        }
    }

    /// `command` set to run as this account, with no input and its output captured.
    pub fn command(&self, mut command: Command) -> Command {
        if let Self::User { uid, gid, .. } = self {
            // std drops root's supplementary groups when it changes the user id.
            command.uid(*uid).gid(*gid);
        }
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }

    /// Gives `path` to this account (a folder created by root for the server).
    pub fn own(&self, path: &Path) -> Result<(), Error> {
        if let Self::User { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).map_err(Error::io("cannot give", path))?;
        }
        Ok(())
    }

    /// Checks that this account can enter every folder above `dir` (root's home is often closed to
    /// others), so the failure is said before initdb trips on it.
    pub fn check_reachable(&self, dir: &Path) -> Result<(), Error> {
        let Self::User { name, uid, gid } = self else { return Ok(()) };
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else { continue };
            let mode = meta.permissions().mode();
            let enters = if meta.uid() == *uid {
                mode & 0o100 != 0
            } else if meta.gid() == *gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !enters {
                return Err(Error::Unreachable {
                    user: name.clone(),
                    dir: ancestor.to_path_buf(),
                    mode: mode & 0o7777,
                });
            }
        }
        Ok(())
    }
}
