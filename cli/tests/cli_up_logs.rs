//! `prfix up` as a user starts it: its banner says what to run next, and its log, written to a pipe
//! (as to a file), is plain text with one short access line per call.

mod support;

use support::User;
use support::up::{ADMIN_PASSWORD, Up};

#[tokio::test]
async fn prfix_up_logs_plain_text_to_a_pipe_with_one_access_line_per_call_and_names_the_next_commands() {
    let up = Up::start(&[]).await;
    let banner = up.printed();
    assert!(banner.contains(&format!("prfix login --gateway {} --username admin", up.gateway)), "{banner}");
    assert!(banner.contains("prfix review"), "{banner}");

    let user = User::new(&up.gateway, None);
    let dir = tempfile::tempdir().expect("a directory");
    let run = user
        .run_with_stdin(dir.path(), &["login", "-u", "admin", "--password-stdin"], &format!("{ADMIN_PASSWORD}\n"))
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = user.run(dir.path(), &["whoami"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // An audited call through the gateway to the audit service (two hops in this process).
    let run = user.run(dir.path(), &["audit", "list", "--limit", "1"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let line = up.wait_for("access /prfix.audit.v1.AuditService/ListEvents").await;
    let (_database, _directory, printed) = up.stop().await;
    assert!(!printed.contains('\x1b'), "escape sequences in a log written to a pipe:\n{printed:?}");
    // method, code, duration, subject, trace id once.
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "access").expect("the access word");
    assert_eq!(&words[at + 1..at + 3], ["/prfix.audit.v1.AuditService/ListEvents", "OK"], "{line}");
    assert!(words[at + 3].ends_with("ms") && words[at + 3].trim_end_matches("ms").parse::<u64>().is_ok(), "{line}");
    assert_eq!(words[at + 4], "admin", "{line}");
    assert!(words[at + 5].starts_with("trace=") && words[at + 5].len() == "trace=".len() + 32, "{line}");
    assert_eq!(words.len(), at + 6, "nothing more on the line: {line}");
    assert_eq!(line.matches("trace").count(), 1, "{line}");
    for method in ["/prfix.auth.v1.AuthService/WhoAmI", "/prfix.audit.v1.AuditService/ListEvents"] {
        let lines = printed.lines().filter(|l| l.contains(&format!("access {method} "))).count();
        assert_eq!(lines, 1, "one access line per call for {method}:\n{printed}");
    }
    assert!(!printed.contains("audit event appended"), "audit appends are at debug:\n{printed}");
}
