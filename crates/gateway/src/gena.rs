//! GENA eventing (UDA 2.0 §4) for WANIPConnection: SUBSCRIBE / renewal / UNSUBSCRIBE and
//! NOTIFY delivery.
//!
//! - SUBSCRIBE needs `CALLBACK: <http://ip:port/path>` (the first `http` URL of the list is
//!   used) and `NT: upnp:event`, else 412; `SID` together with `CALLBACK` or `NT` is 400.
//! - **CallStranger (CVE-2020-12695)**: the callback host must be an IPv4 literal equal to
//!   the subscriber's own address (stricter than the spec's "same segment"), else 412. A
//!   callback is therefore never a third host, never a name to resolve.
//! - Limits: at most [`GenaConfig::max_subscriptions`] in total and
//!   [`GenaConfig::max_per_client`] per subscriber address; beyond them SUBSCRIBE is answered
//!   **503 Service Unavailable** (UDA 2.0 §4.1.2: a publisher unable to accept a subscription
//!   "MUST respond with a 5xx level error"). Expired subscriptions are pruned first.
//! - `TIMEOUT: Second-N` is clamped to [`GenaConfig::min_timeout`]..[`GenaConfig::max_timeout`];
//!   `infinite`, absent or unparsable means `min_timeout`.
//! - Renewal and UNSUBSCRIBE of an unknown or expired SID (or from another address than the
//!   subscriber's) is 412.
//! - Each subscription has its own delivery task: the initial NOTIFY (SEQ 0, every evented
//!   variable) goes out once the SUBSCRIBE answer has been handed to the connection; later
//!   NOTIFYs carry only the variables that differ from what this subscriber last received, so
//!   bursts of changes coalesce. SEQ wraps from `u32::MAX` to 1. A NOTIFY that cannot be
//!   delivered within [`GenaConfig::notify_timeout`] (connect, send and status line), or that
//!   is answered with a non-2xx status, drops the subscription.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderMap;
use igd_proto::soap::escape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::control::{ControlHandle, Evented};

/// Longest time the initial NOTIFY waits for the SUBSCRIBE answer to be handed to the
/// connection before it is sent anyway.
const INITIAL_NOTIFY_WAIT: Duration = Duration::from_secs(1);
/// Longest status line read from a subscriber's answer to a NOTIFY.
const MAX_NOTIFY_ANSWER: usize = 512;
/// Expiry is checked at least this often.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// GENA limits and timers.
#[derive(Debug, Clone)]
pub struct GenaConfig {
    /// Subscriptions at most, all subscribers together (default 64).
    pub max_subscriptions: usize,
    /// Subscriptions at most per subscriber address (default 4).
    pub max_per_client: usize,
    /// Shortest subscription granted, seconds (default 1800: UDA recommends ≥ 1800).
    pub min_timeout: u32,
    /// Longest subscription granted, seconds (default 7200).
    pub max_timeout: u32,
    /// Deadline for one NOTIFY: connect, send and the answer's status line (default 2 s).
    pub notify_timeout: Duration,
}

impl Default for GenaConfig {
    fn default() -> Self {
        GenaConfig {
            max_subscriptions: 64,
            max_per_client: 4,
            min_timeout: 1800,
            max_timeout: 7200,
            notify_timeout: Duration::from_secs(2),
        }
    }
}

/// The GENA publisher of the WANIPConnection service. Cheap to clone (shared state inside).
#[derive(Clone)]
pub struct Gena {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gena")
            .field("config", &self.inner.config)
            .field("subscriptions", &self.subscription_count())
            .finish()
    }
}

struct Inner {
    config: GenaConfig,
    control: ControlHandle,
    subs: Mutex<HashMap<String, Subscription>>,
    counter: AtomicU64,
    keys: (RandomState, RandomState),
}

struct Subscription {
    peer: Ipv4Addr,
    expires: Instant,
    wake: Arc<Notify>,
    worker: AbortHandle,
}

/// What the HTTP layer answers to a SUBSCRIBE or UNSUBSCRIBE.
#[derive(Debug)]
pub(crate) struct GenaAnswer {
    /// HTTP status.
    pub status: u16,
    /// `SID` header of a successful SUBSCRIBE.
    pub sid: Option<String>,
    /// Granted seconds (`TIMEOUT: Second-N`) of a successful SUBSCRIBE.
    pub timeout: Option<u32>,
    /// Keep this until the answer has been handed to the connection; dropping it releases the
    /// initial NOTIFY (which must follow the answer).
    pub release: Option<oneshot::Sender<()>>,
}

