//! Byte-exact vectors under `tests/vectors/`: what we emit, what miniupnpd-style devices and
//! other stacks send (lower-case names, bare LF, odd spacing), and datagrams that must be
//! refused (`invalid/`). The miniupnpd vectors follow the formats of miniupnpd 2.x's
//! `minissdp.c`; the `-reemitted` files are what our `emit` makes of them after `parse`.

use ssdp_proto::{
    parse, Header, Message, Notify, NotifyKind, ParseError, SearchRequest, SearchResponse,
    MAX_MESSAGE_LEN,
};

const UUID: &str = "uuid:9c1d9e6a-3a5b-4d1e-8f2a-0123456789ab";
const IGD1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
const IGD2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
const WANIP2: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";
const MINIUPNPD: &str = "Debian/12 UPnP/1.1 MiniUPnPd/2.3.3";
const LOCATION: &str = "http://192.168.0.1:5000/rootDesc.xml";
const OPT: &str = "\"http://schemas.upnp.org/upnp/1/0/\"; ns=01";

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("vectors/", $name)).as_slice()
    };
}

fn search(buf: &[u8]) -> SearchRequest<'_> {
    match parse(buf) {
        Ok(Message::Search(search)) => search,
        other => panic!("not an M-SEARCH: {other:?}"),
    }
}

fn response(buf: &[u8]) -> SearchResponse<'_> {
    match parse(buf) {
        Ok(Message::Response(response)) => response,
        other => panic!("not a response: {other:?}"),
    }
}

fn notify(buf: &[u8]) -> Notify<'_> {
    match parse(buf) {
        Ok(Message::Notify(notify)) => notify,
        other => panic!("not a NOTIFY: {other:?}"),
    }
}

fn emitted(emit: impl FnOnce(&mut Vec<u8>) -> Result<(), ssdp_proto::EmitError>) -> String {
    let mut out = Vec::new();
    emit(&mut out).expect("emit");
    String::from_utf8(out).expect("emitted UTF-8")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("vector is UTF-8")
}

#[test]
fn msearch_as_emitted() {
    let vector = vector!("msearch-igd2.ssdp");
    let ours = emitted(|out| SearchRequest::new(IGD2, 2).emit(out));
    assert_eq!(ours, text(vector));
    let parsed = search(vector);
    assert_eq!((parsed.st, parsed.mx, parsed.user_agent), (IGD2, 2, None));
    assert_eq!(
        parsed.headers[0],
        Header::new("HOST", "239.255.255.250:1900")
    );
    assert_eq!(parsed.headers.len(), 4);
}

#[test]
fn msearch_windows_style() {
    let parsed = search(vector!("msearch-windows-style.ssdp"));
    assert_eq!((parsed.st, parsed.mx), (IGD1, 3));
    let names: Vec<&str> = parsed.headers.iter().map(|h| h.name).collect();
    assert_eq!(names, ["Host", "ST", "Man", "MX"]);
}

#[test]
fn msearch_unicast_without_mx() {
    let parsed = search(vector!("msearch-unicast-no-mx.ssdp"));
    assert_eq!((parsed.st, parsed.mx), ("ssdp:all", 1));
    assert_eq!(parsed.user_agent, Some("Linux/6.1 UPnP/2.0 probe/1.0"));
}

#[test]
fn response_miniupnpd() {
    let parsed = response(vector!("response-miniupnpd.ssdp"));
    assert_eq!(parsed.st, IGD1);
    assert_eq!(parsed.usn, format!("{UUID}::{IGD1}"));
    assert_eq!(parsed.location, LOCATION);
    assert_eq!(parsed.max_age, Some(120));
    assert_eq!(parsed.server, Some(MINIUPNPD));
    assert_eq!(parsed.boot_id, Some(1_717_171_717));
    assert_eq!(parsed.config_id, Some(1337));
    assert_eq!(parsed.headers.len(), 10);
    assert_eq!(parsed.headers[3], Header::new("EXT", ""));
    assert_eq!(parsed.headers[7], Header::new("01-NLS", "1717171717"));
    let reemitted = emitted(|out| parsed.emit(out));
    assert_eq!(
        reemitted,
        text(vector!("response-miniupnpd-reemitted.ssdp"))
    );
    assert_eq!(response(reemitted.as_bytes()).headers.len(), 10);
}

#[test]
fn response_lf_only_reads_like_crlf() {
    let crlf = response(vector!("response-miniupnpd.ssdp"));
    let lf = response(vector!("response-miniupnpd-lf-only.ssdp"));
    assert_eq!(lf, crlf);
}

