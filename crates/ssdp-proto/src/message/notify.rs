//! The advertisement, `NOTIFY * HTTP/1.1` multicast by devices (UDA 2.0 §1.2): `ssdp:alive`
//! when a device arrives and periodically after, `ssdp:byebye` when it leaves, and `ssdp:update`
//! when its BOOTID changes without leaving the network.

use std::fmt;

use super::error::{EmitError, ParseError};
use super::head::{max_age, optional_u32, required, single, Head};
use super::writer::emit_atomically;
use super::Header;
use crate::HOST_V4;

/// The headers [`Notify::emit`] writes from typed fields; entries of `headers` with these
/// names are not copied.
const OWNED: [&str; 10] = [
    "HOST",
    "CACHE-CONTROL",
    "LOCATION",
    "NT",
    "NTS",
    "SERVER",
    "USN",
    "BOOTID.UPNP.ORG",
    "CONFIGID.UPNP.ORG",
    "NEXTBOOTID.UPNP.ORG",
];

/// `NTS`, the notification sub type (UDA 2.0 §1.2.2–§1.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyKind {
    /// `ssdp:alive`: the device is (still) available at `LOCATION`.
    Alive,
    /// `ssdp:byebye`: the device is leaving; forget it.
    ByeBye,
    /// `ssdp:update`: the device's BOOTID changes to `NEXTBOOTID.UPNP.ORG` (for example after
    /// a new interface address) without it leaving.
    Update,
}

impl NotifyKind {
    /// The `NTS` value: `ssdp:alive`, `ssdp:byebye` or `ssdp:update`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Alive => "ssdp:alive",
            NotifyKind::ByeBye => "ssdp:byebye",
            NotifyKind::Update => "ssdp:update",
        }
    }

    /// Reads an `NTS` value (case-insensitively); `None` for anything else.
    pub fn from_nts(value: &str) -> Option<Self> {
        [NotifyKind::Alive, NotifyKind::ByeBye, NotifyKind::Update]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(value))
    }

    /// Whether this kind needs `LOCATION`: alive and update tell where the device is
    /// (UDA 2.0 §1.2.2, §1.2.4); byebye does not.
    pub const fn needs_location(self) -> bool {
        !matches!(self, NotifyKind::ByeBye)
    }
}

impl fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `NOTIFY` advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify<'a> {
    /// `NT`: the notification type (device or service type, `upnp:rootdevice`, `uuid:…`).
    pub nt: &'a str,
    /// `NTS`: alive, byebye or update.
    pub nts: NotifyKind,
    /// `USN`: the unique service name.
    pub usn: &'a str,
    /// `LOCATION`: the description URL; always present for alive and update.
    pub location: Option<&'a str>,
    /// `CACHE-CONTROL: max-age`, seconds the advertisement stays valid; `None` when absent or
    /// malformed.
    pub max_age: Option<u32>,
    /// `SERVER`, if present.
    pub server: Option<&'a str>,
    /// `BOOTID.UPNP.ORG`; `None` when absent or malformed.
    pub boot_id: Option<u32>,
    /// `CONFIGID.UPNP.ORG`; `None` when absent or malformed.
    pub config_id: Option<u32>,
    /// `NEXTBOOTID.UPNP.ORG` (update only); `None` when absent or malformed.
    pub next_boot_id: Option<u32>,
    /// Every header, verbatim and in order (parsed), or extra headers to send (emitted; see
    /// [`Notify::emit`]).
    pub headers: Vec<Header<'a>>,
}

impl Notify<'_> {
    /// Appends the advertisement datagram to `out`:
    ///
    /// ```text
    /// NOTIFY * HTTP/1.1
    /// HOST: 239.255.255.250:1900
    /// CACHE-CONTROL: max-age=<max_age>    (when set)
    /// LOCATION: <location>                (when set)
    /// NT: <nt>
    /// NTS: ssdp:alive | ssdp:byebye | ssdp:update
    /// SERVER: <server>                    (when set)
    /// USN: <usn>
    /// BOOTID.UPNP.ORG: <boot_id>          (when set)
    /// CONFIGID.UPNP.ORG: <config_id>      (when set)
    /// NEXTBOOTID.UPNP.ORG: <next_boot_id> (when set)
    /// <headers not named like any line above, in order>
    /// ```
    ///
    /// Which optional fields to set per kind is the caller's choice (a byebye usually has no
    /// CACHE-CONTROL, LOCATION or SERVER, UDA 2.0 §1.2.3).
    ///
    /// # Errors
    ///
    /// Refuses (appending nothing) an empty `nt` or `usn`, a missing or empty `location` on
    /// alive or update, a value with a control character and an extra header name that is not
    /// a token; see [`EmitError`].
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        emit_atomically(out, |w| {
            w.start_line("NOTIFY * HTTP/1.1");
            w.header("HOST", HOST_V4)?;
            w.max_age(self.max_age)?;
            match self.location {
                Some(location) => w.required("LOCATION", location)?,
                None if self.nts.needs_location() => {
                    return Err(EmitError::MissingValue("LOCATION"))
                }
                None => {}
            }
            w.required("NT", self.nt)?;
            w.header("NTS", self.nts.as_str())?;
            w.optional("SERVER", self.server)?;
            w.required("USN", self.usn)?;
            w.number("BOOTID.UPNP.ORG", self.boot_id)?;
            w.number("CONFIGID.UPNP.ORG", self.config_id)?;
            w.number("NEXTBOOTID.UPNP.ORG", self.next_boot_id)?;
            w.extras(&self.headers, &OWNED)
        })
    }
}

