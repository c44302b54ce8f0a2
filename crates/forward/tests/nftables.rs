//! The nftables backend in the namespace home network (needs root, nft, conntrack).
//!
//! The backend runs its nft and conntrack through `ip netns exec pl-gw-<id>`, so only the
//! test's own gateway namespace is touched, never the host's ruleset.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use forward::nftables::{NftBackend, NftConfig};
use forward::{Backend, Forward, Protocol, ReconcileReport};
use plugline_testing::{
    require_homenet, require_programs, HomeNet, GW_WAN_IP, PHONE_IP, WAN_IF, WAN_IP,
};

const ARRIVES: Duration = Duration::from_secs(3);
const SILENCE: Duration = Duration::from_millis(500);
/// `remove` deletes the element at once and ends existing flows in the background within
/// milliseconds: a flow must have stopped by then.
const FLOW_END: Duration = Duration::from_millis(500);
/// One probe of a flow that may still be running.
const PROBE: Duration = Duration::from_millis(50);
/// Pause between probes.
const PROBE_GAP: Duration = Duration::from_millis(2);

fn ready(test: &str) -> bool {
    require_homenet(test) && require_programs(test, &["conntrack"])
}

fn backend(net: &HomeNet) -> NftBackend {
    let cfg = NftConfig {
        external_ip: Some(GW_WAN_IP),
        command_prefix: ["ip", "netns", "exec", net.gw.name()]
            .map(String::from)
            .to_vec(),
        ..NftConfig::new(WAN_IF)
    };
    NftBackend::new(cfg).expect("NftBackend::new in the gw namespace")
}

fn fwd(protocol: Protocol, external_port: u16, internal_port: u16) -> Forward {
    Forward {
        protocol,
        external_port,
        internal_client: PHONE_IP,
        internal_port,
    }
}

/// Retries of a read interrupted by a signal (EINTR): a socket read with a timeout can be
/// interrupted while the backend's helper processes come and go.
const EINTR_RETRIES: usize = 10;

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    for _ in 0..EINTR_RETRIES {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            // An ICMP port unreachable reported on the socket: nothing arrived.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return None,
            Err(e) => panic!("recv: {e}"),
        }
    }
    panic!("recv: interrupted {EINTR_RETRIES} times");
}

