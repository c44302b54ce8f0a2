//! What the registration client is told: the account, where the registrar is, the addresses
//! the port mapping gave us, how the Contact is written, timings and credentials, each with a
//! documented default.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::digest::Credentials;
use crate::message::{Param, ParseError, Scheme, Uri};
use crate::transaction::TimerConfig;

/// The registration interval asked for by default, in seconds (RFC 3261 §10.2.1.1 suggests
/// 3600 when the UA has no preference; the seed's Snom asks for 3600 too).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// The CRLF keepalive interval by default: below the 30 s after which many home NATs forget a
/// quiet UDP flow (RFC 4787 REQ-5 asks for 2 minutes, not every box complies).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(25);

/// The first retry delay after a failed registration.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(30);

/// The longest retry delay: the doubling stops here.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(1800);

/// The largest T1, T2 or T4 accepted (RFC 3261 Table 4 values are below 5 s; 64*T1 must stay a
/// sane deadline).
pub const MAX_TRANSACTION_TIMER: Duration = Duration::from_secs(60);

/// The largest keepalive interval or retry delay accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// How the Contact is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContactStyle {
    /// `<sip:user@<public ip>:<mapped port>>`: the address the port mapping opened, so the
    /// registrar (and anyone it gives the binding to) reaches us through the NAT directly.
    #[default]
    Public,
    /// The seed's Snom style: the private address with the way in as a URI header,
    /// `<sip:user@<local ip>:<local port>?Route=sip:<public ip>:<mapped port>>`. Only a proxy
    /// that routes by that header reaches us (kamailio stores it but does not, see PEERS.md).
    SnomRoute,
}

/// Retry timing after a failure: `initial`, doubling up to `max`, reset by a success. A
/// `Retry-After` from the registrar (RFC 3261 §20.33) lengthens a delay, never shortens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, [`DEFAULT_RETRY_INITIAL`].
    pub initial: Duration,
    /// The cap, [`DEFAULT_RETRY_MAX`].
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: DEFAULT_RETRY_INITIAL,
            max: DEFAULT_RETRY_MAX,
        }
    }
}

/// Everything a [`Registration`](super::Registration) needs. Build it with
/// [`RegisterConfig::new`] and change the fields that differ from the defaults.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    /// The address of record, in From and To (RFC 3261 §10.2): `sip:km@snomag.de`.
    pub aor: Uri,
    /// The display name in From and To, if any.
    pub display_name: Option<String>,
    /// The Request-URI: the registrar's domain (§10.2), `sip:snomag.de`. Default: the AOR's
    /// host and port.
    pub registrar_uri: Uri,
    /// Where REGISTERs and keepalives are sent (the caller resolved the domain).
    pub registrar: SocketAddr,
    /// The address the phone's socket is bound to (private side of the NAT).
    pub local: SocketAddr,
    /// The public address and port the port mapping gave us, `None` when there is no
    /// mapping: then Via and Contact carry `local`. Change it with
    /// [`Registration::set_public_address`](super::Registration::set_public_address).
    pub public: Option<SocketAddr>,
    /// How the Contact is written; default [`ContactStyle::Public`].
    pub contact_style: ContactStyle,
    /// Extra URI parameters of the Contact URI (the seed's Snom sends `line=2;transport=udp`).
    pub contact_uri_params: Vec<Param>,
    /// Extra Contact header parameters (the seed's Snom sends `q=1.0;description="Available"`;
    /// a quoted value keeps its quotes).
    pub contact_params: Vec<Param>,
    /// The expiry asked for, seconds; raised by a 423's Min-Expires. Default
    /// [`DEFAULT_EXPIRES`].
    pub expires: u32,
    /// The interval of CRLF keepalives to the registrar while registered, `None` for none.
    /// Default [`DEFAULT_KEEPALIVE`].
    pub keepalive: Option<Duration>,
    /// Digest credentials; without them a challenge is a failure.
    pub credentials: Option<Credentials>,
    /// The Call-ID, one per boot (§10.2: all registrations of a UA use the same Call-ID).
    pub call_id: String,
    /// The first CSeq number; every request after it counts up (§10.2). Default 1.
    pub first_cseq: u32,
    /// A User-Agent header, if any.
    pub user_agent: Option<String>,
    /// Transaction timers T1, T2, T4.
    pub timers: TimerConfig,
    /// Retry after a failure, `None` to leave retrying to the caller (who calls
    /// [`Registration::register`](super::Registration::register)). Default [`Backoff`]'s.
    pub retry: Option<Backoff>,
}

