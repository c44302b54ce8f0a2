//! miniupnpd in the gw namespace, with the STUN trick. Needs root, miniupnpd and upnpc.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use plugline_testing::miniupnpd::{Miniupnpd, Options};
use plugline_testing::{
    process_name, require_homenet, require_programs, HomeNet, PHONE_IP, WAN_IP,
};

fn ready(test: &str) -> bool {
    require_homenet(test) && require_programs(test, &["miniupnpd", "upnpc"])
}

fn upnpc(net: &HomeNet, mini: &Miniupnpd, args: &[&str]) -> String {
    let url = mini.root_desc_url();
    let mut all = vec!["upnpc", "-u", url.as_str()];
    all.extend_from_slice(args);
    let out = net
        .phone
        .run(&all)
        .unwrap_or_else(|e| panic!("upnpc {args:?}: {e}\n--- miniupnpd log ---\n{}", mini.log()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_console_untouched() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/dev/console")),
        "/dev/console is mounted over in the host mount namespace"
    );
}

#[test]
fn miniupnpd_reports_the_stun_address() {
    if !ready("miniupnpd_reports_the_stun_address") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let mini = Miniupnpd::start(&net, Options::default()).unwrap();
    assert_eq!(mini.root_desc_url(), "http://192.168.0.1:5000/rootDesc.xml");
    let out = upnpc(&net, &mini, &["-s"]);
    assert!(
        out.contains("ExternalIPAddress = 203.0.113.1\n"),
        "{out}\n--- log ---\n{}",
        mini.log()
    );
    assert!(mini.stun_requests() > 0);
    host_console_untouched();
    let dir = mini.dir().to_path_buf();
    assert!(dir.join("miniupnpd.conf").exists());
    drop(mini);
    assert!(!dir.exists());
    assert!(net
        .gw
        .run(&["nft", "list", "table", "inet", "miniupnpd"])
        .is_err());
}

#[test]
fn miniupnpd_port_mapping_forwards_from_wan() {
    if !ready("miniupnpd_port_mapping_forwards_from_wan") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let mini = Miniupnpd::start(&net, Options::default()).unwrap();
    let phone = net.phone.enter(|| UdpSocket::bind((PHONE_IP, 0))).unwrap();
    phone
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = phone.local_addr().unwrap().port().to_string();
    let out = upnpc(
        &net,
        &mini,
        &["-a", "192.168.0.91", &port, "60123", "UDP", "600"],
    );
    assert!(
        out.contains("is redirected to internal"),
        "{out}\n{}",
        mini.log()
    );
    let list = upnpc(&net, &mini, &["-l"]);
    assert!(
        list.contains(&format!("UDP 60123->192.168.0.91:{port}")),
        "{list}"
    );
    let wan = net.wan.enter(|| UdpSocket::bind((WAN_IP, 0))).unwrap();
    let mut buf = [0u8; 16];
    let mut got = None;
    for _ in 0..5 {
        wan.send_to(b"hello", (Ipv4Addr::new(203, 0, 113, 1), 60123))
            .unwrap();
        if let Ok((n, src)) = phone.recv_from(&mut buf) {
            got = Some((buf[..n].to_vec(), src));
            break;
        }
    }
    let (data, src) = got.expect("mapped datagram did not arrive");
    assert_eq!(data, b"hello");
    assert_eq!(src, wan.local_addr().unwrap());
}

#[test]
fn miniupnpd_without_debug_daemonises_and_stops() {
    if !ready("miniupnpd_without_debug_daemonises_and_stops") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let opts = Options {
        debug: false,
        ..Options::default()
    };
    let mut mini = Miniupnpd::start(&net, opts).unwrap();
    let pid = mini.pid().expect("pid");
    assert!(mini.is_running());
    let out = upnpc(&net, &mini, &["-s"]);
    assert!(out.contains("ExternalIPAddress = 203.0.113.1\n"), "{out}");
    drop(mini);
    assert!(
        process_name(pid as u32).as_deref() != Some("miniupnpd"),
        "daemon {pid} still running"
    );
    host_console_untouched();
}