fn read_some(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    for _ in 0..EINTR_RETRIES {
        match s.read(&mut buf) {
            Ok(n) => return Some(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("read: interrupted {EINTR_RETRIES} times");
}

/// Whether a read on `s` delivers data. A connection reset counts as not delivered: once
/// the flow's conntrack entry is gone, a segment the phone still sends (a delayed ACK) leaves
/// untranslated and the wan host answers it with a reset.
fn delivers(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    for _ in 0..EINTR_RETRIES {
        match s.read(&mut buf) {
            Ok(n) => return n > 0,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::ConnectionReset
                ) =>
            {
                return false
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("read: interrupted {EINTR_RETRIES} times");
}

fn gw_nft(net: &HomeNet, command: &str) -> String {
    let out = net.gw.run(&["nft", command]).expect(command);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nft_forwards_udp_and_tcp_and_remove_ends_flows() {
    const TEST: &str = "nft_forwards_udp_and_tcp_and_remove_ends_flows";
    if !ready(TEST) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let mut nft = backend(&net);
    let udp = fwd(Protocol::Udp, 6000, 5000);
    let tcp = fwd(Protocol::Tcp, 9090, 8080);
    nft.add(&udp).unwrap();
    nft.add(&tcp).unwrap();
    nft.add(&udp).unwrap(); // idempotent
    assert_eq!(nft.list().unwrap(), vec![tcp, udp]);

    // UDP: wan -> 203.0.113.1:6000 reaches the phone's 5000; the reply leaves from 6000.
    let phone_udp = net
        .phone
        .enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5000)).unwrap());
    phone_udp.set_read_timeout(Some(ARRIVES)).unwrap();
    let wan_udp = net.wan.enter(|| UdpSocket::bind((WAN_IP, 40000)).unwrap());
    wan_udp.set_read_timeout(Some(ARRIVES)).unwrap();
    let external = SocketAddr::from((GW_WAN_IP, 6000));
    wan_udp.send_to(b"ping", external).unwrap();
    let (data, from) = recv(&phone_udp).expect("datagram reaches the phone");
    assert_eq!(data, b"ping");
    assert_eq!(from, SocketAddr::from((WAN_IP, 40000)));
    phone_udp.send_to(b"pong", from).unwrap();
    assert_eq!(recv(&wan_udp), Some((b"pong".to_vec(), external)));
    wan_udp.send_to(b"second", external).unwrap();
    assert_eq!(recv(&phone_udp).map(|d| d.0), Some(b"second".to_vec()));

    // TCP: a connection to 203.0.113.1:9090 reaches the phone's 8080.
    let phone_tcp = net
        .phone
        .enter(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 8080)).unwrap());
    let mut wan_tcp = net.wan.enter(|| {
        TcpStream::connect_timeout(&SocketAddr::from((GW_WAN_IP, 9090)), ARRIVES).unwrap()
    });
    wan_tcp.set_read_timeout(Some(ARRIVES)).unwrap();
    let (mut inside, peer) = phone_tcp.accept().unwrap();
    assert_eq!(peer.ip(), WAN_IP);
    inside.set_read_timeout(Some(ARRIVES)).unwrap();
    wan_tcp.write_all(b"hello").unwrap();
    assert_eq!(read_some(&mut inside), Some(b"hello".to_vec()));
    inside.write_all(b"hi").unwrap();
    assert_eq!(read_some(&mut wan_tcp), Some(b"hi".to_vec()));

    // Remove UDP: NEW datagrams on the SAME flow (same source port) stop arriving within
    // FLOW_END (the conntrack flush runs in the background), and stay stopped.
    nft.remove(&udp).unwrap();
    let removed_at = Instant::now();
    phone_udp.set_read_timeout(Some(PROBE)).unwrap();
    let mut stopped = false;
    while !stopped && removed_at.elapsed() < FLOW_END {
        wan_udp.send_to(b"after remove", external).unwrap();
        stopped = recv(&phone_udp).is_none();
        // Probe every few milliseconds, not in a busy loop that would slow the flush down.
        std::thread::sleep(PROBE_GAP);
    }
    eprintln!(
        "UDP flow found stopped {:?} after remove (the last {PROBE:?} probe included)",
        removed_at.elapsed()
    );
    assert!(
        stopped,
        "conntrack flush must stop the flow within {FLOW_END:?}"
    );
    phone_udp.set_read_timeout(Some(SILENCE)).unwrap();
    wan_udp.send_to(b"after remove", external).unwrap();
    assert_eq!(recv(&phone_udp), None, "the flow must stay stopped");

    // Remove TCP: the live connection's next segments stop reaching the phone.
    nft.remove(&tcp).unwrap();
    let removed_at = Instant::now();
    inside.set_read_timeout(Some(PROBE)).unwrap();
    let mut stopped = false;
    while !stopped && removed_at.elapsed() < FLOW_END {
        let _ = wan_tcp.write_all(b"after remove");
        stopped = !delivers(&mut inside);
        std::thread::sleep(PROBE_GAP);
    }
    eprintln!(
        "TCP flow found stopped {:?} after remove (the last {PROBE:?} probe included)",
        removed_at.elapsed()
    );
    assert!(stopped, "the TCP flow must stop within {FLOW_END:?}");
    inside.set_read_timeout(Some(SILENCE)).unwrap();
    let _ = wan_tcp.write_all(b"after remove");
    assert!(!delivers(&mut inside), "the TCP flow must stay stopped");
    assert!(nft.list().unwrap().is_empty());
    nft.remove(&udp).unwrap(); // absent: fine

    // Re-add: the same flow works again. The datagram above left a conntrack entry without
    // DNAT (it went to the gateway itself); add() has it ended in the background, so the
    // flow is forwarded again within moments although its remote never stopped sending.
    nft.add(&udp).unwrap();
    phone_udp
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut back = None;
    while back.is_none() && start.elapsed() < ARRIVES {
        wan_udp.send_to(b"back", external).unwrap();
        back = recv(&phone_udp);
    }
    eprintln!(
        "re-added forward carries the stale flow after {:?}",
        start.elapsed()
    );
    assert_eq!(back.map(|d| d.0), Some(b"back".to_vec()));

    // Replacing the target of a key in add(): the old flow stops, traffic goes to the new one.
    let phone_udp2 = net
        .phone
        .enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5001)).unwrap());
    phone_udp2.set_read_timeout(Some(ARRIVES)).unwrap();
    let moved = fwd(Protocol::Udp, 6000, 5001);
    nft.add(&moved).unwrap();
    assert_eq!(nft.list().unwrap(), vec![moved]);
    wan_udp.send_to(b"moved", external).unwrap();
    assert_eq!(recv(&phone_udp2).map(|d| d.0), Some(b"moved".to_vec()));
}

