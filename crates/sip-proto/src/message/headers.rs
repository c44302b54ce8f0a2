//! Typed readers for the headers this crate acts on (RFC 3261 §20): Via with its `branch`,
//! `received` and `rport` (RFC 3581) parameters, From/To/Contact name-addresses with their
//! tags and `expires`, Call-ID, CSeq, Expires, Min-Expires and the authentication challenges.
//!
//! The readers are the provided methods of [`SipHeaders`], so they work the same on a parsed
//! [`Message`](crate::Message) and on an owned [`Request`](crate::Request) or
//! [`Response`](crate::Response). They allocate small owned values; values keep their text
//! verbatim (a quoted parameter value keeps its quotes) so that what is echoed back is what was
//! received.

use std::fmt;
use std::net::IpAddr;

use super::error::ParseError;
use super::{parse_decimal, MAX_LIST_ITEMS, MAX_PARAMS};

/// Compact header names (RFC 3261 §7.3.3 and the RFCs that define the others) and their full
/// forms.
const COMPACT_FORMS: &[(&str, &str)] = &[
    ("Accept-Contact", "a"),      // RFC 3841
    ("Referred-By", "b"),         // RFC 3892
    ("Content-Type", "c"),        // RFC 3261 §20.15
    ("Request-Disposition", "d"), // RFC 3841
    ("Content-Encoding", "e"),    // RFC 3261 §20.12
    ("From", "f"),                // RFC 3261 §20.20
    ("Call-ID", "i"),             // RFC 3261 §20.8
    ("Reject-Contact", "j"),      // RFC 3841
    ("Supported", "k"),           // RFC 3261 §20.37
    ("Content-Length", "l"),      // RFC 3261 §20.14
    ("Contact", "m"),             // RFC 3261 §20.10
    ("Event", "o"),               // RFC 6665
    ("Refer-To", "r"),            // RFC 3515
    ("Subject", "s"),             // RFC 3261 §20.36
    ("To", "t"),                  // RFC 3261 §20.39
    ("Allow-Events", "u"),        // RFC 6665
    ("Via", "v"),                 // RFC 3261 §20.42
    ("Session-Expires", "x"),     // RFC 4028
    ("Identity", "y"),            // RFC 8224
];

/// Whether the header name `actual` (as received) is the header `wanted` (a full name):
/// case-insensitive (§7.3.1) and with compact forms (§7.3.3).
pub(crate) fn name_matches(actual: &str, wanted: &str) -> bool {
    if actual.eq_ignore_ascii_case(wanted) {
        return true;
    }
    actual.len() == 1
        && COMPACT_FORMS.iter().any(|(full, compact)| {
            full.eq_ignore_ascii_case(wanted) && compact.eq_ignore_ascii_case(actual)
        })
}

/// A SIP token (§25.1): `alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Splits `s` at every `sep` that is outside a quoted string and outside `<...>`, trimming the
/// pieces and dropping empty ones (§7.3.1 comma lists, §25.1 parameter lists).
pub(crate) fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut in_quotes, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => angle = true,
            '>' => angle = false,
            c if c == sep && !angle => {
                pieces.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(s.get(start..).unwrap_or_default());
    pieces
        .into_iter()
        .map(|piece| piece.trim_matches([' ', '\t']))
        .filter(|piece| !piece.is_empty())
        .collect()
}

/// Reads a quoted-string (§25.1) at the start of `s`: its unescaped content and what follows
/// the closing quote. `None` if `s` does not start with a complete quoted string.
pub(crate) fn take_quoted(s: &str) -> Option<(String, &str)> {
    let inner = s.strip_prefix('"')?;
    let mut content = String::new();
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match (escaped, c) {
            (true, c) => {
                content.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '"') => return Some((content, inner.get(i + 1..)?)),
            (false, c) => content.push(c),
        }
    }
    None
}

/// Writes `s` as a quoted-string, escaping `"` and `\` (§25.1 quoted-pair).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One `;name[=value]` parameter. The value is verbatim: a quoted value keeps its quotes
/// (see [`Param::unquoted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name, compared case-insensitively (§7.3.1, §19.1.4).
    pub name: String,
    /// The value as written, `None` for a flag like `rport` or `lr`.
    pub value: Option<String>,
}

