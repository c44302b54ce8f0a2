//! The gateway's HTTP server and GENA publisher on loopback, against a test double of the
//! control thread: descriptions, SOAP round trips (portmap client and raw requests), faults,
//! hostile input, limits and slowloris, LAN-only service, GENA subscribe/notify/renew/cancel
//! and the CallStranger guard.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::control::{ControlHandle, Evented};
use gateway::gena::{Gena, GenaConfig};
use gateway::http::{serve, Documents, HttpConfig};
use igd_proto::actions::{Action, Response};
use igd_proto::error::{ErrorCode, UpnpError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const EXTERNAL_IP: &str = "203.0.113.7";
const WAIT: Duration = Duration::from_secs(5);

type Calls = Arc<Mutex<Vec<(Ipv4Addr, u8, Action)>>>;

struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    evented: watch::Sender<Evented>,
    gena: Gena,
    calls: Calls,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server task ends on shutdown")
                .unwrap();
        }
    }
}

fn description(version: u8) -> String {
    format!(
        r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:{version}</deviceType>
<friendlyName>test gateway</friendlyName><UDN>uuid:00000000-0000-4000-8000-000000000001</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:{version}</deviceType>
<UDN>uuid:00000000-0000-4000-8000-000000000002</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:{version}</deviceType>
<UDN>uuid:00000000-0000-4000-8000-000000000003</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:{version}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/scpd/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList></device></deviceList></device></deviceList></device></root>
"#
    )
}

fn documents() -> Arc<Documents> {
    Arc::new(Documents {
        root_v2: description(2),
        root_v1: description(1),
        others: vec![("/scpd/WANIPCn.xml".into(), "<scpd>test</scpd>".into())],
        default_connection_service:
            "uuid:00000000-0000-4000-8000-000000000003:WANConnectionDevice:2,urn:upnp-org:serviceId:WANIPConn1"
                .into(),
    })
}

fn initial_evented() -> Evented {
    Evented {
        external_ip: Some(EXTERNAL_IP.parse().unwrap()),
        connection_status: "Connected",
        mapping_count: 0,
    }
}

/// The control double: GetExternalIPAddress answers; AddPortMapping is refused with 718;
/// everything else with 501.
fn answer(action: &Action) -> Result<Response, UpnpError> {
    match action {
        Action::GetExternalIPAddress => Ok(Response::ExternalIp(EXTERNAL_IP.into())),
        Action::AddPortMapping(_) => Err(UpnpError::new(ErrorCode::ConflictInMappingEntry)),
        _ => Err(UpnpError::new(ErrorCode::ActionFailed)),
    }
}

