//! Which files of a change a review looks at.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::ReviewError;
use crate::diff::{FilePatch, FileStatus};

/// Paths left out of reviews by default: lock files, generated, minified and vendored code.
pub const DEFAULT_IGNORE_GLOBS: &[&str] = &[
    "**/Cargo.lock",
    "**/package-lock.json",
    "**/npm-shrinkwrap.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/poetry.lock",
    "**/Pipfile.lock",
    "**/uv.lock",
    "**/go.sum",
    "**/Gemfile.lock",
    "**/composer.lock",
    "**/*.min.js",
    "**/*.min.css",
    "**/*.map",
    "**/*.pb.go",
    "**/*_pb2.py",
    "**/*_pb2_grpc.py",
    "**/*.generated.*",
    "**/generated/**",
    "**/vendor/**",
    "**/third_party/**",
    "**/node_modules/**",
    "**/dist/**",
];

/// Files of the diff the review looks at, and those it leaves out with the reason.
#[derive(Debug)]
pub struct Selection {
    /// Files to review.
    pub files: Vec<FilePatch>,
    /// Left out: path and why.
    pub skipped: Vec<(String, &'static str)>,
}

fn globset(extra: &[String]) -> Result<GlobSet, ReviewError> {
    let mut builder = GlobSetBuilder::new();
    for given in DEFAULT_IGNORE_GLOBS.iter().copied().chain(extra.iter().map(String::as_str)) {
        // A leading `/` anchors at the repository root, as in `.gitignore`; paths here are relative.
        let glob = given.strip_prefix('/').unwrap_or(given);
        let parsed =
            Glob::new(glob).map_err(|e| ReviewError::Glob { glob: given.to_owned(), reason: e.to_string() })?;
        builder.add(parsed);
        // Without a `/` anchor, `dist/**` matches in any directory too, as `.gitignore` would.
        if !given.starts_with('/')
            && !glob.starts_with("**/")
            && let Ok(anywhere) = Glob::new(&format!("**/{glob}"))
        {
            builder.add(anywhere);
        }
    }
    builder.build().map_err(|e| ReviewError::Glob { glob: extra.join(", "), reason: e.to_string() })
}

/// Leaves out binary files, deletions, files without hunks and ignored paths.
pub fn select(patches: Vec<FilePatch>, extra_globs: &[String]) -> Result<Selection, ReviewError> {
    let ignore = globset(extra_globs)?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for patch in patches {
        let path = patch.path().to_owned();
        if patch.binary {
            skipped.push((path, "binary"));
        } else if matches!(patch.status, FileStatus::Deleted) {
            skipped.push((path, "deleted"));
        } else if patch.hunks.is_empty() {
            skipped.push((path, "no content change"));
        } else if ignore.is_match(&path) {
            skipped.push((path, "ignored (lock, generated or vendored)"));
        } else {
            files.push(patch);
        }
    }
    Ok(Selection { files, skipped })
}
