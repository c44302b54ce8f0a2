//! The SSDP server: answers M-SEARCH from the LAN at once and announces the gateway with
//! NOTIFY ssdp:alive at start and periodically, ssdp:byebye at stop.
//!
//! Matching, message text, the announcement schedule and the per-source rate limit are pure
//! (`ssdp_proto::advertise`); this module owns the sockets. The listening socket is bound to the
//! multicast group on the LAN interface only, and every datagram's source must be on the LAN
//! subnet: nothing on the WAN side is ever answered. Answers go out from a unicast socket bound
//! to the LAN address, so their source is the address in LOCATION.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use ssdp_proto::advertise::{self, Advertised, Announcer, AnswerParams, RateLimiter};
use ssdp_proto::{Message, NotifyKind};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

/// Answers per source: burst size.
pub const ANSWER_BURST: u32 = 20;
/// Answers per source: sustained rate per second.
pub const ANSWER_RATE: u32 = 10;
/// Sources tracked by the rate limiter.
pub const MAX_TRACKED_SOURCES: usize = 1024;
/// Multicast TTL of NOTIFY (UDA 2.0 §1.1.2).
pub const NOTIFY_TTL: u32 = 2;
/// Copies of each NOTIFY sent (UDP loses packets).
pub const NOTIFY_COPIES: usize = 2;

/// What the SSDP server advertises.
#[derive(Debug, Clone)]
pub struct SsdpConfig {
    /// The gateway's LAN address.
    pub lan_addr: Ipv4Addr,
    /// Prefix length of the LAN.
    pub lan_prefix: u8,
    /// Targets answered with the IGD:2 description's LOCATION.
    pub targets_v2: Vec<Advertised>,
    /// Targets answered with the IGD:1 description's LOCATION.
    pub targets_v1: Vec<Advertised>,
    /// SERVER header.
    pub server: String,
    /// BOOTID.UPNP.ORG.
    pub boot_id: u32,
    /// CONFIGID.UPNP.ORG.
    pub config_id: u32,
    /// CACHE-CONTROL max-age.
    pub max_age: u32,
    /// NOTIFY period.
    pub notify_interval: Duration,
}

/// The bound sockets (made before privileges or namespaces change, and so that bind errors
/// surface at start).
#[derive(Debug)]
pub struct SsdpSockets {
    listen: UdpSocket,
    send: UdpSocket,
}

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
const PORT: u16 = 1900;

impl SsdpSockets {
    /// Bind the group socket on the LAN interface (by its address) and the unicast sender.
    pub fn bind(lan_addr: Ipv4Addr) -> std::io::Result<SsdpSockets> {
        let listen = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        listen.set_reuse_address(true)?;
        // Only this group's datagrams, and only those arriving for our membership.
        listen.bind(&SocketAddr::V4(SocketAddrV4::new(GROUP, PORT)).into())?;
        listen.join_multicast_v4(&GROUP, &lan_addr)?;
        set_multicast_all_off(&listen);
        listen.set_nonblocking(true)?;

        let send = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        send.set_multicast_if_v4(&lan_addr)?;
        send.set_multicast_ttl_v4(NOTIFY_TTL)?;
        send.set_multicast_loop_v4(true)?;
        send.bind(&SocketAddr::V4(SocketAddrV4::new(lan_addr, 0)).into())?;
        send.set_nonblocking(true)?;
        Ok(SsdpSockets {
            listen: UdpSocket::from_std(listen.into())?,
            send: UdpSocket::from_std(send.into())?,
        })
    }
}

/// IP_MULTICAST_ALL off: without it Linux delivers every group joined by any socket of the
/// host to a socket bound to a group address.
fn set_multicast_all_off(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    // SAFETY: a valid fd, a pointer to a live c_int and its size.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_ALL,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

fn on_lan(ip: IpAddr, lan: Ipv4Addr, prefix: u8) -> bool {
    let IpAddr::V4(ip) = ip else { return false };
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    u32::from(ip) & mask == u32::from(lan) & mask
}

/// Serve until `shutdown` turns true, then send ssdp:byebye for every target.
pub async fn serve(sockets: SsdpSockets, config: SsdpConfig, mut shutdown: watch::Receiver<bool>) {
    let params = AnswerParams {
        server: &config.server,
        max_age: config.max_age,
        boot_id: config.boot_id,
        config_id: config.config_id,
    };
    let seed = u64::from(config.boot_id) ^ u64::from(u32::from(config.lan_addr));
    let mut announcer = Announcer::new(Instant::now().into_std(), config.notify_interval, seed);
    let mut limiter = RateLimiter::new(ANSWER_BURST, ANSWER_RATE, MAX_TRACKED_SOURCES);
    let group = SocketAddr::V4(SocketAddrV4::new(GROUP, PORT));
    let all_targets: Vec<&Advertised> = config
        .targets_v2
        .iter()
        .chain(config.targets_v1.iter())
        .collect();
    let mut buf = vec![0u8; ssdp_proto::MAX_MESSAGE_LEN + 1];
    loop {
        if announcer.poll_due(Instant::now().into_std()) {
            for _ in 0..NOTIFY_COPIES {
                for target in &all_targets {
                    let msg = advertise::notify(NotifyKind::Alive, target, &params);
                    let _ = sockets.send.send_to(&msg, group).await;
                }
            }
        }
        let wake = Instant::from_std(announcer.poll_timeout());
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            _ = tokio::time::sleep_until(wake) => {}
            received = sockets.listen.recv_from(&mut buf) => {
                let Ok((len, source)) = received else { continue };
                if len > ssdp_proto::MAX_MESSAGE_LEN || !on_lan(source.ip(), config.lan_addr, config.lan_prefix) {
                    continue;
                }
                let Ok(Message::Search(search)) = ssdp_proto::parse(&buf[..len]) else { continue };
                if !limiter.allow(Instant::now().into_std(), source.ip()) {
                    tracing::debug!(%source, "M-SEARCH rate limited");
                    continue;
                }
                for target in advertise::answers(&search, &config.targets_v2)
                    .into_iter()
                    .chain(advertise::answers(&search, &config.targets_v1))
                {
                    let msg = advertise::response(search.st, target, &params);
                    if !msg.is_empty() {
                        let _ = sockets.send.send_to(&msg, source).await;
                    }
                }
            }
        }
    }
    for target in &all_targets {
        let msg = advertise::notify(NotifyKind::ByeBye, target, &params);
        let _ = sockets.send.send_to(&msg, group).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_check() {
        let lan = Ipv4Addr::new(192, 168, 0, 1);
        assert!(on_lan("192.168.0.91".parse().unwrap(), lan, 24));
        assert!(!on_lan("203.0.113.10".parse().unwrap(), lan, 24));
        assert!(on_lan("127.0.0.5".parse().unwrap(), Ipv4Addr::LOCALHOST, 8));
        assert!(!on_lan("::1".parse().unwrap(), lan, 24));
    }
}
