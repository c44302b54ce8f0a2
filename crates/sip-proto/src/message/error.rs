//! Why a datagram was refused ([`ParseError`]), why a URI could not be read ([`UriError`]) and
//! why a builder refused a value ([`EmitError`]).
//!
//! Parse errors mean "the peer sent something we will not act on": the caller drops the
//! datagram (RFC 3261 §18.3: a malformed message over UDP is discarded) and may count or log
//! it; for a request it may instead answer 400 (§21.4.1) when the head was readable. Emit errors
//! are the caller's own mistakes: a value that would break the message apart.

use thiserror::Error;

/// Why [`parse`](crate::parse) refused a datagram, or why a typed header accessor could not
/// read a header. Every case means: drop the message (or answer 400 to a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram is longer than [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN) bytes.
    #[error("datagram of {len} bytes is longer than the limit")]
    TooLarge {
        /// The datagram's length in bytes.
        len: usize,
    },
    /// The datagram holds nothing but line ends: a CRLF keepalive (RFC 5626 §3.5.1), not a
    /// message. [`is_keepalive`](crate::is_keepalive) tells these apart before parsing.
    #[error("datagram holds no message (keepalive or empty)")]
    Empty,
    /// The header section does not end with an empty line: the datagram was cut short or is
    /// not SIP at all.
    #[error("header section does not end with an empty line")]
    Incomplete,
    /// The start line or a header is not UTF-8 (RFC 3261 §7.3.1: header text is UTF-8).
    #[error("message head is not UTF-8")]
    NotUtf8,
    /// The first line is neither a request line nor a status line (§7.1, §7.2).
    #[error("malformed start line")]
    InvalidStartLine,
    /// A well-formed start line with a version other than `SIP/2.0`; a server answers a request
    /// like this with 505 (RFC 3261 §21.5.6).
    #[error("SIP version is not SIP/2.0")]
    UnsupportedVersion,
    /// A start line or an (unfolded) header is longer than
    /// [`MAX_HEADER_LEN`](crate::MAX_HEADER_LEN) bytes.
    #[error("header line is longer than the limit")]
    HeaderTooLong,
    /// More than [`MAX_HEADERS`](crate::MAX_HEADERS) header fields.
    #[error("too many header lines")]
    TooManyHeaders,
    /// A header line without a colon, with a name that is not a token, with a control
    /// character, or a continuation line with nothing to continue.
    #[error("malformed header line")]
    InvalidHeaderLine,
    /// A header the message needs is absent (§8.1.1: Via, From, To, Call-ID and CSeq are in
    /// every request and, copied, in every response).
    #[error("required header {0} is missing")]
    MissingHeader(&'static str),
    /// A header has a value that does not follow its grammar (§20, §25.1).
    #[error("header {0} has an invalid value")]
    InvalidHeaderValue(&'static str),
    /// A list header (Via, Contact, ...) has more than
    /// [`MAX_LIST_ITEMS`](crate::MAX_LIST_ITEMS) entries, or an entry more than
    /// [`MAX_PARAMS`](crate::MAX_PARAMS) parameters.
    #[error("header {0} has too many entries")]
    TooManyValues(&'static str),
    /// `Content-Length` promises more body than the datagram holds (§18.3: discard it).
    #[error("Content-Length {declared} but only {available} bytes of body")]
    BodyTruncated {
        /// The `Content-Length` value.
        declared: usize,
        /// The bytes after the empty line.
        available: usize,
    },
}

/// Why [`Uri::parse`](crate::Uri::parse) refused a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UriError {
    /// The scheme is not `sip` or `sips` (a `tel:` URI, say): this crate only routes SIP URIs.
    #[error("URI scheme is not sip or sips")]
    UnsupportedScheme,
    /// The host is empty or has characters no hostname, IPv4 or bracketed IPv6 address has.
    #[error("URI host is invalid")]
    InvalidHost,
    /// The port is not a decimal number up to 65535.
    #[error("URI port is invalid")]
    InvalidPort,
    /// A `;param`, a `?header` or the user part is malformed, holds whitespace or a control
    /// character, or there are too many of them.
    #[error("URI parameter or header is invalid")]
    InvalidComponent,
}

/// Why a builder ([`Request`](crate::Request), [`Response`](crate::Response)) refused a value.
/// The builder is unchanged.
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
    /// A header name is not a token (§25.1), or it is `Content-Length`, which `emit` writes
    /// itself from the body.
    #[error("header name {name:?} is not a token or is reserved")]
    InvalidHeaderName {
        /// The refused name.
        name: String,
    },
    /// A request method that is not a token (§25.1).
    #[error("method {method:?} is not a token")]
    InvalidMethod {
        /// The refused method.
        method: String,
    },
    /// A Request-URI that is empty or holds whitespace or a control character.
    #[error("Request-URI is empty or holds whitespace")]
    InvalidRequestUri,
    /// A status code outside 100..=699 (§7.2) or a reason phrase with a control character.
    #[error("status line is invalid")]
    InvalidStatusLine,
}