impl GenaAnswer {
    fn status(status: u16) -> GenaAnswer {
        GenaAnswer {
            status,
            sid: None,
            timeout: None,
            release: None,
        }
    }
}

/// Where a subscriber wants its NOTIFYs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Callback {
    addr: SocketAddrV4,
    /// Path and query, as the URL parser normalised them (no spaces, no CR/LF).
    path: String,
}

/// Why a CALLBACK header is refused (all 412).
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallbackError {
    /// No `<http://…>` URL in the header.
    NoHttpUrl,
    /// The host is a name or an IPv6 address.
    NotIpv4Literal(String),
    /// Port 0.
    BadPort,
}

fn lock(m: &Mutex<HashMap<String, Subscription>>) -> MutexGuard<'_, HashMap<String, Subscription>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Result<&'a str, ()>> {
    headers
        .get(name)
        .map(|v| v.to_str().map(str::trim).map_err(|_| ()))
}

impl Gena {
    /// A publisher reading the evented state from `control`. Call [`Gena::run`] to deliver
    /// change events and expire subscriptions.
    pub fn new(config: GenaConfig, control: ControlHandle) -> Gena {
        Gena {
            inner: Arc::new(Inner {
                config,
                control,
                subs: Mutex::new(HashMap::new()),
                counter: AtomicU64::new(0),
                keys: (RandomState::new(), RandomState::new()),
            }),
        }
    }

    /// Number of live subscriptions (expired ones may be counted until the next prune).
    pub fn subscription_count(&self) -> usize {
        lock(&self.inner.subs).len()
    }

