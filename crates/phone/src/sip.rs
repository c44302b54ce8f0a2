//! The SIP transport of the phone: one UDP socket on the LAN address and the SIP port, moving
//! datagrams between it and the pure cores of `sip-proto`:
//!
//! - [`Registration`]: REGISTER with the mapped public address in Via (`;rport`) and Contact
//!   (or the Snom style), one Call-ID per boot and a CSeq that counts up, digest auth, 423,
//!   refresh half-way, CRLF keepalives, the `received`/`rport` mismatch warning, and the
//!   unregister (`Expires: 0`) at shutdown. A new public address from the mapping task
//!   ([`Announce`]) re-registers at once, and so does a new mapping at the same address.
//! - [`uas::answer`] in a [`ServerTransaction`]: 200 OK to OPTIONS and MESSAGE, 405 to the rest.
//!
//! Without a port mapping the phone registers once with its LAN address, learns the address
//! the registrar saw from `received`/`rport` (RFC 3581 §4) and registers that one, kept open by
//! the keepalives: the `rport` fallback.
//!
//! Failures never stop the phone: an unresolvable registrar is looked up again with back-off,
//! and a refused or unanswered REGISTER (wrong password, 403, no answer) is retried by the
//! registration with back-off, each with one clear line in the log and on the status page.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_proto::register::{
    Event, FailureReason, RegisterConfig, Registration, RegistrationState, Warning,
};
use sip_proto::transaction::{response_destination, ServerTransaction, TimerConfig};
use sip_proto::{is_keepalive, parse, uas, Message, Random, SipHeaders, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::config::Settings;
use crate::log::unix_ms_now;
use crate::mapping::Announce;
use crate::status::Shared;

/// How long the unregister at shutdown may take.
pub const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(2);
/// Server transactions (OPTIONS/MESSAGE answered, absorbing retransmissions) kept at once.
pub const MAX_SERVER_TRANSACTIONS: usize = 256;
/// Deadline for resolving the registrar's name.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest MESSAGE text written to the log, characters.
pub const MAX_LOGGED_TEXT: usize = 200;
/// Random characters of the Call-ID.
pub const CALL_ID_LEN: usize = 16;

/// Random bytes from the kernel (`/dev/urandom`), as `sip-proto` asks for branch ids, tags and
/// cnonces that cannot be guessed.
#[derive(Debug)]
pub struct OsRandom {
    file: Option<File>,
    fallback: u64,
}

impl OsRandom {
    /// Opens `/dev/urandom` (a clock-seeded generator stands in should that fail).
    pub fn new() -> OsRandom {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        OsRandom {
            file: File::open("/dev/urandom").ok(),
            fallback: seed | 1,
        }
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        OsRandom::new()
    }
}

impl Random for OsRandom {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if let Some(file) = &mut self.file {
            if file.read_exact(dest).is_ok() {
                return;
            }
        }
        for byte in dest {
            // xorshift64*
            self.fallback ^= self.fallback >> 12;
            self.fallback ^= self.fallback << 25;
            self.fallback ^= self.fallback >> 27;
            *byte = (self.fallback.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

/// What the SIP task works with.
#[derive(Debug, Clone)]
pub struct SipContext {
    /// The checked configuration.
    pub settings: Arc<Settings>,
    /// The socket's address (LAN address, SIP port).
    pub local: SocketAddr,
    /// The status page's record.
    pub status: Shared,
    /// When the phone started (for the start-to-200 time).
    pub started: Instant,
}

/// The status page's words for a registration state.
pub fn state_name(state: RegistrationState) -> &'static str {
    match state {
        RegistrationState::Registering => "registering",
        RegistrationState::Registered => "registered",
        RegistrationState::WaitingToRetry => "waiting to retry",
        RegistrationState::Unregistering => "unregistering",
        RegistrationState::Closed => "unregistered",
    }
}

/// One clear sentence for a failed REGISTER, naming the status code where there is one.
pub fn describe_failure(reason: &FailureReason) -> String {
    match reason {
        FailureReason::AuthenticationFailed { .. } => format!(
            "REGISTER refused: {reason} (the registrar answered 401/407 again to our digest answer)"
        ),
        FailureReason::NoCredentials => {
            format!("REGISTER refused: {reason} (401/407: set password or password_file)")
        }
        FailureReason::Rejected { .. } | FailureReason::IntervalTooBrief { .. } => {
            format!("REGISTER refused: {reason}")
        }
        _ => format!("REGISTER failed: {reason}"),
    }
}

/// Printable text of at most [`MAX_LOGGED_TEXT`] characters (control characters escaped).
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(MAX_LOGGED_TEXT)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > MAX_LOGGED_TEXT {
        out.push('…');
    }
    out
}

/// Whole seconds, rounded (a retry due in 1.999 s is "in 2 s").
fn round_secs(d: Duration) -> u64 {
    (d.as_millis() as u64 + 500) / 1000
}

struct Agent {
    ctx: SipContext,
    socket: UdpSocket,
    random: OsRandom,
    call_id: String,
    registration: Option<Registration<OsRandom>>,
    server: Vec<ServerTransaction>,
    /// Answers sent without a transaction (INVITE's 405, overload).
    stateless: Vec<Transmit>,
    announce: Announce,
    /// The address the registrar saw, used without a mapping (rport fallback).
    learned: Option<SocketAddr>,
    /// When to resolve the registrar (again); `None`: gave up (configuration error).
    resolve_at: Option<Instant>,
    resolve_backoff: Option<Duration>,
    registered_once: bool,
}

/// Runs the phone's SIP side until `shutdown` turns true, then unregisters.
pub async fn run(
    ctx: SipContext,
    socket: UdpSocket,
    mut announce: watch::Receiver<Announce>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut random = OsRandom::new();
    let call_id = format!(
        "{}@{}",
        sip_proto::random::token(&mut random, CALL_ID_LEN),
        ctx.local.ip()
    );
    let mut agent = Agent {
        ctx,
        socket,
        random,
        call_id,
        registration: None,
        server: Vec::new(),
        stateless: Vec::new(),
        announce: announce.borrow_and_update().clone(),
        learned: None,
        resolve_at: Some(Instant::now()),
        resolve_backoff: None,
        registered_once: false,
    };
    agent.ctx.status.update(|s| {
        s.registration.state = "starting".into();
        s.registration.registrar = agent.ctx.settings.registrar.to_string();
    });
    let mut announce_open = true;
    let mut buf = vec![0u8; sip_proto::MAX_MESSAGE_LEN];
    loop {
        agent.ensure_registration().await;
        agent.flush().await;
        let wake = agent.poll_timeout();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            changed = announce.changed(), if announce_open => {
                if changed.is_ok() {
                    let new = announce.borrow_and_update().clone();
                    agent.on_announce(new);
                } else {
                    announce_open = false;
                }
            }
            received = agent.socket.recv_from(&mut buf) => match received {
                Ok((len, source)) => {
                    let datagram = buf.get(..len).unwrap_or_default().to_vec();
                    agent.on_datagram(&datagram, source);
                }
                Err(e) => {
                    // ICMP errors of earlier sends arrive here on some systems.
                    tracing::debug!(error = %e, "SIP receive error");
                }
            },
            _ = sleep => agent.on_timeout(Instant::now()),
        }
    }
    agent.unregister(&mut buf).await;
}

impl Agent {
    /// The address to announce: the mapping's, else the one the registrar saw.
    fn public(&self) -> Option<SocketAddr> {
        self.announce.public.or(self.learned)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let registration = self
            .registration
            .as_ref()
            .and_then(Registration::poll_timeout);
        let resolve = if self.registration.is_none() && self.announce.ready {
            self.resolve_at
        } else {
            None
        };
        self.server
            .iter()
            .filter_map(ServerTransaction::poll_timeout)
            .chain(registration)
            .chain(resolve)
            .min()
    }

    fn on_timeout(&mut self, now: Instant) {
        if let Some(registration) = &mut self.registration {
            registration.handle_timeout(now);
        }
        for txn in &mut self.server {
            txn.handle_timeout(now);
        }
        self.server.retain(|txn| !txn.is_terminated());
        self.drain_events();
    }

    fn on_announce(&mut self, new: Announce) {
        let old = std::mem::replace(&mut self.announce, new);
        if self.announce.public.is_some() {
            self.learned = None;
        }
        let public = self.public();
        let fresh_mapping =
            self.announce.generation != old.generation && self.announce.public.is_some();
        if let Some(registration) = &mut self.registration {
            let now = Instant::now();
            if registration.config().public != public {
                tracing::info!(
                    "SIP: public address now {}: registering again",
                    public.map_or_else(|| "none (no mapping)".into(), |p| p.to_string())
                );
                registration.set_public_address(now, public);
            } else if fresh_mapping {
                tracing::info!("SIP: ports mapped again: registering again");
                registration.register(now);
            }
        }
        self.drain_events();
    }

    /// Creates the registration once the first search is over, resolving the registrar.
    async fn ensure_registration(&mut self) {
        if self.registration.is_some() || !self.announce.ready {
            return;
        }
        let Some(at) = self.resolve_at else { return };
        if at > Instant::now() {
            return;
        }
        let settings = self.ctx.settings.clone();
        let target = settings.registrar.to_string();
        let resolved =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(target.clone())).await;
        let addr = match resolved {
            Ok(Ok(mut addrs)) => addrs.find(SocketAddr::is_ipv4),
            Ok(Err(e)) => {
                self.resolve_failed(&format!("cannot resolve the registrar {target}: {e}"));
                return;
            }
            Err(_) => {
                self.resolve_failed(&format!(
                    "cannot resolve the registrar {target}: no answer within {} s",
                    RESOLVE_TIMEOUT.as_secs()
                ));
                return;
            }
        };
        let Some(registrar) = addr else {
            self.resolve_failed(&format!("the registrar {target} has no IPv4 address"));
            return;
        };
        let mut config = RegisterConfig::new(
            settings.aor.clone(),
            registrar,
            self.ctx.local,
            self.call_id.clone(),
        );
        config.display_name.clone_from(&settings.display_name);
        config.public = self.public();
        config.contact_style = settings.contact_style;
        config.expires = settings.expires;
        config.keepalive = settings.keepalive;
        config.credentials.clone_from(&settings.credentials);
        config.user_agent = Some(settings.user_agent.clone());
        config.retry = Some(settings.retry);
        match Registration::new(Instant::now(), config, OsRandom::new()) {
            Ok(registration) => {
                tracing::info!(
                    "SIP: registering {} at {registrar} (Contact {})",
                    settings.aor,
                    registration.contact_uri()
                );
                self.registration = Some(registration);
                self.ctx
                    .status
                    .update(|s| s.registration.registrar = registrar.to_string());
            }
            Err(e) => {
                let message = format!("SIP: cannot build a REGISTER from the configuration: {e}");
                tracing::error!("{message}");
                self.resolve_at = None;
                self.ctx.status.update(|s| {
                    s.registration.state = "configuration error".into();
                    s.registration.last_error = Some(message);
                });
            }
        }
    }

    fn resolve_failed(&mut self, message: &str) {
        let retry = self.ctx.settings.retry;
        let delay = self.resolve_backoff.unwrap_or(retry.initial);
        self.resolve_backoff = Some((delay * 2).min(retry.max));
        self.resolve_at = Some(Instant::now() + delay);
        tracing::error!("SIP: {message}; trying again in {} s", delay.as_secs());
        self.ctx.status.update(|s| {
            s.registration.state = "waiting to retry".into();
            s.registration.failures += 1;
            s.registration.last_error = Some(message.to_owned());
            s.registration.next_retry_unix_ms =
                Some(unix_ms_now() + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        });
    }

    fn on_datagram(&mut self, datagram: &[u8], source: SocketAddr) {
        if is_keepalive(datagram) {
            tracing::trace!(%source, "CRLF keepalive answer");
            return;
        }
        self.ctx.status.record_message("received", source, datagram);
        let message = match parse(datagram) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(%source, error = %e, "unparsable SIP datagram dropped");
                return;
            }
        };
        let now = Instant::now();
        if message.is_request() {
            self.on_request(now, &message, source);
        } else if let Some(registration) = &mut self.registration {
            if !registration.handle_response(now, &message) {
                tracing::debug!(%source, "stray SIP response dropped");
            }
            self.drain_events();
        }
    }

    fn on_request(&mut self, now: Instant, request: &Message<'_>, source: SocketAddr) {
        if let Some(txn) = self.server.iter_mut().find(|t| t.matches(request)) {
            txn.handle_request(now, request);
            return;
        }
        let method = request.method().unwrap_or_default().to_owned();
        let Some(answer) = uas::answer(request, source, &mut self.random) else {
            return; // ACK
        };
        match method.as_str() {
            "MESSAGE" => tracing::info!(
                "SIP: MESSAGE from {} ({source}): {}",
                request
                    .header("From")
                    .map(|f| printable(f.as_bytes()))
                    .unwrap_or_default(),
                printable(request.body)
            ),
            _ => tracing::info!(
                "SIP: {} from {source} answered {} {}",
                printable(method.as_bytes()),
                answer.code(),
                answer.reason()
            ),
        }
        match ServerTransaction::new(request, source, TimerConfig::default()) {
            Ok(mut txn) if self.server.len() < MAX_SERVER_TRANSACTIONS => {
                txn.respond(now, &answer);
                self.server.push(txn);
            }
            _ => {
                // INVITE (no INVITE server transaction here) or too many at once: answer
                // statelessly (§8.2.6, §18.2.2).
                if let Ok(via) = request.top_via() {
                    let destination = response_destination(&via, source);
                    self.stateless.push(Transmit {
                        destination,
                        payload: answer.to_bytes(),
                    });
                }
            }
        }
    }

    fn drain_events(&mut self) {
        let Some(registration) = &mut self.registration else {
            return;
        };
        let mut learned = None;
        while let Some(event) = registration.poll_event() {
            match event {
                Event::Registered { expires } => {
                    let contact = registration.contact_uri().to_string();
                    let now_ms = unix_ms_now();
                    let first = !self.registered_once;
                    self.registered_once = true;
                    let after = self.ctx.started.elapsed();
                    if first {
                        tracing::info!(
                            "SIP: registered {} at {contact} for {} s ({} ms after start)",
                            self.ctx.settings.aor,
                            expires.as_secs(),
                            after.as_millis()
                        );
                    } else {
                        tracing::info!(
                            "SIP: registered {} at {contact} for {} s",
                            self.ctx.settings.aor,
                            expires.as_secs()
                        );
                    }
                    self.ctx.status.update(|s| {
                        let r = &mut s.registration;
                        r.contact = Some(contact);
                        r.expires_at_unix_ms =
                            Some(now_ms + u64::try_from(expires.as_millis()).unwrap_or(u64::MAX));
                        r.registrations += 1;
                        r.last_registered_unix_ms = Some(now_ms);
                        if first {
                            r.first_registered_after_ms =
                                Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
                        }
                        r.last_error = None;
                        r.next_retry_unix_ms = None;
                    });
                }
                Event::Failed { reason, retry_at } => {
                    let message = describe_failure(&reason);
                    let retry = retry_at.map(|at| at.saturating_duration_since(Instant::now()));
                    match retry {
                        Some(wait) if reason.is_permanent() => tracing::error!(
                            "SIP: {message}; trying again in {} s",
                            round_secs(wait)
                        ),
                        Some(wait) => {
                            tracing::warn!("SIP: {message}; trying again in {} s", round_secs(wait))
                        }
                        None => tracing::warn!("SIP: {message}"),
                    }
                    self.ctx.status.update(|s| {
                        let r = &mut s.registration;
                        r.failures += 1;
                        r.last_error = Some(message);
                        r.next_retry_unix_ms = retry.map(|w| {
                            unix_ms_now() + u64::try_from(w.as_millis()).unwrap_or(u64::MAX)
                        });
                    });
                }
                Event::Warning(Warning::AddressMismatch {
                    mapped,
                    seen_ip,
                    seen_port: Some(port),
                }) if self.announce.public.is_none() => {
                    let seen = SocketAddr::new(seen_ip, port);
                    tracing::info!(
                        "SIP: no port mapping: the registrar sees us at {seen} (rport, was {mapped}); registering that address, kept open by keepalives"
                    );
                    learned = Some(seen);
                }
                Event::Warning(warning) => tracing::warn!("SIP: {warning}"),
                Event::Unregistered => {
                    tracing::info!("SIP: unregistered {}", self.ctx.settings.aor)
                }
            }
        }
        if let Some(seen) = learned {
            self.learned = Some(seen);
            registration.set_public_address(Instant::now(), Some(seen));
        }
        let state = state_name(registration.state());
        let public = registration.config().public.map(|p| p.to_string());
        self.ctx.status.update(|s| {
            s.registration.state = state.into();
            if s.nat.mode != "upnp" {
                s.nat.public_address = public;
            }
        });
        // Events queued by set_public_address are reported on the next round.
    }

    /// Sends everything the cores have to send.
    async fn flush(&mut self) {
        let mut out: Vec<Transmit> = std::mem::take(&mut self.stateless);
        if let Some(registration) = &mut self.registration {
            while let Some(transmit) = registration.poll_transmit() {
                out.push(transmit);
            }
        }
        for txn in &mut self.server {
            while let Some(transmit) = txn.poll_transmit() {
                out.push(transmit);
            }
        }
        for transmit in out {
            let keepalive = transmit.payload == sip_proto::register::KEEPALIVE;
            match self
                .socket
                .send_to(&transmit.payload, transmit.destination)
                .await
            {
                Ok(_) if keepalive => {
                    tracing::trace!(to = %transmit.destination, "CRLF keepalive sent");
                }
                Ok(_) => {
                    self.ctx
                        .status
                        .record_message("sent", transmit.destination, &transmit.payload)
                }
                Err(e) => tracing::warn!("SIP: cannot send to {}: {e}", transmit.destination),
            }
        }
        self.drain_events();
    }

    /// Unregisters (bounded by [`UNREGISTER_TIMEOUT`]).
    async fn unregister(&mut self, buf: &mut [u8]) {
        let Some(registration) = &mut self.registration else {
            return;
        };
        let bound = registration.binding_expires_at().is_some()
            || registration.state() == RegistrationState::Registering;
        if !bound {
            return;
        }
        tracing::info!("SIP: unregistering (Expires: 0)");
        registration.unregister(Instant::now());
        let deadline = tokio::time::Instant::now() + UNREGISTER_TIMEOUT;
        loop {
            self.flush().await;
            if self
                .registration
                .as_ref()
                .is_none_or(Registration::is_closed)
            {
                return;
            }
            let wake = self.poll_timeout().map_or(deadline, |at| {
                tokio::time::Instant::from_std(at).min(deadline)
            });
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(
                            "SIP: no answer to the unregister within {} s; the binding ends with its expiry",
                            UNREGISTER_TIMEOUT.as_secs()
                        );
                        return;
                    }
                    self.on_timeout(Instant::now());
                }
                received = self.socket.recv_from(buf) => {
                    if let Ok((len, source)) = received {
                        let datagram = buf.get(..len).unwrap_or_default().to_vec();
                        self.on_datagram(&datagram, source);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_fills_and_differs() {
        let mut r = OsRandom::new();
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        r.fill_bytes(&mut a);
        r.fill_bytes(&mut b);
        assert_ne!(a, b);
        let mut fallback = OsRandom {
            file: None,
            fallback: 1,
        };
        fallback.fill_bytes(&mut a);
        fallback.fill_bytes(&mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn failures_name_the_status_code() {
        let auth = describe_failure(&FailureReason::AuthenticationFailed {
            realm: "example.net".into(),
        });
        assert!(
            auth.contains("401") && auth.contains("wrong username or password"),
            "{auth}"
        );
        let forbidden = describe_failure(&FailureReason::Rejected {
            code: 403,
            reason: "Forbidden".into(),
        });
        assert!(forbidden.contains("403 Forbidden"), "{forbidden}");
        let timeout = describe_failure(&FailureReason::Timeout);
        assert!(timeout.contains("unreachable"), "{timeout}");
        assert!(describe_failure(&FailureReason::NoCredentials).contains("password_file"));
    }

    #[test]
    fn logged_text_is_printable_and_bounded() {
        assert_eq!(printable(b"hi\r\nthere"), "hi\\r\\nthere");
        let long = printable("x".repeat(500).as_bytes());
        assert_eq!(long.chars().count(), MAX_LOGGED_TEXT + 1);
    }

    #[test]
    fn state_names() {
        assert_eq!(state_name(RegistrationState::Registered), "registered");
        assert_eq!(state_name(RegistrationState::Closed), "unregistered");
    }
}
