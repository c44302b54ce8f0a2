//! The typed WANIPConnection / WANPPPConnection actions: their SOAP arguments in both
//! directions, for control points ([`Action::request`], [`Action::parse_response`]) and
//! for the gateway ([`Action::from_call`], [`Action::build_response`]).
//!
//! Argument names and order follow the service templates (WANIPConnection:1 and :2,
//! WANPPPConnection:1); UDA 1.1 §3 requires arguments in the order of the service
//! description. Values from the peer are parsed strictly: a port that is not a decimal
//! `ui2` is refused rather than truncated, because a silently wrapped port would map the
//! wrong thing.

mod list;

use std::fmt;
use std::str::FromStr;

use crate::soap::{self, invalid, parse_bool, parse_number, SoapCall, SoapError, SoapRequest};

pub use list::{build_port_mapping_list, parse_port_mapping_list, PORT_MAPPING_LIST_NS};

/// A transport protocol of a port mapping (`NewProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `TCP`.
    Tcp,
    /// `UDP`.
    Udp,
}

impl Protocol {
    /// The wire spelling: `TCP` or `UDP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was neither `TCP` nor `UDP` (in any case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected TCP or UDP)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    /// Case-insensitive, surrounding whitespace ignored: the templates say `TCP`/`UDP`,
    /// some clients send lower case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("TCP") {
            Ok(Protocol::Tcp)
        } else if t.eq_ignore_ascii_case("UDP") {
            Ok(Protocol::Udp)
        } else {
            Err(UnknownProtocol(s.to_owned()))
        }
    }
}

/// One port mapping as the actions and the `PortMappingList` carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// `NewRemoteHost`: the only remote address allowed, empty for any.
    pub remote_host: String,
    /// `NewExternalPort` (0 is the wildcard, refused by IGD:2 gateways with 716).
    pub external_port: u16,
    /// `NewProtocol`.
    pub protocol: Protocol,
    /// `NewInternalPort`.
    pub internal_port: u16,
    /// `NewInternalClient`: the LAN address (an IP literal; never resolve it).
    pub internal_client: String,
    /// `NewEnabled`.
    pub enabled: bool,
    /// `NewPortMappingDescription` (`NewDescription` in a `PortMappingList`): hostile
    /// text, escape it wherever it is shown.
    pub description: String,
    /// `NewLeaseDuration` (`NewLeaseTime` in a `PortMappingList`), seconds; 0 means
    /// permanent in IGD:1 and "the maximum" in IGD:2 (see [`igd2_lease`]).
    pub lease_duration: u32,
}

/// The longest lease IGD:2 allows (one week, WANIPConnection:2 `PortMappingLeaseDuration`).
pub const MAX_LEASE_IGD2: u32 = 604_800;

/// The lease an IGD:2 gateway grants for a requested one: 0 means [`MAX_LEASE_IGD2`]
/// (not "forever" as in IGD:1), and longer requests are clamped to it.
pub fn igd2_lease(requested: u32) -> u32 {
    if requested == 0 {
        MAX_LEASE_IGD2
    } else {
        requested.min(MAX_LEASE_IGD2)
    }
}

