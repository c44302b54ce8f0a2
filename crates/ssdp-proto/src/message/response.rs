//! The search response, `HTTP/1.1 200 OK` sent by unicast to the searcher (UDA 2.0 §1.3.3):
//! where the device's description is (`LOCATION`), what matched (`ST`), and who it is (`USN`).

use super::error::{EmitError, ParseError};
use super::head::{max_age, optional_u32, required, single, Head};
use super::writer::emit_atomically;
use super::Header;

/// The headers [`SearchResponse::emit`] writes from typed fields; entries of `headers` with
/// these names are not copied.
const OWNED: [&str; 8] = [
    "CACHE-CONTROL",
    "EXT",
    "LOCATION",
    "SERVER",
    "ST",
    "USN",
    "BOOTID.UPNP.ORG",
    "CONFIGID.UPNP.ORG",
];

/// An answer to an `M-SEARCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResponse<'a> {
    /// `ST`: the search target that matched (the device or service type, usually echoed from
    /// the request).
    pub st: &'a str,
    /// `USN`: the unique service name, `uuid:<device-UUID>::<type>` or `uuid:<device-UUID>`.
    pub usn: &'a str,
    /// `LOCATION`: the URL of the root device description.
    pub location: &'a str,
    /// `CACHE-CONTROL: max-age`, seconds the answer stays valid; `None` when absent or
    /// malformed.
    pub max_age: Option<u32>,
    /// `SERVER`: `OS/version UPnP/2.0 product/version`, if present.
    pub server: Option<&'a str>,
    /// `BOOTID.UPNP.ORG`: increases at every device restart (UDA 2.0 §1.2.2); `None` when absent
    /// or malformed.
    pub boot_id: Option<u32>,
    /// `CONFIGID.UPNP.ORG`: changes when the description changes; `None` when absent or
    /// malformed.
    pub config_id: Option<u32>,
    /// Every header, verbatim and in order (parsed), or extra headers to send (emitted; see
    /// [`SearchResponse::emit`]).
    pub headers: Vec<Header<'a>>,
}

impl SearchResponse<'_> {
    /// Appends the response datagram to `out`, in the order of UDA 2.0 §1.3.3:
    ///
    /// ```text
    /// HTTP/1.1 200 OK
    /// CACHE-CONTROL: max-age=<max_age>    (when set)
    /// EXT:
    /// LOCATION: <location>
    /// SERVER: <server>                    (when set)
    /// ST: <st>
    /// USN: <usn>
    /// BOOTID.UPNP.ORG: <boot_id>          (when set)
    /// CONFIGID.UPNP.ORG: <config_id>      (when set)
    /// <headers not named like any line above, in order>
    /// ```
    ///
    /// `EXT:` is always sent: it tells the control point the device understood MAN (§1.3.3).
    ///
    /// # Errors
    ///
    /// Refuses (appending nothing) an empty `st`, `usn` or `location`, a value with a control
    /// character and an extra header name that is not a token; see [`EmitError`].
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        emit_atomically(out, |w| {
            w.start_line("HTTP/1.1 200 OK");
            w.max_age(self.max_age)?;
            w.header("EXT", "")?;
            w.required("LOCATION", self.location)?;
            w.optional("SERVER", self.server)?;
            w.required("ST", self.st)?;
            w.required("USN", self.usn)?;
            w.number("BOOTID.UPNP.ORG", self.boot_id)?;
            w.number("CONFIGID.UPNP.ORG", self.config_id)?;
            w.extras(&self.headers, &OWNED)
        })
    }
}

pub(super) fn from_head(head: Head<'_>) -> Result<SearchResponse<'_>, ParseError> {
    let headers = head.headers;
    Ok(SearchResponse {
        st: required(&headers, "ST")?,
        usn: required(&headers, "USN")?,
        location: required(&headers, "LOCATION")?,
        max_age: max_age(&headers)?,
        server: single(&headers, "SERVER")?,
        boot_id: optional_u32(&headers, "BOOTID.UPNP.ORG")?,
        config_id: optional_u32(&headers, "CONFIGID.UPNP.ORG")?,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Message};

    fn response(text: &str) -> Result<SearchResponse<'_>, ParseError> {
        match parse(text.as_bytes())? {
            Message::Response(response) => Ok(response),
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn emits_exact_bytes() {
        let response = SearchResponse {
            st: "upnp:rootdevice",
            usn: "uuid:1::upnp:rootdevice",
            location: "http://192.168.0.1:5000/rootDesc.xml",
            max_age: Some(1800),
            server: Some("Linux/6 UPnP/2.0 plugline/0.1"),
            boot_id: Some(7),
            config_id: None,
            headers: vec![
                Header::new("Ext", ""),
                Header::new("DATE", "Mon, 01 Jan 2024 00:00:00 GMT"),
                Header::new("cache-control", "no-cache"),
            ],
        };
        let mut out = Vec::new();
        response.emit(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n\
             LOCATION: http://192.168.0.1:5000/rootDesc.xml\r\nSERVER: Linux/6 UPnP/2.0 plugline/0.1\r\n\
             ST: upnp:rootdevice\r\nUSN: uuid:1::upnp:rootdevice\r\nBOOTID.UPNP.ORG: 7\r\n\
             DATE: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn required_headers() {
        let ok = "HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: c\r\n";
        let text = format!("{ok}\r\n");
        let parsed = response(&text).unwrap();
        assert_eq!((parsed.st, parsed.usn, parsed.location), ("a", "b", "c"));
        assert_eq!(
            (
                parsed.max_age,
                parsed.server,
                parsed.boot_id,
                parsed.config_id
            ),
            (None, None, None, None)
        );
        for (name, text) in [
            ("ST", "HTTP/1.1 200 OK\r\nUSN: b\r\nLOCATION: c\r\n\r\n"),
            ("USN", "HTTP/1.1 200 OK\r\nST: a\r\nLOCATION: c\r\n\r\n"),
            ("LOCATION", "HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\n\r\n"),
        ] {
            assert_eq!(response(text).unwrap_err(), ParseError::MissingHeader(name));
        }
        assert_eq!(
            response(&format!("{ok}Location: d\r\n\r\n")).unwrap_err(),
            ParseError::DuplicateHeader("LOCATION")
        );
        assert_eq!(
            response(&format!("{ok}usn: d\r\n\r\n")).unwrap_err(),
            ParseError::DuplicateHeader("USN")
        );
    }

    #[test]
    fn malformed_numbers_read_as_none() {
        let text =
            "HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\nLOCATION: c\r\nCACHE-CONTROL: max-age=soon\r\n\
                    BOOTID.UPNP.ORG: -1\r\nCONFIGID.UPNP.ORG: 99999999999\r\n\r\n";
        let parsed = response(text).unwrap();
        assert_eq!(
            (parsed.max_age, parsed.boot_id, parsed.config_id),
            (None, None, None)
        );
        assert_eq!(parsed.headers.len(), 6);
    }
}
