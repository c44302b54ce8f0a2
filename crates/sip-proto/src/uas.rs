//! The phone's answers to out-of-dialog requests it does not route anywhere (RFC 3261 §8.2):
//! 200 OK to OPTIONS (§11.2, a registrar or peer probing whether we are reachable) and to
//! MESSAGE (RFC 3428 §7), 405 Method Not Allowed with `Allow` to everything else (§8.2.1),
//! and nothing to ACK (§17: ACK is never answered).
//!
//! Responses are built from the request as §8.2.6.2 says: every Via in order (the top one
//! with `received` and `rport` filled in, §18.2.1, RFC 3581 §4), From, To with our tag added
//! when it has none, Call-ID and CSeq copied. Send them through a
//! [`ServerTransaction`](crate::transaction::ServerTransaction) so that retransmitted requests
//! get the same answer.

use std::net::SocketAddr;

use crate::message::{split_unquoted, Message, Response, SipHeaders};
use crate::random::{token, Random};

/// The methods the phone accepts outside a dialog (the `Allow` of OPTIONS and 405 answers).
pub const ALLOW: &str = "ACK, OPTIONS, MESSAGE";

/// The body types the phone accepts (MESSAGE bodies; `Accept` of the OPTIONS answer, §11.2).
pub const ACCEPT: &str = "text/plain";

/// Random characters of the To tag we add (as [`register::TAG_LEN`](crate::register::TAG_LEN)).
pub const TO_TAG_LEN: usize = 10;

/// The answer to `request`, received from `source`; `None` for a response or an ACK. The To
/// tag, when one is needed, comes from `random`.
pub fn answer(
    request: &Message<'_>,
    source: SocketAddr,
    random: &mut impl Random,
) -> Option<Response> {
    let method = request.method()?;
    let mut response = match method {
        "ACK" => return None,
        "OPTIONS" => {
            let mut ok = response_to(request, source, random, 200, "OK")?;
            ok.push_trusted("Allow", ALLOW);
            ok.push_trusted("Accept", ACCEPT);
            ok
        }
        "MESSAGE" => response_to(request, source, random, 200, "OK")?,
        _ => {
            let mut refused = response_to(request, source, random, 405, "Method Not Allowed")?;
            // §21.4.6: a 405 MUST carry Allow.
            refused.push_trusted("Allow", ALLOW);
            refused
        }
    };
    response.set_body(Vec::new());
    Some(response)
}

/// A response to `request` with the headers §8.2.6.2 copies; `None` if the request lacks one
/// of them (it could not have passed [`parse`](crate::parse)).
pub fn response_to(
    request: &Message<'_>,
    source: SocketAddr,
    random: &mut impl Random,
    code: u16,
    reason: &str,
) -> Option<Response> {
    let mut response = Response::new(code, reason).ok()?;
    let mut first = true;
    for value in request.header_all("Via") {
        if first {
            first = false;
            let mut items = split_unquoted(value, ',').into_iter();
            let top = stamp_via(items.next()?, source)?;
            let joined: Vec<String> = std::iter::once(top)
                .chain(items.map(str::to_owned))
                .collect();
            response.push_trusted("Via", &joined.join(", "));
        } else {
            response.push_trusted("Via", value);
        }
    }
    response.push_trusted("From", request.header("From")?);
    let to = request.header("To")?;
    if request.to().ok()?.tag().is_some() || code == 100 {
        // §8.2.6.2: a 100 carries no tag; an in-dialog request already has ours.
        response.push_trusted("To", to);
    } else {
        response.push_trusted("To", &format!("{to};tag={}", token(random, TO_TAG_LEN)));
    }
    response.push_trusted("Call-ID", request.call_id().ok()?);
    response.push_trusted("CSeq", request.header("CSeq")?);
    Some(response)
}

/// The top Via with `received` (when the source IP is not the sent-by host, §18.2.1) and the
/// value of an empty `rport` (RFC 3581 §4) filled in.
fn stamp_via(top: &str, source: SocketAddr) -> Option<String> {
    let mut via = crate::message::Via::parse(top)?;
    let source_host = match source.ip() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let rport_requested = via.rport().is_some();
    if !via.host.eq_ignore_ascii_case(&source_host) || rport_requested {
        // RFC 3581 §4: with rport, received is added even when the host matches.
        via.params
            .0
            .retain(|p| !p.name.eq_ignore_ascii_case("received"));
        via.params.0.push(crate::message::Param::new(
            "received",
            Some(&source.ip().to_string()),
        ));
    }
    if let Some(param) = via
        .params
        .0
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case("rport"))
    {
        param.value = Some(source.port().to_string());
    }
    Some(via.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn request(method: &str, to_tag: &str) -> Vec<u8> {
        format!(
            "{method} sip:km@203.0.113.1:60123 SIP/2.0\r\n\
             v: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-o1;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-p\r\n\
             Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-q\r\n\
             f: <sip:bob@203.0.113.10>;tag=b1\r\nt: <sip:km@snomag.de>{to_tag}\r\n\
             i: opt-1\r\nCSeq: 9 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn fixed(dest: &mut [u8]) {
        dest.fill(10); // 'a'
    }

    #[test]
    fn options_gets_200_with_allow_and_copied_headers() {
        let bytes = request("OPTIONS", "");
        let message = parse(&bytes).unwrap();
        let source = "203.0.113.10:41000".parse().unwrap();
        let response = answer(&message, source, &mut fixed).unwrap();
        let text = String::from_utf8(response.to_bytes()).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-o1;rport=41000;received=203.0.113.10, \
             SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-p\r\n\
             Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-q\r\n\
             From: <sip:bob@203.0.113.10>;tag=b1\r\n\
             To: <sip:km@snomag.de>;tag=aaaaaaaaaa\r\n\
             Call-ID: opt-1\r\nCSeq: 9 OPTIONS\r\n\
             Allow: ACK, OPTIONS, MESSAGE\r\nAccept: text/plain\r\nContent-Length: 0\r\n\r\n"
        );
        // What we send parses back.
        assert_eq!(parse(text.as_bytes()).unwrap().status(), Some(200));
    }

    #[test]
    fn message_gets_200_and_keeps_an_existing_to_tag() {
        let bytes = request("MESSAGE", ";tag=ours");
        let message = parse(&bytes).unwrap();
        let response = answer(&message, "203.0.113.10:5060".parse().unwrap(), &mut fixed).unwrap();
        assert_eq!(response.code(), 200);
        assert_eq!(response.to().unwrap().tag(), Some("ours"));
        assert_eq!(response.header("Allow"), None);
    }

    #[test]
    fn other_methods_get_405_and_ack_nothing() {
        let source = "203.0.113.10:5060".parse().unwrap();
        for method in ["SUBSCRIBE", "INFO", "REGISTER"] {
            let bytes = request(method, "");
            let response = answer(&parse(&bytes).unwrap(), source, &mut fixed).unwrap();
            assert_eq!(
                (response.code(), response.header("Allow")),
                (405, Some(ALLOW))
            );
        }
        let ack = request("ACK", ";tag=x");
        assert!(answer(&parse(&ack).unwrap(), source, &mut fixed).is_none());
    }

    #[test]
    fn received_is_added_when_source_differs_without_rport() {
        let via = stamp_via(
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1",
            "198.51.100.2:5060".parse().unwrap(),
        );
        assert_eq!(
            via.as_deref(),
            Some("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;received=198.51.100.2")
        );
        let same = stamp_via(
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1",
            "10.0.0.5:5060".parse().unwrap(),
        );
        assert_eq!(
            same.as_deref(),
            Some("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1")
        );
    }
}
