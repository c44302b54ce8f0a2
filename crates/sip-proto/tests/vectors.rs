//! Byte-exact vectors under `tests/vectors/` (see its README): the seed document's two Snom
//! REGISTERs, parsed field by field, re-emitted unchanged, and reproduced by our own Snom-style
//! builder; our REGISTERs in both Contact styles.

use std::net::SocketAddr;
use std::time::Instant;

use sip_proto::register::{ContactStyle, RegisterConfig, Registration};
use sip_proto::{parse, Contacts, Param, ParseError, Request, SipHeaders, Uri};

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("vectors/", $name)).as_slice()
    };
}

/// The rule that turns the document's rendering into the wire form (README): drop empty lines
/// in the head, join wrapped lines (those not starting with `Name:`), CRLF line ends.
fn wire_from_document(text: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(text).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let starts_header = line.split_once(':').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        match lines.last_mut() {
            _ if line.is_empty() => {}
            Some(last) if !starts_header => last.push_str(line),
            _ => lines.push(line.to_owned()),
        }
    }
    let mut wire = lines.join("\r\n").into_bytes();
    wire.extend_from_slice(b"\r\n\r\n");
    wire
}

#[test]
fn document_rendering_to_wire_form() {
    let first = wire_from_document(vector!("seed-register-60124.txt"));
    assert_eq!(first, vector!("seed-register-60124.sip"));
    // "Sent to udp:217.115.141.99:5060 at ... (445 bytes)"
    assert_eq!(first.len(), 445);
    assert_eq!(
        wire_from_document(vector!("seed-register-60123.txt")),
        vector!("seed-register-60123.sip")
    );
}

#[test]
fn document_renderings_are_not_sip() {
    // An empty line right after the request line ends the head: no Via at all.
    assert_eq!(
        parse(vector!("seed-register-60124.txt")),
        Err(ParseError::MissingHeader("Via"))
    );
    // "transport=udp?Route=sip:66.31.121.76:60123>;" is neither a header nor folding.
    assert_eq!(
        parse(vector!("seed-register-60123.txt")),
        Err(ParseError::InvalidHeaderLine)
    );
}

#[test]
fn seed_register_60123_fields() {
    let message = parse(vector!("seed-register-60123.sip")).unwrap();
    assert_eq!(message.method(), Some("REGISTER"));
    assert!(matches!(
        message.start,
        sip_proto::StartLine::Request {
            uri: "sip:snomag.de",
            ..
        }
    ));

    let via = message.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.sent_by(), "66.31.121.76:60123");
    assert_eq!(via.branch(), Some("z9hG4bK-1mxrzs9u5hhj"));
    assert_eq!(via.rport(), Some(None), "rport flag without a value");
    assert_eq!(via.received(), None);

    let from = message.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("km"));
    assert_eq!(from.uri, "sip:km@snomag.de");
    assert_eq!(from.tag(), Some("x34ck1af9e"));
    assert_eq!(message.to().unwrap().tag(), None);
    assert_eq!(
        message.call_id().unwrap(),
        "3c26700db350-tefkcd6usp5p@192.168.0.91"
    );
    let cseq = message.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method.as_str()), (77, "REGISTER"));
    assert_eq!(message.expires().unwrap(), Some(3600));
    assert_eq!(message.header("Max-Forwards"), Some("70"));
    // A header this crate does not interpret is kept verbatim, in place.
    assert_eq!(message.headers[5].name, "User-Agent");
    assert_eq!(message.headers[5].value, "snom100-1.15u");
    assert!(message.body.is_empty());

    let Contacts::Addresses(contacts) = message.contacts().unwrap() else {
        panic!("not a wildcard");
    };
    assert_eq!(contacts.len(), 1);
    let contact = &contacts[0];
    assert_eq!(contact.params.value("q"), Some("1.0"));
    assert_eq!(contact.params.value("description"), Some("\"Available\""));
    let uri = contact.sip_uri().unwrap();
    assert_eq!(uri.user.as_deref(), Some("km"));
    assert_eq!(uri.host_port(), "192.168.0.91:5060");
    assert_eq!(uri.params.value("line"), Some("2"));
    assert_eq!(uri.params.value("transport"), Some("udp"));
    assert_eq!(
        uri.headers,
        [("Route".to_owned(), "sip:66.31.121.76:60123".to_owned())]
    );
}

#[test]
fn seed_register_60124_fields() {
    let message = parse(vector!("seed-register-60124.sip")).unwrap();
    let via = message.top_via().unwrap();
    assert_eq!(via.sent_by(), "66.31.121.76:60124");
    assert_eq!(via.rport(), Some(None));
    assert_eq!(message.cseq().unwrap().seq, 15);
    assert_eq!(message.expires().unwrap(), Some(86400));
    let Contacts::Addresses(contacts) = message.contacts().unwrap() else {
        panic!("not a wildcard");
    };
    let uri = contacts[0].sip_uri().unwrap();
    assert_eq!(uri.host, "192.168.0.90");
    assert_eq!(uri.headers[0].1, "sip:66.31.121.76:60124");
}

#[test]
fn seed_registers_reemit_byte_for_byte() {
    for bytes in [
        vector!("seed-register-60123.sip"),
        vector!("seed-register-60124.sip"),
    ] {
        let request = Request::from_message(&parse(bytes).unwrap()).unwrap();
        assert_eq!(request.to_bytes(), bytes);
    }
}

/// A source that yields the given characters' alphabet indexes, then counts on.
fn scripted(text: &str) -> impl FnMut(&mut [u8]) {
    let alphabet = sip_proto::random::TOKEN_ALPHABET;
    let mut script: Vec<u8> = text
        .bytes()
        .map(|c| u8::try_from(alphabet.iter().position(|&a| a == c).unwrap()).unwrap())
        .collect();
    script.reverse();
    move |dest: &mut [u8]| dest.iter_mut().for_each(|b| *b = script.pop().unwrap_or(0))
}

#[test]
fn snom_style_builder_reproduces_the_seed() {
    let registrar: SocketAddr = "217.115.141.99:5060".parse().unwrap();
    let local: SocketAddr = "192.168.0.91:5060".parse().unwrap();
    let mut config = RegisterConfig::new(
        Uri::parse("sip:km@snomag.de").unwrap(),
        registrar,
        local,
        "3c26700db350-tefkcd6usp5p@192.168.0.91",
    );
    config.display_name = Some("km".into());
    config.public = Some("66.31.121.76:60123".parse().unwrap());
    config.contact_style = ContactStyle::SnomRoute;
    config.contact_uri_params = vec![
        Param::new("line", Some("2")),
        Param::new("transport", Some("udp")),
    ];
    config.contact_params = vec![
        Param::new("q", Some("1.0")),
        Param::new("description", Some("\"Available\"")),
    ];
    config.user_agent = Some("snom100-1.15u".into());
    config.first_cseq = 77;
    // From tag first, then the branch's random part.
    let random = scripted("x34ck1af9e1mxrzs9u5hhj");
    let mut registration = Registration::new(Instant::now(), config, random).unwrap();
    let transmit = registration.poll_transmit().unwrap();
    assert_eq!(transmit.destination, registrar);
    assert_eq!(
        String::from_utf8(transmit.payload).unwrap(),
        String::from_utf8(vector!("seed-register-60123.sip").to_vec()).unwrap()
    );
}
