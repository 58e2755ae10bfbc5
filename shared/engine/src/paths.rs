//! Path rules for what a model proposes: relative, inside the repository, never under `.git/`.

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty.
    #[error("an empty path")]
    Empty,
    /// Starts at the root or a drive.
    #[error("`{0}` is absolute; paths must be relative to the repository root")]
    Absolute(String),
    /// Climbs out with `..`.
    #[error("`{0}` contains `..`; paths must stay inside the repository")]
    ParentDir(String),
    /// Inside the git directory.
    #[error("`{0}` is under `.git/`, which is never changed")]
    GitDir(String),
    /// Control characters or backslashes.
    #[error("`{0}` contains a control character or a backslash")]
    Characters(String),
}

/// Checks `path` and returns it normalised (`./` and repeated `/` removed).
pub fn check(path: &str) -> Result<String, PathError> {
    let shown = || path.chars().take(200).collect::<String>();
    if path.trim().is_empty() {
        return Err(PathError::Empty);
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::Characters(shown().escape_debug().to_string()));
    }
    let bytes = path.as_bytes();
    if path.starts_with('/') || path.starts_with('~') || (bytes.len() >= 2 && bytes[1] == b':') {
        return Err(PathError::Absolute(shown()));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() {
        return Err(PathError::Empty);
    }
    if parts.contains(&"..") {
        return Err(PathError::ParentDir(shown()));
    }
    if parts.iter().any(|p| p.eq_ignore_ascii_case(".git")) {
        return Err(PathError::GitDir(shown()));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused_and_safe_ones_normalised() {
        assert_eq!(check("./src//lib.rs"), Ok("src/lib.rs".to_owned()));
        assert!(matches!(check("/etc/passwd"), Err(PathError::Absolute(_))));
        assert!(matches!(check("C:/x"), Err(PathError::Absolute(_))));
        assert!(matches!(check("src/../../x"), Err(PathError::ParentDir(_))));
        assert!(matches!(check(".git/hooks/pre-commit"), Err(PathError::GitDir(_))));
        assert!(matches!(check("sub/.GIT/config"), Err(PathError::GitDir(_))));
        assert!(matches!(check("a\\b"), Err(PathError::Characters(_))));
        assert!(matches!(check(""), Err(PathError::Empty)));
        assert_eq!(check(".github/workflows/ci.yml"), Ok(".github/workflows/ci.yml".to_owned()));
    }
}
