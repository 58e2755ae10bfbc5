//! A real headless Chromium driven over WebDriver (the Debian `chromium` and `chromium-driver`
//! packages, `scripts/test --setup-only` installs them) for the console's end-to-end tests, with
//! axe-core injected into pages and screenshots at phone and desktop widths.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// The widths every page is photographed at: a small phone and a desktop.
pub const WIDTHS: [u32; 2] = [375, 1440];
/// The pinned axe-core `scripts/test` installs.
pub const AXE_VERSION: &str = "4.14.1";
const HINT: &str = "`scripts/test --setup-only` installs chromium, chromium-driver and axe-core";

/// A Chromium under chromedriver, its profile and download folder private to one test.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// Where downloads land.
    pub downloads: tempfile::TempDir,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// Where screenshots go: `$CARGO_TARGET_DIR/console-screenshots` (or `target/` of the workspace).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(std::path::Path::new(".")).join("target")
    });
    target.join("console-screenshots")
}

fn axe_source() -> String {
    let path = std::env::var_os("PRFIX_AXE_CORE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(format!(".cache/prfix/axe-core-{AXE_VERSION}/node_modules/axe-core/axe.min.js"))
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("axe-core at {}: {e}. {HINT}", path.display()))
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session through it.
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver cannot start: {e}. {HINT}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http.get(format!("{url}/status")).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => panic!("chromedriver did not answer on {url} within 30 s"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let profile = tempfile::tempdir().expect("a profile folder");
        let downloads = tempfile::tempdir().expect("a download folder");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless",
                    // Tests run as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session through chromedriver: {e}. {HINT}"));
        Self { client, downloads, driver, _profile: profile }
    }

    /// Runs `script` (a function body) and returns its value; a failure names `what`.
    pub async fn js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("{what}: the page script failed: {e}"))
    }

    /// Waits (up to 60 s) until the expression `expr` is truthy in the page; returns its value.
    pub async fn wait_for(&self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let script = format!("try {{ return ({expr}) || null; }} catch (e) {{ return null; }}");
        loop {
            let value = self.client.execute(&script, vec![]).await.unwrap_or(Value::Null);
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.js("page text", "return document.body.innerText", vec![]).await;
                panic!("waited 60 s for {what} (`{expr}`); the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Injects axe-core and fails on any serious or critical violation of the page `name`.
    pub async fn assert_accessible(&self, name: &str) {
        let loaded = self
            .client
            .execute(&format!("{}\nreturn typeof axe;", axe_source()), vec![])
            .await
            .unwrap_or_else(|e| panic!("{name}: injecting axe-core failed: {e}"));
        assert_eq!(loaded, "object", "{name}: axe-core did not load");
        let violations = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then((r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
                     .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`)))
                   .catch((e) => done([`axe failed: ${e}`]));",
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: axe-core did not run: {e}"));
        let list: Vec<String> = serde_json::from_value(violations).unwrap_or_default();
        assert!(list.is_empty(), "{name}: serious or critical accessibility violations:\n{}", list.join("\n"));
    }

    /// Saves screenshots of the page at each of [`WIDTHS`] as `<name>-<width>.png`, then restores
    /// the desktop width.
    pub async fn screenshots(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for width in WIDTHS {
            self.client.set_window_size(width, 1000).await.unwrap_or_else(|e| panic!("resize to {width}: {e}"));
            // The layout settles in the next frame.
            self.js("settle", "return new Promise((r) => requestAnimationFrame(() => r(true)))", vec![]).await;
            let overflow =
                self.js("overflow", "return document.documentElement.scrollWidth - window.innerWidth", vec![]).await;
            if overflow.as_i64().unwrap_or(0) > 0 {
                let wide = self
                    .js(
                        "wide elements",
                        "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth)
                           .slice(0, 8).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`)",
                        vec![],
                    )
                    .await;
                panic!("{name} at {width} px scrolls sideways by {overflow} px (the page must fit its width): {wide}");
            }
            let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot of {name}: {e}"));
            let path = dir.join(format!("{name}-{width}.png"));
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        self.client.set_window_size(1440, 1000).await.unwrap_or_else(|e| panic!("resize back: {e}"));
    }

    /// Ends the session and chromedriver.
    /// Opens the console page `url` and waits until its `main h1` reads `title`.
    pub async fn open(&self, url: &str, title: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
        let script = format!("document.querySelector('main h1')?.textContent === {title:?}");
        self.wait_for(&format!("the page `{title}`"), &script).await;
    }

    /// Opens the console's audit log of `resource` (console at `base`) until its events name every
    /// one of `actions` (the agent's relay ships its records shortly after a task ends), for at most
    /// 30 s; returns the events' text.
    pub async fn audit_events(&self, base: &str, resource: &str, actions: &[&str]) -> String {
        let url = format!("{base}/#/audit?resource={}", resource.replace('/', "%2F"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.open(&url, "Audit log").await;
            let text = self
                .wait_for(
                    "the audit events",
                    "(document.getElementById('audit-events') || [...document.querySelectorAll('section[aria-label=events] p')].find((p) => !p.textContent.startsWith('Loading'))) && document.querySelector('section[aria-label=events]').innerText",
                )
                .await;
            let text = text.as_str().unwrap_or_default().to_owned();
            if actions.iter().all(|a| text.contains(a)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the audit events {actions:?} of {resource} did not appear within 30 s:\n{text}"
            );
            self.client.goto("about:blank").await.unwrap_or_else(|e| panic!("open about:blank: {e}"));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
