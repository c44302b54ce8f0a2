//! The gateway side of description: the documents a Plugline gateway serves about itself,
//! and the SSDP targets it advertises.
//!
//! A gateway serves two root descriptions at once (see the IGD:1/IGD:2 note in the
//! gateway notes): [`ROOT_DESC_V2_PATH`] describes an InternetGatewayDevice:2 and
//! [`ROOT_DESC_V1_PATH`] an InternetGatewayDevice:1. Both describe the same three devices
//! (same UDNs, see [`udn_of`]) with the same control and event URLs, so whichever a
//! control point found, its SOAP requests reach the one table. Only the device types, the
//! WANIPConnection version and its service description differ.
//!
//! The device tree is the one the IGD templates define (UPnP IGD:1 and IGD:2, "Device
//! Model"):
//!
//! ```text
//! InternetGatewayDevice:{1,2}            Layer3Forwarding:1
//! └── WANDevice:{1,2}                    WANCommonInterfaceConfig:1
//!     └── WANConnectionDevice:{1,2}      WANIPConnection:{1,2}
//! ```
//!
//! Every function here is pure: the documents are built from a [`DeviceInfo`] and a
//! version number, every text that comes from configuration is XML-escaped (and stripped
//! of control characters XML cannot carry), and all URLs are relative to the description's
//! own location (no `URLBase`, which UDA 1.1 deprecated), so the same document is right on
//! every interface the gateway listens on.
//!
//! A `version` argument of `1` selects IGD:1; any other value selects IGD:2.

use crate::soap::escape;
use crate::urn;

/// Path of the IGD:2 root description.
pub const ROOT_DESC_V2_PATH: &str = "/rootDesc.xml";
/// Path of the IGD:1 root description.
pub const ROOT_DESC_V1_PATH: &str = "/rootDesc1.xml";
/// Path of the WANIPConnection:2 service description.
pub const WANIPCN_SCPD_V2_PATH: &str = "/scpd/WANIPCn.xml";
/// Path of the WANIPConnection:1 service description.
pub const WANIPCN_SCPD_V1_PATH: &str = "/scpd/WANIPCn1.xml";
/// Path of the WANCommonInterfaceConfig:1 service description (both versions).
pub const WANCFG_SCPD_PATH: &str = "/scpd/WANCfg.xml";
/// Path of the Layer3Forwarding:1 service description (both versions).
pub const L3F_SCPD_PATH: &str = "/scpd/L3F.xml";
/// Control URL of WANIPConnection (both versions).
pub const IPCONN_CONTROL_PATH: &str = "/ctl/IPConn";
/// Control URL of WANCommonInterfaceConfig.
pub const WANCFG_CONTROL_PATH: &str = "/ctl/CmnIfCfg";
/// Control URL of Layer3Forwarding.
pub const L3F_CONTROL_PATH: &str = "/ctl/L3F";
/// Event subscription URL of WANIPConnection (both versions).
pub const IPCONN_EVENT_PATH: &str = "/evt/IPConn";
/// Event subscription URL of WANCommonInterfaceConfig.
pub const WANCFG_EVENT_PATH: &str = "/evt/CmnIfCfg";
/// Event subscription URL of Layer3Forwarding.
pub const L3F_EVENT_PATH: &str = "/evt/L3F";

/// `serviceId` of Layer3Forwarding (IGD template).
pub const L3F_SERVICE_ID: &str = "urn:upnp-org:serviceId:L3Forwarding1";
/// `serviceId` of WANCommonInterfaceConfig (IGD template).
pub const WANCFG_SERVICE_ID: &str = "urn:upnp-org:serviceId:WANCommonIFC1";
/// `serviceId` of WANIPConnection (IGD template; the same id in IGD:1 and IGD:2).
pub const IPCONN_SERVICE_ID: &str = "urn:upnp-org:serviceId:WANIPConn1";

/// The largest `configId` UDA 2.0 allows (§1.2.2: 0 to 16777215; higher values are
/// reserved). [`DeviceInfo::config_id`] should stay within it.
pub const MAX_CONFIG_ID: u32 = 16_777_215;

/// The evented state variables of WANIPConnection:1, as its service description declares
/// them (`sendEvents="yes"`); the initial GENA NOTIFY carries each of them.
pub const IPCONN_EVENTED_V1: [&str; 4] = [
    "PossibleConnectionTypes",
    "ConnectionStatus",
    "ExternalIPAddress",
    "PortMappingNumberOfEntries",
];

/// The evented state variables of WANIPConnection:2: those of version 1 plus
/// `SystemUpdateID`, which the WANIPConnection:2 template requires and events.
pub const IPCONN_EVENTED_V2: [&str; 5] = [
    "PossibleConnectionTypes",
    "ConnectionStatus",
    "ExternalIPAddress",
    "PortMappingNumberOfEntries",
    "SystemUpdateID",
];

/// Who the gateway is: the configurable identity written into its descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The root device's UUID, bare (`5f1d2a6e-…`, no `uuid:`), generated once and kept
    /// across restarts. A leading `uuid:` is tolerated and ignored.
    pub uuid: String,
    /// `friendlyName` (user configuration: escaped; UDA says it should be under 64
    /// characters, which is the caller's to enforce).
    pub friendly_name: String,
    /// `manufacturer`.
    pub manufacturer: String,
    /// `manufacturerURL` (omitted when empty).
    pub manufacturer_url: String,
    /// `modelName`.
    pub model_name: String,
    /// `modelNumber` (omitted when empty).
    pub model_number: String,
    /// `serialNumber` (omitted when empty).
    pub serial_number: String,
    /// `presentationURL` of the root device, e.g. the admin page (omitted when `None`).
    pub presentation_url: Option<String>,
    /// `configId` of the IGD:2 description (UDA 2.0 §2.1), also sent as
    /// `CONFIGID.UPNP.ORG`; change it whenever a description changes. Keep it at most
    /// [`MAX_CONFIG_ID`].
    pub config_id: u32,
}

/// One of the three devices of the gateway's device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddedDevice {
    /// The root InternetGatewayDevice.
    Root,
    /// The WANDevice embedded in the root.
    WanDevice,
    /// The WANConnectionDevice embedded in the WANDevice.
    WanConnectionDevice,
}

