//! The userspace relay on loopback (no root needed): 127.0.1.1 plays the gateway's WAN
//! address, 127.0.0.91 the phone, 127.0.1.10 and 127.0.1.11 internet hosts.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use forward::relay::{RelayBackend, RelayLimits};
use forward::{Backend, Forward, ForwardError, Protocol, ReconcileReport};

const WAN: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
const PHONE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 91);
const REMOTE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 10);
const REMOTE2: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 11);
const ARRIVES: Duration = Duration::from_secs(3);
const SILENCE: Duration = Duration::from_millis(400);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A port free for both UDP and TCP on WAN (the OS picks; a tiny race is acceptable).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((WAN, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((WAN, port)).is_ok() {
            return port;
        }
    }
}

fn udp(ip: Ipv4Addr, timeout: Duration) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, from)) => Some((buf[..n].to_vec(), from)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("recv: {e}"),
    }
}

fn forward(protocol: Protocol, external_port: u16, internal: SocketAddr) -> Forward {
    let SocketAddr::V4(v4) = internal else {
        panic!("IPv4 only")
    };
    Forward {
        protocol,
        external_port,
        internal_client: *v4.ip(),
        internal_port: v4.port(),
    }
}

#[test]
fn udp_round_trip_replies_from_the_external_port() {
    let rt = runtime();
    let mut relay = RelayBackend::new(rt.handle().clone(), WAN);
    let phone = udp(PHONE, ARRIVES);
    let port = free_port();
    let f = forward(Protocol::Udp, port, phone.local_addr().unwrap());
    relay.add(&f).unwrap();
    relay.add(&f).unwrap(); // idempotent
    assert_eq!(relay.list().unwrap(), vec![f]);
    let external = SocketAddr::from((WAN, port));

    let remote = udp(REMOTE, ARRIVES);
    let remote2 = udp(REMOTE2, ARRIVES);
    remote.send_to(b"ping 1", external).unwrap();
    let (data, flow1) = recv(&phone).expect("datagram reaches the phone");
    assert_eq!(data, b"ping 1");
    remote2.send_to(b"ping 2", external).unwrap();
    let (data, flow2) = recv(&phone).expect("second remote's datagram reaches the phone");
    assert_eq!(data, b"ping 2");
    assert_ne!(flow1, flow2, "each remote has its own upstream socket");

    // Replies go back out of the external port, each to its own remote.
    phone.send_to(b"pong 2", flow2).unwrap();
    phone.send_to(b"pong 1", flow1).unwrap();
    assert_eq!(recv(&remote), Some((b"pong 1".to_vec(), external)));
    assert_eq!(recv(&remote2), Some((b"pong 2".to_vec(), external)));

    // Same flow again: same upstream socket.
    remote.send_to(b"again", external).unwrap();
    assert_eq!(recv(&phone), Some((b"again".to_vec(), flow1)));
}

#[test]
fn remove_stops_a_live_udp_flow() {
    let rt = runtime();
    let mut relay = RelayBackend::new(rt.handle().clone(), WAN);
    let phone = udp(PHONE, ARRIVES);
    let port = free_port();
    let f = forward(Protocol::Udp, port, phone.local_addr().unwrap());
    relay.add(&f).unwrap();
    let external = SocketAddr::from((WAN, port));
    let remote = udp(REMOTE, ARRIVES);
    remote.send_to(b"hello", external).unwrap();
    let (_, flow) = recv(&phone).expect("flow established");

    relay.remove(&f).unwrap();
    assert!(relay.list().unwrap().is_empty());
    phone.set_read_timeout(Some(SILENCE)).unwrap();
    remote.set_read_timeout(Some(SILENCE)).unwrap();
    let _ = remote.send_to(b"after remove", external);
    assert_eq!(recv(&phone), None, "the flow must stop at once");
    let _ = phone.send_to(b"late reply", flow);
    assert_eq!(recv(&remote), None, "no reply may leave after removal");
    // The external port is free again.
    UdpSocket::bind(external).expect("external port closed by remove");
    relay.remove(&f).unwrap(); // absent: fine
}

#[test]
fn idle_udp_flows_expire_and_flows_are_bounded() {
    let rt = runtime();
    let limits = RelayLimits {
        udp_flow_idle: Duration::from_millis(200),
        max_udp_flows: 1,
        ..RelayLimits::default()
    };
    let mut relay = RelayBackend::with_limits(rt.handle().clone(), WAN, limits);
    let phone = udp(PHONE, ARRIVES);
    let port = free_port();
    relay
        .add(&forward(Protocol::Udp, port, phone.local_addr().unwrap()))
        .unwrap();
    let external = SocketAddr::from((WAN, port));
    let remote = udp(REMOTE, SILENCE);
    let remote2 = udp(REMOTE2, SILENCE);
    remote.send_to(b"one", external).unwrap();
    let (_, flow) = recv(&phone).expect("first flow");
    phone.set_read_timeout(Some(SILENCE)).unwrap();
    remote2.send_to(b"two", external).unwrap();
    assert_eq!(recv(&phone), None, "a second flow exceeds the limit");

    thread::sleep(Duration::from_millis(700));
    let _ = phone.send_to(b"too late", flow);
    assert_eq!(recv(&remote), None, "the idle flow expired");
    // The slot is free again.
    remote2.send_to(b"three", external).unwrap();
    phone.set_read_timeout(Some(ARRIVES)).unwrap();
    assert_eq!(recv(&phone).map(|d| d.0), Some(b"three".to_vec()));
}

