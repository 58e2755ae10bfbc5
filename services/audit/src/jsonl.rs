//! The export in JSON lines (`EXPORT_FORMAT_JSONL`): the service renders the export file's lines
//! straight from the stored rows and sends them in chunks of whole lines; the client writes the
//! chunks as they come. The lines are byte for byte what items converted by the client give
//! ([`crate::export::line_from_proto`] then [`crate::export::write_line`]).

use prfix_proto::audit::v1 as pb;
use serde::Serialize;
use tokio_postgres::Row;

use crate::export::{ExportLine, line_from_proto, write_line};

/// A chunk of an export in JSON lines is cut at the first line end past this many bytes.
pub const CHUNK: usize = 1 << 20;

/// An event line borrowed from its row: the fields and attributes of
/// [`crate::export::ExportedEvent`], in its order, so that both render the same bytes.
#[derive(Serialize)]
struct EventLine<'a> {
    sequence: i64,
    event_id: uuid::Uuid,
    time: String,
    actor_subject: &'a str,
    actor_roles: Vec<&'a str>,
    actor_ip: &'a str,
    action: &'a str,
    resource: &'a str,
    result: i32,
    request_id: &'a str,
    trace_id: &'a str,
    metadata: serde_json::Value,
    #[serde(serialize_with = "hex_text")]
    leaf_hash: &'a [u8],
    #[serde(serialize_with = "hex_text")]
    chain_hash: &'a [u8],
    encoding: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    appender_subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    appender_credential: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receive_time: Option<String>,
}

/// The line's `type` tag, first as [`ExportLine`]'s internal tag puts it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Event(EventLine<'a>),
}

/// Lower-case hex, as `hex::encode` writes it, without going through `char`s.
fn hex_text<S: serde::Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = vec![0u8; bytes.len() * 2];
    // The output is exactly twice the input, the one length encode_to_slice refuses to differ.
    hex::encode_to_slice(bytes, &mut text).map_err(serde::ser::Error::custom)?;
    // Only ASCII digits were written.
    serializer.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
}

/// Renders the event of `row` (the columns of [`crate::store::COLUMNS`]) as its export line into
/// `out`, read as the items path reads it (`crate::store::row_to_event`): an encoding other than 1 is
/// 2 with its appender fields, a missing one empty. Returns its sequence.
pub fn render_row(row: &Row, out: &mut Vec<u8>) -> Result<i64, tokio_postgres::Error> {
    let v1 = row.try_get::<_, i16>(15)? == crate::canonical::ENCODING_V1;
    let appender = |i| -> Result<Option<&str>, tokio_postgres::Error> {
        Ok(if v1 { None } else { Some(row.try_get::<_, Option<&str>>(i)?.unwrap_or_default()) })
    };
    let received = if v1 {
        None
    } else {
        Some(crate::canonical::time_text(
            row.try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(18)?.unwrap_or_default(),
        ))
    };
    let sequence = row.try_get(0)?;
    let line = Line::Event(EventLine {
        sequence,
        event_id: row.try_get(1)?,
        time: crate::canonical::time_text(row.try_get(2)?),
        actor_subject: row.try_get(3)?,
        actor_roles: row.try_get(4)?,
        actor_ip: row.try_get(5)?,
        action: row.try_get(6)?,
        resource: row.try_get(7)?,
        result: i32::from(row.try_get::<_, i16>(8)?),
        request_id: row.try_get(9)?,
        trace_id: row.try_get(10)?,
        metadata: crate::json::as_struct_carries(row.try_get(11)?),
        leaf_hash: row.try_get(13)?,
        chain_hash: row.try_get(14)?,
        encoding: i32::from(if v1 { crate::canonical::ENCODING_V1 } else { crate::canonical::ENCODING_V2 }),
        appender_subject: appender(16)?,
        appender_credential: appender(17)?,
        receive_time: received,
    });
    // Writing JSON into memory fails only for a map with non-string keys, which no line has.
    if let Err(e) = serde_json::to_writer(&mut *out, &line) {
        tracing::error!(error = %e, sequence, "an export line could not be rendered");
    }
    out.push(b'\n');
    Ok(sequence)
}

/// A page of events rendered as export lines: the text, and where each event's line ends.
#[derive(Debug, Default)]
pub struct RenderedPage {
    /// The lines.
    pub text: Vec<u8>,
    /// Each event's sequence and the end of its line in `text`, in order.
    pub ends: Vec<(i64, usize)>,
}

/// Export lines gathered into chunks of whole lines (about [`CHUNK`] bytes each): written one after
/// the other, the chunks are the export file.
#[derive(Debug, Default)]
pub struct Chunks {
    current: Vec<u8>,
    done: Vec<Vec<u8>>,
}

impl Chunks {
    /// Appends whole lines, cutting a chunk at the first line end that takes it to [`CHUNK`] bytes:
    /// a chunk is at most [`CHUNK`] bytes and one line.
    pub fn extend(&mut self, mut lines: &[u8]) {
        while !lines.is_empty() {
            if self.current.capacity() == 0 {
                self.current.reserve(CHUNK + CHUNK / 4);
            }
            let room = CHUNK.saturating_sub(self.current.len());
            // The end of the line that crosses `room` (all of `lines` when none does).
            let take = match lines.get(room.saturating_sub(1)..).and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            {
                Some(at) => room.saturating_sub(1) + at + 1,
                None => lines.len(),
            };
            self.current.extend_from_slice(&lines[..take]);
            lines = &lines[take..];
            if self.current.len() >= CHUNK {
                self.done.push(std::mem::take(&mut self.current));
            }
        }
    }

