//! [`Checkout::snapshot`]: the state of the working tree before `prfix fix` changes it, so that an
//! interrupted fix can put everything back.
//!
//! Tracked changes (staged and not) are kept in a stash commit made by `git stash create`, which
//! adds nothing to the stash list; untracked files that are not ignored are kept as blobs
//! (`git hash-object -w`), unreferenced objects git prunes in time. Neither touches a commit, a
//! branch, the index or the stash list.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prfix_engine::diff::quote_path;

use super::command::{git, one_line, run, stdout};
use super::{Checkout, GitError};

/// The working tree as it was when [`Checkout::snapshot`] was called.
#[derive(Debug, Clone)]
pub struct Snapshot {
    checkout: Checkout,
    stash: Option<String>,
    untracked: Vec<SavedFile>,
}

/// An untracked file kept by the snapshot.
#[derive(Debug, Clone)]
struct SavedFile {
    path: String,
    kind: Saved,
}

/// What an untracked file was.
#[derive(Debug, Clone)]
enum Saved {
    /// A regular file: its content's blob and its permission bits.
    File { blob: String, mode: u32 },
    /// A symbolic link and its target.
    Link(PathBuf),
}

impl Checkout {
    /// Remembers the working tree: tracked changes, staged or not, and untracked files that are
    /// not ignored. [`Snapshot::restore`] puts it back.
    pub fn snapshot(&self) -> Result<Snapshot, GitError> {
        self.head()?;
        let mut command = git(&self.root);
        command.args(["stash", "create"]);
        let created = stdout(command, "remember the working tree (git stash create)")?;
        let stash = Some(String::from_utf8_lossy(&created).trim().to_owned()).filter(|sha| !sha.is_empty());
        let mut files = Vec::new();
        let mut links = Vec::new();
        for path in self.untracked(&[])? {
            let full = self.root.join(&path);
            let metadata = std::fs::symlink_metadata(&full).map_err(|source| read_error(&full, source))?;
            if metadata.is_symlink() {
                let target = std::fs::read_link(&full).map_err(|source| read_error(&full, source))?;
                links.push(SavedFile { path, kind: Saved::Link(target) });
            } else if metadata.is_file() {
                files.push((path, permission_bits(&metadata)));
            }
        }
        let paths: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
        let blobs = self.hash_files(&paths, true)?;
        let mut untracked: Vec<SavedFile> = files
            .into_iter()
            .zip(blobs)
            .map(|((path, mode), blob)| SavedFile { path, kind: Saved::File { blob, mode } })
            .collect();
        untracked.extend(links);
        Ok(Snapshot { checkout: self.clone(), stash, untracked })
    }

    /// The blob shas of the files at `paths` (from the top), stored in the repository when
    /// `write`; content is taken byte for byte, without clean filters.
    fn hash_files(&self, paths: &[&str], write: bool) -> Result<Vec<String>, GitError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = git(&self.root);
        command.args(["hash-object", "--no-filters", "--stdin-paths"]);
        if write {
            command.arg("-w");
        }
        // One name a line, C-quoted when needed, as `--stdin-paths` reads them.
        let input: String = paths.iter().map(|path| quote_path(path) + "\n").collect();
        let output = run(command, Some(input.as_bytes()))?;
        let shas: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
        if !output.status.success() || shas.len() != paths.len() {
            return Err(GitError::Failed {
                what: "read untracked files".to_owned(),
                message: one_line(&output.stderr),
            });
        }
        Ok(shas)
    }
}

impl Snapshot {
    /// The stash commit holding the tracked changes, `None` when there were none; `git stash
    /// apply <sha>` puts them back by hand.
    pub fn stash(&self) -> Option<&str> {
        self.stash.as_deref()
    }

    /// Puts the working tree back as it was: tracked files reset to `HEAD` and the snapshot's
    /// changes (with what was staged) applied again, untracked files made since removed (with the
    /// directories they leave empty), untracked files that were there rewritten if they changed.
    /// Ignored files are left alone.
    pub fn restore(&self) -> Result<(), GitError> {
        let root = &self.checkout.root;
        let mut command = git(root);
        command.args(["reset", "--hard", "--quiet", "HEAD"]);
        stdout(command, "reset the working tree to HEAD")?;

        let kept: HashSet<&str> = self.untracked.iter().map(|file| file.path.as_str()).collect();
        for path in self.checkout.untracked(&[])? {
            if !kept.contains(path.as_str()) {
                remove_file(root, &path)?;
            }
        }

        if let Some(sha) = &self.stash {
            let mut command = git(root);
            command.args(["stash", "apply", "--index", "--quiet", sha]);
            stdout(command, &format!("put back the saved changes (recover them with `git stash apply {sha}`)"))?;
        }

        self.restore_untracked()
    }

