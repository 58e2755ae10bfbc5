//! The `pretty` log format, for a person at a terminal (`prfix up`): tracing-subscriber's compact
//! lines, colour only when standard output is a terminal and `NO_COLOR` is unset (a file or a pipe
//! gets no escape sequences), and each access line ([`crate::calls`]) in one short form:
//!
//! ```text
//! 2026-05-01T12:00:00.123Z  INFO access /prfix.agent.v1.AgentService/CreateReview OK 12ms ada trace=4bf92f3577b34da6a3ce929d0e0e4736
//! ```
//!
//! (method, code, duration, subject when authenticated, trace id once). JSON lines are unchanged.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Compact, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of access lines.
pub const ACCESS_TARGET: &str = "prfix::access";

/// Whether log lines written to standard output may carry colour: a terminal, and no `NO_COLOR`.
pub fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The pretty formatter: access lines short, the rest compact. Whether it colours is the layer's
/// `with_ansi` ([`color_allowed`]).
pub struct Pretty {
    compact: Format<Compact>,
}

impl Pretty {
    /// A formatter.
    pub fn new() -> Self {
        Self { compact: Format::default().compact() }
    }
}

impl Default for Pretty {
    fn default() -> Self {
        Self::new()
    }
}

/// The fields of an access event.
#[derive(Default)]
struct AccessFields {
    code: String,
    duration_ms: Option<u64>,
}

impl Visit for AccessFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "code" {
            self.code = value.to_owned();
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "duration_ms" {
            self.duration_ms = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "code" {
            self.code = format!("{value:?}").trim_matches('"').to_owned();
        }
    }
}

/// The value of `key` in a span's formatted fields (`method=/a/B request_id=... trace_id=...`);
/// values of the request span have no spaces (paths, ids, user names).
fn span_field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    fields.split(' ').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// `text` without its ANSI escape sequences (a terminal's span fields have coloured names).
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl<S, N> FormatEvent<S, N> for Pretty
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if event.metadata().target() != ACCESS_TARGET {
            return self.compact.format_event(ctx, writer, event);
        }
        let mut access = AccessFields::default();
        event.record(&mut access);
        let (mut method, mut subject, mut trace) = (String::new(), String::new(), String::new());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else { continue };
                let text = without_escapes(fields.fields.as_str());
                let text = text.as_str();
                let take = |into: &mut String, key: &str| {
                    if let Some(value) = span_field(text, key).filter(|v| !v.is_empty()) {
                        *into = value.trim_matches('"').to_owned();
                    }
                };
                take(&mut method, "method");
                take(&mut subject, "subject");
                take(&mut trace, "trace_id");
            }
        }
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let level = event.metadata().level();
        let (bold, reset) = if writer.has_ansi_escapes() { ("\x1b[1m", "\x1b[0m") } else { ("", "") };
        write!(writer, "{now} {level:>5} access {bold}{method}{reset} {} ", access.code)?;
        if let Some(ms) = access.duration_ms {
            write!(writer, "{ms}ms ")?;
        }
        if !subject.is_empty() {
            write!(writer, "{subject} ")?;
        }
        if trace.is_empty() { writeln!(writer) } else { writeln!(writer, "trace={trace}") }
    }
}

#[cfg(test)]
mod tests {
    use super::{span_field, without_escapes};

    #[test]
    fn escape_sequences_are_removed_and_the_text_kept() {
        assert_eq!(without_escapes("\x1b[3mmethod\x1b[0m\x1b[2m=\x1b[0m/a.B/C x"), "method=/a.B/C x");
        assert_eq!(without_escapes("plain"), "plain");
    }

    #[test]
    fn span_fields_are_found_by_key_not_by_a_key_that_ends_the_same() {
        let fields = "method=/a.B/C request_id=r1 trace_id=abc span_id=def subject=ada";
        assert_eq!(span_field(fields, "method"), Some("/a.B/C"));
        assert_eq!(span_field(fields, "trace_id"), Some("abc"));
        assert_eq!(span_field(fields, "id"), None);
        assert_eq!(span_field(fields, "subject"), Some("ada"));
    }
}