#[test]
fn nft_reconcile_restart_and_outside_changes() {
    const TEST: &str = "nft_reconcile_restart_and_outside_changes";
    if !ready(TEST) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let mut nft = backend(&net);
    let a = fwd(Protocol::Udp, 6000, 5000);
    let b = fwd(Protocol::Tcp, 9191, 80);
    nft.add(&a).unwrap();

    // A foreign element, and a wanted one missing.
    gw_nft(
        &net,
        "add element ip plugline udp_dnat { 7777 : 192.168.0.99 . 7777 }",
    );
    assert_eq!(nft.list().unwrap().len(), 2);
    let report = nft.reconcile(&[a, b]).unwrap();
    assert_eq!(
        report,
        ReconcileReport {
            added: 1,
            removed: 1
        }
    );
    assert_eq!(nft.list().unwrap(), vec![b, a]);
    assert_eq!(nft.reconcile(&[a, b]).unwrap(), ReconcileReport::default());

    // A changed target counts as one removal and one addition.
    let a2 = fwd(Protocol::Udp, 6000, 5002);
    assert_eq!(
        nft.reconcile(&[a2, b]).unwrap(),
        ReconcileReport {
            added: 1,
            removed: 1
        }
    );

    // A restart (new backend) keeps the elements: no gap for live forwards.
    drop(nft);
    let mut nft = backend(&net);
    assert_eq!(nft.list().unwrap(), vec![b, a2]);

    // Someone flushes our chain (firewall reload): reconcile restores the rules.
    gw_nft(&net, "flush chain ip plugline prerouting");
    assert!(!gw_nft(&net, "list chain ip plugline prerouting").contains("dnat"));
    assert_eq!(nft.reconcile(&[a2, b]).unwrap(), ReconcileReport::default());
    assert!(gw_nft(&net, "list chain ip plugline prerouting").contains("udp_dnat"));

    // Someone deletes our whole table: add() recreates it, reconcile restores the rest.
    gw_nft(&net, "delete table ip plugline");
    assert!(nft.list().unwrap().is_empty());
    nft.add(&a).unwrap();
    assert_eq!(nft.list().unwrap(), vec![a]);
    assert_eq!(
        nft.reconcile(&[a, b]).unwrap(),
        ReconcileReport {
            added: 1,
            removed: 0
        }
    );

    // The long-lived nft is killed: the next change starts a new one.
    let pids = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "pids", net.gw.name()])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    for pid in pids.split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "nft" {
            std::process::Command::new("kill")
                .args(["-9", pid])
                .status()
                .unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let c = fwd(Protocol::Tcp, 9292, 80);
    nft.add(&c).unwrap();
    assert_eq!(nft.list().unwrap(), vec![b, c, a]);
}

#[test]
fn nft_per_change_cost() {
    const TEST: &str = "nft_per_change_cost";
    if !ready(TEST) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let mut nft = backend(&net);
    const N: u16 = 2000;
    let forwards: Vec<Forward> = (0..N)
        .map(|i| fwd(Protocol::Udp, 20000 + i, 20000 + i))
        .collect();
    let start = Instant::now();
    for f in &forwards {
        nft.add(f).unwrap();
    }
    let adds = start.elapsed();
    let start = Instant::now();
    let listed = nft.list().unwrap();
    let list = start.elapsed();
    assert_eq!(listed.len(), usize::from(N));
    const R: usize = 50;
    let start = Instant::now();
    for f in &forwards[..R] {
        nft.remove(f).unwrap();
    }
    let removes = start.elapsed();
    let start = Instant::now();
    let report = nft.reconcile(&forwards).unwrap();
    let reconcile = start.elapsed();
    assert_eq!(report.added, R);
    eprintln!(
        "nft per-change cost ({}): {N} adds in {adds:?} = {:.3} ms/add; list of {N} in {list:?}; \
         {R} removes (element; flows end in the background) = {:.2} ms/remove; \
         reconcile adding {R} to {} in {reconcile:?}",
        nft.change_path(),
        adds.as_secs_f64() * 1000.0 / f64::from(N),
        removes.as_secs_f64() * 1000.0 / R as f64,
        usize::from(N) - R,
    );

    // The same adds (other ports, same map size to start from) through the long-lived nft.
    drop(nft);
    let mut old = backend(&net).without_netlink();
    assert_eq!(old.change_path(), "nft -i");
    let others: Vec<Forward> = (0..N)
        .map(|i| fwd(Protocol::Udp, 30000 + i, 30000 + i))
        .collect();
    let start = Instant::now();
    for f in &others {
        old.add(f).unwrap();
    }
    let old_adds = start.elapsed();
    assert_eq!(old.list().unwrap().len(), 2 * usize::from(N));
    eprintln!(
        "per-change cost of {N} adds: netlink {:.4} ms/add, nft -i {:.4} ms/add",
        adds.as_secs_f64() * 1000.0 / f64::from(N),
        old_adds.as_secs_f64() * 1000.0 / f64::from(N),
    );
}