/// One SSDP advertisement target (UDA 2.0 §1.1, §1.2.2): what goes into `NT` (or is
/// matched against a search's `ST`) and the matching `USN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SsdpTarget {
    /// `NT`: `upnp:rootdevice`, `uuid:…`, a device type or a service type.
    pub nt: String,
    /// `USN`: `uuid:…`, or `uuid:…::<NT>`.
    pub usn: String,
}

/// The bare root UUID, without a `uuid:` prefix the configuration may have added.
fn bare_uuid(info: &DeviceInfo) -> &str {
    let uuid = info.uuid.trim();
    match uuid.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("uuid:") => &uuid[5..],
        _ => uuid,
    }
}

/// The UDN (`uuid:…`) of one of the gateway's devices.
///
/// The root device uses the configured UUID as it is. The embedded devices use the same
/// UUID with its last hexadecimal digit XORed with 1 (WANDevice) or 2
/// (WANConnectionDevice), so the three are distinct, stable across restarts, and still
/// well-formed UUIDs when the configured one is (the digit changed belongs to the node
/// field, so version and variant are kept). A UUID without any hexadecimal digit gets
/// `-1` or `-2` appended instead.
pub fn udn_of(info: &DeviceInfo, device: EmbeddedDevice) -> String {
    let uuid = bare_uuid(info);
    let flip = match device {
        EmbeddedDevice::Root => return format!("uuid:{uuid}"),
        EmbeddedDevice::WanDevice => 1,
        EmbeddedDevice::WanConnectionDevice => 2,
    };
    let Some((at, digit)) = uuid
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_hexdigit())
    else {
        return format!("uuid:{uuid}-{flip}");
    };
    let value = digit.to_digit(16).unwrap_or(0) ^ flip;
    let mut changed = char::from_digit(value, 16).unwrap_or('0');
    if digit.is_ascii_uppercase() {
        changed = changed.to_ascii_uppercase();
    }
    let mut out = String::with_capacity(uuid.len() + 5);
    out.push_str("uuid:");
    out.push_str(&uuid[..at]);
    out.push(changed);
    out.push_str(&uuid[at + digit.len_utf8()..]);
    out
}

/// A service of the device tree, as the root description lists it.
struct ServiceEntry {
    service_type: &'static str,
    service_id: &'static str,
    scpd: &'static str,
    control: &'static str,
    event: &'static str,
}

/// A device of the device tree (each one embeds the next in the array).
struct DeviceEntry {
    device: EmbeddedDevice,
    device_type: &'static str,
    /// `friendlyName` and `modelName` of an embedded device; the root uses `DeviceInfo`.
    embedded_name: &'static str,
    service: ServiceEntry,
}

/// The gateway's device tree for one version, root first, each device embedding the next.
/// The one source of truth for both [`root_description`] and [`ssdp_targets`].
fn tree(version: u8) -> [DeviceEntry; 3] {
    let v1 = version == 1;
    [
        DeviceEntry {
            device: EmbeddedDevice::Root,
            device_type: if v1 { urn::IGD_1 } else { urn::IGD_2 },
            embedded_name: "",
            service: ServiceEntry {
                service_type: urn::LAYER3_FORWARDING_1,
                service_id: L3F_SERVICE_ID,
                scpd: L3F_SCPD_PATH,
                control: L3F_CONTROL_PATH,
                event: L3F_EVENT_PATH,
            },
        },
        DeviceEntry {
            device: EmbeddedDevice::WanDevice,
            device_type: if v1 {
                urn::WAN_DEVICE_1
            } else {
                urn::WAN_DEVICE_2
            },
            embedded_name: "WANDevice",
            service: ServiceEntry {
                service_type: urn::WAN_COMMON_INTERFACE_CONFIG_1,
                service_id: WANCFG_SERVICE_ID,
                scpd: WANCFG_SCPD_PATH,
                control: WANCFG_CONTROL_PATH,
                event: WANCFG_EVENT_PATH,
            },
        },
        DeviceEntry {
            device: EmbeddedDevice::WanConnectionDevice,
            device_type: if v1 {
                urn::WAN_CONNECTION_DEVICE_1
            } else {
                urn::WAN_CONNECTION_DEVICE_2
            },
            embedded_name: "WANConnectionDevice",
            service: ServiceEntry {
                service_type: if v1 {
                    urn::WAN_IP_CONNECTION_1
                } else {
                    urn::WAN_IP_CONNECTION_2
                },
                service_id: IPCONN_SERVICE_ID,
                scpd: if v1 {
                    WANIPCN_SCPD_V1_PATH
                } else {
                    WANIPCN_SCPD_V2_PATH
                },
                control: IPCONN_CONTROL_PATH,
                event: IPCONN_EVENT_PATH,
            },
        },
    ]
}

/// Text made safe for XML element content or a quoted attribute: control characters
/// (which XML 1.0 cannot carry, or which have no business in a name) are dropped, then
/// the five special characters are escaped.
fn xml_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    escape(&clean).into_owned()
}

