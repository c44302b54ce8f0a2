//! The JSON API under `/api/` (documented in the module above): input validation with
//! sentences a person can act on, and the translation of table refusals into HTTP statuses
//! that keep the UPnP error name.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use gateway_core::addr::{classify, AddressKind};
use gateway_core::{AddRequest, Key, Mapping, Protocol, Source};
use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER};
use hyper::{Method, Response, StatusCode};
use igd_proto::error::ErrorCode;
use serde::Serialize;
use serde_json::{Map, Value};

use super::settings::LiveSettings;
use super::{json, json_error, Admin, Login, Req};
use crate::control::{AdminError, Snapshot};
use crate::http::Reply;

/// Longest description of a static forward (the table's default limit).
pub const MAX_DESCRIPTION: usize = gateway_core::table::DEFAULT_MAX_DESCRIPTION_LEN;
/// Longest `minutes` of a stale deletion: a year.
pub const MAX_STALE_MINUTES: u64 = 366 * 24 * 60;
/// Longest lease a static forward may ask for (the table then clamps to the live maximum).
pub const MAX_STATIC_LEASE: u64 = 604_800;

pub(super) async fn route(admin: &Admin, req: Req) -> Response<Reply> {
    let path = req.path.trim_end_matches('/').to_owned();
    let change = req.method != Method::GET && req.method != Method::HEAD;
    if change && !req.same_origin() {
        return json_error(
            StatusCode::FORBIDDEN,
            "cross-origin request refused",
            None,
            None,
        );
    }
    if path == "/api/login" {
        return match req.method {
            Method::POST => login(admin, &req).await,
            _ => method_not_allowed("POST"),
        };
    }
    let Some(session) = &req.session else {
        return json_error(StatusCode::UNAUTHORIZED, "login required", None, None);
    };
    if change && !req.csrf_ok() {
        tracing::warn!(peer = %req.peer, path = %req.path, "admin change without a valid CSRF token refused");
        return json_error(
            StatusCode::FORBIDDEN,
            "missing or wrong X-CSRF-Token header",
            None,
            None,
        );
    }
    let m = &req.method;
    match path.as_str() {
        "/api/logout" => match *m {
            Method::POST => {
                admin.sessions.close(&session.id);
                let mut r = super::secure(crate::http::respond(
                    StatusCode::NO_CONTENT,
                    None,
                    bytes::Bytes::new(),
                ));
                super::set_cookie(&mut r, &super::cleared_cookie_header());
                r
            }
            _ => method_not_allowed("POST"),
        },
        "/api/status" => match *m {
            Method::GET => status(admin).await,
            _ => method_not_allowed("GET"),
        },
        "/api/mappings" => match *m {
            Method::GET => mappings(admin).await,
            Method::POST => add_static(admin, &req).await,
            _ => method_not_allowed("GET, POST"),
        },
        "/api/mappings/delete" => match *m {
            Method::POST => delete_selection(admin, &req).await,
            _ => method_not_allowed("POST"),
        },
        "/api/mappings/delete-stale" => match *m {
            Method::POST => delete_stale(admin, &req).await,
            _ => method_not_allowed("POST"),
        },
        "/api/settings" => match *m {
            Method::GET => match admin.control.status().await {
                Ok(s) => json(StatusCode::OK, &s.settings),
                Err(e) => admin_error(&e),
            },
            Method::PUT => put_settings(admin, &req).await,
            _ => method_not_allowed("GET, PUT"),
        },
        other => match other.strip_prefix("/api/mappings/") {
            Some(rest) => mapping_item(admin, &req, rest).await,
            None => json_error(StatusCode::NOT_FOUND, "no such API endpoint", None, None),
        },
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Reply> {
    let mut r = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        None,
        None,
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// A request refused before any command ran: bad JSON or a field out of range.
#[derive(Debug)]
struct Invalid {
    error: String,
    field: Option<String>,
}

impl From<Invalid> for Response<Reply> {
    fn from(i: Invalid) -> Self {
        let code = i.field.as_ref().map(|_| ErrorCode::InvalidArgs.name());
        json_error(StatusCode::BAD_REQUEST, &i.error, code, i.field.as_deref())
    }
}

/// `field: message`, answered 400 with `code` InvalidArgs and the field's name.
fn bad(field: &str, message: impl AsRef<str>) -> Invalid {
    Invalid {
        error: format!("{field}: {}", message.as_ref()),
        field: Some(field.to_owned()),
    }
}

fn bad_reply(field: &str, message: impl AsRef<str>) -> Response<Reply> {
    bad(field, message).into()
}

/// The status and body for a failed admin command.
fn admin_error(e: &AdminError) -> Response<Reply> {
    match e {
        AdminError::Refused(r) => {
            let status = match r.code {
                ErrorCode::ConflictInMappingEntry
                | ErrorCode::ConflictWithOtherMechanisms
                | ErrorCode::NoPortMapsAvailable => StatusCode::CONFLICT,
                ErrorCode::NoSuchEntryInArray => StatusCode::NOT_FOUND,
                ErrorCode::ActionFailed => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let name = r.code.name();
            json_error(status, &format!("{} ({name})", r.message), Some(name), None)
        }
        AdminError::Storage(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &e.to_string(),
            Some("StorageFailed"),
            None,
        ),
        AdminError::Unavailable(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &e.to_string(),
            Some("Unavailable"),
            None,
        ),
    }
}

/// The body as a JSON object (an empty body is an empty object).
fn object(req: &Req) -> Result<Map<String, Value>, Invalid> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let error = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => return Ok(map),
        Ok(_) => "the body must be a JSON object".to_owned(),
        Err(e) => format!("the body is not valid JSON: {e}"),
    };
    Err(Invalid { error, field: None })
}

/// A whole number from a JSON number or a string of digits (what a form sends).
fn uint(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        }
        _ => None,
    }
}