/// An action of the WANIPConnection (or WANPPPConnection) service, with its in arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GetExternalIPAddress`: the gateway's public address.
    GetExternalIPAddress,
    /// `GetStatusInfo`: connection status, last error, uptime.
    GetStatusInfo,
    /// `GetConnectionTypeInfo`: e.g. `IP_Routed`.
    GetConnectionTypeInfo,
    /// `GetNATRSIPStatus`: whether NAT is on.
    GetNATRSIPStatus,
    /// `AddPortMapping`: create or refresh exactly this mapping.
    AddPortMapping(PortMapping),
    /// `AddAnyPortMapping` (IGD:2): like AddPortMapping, but the gateway may pick another
    /// external port and returns it.
    AddAnyPortMapping(PortMapping),
    /// `DeletePortMapping`.
    DeletePortMapping {
        /// `NewRemoteHost`.
        remote_host: String,
        /// `NewExternalPort`.
        external_port: u16,
        /// `NewProtocol`.
        protocol: Protocol,
    },
    /// `DeletePortMappingRange` (IGD:2).
    DeletePortMappingRange {
        /// `NewStartPort`.
        start_port: u16,
        /// `NewEndPort`.
        end_port: u16,
        /// `NewProtocol`.
        protocol: Protocol,
        /// `NewManage`: false for the caller's own mappings only.
        manage: bool,
    },
    /// `GetGenericPortMappingEntry`: the mapping at an index (713 past the end).
    GetGenericPortMappingEntry {
        /// `NewPortMappingIndex`.
        index: u32,
    },
    /// `GetSpecificPortMappingEntry`: the mapping with this key (714 if none).
    GetSpecificPortMappingEntry {
        /// `NewRemoteHost`.
        remote_host: String,
        /// `NewExternalPort`.
        external_port: u16,
        /// `NewProtocol`.
        protocol: Protocol,
    },
    /// `GetListOfPortMappings` (IGD:2).
    GetListOfPortMappings {
        /// `NewStartPort`.
        start_port: u16,
        /// `NewEndPort`.
        end_port: u16,
        /// `NewProtocol`.
        protocol: Protocol,
        /// `NewManage`: false for the caller's own mappings only.
        manage: bool,
        /// `NewNumberOfPorts`: the most entries wanted.
        number_of_ports: u16,
    },
}

/// `GetStatusInfo` out arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInfo {
    /// `NewConnectionStatus`, e.g. `Connected`.
    pub connection_status: String,
    /// `NewLastConnectionError`, e.g. `ERROR_NONE`.
    pub last_connection_error: String,
    /// `NewUptime`, seconds.
    pub uptime_seconds: u32,
}

/// `GetConnectionTypeInfo` out arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionTypeInfo {
    /// `NewConnectionType`, e.g. `IP_Routed`.
    pub connection_type: String,
    /// `NewPossibleConnectionTypes`, a comma-separated list.
    pub possible_connection_types: String,
}

/// `GetNATRSIPStatus` out arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRsipStatus {
    /// `NewRSIPAvailable`.
    pub rsip_available: bool,
    /// `NewNATEnabled`.
    pub nat_enabled: bool,
}

/// A successful action result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `GetExternalIPAddress`: `NewExternalIPAddress` (may be empty when disconnected).
    ExternalIp(String),
    /// `GetStatusInfo`.
    StatusInfo(StatusInfo),
    /// `GetConnectionTypeInfo`.
    ConnectionTypeInfo(ConnectionTypeInfo),
    /// `GetNATRSIPStatus`.
    NatRsipStatus(NatRsipStatus),
    /// `AddPortMapping` succeeded.
    Added,
    /// `AddAnyPortMapping` succeeded on `NewReservedPort`.
    AnyAdded {
        /// The external port granted.
        reserved_port: u16,
    },
    /// `DeletePortMapping` succeeded.
    Deleted,
    /// `DeletePortMappingRange` succeeded.
    DeletedRange,
    /// `GetGenericPortMappingEntry` or `GetSpecificPortMappingEntry`; for the latter the
    /// key fields (remote host, external port, protocol) come from the request.
    Entry(PortMapping),
    /// `GetListOfPortMappings`: the parsed `NewPortListing`.
    List(Vec<PortMapping>),
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// The eight arguments of AddPortMapping / AddAnyPortMapping / a generic entry, in
/// template order.
fn mapping_args(m: &PortMapping) -> Vec<(&'static str, String)> {
    vec![
        ("NewRemoteHost", m.remote_host.clone()),
        ("NewExternalPort", m.external_port.to_string()),
        ("NewProtocol", m.protocol.as_str().to_owned()),
        ("NewInternalPort", m.internal_port.to_string()),
        ("NewInternalClient", m.internal_client.clone()),
        ("NewEnabled", bool_str(m.enabled).to_owned()),
        ("NewPortMappingDescription", m.description.clone()),
        ("NewLeaseDuration", m.lease_duration.to_string()),
    ]
}