impl Param {
    /// A parameter from a name and an optional value (written verbatim).
    pub fn new(name: impl Into<String>, value: Option<&str>) -> Self {
        Param {
            name: name.into(),
            value: value.map(str::to_owned),
        }
    }

    /// The value with surrounding quotes removed and quoted-pairs unescaped.
    pub fn unquoted(&self) -> Option<String> {
        let value = self.value.as_deref()?;
        Some(match take_quoted(value) {
            Some((content, "")) => content,
            _ => value.to_owned(),
        })
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, ";{}={value}", self.name),
            None => write!(f, ";{}", self.name),
        }
    }
}

/// A parameter list, in order. Displays as `;a=b;c`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// Parses `;a=b;c` (or `a=b;c`): at most [`MAX_PARAMS`] parameters with token names.
    /// Values are kept verbatim; a quoted value may hold `;`.
    pub fn parse(s: &str) -> Option<Params> {
        let s = s.trim_matches([' ', '\t']);
        let s = s.strip_prefix(';').unwrap_or(s);
        let pieces = split_unquoted(s, ';');
        if pieces.len() > MAX_PARAMS {
            return None;
        }
        let mut params = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let (name, value) = match piece.split_once('=') {
                Some((name, value)) => (name.trim_end(), Some(value.trim_start())),
                None => (piece, None),
            };
            if !is_token(name) || value.is_some_and(str::is_empty) {
                return None;
            }
            // A quoted value must be one complete quoted-string (§25.1 gen-value).
            if value.is_some_and(|v| v.starts_with('"') && !matches!(take_quoted(v), Some((_, ""))))
            {
                return None;
            }
            params.push(Param::new(name, value));
        }
        Some(Params(params))
    }

    /// The first parameter called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first parameter called `name`, if it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|p| p.value.as_deref())
    }

    /// Whether a parameter called `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|param| param.fmt(f))
    }
}

/// One Via entry (§20.42, §18.2.1; RFC 3581 for `rport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport of `SIP/2.0/<transport>`, for example `UDP`.
    pub transport: String,
    /// The sent-by host: a name, an IPv4 address or a bracketed IPv6 address.
    pub host: String,
    /// The sent-by port, if given.
    pub port: Option<u16>,
    /// `branch`, `received`, `rport`, ... in order.
    pub params: Params,
}