    /// Deliver change events and drop expired subscriptions until `shutdown` becomes true
    /// (or its sender is dropped); then every delivery task is stopped.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut evented = self.inner.control.evented();
        evented.borrow_and_update();
        let mut evented_open = true;
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            let now = Instant::now();
            let next = self.inner.prune(now);
            let wake_at = next.map_or(now + EXPIRY_TICK, |at| at.min(now + EXPIRY_TICK));
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                changed = evented.changed(), if evented_open => match changed {
                    Ok(()) => {
                        evented.borrow_and_update();
                        self.inner.wake_all();
                    }
                    Err(_) => {
                        tracing::debug!("evented state closed: no more change events");
                        evented_open = false;
                    }
                },
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
        let mut subs = lock(&self.inner.subs);
        for (_, sub) in subs.drain() {
            sub.worker.abort();
        }
    }

    /// SUBSCRIBE (new subscription or renewal) from `peer`.
    pub(crate) fn subscribe(&self, peer: Ipv4Addr, headers: &HeaderMap) -> GenaAnswer {
        let sid = header(headers, "sid");
        let callback = header(headers, "callback");
        let nt = header(headers, "nt");
        let timeout = header(headers, "timeout").and_then(Result::ok);
        let config = &self.inner.config;
        let granted = granted_timeout(timeout, config.min_timeout, config.max_timeout);
        if let Some(sid) = sid {
            if callback.is_some() || nt.is_some() {
                tracing::debug!(%peer, "SUBSCRIBE with SID and CALLBACK/NT: 400");
                return GenaAnswer::status(400);
            }
            let Ok(sid) = sid else {
                return GenaAnswer::status(412);
            };
            return self.renew(peer, sid, granted);
        }
        match nt {
            Some(Ok("upnp:event")) => {}
            _ => {
                tracing::debug!(%peer, "SUBSCRIBE without NT: upnp:event: 412");
                return GenaAnswer::status(412);
            }
        }
        let Some(Ok(callback)) = callback else {
            tracing::debug!(%peer, "SUBSCRIBE without CALLBACK: 412");
            return GenaAnswer::status(412);
        };
        let callback = match parse_callback(callback) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(%peer, reason = ?e, "SUBSCRIBE refused (412): unusable CALLBACK");
                return GenaAnswer::status(412);
            }
        };
        if *callback.addr.ip() != peer {
            tracing::warn!(
                %peer,
                callback = %callback.addr,
                "SUBSCRIBE refused (412): callback is not the subscriber's own address (CallStranger guard)"
            );
            return GenaAnswer::status(412);
        }
        self.create(peer, callback, granted)
    }

    fn renew(&self, peer: Ipv4Addr, sid: &str, granted: u32) -> GenaAnswer {
        let now = Instant::now();
        let mut subs = lock(&self.inner.subs);
        match subs.get_mut(sid) {
            Some(sub) if sub.expires > now && sub.peer == peer => {
                sub.expires = now + Duration::from_secs(granted.into());
                GenaAnswer {
                    status: 200,
                    sid: Some(sid.to_owned()),
                    timeout: Some(granted),
                    release: None,
                }
            }
            Some(sub) if sub.expires <= now => {
                sub.worker.abort();
                subs.remove(sid);
                tracing::debug!(%peer, "renewal of an expired SID: 412");
                GenaAnswer::status(412)
            }
            _ => {
                tracing::debug!(%peer, "renewal of an unknown SID: 412");
                GenaAnswer::status(412)
            }
        }
    }

    fn create(&self, peer: Ipv4Addr, callback: Callback, granted: u32) -> GenaAnswer {
        let now = Instant::now();
        self.inner.prune(now);
        let sid = self.inner.new_sid(peer);
        let mut subs = lock(&self.inner.subs);
        let config = &self.inner.config;
        if subs.len() >= config.max_subscriptions {
            tracing::warn!(%peer, limit = config.max_subscriptions, "SUBSCRIBE refused (503): subscription table full");
            return GenaAnswer::status(503);
        }
        if subs.values().filter(|s| s.peer == peer).count() >= config.max_per_client {
            tracing::warn!(%peer, limit = config.max_per_client, "SUBSCRIBE refused (503): too many subscriptions from this address");
            return GenaAnswer::status(503);
        }
        let (release, released) = oneshot::channel();
        let wake = Arc::new(Notify::new());
        let worker = tokio::spawn(deliver(
            Arc::downgrade(&self.inner),
            sid.clone(),
            callback,
            wake.clone(),
            released,
            self.inner.control.evented(),
            config.notify_timeout,
        ))
        .abort_handle();
        subs.insert(
            sid.clone(),
            Subscription {
                peer,
                expires: now + Duration::from_secs(granted.into()),
                wake,
                worker,
            },
        );
        tracing::debug!(%peer, %sid, timeout = granted, "subscribed");
        GenaAnswer {
            status: 200,
            sid: Some(sid),
            timeout: Some(granted),
            release: Some(release),
        }
    }

    /// UNSUBSCRIBE from `peer`.
    pub(crate) fn unsubscribe(&self, peer: Ipv4Addr, headers: &HeaderMap) -> GenaAnswer {
        if headers.contains_key("callback") || headers.contains_key("nt") {
            return GenaAnswer::status(400);
        }
        let Some(Ok(sid)) = header(headers, "sid") else {
            return GenaAnswer::status(412);
        };
        let now = Instant::now();
        let mut subs = lock(&self.inner.subs);
        match subs.get(sid) {
            Some(sub) if sub.peer == peer => {
                let live = sub.expires > now;
                sub.worker.abort();
                subs.remove(sid);
                if live {
                    tracing::debug!(%peer, %sid, "unsubscribed");
                    GenaAnswer::status(200)
                } else {
                    GenaAnswer::status(412)
                }
            }
            _ => {
                tracing::debug!(%peer, "UNSUBSCRIBE of an unknown SID: 412");
                GenaAnswer::status(412)
            }
        }
    }
}

impl Inner {
    /// Drop expired subscriptions; the earliest expiry of the others.
    fn prune(&self, now: Instant) -> Option<Instant> {
        let mut subs = lock(&self.subs);
        subs.retain(|sid, sub| {
            let live = sub.expires > now;
            if !live {
                tracing::debug!(%sid, peer = %sub.peer, "subscription expired");
                sub.worker.abort();
            }
            live
        });
        subs.values().map(|s| s.expires).min()
    }

    fn wake_all(&self) {
        for sub in lock(&self.subs).values() {
            sub.wake.notify_one();
        }
    }

    fn remove(&self, sid: &str) {
        lock(&self.subs).remove(sid);
    }