/// `<name>escaped text</name>`.
fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&xml_text(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Like [`element`], but nothing at all when `text` is empty (optional elements).
fn optional_element(out: &mut String, name: &str, text: &str) {
    if !text.trim().is_empty() {
        element(out, name, text);
    }
}

const PROLOG: &str = "<?xml version=\"1.0\"?>\n";

/// The root device description of the given IGD version.
///
/// `version` 1: InternetGatewayDevice:1 → WANDevice:1 → WANConnectionDevice:1 →
/// WANIPConnection:1, `specVersion` 1.0, no `configId` (UDA 1.0 has none). Any other
/// `version`: InternetGatewayDevice:2 → WANDevice:2 → WANConnectionDevice:2 →
/// WANIPConnection:2, `specVersion` 2.0 and `configId="N"` on `<root>` (UDA 2.0 §2.1).
/// In both, the root device carries Layer3Forwarding:1 and the WANDevice carries
/// WANCommonInterfaceConfig:1. The URLs are the path constants of this module, relative
/// to the description's location; the UDNs are those of [`udn_of`].
pub fn root_description(info: &DeviceInfo, version: u8) -> String {
    let v1 = version == 1;
    let mut out = String::with_capacity(3072);
    out.push_str(PROLOG);
    out.push_str("<root xmlns=\"urn:schemas-upnp-org:device-1-0\"");
    if !v1 {
        out.push_str(" configId=\"");
        out.push_str(&info.config_id.to_string());
        out.push('"');
    }
    out.push_str(">\n<specVersion><major>");
    out.push_str(if v1 { "1" } else { "2" });
    out.push_str("</major><minor>0</minor></specVersion>\n");
    let devices = tree(version);
    for entry in &devices {
        write_device_head(&mut out, info, entry);
    }
    // Close innermost first: each device's deviceList holds the next one, and the root's
    // presentationURL comes after its deviceList (UDA device schema order).
    for (depth, entry) in devices.iter().enumerate().rev() {
        if depth + 1 < devices.len() {
            out.push_str("</deviceList>\n");
        }
        if entry.device == EmbeddedDevice::Root {
            if let Some(url) = &info.presentation_url {
                optional_element(&mut out, "presentationURL", url);
            }
        }
        out.push_str("</device>\n");
    }
    out.push_str("</root>\n");
    out
}

/// Writes `<device>`, its identity, its serviceList, and (unless it is the last of the
/// tree) the opening `<deviceList>` for the device embedded in it.
fn write_device_head(out: &mut String, info: &DeviceInfo, entry: &DeviceEntry) {
    out.push_str("<device>");
    element(out, "deviceType", entry.device_type);
    let (friendly, model) = match entry.device {
        EmbeddedDevice::Root => (info.friendly_name.as_str(), info.model_name.as_str()),
        _ => (entry.embedded_name, entry.embedded_name),
    };
    element(out, "friendlyName", friendly);
    element(out, "manufacturer", &info.manufacturer);
    optional_element(out, "manufacturerURL", &info.manufacturer_url);
    element(out, "modelName", model);
    optional_element(out, "modelNumber", &info.model_number);
    optional_element(out, "serialNumber", &info.serial_number);
    element(out, "UDN", &udn_of(info, entry.device));
    out.push_str("\n<serviceList><service>");
    let service = &entry.service;
    element(out, "serviceType", service.service_type);
    element(out, "serviceId", service.service_id);
    element(out, "SCPDURL", service.scpd);
    element(out, "controlURL", service.control);
    element(out, "eventSubURL", service.event);
    out.push_str("</service></serviceList>\n");
    if entry.device != EmbeddedDevice::WanConnectionDevice {
        out.push_str("<deviceList>\n");
    }
}

/// The SSDP targets of the gateway's description of the given version (UDA 2.0 §1.1,
/// §1.2.2), in this order:
///
/// - the root device: `upnp:rootdevice` (USN `uuid:ROOT::upnp:rootdevice`), `uuid:ROOT`
///   (USN the same) and its device type (USN `uuid:ROOT::<type>`);
/// - each embedded device: `uuid:X` and its device type (USN `uuid:X::<type>`);
/// - each service type: USN `uuid:<its device>::<type>`.
///
/// That is 3 + 2 × 2 + 3 = 10 targets per version, all distinct. The `upnp:rootdevice`
/// and the three `uuid:` targets are the same in both versions (one device tree, one
/// identity); a caller that advertises both versions should list those once (with the
/// IGD:2 location) if it wants a search for them answered once.
pub fn ssdp_targets(info: &DeviceInfo, version: u8) -> Vec<SsdpTarget> {
    let devices = tree(version);
    let mut targets = Vec::with_capacity(10);
    for entry in &devices {
        let udn = udn_of(info, entry.device);
        if entry.device == EmbeddedDevice::Root {
            targets.push(SsdpTarget {
                nt: "upnp:rootdevice".to_owned(),
                usn: format!("{udn}::upnp:rootdevice"),
            });
        }
        targets.push(SsdpTarget {
            nt: udn.clone(),
            usn: udn.clone(),
        });
        targets.push(SsdpTarget {
            nt: entry.device_type.to_owned(),
            usn: format!("{udn}::{}", entry.device_type),
        });
    }
    for entry in &devices {
        let udn = udn_of(info, entry.device);
        targets.push(SsdpTarget {
            nt: entry.service.service_type.to_owned(),
            usn: format!("{udn}::{}", entry.service.service_type),
        });
    }
    targets
}

// ----- service descriptions (UDA 2.0 §2.5) -----

/// An action argument: name, direction (`true` = in) and related state variable.
type Arg = (&'static str, bool, &'static str);

/// One action of a service description.
struct ActionSpec {
    name: &'static str,
    args: &'static [Arg],
}

/// One state variable of a service description.
struct VarSpec {
    name: &'static str,
    data_type: &'static str,
    events: bool,
    allowed: &'static [&'static str],
    range: Option<(u32, u32)>,
}

const fn var(name: &'static str, data_type: &'static str, events: bool) -> VarSpec {
    VarSpec {
        name,
        data_type,
        events,
        allowed: &[],
        range: None,
    }
}

const IN: bool = true;
const OUT: bool = false;

/// The eight arguments that describe a mapping, all `in` (AddPortMapping, AddAnyPortMapping).
const MAPPING_IN: [Arg; 8] = [
    ("NewRemoteHost", IN, "RemoteHost"),
    ("NewExternalPort", IN, "ExternalPort"),
    ("NewProtocol", IN, "PortMappingProtocol"),
    ("NewInternalPort", IN, "InternalPort"),
    ("NewInternalClient", IN, "InternalClient"),
    ("NewEnabled", IN, "PortMappingEnabled"),
    ("NewPortMappingDescription", IN, "PortMappingDescription"),
    ("NewLeaseDuration", IN, "PortMappingLeaseDuration"),
];

const ADD_ANY_ARGS: [Arg; 9] = [
    MAPPING_IN[0],
    MAPPING_IN[1],
    MAPPING_IN[2],
    MAPPING_IN[3],
    MAPPING_IN[4],
    MAPPING_IN[5],
    MAPPING_IN[6],
    MAPPING_IN[7],
    ("NewReservedPort", OUT, "ExternalPort"),
];

