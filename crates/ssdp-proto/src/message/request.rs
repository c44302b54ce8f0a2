//! The search request, `M-SEARCH * HTTP/1.1` (UDA 2.0 §1.3.2): a control point asking which
//! devices or services of type `ST` are present.

use std::net::IpAddr;

use super::error::{EmitError, ParseError};
use super::head::{required, single, Head};
use super::writer::emit_atomically;
use super::{clamp_mx, Header, MX_MIN};
use crate::HOST_V4;

/// The headers [`SearchRequest::emit`] writes from typed fields; entries of `headers` with these
/// names are not copied.
const OWNED: [&str; 5] = ["HOST", "MAN", "MX", "ST", "USER-AGENT"];

/// An `M-SEARCH` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest<'a> {
    /// The search target `ST`: a device or service type URN, `uuid:…`, `upnp:rootdevice` or
    /// `ssdp:all`.
    pub st: &'a str,
    /// `MX`, the most seconds a device may wait before answering, clamped to
    /// [`MX_MIN`]`..=`[`MX_MAX`](super::MX_MAX). A unicast search may omit it; it then reads
    /// as [`MX_MIN`].
    pub mx: u8,
    /// `USER-AGENT`, if present.
    pub user_agent: Option<&'a str>,
    /// Every header, verbatim and in order (parsed), or extra headers to send (emitted; see
    /// [`SearchRequest::emit`]).
    pub headers: Vec<Header<'a>>,
}

impl<'a> SearchRequest<'a> {
    /// A multicast search for `st`, with `mx` clamped into range and no other headers.
    pub fn new(st: &'a str, mx: u8) -> Self {
        SearchRequest {
            st,
            mx: clamp_mx(mx.into()),
            user_agent: None,
            headers: Vec::new(),
        }
    }

    /// Appends the multicast search datagram to `out`:
    ///
    /// ```text
    /// M-SEARCH * HTTP/1.1
    /// HOST: 239.255.255.250:1900
    /// MAN: "ssdp:discover"
    /// MX: <mx, clamped>
    /// ST: <st>
    /// USER-AGENT: <user_agent>          (when set)
    /// <headers not named HOST, MAN, MX, ST or USER-AGENT, in order>
    /// ```
    ///
    /// # Errors
    ///
    /// Refuses (appending nothing) an empty `st`, a value with a control character and an
    /// extra header name that is not a token; see [`EmitError`].
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        emit_atomically(out, |w| {
            w.start_line("M-SEARCH * HTTP/1.1");
            w.header("HOST", HOST_V4)?;
            // The quotes are part of the value (UDA 2.0 §1.3.2).
            w.header("MAN", "\"ssdp:discover\"")?;
            w.header("MX", &clamp_mx(self.mx.into()).to_string())?;
            w.required("ST", self.st)?;
            w.optional("USER-AGENT", self.user_agent)?;
            w.extras(&self.headers, &OWNED)
        })
    }
}

