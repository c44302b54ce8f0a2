//! Non-INVITE transactions over UDP (RFC 3261 §17): the client side
//! ([`ClientTransaction`], §17.1.2) that retransmits a request until a final response or
//! timeout, and the server side ([`ServerTransaction`], §17.2.2) that absorbs retransmitted
//! requests and repeats its last response.
//!
//! Both are state machines driven by the caller: inputs take `now`
//! (`handle_response`/`handle_request`/`respond`, `handle_timeout`), outputs are drained with
//! `poll_transmit()`, `poll_timeout()` and `poll_event()`. Timers are a small table of
//! deadlines indexed by an enum, as in `quinn-proto`'s `timer.rs`.
//!
//! INVITE transactions (§17.1.1, §17.2.1) are not here: the registration client and the
//! OPTIONS/MESSAGE server need only non-INVITE ones.

mod client;
mod server;

use std::time::Duration;

use thiserror::Error;

pub use client::{ClientEvent, ClientState, ClientTransaction};
pub use server::{response_destination, ServerEvent, ServerState, ServerTransaction};

/// RFC 3261 §17.1.1.1 T1 default: the round-trip time estimate, 500 ms.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
/// RFC 3261 §17.1.2.2 T2 default: the cap of the non-INVITE retransmit interval, 4 s.
pub const DEFAULT_T2: Duration = Duration::from_secs(4);
/// RFC 3261 §17.1.2.2 T4 default: how long a message may live in the network, 5 s.
pub const DEFAULT_T4: Duration = Duration::from_secs(5);

/// The base timer values (RFC 3261 Table 4). Timers E, F, K and J derive from them.
///
/// Deadlines are `now + timer`: keep the values to seconds (the registration client refuses
/// more than [`MAX_TRANSACTION_TIMER`](crate::register::MAX_TRANSACTION_TIMER)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, [`DEFAULT_T1`].
    pub t1: Duration,
    /// T2, [`DEFAULT_T2`].
    pub t2: Duration,
    /// T4, [`DEFAULT_T4`].
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: DEFAULT_T1,
            t2: DEFAULT_T2,
            t4: DEFAULT_T4,
        }
    }
}

impl TimerConfig {
    /// Timer F (client) and Timer J (server over UDP): 64*T1, 32 s by default.
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Why a transaction could not be created from a message. These are the caller's mistakes
/// (or, for a server transaction, a request to drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The request has no top Via with a `branch` starting `z9hG4bK` (§8.1.1.7). A client
    /// transaction needs one to match responses (§17.1.3).
    #[error("request has no RFC 3261 branch in its top Via")]
    NoBranch,
    /// INVITE and ACK need the INVITE transaction (§17.1.1, §17.2.1), which is not here.
    #[error("INVITE and ACK do not use a non-INVITE transaction")]
    InviteMethod,
    /// The message is a response, or lacks the Via or CSeq a transaction is keyed on.
    #[error("not a request with readable Via and CSeq")]
    NotARequest,
}