fn port(obj: &Map<String, Value>, field: &'static str, label: &str) -> Result<u16, Invalid> {
    let message = format!("{label} must be a whole number from 1 to 65535");
    let value = obj.get(field).ok_or_else(|| bad(field, &message))?;
    uint(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| bad(field, &message))
}

fn protocol_of(text: &str) -> Option<Protocol> {
    match text.trim().to_ascii_uppercase().as_str() {
        "UDP" => Some(Protocol::Udp),
        "TCP" => Some(Protocol::Tcp),
        _ => None,
    }
}

/// `UDP-42000` → key.
fn parse_key(text: &str) -> Option<Key> {
    let (proto, port) = text.split_once('-')?;
    let port: u16 =
        (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
            .then(|| port.parse().ok())
            .flatten()?;
    (port != 0).then_some(Key::new(protocol_of(proto)?, port))
}

fn key_text(key: &Key) -> String {
    format!("{}-{}", key.protocol, key.external_port)
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Upnp => "upnp",
        Source::NatPmp => "natpmp",
        Source::Pcp => "pcp",
        Source::Manual => "manual",
    }
}

/// One mapping as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct MappingView {
    pub key: String,
    pub protocol: &'static str,
    pub external_port: u16,
    pub internal_client: String,
    pub internal_port: u16,
    pub description: String,
    pub enabled: bool,
    pub lease_seconds: u32,
    pub lease_granted: u32,
    pub source: &'static str,
    pub created_at: u64,
    pub host_last_seen: Option<u64>,
}

pub(super) fn view(m: &Mapping, now: u64, last_seen: Option<u64>) -> MappingView {
    MappingView {
        key: key_text(&m.key),
        protocol: m.key.protocol.as_str(),
        external_port: m.key.external_port,
        internal_client: m.internal_client.to_string(),
        internal_port: m.internal_port,
        description: m.description.clone(),
        enabled: m.enabled,
        lease_seconds: m.remaining(now),
        lease_granted: m.lease_seconds,
        source: source_name(m.source),
        created_at: m.created_at,
        host_last_seen: last_seen,
    }
}

pub(super) fn views(snapshot: &Snapshot) -> Vec<MappingView> {
    snapshot
        .mappings
        .iter()
        .map(|m| {
            view(
                m,
                snapshot.now,
                snapshot.last_seen.get(&m.internal_client).copied(),
            )
        })
        .collect()
}

