//! The client non-INVITE transaction (RFC 3261 §17.1.2, Figure 6) over UDP.
//!
//! ```text
//!            request sent, Timer E = T1, Timer F = 64*T1
//!  Trying ──1xx──▶ Proceeding ──200-699──▶ Completed ──Timer K (T4)──▶ Terminated
//!     └──────────200-699──────────────────────▲
//!  Trying/Proceeding ──Timer F──▶ Terminated (timeout reported to the TU)
//! ```
//!
//! Timer E retransmits: in Trying at T1, 2*T1, 4*T1 ... capped at T2; in Proceeding every T2.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::{TimerConfig, TransactionError};
use crate::message::{Message, Request, Response, SipHeaders, BRANCH_MAGIC_COOKIE};
use crate::Transmit;

/// Where a client transaction is (§17.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, nothing heard yet; retransmitting with back-off.
    Trying,
    /// A provisional response arrived; retransmitting every T2.
    Proceeding,
    /// A final response arrived; absorbing its retransmissions until Timer K.
    Completed,
    /// Done; the transaction can be dropped.
    Terminated,
}

/// What a client transaction tells its user (the TU, §17.1.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx response.
    Provisional(Response),
    /// The final (200-699) response; retransmissions of it are absorbed.
    Final(Response),
    /// Timer F fired without a final response (§17.1.2.2): treat as 408 (§8.1.3.1).
    Timeout,
    /// The transport reported a failure (§17.1.4): treat as 503 (§8.1.3.1).
    TransportError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Retransmit the request.
    E = 0,
    /// Give up.
    F = 1,
    /// Leave Completed.
    K = 2,
}