pub(super) fn from_head(head: Head<'_>) -> Result<Notify<'_>, ParseError> {
    let headers = head.headers;
    let nt = required(&headers, "NT")?;
    let nts = NotifyKind::from_nts(required(&headers, "NTS")?)
        .ok_or(ParseError::InvalidHeaderValue("NTS"))?;
    let usn = required(&headers, "USN")?;
    let location = if nts.needs_location() {
        Some(required(&headers, "LOCATION")?)
    } else {
        // A byebye needs no location; one that carries a value anyway keeps it.
        single(&headers, "LOCATION")?.filter(|location| !location.is_empty())
    };
    Ok(Notify {
        nt,
        nts,
        usn,
        location,
        max_age: max_age(&headers)?,
        server: single(&headers, "SERVER")?,
        boot_id: optional_u32(&headers, "BOOTID.UPNP.ORG")?,
        config_id: optional_u32(&headers, "CONFIGID.UPNP.ORG")?,
        next_boot_id: optional_u32(&headers, "NEXTBOOTID.UPNP.ORG")?,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Message};

    fn notify(text: &str) -> Result<Notify<'_>, ParseError> {
        match parse(text.as_bytes())? {
            Message::Notify(notify) => Ok(notify),
            other => panic!("not a notify: {other:?}"),
        }
    }

    fn byebye() -> Notify<'static> {
        Notify {
            nt: "upnp:rootdevice",
            nts: NotifyKind::ByeBye,
            usn: "uuid:1::upnp:rootdevice",
            location: None,
            max_age: None,
            server: None,
            boot_id: Some(2),
            config_id: Some(3),
            next_boot_id: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn emits_exact_bytes() {
        let update = Notify {
            nts: NotifyKind::Update,
            location: Some("http://h/d.xml"),
            next_boot_id: Some(4),
            headers: vec![
                Header::new("nts", "ssdp:alive"),
                Header::new("SEARCHPORT.UPNP.ORG", "1901"),
            ],
            ..byebye()
        };
        let mut out = Vec::new();
        update.emit(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nLOCATION: http://h/d.xml\r\n\
             NT: upnp:rootdevice\r\nNTS: ssdp:update\r\nUSN: uuid:1::upnp:rootdevice\r\n\
             BOOTID.UPNP.ORG: 2\r\nCONFIGID.UPNP.ORG: 3\r\nNEXTBOOTID.UPNP.ORG: 4\r\n\
             SEARCHPORT.UPNP.ORG: 1901\r\n\r\n"
        );
    }

    #[test]
    fn location_rules() {
        let mut out = Vec::new();
        byebye().emit(&mut out).unwrap();
        assert_eq!(
            parse(&out).unwrap(),
            Message::Notify(Notify {
                headers: parse_headers(&out),
                ..byebye()
            })
        );
        let alive = Notify {
            nts: NotifyKind::Alive,
            ..byebye()
        };
        out.clear();
        assert_eq!(
            alive.emit(&mut out),
            Err(EmitError::MissingValue("LOCATION"))
        );
        assert!(out.is_empty());
        let text = "NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:alive\r\nUSN: b\r\n\r\n";
        assert_eq!(
            notify(text).unwrap_err(),
            ParseError::MissingHeader("LOCATION")
        );
        let text = "NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: SSDP:BYEBYE\r\nUSN: b\r\nLOCATION:\r\n\r\n";
        assert_eq!(notify(text).unwrap().location, None);
    }

    fn parse_headers(buf: &[u8]) -> Vec<Header<'_>> {
        match parse(buf).unwrap() {
            Message::Notify(notify) => notify.headers,
            other => panic!("not a notify: {other:?}"),
        }
    }

    #[test]
    fn required_headers() {
        for (error, text) in [
            (
                ParseError::MissingHeader("NT"),
                "NOTIFY * HTTP/1.1\r\nNTS: ssdp:byebye\r\nUSN: b\r\n\r\n",
            ),
            (
                ParseError::MissingHeader("NTS"),
                "NOTIFY * HTTP/1.1\r\nNT: a\r\nUSN: b\r\n\r\n",
            ),
            (
                ParseError::MissingHeader("USN"),
                "NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:byebye\r\n\r\n",
            ),
            (
                ParseError::InvalidHeaderValue("NTS"),
                "NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:gone\r\nUSN: b\r\n\r\n",
            ),
            (
                ParseError::DuplicateHeader("NT"),
                "NOTIFY * HTTP/1.1\r\nNT: a\r\nnt: c\r\nNTS: ssdp:byebye\r\nUSN: b\r\n\r\n",
            ),
        ] {
            assert_eq!(notify(text).unwrap_err(), error, "{text:?}");
        }
    }

    #[test]
    fn kinds() {
        for kind in [NotifyKind::Alive, NotifyKind::ByeBye, NotifyKind::Update] {
            assert_eq!(NotifyKind::from_nts(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(NotifyKind::from_nts("ssdp:discover"), None);
    }
}