    /// Appends a line rendered here (a checkpoint's).
    pub fn push(&mut self, line: &ExportLine) {
        let mut text = Vec::new();
        if let Err(e) = write_line(line, &mut text) {
            tracing::error!(error = %e, "an export line could not be rendered");
        }
        self.extend(&text);
    }

    /// The chunks completed so far; with `all`, also the last, partly filled one.
    pub fn take(&mut self, all: bool) -> Vec<Vec<u8>> {
        if all && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        std::mem::take(&mut self.done)
    }
}

/// Counts the events and checkpoints of a chunk of whole export lines (every line starts with its
/// `type`, as the service renders it).
pub fn count(chunk: &[u8]) -> (u64, u64) {
    let (mut events, mut checkpoints) = (0, 0);
    for line in chunk.split(|&b| b == b'\n') {
        if line.starts_with(br#"{"type":"event""#) {
            events += 1;
        } else if line.starts_with(br#"{"type":"checkpoint""#) {
            checkpoints += 1;
        }
    }
    (events, checkpoints)
}

/// The request for an export in JSON lines of `start_sequence..=end_sequence` (0, 0: everything).
pub fn request(start_sequence: i64, end_sequence: i64) -> pb::ExportEventsRequest {
    pb::ExportEventsRequest { start_sequence, end_sequence, format: pb::ExportFormat::Jsonl.into() }
}

/// Writes an ExportEvents stream into `out` as the export file, as `prfix audit export` does: each
/// chunk of JSON lines as it comes (memory stays flat), and items (what a service from before JSON
/// lines sends) converted to lines. Returns the events and checkpoints written; does not flush.
pub async fn write_stream(
    stream: &mut tonic::Streaming<pb::ExportEventsResponse>,
    out: &mut impl std::io::Write,
) -> Result<(u64, u64), String> {
    let (mut events, mut checkpoints) = (0, 0);
    let written = |e: std::io::Error| format!("writing the export failed: {e}");
    while let Some(item) = stream.message().await.map_err(|s| format!("the export broke off: {}", s.message()))? {
        if let Some(pb::export_events_response::Item::Jsonl(chunk)) = &item.item {
            if chunk.last().is_some_and(|&b| b != b'\n') {
                return Err("the export broke off: a chunk of JSON lines does not end with a whole line".to_owned());
            }
            let (e, c) = count(chunk);
            (events, checkpoints) = (events + e, checkpoints + c);
            out.write_all(chunk).map_err(written)?;
            continue;
        }
        let line = line_from_proto(item)?;
        match line {
            ExportLine::Event(_) => events += 1,
            ExportLine::Checkpoint { .. } => checkpoints += 1,
        }
        write_line(&line, out).map_err(written)?;
    }
    Ok((events, checkpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_what_the_hex_crate_writes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        hex_text(&bytes.as_slice(), &mut serde_json::Serializer::new(&mut out)).expect("hex");
        assert_eq!(out, format!("\"{}\"", hex::encode(&bytes)).into_bytes());
    }

    #[test]
    fn chunks_are_cut_after_whole_lines_once_past_the_size() {
        let mut chunks = Chunks::default();
        let line = vec![b'x'; 1000];
        let mut all = Vec::new();
        for _ in 0..(5 * CHUNK / 2 / 1000) {
            let mut l = line.clone();
            l.push(b'\n');
            chunks.extend(&l);
            all.extend_from_slice(&l);
        }
        let mut got = chunks.take(false);
        assert_eq!(got.len(), 2);
        got.extend(chunks.take(true));
        assert!(got.iter().all(|c| c.ends_with(b"\n") && c.len() < CHUNK + 1001));
        assert_eq!(got.concat(), all);
        assert!(chunks.take(true).is_empty());
    }

    #[test]
    fn a_page_given_whole_is_cut_at_the_line_that_reaches_the_size() {
        // Lines of every length up to 20 KB, given as pages of many lines at once.
        let lines: Vec<Vec<u8>> = (0..700)
            .map(|i| {
                let mut line = vec![b'a' + (i % 26) as u8; (i * 7_919) % 20_000];
                line.push(b'\n');
                line
            })
            .collect();
        let longest = lines.iter().map(Vec::len).max().unwrap_or(0);
        let mut chunks = Chunks::default();
        let mut all = Vec::new();
        for page in lines.chunks(150) {
            let text = page.concat();
            chunks.extend(&text);
            all.extend_from_slice(&text);
        }
        let got = chunks.take(true);
        assert!(got.len() >= 3, "{} chunks", got.len());
        for chunk in &got {
            assert!(chunk.ends_with(b"\n"));
            assert!(chunk.len() < CHUNK + longest, "a chunk of {} bytes", chunk.len());
        }
        assert!(got[..got.len() - 1].iter().all(|c| c.len() >= CHUNK));
        assert_eq!(got.concat(), all);
    }

    #[test]
    fn count_tells_events_from_checkpoints() {
        let text = concat!(
            r#"{"type":"event","sequence":1}"#,
            "\n",
            r#"{"type":"checkpoint","signed_note":"x"}"#,
            "\n",
            r#"{"type":"event"}"#,
            "\n"
        )
        .as_bytes();
        assert_eq!(count(text), (2, 1));
    }
}
