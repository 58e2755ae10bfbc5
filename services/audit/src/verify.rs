//! Verifying an export with only the checkpoint key, and against a checkpoint remembered from an
//! earlier verification (a monitor's state, or a caller's trusted checkpoint).
//!
//! A log that was tampered with is read as it is: every missing or foreign sequence number is
//! named (ranges collapsed), the first event whose hashes break is named with the count of later
//! events that no longer chain from it (one problem, not one per event), and each checkpoint that
//! no longer matches says so once.

use std::collections::BTreeMap;

use crate::canonical;
use crate::checkpoint::VerifierKey;
use crate::export::{ExportLine, Problem, Report};
use crate::frontier::PrefixRoots;
use crate::merkle::{self, Hash};

/// What a verification trusts and compares against. Witness cosignatures (`verify --witness`) are
/// to be added here as another field, checked after the rest.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys trusted to have signed checkpoints (several after a key rotation); each checkpoint must
    /// verify with one.
    pub keys: Vec<VerifierKey>,
    /// A checkpoint verified before (remembered by a monitor, or given by a caller): the log must
    /// still hold every event it covered and reproduce its root.
    pub trusted: Option<TrustedCheckpoint>,
}

/// A checkpoint known to have been good once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCheckpoint {
    /// The log's origin line.
    pub origin: String,
    /// Events it covered.
    pub size: u64,
    /// Its Merkle root.
    pub root: Hash,
    /// How problems name it, after "the log was at N ": e.g. "when last verified (2026-…)".
    pub described_as: String,
}

impl TrustedCheckpoint {
    /// The checkpoint of a signed note that one of `keys` signed; `described_as` names it in
    /// problems.
    pub fn from_note(note: &str, keys: &[VerifierKey], described_as: String) -> Result<Self, String> {
        let (origin, size, root) = verify_note(note, keys)?;
        Ok(Self { origin, size, root, described_as })
    }
}

/// The newest checkpoint an export carries whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// Origin line.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Merkle root.
    pub root: Hash,
    /// The signed note as exported.
    pub signed_note: String,
}

/// A signed note's origin, size and root, or why it is refused.
type NoteCheck = Result<(String, u64, Hash), String>;

/// Verifies an export with `keys` only (see [`verify_with`]).
pub fn verify(lines: &[ExportLine], keys: &[VerifierKey]) -> Report {
    verify_with(lines, &VerifyOptions { keys: keys.to_vec(), trusted: None })
}

/// An event's place in the chain as it is being read.
struct Break {
    /// The problem's index in the event problems.
    problem: usize,
    /// Why the chain broke there.
    reason: String,
    /// Later events that link to their predecessor but not to the chain from the start.
    later: usize,
}

