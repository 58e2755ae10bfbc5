//! Verification in one pass over an export read as a stream: each line is pushed as it is read and
//! forgotten, so memory does not grow with the log. What is kept is the Merkle frontier (the heads of
//! at most one perfect subtree per bit of the size), the chain head, the last sequence read, the
//! runs of sequence numbers read, missing or foreign (collapsed: they grow with tampering, not with
//! the log), the chain breaks, and for each signed checkpoint its size, origin and roots (one per
//! checkpoint, not per event).
//!
//! A checkpoint comes after the last event it covers, so its head is taken from the frontier when it
//! is read (or, for a checkpoint read ahead of its events, when the frontier reaches its size). A
//! checkpoint read after the frontier passed its size without taking its head (a file reordered by
//! hand) cannot be checked in the same pass: [`Verifier::late`] names those sizes, so that a caller
//! that can read the export again does so with them asked for up front ([`Verifier::wanting`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::canonical;
use crate::export::{ExportLine, ExportedEvent, Problem, Report};
use crate::frontier::PrefixRoots;
use crate::merkle::{self, Hash};
use crate::verify::{TrustedCheckpoint, VerifiedCheckpoint, VerifyOptions, range_text, verify_note};

/// An event reduced to what verification needs of it: its place, its recomputed leaf and its stored
/// hashes. Taking it (parsing the line, the canonical encoding, SHA-256 of the leaf) is the costly
/// part of verification and needs nothing from other events, so it can be done on many threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEvent {
    /// Position in the log.
    pub sequence: i64,
    /// Event id (the leaf of last resort for an event whose hashes and content are all unreadable).
    pub event_id: uuid::Uuid,
    /// The leaf hash recomputed from the content, or why the content is unreadable.
    pub recomputed: Result<Hash, String>,
    /// The stored leaf hash, when it is 32 bytes of hex.
    pub stored_leaf: Option<Hash>,
    /// The stored chain hash, when it is 32 bytes of hex.
    pub stored_chain: Option<Hash>,
}

impl CheckedEvent {
    /// The event's leaf recomputed and its stored hashes decoded.
    pub fn of(e: &ExportedEvent) -> Self {
        Self {
            sequence: e.sequence,
            event_id: e.event_id,
            recomputed: e.recomputed_leaf(),
            stored_leaf: decode(&e.leaf_hash),
            stored_chain: decode(&e.chain_hash),
        }
    }
}

impl From<ExportedEvent> for CheckedEvent {
    /// [`CheckedEvent::of`] an event read only to be verified (its fields are not copied).
    fn from(e: ExportedEvent) -> Self {
        let (stored_leaf, stored_chain) = (decode(&e.leaf_hash), decode(&e.chain_hash));
        Self {
            sequence: e.sequence,
            event_id: e.event_id,
            stored_leaf,
            stored_chain,
            recomputed: e.into_recomputed_leaf(),
        }
    }
}

fn decode(text: &str) -> Option<Hash> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok().map(|()| hash)
}

/// Where the chain broke and how far the break reaches.
struct Break {
    /// The problem's index in the event problems.
    problem: usize,
    /// Why the chain broke there.
    reason: String,
    /// Later events that link to their predecessor but not to the chain from the start.
    later: usize,
}

/// A checkpoint whose signature verified, as much of it as the checks after the last line need.
struct Signed {
    origin: String,
    root: Hash,
}

/// A verification under way: push the export's lines in order, then [`Verifier::finish`].
pub struct Verifier {
    options: VerifyOptions,
    events: usize,
    checkpoint_count: usize,
    /// Refused checkpoints, in the order read (they come first in the report).
    refused: Vec<Problem>,
    /// Problems of single events and chain breaks, in the order found.
    event_problems: Vec<Problem>,
    /// Runs of the sequence numbers whose leaves belong to the log, increasing.
    accepted: Vec<(i64, i64)>,
    /// Runs of missing numbers, increasing.
    missing: Vec<(i64, i64)>,
    /// Foreign numbers (out of place ones can come in any order): sorted and collapsed at the end.
    foreign: Vec<i64>,
    last_sequence: i64,
    /// The stored chain hash of the previous row read (whatever it was) and whether it was foreign.
    previous_chain: Option<Hash>,
    previous_foreign: bool,
    /// The chain recomputed from the start over the recomputed leaves.
    running: Hash,
    open: Option<Break>,
    breaks: Vec<Break>,
    roots: PrefixRoots,
    /// Signed checkpoints by size (the first read of a size counts).
    checkpoints: BTreeMap<u64, Signed>,
    /// The signed checkpoint of the largest size (kept whole: a monitor remembers its note).
    newest: Option<VerifiedCheckpoint>,
    /// Sizes of checkpoints read after the frontier had passed them.
    late: BTreeSet<u64>,
}

