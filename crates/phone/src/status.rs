//! The phone's status: the shared record the SIP and mapping tasks update ([`Shared`]), and the
//! page that shows it on the phone's LAN address (like the seed's `http://<phone>/log_en.htm`):
//! registration state and expiry, public address, every mapping with its lease, the last SIP
//! messages sent and received, and the log ([`crate::log`]).
//!
//! - `GET /` (also `/log_en.htm`): HTML, every value escaped, refreshing itself every 5 s.
//! - `GET /api/status`: the same as one JSON document ([`Status`] plus `log`).
//!
//! The server is a small hyper HTTP/1 server bound to the LAN address only, with a connection
//! cap and a deadline for each request head.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::log::{format_time, unix_ms_now, LogBuffer, LogLine};

/// SIP messages kept for the page (sent and received together).
pub const MESSAGE_HISTORY: usize = 20;
/// Longest SIP message text kept, bytes.
pub const MAX_MESSAGE_TEXT: usize = 4096;
/// Log lines shown on the HTML page (the JSON has all that are kept).
pub const PAGE_LOG_LINES: usize = 200;
/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;
/// Deadline for a request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection.
pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Page refresh interval.
pub const REFRESH_SECONDS: u32 = 5;

/// Everything the page shows (without the log, which has its own buffer).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The address of record.
    pub account: String,
    /// The name in this phone's mapping descriptions.
    pub instance: String,
    /// The phone's LAN address and SIP port.
    pub lan_address: String,
    /// When the phone started (Unix ms).
    pub started_unix_ms: u64,
    /// The registration.
    pub registration: RegistrationStatus,
    /// The NAT traversal: gateway, external address, what SIP announces.
    pub nat: NatStatus,
    /// The port mappings this phone holds.
    pub mappings: Vec<MappingStatus>,
    /// The last SIP messages, oldest first.
    pub messages: VecDeque<SipMessage>,
}

/// The registration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegistrationStatus {
    /// `starting`, `registering`, `registered`, `waiting to retry`, `unregistering`,
    /// `unregistered`.
    pub state: String,
    /// Where REGISTERs go (`host:port`, resolved when known).
    pub registrar: String,
    /// The Contact registered.
    pub contact: Option<String>,
    /// When the binding runs out (Unix ms).
    pub expires_at_unix_ms: Option<u64>,
    /// Seconds until then (filled in when the status is read).
    pub expires_in_seconds: Option<u64>,
    /// Successful REGISTERs (first, refreshes, re-registrations).
    pub registrations: u64,
    /// Failed attempts.
    pub failures: u64,
    /// The last successful REGISTER (Unix ms).
    pub last_registered_unix_ms: Option<u64>,
    /// Milliseconds from start to the first 200 OK.
    pub first_registered_after_ms: Option<u64>,
    /// The last failure, as a sentence.
    pub last_error: Option<String>,
    /// When the next attempt goes out after a failure (Unix ms).
    pub next_retry_unix_ms: Option<u64>,
}

/// The NAT traversal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NatStatus {
    /// `searching`, `upnp`, `no gateway` or `disabled`.
    pub mode: String,
    /// The gateway's description URL.
    pub gateway: Option<String>,
    /// The gateway's root device UDN.
    pub gateway_uuid: Option<String>,
    /// The gateway's BOOTID.UPNP.ORG, once announced.
    pub boot_id: Option<u32>,
    /// The gateway's external address.
    pub external_ip: Option<String>,
    /// The address SIP announces in Via and Contact (mapping, or learned by rport).
    pub public_address: Option<String>,
    /// Times the ports were mapped again after a gateway change.
    pub remaps: u64,
    /// Why the last re-map happened, or why there is no mapping.
    pub last_problem: Option<String>,
}

