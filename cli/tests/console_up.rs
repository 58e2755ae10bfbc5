//! The web console of `prfix up` itself (the binary a user runs, its own agent relaying audit
//! records), in headless Chromium: sign in with the bootstrap admin's password, review a pasted diff
//! against the fake model, see the findings at their lines, and find the review's events in the
//! audit log. The whole console is tested in depth against the test system in
//! tests/tests/console_browser.rs; this checks that `prfix up` serves the same thing.

mod support;

use prfix_tests::browser::Browser;
use prfix_tests::fake_ollama::Reply;
use serde_json::json;
use support::up::{ADMIN_PASSWORD, Up};

const DIFF: &str = "diff --git a/app/main.py b/app/main.py
--- a/app/main.py
+++ b/app/main.py
@@ -1,2 +1,3 @@
 def charge(card):
-    return db.execute(\"SELECT * FROM cards WHERE id = ?\", [card])
+    query = \"SELECT * FROM cards WHERE id = \" + card
+    return db.execute(query)
";

const ANSWER: &str = r#"{"findings": [
  {"path": "app/main.py", "line": 2, "severity": "critical", "category": "security", "title": "SQL injection", "body": "card is concatenated into SQL."}
]}"#;

#[tokio::test]
async fn prfix_up_serves_the_console_sign_in_review_at_its_lines_and_audit_events() {
    let up = Up::start(&[]).await;
    up.ollama.set_default("/api/chat", Reply::chat(ANSWER));
    let banner = up.printed();
    assert!(banner.contains("(the web console"), "the banner names the console:\n{banner}");
    let base = up.gateway.trim_end_matches('/').to_owned();
    let browser = Browser::start().await;

    browser.open(&format!("{base}/"), "Sign in").await;
    browser
        .js(
            "sign in",
            "document.getElementById('username').value = arguments[0];
             document.getElementById('password').value = arguments[1];
             document.getElementById('sign-in').requestSubmit(); return true;",
            vec![json!("admin"), json!(ADMIN_PASSWORD)],
        )
        .await;
    let tasks = "document.querySelector('main h1')?.textContent === 'Tasks'";
    browser.wait_for("the page `Tasks`", tasks).await;
    let cookies = browser.js("document.cookie", "return document.cookie", vec![]).await;
    assert!(!cookies.as_str().unwrap_or_default().contains("prfix_console"), "page scripts see the session: {cookies}");

    browser.open(&format!("{base}/#/review/new"), "New review").await;
    browser
        .js(
            "paste the diff and start",
            "document.getElementById('diff').value = arguments[0];
             document.getElementById('start-review').click(); return true;",
            vec![json!(DIFF)],
        )
        .await;
    let state = browser
        .wait_for(
            "the review to finish",
            "['succeeded','failed','cancelled'].includes(document.getElementById('task-state')?.textContent) \
             && document.querySelector('#result h2') && document.getElementById('task-state').textContent",
        )
        .await;
    assert_eq!(state, "succeeded", "the review did not succeed:\n{}", up.printed());
    let placed = browser
        .js(
            "the finding at its line",
            "return [...document.querySelectorAll('tr.finding')].map((row) =>
               `${row.querySelector('.finding-box').dataset.path}:${row.previousElementSibling.dataset.new}`);",
            vec![],
        )
        .await;
    assert_eq!(placed, json!(["app/main.py:2"]), "the finding sits after new line 2");
    let task_id = browser.js("task id", "return location.hash.split('/')[2]", vec![]).await;
    let task_id = task_id.as_str().expect("the task id in the address").to_owned();

    // prfix up's agent relays its audit records to the audit service: the console finds them.
    let resource = format!("tasks/{task_id}");
    browser.audit_events(&base, &resource, &["agent.task.create.review", "agent.task.succeeded"]).await;
    browser.close().await;
    up.stop().await;
}
