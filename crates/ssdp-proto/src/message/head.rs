//! The HTTP-over-UDP message head shared by every SSDP message (UDA 2.0 §1.1): the start
//! line and the header lines up to the empty line, with every bound checked, plus the lookups
//! and value readers the three message types share.

use super::error::ParseError;
use super::{Header, MAX_HEADERS, MAX_HEADER_LINE_LEN, MAX_MESSAGE_LEN};

/// Which of the three SSDP start lines the datagram has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartLine {
    /// `M-SEARCH * HTTP/1.x`
    Search,
    /// `NOTIFY * HTTP/1.x`
    Notify,
    /// `HTTP/1.x 200 <any reason>`
    Ok,
}

/// A split message head: the start line and every header verbatim.
#[derive(Debug)]
pub(super) struct Head<'a> {
    pub(super) start: StartLine,
    pub(super) headers: Vec<Header<'a>>,
}

impl<'a> Head<'a> {
    /// Splits `buf` into a start line and headers, ignoring anything after the empty line.
    pub(super) fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLarge { len: buf.len() });
        }
        let head_len = head_len(buf).ok_or(ParseError::Incomplete)?;
        // The body (UDA 2.0 §1: SSDP messages have none) is never looked at, so only the head
        // has to be text.
        let text = buf
            .get(..head_len)
            .and_then(|head| std::str::from_utf8(head).ok())
            .ok_or(ParseError::NotUtf8)?;

        let mut lines = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line));
        let start_line = lines.next().unwrap_or_default();
        if start_line.len() > MAX_HEADER_LINE_LEN {
            return Err(ParseError::HeaderLineTooLong);
        }
        let start = parse_start_line(start_line)?;

        let mut headers = Vec::new();
        for line in lines {
            if line.is_empty() {
                // The empty line that ends the head (head_len stops right after it).
                break;
            }
            if headers.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            headers.push(parse_header_line(line)?);
        }
        Ok(Head { start, headers })
    }
}

/// The length of the head including the empty line that ends it, or `None` if there is none.
fn head_len(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if byte == b'\n' {
            let line = buf.get(line_start..i)?;
            // An empty line (CRLF or bare LF) ends the head; the start line itself may not be
            // empty, which parse_start_line reports as InvalidStartLine.
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    let mut parts = line.split([' ', '\t']).filter(|part| !part.is_empty());
    let first = parts.next().ok_or(ParseError::InvalidStartLine)?;
    if line.chars().any(is_forbidden_char) {
        return Err(ParseError::InvalidStartLine);
    }
    if is_http1_version(first) {
        // Status line: HTTP-version SP status-code SP reason-phrase; the reason is free text
        // (devices send "OK", "Ok" or nothing), so only the code matters.
        let code = parts.next().ok_or(ParseError::InvalidStartLine)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::InvalidStartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::InvalidStartLine)?;
        return if code == 200 {
            Ok(StartLine::Ok)
        } else {
            Err(ParseError::UnexpectedStatus(code))
        };
    }
    // Request line: method SP request-target SP HTTP-version, and SSDP's target is always "*"
    // (UDA 2.0 §1.2.2, §1.3.2).
    let (Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::InvalidStartLine);
    };
    if target != "*" || !is_http1_version(version) || !first.bytes().all(is_token_byte) {
        return Err(ParseError::InvalidStartLine);
    }
    // Methods are case-sensitive in HTTP (RFC 9110 §9.1).
    match first {
        "M-SEARCH" => Ok(StartLine::Search),
        "NOTIFY" => Ok(StartLine::Notify),
        _ => Err(ParseError::UnsupportedMethod),
    }
}

