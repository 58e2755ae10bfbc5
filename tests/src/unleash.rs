//! A real Unleash server (the npm package `unleash-server`, pinned) for the flag tests, on a fresh
//! database of the test Postgres and a port the OS picks, with an admin token and a client token
//! configured at start-up; flags are made through its admin API as an operator would.
//!
//! The server is found in `PRFIX_TEST_UNLEASH_DIR`, else in npm's global modules
//! (`npm i -g unleash-server@7.5.1`, as `scripts/test` installs it). A missing or other version fails
//! the test with how to install it: the flag tests never skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::TestDatabase;

/// The version the tests are written against (`scripts/test` installs it).
pub const UNLEASH_VERSION: &str = "7.5.1";
/// The admin API token configured at start-up.
pub const ADMIN_TOKEN: &str = "*:*.prfix-test-admin-token";
/// The client (backend) token configured at start-up: project `default`, environment `development`.
pub const CLIENT_TOKEN: &str = "default:development.prfix-test-client-token";
/// How long the server gets to start (migrations of a fresh database included).
const START_LIMIT: Duration = Duration::from_secs(120);

fn install_hint() -> String {
    format!(
        "install it with `npm i -g unleash-server@{UNLEASH_VERSION}` (Node.js 20 or later; `scripts/test` does this), \
         or point PRFIX_TEST_UNLEASH_DIR at a directory holding that package"
    )
}

/// The directory of the installed `unleash-server` package, checked to be the pinned version.
pub fn package_dir() -> PathBuf {
    let dir = match std::env::var_os("PRFIX_TEST_UNLEASH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let root = std::process::Command::new("npm")
                .args(["root", "-g"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run npm to find unleash-server ({e}): {}", install_hint()));
            PathBuf::from(String::from_utf8_lossy(&root.stdout).trim()).join("unleash-server")
        }
    };
    let manifest = std::fs::read_to_string(dir.join("package.json"))
        .unwrap_or_else(|e| panic!("unleash-server is not installed at {} ({e}): {}", dir.display(), install_hint()));
    let version = serde_json::from_str::<Value>(&manifest).ok().and_then(|m| m["version"].as_str().map(str::to_owned));
    assert_eq!(
        version.as_deref(),
        Some(UNLEASH_VERSION),
        "unleash-server at {} is not version {UNLEASH_VERSION}: {}",
        dir.display(),
        install_hint()
    );
    dir
}

/// A running Unleash server (killed when dropped).
pub struct UnleashServer {
    /// Base URL of its API (`http://127.0.0.1:<port>/api`), as `flags.unleash_url` takes it.
    pub api_url: String,
    child: Option<Child>,
    output: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    /// Its database (dropped after the server).
    _db: TestDatabase,
}

impl UnleashServer {
    /// Starts a server on a fresh database and waits until it listens.
    pub async fn start() -> Self {
        let dir = package_dir();
        let db = TestDatabase::fresh();
        let admin = crate::db::admin_url();
        let (client, connection) =
            tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("the test Postgres is reachable");
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE \"{}\"", db.name)).await.expect("a database for Unleash");
        // The package is an ES module whose `start` resolves with the listening server; port 0 lets
        // the OS pick, and the script prints the port it got.
        let script = format!(
            "import * as unleash from {entry};\n\
             const u = await unleash.start({{ server: {{ port: 0 }} }});\n\
             console.log(JSON.stringify({{ prfix_unleash_port: u.server.address().port }}));",
            entry = serde_json::to_string(&dir.join("dist/lib/server-impl.js").display().to_string())
                .expect("a path is JSON")
        );
        let mut child = Command::new("node")
            .args(["--input-type=module", "-e", &script])
            .env("DATABASE_URL", &db.url)
            .env("DATABASE_SSL", "false")
            .env("INIT_ADMIN_API_TOKENS", ADMIN_TOKEN)
            .env("INIT_BACKEND_API_TOKENS", CLIENT_TOKEN)
            .env("LOG_LEVEL", "warn")
            .env("UNLEASH_TELEMETRY_DISABLED", "true")
            .env("CHECK_VERSION", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node for unleash-server ({e}): {}", install_hint()));
        let output = Arc::new(Mutex::new(Vec::new()));
        for reader in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
                }
            });
        }
        let mut server =
            Self { api_url: String::new(), child: Some(child), output, http: reqwest::Client::new(), _db: db };
        let port = server.wait_for_port().await;
        server.api_url = format!("http://127.0.0.1:{port}/api");
        server
    }

    /// Everything the server printed, for failure messages.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n")
    }

    async fn wait_for_port(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            let port = self.output.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().find_map(|line| {
                serde_json::from_str::<Value>(line).ok()?["prfix_unleash_port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
            });
            if let Some(port) = port {
                return port;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("unleash-server exited with {status} before listening:\n{}", self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "unleash-server did not listen within {START_LIMIT:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server (an outage); its flags stay in its database.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/admin/{path}", self.api_url);
        let mut request = self.http.request(method.clone(), &url).header("Authorization", ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a flag in project `default` (off in every environment).
    pub async fn create_flag(&self, name: &str) {
        self.admin(
            reqwest::Method::POST,
            "projects/default/features",
            Some(json!({ "name": name, "type": "release" })),
        )
        .await;
    }

    /// Turns a flag on or off in `development` (turning on a flag without a strategy gives it the
    /// default one: everyone).
    pub async fn set_enabled(&self, name: &str, on: bool) {
        let path =
            format!("projects/default/features/{name}/environments/development/{}", if on { "on" } else { "off" });
        self.admin(reqwest::Method::POST, &path, None).await;
    }

    /// Adds a strategy (`{"name": "flexibleRollout", "parameters": {...}, "variants": [...]}`) in
    /// `development`.
    pub async fn add_strategy(&self, name: &str, strategy: Value) {
        let path = format!("projects/default/features/{name}/environments/development/strategies");
        self.admin(reqwest::Method::POST, &path, Some(strategy)).await;
    }

    /// Declares a context field that rollouts may stick to.
    pub async fn create_context_field(&self, name: &str) {
        self.admin(reqwest::Method::POST, "context", Some(json!({ "name": name, "stickiness": true }))).await;
    }

    /// What the server itself evaluates `flag` to in `development` for `context` (its playground):
    /// whether it is on, and the variant's name.
    pub async fn playground(&self, flag: &str, context: Value) -> (bool, String) {
        let body = json!({ "projects": "*", "environment": "development", "context": context });
        let answer = self.admin(reqwest::Method::POST, "playground", Some(body)).await;
        let feature = answer["features"]
            .as_array()
            .and_then(|features| features.iter().find(|f| f["name"] == flag))
            .unwrap_or_else(|| panic!("the playground does not know {flag}: {answer}"));
        let enabled = feature["isEnabled"].as_bool().unwrap_or(false);
        let variant = feature["variant"]["name"].as_str().unwrap_or_default().to_owned();
        (enabled, variant)
    }
}
