//! Gateway discovery: M-SEARCH on the chosen interface, validate each answer, and return as soon
//! as the first connected gateway has told us its external address.
//!
//! The pure [`ssdp_proto::Searcher`] decides what to send and when (all IGD search targets at
//! once, repeated because UDP loses packets); this module moves its datagrams and probes every
//! candidate concurrently: fetch its description, then GetStatusInfo and GetExternalIPAddress in
//! parallel. Unlike clients that always wait out their full delay, we stop at the first
//! connected answer; `all` keeps listening until the timeout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use igd_proto::urn;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use ssdp_proto::{Candidate, SearchConfig, Searcher};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use crate::error::{Error, Result};
use crate::gateway::{ClientConfig, Gateway};
use crate::netif::{self, LocalInterface};

/// How long discovery listens by default.
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_millis(2000);
/// Multicast TTL for M-SEARCH (UDA 2.0 §1.1.2 recommends 2).
pub const SEARCH_TTL: u32 = 2;
/// Candidates probed at once; further answers wait for a free slot (a flood of fake answers
/// cannot make us open unbounded connections).
pub const MAX_CONCURRENT_PROBES: usize = 8;
/// Distinct candidates probed at most in one discovery.
pub const MAX_CANDIDATES: usize = 64;
/// MX sent in M-SEARCH: gateways may wait up to this many seconds before answering.
pub const SEARCH_MX: u8 = 1;

/// Discovery settings.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// Total time to listen.
    pub timeout: Duration,
    /// Interface name or address to search from; None means the default route's interface.
    pub interface: Option<String>,
    /// Collect every gateway within the timeout instead of returning at the first.
    pub all: bool,
    /// Settings for talking to each gateway.
    pub client: ClientConfig,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            timeout: DEFAULT_DISCOVERY_TIMEOUT,
            interface: None,
            all: false,
            client: ClientConfig::default(),
        }
    }
}

/// A gateway found by discovery, with what it said while being probed.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The gateway, ready for actions.
    pub gateway: Gateway,
    /// Its external address, if it reported one.
    pub external_ip: Option<IpAddr>,
    /// Its connection status (`Connected`, …), if it answered GetStatusInfo.
    pub connection_status: Option<String>,
}

impl Discovered {
    /// Connected, or at least reporting an external address when GetStatusInfo is missing.
    pub fn is_connected(&self) -> bool {
        match &self.connection_status {
            Some(status) => status.eq_ignore_ascii_case("Connected"),
            None => self.external_ip.is_some(),
        }
    }
}