    /// `uuid:` + a version-4-shaped UUID from a counter, the time and the peer, hashed with
    /// two randomly keyed SipHash instances (std's `RandomState`): unguessable enough that
    /// another LAN host cannot renew or cancel someone else's subscription by guessing.
    fn new_sid(&self, peer: Ipv4Addr) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let half = |state: &RandomState, salt: u8| state.hash_one((n, t, peer, salt));
        let hi = half(&self.keys.0, 1);
        let lo = half(&self.keys.1, 2);
        let hi = (hi & !0xf000) | 0x4000; // version 4
        let lo = (lo & !(0xc << 60)) | (0x8 << 60); // variant 10
        format!(
            "uuid:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

/// The granted subscription time in seconds for a `TIMEOUT` header value.
fn granted_timeout(value: Option<&str>, min: u32, max: u32) -> u32 {
    let requested = value.and_then(|v| {
        let v = v.trim();
        let prefix = v.get(..7)?;
        if !prefix.eq_ignore_ascii_case("second-") {
            return None;
        }
        let digits = &v[7..];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Numbers too long for u64 are larger than any max anyway.
        Some(digits.parse::<u64>().unwrap_or(u64::MAX))
    });
    match requested {
        // `infinite` (and anything unparsable) is treated like an absent header.
        None => min,
        Some(n) => {
            let n = n.max(u64::from(min)).min(u64::from(max));
            u32::try_from(n).unwrap_or(max)
        }
    }
}

/// The first `http` URL of a `CALLBACK` value (`<url1><url2>…`), with an IPv4 literal host.
fn parse_callback(value: &str) -> Result<Callback, CallbackError> {
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            break;
        };
        let text = after[..end].trim();
        rest = &after[end + 1..];
        let Ok(url) = url::Url::parse(text) else {
            continue;
        };
        if url.scheme() != "http" {
            continue;
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip,
            other => {
                return Err(CallbackError::NotIpv4Literal(
                    other.map(|h| h.to_string()).unwrap_or_default(),
                ))
            }
        };
        let port = url.port_or_known_default().unwrap_or(80);
        if port == 0 {
            return Err(CallbackError::BadPort);
        }
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        if path.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(CallbackError::NoHttpUrl);
        }
        return Ok(Callback {
            addr: SocketAddrV4::new(ip, port),
            path,
        });
    }
    Err(CallbackError::NoHttpUrl)
}

/// SEQ after `seq`: 0 is only ever the initial event, so the successor of `u32::MAX` is 1.
fn next_seq(seq: u32) -> u32 {
    if seq == u32::MAX {
        1
    } else {
        seq + 1
    }
}

/// The evented variables of WANIPConnection, in the order they are sent.
fn variables(e: &Evented) -> [(&'static str, String); 4] {
    [
        (
            "ExternalIPAddress",
            e.external_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        ),
        ("ConnectionStatus", e.connection_status.to_owned()),
        ("PossibleConnectionTypes", "IP_Routed".to_owned()),
        ("PortMappingNumberOfEntries", e.mapping_count.to_string()),
    ]
}

/// `<e:propertyset>` with one `<e:property>` per variable, values escaped.
fn propertyset(vars: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\"?><e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">",
    );
    for (name, value) in vars {
        let _ = write!(
            out,
            "<e:property><{name}>{}</{name}></e:property>",
            escape(value)
        );
    }
    out.push_str("</e:propertyset>");
    out
}

