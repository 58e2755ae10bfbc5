//! Running the `prfix` binary as a user would, against services started in process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// What a run printed and how it ended.
pub struct Run {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code.
    pub code: i32,
}

/// A user's environment: a home and config directory of its own, no terminal, no colour.
pub struct User {
    /// The fake home.
    pub home: tempfile::TempDir,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl User {
    /// A user of `gateway` holding `token` (none: not logged in).
    pub fn new(gateway: &str, token: Option<&str>) -> Self {
        let home = tempfile::tempdir().expect("a home directory");
        let mut env = vec![
            ("PRFIX_GATEWAY".to_owned(), gateway.to_owned()),
            ("PRFIX_CONFIG_DIR".to_owned(), home.path().join("config").display().to_string()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        if let Some(token) = token {
            env.push(("PRFIX_TOKEN".to_owned(), token.to_owned()));
        }
        Self { home, env }
    }

    /// Runs `prfix args...` in `dir` (async: the services run on this test's runtime).
    pub async fn run(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_with_stdin(dir, args, "").await
    }

    /// `prfix args...` in `dir` with only this user's environment, its output captured.
    fn command(&self, dir: &Path, args: &[&str], stdin: Stdio) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_prfix"));
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Starts `prfix args...` in `dir` without waiting (to interrupt it).
    pub fn spawn(&self, dir: &Path, args: &[&str]) -> tokio::process::Child {
        self.command(dir, args, Stdio::null()).spawn().expect("prfix runs")
    }

    /// Runs with `stdin` as standard input.
    pub async fn run_with_stdin(&self, dir: &Path, args: &[&str], stdin: &str) -> Run {
        use tokio::io::AsyncWriteExt;
        let mut child = self.command(dir, args, Stdio::piped()).spawn().expect("prfix runs");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("write stdin");
        drop(input);
        let output = child.wait_with_output().await.expect("prfix ends");
        Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            code: output.status.code().unwrap_or(-1),
        }
    }

    /// The user's config directory.
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }
}

/// The gateway's URL of a test app.
pub fn gateway_url(app: &prfix_tests::TestApp) -> String {
    format!("http://{}", app.gateway.addr)
}

pub mod history;
pub mod up;
