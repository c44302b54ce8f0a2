//! The phone's configuration: a documented TOML file, with command-line flags for the essentials
//! layered on top, checked once at start ([`PhoneConfig::validate`]) so that every mistake is
//! reported with the setting's name before anything is sent.
//!
//! Every setting, with its default:
//!
//! ```toml
//! account = "sip:km@example.net"     # required: the address of record, sip:user@domain
//! registrar = "203.0.113.10:5060"    # HOST[:PORT] REGISTERs go to; default: the account's
//!                                    # domain, port 5060 (a name is resolved at each attempt)
//! # username = "km"                  # digest user name; default: the account's user
//! # password = "secret"              # the digest password, or:
//! # password_file = "/etc/plugline/km.pw"  # first line of this file (wins over `password`)
//! # display_name = "km"              # display name in From and To; default: none
//! sip_port = 5060                    # local SIP port (UDP); also the external port asked for
//! rtp_ports = "10000-10003"          # local RTP/RTCP ports mapped too: "A-B", "A" or "" (none)
//! # instance = "km-a1b2c3"           # names this phone's mappings ("plugline-phone <instance>
//!                                    # sip"); default: <user>-<last 6 hex digits of the MAC>
//! lease_seconds = 3600               # lease asked for each mapping (renewed half-way); 0 asks
//!                                    # for a permanent one
//! contact_style = "public"           # "public": Contact at the mapped address; "snom": private
//!                                    # Contact plus ?Route=sip:<public> (the seed's Snom)
//! keepalive_seconds = 25             # CRLF keepalive to the registrar while registered (0: off)
//! expires = 3600                     # registration interval asked for (raised by a 423)
//! retry_initial_seconds = 30         # first retry after a failed REGISTER; doubles each time
//! retry_max_seconds = 1800           # ... up to this
//! status_port = 80                   # status and log page on the LAN address (0: off)
//! upnp = true                        # map ports through the UPnP gateway (false: no mapping,
//!                                    # rport and keepalives only)
//! discovery_timeout_ms = 2000        # how long one gateway search listens
//! rediscover_seconds = 300           # without a gateway: search again this often
//! external_check_seconds = 60        # ask the gateway for its external address this often
//! # interface = "eth0"               # LAN interface (name or IPv4 address); default: the
//!                                    # interface of the default route
//! # user_agent = "Plugline/0.1.0"    # User-Agent header; default: Plugline/<version>
//! ```
//!
//! # The instance
//!
//! A phone must find the mappings it left behind (after a crash, a power cut, or when DHCP gave
//! it another LAN address), and never touch another phone's. Each mapping's description names
//! the phone instance, `plugline-phone <instance> sip` and `plugline-phone <instance> rtp
//! <port>`, and at start every mapping whose description begins with `plugline-phone
//! <instance> ` is deleted. So the instance must be stable across restarts and LAN addresses
//! but differ between phones: by default it is the account's user plus the last six hex
//! digits of the LAN interface's MAC address (`km-a1b2c3`), which is what the hardware phone
//! of the seed used as its identity too. Without a readable MAC it is the user alone. Set
//! `instance` when two phones share an interface (containers) or to keep it across a NIC swap.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sip_proto::register::{ContactStyle, MAX_INTERVAL};
use sip_proto::{Scheme, Uri};

/// The local SIP port by default (RFC 3261 §19.1.2).
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// The RTP ports by default: the seed's Snom maps 10000-10003 (two calls, RTP and RTCP each).
pub const DEFAULT_RTP_PORTS: &str = "10000-10003";
/// The lease asked for each mapping by default, seconds.
pub const DEFAULT_LEASE_SECONDS: u32 = 3600;
/// The status page port by default (the seed's phone serves `http://<phone>/log_en.htm`).
pub const DEFAULT_STATUS_PORT: u16 = 80;
/// How long one gateway search listens by default, milliseconds.
pub const DEFAULT_DISCOVERY_TIMEOUT_MS: u64 = 2000;
/// Without a gateway, search again this often by default, seconds.
pub const DEFAULT_REDISCOVER_SECONDS: u64 = 300;
/// How often the gateway's external address is checked by default, seconds.
pub const DEFAULT_EXTERNAL_CHECK_SECONDS: u64 = 60;
/// The most RTP ports mapped (each is one mapping at the gateway).
pub const MAX_RTP_PORTS: usize = 32;
/// The longest instance name (it goes into every mapping description).
pub const MAX_INSTANCE_LEN: usize = 32;
/// The longest password file read.
pub const MAX_PASSWORD_FILE_LEN: u64 = 4096;