/// One port mapping.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MappingStatus {
    /// `UDP`.
    pub protocol: String,
    /// The external port.
    pub external_port: u16,
    /// The internal client.
    pub internal_client: String,
    /// The internal port.
    pub internal_port: u16,
    /// The lease granted, seconds (0: permanent).
    pub lease_seconds: u32,
    /// When it runs out unless renewed (Unix ms); `None` for permanent.
    pub expires_at_unix_ms: Option<u64>,
    /// The description at the gateway.
    pub description: String,
    /// `active` or `renewal failing`.
    pub state: String,
}

/// A SIP message sent or received.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SipMessage {
    /// When (Unix ms).
    pub unix_ms: u64,
    /// `sent` or `received`.
    pub direction: &'static str,
    /// The other side.
    pub peer: String,
    /// The first line.
    pub summary: String,
    /// The message (cut at [`MAX_MESSAGE_TEXT`]).
    pub text: String,
}

/// The status shared by the tasks.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    inner: Arc<Mutex<Status>>,
}

impl Shared {
    /// A shared status starting from `status`.
    pub fn new(status: Status) -> Shared {
        Shared {
            inner: Arc::new(Mutex::new(status)),
        }
    }

    /// Changes it.
    pub fn update<T>(&self, f: impl FnOnce(&mut Status) -> T) -> T {
        let mut status = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut status)
    }

    /// A copy, with the countdowns filled in for `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> Status {
        let mut status = self.update(|s| s.clone());
        status.registration.expires_in_seconds = status
            .registration
            .expires_at_unix_ms
            .map(|at| at.saturating_sub(now_ms) / 1000);
        status
    }

    /// Records a SIP message, keeping the last [`MESSAGE_HISTORY`].
    pub fn record_message(&self, direction: &'static str, peer: SocketAddr, bytes: &[u8]) {
        let cut = bytes.get(..MAX_MESSAGE_TEXT).unwrap_or(bytes);
        let text = String::from_utf8_lossy(cut).into_owned();
        let summary = text.lines().next().unwrap_or_default().to_owned();
        let message = SipMessage {
            unix_ms: unix_ms_now(),
            direction,
            peer: peer.to_string(),
            summary,
            text,
        };
        self.update(|s| {
            if s.messages.len() >= MESSAGE_HISTORY {
                s.messages.pop_front();
            }
            s.messages.push_back(message);
        });
    }
}

/// The JSON document of `/api/status`.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    status: &'a Status,
    log: &'a [LogLine],
}