impl Via {
    /// Parses one Via entry, `SIP/2.0/UDP host[:port][;params]` (whitespace around the
    /// slashes is allowed, §25.1 SLASH).
    pub fn parse(s: &str) -> Option<Via> {
        let s = s.trim_matches([' ', '\t']);
        let (protocol, rest) = s.split_once(';').unwrap_or((s, ""));
        // protocol = "SIP / 2.0 / UDP  host:port"
        let mut parts = protocol.splitn(3, '/');
        let (name, version, tail) = (parts.next()?, parts.next()?, parts.next()?);
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return None;
        }
        let tail = tail.trim_start();
        let split = tail.find([' ', '\t'])?;
        let (transport, sent_by) = (tail.get(..split)?, tail.get(split..)?.trim());
        if !is_token(transport) {
            return None;
        }
        let (host, port) = split_host_port(sent_by)?;
        Some(Via {
            transport: transport.to_owned(),
            host: host.to_owned(),
            port,
            params: Params::parse(rest)?,
        })
    }

    /// The `branch` parameter (§8.1.1.7).
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The `received` parameter: the source address the next hop saw, when it differs from
    /// the sent-by host (§18.2.1).
    pub fn received(&self) -> Option<IpAddr> {
        self.params
            .value("received")
            .and_then(|v| v.trim_start_matches('[').trim_end_matches(']').parse().ok())
    }

    /// The `rport` parameter (RFC 3581 §3): `None` if absent, `Some(None)` when present without
    /// a value (as we send it), `Some(Some(port))` once the server filled in the source port.
    pub fn rport(&self) -> Option<Option<u16>> {
        let param = self.params.get("rport")?;
        Some(param.value.as_deref().and_then(|v| v.parse().ok()))
    }

    /// `host[:port]` as written.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}{}",
            self.transport,
            self.sent_by(),
            self.params
        )
    }
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`; checks the host's characters.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = (s.get(..=end)?, s.get(end + 1..)?);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if !is_host(host) {
        return None;
    }
    let port = match port {
        None => None,
        Some(port)
            if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(port.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// A hostname, IPv4 address or bracketed IPv6 reference (§25.1 host).
pub(crate) fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A name-address as in From, To and Contact (§20.10, §20.20, §20.39, §25.1 name-addr /
/// addr-spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted, if any.
    pub display_name: Option<String>,
    /// The URI, verbatim (it may be a `tel:` URI; [`NameAddr::sip_uri`] reads a SIP one).
    pub uri: String,
    /// Header parameters after the address: `tag`, `expires`, `q`, ...
    pub params: Params,
}

impl NameAddr {
    /// Parses `"Name" <uri>;params`, `Name <uri>;params` or a bare `uri;params`. For the bare
    /// form every `;parameter` belongs to the header, not the URI (§20.10).
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim_matches([' ', '\t']);
        let (display_name, rest) = if s.starts_with('"') {
            let (name, rest) = take_quoted(s)?;
            (Some(name), rest.trim_start())
        } else if let Some(lt) = s.find('<') {
            let name = s.get(..lt)?.trim_matches([' ', '\t']);
            ((!name.is_empty()).then(|| name.to_owned()), s.get(lt..)?)
        } else {
            (None, s)
        };
        let (uri, params) = if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>')?;
            let params = inner.get(gt + 1..)?.trim_start();
            if !params.is_empty() && !params.starts_with(';') {
                return None;
            }
            (inner.get(..gt)?.trim(), params)
        } else if display_name.is_some() {
            return None; // a display name needs <...>
        } else {
            rest.split_once(';').unwrap_or((rest, ""))
        };
        let uri = uri.trim();
        if uri.is_empty() || !uri.contains(':') || uri.contains([' ', '\t', '<', '>']) {
            return None;
        }
        Some(NameAddr {
            display_name,
            uri: uri.to_owned(),
            params: Params::parse(params)?,
        })
    }

    /// The `tag` parameter (§19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// The `expires` parameter of a Contact (§20.10), saturated to `u32::MAX` (§10.2.1.1).
    pub fn expires(&self) -> Option<u32> {
        self.params.value("expires").and_then(delta_seconds)
    }

    /// The URI as a SIP URI.
    pub fn sip_uri(&self) -> Result<crate::Uri, crate::UriError> {
        crate::Uri::parse(&self.uri)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{} ", quote(name))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact headers of a message (§20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`, only valid in a REGISTER that removes every binding (§10.2.2).
    Wildcard,
    /// The listed addresses (empty when there is no Contact header).
    Addresses(Vec<NameAddr>),
}

/// A CSeq value (§20.16): sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number, below 2**31 (§8.1.1.5).
    pub seq: u32,
    /// The method (case-sensitive).
    pub method: String,
}

