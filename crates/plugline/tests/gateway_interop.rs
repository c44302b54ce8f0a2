//! `plugline gateway` with the nftables backend in the gw namespace, used by real clients that
//! no one here wrote (miniupnpc's `upnpc` and python3-miniupnpc, gssdp-discover) and by our own
//! client: discovery, every action, real forwarding from the wan host that stops on delete
//! (also for a flow that already existed) and on lease expiry, restart with state kept, secure
//! mode, and silence towards the WAN side.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use plugline_testing::plugline::{arrives, flow_stops, run, text, udp_pair, OurGateway};
use plugline_testing::{
    require_homenet, require_programs, HomeNet, Netns, GW_WAN_IP, PHONE_IP, WAN_IP,
};
use serde_json::Value;

const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");
const URL: &str = "http://192.168.0.1:5000/rootDesc.xml";

fn start(test: &str, programs: &[&str]) -> Option<(HomeNet, OurGateway)> {
    if !(require_homenet(test) && require_programs(test, programs)) {
        return None;
    }
    let net = HomeNet::new().expect("home network");
    let gw = start_gateway(&net);
    Some((net, gw))
}

fn start_gateway(net: &HomeNet) -> OurGateway {
    let state = OurGateway::state_dir_for(net).unwrap();
    OurGateway::start(net, Path::new(PLUGLINE), state, &["-v"]).expect("starting plugline gateway")
}

fn upnpc(net: &HomeNet, args: &[&str]) -> String {
    let mut all = vec!["-u", URL];
    all.extend_from_slice(args);
    text(&run(&net.phone, "upnpc", &all))
}