async fn login(admin: &Admin, req: &Req) -> Response<Reply> {
    let password = if req.is_form() {
        super::form_pairs(&req.body)
            .into_iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v)
    } else {
        match object(req) {
            Ok(obj) => obj
                .get("password")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Err(r) => return r.into(),
        }
    };
    let Some(password) = password else {
        return bad_reply("password", "required");
    };
    match admin.login(req.peer, &password).await {
        Login::Ok { id, csrf } => {
            #[derive(Serialize)]
            struct Csrf {
                csrf: String,
            }
            let mut r = json(StatusCode::OK, &Csrf { csrf });
            super::set_cookie(&mut r, &super::session_cookie_header(&id));
            r
        }
        Login::Wrong => json_error(StatusCode::UNAUTHORIZED, "wrong password", None, None),
        Login::Limited(wait) => {
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many failed logins: try again in {wait} s"),
                None,
                None,
            );
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(wait));
            r
        }
        Login::Failed(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e, None, None),
    }
}

/// The status document (also used by the status page).
#[derive(Debug, Serialize)]
pub(super) struct StatusView {
    pub external_ip: Option<String>,
    pub address_kind: &'static str,
    pub address_range: Option<&'static str>,
    pub connection_status: &'static str,
    pub uptime_seconds: u64,
    pub boot_id: u32,
    pub backend: &'static str,
    pub now: u64,
    pub mappings: Counts,
    pub protocols: Protocols,
}

#[derive(Debug, Serialize)]
pub(super) struct Counts {
    pub total: usize,
    pub udp: usize,
    pub tcp: usize,
    pub per_host: BTreeMap<Ipv4Addr, usize>,
}

#[derive(Debug, Serialize)]
pub(super) struct Protocols {
    pub upnp: bool,
    pub natpmp: bool,
    pub pcp: bool,
}

pub(super) async fn status_view(admin: &Admin) -> Result<StatusView, AdminError> {
    let s = admin.control.status().await?;
    let (address_kind, address_range) = match s.external_ip.map(classify) {
        None => ("unknown", None),
        Some(AddressKind::Public) => ("public", None),
        Some(AddressKind::Private) => ("private", None),
        Some(AddressKind::Reserved(what)) => ("reserved", Some(what)),
    };
    Ok(StatusView {
        external_ip: s.external_ip.map(|ip| ip.to_string()),
        address_kind,
        address_range,
        connection_status: s.connection_status,
        uptime_seconds: s.uptime_seconds,
        boot_id: admin.info.boot_id,
        backend: admin.info.backend,
        now: s.now,
        mappings: Counts {
            total: s.total,
            udp: s.udp,
            tcp: s.tcp,
            per_host: s.per_host,
        },
        // NAT-PMP and PCP are not served by this gateway yet.
        protocols: Protocols {
            upnp: s.settings.upnp_enabled,
            natpmp: false,
            pcp: false,
        },
    })
}

async fn status(admin: &Admin) -> Response<Reply> {
    match status_view(admin).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => admin_error(&e),
    }
}

async fn mappings(admin: &Admin) -> Response<Reply> {
    match admin.control.snapshot().await {
        Ok(snapshot) => {
            let mut r = json(StatusCode::OK, &views(&snapshot));
            r.headers_mut()
                .insert("x-plugline-now", HeaderValue::from(snapshot.now));
            r
        }
        Err(e) => admin_error(&e),
    }
}

fn in_lan(admin: &Admin, ip: Ipv4Addr) -> bool {
    let prefix = u32::from(admin.info.lan_prefix.min(32));
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(admin.info.lan_addr) & mask
}

