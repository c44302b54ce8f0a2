//! The gateway's HTTP server on the LAN address: device and service descriptions, SOAP control
//! (WANIPConnection:1/2, WANCommonInterfaceConfig:1, Layer3Forwarding:1) and GENA
//! SUBSCRIBE/UNSUBSCRIBE for WANIPConnection.
//!
//! What miniupnpd lacks and this server enforces:
//! - only IPv4 peers inside `lan_addr/lan_prefix` are served; any other peer is closed at once
//!   without a byte of answer;
//! - at most [`HttpConfig::max_connections`] connections at a time; beyond, new ones are
//!   closed unanswered;
//! - the request head is capped at [`HttpConfig::max_header_bytes`] (431), the body at
//!   [`HttpConfig::max_body_bytes`] (413);
//! - the whole request, head and body, must arrive within [`HttpConfig::request_timeout`],
//!   counted from the moment the server starts waiting for it (connection accepted, or
//!   previous answer produced on a kept-alive connection): a slow head is cut by hyper's
//!   header timer, a slow body is answered 408 and the connection closed (slowloris);
//! - a connection lives at most [`MAX_CONNECTION_LIFETIME`], so a peer that stops reading
//!   our answer cannot hold a slot either.
//!
//! Paths under `/admin` and `/api` go to the web admin ([`crate::admin`]) when one is
//! attached ([`serve_with_admin`]); [`serve_remote_admin`] runs the same server on another
//! listener (the WAN side) serving only those paths, to any IPv4 peer.
//!
//! SOAP errors are answered as UPnP prescribes: HTTP 500 with a SOAP `Fault` carrying
//! `UPnPError`. A missing or malformed `SOAPAction` (it must be `"SERVICE_TYPE#ACTION"`, in
//! double quotes), an unparsable body (not XML, a DTD, a foreign entity, not SOAP), a body
//! action other than the header's, an unknown action or service version: 401 Invalid Action.
//! Missing or invalid arguments: 402 Invalid Args. Refusals by the control thread carry its
//! code (606, 718, …).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SERVER,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use igd_proto::actions::Action;
use igd_proto::device;
use igd_proto::error::ErrorCode;
use igd_proto::soap::{self, SoapError};
use igd_proto::urn;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::admin::{self, Admin};
use crate::control::ControlHandle;
use crate::gena::{Gena, GenaAnswer};

/// Longest life of one connection, whatever it does: bounds peers that stop reading answers.
pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// How long connections get to finish when the server shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// hyper refuses read buffers smaller than this.
const HYPER_MIN_BUF: usize = 8192;

const XML: &str = "text/xml; charset=\"utf-8\"";
const WANIPCONN_PREFIX: &str = "urn:schemas-upnp-org:service:WANIPConnection:";

/// Limits and addresses of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The LAN address; with `lan_prefix`, the subnet whose hosts are served.
    pub lan_addr: Ipv4Addr,
    /// LAN prefix length (0..=32; larger values are treated as 32).
    pub lan_prefix: u8,
    /// Connections served at once (default 64); more are closed unanswered.
    pub max_connections: usize,
    /// Largest request head, request line included (default 8192): 431 beyond.
    pub max_header_bytes: usize,
    /// Largest request body (default 64 KiB): 413 beyond.
    pub max_body_bytes: usize,
    /// The whole request (head and body) must arrive within this time (default 5 s).
    pub request_timeout: Duration,
    /// Serve several requests per connection (default true). A kept connection waiting for
    /// its next request is closed after `request_timeout`, like a slow one; a client that
    /// sends `Connection: close` (miniupnpc does) gets one answer and the close.
    pub keep_alive: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            lan_addr: Ipv4Addr::LOCALHOST,
            lan_prefix: 8,
            max_connections: 64,
            max_header_bytes: 8192,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(5),
            keep_alive: true,
        }
    }
}

/// The documents served by GET, and what Layer3Forwarding reports.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    /// The IGD:2 root description, at [`device::ROOT_DESC_V2_PATH`].
    pub root_v2: String,
    /// The IGD:1 root description, at [`device::ROOT_DESC_V1_PATH`].
    pub root_v1: String,
    /// Other documents (service descriptions): (path, XML).
    pub others: Vec<(String, String)>,
    /// `NewDefaultConnectionService` of Layer3Forwarding `GetDefaultConnectionService`.
    pub default_connection_service: String,
}

