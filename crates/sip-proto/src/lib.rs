//! SIP (RFC 3261) over UDP for a phone behind a NAT, without I/O.
//!
//! This crate owns what a SIP user agent says and when, and nothing of how bytes move:
//!
//! - [`message`]: parse (borrowing, bounded, never panics, unknown headers kept) and build SIP
//!   messages; typed readers for Via, From/To, Call-ID, CSeq, Contact, Expires, Min-Expires and
//!   the challenges; SIP URIs.
//! - [`digest`]: HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 7616): MD5,
//!   SHA-256 and SHA-512-256 (and `-sess`), `qop=auth`/`auth-int`, `nc`, `cnonce`, `opaque`,
//!   `stale`.
//! - [`transaction`]: the client and server non-INVITE transactions of RFC 3261 §17.1.2 and
//!   §17.2.2 with timers E, F, K and J.
//! - [`register`]: the registration client: REGISTER with the public (port-mapped) address in
//!   Via and Contact (or the Snom style: private Contact with `?Route=`), authentication, 423,
//!   refresh, CRLF keepalives, unregister, and a warning when the registrar sees us elsewhere
//!   than the mapping says.
//! - [`uas`]: the answers a phone gives to OPTIONS and MESSAGE (and 405 to the rest).
//!
//! It is a pure protocol core in the style of `quinn-proto`: no sockets, no tokio, no clock
//! reads and no global randomness. Time comes in as `now: Instant`, randomness from a caller's
//! [`Random`], datagrams go out through `poll_transmit()`, the caller sleeps until
//! `poll_timeout()` and then calls `handle_timeout(now)`, and what happened comes out of
//! `poll_event()`. After every input, drain all three.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sip_proto::register::{Event, RegisterConfig, Registration};
//! use sip_proto::{parse, SipHeaders, Uri};
//!
//! let start = Instant::now();
//! let mut config = RegisterConfig::new(
//!     Uri::parse("sip:km@snomag.de").unwrap(),
//!     "203.0.113.10:5060".parse().unwrap(), // the registrar, resolved by the runtime
//!     "192.168.0.91:5060".parse().unwrap(), // our socket
//!     "boot-7f3a@192.168.0.91",             // one Call-ID per boot
//! );
//! config.public = Some("203.0.113.1:60123".parse().unwrap()); // from the port mapping
//! // A real runtime passes a CSPRNG; any FnMut(&mut [u8]) will do.
//! let random = |buf: &mut [u8]| buf.fill(7);
//! let mut registration = Registration::new(start, config, random).unwrap();
//!
//! let register = registration.poll_transmit().expect("first REGISTER is due at once");
//! let request = parse(&register.payload).unwrap();
//! assert_eq!(request.top_via().unwrap().sent_by(), "203.0.113.1:60123");
//! assert_eq!(request.header("Contact"), Some("<sip:km@203.0.113.1:60123>"));
//!
//! // The registrar's answer, as the runtime would receive it.
//! let ok = String::from_utf8(register.payload).unwrap()
//!     .replacen("REGISTER sip:snomag.de SIP/2.0", "SIP/2.0 200 OK", 1)
//!     .replace("<sip:km@203.0.113.1:60123>", "<sip:km@203.0.113.1:60123>;expires=600");
//! assert!(registration.handle_response(start, &parse(ok.as_bytes()).unwrap()));
//! assert_eq!(
//!     registration.poll_event(),
//!     Some(Event::Registered { expires: Duration::from_secs(600) })
//! );
//! // Next: Timer K of the finished transaction, keepalives every 25 s, the refresh at 300 s.
//! assert_eq!(registration.poll_timeout(), Some(start + Duration::from_secs(5)));
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddr;

pub mod digest;
pub mod message;
pub mod random;
pub mod register;
pub mod transaction;
pub mod uas;

pub use message::{
    is_keepalive, parse, CSeq, Contacts, EmitError, Header, Message, NameAddr, Param, Params,
    ParseError, Request, Response, Scheme, SipHeaders, StartLine, Uri, UriError, Via,
    BRANCH_MAGIC_COOKIE, MAX_HEADERS, MAX_HEADER_LEN, MAX_LIST_ITEMS, MAX_MESSAGE_LEN, MAX_PARAMS,
};
pub use random::Random;

/// The default SIP port for UDP and TCP (RFC 3261 §19.1.2).
pub const DEFAULT_PORT: u16 = 5060;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}
