//! Which local IPv4 interface to search from, and whether an address is on our own link.
//!
//! Discovery must leave through the interface the gateway sits on. By default that is the
//! interface of the default route (read from the kernel's routing table of the calling thread's
//! network namespace); `--interface` names another one by name or by address.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{Error, Result};

/// A local IPv4 interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInterface {
    /// Interface name (e.g. `eth0`).
    pub name: String,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// Its netmask.
    pub netmask: Ipv4Addr,
}

impl LocalInterface {
    /// True when `ip` lies in this interface's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

/// Every IPv4 address of every interface that is up.
pub fn interfaces() -> Result<Vec<LocalInterface>> {
    let all = if_addrs::get_if_addrs().map_err(|e| Error::io("listing interfaces", e))?;
    Ok(all
        .into_iter()
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) => Some(LocalInterface {
                name: i.name,
                addr: v4.ip,
                netmask: v4.netmask,
            }),
            _ => None,
        })
        .collect())
}

/// The interface to search from: `wanted` by name or address, else the default route's.
pub fn choose(wanted: Option<&str>) -> Result<LocalInterface> {
    let all = interfaces()?;
    if let Some(wanted) = wanted {
        let by_addr: Option<Ipv4Addr> = wanted.parse().ok();
        return all
            .into_iter()
            .find(|i| i.name == wanted || Some(i.addr) == by_addr)
            .ok_or_else(|| {
                Error::Interface(format!("no IPv4 interface named or addressed {wanted:?}"))
            });
    }
    let route = std::fs::read_to_string("/proc/thread-self/net/route")
        .or_else(|_| std::fs::read_to_string("/proc/net/route"))
        .unwrap_or_default();
    let default_if = default_route_interface(&route);
    match default_if {
        Some(name) => all.into_iter().find(|i| i.name == name).ok_or_else(|| {
            Error::Interface(format!(
                "the default route's interface {name} has no IPv4 address; pass --interface"
            ))
        }),
        None => Err(Error::Interface(
            "there is no IPv4 default route to choose an interface from; pass --interface NAME"
                .into(),
        )),
    }
}

/// The interface of the first default route (destination and mask 0) in `/proc/net/route`.
pub(crate) fn default_route_interface(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        if cols.len() >= 8 && cols[1] == "00000000" && cols[7] == "00000000" {
            Some(cols[0].to_string())
        } else {
            None
        }
    })
}

/// True when `ip` may be trusted as a gateway address: on a subnet of one of our interfaces, or
/// loopback when we search on loopback. A gateway is always on our own link; anything else in
/// an SSDP answer is an attempt to make us talk to a third host.
pub fn is_on_link(ip: IpAddr, interfaces: &[LocalInterface]) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() {
                return false;
            }
            interfaces.iter().any(|i| i.contains(v4))
        }
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_default_route_interface() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }

    #[test]
    fn on_link_checks_subnet() {
        let ifs = [LocalInterface {
            name: "eth0".into(),
            addr: Ipv4Addr::new(192, 168, 0, 91),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        }];
        assert!(is_on_link("192.168.0.1".parse().unwrap(), &ifs));
        assert!(!is_on_link("192.168.1.1".parse().unwrap(), &ifs));
        assert!(!is_on_link("203.0.113.10".parse().unwrap(), &ifs));
        assert!(!is_on_link("239.255.255.250".parse().unwrap(), &ifs));
        assert!(!is_on_link("::1".parse().unwrap(), &ifs));
    }
}