/// The actions of WANIPConnection:1 the gateway implements (the `actions::Action` set
/// without the IGD:2 additions). Optional template actions it does not implement
/// (SetConnectionType, RequestConnection, ForceTermination, …) are not listed, so no
/// control point is invited to call them.
const IPCONN_ACTIONS_V1: [ActionSpec; 8] = [
    ActionSpec {
        name: "GetConnectionTypeInfo",
        args: &[
            ("NewConnectionType", OUT, "ConnectionType"),
            ("NewPossibleConnectionTypes", OUT, "PossibleConnectionTypes"),
        ],
    },
    ActionSpec {
        name: "GetStatusInfo",
        args: &[
            ("NewConnectionStatus", OUT, "ConnectionStatus"),
            ("NewLastConnectionError", OUT, "LastConnectionError"),
            ("NewUptime", OUT, "Uptime"),
        ],
    },
    ActionSpec {
        name: "GetNATRSIPStatus",
        args: &[
            ("NewRSIPAvailable", OUT, "RSIPAvailable"),
            ("NewNATEnabled", OUT, "NATEnabled"),
        ],
    },
    ActionSpec {
        name: "GetGenericPortMappingEntry",
        args: &[
            ("NewPortMappingIndex", IN, "PortMappingNumberOfEntries"),
            ("NewRemoteHost", OUT, "RemoteHost"),
            ("NewExternalPort", OUT, "ExternalPort"),
            ("NewProtocol", OUT, "PortMappingProtocol"),
            ("NewInternalPort", OUT, "InternalPort"),
            ("NewInternalClient", OUT, "InternalClient"),
            ("NewEnabled", OUT, "PortMappingEnabled"),
            ("NewPortMappingDescription", OUT, "PortMappingDescription"),
            ("NewLeaseDuration", OUT, "PortMappingLeaseDuration"),
        ],
    },
    ActionSpec {
        name: "GetSpecificPortMappingEntry",
        args: &[
            ("NewRemoteHost", IN, "RemoteHost"),
            ("NewExternalPort", IN, "ExternalPort"),
            ("NewProtocol", IN, "PortMappingProtocol"),
            ("NewInternalPort", OUT, "InternalPort"),
            ("NewInternalClient", OUT, "InternalClient"),
            ("NewEnabled", OUT, "PortMappingEnabled"),
            ("NewPortMappingDescription", OUT, "PortMappingDescription"),
            ("NewLeaseDuration", OUT, "PortMappingLeaseDuration"),
        ],
    },
    ActionSpec {
        name: "AddPortMapping",
        args: &MAPPING_IN,
    },
    ActionSpec {
        name: "DeletePortMapping",
        args: &[
            ("NewRemoteHost", IN, "RemoteHost"),
            ("NewExternalPort", IN, "ExternalPort"),
            ("NewProtocol", IN, "PortMappingProtocol"),
        ],
    },
    ActionSpec {
        name: "GetExternalIPAddress",
        args: &[("NewExternalIPAddress", OUT, "ExternalIPAddress")],
    },
];

/// The actions WANIPConnection:2 adds.
const IPCONN_ACTIONS_V2_EXTRA: [ActionSpec; 3] = [
    ActionSpec {
        name: "AddAnyPortMapping",
        args: &ADD_ANY_ARGS,
    },
    ActionSpec {
        name: "DeletePortMappingRange",
        args: &[
            ("NewStartPort", IN, "ExternalPort"),
            ("NewEndPort", IN, "ExternalPort"),
            ("NewProtocol", IN, "PortMappingProtocol"),
            ("NewManage", IN, "A_ARG_TYPE_Manage"),
        ],
    },
    ActionSpec {
        name: "GetListOfPortMappings",
        args: &[
            ("NewStartPort", IN, "ExternalPort"),
            ("NewEndPort", IN, "ExternalPort"),
            ("NewProtocol", IN, "PortMappingProtocol"),
            ("NewManage", IN, "A_ARG_TYPE_Manage"),
            ("NewNumberOfPorts", IN, "PortMappingNumberOfEntries"),
            ("NewPortListing", OUT, "A_ARG_TYPE_PortListing"),
        ],
    },
];

const CONNECTION_TYPES: &[&str] = &["Unconfigured", "IP_Routed", "IP_Bridged"];
const CONNECTION_STATUSES: &[&str] = &[
    "Unconfigured",
    "Connecting",
    "Connected",
    "PendingDisconnect",
    "Disconnecting",
    "Disconnected",
];
const CONNECTION_ERRORS: &[&str] = &[
    "ERROR_NONE",
    "ERROR_COMMAND_ABORTED",
    "ERROR_NOT_ENABLED_FOR_INTERNET",
    "ERROR_USER_DISCONNECT",
    "ERROR_ISP_DISCONNECT",
    "ERROR_IDLE_DISCONNECT",
    "ERROR_FORCED_DISCONNECT",
    "ERROR_NO_CARRIER",
    "ERROR_IP_CONFIGURATION",
    "ERROR_UNKNOWN",
];
const PROTOCOLS: &[&str] = &["TCP", "UDP"];

/// The state variables of WANIPConnection. The version only changes the ranges
/// (IGD:2 bounds leases to 0..=604800 and internal ports to 1..=65535) and adds
/// `SystemUpdateID` and the `A_ARG_TYPE_*` argument types; `A_ARG_TYPE_*` variables are
/// never evented (UDA 2.0 §2.5).
fn ipconn_variables(v1: bool) -> Vec<VarSpec> {
    let mut vars = vec![
        var("ConnectionType", "string", false),
        VarSpec {
            allowed: CONNECTION_TYPES,
            ..var("PossibleConnectionTypes", "string", true)
        },
        VarSpec {
            allowed: CONNECTION_STATUSES,
            ..var("ConnectionStatus", "string", true)
        },
        var("Uptime", "ui4", false),
        VarSpec {
            allowed: CONNECTION_ERRORS,
            ..var("LastConnectionError", "string", false)
        },
        var("RSIPAvailable", "boolean", false),
        var("NATEnabled", "boolean", false),
        var("ExternalIPAddress", "string", true),
        var("PortMappingNumberOfEntries", "ui2", true),
        var("PortMappingEnabled", "boolean", false),
        VarSpec {
            range: (!v1).then_some((0, crate::actions::MAX_LEASE_IGD2)),
            ..var("PortMappingLeaseDuration", "ui4", false)
        },
        var("RemoteHost", "string", false),
        var("ExternalPort", "ui2", false),
        VarSpec {
            range: (!v1).then_some((1, 65_535)),
            ..var("InternalPort", "ui2", false)
        },
        VarSpec {
            allowed: PROTOCOLS,
            ..var("PortMappingProtocol", "string", false)
        },
        var("InternalClient", "string", false),
        var("PortMappingDescription", "string", false),
    ];
    if !v1 {
        vars.push(var("SystemUpdateID", "ui4", true));
        vars.push(var("A_ARG_TYPE_Manage", "boolean", false));
        vars.push(var("A_ARG_TYPE_PortListing", "string", false));
    }
    vars
}