/// Find the first connected gateway (or, with `all`, every gateway that answers in time).
///
/// Without `all` this returns as soon as one connected gateway has answered; if only
/// disconnected gateways answered, the first of them is returned when the timeout ends.
pub async fn discover(options: &DiscoverOptions) -> Result<Vec<Discovered>> {
    let local = netif::choose(options.interface.as_deref())?;
    let interfaces = netif::interfaces()?;
    let socket = search_socket(local.addr)?;
    let targets: Vec<String> = urn::SEARCH_TARGETS.iter().map(|t| t.to_string()).collect();
    let start = Instant::now();
    let deadline = start + options.timeout;
    let mut searcher = Searcher::new(
        start.into_std(),
        SearchConfig {
            targets,
            mx: SEARCH_MX,
            ..SearchConfig::default()
        },
    );
    let destination = SocketAddr::V4(SocketAddrV4::new(
        ssdp_proto::MULTICAST_V4,
        ssdp_proto::PORT,
    ));

    let mut probes: JoinSet<(IpAddr, Result<Discovered>)> = JoinSet::new();
    // Probes not yet finished, per answering host: a gateway that answered for both IGD:1 and
    // IGD:2 is waited for until both descriptions are read, so the IGD:2 one can be preferred.
    let mut unfinished: HashMap<IpAddr, usize> = HashMap::new();
    let mut waiting: Vec<Candidate> = Vec::new();
    let mut seen = 0usize;
    let mut found: Vec<Discovered> = Vec::new();
    let mut last_problem: Option<String> = None;
    let mut buf = vec![0u8; ssdp_proto::MAX_MESSAGE_LEN + 1];

    loop {
        let now = Instant::now();
        while let Some(datagram) = searcher.poll_transmit(now.into_std()) {
            if let Err(e) = socket.send_to(&datagram, destination).await {
                last_problem = Some(format!("sending M-SEARCH from {}: {e}", local.addr));
                tracing::debug!(error = %e, "M-SEARCH send failed");
            }
        }
        while probes.len() < MAX_CONCURRENT_PROBES && !waiting.is_empty() {
            let candidate = waiting.remove(0);
            let client = options.client.clone();
            let host = candidate.source.ip();
            probes.spawn(async move { (host, probe(candidate, client).await) });
        }
        let wake = searcher
            .poll_timeout()
            .map(Instant::from_std)
            .map_or(deadline, |t| t.min(deadline));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, source) = match received {
                    Ok(r) => r,
                    Err(e) => { tracing::debug!(error = %e, "SSDP receive failed"); continue; }
                };
                if len > ssdp_proto::MAX_MESSAGE_LEN { continue; }
                let Some(candidate) = searcher.handle_datagram(source, &buf[..len]) else { continue };
                if seen >= MAX_CANDIDATES { continue; }
                seen += 1;
                match check_location(&candidate, &interfaces) {
                    Ok(()) => {
                        *unfinished.entry(candidate.source.ip()).or_default() += 1;
                        waiting.push(candidate);
                    }
                    Err(e) => {
                        tracing::warn!(%e, "ignoring SSDP answer");
                        last_problem = Some(e.to_string());
                    }
                }
            }
            Some(joined) = probes.join_next(), if !probes.is_empty() => {
                let host = match joined {
                    Ok((host, Ok(d))) => {
                        tracing::debug!(location = %d.gateway.location(), connected = d.is_connected(), "gateway answered");
                        found.push(d);
                        Some(host)
                    }
                    Ok((host, Err(e))) => {
                        tracing::debug!(error = %e, "candidate rejected");
                        last_problem = Some(e.to_string());
                        Some(host)
                    }
                    Err(e) => {
                        last_problem = Some(format!("probe task failed: {e}"));
                        None
                    }
                };
                if let Some(host) = host {
                    if let Some(n) = unfinished.get_mut(&host) {
                        *n = n.saturating_sub(1);
                    }
                }
                if !options.all {
                    if let Some(best) = settled_best(&mut found, &unfinished) {
                        return Ok(vec![best]);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= deadline { break; }
            }
        }
    }
    probes.abort_all();
    if found.is_empty() {
        return Err(Error::NoGateway {
            waited: options.timeout,
            interface: IpAddr::V4(local.addr),
            last_problem,
        });
    }
    // Connected gateways first, IGD:2 before IGD:1, then in order of answer.
    found.sort_by_key(|d| (!d.is_connected(), !d.gateway.is_igd2()));
    if !options.all {
        found.truncate(1);
    }
    Ok(found)
}