impl Documents {
    fn get(&self, path: &str) -> Option<&str> {
        match path {
            device::ROOT_DESC_V2_PATH => Some(&self.root_v2),
            device::ROOT_DESC_V1_PATH => Some(&self.root_v1),
            _ => self
                .others
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, xml)| xml.as_str()),
        }
    }
}

struct Shared {
    config: HttpConfig,
    docs: Arc<Documents>,
    control: ControlHandle,
    gena: Gena,
    /// The web admin, when attached.
    admin: Option<Arc<Admin>>,
    /// Serve only the web admin, to any IPv4 peer (the remote-management listener).
    admin_only: bool,
}

/// Serve HTTP on `listener` until `shutdown` becomes true (or its sender is dropped).
/// Connections still open then get a short grace period (`SHUTDOWN_GRACE`) and are dropped.
pub async fn serve(
    listener: TcpListener,
    config: HttpConfig,
    docs: Arc<Documents>,
    control: ControlHandle,
    gena: Gena,
    shutdown: watch::Receiver<bool>,
) {
    serve_with_admin(listener, config, docs, control, gena, None, shutdown).await
}

/// [`serve`], with the web admin under `/admin/` and `/api/` when `admin` is given.
pub async fn serve_with_admin(
    listener: TcpListener,
    config: HttpConfig,
    docs: Arc<Documents>,
    control: ControlHandle,
    gena: Gena,
    admin: Option<Arc<Admin>>,
    shutdown: watch::Receiver<bool>,
) {
    let shared = Shared {
        config,
        docs,
        control,
        gena,
        admin,
        admin_only: false,
    };
    serve_shared(listener, shared, shutdown).await
}

/// Serve only the web admin on `listener` (remote management on the WAN address): any IPv4
/// peer is served, every other path is 404, and the same limits apply.
pub async fn serve_remote_admin(
    listener: TcpListener,
    config: HttpConfig,
    admin: Arc<Admin>,
    control: ControlHandle,
    gena: Gena,
    shutdown: watch::Receiver<bool>,
) {
    let shared = Shared {
        config,
        docs: Arc::new(Documents::default()),
        control,
        gena,
        admin: Some(admin),
        admin_only: true,
    };
    serve_shared(listener, shared, shutdown).await
}

async fn serve_shared(listener: TcpListener, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(
        shared.config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let shared = Arc::new(shared);
    let mut tasks = JoinSet::new();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let allowed = if shared.admin_only {
                        v4_peer(peer)
                    } else {
                        lan_peer(&shared.config, peer)
                    };
                    let Some(ip) = allowed else {
                        tracing::debug!(%peer, "HTTP connection from outside the LAN closed unanswered");
                        drop(stream);
                        continue;
                    };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, limit = shared.config.max_connections, "HTTP connection limit reached: closed unanswered");
                        drop(stream);
                        continue;
                    };
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        connection(stream, ip, shared, shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
        while tasks.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
}

/// The peer's IPv4 address (also when IPv4-mapped).
fn v4_peer(peer: SocketAddr) -> Option<Ipv4Addr> {
    match peer.ip() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    }
}

/// The peer's IPv4 address when it is inside the LAN subnet.
fn lan_peer(config: &HttpConfig, peer: SocketAddr) -> Option<Ipv4Addr> {
    let ip = v4_peer(peer)?;
    let prefix = u32::from(config.lan_prefix.min(32));
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    (u32::from(ip) & mask == u32::from(config.lan_addr) & mask).then_some(ip)
}

