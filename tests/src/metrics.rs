//! The services' `/metrics` in tests: the scrape, samples by name and labels, and the traffic that
//! makes the series of every service appear.

use std::net::SocketAddr;
use std::time::Duration;

use prfix_proto::agent::v1 as pb;

use crate::{Reply, TestApp};

/// The model the traffic reviews with.
pub const MODEL: &str = "qwen2.5-coder:14b";

/// `GET /metrics` on `addr`: answered 200 with the text exposition format.
pub async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.expect("the admin port answers");
    assert_eq!(response.status(), 200, "GET /metrics on {addr}");
    assert!(
        response.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/plain")),
        "GET /metrics on {addr} is text"
    );
    response.text().await.expect("the exposition is text")
}

/// The samples of `name` (not of a longer name it begins) that carry every label of `labels`, as
/// the text after the name: `{labels} value` or ` value`.
fn samples<'a>(text: &'a str, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a str> + 'a {
    text.lines().filter(|l| !l.starts_with('#')).filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        ((rest.starts_with('{') || rest.starts_with(' '))
            && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
        .then_some(rest)
    })
}

/// Whether a sample of `name` carries every label of `labels`.
pub fn has(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    samples(text, name, labels).next().is_some()
}

/// The sum of the samples of `name` that carry every label of `labels`; `None` when there is none.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> =
        samples(text, name, labels).filter_map(|rest| rest.rsplit(' ').next()?.trim().parse().ok()).collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A change set of one changed line, to review.
pub fn one_line_change() -> pb::ChangeSet {
    pb::ChangeSet {
        diff: "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -1 +1 @@\n-1\n+2\n".into(),
        ..Default::default()
    }
}

/// Calls that make every series appear: a review that calls the (fake) model, a refused login and a
/// call without credentials.
pub async fn traffic(app: &TestApp) {
    app.ollama.set_models(&[MODEL]);
    app.ollama.set_default("/api/chat", Reply::chat(r#"{"findings": []}"#));
    let mut client = app.agent_client();
    let task = client
        .create_review(pb::CreateReviewRequest { change_set: Some(one_line_change()), options: None })
        .await
        .expect("a review is created")
        .into_inner()
        .task
        .expect("the answer holds the task");
    crate::tasks::wait_for_end(&mut client, &task.task_id, Duration::from_secs(15)).await;
    assert!(app.login("admin", "wrong-password").await.is_err(), "a wrong password is refused");
    assert!(
        app.agent_client_as("").list_tasks(pb::ListTasksRequest::default()).await.is_err(),
        "a call without credentials is refused"
    );
}
