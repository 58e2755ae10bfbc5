//! A pull request and the comments a review places on it, shared by the forge client tests.

#![allow(dead_code)]

use std::time::Duration;

use prfix_forge::{ForgeConfig, ForgeKind, InlineComment, PullRequest, RetryPolicy, Review};

/// `app/db.py` gains `find_user`: new lines 1-2 are unchanged (old 1-2), 3-7 are added.
pub const DIFF: &str = "diff --git a/app/db.py b/app/db.py
index 1111111..2222222 100644
--- a/app/db.py
+++ b/app/db.py
@@ -1,2 +1,7 @@
 def get_user(conn, user_id):
     return conn.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))
+
+
+def find_user(conn, name):
+    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"
+    return conn.execute(query)
";

pub const HEAD: &str = "2222222222222222222222222222222222222222";
pub const BASE: &str = "1111111111111111111111111111111111111111";
pub const TOKEN: &str = "forge-token";

/// Retries without waiting long: the fakes' rate limits name waits of 0 s.
pub fn quick_retries(max_tries: u32) -> RetryPolicy {
    RetryPolicy {
        max_tries,
        base_delay: Duration::from_millis(10),
        secondary_wait: Duration::from_millis(10),
        max_wait: Duration::from_secs(5),
    }
}

pub fn config(kind: ForgeKind, api_url: String, max_tries: u32) -> ForgeConfig {
    ForgeConfig {
        kind,
        api_url,
        token: TOKEN.to_owned().into(),
        retry: quick_retries(max_tries),
        on_retry: None,
        github_app: None,
    }
}

pub fn pull(repository: &str, number: u64) -> PullRequest {
    PullRequest { repository: repository.to_owned(), number, head_sha: HEAD.to_owned() }
}

/// Three comments: a range of added lines with a suggestion, an added line, an unchanged line.
pub fn review() -> Review {
    Review {
        body: "## prfix review\n\n3 findings.".to_owned(),
        comments: vec![
            InlineComment {
                path: "app/db.py".to_owned(),
                old_path: None,
                line: 7,
                start_line: Some(6),
                old_line: None,
                body: "**SQL injection**\n\n```suggestion\n    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,))\n```".to_owned(),
            },
            InlineComment {
                path: "app/db.py".to_owned(),
                old_path: None,
                line: 5,
                start_line: None,
                old_line: None,
                body: "Missing docstring.".to_owned(),
            },
            InlineComment {
                path: "app/db.py".to_owned(),
                old_path: None,
                line: 2,
                start_line: None,
                old_line: Some(2),
                body: "Unchanged, but worth a look.".to_owned(),
            },
        ],
    }
}
