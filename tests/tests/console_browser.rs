//! The web console end to end in a real headless Chromium (WebDriver through chromedriver) against
//! the whole system with the fake model: sign in, start a review from a pasted diff, watch it
//! finish, see each finding at its line, download SARIF, find the review's events in the audit
//! log, create and revoke an API key; a developer sees no admin links and is refused by the admin
//! API; the session cookie is invisible to page scripts. axe-core checks every page, and each page
//! is photographed at 375 and 1440 px into `$CARGO_TARGET_DIR/console-screenshots/`.
//!
//! Regenerate the screenshots: `cargo nextest run -p prfix-tests --test console_browser`.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use prfix_tests::app::{provision_service_key, run};
use prfix_tests::auth::ADMIN_PASSWORD;
use prfix_tests::browser::Browser;
use prfix_tests::{Reply, TestApp, spawn_app};
use serde_json::{Value, json};

const MODEL: &str = "qwen2.5-coder:14b";
const DEVELOPER: &str = "dev-user";
const DEVELOPER_PASSWORD: &str = "developer-password-123";

/// Two files; the findings below sit on new lines 6 of `src/lib.rs` and 2 of `app/main.py`.
const DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,7 @@
 pub fn add(a: u32, b: u32) -> u32 {
-    a + b
+    a.wrapping_add(b)
 }
+
+pub fn div(a: u32, b: u32) -> u32 {
+    a / b
+}
diff --git a/app/main.py b/app/main.py
--- a/app/main.py
+++ b/app/main.py
@@ -1,2 +1,3 @@
 def charge(card):
-    return db.execute(\"SELECT * FROM cards WHERE id = ?\", [card])
+    query = \"SELECT * FROM cards WHERE id = \" + card
+    return db.execute(query)
";

const ANSWER: &str = r#"{"findings": [
  {"path": "app/main.py", "line": 2, "severity": "critical", "category": "security", "title": "SQL injection", "body": "card is concatenated into SQL."},
  {"path": "src/lib.rs", "line": 6, "severity": "major", "category": "bug", "title": "Division by zero", "body": "b may be 0."}
]}"#;

fn base(app: &TestApp) -> String {
    format!("http://{}", app.gateway.addr)
}

async fn goto(browser: &Browser, url: &str) {
    browser.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
}

async fn heading(browser: &Browser, title: &str) {
    browser
        .wait_for(
            &format!("the page `{title}`"),
            &format!("document.querySelector('main h1')?.textContent === {title:?}"),
        )
        .await;
}

/// Signs in with the keyboard: types into the labelled fields and presses Enter.
async fn sign_in(browser: &Browser, app: &TestApp, username: &str, password: &str) {
    goto(browser, &format!("{}/", base(app))).await;
    heading(browser, "Sign in").await;
    let user = browser.client.find(Locator::Id("username")).await.expect("a user name field");
    user.send_keys(username).await.expect("typing the user name");
    let pass = browser.client.find(Locator::Id("password")).await.expect("a password field");
    pass.send_keys(&format!("{password}\u{E007}")).await.expect("typing the password and Enter");
    heading(browser, "Tasks").await;
}

/// The session cookie exists (WebDriver sees every cookie) but page scripts cannot read it.
async fn assert_cookie_hidden_from_scripts(browser: &Browser) {
    let cookie = browser.client.get_named_cookie("prfix_console").await.expect("the session cookie is set");
    assert_eq!(cookie.http_only(), Some(true), "the session cookie is HttpOnly");
    let visible = browser.js("document.cookie", "return document.cookie", vec![]).await;
    assert!(
        !visible.as_str().unwrap_or_default().contains("prfix_console"),
        "document.cookie shows the session: {visible}"
    );
}

/// The status of a `fetch` the page makes with its cookie (and the session's CSRF token when
/// `csrf`).
async fn page_fetch(browser: &Browser, method: &str, path: &str, csrf: bool) -> i64 {
    let status = browser
        .client
        .execute_async(
            "const [method, path, csrf, done] = arguments;
             const headers = { 'content-type': 'application/json' };
             const token = csrf ? fetch('/console/session').then((r) => r.json()).then((s) => s.csrf_token) : Promise.resolve(null);
             token.then((t) => {
               if (t) headers['x-csrf-token'] = t;
               return fetch(path, { method, headers, body: method === 'GET' ? undefined : '{}' });
             }).then((r) => done(r.status), (e) => done(String(e)));",
            vec![json!(method), json!(path), json!(csrf)],
        )
        .await
        .unwrap_or_else(|e| panic!("fetch {method} {path} from the page: {e}"));
    status.as_i64().unwrap_or_else(|| panic!("fetch {method} {path} from the page failed: {status}"))
}