/// Validate a static forward; every message names the field and what it accepts.
fn static_request(admin: &Admin, obj: &Map<String, Value>) -> Result<AddRequest, Invalid> {
    const KNOWN: [&str; 7] = [
        "protocol",
        "external_port",
        "internal_client",
        "internal_port",
        "description",
        "lease_seconds",
        "enabled",
    ];
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(unknown, "unknown field"));
    }
    let protocol = obj
        .get("protocol")
        .and_then(Value::as_str)
        .and_then(protocol_of)
        .ok_or_else(|| bad("protocol", "choose TCP or UDP"))?;
    let external_port = port(obj, "external_port", "the external port")?;
    let client_text = obj
        .get("internal_client")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let internal_client: Ipv4Addr = client_text.parse().map_err(|_| {
        bad(
            "internal_client",
            format!(
                "must be the IPv4 address of a LAN host, such as {} (names are not resolved)",
                admin.info.lan_addr
            ),
        )
    })?;
    if !in_lan(admin, internal_client) {
        return Err(bad(
            "internal_client",
            format!(
                "{internal_client} is not on the LAN ({}/{})",
                admin.info.lan_addr, admin.info.lan_prefix
            ),
        ));
    }
    let internal_port = port(obj, "internal_port", "the internal port")?;
    let description = match obj.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(_) => return Err(bad("description", "must be text")),
    };
    if description.len() > MAX_DESCRIPTION {
        return Err(bad(
            "description",
            format!(
                "at most {MAX_DESCRIPTION} bytes (this one has {})",
                description.len()
            ),
        ));
    }
    if description.chars().any(char::is_control) {
        return Err(bad(
            "description",
            "must be one line without control characters",
        ));
    }
    let lease_message = format!(
        "the lease must be a whole number of seconds from 0 (permanent) to {MAX_STATIC_LEASE}"
    );
    let lease_seconds = match obj.get("lease_seconds") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.trim().is_empty() => 0,
        Some(v) => uint(v)
            .filter(|n| *n <= MAX_STATIC_LEASE)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("lease_seconds", &lease_message))?,
    };
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("enabled", "must be true or false")),
    };
    Ok(AddRequest {
        key: Key::new(protocol, external_port),
        internal_client,
        internal_port,
        description,
        enabled,
        lease_seconds,
        source: Source::Manual,
    })
}

async fn add_static(admin: &Admin, req: &Req) -> Response<Reply> {
    let obj = match object(req) {
        Ok(o) => o,
        Err(r) => return r.into(),
    };
    let request = match static_request(admin, &obj) {
        Ok(r) => r,
        Err(r) => return r.into(),
    };
    match admin.control.add_static(request).await {
        Ok(m) => json(
            StatusCode::CREATED,
            &view(&m, crate::control::unix_now(), None),
        ),
        Err(e) => admin_error(&e),
    }
}

async fn delete_selection(admin: &Admin, req: &Req) -> Response<Reply> {
    let obj = match object(req) {
        Ok(o) => o,
        Err(r) => return r.into(),
    };
    let Some(Value::Array(items)) = obj.get("keys") else {
        return bad_reply(
            "keys",
            "must be a list of mapping keys such as \"UDP-42000\"",
        );
    };
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str().and_then(parse_key) {
            Some(k) => keys.push(k),
            None => {
                return bad_reply(
                    "keys",
                    format!("{item} is not a mapping key such as \"UDP-42000\""),
                )
            }
        }
    }
    match admin.control.remove_selection(keys).await {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({ "deleted": n })),
        Err(e) => admin_error(&e),
    }
}

async fn delete_stale(admin: &Admin, req: &Req) -> Response<Reply> {
    let obj = match object(req) {
        Ok(o) => o,
        Err(r) => return r.into(),
    };
    let Some(minutes) = obj
        .get("minutes")
        .and_then(uint)
        .filter(|m| *m <= MAX_STALE_MINUTES)
    else {
        return bad_reply(
            "minutes",
            format!("must be a whole number of minutes from 0 to {MAX_STALE_MINUTES}"),
        );
    };
    match admin.control.remove_stale(minutes * 60).await {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({ "deleted": n })),
        Err(e) => admin_error(&e),
    }
}