/// The best connected gateway whose host has no probe left running: IGD:2 before IGD:1, so a
/// gateway that serves both versions is used with its full action set.
fn settled_best(
    found: &mut Vec<Discovered>,
    unfinished: &HashMap<IpAddr, usize>,
) -> Option<Discovered> {
    let index = found
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_connected())
        .filter(|(_, d)| {
            let host = d
                .gateway
                .location()
                .host_str()
                .and_then(|h| h.parse::<IpAddr>().ok());
            host.is_none_or(|h| unfinished.get(&h).copied().unwrap_or(0) == 0)
        })
        .max_by_key(|(i, d)| (d.gateway.is_igd2(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i)?;
    Some(found.remove(index))
}

/// The answer's LOCATION must name the very host that sent it, over http, on our own link.
/// Anything else could make us fetch from (or post to) a third party on a hostile LAN.
pub fn check_location(candidate: &Candidate, interfaces: &[LocalInterface]) -> Result<()> {
    let refuse = |reason: &'static str| Error::UnsafeUrl {
        url: candidate.location.clone(),
        source_addr: candidate.source,
        reason,
    };
    let url = Url::parse(&candidate.location).map_err(|_| refuse("LOCATION is not a URL"))?;
    if url.scheme() != "http" {
        return Err(refuse("LOCATION is not http://"));
    }
    let host_ip: IpAddr = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Err(refuse("LOCATION host is not an IP address")),
    };
    if host_ip != candidate.source.ip() {
        return Err(refuse("LOCATION host is not the address that answered"));
    }
    if !netif::is_on_link(host_ip, interfaces) {
        return Err(refuse("the answering address is not on a local network"));
    }
    Ok(())
}

async fn probe(candidate: Candidate, client: ClientConfig) -> Result<Discovered> {
    let gateway = Gateway::from_url(&candidate.location, client).await?;
    let (ip, status) = tokio::join!(gateway.external_ip(), gateway.status_info());
    let external_ip = match ip {
        Ok(ip) => ip,
        Err(e) => {
            tracing::debug!(error = %e, "GetExternalIPAddress failed");
            None
        }
    };
    Ok(Discovered {
        gateway,
        external_ip,
        connection_status: status.ok().map(|s| s.connection_status),
    })
}

fn search_socket(local: Ipv4Addr) -> Result<UdpSocket> {
    let setup = || -> std::io::Result<std::net::UdpSocket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProtocol::UDP))?;
        socket.set_multicast_if_v4(&local)?;
        socket.set_multicast_ttl_v4(SEARCH_TTL)?;
        // A gateway on this very host (the loopback demo) must hear us too.
        socket.set_multicast_loop_v4(true)?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(local, 0)).into())?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    let std_socket =
        setup().map_err(|e| Error::io(format!("opening the SSDP socket on {local}"), e))?;
    UdpSocket::from_std(std_socket).map_err(|e| Error::io("registering the SSDP socket", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan() -> Vec<LocalInterface> {
        vec![LocalInterface {
            name: "eth0".into(),
            addr: Ipv4Addr::new(192, 168, 0, 91),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        }]
    }

    fn candidate(source: &str, location: &str) -> Candidate {
        Candidate {
            source: source.parse().unwrap(),
            location: location.into(),
            st: urn::IGD_2.into(),
            usn: "uuid:x".into(),
            server: None,
            boot_id: None,
        }
    }

    #[test]
    fn location_must_be_the_sender_on_link() {
        let ifs = lan();
        assert!(check_location(
            &candidate("192.168.0.1:1900", "http://192.168.0.1:5000/rootDesc.xml"),
            &ifs
        )
        .is_ok());
        // Points at another host on the LAN.
        assert!(check_location(
            &candidate("192.168.0.1:1900", "http://192.168.0.7:80/x.xml"),
            &ifs
        )
        .is_err());
        // Points off the LAN.
        assert!(check_location(
            &candidate("192.168.0.1:1900", "http://203.0.113.10/x.xml"),
            &ifs
        )
        .is_err());
        // Sender off-link (spoofed or routed).
        assert!(
            check_location(&candidate("10.0.0.1:1900", "http://10.0.0.1/x.xml"), &ifs).is_err()
        );
        // Host names are never resolved.
        assert!(check_location(
            &candidate("192.168.0.1:1900", "http://router.lan/x.xml"),
            &ifs
        )
        .is_err());
        assert!(check_location(
            &candidate("192.168.0.1:1900", "https://192.168.0.1/x.xml"),
            &ifs
        )
        .is_err());
        assert!(
            check_location(&candidate("192.168.0.1:1900", "file:///etc/passwd"), &ifs).is_err()
        );
    }
}
