//! `prfix up` with no `database_url`, run as a user would: its own PostgreSQL in the per-user data
//! directory, in a network namespace with no route out (as root, with `unshare`), on a machine whose
//! Postgres server binaries are installed but whose server is out of reach. A review runs against the
//! fake model; Ctrl-C stops prfix and its Postgres; a start from another folder finds the same user,
//! task and audit log and makes no new keys; after a SIGKILL the next start recovers the cluster.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prfix_embedded_postgres::stale::processes_in;
use prfix_tests::git::Repo;
use prfix_tests::{FakeOllama, Reply};
use support::User;
use tokio::io::{AsyncBufReadExt, BufReader};

const MODEL: &str = "qwen2.5-coder:14b";
/// Set in the copy of this test that runs inside the network namespace.
const IN_NAMESPACE: &str = "PRFIX_TEST_IN_NETWORK_NAMESPACE";
const TEST_NAME: &str =
    "prfix_up_without_a_database_url_keeps_users_tasks_and_audit_in_its_own_postgres_across_restarts_and_a_crash";

const FINDINGS: &str = r#"```json
{"findings": [{"path": "app/db.py", "line": 6, "severity": "critical", "category": "security", "title": "SQL injection", "body": "name is concatenated into the query."}]}
```"#;

/// A running `prfix up` and what it printed.
struct Up {
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(reader: impl tokio::io::AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
        }
    });
}

impl Up {
    /// Starts `prfix up` in `cwd` with `env` and waits for its banner.
    async fn start(cwd: &Path, env: &[(&str, String)]) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_prfix"));
        command
            .arg("up")
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The default ports: the gateway reaches the agent and the audit service there (a fresh
        // network namespace has them free).
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("prfix up starts");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        collect(child.stdout.take().expect("piped"), Arc::clone(&stdout));
        collect(child.stderr.take().expect("piped"), Arc::clone(&stderr));
        let mut up = Self { child, stdout, stderr };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while !up.printed().iter().any(|l| l.starts_with("Press Ctrl-C")) {
            if let Ok(Some(status)) = up.child.try_wait() {
                panic!("prfix up exited with {status} before it was up:\n{}", up.output());
            }
            assert!(tokio::time::Instant::now() < deadline, "prfix up did not come up:\n{}", up.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        up
    }

    fn printed(&self) -> Vec<String> {
        self.stdout.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn output(&self) -> String {
        let err = self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n");
        format!("{}\n--- stderr ---\n{err}", self.printed().join("\n"))
    }

    /// The banner's value after `label` (`gateway`, `database`).
    fn banner(&self, label: &str) -> Option<String> {
        let prefix = format!("  {label} ");
        self.printed().iter().find_map(|l| l.strip_prefix(&prefix).map(|rest| rest.trim().to_owned()))
    }

    fn gateway(&self) -> String {
        let value = self.banner("gateway").unwrap_or_else(|| panic!("no gateway line:\n{}", self.output()));
        value.split_whitespace().next().expect("an address").to_owned()
    }

    fn generated_password(&self) -> Option<String> {
        let value = self.banner("admin")?;
        Some(value.split('`').nth(3)?.to_owned())
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("prfix up runs");
        let status = std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }

    /// Ctrl-C, and waits for the exit.
    async fn interrupt(mut self) -> String {
        self.signal("INT");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("prfix up did not stop on SIGINT:\n{}", self.output()))
            .expect("wait");
        assert!(status.success(), "prfix up ended with {status} on SIGINT:\n{}", self.output());
        self.output()
    }

    /// SIGKILL: a crash, with no chance to stop anything.
    async fn kill(mut self) {
        self.signal("KILL");
        let _ = self.child.wait().await;
    }
}

/// Stops, when the test ends early, a server a failed step left running in `0` (the data folder).
struct StopLeftovers(PathBuf);

impl Drop for StopLeftovers {
    fn drop(&mut self) {
        if let prfix_embedded_postgres::Leftover::Running(pid) = prfix_embedded_postgres::stale::inspect(&self.0) {
            // SIGINT is PostgreSQL's fast shutdown.
            let _ = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
        }
    }
}

/// Whether this process's network namespace has no route out (no entry in the main IPv4 table).
fn no_route_out() -> bool {
    std::fs::read_to_string("/proc/net/route").is_ok_and(|table| table.lines().skip(1).all(|l| l.trim().is_empty()))
}