impl Verifier {
    /// A verification with `options`.
    pub fn new(options: VerifyOptions) -> Self {
        Self::wanting(options, std::iter::empty())
    }

    /// A verification that takes the tree's heads at `sizes` too (the sizes of the export's
    /// checkpoints when known before reading it, so that none comes too late).
    pub fn wanting(options: VerifyOptions, sizes: impl IntoIterator<Item = u64>) -> Self {
        let trusted = options.trusted.as_ref().map(|t| t.size);
        Self {
            roots: PrefixRoots::new(sizes.into_iter().chain(trusted)),
            options,
            events: 0,
            checkpoint_count: 0,
            refused: Vec::new(),
            event_problems: Vec::new(),
            accepted: Vec::new(),
            missing: Vec::new(),
            foreign: Vec::new(),
            last_sequence: 0,
            previous_chain: Some([0u8; 32]),
            previous_foreign: false,
            running: [0u8; 32],
            open: None,
            breaks: Vec::new(),
            checkpoints: BTreeMap::new(),
            newest: None,
            late: BTreeSet::new(),
        }
    }

    /// Reads one line of the export.
    pub fn push(&mut self, line: &ExportLine) {
        match line {
            ExportLine::Event(e) => self.push_event(CheckedEvent::of(e)),
            ExportLine::Checkpoint { signed_note } => self.push_checkpoint(signed_note),
        }
    }

    /// Reads a checkpoint line.
    pub fn push_checkpoint(&mut self, signed_note: &str) {
        match verify_note(signed_note, &self.options.keys) {
            Err(why) => self.refused.push(Problem::general(format!("a checkpoint is refused: {why}"))),
            Ok((origin, size, root)) => {
                self.checkpoint_count += 1;
                if self.checkpoints.contains_key(&size) {
                    return;
                }
                if !self.roots.want(size) {
                    self.late.insert(size);
                }
                if self.newest.as_ref().is_none_or(|n| size > n.size) {
                    self.newest = Some(VerifiedCheckpoint {
                        origin: origin.clone(),
                        size,
                        root,
                        signed_note: signed_note.to_owned(),
                    });
                }
                self.checkpoints.insert(size, Signed { origin, root });
            }
        }
    }

    /// Reads an event line (taken with [`CheckedEvent::of`], possibly on another thread).
    pub fn push_event(&mut self, e: CheckedEvent) {
        self.events += 1;
        let s = e.sequence;
        if s < 1 || s <= self.last_sequence {
            // A row out of place (a repeated or earlier number) cannot be the log's.
            self.foreign.push(s);
            return;
        }
        let gap = s > self.last_sequence + 1;
        if gap {
            push_run(&mut self.missing, self.last_sequence + 1, s - 1);
        }
        self.last_sequence = s;
        let CheckedEvent { recomputed, stored_leaf, stored_chain, event_id, .. } = e;
        let recomputed = match recomputed {
            Ok(leaf) => Some(leaf),
            Err(why) => {
                self.event_problems.push(Problem::event(s, format!("unreadable: {why}")));
                None
            }
        };
        let leaf_ok = recomputed.is_some() && recomputed == stored_leaf;
        let previous_chain = self.previous_chain;
        // Only needed when the leaf or the chain from the start is off: one SHA-256 saved per event.
        let link_ok = || {
            !gap && match (previous_chain, stored_leaf, stored_chain) {
                (Some(p), Some(l), Some(c)) => canonical::chain_hash(&p, &l) == c,
                _ => false,
            }
        };
        let was_foreign = self.previous_foreign;
        self.previous_chain = stored_chain;
        self.previous_foreign = false;
        if !leaf_ok && recomputed.is_some() && !link_ok() {
            // Neither hash is the log's: a row the log did not write.
            self.foreign.push(s);
            self.previous_foreign = true;
            return;
        }
        if !leaf_ok && recomputed.is_some() {
            self.event_problems
                .push(Problem::event(s, "its content does not match its leaf hash (changed after it was written)"));
        }
        let leaf = recomputed.or(stored_leaf).unwrap_or_else(|| merkle::leaf_hash(event_id.as_bytes()));
        push_run(&mut self.accepted, s, s);
        self.roots.push(s, &leaf);
        self.running = canonical::chain_hash(&self.running, &leaf);
        if stored_chain == Some(self.running) {
            if let Some(b) = self.open.take() {
                self.breaks.push(b);
            }
        } else if let Some(b) = self.open.as_mut().filter(|_| leaf_ok && link_ok()) {
            b.later += 1;
            self.event_problems[b.problem].last_sequence = Some(s);
        } else {
            if let Some(b) = self.open.take() {
                self.breaks.push(b);
            }
            let reason = if gap {
                let from = self.missing.last().map_or(s - 1, |(from, _)| *from);
                format!("after missing {}", range_text(from, s - 1))
            } else if was_foreign {
                format!("after foreign {}", s - 1)
            } else if !leaf_ok {
                "its content changed".to_owned()
            } else {
                format!("its chain hash does not follow from event {}", s - 1)
            };
            self.event_problems.push(Problem { last_sequence: Some(s), ..Problem::event(s, String::new()) });
            self.open = Some(Break { problem: self.event_problems.len() - 1, reason, later: 0 });
        }
    }

