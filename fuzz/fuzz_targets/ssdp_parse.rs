//! `ssdp_proto::parse` and `Searcher::handle_datagram` on arbitrary datagrams.
//!
//! Invariants checked besides "never panics":
//! - an accepted message obeys the documented bounds (size, header count, MX range, required
//!   values present, no CR/LF in a value);
//! - whatever `parse` accepts, `emit` accepts, and the emitted datagram parses back to the same
//!   typed fields (the verbatim `headers` list legitimately differs: emit re-spells and re-orders
//!   the headers it owns); a second emit is byte-identical to the first. The emitted datagram
//!   may outgrow a size limit the input just met (CRLF for bare LF, added `HOST`/`MAN`/`EXT`
//!   lines), so a re-parse refused for size alone is not a failure;
//! - `handle_datagram` reports a candidate only for a 200 response or an `ssdp:alive` whose
//!   target matches, with the datagram's own LOCATION, and never twice for one location.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ssdp_proto::{
    parse, EmitError, Message, NotifyKind, ParseError, SearchConfig, Searcher, MAX_HEADERS,
    MAX_MESSAGE_LEN, MX_MAX, MX_MIN,
};

const TARGETS: [&str; 4] = [
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "upnp:rootdevice",
];

fn emit(message: &Message<'_>, out: &mut Vec<u8>) -> Result<(), EmitError> {
    match message {
        Message::Search(m) => m.emit(out),
        Message::Response(m) => m.emit(out),
        Message::Notify(m) => m.emit(out),
    }
}

fn without_headers<'a>(message: &Message<'a>) -> Message<'a> {
    let mut m = message.clone();
    match &mut m {
        Message::Search(m) => m.headers.clear(),
        Message::Response(m) => m.headers.clear(),
        Message::Notify(m) => m.headers.clear(),
    }
    m
}

fn check_bounds(data: &[u8], message: &Message<'_>) {
    assert!(data.len() <= MAX_MESSAGE_LEN);
    let headers = match message {
        Message::Search(s) => {
            assert!((MX_MIN..=MX_MAX).contains(&s.mx));
            assert!(!s.st.is_empty());
            &s.headers
        }
        Message::Response(r) => {
            assert!(!r.st.is_empty() && !r.usn.is_empty() && !r.location.is_empty());
            &r.headers
        }
        Message::Notify(n) => {
            assert!(!n.nt.is_empty() && !n.usn.is_empty());
            assert!(n.location.is_some() || !n.nts.needs_location());
            &n.headers
        }
    };
    assert!(headers.len() <= MAX_HEADERS);
    for h in headers {
        assert!(!h.name.is_empty());
        assert!(
            !h.value.contains(['\r', '\n']),
            "CR/LF in value of {:?}",
            h.name
        );
    }
}

fn check_round_trip(message: &Message<'_>) {
    let mut out = Vec::new();
    if let Err(e) = emit(message, &mut out) {
        panic!("emit refused a parsed message: {e:?}\n{message:?}");
    }
    let again = match parse(&out) {
        Ok(again) => again,
        Err(
            ParseError::TooLarge { .. }
            | ParseError::TooManyHeaders
            | ParseError::HeaderLineTooLong,
        ) => return,
        Err(e) => panic!(
            "re-emitted message refused: {e:?}\n{:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(
        without_headers(&again),
        without_headers(message),
        "typed fields changed"
    );
    let mut out2 = Vec::new();
    emit(&again, &mut out2).expect("second emit refused");
    assert_eq!(out, out2, "emit is not idempotent");
}

fn check_searcher(data: &[u8], parsed: Option<&Message<'_>>) {
    let mut searcher = Searcher::new(
        Instant::now(),
        SearchConfig {
            targets: TARGETS.iter().map(|t| (*t).to_owned()).collect(),
            ..SearchConfig::default()
        },
    );
    let source = SocketAddr::from((Ipv4Addr::new(192, 168, 0, 1), 1900));
    let Some(candidate) = searcher.handle_datagram(source, data) else {
        return;
    };
    let location = match parsed {
        Some(Message::Response(r)) => r.location,
        Some(Message::Notify(n)) if n.nts == NotifyKind::Alive => {
            n.location.expect("alive has LOCATION")
        }
        other => panic!("candidate from {other:?}"),
    };
    assert_eq!(candidate.location, location);
    assert_eq!(candidate.source, source);
    assert!(TARGETS.contains(&candidate.st.as_str()));
    assert!(
        searcher.handle_datagram(source, data).is_none(),
        "same location reported twice"
    );
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data).ok();
    if let Some(message) = &parsed {
        check_bounds(data, message);
        check_round_trip(message);
    }
    check_searcher(data, parsed.as_ref());
});
