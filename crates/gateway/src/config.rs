//! The gateway's configuration: a documented TOML file, with command-line flags for the common
//! settings layered on top. Every limit is a named setting with its default here.
//!
//! ```toml
//! lan_interface = "lan0"          # where SSDP, HTTP and GENA listen (the LAN side only)
//! wan_interface = "wan0"          # the external side: its address is the external IP
//! http_port = 5000                # LAN HTTP port (descriptions, SOAP, GENA)
//! http_keep_alive = true          # serve several requests per connection (idle ones close
//!                                 # after 5 s; clients sending `Connection: close` get that)
//! http_max_connections = 64       # HTTP connections at once; more are closed unanswered
//! backend = "nftables"            # "nftables" (root) or "relay" (userspace, no root)
//! state_dir = "/var/lib/plugline" # journal, identity (uuid, BOOTID)
//! secure_mode = true              # a LAN host may map ports only to itself
//! max_mappings = 65536            # total mappings
//! max_mappings_per_host = 256     # per internal client
//! max_lease_seconds = 604800      # longer leases are clamped (IGD:2 maximum)
//! rules = ["allow 1024-65535 0.0.0.0/0 1024-65535", "deny 0-65535 0.0.0.0/0 0-65535"]
//! friendly_name = "Plugline gateway"
//! notify_interval_seconds = 900   # NOTIFY ssdp:alive period (at least 900)
//! # external_ip = "203.0.113.1"   # override the WAN interface's address
//! # stun_server = "203.0.113.10:3478"  # learn the public address behind another NAT
//! # lan_address = "127.0.0.1"     # listen on this address instead of the LAN interface's
//! # wan_address = "127.0.1.1"     # relay backend: bind external ports here
//! # admin_password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"  # web admin password (argon2 PHC);
//! #                               # absent: generated at first start, logged once, kept hashed
//! # remote_admin_port = 8080      # also serve /admin/ and /api/ on the WAN address, this port
//! ```
//!
//! Settings changed on the admin page (secure mode, limits, lease maximum) are kept in
//! `<state_dir>/settings.toml` and loaded over this file's values at start.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which forwarding backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// nftables DNAT maps in the gateway's own table (needs root).
    Nftables,
    /// A userspace UDP/TCP relay (no root needed).
    Relay,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nftables" => Ok(BackendKind::Nftables),
            "relay" => Ok(BackendKind::Relay),
            other => Err(format!("unknown backend {other:?} (nftables or relay)")),
        }
    }
}

/// The whole configuration. Defaults are the documented values above.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// LAN interface name.
    pub lan_interface: Option<String>,
    /// WAN interface name.
    pub wan_interface: Option<String>,
    /// Listen on this LAN address (default: the LAN interface's first IPv4 address).
    pub lan_address: Option<Ipv4Addr>,
    /// Prefix length of the LAN (default: from the interface; 8 for loopback).
    pub lan_prefix: Option<u8>,
    /// The WAN address (default: the WAN interface's first IPv4 address).
    pub wan_address: Option<Ipv4Addr>,
    /// Report this external address instead of the WAN address (e.g. learned elsewhere).
    pub external_ip: Option<Ipv4Addr>,
    /// A STUN server to learn the public address from when the WAN address is private.
    pub stun_server: Option<SocketAddr>,
    /// LAN HTTP port.
    pub http_port: u16,
    /// Serve several HTTP requests per connection (idle connections close after the request
    /// timeout, 5 s).
    pub http_keep_alive: bool,
    /// HTTP connections served at once; more are closed unanswered.
    pub http_max_connections: usize,
    /// Forwarding backend.
    pub backend: BackendKind,
    /// nftables table name (the gateway's own table).
    pub nft_table: String,
    /// Where durable state lives.
    pub state_dir: PathBuf,
    /// Secure mode: a LAN host may map only to itself.
    pub secure_mode: bool,
    /// Total mappings.
    pub max_mappings: usize,
    /// Mappings per internal client.
    pub max_mappings_per_host: usize,
    /// Longest lease granted, in seconds.
    pub max_lease_seconds: u32,
    /// Allow/deny rules, first match wins (`allow|deny EXT_PORTS CLIENT/PREFIX INT_PORTS`).
    pub rules: Vec<String>,
    /// Friendly name in the descriptions.
    pub friendly_name: String,
    /// NOTIFY ssdp:alive period in seconds (at least 900).
    pub notify_interval_seconds: u64,
    /// Serve the IGD:1 description for every search (for clients that only know IGD:1).
    pub igd1_only: bool,
    /// Journal records after which the journal is compacted into a snapshot.
    pub compact_after_records: usize,
    /// The web admin's password as an argon2 PHC string; `None`: generated at first start,
    /// logged once and stored hashed in `<state_dir>/admin.hash`.
    pub admin_password_hash: Option<String>,
    /// Serve the web admin (only it) on the WAN address at this port too; `None`: LAN only.
    pub remote_admin_port: Option<u16>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            lan_interface: None,
            wan_interface: None,
            lan_address: None,
            lan_prefix: None,
            wan_address: None,
            external_ip: None,
            stun_server: None,
            http_port: 5000,
            http_keep_alive: true,
            http_max_connections: 64,
            backend: BackendKind::Nftables,
            nft_table: "plugline".into(),
            state_dir: PathBuf::from("/var/lib/plugline"),
            secure_mode: true,
            max_mappings: 65_536,
            max_mappings_per_host: 256,
            max_lease_seconds: 604_800,
            rules: Vec::new(),
            friendly_name: "Plugline gateway".into(),
            notify_interval_seconds: 900,
            igd1_only: false,
            compact_after_records: 10_000,
            admin_password_hash: None,
            remote_admin_port: None,
        }
    }
}