/// `HTTP/1.0` or `HTTP/1.1` (and any other `HTTP/1.<digit>`): SSDP rides on HTTP/1.x only.
fn is_http1_version(s: &str) -> bool {
    s.strip_prefix("HTTP/1.")
        .is_some_and(|minor| minor.len() == 1 && minor.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_header_line(line: &str) -> Result<Header<'_>, ParseError> {
    if line.len() > MAX_HEADER_LINE_LEN {
        return Err(ParseError::HeaderLineTooLong);
    }
    // A line starting with whitespace continues the previous one (obsolete folding, RFC 9112
    // §5.2); SSDP devices never need it, and accepting it would let a value hide across lines.
    if line.starts_with([' ', '\t']) || line.chars().any(is_forbidden_char) {
        return Err(ParseError::InvalidHeaderLine);
    }
    let (name, value) = line.split_once(':').ok_or(ParseError::InvalidHeaderLine)?;
    // Whitespace before the colon is not HTTP, but some embedded stacks send it and SSDP has no
    // proxies for it to confuse, so it is dropped rather than refused.
    let name = name.trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return Err(ParseError::InvalidHeaderLine);
    }
    Ok(Header {
        name,
        value: value.trim_matches([' ', '\t']),
    })
}

/// A character no SSDP line may contain: a control character other than a tab.
pub(super) fn is_forbidden_char(c: char) -> bool {
    c.is_ascii_control() && c != '\t'
}

/// An HTTP token (RFC 9110 §5.6.2): the syntax of header names and methods.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads the header `name` that may appear at most once.
pub(super) fn single<'a>(
    headers: &[Header<'a>],
    name: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    let mut found = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(ParseError::DuplicateHeader(name));
            }
            found = Some(header.value);
        }
    }
    Ok(found)
}

/// Reads the header `name` that must appear exactly once with a non-empty value.
pub(super) fn required<'a>(
    headers: &[Header<'a>],
    name: &'static str,
) -> Result<&'a str, ParseError> {
    match single(headers, name)? {
        None => Err(ParseError::MissingHeader(name)),
        Some("") => Err(ParseError::InvalidHeaderValue(name)),
        Some(value) => Ok(value),
    }
}

