//! `docker/Dockerfile` and `docker/seccomp.json`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::compose::{compose, compose_services};
use crate::support::{SERVICES, Service, list, read, strings};

/// One stage of a Dockerfile: its name, its base, and its instructions (`KEYWORD`, arguments).
struct Stage {
    name: Option<String>,
    base: String,
    instructions: Vec<(String, String)>,
}

/// The stages of a Dockerfile, with the defaults of the ARGs declared before the first FROM
/// substituted in the FROM lines. Continuation lines are joined; comments dropped.
fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut arguments: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.is_empty()) {
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let (keyword, rest) = (keyword.to_uppercase(), rest.trim().to_owned());
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            let mut base = words[0].to_owned();
            for (name, value) in &arguments {
                base = base.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
            }
            let name = (words.len() == 3 && words[1].eq_ignore_ascii_case("as")).then(|| words[2].to_owned());
            stages.push(Stage { name, base, instructions: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest));
        } else if keyword == "ARG"
            && let Some((name, value)) = rest.split_once('=')
        {
            arguments.insert(name.to_owned(), value.to_owned());
        }
    }
    stages
}

/// A stage and the stages it is built on, base first.
fn stage_chain<'a>(stages: &'a [Stage], name: &str) -> Vec<&'a Stage> {
    let stage = stages.iter().find(|s| s.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no stage {name}"));
    let mut chain = match stages.iter().position(|s| s.name.as_deref() == Some(stage.base.as_str())) {
        Some(_) => stage_chain(stages, &stage.base),
        None => Vec::new(),
    };
    chain.push(stage);
    chain
}

#[test]
fn the_dockerfile_builds_locked_release_binaries_and_every_service_image_runs_as_uid_10001() {
    let stages = dockerfile_stages(&read("docker/Dockerfile"));
    let build = stages.iter().find(|s| s.name.as_deref() == Some("build")).expect("a build stage");
    assert_eq!(build.base, "rust:1-bookworm", "the builder");
    let compile = build
        .instructions
        .iter()
        .find(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a.as_str())
        .expect("the build stage runs cargo build");
    assert!(compile.contains("--release") && compile.contains("--locked"), "a locked release build: {compile}");

    let last = stages.last().and_then(|s| s.name.as_deref()).expect("the last stage is named");
    assert!(SERVICES.iter().any(|s| s.name == last), "the default target ({last}) is a service image");
    for Service { name: service, port, .. } in SERVICES {
        assert!(compile.contains(&format!("-p prfix-{service}")), "the build compiles prfix-{service}");
        let chain = stage_chain(&stages, service);
        let runtime = chain[0];
        assert!(runtime.base.contains("distroless/cc"), "{service}: runs on distroless/cc, not {}", runtime.base);
        let all: Vec<&(String, String)> = chain.iter().flat_map(|s| &s.instructions).collect();
        let user = all.iter().rev().find(|(k, _)| k == "USER").map(|(_, a)| a.as_str());
        assert!(matches!(user, Some("10001:10001" | "10001")), "{service}: the image runs as {user:?}");
        let target = chain.last().expect("the target");
        let user_in_target = target.instructions.iter().rev().find(|(k, _)| k == "USER").map(|(_, a)| a.as_str());
        assert_eq!(user_in_target, Some("10001:10001"), "{service}: the final stage says USER 10001 itself");
        let exposes = all.iter().any(|(k, a)| k == "EXPOSE" && a.split_whitespace().any(|p| p == port.to_string()));
        assert!(exposes, "{service}: EXPOSE {port}");
        let entrypoint = all.iter().rev().find(|(k, _)| k == "ENTRYPOINT").map(|(_, a)| a.as_str());
        assert_eq!(entrypoint, Some(format!("[\"/usr/local/bin/prfix-{service}\"]").as_str()), "{service}: exec form");
        let copies_binary = target
            .instructions
            .iter()
            .any(|(k, a)| k == "COPY" && a.contains("--from=build") && a.contains(&format!("prfix-{service}")));
        assert!(copies_binary, "{service}: the binary comes from the build stage");
        assert!(!all.iter().any(|(k, _)| k == "VOLUME"), "{service}: a VOLUME would be writable storage");
    }
    let ignored = read("docker/Dockerfile.dockerignore");
    for entry in [".git", "**/target", "docker/secrets"] {
        assert!(ignored.lines().any(|l| l.trim() == entry), "the build context leaves out {entry}");
    }
}