/// A configuration problem, with the file and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped settings.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// Why.
        message: String,
    },
}

impl GatewayConfig {
    /// Read a TOML file.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse TOML text.
    pub fn parse(text: &str) -> Result<GatewayConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The whole configuration as TOML text that [`parse`](Self::parse) reads back.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// Check ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, message: &str| ConfigError::Invalid {
            setting,
            message: message.to_string(),
        };
        if self.max_lease_seconds == 0 || self.max_lease_seconds > 604_800 {
            return Err(invalid("max_lease_seconds", "must be 1..=604800"));
        }
        if self.max_mappings == 0 || self.max_mappings_per_host == 0 {
            return Err(invalid("max_mappings", "limits must be at least 1"));
        }
        if self.http_max_connections == 0 || self.http_max_connections > 65_536 {
            return Err(invalid("http_max_connections", "must be 1..=65536"));
        }
        if self.notify_interval_seconds < 900 {
            return Err(invalid(
                "notify_interval_seconds",
                "must be at least 900 (UDA: max-age 1800 with NOTIFY at half of it)",
            ));
        }
        if self.lan_interface.is_none() && self.lan_address.is_none() {
            return Err(invalid(
                "lan_interface",
                "set lan_interface (or lan_address): the gateway answers only on the LAN",
            ));
        }
        if self.backend == BackendKind::Nftables && self.wan_interface.is_none() {
            return Err(invalid(
                "wan_interface",
                "the nftables backend needs the WAN interface",
            ));
        }
        if let Some(hash) = &self.admin_password_hash {
            if !crate::admin::auth::is_valid_hash(hash.trim()) {
                return Err(invalid(
                    "admin_password_hash",
                    "must be an argon2 PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)",
                ));
            }
        }
        if self.remote_admin_port == Some(0) {
            return Err(invalid("remote_admin_port", "must be a port 1..=65535"));
        }
        if self.remote_admin_port.is_some()
            && self.wan_address.is_none()
            && self.wan_interface.is_none()
        {
            return Err(invalid(
                "remote_admin_port",
                "remote administration needs the WAN address (wan_interface or wan_address)",
            ));
        }
        if self.friendly_name.len() > 64 {
            return Err(invalid("friendly_name", "at most 64 bytes (UDA)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .map(|l| format!("{l}\n"))
            .collect();
        let config = GatewayConfig::parse(&example).unwrap();
        assert_eq!(config.lan_interface.as_deref(), Some("lan0"));
        assert_eq!(config.backend, BackendKind::Nftables);
        assert_eq!(config.rules.len(), 2);
        config.validate().unwrap();
    }

    #[test]
    fn unknown_settings_are_refused_with_their_name() {
        let err = GatewayConfig::parse("lan_interfac = \"x\"\n").unwrap_err();
        assert!(err.contains("lan_interfac"), "{err}");
    }

    #[test]
    fn ranges_are_checked() {
        let mut c = GatewayConfig {
            lan_interface: Some("lan0".into()),
            wan_interface: Some("wan0".into()),
            ..Default::default()
        };
        c.validate().unwrap();
        c.max_lease_seconds = 0;
        assert!(c.validate().is_err());
        c.max_lease_seconds = 3600;
        c.notify_interval_seconds = 10;
        assert!(c.validate().is_err());
        c.notify_interval_seconds = 900;
        c.http_max_connections = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("http_max_connections"), "{err}");
    }

    #[test]
    fn admin_settings_are_checked() {
        let mut c = GatewayConfig {
            lan_interface: Some("lan0".into()),
            wan_interface: Some("wan0".into()),
            ..Default::default()
        };
        c.admin_password_hash = Some("plain text".into());
        assert!(c.validate().is_err());
        c.admin_password_hash = Some(crate::admin::auth::hash_password("pw").unwrap());
        c.validate().unwrap();
        c.remote_admin_port = Some(0);
        assert!(c.validate().is_err());
        c.remote_admin_port = Some(8080);
        c.validate().unwrap();
        c.wan_interface = None;
        c.backend = BackendKind::Relay;
        assert!(c.validate().is_err());
    }
}
