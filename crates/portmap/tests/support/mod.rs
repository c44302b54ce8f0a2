//! A scripted fake IGD for client tests: serves a description and answers SOAP calls with
//! whatever the test's handler says, recording every call. It plays the routers we cannot run
//! here (IGD:1-only, WANPPPConnection, 725 and 718 answerers, hostile ones).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use igd_proto::soap::{self, SoapCall};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake answers one SOAP call.
pub enum Reply {
    /// 200 with these out arguments.
    Ok(Vec<(&'static str, String)>),
    /// 500 with a UPnP fault.
    Fault(u16),
    /// Exactly these bytes as the whole HTTP response.
    Raw(Vec<u8>),
    /// Never answer (the client must time out).
    Hang,
}

type Handler = dyn Fn(&SoapCall) -> Reply + Send + Sync;

/// A running fake.
pub struct FakeIgd {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<SoapCall>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIgd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeIgd {
    /// Serve `description` (with `{base}` replaced by `http://addr`) at `/rootDesc.xml`.
    pub async fn start(
        description: &str,
        handler: impl Fn(&SoapCall) -> Reply + Send + Sync + 'static,
    ) -> FakeIgd {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, description, handler)
    }

    /// Like `start`, on a listener the test made (e.g. inside a namespace).
    pub fn start_on(
        listener: TcpListener,
        description: &str,
        handler: impl Fn(&SoapCall) -> Reply + Send + Sync + 'static,
    ) -> FakeIgd {
        let addr = listener.local_addr().unwrap();
        let description = description.replace("{base}", &format!("http://{addr}"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let calls = calls.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let description = description.clone();
                    let calls = calls.clone();
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, &description, &calls, &*handler).await;
                    });
                }
            })
        };
        FakeIgd { addr, calls, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/rootDesc.xml", self.addr)
    }

    pub fn calls(&self) -> Vec<SoapCall> {
        self.calls.lock().unwrap().clone()
    }

    pub fn actions(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.action).collect()
    }
}

fn arg<'a>(call: &'a SoapCall, name: &str) -> Option<&'a str> {
    call.args
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The value of a call's argument (panics if missing: the client must send every argument).
pub fn arg_of(call: &SoapCall, name: &str) -> String {
    arg(call, name)
        .unwrap_or_else(|| panic!("{} without {name}", call.action))
        .to_string()
}

async fn serve(
    mut stream: TcpStream,
    description: &str,
    calls: &Mutex<Vec<SoapCall>>,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        assert!(buf.len() < 65536, "request head too large");
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..];
    let response = if head.starts_with("GET ") {
        http(200, description.as_bytes())
    } else {
        match soap::parse_request(body) {
            Ok(call) => {
                calls.lock().unwrap().push(call.clone());
                match handler(&call) {
                    Reply::Ok(out) => {
                        let out: Vec<(&str, &str)> =
                            out.iter().map(|(n, v)| (*n, v.as_str())).collect();
                        http(
                            200,
                            &soap::build_response(&call.service_type, &call.action, &out),
                        )
                    }
                    Reply::Fault(code) => http(500, &soap::build_fault(code, "scripted")),
                    Reply::Raw(bytes) => bytes,
                    Reply::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return Ok(());
                    }
                }
            }
            Err(_) => http(500, &soap::build_fault(401, "Invalid Action")),
        }
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

pub fn http(status: u16, body: &[u8]) -> Vec<u8> {
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A description with one connection service of `service_type` under the usual
/// InternetGatewayDevice → WANDevice → WANConnectionDevice nesting.
pub fn description(igd_version: u8, service_type: &str, control_url: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>{igd_version}</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:{igd_version}</deviceType>
<friendlyName>Fake Router v{igd_version}</friendlyName>
<manufacturer>Plugline tests</manufacturer>
<modelName>fake</modelName>
<UDN>uuid:00000000-1111-2222-3333-44444444444{igd_version}</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:{igd_version}</deviceType>
<friendlyName>WAN</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName>
<UDN>uuid:00000000-1111-2222-3333-55555555555{igd_version}</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:{igd_version}</deviceType>
<friendlyName>WAN connection</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName>
<UDN>uuid:00000000-1111-2222-3333-66666666666{igd_version}</UDN>
<serviceList><service>
<serviceType>{service_type}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANConn1</serviceId>
<SCPDURL>/conn.xml</SCPDURL>
<controlURL>{control_url}</controlURL>
<eventSubURL>/evt</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>"#
    )
}
