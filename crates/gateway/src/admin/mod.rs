//! The gateway's web admin: status, the forwarding table a person can read and fix, and the
//! live settings, as server-rendered pages under `/admin/` with a little plain JavaScript
//! (no build step), and the JSON API under `/api/` that the pages use, so that scripts can do
//! the same. Served by the LAN HTTP server ([`crate::http`]); on the WAN only when
//! `remote_admin_port` is set, by a second listener that serves nothing else.
//!
//! Every view is read from the control thread's own table and every change goes through it
//! (same table, policy, journal and backend as SOAP), so `upnpc -l` sees a change at once and
//! a client's change shows on the page within a second (GATEWAY-NOTES, "The admin page
//! lesson"). Descriptions are hostile text: pages escape them, the script only ever sets
//! `textContent`, and a strict Content-Security-Policy allows no inline script at all.
//!
//! # Login
//! See [`auth`]: an argon2 password (configured as `admin_password_hash` or generated at
//! first start and logged once), a session cookie `plugline_session` (HttpOnly,
//! SameSite=Strict, Path=/) and a per-session CSRF token, failed logins limited per client
//! address (5 a minute, then 429).
//!
//! # JSON API
//! Bodies are JSON (`Content-Type: application/json`); errors are
//! `{"error": "<sentence>", "code": "<name>"|null, "field": "<field>"|null}`, where `code` is
//! the UPnP error name when the table refused (the same as a SOAP client would get) and
//! `field` names the offending input when validation failed. Numbers may be sent as JSON
//! numbers or as strings of digits.
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `POST /api/login` | `{"password"}` (or a form `password=…`) | 200 `{"csrf"}` + `Set-Cookie`; 401 wrong; 429 too many failures (`Retry-After`) |
//! | `POST /api/logout` | – | 204, cookie cleared |
//! | `GET /api/status` | – | `{external_ip, address_kind ("public"\|"private"\|"reserved"\|"unknown"), address_range, connection_status, uptime_seconds, boot_id, backend, now, mappings: {total, udp, tcp, per_host: {ip: n}}, protocols: {upnp, natpmp, pcp}}` |
//! | `GET /api/mappings` | – | `[{key ("UDP-42000"), protocol, external_port, internal_client, internal_port, description, enabled, lease_seconds (remaining; 0 = permanent), lease_granted, source ("upnp"\|"natpmp"\|"pcp"\|"manual"), created_at, host_last_seen (unix s or null)}]` in key order; header `X-Plugline-Now` is the gateway's clock (unix s) |
//! | `POST /api/mappings` | `{protocol, external_port, internal_client, internal_port, description?, lease_seconds? (0 = permanent), enabled?}` | 201 mapping; 400 invalid input or refused by policy; 409 `ConflictInMappingEntry` / `ConflictWithOtherMechanisms` / `NoPortMapsAvailable` |
//! | `DELETE /api/mappings/{UDP\|TCP}/{port}` | – | 204; 404 `NoSuchEntryInArray` |
//! | `POST /api/mappings/delete` | `{"keys": ["UDP-42000", …]}` | `{"deleted": n}` (keys that do not exist are skipped) |
//! | `POST /api/mappings/delete-stale` | `{"minutes": N}` | `{"deleted": n}`: mappings of hosts whose last request to the gateway is older than N minutes, or that sent none since the start; static forwards (source manual) are kept |
//! | `POST /api/mappings/{UDP\|TCP}/{port}/enabled` | `{"enabled": bool}` | mapping; 404. A disabled mapping keeps its port but forwards nothing |
//! | `GET /api/settings` | – | `{secure_mode, max_mappings, max_mappings_per_host, max_lease_seconds, upnp_enabled}` |
//! | `PUT /api/settings` | any of those fields (the others keep their value) | settings, applied at once and persisted to `<state_dir>/settings.toml`; 400 `{error, field}` |
//!
//! Every request but login needs the session cookie (401 without); every change (POST, PUT,
//! DELETE) also needs the header `X-CSRF-Token` with the session's token (403 when missing or
//! wrong, and nothing is changed), and a request carrying an `Origin` header must come from
//! this very origin (403). Pages without a session redirect (303) to `/admin/login`.
//!
//! Static forwards are `Source::Manual` mappings requested as if by their internal client
//! (the table has no admin bypass; secure mode is about LAN clients): the rules, limits and
//! conflicts apply as to SOAP. A lease beyond `max_lease_seconds` is clamped by the table.

pub mod auth;
pub mod settings;

mod api;
mod pages;

use std::net::Ipv4Addr;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, COOKIE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::control::ControlHandle;
use crate::http::{read_body, respond, BodyError, Reply};

/// Static facts the status page shows.
#[derive(Debug, Clone)]
pub struct AdminInfo {
    /// BOOTID.UPNP.ORG of this run.
    pub boot_id: u32,
    /// The forwarding backend's name (`nftables`, `relay`).
    pub backend: &'static str,
    /// The LAN address: static forwards must go to its subnet.
    pub lan_addr: Ipv4Addr,
    /// The LAN prefix length.
    pub lan_prefix: u8,
}

/// The admin web's state, shared by the LAN and the remote listener.
#[derive(Debug)]
pub struct Admin {
    control: ControlHandle,
    password_hash: String,
    sessions: auth::Sessions,
    limiter: auth::LoginLimiter,
    verifying: Semaphore,
    info: AdminInfo,
}

impl Admin {
    /// The admin web for `control`, with the argon2 PHC string of the password.
    pub fn new(control: ControlHandle, password_hash: String, info: AdminInfo) -> Admin {
        Admin {
            control,
            password_hash,
            sessions: auth::Sessions::default(),
            limiter: auth::LoginLimiter::default(),
            verifying: Semaphore::new(auth::VERIFY_CONCURRENCY),
            info,
        }
    }