async fn start_with(config: HttpConfig, gena_config: GenaConfig) -> Server {
    let listener = TcpListener::bind(SocketAddr::from((config.lan_addr, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (evented, evented_rx) = watch::channel(initial_evented());
    let calls: Calls = Arc::default();
    let recorded = calls.clone();
    let control = ControlHandle::for_tests(
        move |peer, version, action| {
            let result = answer(&action);
            recorded.lock().unwrap().push((peer, version, action));
            result
        },
        evented_rx,
    );
    let gena = Gena::new(gena_config, control.clone());
    let (stop, stop_rx) = watch::channel(false);
    let http = tokio::spawn(serve(
        listener,
        config,
        documents(),
        control,
        gena.clone(),
        stop_rx.clone(),
    ));
    let runner = {
        let gena = gena.clone();
        tokio::spawn(async move { gena.run(stop_rx).await })
    };
    Server {
        addr,
        stop,
        evented,
        gena,
        calls,
        tasks: vec![http, runner],
    }
}

async fn start() -> Server {
    start_with(HttpConfig::default(), GenaConfig::default()).await
}

/// Write `request`, then read until the server closes (or WAIT passes); read errors end the
/// answer (a reset counts as "closed").
async fn exchange_on(mut stream: TcpStream, request: &[u8]) -> String {
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    exchange_on(TcpStream::connect(addr).await.unwrap(), request).await
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").into_bytes()
}

fn post(path: &str, soap_action: Option<&str>, body: &str) -> Vec<u8> {
    let action = soap_action
        .map(|a| format!("SOAPAction: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n{action}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn envelope(service: &str, action: &str, args: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:{action} xmlns:u="{service}">{args}</u:{action}></s:Body></s:Envelope>"#
    )
}

const IPCONN1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
const IPCONN2: &str = "urn:schemas-upnp-org:service:WANIPConnection:2";

fn error_code(answer: &str) -> u16 {
    let start = answer
        .find("<errorCode>")
        .unwrap_or_else(|| panic!("no errorCode in {answer:?}"))
        + "<errorCode>".len();
    let end = answer[start..].find('<').unwrap() + start;
    answer[start..end].parse().unwrap()
}

/// Assert a UPnP fault: HTTP 500 with the code in a SOAP Fault.
fn assert_fault(answer: &str, code: u16) {
    assert_eq!(status(answer), 500, "{answer}");
    assert!(
        answer.contains("<faultstring>UPnPError</faultstring>"),
        "{answer}"
    );
    assert_eq!(error_code(answer), code, "{answer}");
}

#[tokio::test]
async fn descriptions_are_served() {
    let server = start().await;
    let answer = exchange(server.addr, &get("/rootDesc.xml")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(header(&answer, "content-type")
        .unwrap()
        .starts_with("text/xml"));
    assert!(answer.contains("InternetGatewayDevice:2"));
    let answer = exchange(server.addr, &get("/rootDesc1.xml")).await;
    assert_eq!(status(&answer), 200);
    assert!(answer.contains("InternetGatewayDevice:1"));
    let answer = exchange(server.addr, &get("/scpd/WANIPCn.xml")).await;
    assert_eq!(status(&answer), 200);
    assert!(answer.ends_with("<scpd>test</scpd>"));
    assert_eq!(status(&exchange(server.addr, &get("/nothing")).await), 404);
    assert_eq!(
        status(&exchange(server.addr, &get("/ctl/IPConn")).await),
        405
    );
    let put = b"PUT /rootDesc.xml HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(status(&exchange(server.addr, put).await), 405);
    let delete = b"DELETE /nothing HTTP/1.1\r\nHost: gw\r\n\r\n";
    assert_eq!(status(&exchange(server.addr, delete).await), 405);
    server.shutdown().await;
}

#[tokio::test]
async fn soap_round_trip_with_portmap_client() {
    let server = start().await;
    let location = format!("http://{}/rootDesc.xml", server.addr);
    let gw = portmap::Gateway::from_url(&location, portmap::gateway::ClientConfig::default())
        .await
        .unwrap();
    assert!(gw.is_igd2());
    assert_eq!(
        gw.external_ip().await.unwrap(),
        Some(EXTERNAL_IP.parse().unwrap())
    );
    {
        let calls = server.calls.lock().unwrap();
        assert_eq!(
            calls.as_slice(),
            [(Ipv4Addr::LOCALHOST, 2, Action::GetExternalIPAddress)]
        );
    }
    // A refusal of the control thread reaches the client as its UPnP code.
    let mut request =
        portmap::gateway::MappingRequest::new(igd_proto::actions::Protocol::Tcp, 4000);
    request.internal_client = Some(Ipv4Addr::LOCALHOST);
    let err = gw.add(&request).await.unwrap_err();
    assert_eq!(err.upnp_code(), Some(718), "{err}");

    // The IGD:1 description gives a version-1 client the same service.
    let location = format!("http://{}/rootDesc1.xml", server.addr);
    let gw1 = portmap::Gateway::from_url(&location, portmap::gateway::ClientConfig::default())
        .await
        .unwrap();
    assert!(!gw1.is_igd2());
    gw1.external_ip().await.unwrap();
    let last = server.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.1, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn soap_round_trip_raw() {
    let server = start().await;
    let body = envelope(IPCONN1, "GetExternalIPAddress", "");
    let action = format!("\"{IPCONN1}#GetExternalIPAddress\"");
    let answer = exchange(server.addr, &post("/ctl/IPConn", Some(&action), &body)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        answer.contains("<NewExternalIPAddress>203.0.113.7</NewExternalIPAddress>"),
        "{answer}"
    );
    assert!(answer.contains(&format!("xmlns:u=\"{IPCONN1}\"")));
    assert_eq!(server.calls.lock().unwrap()[0].1, 1);

    // 718 from the control thread: HTTP 500 + UPnP fault 718.
    let args = "<NewRemoteHost></NewRemoteHost><NewExternalPort>4000</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>4000</NewInternalPort><NewInternalClient>127.0.0.1</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration>";
    let body = envelope(IPCONN2, "AddPortMapping", args);
    let action = format!("\"{IPCONN2}#AddPortMapping\"");
    let answer = exchange(server.addr, &post("/ctl/IPConn", Some(&action), &body)).await;
    assert_fault(&answer, 718);
    assert!(answer.contains("ConflictInMappingEntry"));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_soap_requests_are_faults() {
    let server = start().await;
    let ok_body = envelope(IPCONN2, "GetExternalIPAddress", "");
    let quoted = format!("\"{IPCONN2}#GetExternalIPAddress\"");
    // SOAPAction: a lone quote, single quotes, missing, half-quoted, wrong action, unknown
    // version. (Unquoted is accepted: some control points omit the quotes.)
    let unquoted = format!("{IPCONN2}#GetExternalIPAddress");
    let answer = exchange(server.addr, &post("/ctl/IPConn", Some(&unquoted), &ok_body)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "unquoted SOAPAction refused: {answer}"
    );
    server.calls.lock().unwrap().clear();
    let single = format!("'{IPCONN2}#GetExternalIPAddress'");
    let half = format!("\"{IPCONN2}#GetExternalIPAddress");
    let other = format!("\"{IPCONN2}#GetStatusInfo\"");
    for action in [
        Some("'"),
        Some("\""),
        Some(single.as_str()),
        Some(half.as_str()),
        Some(other.as_str()),
        None,
    ] {
        let answer = exchange(server.addr, &post("/ctl/IPConn", action, &ok_body)).await;
        assert_fault(&answer, 401);
    }
    let v3 = "urn:schemas-upnp-org:service:WANIPConnection:3";
    let answer = exchange(
        server.addr,
        &post(
            "/ctl/IPConn",
            Some(&format!("\"{v3}#GetExternalIPAddress\"")),
            &envelope(v3, "GetExternalIPAddress", ""),
        ),
    )
    .await;
    assert_fault(&answer, 401);
    // Unknown action.
    let answer = exchange(
        server.addr,
        &post(
            "/ctl/IPConn",
            Some(&format!("\"{IPCONN2}#Reboot\"")),
            &envelope(IPCONN2, "Reboot", ""),
        ),
    )
    .await;
    assert_fault(&answer, 401);
    // DOCTYPE (XXE attempt), foreign entity, not XML, not SOAP: 401, no panic.
    let dtd = r#"<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddress xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><a>&x;</a></u:GetExternalIPAddress></s:Body></s:Envelope>"#;
    let entity = ok_body.replace("</u:GetExternalIPAddress>", "&x;</u:GetExternalIPAddress>");
    for body in [dtd, entity.as_str(), "\u{0}\u{1}<<<", "<html/>", ""] {
        let answer = exchange(server.addr, &post("/ctl/IPConn", Some(&quoted), body)).await;
        assert_fault(&answer, 401);
    }
    // Missing and invalid arguments: 402.
    let action = format!("\"{IPCONN2}#DeletePortMapping\"");
    let missing = envelope(
        IPCONN2,
        "DeletePortMapping",
        "<NewProtocol>TCP</NewProtocol>",
    );
    let invalid = envelope(
        IPCONN2,
        "DeletePortMapping",
        "<NewExternalPort>70000</NewExternalPort><NewProtocol>TCP</NewProtocol>",
    );
    for body in [missing, invalid] {
        let answer = exchange(server.addr, &post("/ctl/IPConn", Some(&action), &body)).await;
        assert_fault(&answer, 402);
    }
    assert!(
        server.calls.lock().unwrap().is_empty(),
        "nothing reached the control thread"
    );
    // Still serving.
    let answer = exchange(server.addr, &post("/ctl/IPConn", Some(&quoted), &ok_body)).await;
    assert_eq!(status(&answer), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn other_services() {
    let server = start().await;
    let cfg = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1";
    let call = |service: &str, action: &str, path: &str| {
        post(
            path,
            Some(&format!("\"{service}#{action}\"")),
            &envelope(service, action, ""),
        )
    };
    let answer = exchange(
        server.addr,
        &call(cfg, "GetCommonLinkProperties", "/ctl/CmnIfCfg"),
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.contains("<NewWANAccessType>Ethernet</NewWANAccessType>"));
    assert!(answer.contains("<NewPhysicalLinkStatus>Up</NewPhysicalLinkStatus>"));
    assert!(answer
        .contains("<NewLayer1DownstreamMaxBitRate>1000000000</NewLayer1DownstreamMaxBitRate>"));
    let answer = exchange(
        server.addr,
        &call(cfg, "GetTotalBytesSent", "/ctl/CmnIfCfg"),
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        answer.contains("<NewTotalBytesSent>0</NewTotalBytesSent>"),
        "{answer}"
    );
    let answer = exchange(
        server.addr,
        &call(cfg, "GetTotalPacketsReceived", "/ctl/CmnIfCfg"),
    )
    .await;
    assert!(
        answer.contains("<NewTotalPacketsReceived>0</NewTotalPacketsReceived>"),
        "{answer}"
    );
    assert_fault(
        &exchange(
            server.addr,
            &call(cfg, "SetEnabledForInternet", "/ctl/CmnIfCfg"),
        )
        .await,
        401,
    );
    // The WANIPConnection service type at the interface-config control URL.
    assert_fault(
        &exchange(
            server.addr,
            &call(IPCONN2, "GetExternalIPAddress", "/ctl/CmnIfCfg"),
        )
        .await,
        401,
    );

    let l3f = "urn:schemas-upnp-org:service:Layer3Forwarding:1";
    let answer = exchange(
        server.addr,
        &call(l3f, "GetDefaultConnectionService", "/ctl/L3F"),
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.contains("<NewDefaultConnectionService>uuid:00000000-0000-4000-8000-000000000003:WANConnectionDevice:2,urn:upnp-org:serviceId:WANIPConn1</NewDefaultConnectionService>"), "{answer}");
    assert_fault(
        &exchange(
            server.addr,
            &call(l3f, "SetDefaultConnectionService", "/ctl/L3F"),
        )
        .await,
        401,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let server = start().await;
    let action = format!("\"{IPCONN2}#GetExternalIPAddress\"");
    // Declared too large: refused before the body is read.
    let head = format!(
        "POST /ctl/IPConn HTTP/1.1\r\nHost: gw\r\nSOAPAction: {action}\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 + 1
    );
    let answer = exchange(server.addr, head.as_bytes()).await;
    assert_eq!(status(&answer), 413, "{answer}");
    // Chunked, no length announced: refused once the limit is passed.
    let chunk = "a".repeat(64 * 1024 + 1);
    let request = format!(
        "POST /ctl/IPConn HTTP/1.1\r\nHost: gw\r\nSOAPAction: {action}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
        chunk.len()
    );
    let answer = exchange(server.addr, request.as_bytes()).await;
    assert!(
        answer.is_empty() || status(&answer) == 413,
        "refused: {:?}",
        &answer[..answer.len().min(200)]
    );
    // A head over the header limit: 431.
    let big = format!(
        "GET /rootDesc.xml HTTP/1.1\r\nHost: gw\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let answer = exchange(server.addr, big.as_bytes()).await;
    assert!(answer.is_empty() || status(&answer) == 431, "{answer}");
    assert!(server.calls.lock().unwrap().is_empty());
    assert_eq!(
        status(&exchange(server.addr, &get("/rootDesc.xml")).await),
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_requests_do_not_stop_the_server() {
    let server = start().await;
    for junk in [
        &b"\x00\x01\x02\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"SUBSCRIBE /evt/IPConn HTTP/1.1\r\nCALLBACK: <\r\nNT: upnp:event\r\n\r\n",
        b"SUBSCRIBE /evt/IPConn HTTP/1.1\r\nSID: \xff\xfe\r\n\r\n",
        b"POST /ctl/IPConn HTTP/1.1\r\nSOAPAction: \xff\"\r\nContent-Length: 0\r\n\r\n",
        b"POST /ctl/IPConn HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /ctl/IPConn HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let _ = exchange(server.addr, junk).await;
    }
    assert_eq!(
        status(&exchange(server.addr, &get("/rootDesc.xml")).await),
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_cut_while_others_are_served() {
    let config = HttpConfig {
        request_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    };
    let server = start_with(config, GenaConfig::default()).await;
    let started = Instant::now();
    // Half a head, then nothing.
    let slow_head = {
        let addr = server.addr;
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"POST /ctl/IPConn HTTP/1.1\r\nHost: gw\r\nContent-Le")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
                .await
                .expect("slow client disconnected")
                .unwrap_or(0);
            (started.elapsed(), n)
        })
    };
    // A whole head, a tenth of the body, then nothing.
    let slow_body = {
        let addr = server.addr;
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let action = format!("\"{IPCONN2}#GetExternalIPAddress\"");
            let head = format!(
                "POST /ctl/IPConn HTTP/1.1\r\nHost: gw\r\nSOAPAction: {action}\r\nContent-Length: 100\r\n\r\n<?xml ver"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let answer = exchange_on(stream, b"").await;
            (started.elapsed(), answer)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = exchange(server.addr, &get("/rootDesc.xml")).await;
    let served_at = started.elapsed();
    assert_eq!(status(&answer), 200);
    assert!(served_at < Duration::from_millis(450), "{served_at:?}");

    let (cut_at, n) = slow_head.await.unwrap();
    assert_eq!(n, 0, "nothing is answered to a half head");
    assert!(cut_at >= Duration::from_millis(450), "{cut_at:?}");
    assert!(cut_at < Duration::from_secs(3), "{cut_at:?}");
    let (cut_at, answer) = slow_body.await.unwrap();
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(cut_at >= Duration::from_millis(450), "{cut_at:?}");
    assert!(cut_at < Duration::from_secs(3), "{cut_at:?}");
    assert!(server.calls.lock().unwrap().is_empty());
    server.shutdown().await;
}

/// Reads one HTTP answer (head and a Content-Length body) from a kept-alive connection.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a Content-Length");
                if answer.len() >= end + 4 + length {
                    break;
                }
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a whole answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a whole answer in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn kept_alive_connections_serve_several_requests_and_idle_ones_close() {
    let timeout = Duration::from_millis(400);
    let config = HttpConfig {
        request_timeout: timeout,
        ..HttpConfig::default()
    };
    assert!(config.keep_alive, "keep-alive is the default");
    let server = start_with(config, GenaConfig::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let keep = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n").into_bytes();
    let envelope = envelope(IPCONN2, "GetExternalIPAddress", "");
    let soap = format!(
        "POST /ctl/IPConn HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml\r\nSOAPAction: \"{IPCONN2}#GetExternalIPAddress\"\r\nContent-Length: {}\r\n\r\n{envelope}",
        envelope.len()
    );
    for request in [
        keep("/rootDesc.xml"),
        soap.into_bytes(),
        keep("/rootDesc.xml"),
    ] {
        stream.write_all(&request).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert_eq!(status(&answer), 200, "{answer}");
    }
    assert_eq!(
        server.calls.lock().unwrap().len(),
        1,
        "the SOAP call was served"
    );
    // Idle for longer than the request timeout: the server closes the connection.
    let idle_since = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let idle = idle_since.elapsed();
    assert!(idle >= timeout / 2, "closed too early: {idle:?}");
    // `Connection: close` still gets one answer and the close (exchange reads to the end).
    let answer = exchange(server.addr, &get("/rootDesc.xml")).await;
    assert_eq!(status(&answer), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn connection_limit() {
    let config = HttpConfig {
        max_connections: 2,
        request_timeout: Duration::from_millis(800),
        ..HttpConfig::default()
    };
    let server = start_with(config, GenaConfig::default()).await;
    let idle1 = TcpStream::connect(server.addr).await.unwrap();
    let idle2 = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = exchange(server.addr, &get("/rootDesc.xml")).await;
    assert!(
        answer.is_empty(),
        "third connection closed unanswered: {answer}"
    );
    drop(idle1);
    drop(idle2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        status(&exchange(server.addr, &get("/rootDesc.xml")).await),
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn peers_outside_the_lan_get_nothing() {
    let config = HttpConfig {
        lan_addr: Ipv4Addr::LOCALHOST,
        lan_prefix: 32,
        ..HttpConfig::default()
    };
    let server = start_with(config, GenaConfig::default()).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let action = format!("\"{IPCONN2}#GetExternalIPAddress\"");
    let answer = exchange_on(
        stream,
        &post(
            "/ctl/IPConn",
            Some(&action),
            &envelope(IPCONN2, "GetExternalIPAddress", ""),
        ),
    )
    .await;
    assert!(answer.is_empty(), "{answer}");
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
    let answer = exchange_on(
        socket.connect(server.addr).await.unwrap(),
        &get("/rootDesc.xml"),
    )
    .await;
    assert!(answer.is_empty(), "{answer}");
    assert!(server.calls.lock().unwrap().is_empty());
    // 127.0.0.1 itself is on the LAN.
    assert_eq!(
        status(&exchange(server.addr, &get("/rootDesc.xml")).await),
        200
    );
    server.shutdown().await;
}

// ---- GENA ----

struct Notify {
    request_line: String,
    headers: HashMap<String, String>,
    body: String,
}

/// Accept one NOTIFY on `listener`, answer 200, return it.
async fn next_notify(listener: &TcpListener) -> Notify {
    let (mut stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("a NOTIFY arrives")
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "NOTIFY cut short");
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_uppercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers["CONTENT-LENGTH"].parse().unwrap();
    while data.len() < head_end + 4 + len {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8(data[head_end + 4..head_end + 4 + len].to_vec()).unwrap();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    Notify {
        request_line,
        headers,
        body,
    }
}

fn subscribe(callback: &str, extra: &str) -> Vec<u8> {
    format!("SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: gw\r\nCALLBACK: {callback}\r\nNT: upnp:event\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

fn renew(sid: &str, extra: &str) -> Vec<u8> {
    format!("SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: gw\r\nSID: {sid}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

fn unsubscribe(sid: &str) -> Vec<u8> {
    format!(
        "UNSUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: gw\r\nSID: {sid}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn property<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<e:property><{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find('<')? + start;
    Some(&body[start..end])
}

#[tokio::test]
async fn gena_initial_event_and_changes() {
    let server = start().await;
    let callback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("<http://{}/cb/ipconn>", callback.local_addr().unwrap());
    let answer = exchange(server.addr, &subscribe(&url, "TIMEOUT: Second-300\r\n")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let sid = header(&answer, "sid").unwrap().to_owned();
    assert!(sid.starts_with("uuid:") && sid.len() == 41, "{sid}");
    assert_eq!(header(&answer, "timeout"), Some("Second-1800"));

    let first = next_notify(&callback).await;
    assert_eq!(first.request_line, "NOTIFY /cb/ipconn HTTP/1.1");
    assert_eq!(first.headers["SID"], sid);
    assert_eq!(first.headers["SEQ"], "0");
    assert_eq!(first.headers["NT"], "upnp:event");
    assert_eq!(first.headers["NTS"], "upnp:propchange");
    assert_eq!(
        first.headers["HOST"],
        callback.local_addr().unwrap().to_string()
    );
    assert!(first.headers["CONTENT-TYPE"].starts_with("text/xml"));
    assert!(first.body.starts_with(
        "<?xml version=\"1.0\"?><e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">"
    ));
    assert_eq!(
        property(&first.body, "ExternalIPAddress"),
        Some(EXTERNAL_IP)
    );
    assert_eq!(property(&first.body, "ConnectionStatus"), Some("Connected"));
    assert_eq!(
        property(&first.body, "PossibleConnectionTypes"),
        Some("IP_Routed")
    );
    assert_eq!(
        property(&first.body, "PortMappingNumberOfEntries"),
        Some("0")
    );

    server.evented.send_modify(|e| e.mapping_count = 3);
    let second = next_notify(&callback).await;
    assert_eq!(second.headers["SEQ"], "1");
    assert_eq!(second.headers["SID"], sid);
    assert_eq!(
        property(&second.body, "PortMappingNumberOfEntries"),
        Some("3")
    );
    assert_eq!(
        property(&second.body, "ExternalIPAddress"),
        None,
        "only what changed"
    );

    server.evented.send_modify(|e| {
        e.mapping_count = 2;
        e.connection_status = "Disconnected";
    });
    let third = next_notify(&callback).await;
    assert_eq!(third.headers["SEQ"], "2");
    assert_eq!(
        property(&third.body, "PortMappingNumberOfEntries"),
        Some("2")
    );
    assert_eq!(
        property(&third.body, "ConnectionStatus"),
        Some("Disconnected")
    );

    // After UNSUBSCRIBE, changes are no longer sent.
    assert_eq!(
        status(&exchange(server.addr, &unsubscribe(&sid)).await),
        200
    );
    server.evented.send_modify(|e| e.mapping_count = 9);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), callback.accept())
            .await
            .is_err(),
        "no NOTIFY after UNSUBSCRIBE"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn gena_callstranger_is_refused() {
    let server = start().await;
    // A listener on another loopback address: subscribing from 127.0.0.1 must not make the
    // gateway connect there.
    let stranger = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let url = format!("<http://{}/victim>", stranger.local_addr().unwrap());
    let answer = exchange(server.addr, &subscribe(&url, "")).await;
    assert_eq!(status(&answer), 412, "{answer}");
    assert!(header(&answer, "sid").is_none());
    // A name is never resolved; an IPv6 literal is not the subscriber either.
    for url in ["<http://localhost:9/x>", "<http://[::1]:9/x>"] {
        assert_eq!(
            status(&exchange(server.addr, &subscribe(url, "")).await),
            412
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stranger.accept())
            .await
            .is_err(),
        "no connection to the stranger"
    );
    assert_eq!(server.gena.subscription_count(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn gena_renew_unsubscribe_and_errors() {
    let server = start().await;
    let callback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("<http://{}/cb>", callback.local_addr().unwrap());
    let answer = exchange(
        server.addr,
        &subscribe(
            &format!("<ftp://127.0.0.1/x>{url}"),
            "TIMEOUT: Second-3600\r\n",
        ),
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(header(&answer, "timeout"), Some("Second-3600"));
    let sid = header(&answer, "sid").unwrap().to_owned();
    assert_eq!(
        next_notify(&callback).await.request_line,
        "NOTIFY /cb HTTP/1.1"
    );

    // Renewal: clamped to the maximum.
    let answer = exchange(server.addr, &renew(&sid, "TIMEOUT: Second-999999\r\n")).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(header(&answer, "timeout"), Some("Second-7200"));
    assert_eq!(header(&answer, "sid"), Some(sid.as_str()));
    let answer = exchange(server.addr, &renew(&sid, "TIMEOUT: infinite\r\n")).await;
    assert_eq!(header(&answer, "timeout"), Some("Second-1800"));
    // SID together with NT or CALLBACK: 400.
    let answer = exchange(server.addr, &renew(&sid, "NT: upnp:event\r\n")).await;
    assert_eq!(status(&answer), 400);
    let answer = exchange(server.addr, &renew(&sid, &format!("CALLBACK: {url}\r\n"))).await;
    assert_eq!(status(&answer), 400);
    // Unknown SIDs: 412.
    let unknown = "uuid:00000000-0000-4000-8000-000000000000";
    assert_eq!(
        status(&exchange(server.addr, &renew(unknown, "")).await),
        412
    );
    assert_eq!(
        status(&exchange(server.addr, &unsubscribe(unknown)).await),
        412
    );
    // Missing NT or CALLBACK, wrong NT: 412.
    let no_nt = format!("SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: gw\r\nCALLBACK: {url}\r\n\r\n");
    assert_eq!(status(&exchange(server.addr, no_nt.as_bytes()).await), 412);
    let bad_nt = format!(
        "SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: gw\r\nCALLBACK: {url}\r\nNT: upnp:other\r\n\r\n"
    );
    assert_eq!(status(&exchange(server.addr, bad_nt.as_bytes()).await), 412);
    let no_cb = b"SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHost: gw\r\nNT: upnp:event\r\n\r\n";
    assert_eq!(status(&exchange(server.addr, no_cb).await), 412);
    assert_eq!(
        status(&exchange(server.addr, &subscribe("http://127.0.0.1/no-brackets", "")).await),
        412
    );
    // Unsubscribe, then the SID is gone.
    assert_eq!(
        status(&exchange(server.addr, &unsubscribe(&sid)).await),
        200
    );
    assert_eq!(
        status(&exchange(server.addr, &unsubscribe(&sid)).await),
        412
    );
    assert_eq!(status(&exchange(server.addr, &renew(&sid, "")).await), 412);
    // GENA methods elsewhere.
    let elsewhere = format!(
        "SUBSCRIBE /rootDesc.xml HTTP/1.1\r\nHost: gw\r\nCALLBACK: {url}\r\nNT: upnp:event\r\n\r\n"
    );
    assert_eq!(
        status(&exchange(server.addr, elsewhere.as_bytes()).await),
        405
    );
    assert_eq!(server.gena.subscription_count(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn gena_limits_and_failing_callbacks() {
    let gena_config = GenaConfig {
        max_per_client: 2,
        notify_timeout: Duration::from_millis(500),
        ..GenaConfig::default()
    };
    let server = start_with(HttpConfig::default(), gena_config).await;
    let callback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("<http://{}/cb>", callback.local_addr().unwrap());
    for _ in 0..2 {
        let answer = exchange(server.addr, &subscribe(&url, "")).await;
        assert_eq!(status(&answer), 200);
        next_notify(&callback).await;
    }
    let answer = exchange(server.addr, &subscribe(&url, "")).await;
    assert_eq!(status(&answer), 503, "per-client limit");
    assert_eq!(server.gena.subscription_count(), 2);

    // A callback that refuses connections: the subscription is dropped after the first NOTIFY.
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let server2 = start().await;
    let answer = exchange(server2.addr, &subscribe(&format!("<http://{gone}/cb>"), "")).await;
    assert_eq!(status(&answer), 200);
    assert_eq!(server2.gena.subscription_count(), 1);
    let deadline = Instant::now() + WAIT;
    while server2.gena.subscription_count() != 0 {
        assert!(Instant::now() < deadline, "failed subscriber not dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A callback that answers an error status is dropped as well.
    let rude = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude_url = format!("<http://{}/cb>", rude.local_addr().unwrap());
    let answer = exchange(server2.addr, &subscribe(&rude_url, "")).await;
    assert_eq!(status(&answer), 200);
    let (mut s, _) = tokio::time::timeout(WAIT, rude.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 2048];
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while server2.gena.subscription_count() != 0 {
        assert!(Instant::now() < deadline, "rude subscriber not dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
    server2.shutdown().await;
}

#[tokio::test]
async fn gena_subscriptions_expire() {
    let gena_config = GenaConfig {
        min_timeout: 1,
        max_timeout: 1,
        ..GenaConfig::default()
    };
    let server = start_with(HttpConfig::default(), gena_config).await;
    let callback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("<http://{}/cb>", callback.local_addr().unwrap());
    let answer = exchange(server.addr, &subscribe(&url, "")).await;
    assert_eq!(header(&answer, "timeout"), Some("Second-1"));
    let sid = header(&answer, "sid").unwrap().to_owned();
    next_notify(&callback).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(&exchange(server.addr, &renew(&sid, "")).await), 412);
    server.evented.send_modify(|e| e.mapping_count = 5);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), callback.accept())
            .await
            .is_err(),
        "no NOTIFY to an expired subscriber"
    );
    assert_eq!(server.gena.subscription_count(), 0);
    server.shutdown().await;
}