async fn create_developer(app: &TestApp) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/users", base(app)))
        .bearer_auth(app.admin_token().await)
        .json(&json!({"username": DEVELOPER, "password": DEVELOPER_PASSWORD, "roles": ["ROLE_DEVELOPER"]}))
        .send()
        .await
        .expect("create the developer");
    assert!(response.status().is_success(), "create the developer: {:?}", response.text().await);
}

async fn whoami_status(app: &TestApp, bearer: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/auth/whoami", base(app)))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("whoami")
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_admin_reviews_a_pasted_diff_audits_it_and_manages_keys_and_a_developer_sees_no_admin_pages() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(ANSWER).with_delay(Duration::from_millis(300)));
    create_developer(&app).await;
    // The harness's agent keeps its audit records in its outbox; an agent with the service key
    // relays them to the audit log, as `prfix up` does, so the console can show them.
    let agent_key = provision_service_key(app.auth_client_as(&app.admin_token().await), "agent").await;
    let mut settings = prfix_tests::app::agent_settings(&app.common);
    settings.audit_credential = Some(secrecy::SecretString::from(agent_key));
    settings.agent.audit_url = format!("http://{}", app.gateway.addr);
    let relaying = prfix_agent::Application::build(settings).await.expect("an agent with a relay");
    let _relay = run(relaying.local_addr(), |stop| relaying.run_until_stopped(stop));
    let browser = Browser::start().await;

    goto(&browser, &format!("{}/", base(&app))).await;
    heading(&browser, "Sign in").await;
    browser.assert_accessible("sign-in").await;
    browser.screenshots("sign-in").await;
    sign_in(&browser, &app, "admin", ADMIN_PASSWORD).await;
    assert_cookie_hidden_from_scripts(&browser).await;
    let admin_links = browser
        .js(
            "admin links",
            "return [...document.querySelectorAll('a[href^=\"#/admin\"]')].filter((a) => a.offsetParent).length",
            vec![],
        )
        .await;
    assert_eq!(admin_links, 4, "an admin sees the Users, API keys, Models and Forges links right after signing in");
    // From the page itself: a state-changing call without the CSRF header is refused.
    assert_eq!(page_fetch(&browser, "POST", "/v1/api-keys", false).await, 403, "a POST without X-CSRF-Token");

    // Start a review from a pasted diff.
    goto(&browser, &format!("{}/#/review/new", base(&app))).await;
    heading(&browser, "New review").await;
    browser.assert_accessible("new-review").await;
    browser.screenshots("new-review").await;
    browser
        .js("paste the diff", "document.getElementById('diff').value = arguments[0]; return true;", vec![json!(DIFF)])
        .await;
    browser.client.find(Locator::Id("start-review")).await.expect("the start button").click().await.expect("start");
    let state = browser
        .wait_for("the review to finish", "['succeeded','failed','cancelled'].includes(document.getElementById('task-state')?.textContent) && document.querySelector('#result h2') && document.getElementById('task-state').textContent")
        .await;
    assert_eq!(state, "succeeded", "the review did not succeed");
    let task_id = browser.js("task id", "return location.hash.split('/')[2]", vec![]).await;
    let task_id = task_id.as_str().expect("the task id in the address").to_owned();

    // Each finding sits in the row right after its line, on the new side.
    let placed = browser
        .js(
            "findings at their lines",
            "return [...document.querySelectorAll('tr.finding')].map((row) => {
               const box = row.querySelector('.finding-box');
               const line = row.previousElementSibling;
               return { path: box.dataset.path, line: Number(box.dataset.line), after: Number(line.dataset.new),
                        file: row.closest('.diff-file').querySelector('h2').textContent,
                        severity: box.querySelector('.badge').textContent };
             });",
            vec![],
        )
        .await;
    let mut placed: Vec<Value> = serde_json::from_value(placed).expect("a list");
    placed.sort_by_key(|p| p["path"].as_str().unwrap_or_default().to_owned());
    let shown = browser.js("the result", "return document.getElementById('result').innerText", vec![]).await;
    assert_eq!(
        placed,
        vec![
            json!({"path": "app/main.py", "line": 2, "after": 2, "file": "app/main.py", "severity": "critical"}),
            json!({"path": "src/lib.rs", "line": 6, "after": 6, "file": "src/lib.rs", "severity": "major"}),
        ],
        "findings inline at their lines; the page shows:\n{}",
        shown.as_str().unwrap_or_default()
    );
    browser.assert_accessible("task-review").await;
    browser.screenshots("task-review").await;

    // SARIF, rendered in the page from the stored result.
    browser
        .client
        .find(Locator::Id("download-sarif"))
        .await
        .expect("the SARIF button")
        .click()
        .await
        .expect("download");
    let file = browser.downloads.path().join(format!("review-{task_id}.sarif"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let sarif: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(value) = serde_json::from_str(&text)
        {
            break value;
        }
        assert!(Instant::now() < deadline, "no SARIF download at {} within 30 s", file.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sarif["version"], "2.1.0");
    let mut results: Vec<(String, i64, String)> = sarif["runs"][0]["results"]
        .as_array()
        .expect("SARIF results")
        .iter()
        .map(|r| {
            let location = &r["locations"][0]["physicalLocation"];
            (
                location["artifactLocation"]["uri"].as_str().unwrap_or_default().to_owned(),
                location["region"]["startLine"].as_i64().unwrap_or_default(),
                r["level"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    results.sort();
    assert_eq!(
        results,
        vec![("app/main.py".to_owned(), 2, "error".to_owned()), ("src/lib.rs".to_owned(), 6, "error".to_owned())]
    );

    // The tasks list shows it.
    goto(&browser, &format!("{}/#/tasks", base(&app))).await;
    heading(&browser, "Tasks").await;
    browser.wait_for("the task in the list", &format!("document.querySelector('a[href=\"#/tasks/{task_id}\"]')")).await;
    browser.assert_accessible("tasks").await;
    browser.screenshots("tasks").await;

    // The audit log has the review's events (the agent's relay ships them shortly after).
    let resource = format!("tasks/{task_id}");
    let audit_url = format!("{}/#/audit?resource=tasks%2F{task_id}", base(&app));
    browser.audit_events(&base(&app), &resource, &["agent.task.create.review", "agent.task.succeeded"]).await;
    browser.client.find(Locator::Id("verify")).await.expect("the Verify button").click().await.expect("verify");
    let verified = browser.wait_for("the Verify result", "document.getElementById('verify-result')?.textContent").await;
    assert!(verified.as_str().unwrap_or_default().starts_with("OK"), "Verify: {verified}");
    // The audit service signs checkpoints on its own schedule: the page is opened again until one shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = browser
            .wait_for("the checkpoint section", "document.querySelector('section[aria-label=\"latest checkpoint\"] dl') ? 'dl' : document.getElementById('no-checkpoint') ? 'none' : null")
            .await;
        if shown == "dl" {
            break;
        }
        assert!(Instant::now() < deadline, "no signed checkpoint shown within 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
        goto(&browser, "about:blank").await;
        goto(&browser, &audit_url).await;
        heading(&browser, "Audit log").await;
    }
    browser.assert_accessible("audit").await;
    browser.screenshots("audit").await;

    // Users, then an API key created (its secret shown once) and revoked.
    goto(&browser, &format!("{}/#/admin/users", base(&app))).await;
    heading(&browser, "Users").await;
    browser.wait_for("the users", &format!("document.body.innerText.includes({DEVELOPER:?})")).await;
    browser.assert_accessible("users").await;
    browser.screenshots("users").await;
    goto(&browser, &format!("{}/#/admin/keys", base(&app))).await;
    heading(&browser, "API keys").await;
    browser
        .client
        .find(Locator::Id("key-name"))
        .await
        .expect("the key name field")
        .send_keys("ci-e2e")
        .await
        .expect("type");
    browser.client.find(Locator::Id("create-key")).await.expect("the create button").click().await.expect("create");
    let secret = browser.wait_for("the key's secret", "document.getElementById('key-secret')?.textContent").await;
    let secret = secret.as_str().expect("a secret").to_owned();
    assert!(secret.starts_with("prfix_"), "{secret}");
    assert_eq!(whoami_status(&app, &secret).await, 200, "the new key works");
    // The list holds the services' keys too: this key's button is found by its label.
    const REVOKE: &str =
        "[...document.querySelectorAll('#keys button[data-key]')].find((b) => b.textContent === 'Revoke ci-e2e')";
    browser.wait_for("the key in the list", REVOKE).await;
    browser.assert_accessible("api-keys").await;
    browser.screenshots("api-keys").await;
    browser
        .client
        .find(Locator::XPath("//table[@id='keys']//button[text()='Revoke ci-e2e']"))
        .await
        .expect("the revoke button")
        .click()
        .await
        .expect("revoke");
    browser.wait_for("the key gone from the list", &format!("!({REVOKE})")).await;
    assert_eq!(whoami_status(&app, &secret).await, 401, "the revoked key is refused");

    // Models and the Ollama endpoints' health.
    goto(&browser, &format!("{}/#/admin/models", base(&app))).await;
    heading(&browser, "Models").await;
    browser.wait_for("the model", &format!("document.getElementById('models')?.innerText.includes({MODEL:?})")).await;
    let health = browser.wait_for("the endpoint", "document.getElementById('endpoints')?.innerText").await;
    assert!(health.as_str().unwrap_or_default().contains("reachable"), "{health}");
    browser.assert_accessible("models").await;
    browser.screenshots("models").await;

    // Forge connections: this system has none, and the page says how to add one.
    goto(&browser, &format!("{}/#/admin/forges", base(&app))).await;
    heading(&browser, "Forges").await;
    browser.wait_for("the empty forge list", "document.getElementById('no-forges')").await;
    browser.assert_accessible("forges").await;
    browser.screenshots("forges").await;

    // Sign out; the developer sees no admin links and the admin API refuses them.
    browser.client.find(Locator::Id("logout")).await.expect("the sign-out button").click().await.expect("sign out");
    heading(&browser, "Sign in").await;
    sign_in(&browser, &app, DEVELOPER, DEVELOPER_PASSWORD).await;
    assert_cookie_hidden_from_scripts(&browser).await;
    let admin_links =
        browser.js("admin links", "return document.querySelectorAll('a[href^=\"#/admin\"]').length", vec![]).await;
    assert_eq!(admin_links, 0, "a developer sees admin links");
    assert_eq!(page_fetch(&browser, "GET", "/v1/users", false).await, 403, "GET /v1/users as a developer");
    assert_eq!(
        page_fetch(&browser, "POST", "/v1/api-keys", true).await,
        403,
        "POST /v1/api-keys as a developer without an admin's rights"
    );
    goto(&browser, &format!("{}/#/admin/users", base(&app))).await;
    heading(&browser, "Tasks").await;
    browser.assert_accessible("tasks-developer").await;
    browser.screenshots("tasks-developer").await;
    browser.close().await;
}

#[tokio::test]
async fn a_running_task_is_followed_live_and_cancelled_from_its_page() {
    let app = spawn_app().await;
    app.ollama.set_models(&[MODEL]);
    // The model starts answering and never finishes: the task stays running until cancelled.
    app.ollama.set_default("/api/chat", Reply::chat_hanging(&["{\"findings\": ["]));
    let browser = Browser::start().await;
    sign_in(&browser, &app, "admin", ADMIN_PASSWORD).await;
    goto(&browser, &format!("{}/#/review/new", base(&app))).await;
    heading(&browser, "New review").await;
    browser
        .js("paste the diff", "document.getElementById('diff').value = arguments[0]; return true;", vec![json!(DIFF)])
        .await;
    browser.client.find(Locator::Id("start-review")).await.expect("the start button").click().await.expect("start");
    // The state comes from the live stream: `running` while the model is still answering.
    browser
        .wait_for("the task running", "document.getElementById('task-state')?.textContent === 'running' && !document.getElementById('cancel').hidden")
        .await;
    browser
        .wait_for(
            "an event from the watch stream",
            "document.querySelectorAll('ol[aria-label=progress] li').length >= 1",
        )
        .await;
    browser.assert_accessible("task-running").await;
    browser.screenshots("task-running").await;
    browser.client.find(Locator::Id("cancel")).await.expect("the cancel button").click().await.expect("cancel");
    browser.wait_for("the task cancelled", "document.getElementById('task-state')?.textContent === 'cancelled'").await;
    let hidden = browser.js("cancel button", "return document.getElementById('cancel').hidden", vec![]).await;
    assert_eq!(hidden, true, "a cancelled task offers no cancel");
    browser.close().await;
}
