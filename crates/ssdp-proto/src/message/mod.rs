//! The SSDP wire format (UDA 2.0 §1): one [`parse`] for every datagram, and `emit` on each
//! message type.
//!
//! SSDP is HTTP/1.1 message syntax carried in single UDP datagrams ("HTTPU"/"HTTPMU", UDA 2.0
//! §1.1): a start line, `Name: value` header lines, an empty line, and a body nobody uses. This
//! module owns that syntax and the three messages built on it:
//!
//! | message | start line | type |
//! |---|---|---|
//! | search request (§1.3.2) | `M-SEARCH * HTTP/1.1` | [`SearchRequest`] |
//! | search response (§1.3.3) | `HTTP/1.1 200 OK` | [`SearchResponse`] |
//! | advertisement (§1.2.2–§1.2.4) | `NOTIFY * HTTP/1.1` | [`Notify`] |
//!
//! # Parsing rules
//!
//! Parsing borrows from the datagram and never panics. It is lenient where real devices differ
//! and strict where a lenient reading would be ambiguous or unbounded:
//!
//! - Sizes are bounded: a datagram longer than [`MAX_MESSAGE_LEN`], a line longer than
//!   [`MAX_HEADER_LINE_LEN`] or more than [`MAX_HEADERS`] headers is refused, so a hostile LAN
//!   host cannot make us scan or store without limit (miniupnpd's SSDP CVEs were all here).
//! - Lines end in CRLF as HTTP says, but a bare LF is accepted too (several embedded stacks send
//!   it). The header section must end with an empty line: a datagram cut short is refused.
//!   Whatever follows the empty line (a body) is ignored.
//! - Header names are case-insensitive (`ST`, `St` and `st` are one header) and must be HTTP
//!   tokens; whitespace around the value (and before the colon) is dropped. Obsolete line
//!   folding, control characters and non-UTF-8 text are refused.
//! - Every header is kept verbatim, in order, in the message's `headers` field (including the
//!   ones this module interprets), so callers can read headers we do not know.
//! - A header this module interprets for the message at hand (for example `ST`, `USN`,
//!   `LOCATION`, `MX`, `CACHE-CONTROL`, `BOOTID.UPNP.ORG`) must appear at most once: two `ST` or
//!   two `LOCATION` values leave no right answer, so [`ParseError::DuplicateHeader`] is returned.
//! - The optional numbers `BOOTID.UPNP.ORG`, `CONFIGID.UPNP.ORG`, `NEXTBOOTID.UPNP.ORG` and
//!   `CACHE-CONTROL: max-age` read as `None` when malformed (not a decimal `u32`): they are hints
//!   for caching and reboot detection, and refusing a device's whole answer because of one would
//!   make discovery fail for no gain.
//!
//! # Emitting rules
//!
//! `emit` appends one complete datagram to a `Vec<u8>` and returns `Result<(), EmitError>`: a
//! value containing CR, LF or another control character, an extra header name that is not an
//! HTTP token, or an empty required field is refused (and nothing is appended), so no caller
//! can inject headers or emit what [`parse`] would refuse. Each type writes its own headers from
//! its typed fields, then appends the entries of its `headers` field whose names it does not
//! write itself (compared case-insensitively), in order. That makes `parse` then `emit`
//! reproduce the message's meaning and its unknown headers.

mod error;
mod head;
mod notify;
mod request;
mod response;
mod writer;

pub use error::{EmitError, ParseError};
pub use notify::{Notify, NotifyKind};
pub use request::SearchRequest;
pub use response::SearchResponse;

use head::{Head, StartLine};

/// The longest datagram [`parse`] accepts, in bytes; longer ones are refused whole.
///
/// SSDP messages are a few hundred bytes; 8 KiB is generous and still bounds the work per
/// datagram.
pub const MAX_MESSAGE_LEN: usize = 8192;

/// The most header lines [`parse`] accepts in one message (real devices send about 12).
pub const MAX_HEADERS: usize = 64;

/// The longest start line or header line [`parse`] accepts, in bytes, without its line end.
///
/// Long `ST` values were one of miniupnpd's SSDP bugs; a LOCATION URL fits with room to spare.
pub const MAX_HEADER_LINE_LEN: usize = 1024;

/// The smallest `MX` (seconds a device may wait before answering a multicast search).
pub const MX_MIN: u8 = 1;

/// The largest `MX`: UDA 2.0 §1.3.2 says a value above 5 is treated as 5.
pub const MX_MAX: u8 = 5;

/// One header line, exactly as received (name and value without surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header name as spelled on the wire (compare it case-insensitively).
    pub name: &'a str,
    /// The value, without leading and trailing spaces or tabs.
    pub value: &'a str,
}

impl<'a> Header<'a> {
    /// A header from a name and a value.
    pub const fn new(name: &'a str, value: &'a str) -> Self {
        Header { name, value }
    }
}

/// One parsed SSDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `M-SEARCH * HTTP/1.1`: a control point looking for devices or services.
    Search(SearchRequest<'a>),
    /// `HTTP/1.1 200 OK`: a device answering a search.
    Response(SearchResponse<'a>),
    /// `NOTIFY * HTTP/1.1`: a device announcing itself, leaving or changing.
    Notify(Notify<'a>),
}

/// Parses one SSDP datagram.
///
/// Never panics. Header names are case-insensitive; see the [module docs](self) for the
/// complete rules and [`ParseError`] for what is refused.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    let head = Head::parse(buf)?;
    match head.start {
        StartLine::Search => request::from_head(head).map(Message::Search),
        StartLine::Notify => notify::from_head(head).map(Message::Notify),
        StartLine::Ok => response::from_head(head).map(Message::Response),
    }
}

/// Clamps an `MX` value into [`MX_MIN`]`..=`[`MX_MAX`] (UDA 2.0 §1.3.2).
pub(crate) fn clamp_mx(mx: u64) -> u8 {
    u8::try_from(mx.clamp(u64::from(MX_MIN), u64::from(MX_MAX))).unwrap_or(MX_MAX)
}