async fn connection(
    stream: TcpStream,
    peer: Ipv4Addr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    // When the server started waiting for the current request: the request deadline counts
    // from here, as hyper's header timer does.
    let waiting_since = Arc::new(Mutex::new(Instant::now()));
    let service = {
        let shared = shared.clone();
        let waiting_since = waiting_since.clone();
        service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let waiting_since = waiting_since.clone();
            async move {
                let since = *waiting_since.lock().unwrap_or_else(|e| e.into_inner());
                let deadline = since + shared.config.request_timeout;
                let response = route(&shared, peer, request, deadline).await;
                *waiting_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.request_timeout)
        .max_buf_size(config.max_header_bytes.max(HYPER_MIN_BUF))
        .max_header_size(config.max_header_bytes)
        .max_headers(MAX_HEADERS)
        .keep_alive(config.keep_alive)
        .half_close(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(MAX_CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        }
        _ = &mut lifetime => {
            tracing::debug!(%peer, "HTTP connection closed: lifetime over");
        }
        _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
    }
}

/// A response body held in memory. Holds an optional `release` sender that is dropped with
/// the body, i.e. once hyper has taken the answer (GENA's initial NOTIFY waits for that).
#[derive(Debug)]
pub(crate) struct Reply {
    data: Option<Bytes>,
    _release: Option<oneshot::Sender<()>>,
}

impl Reply {
    pub(crate) fn new(data: impl Into<Bytes>) -> Reply {
        let data: Bytes = data.into();
        Reply {
            data: (!data.is_empty()).then_some(data),
            _release: None,
        }
    }
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: impl Into<Bytes>,
) -> Response<Reply> {
    let body = Reply::new(body);
    let len = body.data.as_ref().map_or(0, Bytes::len);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static(crate::SERVER));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    response
}

fn empty(status: StatusCode) -> Response<Reply> {
    respond(status, None, Bytes::new())
}

/// Answer and close the connection (used when the request body was not read to its end).
fn closing(mut response: Response<Reply>) -> Response<Reply> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

fn fault(code: u16, description: &str) -> Response<Reply> {
    let mut response = respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(XML),
        soap::build_fault(code, description),
    );
    response
        .headers_mut()
        .insert(HeaderName::from_static("ext"), HeaderValue::from_static(""));
    response
}

fn upnp_fault(code: ErrorCode) -> Response<Reply> {
    let description = match code {
        ErrorCode::InvalidAction => "Invalid Action",
        ErrorCode::InvalidArgs => "Invalid Args",
        other => other.name(),
    };
    fault(code.code(), description)
}

fn soap_ok(body: Vec<u8>) -> Response<Reply> {
    let mut response = respond(StatusCode::OK, Some(XML), body);
    response
        .headers_mut()
        .insert(HeaderName::from_static("ext"), HeaderValue::from_static(""));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Reply> {
    let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    closing(response)
}

#[derive(Clone, Copy)]
enum ControlService {
    IpConnection,
    CommonInterfaceConfig,
    Layer3Forwarding,
}

async fn route(
    shared: &Shared,
    peer: Ipv4Addr,
    request: Request<Incoming>,
    deadline: Instant,
) -> Response<Reply> {
    let path = request.uri().path().to_owned();
    if let Some(admin) = &shared.admin {
        if admin::is_admin_path(&path) {
            let max = shared.config.max_body_bytes;
            return admin::handle(admin, peer, request, deadline, max).await;
        }
    }
    if shared.admin_only {
        return empty(StatusCode::NOT_FOUND);
    }
    let method = request.method().clone();
    let control = match path.as_str() {
        device::IPCONN_CONTROL_PATH => Some(ControlService::IpConnection),
        device::WANCFG_CONTROL_PATH => Some(ControlService::CommonInterfaceConfig),
        device::L3F_CONTROL_PATH => Some(ControlService::Layer3Forwarding),
        _ => None,
    };
    let is_event = path == device::IPCONN_EVENT_PATH;
    let document = shared.docs.get(&path);
    let gena_method = method.as_str() == "SUBSCRIBE" || method.as_str() == "UNSUBSCRIBE";
    if method != Method::GET && method != Method::POST && !gena_method {
        tracing::debug!(%peer, %method, "HTTP method not allowed");
        return method_not_allowed("GET, POST, SUBSCRIBE, UNSUBSCRIBE");
    }
    if let Some(xml) = document {
        return if method == Method::GET {
            respond(StatusCode::OK, Some(XML), xml.to_owned())
        } else {
            method_not_allowed("GET")
        };
    }
    if let Some(service) = control {
        return if method == Method::POST {
            soap_control(shared, peer, request, deadline, service).await
        } else {
            method_not_allowed("POST")
        };
    }
    if is_event {
        let answer = match method.as_str() {
            "SUBSCRIBE" => shared.gena.subscribe(peer, request.headers()),
            "UNSUBSCRIBE" => shared.gena.unsubscribe(peer, request.headers()),
            _ => return method_not_allowed("SUBSCRIBE, UNSUBSCRIBE"),
        };
        return gena_response(answer);
    }
    tracing::debug!(%peer, %path, "HTTP 404");
    empty(StatusCode::NOT_FOUND)
}

fn gena_response(answer: GenaAnswer) -> Response<Reply> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = empty(status);
    let headers = response.headers_mut();
    if let Some(value) = answer.sid.and_then(|sid| HeaderValue::from_str(&sid).ok()) {
        headers.insert(HeaderName::from_static("sid"), value);
    }
    if let Some(seconds) = answer.timeout {
        if let Ok(value) = HeaderValue::from_str(&format!("Second-{seconds}")) {
            headers.insert(HeaderName::from_static("timeout"), value);
        }
    }
    response.body_mut()._release = answer.release;
    response
}

