//! Property tests: `parse` never panics and bounds what it accepts, `emit` then `parse` gives
//! back what was emitted, `emit` never lets a value break out of its header, and MX is always
//! clamped.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use ssdp_proto::{
    parse, Header, Message, Notify, NotifyKind, SearchRequest, SearchResponse, MAX_HEADERS,
    MAX_MESSAGE_LEN, MX_MAX, MX_MIN,
};

/// A header value as devices send them: printable ASCII (and a little UTF-8), no leading or
/// trailing blank (those are dropped by `parse`).
fn value() -> impl Strategy<Value = String> {
    "[!-~é]([ -~é]{0,40}[!-~é])?"
}

/// An extra header: a token name that no message type writes itself, and any value.
fn extras() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(
        (
            "X-[A-Za-z0-9.-]{1,12}",
            prop_oneof![Just(String::new()), value()],
        ),
        0..6,
    )
}

fn headers(extras: &[(String, String)]) -> Vec<Header<'_>> {
    extras.iter().map(|(n, v)| Header::new(n, v)).collect()
}

fn kind() -> impl Strategy<Value = NotifyKind> {
    prop_oneof![
        Just(NotifyKind::Alive),
        Just(NotifyKind::ByeBye),
        Just(NotifyKind::Update)
    ]
}

/// Lines a parser might trip over, glued together with assorted line ends.
fn messy_message() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just("M-SEARCH * HTTP/1.1".to_owned()),
        Just("NOTIFY * HTTP/1.1".to_owned()),
        Just("HTTP/1.1 200 OK".to_owned()),
        Just("MAN: \"ssdp:discover\"".to_owned()),
        Just("NTS: ssdp:alive".to_owned()),
        Just(String::new()),
        "(ST|USN|LOCATION|NT|NTS|MX|CACHE-CONTROL|BOOTID.UPNP.ORG|HOST|SERVER|X-[a-z]{1,3}) ?: ?[ -~]{0,30}",
        "[ -~\t]{0,40}",
        "MX: [0-9-]{0,30}",
    ];
    (
        vec(
            (
                line,
                prop_oneof![Just("\r\n"), Just("\n"), Just("\r"), Just("")],
            ),
            0..20,
        ),
        vec(any::<u8>(), 0..8),
    )
        .prop_map(|(lines, tail)| {
            let mut out = Vec::new();
            for (line, eol) in lines {
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(eol.as_bytes());
            }
            out.extend_from_slice(&tail);
            out
        })
}

