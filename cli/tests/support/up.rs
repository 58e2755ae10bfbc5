//! `prfix up` run as a user runs it: the binary in a process of its own, on a fresh database, with
//! the fake Ollama, every port chosen by the system, its output kept for assertions.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prfix_tests::TestDatabase;
use prfix_tests::fake_ollama::{FakeOllama, Reply};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The model the fake serves, as the agent's reasoning and coding model.
pub const MODEL: &str = "qwen2.5-coder:7b";

/// The bootstrap admin's password of every `prfix up` started here.
pub const ADMIN_PASSWORD: &str = "docs-admin-password-1";

/// A running `prfix up`.
pub struct Up {
    /// The gateway's URL, as the banner printed it.
    pub gateway: String,
    /// Everything printed so far on standard output and standard error, in order.
    pub output: Arc<Mutex<String>>,
    /// The fake model behind the agent.
    pub ollama: FakeOllama,
    /// Its database (dropped with it).
    pub database: Arc<TestDatabase>,
    /// Its working directory (the data directory is inside).
    pub dir: Arc<tempfile::TempDir>,
    child: tokio::process::Child,
}

/// A loopback port free now (the agent and the audit service need theirs before the gateway,
/// which is told them, starts; the gateway itself binds port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

impl Up {
    /// Starts `prfix up ARGS` on a fresh database and waits for its banner.
    pub async fn start(args: &[&str]) -> Self {
        let database = Arc::new(TestDatabase::fresh());
        let dir = Arc::new(tempfile::tempdir().expect("a working directory"));
        Self::start_on(database, dir, args).await
    }

    /// Starts `prfix up ARGS` on `database`, in `dir`, and waits for its banner.
    pub async fn start_on(database: Arc<TestDatabase>, dir: Arc<tempfile::TempDir>, args: &[&str]) -> Self {
        let ollama = FakeOllama::start().await;
        ollama.set_models(&[MODEL]);
        ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
        let (agent, audit) = (free_port(), free_port());
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_prfix"));
        command
            .arg("up")
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("PRFIX_DATABASE_URL", &database.url)
            .env("PRFIX_OLLAMA_URL", ollama.url())
            .env("PRFIX_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("PRFIX_GATEWAY__LISTEN", "127.0.0.1:0")
            .env("PRFIX_GATEWAY__ADMIN_LISTEN", "127.0.0.1:0")
            .env("PRFIX_GATEWAY__AGENT_URL", format!("http://127.0.0.1:{agent}"))
            .env("PRFIX_GATEWAY__AUDIT_URL", format!("http://127.0.0.1:{audit}"))
            .env("PRFIX_AGENT__LISTEN", format!("127.0.0.1:{agent}"))
            .env("PRFIX_AGENT__ADMIN_LISTEN", "127.0.0.1:0")
            .env("PRFIX_AUDIT__LISTEN", format!("127.0.0.1:{audit}"))
            .env("PRFIX_AUDIT__ADMIN_LISTEN", "127.0.0.1:0")
            .env("PRFIX_AGENT__REASONING_MODEL", MODEL)
            .env("PRFIX_AGENT__CODING_MODEL", MODEL)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("prfix up starts");
        let output = Arc::new(Mutex::new(String::new()));
        let (banner_tx, mut banner_rx) = tokio::sync::mpsc::unbounded_channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped stdout")) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().expect("piped stderr")),
        ] {
            let (output, banner_tx) = (output.clone(), banner_tx.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(url) = line.trim_start().strip_prefix("gateway   ") {
                        let _ = banner_tx.send(url.split_whitespace().next().unwrap_or_default().to_owned());
                    }
                    if let Ok(mut all) = output.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                }
            });
        }
        drop(banner_tx);
        let gateway = match tokio::time::timeout(Duration::from_secs(60), banner_rx.recv()).await {
            Ok(Some(url)) => url,
            _ => panic!("prfix up printed no banner:\n{}", output.lock().map(|o| o.clone()).unwrap_or_default()),
        };
        let up = Self { gateway, output, ollama, database, dir, child };
        // The whole banner, not only its gateway line.
        up.wait_for("Press Ctrl-C to stop.").await;
        up
    }

    /// What `prfix up` printed so far.
    pub fn printed(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Waits until `prfix up` has printed a line containing `text`, up to 30 s.
    pub async fn wait_for(&self, text: &str) -> String {
        for _ in 0..300 {
            let printed = self.printed();
            if let Some(line) = printed.lines().find(|l| l.contains(text)) {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prfix up never printed `{text}`:\n{}", self.printed())
    }

    /// Stops it as Ctrl-C would (SIGINT) and waits for it to end.
    pub async fn stop(mut self) -> (Arc<TestDatabase>, Arc<tempfile::TempDir>, String) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let printed = self.printed();
        (self.database.clone(), self.dir.clone(), printed)
    }
}

/// The directory of the `prfix` binary, to put first on a shell's `PATH`.
pub fn prfix_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_prfix")).parent().expect("the binary is in a directory").to_path_buf()
}
