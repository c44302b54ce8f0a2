//! The namespace home network: topology, NAT, multicast scope, teardown. Needs root (skips
//! otherwise, failing under PLUGLINE_REQUIRE_PEERS=1).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use plugline_testing::{
    require_homenet, HomeNet, Netns, GW_LAN_IP, GW_WAN_IP, PHONE_IP, SSDP_ADDR, WAN_IP,
};

fn homenet(test: &str) -> Option<HomeNet> {
    if !require_homenet(test) {
        return None;
    }
    Some(HomeNet::new().expect("HomeNet::new"))
}

fn udp(ns: &Netns, ip: Ipv4Addr) -> UdpSocket {
    let s = ns.enter(|| UdpSocket::bind((ip, 0))).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// Sends `msg` from `from` to `to` (a few tries) and returns what `to` received and from where.
fn udp_exchange(from: &UdpSocket, to: &UdpSocket, dest: SocketAddr) -> Option<SocketAddr> {
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        from.send_to(b"probe", dest).ok()?;
        if let Ok((n, src)) = to.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"probe");
            return Some(src);
        }
    }
    None
}

#[test]
fn builds_three_namespaces() {
    let Some(net) = homenet("builds_three_namespaces") else {
        return;
    };
    assert!(net.id.contains('x'));
    for (ns, role) in net.namespaces().into_iter().zip(["phone", "gw", "wan"]) {
        assert_eq!(ns.name(), format!("pl-{role}-{}", net.id));
        assert!(Path::new("/run/netns").join(ns.name()).exists());
        let links = ns.run(&["ip", "-o", "link", "show", "up"]).unwrap();
        assert!(String::from_utf8_lossy(&links.stdout).contains("lo:"));
    }
    let addrs = |ns: &Netns| {
        String::from_utf8_lossy(&ns.run(&["ip", "-o", "-4", "addr"]).unwrap().stdout).into_owned()
    };
    assert!(addrs(&net.phone).contains("eth0    inet 192.168.0.91/24"));
    let gw = addrs(&net.gw);
    assert!(gw.contains("lan0    inet 192.168.0.1/24"), "{gw}");
    assert!(gw.contains("wan0    inet 203.0.113.1/24"), "{gw}");
    assert!(addrs(&net.wan).contains("eth0    inet 203.0.113.10/24"));
    let routes = net.wan.run(&["ip", "-4", "route"]).unwrap();
    assert!(!String::from_utf8_lossy(&routes.stdout).contains("default"));
    let fwd = net
        .gw
        .enter(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))
        .unwrap();
    assert_eq!(fwd.trim(), "1");
    let nat = net
        .gw
        .run(&["nft", "list", "table", "ip", "plnat"])
        .unwrap();
    assert!(String::from_utf8_lossy(&nat.stdout).contains("masquerade"));
}

