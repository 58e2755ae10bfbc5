//! A cluster left behind by a crash. When prfix is killed (SIGKILL, OOM) its server keeps running;
//! when the machine stops, `postmaster.pid` stays. At the next start the lock file is read: a live
//! server of this data folder is stopped (fast: committed work is kept) so it can be started afresh
//! with this start's settings, and a lock file naming a process that is not a server of this folder
//! is removed, since PostgreSQL would otherwise refuse to start when the number was reused.

use std::path::Path;

/// What was found of an earlier run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Nothing: the last run stopped cleanly.
    None,
    /// A server of this folder is still running, with this process id.
    Running(u32),
    /// A lock file whose process is gone (or is not a server of this folder).
    StaleLock(u32),
}

/// Whether process `pid` is a PostgreSQL process working in `data` (a server's processes all run with
/// the data folder as their working directory).
pub fn serves(pid: u32, data: &Path) -> bool {
    let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else { return false };
    let data = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    cwd == data
}

/// Reads `data/postmaster.pid`.
pub fn inspect(data: &Path) -> Leftover {
    let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) else { return Leftover::None };
    let Some(pid) = text.lines().next().and_then(|line| line.trim().parse::<u32>().ok()) else {
        return Leftover::StaleLock(0);
    };
    if serves(pid, data) { Leftover::Running(pid) } else { Leftover::StaleLock(pid) }
}

/// The process ids working in `data` (the server and its children): none once it has stopped.
pub fn processes_in(data: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|name| name.parse::<u32>().ok()))
        .filter(|pid| serves(*pid, data))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_of_a_process_elsewhere_is_stale() {
        let dir = tempfile::tempdir().expect("a folder");
        assert_eq!(inspect(dir.path()), Leftover::None);
        // This test's own process works elsewhere: its number in the lock file is stale.
        let me = std::process::id();
        std::fs::write(dir.path().join("postmaster.pid"), format!("{me}\n{}\n", dir.path().display())).expect("write");
        assert_eq!(inspect(dir.path()), Leftover::StaleLock(me));
        std::fs::write(dir.path().join("postmaster.pid"), "garbage").expect("write");
        assert_eq!(inspect(dir.path()), Leftover::StaleLock(0));
        assert!(processes_in(dir.path()).is_empty());
    }
}
