//! The phone's log as its status page shows it (the seed's `log_en.htm`): a bounded ring of
//! timestamped, levelled lines, filled by a `tracing` layer from the phone's own events (and the
//! port-mapping client's), while the same events also go to stderr through the binary's
//! formatter.
//!
//! ```text
//! 2025-01-07 19:31:16.042 INFO  UPnP: Found mapped address 203.0.113.1
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Lines kept; older ones are dropped.
pub const LOG_CAPACITY: usize = 500;
/// Longest line kept, bytes; longer messages are cut (with `…`).
pub const MAX_LINE_LEN: usize = 2000;
/// The event targets captured: the phone's own and the port-mapping client's.
pub const CAPTURED_TARGETS: &[&str] = &["phone", "portmap"];

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `YYYY-MM-DD hh:mm:ss.mmm` (UTC).
    pub time: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields.
    pub message: String,
}

/// A shared ring of log lines.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    lines: Arc<Mutex<VecDeque<LogLine>>>,
}

impl LogBuffer {
    /// An empty buffer.
    pub fn new() -> LogBuffer {
        LogBuffer::default()
    }

    /// Appends a line, dropping the oldest beyond [`LOG_CAPACITY`].
    pub fn push(&self, level: Level, target: &str, message: &str) {
        let unix_ms = unix_ms_now();
        let line = LogLine {
            unix_ms,
            time: format_time(unix_ms),
            level: level.to_string(),
            target: target.to_owned(),
            message: truncate(message, MAX_LINE_LEN),
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= LOG_CAPACITY {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// Every line kept, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }
}

/// The process-wide buffer that [`layer`] fills and the status page reads.
pub fn global() -> &'static LogBuffer {
    static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();
    GLOBAL.get_or_init(LogBuffer::new)
}

/// The layer to add to the binary's subscriber: INFO and above from [`CAPTURED_TARGETS`] into
/// [`global`]. It filters for itself, so the stderr formatter keeps its own level.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    CaptureLayer {
        buffer: global().clone(),
    }
    .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() <= Level::INFO && captured(meta.target())
    }))
}

fn captured(target: &str) -> bool {
    CAPTURED_TARGETS.iter().any(|t| {
        target == *t
            || target
                .strip_prefix(t)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

/// Writes every event it sees into a [`LogBuffer`]; see [`layer`] for the filtered one.
#[derive(Debug, Clone)]
pub struct CaptureLayer {
    buffer: LogBuffer,
}

impl CaptureLayer {
    /// A layer writing into `buffer` (unfiltered).
    pub fn new(buffer: LogBuffer) -> CaptureLayer {
        CaptureLayer { buffer }
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        self.buffer
            .push(*meta.level(), meta.target(), &visitor.finish());
    }
}

/// The `message` first, then `name=value` for every other field.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_owned()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DD hh:mm:ss.mmm` in UTC for a Unix time in milliseconds.
pub fn format_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000");
        // The seed's log line: 12/24/2001 19:31:16 GMT.
        assert_eq!(format_time(1_009_222_276_042), "2001-12-24 19:31:16.042");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(format_time(4_107_542_399_999), "2100-02-28 23:59:59.999");
    }

    #[test]
    fn ring_keeps_the_newest() {
        let buffer = LogBuffer::new();
        for i in 0..LOG_CAPACITY + 5 {
            buffer.push(Level::INFO, "phone", &format!("line {i}"));
        }
        let lines = buffer.lines();
        assert_eq!(lines.len(), LOG_CAPACITY);
        assert_eq!(lines[0].message, "line 5");
        buffer.push(Level::WARN, "phone", &"é".repeat(MAX_LINE_LEN));
        let last = buffer.lines().pop().unwrap();
        assert!(last.message.len() <= MAX_LINE_LEN + '…'.len_utf8());
        assert_eq!(last.level, "WARN");
    }

    #[test]
    fn layer_captures_message_and_fields() {
        let buffer = LogBuffer::new();
        let subscriber = tracing_subscriber::registry().with(CaptureLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "phone::mapping", "UPnP: Found mapped address {}", "203.0.113.1");
            tracing::warn!(target: "phone::sip", port = 5060, reason = "x", "renewal failed");
        });
        let lines = buffer.lines();
        assert_eq!(lines[0].message, "UPnP: Found mapped address 203.0.113.1");
        assert_eq!(lines[0].level, "INFO");
        assert_eq!(lines[1].message, "renewal failed port=5060 reason=x");
    }

    #[test]
    fn only_our_targets_are_captured() {
        assert!(captured("phone"));
        assert!(captured("phone::sip"));
        assert!(captured("portmap::keeper"));
        assert!(!captured("phonebook"));
        assert!(!captured("hyper::proto"));
    }
}
