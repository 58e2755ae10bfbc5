//! Unit tests of `verify` and `monitor`: logs built in memory, signed with a key made here, and
//! tampered with the ways an administrator with the database could.

use prfix_proto::audit::v1 as pb;

use crate::checkpoint::{Signer, VerifierKey};
use crate::export::{ExportLine, ExportedEvent, Report, line_from_proto};
use crate::merkle::{self, Hash};
use crate::monitor::{MonitorState, StateError, monitor};
use crate::verify::{TrustedCheckpoint, VerifyOptions, range_text, ranges, verify, verify_with};

const ORIGIN: &str = "test.example/audit";

struct Log {
    signer: Signer,
    key: VerifierKey,
    events: Vec<ExportedEvent>,
}

/// An event as the service exports it, with its hashes as the service stores them (taken with the
/// crate's own encoding).
fn exported(sequence: i64, previous_chain: &Hash) -> (ExportedEvent, Hash) {
    let item = pb::ExportEventsResponse {
        item: Some(pb::export_events_response::Item::Event(pb::AuditEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            sequence,
            time: Some(prost_types::Timestamp { seconds: 1_790_000_000 + sequence, nanos: 123_000 }),
            actor: Some(pb::Actor { subject: format!("user{}", sequence % 3), roles: vec!["developer".into()] }),
            action: format!("demo.action{sequence}"),
            resource: format!("tasks/{sequence}"),
            result: 1,
            ..Default::default()
        })),
    };
    let Ok(ExportLine::Event(mut e)) = line_from_proto(item) else { panic!("an event line") };
    let leaf = e.recomputed_leaf().expect("readable");
    let chain = crate::canonical::chain_hash(previous_chain, &leaf);
    e.leaf_hash = hex::encode(leaf);
    e.chain_hash = hex::encode(chain);
    (*e, chain)
}

impl Log {
    fn new(size: i64) -> Self {
        let (signer, _) = Signer::generate("test-audit").expect("key");
        let key = VerifierKey::parse(&signer.verifier_key()).expect("verifier key");
        let mut chain = [0u8; 32];
        let mut events = Vec::new();
        for s in 1..=size {
            let (e, next) = exported(s, &chain);
            chain = next;
            events.push(e);
        }
        Self { signer, key, events }
    }

    fn leaves(&self, size: u64) -> Vec<Hash> {
        self.events.iter().take(size as usize).map(|e| e.recomputed_leaf().expect("leaf")).collect()
    }

    fn note(&self, size: u64) -> String {
        self.signer.sign(ORIGIN, size, &merkle::root(&self.leaves(size)))
    }

    /// The export: the events kept by `keep`, with checkpoints of the given sizes after their last
    /// event (signed over the log as it was before any tampering).
    fn export(&self, checkpoints: &[u64], keep: impl Fn(i64) -> bool) -> Vec<ExportLine> {
        let notes: Vec<(u64, String)> = checkpoints.iter().map(|s| (*s, self.note(*s))).collect();
        let mut lines = Vec::new();
        for e in self.events.iter().filter(|e| keep(e.sequence)) {
            lines.push(ExportLine::Event(Box::new(e.clone())));
        }
        for (size, note) in notes {
            let at = lines
                .iter()
                .position(|l| matches!(l, ExportLine::Event(e) if e.sequence as u64 > size))
                .unwrap_or(lines.len());
            lines.insert(at, ExportLine::Checkpoint { signed_note: note });
        }
        lines
    }

    fn trusted(&self, size: u64) -> TrustedCheckpoint {
        TrustedCheckpoint::from_note(
            &self.note(size),
            std::slice::from_ref(&self.key),
            "when last verified (then)".into(),
        )
        .expect("signed")
    }
}

