//! SSDP, the discovery protocol of UPnP (UPnP Device Architecture 2.0 §1), without I/O.
//!
//! This crate owns the wire format of the three SSDP messages a control point and an IGD
//! exchange, and the control point's search schedule:
//!
//! - [`message`]: parse and emit of `M-SEARCH` (§1.3.2), the search response
//!   `HTTP/1.1 200 OK` (§1.3.3) and `NOTIFY` with `ssdp:alive`, `ssdp:byebye` and
//!   `ssdp:update` (§1.2). Parsing borrows from the datagram, keeps every header verbatim,
//!   bounds every size and never panics; emitting refuses values that would inject headers.
//! - [`advertise`]: the device side: which targets answer a search, the answers and
//!   `NOTIFY`s to send, the re-announcement schedule ([`Announcer`]) and a per-source
//!   [`RateLimiter`].
//! - [`search`]: [`Searcher`], the client's M-SEARCH retransmission schedule and the filter that
//!   turns answers into deduplicated [`Candidate`]s.
//!
//! It is a pure protocol core in the style of `quinn-proto`: no sockets, no tokio, no clock
//! reads. Time comes in as `now: Instant` from the caller, datagrams go out through
//! [`Searcher::poll_transmit`], and the caller sleeps until [`Searcher::poll_timeout`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ssdp_proto::{SearchConfig, Searcher};
//!
//! let start = Instant::now();
//! let mut searcher = Searcher::new(
//!     start,
//!     SearchConfig {
//!         targets: vec!["urn:schemas-upnp-org:device:InternetGatewayDevice:1".into()],
//!         ..SearchConfig::default()
//!     },
//! );
//! // Due at once: one M-SEARCH per target, to 239.255.255.250:1900.
//! let datagram = searcher.poll_transmit(start).expect("first M-SEARCH is due at start");
//! assert!(datagram.starts_with(b"M-SEARCH * HTTP/1.1\r\n"));
//! assert_eq!(searcher.poll_transmit(start), None);
//! assert_eq!(searcher.poll_timeout(), Some(start + Duration::from_millis(150)));
//! ```
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

pub mod advertise;
pub mod message;
pub mod search;

pub use advertise::{
    answers, matches, notify, response, Advertised, Announcer, AnswerParams, RateLimiter,
    DEFAULT_MAX_AGE, MIN_NOTIFY_INTERVAL,
};
pub use message::{
    parse, EmitError, Header, Message, Notify, NotifyKind, ParseError, SearchRequest,
    SearchResponse, MAX_HEADERS, MAX_HEADER_LINE_LEN, MAX_MESSAGE_LEN, MX_MAX, MX_MIN,
};
pub use search::{Candidate, SearchConfig, Searcher, DEFAULT_SCHEDULE, MAX_CANDIDATES};

/// The IPv4 SSDP multicast group, 239.255.255.250 (UDA 2.0 §1, "SSDP multicast address").
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);

/// The SSDP UDP port, 1900 (UDA 2.0 §1); multicast searches and NOTIFYs go to this port.
pub const PORT: u16 = 1900;

/// Where multicast M-SEARCH and NOTIFY datagrams are sent: [`MULTICAST_V4`]:[`PORT`].
pub const MULTICAST_ENDPOINT_V4: SocketAddrV4 = SocketAddrV4::new(MULTICAST_V4, PORT);

/// The `HOST` header value of a multicast message over IPv4 (UDA 2.0 §1.2.2, §1.3.2).
pub const HOST_V4: &str = "239.255.255.250:1900";
