//! IPv4 address classification: public, private (RFC 1918) or one of the
//! special-purpose blocks of the IANA registry (RFC 6890).
//!
//! The gateway uses it twice: to warn when its "external" address is not public (a
//! CGNAT or private WAN address means double NAT: mappings will not be reachable from
//! the Internet), and to refuse internal clients a forward can never sensibly reach
//! ([`is_mappable_client`]): a mapping to 127.0.0.1 would expose the gateway's own
//! loopback services to the WAN when secure mode is off.

use std::net::Ipv4Addr;

/// What kind of address an IPv4 address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// Globally routable: none of the blocks below.
    Public,
    /// RFC 1918 private space: 10/8, 172.16/12, 192.168/16.
    Private,
    /// A special-purpose block, named (e.g. `"loopback"`, `"CGNAT shared address space"`).
    Reserved(&'static str),
}

impl AddressKind {
    /// True for [`AddressKind::Public`] only.
    pub fn is_public(self) -> bool {
        self == AddressKind::Public
    }
}

/// The special-purpose blocks, most specific first where they nest (the limited
/// broadcast address lies inside 240/4). `(network, prefix length, name)`.
const SPECIAL: &[(Ipv4Addr, u8, AddressKind)] = &[
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        AddressKind::Reserved("this network"),
    ), // RFC 791
    (Ipv4Addr::new(10, 0, 0, 0), 8, AddressKind::Private), // RFC 1918
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        AddressKind::Reserved("CGNAT shared address space"), // RFC 6598
    ),
    (
        Ipv4Addr::new(127, 0, 0, 0),
        8,
        AddressKind::Reserved("loopback"),
    ), // RFC 1122
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        AddressKind::Reserved("link-local"),
    ), // RFC 3927
    (Ipv4Addr::new(172, 16, 0, 0), 12, AddressKind::Private), // RFC 1918
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        AddressKind::Reserved("IETF protocol assignments"), // RFC 6890
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        AddressKind::Reserved("documentation (TEST-NET-1)"), // RFC 5737
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, AddressKind::Private), // RFC 1918
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        AddressKind::Reserved("benchmarking"),
    ), // RFC 2544
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        AddressKind::Reserved("documentation (TEST-NET-2)"), // RFC 5737
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        AddressKind::Reserved("documentation (TEST-NET-3)"), // RFC 5737
    ),
    (
        Ipv4Addr::new(224, 0, 0, 0),
        4,
        AddressKind::Reserved("multicast"),
    ), // RFC 5771
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        AddressKind::Reserved("limited broadcast"), // RFC 919
    ),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        AddressKind::Reserved("reserved"),
    ), // RFC 1112
];

/// The network mask of a prefix length (0..=32).
pub(crate) fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

/// True if `ip` lies in `network/prefix_len`.
pub(crate) fn in_prefix(ip: Ipv4Addr, network: Ipv4Addr, prefix_len: u8) -> bool {
    let m = mask(prefix_len);
    u32::from(ip) & m == u32::from(network) & m
}

/// Classify an address.
pub fn classify(ip: Ipv4Addr) -> AddressKind {
    SPECIAL
        .iter()
        .find(|(net, len, _)| in_prefix(ip, *net, *len))
        .map_or(AddressKind::Public, |(_, _, kind)| *kind)
}

/// Whether a forward to `ip` as internal client can make sense: a unicast host address.
/// Refused: 0/8 (this network), 127/8 (the gateway's own loopback: never expose it to
/// the WAN), 224/4 (multicast) and 240/4 with the limited broadcast address.
pub fn is_mappable_client(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    !(first == 0 || first == 127 || first >= 224)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_every_block() {
        let cases = [
            ("8.8.8.8", AddressKind::Public),
            ("1.1.1.1", AddressKind::Public),
            ("10.1.2.3", AddressKind::Private),
            ("172.16.0.1", AddressKind::Private),
            ("172.31.255.255", AddressKind::Private),
            ("172.32.0.1", AddressKind::Public),
            ("192.168.1.10", AddressKind::Private),
            (
                "100.64.0.1",
                AddressKind::Reserved("CGNAT shared address space"),
            ),
            (
                "100.127.255.255",
                AddressKind::Reserved("CGNAT shared address space"),
            ),
            ("100.128.0.1", AddressKind::Public),
            ("127.0.0.1", AddressKind::Reserved("loopback")),
            ("169.254.3.4", AddressKind::Reserved("link-local")),
            (
                "192.0.0.9",
                AddressKind::Reserved("IETF protocol assignments"),
            ),
            (
                "192.0.2.1",
                AddressKind::Reserved("documentation (TEST-NET-1)"),
            ),
            ("198.18.0.1", AddressKind::Reserved("benchmarking")),
            ("198.19.255.255", AddressKind::Reserved("benchmarking")),
            ("198.20.0.1", AddressKind::Public),
            (
                "198.51.100.7",
                AddressKind::Reserved("documentation (TEST-NET-2)"),
            ),
            (
                "203.0.113.7",
                AddressKind::Reserved("documentation (TEST-NET-3)"),
            ),
            ("0.0.0.0", AddressKind::Reserved("this network")),
            ("0.1.2.3", AddressKind::Reserved("this network")),
            ("224.0.0.1", AddressKind::Reserved("multicast")),
            ("239.255.255.250", AddressKind::Reserved("multicast")),
            ("240.0.0.1", AddressKind::Reserved("reserved")),
            (
                "255.255.255.255",
                AddressKind::Reserved("limited broadcast"),
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(classify(ip(text)), kind, "{text}");
        }
        assert!(classify(ip("93.184.216.34")).is_public());
        assert!(!classify(ip("100.64.0.1")).is_public());
    }

    #[test]
    fn mappable_clients() {
        for ok in [
            "192.168.1.2",
            "10.0.0.5",
            "169.254.1.1",
            "8.8.8.8",
            "100.64.1.1",
        ] {
            assert!(is_mappable_client(ip(ok)), "{ok}");
        }
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "250.1.1.1",
        ] {
            assert!(!is_mappable_client(ip(bad)), "{bad}");
        }
    }

    #[test]
    fn prefix_helpers() {
        assert_eq!(mask(0), 0);
        assert_eq!(mask(8), 0xff00_0000);
        assert_eq!(mask(32), u32::MAX);
        assert!(in_prefix(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_prefix(ip("192.168.0.77"), ip("192.168.0.0"), 24));
        assert!(!in_prefix(ip("192.168.1.77"), ip("192.168.0.0"), 24));
        assert!(in_prefix(ip("192.168.0.77"), ip("192.168.0.77"), 32));
    }
}