/// The service description (SCPD) of WANIPConnection of the given version.
///
/// Version 1 lists GetConnectionTypeInfo, GetStatusInfo, GetNATRSIPStatus,
/// GetGenericPortMappingEntry, GetSpecificPortMappingEntry, AddPortMapping,
/// DeletePortMapping and GetExternalIPAddress; any other version adds AddAnyPortMapping,
/// DeletePortMappingRange and GetListOfPortMappings, `SystemUpdateID` and the
/// `A_ARG_TYPE_Manage` / `A_ARG_TYPE_PortListing` argument types. Only actions the gateway
/// implements are listed. Evented (`sendEvents="yes"`): PossibleConnectionTypes,
/// ConnectionStatus, ExternalIPAddress, PortMappingNumberOfEntries (and SystemUpdateID in
/// version 2): see [`IPCONN_EVENTED_V1`] and [`IPCONN_EVENTED_V2`].
///
/// Service descriptions are written as UDA 1.0 documents (`specVersion` 1.0), which need
/// no `configId`.
pub fn scpd_wan_ip_connection(version: u8) -> String {
    let v1 = version == 1;
    let mut actions: Vec<&ActionSpec> = IPCONN_ACTIONS_V1.iter().collect();
    if !v1 {
        actions.extend(IPCONN_ACTIONS_V2_EXTRA.iter());
    }
    scpd(&actions, &ipconn_variables(v1))
}

/// The service description of WANCommonInterfaceConfig:1: GetCommonLinkProperties,
/// GetTotalBytesSent, GetTotalBytesReceived, GetTotalPacketsSent and
/// GetTotalPacketsReceived; PhysicalLinkStatus is evented.
pub fn scpd_wan_common_interface_config() -> String {
    const ACTIONS: [ActionSpec; 5] = [
        ActionSpec {
            name: "GetCommonLinkProperties",
            args: &[
                ("NewWANAccessType", OUT, "WANAccessType"),
                (
                    "NewLayer1UpstreamMaxBitRate",
                    OUT,
                    "Layer1UpstreamMaxBitRate",
                ),
                (
                    "NewLayer1DownstreamMaxBitRate",
                    OUT,
                    "Layer1DownstreamMaxBitRate",
                ),
                ("NewPhysicalLinkStatus", OUT, "PhysicalLinkStatus"),
            ],
        },
        ActionSpec {
            name: "GetTotalBytesSent",
            args: &[("NewTotalBytesSent", OUT, "TotalBytesSent")],
        },
        ActionSpec {
            name: "GetTotalBytesReceived",
            args: &[("NewTotalBytesReceived", OUT, "TotalBytesReceived")],
        },
        ActionSpec {
            name: "GetTotalPacketsSent",
            args: &[("NewTotalPacketsSent", OUT, "TotalPacketsSent")],
        },
        ActionSpec {
            name: "GetTotalPacketsReceived",
            args: &[("NewTotalPacketsReceived", OUT, "TotalPacketsReceived")],
        },
    ];
    let variables = [
        VarSpec {
            allowed: &["DSL", "POTS", "Cable", "Ethernet"],
            ..var("WANAccessType", "string", false)
        },
        var("Layer1UpstreamMaxBitRate", "ui4", false),
        var("Layer1DownstreamMaxBitRate", "ui4", false),
        VarSpec {
            allowed: &["Up", "Down", "Initializing", "Unavailable"],
            ..var("PhysicalLinkStatus", "string", true)
        },
        var("TotalBytesSent", "ui4", false),
        var("TotalBytesReceived", "ui4", false),
        var("TotalPacketsSent", "ui4", false),
        var("TotalPacketsReceived", "ui4", false),
    ];
    let actions: Vec<&ActionSpec> = ACTIONS.iter().collect();
    scpd(&actions, &variables)
}

/// The service description of Layer3Forwarding:1: GetDefaultConnectionService
/// (DefaultConnectionService is evented).
pub fn scpd_layer3_forwarding() -> String {
    const ACTIONS: [ActionSpec; 1] = [ActionSpec {
        name: "GetDefaultConnectionService",
        args: &[(
            "NewDefaultConnectionService",
            OUT,
            "DefaultConnectionService",
        )],
    }];
    let actions: Vec<&ActionSpec> = ACTIONS.iter().collect();
    scpd(&actions, &[var("DefaultConnectionService", "string", true)])
}