/// A client non-INVITE transaction: one request sent reliably over UDP.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    state: ClientState,
    config: TimerConfig,
    branch: String,
    method: String,
    request: Vec<u8>,
    destination: SocketAddr,
    /// The current Timer E interval (§17.1.2.2).
    interval: std::time::Duration,
    timers: [Option<Instant>; 3],
    transmit_pending: bool,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts a transaction: the request is due at once (`poll_transmit`), Timer E is set to
    /// T1 and Timer F to 64*T1.
    ///
    /// The request must carry a top Via with an RFC 3261 branch and a CSeq, and must not be an
    /// INVITE or ACK.
    pub fn new(
        now: Instant,
        request: &Request,
        destination: SocketAddr,
        config: TimerConfig,
    ) -> Result<ClientTransaction, TransactionError> {
        if matches!(request.method(), "INVITE" | "ACK") {
            return Err(TransactionError::InviteMethod);
        }
        let via = request.top_via().map_err(|_| TransactionError::NoBranch)?;
        let branch = via
            .branch()
            .filter(|b| b.starts_with(BRANCH_MAGIC_COOKIE))
            .ok_or(TransactionError::NoBranch)?
            .to_owned();
        let mut timers = [None; 3];
        timers[Timer::E as usize] = Some(now + config.t1);
        timers[Timer::F as usize] = Some(now + config.timeout());
        Ok(ClientTransaction {
            state: ClientState::Trying,
            config,
            branch,
            method: request.method().to_owned(),
            request: request.to_bytes(),
            destination,
            interval: config.t1,
            timers,
            transmit_pending: true,
            events: VecDeque::new(),
        })
    }

    /// The branch that identifies this transaction.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Whether the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// Whether `response` belongs to this transaction (§17.1.3): same top-Via branch and
    /// same CSeq method.
    pub fn matches(&self, response: &Message<'_>) -> bool {
        !response.is_request()
            && response
                .top_via()
                .is_ok_and(|via| via.branch() == Some(self.branch.as_str()))
            && response.cseq().is_ok_and(|cseq| cseq.method == self.method)
    }

    /// Feeds a received response. Responses that do not [`match`](Self::matches) are ignored.
    pub fn handle_response(&mut self, now: Instant, response: &Message<'_>) {
        if !self.matches(response) {
            return;
        }
        let (Some(code), Some(owned)) = (response.status(), Response::from_message(response))
        else {
            return;
        };
        match (self.state, code) {
            (ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                self.state = ClientState::Proceeding;
                self.events.push_back(ClientEvent::Provisional(owned));
            }
            (ClientState::Trying | ClientState::Proceeding, _) => {
                // §17.1.2.2: to Completed; over UDP Timer K = T4 absorbs retransmissions.
                self.state = ClientState::Completed;
                self.timers = [None; 3];
                self.timers[Timer::K as usize] = Some(now + self.config.t4);
                self.events.push_back(ClientEvent::Final(owned));
            }
            // Completed: retransmitted finals are absorbed; Terminated: nothing to do.
            (ClientState::Completed | ClientState::Terminated, _) => {}
        }
    }

    /// Reports that sending failed (ICMP unreachable, no route): the transaction ends and the
    /// TU gets [`ClientEvent::TransportError`] (§17.1.4).
    pub fn handle_transport_error(&mut self) {
        if matches!(self.state, ClientState::Trying | ClientState::Proceeding) {
            self.terminate();
            self.events.push_back(ClientEvent::TransportError);
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Timer F first: at a tie the transaction gives up rather than sending once more.
        if self.due(Timer::F, now) {
            self.terminate();
            self.events.push_back(ClientEvent::Timeout);
            return;
        }
        if self.due(Timer::K, now) {
            self.terminate();
            return;
        }
        if self.due(Timer::E, now) {
            self.interval = match self.state {
                // §17.1.2.2: "MIN(2*T1, T2)", then doubling up to T2.
                ClientState::Trying => (self.interval * 2).min(self.config.t2),
                // §17.1.2.2: in Proceeding, Timer E is reset to T2.
                _ => self.config.t2,
            };
            self.timers[Timer::E as usize] = Some(now + self.interval);
            self.transmit_pending = true;
        }
    }

    /// The request, when it is due (first sending or a retransmission).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !std::mem::take(&mut self.transmit_pending) {
            return None;
        }
        Some(Transmit {
            destination: self.destination,
            payload: self.request.clone(),
        })
    }

    /// The earliest pending timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn due(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.timers[timer as usize];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            true
        } else {
            false
        }
    }

    fn terminate(&mut self) {
        self.state = ClientState::Terminated;
        self.timers = [None; 3];
        self.transmit_pending = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::parse;

    const OPTIONS: &str = "OPTIONS sip:b@192.0.2.9 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-abc;rport\r\n\
        Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=t\r\nTo: <sip:b@192.0.2.9>\r\n\
        Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn response(code: u16, branch: &str, method: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport=5060\r\n\
             From: <sip:a@192.0.2.1>;tag=t\r\nTo: <sip:b@192.0.2.9>;tag=u\r\nCall-ID: c1\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn start(t0: Instant) -> ClientTransaction {
        let request = Request::from_message(&parse(OPTIONS.as_bytes()).unwrap()).unwrap();
        ClientTransaction::new(
            t0,
            &request,
            "192.0.2.9:5060".parse().unwrap(),
            TimerConfig::default(),
        )
        .unwrap()
    }

    /// Drives the transaction with no answer and returns the offsets (ms) of every sending.
    #[test]
    fn timer_e_backs_off_to_t2_and_timer_f_gives_up_at_32s() {
        let t0 = Instant::now();
        let mut txn = start(t0);
        let mut sent = Vec::new();
        let mut now = t0;
        loop {
            while txn.poll_transmit().is_some() {
                sent.push((now - t0).as_millis());
            }
            let Some(at) = txn.poll_timeout() else { break };
            now = at;
            txn.handle_timeout(now);
        }
        assert_eq!(
            sent,
            [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(now - t0, Duration::from_secs(32));
        assert_eq!(txn.poll_event(), Some(ClientEvent::Timeout));
        assert!(txn.is_terminated());
    }

    #[test]
    fn provisional_then_final_then_timer_k() {
        let t0 = Instant::now();
        let mut txn = start(t0);
        assert!(txn.poll_transmit().is_some());
        txn.handle_timeout(t0 + Duration::from_millis(500));
        assert!(txn.poll_transmit().is_some());

        let trying = response(100, "z9hG4bK-abc", "OPTIONS");
        txn.handle_response(t0 + Duration::from_millis(600), &parse(&trying).unwrap());
        assert_eq!(txn.state(), ClientState::Proceeding);
        assert!(matches!(txn.poll_event(), Some(ClientEvent::Provisional(r)) if r.code() == 100));
        // Proceeding: Timer E was set for 1500 ms (2*T1) and is T2 from then on.
        txn.handle_timeout(t0 + Duration::from_millis(1500));
        assert!(txn.poll_transmit().is_some());
        assert_eq!(txn.poll_timeout(), Some(t0 + Duration::from_millis(5500)));

        // Foreign responses are ignored: another branch, another method.
        for other in [
            response(200, "z9hG4bK-x", "OPTIONS"),
            response(200, "z9hG4bK-abc", "MESSAGE"),
        ] {
            txn.handle_response(t0 + Duration::from_secs(2), &parse(&other).unwrap());
        }
        assert_eq!(txn.poll_event(), None);

        let ok = response(200, "z9hG4bK-abc", "OPTIONS");
        let at = t0 + Duration::from_secs(2);
        txn.handle_response(at, &parse(&ok).unwrap());
        assert!(matches!(txn.poll_event(), Some(ClientEvent::Final(r)) if r.code() == 200));
        assert_eq!(txn.state(), ClientState::Completed);
        assert_eq!(txn.poll_timeout(), Some(at + Duration::from_secs(5)));
        // A retransmitted 200 is absorbed, no more sending.
        txn.handle_response(at + Duration::from_secs(1), &parse(&ok).unwrap());
        assert_eq!(txn.poll_event(), None);
        assert!(txn.poll_transmit().is_none());
        txn.handle_timeout(at + Duration::from_secs(5));
        assert!(txn.is_terminated());
        assert_eq!(txn.poll_timeout(), None);
    }

    #[test]
    fn transport_error_and_construction_errors() {
        let t0 = Instant::now();
        let mut txn = start(t0);
        txn.handle_transport_error();
        assert_eq!(txn.poll_event(), Some(ClientEvent::TransportError));
        assert!(txn.poll_transmit().is_none());

        let dest = "192.0.2.9:5060".parse().unwrap();
        let old_branch = OPTIONS.replace("z9hG4bK-abc", "1234");
        let request = Request::from_message(&parse(old_branch.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            ClientTransaction::new(t0, &request, dest, TimerConfig::default()).err(),
            Some(TransactionError::NoBranch)
        );
        let invite = OPTIONS.replace("OPTIONS", "INVITE");
        let request = Request::from_message(&parse(invite.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            ClientTransaction::new(t0, &request, dest, TimerConfig::default()).err(),
            Some(TransactionError::InviteMethod)
        );
    }
}
