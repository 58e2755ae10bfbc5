//! The ExportEvents stream: keyset pages of the log, read (and, in JSON lines, rendered)
//! [`AHEAD`] at a time on their own connections while the last is sent, each checkpoint after the
//! event it ends at; as items (an event or checkpoint message each) or as chunks of JSON lines
//! ([`crate::jsonl`]).

use std::iter::Peekable;
use std::pin::Pin;

use deadpool_postgres::Pool;
use futures::{Stream, StreamExt};
use prfix_proto::audit::v1 as pb;
use prfix_runtime::error::to_status;
use tokio::sync::mpsc;
use tonic::Status;

use crate::checkpointer::StoredCheckpoint;
use crate::export::ExportLine;
use crate::grpc::{checkpoint_message, to_proto};
use crate::jsonl::Chunks;
use crate::store::{self, StoredEvent};

/// Events fetched per page.
pub(crate) const PAGE: i64 = 2_000;
/// Pages read at once, each on its own connection.
const AHEAD: usize = 2;

/// What ExportEvents answers.
pub(crate) type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::ExportEventsResponse, Status>> + Send>>;

/// The export of the events `start..=end` with `checkpoints` (those of that range, in order), as
/// chunks of JSON lines (`jsonl`) or as items.
pub(crate) fn stream(
    pool: Pool,
    start: i64,
    end: i64,
    checkpoints: Vec<StoredCheckpoint>,
    jsonl: bool,
) -> ExportStream {
    // Whole pages go through the channel (two at most: memory stays flat), not single items:
    // one hand-over per page instead of one per event.
    let (tx, rx) = mpsc::channel::<Vec<Result<pb::ExportEventsResponse, Status>>>(2);
    tokio::spawn(async move {
        let mut out = PageOut::new(jsonl);
        let mut pending = checkpoints.into_iter().peekable();
        // Keyset pages, read (and, in JSON lines, rendered) [`AHEAD`] at a time on their
        // own connections while this one is sent: Postgres, the rendering and the sending overlap.
        let fetch = |from: i64| {
            let pool = pool.clone();
            tokio::spawn(async move {
                if jsonl {
                    store::range_rendered(&pool, from, end, PAGE).await.map(Page::Rendered)
                } else {
                    store::range(&pool, from, end, PAGE).await.map(Page::Events)
                }
            })
        };
        let mut from = start;
        let mut ahead = Ahead(std::collections::VecDeque::new());
        while let Some(fetching) = {
            while ahead.0.len() < AHEAD && from <= end {
                ahead.0.push_back(fetch(from));
                from = from.saturating_add(PAGE);
            }
            ahead.0.pop_front()
        } {
            let failed = match fetching.await {
                Ok(Ok(page)) => {
                    out.page(page, &mut pending);
                    None
                }
                Ok(Err(e)) => Some(to_status(e)),
                Err(e) => Some(Status::internal(format!("reading an export page failed: {e}"))),
            };
            if let Some(status) = failed {
                let _ = tx.send(vec![Err(status)]).await;
                return;
            }
            if tx.send(out.take(false)).await.is_err() {
                return; // the client went away
            }
        }
        // Checkpoints past the last event still go out: a verifier must see what was signed,
        // even when the events it covered are gone.
        pending.for_each(|c| out.checkpoint(c));
        let _ = tx.send(out.take(true)).await;
    });
    let items = tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(futures::stream::iter);
    Box::pin(items)
}

/// Page reads of an export under way: aborted when it ends before them (the client went away, or a
/// page failed), so that they do not go on holding connections.
struct Ahead<T>(std::collections::VecDeque<tokio::task::JoinHandle<T>>);

impl<T> Drop for Ahead<T> {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// A page of an export as read: events, or (in JSON lines) their lines rendered already.
enum Page {
    Events(Vec<StoredEvent>),
    Rendered(crate::jsonl::RenderedPage),
}

/// An export's messages as its pages are read: items, or chunks of JSON lines.
struct PageOut {
    jsonl: bool,
    items: Vec<Result<pb::ExportEventsResponse, Status>>,
    chunks: Chunks,
}

impl PageOut {
    fn new(jsonl: bool) -> Self {
        Self { jsonl, items: Vec::new(), chunks: Chunks::default() }
    }

    /// The page's events, each checkpoint still `pending` after the event it ends at (a
    /// checkpoint whose event is missing holds the later ones back to the end of the export).
    fn page(&mut self, page: Page, pending: &mut Peekable<impl Iterator<Item = StoredCheckpoint>>) {
        match page {
            Page::Events(events) => {
                for event in events {
                    let sequence = event.sequence;
                    self.items.push(Ok(pb::ExportEventsResponse {
                        item: Some(pb::export_events_response::Item::Event(to_proto(event))),
                    }));
                    while let Some(c) = pending.next_if(|c| c.tree_size == sequence) {
                        self.checkpoint(c);
                    }
                }
            }
            Page::Rendered(page) => {
                let mut start = 0;
                for &(sequence, end) in &page.ends {
                    if pending.peek().is_some_and(|c| c.tree_size == sequence) {
                        self.chunks.extend(&page.text[start..end]);
                        start = end;
                        while let Some(c) = pending.next_if(|c| c.tree_size == sequence) {
                            self.checkpoint(c);
                        }
                    }
                }
                self.chunks.extend(&page.text[start..]);
            }
        }
    }

    fn checkpoint(&mut self, c: StoredCheckpoint) {
        if self.jsonl {
            self.chunks.push(&ExportLine::Checkpoint { signed_note: c.signed_note });
        } else {
            self.items.push(Ok(checkpoint_item(c)));
        }
    }

    /// The messages ready to send: every item and the completed chunks (with `all`, the last too).
    fn take(&mut self, all: bool) -> Vec<Result<pb::ExportEventsResponse, Status>> {
        let mut out = std::mem::take(&mut self.items);
        out.extend(
            self.chunks.take(all).into_iter().map(|chunk| {
                Ok(pb::ExportEventsResponse { item: Some(pb::export_events_response::Item::Jsonl(chunk)) })
            }),
        );
        out
    }
}

fn checkpoint_item(c: StoredCheckpoint) -> pb::ExportEventsResponse {
    pb::ExportEventsResponse { item: Some(pb::export_events_response::Item::Checkpoint(checkpoint_message(c))) }
}