#[tokio::test]
async fn prfix_up_without_a_database_url_keeps_users_tasks_and_audit_in_its_own_postgres_across_restarts_and_a_crash() {
    let root = prfix_embedded_postgres::account::is_root();
    if std::env::var_os(IN_NAMESPACE).is_none() && root && which("unshare") && which("ip") {
        // This same test again, in a new network namespace with only the loopback interface up.
        let status = tokio::process::Command::new("unshare")
            .args(["--net", "--", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
            .arg(std::env::current_exe().expect("the test binary"))
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_NAMESPACE, "1")
            .status()
            .await
            .expect("unshare runs");
        assert!(status.success(), "the test failed in its network namespace ({status})");
        return;
    }
    if std::env::var_os(IN_NAMESPACE).is_some() {
        assert!(no_route_out(), "the namespace has a route out");
    } else {
        eprintln!("note: not root or no unshare/ip: running in this machine's network namespace");
    }
    scenario(root).await;
}

fn which(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn scenario(root: bool) {
    let ollama = FakeOllama::start().await;
    // Not pulled yet: the banner says so, with the command to run.
    ollama.set_models(&[]);
    ollama.set_default("/api/chat", Reply::chat(FINDINGS));
    let base = tempfile::tempdir().expect("a folder");
    if root {
        // The embedded server runs as `postgres` and enters the data directory through it.
        std::fs::set_permissions(base.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).expect("chmod");
    }
    let xdg = base.path().join("xdg");
    let data_dir = xdg.join("prfix");
    let pgdata = data_dir.join("postgres").join("data");
    let (first_cwd, second_cwd) = (base.path().join("here"), base.path().join("elsewhere"));
    for dir in [&first_cwd, &second_cwd] {
        std::fs::create_dir_all(dir).expect("a working directory");
    }
    let _leftovers = StopLeftovers(pgdata.clone());
    let env = [
        ("HOME", base.path().join("home").display().to_string()),
        ("XDG_DATA_HOME", xdg.display().to_string()),
        ("PRFIX_OLLAMA_URL", ollama.url()),
    ];

    // First start: an empty data directory.
    let up = Up::start(&first_cwd, &env).await;
    let database = up.banner("database").expect("the database line");
    assert!(database.starts_with("embedded PostgreSQL 1"), "{database}");
    assert!(database.contains(&data_dir.join("postgres").display().to_string()), "{database}");
    let password = up.generated_password().unwrap_or_else(|| panic!("a generated admin password:\n{}", up.output()));
    let pull = format!("lacks {MODEL}: run `OLLAMA_HOST={} ollama pull {MODEL}`", ollama.url());
    assert!(up.printed().iter().any(|l| l.contains(&pull)), "the banner says `{pull}`:\n{}", up.output());
    ollama.set_models(&[MODEL]);
    let keys = read_keys(&data_dir);
    assert!(!processes_in(&pgdata).is_empty(), "the embedded server runs in {}", pgdata.display());

    let user = User::new(&up.gateway(), None);
    let login = user.run_with_stdin(&first_cwd, &["login", "-u", "admin", "--password-stdin"], &password).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    let repo = repo_with_a_bug();
    let review = user.run(repo.path(), &["review"]).await;
    assert_eq!(review.code, 0, "{}\n{}", review.stderr, up.output());
    assert!(review.stdout.contains("SQL injection"), "{}", review.stdout);
    let tasks = user.run(&first_cwd, &["tasks", "list"]).await;
    assert_eq!(tasks.code, 0, "{}", tasks.stderr);
    let task = tasks.stdout.lines().find(|l| l.contains("review")).and_then(|l| l.split_whitespace().next());
    let task = task.unwrap_or_else(|| panic!("the review task is listed:\n{}", tasks.stdout)).to_owned();
    let audit = audit_lines(&user, &first_cwd).await;
    assert!(!audit.is_empty(), "the review left audit events");

    // Ctrl-C stops prfix and its Postgres.
    up.interrupt().await;
    assert_eq!(processes_in(&pgdata), Vec::<u32>::new(), "no postgres process of the data directory is left");

    // From another folder: the same data directory, keys, user, task and audit log.
    let up = Up::start(&second_cwd, &env).await;
    assert_eq!(up.generated_password(), None, "no new admin:\n{}", up.output());
    let has = format!("{} has {MODEL}", ollama.url());
    assert!(up.printed().iter().any(|l| l.contains(&has)), "the banner says `{has}`:\n{}", up.output());
    assert_eq!(read_keys(&data_dir), keys, "the same keys");
    assert!(!second_cwd.join(".prfix-data").exists(), "nothing is written to the current directory");
    let user = User::new(&up.gateway(), None);
    let login = user.run_with_stdin(&second_cwd, &["login", "-u", "admin", "--password-stdin"], &password).await;
    assert_eq!(login.code, 0, "the same admin logs in: {}", login.stderr);
    let tasks = user.run(&second_cwd, &["tasks", "list"]).await;
    assert!(tasks.stdout.contains(&task), "the same task:\n{}\nexpected {task}", tasks.stdout);
    let after = audit_lines(&user, &second_cwd).await;
    for line in &audit {
        assert!(after.contains(line), "the audit event `{line}` is still there:\n{}", after.join("\n"));
    }

    // A crash: prfix is killed, its Postgres is left running; the next start recovers it.
    up.kill().await;
    assert!(!processes_in(&pgdata).is_empty(), "the server outlives a killed prfix");
    let up = Up::start(&first_cwd, &env).await;
    let user = User::new(&up.gateway(), None);
    let login = user.run_with_stdin(&first_cwd, &["login", "-u", "admin", "--password-stdin"], &password).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    let tasks = user.run(&first_cwd, &["tasks", "list"]).await;
    assert!(tasks.stdout.contains(&task), "the task survived the crash:\n{}", tasks.stdout);
    let output = up.interrupt().await;
    assert!(output.contains("left running by an earlier run"), "the recovery is said:\n{output}");
    assert_eq!(processes_in(&pgdata), Vec::<u32>::new(), "no postgres process is left after the last stop");
}

/// The generated keys of the data directory, by name.
fn read_keys(data_dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["signing-key.pem", "audit-signing-key.pem"]
        .iter()
        .map(|name| {
            let path = data_dir.join(name);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect()
}

async fn audit_lines(user: &User, cwd: &Path) -> Vec<String> {
    let run = user.run(cwd, &["audit", "list", "--limit", "500"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

fn repo_with_a_bug() -> Repo {
    let repo = Repo::init();
    repo.write("app/db.py", "def get_user(conn, user_id):\n    return conn.execute(\"SELECT 1\")\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "app/db.py",
        "def get_user(conn, user_id):\n    return conn.execute(\"SELECT 1\")\n\n\ndef find_user(conn, name):\n    query = \"SELECT * FROM users WHERE name = '\" + name + \"'\"\n    return conn.execute(query)\n",
    );
    repo.commit("find users by name");
    repo
}
