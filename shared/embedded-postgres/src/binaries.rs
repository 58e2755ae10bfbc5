//! Finding PostgreSQL server binaries on the machine: `pg_config --bindir`, then `PATH`, then the
//! folders distributions and Homebrew install into. A folder counts when it holds `initdb`, `pg_ctl`
//! and `postgres` and its `postgres --version` is of a supported major version.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The major versions prfix runs on (docs/deployment.md: 15 or later).
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 15..=18;

/// One set of server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinaries {
    /// The folder with `initdb`, `pg_ctl` and `postgres` (symbolic links resolved).
    pub bin: PathBuf,
    /// The major version (`15`).
    pub major: u32,
    /// The full version as `postgres --version` prints it (`15.20`).
    pub version: String,
}

/// Folders that may hold server binaries, most specific first (duplicates removed by the caller).
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // A folder in PATH often holds links (Debian's /usr/bin wrappers, /usr/local/bin links):
            // the binaries' own folder is where pg_ctl finds `postgres`.
            match std::fs::canonicalize(dir.join("initdb")) {
                Ok(initdb) => dirs.extend(initdb.parent().map(Path::to_path_buf)),
                Err(_) => continue,
            }
        }
    }
    let mut versioned = Vec::new();
    for (root, prefix, suffix) in [
        ("/usr/lib/postgresql", "", "bin"),
        ("/usr", "pgsql-", "bin"),
        ("/opt/homebrew/opt", "postgresql@", "bin"),
        ("/usr/local/opt", "postgresql@", "bin"),
    ] {
        let Ok(entries) = std::fs::read_dir(root) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(prefix)
                && rest.split('.').next().is_some_and(|major| major.parse::<u32>().is_ok())
            {
                versioned.push(entry.path().join(suffix));
            }
        }
    }
    // Newest first among the versioned folders.
    versioned.sort();
    versioned.reverse();
    dirs.extend(versioned);
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}

/// `postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` → (15, "15.20").
pub(crate) fn parse_version(text: &str) -> Option<(u32, String)> {
    let rest = text.split(')').nth(1)?.trim();
    let version = rest.split_whitespace().next()?;
    let major = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
    Some((major, version.to_owned()))
}

/// The binaries in `dir`, when it holds a complete set.
pub fn probe(dir: &Path) -> Option<ServerBinaries> {
    if !["initdb", "pg_ctl", "postgres"].iter().all(|tool| dir.join(tool).is_file()) {
        return None;
    }
    let output = Command::new(dir.join("postgres")).arg("--version").output().ok()?;
    let (major, version) = parse_version(&String::from_utf8_lossy(&output.stdout))?;
    let bin = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Some(ServerBinaries { bin, major, version })
}

/// Every set of server binaries found, in the order looked at, and the folders looked in.
pub fn find_all() -> (Vec<ServerBinaries>, Vec<PathBuf>) {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    let mut looked = Vec::new();
    for dir in candidate_dirs() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        if let Some(binaries) = probe(&dir)
            && !found.iter().any(|b: &ServerBinaries| b.bin == binaries.bin)
        {
            found.push(binaries);
        }
        looked.push(dir);
    }
    (found, looked)
}

/// The binaries to run a cluster with: of `major` when the cluster exists (its `PG_VERSION`),
/// else the newest supported one.
pub fn choose(found: &[ServerBinaries], major: Option<u32>) -> Option<&ServerBinaries> {
    match major {
        Some(major) => found.iter().find(|b| b.major == major),
        None => found.iter().filter(|b| SUPPORTED_MAJORS.contains(&b.major)).max_by_key(|b| b.major),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_postgres_prints_them() {
        assert_eq!(parse_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"), Some((15, "15.20".into())));
        assert_eq!(parse_version("postgres (PostgreSQL) 17.2\n"), Some((17, "17.2".into())));
        assert_eq!(parse_version("postgres (PostgreSQL) 18beta1\n"), Some((18, "18beta1".into())));
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn the_newest_supported_version_is_chosen_unless_the_cluster_needs_its_own() {
        let at = |major: u32| ServerBinaries {
            bin: PathBuf::from(format!("/pg/{major}/bin")),
            major,
            version: format!("{major}.1"),
        };
        let found = [at(14), at(16), at(15), at(19)];
        assert_eq!(choose(&found, None).map(|b| b.major), Some(16), "14 and 19 are not supported");
        assert_eq!(choose(&found, Some(15)).map(|b| b.major), Some(15));
        assert_eq!(choose(&found, Some(17)), None);
        assert_eq!(choose(&[at(14)], None), None);
    }
}