/// The configuration as written (TOML and flags). Check it with [`validate`](Self::validate).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhoneConfig {
    /// The address of record, `sip:user@domain`. Required.
    pub account: Option<String>,
    /// `HOST[:PORT]` of the registrar; default: the account's domain, port 5060.
    pub registrar: Option<String>,
    /// Digest user name; default: the account's user.
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// A file whose first line is the password (wins over `password`).
    pub password_file: Option<PathBuf>,
    /// Display name in From and To.
    pub display_name: Option<String>,
    /// Local SIP port, also the external port asked for.
    pub sip_port: u16,
    /// Local RTP ports: `A-B`, `A` or empty.
    pub rtp_ports: String,
    /// The name in this phone's mapping descriptions (see the module docs).
    pub instance: Option<String>,
    /// Lease asked for each mapping, seconds.
    pub lease_seconds: u32,
    /// `public` or `snom`.
    pub contact_style: ContactStyleSetting,
    /// CRLF keepalive interval while registered, seconds (0: off).
    pub keepalive_seconds: u64,
    /// Registration interval asked for, seconds.
    pub expires: u32,
    /// First retry delay after a failed REGISTER, seconds.
    pub retry_initial_seconds: u64,
    /// Longest retry delay, seconds.
    pub retry_max_seconds: u64,
    /// Status page port on the LAN address (0: off).
    pub status_port: u16,
    /// Map ports through UPnP.
    pub upnp: bool,
    /// How long one gateway search listens, milliseconds.
    pub discovery_timeout_ms: u64,
    /// Without a gateway, search again this often, seconds.
    pub rediscover_seconds: u64,
    /// How often the external address is checked, seconds.
    pub external_check_seconds: u64,
    /// LAN interface name or address.
    pub interface: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

/// How the Contact is written (`contact_style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactStyleSetting {
    /// `<sip:user@<public ip>:<mapped port>>`.
    #[default]
    Public,
    /// `<sip:user@<lan ip>:<port>?Route=sip:<public ip>:<mapped port>>`.
    Snom,
}

impl std::str::FromStr for ContactStyleSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(ContactStyleSetting::Public),
            "snom" => Ok(ContactStyleSetting::Snom),
            other => Err(format!("unknown contact style {other:?} (public or snom)")),
        }
    }
}

impl From<ContactStyleSetting> for ContactStyle {
    fn from(style: ContactStyleSetting) -> ContactStyle {
        match style {
            ContactStyleSetting::Public => ContactStyle::Public,
            ContactStyleSetting::Snom => ContactStyle::SnomRoute,
        }
    }
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            account: None,
            registrar: None,
            username: None,
            password: None,
            password_file: None,
            display_name: None,
            sip_port: DEFAULT_SIP_PORT,
            rtp_ports: DEFAULT_RTP_PORTS.into(),
            instance: None,
            lease_seconds: DEFAULT_LEASE_SECONDS,
            contact_style: ContactStyleSetting::Public,
            keepalive_seconds: sip_proto::register::DEFAULT_KEEPALIVE.as_secs(),
            expires: sip_proto::register::DEFAULT_EXPIRES,
            retry_initial_seconds: sip_proto::register::DEFAULT_RETRY_INITIAL.as_secs(),
            retry_max_seconds: sip_proto::register::DEFAULT_RETRY_MAX.as_secs(),
            status_port: DEFAULT_STATUS_PORT,
            upnp: true,
            discovery_timeout_ms: DEFAULT_DISCOVERY_TIMEOUT_MS,
            rediscover_seconds: DEFAULT_REDISCOVER_SECONDS,
            external_check_seconds: DEFAULT_EXTERNAL_CHECK_SECONDS,
            interface: None,
            user_agent: None,
        }
    }
}

