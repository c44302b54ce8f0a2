//! The SIP message syntax (RFC 3261 §7, §25): one [`parse`] for every datagram, owned builders
//! ([`Request`], [`Response`]) with `emit`, typed header readers ([`SipHeaders`]) and SIP URIs
//! ([`Uri`]).
//!
//! # Parsing rules
//!
//! [`parse`] borrows from the datagram and never panics. It is lenient where real phones and
//! servers differ and strict where a lenient reading would be ambiguous or unbounded:
//!
//! - Sizes are bounded: a datagram longer than [`MAX_MESSAGE_LEN`], a start line or unfolded
//!   header longer than [`MAX_HEADER_LEN`], more than [`MAX_HEADERS`] headers, more than
//!   [`MAX_LIST_ITEMS`] entries in a list header or [`MAX_PARAMS`] parameters are refused.
//! - Line ends are CRLF (§7) but a bare LF is accepted; CRLFs before the start line are skipped
//!   (§7.5). A datagram of line ends only is a keepalive ([`is_keepalive`]), not a message.
//! - Header names are case-insensitive and compact forms (`v`, `f`, `t`, `i`, `m`, `l`, ...,
//!   §7.3.3) name the same header; names are kept as spelled. Whitespace before the colon and
//!   around the value is dropped (HCOLON, §25.1). A line starting with a space or tab continues
//!   the header before it and is joined with one space (§7.3.1).
//! - Every header is kept, in order, with its verbatim value, unknown ones included.
//! - `Content-Length` is honoured (§18.3): the body is that many bytes, extra bytes are
//!   dropped, a shorter datagram is refused. Without it the body runs to the end of the
//!   datagram (UDP carries one message per datagram).
//! - Via, From, To, Call-ID and CSeq must be present and readable (§8.1.1); a request's CSeq
//!   method must be its method (§8.1.1.5). Other headers are read on demand by the
//!   [`SipHeaders`] methods, which return [`ParseError`] for a malformed value.
//!
//! # Building rules
//!
//! [`Request`] and [`Response`] are owned and check every value when it is added (method and
//! header names are tokens, values hold no CR, LF or other control character), so `emit`
//! cannot fail and no value can inject a header. `emit` writes `Content-Length` itself, last,
//! from the body.

mod build;
mod error;
mod headers;
mod uri;

use std::borrow::Cow;

pub use build::{Request, Response};
pub use error::{EmitError, ParseError, UriError};
pub use headers::{CSeq, Contacts, NameAddr, Param, Params, SipHeaders, Via};
pub use uri::{Scheme, Uri};

pub(crate) use headers::{is_token, name_matches, quote, split_unquoted, take_quoted};

/// The longest datagram [`parse`] accepts: the largest UDP payload. RFC 3261 §18.1.1 keeps
/// what we send under 1300 bytes, but a peer may send up to this much.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// The most header fields [`parse`] accepts in one message. A REGISTER or its 200 has about a
/// dozen; a 200 listing many contacts or a message with a long Via chain stays well below.
pub const MAX_HEADERS: usize = 128;

/// The longest start line or unfolded header [`parse`] accepts, in bytes.
pub const MAX_HEADER_LEN: usize = 8_192;

/// The most entries read from one list-valued header set (all `Via` or all `Contact` values of
/// a message together, §7.3.1 comma lists).
pub const MAX_LIST_ITEMS: usize = 64;

/// The most `;parameters` (or URI `?headers`) read from one header entry or URI.
pub const MAX_PARAMS: usize = 32;

/// The `branch` prefix of RFC 3261 §8.1.1.7: a branch that starts with it is unique across
/// space and time, and transactions are matched by it (§17.1.3, §17.2.3).
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// One header field: the name as spelled on the wire and the value without surrounding
/// whitespace (continuation lines joined with one space, hence the `Cow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as received; compare it with [`Header::is`], which knows compact forms.
    pub name: &'a str,
    /// The value, borrowed unless it was folded over several lines.
    pub value: Cow<'a, str>,
}