fn messages(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn an_intact_log_verifies_and_its_newest_checkpoint_is_reported() {
    let log = Log::new(30);
    let report = verify(&log.export(&[10, 30], |_| true), std::slice::from_ref(&log.key));
    assert!(report.ok(), "{:?}", messages(&report));
    assert_eq!((report.events, report.checkpoints), (30, 2));
    assert_eq!(report.newest.map(|n| n.size), Some(30));
}

#[test]
fn gaps_are_named_as_ranges_and_each_chain_break_is_one_problem_with_a_count() {
    let log = Log::new(250);
    let lines = log.export(&[100, 250], |s| s != 17 && !(30..=34).contains(&s));
    let report = verify(&lines, std::slice::from_ref(&log.key));
    assert_eq!(
        messages(&report),
        [
            "missing 17",
            "chain breaks at 18 (after missing 17); 11 later events do not chain from it",
            "missing 30..34",
            "chain breaks at 35 (after missing 30..34); 215 later events do not chain from it",
            "checkpoint 100: is signed over 100 events, but only 94 of them are in the export (the others are missing or foreign)",
            "checkpoint 250: is signed over 250 events, but only 244 of them are in the export (the others are missing or foreign)",
        ]
    );
    let missing = &report.problems[2];
    assert_eq!((missing.sequence, missing.last_sequence), (Some(30), Some(34)));
    assert_eq!(report.problems[1].last_sequence, Some(29), "the break spans the events that follow it");
}

#[test]
fn a_changed_event_is_named_once_and_the_cascade_after_it_is_counted() {
    let log = Log::new(40);
    let mut lines = log.export(&[40], |_| true);
    if let ExportLine::Event(e) = &mut lines[4] {
        e.action = "demo.rewritten".into();
    }
    let report = verify(&lines, std::slice::from_ref(&log.key));
    assert_eq!(
        messages(&report),
        [
            "event 5: its content does not match its leaf hash (changed after it was written)",
            "chain breaks at 5 (its content changed); 35 later events do not chain from it",
            "checkpoint 40: its signed root does not match the events it covers",
        ]
    );
}

#[test]
fn a_row_the_log_did_not_write_is_named_foreign() {
    let log = Log::new(30);
    let mut lines = log.export(&[30], |_| true);
    // Event 20 replaced by a forged row with made-up hashes.
    if let ExportLine::Event(e) = &mut lines[19] {
        e.action = "auth.login".into();
        e.leaf_hash = hex::encode([7u8; 32]);
        e.chain_hash = hex::encode([8u8; 32]);
    }
    // And a repeated sequence number appended by hand.
    let mut repeated = log.events[2].clone();
    repeated.event_id = uuid::Uuid::new_v4();
    lines.insert(25, ExportLine::Event(Box::new(repeated)));
    let found = messages(&verify(&lines, std::slice::from_ref(&log.key)));
    assert!(found.iter().any(|m| m.starts_with("foreign 3:")), "{found:?}");
    assert!(found.iter().any(|m| m.starts_with("foreign 20:")), "{found:?}");
    assert!(found.iter().any(|m| m.starts_with("chain breaks at 21 (after foreign 20)")), "{found:?}");
    assert!(found.iter().any(|m| m.starts_with("checkpoint 30: is signed over 30 events, but only 29")), "{found:?}");
}

#[test]
fn a_truncated_log_with_its_covering_checkpoint_gone_passes_alone_but_not_against_the_trusted_checkpoint() {
    let log = Log::new(50);
    let truncated = log.export(&[25, 40], |s| s <= 40);
    assert!(verify(&truncated, std::slice::from_ref(&log.key)).ok(), "nothing in the export itself is wrong");
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: Some(log.trusted(50)) };
    let report = verify_with(&truncated, &options);
    assert_eq!(messages(&report), ["events 41..50 missing: the log was at 50 when last verified (then)"]);
    // The same log, grown past the trusted checkpoint, passes against it.
    let grown = log.export(&[25, 50], |_| true);
    assert!(verify_with(&grown, &VerifyOptions { trusted: Some(log.trusted(25)), ..options }).ok());
}

#[test]
fn a_rewritten_log_does_not_reproduce_the_trusted_root() {
    let log = Log::new(20);
    let trusted = log.trusted(20);
    // The same size, other events, signed by the same key: a fork.
    let fork = Log { events: Log::new(20).events, ..log };
    let report = verify_with(
        &fork.export(&[20], |_| true),
        &VerifyOptions { keys: vec![fork.key.clone()], trusted: Some(trusted) },
    );
    assert_eq!(
        messages(&report),
        [
            "events 1..20 do not reproduce the root they had: the log was at 20 when last verified (then); it was rewritten since"
        ]
    );
}