/// A configuration problem, naming the file or the setting. Fix the configuration and start
/// again; nothing was sent.
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
    /// The file is not valid TOML, or has unknown or mistyped settings.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value is missing, out of range or inconsistent.
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// Why, and what to write instead.
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// Where REGISTERs go: a host (name or IP literal) and port, resolved at each attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarAddr {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl RegistrarAddr {
    /// Parses `HOST[:PORT]` (an optional `sip:` in front is accepted), IPv6 in brackets.
    pub fn parse(text: &str) -> Result<RegistrarAddr, String> {
        let text = text.trim();
        let text = text
            .strip_prefix("sip:")
            .or_else(|| text.strip_prefix("SIP:"))
            .unwrap_or(text);
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(RegistrarAddr {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ of an IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?}: expected HOST[:PORT]")),
            };
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{v6:?} is not an IPv6 address"));
            }
            (v6, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))?,
            None => sip_proto::DEFAULT_PORT,
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !valid_host {
            return Err(format!(
                "{host:?} is not a host name or IP address (write HOST[:PORT], e.g. 203.0.113.10:5060)"
            ));
        }
        Ok(RegistrarAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for RegistrarAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The checked configuration the phone runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address of record.
    pub aor: Uri,
    /// Where REGISTERs go.
    pub registrar: RegistrarAddr,
    /// Digest credentials, if a password was given.
    pub credentials: Option<sip_proto::digest::Credentials>,
    /// Display name.
    pub display_name: Option<String>,
    /// Local SIP port.
    pub sip_port: u16,
    /// Local RTP ports.
    pub rtp_ports: Vec<u16>,
    /// The instance, if configured (otherwise derived at start from the interface).
    pub instance: Option<String>,
    /// Lease asked for each mapping, seconds.
    pub lease_seconds: u32,
    /// Contact style.
    pub contact_style: ContactStyle,
    /// CRLF keepalive interval.
    pub keepalive: Option<Duration>,
    /// Registration interval asked for.
    pub expires: u32,
    /// Retry back-off.
    pub retry: sip_proto::register::Backoff,
    /// Status page port (0: off).
    pub status_port: u16,
    /// Map ports through UPnP.
    pub upnp: bool,
    /// One gateway search.
    pub discovery_timeout: Duration,
    /// Search again this often without a gateway.
    pub rediscover: Duration,
    /// External address check period.
    pub external_check: Duration,
    /// LAN interface name or address.
    pub interface: Option<String>,
    /// User-Agent.
    pub user_agent: String,
}