impl Header<'_> {
    /// Whether this header is `name` (case-insensitive, compact forms included): for example
    /// a header spelled `v` or `VIA` is `"Via"`.
    pub fn is(&self, name: &str) -> bool {
        name_matches(self.name, name)
    }
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP/2.0` (§7.1).
    Request {
        /// The method, case-sensitive (§7.1): `REGISTER`, `OPTIONS`, ...
        method: &'a str,
        /// The Request-URI, verbatim.
        uri: &'a str,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase` (§7.2).
    Response {
        /// 100..=699.
        code: u16,
        /// The reason phrase, possibly empty.
        reason: &'a str,
    },
}

/// One parsed SIP message, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The request or status line.
    pub start: StartLine<'a>,
    /// Every header, in order, verbatim.
    pub headers: Vec<Header<'a>>,
    /// The body: `Content-Length` bytes, or the rest of the datagram.
    pub body: &'a [u8],
}

impl Message<'_> {
    /// The method of a request, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }
}

impl SipHeaders for Message<'_> {
    fn header_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|header| (header.name, header.value.as_ref()))
    }
}

/// Whether a datagram is a CRLF keepalive (RFC 5626 §3.5.1 ping `CRLFCRLF` or pong `CRLF`):
/// non-empty and nothing but CR and LF. The transport drops these before [`parse`].
pub fn is_keepalive(buf: &[u8]) -> bool {
    !buf.is_empty() && buf.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// Parses one SIP datagram.
///
/// Never panics; see the [module docs](self) for the rules and [`ParseError`] for what is
/// refused.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    if buf.len() > MAX_MESSAGE_LEN {
        return Err(ParseError::TooLarge { len: buf.len() });
    }
    // §7.5: line ends before the start line are ignored (a keepalive is nothing else).
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Empty)?;
    let rest = buf.get(skip..).unwrap_or_default();
    let (head, body) = split_head(rest).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;

    let mut lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let start = parse_start_line(lines.next().unwrap_or_default())?;

    let mut headers: Vec<Header<'_>> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue; // the line end of the last header line
        }
        if line.chars().any(is_forbidden_char) {
            return Err(ParseError::InvalidHeaderLine);
        }
        if line.starts_with([' ', '\t']) {
            // §7.3.1: a continuation line; the folding is equivalent to one space.
            let previous = headers.last_mut().ok_or(ParseError::InvalidHeaderLine)?;
            let more = line.trim_matches([' ', '\t']);
            if !more.is_empty() {
                let value = previous.value.to_mut();
                if value.len() + more.len() + 1 > MAX_HEADER_LEN {
                    return Err(ParseError::HeaderTooLong);
                }
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        if line.len() > MAX_HEADER_LEN {
            return Err(ParseError::HeaderTooLong);
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::InvalidHeaderLine)?;
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(ParseError::InvalidHeaderLine);
        }
        headers.push(Header {
            name,
            value: Cow::Borrowed(value.trim_matches([' ', '\t'])),
        });
    }

    let mut message = Message {
        start,
        headers,
        body,
    };
    message.body = body_of(&message, body)?;
    check_required(&message)?;
    Ok(message)
}

/// Splits at the empty line: the head with its last line end, and everything after the empty
/// line. `None` if there is no empty line.
fn split_head(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut line_start = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        let line = buf.get(line_start..i)?;
        if line.is_empty() || line == b"\r" {
            return Some((buf.get(..line_start)?, buf.get(i + 1..)?));
        }
        line_start = i + 1;
    }
    None
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if line.len() > MAX_HEADER_LEN {
        return Err(ParseError::HeaderTooLong);
    }
    if line.chars().any(is_forbidden_char) || line.contains('\t') {
        return Err(ParseError::InvalidStartLine);
    }
    // §7.2: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    if let Some(rest) = strip_version(line) {
        let rest = rest.strip_prefix(' ').ok_or(ParseError::InvalidStartLine)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::InvalidStartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::InvalidStartLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::InvalidStartLine);
        }
        return Ok(StartLine::Response { code, reason });
    }
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return Err(ParseError::UnsupportedVersion);
    }
    // §7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF, single spaces.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::InvalidStartLine);
    };
    if !is_token(method) || uri.is_empty() {
        return Err(ParseError::InvalidStartLine);
    }
    if strip_version(version) != Some("") {
        return Err(
            if version
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
            {
                ParseError::UnsupportedVersion
            } else {
                ParseError::InvalidStartLine
            },
        );
    }
    Ok(StartLine::Request { method, uri })
}

