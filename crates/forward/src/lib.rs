//! Forwarding backends of the gateway: they make the kernel (or a userspace relay) carry the
//! traffic of the port mappings that the gateway's table holds.
//!
//! The table (`gateway-core`) is the truth; a backend is a projection of it. The control
//! thread tells the backend about every change ([`Backend::add`], [`Backend::remove`]) and
//! brings it back in line at start and after outside interference ([`Backend::reconcile`]).
//!
//! - [`nftables::NftBackend`]: DNAT through two nftables maps in a table of our own; one
//!   mapping is one map element, added or deleted in one transaction; removal also ends the
//!   mapping's conntrack flows.
//! - [`relay::RelayBackend`]: a userspace UDP/TCP relay for machines without root and for
//!   the loopback demo.
//! - [`memory::MemoryBackend`]: holds forwards in memory only (tests of the control plane).
//!
//! Every backend is driven from ONE dedicated control thread (a std thread, not a runtime
//! worker), so its methods may block.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use igd_proto::actions::Protocol;

pub mod memory;
pub mod nftables;
pub mod relay;
mod run;

/// One port forward: traffic of `protocol` arriving on the WAN side at `external_port` goes
/// to `internal_client:internal_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Forward {
    /// UDP or TCP.
    pub protocol: Protocol,
    /// The port on the WAN side (never 0).
    pub external_port: u16,
    /// The LAN host that receives the traffic.
    pub internal_client: Ipv4Addr,
    /// The port on that host (never 0).
    pub internal_port: u16,
}

impl Forward {
    /// What identifies a forward inside a backend: (protocol, external port). A backend holds
    /// at most one forward per key.
    pub fn key(&self) -> (Protocol, u16) {
        (self.protocol, self.external_port)
    }

    /// Refuses a forward no backend can carry: a port 0, or an internal client that is not a
    /// single unicast host (0.0.0.0, broadcast, multicast).
    pub fn validate(&self) -> Result<(), ForwardError> {
        let reason = if self.external_port == 0 {
            "the external port is 0"
        } else if self.internal_port == 0 {
            "the internal port is 0"
        } else if self.internal_client.is_unspecified() {
            "the internal client is 0.0.0.0"
        } else if self.internal_client.is_broadcast() {
            "the internal client is the broadcast address"
        } else if self.internal_client.is_multicast() {
            "the internal client is a multicast address"
        } else {
            return Ok(());
        };
        Err(ForwardError::InvalidForward {
            forward: *self,
            reason,
        })
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}:{}",
            self.protocol, self.external_port, self.internal_client, self.internal_port
        )
    }
}

/// What went wrong in a backend. Every message ends with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The caller asked for a forward no backend can carry (a bug in the caller).
    #[error("invalid forward {forward}: {reason} (the request should have been refused before it reached the backend; please report this)")]
    InvalidForward {
        /// The forward.
        forward: Forward,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// `reconcile` was given two different forwards for one (protocol, external port).
    #[error("two wanted forwards share {protocol} port {port} (the caller's table is inconsistent; please report this)")]
    DuplicateKey {
        /// Protocol of the key.
        protocol: Protocol,
        /// External port of the key.
        port: u16,
    },
    /// The backend's configuration is unusable.
    #[error("invalid forwarding configuration: {0} (fix the gateway configuration and restart)")]
    Config(String),
    /// A helper program could not be started.
    #[error("cannot run `{program}`: {source} (install it — Debian packages `nftables` and `conntrack` — and make sure it is in PATH, /usr/sbin or /sbin)")]
    Spawn {
        /// The program.
        program: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// nft refused a command.
    #[error("nft refused `{command}`: {message} (the gateway needs root or CAP_NET_ADMIN in the right network namespace, and a kernel with nf_tables and NAT support: modules nf_tables, nft_nat, nft_ct)")]
    Nft {
        /// The command (or the first line of a batch).
        command: String,
        /// nft's error output.
        message: String,
    },
    /// nft did not answer in time; it was stopped and is restarted on the next change.
    #[error("nft did not answer `{command}` within {timeout:?} (it was stopped and will be restarted; if this repeats, check the system load and `nft list ruleset` by hand)")]
    NftTimeout {
        /// The command.
        command: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// nft ended while we waited for its answer.
    #[error("nft exited while applying `{command}` ({status}) (it is restarted on the next change; the change may or may not be applied — the gateway reconciles on restart)")]
    NftExited {
        /// The command.
        command: String,
        /// Its exit status, as text.
        status: String,
    },
    /// nft printed something we cannot read.
    #[error("cannot read nft's output: {0} (nft's output format may have changed; please report this with `nft --version`)")]
    Parse(String),
    /// The mapping is gone from the firewall, but its existing flows could not be ended.
    #[error("cannot end the existing flows of {forward}: {message} (the mapping itself is removed; its open connections continue until they time out — check that `conntrack` works: `conntrack -L`)")]
    Conntrack {
        /// The forward whose flows remain.
        forward: Forward,
        /// conntrack's error output.
        message: String,
    },
    /// The flow listing failed (the flows of removed mappings may then live on until they
    /// time out).
    #[error(
        "cannot list the connection-tracking flows: {message} (check that `conntrack -L` works)"
    )]
    ConntrackList {
        /// What failed.
        message: String,
    },
    /// The external port is already taken on this host.
    #[error("{protocol} port {port} on {ip} is already in use by another program (stop that program or map another external port)")]
    PortInUse {
        /// Protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
        /// The listen address.
        ip: Ipv4Addr,
    },
    /// Binding the external port failed for another reason.
    #[error("cannot bind {protocol} {ip}:{port}: {source} (ports below 1024 need root or CAP_NET_BIND_SERVICE; the listen address must be one of this host's)")]
    Bind {
        /// Protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
        /// The listen address.
        ip: Ipv4Addr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Some operations of a reconcile failed (the others were applied).
    #[error("reconcile: {failed} of the wanted changes failed, first: {first} (fix the cause above; the gateway retries on the next reconcile)")]
    Reconcile {
        /// How many operations failed.
        failed: usize,
        /// The first failure.
        first: Box<ForwardError>,
    },
}

/// A port forwarding backend.
///
/// Called from ONE control thread (blocking calls are fine there: it is a dedicated std
/// thread). A backend holds at most one forward per (protocol, external port).
pub trait Backend: Send {
    /// A short name for logs: `"nftables"`, `"relay"`, `"memory"`.
    fn name(&self) -> &'static str;
    /// Installs `f`. Idempotent; a forward with the same (protocol, external port) but another
    /// target is replaced (and its existing flows ended).
    fn add(&mut self, f: &Forward) -> Result<(), ForwardError>;
    /// Removes the forward of `f`'s (protocol, external port): no new flow matches once this
    /// returns, and existing flows are ended too (the relay at once, nftables by a conntrack
    /// flush within milliseconds). Removing an absent forward is not an error.
    fn remove(&mut self, f: &Forward) -> Result<(), ForwardError>;
    /// Makes the backend hold exactly `wanted`: adds the missing, removes foreign and orphaned
    /// ones (a forward whose target changed counts as one removal and one addition).
    fn reconcile(&mut self, wanted: &[Forward]) -> Result<ReconcileReport, ForwardError>;
    /// The forwards the backend holds, ordered by (protocol, external port).
    fn list(&mut self) -> Result<Vec<Forward>, ForwardError>;
}

/// What a [`Backend::reconcile`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Forwards installed.
    pub added: usize,
    /// Forwards removed.
    pub removed: usize,
}