fn key_args(
    remote_host: &str,
    external_port: u16,
    protocol: Protocol,
) -> Vec<(&'static str, String)> {
    vec![
        ("NewRemoteHost", remote_host.to_owned()),
        ("NewExternalPort", external_port.to_string()),
        ("NewProtocol", protocol.as_str().to_owned()),
    ]
}

fn borrow<'a>(args: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    args.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

impl Action {
    /// The action name as it appears in SOAP.
    pub fn name(&self) -> &'static str {
        match self {
            Action::GetExternalIPAddress => "GetExternalIPAddress",
            Action::GetStatusInfo => "GetStatusInfo",
            Action::GetConnectionTypeInfo => "GetConnectionTypeInfo",
            Action::GetNATRSIPStatus => "GetNATRSIPStatus",
            Action::AddPortMapping(_) => "AddPortMapping",
            Action::AddAnyPortMapping(_) => "AddAnyPortMapping",
            Action::DeletePortMapping { .. } => "DeletePortMapping",
            Action::DeletePortMappingRange { .. } => "DeletePortMappingRange",
            Action::GetGenericPortMappingEntry { .. } => "GetGenericPortMappingEntry",
            Action::GetSpecificPortMappingEntry { .. } => "GetSpecificPortMappingEntry",
            Action::GetListOfPortMappings { .. } => "GetListOfPortMappings",
        }
    }

    /// The in arguments, in the order the service template lists them.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        match self {
            Action::GetExternalIPAddress
            | Action::GetStatusInfo
            | Action::GetConnectionTypeInfo
            | Action::GetNATRSIPStatus => Vec::new(),
            Action::AddPortMapping(m) | Action::AddAnyPortMapping(m) => mapping_args(m),
            Action::DeletePortMapping {
                remote_host,
                external_port,
                protocol,
            }
            | Action::GetSpecificPortMappingEntry {
                remote_host,
                external_port,
                protocol,
            } => key_args(remote_host, *external_port, *protocol),
            Action::DeletePortMappingRange {
                start_port,
                end_port,
                protocol,
                manage,
            } => vec![
                ("NewStartPort", start_port.to_string()),
                ("NewEndPort", end_port.to_string()),
                ("NewProtocol", protocol.as_str().to_owned()),
                ("NewManage", bool_str(*manage).to_owned()),
            ],
            Action::GetGenericPortMappingEntry { index } => {
                vec![("NewPortMappingIndex", index.to_string())]
            }
            Action::GetListOfPortMappings {
                start_port,
                end_port,
                protocol,
                manage,
                number_of_ports,
            } => vec![
                ("NewStartPort", start_port.to_string()),
                ("NewEndPort", end_port.to_string()),
                ("NewProtocol", protocol.as_str().to_owned()),
                ("NewManage", bool_str(*manage).to_owned()),
                ("NewNumberOfPorts", number_of_ports.to_string()),
            ],
        }
    }

    /// The SOAP request for this action at a service of type `service_type`.
    pub fn request(&self, service_type: &str) -> SoapRequest {
        soap::build_request(service_type, self.name(), &borrow(&self.args()))
    }

    /// Parses the device's answer to this action. A fault is [`SoapError::Upnp`].
    pub fn parse_response(&self, body: &[u8]) -> Result<Response, SoapError> {
        let out = soap::parse_response(body, self.name())?;
        let args = Args(&out);
        Ok(match self {
            Action::GetExternalIPAddress => {
                Response::ExternalIp(args.trimmed("NewExternalIPAddress")?.to_owned())
            }
            Action::GetStatusInfo => Response::StatusInfo(StatusInfo {
                connection_status: args.trimmed("NewConnectionStatus")?.to_owned(),
                last_connection_error: args.trimmed("NewLastConnectionError")?.to_owned(),
                uptime_seconds: args.number("NewUptime")?,
            }),
            Action::GetConnectionTypeInfo => Response::ConnectionTypeInfo(ConnectionTypeInfo {
                connection_type: args.trimmed("NewConnectionType")?.to_owned(),
                possible_connection_types: args.trimmed("NewPossibleConnectionTypes")?.to_owned(),
            }),
            Action::GetNATRSIPStatus => Response::NatRsipStatus(NatRsipStatus {
                rsip_available: args.boolean("NewRSIPAvailable")?,
                nat_enabled: args.boolean("NewNATEnabled")?,
            }),
            Action::AddPortMapping(_) => Response::Added,
            Action::AddAnyPortMapping(_) => Response::AnyAdded {
                reserved_port: args.number("NewReservedPort")?,
            },
            Action::DeletePortMapping { .. } => Response::Deleted,
            Action::DeletePortMappingRange { .. } => Response::DeletedRange,
            Action::GetGenericPortMappingEntry { .. } => Response::Entry(args.mapping()?),
            Action::GetSpecificPortMappingEntry {
                remote_host,
                external_port,
                protocol,
            } => Response::Entry(PortMapping {
                // The answer carries only the value part (WANIPConnection:1); the key is
                // what we asked for.
                remote_host: remote_host.clone(),
                external_port: *external_port,
                protocol: *protocol,
                internal_port: args.number("NewInternalPort")?,
                internal_client: args.trimmed("NewInternalClient")?.to_owned(),
                enabled: args.boolean_or("NewEnabled", true)?,
                description: args
                    .raw("NewPortMappingDescription")
                    .unwrap_or_default()
                    .to_owned(),
                lease_duration: args.number_or("NewLeaseDuration", 0)?,
            }),
            Action::GetListOfPortMappings { .. } => {
                let listing = args.required("NewPortListing")?;
                if listing.trim().is_empty() {
                    Response::List(Vec::new())
                } else {
                    Response::List(parse_port_mapping_list(listing)?)
                }
            }
        })
    }

    /// Device side: the typed action of a parsed request. Unknown actions are
    /// [`SoapError::UnknownAction`] (answer 401); missing or invalid arguments are
    /// [`SoapError::MissingArgument`] / [`SoapError::InvalidArgument`] (answer 402).
    ///
    /// `NewRemoteHost`, `NewEnabled`, `NewPortMappingDescription` and
    /// `NewLeaseDuration` may be omitted (empty, enabled, empty, 0), as deployed control
    /// points sometimes do; the other arguments are required.
    pub fn from_call(call: &SoapCall) -> Result<Action, SoapError> {
        let args = Args(&call.args);
        let key = || -> Result<(String, u16, Protocol), SoapError> {
            Ok((
                args.trimmed_or_empty("NewRemoteHost"),
                args.number("NewExternalPort")?,
                args.protocol("NewProtocol")?,
            ))
        };
        Ok(match call.action.as_str() {
            "GetExternalIPAddress" => Action::GetExternalIPAddress,
            "GetStatusInfo" => Action::GetStatusInfo,
            "GetConnectionTypeInfo" => Action::GetConnectionTypeInfo,
            "GetNATRSIPStatus" => Action::GetNATRSIPStatus,
            "AddPortMapping" => Action::AddPortMapping(args.mapping()?),
            "AddAnyPortMapping" => Action::AddAnyPortMapping(args.mapping()?),
            "DeletePortMapping" => {
                let (remote_host, external_port, protocol) = key()?;
                Action::DeletePortMapping {
                    remote_host,
                    external_port,
                    protocol,
                }
            }
            "GetSpecificPortMappingEntry" => {
                let (remote_host, external_port, protocol) = key()?;
                Action::GetSpecificPortMappingEntry {
                    remote_host,
                    external_port,
                    protocol,
                }
            }
            "DeletePortMappingRange" => Action::DeletePortMappingRange {
                start_port: args.number("NewStartPort")?,
                end_port: args.number("NewEndPort")?,
                protocol: args.protocol("NewProtocol")?,
                manage: args.boolean("NewManage")?,
            },
            "GetGenericPortMappingEntry" => Action::GetGenericPortMappingEntry {
                index: args.number("NewPortMappingIndex")?,
            },
            "GetListOfPortMappings" => Action::GetListOfPortMappings {
                start_port: args.number("NewStartPort")?,
                end_port: args.number("NewEndPort")?,
                protocol: args.protocol("NewProtocol")?,
                manage: args.boolean("NewManage")?,
                number_of_ports: args.number("NewNumberOfPorts")?,
            },
            other => return Err(SoapError::UnknownAction(other.to_owned())),
        })
    }

    /// Device side: the out arguments of `response` as an answer to this action, in
    /// template order. A `GetSpecificPortMappingEntry` answer carries only the five value
    /// arguments; every other entry answer carries all eight.
    pub fn response_args(&self, response: &Response) -> Vec<(&'static str, String)> {
        match response {
            Response::ExternalIp(ip) => vec![("NewExternalIPAddress", ip.clone())],
            Response::StatusInfo(s) => vec![
                ("NewConnectionStatus", s.connection_status.clone()),
                ("NewLastConnectionError", s.last_connection_error.clone()),
                ("NewUptime", s.uptime_seconds.to_string()),
            ],
            Response::ConnectionTypeInfo(c) => vec![
                ("NewConnectionType", c.connection_type.clone()),
                (
                    "NewPossibleConnectionTypes",
                    c.possible_connection_types.clone(),
                ),
            ],
            Response::NatRsipStatus(n) => vec![
                ("NewRSIPAvailable", bool_str(n.rsip_available).to_owned()),
                ("NewNATEnabled", bool_str(n.nat_enabled).to_owned()),
            ],
            Response::Added | Response::Deleted | Response::DeletedRange => Vec::new(),
            Response::AnyAdded { reserved_port } => {
                vec![("NewReservedPort", reserved_port.to_string())]
            }
            Response::Entry(m) => {
                let mut args = mapping_args(m);
                if matches!(self, Action::GetSpecificPortMappingEntry { .. }) {
                    args.drain(..3);
                }
                args
            }
            Response::List(entries) => vec![("NewPortListing", build_port_mapping_list(entries))],
        }
    }

    /// Device side: the SOAP body answering this action with `response`.
    pub fn build_response(&self, service_type: &str, response: &Response) -> Vec<u8> {
        soap::build_response(
            service_type,
            self.name(),
            &borrow(&self.response_args(response)),
        )
    }
}