    /// Sizes of checkpoints read after the events past them, whose heads this pass did not take:
    /// read the export again with a [`Verifier::wanting`] them.
    pub fn late(&self) -> Vec<u64> {
        self.late.iter().copied().collect()
    }

    /// What the export showed: the events' problems in log order, then the checkpoints', then the
    /// export's as a whole.
    pub fn finish(mut self) -> Report {
        let mut report = Report {
            events: self.events,
            checkpoints: self.checkpoint_count,
            problems: std::mem::take(&mut self.refused),
            newest: None,
        };
        self.breaks.extend(self.open.take());
        for b in &self.breaks {
            let p = &mut self.event_problems[b.problem];
            let at = p.sequence.unwrap_or_default();
            p.message = match b.later {
                0 => format!("chain breaks at {at} ({})", b.reason),
                n => format!("chain breaks at {at} ({}); {n} later event{} do not chain from it", b.reason, plural(n)),
            };
        }
        // Checkpoints claim events up to their size: those not in the export are missing too.
        let claimed = self.checkpoints.keys().next_back().map_or(0, |s| i64::try_from(*s).unwrap_or(i64::MAX));
        if claimed > self.last_sequence {
            push_run(&mut self.missing, self.last_sequence + 1, claimed);
        }
        let mut event_problems = std::mem::take(&mut self.event_problems);
        for (from, to) in &self.missing {
            event_problems.push(Problem::range(*from, *to, format!("missing {}", range_text(*from, *to))));
        }
        for (from, to) in crate::verify::ranges(&self.foreign) {
            event_problems.push(Problem::range(
                from,
                to,
                format!(
                    "foreign {}: rows the log did not write (out of place, or neither hash is the log's)",
                    range_text(from, to)
                ),
            ));
        }
        event_problems.sort_by_key(|p| p.sequence);
        report.problems.extend(event_problems);
        self.check_checkpoints(&mut report);
        self.check_coverage(&mut report);
        if let Some(trusted) = &self.options.trusted {
            self.check_trusted(trusted, &mut report);
        }
        report.newest = self.newest;
        report
    }

    /// Events of 1..=size whose leaves belong to the log.
    fn present(&self, size: u64) -> u64 {
        let end = i64::try_from(size).unwrap_or(i64::MAX);
        let count = self.accepted.iter().filter(|(from, _)| *from <= end).map(|(from, to)| (*to).min(end) - from + 1);
        u64::try_from(count.sum::<i64>()).unwrap_or_default()
    }

