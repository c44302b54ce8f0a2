//! The server non-INVITE transaction (RFC 3261 §17.2.2, Figure 8) over UDP, with request
//! matching (§17.2.3) and the response address of §18.2.2 / RFC 3581 §4.
//!
//! ```text
//!  request received ─▶ Trying ──1xx sent──▶ Proceeding ──200-699 sent──▶ Completed
//!                        └──────────200-699 sent──────────────────────────▲     │
//!                                                       Timer J (64*T1) ───────┘─▶ Terminated
//! ```
//!
//! A retransmitted request is absorbed in Trying, answered with the last provisional in
//! Proceeding and with the final response in Completed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::{TimerConfig, TransactionError};
use crate::message::{Message, Response, SipHeaders, Via, BRANCH_MAGIC_COOKIE};
use crate::{Transmit, DEFAULT_PORT};

/// Where a server transaction is (§17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// The request went to the TU; nothing sent yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// The final response was sent; repeating it to retransmitted requests until Timer J.
    Completed,
    /// Done; the transaction can be dropped.
    Terminated,
}

/// What a server transaction tells its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer J fired (or the transport failed): the transaction is over.
    Terminated,
}

/// The key of §17.2.3: branch, sent-by and method when the branch has the magic cookie;
/// otherwise (an RFC 2543 client) the fields that identify the request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    Rfc2543 {
        request_uri: String,
        from_tag: Option<String>,
        call_id: String,
        cseq: String,
        top_via: String,
    },
}

impl Key {
    fn of(request: &Message<'_>) -> Option<Key> {
        let method = request.method()?;
        let via = request.top_via().ok()?;
        // §17.2.3: an ACK for a non-2xx INVITE response matches the INVITE transaction; a
        // non-INVITE server never sees INVITE, so ACK is keyed as itself.
        Some(
            match via.branch().filter(|b| b.starts_with(BRANCH_MAGIC_COOKIE)) {
                Some(branch) => Key::Rfc3261 {
                    branch: branch.to_owned(),
                    sent_by: via.sent_by().to_ascii_lowercase(),
                    method: method.to_owned(),
                },
                None => Key::Rfc2543 {
                    request_uri: match request.start {
                        crate::StartLine::Request { uri, .. } => uri.to_owned(),
                        crate::StartLine::Response { .. } => return None,
                    },
                    from_tag: request.from().ok()?.tag().map(str::to_owned),
                    call_id: request.call_id().ok()?.to_owned(),
                    cseq: request.cseq().ok()?.to_string(),
                    top_via: via.to_string(),
                },
            },
        )
    }
}

/// Where responses to a request go over UDP: the source IP of the request (§18.2.2 sends to
/// `received`, which §18.2.1 sets to the source IP whenever it differs from sent-by), and the
/// source port if the client asked with `rport` (RFC 3581 §4), else the sent-by port or 5060.
pub fn response_destination(top_via: &Via, source: SocketAddr) -> SocketAddr {
    let port = match top_via.rport() {
        Some(_) => source.port(),
        None => top_via.port.unwrap_or(DEFAULT_PORT),
    };
    SocketAddr::new(source.ip(), port)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Leave Completed.
    J = 0,
}