    /// Rewrites the saved untracked files that changed or disappeared.
    fn restore_untracked(&self) -> Result<(), GitError> {
        let root = &self.checkout.root;
        let mut present = Vec::new();
        for file in &self.untracked {
            let full = root.join(&file.path);
            let current = std::fs::symlink_metadata(&full).ok();
            match &file.kind {
                Saved::File { .. } if current.as_ref().is_some_and(std::fs::Metadata::is_file) => present.push(file),
                Saved::File { blob, mode } => write_blob(&self.checkout, &full, blob, *mode)?,
                Saved::Link(target) => {
                    if std::fs::read_link(&full).ok().as_ref() != Some(target) {
                        write_link(&full, target)?;
                    }
                }
            }
        }
        let paths: Vec<&str> = present.iter().map(|file| file.path.as_str()).collect();
        let shas = self.checkout.hash_files(&paths, false)?;
        for (file, sha) in present.into_iter().zip(shas) {
            if let Saved::File { blob, mode } = &file.kind
                && *blob != sha
            {
                write_blob(&self.checkout, &root.join(&file.path), blob, *mode)?;
            }
        }
        Ok(())
    }
}

/// Removes the file `path` (from the top of `root`) and the directories it leaves empty.
fn remove_file(root: &Path, path: &str) -> Result<(), GitError> {
    let full = root.join(path);
    match std::fs::remove_file(&full) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(GitError::File { what: "remove", path: full, source }),
    }
    let mut dir = full.parent();
    while let Some(current) = dir {
        // `remove_dir` fails on a directory that is not empty, which ends the walk.
        if current == root || !current.starts_with(root) || std::fs::remove_dir(current).is_err() {
            break;
        }
        dir = current.parent();
    }
    Ok(())
}

/// Writes the blob `blob` to `full` with the permission bits `mode`.
fn write_blob(checkout: &Checkout, full: &Path, blob: &str, mode: u32) -> Result<(), GitError> {
    let mut command = git(&checkout.root);
    command.args(["cat-file", "blob", blob]);
    let content = stdout(command, "read a saved untracked file")?;
    prepare(full)?;
    std::fs::write(full, content).map_err(|source| write_error(full, source))?;
    set_permission_bits(full, mode)
}

/// Makes `full` a symbolic link to `target`.
fn write_link(full: &Path, target: &Path) -> Result<(), GitError> {
    prepare(full)?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, full).map_err(|source| write_error(full, source))?;
    #[cfg(not(unix))]
    std::fs::write(full, target.to_string_lossy().as_bytes()).map_err(|source| write_error(full, source))?;
    Ok(())
}

/// Makes room for a file at `full`: its directory created, whatever is there now removed.
fn prepare(full: &Path) -> Result<(), GitError> {
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(|source| write_error(parent, source))?;
    }
    match std::fs::symlink_metadata(full) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(full),
        Ok(_) => std::fs::remove_file(full),
        Err(_) => Ok(()),
    }
    .map_err(|source| GitError::File { what: "remove", path: full.to_path_buf(), source })
}

#[cfg(unix)]
fn permission_bits(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permission_bits(_metadata: &std::fs::Metadata) -> u32 {
    0o644
}

#[cfg(unix)]
fn set_permission_bits(full: &Path, mode: u32) -> Result<(), GitError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(full, std::fs::Permissions::from_mode(mode)).map_err(|source| write_error(full, source))
}

#[cfg(not(unix))]
fn set_permission_bits(_full: &Path, _mode: u32) -> Result<(), GitError> {
    Ok(())
}

fn read_error(path: &Path, source: std::io::Error) -> GitError {
    GitError::File { what: "read", path: path.to_path_buf(), source }
}

fn write_error(path: &Path, source: std::io::Error) -> GitError {
    GitError::File { what: "write", path: path.to_path_buf(), source }
}