impl RegisterConfig {
    /// A configuration with the defaults: registrar URI from the AOR's domain, no public
    /// address, public-contact style, [`DEFAULT_EXPIRES`], [`DEFAULT_KEEPALIVE`], CSeq from 1,
    /// no credentials, default timers and back-off.
    pub fn new(
        aor: Uri,
        registrar: SocketAddr,
        local: SocketAddr,
        call_id: impl Into<String>,
    ) -> Self {
        let registrar_uri = Uri::sip(None, aor.host.clone(), aor.port);
        let registrar_uri = Uri {
            scheme: aor.scheme,
            ..registrar_uri
        };
        RegisterConfig {
            aor,
            display_name: None,
            registrar_uri,
            registrar,
            local,
            public: None,
            contact_style: ContactStyle::default(),
            contact_uri_params: Vec::new(),
            contact_params: Vec::new(),
            expires: DEFAULT_EXPIRES,
            keepalive: Some(DEFAULT_KEEPALIVE),
            credentials: None,
            call_id: call_id.into(),
            first_cseq: 1,
            user_agent: None,
            timers: TimerConfig::default(),
            retry: Some(Backoff::default()),
        }
    }

    /// Checks every value that goes on the wire, so building a REGISTER cannot fail later.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let texts = [
            ("aor", self.aor.to_string()),
            ("registrar_uri", self.registrar_uri.to_string()),
            (
                "display_name",
                self.display_name.clone().unwrap_or_default(),
            ),
            ("call_id", self.call_id.clone()),
            ("user_agent", self.user_agent.clone().unwrap_or_default()),
            (
                "contact_uri_params",
                self.contact_uri_params
                    .iter()
                    .map(Param::to_string)
                    .collect(),
            ),
            (
                "contact_params",
                self.contact_params.iter().map(Param::to_string).collect(),
            ),
        ];
        for (field, text) in texts {
            if text.chars().any(|c| c.is_control()) {
                return Err(ConfigError::ControlCharacter(field));
            }
        }
        for (field, uri) in [("aor", &self.aor), ("registrar_uri", &self.registrar_uri)] {
            if uri.to_string().contains(char::is_whitespace) || uri.host.is_empty() {
                return Err(ConfigError::InvalidUri(field));
            }
        }
        if self.aor.scheme == Scheme::Sips || self.registrar_uri.scheme == Scheme::Sips {
            return Err(ConfigError::SipsOverUdp);
        }
        if self.call_id.is_empty() || self.call_id.contains(' ') {
            return Err(ConfigError::InvalidCallId);
        }
        if self.expires == 0 {
            return Err(ConfigError::ZeroExpires);
        }
        if self.first_cseq >= 1 << 31 {
            return Err(ConfigError::CSeqTooLarge);
        }
        if self.keepalive.is_some_and(|k| k.is_zero()) || self.timers.t1.is_zero() {
            return Err(ConfigError::ZeroInterval);
        }
        let timers = [self.timers.t1, self.timers.t2, self.timers.t4];
        let long = [
            self.keepalive,
            self.retry.map(|r| r.initial),
            self.retry.map(|r| r.max),
        ];
        if timers.iter().any(|t| *t > MAX_TRANSACTION_TIMER)
            || long.iter().flatten().any(|t| *t > MAX_INTERVAL)
        {
            return Err(ConfigError::IntervalTooLong);
        }
        Ok(())
    }
}

/// Why [`Registration::new`](super::Registration::new) refused a configuration. Fix the
/// configuration; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A text field holds a control character (it would break the message apart).
    #[error("{0} contains a control character")]
    ControlCharacter(&'static str),
    /// A URI with an empty host or with whitespace (its fields were set by hand).
    #[error("{0} is not a valid SIP URI")]
    InvalidUri(&'static str),
    /// `sips:` needs TLS (RFC 3261 §26.2.2); this client only speaks UDP.
    #[error("sips: URIs need TLS, and this client sends over UDP")]
    SipsOverUdp,
    /// The Call-ID is empty or holds a space (§20.8: a word, optionally `@host`).
    #[error("Call-ID is empty or holds whitespace")]
    InvalidCallId,
    /// `expires` is 0, which would unregister (§10.2.2).
    #[error("expires must be above 0 (0 unregisters)")]
    ZeroExpires,
    /// `first_cseq` is 2**31 or more (§8.1.1.5).
    #[error("first CSeq must be below 2^31")]
    CSeqTooLarge,
    /// A keepalive interval or T1 of zero would make the caller spin.
    #[error("keepalive interval and T1 must be above zero")]
    ZeroInterval,
    /// A transaction timer above [`MAX_TRANSACTION_TIMER`], or a keepalive or retry delay
    /// above [`MAX_INTERVAL`].
    #[error("a timer or interval is longer than its limit")]
    IntervalTooLong,
    /// The REGISTER built from this configuration does not read back (for example a Contact
    /// parameter whose value holds a comma or an unbalanced quote).
    #[error("the REGISTER built from this configuration does not parse: {0}")]
    Unparsable(ParseError),
}
