//! What the registration client reports: [`Event`]s, the [`FailureReason`] of a failed
//! REGISTER and the [`Warning`]s a runtime should log. `Display` gives one clear line each.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::digest::DigestError;

/// Something the runtime should know about, from [`Registration::poll_event`](super::Registration::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The registrar accepted the binding for `expires` (the interval granted to our own
    /// Contact); a refresh is scheduled half-way. Reported after every successful REGISTER,
    /// refreshes included.
    Registered {
        /// The granted interval.
        expires: Duration,
    },
    /// A REGISTER failed. With `retry_at`, another attempt is scheduled then; without, the
    /// caller decides (retry disabled, or the failure was the unregister at shutdown).
    Failed {
        /// Why.
        reason: FailureReason,
        /// When the next attempt goes out, if one is scheduled.
        retry_at: Option<Instant>,
    },
    /// Something works but looks wrong; log it.
    Warning(Warning),
    /// The unregister (Expires: 0) was accepted; the registration is closed.
    Unregistered,
}

/// Why a REGISTER failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// The registrar answered with a final error: 403 Forbidden, 404 Not Found (unknown user
    /// or domain), 503, ... The code and the registrar's own reason phrase.
    Rejected {
        /// The status code.
        code: u16,
        /// The reason phrase as received.
        reason: String,
    },
    /// The registrar refused our digest answer (a new challenge that is not `stale`, or the
    /// same nonce again): the username or password is wrong for this realm.
    AuthenticationFailed {
        /// The realm of the refusing challenge.
        realm: String,
    },
    /// The registrar asks for authentication and no credentials are configured.
    NoCredentials,
    /// The challenge cannot be answered (unknown algorithm or qop, not Digest, malformed).
    UnsupportedChallenge(DigestError),
    /// A 423 without a usable Min-Expires above what we asked (RFC 3261 §10.2.8), or 423s
    /// that kept coming.
    IntervalTooBrief {
        /// The Min-Expires received, if readable.
        min_expires: Option<u32>,
    },
    /// A 2xx that grants our Contact 0 seconds: the binding was not kept.
    ZeroExpiresGranted,
    /// No final response within Timer F, 64*T1 (RFC 3261 §17.1.2.2): the registrar is
    /// unreachable or its answers do not come back through the NAT.
    Timeout,
    /// The transport could not send the request (§17.1.4).
    TransportError,
}

impl FailureReason {
    /// Whether the failure is one a retry will not fix without a change of configuration or
    /// account (403, 404, refused or missing credentials, unsupported challenge). The
    /// registration still retries with back-off if configured; a runtime may show these
    /// differently or stop.
    pub fn is_permanent(&self) -> bool {
        match self {
            FailureReason::Rejected { code, .. } => matches!(code, 403 | 404 | 604),
            FailureReason::AuthenticationFailed { .. }
            | FailureReason::NoCredentials
            | FailureReason::UnsupportedChallenge(_) => true,
            FailureReason::IntervalTooBrief { .. }
            | FailureReason::ZeroExpiresGranted
            | FailureReason::Timeout
            | FailureReason::TransportError => false,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Rejected { code, reason } => match code {
                403 => write!(f, "registrar refused the registration: {code} {reason} (account not allowed to register)"),
                404 => write!(f, "registrar refused the registration: {code} {reason} (unknown user or domain)"),
                _ => write!(f, "registrar refused the registration: {code} {reason}"),
            },
            FailureReason::AuthenticationFailed { realm } => {
                write!(f, "authentication failed for realm {realm:?}: wrong username or password")
            }
            FailureReason::NoCredentials => {
                f.write_str("registrar asks for authentication but no credentials are configured")
            }
            FailureReason::UnsupportedChallenge(error) => {
                write!(f, "cannot answer the registrar's challenge: {error}")
            }
            FailureReason::IntervalTooBrief { min_expires: Some(min) } => {
                write!(f, "registrar wants a longer interval (423, Min-Expires {min}) and raising it did not help")
            }
            FailureReason::IntervalTooBrief { min_expires: None } => {
                f.write_str("registrar answered 423 Interval Too Brief without a usable Min-Expires")
            }
            FailureReason::ZeroExpiresGranted => {
                f.write_str("registrar answered 200 but granted our contact 0 seconds")
            }
            FailureReason::Timeout => f.write_str(
                "no answer from the registrar within 64*T1 (unreachable, or answers do not come back through the NAT)",
            ),
            FailureReason::TransportError => f.write_str("the REGISTER could not be sent"),
        }
    }
}

/// Something that works but looks wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The registrar saw our request come from another address than the port mapping says
    /// (the `received`/`rport` it put in our Via, RFC 3261 §18.2.1, RFC 3581 §4): the NAT
    /// does not send from the mapped port, so answers to the Contact or Via may not arrive.
    AddressMismatch {
        /// The public address we announce (mapping), or the local one without a mapping.
        mapped: SocketAddr,
        /// The source IP the registrar saw.
        seen_ip: IpAddr,
        /// The source port the registrar saw, if it filled in `rport`.
        seen_port: Option<u16>,
    },
    /// The 2xx does not list our Contact (the registrar may have rewritten it, for example a
    /// NAT fix-up); the expiry was taken from its Expires header or our request.
    ContactNotListed {
        /// The Contact URI we registered.
        contact: String,
        /// The interval assumed.
        expires: u32,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::AddressMismatch {
                mapped,
                seen_ip,
                seen_port,
            } => {
                let seen = match seen_port {
                    Some(port) => SocketAddr::new(*seen_ip, *port).to_string(),
                    None => format!("{seen_ip} (port not reported)"),
                };
                write!(
                    f,
                    "registrar sees our requests coming from {seen} but we announce {mapped}: \
                     the NAT does not use the mapped address for outgoing packets, so calls may \
                     not reach us"
                )
            }
            Warning::ContactNotListed { contact, expires } => write!(
                f,
                "registrar's 200 OK does not list our contact {contact} (rewritten by the \
                 registrar?); assuming {expires} s"
            ),
        }
    }
}