/// A TCP echo server on the phone; returns its address.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind((PHONE, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((WAN, port)).unwrap();
    s.set_read_timeout(Some(ARRIVES)).unwrap();
    s
}

fn echo(s: &mut TcpStream, text: &[u8]) -> Vec<u8> {
    s.write_all(text).unwrap();
    let mut buf = vec![0u8; text.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Whether `s` sees the connection end (EOF or reset) within ARRIVES.
fn ends(s: &mut TcpStream) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    while start.elapsed() < ARRIVES {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn tcp_echo_and_remove_stops_a_live_connection() {
    let rt = runtime();
    let mut relay = RelayBackend::new(rt.handle().clone(), WAN);
    let port = free_port();
    let f = forward(Protocol::Tcp, port, echo_server());
    relay.add(&f).unwrap();
    let mut a = connect(port);
    let mut b = connect(port);
    assert_eq!(echo(&mut a, b"hello"), b"hello");
    assert_eq!(echo(&mut b, b"world"), b"world");
    assert_eq!(echo(&mut a, b"again"), b"again");

    relay.remove(&f).unwrap();
    assert!(ends(&mut a), "live connection a must end on remove");
    assert!(ends(&mut b), "live connection b must end on remove");
    assert!(
        TcpStream::connect((WAN, port)).is_err(),
        "the listener is closed"
    );
    // Re-adding right away works (SO_REUSEADDR; the old listener is gone).
    relay.add(&f).unwrap();
    let mut c = connect(port);
    assert_eq!(echo(&mut c, b"back"), b"back");
}

#[test]
fn tcp_connections_are_bounded() {
    let rt = runtime();
    let limits = RelayLimits {
        max_tcp_connections: 1,
        ..RelayLimits::default()
    };
    let mut relay = RelayBackend::with_limits(rt.handle().clone(), WAN, limits);
    let port = free_port();
    relay
        .add(&forward(Protocol::Tcp, port, echo_server()))
        .unwrap();
    let mut a = connect(port);
    assert_eq!(echo(&mut a, b"first"), b"first");
    let mut b = connect(port);
    assert!(ends(&mut b), "a connection over the limit is closed");
    assert_eq!(echo(&mut a, b"still"), b"still");
}

#[test]
fn add_on_a_port_in_use_fails() {
    let rt = runtime();
    let mut relay = RelayBackend::new(rt.handle().clone(), WAN);
    let phone = SocketAddr::from((PHONE, 9));
    let taken_udp = UdpSocket::bind((WAN, 0)).unwrap();
    let port = taken_udp.local_addr().unwrap().port();
    let err = relay.add(&forward(Protocol::Udp, port, phone)).unwrap_err();
    assert!(
        matches!(err, ForwardError::PortInUse { protocol: Protocol::Udp, port: p, .. } if p == port),
        "{err}"
    );
    let taken_tcp = TcpListener::bind((WAN, 0)).unwrap();
    let port = taken_tcp.local_addr().unwrap().port();
    let err = relay.add(&forward(Protocol::Tcp, port, phone)).unwrap_err();
    assert!(matches!(err, ForwardError::PortInUse { .. }), "{err}");
    assert!(err.to_string().contains("already in use"), "{err}");
    assert!(relay.list().unwrap().is_empty());
    let err = relay.add(&forward(Protocol::Tcp, 0, phone)).unwrap_err();
    assert!(matches!(err, ForwardError::InvalidForward { .. }), "{err}");
}

#[test]
fn reconcile_adds_missing_and_removes_foreign() {
    let rt = runtime();
    let mut relay = RelayBackend::new(rt.handle().clone(), WAN);
    let phone = udp(PHONE, ARRIVES);
    let target = phone.local_addr().unwrap();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let a = forward(Protocol::Udp, p1, target);
    let b = forward(Protocol::Tcp, p2, target);
    let c = forward(Protocol::Udp, p3, target);
    relay.add(&a).unwrap();
    relay.add(&b).unwrap();
    let b_moved = forward(Protocol::Tcp, p2, SocketAddr::from((PHONE, 1234)));
    let report = relay.reconcile(&[a, b_moved, c]).unwrap();
    assert_eq!(
        report,
        ReconcileReport {
            added: 2,
            removed: 1
        }
    );
    let mut want = vec![a, b_moved, c];
    want.sort_by_key(|f| f.key());
    assert_eq!(relay.list().unwrap(), want);
    assert_eq!(relay.reconcile(&want).unwrap(), ReconcileReport::default());
    // c works.
    let remote = udp(REMOTE, ARRIVES);
    remote.send_to(b"c", (WAN, p3)).unwrap();
    assert_eq!(recv(&phone).map(|d| d.0), Some(b"c".to_vec()));
    // A port taken by someone else: the others are still applied, the error says how many failed.
    let taken = UdpSocket::bind((WAN, 0)).unwrap();
    let d = forward(Protocol::Udp, taken.local_addr().unwrap().port(), target);
    let err = relay.reconcile(&[a, d]).unwrap_err();
    assert!(
        matches!(err, ForwardError::Reconcile { failed: 1, .. }),
        "{err}"
    );
    assert_eq!(relay.list().unwrap(), vec![a]);
}