#[test]
fn numbers_collapse_into_ranges() {
    assert_eq!(ranges(&[34, 17, 30, 31, 32, 33, 17]), [(17, 17), (30, 34)]);
    assert_eq!(range_text(17, 17), "17");
    assert_eq!(range_text(30, 34), "30..34");
}

fn state_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("prfix-monitor-{}.json", uuid::Uuid::new_v4()))
}

#[test]
fn the_monitor_remembers_what_passed_catches_a_truncation_and_never_goes_back() {
    let log = Log::new(50);
    let path = state_path();
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: None };
    let now = chrono::Utc::now();
    let first = monitor(&log.export(&[50], |_| true), &options, &path, now).expect("monitors");
    assert!(first.report.ok() && first.before.is_none());
    assert_eq!(first.advanced.as_ref().map(|s| s.tree_size), Some(50));
    let kept = MonitorState::load(&path).expect("readable").expect("written");
    assert_eq!(kept, first.advanced.clone().expect("advanced"));

    let truncated = monitor(&log.export(&[40], |s| s <= 40), &options, &path, now).expect("monitors");
    let found = messages(&truncated.report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("events 41..50 missing: the log was at 50 when last verified ("), "{found:?}");
    assert!(truncated.advanced.is_none());
    assert_eq!(MonitorState::load(&path).expect("readable"), Some(kept), "a failed run leaves the state alone");
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn a_corrupt_or_edited_state_file_is_an_error_not_a_fresh_start() {
    let log = Log::new(10);
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: None };
    let path = state_path();
    std::fs::write(&path, "{\"origin\": ").expect("write");
    let error = monitor(&log.export(&[10], |_| true), &options, &path, chrono::Utc::now()).expect_err("refused");
    assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("never reset"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).expect("still there"), "{\"origin\": ");

    // A state whose size was lowered by hand no longer matches its signed checkpoint.
    let mut state = MonitorState {
        origin: ORIGIN.into(),
        tree_size: 10,
        root_hash: hex::encode(merkle::root(&log.leaves(10))),
        signed_note: log.note(10),
        verified_at: "2026-01-01T00:00:00Z".into(),
    };
    state.tree_size = 5;
    state.save(&path).expect("saved");
    let error = monitor(&log.export(&[10], |_| true), &options, &path, chrono::Utc::now()).expect_err("refused");
    assert!(error.to_string().contains("differ from its signed checkpoint"), "{error}");
    std::fs::remove_file(&path).expect("clean up");
}

/// A log tampered with in every way at once: rows missing, two rows swapped, a row changed, a row
/// forged, a repeated number, and a checkpoint signed over a root the log never had.
fn tampered() -> (Log, Vec<ExportLine>) {
    let log = Log::new(300);
    let mut lines = log.export(&[100, 200, 300], |s| s != 17 && !(30..=34).contains(&s));
    let at = |lines: &[ExportLine], s: i64| {
        lines.iter().position(|l| matches!(l, ExportLine::Event(e) if e.sequence == s)).expect("present")
    };
    let (a, b) = (at(&lines, 50), at(&lines, 51));
    lines.swap(a, b);
    let changed = at(&lines, 120);
    if let ExportLine::Event(e) = &mut lines[changed] {
        e.resource = "tasks/rewritten".into();
    }
    let forged = at(&lines, 150);
    if let ExportLine::Event(e) = &mut lines[forged] {
        e.action = "auth.login".into();
        e.leaf_hash = hex::encode([7u8; 32]);
        e.chain_hash = hex::encode([8u8; 32]);
    }
    let mut repeated = log.events[2].clone();
    repeated.event_id = uuid::Uuid::new_v4();
    lines.insert(at(&lines, 260), ExportLine::Event(Box::new(repeated)));
    let bad = log.signer.sign(ORIGIN, 10, &[9u8; 32]);
    lines.insert(at(&lines, 11), ExportLine::Checkpoint { signed_note: bad });
    (log, lines)
}