/// `SIP/2.0` at the start of `s` (case-insensitive, §7.1), and what follows it.
fn strip_version(s: &str) -> Option<&str> {
    let (version, rest) = (s.get(..7)?, s.get(7..)?);
    version.eq_ignore_ascii_case("SIP/2.0").then_some(rest)
}

/// §18.3: with a Content-Length the body is exactly that long (extra bytes are dropped, too
/// few is an error); without one it runs to the end of the datagram.
fn body_of<'a>(message: &Message<'a>, rest: &'a [u8]) -> Result<&'a [u8], ParseError> {
    let mut declared: Option<usize> = None;
    for value in message.header_all("Content-Length") {
        let value: usize = parse_decimal(value)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(ParseError::InvalidHeaderValue("Content-Length"))?;
        if declared.is_some_and(|d| d != value) {
            return Err(ParseError::InvalidHeaderValue("Content-Length"));
        }
        declared = Some(value);
    }
    match declared {
        None => Ok(rest),
        Some(declared) => rest.get(..declared).ok_or(ParseError::BodyTruncated {
            declared,
            available: rest.len(),
        }),
    }
}

/// The headers every request and response carries (§8.1.1, §8.2.6.2), read once so that a
/// message that got through [`parse`] can be matched to a transaction.
fn check_required(message: &Message<'_>) -> Result<(), ParseError> {
    message.top_via()?;
    message.from()?;
    message.to()?;
    message.call_id()?;
    let cseq = message.cseq()?;
    if let Some(method) = message.method() {
        // §8.1.1.5: "The method MUST match that of the request."
        if cseq.method != method {
            return Err(ParseError::InvalidHeaderValue("CSeq"));
        }
    }
    Ok(())
}

