//! Why a datagram was refused ([`ParseError`]) and why a message could not be written
//! ([`EmitError`]).
//!
//! Parse errors all mean "the peer sent something we will not act on"; a caller drops the
//! datagram (and may count or log it). Emit errors are API misuse by the caller: a value that
//! would break the message apart.

use thiserror::Error;

/// Why [`parse`](crate::parse) refused a datagram. In every case the caller should drop the
/// datagram; none of them is worth an answer on a multicast protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram is longer than [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN) bytes.
    #[error("datagram of {len} bytes is longer than the SSDP limit")]
    TooLarge {
        /// The datagram's length in bytes.
        len: usize,
    },
    /// The header section does not end with an empty line (the datagram was cut short, or is
    /// not HTTP-like at all).
    #[error("header section does not end with an empty line")]
    Incomplete,
    /// The start line or a header is not UTF-8.
    #[error("message head is not UTF-8")]
    NotUtf8,
    /// The first line is neither `M-SEARCH * HTTP/1.x`, `NOTIFY * HTTP/1.x` nor an
    /// `HTTP/1.x` status line.
    #[error("malformed start line")]
    InvalidStartLine,
    /// A well-formed request line with a method SSDP does not use here (for example
    /// `SUBSCRIBE` or `GET`).
    #[error("request method is not M-SEARCH or NOTIFY")]
    UnsupportedMethod,
    /// A well-formed status line whose status is not 200; search answers are always 200.
    #[error("status {0} is not a search response")]
    UnexpectedStatus(u16),
    /// A start line or header line is longer than
    /// [`MAX_HEADER_LINE_LEN`](crate::MAX_HEADER_LINE_LEN) bytes.
    #[error("header line is longer than the limit")]
    HeaderLineTooLong,
    /// More than [`MAX_HEADERS`](crate::MAX_HEADERS) header lines.
    #[error("too many header lines")]
    TooManyHeaders,
    /// A header line without a colon, with a name that is not an HTTP token, with a control
    /// character, or folded onto the line before (obsolete line folding).
    #[error("malformed header line")]
    InvalidHeaderLine,
    /// A header this message needs appears more than once, so its meaning is ambiguous.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// A header this message requires is absent.
    #[error("required header {0} is missing")]
    MissingHeader(&'static str),
    /// A header has a value this message cannot use: an empty `ST`/`USN`/`LOCATION`/`NT`,
    /// `MAN` other than `"ssdp:discover"`, `MX` that is not a decimal number, an unknown `NTS`.
    #[error("header {0} has an invalid value")]
    InvalidHeaderValue(&'static str),
}

/// Why `emit` refused to write a message. Nothing was appended to the output.
///
/// These are the caller's mistakes: a value from an untrusted source that must be checked or
/// replaced before it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EmitError {
    /// A header value contains CR, LF or another control character (other than a tab), which
    /// would end the header early and inject headers of the sender's choice.
    #[error("value of header {name:?} contains a control character")]
    InvalidHeaderValue {
        /// The header whose value was refused.
        name: String,
    },
    /// An extra header's name is not an HTTP token (it is empty, or contains a separator,
    /// whitespace or a control character).
    #[error("header name {name:?} is not an HTTP token")]
    InvalidHeaderName {
        /// The refused name.
        name: String,
    },
    /// A header the message requires has no value (an empty or blank `ST`, `USN`, `LOCATION` or
    /// `NT`, or no `LOCATION` on an `ssdp:alive` or `ssdp:update`).
    #[error("required header {0} has no value")]
    MissingValue(&'static str),
}