    /// Check a password for `peer` (rate limited) and open a session.
    async fn login(&self, peer: Ipv4Addr, password: &str) -> Login {
        if let Err(wait) = self.limiter.check(peer) {
            return Login::Limited(wait);
        }
        let ok = {
            let Ok(_permit) = self.verifying.acquire().await else {
                return Login::Failed("shutting down".into());
            };
            let hash = self.password_hash.clone();
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
                .await
                .unwrap_or(false)
        };
        if !ok {
            self.limiter.failed(peer);
            tracing::warn!(%peer, "admin login failed");
            return Login::Wrong;
        }
        match self.sessions.open() {
            Ok((id, csrf)) => {
                tracing::info!(%peer, "admin logged in");
                Login::Ok { id, csrf }
            }
            Err(e) => Login::Failed(e.to_string()),
        }
    }
}

enum Login {
    Ok { id: String, csrf: String },
    Wrong,
    Limited(u64),
    Failed(String),
}

/// Whether `path` belongs to the admin web.
pub(crate) fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/") || path == "/api" || path.starts_with("/api/")
}

/// The caller's live session.
pub(crate) struct SessionRef {
    id: String,
    csrf: String,
}

/// One admin request, read whole.
pub(crate) struct Req {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    peer: Ipv4Addr,
    session: Option<SessionRef>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
    }

    /// True when the request carries the session's CSRF token.
    fn csrf_ok(&self) -> bool {
        match (&self.session, self.header("x-csrf-token")) {
            (Some(s), Some(token)) => {
                auth::constant_time_eq(s.csrf.as_bytes(), token.trim().as_bytes())
            }
            _ => false,
        }
    }

    /// False when an `Origin` header names another origin than the one asked (a page of
    /// another site posting here).
    fn same_origin(&self) -> bool {
        let Some(origin) = self.header("origin") else {
            return true;
        };
        let Some(host) = self.header("host") else {
            return false;
        };
        origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}"))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == auth::COOKIE_NAME && !value.is_empty()).then(|| value.to_owned())
        })
}

/// Serve one request under `/admin` or `/api`.
pub(crate) async fn handle(
    admin: &Admin,
    peer: Ipv4Addr,
    request: Request<Incoming>,
    deadline: Instant,
    max_body: usize,
) -> Response<Reply> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let session = session_cookie(&headers).and_then(|id| {
        let csrf = admin.sessions.check(&id)?;
        Some(SessionRef { id, csrf })
    });
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        return closing(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            None,
            None,
        ));
    }
    let body = if method == Method::GET || method == Method::HEAD {
        Bytes::new()
    } else {
        match read_body(request.into_body(), max_body, deadline).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return closing(json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                    None,
                    None,
                ))
            }
            Err(BodyError::TimedOut) => {
                return closing(json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request not complete in time",
                    None,
                    None,
                ))
            }
            Err(BodyError::Broken(_)) => {
                return closing(json_error(
                    StatusCode::BAD_REQUEST,
                    "request body unreadable",
                    None,
                    None,
                ))
            }
        }
    };
    let req = Req {
        method,
        path,
        headers,
        body,
        peer,
        session,
    };
    if req.path == "/api" || req.path.starts_with("/api/") {
        api::route(admin, req).await
    } else {
        pages::route(admin, req).await
    }
}

/// Headers every admin answer carries: no caching, no framing, no sniffing, no referrer,
/// and a Content-Security-Policy that allows only this origin's own script and style.
fn secure(mut response: Response<Reply>) -> Response<Reply> {
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn closing(mut response: Response<Reply>) -> Response<Reply> {
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Reply> {
    match serde_json::to_vec(value) {
        Ok(body) => secure(respond(status, Some(JSON), body)),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &e.to_string(),
            None,
            None,
        ),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: Option<&'a str>,
    field: Option<&'a str>,
}

fn json_error(
    status: StatusCode,
    error: &str,
    code: Option<&str>,
    field: Option<&str>,
) -> Response<Reply> {
    let body = serde_json::to_vec(&ErrorBody { error, code, field }).unwrap_or_default();
    secure(respond(status, Some(JSON), body))
}

fn html(status: StatusCode, body: String) -> Response<Reply> {
    secure(respond(status, Some(HTML), body))
}

fn redirect(location: &'static str) -> Response<Reply> {
    let mut response = secure(respond(StatusCode::SEE_OTHER, None, Bytes::new()));
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(location));
    response
}

fn set_cookie(response: &mut Response<Reply>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().append(hyper::header::SET_COOKIE, v);
    }
}

fn session_cookie_header(id: &str) -> String {
    format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/",
        auth::COOKIE_NAME
    )
}

fn cleared_cookie_header() -> String {
    format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::COOKIE_NAME
    )
}

/// Decode one `application/x-www-form-urlencoded` body into (name, value) pairs.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let pairs = form_pairs(b"password=a+b%26c%3D%zz%4&x=");
        assert_eq!(pairs[0], ("password".into(), "a b&c=%zz%4".into()));
        assert_eq!(pairs[1], ("x".into(), String::new()));
    }

    #[test]
    fn cookie_lookup() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; plugline_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("plugline_session="));
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn admin_paths() {
        for p in [
            "/admin",
            "/admin/",
            "/admin/forwarding",
            "/api/status",
            "/api",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in ["/administrator", "/apis", "/rootDesc.xml", "/"] {
            assert!(!is_admin_path(p), "{p}");
        }
    }
}
