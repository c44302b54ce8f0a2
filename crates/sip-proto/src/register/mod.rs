//! The registration client (RFC 3261 §10.2) of a phone behind a NAT with a port mapping.
//!
//! [`Registration`] builds REGISTERs with the public (mapped) address in Via, with `rport`
//! (RFC 3581), and in the Contact (or the seed's Snom style: private Contact plus
//! `?Route=sip:<public>:<port>`, see [`ContactStyle`]); one Call-ID per boot and a CSeq that
//! counts up (§10.2). It runs each REGISTER in a [`ClientTransaction`] and handles:
//!
//! - 401/407: answers the digest challenge (RFC 7616, [`crate::digest`]) once per nonce; a new
//!   challenge that is not `stale=true` right after our answer means the password is wrong.
//!   The challenge is kept and reused (nonce count + 1) for refreshes; a registrar that has
//!   expired the nonce answers `stale=true` or a fresh challenge, and we answer that.
//! - 423: raises Expires to Min-Expires and tries again at once (§10.2.8).
//! - 2xx: finds our own Contact among all the bindings listed (§10.2.4) and uses the expiry
//!   granted to it, else the Expires header, else what we asked.
//! - other final responses, timeouts: [`Event::Failed`] with the reason, retry with back-off.
//! - the `received`/`rport` the registrar wrote into our Via: compared with the address we
//!   announce, [`Warning::AddressMismatch`] when they differ.
//!
//! # Timing
//!
//! A binding is refreshed half-way through the granted interval (like DHCP's T1, RFC 2131
//! §4.4.5, and the port mapping keeper): a refresh that fails then has the other half, minutes
//! at least, for its retries before the binding lapses. While registered, a CRLF keepalive
//! (`CRLFCRLF`, RFC 5626 §3.5.1) goes to the registrar every
//! [`keepalive`](RegisterConfig::keepalive) to keep the NAT's flow warm. At shutdown,
//! [`unregister`](Registration::unregister) sends the same Contact with `Expires: 0`
//! (§10.2.2).

mod config;
mod event;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use config::{
    Backoff, ConfigError, ContactStyle, RegisterConfig, DEFAULT_EXPIRES, DEFAULT_KEEPALIVE,
    DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX, MAX_INTERVAL, MAX_TRANSACTION_TIMER,
};
pub use event::{Event, FailureReason, Warning};

use crate::digest::{authorize, Challenge, RequestInfo};
use crate::message::{
    parse, quote, Contacts, Message, Request, Response, SipHeaders, Uri, BRANCH_MAGIC_COOKIE,
};
use crate::random::{token, Random};
use crate::transaction::{ClientEvent, ClientTransaction};
use crate::Transmit;

/// The CRLF keepalive datagram (RFC 5626 §3.5.1 "ping").
pub const KEEPALIVE: &[u8] = b"\r\n\r\n";

/// Challenges answered in a row within one registration attempt before giving up: the first
/// challenge, a `stale` one, and one spare.
pub const MAX_CHALLENGES: u32 = 3;

/// 423 answers followed in a row before giving up (a registrar that raises Min-Expires each
/// time would otherwise keep us busy).
pub const MAX_INTERVAL_RAISES: u32 = 2;

/// Random characters after `z9hG4bK-` in a branch (12 base-36 characters, ~62 bits).
pub const BRANCH_RANDOM_LEN: usize = 12;

/// Random characters of the From tag (10 base-36 characters, ~52 bits; §19.3 asks for 32).
pub const TAG_LEN: usize = 10;

/// Random characters of a digest cnonce (16 base-36 characters, ~83 bits).
pub const CNONCE_LEN: usize = 16;

/// Max-Forwards of our requests (RFC 3261 §8.1.1.6).
const MAX_FORWARDS: &str = "70";