/// `/api/status` as text.
pub fn json(status: &Status, log: &[LogLine]) -> String {
    serde_json::to_string_pretty(&Document { status, log }).unwrap_or_else(|_| "{}".into())
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn or_dash(value: Option<&str>) -> String {
    escape(value.unwrap_or("-"))
}

/// The HTML page.
pub fn html(status: &Status, log: &[LogLine], now_ms: u64) -> String {
    let r = &status.registration;
    let n = &status.nat;
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>Plugline phone {account}</title>\
         <style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}}\
         pre{{margin:0;white-space:pre-wrap}}.WARN{{color:#a60}}.ERROR{{color:#b00}}</style>\
         </head><body>\n<h1>Plugline phone</h1>\n",
        account = escape(&status.account)
    );
    let expiry = match (r.expires_at_unix_ms, r.state.as_str()) {
        (Some(at), "registered") => format!(
            "{} (in {} s)",
            format_time(at),
            at.saturating_sub(now_ms) / 1000
        ),
        _ => "-".into(),
    };
    let _ = write!(
        page,
        "<h2>Registration</h2>\n<table>\
         <tr><th>Account</th><td>{account}</td></tr>\
         <tr><th>State</th><td id=\"state\">{state}</td></tr>\
         <tr><th>Expires</th><td>{expiry}</td></tr>\
         <tr><th>Registrar</th><td>{registrar}</td></tr>\
         <tr><th>Contact</th><td>{contact}</td></tr>\
         <tr><th>Registrations</th><td>{ok} ok, {failed} failed</td></tr>\
         <tr><th>Last error</th><td>{error}</td></tr>\
         </table>\n",
        account = escape(&status.account),
        state = escape(&r.state),
        expiry = escape(&expiry),
        registrar = escape(&r.registrar),
        contact = or_dash(r.contact.as_deref()),
        ok = r.registrations,
        failed = r.failures,
        error = or_dash(r.last_error.as_deref()),
    );
    let _ = write!(
        page,
        "<h2>Network</h2>\n<table>\
         <tr><th>LAN address</th><td>{lan}</td></tr>\
         <tr><th>Public address</th><td id=\"public\">{public}</td></tr>\
         <tr><th>NAT traversal</th><td>{mode}</td></tr>\
         <tr><th>Gateway</th><td>{gateway} {uuid} BOOTID {boot}</td></tr>\
         <tr><th>External address</th><td>{external}</td></tr>\
         <tr><th>Re-mappings</th><td>{remaps}</td></tr>\
         <tr><th>Last problem</th><td>{problem}</td></tr>\
         <tr><th>Instance</th><td>{instance}</td></tr>\
         </table>\n",
        lan = escape(&status.lan_address),
        public = or_dash(n.public_address.as_deref()),
        mode = escape(&n.mode),
        gateway = or_dash(n.gateway.as_deref()),
        uuid = or_dash(n.gateway_uuid.as_deref()),
        boot = n.boot_id.map_or_else(|| "-".into(), |b| b.to_string()),
        external = or_dash(n.external_ip.as_deref()),
        remaps = n.remaps,
        problem = or_dash(n.last_problem.as_deref()),
        instance = escape(&status.instance),
    );
    page.push_str(
        "<h2>Port mappings</h2>\n<table><tr><th>Protocol</th><th>External port</th>\
         <th>Internal</th><th>Lease</th><th>Expires</th><th>Description</th><th>State</th></tr>\n",
    );
    for m in &status.mappings {
        let expires = m.expires_at_unix_ms.map_or_else(
            || "permanent".to_string(),
            |at| {
                format!(
                    "{} (in {} s)",
                    format_time(at),
                    at.saturating_sub(now_ms) / 1000
                )
            },
        );
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}:{}</td><td>{} s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.protocol),
            m.external_port,
            escape(&m.internal_client),
            m.internal_port,
            m.lease_seconds,
            escape(&expires),
            escape(&m.description),
            escape(&m.state),
        );
    }
    page.push_str("</table>\n<h2>SIP messages</h2>\n<table><tr><th>Time</th><th>Direction</th><th>Peer</th><th>Message</th></tr>\n");
    for m in status.messages.iter().rev() {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><details><summary>{}</summary><pre>{}</pre></details></td></tr>",
            escape(&format_time(m.unix_ms)),
            m.direction,
            escape(&m.peer),
            escape(&m.summary),
            escape(&m.text),
        );
    }
    page.push_str("</table>\n<h2>Log</h2>\n<pre id=\"log\">\n");
    let start = log.len().saturating_sub(PAGE_LOG_LINES);
    for line in log.get(start..).unwrap_or_default() {
        let _ = writeln!(
            page,
            "<span class=\"{level}\">{time} {level:5} {message}</span>",
            level = escape(&line.level),
            time = escape(&line.time),
            message = escape(&line.message),
        );
    }
    page.push_str("</pre>\n<p><a href=\"/api/status\">JSON</a></p>\n</body></html>\n");
    page
}