#[test]
fn response_lowercase_and_odd_spacing() {
    let parsed = response(vector!("response-lowercase.ssdp"));
    assert_eq!(parsed.st, IGD2);
    assert_eq!(parsed.location, "http://192.168.1.254:49152/gatedesc.xml");
    assert_eq!(parsed.max_age, Some(1800));
    assert_eq!(
        parsed.server,
        Some("Linux/3.4 UPnP/1.0 Portable SDK for UPnP devices/1.6.19")
    );
    assert_eq!(parsed.boot_id, Some(3));
    assert_eq!(parsed.config_id, None);
    // Unknown headers stay visible, spelled as sent.
    assert!(parsed
        .headers
        .contains(&Header::new("x-user-agent", "redsonic")));
}

#[test]
fn notify_alive_miniupnpd() {
    let parsed = notify(vector!("notify-alive-miniupnpd.ssdp"));
    assert_eq!(parsed.nts, NotifyKind::Alive);
    assert_eq!(parsed.nt, WANIP2);
    assert_eq!(parsed.usn, format!("{UUID}::{WANIP2}"));
    assert_eq!(parsed.location, Some(LOCATION));
    assert_eq!(parsed.max_age, Some(120));
    assert_eq!(parsed.server, Some(MINIUPNPD));
    assert_eq!(
        (parsed.boot_id, parsed.config_id, parsed.next_boot_id),
        (Some(1_717_171_717), Some(1337), None)
    );
    assert_eq!(parsed.headers[7], Header::new("OPT", OPT));
    let reemitted = emitted(|out| parsed.emit(out));
    assert_eq!(
        reemitted,
        text(vector!("notify-alive-miniupnpd-reemitted.ssdp"))
    );
}

#[test]
fn notify_byebye_miniupnpd() {
    let parsed = notify(vector!("notify-byebye-miniupnpd.ssdp"));
    assert_eq!(parsed.nts, NotifyKind::ByeBye);
    assert_eq!(parsed.nt, "upnp:rootdevice");
    assert_eq!(parsed.usn, format!("{UUID}::upnp:rootdevice"));
    assert_eq!(
        (parsed.location, parsed.max_age, parsed.server),
        (None, None, None)
    );
    assert_eq!(parsed.boot_id, Some(1_717_171_717));
    let reemitted = emitted(|out| parsed.emit(out));
    assert_eq!(
        reemitted,
        text(vector!("notify-byebye-miniupnpd-reemitted.ssdp"))
    );
}

#[test]
fn invalid_vectors_are_refused() {
    let cases: [(&str, &[u8], ParseError); 17] = [
        (
            "truncated",
            vector!("invalid/truncated.ssdp"),
            ParseError::Incomplete,
        ),
        (
            "long-st",
            vector!("invalid/long-st.ssdp"),
            ParseError::HeaderLineTooLong,
        ),
        (
            "too-large",
            vector!("invalid/too-large.ssdp"),
            ParseError::TooLarge { len: 12731 },
        ),
        (
            "too-many-headers",
            vector!("invalid/too-many-headers.ssdp"),
            ParseError::TooManyHeaders,
        ),
        (
            "nul-in-value",
            vector!("invalid/nul-in-value.ssdp"),
            ParseError::InvalidHeaderLine,
        ),
        (
            "not-utf8",
            vector!("invalid/not-utf8.ssdp"),
            ParseError::NotUtf8,
        ),
        (
            "duplicate-location",
            vector!("invalid/duplicate-location.ssdp"),
            ParseError::DuplicateHeader("LOCATION"),
        ),
        (
            "mx-negative",
            vector!("invalid/mx-negative.ssdp"),
            ParseError::InvalidHeaderValue("MX"),
        ),
        (
            "man-unquoted",
            vector!("invalid/man-unquoted.ssdp"),
            ParseError::InvalidHeaderValue("MAN"),
        ),
        (
            "http-get",
            vector!("invalid/http-get.ssdp"),
            ParseError::InvalidStartLine,
        ),
        (
            "status-404",
            vector!("invalid/status-404.ssdp"),
            ParseError::UnexpectedStatus(404),
        ),
        (
            "folded-header",
            vector!("invalid/folded-header.ssdp"),
            ParseError::InvalidHeaderLine,
        ),
        (
            "header-injection-cr",
            vector!("invalid/header-injection-cr.ssdp"),
            ParseError::InvalidHeaderLine,
        ),
        (
            "notify-unknown-nts",
            vector!("invalid/notify-unknown-nts.ssdp"),
            ParseError::InvalidHeaderValue("NTS"),
        ),
        (
            "alive-without-location",
            vector!("invalid/alive-without-location.ssdp"),
            ParseError::MissingHeader("LOCATION"),
        ),
        (
            "empty",
            vector!("invalid/empty.ssdp"),
            ParseError::Incomplete,
        ),
        (
            "unsupported-method",
            b"SUBSCRIBE * HTTP/1.1\r\n\r\n",
            ParseError::UnsupportedMethod,
        ),
    ];
    for (name, buf, expected) in cases {
        assert_eq!(parse(buf), Err(expected), "{name}");
    }
    assert!(vector!("invalid/too-large.ssdp").len() > MAX_MESSAGE_LEN);
    assert!(parse(vector!("invalid/random.bin")).is_err());
}