/// Verifies an export: each event's leaf hash against its content, the chain, the sequence (every
/// missing or foreign number, ranges collapsed), each checkpoint's signature and root over the
/// recomputed leaves, consistency between checkpoints, that every event is covered, and, with
/// `options.trusted`, that the log still extends the trusted checkpoint.
pub fn verify_with(lines: &[ExportLine], options: &VerifyOptions) -> Report {
    let mut report = Report::default();
    let mut event_problems: Vec<Problem> = Vec::new();
    // Recomputed leaves of the events that belong to the log, by sequence.
    let mut leaves: BTreeMap<i64, Hash> = BTreeMap::new();
    let mut missing: Vec<i64> = Vec::new();
    let mut foreign: Vec<i64> = Vec::new();
    let mut last_sequence = 0i64;
    // The stored chain hash of the previous row read (whatever it was) and whether it was foreign.
    let mut previous_chain: Option<Hash> = Some([0u8; 32]);
    let mut previous_foreign = false;
    // The chain recomputed from the start over the recomputed leaves.
    let mut running = [0u8; 32];
    let mut open: Option<Break> = None;
    let mut breaks: Vec<Break> = Vec::new();
    let mut checkpoints: BTreeMap<u64, VerifiedCheckpoint> = BTreeMap::new();
    // The signatures first, so that the heads of the trees they sign are taken in the one pass over
    // the events (from a frontier), not recomputed from every leaf for each checkpoint.
    let notes: Vec<Option<NoteCheck>> = lines
        .iter()
        .map(|line| match line {
            ExportLine::Checkpoint { signed_note } => Some(verify_note(signed_note, &options.keys)),
            ExportLine::Event(_) => None,
        })
        .collect();
    let wanted = notes.iter().flatten().filter_map(|n| n.as_ref().ok().map(|(_, size, _)| *size));
    let mut roots = PrefixRoots::new(wanted.chain(options.trusted.as_ref().map(|t| t.size)));

    for (line, note) in lines.iter().zip(notes) {
        let e = match line {
            ExportLine::Event(e) => e,
            ExportLine::Checkpoint { signed_note } => {
                match note.unwrap_or_else(|| verify_note(signed_note, &options.keys)) {
                    Err(why) => report.problems.push(Problem::general(format!("a checkpoint is refused: {why}"))),
                    Ok((origin, size, root)) => {
                        report.checkpoints += 1;
                        checkpoints.entry(size).or_insert(VerifiedCheckpoint {
                            origin,
                            size,
                            root,
                            signed_note: signed_note.clone(),
                        });
                    }
                }
                continue;
            }
        };
        report.events += 1;
        let s = e.sequence;
        if s < 1 || s <= last_sequence {
            // A row out of place (a repeated or earlier number) cannot be the log's.
            foreign.push(s);
            continue;
        }
        let gap = s > last_sequence + 1;
        missing.extend(last_sequence + 1..s);
        last_sequence = s;
        let stored_leaf = decode(&e.leaf_hash);
        let stored_chain = decode(&e.chain_hash);
        let recomputed = match e.recomputed_leaf() {
            Ok(leaf) => Some(leaf),
            Err(why) => {
                event_problems.push(Problem::event(s, format!("unreadable: {why}")));
                None
            }
        };
        let leaf_ok = recomputed.is_some() && recomputed == stored_leaf;
        let link_ok = !gap
            && match (previous_chain, stored_leaf, stored_chain) {
                (Some(p), Some(l), Some(c)) => canonical::chain_hash(&p, &l) == c,
                _ => false,
            };
        let was_foreign = previous_foreign;
        previous_chain = stored_chain;
        previous_foreign = false;
        if !leaf_ok && !link_ok && recomputed.is_some() {
            // Neither hash is the log's: a row the log did not write.
            foreign.push(s);
            previous_foreign = true;
            continue;
        }
        if !leaf_ok && recomputed.is_some() {
            event_problems
                .push(Problem::event(s, "its content does not match its leaf hash (changed after it was written)"));
        }
        let leaf = recomputed.or(stored_leaf).unwrap_or_else(|| merkle::leaf_hash(e.event_id.as_bytes()));
        leaves.insert(s, leaf);
        roots.push(s, &leaf);
        running = canonical::chain_hash(&running, &leaf);
        if stored_chain == Some(running) {
            if let Some(b) = open.take() {
                breaks.push(b);
            }
        } else if let Some(b) = open.as_mut().filter(|_| link_ok && leaf_ok) {
            b.later += 1;
            event_problems[b.problem].last_sequence = Some(s);
        } else {
            if let Some(b) = open.take() {
                breaks.push(b);
            }
            let reason = if gap {
                format!("after missing {}", range_text(last_gap_start(&missing, s), s - 1))
            } else if was_foreign {
                format!("after foreign {}", s - 1)
            } else if !leaf_ok {
                "its content changed".to_owned()
            } else {
                format!("its chain hash does not follow from event {}", s - 1)
            };
            event_problems.push(Problem { last_sequence: Some(s), ..Problem::event(s, String::new()) });
            open = Some(Break { problem: event_problems.len() - 1, reason, later: 0 });
        }
    }
    breaks.extend(open);
    for b in &breaks {
        let p = &mut event_problems[b.problem];
        let at = p.sequence.unwrap_or_default();
        p.message = match b.later {
            0 => format!("chain breaks at {at} ({})", b.reason),
            n => format!("chain breaks at {at} ({}); {n} later event{} do not chain from it", b.reason, plural(n)),
        };
    }
    // Checkpoints claim events up to their size: those not in the export are missing too.
    let claimed = checkpoints.keys().next_back().copied().map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX));
    if claimed > last_sequence {
        missing.extend((last_sequence + 1..=claimed).filter(|s| !foreign.contains(s)));
    }
    for (from, to) in ranges(&missing) {
        event_problems.push(Problem::range(from, to, format!("missing {}", range_text(from, to))));
    }
    foreign.sort_unstable();
    foreign.dedup();
    for (from, to) in ranges(&foreign) {
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
    check_checkpoints(&checkpoints, &roots, &leaves, &mut report);
    check_coverage(&checkpoints, last_sequence, &mut report);
    if let Some(trusted) = &options.trusted {
        check_trusted(trusted, &checkpoints, &roots, &leaves, &mut report);
    }
    report.newest = checkpoints.into_values().next_back();
    report
}

/// The first sequence of the run of missing numbers that ends just before `s`.
fn last_gap_start(missing: &[i64], s: i64) -> i64 {
    let mut start = s - 1;
    for m in missing.iter().rev() {
        if *m == start - 1 {
            start = *m;
        } else if *m < start - 1 {
            break;
        }
    }
    start
}

fn present(leaves: &BTreeMap<i64, Hash>, size: u64) -> usize {
    leaves.range(1..=i64::try_from(size).unwrap_or(i64::MAX)).count()
}