impl CSeq {
    /// Parses `77 REGISTER`.
    pub fn parse(s: &str) -> Option<CSeq> {
        let mut parts = s.split([' ', '\t']).filter(|p| !p.is_empty());
        let (seq, method, None) = (parts.next()?, parts.next()?, parts.next()) else {
            return None;
        };
        let seq = u32::try_from(parse_decimal(seq)?).ok()?;
        if seq >= 1 << 31 || !is_token(method) {
            return None;
        }
        Some(CSeq {
            seq,
            method: method.to_owned(),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// delta-seconds (§25.1), saturated at `u32::MAX` as §10.2.1.1 asks for larger values.
pub(crate) fn delta_seconds(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u32>().unwrap_or(u32::MAX))
}

/// The header readers, for anything that holds SIP headers.
///
/// Implementors provide [`header_fields`](SipHeaders::header_fields); every other method is
/// provided. The typed readers return [`ParseError::MissingHeader`] or
/// [`ParseError::InvalidHeaderValue`] naming the header.
pub trait SipHeaders {
    /// Every header in order: the name as spelled and the value.
    fn header_fields(&self) -> impl Iterator<Item = (&str, &str)>;

    /// The value of the first header called `name` (case-insensitive, compact forms included).
    fn header(&self, name: &str) -> Option<&str> {
        self.header_fields()
            .find(|(n, _)| name_matches(n, name))
            .map(|(_, v)| v)
    }

    /// The values of every header called `name`, in order.
    fn header_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.header_fields()
            .filter(move |(n, _)| name_matches(n, name))
            .map(|(_, v)| v)
    }

    /// Every Via entry in order, comma lists split (§7.3.1, §20.42).
    fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let items = list_items(self.header_all("Via"), "Via")?;
        if items.is_empty() {
            return Err(ParseError::MissingHeader("Via"));
        }
        items
            .into_iter()
            .map(|item| Via::parse(item).ok_or(ParseError::InvalidHeaderValue("Via")))
            .collect()
    }

    /// The topmost Via entry: ours in a response to our request (§8.1.3.3), the previous
    /// hop's in a request we receive.
    fn top_via(&self) -> Result<Via, ParseError> {
        let first = self.header("Via").ok_or(ParseError::MissingHeader("Via"))?;
        let item = split_unquoted(first, ',')
            .into_iter()
            .next()
            .ok_or(ParseError::InvalidHeaderValue("Via"))?;
        Via::parse(item).ok_or(ParseError::InvalidHeaderValue("Via"))
    }

    /// The From header (§20.20).
    fn from(&self) -> Result<NameAddr, ParseError> {
        single_name_addr(self.header("From"), "From")
    }

    /// The To header (§20.39).
    fn to(&self) -> Result<NameAddr, ParseError> {
        single_name_addr(self.header("To"), "To")
    }

    /// The Call-ID (§20.8): non-empty, no whitespace.
    fn call_id(&self) -> Result<&str, ParseError> {
        let value = self
            .header("Call-ID")
            .ok_or(ParseError::MissingHeader("Call-ID"))?;
        if value.is_empty() || value.contains([' ', '\t']) {
            return Err(ParseError::InvalidHeaderValue("Call-ID"));
        }
        Ok(value)
    }

    /// The CSeq (§20.16).
    fn cseq(&self) -> Result<CSeq, ParseError> {
        let value = self
            .header("CSeq")
            .ok_or(ParseError::MissingHeader("CSeq"))?;
        CSeq::parse(value).ok_or(ParseError::InvalidHeaderValue("CSeq"))
    }

    /// Every Contact (§20.10), comma lists split; `*` is [`Contacts::Wildcard`].
    fn contacts(&self) -> Result<Contacts, ParseError> {
        let items = list_items(self.header_all("Contact"), "Contact")?;
        if items == ["*"] {
            return Ok(Contacts::Wildcard);
        }
        items
            .into_iter()
            .map(|item| NameAddr::parse(item).ok_or(ParseError::InvalidHeaderValue("Contact")))
            .collect::<Result<_, _>>()
            .map(Contacts::Addresses)
    }

    /// The Expires header (§20.19), if present.
    fn expires(&self) -> Result<Option<u32>, ParseError> {
        optional_seconds(self.header("Expires"), "Expires")
    }

    /// The Min-Expires header of a 423 (§20.23), if present.
    fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        optional_seconds(self.header("Min-Expires"), "Min-Expires")
    }

    /// The Retry-After seconds (§20.33), ignoring its comment and parameters.
    fn retry_after(&self) -> Result<Option<u32>, ParseError> {
        let Some(value) = self.header("Retry-After") else {
            return Ok(None);
        };
        let digits = value
            .split([' ', '\t', ';', '('])
            .next()
            .unwrap_or_default();
        delta_seconds(digits)
            .map(Some)
            .ok_or(ParseError::InvalidHeaderValue("Retry-After"))
    }

    /// The raw WWW-Authenticate challenges of a 401 (§20.44); read them with
    /// [`Challenge::parse`](crate::digest::Challenge::parse).
    fn www_authenticate<'s>(&'s self) -> impl Iterator<Item = &'s str> + 's {
        self.header_all("WWW-Authenticate")
    }

    /// The raw Proxy-Authenticate challenges of a 407 (§20.27).
    fn proxy_authenticate<'s>(&'s self) -> impl Iterator<Item = &'s str> + 's {
        self.header_all("Proxy-Authenticate")
    }
}

fn list_items<'a>(
    values: impl Iterator<Item = &'a str>,
    name: &'static str,
) -> Result<Vec<&'a str>, ParseError> {
    let mut items = Vec::new();
    for value in values {
        items.extend(split_unquoted(value, ','));
        if items.len() > MAX_LIST_ITEMS {
            return Err(ParseError::TooManyValues(name));
        }
    }
    Ok(items)
}