/// A server non-INVITE transaction: answers one request and its retransmissions.
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    state: ServerState,
    config: TimerConfig,
    key: Key,
    destination: SocketAddr,
    last_response: Option<Vec<u8>>,
    timers: [Option<Instant>; 1],
    transmit_pending: bool,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// Creates the transaction for a request that matched no existing one (§17.2.3); the TU
    /// then answers with [`respond`](Self::respond). `source` is where the datagram came from.
    pub fn new(
        request: &Message<'_>,
        source: SocketAddr,
        config: TimerConfig,
    ) -> Result<ServerTransaction, TransactionError> {
        if matches!(request.method(), Some("INVITE" | "ACK")) {
            return Err(TransactionError::InviteMethod);
        }
        let key = Key::of(request).ok_or(TransactionError::NotARequest)?;
        let via = request
            .top_via()
            .map_err(|_| TransactionError::NotARequest)?;
        Ok(ServerTransaction {
            state: ServerState::Trying,
            config,
            key,
            destination: response_destination(&via, source),
            last_response: None,
            timers: [None],
            transmit_pending: false,
            events: VecDeque::new(),
        })
    }

    /// The state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// Whether the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// Where responses go.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// Whether `request` is this transaction's request (or a retransmission of it), §17.2.3.
    pub fn matches(&self, request: &Message<'_>) -> bool {
        Key::of(request).is_some_and(|key| key == self.key)
    }

    /// Feeds a retransmission of the request (one that [`matches`](Self::matches)): the last
    /// response, if any, is sent again.
    pub fn handle_request(&mut self, _now: Instant, request: &Message<'_>) {
        if !self.matches(request) {
            return;
        }
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            self.transmit_pending = self.last_response.is_some();
        }
    }

    /// Sends a response from the TU. A provisional one moves Trying to Proceeding; a final one
    /// moves to Completed and starts Timer J (64*T1 over UDP). Ignored once Completed: the
    /// final response is the only one (§17.2.2).
    pub fn respond(&mut self, now: Instant, response: &Response) {
        if matches!(self.state, ServerState::Completed | ServerState::Terminated) {
            return;
        }
        self.last_response = Some(response.to_bytes());
        self.transmit_pending = true;
        if response.code() < 200 {
            self.state = ServerState::Proceeding;
        } else {
            self.state = ServerState::Completed;
            self.timers[Timer::J as usize] = Some(now + self.config.timeout());
        }
    }

    /// Reports that sending failed (§17.2.4): the transaction ends.
    pub fn handle_transport_error(&mut self) {
        if self.state != ServerState::Terminated {
            self.terminate();
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let slot = &mut self.timers[Timer::J as usize];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            self.terminate();
        }
    }

    /// The response, when it is due (first sending or repeated for a retransmitted request).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !std::mem::take(&mut self.transmit_pending) {
            return None;
        }
        Some(Transmit {
            destination: self.destination,
            payload: self.last_response.clone()?,
        })
    }

    /// The earliest pending timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn terminate(&mut self) {
        self.state = ServerState::Terminated;
        self.timers = [None];
        self.transmit_pending = false;
        self.events.push_back(ServerEvent::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::parse;

    const MESSAGE: &str = "MESSAGE sip:km@203.0.113.1:60123 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-m1;rport\r\n\
        From: <sip:bob@203.0.113.10>;tag=b1\r\nTo: <sip:km@snomag.de>\r\n\
        Call-ID: m-1\r\nCSeq: 5 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";

    fn ok() -> Response {
        Response::new(200, "OK").unwrap()
    }

    #[test]
    fn final_response_is_repeated_until_timer_j() {
        let t0 = Instant::now();
        let request = parse(MESSAGE.as_bytes()).unwrap();
        let source: SocketAddr = "203.0.113.10:40000".parse().unwrap();
        let mut txn = ServerTransaction::new(&request, source, TimerConfig::default()).unwrap();
        // rport: the answer goes to the source port, not the sent-by port.
        assert_eq!(txn.destination(), source);
        // Trying: a retransmission is absorbed, nothing to send yet.
        txn.handle_request(t0, &request);
        assert!(txn.poll_transmit().is_none());

        txn.respond(t0, &ok());
        assert_eq!(txn.state(), ServerState::Completed);
        assert_eq!(txn.poll_transmit().unwrap().destination, source);
        assert_eq!(txn.poll_timeout(), Some(t0 + Duration::from_secs(32)));

        txn.handle_request(t0 + Duration::from_secs(1), &request);
        let again = txn.poll_transmit().unwrap();
        assert!(again.payload.starts_with(b"SIP/2.0 200 OK\r\n"));
        // A second final response from the TU is ignored.
        txn.respond(t0, &Response::new(500, "Oops").unwrap());
        txn.handle_request(t0 + Duration::from_secs(2), &request);
        assert_eq!(txn.poll_transmit().unwrap().payload, again.payload);

        txn.handle_timeout(t0 + Duration::from_millis(31_999));
        assert_eq!(txn.state(), ServerState::Completed);
        txn.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(txn.poll_event(), Some(ServerEvent::Terminated));
        assert!(txn.is_terminated());
    }

    #[test]
    fn provisional_is_repeated_in_proceeding() {
        let t0 = Instant::now();
        let request = parse(MESSAGE.as_bytes()).unwrap();
        let source = "203.0.113.10:5060".parse().unwrap();
        let mut txn = ServerTransaction::new(&request, source, TimerConfig::default()).unwrap();
        txn.respond(t0, &Response::new(100, "Trying").unwrap());
        assert_eq!(txn.state(), ServerState::Proceeding);
        assert!(txn.poll_transmit().is_some());
        txn.handle_request(t0, &request);
        assert!(txn
            .poll_transmit()
            .unwrap()
            .payload
            .starts_with(b"SIP/2.0 100"));
        assert_eq!(txn.poll_timeout(), None);
    }

    #[test]
    fn matching_rules() {
        let request = parse(MESSAGE.as_bytes()).unwrap();
        let source = "203.0.113.10:5060".parse().unwrap();
        let txn = ServerTransaction::new(&request, source, TimerConfig::default()).unwrap();
        let other_branch = MESSAGE.replace("z9hG4bK-m1", "z9hG4bK-m2");
        assert!(!txn.matches(&parse(other_branch.as_bytes()).unwrap()));
        let other_sender = MESSAGE.replace("203.0.113.10:5060;", "203.0.113.11:5060;");
        assert!(!txn.matches(&parse(other_sender.as_bytes()).unwrap()));

        // No magic cookie: matched on Request-URI, tags, Call-ID, CSeq and Via (§17.2.3).
        let old = MESSAGE.replace("z9hG4bK-m1", "1");
        let old_request = parse(old.as_bytes()).unwrap();
        let old_txn = ServerTransaction::new(&old_request, source, TimerConfig::default()).unwrap();
        assert!(old_txn.matches(&old_request));
        assert!(!old_txn.matches(&request));
        let other_cseq = old.replace("5 MESSAGE", "6 MESSAGE");
        assert!(!old_txn.matches(&parse(other_cseq.as_bytes()).unwrap()));
    }

    #[test]
    fn response_destination_without_rport_uses_sent_by_port() {
        let via = Via::parse("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1").unwrap();
        let source = "198.51.100.1:40000".parse().unwrap();
        assert_eq!(
            response_destination(&via, source),
            "198.51.100.1:5070".parse().unwrap()
        );
        let no_port = Via::parse("SIP/2.0/UDP host.example;branch=z9hG4bK1").unwrap();
        assert_eq!(response_destination(&no_port, source).port(), 5060);
    }
}