fn reply(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        hyper::header::HeaderName::from_static("x-content-type-options"),
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Answers one request.
pub fn route(
    method: &Method,
    path: &str,
    status: &Shared,
    log: &LogBuffer,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".into(),
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let now = unix_ms_now();
    match path {
        "/" | "/index.html" | "/log_en.htm" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html(&status.snapshot(now), &log.lines(), now),
        ),
        "/api/status" => reply(
            StatusCode::OK,
            "application/json",
            json(&status.snapshot(now), &log.lines()),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    }
}

/// Serves the page on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    status: Shared,
    log: LogBuffer,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "status page: connection limit reached");
                    continue;
                };
                let status = status.clone();
                let log = log.clone();
                tasks.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response = route(request.method(), request.uri().path(), &status, &log);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(REQUEST_TIMEOUT)
                        .max_buf_size(16 * 1024);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(MAX_CONNECTION_LIFETIME, conn).await;
                    drop(permit);
                });
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn sample() -> Shared {
        let shared = Shared::new(Status {
            account: "sip:km@example.net".into(),
            instance: "km-a1b2c3".into(),
            lan_address: "192.168.0.91:5060".into(),
            ..Status::default()
        });
        shared.update(|s| {
            s.registration.state = "registered".into();
            s.registration.expires_at_unix_ms = Some(unix_ms_now() + 60_000);
            s.nat.public_address = Some("203.0.113.1:5060".into());
            s.mappings.push(MappingStatus {
                protocol: "UDP".into(),
                external_port: 5060,
                internal_client: "192.168.0.91".into(),
                internal_port: 5060,
                lease_seconds: 3600,
                expires_at_unix_ms: None,
                description: "<script>alert(1)</script>".into(),
                state: "active".into(),
            });
        });
        shared
    }

    #[test]
    fn html_escapes_everything() {
        let shared = sample();
        let log = LogBuffer::new();
        log.push(tracing::Level::WARN, "phone", "a <b> & \"c\"");
        shared.record_message(
            "received",
            "203.0.113.10:5060".parse().unwrap(),
            b"OPTIONS sip:km@203.0.113.1 SIP/2.0\r\nX: <img src=x onerror=alert(1)>\r\n\r\n",
        );
        let page = html(&shared.snapshot(unix_ms_now()), &log.lines(), unix_ms_now());
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(page.contains("<td id=\"state\">registered</td>"));
        assert!(page.contains("203.0.113.1:5060"));
    }

    #[test]
    fn json_has_state_countdown_and_log() {
        let shared = sample();
        let log = LogBuffer::new();
        log.push(
            tracing::Level::INFO,
            "phone",
            "UPnP: Found mapped address 203.0.113.1",
        );
        let doc: serde_json::Value =
            serde_json::from_str(&json(&shared.snapshot(unix_ms_now()), &log.lines())).unwrap();
        assert_eq!(doc["registration"]["state"], "registered");
        let left = doc["registration"]["expires_in_seconds"].as_u64().unwrap();
        assert!((58..=60).contains(&left), "{left}");
        assert_eq!(doc["nat"]["public_address"], "203.0.113.1:5060");
        assert_eq!(doc["mappings"][0]["external_port"], 5060);
        assert_eq!(
            doc["log"][0]["message"],
            "UPnP: Found mapped address 203.0.113.1"
        );
    }

    #[test]
    fn message_history_is_bounded() {
        let shared = sample();
        let peer = "203.0.113.10:5060".parse().unwrap();
        for i in 0..MESSAGE_HISTORY + 3 {
            shared.record_message("sent", peer, format!("REGISTER {i}\r\n").as_bytes());
        }
        shared.record_message("sent", peer, &vec![b'x'; MAX_MESSAGE_TEXT * 2]);
        let s = shared.snapshot(0);
        assert_eq!(s.messages.len(), MESSAGE_HISTORY);
        assert_eq!(s.messages[0].summary, "REGISTER 4");
        assert_eq!(s.messages.back().unwrap().text.len(), MAX_MESSAGE_TEXT);
    }

    #[tokio::test]
    async fn routes() {
        let shared = sample();
        let log = LogBuffer::new();
        let body = |r: Response<Full<Bytes>>| async move {
            String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        };
        let r = route(&Method::GET, "/api/status", &shared, &log);
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body(r)
            .await
            .contains("\"account\": \"sip:km@example.net\""));
        let r = route(&Method::GET, "/log_en.htm", &shared, &log);
        assert!(body(r).await.starts_with("<!DOCTYPE html>"));
        assert_eq!(
            route(&Method::GET, "/nope", &shared, &log).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/", &shared, &log).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
