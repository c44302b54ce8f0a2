//! Property tests: `parse` and every typed reader never panic on arbitrary or mangled bytes,
//! `emit` then `parse` gives back what was emitted (requests, responses, URIs), and no value
//! with a control character gets into a message.

use proptest::collection::vec;
use proptest::prelude::*;

use sip_proto::digest::Challenge;
use sip_proto::{parse, Message, Param, Params, Request, Response, SipHeaders, Uri};

const SEED: &[u8] = include_bytes!("vectors/seed-register-60123.sip");

/// Reads everything a caller might read; must not panic whatever the message.
fn read_all(message: &Message<'_>) {
    let _ = message.vias();
    let _ = message.top_via();
    let _ = message.from().map(|f| f.sip_uri());
    let _ = message.to();
    let _ = message.cseq();
    let _ = message.expires();
    let _ = message.min_expires();
    let _ = message.retry_after();
    if let Ok(sip_proto::Contacts::Addresses(list)) = message.contacts() {
        for contact in list {
            let _ = contact.sip_uri();
            let _ = contact.expires();
        }
    }
    let _ = Challenge::select(message.www_authenticate());
    let _ = Challenge::select(message.proxy_authenticate());
}

/// A header value as peers send them: printable ASCII and a little UTF-8, no leading or
/// trailing blank (`parse` drops those).
fn value() -> impl Strategy<Value = String> {
    "[!-~é]([ -~é]{0,40}[!-~é])?"
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

fn extras() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(
        (
            "X-[A-Za-z0-9]{1,10}",
            prop_oneof![Just(String::new()), value()],
        ),
        0..6,
    )
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn uri() -> impl Strategy<Value = Uri> {
    (
        proptest::option::of("[a-z0-9_.+-]{1,10}"),
        host(),
        proptest::option::of(any::<u16>()),
        vec((token(), proptest::option::of("[a-z0-9]{1,8}")), 0..4),
        vec(("[A-Za-z]{1,8}", "[a-z0-9:.]{0,12}"), 0..3),
    )
        .prop_map(|(user, host, port, params, headers)| {
            let mut uri = Uri::sip(user.as_deref(), host, port);
            uri.params = Params(
                params
                    .into_iter()
                    .map(|(name, value)| Param::new(name, value.as_deref()))
                    .collect(),
            );
            uri.headers = headers;
            uri
        })
}

/// The headers every message needs, with generated values where the grammar allows.
fn required(
    method: &str,
    cseq: u32,
    branch: &str,
    call_id: &str,
    to: &Uri,
) -> Vec<(String, String)> {
    vec![
        (
            "Via".into(),
            format!("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch};rport"),
        ),
        ("From".into(), format!("<sip:a@192.0.2.1>;tag={branch}")),
        ("To".into(), format!("<{to}>")),
        ("Call-ID".into(), call_id.to_owned()),
        ("CSeq".into(), format!("{cseq} {method}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics(bytes in vec(any::<u8>(), 0..2048)) {
        if let Ok(message) = parse(&bytes) {
            read_all(&message);
        }
    }

    #[test]
    fn parse_never_panics_on_mangled_seed(
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = SEED.to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        bytes.truncate(cut.index(bytes.len() + 1).max(bytes.len() / 2));
        if let Ok(message) = parse(&bytes) {
            read_all(&message);
        }
    }

    #[test]
    fn challenge_parse_never_panics(text in "Digest [ -~]{0,200}") {
        let _ = Challenge::parse(&text);
    }

    #[test]
    fn request_emit_parse_round_trip(
        method in "[A-Z]{3,10}",
        to in uri(),
        cseq in 0u32..(1 << 31),
        branch in "[a-z0-9]{1,16}",
        call_id in "[!-~]{1,30}",
        extra in extras(),
        body in vec(any::<u8>(), 0..64),
    ) {
        let mut request = Request::new(&method, &to.to_string()).unwrap();
        for (name, value) in required(&method, cseq, &branch, &call_id, &to).iter().chain(&extra) {
            request.push_header(name, value).unwrap();
        }
        request.set_body(body);
        let bytes = request.to_bytes();
        let message = parse(&bytes).unwrap();
        read_all(&message);
        prop_assert_eq!(message.cseq().unwrap().seq, cseq);
        prop_assert_eq!(Request::from_message(&message).unwrap(), request);
    }

    #[test]
    fn response_emit_parse_round_trip(
        code in 100u16..700,
        reason in "([!-~]([ -~]{0,20}[!-~])?)?",
        to in uri(),
        extra in extras(),
        body in vec(any::<u8>(), 0..64),
    ) {
        let mut response = Response::new(code, &reason).unwrap();
        for (name, value) in required("REGISTER", 1, "x", "c@h", &to).iter().chain(&extra) {
            response.push_header(name, value).unwrap();
        }
        response.set_body(body);
        let bytes = response.to_bytes();
        let message = parse(&bytes).unwrap();
        prop_assert_eq!(message.status(), Some(code));
        prop_assert_eq!(Response::from_message(&message).unwrap(), response);
    }

    #[test]
    fn uri_display_parse_round_trip(uri in uri()) {
        prop_assert_eq!(Uri::parse(&uri.to_string()).unwrap(), uri);
    }

    #[test]
    fn control_characters_never_get_in(
        before in "[ -~]{0,10}",
        control in prop_oneof![Just('\r'), Just('\n'), Just('\0'), Just('\x7f')],
        after in "[ -~]{0,10}",
    ) {
        let value = format!("{before}{control}{after}");
        let mut request = Request::new("OPTIONS", "sip:a@b").unwrap();
        prop_assert!(request.push_header("Subject", &value).is_err());
        prop_assert!(Response::new(200, &value).is_err());
        prop_assert_eq!(request, Request::new("OPTIONS", "sip:a@b").unwrap());
    }
}