fn plugline_json(ns: &Netns, args: &[&str]) -> Value {
    let out = run(ns, PLUGLINE, args);
    assert!(out.status.success(), "plugline {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tcp_connects(net: &HomeNet, listener: &TcpListener, port: u16) -> bool {
    let target = SocketAddr::from((GW_WAN_IP, port));
    let Ok(mut stream) = net
        .wan
        .enter(|| TcpStream::connect_timeout(&target, Duration::from_millis(1500)))
    else {
        return false;
    };
    let _ = stream.write_all(b"hi");
    listener.set_nonblocking(false).unwrap();
    // Bounded accept: the connection is already established if DNAT worked.
    listener.set_nonblocking(true).unwrap();
    for _ in 0..100 {
        if let Ok((mut conn, _)) = listener.accept() {
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut buf = [0u8; 2];
            return conn.read_exact(&mut buf).is_ok() && &buf == b"hi";
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn upnpc_discovers_maps_lists_and_deletes() {
    let Some((net, gw)) = start("upnpc_discovers_maps_lists_and_deletes", &["upnpc"]) else {
        return;
    };
    // -i: discovery (our gateway is IGD:2 with a documentation-range WAN address).
    let out = text(&run(&net.phone, "upnpc", &["-i", "-s"]));
    assert!(
        out.contains("ExternalIPAddress = 203.0.113.1"),
        "{out}\n{}",
        gw.log()
    );
    assert!(out.contains("192.168.0.1:5000"), "{out}");

    let out = upnpc(&net, &["-a", "192.168.0.91", "5060", "42000", "UDP", "600"]);
    assert!(
        out.contains("external 203.0.113.1:42000 UDP is redirected to internal 192.168.0.91:5060"),
        "{out}"
    );
    let list = upnpc(&net, &["-l"]);
    assert!(list.contains("UDP 42000->192.168.0.91:5060"), "{list}");

    let (phone, wan) = udp_pair(&net, 5060).unwrap();
    assert!(
        arrives(&phone, &wan, 42000, b"through"),
        "no forwarding\n{}",
        gw.log()
    );

    let out = upnpc(&net, &["-d", "42000", "UDP"]);
    assert!(!out.contains("failed"), "{out}");
    assert!(!upnpc(&net, &["-l"]).contains("42000"));
    // The same flow (same wan socket, same 5-tuple) stops within moments: conntrack is
    // cleared in the background right after the delete.
    assert!(
        flow_stops(&phone, &wan, 42000, Duration::from_millis(500)),
        "existing flow still forwarded"
    );

    // -r: redirect ports to this host.
    let out = upnpc(&net, &["-r", "42010", "TCP"]);
    assert!(out.contains("42010"), "{out}");
    assert!(upnpc(&net, &["-l"]).contains("TCP 42010->192.168.0.91:42010"));
}

#[test]
fn python_miniupnpc_full_action_set() {
    let Some((net, gw)) = start("python_miniupnpc_full_action_set", &["/usr/bin/python3"]) else {
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/miniupnpc_actions.py"
    );
    let out = run(&net.phone, "/usr/bin/python3", &[script]);
    assert!(out.status.success(), "{}\n{}", text(&out), gw.log());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["devices"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["lanaddr"], "192.168.0.91");
    assert_eq!(v["external_ip"], "203.0.113.1");
    assert_eq!(v["status"][0], "Connected");
    assert_eq!(v["connection_type"], "IP_Routed");
    assert!(v["bytes_sent"].as_u64().is_some(), "{v}");
    assert_eq!(v["add"], true);
    assert_eq!(v["add_tcp"], true);
    // (internal host, internal port, description, enabled, lease)
    assert_eq!(v["specific"][0], "192.168.0.91");
    assert_eq!(v["specific"][1], 5060);
    assert_eq!(v["specific"][2], "py sip");
    let lease = v["specific"][4].as_u64().unwrap();
    assert!(lease > 0 && lease <= 600, "{v}");
    assert_eq!(v["generic"].as_array().unwrap().len(), 2, "{v}");
    // 41000/UDP is the phone's own mapping: for the same client AddAnyPortMapping is a refresh
    // (IGD:2 §2.5.16 treats the same client and port as the same mapping) and grants 41000.
    assert_eq!(v["any"].as_u64(), Some(41000), "{v}");
    assert!(
        v["foreign_error"].as_str().is_some_and(|e| !e.is_empty()),
        "secure mode: {v}"
    );
    assert_eq!(v["delete"], true);
    assert!(
        v["delete_missing_error"].is_string(),
        "deleting a missing mapping must fail: {v}"
    );
    assert_eq!(v["delete_range"], true);
    assert!(v["after"].is_null(), "range delete left mappings: {v}");
}

#[test]
fn gssdp_discover_sees_the_gateway() {
    let Some((net, gw)) = start("gssdp_discover_sees_the_gateway", &["gssdp-discover"]) else {
        return;
    };
    for target in [
        "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
        "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
        "upnp:rootdevice",
    ] {
        let out = text(&run(
            &net.phone,
            "gssdp-discover",
            &["-i", "eth0", "-n", "2", "-t", target],
        ));
        assert!(
            out.contains("http://192.168.0.1:5000/rootDesc"),
            "{target}: {out}\n{}",
            gw.log()
        );
    }
    // IGD:1 searchers get the IGD:1 description.
    let out = text(&run(
        &net.phone,
        "gssdp-discover",
        &[
            "-i",
            "eth0",
            "-n",
            "2",
            "-t",
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
        ],
    ));
    assert!(out.contains("/rootDesc1.xml"), "{out}");
}

#[test]
fn plugline_client_against_plugline_gateway_with_tcp_forwarding() {
    let Some((net, gw)) = start(
        "plugline_client_against_plugline_gateway_with_tcp_forwarding",
        &[],
    ) else {
        return;
    };
    let found = plugline_json(&net.phone, &["discover", "--json"]);
    assert_eq!(found[0]["location"], URL, "{found}\n{}", gw.log());
    assert_eq!(found[0]["external_ip"], "203.0.113.1");
    let listener = net
        .phone
        .enter(|| TcpListener::bind((PHONE_IP, 8443)))
        .unwrap();
    let added = plugline_json(
        &net.phone,
        &["add", "tcp", "8443", "--external-port", "42443", "--json"],
    );
    assert_eq!(added["external_port"], 42443);
    assert!(
        tcp_connects(&net, &listener, 42443),
        "TCP not forwarded\n{}",
        gw.log()
    );
    let status = plugline_json(&net.phone, &["status", "--json"]);
    assert_eq!(status["mappings"], 1);
    let out = run(&net.phone, PLUGLINE, &["delete", "tcp", "42443"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !tcp_connects(&net, &listener, 42443),
        "TCP still forwarded after delete"
    );
    // Deleting again: 714, unlike miniupnpd's silent 200.
    let out = run(&net.phone, PLUGLINE, &["delete", "tcp", "42443"]);
    assert!(
        text(&out).contains("error 714 NoSuchEntryInArray"),
        "{}",
        text(&out)
    );
}

#[test]
fn forwarding_stops_when_the_lease_expires() {
    let Some((net, gw)) = start("forwarding_stops_when_the_lease_expires", &[]) else {
        return;
    };
    let (phone, wan) = udp_pair(&net, 5062).unwrap();
    let added = plugline_json(
        &net.phone,
        &[
            "add",
            "udp",
            "5062",
            "--external-port",
            "42062",
            "--lease",
            "2",
            "--json",
        ],
    );
    assert_eq!(added["lease_seconds"], 2, "{added}");
    assert!(arrives(&phone, &wan, 42062, b"before"), "{}", gw.log());
    // Bounded wait for the expiry (2 s lease, the gateway wakes at least every second).
    let mut gone = false;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        if !upnpc(&net, &["-l"]).contains("42062") {
            gone = true;
            break;
        }
    }
    assert!(gone, "mapping did not expire\n{}", gw.log());
    // The expired forward is gone at once; the flow's conntrack entry within milliseconds.
    assert!(
        flow_stops(&phone, &wan, 42062, Duration::from_millis(500)),
        "forwarded after expiry"
    );
}

#[test]
fn restart_keeps_every_mapping_and_its_rules() {
    let Some((net, mut gw)) = start("restart_keeps_every_mapping_and_its_rules", &["upnpc"]) else {
        return;
    };
    let (phone, wan) = udp_pair(&net, 5064).unwrap();
    for port in [42064u16, 42065, 42066] {
        let p = port.to_string();
        let out = upnpc(&net, &["-a", "192.168.0.91", "5064", &p, "UDP", "3600"]);
        assert!(out.contains("is redirected"), "{out}");
    }
    gw.stop().expect("stopping the gateway");
    // Let a second pass so a lease that restarted from scratch would show.
    std::thread::sleep(Duration::from_millis(1100));
    // While stopped, a fresh start must restore the table and reconcile the firewall.
    let nft = text(&run(&net.gw, "nft", &["list", "table", "ip", "plugline"]));
    gw.restart(&net).expect("restarting plugline gateway");
    let list = upnpc(&net, &["-l"]);
    for port in [42064, 42065, 42066] {
        assert!(
            list.contains(&format!("UDP {port}->192.168.0.91:5064")),
            "lost {port} across restart:\n{list}\n{nft}\n{}",
            gw.log()
        );
        assert!(
            arrives(&phone, &wan, port, b"after restart"),
            "rule for {port} lost\n{}",
            gw.log()
        );
    }
    // The lease kept counting down rather than starting over.
    let leases: Vec<u64> = list
        .lines()
        .filter(|l| l.contains("->192.168.0.91:5064"))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    assert_eq!(leases.len(), 3, "{list}");
    assert!(
        leases.iter().all(|&l| l < 3600 && l > 3500),
        "lease restarted from scratch: {list}"
    );
}

#[test]
fn secure_mode_refuses_a_mapping_for_another_host() {
    let Some((net, gw)) = start("secure_mode_refuses_a_mapping_for_another_host", &[]) else {
        return;
    };
    let out = run(
        &net.phone,
        PLUGLINE,
        &[
            "add",
            "udp",
            "5060",
            "--internal-client",
            "192.168.0.50",
            "--gateway",
            URL,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("error 606 ActionNotAuthorized"),
        "{}\n{}",
        text(&out),
        gw.log()
    );
}

#[test]
fn nothing_is_answered_on_the_wan_side() {
    let Some((net, gw)) = start("nothing_is_answered_on_the_wan_side", &[]) else {
        return;
    };
    // HTTP on the WAN address: nothing listens there.
    let target = SocketAddr::from((GW_WAN_IP, 5000));
    let http = net
        .wan
        .enter(|| TcpStream::connect_timeout(&target, Duration::from_millis(500)));
    assert!(http.is_err(), "HTTP reachable from the WAN");
    // An M-SEARCH sent to the gateway's WAN address, unicast and to the group, gets no answer.
    let sock = net.wan.enter(|| UdpSocket::bind((WAN_IP, 0))).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";
    sock.send_to(search, (GW_WAN_IP, 1900)).unwrap();
    let _ = sock.send_to(search, ("239.255.255.250", 1900));
    let mut buf = [0u8; 2048];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "answered an M-SEARCH from the WAN side"
    );
    // NAT-PMP/PCP port too (not served yet, and never on the WAN).
    sock.send_to(&[0, 0], (GW_WAN_IP, 5351)).unwrap();
    assert!(sock.recv_from(&mut buf).is_err());
    let _ = gw;
}

#[test]
fn kill_9_loses_nothing_acknowledged_and_restart_reconciles_the_firewall() {
    let Some((net, mut gw)) = start(
        "kill_9_loses_nothing_acknowledged_and_restart_reconciles_the_firewall",
        &["upnpc", "nft"],
    ) else {
        return;
    };
    // Twenty acknowledged additions, then SIGKILL: no chance to flush anything.
    for i in 0..20u16 {
        let port = (43000 + i).to_string();
        let out = upnpc(&net, &["-a", "192.168.0.91", "5070", &port, "UDP", "3600"]);
        assert!(out.contains("is redirected"), "{out}");
    }
    gw.kill().unwrap();
    // Meanwhile someone tampers with our table: one of our elements removed, a foreign one added.
    let nft = |args: &[&str]| {
        let out = run(&net.gw, "nft", args);
        assert!(out.status.success(), "nft {args:?}: {}", text(&out));
    };
    nft(&[
        "delete",
        "element",
        "ip",
        "plugline",
        "udp_dnat",
        "{ 43005 }",
    ]);
    nft(&[
        "add",
        "element",
        "ip",
        "plugline",
        "udp_dnat",
        "{ 43999 : 192.168.0.91 . 9999 }",
    ]);

    gw.restart(&net).expect("restarting plugline gateway");
    let list = upnpc(&net, &["-l"]);
    for i in 0..20u16 {
        assert!(
            list.contains(&format!("UDP {}->192.168.0.91:5070", 43000 + i)),
            "lost {} after kill -9:\n{list}",
            43000 + i
        );
    }
    let table = text(&run(
        &net.gw,
        "nft",
        &["list", "map", "ip", "plugline", "udp_dnat"],
    ));
    assert!(
        table.contains("43005"),
        "missing rule not restored:\n{table}"
    );
    assert!(
        !table.contains("43999"),
        "foreign rule not removed:\n{table}"
    );
    let (phone, wan) = udp_pair(&net, 5070).unwrap();
    assert!(
        arrives(&phone, &wan, 43005, b"restored"),
        "restored rule does not forward\n{}",
        gw.log()
    );
}

#[test]
fn malformed_ssdp_is_dropped_and_service_goes_on() {
    let Some((net, gw)) = start("malformed_ssdp_is_dropped_and_service_goes_on", &[]) else {
        return;
    };
    let sock = net.phone.enter(|| UdpSocket::bind((PHONE_IP, 0))).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let long_st = format!("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {}\r\n\r\n", "x".repeat(5000));
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xff; 64],
        b"M-SEARCH * HTTP/1.1\r\n".to_vec(),
        b"M-SEARCH * HTTP/1.1\r\nMAN: ssdp:discover\r\nMX: 99999999999\r\nST: ssdp:all\r\n\r\n"
            .to_vec(),
        long_st.into_bytes(),
        vec![b'A'; 9000],
    ];
    for g in &garbage {
        sock.send_to(g, ("239.255.255.250", 1900)).unwrap();
    }
    let mut buf = [0u8; 4096];
    assert!(sock.recv_from(&mut buf).is_err(), "answered garbage");
    // A valid search still gets its answer.
    let found = plugline_json(&net.phone, &["discover", "--json"]);
    assert_eq!(found[0]["location"], URL, "{}", gw.log());
}

/// Every SSDP datagram arriving on `sock` within `window`, as text.
fn collect(sock: &UdpSocket, window: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(_) => break,
        }
    }
    out
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn ssdp_answers_every_target_and_announces_alive_and_byebye() {
    if !require_homenet("ssdp_answers_every_target_and_announces_alive_and_byebye") {
        return;
    }
    let net = HomeNet::new().expect("home network");
    // The phone listens to the group before the gateway starts, to hear its announcements.
    let group = net
        .phone
        .enter(|| {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::from(([239, 255, 255, 250], 1900)).into())?;
            s.join_multicast_v4(&"239.255.255.250".parse().unwrap(), &PHONE_IP)?;
            Ok::<UdpSocket, std::io::Error>(s.into())
        })
        .unwrap();
    let mut gw = start_gateway(&net);
    let alive = collect(&group, Duration::from_millis(300));
    let alive: Vec<&String> = alive
        .iter()
        .filter(|m| header(m, "NTS") == Some("ssdp:alive"))
        .collect();
    assert!(!alive.is_empty(), "no ssdp:alive at start\n{}", gw.log());
    let boot1: u32 = header(alive[0], "BOOTID.UPNP.ORG")
        .unwrap()
        .parse()
        .unwrap();
    assert!(header(alive[0], "CONFIGID.UPNP.ORG").is_some());
    let usn = header(
        alive
            .iter()
            .find(|m| header(m, "NT") == Some("upnp:rootdevice"))
            .unwrap(),
        "USN",
    )
    .unwrap()
    .to_string();
    let uuid = usn.split("::").next().unwrap().to_string();

    // Unicast answers to every kind of search target.
    let sock = net.phone.enter(|| UdpSocket::bind((PHONE_IP, 0))).unwrap();
    let targets = [
        "ssdp:all",
        "upnp:rootdevice",
        uuid.as_str(),
        "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
        "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
        "urn:schemas-upnp-org:device:WANDevice:2",
        "urn:schemas-upnp-org:device:WANConnectionDevice:2",
        "urn:schemas-upnp-org:service:WANIPConnection:2",
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
        "urn:schemas-upnp-org:service:Layer3Forwarding:1",
    ];
    for st in targets {
        let search = format!("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {st}\r\n\r\n");
        sock.send_to(search.as_bytes(), ("239.255.255.250", 1900))
            .unwrap();
        let answers = collect(&sock, Duration::from_millis(150));
        assert!(!answers.is_empty(), "no answer for {st}");
        for a in &answers {
            assert!(a.starts_with("HTTP/1.1 200 OK"), "{a}");
            assert!(
                header(a, "LOCATION")
                    .unwrap()
                    .starts_with("http://192.168.0.1:5000/rootDesc"),
                "{a}"
            );
            assert_eq!(
                header(a, "BOOTID.UPNP.ORG").map(|b| b.parse::<u32>().unwrap()),
                Some(boot1)
            );
        }
        if st != "ssdp:all" {
            assert!(
                answers.iter().all(|a| header(a, "ST") == Some(st)),
                "{st}: {answers:?}"
            );
        }
        if st.ends_with(":1") && st.contains("InternetGatewayDevice") {
            assert!(
                header(&answers[0], "LOCATION")
                    .unwrap()
                    .ends_with("/rootDesc1.xml"),
                "IGD:1 gets the IGD:1 description"
            );
        }
    }

    // SIGTERM: ssdp:byebye, then a restart announces a higher BOOTID with the same uuid.
    let _ = collect(&group, Duration::from_millis(50));
    gw.stop().expect("stopping the gateway");
    let bye = collect(&group, Duration::from_millis(300));
    assert!(
        bye.iter().any(|m| header(m, "NTS") == Some("ssdp:byebye")),
        "no byebye at stop: {bye:?}"
    );
    gw.restart(&net).expect("restarting plugline gateway");
    let again = collect(&group, Duration::from_millis(300));
    let again: Vec<&String> = again
        .iter()
        .filter(|m| header(m, "NTS") == Some("ssdp:alive"))
        .collect();
    assert!(!again.is_empty());
    let boot2: u32 = header(again[0], "BOOTID.UPNP.ORG")
        .unwrap()
        .parse()
        .unwrap();
    assert!(boot2 > boot1, "BOOTID {boot1} -> {boot2}");
    assert!(
        again.iter().any(|m| header(m, "USN") == Some(usn.as_str())),
        "uuid changed across restart"
    );
}