/// What every accepted message must satisfy, whatever its input.
fn check_accepted(buf: &[u8]) {
    if let Ok(message) = parse(buf) {
        assert!(buf.len() <= MAX_MESSAGE_LEN);
        let headers = match &message {
            Message::Search(search) => {
                assert!((MX_MIN..=MX_MAX).contains(&search.mx));
                assert!(!search.st.is_empty());
                &search.headers
            }
            Message::Response(response) => {
                assert!(!response.location.is_empty());
                &response.headers
            }
            Message::Notify(notify) => {
                assert!(notify.location.is_some() || notify.nts == NotifyKind::ByeBye);
                &notify.headers
            }
        };
        assert!(headers.len() <= MAX_HEADERS);
        for header in headers {
            assert!(!header.value.contains(['\r', '\n']));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_bytes(buf in vec(any::<u8>(), 0..(MAX_MESSAGE_LEN + 64))) {
        check_accepted(&buf);
    }

    #[test]
    fn parse_never_panics_on_messy_text(buf in messy_message()) {
        check_accepted(&buf);
    }

    #[test]
    fn parse_never_panics_on_mutated_vectors(
        which in 0usize..3,
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 1..8),
    ) {
        let mut buf = [
            include_bytes!("vectors/response-miniupnpd.ssdp").as_slice(),
            include_bytes!("vectors/notify-alive-miniupnpd.ssdp").as_slice(),
            include_bytes!("vectors/msearch-igd2.ssdp").as_slice(),
        ][which].to_vec();
        for (at, byte, insert) in edits {
            let at = at.index(buf.len());
            if insert { buf.insert(at, byte) } else { buf[at] = byte }
        }
        check_accepted(&buf);
    }

    #[test]
    fn search_round_trip(
        st in value(),
        mx in any::<u8>(),
        user_agent in option::of(value()),
        extras in extras(),
    ) {
        let request = SearchRequest {
            user_agent: user_agent.as_deref(),
            headers: headers(&extras),
            ..SearchRequest::new(&st, mx)
        };
        prop_assert!((MX_MIN..=MX_MAX).contains(&request.mx));
        let mut out = Vec::new();
        request.emit(&mut out).unwrap();
        let Ok(Message::Search(parsed)) = parse(&out) else {
            panic!("not parsed back: {:?}", String::from_utf8_lossy(&out))
        };
        prop_assert_eq!(parsed.st, st.as_str());
        prop_assert_eq!(parsed.mx, request.mx);
        prop_assert_eq!(parsed.user_agent, request.user_agent);
        let tail = &parsed.headers[parsed.headers.len() - extras.len()..];
        prop_assert_eq!(tail, request.headers.as_slice());
    }

    #[test]
    fn response_round_trip(
        (st, usn, location) in (value(), value(), value()),
        (max_age, boot_id, config_id) in (option::of(any::<u32>()), option::of(any::<u32>()), option::of(any::<u32>())),
        server in option::of(value()),
        extras in extras(),
    ) {
        let response = SearchResponse {
            st: &st,
            usn: &usn,
            location: &location,
            max_age,
            server: server.as_deref(),
            boot_id,
            config_id,
            headers: headers(&extras),
        };
        let mut out = Vec::new();
        response.emit(&mut out).unwrap();
        let Ok(Message::Response(parsed)) = parse(&out) else {
            panic!("not parsed back: {:?}", String::from_utf8_lossy(&out))
        };
        let tail = parsed.headers[parsed.headers.len() - extras.len()..].to_vec();
        prop_assert_eq!(tail, response.headers.clone());
        prop_assert_eq!(SearchResponse { headers: response.headers.clone(), ..parsed }, response);
    }

    #[test]
    fn notify_round_trip(
        (nt, nts, usn) in (value(), kind(), value()),
        location in option::of(value()),
        (max_age, boot_id, config_id, next_boot_id) in (
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
        ),
        server in option::of(value()),
        extras in extras(),
    ) {
        let notify = Notify {
            nt: &nt,
            nts,
            usn: &usn,
            location: location.as_deref(),
            max_age,
            server: server.as_deref(),
            boot_id,
            config_id,
            next_boot_id,
            headers: headers(&extras),
        };
        let mut out = Vec::new();
        let emitted = notify.emit(&mut out);
        if location.is_none() && nts != NotifyKind::ByeBye {
            prop_assert!(emitted.is_err());
            prop_assert!(out.is_empty());
            return Ok(());
        }
        emitted.unwrap();
        let Ok(Message::Notify(parsed)) = parse(&out) else {
            panic!("not parsed back: {:?}", String::from_utf8_lossy(&out))
        };
        let tail = parsed.headers[parsed.headers.len() - extras.len()..].to_vec();
        prop_assert_eq!(tail, notify.headers.clone());
        prop_assert_eq!(Notify { headers: notify.headers.clone(), ..parsed }, notify);
    }

    /// Whatever the caller puts in a field, `emit` either refuses it (appending nothing) or
    /// writes exactly the headers it meant to: no value can start a header of its own.
    #[test]
    fn emit_cannot_inject(st in "[\\x00-\\x7f]{0,24}", user_agent in "[\\x00-\\x7f]{0,24}") {
        let request = SearchRequest { user_agent: Some(&user_agent), ..SearchRequest::new(&st, 1) };
        let mut out = b"prefix".to_vec();
        match request.emit(&mut out) {
            Err(_) => prop_assert_eq!(out, b"prefix"),
            Ok(()) => {
                let Ok(Message::Search(parsed)) = parse(&out[6..]) else {
                    panic!("emitted what parse refuses: {:?}", String::from_utf8_lossy(&out))
                };
                prop_assert_eq!(parsed.headers.len(), 5);
                prop_assert_eq!(parsed.st, st.trim_matches([' ', '\t']));
                prop_assert_eq!(parsed.user_agent, Some(user_agent.trim_matches([' ', '\t'])));
            }
        }
    }

    #[test]
    fn parsed_mx_is_always_clamped(mx in prop_oneof!["[0-9]{1,30}", "[ -~]{0,12}"]) {
        let text = format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: {mx}\r\nST: ssdp:all\r\n\r\n"
        );
        match parse(text.as_bytes()) {
            Ok(Message::Search(search)) => {
                prop_assert!((MX_MIN..=MX_MAX).contains(&search.mx));
                let digits = mx.trim_matches([' ', '\t']);
                if let Ok(n) = digits.parse::<u128>() {
                    prop_assert_eq!(u128::from(search.mx), n.clamp(1, 5));
                }
            }
            Ok(other) => panic!("not a search: {other:?}"),
            Err(_) => prop_assert!(!mx.trim_matches([' ', '\t']).bytes().all(|b| b.is_ascii_digit()) || mx.trim().is_empty()),
        }
    }
}