#[test]
fn the_seccomp_profile_denies_by_default_and_allows_no_way_out() {
    let profile: Value = serde_json::from_str(&read("docker/seccomp.json")).expect("docker/seccomp.json is JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "an allowlist");
    let allowed: Vec<&Value> = list(&profile["syscalls"]).iter().filter(|r| r["action"] == "SCMP_ACT_ALLOW").collect();
    let unconditional: BTreeSet<&str> =
        allowed.iter().filter(|r| list(&r["args"]).is_empty()).flat_map(|r| strings(&r["names"])).collect();
    let conditional: BTreeSet<&str> =
        allowed.iter().filter(|r| !list(&r["args"]).is_empty()).flat_map(|r| strings(&r["names"])).collect();
    const NEVER: [&str; 27] = [
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "clone3",
        "bpf",
        "perf_event_open",
        "kexec_load",
        "init_module",
        "finit_module",
        "delete_module",
        "keyctl",
        "add_key",
        "request_key",
        "userfaultfd",
        "open_by_handle_at",
        "io_uring_setup",
        "personality",
        "reboot",
        "swapon",
        "setuid",
        "mknod",
    ];
    for call in NEVER {
        assert!(!unconditional.contains(call) && !conditional.contains(call), "{call} is allowed");
    }
    // clone only without namespace flags (CLONE_NEW*: the mask 0x7E020000 must be clear).
    assert!(!unconditional.contains("clone"), "clone is allowed with any flags");
    let clone = allowed.iter().find(|r| strings(&r["names"]).contains(&"clone")).expect("threads need clone");
    assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone["args"][0]["value"], 0x7E02_0000_i64);
    assert_eq!(clone["args"][0]["valueTwo"].as_i64().unwrap_or(0), 0);
    // socket only for the families a service uses.
    let families: BTreeSet<i64> = allowed
        .iter()
        .filter(|r| strings(&r["names"]).contains(&"socket"))
        .map(|r| {
            assert_eq!(r["args"][0]["op"], "SCMP_CMP_EQ", "socket is allowed by family");
            r["args"][0]["value"].as_i64().expect("a family")
        })
        .collect();
    assert_eq!(families, BTreeSet::from([1, 2, 10, 16]), "AF_UNIX, AF_INET, AF_INET6, AF_NETLINK");
    // What a tokio service, glibc and grpc-health-probe cannot start without.
    for call in [
        "execve",
        "read",
        "write",
        "openat",
        "close",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "futex",
        "epoll_create1",
        "epoll_ctl",
        "epoll_pwait",
        "epoll_wait",
        "eventfd2",
        "accept4",
        "bind",
        "listen",
        "connect",
        "sendto",
        "recvfrom",
        "getsockopt",
        "setsockopt",
        "rt_sigaction",
        "rt_sigprocmask",
        "sigaltstack",
        "clock_gettime",
        "getrandom",
        "sched_getaffinity",
        "statx",
        "exit_group",
    ] {
        assert!(unconditional.contains(call), "{call} is not allowed");
    }
    let compose = compose();
    let users: Vec<&String> = compose_services(&compose)
        .into_iter()
        .filter(|(_, s)| strings(&s["security_opt"]).contains(&"seccomp=./seccomp.json"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(users.len(), 3, "the three prfix services run under the profile: {users:?}");
}
