//! Verifying an export file on every core, in constant memory: one thread reads the file in chunks
//! of whole lines, worker threads parse the lines and recompute the events' leaf hashes (the costly,
//! independent part), and the calling thread feeds their results in file order into one
//! [`Verifier`] (the chain and the tree, which are sequential). At most a few chunks are in flight at
//! any time, whatever the size of the file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use crate::export::{ExportLine, ExportedEvent, Report};
use crate::verifier::{CheckedEvent, Verifier};
use crate::verify::VerifyOptions;

/// How a file is read and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// Worker threads parsing lines and hashing leaves.
    pub workers: usize,
    /// Bytes read at once (a chunk ends at the last whole line; a longer line makes it longer).
    pub chunk_bytes: usize,
    /// Chunks read but not yet fed to the verifier: what bounds memory.
    pub in_flight: usize,
}

impl Default for Parallelism {
    /// A worker per core, 4 MiB chunks, two chunks in flight per worker.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Self { workers, chunk_bytes: 4 << 20, in_flight: 2 * workers + 2 }
    }
}

/// One parsed line.
enum Item {
    Event(CheckedEvent),
    Checkpoint(String),
}

/// A chunk's lines, parsed.
struct Parsed {
    items: Vec<Item>,
    /// Lines in the chunk (blank ones included), to number the lines of the chunks after it.
    lines: usize,
    /// The first line that does not parse: its number within the chunk (1-based) and why.
    unreadable: Option<(usize, String)>,
}

/// Verifies the export file at `path` with `options`. A file whose checkpoints come after later
/// events (edited by hand: the service writes each after the last event it covers) is read a
/// second time with their sizes asked for up front, so that every checkpoint is checked.
pub fn verify_path(path: &Path, options: &VerifyOptions, parallelism: Parallelism) -> Result<Report, String> {
    let open = || std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()));
    let mut verifier = Verifier::new(options.clone());
    feed(open()?, &mut verifier, parallelism).map_err(|e| format!("{}: {e}", path.display()))?;
    let late = verifier.late();
    if late.is_empty() {
        return Ok(verifier.finish());
    }
    let mut again = Verifier::wanting(options.clone(), late);
    feed(open()?, &mut again, parallelism).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(again.finish())
}

/// Reads the JSON lines of an export from `reader` into `verifier`, parsing them on
/// `parallelism.workers` threads; a line that does not parse is an error naming its number (the
/// lines before it were pushed).
pub fn feed(reader: impl Read + Send, verifier: &mut Verifier, parallelism: Parallelism) -> Result<(), String> {
    let workers = parallelism.workers.max(1);
    let in_flight = parallelism.in_flight.max(1);
    let chunk_bytes = parallelism.chunk_bytes.max(1);
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(in_flight);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Parsed)>(in_flight);
    // A chunk is read only with a token, returned when the chunk has been fed to the verifier.
    let (token_tx, token_rx) = mpsc::sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.send(());
    }
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || read_chunks(reader, chunk_bytes, &work_tx, &token_rx));
        for _ in 0..workers {
            let (work_rx, done_tx) = (Arc::clone(&work_rx), done_tx.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held only while waiting for the next chunk.
                    let next = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((index, mut chunk)) = next else { return };
                    if done_tx.send((index, parse_chunk(&mut chunk))).is_err() {
                        return;
                    }
                }
            });
        }
        drop((done_tx, work_rx));
        let mut waiting: BTreeMap<usize, Parsed> = BTreeMap::new();
        let (mut next, mut lines_before) = (0usize, 0usize);
        let mut failure = None;
        'chunks: for (index, parsed) in &done_rx {
            waiting.insert(index, parsed);
            while let Some(parsed) = waiting.remove(&next) {
                for item in parsed.items {
                    match item {
                        Item::Event(e) => verifier.push_event(e),
                        Item::Checkpoint(note) => verifier.push_checkpoint(&note),
                    }
                }
                if let Some((line, why)) = parsed.unreadable {
                    failure = Some(format!("line {}: {why}", lines_before + line));
                    break 'chunks;
                }
                lines_before += parsed.lines;
                next += 1;
                let _ = token_tx.send(());
            }
        }
        // Stops the reader (no more tokens) and the workers (nowhere to send) after a failure.
        drop((token_tx, done_rx));
        let read = reading.join().unwrap_or_else(|_| Err("the reading thread failed".to_owned()));
        match failure {
            Some(why) => Err(why),
            None => read,
        }
    })
}

/// Sends the input in chunks of whole lines, numbered from 0, each once a token is free.
fn read_chunks(
    mut reader: impl Read,
    chunk_bytes: usize,
    work: &mpsc::SyncSender<(usize, Vec<u8>)>,
    tokens: &mpsc::Receiver<()>,
) -> Result<(), String> {
    let mut carry: Vec<u8> = Vec::new();
    for index in 0.. {
        if tokens.recv().is_err() {
            return Ok(()); // the verification stopped
        }
        let mut chunk = std::mem::take(&mut carry);
        let mut target = chunk_bytes;
        let eof = loop {
            let want = target.saturating_sub(chunk.len()).max(1);
            // Read straight into room made once, not into a buffer grown step by step.
            chunk.reserve_exact(want);
            let got =
                (&mut reader).take(want as u64).read_to_end(&mut chunk).map_err(|e| format!("cannot be read: {e}"))?;
            if got < want {
                break true;
            }
            if chunk.contains(&b'\n') {
                break false;
            }
            // A line longer than a chunk: the chunk grows to hold it.
            target = chunk.len() * 2;
        };
        if !eof && let Some(end) = chunk.iter().rposition(|b| *b == b'\n') {
            carry = chunk.split_off(end + 1);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        if work.send((index, chunk)).is_err() {
            return Ok(());
        }
        if eof {
            return Ok(());
        }
    }
    Ok(())
}

/// How `prfix audit export` starts an event line (the tag first, no spaces).
const EVENT_PREFIX: &[u8] = b"{\"type\":\"event\",";

/// Parses a chunk's lines (blank lines skipped) and takes each event's leaf, up to the first line
/// that does not parse.
fn parse_chunk(chunk: &mut [u8]) -> Parsed {
    let body = match chunk.split_last_mut() {
        Some((b'\n', body)) => body,
        _ => chunk,
    };
    let mut parsed = Parsed { items: Vec::new(), lines: 0, unreadable: None };
    for (i, line) in body.split_mut(|b| *b == b'\n').enumerate() {
        parsed.lines = i + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // An event line as the export writes it is read as the event it tags, skipping the tag:
        // serde reads an internally tagged enum by buffering the whole object first, which costs
        // more than the rest of verification. The line with its tag put back is read the general
        // way when that fails, so that errors read the same.
        if line.starts_with(EVENT_PREFIX) {
            let open = EVENT_PREFIX.len() - 1;
            line[open] = b'{';
            if let Ok(e) = serde_json::from_slice::<ExportedEvent>(&line[open..]) {
                parsed.items.push(Item::Event(CheckedEvent::from(e)));
                continue;
            }
            line[open] = b',';
        }
        match serde_json::from_slice::<ExportLine>(line) {
            Ok(ExportLine::Event(e)) => parsed.items.push(Item::Event(CheckedEvent::from(*e))),
            Ok(ExportLine::Checkpoint { signed_note }) => parsed.items.push(Item::Checkpoint(signed_note)),
            Err(e) => {
                parsed.unreadable = Some((i + 1, e.to_string()));
                break;
            }
        }
    }
    parsed
}