/// The delivery task of one subscription.
async fn deliver(
    inner: Weak<Inner>,
    sid: String,
    callback: Callback,
    wake: Arc<Notify>,
    released: oneshot::Receiver<()>,
    evented: watch::Receiver<Evented>,
    limit: Duration,
) {
    // The initial event follows the SUBSCRIBE answer (its SID must be known first).
    let _ = tokio::time::timeout(INITIAL_NOTIFY_WAIT, released).await;
    let mut seq = 0u32;
    let mut sent: Option<[(&'static str, String); 4]> = None;
    loop {
        let current = variables(&evented.borrow());
        let changed: Vec<(&str, &str)> = current
            .iter()
            .enumerate()
            .filter(|(i, (_, value))| sent.as_ref().is_none_or(|s| s[*i].1 != *value))
            .map(|(_, (name, value))| (*name, value.as_str()))
            .collect();
        if !changed.is_empty() {
            let body = propertyset(&changed);
            if let Err(reason) = send_notify(&callback, &sid, seq, &body, limit).await {
                tracing::info!(%sid, callback = %callback.addr, %reason, "NOTIFY failed: subscription dropped");
                if let Some(inner) = inner.upgrade() {
                    inner.remove(&sid);
                }
                return;
            }
            seq = next_seq(seq);
            sent = Some(current);
        }
        wake.notified().await;
    }
}

/// One NOTIFY over a fresh connection, bounded by `limit`; Ok on a 2xx answer.
async fn send_notify(
    callback: &Callback,
    sid: &str,
    seq: u32,
    body: &str,
    limit: Duration,
) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(callback.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut message = format!(
            "NOTIFY {path} HTTP/1.1\r\nHOST: {host}\r\nCONTENT-TYPE: text/xml; charset=\"utf-8\"\r\nCONTENT-LENGTH: {len}\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\nSID: {sid}\r\nSEQ: {seq}\r\nCONNECTION: close\r\n\r\n",
            path = callback.path,
            host = callback.addr,
            len = body.len(),
        );
        message.push_str(body);
        stream
            .write_all(message.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut answer = Vec::with_capacity(64);
        let mut buf = [0u8; 128];
        while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_NOTIFY_ANSWER {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading answer: {e}"))?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split(' ');
        let version = parts.next().unwrap_or_default();
        let status = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(format!("not an HTTP answer: {line:?}"));
        }
        if status.len() == 3 && status.starts_with('2') {
            Ok(())
        } else {
            Err(format!("answered {line:?}"))
        }
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header() {
        assert_eq!(granted_timeout(None, 1800, 7200), 1800);
        assert_eq!(granted_timeout(Some("infinite"), 1800, 7200), 1800);
        assert_eq!(granted_timeout(Some("Second-300"), 1800, 7200), 1800);
        assert_eq!(granted_timeout(Some("second-3600"), 1800, 7200), 3600);
        assert_eq!(
            granted_timeout(Some("Second-99999999999999"), 1800, 7200),
            7200
        );
        assert_eq!(granted_timeout(Some("Second-"), 1800, 7200), 1800);
        assert_eq!(granted_timeout(Some("Second--5"), 1800, 7200), 1800);
        assert_eq!(granted_timeout(Some("Sécond-5"), 1800, 7200), 1800);
        assert_eq!(granted_timeout(Some("é"), 1800, 7200), 1800);
        // A misconfigured min > max grants max rather than panicking.
        assert_eq!(granted_timeout(Some("Second-10"), 100, 50), 50);
    }

    #[test]
    fn callback_header() {
        let cb = parse_callback("<http://192.168.1.5:49152/evt?x=1>").unwrap();
        assert_eq!(cb.addr, "192.168.1.5:49152".parse().unwrap());
        assert_eq!(cb.path, "/evt?x=1");
        let cb = parse_callback("<ftp://1.2.3.4/> <http://10.0.0.2/>").unwrap();
        assert_eq!(cb.addr, "10.0.0.2:80".parse().unwrap());
        assert_eq!(cb.path, "/");
        assert_eq!(
            parse_callback("<http://evil.example/>"),
            Err(CallbackError::NotIpv4Literal("evil.example".into()))
        );
        assert!(matches!(
            parse_callback("<http://[::1]:80/>"),
            Err(CallbackError::NotIpv4Literal(_))
        ));
        assert_eq!(
            parse_callback("<http://1.2.3.4:0/>"),
            Err(CallbackError::BadPort)
        );
        for bad in [
            "",
            "http://1.2.3.4/",
            "<",
            "<>",
            "<http://1.2.3.4/",
            "<ftp://1.2.3.4/>",
        ] {
            assert_eq!(
                parse_callback(bad),
                Err(CallbackError::NoHttpUrl),
                "{bad:?}"
            );
        }
        // CR/LF cannot reach the request line.
        let cb = parse_callback("<http://1.2.3.4/a\r\nX: y>").unwrap();
        assert!(!cb.path.contains('\r') && !cb.path.contains('\n') && !cb.path.contains(' '));
    }

    #[test]
    fn seq_wraps_to_one() {
        assert_eq!(next_seq(0), 1);
        assert_eq!(next_seq(41), 42);
        assert_eq!(next_seq(u32::MAX), 1);
    }

    #[test]
    fn propertyset_escapes() {
        let body = propertyset(&[("ConnectionStatus", "a<b>&\"")]);
        assert_eq!(
            body,
            "<?xml version=\"1.0\"?><e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><ConnectionStatus>a&lt;b&gt;&amp;&quot;</ConnectionStatus></e:property></e:propertyset>"
        );
    }

    #[test]
    fn sids_are_uuids_and_distinct() {
        let (_tx, rx) = watch::channel(Evented {
            external_ip: None,
            connection_status: "Connected",
            mapping_count: 0,
        });
        let gena = Gena::new(
            GenaConfig::default(),
            ControlHandle::for_tests(
                |_, _, _| {
                    Err(igd_proto::error::UpnpError::new(
                        igd_proto::error::ErrorCode::ActionFailed,
                    ))
                },
                rx,
            ),
        );
        let a = gena.inner.new_sid(Ipv4Addr::LOCALHOST);
        let b = gena.inner.new_sid(Ipv4Addr::LOCALHOST);
        assert_ne!(a, b);
        assert_eq!(a.len(), "uuid:".len() + 36);
        let bare = &a[5..];
        let groups: Vec<_> = bare.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&bare[14..15], "4");
    }
}