#[test]
fn phone_reaches_gateway_lan_address() {
    let Some(net) = homenet("phone_reaches_gateway_lan_address") else {
        return;
    };
    let listener = net.gw.enter(|| TcpListener::bind((GW_LAN_IP, 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    net.phone.wait_tcp(addr, Duration::from_secs(2)).unwrap();
    // The same address is not reachable from the test's own (root) namespace.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    let gw = udp(&net.gw, GW_LAN_IP);
    let phone = udp(&net.phone, PHONE_IP);
    let src = udp_exchange(&phone, &gw, gw.local_addr().unwrap()).expect("no datagram");
    assert_eq!(src.ip(), PHONE_IP);
}

#[test]
fn phone_reaches_wan_through_nat() {
    let Some(net) = homenet("phone_reaches_wan_through_nat") else {
        return;
    };
    let wan = udp(&net.wan, WAN_IP);
    let phone = udp(&net.phone, PHONE_IP);
    let src = udp_exchange(&phone, &wan, wan.local_addr().unwrap()).expect("no datagram");
    assert_eq!(src.ip(), GW_WAN_IP, "the wan host must see the NAT address");
    // The reply goes back through the NAT to the phone.
    let got = udp_exchange(&wan, &phone, src).expect("no echo");
    assert_eq!(got, wan.local_addr().unwrap());
    // TCP too.
    let listener = net.wan.enter(|| TcpListener::bind((WAN_IP, 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    net.phone.wait_tcp(addr, Duration::from_secs(2)).unwrap();
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), GW_WAN_IP);
}

#[test]
fn wan_cannot_reach_phone_directly() {
    let Some(net) = homenet("wan_cannot_reach_phone_directly") else {
        return;
    };
    let phone = udp(&net.phone, PHONE_IP);
    let wan = udp(&net.wan, WAN_IP);
    let dest = phone.local_addr().unwrap();
    let sent = wan.send_to(b"probe", dest);
    assert!(sent.is_err(), "wan has no route to the LAN, send must fail");
    let mut buf = [0u8; 16];
    assert!(phone.recv_from(&mut buf).is_err());
    let listener = net
        .phone
        .enter(|| TcpListener::bind((PHONE_IP, 0)))
        .unwrap();
    let tcp = listener.local_addr().unwrap();
    assert!(net.wan.wait_tcp(tcp, Duration::from_millis(100)).is_err());
}

#[test]
fn ssdp_multicast_stays_on_the_lan() {
    let Some(net) = homenet("ssdp_multicast_stays_on_the_lan") else {
        return;
    };
    let group = Ipv4Addr::new(239, 255, 255, 250);
    let gw = net
        .gw
        .enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 1900)))
        .unwrap();
    gw.join_multicast_v4(&group, &GW_LAN_IP).unwrap();
    gw.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let wan = net
        .wan
        .enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 1900)))
        .unwrap();
    wan.join_multicast_v4(&group, &WAN_IP).unwrap();
    wan.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let phone = udp(&net.phone, PHONE_IP);
    let src = udp_exchange(&phone, &gw, SSDP_ADDR).expect("multicast did not reach gw");
    assert_eq!(src, phone.local_addr().unwrap());
    let mut buf = [0u8; 64];
    assert!(
        wan.recv_from(&mut buf).is_err(),
        "multicast leaked to the wan side"
    );
}

#[test]
fn namespaces_are_deleted_on_drop_and_on_panic() {
    if !require_homenet("namespaces_are_deleted_on_drop_and_on_panic") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let paths: Vec<_> = net.namespaces().iter().map(|n| n.path()).collect();
    assert!(paths.iter().all(|p| p.exists()));
    drop(net);
    assert!(paths.iter().all(|p| !p.exists()), "{paths:?}");

    let mut seen = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = HomeNet::new().unwrap();
        seen = net.namespaces().iter().map(|n| n.path()).collect();
        panic!("deliberate panic with a HomeNet alive");
    }));
    assert!(result.is_err());
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|p| !p.exists()), "{seen:?}");
}

#[test]
fn two_homenets_at_once() {
    let Some(a) = homenet("two_homenets_at_once") else {
        return;
    };
    let b = HomeNet::new().unwrap();
    assert_ne!(a.id, b.id);
    for net in [&a, &b] {
        let wan = udp(&net.wan, WAN_IP);
        let phone = udp(&net.phone, PHONE_IP);
        let src = udp_exchange(&phone, &wan, wan.local_addr().unwrap()).expect("no datagram");
        assert_eq!(src.ip(), GW_WAN_IP);
    }
    // Traffic stays inside its own network: a wan socket of `a` never sees `b`'s phone.
    let wan_a = udp(&a.wan, WAN_IP);
    let phone_b = udp(&b.phone, PHONE_IP);
    phone_b.send_to(b"x", wan_a.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 8];
    assert!(wan_a.recv_from(&mut buf).is_err());
}

#[test]
fn sweeps_namespaces_of_dead_processes() {
    if !require_homenet("sweeps_namespaces_of_dead_processes") {
        return;
    }
    // A pid that has just exited: a short-lived child.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    if Path::new(&format!("/proc/{dead}")).exists() {
        eprintln!("pid {dead} already reused; nothing to check");
        return;
    }
    let stale = Netns::from_name(format!("pl-phone-{dead}x7"));
    let ip = plugline_testing::find_program("ip").unwrap();
    let st = std::process::Command::new(ip)
        .args(["netns", "add", stale.name()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(stale.exists());
    let start = Instant::now();
    let _net = HomeNet::new().unwrap();
    assert!(!stale.exists(), "stale namespace survived the sweep");
    eprintln!("HomeNet::new with sweep took {:?}", start.elapsed());
}
