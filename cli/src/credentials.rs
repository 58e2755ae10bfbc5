//! The tokens `prfix login` keeps: `credentials.toml` in the user's configuration directory
//! ([`crate::config::config_dir`]), readable by the user alone.
//!
//! The directory is created with mode 0700 and the file written with mode 0600 through a temporary
//! file renamed into place, so it is never readable by others, even for a moment, nor left half
//! written. A file that others can read is refused until its mode is fixed.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, config_dir};

/// Seconds before its expiry at which an access token is renewed.
const REFRESH_MARGIN: i64 = 60;

/// What went wrong keeping the credentials; each message is one line saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The configuration directory is unknown.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The file is readable or writable by other users.
    #[error("refusing to use {}: other users can access it (mode {mode:04o}): run `chmod 600 {}`", path.display(), path.display())]
    Insecure {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid credentials.
    #[error("{} is damaged ({message}): run `prfix login` again", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, on one line.
        message: String,
    },
    /// A profile name that cannot be a file name.
    #[error("profile name `{0}` is not 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)")]
    Profile(String),
    /// The file or its directory cannot be written or removed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The tokens of one login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The gateway these tokens are for.
    pub gateway: String,
    /// Who logged in.
    pub username: String,
    /// The short-lived access token.
    pub access_token: String,
    /// The token that renews the access token, when the gateway gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires, in Unix seconds.
    pub access_expires_at: i64,
    /// An API key used instead of the tokens, when logged in with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl Credentials {
    /// Whether the access token expires within a minute of `now` (Unix seconds), or has expired.
    pub fn needs_refresh(&self, now: i64) -> bool {
        self.access_expires_at <= now.saturating_add(REFRESH_MARGIN)
    }
}

/// Secrets stay out of logs and panic messages.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("gateway", &self.gateway)
            .field("username", &self.username)
            .field("access_token", &"<redacted>")
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("access_expires_at", &self.access_expires_at)
            .field("api_key", &hidden(&self.api_key))
            .finish()
    }
}

/// The profile this process uses (`--profile`, `PRFIX_PROFILE`), chosen once at start; `None`: the
/// default profile.
static PROFILE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Chooses the profile whose credentials this process reads and writes (once, before any is read):
/// `None` is the default profile (`credentials.toml`), a name keeps a login of its own
/// (`profiles/<name>.toml`), so several gateways or users can stay logged in, like kubectl contexts.
pub fn use_profile(name: Option<String>) -> Result<(), CredentialsError> {
    if let Some(name) = &name
        && !valid_profile(name)
    {
        return Err(CredentialsError::Profile(name.clone()));
    }
    let _ = PROFILE.set(name);
    Ok(())
}

/// The profile in use (`None`: the default one).
pub fn profile() -> Option<&'static str> {
    PROFILE.get().and_then(|p| p.as_deref())
}

/// A profile name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
fn valid_profile(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where the credentials are kept: `credentials.toml` in the configuration directory for the
/// default profile, `profiles/<name>.toml` there for a named one.
pub fn path() -> Result<PathBuf, CredentialsError> {
    path_for(profile())
}

/// Where the credentials of `profile` are kept.
pub fn path_for(profile: Option<&str>) -> Result<PathBuf, CredentialsError> {
    let dir = config_dir()?;
    Ok(match profile {
        None => dir.join("credentials.toml"),
        Some(name) => dir.join("profiles").join(format!("{name}.toml")),
    })
}

/// Every saved login: the default profile's (named `None`) first, then the named ones by name.
pub fn all_profiles() -> Result<Vec<(Option<String>, Credentials)>, CredentialsError> {
    let mut found = Vec::new();
    if let Some(saved) = load_from(&path_for(None)?)? {
        found.push((None, saved));
    }
    let dir = config_dir()?.join("profiles");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(source) => return Err(CredentialsError::Read { path: dir, source }),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".toml").map(str::to_owned))
        .filter(|name| valid_profile(name))
        .collect();
    names.sort();
    for name in names {
        if let Some(saved) = load_from(&path_for(Some(&name))?)? {
            found.push((Some(name), saved));
        }
    }
    Ok(found)
}

/// The saved credentials, `None` when nobody is logged in.
pub fn load() -> Result<Option<Credentials>, CredentialsError> {
    load_from(&path()?)
}

/// Saves `credentials`, replacing any saved before.
pub fn save(credentials: &Credentials) -> Result<(), CredentialsError> {
    save_to(&path()?, credentials)
}

/// Forgets the saved credentials; `false` when there were none.
pub fn delete() -> Result<bool, CredentialsError> {
    delete_at(&path()?)
}