/// Each checkpoint against the events it covers (once each), then consistency between
/// consecutive checkpoints. Both heads checked against the same recomputed leaves is what a
/// consistency proof from those leaves would show (short of a SHA-256 collision), so the pair is
/// consistent exactly when both roots match.
fn check_checkpoints(
    checkpoints: &BTreeMap<u64, VerifiedCheckpoint>,
    roots: &PrefixRoots,
    leaves: &BTreeMap<i64, Hash>,
    report: &mut Report,
) {
    for (size, c) in checkpoints {
        match roots.root(*size) {
            Some(root) if root != c.root => {
                report.problems.push(Problem::checkpoint(*size, "its signed root does not match the events it covers"));
            }
            Some(_) => {}
            None => report.problems.push(Problem::checkpoint(
                *size,
                format!(
                    "is signed over {size} events, but only {} of them are in the export (the others are missing or foreign)",
                    present(leaves, *size)
                ),
            )),
        }
    }
    let sizes: Vec<&VerifiedCheckpoint> = checkpoints.values().collect();
    for pair in sizes.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let Some(second) = roots.root(b.size) else { continue };
        let consistent = a.size > 0 && roots.root(a.size) == Some(a.root) && second == b.root;
        if !consistent {
            report.problems.push(Problem::checkpoint(b.size, format!("is not consistent with checkpoint {}", a.size)));
        }
    }
}

/// Every event must be covered by a signed checkpoint.
fn check_coverage(checkpoints: &BTreeMap<u64, VerifiedCheckpoint>, last_sequence: i64, report: &mut Report) {
    let covered = checkpoints.keys().next_back().map_or(0, |s| i64::try_from(*s).unwrap_or(i64::MAX));
    if checkpoints.is_empty() && last_sequence > 0 {
        report.problems.push(Problem::general("no signed checkpoint covers the events"));
    } else if covered < last_sequence {
        report.problems.push(Problem::range(
            covered + 1,
            last_sequence,
            format!("events {} are not covered by a signed checkpoint", range_text(covered + 1, last_sequence)),
        ));
    }
}

/// The log must still hold every event the trusted checkpoint covered and reproduce its root;
/// then the newest checkpoint must be consistent with it (an RFC 9162 consistency proof over the
/// export's leaves).
fn check_trusted(
    trusted: &TrustedCheckpoint,
    checkpoints: &BTreeMap<u64, VerifiedCheckpoint>,
    roots: &PrefixRoots,
    leaves: &BTreeMap<i64, Hash>,
    report: &mut Report,
) {
    let m = trusted.size;
    let was = format!("the log was at {m} {}", trusted.described_as);
    if let Some(other) = checkpoints.values().find(|c| c.origin != trusted.origin) {
        report.problems.push(Problem::general(format!(
            "the export is of log `{}`, but {was} of log `{}`",
            other.origin, trusted.origin
        )));
        return;
    }
    let Some(root) = roots.root(m) else {
        let last = i64::try_from(m).unwrap_or(i64::MAX);
        let gone: Vec<i64> = (1..=last).filter(|s| !leaves.contains_key(s)).collect();
        let named: Vec<String> = ranges(&gone).into_iter().map(|(a, b)| range_text(a, b)).collect();
        let first = gone.first().copied().unwrap_or(1);
        report.problems.push(Problem::range(
            first,
            gone.last().copied().unwrap_or(first),
            format!("event{} {} missing: {was}", plural(gone.len()), named.join(", ")),
        ));
        return;
    };
    if root != trusted.root {
        report.problems.push(Problem::general(format!(
            "events 1..{m} do not reproduce the root they had: {was}; it was rewritten since"
        )));
        return;
    }
    let Some(newest) = checkpoints.values().next_back().filter(|c| c.size >= m) else { return };
    let Some(newest_root) = roots.root(newest.size) else { return };
    // The trusted root matched the leaves above: consistent exactly when the newest one does too.
    let consistent = m > 0 && newest_root == newest.root;
    if !consistent {
        report.problems.push(Problem::checkpoint(
            newest.size,
            format!("is not consistent with the checkpoint of {m} verified before"),
        ));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn decode(text: &str) -> Option<Hash> {
    hex::decode(text).ok().and_then(|b| b.try_into().ok())
}

/// Sorted, distinct numbers as inclusive runs.
pub fn ranges(numbers: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, to)) if *to + 1 == n => *to = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// `17` or `30..34`.
pub fn range_text(from: i64, to: i64) -> String {
    if from == to { from.to_string() } else { format!("{from}..{to}") }
}

/// The note's origin, size and root when one of `keys` signed it; else why not (a malformed note is
/// said as such, a signature by none of the keys names them all).
pub fn verify_note(note: &str, keys: &[VerifierKey]) -> Result<(String, u64, Hash), String> {
    let mut first_error = None;
    for key in keys {
        match key.verify(note) {
            Ok(found) => return Ok(found),
            Err(e @ crate::checkpoint::NoteError::Malformed(_)) => return Err(e.to_string()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (keys.len(), first_error) {
        (1, Some(e)) => Err(e.to_string()),
        _ => Err(format!(
            "checkpoint signature does not verify with any of the keys {}",
            keys.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