/// The differences between what a backend holds and what is wanted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Held forwards to remove (foreign, orphaned, or with another target than wanted).
    pub remove: Vec<Forward>,
    /// Wanted forwards to install.
    pub add: Vec<Forward>,
}

/// Compares `current` with `wanted` by (protocol, external port); refuses an invalid wanted
/// forward and two different wanted forwards for one key.
pub(crate) fn plan(current: &[Forward], wanted: &[Forward]) -> Result<Plan, ForwardError> {
    let mut want: BTreeMap<(Protocol, u16), Forward> = BTreeMap::new();
    for f in wanted {
        f.validate()?;
        if let Some(prev) = want.insert(f.key(), *f) {
            if prev != *f {
                return Err(ForwardError::DuplicateKey {
                    protocol: f.protocol,
                    port: f.external_port,
                });
            }
        }
    }
    let have: BTreeMap<(Protocol, u16), Forward> = current.iter().map(|f| (f.key(), *f)).collect();
    let mut out = Plan::default();
    for (key, held) in &have {
        if want.get(key) != Some(held) {
            out.remove.push(*held);
        }
    }
    for (key, f) in &want {
        if have.get(key) != Some(f) {
            out.add.push(*f);
        }
    }
    Ok(out)
}

/// Sorts forwards by (protocol, external port).
pub(crate) fn sorted(mut forwards: Vec<Forward>) -> Vec<Forward> {
    forwards.sort_by_key(|f| f.key());
    forwards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(protocol: Protocol, port: u16, host: u8, internal: u16) -> Forward {
        Forward {
            protocol,
            external_port: port,
            internal_client: Ipv4Addr::new(192, 168, 0, host),
            internal_port: internal,
        }
    }

    #[test]
    fn plan_finds_missing_foreign_and_changed() {
        let a = fwd(Protocol::Udp, 5000, 91, 5000);
        let b = fwd(Protocol::Tcp, 5000, 91, 80);
        let c_old = fwd(Protocol::Udp, 6000, 91, 6000);
        let c_new = fwd(Protocol::Udp, 6000, 92, 6000);
        let foreign = fwd(Protocol::Tcp, 7000, 99, 7000);
        let p = plan(&[a, c_old, foreign], &[a, b, c_new]).unwrap();
        assert_eq!(p.remove, vec![foreign, c_old]);
        assert_eq!(p.add, vec![b, c_new]);
        assert_eq!(plan(&[a, b], &[b, a, a]).unwrap(), Plan::default());
    }

    #[test]
    fn plan_refuses_duplicates_and_invalid() {
        let a = fwd(Protocol::Udp, 5000, 91, 5000);
        let a2 = fwd(Protocol::Udp, 5000, 92, 5000);
        assert!(matches!(
            plan(&[], &[a, a2]),
            Err(ForwardError::DuplicateKey { port: 5000, .. })
        ));
        assert!(matches!(
            plan(&[], &[fwd(Protocol::Udp, 0, 91, 1)]),
            Err(ForwardError::InvalidForward { .. })
        ));
    }

    #[test]
    fn validate_and_display() {
        assert!(fwd(Protocol::Tcp, 1, 1, 1).validate().is_ok());
        assert!(fwd(Protocol::Tcp, 1, 1, 0).validate().is_err());
        let mut f = fwd(Protocol::Tcp, 1, 1, 1);
        f.internal_client = Ipv4Addr::BROADCAST;
        assert!(f.validate().is_err());
        f.internal_client = Ipv4Addr::new(239, 255, 255, 250);
        assert!(f.validate().is_err());
        assert_eq!(
            fwd(Protocol::Udp, 6000, 91, 5000).to_string(),
            "UDP 6000 -> 192.168.0.91:5000"
        );
    }
}
