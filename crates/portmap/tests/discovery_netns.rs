//! Discovery in the namespace home network against scripted SSDP responders on the gateway
//! host: it returns at the first connected gateway, never follows an answer that points
//! anywhere but at its sender, collects every gateway with `all`, and says clearly when nothing
//! answered.

mod support;

use std::net::{Ipv4Addr, TcpListener as StdTcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use igd_proto::urn;
use plugline_testing::{require_homenet, HomeNet, GW_LAN_IP};
use portmap::{discover, DiscoverOptions, Discovered, Error};
use ssdp_proto::{Message, SearchResponse};
use support::{description, FakeIgd, Reply};

/// Answers every M-SEARCH with one response per LOCATION, from the gateway's LAN address.
struct SsdpResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SsdpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SsdpResponder {
    fn start(net: &HomeNet, locations: Vec<String>) -> SsdpResponder {
        let socket = net
            .gw
            .enter(|| {
                let s = UdpSocket::bind("0.0.0.0:1900")?;
                s.join_multicast_v4(&Ipv4Addr::new(239, 255, 255, 250), &GW_LAN_IP)?;
                Ok::<_, std::io::Error>(s)
            })
            .expect("SSDP socket in gw");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 9000];
            // Bounded: at most 60 s of 50 ms waits.
            for _ in 0..1200 {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(Message::Search(search)) = ssdp_proto::parse(&buf[..n]) else {
                    continue;
                };
                for location in &locations {
                    let response = SearchResponse {
                        st: search.st,
                        usn: "uuid:fake::upnp:rootdevice",
                        location,
                        max_age: Some(1800),
                        server: Some("Linux UPnP/2.0 fake/1"),
                        boot_id: Some(1),
                        config_id: Some(1),
                        headers: Vec::new(),
                    };
                    let mut out = Vec::new();
                    response.emit(&mut out).unwrap();
                    let _ = socket.send_to(&out, from);
                }
            }
        });
        SsdpResponder {
            stop,
            thread: Some(thread),
        }
    }
}

fn connected(call: &igd_proto::soap::SoapCall) -> Reply {
    match call.action.as_str() {
        "GetExternalIPAddress" => Reply::Ok(vec![("NewExternalIPAddress", "203.0.113.1".into())]),
        "GetStatusInfo" => Reply::Ok(vec![
            ("NewConnectionStatus", "Connected".into()),
            ("NewLastConnectionError", "ERROR_NONE".into()),
            ("NewUptime", "42".into()),
        ]),
        _ => Reply::Fault(401),
    }
}

fn disconnected(call: &igd_proto::soap::SoapCall) -> Reply {
    match call.action.as_str() {
        "GetExternalIPAddress" => Reply::Ok(vec![("NewExternalIPAddress", String::new())]),
        "GetStatusInfo" => Reply::Ok(vec![
            ("NewConnectionStatus", "Disconnected".into()),
            ("NewLastConnectionError", "ERROR_NONE".into()),
            ("NewUptime", "0".into()),
        ]),
        _ => Reply::Fault(401),
    }
}

/// A fake IGD listening on the gateway's LAN address.
fn fake_igd(
    net: &HomeNet,
    rt: &tokio::runtime::Runtime,
    handler: fn(&igd_proto::soap::SoapCall) -> Reply,
) -> FakeIgd {
    let listener: StdTcpListener = net
        .gw
        .enter(|| StdTcpListener::bind((GW_LAN_IP, 0)))
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let _guard = rt.enter();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    FakeIgd::start_on(
        listener,
        &description(2, urn::WAN_IP_CONNECTION_2, "/ctl/IPConn"),
        handler,
    )
}

/// Runs discovery from the phone host (a thread inside its namespace, with its own runtime).
fn discover_from_phone(net: &HomeNet, options: DiscoverOptions) -> Result<Vec<Discovered>, Error> {
    net.phone.enter(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(discover(&options))
    })
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn returns_at_the_first_connected_gateway_not_at_the_timeout() {
    if !require_homenet("returns_at_the_first_connected_gateway_not_at_the_timeout") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let rt = server_runtime();
    let igd = fake_igd(&net, &rt, connected);
    let _ssdp = SsdpResponder::start(&net, vec![igd.url()]);
    let options = DiscoverOptions {
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let started = Instant::now();
    let found = discover_from_phone(&net, options).expect("a gateway");
    let took = started.elapsed();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].gateway.location().as_str(), igd.url());
    assert_eq!(found[0].external_ip, Some("203.0.113.1".parse().unwrap()));
    assert!(found[0].is_connected());
    assert_eq!(found[0].gateway.local_addr().to_string(), "192.168.0.91");
    // Behaviour, not speed: it must not have waited out its 20 s listening window.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn answers_pointing_elsewhere_are_never_followed() {
    if !require_homenet("answers_pointing_elsewhere_are_never_followed") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let rt = server_runtime();
    let igd = fake_igd(&net, &rt, connected);
    // A trap on the internet side: if the client ever connects here, the test fails.
    let trap: StdTcpListener = net
        .wan
        .enter(|| StdTcpListener::bind("203.0.113.10:8000"))
        .unwrap();
    trap.set_nonblocking(true).unwrap();
    let hostile = vec![
        "http://203.0.113.10:8000/rootDesc.xml".to_string(),
        "http://192.168.0.91:8000/rootDesc.xml".to_string(),
        "http://router.example:8000/rootDesc.xml".to_string(),
        "file:///etc/passwd".to_string(),
    ];
    let mut locations = hostile.clone();
    locations.push(igd.url());
    let _ssdp = SsdpResponder::start(&net, locations);
    let found = discover_from_phone(
        &net,
        DiscoverOptions {
            timeout: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .expect("the honest gateway");
    assert_eq!(found[0].gateway.location().as_str(), igd.url());
    assert!(
        trap.accept().is_err(),
        "the client connected to a host named by a hostile answer"
    );
}

#[test]
fn all_collects_every_gateway_and_prefers_connected_ones() {
    if !require_homenet("all_collects_every_gateway_and_prefers_connected_ones") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let rt = server_runtime();
    let down = fake_igd(&net, &rt, disconnected);
    let up = fake_igd(&net, &rt, connected);
    let _ssdp = SsdpResponder::start(&net, vec![down.url(), up.url()]);
    let options = DiscoverOptions {
        timeout: Duration::from_millis(1500),
        all: true,
        ..Default::default()
    };
    let found = discover_from_phone(&net, options).expect("two gateways");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].gateway.location().as_str(), up.url());
    assert!(!found[1].is_connected());
}

#[test]
fn a_lone_disconnected_gateway_is_reported_when_the_wait_ends() {
    if !require_homenet("a_lone_disconnected_gateway_is_reported_when_the_wait_ends") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let rt = server_runtime();
    let down = fake_igd(&net, &rt, disconnected);
    let _ssdp = SsdpResponder::start(&net, vec![down.url()]);
    let options = DiscoverOptions {
        timeout: Duration::from_millis(600),
        ..Default::default()
    };
    let found = discover_from_phone(&net, options).expect("the disconnected gateway");
    assert_eq!(found.len(), 1);
    assert!(!found[0].is_connected());
    assert_eq!(found[0].external_ip, None);
}

#[test]
fn silence_gives_a_clear_error() {
    if !require_homenet("silence_gives_a_clear_error") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let options = DiscoverOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let err = discover_from_phone(&net, options).unwrap_err();
    assert!(matches!(err, Error::NoGateway { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "no UPnP gateway answered within 300 ms on 192.168.0.91"
    );
}
