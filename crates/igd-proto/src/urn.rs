//! The device and service type URNs of the Internet Gateway Device (IGD:1 and IGD:2)
//! templates, and which of them a control point searches for and talks to.
//!
//! UDA 1.1 §1 (Discovery) lets a control point search for a device or service type; a
//! device of version 2 also answers searches for version 1 of the same type, but many
//! IGD:1-only devices answer only their own type, so we search for each explicitly.

/// InternetGatewayDevice:1 (root device of IGD:1).
pub const IGD_1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// InternetGatewayDevice:2 (root device of IGD:2).
pub const IGD_2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
/// WANDevice:1, embedded in IGD:1.
pub const WAN_DEVICE_1: &str = "urn:schemas-upnp-org:device:WANDevice:1";
/// WANDevice:2, embedded in IGD:2.
pub const WAN_DEVICE_2: &str = "urn:schemas-upnp-org:device:WANDevice:2";
/// WANConnectionDevice:1, embedded in WANDevice:1.
pub const WAN_CONNECTION_DEVICE_1: &str = "urn:schemas-upnp-org:device:WANConnectionDevice:1";
/// WANConnectionDevice:2, embedded in WANDevice:2.
pub const WAN_CONNECTION_DEVICE_2: &str = "urn:schemas-upnp-org:device:WANConnectionDevice:2";
/// WANIPConnection:1 service (port mappings, IGD:1).
pub const WAN_IP_CONNECTION_1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
/// WANIPConnection:2 service (adds AddAnyPortMapping, DeletePortMappingRange,
/// GetListOfPortMappings and finite leases).
pub const WAN_IP_CONNECTION_2: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";
/// WANPPPConnection:1 service (the same port mapping actions, on PPP links such as DSL).
pub const WAN_PPP_CONNECTION_1: &str = "urn:schemas-upnp-org:service:WANPPPConnection:1";
/// WANCommonInterfaceConfig:1 service (link properties and byte counters).
pub const WAN_COMMON_INTERFACE_CONFIG_1: &str =
    "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1";
/// Layer3Forwarding:1 service (default connection service of the root device).
pub const LAYER3_FORWARDING_1: &str = "urn:schemas-upnp-org:service:Layer3Forwarding:1";
/// WANIPv6FirewallControl:1 service (IPv6 pinholes, IGD:2).
pub const WAN_IPV6_FIREWALL_CONTROL_1: &str =
    "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";

/// What a control point puts in ST, best first: IGD:2 devices, then IGD:1 devices, then
/// the connection services directly (some devices answer only service searches).
pub const SEARCH_TARGETS: [&str; 5] = [
    IGD_2,
    IGD_1,
    WAN_IP_CONNECTION_2,
    WAN_IP_CONNECTION_1,
    WAN_PPP_CONNECTION_1,
];

/// The connection services that carry the port mapping actions, best first.
pub const CONNECTION_SERVICES: [&str; 3] = [
    WAN_IP_CONNECTION_2,
    WAN_IP_CONNECTION_1,
    WAN_PPP_CONNECTION_1,
];

/// Whether `t` is one of [`CONNECTION_SERVICES`] (exact match after trimming whitespace).
pub fn is_connection_service(t: &str) -> bool {
    connection_service_rank(t).is_some()
}

/// The preference of a connection service type (0 is best), `None` for other types.
pub fn connection_service_rank(t: &str) -> Option<usize> {
    let t = t.trim();
    CONNECTION_SERVICES.iter().position(|s| *s == t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_services() {
        assert!(is_connection_service(WAN_IP_CONNECTION_2));
        assert!(is_connection_service(
            " urn:schemas-upnp-org:service:WANIPConnection:1\n"
        ));
        assert!(is_connection_service(WAN_PPP_CONNECTION_1));
        assert!(!is_connection_service(LAYER3_FORWARDING_1));
        assert!(!is_connection_service(IGD_2));
        assert!(!is_connection_service(
            "urn:schemas-upnp-org:service:WANIPConnection:3"
        ));
        assert_eq!(connection_service_rank(WAN_PPP_CONNECTION_1), Some(2));
    }
}
