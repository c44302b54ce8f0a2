//! `plugline` against the reference gateway, Debian's miniupnpd (nftables flavour), in the
//! namespace home network: discovery, status, add, list, delete, real forwarding from the wan
//! host, and agreement with miniupnpc's `upnpc -l`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Output;
use std::time::Duration;

use plugline_testing::miniupnpd::{Miniupnpd, Options};
use plugline_testing::{require_homenet, require_programs, HomeNet, Netns, GW_WAN_IP, PHONE_IP};
use serde_json::Value;

const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");

fn ready(test: &str) -> bool {
    require_homenet(test) && require_programs(test, &["miniupnpd", "upnpc"])
}

fn plugline(ns: &Netns, args: &[&str]) -> Output {
    ns.command(PLUGLINE)
        .args(args)
        .output()
        .expect("running plugline")
}

/// Runs plugline, asserts success, and parses its JSON.
fn plugline_json(ns: &Netns, args: &[&str]) -> Value {
    let out = plugline(ns, args);
    assert!(
        out.status.success(),
        "plugline {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plugline {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn upnpc_list(net: &HomeNet, url: &str) -> String {
    let out = net
        .phone
        .command("upnpc")
        .args(["-u", url, "-l"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn start() -> (HomeNet, Miniupnpd) {
    let net = HomeNet::new().expect("home network");
    let igd = Miniupnpd::start(&net, Options::default()).expect("miniupnpd");
    (net, igd)
}

#[test]
fn discover_finds_miniupnpd_with_its_external_address() {
    if !ready("discover_finds_miniupnpd_with_its_external_address") {
        return;
    }
    let (net, igd) = start();
    let found = plugline_json(&net.phone, &["discover", "--json", "--timeout-ms", "5000"]);
    let found = found.as_array().expect("an array");
    assert_eq!(found.len(), 1, "{found:?}\n{}", igd.log());
    let gw = &found[0];
    assert_eq!(gw["location"], igd.root_desc_url());
    assert_eq!(gw["external_ip"], GW_WAN_IP.to_string());
    assert_eq!(
        gw["service_type"],
        "urn:schemas-upnp-org:service:WANIPConnection:2"
    );
    assert!(gw["control_url"]
        .as_str()
        .unwrap()
        .starts_with("http://192.168.0.1:5000/"));
    assert!(gw["friendly_name"].as_str().is_some_and(|n| !n.is_empty()));

    // --all on the same network finds the same single gateway.
    let all = plugline_json(
        &net.phone,
        &["discover", "--all", "--json", "--timeout-ms", "800"],
    );
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[test]
fn status_reports_address_connection_and_count() {
    if !ready("status_reports_address_connection_and_count") {
        return;
    }
    let (net, igd) = start();
    let url = igd.root_desc_url();
    let status = plugline_json(&net.phone, &["status", "--gateway", &url, "--json"]);
    assert_eq!(status["external_ip"], GW_WAN_IP.to_string());
    assert_eq!(status["connection_status"], "Connected");
    assert!(status["uptime_seconds"].is_u64());
    assert_eq!(status["mappings"], 0);
    // Through discovery too.
    let status = plugline_json(&net.phone, &["status", "--json"]);
    assert_eq!(status["external_ip"], GW_WAN_IP.to_string());
}

#[test]
fn udp_mapping_forwards_and_is_what_upnpc_lists() {
    if !ready("udp_mapping_forwards_and_is_what_upnpc_lists") {
        return;
    }
    let (net, igd) = start();
    let url = igd.root_desc_url();
    let listener: UdpSocket = net
        .phone
        .enter(|| UdpSocket::bind((PHONE_IP, 5060)))
        .expect("listener on the phone");
    listener
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();

    let added = plugline_json(
        &net.phone,
        &[
            "add",
            "udp",
            "5060",
            "--external-port",
            "40060",
            "--lease",
            "600",
            "--description",
            "plugline test",
            "--gateway",
            &url,
            "--json",
        ],
    );
    assert_eq!(added["protocol"], "UDP");
    assert_eq!(added["external_ip"], GW_WAN_IP.to_string());
    assert_eq!(added["external_port"], 40060);
    assert_eq!(added["internal_client"], PHONE_IP.to_string());
    assert_eq!(added["internal_port"], 5060);
    assert_eq!(added["description"], "plugline test");
    let lease = added["lease_seconds"].as_u64().unwrap();
    assert!(lease > 0 && lease <= 600, "lease {lease}");

    let listed = upnpc_list(&net, &url);
    assert!(
        listed.contains("UDP 40060->192.168.0.91:5060") && listed.contains("'plugline test'"),
        "upnpc -l does not show our mapping:\n{listed}"
    );
    let ours = plugline_json(&net.phone, &["list", "--gateway", &url, "--json"]);
    let ours = ours.as_array().unwrap();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["external_port"], 40060);
    assert_eq!(ours[0]["internal_client"], PHONE_IP.to_string());

    // A datagram from the internet side reaches the phone through the mapping.
    let sender: UdpSocket = net.wan.enter(|| UdpSocket::bind("203.0.113.10:0")).unwrap();
    sender.send_to(b"hello phone", (GW_WAN_IP, 40060)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = listener
        .recv_from(&mut buf)
        .expect("datagram through the mapping");
    assert_eq!(&buf[..n], b"hello phone");
    assert_eq!(from.ip().to_string(), "203.0.113.10");

    let out = plugline(&net.phone, &["delete", "udp", "40060", "--gateway", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !upnpc_list(&net, &url).contains("40060"),
        "still listed after delete"
    );
    let ours = plugline_json(&net.phone, &["list", "--gateway", &url, "--json"]);
    assert_eq!(ours.as_array().unwrap().len(), 0);
}

#[test]
fn tcp_mapping_forwards_a_connection() {
    if !ready("tcp_mapping_forwards_a_connection") {
        return;
    }
    let (net, igd) = start();
    let listener: TcpListener = net
        .phone
        .enter(|| TcpListener::bind((PHONE_IP, 8080)))
        .unwrap();
    // Through discovery, not --gateway.
    let added = plugline_json(
        &net.phone,
        &["add", "tcp", "8080", "--external-port", "40080", "--json"],
    );
    assert_eq!(added["protocol"], "TCP");
    assert_eq!(added["external_port"], 40080);
    assert!(upnpc_list(&net, &igd.root_desc_url()).contains("TCP 40080->192.168.0.91:8080"));

    let target = SocketAddr::from((GW_WAN_IP, 40080));
    let mut client: TcpStream = net
        .wan
        .enter(|| TcpStream::connect_timeout(&target, Duration::from_secs(3)))
        .expect("TCP connection through the mapping");
    client.write_all(b"ping").unwrap();
    listener.set_nonblocking(false).unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "203.0.113.10");
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    let out = plugline(&net.phone, &["delete", "tcp", "40080"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn refusals_print_the_upnp_code_and_name() {
    if !ready("refusals_print_the_upnp_code_and_name") {
        return;
    }
    let (net, igd) = start();
    let url = igd.root_desc_url();
    // Secure mode: the phone may not map a port to another host.
    let out = plugline(
        &net.phone,
        &[
            "add",
            "udp",
            "5060",
            "--internal-client",
            "192.168.0.50",
            "--gateway",
            &url,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("plugline: AddPortMapping: error 606 ActionNotAuthorized")
            || err.starts_with("plugline: AddPortMapping: error 718 ConflictInMappingEntry"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        !upnpc_list(&net, &url).contains("192.168.0.50"),
        "refused mapping exists"
    );
}

#[test]
fn any_port_gets_another_port_when_the_wanted_one_is_taken() {
    if !ready("any_port_gets_another_port_when_the_wanted_one_is_taken") {
        return;
    }
    let net = HomeNet::new().expect("home network");
    // Secure mode off, so that upnpc can give 40100 to another LAN host (a mapping of our own
    // host on the same port would be a refresh, not a conflict).
    let igd = Miniupnpd::start(
        &net,
        Options {
            secure_mode: false,
            ..Options::default()
        },
    )
    .expect("miniupnpd");
    let url = igd.root_desc_url();
    let out = net
        .phone
        .command("upnpc")
        .args([
            "-u",
            &url,
            "-a",
            "192.168.0.50",
            "6000",
            "40100",
            "UDP",
            "600",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Same internal client and port again is a refresh, so ask for a different internal port.
    let added = plugline_json(
        &net.phone,
        &[
            "add",
            "udp",
            "6001",
            "--external-port",
            "40100",
            "--any",
            "--gateway",
            &url,
            "--json",
        ],
    );
    let port = added["external_port"].as_u64().unwrap();
    assert_ne!(port, 40100, "{added}");
    assert!(upnpc_list(&net, &url).contains(&format!("UDP {port}->192.168.0.91:6001")));
}