/// Arguments by name (first occurrence wins), with strict value parsing.
struct Args<'a>(&'a [(String, String)]);

impl<'a> Args<'a> {
    fn raw(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &'static str) -> Result<&'a str, SoapError> {
        self.raw(name).ok_or(SoapError::MissingArgument(name))
    }

    fn trimmed(&self, name: &'static str) -> Result<&'a str, SoapError> {
        self.required(name).map(str::trim)
    }

    fn trimmed_or_empty(&self, name: &str) -> String {
        self.raw(name).unwrap_or_default().trim().to_owned()
    }

    fn number<T: FromStr>(&self, name: &'static str) -> Result<T, SoapError> {
        parse_number(name, self.required(name)?)
    }

    fn number_or<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, SoapError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => parse_number(name, v),
        }
    }

    fn boolean(&self, name: &'static str) -> Result<bool, SoapError> {
        parse_bool(name, self.required(name)?)
    }

    fn boolean_or(&self, name: &'static str, default: bool) -> Result<bool, SoapError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => parse_bool(name, v),
        }
    }

    fn protocol(&self, name: &'static str) -> Result<Protocol, SoapError> {
        let value = self.required(name)?;
        value.parse().map_err(|_| invalid(name, value))
    }

    /// The eight mapping arguments of AddPortMapping and GetGenericPortMappingEntry.
    fn mapping(&self) -> Result<PortMapping, SoapError> {
        Ok(PortMapping {
            remote_host: self.trimmed_or_empty("NewRemoteHost"),
            external_port: self.number("NewExternalPort")?,
            protocol: self.protocol("NewProtocol")?,
            internal_port: self.number("NewInternalPort")?,
            internal_client: self.trimmed("NewInternalClient")?.to_owned(),
            enabled: self.boolean_or("NewEnabled", true)?,
            description: self
                .raw("NewPortMappingDescription")
                .unwrap_or_default()
                .to_owned(),
            lease_duration: self.number_or("NewLeaseDuration", 0)?,
        })
    }
}

#[cfg(test)]
mod tests;