pub(crate) enum BodyError {
    TooLarge,
    TimedOut,
    Broken(String),
}

/// The request body, at most `max` bytes, complete before `deadline`.
pub(crate) async fn read_body(
    body: Incoming,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout_at(deadline, Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// `"SERVICE_TYPE#ACTION"`. UDA requires the double quotes, but some control points omit
/// them; an unquoted value is accepted, a half-quoted or otherwise quoted one is not.
fn strict_soap_action(value: &str) -> Option<(String, String)> {
    let trimmed = value.trim();
    if trimmed.contains('\'') {
        return None;
    }
    soap::parse_soap_action(trimmed).map(|(s, a)| (s.to_owned(), a.to_owned()))
}

async fn soap_control(
    shared: &Shared,
    peer: Ipv4Addr,
    request: Request<Incoming>,
    deadline: Instant,
    service: ControlService,
) -> Response<Reply> {
    let header = request
        .headers()
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .and_then(strict_soap_action);
    let Some((service_type, action_name)) = header else {
        tracing::debug!(%peer, "SOAP request without a valid SOAPAction: 401");
        return closing(upnp_fault(ErrorCode::InvalidAction));
    };
    let max = shared.config.max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        tracing::info!(%peer, ?declared, max, "SOAP body too large: 413");
        return closing(empty(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let body = match read_body(request.into_body(), max, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            tracing::info!(%peer, max, "SOAP body too large: 413");
            return closing(empty(StatusCode::PAYLOAD_TOO_LARGE));
        }
        Err(BodyError::TimedOut) => {
            tracing::info!(%peer, "SOAP request not complete in time: 408");
            return closing(empty(StatusCode::REQUEST_TIMEOUT));
        }
        Err(BodyError::Broken(e)) => {
            tracing::debug!(%peer, error = %e, "SOAP body unreadable");
            return closing(empty(StatusCode::BAD_REQUEST));
        }
    };
    let call = match soap::parse_request(&body) {
        Ok(call) => call,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "SOAP body refused: 401");
            return upnp_fault(ErrorCode::InvalidAction);
        }
    };
    if call.service_type != service_type || call.action != action_name {
        tracing::debug!(%peer, header = %format!("{service_type}#{action_name}"), body = %format!("{}#{}", call.service_type, call.action), "SOAPAction and body disagree: 401");
        return upnp_fault(ErrorCode::InvalidAction);
    }
    match service {
        ControlService::IpConnection => ip_connection(shared, peer, &call).await,
        ControlService::CommonInterfaceConfig => common_interface_config(shared, &call).await,
        ControlService::Layer3Forwarding => layer3_forwarding(shared, &call),
    }
}

async fn ip_connection(shared: &Shared, peer: Ipv4Addr, call: &soap::SoapCall) -> Response<Reply> {
    let version = match call.service_type.strip_prefix(WANIPCONN_PREFIX) {
        Some("1") => 1,
        Some("2") => 2,
        _ => {
            tracing::debug!(%peer, service = %call.service_type, "not a WANIPConnection:1/2 action: 401");
            return upnp_fault(ErrorCode::InvalidAction);
        }
    };
    let action = match Action::from_call(call) {
        Ok(action) => action,
        Err(SoapError::MissingArgument(_) | SoapError::InvalidArgument { .. }) => {
            return upnp_fault(ErrorCode::InvalidArgs)
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "unknown WANIPConnection action: 401");
            return upnp_fault(ErrorCode::InvalidAction);
        }
    };
    match shared.control.igd(peer, version, action.clone()).await {
        Ok(response) => soap_ok(action.build_response(&call.service_type, &response)),
        Err(e) => {
            tracing::debug!(%peer, action = action.name(), error = %e, "action refused");
            fault(e.code, &e.description)
        }
    }
}

