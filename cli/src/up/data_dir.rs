//! Where `prfix up` keeps its state (the gateway's and the audit log's generated keys, the flags'
//! last copy, the embedded Postgres cluster): one folder per user, so starting it from another
//! folder finds the same keys and data. `--data-dir` (or `PRFIX_DATA_DIR`) wins; otherwise
//! `$XDG_DATA_HOME/prfix`, else `~/.local/share/prfix`; root, which has no desktop session and whose
//! home the `postgres` user cannot enter, uses `/var/lib/prfix` as system services do.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The folder earlier versions used, relative to the current directory.
pub const LEGACY_DIR: &str = ".prfix-data";

/// Why the data directory could not be chosen or made.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Neither a flag, `XDG_DATA_HOME` nor `HOME` says where.
    #[error("cannot tell where to keep prfix's data: HOME and XDG_DATA_HOME are unset; pass --data-dir")]
    NoHome,
    /// The folder could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The data directory from the flag and the environment (`var` reads a variable), made absolute
/// against `cwd`.
pub fn resolve(
    flag: Option<&Path>,
    var: &dyn Fn(&str) -> Option<OsString>,
    root: bool,
    cwd: &Path,
) -> Result<PathBuf, DataDirError> {
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let chosen = match (flag, non_empty("XDG_DATA_HOME"), non_empty("HOME")) {
        (Some(flag), _, _) => flag.to_path_buf(),
        (None, Some(xdg), _) => xdg.join("prfix"),
        (None, None, _) if root => PathBuf::from("/var/lib/prfix"),
        (None, None, Some(home)) => home.join(".local/share/prfix"),
        (None, None, None) => return Err(DataDirError::NoHome),
    };
    Ok(if chosen.is_absolute() { chosen } else { cwd.join(chosen) })
}

/// Creates the folder when missing: private to the user, but enterable by others when root runs it,
/// since the embedded server runs as `postgres` and reaches its own folder through it (the keys in
/// it are files of mode 0600 either way).
pub fn create(path: &Path, root: bool) -> Result<(), DataDirError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(if root { 0o711 } else { 0o700 })
        .create(path)
        .map_err(|source| DataDirError::Create { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn the_flag_then_xdg_then_home_decide_and_root_uses_var_lib() {
        let cwd = Path::new("/work/project");
        let both = env(&[("XDG_DATA_HOME", "/x/data"), ("HOME", "/home/u")]);
        let flag = Some(Path::new("state"));
        assert_eq!(resolve(flag, &both, false, cwd).ok(), Some(PathBuf::from("/work/project/state")));
        assert_eq!(resolve(None, &both, false, cwd).ok(), Some(PathBuf::from("/x/data/prfix")));
        assert_eq!(resolve(None, &both, true, cwd).ok(), Some(PathBuf::from("/x/data/prfix")), "an explicit XDG wins");
        let home = env(&[("XDG_DATA_HOME", ""), ("HOME", "/home/u")]);
        assert_eq!(resolve(None, &home, false, cwd).ok(), Some(PathBuf::from("/home/u/.local/share/prfix")));
        assert_eq!(resolve(None, &home, true, cwd).ok(), Some(PathBuf::from("/var/lib/prfix")));
        assert!(matches!(resolve(None, &env(&[]), false, cwd), Err(DataDirError::NoHome)));
    }
}