impl PhoneConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<PhoneConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<PhoneConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks every setting (and reads the password file) and returns what the phone runs
    /// with.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let aor = parse_account(self.account.as_deref())?;
        let registrar = match &self.registrar {
            Some(text) => RegistrarAddr::parse(text).map_err(|m| invalid("registrar", m))?,
            None => RegistrarAddr {
                host: aor.host.trim_matches(['[', ']']).to_owned(),
                port: aor.port.unwrap_or(sip_proto::DEFAULT_PORT),
            },
        };
        let password = match &self.password_file {
            Some(path) => Some(read_password_file(path)?),
            None => self.password.clone(),
        };
        let username = match &self.username {
            Some(u) if u.is_empty() || u.chars().any(|c| c.is_control() || c == '"') => {
                return Err(invalid(
                    "username",
                    "must not be empty or hold quotes or control characters",
                ))
            }
            Some(u) => u.clone(),
            None => aor.user.clone().unwrap_or_default(),
        };
        let credentials =
            password.map(|password| sip_proto::digest::Credentials { username, password });
        if let Some(name) = &self.display_name {
            if name.chars().any(char::is_control) {
                return Err(invalid("display_name", "must not hold control characters"));
            }
        }
        if self.sip_port == 0 {
            return Err(invalid("sip_port", "must be a port 1-65535"));
        }
        let rtp_ports = parse_port_range(&self.rtp_ports).map_err(|m| invalid("rtp_ports", m))?;
        if rtp_ports.contains(&self.sip_port) {
            return Err(invalid(
                "rtp_ports",
                format!("must not include the SIP port {}", self.sip_port),
            ));
        }
        if let Some(instance) = &self.instance {
            check_instance(instance).map_err(|m| invalid("instance", m))?;
        }
        if self.expires == 0 {
            return Err(invalid(
                "expires",
                "must be above 0 (Expires: 0 would unregister)",
            ));
        }
        let max = MAX_INTERVAL.as_secs();
        if self.keepalive_seconds > max {
            return Err(invalid("keepalive_seconds", format!("at most {max}")));
        }
        if self.retry_initial_seconds == 0
            || self.retry_initial_seconds > self.retry_max_seconds
            || self.retry_max_seconds > max
        {
            return Err(invalid(
                "retry_initial_seconds",
                format!("need 1 <= retry_initial_seconds <= retry_max_seconds <= {max}"),
            ));
        }
        if !(100..=60_000).contains(&self.discovery_timeout_ms) {
            return Err(invalid("discovery_timeout_ms", "must be 100-60000"));
        }
        if self.rediscover_seconds == 0 || self.external_check_seconds == 0 {
            return Err(invalid(
                "rediscover_seconds",
                "rediscover_seconds and external_check_seconds must be at least 1",
            ));
        }
        if let Some(agent) = &self.user_agent {
            if agent.is_empty() || agent.chars().any(char::is_control) {
                return Err(invalid(
                    "user_agent",
                    "must not be empty or hold control characters",
                ));
            }
        }
        Ok(Settings {
            aor,
            registrar,
            credentials,
            display_name: self.display_name.clone(),
            sip_port: self.sip_port,
            rtp_ports,
            instance: self.instance.clone(),
            lease_seconds: self.lease_seconds,
            contact_style: self.contact_style.into(),
            keepalive: (self.keepalive_seconds > 0)
                .then(|| Duration::from_secs(self.keepalive_seconds)),
            expires: self.expires,
            retry: sip_proto::register::Backoff {
                initial: Duration::from_secs(self.retry_initial_seconds),
                max: Duration::from_secs(self.retry_max_seconds),
            },
            status_port: self.status_port,
            upnp: self.upnp,
            discovery_timeout: Duration::from_millis(self.discovery_timeout_ms),
            rediscover: Duration::from_secs(self.rediscover_seconds),
            external_check: Duration::from_secs(self.external_check_seconds),
            interface: self.interface.clone(),
            user_agent: self
                .user_agent
                .clone()
                .unwrap_or_else(|| format!("Plugline/{}", env!("CARGO_PKG_VERSION"))),
        })
    }
}

/// `sip:user@domain`: a user and a host, `sip:` only (UDP), nothing else.
fn parse_account(account: Option<&str>) -> Result<Uri, ConfigError> {
    let text = account
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            invalid(
                "account",
                "required: the address of record, e.g. --account sip:km@example.net",
            )
        })?;
    let hint = "write it as sip:user@domain, e.g. sip:km@example.net";
    let uri = Uri::parse(text).map_err(|e| {
        let missing_scheme = !text.contains(':') && text.contains('@');
        let why = if missing_scheme {
            "the sip: scheme is missing".to_string()
        } else {
            e.to_string()
        };
        invalid(
            "account",
            format!("{text:?} is not a SIP address ({why}); {hint}"),
        )
    })?;
    if uri.scheme == Scheme::Sips {
        return Err(invalid(
            "account",
            format!("{text:?}: sips: needs TLS and this phone speaks SIP over UDP; use sip:"),
        ));
    }
    let user_ok = uri
        .user
        .as_deref()
        .is_some_and(|u| !u.contains(':') && !u.chars().any(char::is_control));
    if !user_ok {
        return Err(invalid(
            "account",
            format!("{text:?} has no user part (or holds a password); {hint}"),
        ));
    }
    if !uri.params.0.is_empty() || !uri.headers.is_empty() {
        return Err(invalid(
            "account",
            format!(
                "{text:?}: parameters and headers do not belong in an address of record; {hint}"
            ),
        ));
    }
    Ok(uri)
}