/// Writes a service description (UDA 2.0 §2.5): actionList, then serviceStateTable.
fn scpd(actions: &[&ActionSpec], variables: &[VarSpec]) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str(PROLOG);
    out.push_str("<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\n");
    out.push_str("<specVersion><major>1</major><minor>0</minor></specVersion>\n");
    out.push_str("<actionList>\n");
    for action in actions {
        out.push_str("<action>");
        element(&mut out, "name", action.name);
        if !action.args.is_empty() {
            out.push_str("<argumentList>");
            for (name, is_in, related) in action.args {
                out.push_str("<argument>");
                element(&mut out, "name", name);
                element(&mut out, "direction", if *is_in { "in" } else { "out" });
                element(&mut out, "relatedStateVariable", related);
                out.push_str("</argument>");
            }
            out.push_str("</argumentList>");
        }
        out.push_str("</action>\n");
    }
    out.push_str("</actionList>\n<serviceStateTable>\n");
    for v in variables {
        out.push_str("<stateVariable sendEvents=\"");
        out.push_str(if v.events { "yes" } else { "no" });
        out.push_str("\">");
        element(&mut out, "name", v.name);
        element(&mut out, "dataType", v.data_type);
        if !v.allowed.is_empty() {
            out.push_str("<allowedValueList>");
            for value in v.allowed {
                element(&mut out, "allowedValue", value);
            }
            out.push_str("</allowedValueList>");
        }
        if let Some((min, max)) = v.range {
            out.push_str("<allowedValueRange>");
            element(&mut out, "minimum", &min.to_string());
            element(&mut out, "maximum", &max.to_string());
            out.push_str("</allowedValueRange>");
        }
        out.push_str("</stateVariable>\n");
    }
    out.push_str("</serviceStateTable>\n</scpd>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use quick_xml::events::Event;
    use quick_xml::Reader;
    use url::Url;

    use super::*;
    use crate::description;

    fn info() -> DeviceInfo {
        DeviceInfo {
            uuid: "5f1d2a6e-0b7c-4e3a-9d51-6c2f0a8b7e1f".to_owned(),
            friendly_name: "Kid's <router> & \"co\"\u{7}".to_owned(),
            manufacturer: "Plugline".to_owned(),
            manufacturer_url: "https://plugline.invalid/?a=1&b=2".to_owned(),
            model_name: "Plugline IGD".to_owned(),
            model_number: "0.1".to_owned(),
            serial_number: String::new(),
            presentation_url: Some("http://192.168.1.1/admin?x=1&y=2".to_owned()),
            config_id: 42,
        }
    }

    /// A well-formedness check independent of our own reader: quick-xml with end-name
    /// checking, returning every element path → texts, plus `sendEvents` attributes.
    struct Doc {
        /// `parent/child` local names → texts of `child`.
        texts: BTreeMap<String, Vec<String>>,
        /// state variable name → sendEvents value.
        events: BTreeMap<String, String>,
        /// element name → attributes of the first such element.
        root_attrs: Vec<(String, String)>,
    }

    fn read(xml: &str) -> Doc {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<String> = Vec::new();
        let mut doc = Doc {
            texts: BTreeMap::new(),
            events: BTreeMap::new(),
            root_attrs: Vec::new(),
        };
        let mut pending_events: Option<String> = None;
        let mut roots = 0;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(start) => {
                    let name = String::from_utf8(start.local_name().as_ref().to_vec()).unwrap();
                    if stack.is_empty() {
                        roots += 1;
                        for attr in start.attributes() {
                            let attr = attr.unwrap();
                            doc.root_attrs.push((
                                String::from_utf8(attr.key.as_ref().to_vec()).unwrap(),
                                attr.unescape_value().unwrap().into_owned(),
                            ));
                        }
                    }
                    if name == "stateVariable" {
                        let attr = start
                            .try_get_attribute("sendEvents")
                            .unwrap()
                            .expect("sendEvents on every stateVariable");
                        pending_events = Some(attr.unescape_value().unwrap().into_owned());
                    }
                    stack.push(name);
                }
                Event::Text(text) => {
                    let text = text.unescape().unwrap().into_owned();
                    if text.trim().is_empty() || stack.len() < 2 {
                        continue;
                    }
                    let key = format!("{}/{}", stack[stack.len() - 2], stack[stack.len() - 1]);
                    if key == "stateVariable/name" {
                        let events = pending_events.take().unwrap();
                        doc.events.insert(text.clone(), events);
                    }
                    doc.texts.entry(key).or_default().push(text);
                }
                Event::End(_) => {
                    stack.pop();
                }
                Event::Eof => break,
                Event::Empty(_) => panic!("no empty elements expected"),
                _ => {}
            }
        }
        assert!(stack.is_empty());
        assert_eq!(roots, 1);
        doc
    }

    fn texts<'a>(doc: &'a Doc, key: &str) -> Vec<&'a str> {
        doc.texts
            .get(key)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn udns_distinct_stable_and_prefixed() {
        let info = info();
        let all = [
            EmbeddedDevice::Root,
            EmbeddedDevice::WanDevice,
            EmbeddedDevice::WanConnectionDevice,
        ]
        .map(|d| udn_of(&info, d));
        assert_eq!(all[0], "uuid:5f1d2a6e-0b7c-4e3a-9d51-6c2f0a8b7e1f");
        assert_eq!(all[1], "uuid:5f1d2a6e-0b7c-4e3a-9d51-6c2f0a8b7e1e");
        assert_eq!(all[2], "uuid:5f1d2a6e-0b7c-4e3a-9d51-6c2f0a8b7e1d");
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 3);
        // Stable, and a configured "uuid:" prefix is not doubled.
        let prefixed = DeviceInfo {
            uuid: "uuid:5f1d2a6e-0b7c-4e3a-9d51-6c2f0a8b7e1f".to_owned(),
            ..info.clone()
        };
        for d in [EmbeddedDevice::Root, EmbeddedDevice::WanConnectionDevice] {
            assert_eq!(udn_of(&prefixed, d), udn_of(&info, d));
        }
        // Upper case is kept upper case; every digit value gives three distinct UDNs.
        for digit in "0123456789abcdefABCDEF".chars() {
            let info = DeviceInfo {
                uuid: format!("00000000-0000-4000-8000-00000000000{digit}"),
                ..info.clone()
            };
            let udns: HashSet<String> = [
                EmbeddedDevice::Root,
                EmbeddedDevice::WanDevice,
                EmbeddedDevice::WanConnectionDevice,
            ]
            .map(|d| udn_of(&info, d))
            .into();
            assert_eq!(udns.len(), 3, "{digit}");
            for udn in &udns {
                assert_eq!(udn.len(), 41);
                let last = udn.chars().last().unwrap();
                assert!(last.is_ascii_hexdigit());
                if last.is_ascii_alphabetic() {
                    assert_eq!(last.is_ascii_uppercase(), digit.is_ascii_uppercase());
                }
            }
        }
        let odd = DeviceInfo {
            uuid: "zzz".to_owned(),
            ..info
        };
        assert_eq!(udn_of(&odd, EmbeddedDevice::WanDevice), "uuid:zzz-1");
        assert_eq!(
            udn_of(&odd, EmbeddedDevice::WanConnectionDevice),
            "uuid:zzz-2"
        );
    }

    #[test]
    fn root_description_v2_parses_and_points_at_ipconn2() {
        let info = info();
        let xml = root_description(&info, 2);
        let d = description::parse(xml.as_bytes()).unwrap();
        assert_eq!(d.url_base, None);
        assert_eq!(d.device.device_type, urn::IGD_2);
        assert_eq!(d.device.friendly_name, "Kid's <router> & \"co\"");
        assert_eq!(d.device.manufacturer, "Plugline");
        assert_eq!(d.device.udn, udn_of(&info, EmbeddedDevice::Root));
        assert_eq!(d.device.services.len(), 1);
        assert_eq!(d.device.services[0].service_type, urn::LAYER3_FORWARDING_1);
        assert_eq!(d.device.services[0].control_url, L3F_CONTROL_PATH);
        let wan = &d.device.devices[0];
        assert_eq!(wan.device_type, urn::WAN_DEVICE_2);
        assert_eq!(wan.udn, udn_of(&info, EmbeddedDevice::WanDevice));
        assert_eq!(
            wan.services[0].service_type,
            urn::WAN_COMMON_INTERFACE_CONFIG_1
        );
        assert_eq!(wan.services[0].scpd_url, WANCFG_SCPD_PATH);
        let conn = &wan.devices[0];
        assert_eq!(conn.device_type, urn::WAN_CONNECTION_DEVICE_2);
        assert_eq!(conn.udn, udn_of(&info, EmbeddedDevice::WanConnectionDevice));
        assert_eq!(d.device.iter().count(), 3);

        let location = Url::parse("http://192.168.1.1:5000/rootDesc.xml").unwrap();
        let c = d.wan_connection(&location).unwrap();
        assert_eq!(c.service_type, urn::WAN_IP_CONNECTION_2);
        assert_eq!(c.control_url.path(), IPCONN_CONTROL_PATH);
        assert_eq!(c.control_url.as_str(), "http://192.168.1.1:5000/ctl/IPConn");
        assert_eq!(c.event_sub_url.unwrap().path(), IPCONN_EVENT_PATH);
        assert_eq!(c.scpd_url.unwrap().path(), WANIPCN_SCPD_V2_PATH);

        let doc = read(&xml);
        assert!(doc
            .root_attrs
            .contains(&("configId".to_owned(), "42".to_owned())));
        assert_eq!(texts(&doc, "specVersion/major"), ["2"]);
        assert_eq!(texts(&doc, "specVersion/minor"), ["0"]);
        assert_eq!(
            texts(&doc, "device/presentationURL"),
            ["http://192.168.1.1/admin?x=1&y=2"]
        );
        assert_eq!(
            texts(&doc, "device/manufacturerURL").len(),
            3,
            "on every device"
        );
        assert!(texts(&doc, "device/serialNumber").is_empty(), "omitted");
        assert!(texts(&doc, "root/URLBase").is_empty());
        assert!(!xml.contains('\u{7}'));
    }

    #[test]
    fn root_description_v1_parses_and_points_at_ipconn1() {
        let info = info();
        let xml = root_description(&info, 1);
        let d = description::parse(xml.as_bytes()).unwrap();
        assert_eq!(d.device.device_type, urn::IGD_1);
        assert_eq!(d.device.devices[0].device_type, urn::WAN_DEVICE_1);
        assert_eq!(
            d.device.devices[0].devices[0].device_type,
            urn::WAN_CONNECTION_DEVICE_1
        );
        let services: Vec<_> = d
            .device
            .iter()
            .flat_map(|d| d.services.iter().map(|s| s.service_type.as_str()))
            .collect();
        assert_eq!(
            services,
            [
                urn::LAYER3_FORWARDING_1,
                urn::WAN_COMMON_INTERFACE_CONFIG_1,
                urn::WAN_IP_CONNECTION_1
            ]
        );
        let location = Url::parse("http://10.0.0.1:5000/rootDesc1.xml").unwrap();
        let c = d.wan_connection(&location).unwrap();
        assert_eq!(c.service_type, urn::WAN_IP_CONNECTION_1);
        assert_eq!(c.control_url.as_str(), "http://10.0.0.1:5000/ctl/IPConn");
        assert_eq!(c.scpd_url.unwrap().path(), WANIPCN_SCPD_V1_PATH);

        let doc = read(&xml);
        assert!(doc.root_attrs.iter().all(|(k, _)| k != "configId"));
        assert_eq!(texts(&doc, "specVersion/major"), ["1"]);
        // Same identity in both versions.
        let v2 = description::parse(root_description(&info, 2).as_bytes()).unwrap();
        let udns = |d: &description::DeviceDescription| {
            d.device.iter().map(|d| d.udn.clone()).collect::<Vec<_>>()
        };
        assert_eq!(udns(&d), udns(&v2));
    }

    #[test]
    fn hostile_configuration_cannot_break_the_document() {
        let info = DeviceInfo {
            friendly_name: "</friendlyName><URLBase>http://evil/</URLBase>]]>\r\n\0".to_owned(),
            manufacturer: "a&b".to_owned(),
            model_name: "<!--".to_owned(),
            presentation_url: Some("\"><x/>".to_owned()),
            ..info()
        };
        for version in [1, 2] {
            let xml = root_description(&info, version);
            let d = description::parse(xml.as_bytes()).unwrap();
            assert_eq!(d.url_base, None);
            assert_eq!(
                d.device.friendly_name,
                "</friendlyName><URLBase>http://evil/</URLBase>]]>"
            );
            assert_eq!(d.device.manufacturer, "a&b");
            assert_eq!(d.device.model_name, "<!--");
            read(&xml);
        }
    }

    fn action_names(xml: &str) -> Vec<String> {
        read(xml)
            .texts
            .remove("action/name")
            .expect("at least one action")
    }

    #[test]
    fn wan_ip_connection_scpds() {
        let v1 = scpd_wan_ip_connection(1);
        let v2 = scpd_wan_ip_connection(2);
        let common = [
            "GetConnectionTypeInfo",
            "GetStatusInfo",
            "GetNATRSIPStatus",
            "GetGenericPortMappingEntry",
            "GetSpecificPortMappingEntry",
            "AddPortMapping",
            "DeletePortMapping",
            "GetExternalIPAddress",
        ];
        let extra = [
            "AddAnyPortMapping",
            "DeletePortMappingRange",
            "GetListOfPortMappings",
        ];
        let names1 = action_names(&v1);
        let names2 = action_names(&v2);
        assert_eq!(names1, common);
        for name in common.iter().chain(&extra) {
            assert!(names2.iter().any(|n| n == name), "{name}");
        }
        for name in extra {
            assert!(!names1.iter().any(|n| n == name), "{name} in v1");
        }

        for (xml, evented) in [(&v1, &IPCONN_EVENTED_V1[..]), (&v2, &IPCONN_EVENTED_V2[..])] {
            let doc = read(xml);
            let yes: HashSet<&str> = doc
                .events
                .iter()
                .filter(|(_, e)| *e == "yes")
                .map(|(n, _)| n.as_str())
                .collect();
            assert_eq!(yes, evented.iter().copied().collect());
            assert!(doc.events.values().all(|e| e == "yes" || e == "no"));
            // Every argument refers to a declared state variable.
            for related in texts(&doc, "argument/relatedStateVariable") {
                assert!(doc.events.contains_key(related), "{related}");
            }
            for direction in texts(&doc, "argument/direction") {
                assert!(direction == "in" || direction == "out");
            }
        }
        let doc2 = read(&v2);
        for name in ["A_ARG_TYPE_Manage", "A_ARG_TYPE_PortListing"] {
            assert_eq!(doc2.events[name], "no");
        }
        let doc1 = read(&v1);
        assert!(doc1.events.keys().all(|k| !k.starts_with("A_ARG_TYPE_")));

        // Data types, as the templates give them.
        for (xml, name, ty) in [
            (&v2, "PortMappingNumberOfEntries", "ui2"),
            (&v2, "ExternalPort", "ui2"),
            (&v2, "PortMappingLeaseDuration", "ui4"),
            (&v2, "PortMappingEnabled", "boolean"),
            (&v2, "A_ARG_TYPE_Manage", "boolean"),
            (&v2, "A_ARG_TYPE_PortListing", "string"),
            (&v1, "Uptime", "ui4"),
            (&v1, "ExternalIPAddress", "string"),
        ] {
            let doc = read(xml);
            let names = texts(&doc, "stateVariable/name");
            let types = texts(&doc, "stateVariable/dataType");
            let at = names.iter().position(|n| *n == name).unwrap();
            assert_eq!(types[at], ty, "{name}");
        }
        assert_eq!(
            texts(&doc2, "allowedValueRange/maximum"),
            ["604800", "65535"]
        );
        assert!(texts(&doc1, "allowedValueRange/maximum").is_empty());
    }

    #[test]
    fn other_scpds() {
        let cfg = scpd_wan_common_interface_config();
        assert_eq!(
            action_names(&cfg),
            [
                "GetCommonLinkProperties",
                "GetTotalBytesSent",
                "GetTotalBytesReceived",
                "GetTotalPacketsSent",
                "GetTotalPacketsReceived"
            ]
        );
        let doc = read(&cfg);
        assert_eq!(doc.events["PhysicalLinkStatus"], "yes");
        assert_eq!(doc.events["TotalBytesSent"], "no");
        for related in texts(&doc, "argument/relatedStateVariable") {
            assert!(doc.events.contains_key(related), "{related}");
        }
        let l3f = scpd_layer3_forwarding();
        assert_eq!(action_names(&l3f), ["GetDefaultConnectionService"]);
        assert_eq!(read(&l3f).events["DefaultConnectionService"], "yes");
    }

    #[test]
    fn ssdp_targets_per_uda() {
        let info = info();
        let root = udn_of(&info, EmbeddedDevice::Root);
        let wan = udn_of(&info, EmbeddedDevice::WanDevice);
        let conn = udn_of(&info, EmbeddedDevice::WanConnectionDevice);
        for version in [1, 2] {
            let targets = ssdp_targets(&info, version);
            assert_eq!(targets.len(), 10);
            let unique: HashSet<_> = targets.iter().collect();
            assert_eq!(unique.len(), 10);
            let nts: HashSet<_> = targets.iter().map(|t| t.nt.as_str()).collect();
            assert_eq!(nts.len(), 10, "one target per NT");
            let usns: HashSet<_> = targets.iter().map(|t| t.usn.as_str()).collect();
            assert_eq!(usns.len(), 10, "one USN per target");
            let usn = |nt: &str| {
                targets
                    .iter()
                    .find(|t| t.nt == nt)
                    .map(|t| t.usn.clone())
                    .unwrap_or_else(|| panic!("no target {nt}"))
            };
            assert_eq!(usn("upnp:rootdevice"), format!("{root}::upnp:rootdevice"));
            for udn in [&root, &wan, &conn] {
                assert_eq!(&usn(udn), udn);
            }
            let (igd, wan_type, conn_type, ip) = if version == 1 {
                (
                    urn::IGD_1,
                    urn::WAN_DEVICE_1,
                    urn::WAN_CONNECTION_DEVICE_1,
                    urn::WAN_IP_CONNECTION_1,
                )
            } else {
                (
                    urn::IGD_2,
                    urn::WAN_DEVICE_2,
                    urn::WAN_CONNECTION_DEVICE_2,
                    urn::WAN_IP_CONNECTION_2,
                )
            };
            assert_eq!(usn(igd), format!("{root}::{igd}"));
            assert_eq!(usn(wan_type), format!("{wan}::{wan_type}"));
            assert_eq!(usn(conn_type), format!("{conn}::{conn_type}"));
            assert_eq!(
                usn(urn::LAYER3_FORWARDING_1),
                format!("{root}::{}", urn::LAYER3_FORWARDING_1)
            );
            assert_eq!(
                usn(urn::WAN_COMMON_INTERFACE_CONFIG_1),
                format!("{wan}::{}", urn::WAN_COMMON_INTERFACE_CONFIG_1)
            );
            assert_eq!(usn(ip), format!("{conn}::{ip}"));
        }
        // The version-independent targets are identical in both lists.
        let v1 = ssdp_targets(&info, 1);
        let v2 = ssdp_targets(&info, 2);
        let shared = v1.iter().filter(|t| v2.contains(t)).count();
        assert_eq!(
            shared,
            4 + 2,
            "rootdevice, three uuids, L3F:1, WANCommonIFC:1"
        );
    }
}