fn write_file(lines: &[ExportLine]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("prfix-export-{}.jsonl", uuid::Uuid::new_v4()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    crate::export::write_jsonl(lines, &mut out).expect("write");
    path
}

#[test]
fn the_streaming_verifier_fed_line_by_line_reports_what_the_slice_verifier_reports() {
    let (log, lines) = tampered();
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: Some(log.trusted(300)) };
    let whole = verify_with(&lines, &options);
    let mut streaming = crate::verifier::Verifier::new(options);
    for line in &lines {
        streaming.push(line);
    }
    assert!(streaming.late().is_empty(), "each checkpoint comes after the last event it covers");
    let found = messages(&whole);
    assert_eq!(messages(&streaming.finish()), found);
    for expected in [
        "missing 17",
        "missing 30..34",
        "foreign 3: rows the log did not write (out of place, or neither hash is the log's)",
        "event 120: its content does not match its leaf hash (changed after it was written)",
        "checkpoint 10: its signed root does not match the events it covers",
        "checkpoint 200: is signed over 200 events, but only 192 of them are in the export (the others are missing or foreign)",
    ] {
        assert!(found.iter().any(|m| m == expected), "{expected} in {found:?}");
    }
    // 51 read before 50: 50 is missing where 51 is read, and out of place where it is read.
    assert!(found.iter().any(|m| m == "missing 50") && found.iter().any(|m| m.starts_with("foreign 50:")), "{found:?}");
    assert!(found.iter().any(|m| m.starts_with("foreign 150:")), "{found:?}");
}

#[test]
fn the_parallel_file_path_reports_what_the_sequential_one_reports_on_a_tampered_log() {
    let (log, lines) = tampered();
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: None };
    let expected = verify_with(&lines, &options);
    assert!(!expected.ok());
    let path = write_file(&lines);
    // Chunks smaller than a line, of a few lines, and the default: each splits the file elsewhere.
    for chunk_bytes in [64, 3_000, 4 << 20] {
        let parallelism = crate::parallel::Parallelism { workers: 3, chunk_bytes, in_flight: 2 };
        let report = crate::parallel::verify_path(&path, &options, parallelism).expect("readable");
        assert_eq!(report, expected, "chunks of {chunk_bytes} bytes");
    }
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn a_checkpoint_moved_after_later_events_is_still_checked_from_a_file() {
    let log = Log::new(60);
    let mut lines = log.export(&[20, 60], |_| true);
    let first = lines.iter().position(|l| matches!(l, ExportLine::Checkpoint { .. })).expect("a checkpoint");
    let moved = lines.remove(first);
    lines.insert(45, moved);
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: None };
    assert!(verify_with(&lines, &options).ok());
    let mut streaming = crate::verifier::Verifier::new(options.clone());
    for line in &lines {
        streaming.push(line);
    }
    assert_eq!(streaming.late(), [20], "its head is gone from the frontier by the time it is read");
    let path = write_file(&lines);
    let report = crate::parallel::verify_path(&path, &options, crate::parallel::Parallelism::default());
    assert_eq!(report.expect("readable"), verify_with(&lines, &options), "read again with its size wanted");
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn an_unreadable_line_is_named_by_its_number_from_any_chunk() {
    let log = Log::new(30);
    let path = write_file(&log.export(&[30], |_| true));
    let written = std::fs::read_to_string(&path).expect("read");
    let options = VerifyOptions { keys: vec![log.key.clone()], trusted: None };
    // Spaced as by hand, and as the export writes an event line (read by another path).
    for broken in ["{\"type\": \"event\", \"sequence\": ", "{\"type\":\"event\",\"sequence\":1}"] {
        let mut text = written.clone();
        let cut = text.match_indices('\n').nth(21).map(|(i, _)| i + 1).expect("22 lines");
        text.insert_str(cut, &format!("\n{broken}\n"));
        std::fs::write(&path, &text).expect("write");
        let expected = crate::export::read_jsonl(&text).expect_err("refused");
        assert!(expected.starts_with("line 24: "), "{expected}");
        for chunk_bytes in [64, 1_000, 4 << 20] {
            let parallelism = crate::parallel::Parallelism { workers: 2, chunk_bytes, in_flight: 3 };
            let error = crate::parallel::verify_path(&path, &options, parallelism).expect_err("refused");
            assert!(error.ends_with(&expected), "{error} vs {expected}");
        }
    }
    std::fs::remove_file(&path).expect("clean up");
}