/// Reads an optional decimal `u32` header (`BOOTID.UPNP.ORG` and friends); a malformed value
/// reads as `None` (see the module docs for why).
pub(super) fn optional_u32(
    headers: &[Header<'_>],
    name: &'static str,
) -> Result<Option<u32>, ParseError> {
    Ok(single(headers, name)?.and_then(parse_u32))
}

/// Reads `max-age` from an optional `CACHE-CONTROL` header (UDA 2.0 §1.2.2: "max-age = seconds
/// until the advertisement expires"). Other directives are skipped; spaces around `=` and a
/// quoted number are tolerated; a malformed or absent value reads as `None`.
pub(super) fn max_age(headers: &[Header<'_>]) -> Result<Option<u32>, ParseError> {
    let Some(value) = single(headers, "CACHE-CONTROL")? else {
        return Ok(None);
    };
    Ok(value
        .split(',')
        .filter_map(|directive| directive.split_once('='))
        .find(|(key, _)| {
            key.trim_matches([' ', '\t'])
                .eq_ignore_ascii_case("max-age")
        })
        .and_then(|(_, seconds)| {
            let seconds = seconds.trim_matches([' ', '\t']);
            let seconds = seconds
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(seconds);
            parse_u32(seconds)
        }))
}

/// A plain decimal `u32`: digits only (no sign, no spaces), no overflow.
pub(super) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head<'_>, ParseError> {
        Head::parse(text.as_bytes())
    }

    #[test]
    fn start_lines() {
        assert_eq!(
            head("M-SEARCH * HTTP/1.1\r\n\r\n").unwrap().start,
            StartLine::Search
        );
        assert_eq!(
            head("NOTIFY * HTTP/1.1\r\n\r\n").unwrap().start,
            StartLine::Notify
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\n\r\n").unwrap().start,
            StartLine::Ok
        );
        assert_eq!(head("HTTP/1.0 200\r\n\r\n").unwrap().start, StartLine::Ok);
        assert_eq!(
            head("HTTP/1.1 404 Not Found\r\n\r\n").unwrap_err(),
            ParseError::UnexpectedStatus(404)
        );
        assert_eq!(
            head("GET * HTTP/1.1\r\n\r\n").unwrap_err(),
            ParseError::UnsupportedMethod
        );
        assert_eq!(
            head("m-search * HTTP/1.1\r\n\r\n").unwrap_err(),
            ParseError::UnsupportedMethod
        );
        for bad in [
            "\r\n",
            "M-SEARCH / HTTP/1.1\r\n\r\n",
            "M-SEARCH * HTTP/2\r\n\r\n",
            "M-SEARCH * HTTP/1.1 extra\r\n\r\n",
            "M-SEARCH *\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1\r\n\r\n",
            "HTTP/1.1 200 O\u{0}K\r\n\r\n",
        ] {
            assert_eq!(
                head(bad).unwrap_err(),
                ParseError::InvalidStartLine,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_lines() {
        let h = head("NOTIFY * HTTP/1.1\r\nNT:a\r\nnts :  b c \t\r\nEXT:\r\n\r\nbody").unwrap();
        assert_eq!(
            h.headers,
            [
                Header::new("NT", "a"),
                Header::new("nts", "b c"),
                Header::new("EXT", "")
            ]
        );
        for bad in [
            "NOTIFY * HTTP/1.1\r\nno colon\r\n\r\n",
            "NOTIFY * HTTP/1.1\r\n: empty name\r\n\r\n",
            "NOTIFY * HTTP/1.1\r\nN T: x\r\n\r\n",
            "NOTIFY * HTTP/1.1\r\nNT: a\r\n folded\r\n\r\n",
            "NOTIFY * HTTP/1.1\r\nNT: a\rb\r\n\r\n",
            "NOTIFY * HTTP/1.1\r\nNT: a\u{0}\r\n\r\n",
        ] {
            assert_eq!(
                head(bad).unwrap_err(),
                ParseError::InvalidHeaderLine,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bounds() {
        let long = format!(
            "NOTIFY * HTTP/1.1\r\nNT: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_LINE_LEN)
        );
        assert_eq!(head(&long).unwrap_err(), ParseError::HeaderLineTooLong);
        let many = format!(
            "NOTIFY * HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(head(&many).unwrap_err(), ParseError::TooManyHeaders);
        let exactly = format!(
            "NOTIFY * HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS)
        );
        assert_eq!(head(&exactly).unwrap().headers.len(), MAX_HEADERS);
        let huge = vec![b'a'; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Head::parse(&huge).unwrap_err(),
            ParseError::TooLarge {
                len: MAX_MESSAGE_LEN + 1
            }
        );
        assert_eq!(
            head("NOTIFY * HTTP/1.1\r\nNT: a\r\n").unwrap_err(),
            ParseError::Incomplete
        );
        assert_eq!(head("").unwrap_err(), ParseError::Incomplete);
        assert_eq!(
            Head::parse(b"NOTIFY * HTTP/1.1\r\nNT: \xff\r\n\r\n").unwrap_err(),
            ParseError::NotUtf8
        );
        // A non-UTF-8 body is never looked at.
        assert!(Head::parse(b"NOTIFY * HTTP/1.1\r\n\r\n\xff\xfe").is_ok());
    }

    #[test]
    fn values() {
        let headers = [Header::new("Cache-Control", "no-cache, MAX-AGE = \"1800\"")];
        assert_eq!(max_age(&headers), Ok(Some(1800)));
        let headers = [Header::new("cache-control", "max-age=-1")];
        assert_eq!(max_age(&headers), Ok(None));
        let headers = [
            Header::new("CACHE-CONTROL", "max-age=1"),
            Header::new("cache-control", "x"),
        ];
        assert_eq!(
            max_age(&headers),
            Err(ParseError::DuplicateHeader("CACHE-CONTROL"))
        );
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("+1"), None);
        assert_eq!(parse_u32(""), None);
        let headers = [Header::new("st", "")];
        assert_eq!(
            required(&headers, "ST"),
            Err(ParseError::InvalidHeaderValue("ST"))
        );
        assert_eq!(
            required(&headers, "USN"),
            Err(ParseError::MissingHeader("USN"))
        );
    }
}