/// Where the registration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER (first, refresh, or retry after a challenge or 423) is in flight.
    Registering,
    /// The binding is confirmed; a refresh is scheduled.
    Registered,
    /// The last attempt failed; a retry may be scheduled.
    WaitingToRetry,
    /// The `Expires: 0` REGISTER is in flight.
    Unregistering,
    /// Unregistered (or gave up unregistering): nothing more will be sent.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Refresh = 0,
    Retry = 1,
    Keepalive = 2,
}

/// The digest answer a request carried, to judge the next challenge.
#[derive(Debug, Clone)]
struct AuthUsed {
    nonce: String,
    /// Computed from a challenge received in answer to the previous request (not from the
    /// cached one of an earlier registration).
    fresh: bool,
}

#[derive(Debug)]
struct InFlight {
    txn: ClientTransaction,
    purpose: Purpose,
    auth: Option<AuthUsed>,
}

#[derive(Debug, Clone)]
struct CachedAuth {
    challenge: Challenge,
    /// Answer with Proxy-Authorization (407) rather than Authorization (401).
    proxy: bool,
    nc: u32,
    fresh: bool,
}

/// The registration client. See the [module docs](self).
///
/// Drive it like every core of this crate: after [`new`](Self::new) and after every input
/// ([`handle_response`](Self::handle_response), [`handle_timeout`](Self::handle_timeout),
/// [`unregister`](Self::unregister), [`set_public_address`](Self::set_public_address)), drain
/// [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event) and read
/// [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Registration<R> {
    config: RegisterConfig,
    random: R,
    from_tag: String,
    next_cseq: u32,
    expires: u32,
    state: RegistrationState,
    current: Option<InFlight>,
    /// Completed transactions absorbing retransmitted responses until Timer K (§17.1.2.2).
    lingering: Vec<ClientTransaction>,
    auth: Option<CachedAuth>,
    challenges: u32,
    interval_raises: u32,
    binding_expires_at: Option<Instant>,
    timers: [Option<Instant>; 3],
    keepalive_due: bool,
    backoff: Option<Duration>,
    last_mismatch: Option<(IpAddr, Option<u16>)>,
    events: VecDeque<Event>,
}

impl<R: Random> Registration<R> {
    /// Checks the configuration, draws the From tag and sends the first REGISTER (due at once
    /// from `poll_transmit`).
    pub fn new(now: Instant, config: RegisterConfig, mut random: R) -> Result<Self, ConfigError> {
        config.validate()?;
        let from_tag = token(&mut random, TAG_LEN);
        let mut registration = Registration {
            next_cseq: config.first_cseq,
            expires: config.expires,
            config,
            random,
            from_tag,
            state: RegistrationState::Registering,
            current: None,
            lingering: Vec::new(),
            auth: None,
            challenges: 0,
            interval_raises: 0,
            binding_expires_at: None,
            timers: [None; 3],
            keepalive_due: false,
            backoff: None,
            last_mismatch: None,
            events: VecDeque::new(),
        };
        // Read back what we would send, so that a bad value fails here and not on the wire.
        let probe = registration.build(Purpose::Register, "z9hG4bK-probe", 1);
        let bytes = probe.to_bytes();
        let parsed = parse(&bytes).map_err(ConfigError::Unparsable)?;
        match parsed.contacts() {
            Ok(Contacts::Addresses(list)) if list.len() == 1 => {}
            Ok(_) => {
                return Err(ConfigError::Unparsable(
                    crate::ParseError::InvalidHeaderValue("Contact"),
                ))
            }
            Err(error) => return Err(ConfigError::Unparsable(error)),
        }
        registration.send(now, Purpose::Register);
        Ok(registration)
    }

    /// The state.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// Whether the registration is closed (after [`unregister`](Self::unregister)).
    pub fn is_closed(&self) -> bool {
        self.state == RegistrationState::Closed
    }

    /// When the last granted binding runs out, if one was granted.
    pub fn binding_expires_at(&self) -> Option<Instant> {
        self.binding_expires_at
    }

    /// The configuration (with `public` as last set).
    pub fn config(&self) -> &RegisterConfig {
        &self.config
    }