async fn common_interface_config(shared: &Shared, call: &soap::SoapCall) -> Response<Reply> {
    if call.service_type != urn::WAN_COMMON_INTERFACE_CONFIG_1 {
        return upnp_fault(ErrorCode::InvalidAction);
    }
    let service = call.service_type.as_str();
    let action = call.action.as_str();
    if action == "GetCommonLinkProperties" {
        return soap_ok(soap::build_response(
            service,
            action,
            &[
                ("NewWANAccessType", "Ethernet"),
                ("NewLayer1UpstreamMaxBitRate", "1000000000"),
                ("NewLayer1DownstreamMaxBitRate", "1000000000"),
                ("NewPhysicalLinkStatus", "Up"),
            ],
        ));
    }
    let pick: fn(&crate::control::WanCounters) -> u64 = match action {
        "GetTotalBytesSent" => |c| c.bytes_sent,
        "GetTotalBytesReceived" => |c| c.bytes_received,
        "GetTotalPacketsSent" => |c| c.packets_sent,
        "GetTotalPacketsReceived" => |c| c.packets_received,
        _ => return upnp_fault(ErrorCode::InvalidAction),
    };
    let control = shared.control.clone();
    // sysfs reads: quick, but still file I/O, so off the async threads.
    let counters = tokio::task::spawn_blocking(move || control.wan_counters())
        .await
        .unwrap_or_default();
    // ui4 counters wrap modulo 2^32 (WANCommonInterfaceConfig:1).
    let value = (pick(&counters) & u64::from(u32::MAX)).to_string();
    let out = format!("New{}", &action[3..]);
    soap_ok(soap::build_response(service, action, &[(&out, &value)]))
}

fn layer3_forwarding(shared: &Shared, call: &soap::SoapCall) -> Response<Reply> {
    if call.service_type != urn::LAYER3_FORWARDING_1 || call.action != "GetDefaultConnectionService"
    {
        return upnp_fault(ErrorCode::InvalidAction);
    }
    soap_ok(soap::build_response(
        &call.service_type,
        &call.action,
        &[(
            "NewDefaultConnectionService",
            &shared.docs.default_connection_service,
        )],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_membership() {
        let config = |addr: [u8; 4], prefix| HttpConfig {
            lan_addr: Ipv4Addr::from(addr),
            lan_prefix: prefix,
            ..HttpConfig::default()
        };
        let peer = |a: [u8; 4]| SocketAddr::from((a, 1234));
        let lan = config([192, 168, 1, 1], 24);
        assert_eq!(
            lan_peer(&lan, peer([192, 168, 1, 77])),
            Some(Ipv4Addr::new(192, 168, 1, 77))
        );
        assert_eq!(lan_peer(&lan, peer([192, 168, 2, 77])), None);
        assert_eq!(
            lan_peer(&config([127, 0, 0, 1], 32), peer([127, 0, 0, 2])),
            None
        );
        assert!(lan_peer(&config([10, 0, 0, 1], 0), peer([8, 8, 8, 8])).is_some());
        assert!(lan_peer(&config([10, 0, 0, 1], 99), peer([10, 0, 0, 2])).is_none());
        let mapped: SocketAddr = "[::ffff:192.168.1.9]:80".parse().unwrap();
        assert!(lan_peer(&lan, mapped).is_some());
        let v6: SocketAddr = "[fe80::1]:80".parse().unwrap();
        assert_eq!(lan_peer(&lan, v6), None);
    }

    #[test]
    fn soap_action_quoting() {
        assert_eq!(
            strict_soap_action(" \"urn:x:service:WANIPConnection:2#A\" "),
            Some(("urn:x:service:WANIPConnection:2".into(), "A".into()))
        );
        assert_eq!(
            strict_soap_action("urn:x:service:WANIPConnection:2#A"),
            Some(("urn:x:service:WANIPConnection:2".into(), "A".into()))
        );
        for bad in ["'", "\"", "'urn:x#A'", "\"urn:x#A", "urn:x#A\"", "", "\"\""] {
            assert_eq!(strict_soap_action(bad), None, "{bad:?}");
        }
    }
}