/// `/api/mappings/{P}/{port}` (DELETE) and `/api/mappings/{P}/{port}/enabled` (POST).
async fn mapping_item(admin: &Admin, req: &Req, rest: &str) -> Response<Reply> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (key_parts, enabled_path) = match parts.as_slice() {
        [p, port] => ((*p, *port), false),
        [p, port, "enabled"] => ((*p, *port), true),
        _ => return json_error(StatusCode::NOT_FOUND, "no such API endpoint", None, None),
    };
    let Some(key) = parse_key(&format!("{}-{}", key_parts.0, key_parts.1)) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "no such mapping: the path is /api/mappings/{UDP|TCP}/{port}",
            Some(ErrorCode::NoSuchEntryInArray.name()),
            None,
        );
    };
    if !enabled_path {
        return match req.method {
            Method::DELETE => match admin.control.admin_remove(key).await {
                Ok(_) => super::secure(crate::http::respond(
                    StatusCode::NO_CONTENT,
                    None,
                    bytes::Bytes::new(),
                )),
                Err(e) => admin_error(&e),
            },
            _ => method_not_allowed("DELETE"),
        };
    }
    if req.method != Method::POST {
        return method_not_allowed("POST");
    }
    let obj = match object(req) {
        Ok(o) => o,
        Err(r) => return r.into(),
    };
    let Some(enabled) = obj.get("enabled").and_then(Value::as_bool) else {
        return bad_reply("enabled", "must be true or false");
    };
    match admin.control.set_enabled(key, enabled).await {
        Ok(m) => {
            let now = crate::control::unix_now();
            json(StatusCode::OK, &view(&m, now, None))
        }
        Err(e) => admin_error(&e),
    }
}

/// Merge the body's fields over `current`, validating each.
fn merge_settings(
    current: LiveSettings,
    obj: &Map<String, Value>,
) -> Result<LiveSettings, Invalid> {
    let mut s = current;
    for (name, value) in obj {
        let number =
            |field: &'static str| uint(value).ok_or_else(|| bad(field, "must be a whole number"));
        let flag = |field: &'static str| {
            value
                .as_bool()
                .ok_or_else(|| bad(field, "must be true or false"))
        };
        match name.as_str() {
            "secure_mode" => s.secure_mode = flag("secure_mode")?,
            "upnp_enabled" => s.upnp_enabled = flag("upnp_enabled")?,
            "max_mappings" => {
                s.max_mappings = usize::try_from(number("max_mappings")?).unwrap_or(usize::MAX)
            }
            "max_mappings_per_host" => {
                s.max_mappings_per_host =
                    usize::try_from(number("max_mappings_per_host")?).unwrap_or(usize::MAX)
            }
            "max_lease_seconds" => {
                s.max_lease_seconds =
                    u32::try_from(number("max_lease_seconds")?).unwrap_or(u32::MAX)
            }
            other => return Err(bad(other, "unknown setting")),
        }
    }
    s.validate().map_err(|e| bad(e.field, &e.message))?;
    Ok(s)
}

async fn put_settings(admin: &Admin, req: &Req) -> Response<Reply> {
    let obj = match object(req) {
        Ok(o) => o,
        Err(r) => return r.into(),
    };
    let current = match admin.control.status().await {
        Ok(s) => s.settings,
        Err(e) => return admin_error(&e),
    };
    let wanted = match merge_settings(current, &obj) {
        Ok(s) => s,
        Err(r) => return r.into(),
    };
    match admin.control.apply_settings(wanted).await {
        Ok(s) => json(StatusCode::OK, &s),
        Err(e) => admin_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_strictly() {
        assert_eq!(parse_key("UDP-42000"), Some(Key::new(Protocol::Udp, 42000)));
        assert_eq!(parse_key("tcp-80"), Some(Key::new(Protocol::Tcp, 80)));
        for bad in [
            "UDP-0",
            "UDP-65536",
            "UDP-+1",
            "SCTP-1",
            "UDP",
            "UDP-",
            "-1",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
        assert_eq!(key_text(&Key::new(Protocol::Udp, 7)), "UDP-7");
    }

    #[test]
    fn numbers_from_json_or_text() {
        assert_eq!(uint(&serde_json::json!(5)), Some(5));
        assert_eq!(uint(&serde_json::json!(" 42 ")), Some(42));
        for v in [
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!("1e3"),
            serde_json::json!(""),
            serde_json::json!(true),
        ] {
            assert_eq!(uint(&v), None, "{v}");
        }
    }
}
