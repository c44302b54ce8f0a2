//! The client's one error type: every way a discovery or a port-mapping call can fail, with the
//! context (URL, action, interface) a user needs to act on it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use igd_proto::description::DescriptionError;
use igd_proto::error::{ErrorCode, UpnpError};
use igd_proto::soap::SoapError;

/// Everything that can go wrong in the port-mapping client.
///
/// Variants are grouped by who is to blame: the local machine (interface, socket), the network
/// (no answer, timeouts), the gateway's messages (malformed, unsafe) and the gateway's decision
/// (a UPnP error code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable local IPv4 interface was found; pass one explicitly.
    #[error("{0}")]
    Interface(String),

    /// A local socket operation failed (bind, multicast setup, send).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Discovery ended without a valid gateway answering.
    #[error("no UPnP gateway answered within {} ms on {interface}{}", waited.as_millis(), last_problem.as_ref().map(|p| format!(" (last problem: {p})")).unwrap_or_default())]
    NoGateway {
        /// How long we listened.
        waited: Duration,
        /// The local address searched from.
        interface: IpAddr,
        /// Why the last candidate (if any) was rejected.
        last_problem: Option<String>,
    },

    /// A URL given by the user or found in a description is not usable.
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An SSDP answer or description pointed somewhere it must not (another host, off-link).
    /// A hostile LAN host can send such answers; they are never followed.
    #[error("refused unsafe URL {url} from {source_addr}: {reason}")]
    UnsafeUrl {
        /// The URL that was refused.
        url: String,
        /// Who sent it.
        source_addr: SocketAddr,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A network step did not finish in time.
    #[error("{what} timed out after {} ms", after.as_millis())]
    Timeout {
        /// The step (e.g. "GET http://…").
        what: String,
        /// The limit that applied.
        after: Duration,
    },

    /// The HTTP exchange with the gateway failed.
    #[error("HTTP {method} {url}: {reason}")]
    Http {
        /// GET or POST.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong (connect refused, bad status, body too large…).
        reason: String,
    },

    /// The gateway's device description could not be used.
    #[error("description at {url}: {source}")]
    Description {
        /// Where it came from.
        url: String,
        /// The parser's verdict.
        source: DescriptionError,
    },

    /// The SOAP answer to an action was malformed.
    #[error("{action}: malformed answer: {source}")]
    Soap {
        /// The action that was called.
        action: &'static str,
        /// The parser's verdict.
        source: SoapError,
    },

    /// The gateway refused the action with a UPnP error code (e.g. `error 718 ConflictInMappingEntry`).
    #[error("{action}: {error}")]
    Upnp {
        /// The action that was called.
        action: &'static str,
        /// The code and description the gateway sent.
        error: UpnpError,
    },

    /// The gateway answered in a way that breaks the protocol (e.g. an unparsable address).
    #[error("{action}: gateway sent an invalid answer: {reason}")]
    InvalidAnswer {
        /// The action that was called.
        action: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// The request itself is invalid (caller's mistake), caught before anything is sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl Error {
    /// The UPnP error code, when the gateway refused with one.
    pub fn upnp_code(&self) -> Option<u16> {
        match self {
            Error::Upnp { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// True when the gateway refused with this named code.
    pub fn is_upnp(&self, code: ErrorCode) -> bool {
        self.upnp_code() == Some(code.code())
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