pub(super) fn from_head(head: Head<'_>) -> Result<SearchRequest<'_>, ParseError> {
    let headers = head.headers;
    let man = required(&headers, "MAN")?;
    // MAN carries the quotes (UDA 2.0 §1.3.2); the extension name itself is compared
    // case-insensitively as a courtesy.
    let is_discover = man
        .strip_prefix('"')
        .and_then(|man| man.strip_suffix('"'))
        .is_some_and(|man| man.eq_ignore_ascii_case("ssdp:discover"));
    if !is_discover {
        return Err(ParseError::InvalidHeaderValue("MAN"));
    }
    let st = required(&headers, "ST")?;
    let mx = match single(&headers, "MX")? {
        Some(mx) => parse_mx(mx).ok_or(ParseError::InvalidHeaderValue("MX"))?,
        // UDA 2.0 §1.3.2: MX is required in a multicast search and absent from a unicast one,
        // which is answered at once.
        None if is_multicast_host(single(&headers, "HOST")?) => {
            return Err(ParseError::MissingHeader("MX"));
        }
        None => MX_MIN,
    };
    Ok(SearchRequest {
        st,
        mx,
        user_agent: single(&headers, "USER-AGENT")?,
        headers,
    })
}

/// A decimal MX of any size, clamped: a huge value means "wait as long as allowed", not an
/// error (UDA 2.0 §1.3.2 says to treat values above 5 as 5).
fn parse_mx(value: &str) -> Option<u8> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mx = value.bytes().fold(0u64, |acc, digit| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(clamp_mx(mx))
}

/// Whether `HOST` names a multicast group (239.255.255.250:1900, [FF02::C]:1900, …).
fn is_multicast_host(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let address = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(address, _)| address),
        None => host.split_once(':').map_or(host, |(address, _)| address),
    };
    address.parse::<IpAddr>().is_ok_and(|ip| ip.is_multicast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Message, MX_MAX};

    fn search(text: &str) -> Result<SearchRequest<'_>, ParseError> {
        match parse(text.as_bytes())? {
            Message::Search(search) => Ok(search),
            other => panic!("not a search: {other:?}"),
        }
    }

    #[test]
    fn emits_exact_bytes() {
        let mut out = b"keep".to_vec();
        let mut request = SearchRequest::new("ssdp:all", 3);
        request.user_agent = Some("Linux/6 UPnP/2.0 plugline/0.1");
        request.headers = vec![
            Header::new("st", "ignored"),
            Header::new("CPFN.UPNP.ORG", "phone"),
        ];
        request.emit(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "keepM-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\
             MX: 3\r\nST: ssdp:all\r\nUSER-AGENT: Linux/6 UPnP/2.0 plugline/0.1\r\n\
             CPFN.UPNP.ORG: phone\r\n\r\n"
        );
    }

    #[test]
    fn refuses_injection_and_leaves_output_alone() {
        let mut out = b"keep".to_vec();
        let request = SearchRequest::new("ssdp:all\r\nX-Evil: 1", 1);
        let err = request.emit(&mut out).unwrap_err();
        assert_eq!(err, EmitError::InvalidHeaderValue { name: "ST".into() });
        assert_eq!(out, b"keep");
        let mut request = SearchRequest::new("ssdp:all", 1);
        request.headers.push(Header::new("X-A\r\nB", "c"));
        assert!(matches!(
            request.emit(&mut out),
            Err(EmitError::InvalidHeaderName { .. })
        ));
        request.headers = vec![Header::new("X-A", "c\nd")];
        assert!(matches!(
            request.emit(&mut out),
            Err(EmitError::InvalidHeaderValue { .. })
        ));
        assert_eq!(
            SearchRequest::new("", 1).emit(&mut out),
            Err(EmitError::MissingValue("ST"))
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn mx_is_clamped() {
        assert_eq!(SearchRequest::new("x", 0).mx, MX_MIN);
        assert_eq!(SearchRequest::new("x", 200).mx, MX_MAX);
        let head = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nST: x\r\n";
        for (mx, expected) in [
            ("0", 1),
            ("1", 1),
            ("4", 4),
            ("5", 5),
            ("6", 5),
            ("99999999999999999999999", 5),
        ] {
            assert_eq!(
                search(&format!("{head}MX: {mx}\r\n\r\n")).unwrap().mx,
                expected,
                "{mx}"
            );
        }
        for mx in ["-1", "", "1.5", "one", "+2"] {
            assert_eq!(
                search(&format!("{head}MX: {mx}\r\n\r\n")).unwrap_err(),
                ParseError::InvalidHeaderValue("MX"),
                "{mx:?}"
            );
        }
        assert_eq!(
            search(&format!("{head}\r\n")).unwrap_err(),
            ParseError::MissingHeader("MX")
        );
    }

    #[test]
    fn unicast_search_without_mx() {
        let unicast = "M-SEARCH * HTTP/1.1\r\nHOST: 192.168.0.1:1900\r\nMAN: \"ssdp:discover\"\r\nST: x\r\n\r\n";
        assert_eq!(search(unicast).unwrap().mx, MX_MIN);
        let v6 = "M-SEARCH * HTTP/1.1\r\nHOST: [FF02::C]:1900\r\nMAN: \"ssdp:discover\"\r\nST: x\r\n\r\n";
        assert_eq!(search(v6).unwrap_err(), ParseError::MissingHeader("MX"));
    }

    #[test]
    fn man_and_st_are_required() {
        let base = "M-SEARCH * HTTP/1.1\r\nMX: 1\r\n";
        assert_eq!(
            search(&format!("{base}ST: x\r\n\r\n")).unwrap_err(),
            ParseError::MissingHeader("MAN")
        );
        assert_eq!(
            search(&format!("{base}MAN: ssdp:discover\r\nST: x\r\n\r\n")).unwrap_err(),
            ParseError::InvalidHeaderValue("MAN")
        );
        assert_eq!(
            search(&format!("{base}MAN: \"ssdp:discover\"\r\n\r\n")).unwrap_err(),
            ParseError::MissingHeader("ST")
        );
        assert_eq!(
            search(&format!(
                "{base}MAN: \"ssdp:discover\"\r\nST: x\r\nst: y\r\n\r\n"
            ))
            .unwrap_err(),
            ParseError::DuplicateHeader("ST")
        );
        let text = format!("{base}man: \"SSDP:discover\"\r\nSt: x\r\n\r\n");
        let ok = search(&text).unwrap();
        assert_eq!(
            (ok.st, ok.mx, ok.user_agent, ok.headers.len()),
            ("x", 1, None, 3)
        );
    }
}