    /// Each checkpoint against the events it covers (once each), then consistency between
    /// consecutive checkpoints. Both heads checked against the same recomputed leaves is what a
    /// consistency proof from those leaves would show (short of a SHA-256 collision), so the pair
    /// is consistent exactly when both roots match.
    fn check_checkpoints(&self, report: &mut Report) {
        for (size, c) in &self.checkpoints {
            match self.roots.root(*size) {
                Some(root) if root != c.root => report
                    .problems
                    .push(Problem::checkpoint(*size, "its signed root does not match the events it covers")),
                Some(_) => {}
                None if self.late.contains(size) => report.problems.push(Problem::checkpoint(
                    *size,
                    "comes after later events, not after the last event it covers: its root was not checked in this pass",
                )),
                None => report.problems.push(Problem::checkpoint(
                    *size,
                    format!(
                        "is signed over {size} events, but only {} of them are in the export (the others are missing or foreign)",
                        self.present(*size)
                    ),
                )),
            }
        }
        let signed: Vec<(&u64, &Signed)> = self.checkpoints.iter().collect();
        for pair in signed.windows(2) {
            let ((a_size, a), (b_size, b)) = (pair[0], pair[1]);
            let Some(second) = self.roots.root(*b_size) else { continue };
            let consistent = *a_size > 0 && self.roots.root(*a_size) == Some(a.root) && second == b.root;
            if !consistent {
                report
                    .problems
                    .push(Problem::checkpoint(*b_size, format!("is not consistent with checkpoint {a_size}")));
            }
        }
    }

    /// Every event must be covered by a signed checkpoint.
    fn check_coverage(&self, report: &mut Report) {
        let covered = self.checkpoints.keys().next_back().map_or(0, |s| i64::try_from(*s).unwrap_or(i64::MAX));
        let last = self.last_sequence;
        if self.checkpoints.is_empty() && last > 0 {
            report.problems.push(Problem::general("no signed checkpoint covers the events"));
        } else if covered < last {
            report.problems.push(Problem::range(
                covered + 1,
                last,
                format!("events {} are not covered by a signed checkpoint", range_text(covered + 1, last)),
            ));
        }
    }

    /// The log must still hold every event the trusted checkpoint covered and reproduce its root;
    /// then the newest checkpoint must be consistent with it (an RFC 9162 consistency proof over
    /// the export's leaves).
    fn check_trusted(&self, trusted: &TrustedCheckpoint, report: &mut Report) {
        let m = trusted.size;
        let was = format!("the log was at {m} {}", trusted.described_as);
        if let Some(other) = self.checkpoints.values().find(|c| c.origin != trusted.origin) {
            report.problems.push(Problem::general(format!(
                "the export is of log `{}`, but {was} of log `{}`",
                other.origin, trusted.origin
            )));
            return;
        }
        let Some(root) = self.roots.root(m) else {
            let gone = self.absent(i64::try_from(m).unwrap_or(i64::MAX));
            let count: i64 = gone.iter().map(|(from, to)| to - from + 1).sum();
            let named: Vec<String> = gone.iter().map(|(a, b)| range_text(*a, *b)).collect();
            let first = gone.first().map_or(1, |(from, _)| *from);
            report.problems.push(Problem::range(
                first,
                gone.last().map_or(first, |(_, to)| *to),
                format!("event{} {} missing: {was}", plural(usize::try_from(count).unwrap_or(0)), named.join(", ")),
            ));
            return;
        };
        if root != trusted.root {
            report.problems.push(Problem::general(format!(
                "events 1..{m} do not reproduce the root they had: {was}; it was rewritten since"
            )));
            return;
        }
        let newest = self.checkpoints.iter().next_back().filter(|(size, _)| **size >= m);
        let Some((newest_size, newest)) = newest else { return };
        let Some(newest_root) = self.roots.root(*newest_size) else { return };
        // The trusted root matched the leaves above: consistent exactly when the newest one does too.
        let consistent = m > 0 && newest_root == newest.root;
        if !consistent {
            report.problems.push(Problem::checkpoint(
                *newest_size,
                format!("is not consistent with the checkpoint of {m} verified before"),
            ));
        }
    }

    /// Runs of 1..=last whose leaves are not the log's.
    fn absent(&self, last: i64) -> Vec<(i64, i64)> {
        let mut gone = Vec::new();
        let mut next = 1;
        for (from, to) in &self.accepted {
            if *from > last {
                break;
            }
            if *from > next {
                gone.push((next, from - 1));
            }
            next = to + 1;
        }
        if next <= last {
            gone.push((next, last));
        }
        gone
    }
}

/// Appends the run `from..=to` to increasing runs, joining it to the last when they touch.
fn push_run(runs: &mut Vec<(i64, i64)>, from: i64, to: i64) {
    match runs.last_mut() {
        Some((_, end)) if *end + 1 == from => *end = to,
        _ => runs.push((from, to)),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
