//! The whole gateway in-process on loopback with the userspace relay backend: no root, no
//! namespaces. Real forwarding through mappings made with our client, delete and lease expiry
//! stopping it (also for a flow that already existed), GENA events on a change, and a restart
//! that restores the table and the forwards from the journal.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use gateway::GatewayConfig;
use portmap::{MappingRequest, Protocol};
use support::{client, free_port, relay_config, start, state_dir, INTERNET, LAN, WAN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(2);

async fn arrives(phone: &UdpSocket, outside: &UdpSocket, port: u16, payload: &[u8]) -> bool {
    outside.send_to(payload, (WAN, port)).await.unwrap();
    let mut buf = [0u8; 128];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), phone.recv_from(&mut buf)).await,
        Ok(Ok((n, _))) if &buf[..n] == payload
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_tcp_forward_and_stop_on_delete() {
    let state = state_dir("relay", "fwd");
    let gw = start(relay_config(&state, free_port(LAN))).await;
    let c = client(&gw.url()).await;
    assert_eq!(c.external_ip().await.unwrap(), Some(WAN.into()));

    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let port = phone.local_addr().unwrap().port();
    let mut req = MappingRequest::new(Protocol::Udp, port);
    req.any_port = true;
    let m = c.add(&req).await.unwrap();
    let outside = UdpSocket::bind((INTERNET, 0)).await.unwrap();
    assert!(
        arrives(&phone, &outside, m.external_port, b"one").await,
        "UDP not relayed"
    );
    // The reply leaves from the external port.
    let mut buf = [0u8; 16];
    outside
        .send_to(b"two", (WAN, m.external_port))
        .await
        .unwrap();
    let (_, from) = tokio::time::timeout(WAIT, phone.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    phone.send_to(b"back", from).await.unwrap();
    let (n, reply_from) = tokio::time::timeout(WAIT, outside.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"back");
    assert_eq!(reply_from, SocketAddr::from((WAN, m.external_port)));

    // TCP.
    let listener = TcpListener::bind((LAN, 0)).await.unwrap();
    let tport = listener.local_addr().unwrap().port();
    let mut treq = MappingRequest::new(Protocol::Tcp, tport);
    treq.any_port = true;
    let tm = c.add(&treq).await.unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind((INTERNET, 0).into()).unwrap();
    let mut conn = tokio::time::timeout(WAIT, sock.connect((WAN, tm.external_port).into()))
        .await
        .unwrap()
        .unwrap();
    conn.write_all(b"ping").await.unwrap();
    let (mut inside, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut four = [0u8; 4];
    inside.read_exact(&mut four).await.unwrap();
    assert_eq!(&four, b"ping");

    // Delete: the existing UDP flow and the live TCP connection stop at once.
    c.delete(Protocol::Udp, m.external_port).await.unwrap();
    assert!(
        !arrives(&phone, &outside, m.external_port, b"after").await,
        "UDP flow survived delete"
    );
    c.delete(Protocol::Tcp, tm.external_port).await.unwrap();
    let _ = conn.write_all(b"more").await;
    let mut rest = [0u8; 4];
    let got = tokio::time::timeout(Duration::from_millis(500), inside.read(&mut rest)).await;
    assert!(!matches!(got, Ok(Ok(4))), "TCP connection survived delete");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_stops_when_the_lease_expires() {
    let state = state_dir("relay", "lease");
    let gw = start(relay_config(&state, free_port(LAN))).await;
    let c = client(&gw.url()).await;
    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let mut req = MappingRequest::new(Protocol::Udp, phone.local_addr().unwrap().port());
    req.any_port = true;
    req.lease_seconds = 1;
    let m = c.add(&req).await.unwrap();
    assert_eq!(m.lease_seconds, 1);
    let outside = UdpSocket::bind((INTERNET, 0)).await.unwrap();
    assert!(arrives(&phone, &outside, m.external_port, b"x").await);
    let mut expired = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if c.get(Protocol::Udp, m.external_port)
            .await
            .unwrap()
            .is_none()
        {
            expired = true;
            break;
        }
    }
    assert!(expired, "lease did not expire");
    assert!(
        !arrives(&phone, &outside, m.external_port, b"y").await,
        "forwarded after expiry"
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_mappings_and_forwards() {
    let state = state_dir("relay", "restart");
    let http_port = free_port(LAN);
    let gw = start(relay_config(&state, http_port)).await;
    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let mut req = MappingRequest::new(Protocol::Udp, phone.local_addr().unwrap().port());
    req.any_port = true;
    let m = client(&gw.url()).await.add(&req).await.unwrap();
    gw.stop().await;
    let gw = start(relay_config(&state, http_port)).await;
    let c = client(&gw.url()).await;
    let entry = c
        .get(Protocol::Udp, m.external_port)
        .await
        .unwrap()
        .expect("mapping restored");
    assert_eq!(entry.internal_port, m.internal_port);
    assert!(entry.lease_duration <= m.lease_seconds && entry.lease_duration > 0);
    let outside = UdpSocket::bind((INTERNET, 0)).await.unwrap();
    assert!(
        arrives(&phone, &outside, m.external_port, b"again").await,
        "forward not restored"
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gena_subscriber_hears_the_mapping_count_change() {
    let state = state_dir("relay", "gena");
    let http_port = free_port(LAN);
    let gw = start(relay_config(&state, http_port)).await;
    let callback = TcpListener::bind((LAN, 0)).await.unwrap();
    let cb = callback.local_addr().unwrap();
    let mut s = TcpStream::connect((LAN, http_port)).await.unwrap();
    let request = format!(
        "SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: {LAN}:{http_port}\r\nCALLBACK: <http://{cb}/notify>\r\nNT: upnp:event\r\nTIMEOUT: Second-1800\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    async fn next_notify(callback: &TcpListener) -> String {
        let (mut conn, _) = tokio::time::timeout(WAIT, callback.accept())
            .await
            .unwrap()
            .unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // Bounded read of one NOTIFY (the sender closes or stops after its body).
        for _ in 0..50 {
            match tokio::time::timeout(Duration::from_millis(100), conn.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
                Ok(Err(_)) => break,
            }
            if all.windows(16).any(|w| w == b"</e:propertyset>") {
                break;
            }
        }
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await;
        String::from_utf8_lossy(&all).to_string()
    }
    let initial = next_notify(&callback).await;
    assert!(initial.contains("SEQ: 0"), "{initial}");
    assert!(
        initial.contains("<PortMappingNumberOfEntries>0</PortMappingNumberOfEntries>"),
        "{initial}"
    );
    assert!(
        initial.contains("<ExternalIPAddress>127.0.1.1</ExternalIPAddress>"),
        "{initial}"
    );

    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let mut req = MappingRequest::new(Protocol::Udp, phone.local_addr().unwrap().port());
    req.any_port = true;
    client(&gw.url()).await.add(&req).await.unwrap();
    let change = next_notify(&callback).await;
    assert!(change.contains("SEQ: 1"), "{change}");
    assert!(
        change.contains("<PortMappingNumberOfEntries>1</PortMappingNumberOfEntries>"),
        "{change}"
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_wan_learns_its_public_address_by_stun() {
    // A STUN server that says the world sees us as 198.51.100.77.
    let server = UdpSocket::bind((INTERNET, 0)).await.unwrap();
    let stun_addr = server.local_addr().unwrap();
    let responder = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let Ok((n, from)) = server.recv_from(&mut buf).await else {
                return;
            };
            if n < 20 {
                continue;
            }
            let cookie: u32 = 0x2112_A442;
            let mut out = vec![0x01, 0x01, 0, 12];
            out.extend_from_slice(&cookie.to_be_bytes());
            out.extend_from_slice(&buf[8..20]);
            out.extend_from_slice(&[0, 0x20, 0, 8, 0, 1]);
            out.extend_from_slice(&(40000u16 ^ (cookie >> 16) as u16).to_be_bytes());
            out.extend_from_slice(
                &(u32::from(Ipv4Addr::new(198, 51, 100, 77)) ^ cookie).to_be_bytes(),
            );
            let _ = server.send_to(&out, from).await;
            return;
        }
    });
    let state = state_dir("relay", "stun");
    let gw = start(GatewayConfig {
        stun_server: Some(stun_addr),
        ..relay_config(&state, free_port(LAN))
    })
    .await;
    let c = client(&gw.url()).await;
    assert_eq!(
        c.external_ip().await.unwrap(),
        Some("198.51.100.77".parse().unwrap())
    );
    responder.await.unwrap();
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn igd1_mode_serves_only_the_igd1_description() {
    let state = state_dir("relay", "igd1");
    let gw = start(GatewayConfig {
        igd1_only: true,
        ..relay_config(&state, free_port(LAN))
    })
    .await;
    let c = client(&gw.url()).await;
    assert_eq!(
        c.connection().service_type,
        "urn:schemas-upnp-org:service:WANIPConnection:1"
    );
    assert!(!c.is_igd2());
    // IGD:1 semantics: lease 0 is permanent.
    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let mut req = MappingRequest::new(Protocol::Udp, phone.local_addr().unwrap().port());
    req.lease_seconds = 0;
    let m = c.add(&req).await.unwrap();
    assert_eq!(m.lease_seconds, 0);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}