fn read_password_file(path: &Path) -> Result<String, ConfigError> {
    let fail = |why: String| invalid("password_file", format!("{}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_PASSWORD_FILE_LEN {
        return Err(fail(format!(
            "larger than {MAX_PASSWORD_FILE_LEN} bytes; is it the right file?"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let line = text.lines().next().unwrap_or_default();
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err(fail(
            "the first line is empty (it should hold the password)".into(),
        ));
    }
    Ok(line.to_owned())
}

/// `A-B`, `A` or an empty string.
pub fn parse_port_range(text: &str) -> Result<Vec<u16>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?} is not a port (1-65535); write A-B, e.g. 10000-10003"))
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("{text:?}: the range is backwards"));
    }
    let count = usize::from(last - first) + 1;
    if count > MAX_RTP_PORTS {
        return Err(format!(
            "{text:?} is {count} ports; at most {MAX_RTP_PORTS} are mapped"
        ));
    }
    Ok((first..=last).collect())
}

/// Letters, digits, `.`, `_`, `-`; 1 to [`MAX_INSTANCE_LEN`] characters.
pub fn check_instance(instance: &str) -> Result<(), String> {
    if instance.is_empty() || instance.len() > MAX_INSTANCE_LEN {
        return Err(format!("must be 1-{MAX_INSTANCE_LEN} characters"));
    }
    if !instance
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{instance:?}: use letters, digits, '.', '_' and '-' only"
        ));
    }
    Ok(())
}