#[test]
fn nft_netlink_changes_show_in_nft_listing() {
    const TEST: &str = "nft_netlink_changes_show_in_nft_listing";
    if !ready(TEST) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let mut nft = backend(&net);
    assert_eq!(nft.change_path(), "netlink");
    let a = fwd(Protocol::Udp, 6000, 5000);
    let b = fwd(Protocol::Udp, 6001, 5001);
    let c = fwd(Protocol::Tcp, 9090, 8080);
    for f in [a, b, c] {
        nft.add(&f).unwrap();
    }
    nft.add(&a).unwrap(); // idempotent
    let udp = gw_nft(&net, "list map ip plugline udp_dnat");
    assert!(udp.contains("6000 : 192.168.0."), "{udp}");
    assert!(udp.contains(&format!("6000 : {PHONE_IP} . 5000")), "{udp}");
    assert!(udp.contains(&format!("6001 : {PHONE_IP} . 5001")), "{udp}");
    assert!(!udp.contains("9090"), "{udp}");
    let tcp = gw_nft(&net, "list map ip plugline tcp_dnat");
    assert!(tcp.contains(&format!("9090 : {PHONE_IP} . 8080")), "{tcp}");

    // Replacing a target (EEXIST, then delete + add in one batch) and removing.
    let a2 = fwd(Protocol::Udp, 6000, 5002);
    nft.add(&a2).unwrap();
    nft.remove(&b).unwrap();
    nft.remove(&b).unwrap(); // absent: fine
    let udp = gw_nft(&net, "list map ip plugline udp_dnat");
    assert!(udp.contains(&format!("6000 : {PHONE_IP} . 5002")), "{udp}");
    assert!(!udp.contains("6001"), "{udp}");
    assert_eq!(nft.list().unwrap(), vec![c, a2]);

    // Our map deleted from outside: the kernel's ENOENT makes add() reinstall the table.
    gw_nft(&net, "delete table ip plugline");
    nft.add(&b).unwrap();
    assert_eq!(nft.list().unwrap(), vec![b]);
    assert_eq!(nft.change_path(), "netlink");
}

/// The `flowed` set notes exactly the ports that got a flow from the WAN (also flows from
/// before the backend started), and a stale flow to a noted port is still ended when the
/// port gets mapped.
#[test]
fn nft_flowed_set_notes_ports_with_flows_and_stale_flows_still_end() {
    const TEST: &str = "nft_flowed_set_notes_ports_with_flows_and_stale_flows_still_end";
    if !ready(TEST) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let flowed = || gw_nft(&net, "list set ip plugline flowed");

    // A remote sends to port 7000 before the gateway runs: the gateway itself "answers"
    // (no DNAT), and that conntrack entry lives on as long as the remote keeps sending.
    let wan_udp = net.wan.enter(|| UdpSocket::bind((WAN_IP, 41000)).unwrap());
    let external = SocketAddr::from((GW_WAN_IP, 7000));
    wan_udp.send_to(b"early", external).unwrap();
    let mut nft = backend(&net);
    let set = flowed();
    assert!(set.contains("udp . 7000"), "seeded at start: {set}");

    // Mapped now: the stale flow is ended in the background and the remote's datagrams
    // (same source port, never stopped) reach the phone.
    let phone_udp = net
        .phone
        .enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5000)).unwrap());
    phone_udp
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    nft.add(&fwd(Protocol::Udp, 7000, 5000)).unwrap();
    let start = Instant::now();
    let mut got = None;
    while got.is_none() && start.elapsed() < ARRIVES {
        wan_udp.send_to(b"after add", external).unwrap();
        got = recv(&phone_udp);
    }
    assert_eq!(got.map(|d| d.0), Some(b"after add".to_vec()));

    // A port mapped and removed without traffic is not noted; traffic notes it.
    let quiet = fwd(Protocol::Tcp, 7001, 8080);
    nft.add(&quiet).unwrap();
    nft.remove(&quiet).unwrap();
    let set = flowed();
    assert!(!set.contains("tcp . 7001"), "{set}");
    assert!(!set.contains("udp . 7001"), "{set}");
    wan_udp
        .send_to(b"probe", SocketAddr::from((GW_WAN_IP, 7001)))
        .unwrap();
    let start = Instant::now();
    while !flowed().contains("udp . 7001") && start.elapsed() < ARRIVES {
        std::thread::sleep(Duration::from_millis(20));
    }
    let set = flowed();
    assert!(set.contains("udp . 7001"), "{set}");
    assert!(!set.contains("tcp . 7001"), "{set}");
}