/// A decimal number of at most 10 digits (delta-seconds, Content-Length, CSeq).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Control characters other than tab: never allowed in a SIP head (§25.1 TEXT-UTF8 and the
/// token and quoted-string rules exclude them).
pub(crate) fn is_forbidden_char(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK_200: &str = "SIP/2.0 200 OK\r\n\
        v: SIP/2.0/UDP 203.0.113.1:60123;branch=z9hG4bK-x;rport=5060;received=203.0.113.1\r\n\
        f: \"km\" <sip:km@snomag.de>;tag=abc\r\n\
        t: <sip:km@snomag.de>;tag=reg\r\n\
        i: boot-1@192.168.0.91\r\n\
        CSEQ: 2 REGISTER\r\n\
        m: <sip:km@203.0.113.1:60123>;expires=1800,\r\n\
        \t <sip:km@198.51.100.7:5060>;expires=300\r\n\
        X-Unknown:   kept  verbatim  \r\n\
        l: 4\r\n\
        \r\n\
        bodyEXTRA";

    #[test]
    fn compact_forms_folding_and_content_length() {
        let message = parse(OK_200.as_bytes()).unwrap();
        assert_eq!(message.status(), Some(200));
        assert_eq!(message.call_id().unwrap(), "boot-1@192.168.0.91");
        assert_eq!(message.cseq().unwrap().seq, 2);
        assert_eq!(message.from().unwrap().tag(), Some("abc"));
        assert_eq!(message.header("x-unknown"), Some("kept  verbatim"));
        // Content-Length 4: the extra bytes are dropped (RFC 3261 §18.3).
        assert_eq!(message.body, b"body");
        // The continuation line joined with one space.
        assert_eq!(
            message.headers[5].value,
            "<sip:km@203.0.113.1:60123>;expires=1800, <sip:km@198.51.100.7:5060>;expires=300"
        );
        let Contacts::Addresses(contacts) = message.contacts().unwrap() else {
            panic!("wildcard");
        };
        assert_eq!(contacts.len(), 2);
        assert_eq!(contacts[1].expires(), Some(300));
        let via = message.top_via().unwrap();
        assert_eq!(via.rport(), Some(Some(5060)));
    }

    #[test]
    fn lf_only_leading_crlf_and_no_content_length() {
        let text = "\r\n\r\nOPTIONS sip:km@192.0.2.1 SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\
                    From: <sip:a@h>;tag=1\nTo: <sip:km@192.0.2.1>\nCall-ID: c\nCSeq: 1 OPTIONS\n\nrest";
        let message = parse(text.as_bytes()).unwrap();
        assert_eq!(message.method(), Some("OPTIONS"));
        assert_eq!(message.body, b"rest");
    }

    #[test]
    fn refusals() {
        let good = OK_200.replace("l: 4", "l: 0");
        assert!(parse(good.as_bytes()).is_ok());
        let cases: &[(&str, ParseError)] = &[
            ("\r\n\r\n", ParseError::Empty),
            ("SIP/2.0 200 OK\r\nVia: x", ParseError::Incomplete),
            ("SIP/2.0 20 OK\r\n\r\n", ParseError::InvalidStartLine),
            ("SIP/2.0 700 Huh\r\n\r\n", ParseError::InvalidStartLine),
            ("SIP/3.0 200 OK\r\n\r\n", ParseError::UnsupportedVersion),
            (
                "OPTIONS sip:a SIP/3.0\r\n\r\n",
                ParseError::UnsupportedVersion,
            ),
            (
                "OPTIONS  sip:a SIP/2.0\r\n\r\n",
                ParseError::InvalidStartLine,
            ),
            (
                "OPT(IONS sip:a SIP/2.0\r\n\r\n",
                ParseError::InvalidStartLine,
            ),
            (
                "SIP/2.0 200 OK\r\n folded first\r\n\r\n",
                ParseError::InvalidHeaderLine,
            ),
            (
                "SIP/2.0 200 OK\r\nNo colon\r\n\r\n",
                ParseError::InvalidHeaderLine,
            ),
            (
                "SIP/2.0 200 OK\r\nA\x01: b\r\n\r\n",
                ParseError::InvalidHeaderLine,
            ),
            (
                "SIP/2.0 200 OK\r\nA: b\rc\r\n\r\n",
                ParseError::InvalidHeaderLine,
            ),
            ("SIP/2.0 200 OK\r\n\r\n", ParseError::MissingHeader("Via")),
        ];
        for (text, error) in cases {
            assert_eq!(parse(text.as_bytes()), Err(*error), "{text:?}");
        }
        let long = OK_200.replace("l: 4", "l: 10");
        assert_eq!(
            parse(long.as_bytes()),
            Err(ParseError::BodyTruncated {
                declared: 10,
                available: 9
            })
        );
        let two = OK_200.replace("l: 4", "l: 4\r\nContent-Length: 5");
        assert_eq!(
            parse(two.as_bytes()),
            Err(ParseError::InvalidHeaderValue("Content-Length"))
        );
        let mismatch = "OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n";
        assert_eq!(
            parse(mismatch.as_bytes()),
            Err(ParseError::InvalidHeaderValue("CSeq"))
        );
    }

    #[test]
    fn size_caps() {
        assert_eq!(
            parse(&vec![b'a'; MAX_MESSAGE_LEN + 1]),
            Err(ParseError::TooLarge {
                len: MAX_MESSAGE_LEN + 1
            })
        );
        let many = format!(
            "SIP/2.0 200 OK\r\n{}\r\n",
            "X-A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse(many.as_bytes()), Err(ParseError::TooManyHeaders));
        let long = format!(
            "SIP/2.0 200 OK\r\nX-A: {}\r\n\r\n",
            "b".repeat(MAX_HEADER_LEN)
        );
        assert_eq!(parse(long.as_bytes()), Err(ParseError::HeaderTooLong));
        let folded = format!(
            "SIP/2.0 200 OK\r\nX-A: b\r\n{}\r\n",
            format!(" {}\r\n", "c".repeat(1000)).repeat(9)
        );
        assert_eq!(parse(folded.as_bytes()), Err(ParseError::HeaderTooLong));
        let vias = format!(
            "{}Via: {}\r\n",
            OK_200
                .split("\r\n\r\n")
                .next()
                .unwrap()
                .replace("l: 4", "l: 0")
                + "\r\n",
            vec!["SIP/2.0/UDP h;branch=z9hG4bK1"; MAX_LIST_ITEMS].join(",")
        ) + "\r\n";
        let message = parse(vias.as_bytes()).unwrap();
        assert_eq!(message.vias(), Err(ParseError::TooManyValues("Via")));
    }

    #[test]
    fn keepalives() {
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b"\r\n"));
        assert!(!is_keepalive(b""));
        assert!(!is_keepalive(b"\r\nX"));
    }
}