    /// The expiry asked for now (the configured one, or a 423's Min-Expires).
    pub fn requested_expires(&self) -> u32 {
        self.expires
    }

    /// The Contact URI we register.
    pub fn contact_uri(&self) -> Uri {
        let public = self.config.public;
        let (addr, headers) = match (self.config.contact_style, public) {
            (config::ContactStyle::Public, Some(public)) => (public, Vec::new()),
            (config::ContactStyle::SnomRoute, Some(public)) => (
                self.config.local,
                vec![("Route".to_owned(), format!("sip:{public}"))],
            ),
            (_, None) => (self.config.local, Vec::new()),
        };
        let mut uri = Uri::sip(
            self.config.aor.user.as_deref(),
            ip_host(addr.ip()),
            Some(addr.port()),
        );
        uri.params.0.clone_from(&self.config.contact_uri_params);
        uri.headers = headers;
        uri
    }

    /// Starts a registration attempt now: after a failure without automatic retry, or to
    /// refresh early. Ignored while closing or closed.
    pub fn register(&mut self, now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Unregistering | RegistrationState::Closed
        ) {
            return;
        }
        self.challenges = 0;
        self.interval_raises = 0;
        self.send(now, Purpose::Register);
    }

    /// Tells the registration the port mapping changed (new public address or port, or
    /// `None` when the mapping is gone): re-registers at once with the new Via and Contact.
    /// The old binding is left to expire at the registrar.
    pub fn set_public_address(&mut self, now: Instant, public: Option<SocketAddr>) {
        if self.config.public == public {
            return;
        }
        self.config.public = public;
        self.last_mismatch = None;
        self.register(now);
    }

    /// Unregisters (same Contact, `Expires: 0`, §10.2.2) for shutdown. An attempt in flight is
    /// abandoned (its REGISTER may have reached the registrar, so the unregister is sent in
    /// any case). [`Event::Unregistered`] (or [`Event::Failed`]) follows; then the
    /// registration is closed.
    pub fn unregister(&mut self, now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Unregistering | RegistrationState::Closed
        ) {
            return;
        }
        self.timers = [None; 3];
        self.keepalive_due = false;
        self.current = None;
        self.challenges = 0;
        self.send(now, Purpose::Unregister);
    }

    /// Feeds a parsed response. Returns whether it belonged to one of our transactions
    /// (otherwise the caller may log it as stray).
    pub fn handle_response(&mut self, now: Instant, response: &Message<'_>) -> bool {
        if let Some(current) = &mut self.current {
            if current.txn.matches(response) {
                current.txn.handle_response(now, response);
                self.drain_current(now);
                return true;
            }
        }
        for txn in &mut self.lingering {
            if txn.matches(response) {
                txn.handle_response(now, response);
                return true;
            }
        }
        false
    }

    /// Runs the timers due at `now`: retransmissions and timeouts, refresh, retry, keepalive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(current) = &mut self.current {
            current.txn.handle_timeout(now);
            self.drain_current(now);
        }
        for txn in &mut self.lingering {
            txn.handle_timeout(now);
        }
        self.lingering.retain(|txn| !txn.is_terminated());

        if self.due(Timer::Refresh, now) && self.state == RegistrationState::Registered {
            self.challenges = 0;
            self.interval_raises = 0;
            self.send(now, Purpose::Register);
        }
        if self.due(Timer::Retry, now) && self.state == RegistrationState::WaitingToRetry {
            self.register(now);
        }
        if self.due(Timer::Keepalive, now) && self.state == RegistrationState::Registered {
            self.keepalive_due = true;
            self.timers[Timer::Keepalive as usize] = self.config.keepalive.map(|k| now + k);
        }
    }

    /// The next datagram to send: a REGISTER (or its retransmission), else a keepalive.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(transmit) = self.current.as_mut().and_then(|c| c.txn.poll_transmit()) {
            return Some(transmit);
        }
        if std::mem::take(&mut self.keepalive_due) {
            return Some(Transmit {
                destination: self.config.registrar,
                payload: KEEPALIVE.to_vec(),
            });
        }
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transactions = self
            .current
            .iter()
            .map(|c| &c.txn)
            .chain(&self.lingering)
            .filter_map(ClientTransaction::poll_timeout);
        self.timers
            .iter()
            .flatten()
            .copied()
            .chain(transactions)
            .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
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

    fn close(&mut self) {
        self.state = RegistrationState::Closed;
        self.timers = [None; 3];
        self.keepalive_due = false;
        self.current = None;
        // Nothing will be sent or matched any more; late copies of answers are strays.
        self.lingering.clear();
    }

    /// The address in our Via and, in public style, our Contact.
    fn announced(&self) -> SocketAddr {
        self.config.public.unwrap_or(self.config.local)
    }

    /// Builds and starts a REGISTER for `purpose` with a new branch and the next CSeq
    /// (§8.1.3.5: a request resent after a challenge or 423 is a new request).
    fn send(&mut self, now: Instant, purpose: Purpose) {
        let branch = format!(
            "{BRANCH_MAGIC_COOKIE}-{}",
            token(&mut self.random, BRANCH_RANDOM_LEN)
        );
        let cseq = self.next_cseq;
        self.next_cseq = (self.next_cseq + 1).min((1 << 31) - 1);
        let mut request = self.build(purpose, &branch, cseq);
        let auth = self.add_authorization(&mut request);
        // A request still in flight is superseded and abandoned; its late answers no longer
        // match (a transaction with a final answer already moved to `lingering`).
        self.current = None;
        let Ok(txn) =
            ClientTransaction::new(now, &request, self.config.registrar, self.config.timers)
        else {
            // Unreachable: the request has a z9hG4bK branch and is not an INVITE.
            return;
        };
        self.current = Some(InFlight { txn, purpose, auth });
        self.state = match purpose {
            Purpose::Register => RegistrationState::Registering,
            Purpose::Unregister => RegistrationState::Unregistering,
        };
        self.timers[Timer::Retry as usize] = None;
        self.timers[Timer::Refresh as usize] = None;
    }

    /// The REGISTER without credentials, headers in the seed's Snom order.
    fn build(&self, purpose: Purpose, branch: &str, cseq: u32) -> Request {
        let config = &self.config;
        let mut request = Request::new_trusted("REGISTER", &config.registrar_uri.to_string());
        let name_addr = match &config.display_name {
            Some(name) => format!("{} <{}>", quote(name), config.aor),
            None => format!("<{}>", config.aor),
        };
        let expires = match purpose {
            Purpose::Register => self.expires,
            Purpose::Unregister => 0,
        };
        let contact_params: String = config
            .contact_params
            .iter()
            .map(ToString::to_string)
            .collect();
        request.push_trusted(
            "Via",
            &format!("SIP/2.0/UDP {};branch={branch};rport", self.announced()),
        );
        request.push_trusted("Max-Forwards", MAX_FORWARDS);
        request.push_trusted("From", &format!("{name_addr};tag={}", self.from_tag));
        request.push_trusted("To", &name_addr);
        request.push_trusted("Call-ID", &config.call_id);
        if let Some(agent) = &config.user_agent {
            request.push_trusted("User-Agent", agent);
        }
        request.push_trusted("CSeq", &format!("{cseq} REGISTER"));
        request.push_trusted(
            "Contact",
            &format!("<{}>{contact_params}", self.contact_uri()),
        );
        request.push_trusted("Expires", &expires.to_string());
        request
    }

    /// Adds (Proxy-)Authorization from the cached challenge, counting its nonce up.
    fn add_authorization(&mut self, request: &mut Request) -> Option<AuthUsed> {
        if self.auth.is_none() || self.config.credentials.is_none() {
            return None;
        }
        let cnonce = token(&mut self.random, CNONCE_LEN);
        let (Some(credentials), Some(auth)) =
            (self.config.credentials.as_ref(), self.auth.as_mut())
        else {
            return None;
        };
        auth.nc = auth.nc.wrapping_add(1);
        let info = RequestInfo {
            method: request.method(),
            uri: request.uri(),
            body: request.body(),
        };
        let value = authorize(&auth.challenge, credentials, info, auth.nc, &cnonce).to_string();
        let name = if auth.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        request.push_trusted(name, &value);
        Some(AuthUsed {
            nonce: auth.challenge.nonce.clone(),
            fresh: auth.fresh,
        })
    }

    fn drain_current(&mut self, now: Instant) {
        while let Some(event) = self.current.as_mut().and_then(|c| c.txn.poll_event()) {
            let Some(current) = self.current.take() else {
                return;
            };
            let InFlight { txn, purpose, auth } = current;
            match event {
                ClientEvent::Provisional(_) => {
                    self.current = Some(InFlight { txn, purpose, auth });
                }
                ClientEvent::Final(response) => {
                    self.lingering.push(txn);
                    self.on_final(now, purpose, auth, &response);
                    return;
                }
                ClientEvent::Timeout => {
                    return self.fail(now, purpose, FailureReason::Timeout, None)
                }
                ClientEvent::TransportError => {
                    return self.fail(now, purpose, FailureReason::TransportError, None)
                }
            }
        }
    }

    fn on_final(
        &mut self,
        now: Instant,
        purpose: Purpose,
        auth: Option<AuthUsed>,
        response: &Response,
    ) {
        self.check_addresses(response);
        match (response.code(), purpose) {
            (200..=299, Purpose::Register) => self.on_registered(now, response),
            (200..=299, Purpose::Unregister) => {
                self.binding_expires_at = None;
                self.close();
                self.events.push_back(Event::Unregistered);
            }
            (401 | 407, _) => self.on_challenge(now, purpose, auth, response),
            (423, Purpose::Register) => {
                let min = response.min_expires().ok().flatten();
                self.interval_raises += 1;
                match min {
                    Some(min)
                        if min > self.expires && self.interval_raises <= MAX_INTERVAL_RAISES =>
                    {
                        self.expires = min;
                        self.send(now, purpose);
                    }
                    _ => self.fail(
                        now,
                        purpose,
                        FailureReason::IntervalTooBrief { min_expires: min },
                        None,
                    ),
                }
            }
            (code, _) => {
                let reason = FailureReason::Rejected {
                    code,
                    reason: response.reason().to_owned(),
                };
                let retry_after = response.retry_after().ok().flatten();
                self.fail(now, purpose, reason, retry_after);
            }
        }
    }

    /// §10.2.4: the 2xx lists every current binding of the AOR; ours is the one whose URI is
    /// our Contact, and its `expires` is what we got.
    fn on_registered(&mut self, now: Instant, response: &Response) {
        let ours = self.contact_uri();
        let listed = match response.contacts() {
            Ok(Contacts::Addresses(list)) => list,
            _ => Vec::new(),
        };
        let mine = listed
            .iter()
            .find(|c| c.sip_uri().is_ok_and(|uri| ours.same_contact(&uri)));
        let fallback = response.expires().ok().flatten().unwrap_or(self.expires);
        let granted = match mine {
            Some(contact) => contact.expires().unwrap_or(fallback),
            None => {
                self.events
                    .push_back(Event::Warning(Warning::ContactNotListed {
                        contact: ours.to_string(),
                        expires: fallback,
                    }));
                fallback
            }
        };
        if granted == 0 {
            return self.fail(
                now,
                Purpose::Register,
                FailureReason::ZeroExpiresGranted,
                None,
            );
        }
        let expires = Duration::from_secs(u64::from(granted));
        self.state = RegistrationState::Registered;
        self.binding_expires_at = Some(now + expires);
        self.timers[Timer::Refresh as usize] = Some(now + expires / 2);
        self.timers[Timer::Retry as usize] = None;
        self.timers[Timer::Keepalive as usize] = self.config.keepalive.map(|k| now + k);
        self.backoff = None;
        self.challenges = 0;
        self.interval_raises = 0;
        if let Some(auth) = &mut self.auth {
            auth.fresh = false;
        }
        self.events.push_back(Event::Registered { expires });
    }

    /// RFC 3261 §22.2 (401, WWW-Authenticate) and §22.3 (407, Proxy-Authenticate).
    fn on_challenge(
        &mut self,
        now: Instant,
        purpose: Purpose,
        used: Option<AuthUsed>,
        response: &Response,
    ) {
        if self.config.credentials.is_none() {
            return self.fail(now, purpose, FailureReason::NoCredentials, None);
        }
        let proxy = response.code() == 407;
        let challenge = if proxy {
            Challenge::select(response.proxy_authenticate())
        } else {
            Challenge::select(response.www_authenticate())
        };
        let challenge = match challenge {
            Ok(challenge) => challenge,
            Err(error) => {
                return self.fail(
                    now,
                    purpose,
                    FailureReason::UnsupportedChallenge(error),
                    None,
                )
            }
        };
        self.challenges += 1;
        // Our answer was refused if the registrar challenges again without `stale` right after
        // an answer to a fresh challenge, or re-sends the very nonce we answered (RFC 7616
        // §3.3: stale=true means the nonce, not the password, was the problem).
        let refused = used
            .is_some_and(|used| !challenge.stale && (used.fresh || used.nonce == challenge.nonce));
        if refused || self.challenges > MAX_CHALLENGES {
            let realm = challenge.realm;
            return self.fail(
                now,
                purpose,
                FailureReason::AuthenticationFailed { realm },
                None,
            );
        }
        self.auth = Some(CachedAuth {
            challenge,
            proxy,
            nc: 0,
            fresh: true,
        });
        self.send(now, purpose);
    }

    fn fail(
        &mut self,
        now: Instant,
        purpose: Purpose,
        reason: FailureReason,
        retry_after: Option<u32>,
    ) {
        if purpose == Purpose::Unregister {
            self.close();
            self.events.push_back(Event::Failed {
                reason,
                retry_at: None,
            });
            return;
        }
        self.state = RegistrationState::WaitingToRetry;
        self.timers = [None; 3];
        self.keepalive_due = false;
        self.challenges = 0;
        self.interval_raises = 0;
        if let Some(auth) = &mut self.auth {
            // The retry answers the cached challenge as a stale one: a plain new challenge
            // then is answered once more before counting as a refusal.
            auth.fresh = false;
        }
        let retry_at = self.config.retry.map(|backoff| {
            let base = self.backoff.unwrap_or(backoff.initial);
            self.backoff = Some((base * 2).min(backoff.max));
            let asked = Duration::from_secs(u64::from(retry_after.unwrap_or(0)));
            now + base.max(asked.min(backoff.max))
        });
        self.timers[Timer::Retry as usize] = retry_at;
        self.events.push_back(Event::Failed { reason, retry_at });
    }

    /// RFC 3581 §4 / RFC 3261 §18.2.1: the registrar wrote the source it saw into our Via.
    fn check_addresses(&mut self, response: &Response) {
        let Ok(via) = response.top_via() else {
            return;
        };
        let announced = self.announced();
        let seen_ip = via.received().unwrap_or(announced.ip());
        let seen_port = via.rport().flatten();
        let differs = seen_ip != announced.ip() || seen_port.is_some_and(|p| p != announced.port());
        if !differs {
            self.last_mismatch = None;
            return;
        }
        // Once per distinct observation, not on every refresh.
        if self.last_mismatch != Some((seen_ip, seen_port)) {
            self.last_mismatch = Some((seen_ip, seen_port));
            self.events
                .push_back(Event::Warning(Warning::AddressMismatch {
                    mapped: announced,
                    seen_ip,
                    seen_port,
                }));
        }
    }
}

/// An IP as a URI host: IPv6 in brackets (RFC 3261 §25.1 IPv6reference).
fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
