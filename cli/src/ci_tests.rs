use std::collections::HashMap;

use prfix_forge::ForgeKind;

use super::{CiError, detect};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

fn event_file(json: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), json).expect("write the event");
    file
}

const PR_EVENT: &str =
    r#"{"action":"synchronize","pull_request":{"number":7,"head":{"sha":"aaa"},"base":{"sha":"bbb"}}}"#;

#[test]
fn outside_ci_the_error_names_the_variables_looked_at() {
    let error = detect(&env(&[])).expect_err("not CI");
    assert!(matches!(error, CiError::NotCi));
    let text = error.to_string();
    for name in ["GITHUB_ACTIONS", "GITLAB_CI", "GITEA_ACTIONS", "FORGEJO_ACTIONS"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn github_actions_reads_the_pull_request_from_the_event_file() {
    let event = event_file(PR_EVENT);
    let path = event.path().display().to_string();
    let job = detect(&env(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "octo/app"),
        ("GITHUB_EVENT_PATH", &path),
        ("GITHUB_API_URL", "https://ghe.example/api/v3"),
        ("GITHUB_TOKEN", "t"),
    ]))
    .expect("a job");
    assert_eq!(job.forge.kind, ForgeKind::GitHub);
    assert_eq!(job.forge.api_url, "https://ghe.example/api/v3");
    assert_eq!(job.pull_request.repository, "octo/app");
    assert_eq!(job.pull_request.number, 7);
    assert_eq!(job.pull_request.head_sha, "aaa");
    assert_eq!(job.base_sha.as_deref(), Some("bbb"));
}

#[test]
fn each_missing_variable_is_named() {
    let event = event_file(PR_EVENT);
    let path = event.path().display().to_string();
    let full = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "octo/app"),
        ("GITHUB_EVENT_PATH", path.as_str()),
        ("GITHUB_TOKEN", "t"),
    ];
    for left_out in ["GITHUB_REPOSITORY", "GITHUB_EVENT_PATH", "GITHUB_TOKEN"] {
        let pairs: Vec<(&str, &str)> = full.iter().copied().filter(|(k, _)| *k != left_out).collect();
        let text = detect(&env(&pairs)).expect_err(left_out).to_string();
        assert!(text.contains(&format!("{left_out} is not set")), "{text}");
    }
    let text = detect(&env(&[("GITLAB_CI", "true"), ("CI_API_V4_URL", "https://gl/api/v4"), ("CI_PROJECT_ID", "3")]))
        .expect_err("no merge request")
        .to_string();
    assert!(text.contains("CI_MERGE_REQUEST_IID is not set") && text.contains("merge_request_event"), "{text}");
}

#[test]
fn a_push_event_is_not_a_pull_request() {
    let event = event_file(r#"{"ref":"refs/heads/main","after":"aaa"}"#);
    let path = event.path().display().to_string();
    let text = detect(&env(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "octo/app"),
        ("GITHUB_EVENT_PATH", &path),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_TOKEN", "t"),
    ]))
    .expect_err("not a pull request")
    .to_string();
    assert!(text.contains("the event is `push`") && text.contains("pull_request"), "{text}");
}

#[test]
fn gitea_and_forgejo_win_over_the_github_variables_they_also_set() {
    let event = event_file(PR_EVENT);
    let path = event.path().display().to_string();
    let job = detect(&env(&[
        ("GITHUB_ACTIONS", "true"),
        ("FORGEJO_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "octo/app"),
        ("GITHUB_EVENT_PATH", &path),
        ("GITHUB_SERVER_URL", "https://code.example/"),
        ("GITHUB_TOKEN", "job"),
        ("GITEA_TOKEN", "mine"),
    ]))
    .expect("a job");
    assert_eq!((job.ci, job.forge.kind), ("Forgejo Actions", ForgeKind::Gitea));
    assert_eq!(job.forge.api_url, "https://code.example/api/v1");
    use secrecy::ExposeSecret;
    assert_eq!(job.forge.token.expose_secret(), "mine");
}

#[test]
fn gitlab_ci_needs_a_token_that_may_post_notes() {
    let base = [
        ("GITLAB_CI", "true"),
        ("CI_API_V4_URL", "https://gitlab.example/api/v4"),
        ("CI_PROJECT_ID", "42"),
        ("CI_MERGE_REQUEST_IID", "5"),
        ("CI_COMMIT_SHA", "merge"),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", "head"),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", "base"),
        ("CI_JOB_TOKEN", "job"),
    ];
    let text = detect(&env(&base)).expect_err("no token").to_string();
    assert!(text.contains("PRFIX_GITLAB_TOKEN") && text.contains("CI_JOB_TOKEN may not post"), "{text}");
    let mut with_token = base.to_vec();
    with_token.push(("GITLAB_TOKEN", "glpat"));
    let job = detect(&env(&with_token)).expect("a job");
    assert_eq!(job.pull_request.head_sha, "head", "the source branch's head, not the merged result");
    assert_eq!((job.pull_request.number, job.base_sha.as_deref()), (5, Some("base")));
}