fn single_name_addr(value: Option<&str>, name: &'static str) -> Result<NameAddr, ParseError> {
    let value = value.ok_or(ParseError::MissingHeader(name))?;
    NameAddr::parse(value).ok_or(ParseError::InvalidHeaderValue(name))
}

fn optional_seconds(value: Option<&str>, name: &'static str) -> Result<Option<u32>, ParseError> {
    value
        .map(|v| delta_seconds(v).ok_or(ParseError::InvalidHeaderValue(name)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_names_match_full_names() {
        assert!(name_matches("v", "Via"));
        assert!(name_matches("I", "Call-ID"));
        assert!(name_matches("call-id", "Call-ID"));
        assert!(!name_matches("x", "Via"));
        assert!(!name_matches("v", "Contact"));
    }

    #[test]
    fn via_reads_rport_and_received() {
        let via = Via::parse(
            "SIP / 2.0 / UDP 66.31.121.76:60123;branch=z9hG4bK-1;rport=5060;received=192.0.2.7",
        )
        .unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host, "66.31.121.76");
        assert_eq!(via.port, Some(60123));
        assert_eq!(via.branch(), Some("z9hG4bK-1"));
        assert_eq!(via.rport(), Some(Some(5060)));
        assert_eq!(via.received(), Some("192.0.2.7".parse().unwrap()));
        let flag = Via::parse("SIP/2.0/UDP [2001:db8::1];rport").unwrap();
        assert_eq!(flag.host, "[2001:db8::1]");
        assert_eq!(flag.rport(), Some(None));
        assert!(Via::parse("SIP/2.0/UDP").is_none());
        assert!(Via::parse("SIP/3.0/UDP h").is_none());
        assert!(Via::parse("SIP/2.0/UDP h:99999").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let quoted = NameAddr::parse(r#""k\"m" <sip:km@snomag.de>;tag=9i5j6zkqbj"#).unwrap();
        assert_eq!(quoted.display_name.as_deref(), Some("k\"m"));
        assert_eq!(quoted.uri, "sip:km@snomag.de");
        assert_eq!(quoted.tag(), Some("9i5j6zkqbj"));
        let token = NameAddr::parse("Bob <sip:bob@b.example;lr>;expires=60").unwrap();
        assert_eq!(token.display_name.as_deref(), Some("Bob"));
        assert_eq!(token.uri, "sip:bob@b.example;lr");
        assert_eq!(token.expires(), Some(60));
        let bare = NameAddr::parse("sip:bob@b.example;tag=1").unwrap();
        assert_eq!(bare.uri, "sip:bob@b.example");
        assert_eq!(bare.tag(), Some("1"));
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_none());
        assert!(NameAddr::parse("<sip:a@b> junk").is_none());
        assert_eq!(
            quoted.to_string(),
            r#""k\"m" <sip:km@snomag.de>;tag=9i5j6zkqbj"#
        );
    }

    #[test]
    fn lists_respect_quotes_and_brackets() {
        assert_eq!(
            split_unquoted(r#"<sip:a@b;x=1,2>;d="a,b", <sip:c@d>"#, ','),
            [r#"<sip:a@b;x=1,2>;d="a,b""#, "<sip:c@d>"]
        );
        let params = Params::parse(r#";q=1.0;description="Avail;able";lr"#).unwrap();
        assert_eq!(params.value("description"), Some(r#""Avail;able""#));
        assert_eq!(
            params.get("description").unwrap().unquoted().as_deref(),
            Some("Avail;able")
        );
        assert!(params.contains("LR"));
        assert_eq!(params.to_string(), r#";q=1.0;description="Avail;able";lr"#);
    }

    #[test]
    fn cseq_and_seconds() {
        assert_eq!(
            CSeq::parse("77 REGISTER"),
            Some(CSeq {
                seq: 77,
                method: "REGISTER".into()
            })
        );
        assert_eq!(CSeq::parse("2147483648 REGISTER"), None);
        assert_eq!(CSeq::parse("1"), None);
        assert_eq!(delta_seconds("99999999999"), Some(u32::MAX));
        assert_eq!(delta_seconds("-1"), None);
    }
}
