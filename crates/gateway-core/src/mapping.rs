//! What a port mapping is: its [`Key`], the [`Mapping`] itself with its lease, the
//! mechanism that created it ([`Source`]), and the [`Change`] events the table emits.
//!
//! A mapping is identified by (protocol, external port) only: we support only the
//! wildcard remote host (WANIPConnection:2 RemoteHost; error 726 for anything else), so the
//! remote host is not part of the key. The lease is kept as an absolute deadline
//! (`expires_at`, unix seconds) so that what Get*Entry reports counts down (GATEWAY-NOTES,
//! "Lease duration": the granted value is what is reported, counting down).

use std::net::Ipv4Addr;

use igd_proto::actions::{PortMapping, Protocol};
use serde::{Deserialize, Serialize};

/// The identity of a mapping: one per (protocol, external port) on the WAN address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// TCP or UDP (serialised as `"TCP"` / `"UDP"`).
    #[serde(with = "protocol_serde")]
    pub protocol: Protocol,
    /// The port on the WAN address (never 0 in a table).
    pub external_port: u16,
}

impl Key {
    /// A key for `protocol` and `external_port`.
    pub fn new(protocol: Protocol, external_port: u16) -> Key {
        Key {
            protocol,
            external_port,
        }
    }
}

/// Serde for [`Protocol`], which `igd-proto` keeps free of serde: its wire spelling.
mod protocol_serde {
    use igd_proto::actions::Protocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    /// Strict: exactly `TCP` or `UDP` (a journal is written by us, never by a peer).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            other => Err(serde::de::Error::custom(format_args!(
                "unknown protocol {other:?} (expected \"TCP\" or \"UDP\")"
            ))),
        }
    }
}

/// The mechanism that created a mapping. A key held by one mechanism cannot be taken
/// over by another (IGD:2 error 729 ConflictWithOtherMechanisms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// UPnP IGD (SOAP AddPortMapping / AddAnyPortMapping).
    Upnp,
    /// NAT-PMP (RFC 6886).
    NatPmp,
    /// PCP (RFC 6887).
    Pcp,
    /// Added by the operator (configuration or admin page).
    Manual,
}

/// One port mapping: a forward of `key` on the WAN address to
/// `internal_client:internal_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Protocol and external port.
    pub key: Key,
    /// The LAN host the traffic is forwarded to.
    pub internal_client: Ipv4Addr,
    /// The port on the LAN host.
    pub internal_port: u16,
    /// Free text from the client: hostile, escape it wherever it is shown.
    pub description: String,
    /// Whether the forward is active (`NewEnabled`).
    pub enabled: bool,
    /// The lease as granted, seconds; 0 = permanent.
    pub lease_seconds: u32,
    /// When the lease ends (unix seconds); `None` = permanent. The mapping is expired at
    /// `expires_at <= now`.
    pub expires_at: Option<u64>,
    /// When the mapping was first created (unix seconds); a refresh keeps it.
    pub created_at: u64,
    /// Which mechanism created it.
    pub source: Source,
}

impl Mapping {
    /// The seconds left on the lease at `now`; 0 for a permanent mapping (and for an
    /// expired one not yet removed, which [`crate::Table::expire`] removes).
    pub fn remaining(&self, now: u64) -> u32 {
        self.expires_at.map_or(0, |at| {
            u32::try_from(at.saturating_sub(now)).unwrap_or(u32::MAX)
        })
    }

    /// True if the lease has ended at `now` (never for a permanent mapping).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The mapping as the IGD actions report it: wildcard remote host, and as lease the
    /// time remaining (the spec's `PortMappingLeaseDuration` counts down).
    pub fn to_port_mapping(&self, now: u64) -> PortMapping {
        PortMapping {
            remote_host: String::new(),
            external_port: self.key.external_port,
            protocol: self.key.protocol,
            internal_port: self.internal_port,
            internal_client: self.internal_client.to_string(),
            enabled: self.enabled,
            description: self.description.clone(),
            lease_duration: self.remaining(now),
        }
    }
}

/// A change to the table, queued by every successful mutation and drained with
/// [`crate::Table::poll_change`]: the journal persists it, the forwarding backend
/// applies it, GENA events `PortMappingNumberOfEntries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new mapping.
    Added(Mapping),
    /// A mapping removed (deleted or expired).
    Removed(Mapping),
    /// A mapping refreshed or changed in place (same key and internal client).
    Updated {
        /// As it was.
        old: Mapping,
        /// As it is now.
        new: Mapping,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Mapping {
        Mapping {
            key: Key::new(Protocol::Udp, 5060),
            internal_client: Ipv4Addr::new(192, 168, 1, 20),
            internal_port: 5062,
            description: "phone".into(),
            enabled: true,
            lease_seconds: 3600,
            expires_at: Some(1_000 + 3600),
            created_at: 1_000,
            source: Source::Upnp,
        }
    }

    #[test]
    fn remaining_counts_down() {
        let m = sample();
        assert_eq!(m.remaining(1_000), 3600);
        assert_eq!(m.remaining(1_100), 3500);
        assert_eq!(m.remaining(4_600), 0);
        assert_eq!(m.remaining(9_999), 0);
        assert!(!m.is_expired(4_599));
        assert!(m.is_expired(4_600));
        let permanent = Mapping {
            lease_seconds: 0,
            expires_at: None,
            ..sample()
        };
        assert_eq!(permanent.remaining(1_000_000), 0);
        assert!(!permanent.is_expired(u64::MAX));
        let far = Mapping {
            expires_at: Some(u64::MAX),
            ..sample()
        };
        assert_eq!(far.remaining(0), u32::MAX);
    }

    #[test]
    fn port_mapping_reports_remaining() {
        let pm = sample().to_port_mapping(1_600);
        assert_eq!(pm.remote_host, "");
        assert_eq!(pm.external_port, 5060);
        assert_eq!(pm.protocol, Protocol::Udp);
        assert_eq!(pm.internal_port, 5062);
        assert_eq!(pm.internal_client, "192.168.1.20");
        assert!(pm.enabled);
        assert_eq!(pm.description, "phone");
        assert_eq!(pm.lease_duration, 3000);
    }

    #[test]
    fn key_serde_uses_wire_spelling() {
        let json = serde_json::to_string(&Key::new(Protocol::Tcp, 80)).unwrap();
        assert_eq!(json, r#"{"protocol":"TCP","external_port":80}"#);
        let back: Key = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Key::new(Protocol::Tcp, 80));
        assert!(serde_json::from_str::<Key>(r#"{"protocol":"tcp","external_port":80}"#).is_err());
        assert!(serde_json::from_str::<Key>(r#"{"protocol":"SCTP","external_port":80}"#).is_err());
        assert!(serde_json::from_str::<Key>(r#"{"protocol":7,"external_port":80}"#).is_err());
        assert!(
            serde_json::from_str::<Key>(r#"{"protocol":"UDP","external_port":80,"extra":1}"#)
                .is_err()
        );
    }
}