/// The credentials in the file at `path`, `None` when it does not exist. A file other users can
/// access is refused.
pub fn load_from(path: &Path) -> Result<Option<Credentials>, CredentialsError> {
    let read_error = |source| CredentialsError::Read { path: path.to_path_buf(), source };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read_error(source)),
    };
    // The mode of the file opened, not of whatever the path names a moment later.
    let metadata = file.metadata().map_err(read_error)?;
    if let Some(mode) = others_access(&metadata) {
        return Err(CredentialsError::Insecure { path: path.to_path_buf(), mode });
    }
    let text = std::io::read_to_string(file).map_err(read_error)?;
    let credentials = toml::from_str(&text).map_err(|error: toml::de::Error| CredentialsError::Parse {
        path: path.to_path_buf(),
        message: error.message().split_whitespace().collect::<Vec<_>>().join(" "),
    })?;
    Ok(Some(credentials))
}

/// Writes `credentials` to `path` (mode 0600) through a temporary file in the same directory,
/// creating the directory (mode 0700) when missing.
pub fn save_to(path: &Path, credentials: &Credentials) -> Result<(), CredentialsError> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| write_error(parent, source))?;
        }
        private_dir_builder().create(dir).map_err(|source| write_error(dir, source))?;
    }
    let text = toml::to_string(credentials).map_err(|error| CredentialsError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error.to_string()),
    })?;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |time| time.subsec_nanos());
    let temporary = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = write_private(&temporary, text.as_bytes()).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(CredentialsError::Write { path: path.to_path_buf(), source });
    }
    Ok(())
}

/// The error for a failed write of `path`.
fn write_error(path: &Path, source: std::io::Error) -> CredentialsError {
    CredentialsError::Write { path: path.to_path_buf(), source }
}

/// Removes the file at `path`; `false` when there was none.
pub fn delete_at(path: &Path) -> Result<bool, CredentialsError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CredentialsError::Write { path: path.to_path_buf(), source }),
    }
}

/// Creates `path` (which must not exist) with mode 0600 from the start, and writes `content` to disk.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// A builder of directories only their owner can enter.
fn private_dir_builder() -> std::fs::DirBuilder {
    #[allow(unused_mut)]
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

/// The permission bits of a file that users other than its owner can access, `None` when only the
/// owner can.
#[cfg(unix)]
fn others_access(metadata: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn others_access(_metadata: &std::fs::Metadata) -> Option<u32> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sample() -> Credentials {
        Credentials {
            gateway: "https://prfix.example.com".to_owned(),
            username: "ada".to_owned(),
            access_token: "access-secret".to_owned(),
            refresh_token: Some("refresh-secret".to_owned()),
            access_expires_at: 1_700_000_000,
            api_key: None,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn saved_credentials_load_back_the_same() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("prfix/credentials.toml");
        assert_eq!(load_from(&path).expect("nothing saved"), None);
        save_to(&path, &sample()).expect("save");
        assert_eq!(load_from(&path).expect("load"), Some(sample()));
        let with_key = Credentials { api_key: Some("key".to_owned()), refresh_token: None, ..sample() };
        save_to(&path, &with_key).expect("save over");
        assert_eq!(load_from(&path).expect("load"), Some(with_key));
    }

    #[test]
    fn the_file_is_0600_in_a_0700_directory_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("nested/prfix");
        let path = config.join("credentials.toml");
        save_to(&path, &sample()).expect("save");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&config), 0o700);
        let names: Vec<_> =
            std::fs::read_dir(&config).expect("list").map(|entry| entry.expect("entry").file_name()).collect();
        assert_eq!(names, ["credentials.toml"]);
    }

    #[test]
    fn a_file_others_can_read_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("credentials.toml");
        save_to(&path, &sample()).expect("save");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = load_from(&path).expect_err("refused");
        let text = error.to_string();
        assert!(matches!(error, CredentialsError::Insecure { mode: 0o644, .. }), "{error:?}");
        assert!(text.contains("mode 0644") && text.ends_with(&format!("run `chmod 600 {}`", path.display())), "{text}");
        assert!(!text.contains('\n'));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(load_from(&path).expect("load"), Some(sample()));
    }

    #[test]
    fn delete_removes_the_file_and_says_whether_there_was_one() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("credentials.toml");
        save_to(&path, &sample()).expect("save");
        assert!(delete_at(&path).expect("delete"));
        assert!(!path.exists());
        assert!(!delete_at(&path).expect("delete again"));
        assert_eq!(load_from(&path).expect("load"), None);
    }

    #[test]
    fn a_damaged_file_says_to_log_in_again() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("credentials.toml");
        write_private(&path, b"gateway = 3\n").expect("write");
        let text = load_from(&path).expect_err("damaged").to_string();
        assert!(text.ends_with("run `prfix login` again") && !text.contains('\n'), "{text}");
    }

    #[test]
    fn tokens_are_refreshed_within_a_minute_of_expiry() {
        let credentials = sample();
        let expiry = credentials.access_expires_at;
        assert!(!credentials.needs_refresh(expiry - 61));
        assert!(credentials.needs_refresh(expiry - 60));
        assert!(credentials.needs_refresh(expiry + 1));
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let text = format!("{:?}", Credentials { api_key: Some("key-secret".to_owned()), ..sample() });
        assert!(text.contains("ada"));
        assert!(!text.contains("secret"), "{text}");
    }
}