/// The default instance: the account's user (reduced to instance characters) and the last
/// six hex digits of the MAC address, `km-a1b2c3`; the user alone without a MAC.
pub fn default_instance(user: &str, mac: Option<&str>) -> String {
    let mut base: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_INSTANCE_LEN - 7)
        .collect();
    if base.is_empty() {
        base.push_str("phone");
    }
    let hex: String = mac
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() >= 6 && hex.chars().any(|c| c != '0') {
        let tail = hex.get(hex.len() - 6..).unwrap_or_default();
        format!("{base}-{tail}")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        let doc = include_str!("config.rs");
        doc.lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn documented_example_parses_and_gives_the_defaults() {
        let config = PhoneConfig::parse(&example()).unwrap();
        let settings = config.validate().unwrap();
        let defaults = PhoneConfig {
            account: Some("sip:km@example.net".into()),
            registrar: Some("203.0.113.10:5060".into()),
            ..PhoneConfig::default()
        };
        let d = defaults.validate().unwrap();
        assert_eq!(settings.aor.to_string(), "sip:km@example.net");
        assert_eq!(
            settings.registrar,
            RegistrarAddr {
                host: "203.0.113.10".into(),
                port: 5060
            }
        );
        assert_eq!(settings.rtp_ports, d.rtp_ports);
        assert_eq!(settings.rtp_ports, vec![10000, 10001, 10002, 10003]);
        assert_eq!(
            (settings.sip_port, settings.lease_seconds, settings.expires),
            (d.sip_port, d.lease_seconds, d.expires)
        );
        assert_eq!(settings.keepalive, Some(Duration::from_secs(25)));
        assert_eq!(settings.retry, d.retry);
        assert_eq!(settings.status_port, 80);
        assert_eq!(settings.contact_style, ContactStyle::Public);
        assert!(settings.credentials.is_none());
    }

    #[test]
    fn unknown_settings_are_refused_with_their_name() {
        let err = PhoneConfig::parse("acount = \"sip:km@example.net\"\n").unwrap_err();
        assert!(err.contains("acount"), "{err}");
    }

    #[test]
    fn account_syntax_errors_are_clear() {
        let check = |account: Option<&str>, needle: &str| {
            let config = PhoneConfig {
                account: account.map(Into::into),
                ..PhoneConfig::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with("invalid setting account"), "{err}");
            assert!(err.contains(needle), "{err} lacks {needle}");
        };
        check(None, "required");
        check(Some("km@example.net"), "sip: scheme is missing");
        check(Some("sip:example.net"), "no user part");
        check(Some("sips:km@example.net"), "TLS");
        check(Some("sip:km@example.net;transport=tcp"), "parameters");
        check(Some("mailto:km@example.net"), "sip:user@domain");
        check(Some("sip:km:pw@example.net"), "password");
    }

    #[test]
    fn registrar_forms() {
        let p = |s| RegistrarAddr::parse(s);
        assert_eq!(p("203.0.113.10").unwrap().to_string(), "203.0.113.10:5060");
        assert_eq!(p("sip:pbx.example.net:5070").unwrap().port, 5070);
        assert_eq!(
            p("[2001:db8::1]:5080").unwrap().to_string(),
            "[2001:db8::1]:5080"
        );
        assert_eq!(p("[2001:db8::1]").unwrap().port, 5060);
        assert!(p("host:0").is_err());
        assert!(p("host:x").is_err());
        assert!(p("bad host").is_err());
        assert!(p("").is_err());
        // Default: the account's domain.
        let config = PhoneConfig {
            account: Some("sip:km@example.net:5070".into()),
            ..PhoneConfig::default()
        };
        assert_eq!(
            config.validate().unwrap().registrar.to_string(),
            "example.net:5070"
        );
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("").unwrap(), Vec::<u16>::new());
        assert_eq!(parse_port_range("10000").unwrap(), vec![10000]);
        assert_eq!(parse_port_range(" 1-3 ").unwrap(), vec![1, 2, 3]);
        assert!(parse_port_range("3-1").is_err());
        assert!(parse_port_range("0-2").is_err());
        assert!(parse_port_range("1-1000").is_err());
        let config = PhoneConfig {
            account: Some("sip:km@example.net".into()),
            rtp_ports: "5059-5061".into(),
            ..PhoneConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("SIP port"));
    }

    #[test]
    fn password_file_first_line_wins() {
        let dir = std::env::temp_dir().join(format!("phone-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\r\nignored\n").unwrap();
        let mut config = PhoneConfig {
            account: Some("sip:km@example.net".into()),
            password: Some("other".into()),
            password_file: Some(file.clone()),
            ..PhoneConfig::default()
        };
        let creds = config.validate().unwrap().credentials.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("km", "s3cret")
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(config.validate().is_err());
        config.password_file = Some(dir.join("missing"));
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("password_file") && err.contains("missing"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn instances() {
        assert_eq!(
            default_instance("km", Some("02:42:ac:11:00:5E")),
            "km-11005e"
        );
        assert_eq!(default_instance("km", None), "km");
        assert_eq!(default_instance("km", Some("00:00:00:00:00:00")), "km");
        assert_eq!(
            default_instance("k m+1", Some("aa:bb:cc:dd:ee:ff")),
            "k_m_1-ddeeff"
        );
        assert!(check_instance(&default_instance(&"x".repeat(80), Some("aabbccddeeff"))).is_ok());
        assert!(check_instance("km phone").is_err());
        assert!(check_instance("").is_err());
        let config = PhoneConfig {
            account: Some("sip:km@example.net".into()),
            instance: Some("a b".into()),
            ..PhoneConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let base = PhoneConfig {
            account: Some("sip:km@example.net".into()),
            ..PhoneConfig::default()
        };
        for broken in [
            PhoneConfig {
                sip_port: 0,
                ..base.clone()
            },
            PhoneConfig {
                expires: 0,
                ..base.clone()
            },
            PhoneConfig {
                retry_initial_seconds: 0,
                ..base.clone()
            },
            PhoneConfig {
                retry_initial_seconds: 100,
                retry_max_seconds: 10,
                ..base.clone()
            },
            PhoneConfig {
                discovery_timeout_ms: 5,
                ..base.clone()
            },
            PhoneConfig {
                rediscover_seconds: 0,
                ..base.clone()
            },
            PhoneConfig {
                user_agent: Some("a\nb".into()),
                ..base.clone()
            },
        ] {
            assert!(broken.validate().is_err(), "{broken:?}");
        }
        let off = PhoneConfig {
            keepalive_seconds: 0,
            ..base
        }
        .validate()
        .unwrap();
        assert_eq!(off.keepalive, None);
    }
}
