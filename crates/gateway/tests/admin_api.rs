//! The web admin and its JSON API, in-process on loopback with the userspace relay backend
//! (no root): login, sessions, CSRF and the login rate limit; every API endpoint; admin
//! changes seen by a SOAP client (portmap) and SOAP changes seen by the API; static forwards
//! with their validation and conflicts; stale deletion; live settings with their effect on
//! SOAP and their persistence across a restart; HTML escaping; pages behind the login; the
//! remote-management listener.
//!
//! Requests are written by hand over TCP so that each test can choose its source address in
//! 127/8 (the login rate limit is per client address) and see every header as sent.

mod support;

use std::net::{Ipv4Addr, UdpSocket as StdUdpSocket};
use std::path::Path;
use std::time::Duration;

use gateway::GatewayConfig;
use portmap::{ClientConfig, Gateway, MappingRequest, Protocol};
use serde_json::{json, Value};
use support::{free_port, relay_config, start, state_dir, Running, INTERNET, LAN, WAN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(5);

/// A port free for UDP on the WAN address (what a static forward's relay binds).
fn free_wan_udp_port() -> u16 {
    StdUdpSocket::bind((WAN, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cheap argon2 hash for tests (the gateway verifies with the parameters in the string).
fn test_hash() -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"plugline-test-salt").unwrap();
    argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn config(state: &Path, http_port: u16) -> GatewayConfig {
    GatewayConfig {
        admin_password_hash: Some(test_hash()),
        ..relay_config(state, http_port)
    }
}

async fn soap_client(gw: &Running) -> Gateway {
    Gateway::from_url(&gw.url(), ClientConfig::default())
        .await
        .unwrap()
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request from `from` to `to:port` and read the whole answer (the server closes).
async fn raw(
    from: Ipv4Addr,
    to: Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect((to, port).into()))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut all))
        .await
        .expect("answer in time")
        .expect("answer");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: all[split + 4..].to_vec(),
    }
}

/// An admin client from one source address, holding its session.
struct Admin {
    from: Ipv4Addr,
    to: Ipv4Addr,
    port: u16,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Admin {
    fn new(from: Ipv4Addr, port: u16) -> Admin {
        Admin {
            from,
            to: LAN,
            port,
            cookie: None,
            csrf: None,
        }
    }

    async fn login_with(&mut self, password: &str) -> Answer {
        let body = json!({ "password": password }).to_string();
        let answer = raw(
            self.from,
            self.to,
            self.port,
            "POST",
            "/api/login",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        )
        .await;
        if answer.status == 200 {
            let cookie = answer.header("set-cookie").expect("Set-Cookie");
            let value = cookie.split(';').next().unwrap().to_owned();
            self.cookie = Some(value);
            self.csrf = answer.json()["csrf"].as_str().map(str::to_owned);
        }
        answer
    }

    async fn login(mut self) -> Admin {
        let answer = self.login_with(PASSWORD).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        self
    }

    /// A request with the session cookie and, when `csrf`, the CSRF header.
    async fn send(&self, method: &str, path: &str, body: Option<Value>, csrf: bool) -> Answer {
        let mut headers = Vec::new();
        if let Some(c) = &self.cookie {
            headers.push(("Cookie", c.clone()));
        }
        if csrf {
            if let Some(t) = &self.csrf {
                headers.push(("X-CSRF-Token", t.clone()));
            }
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json".into()));
        }
        raw(
            self.from,
            self.to,
            self.port,
            method,
            path,
            &headers,
            body.as_bytes(),
        )
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, false).await
    }

    async fn change(&self, method: &str, path: &str, body: Value) -> Answer {
        self.send(method, path, Some(body), true).await
    }

    async fn mappings(&self) -> Vec<Value> {
        let answer = self.get("/api/mappings").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json().as_array().unwrap().clone()
    }

    async fn mapping(&self, key: &str) -> Option<Value> {
        self.mappings()
            .await
            .into_iter()
            .find(|m| m["key"] == json!(key))
    }
}

async fn arrives(phone: &UdpSocket, port: u16, payload: &[u8]) -> bool {
    let outside = UdpSocket::bind((INTERNET, 0)).await.unwrap();
    outside.send_to(payload, (WAN, port)).await.unwrap();
    let mut buf = [0u8; 128];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), phone.recv_from(&mut buf)).await,
        Ok(Ok((n, _))) if &buf[..n] == payload
    )
}

fn assert_error(answer: &Answer, status: u16, field: Option<&str>, code: Option<&str>) -> String {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    let error = body["error"]
        .as_str()
        .expect("an error sentence")
        .to_owned();
    assert!(!error.is_empty());
    if let Some(field) = field {
        assert_eq!(body["field"], json!(field), "{body}");
    }
    if let Some(code) = code {
        assert_eq!(body["code"], json!(code), "{body}");
    }
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_csrf_logout_and_rate_limit() {
    let state = state_dir("admin", "login");
    let gw = start(config(&state, free_port(LAN))).await;
    let from = Ipv4Addr::new(127, 0, 0, 11);

    // Wrong password: 401 and no cookie.
    let mut admin = Admin::new(from, gw.port);
    let wrong = admin.login_with("guess").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    // Right password: the cookie's attributes and a CSRF token.
    let right = admin.login_with(PASSWORD).await;
    assert_eq!(right.status, 200, "{}", right.text());
    let cookie = right.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("plugline_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.split(';').any(|a| a.trim() == attribute),
            "{attribute} missing: {cookie}"
        );
    }
    let csrf = admin.csrf.clone().unwrap();
    assert!(csrf.len() >= 32, "{csrf}");

    // A form login works too.
    let form = raw(
        from,
        LAN,
        gw.port,
        "POST",
        "/api/login",
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        )],
        format!("password={}", PASSWORD.replace(' ', "+")).as_bytes(),
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text());

    // The API needs the session; a forged cookie is no session.
    let anonymous = Admin::new(from, gw.port);
    assert_eq!(anonymous.get("/api/status").await.status, 401);
    assert_eq!(anonymous.get("/api/mappings").await.status, 401);
    let forged = Admin {
        cookie: Some("plugline_session=0000".into()),
        ..Admin::new(from, gw.port)
    };
    assert_eq!(forged.get("/api/settings").await.status, 401);
    assert_eq!(admin.get("/api/status").await.status, 200);
    assert_eq!(admin.get("/api/login").await.status, 405);
    assert_eq!(admin.get("/api/nothing").await.status, 404);

    // A change from another origin is refused even with the token.
    let cross = raw(
        from,
        LAN,
        gw.port,
        "PUT",
        "/api/settings",
        &[
            ("Cookie", admin.cookie.clone().unwrap()),
            ("X-CSRF-Token", csrf.clone()),
            ("Origin", "http://evil.example".into()),
        ],
        br#"{"secure_mode": false}"#,
    )
    .await;
    assert_eq!(cross.status, 403);
    assert_eq!(
        admin.get("/api/settings").await.json()["secure_mode"],
        json!(true)
    );

    // Logout needs the token, then ends the session.
    assert_eq!(
        admin.send("POST", "/api/logout", None, false).await.status,
        403
    );
    let out = admin.send("POST", "/api/logout", None, true).await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(admin.get("/api/status").await.status, 401);

    // Five failures a minute per client address, then 429 even for the right password.
    let mut attacker = Admin::new(Ipv4Addr::new(127, 0, 0, 12), gw.port);
    for _ in 0..5 {
        assert_eq!(attacker.login_with("guess").await.status, 401);
    }
    let limited = attacker.login_with(PASSWORD).await;
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(limited.header("retry-after").is_some());
    assert!(attacker.cookie.is_none());
    // Another address is not affected.
    Admin::new(Ipv4Addr::new(127, 0, 0, 13), gw.port)
        .login()
        .await;

    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_and_admin_see_each_others_changes() {
    let state = state_dir("admin", "soap");
    let gw = start(config(&state, free_port(LAN))).await;
    let admin = Admin::new(Ipv4Addr::new(127, 0, 0, 21), gw.port)
        .login()
        .await;
    let c = soap_client(&gw).await;

    // A mapping made over SOAP is in the API at once, with its source and times.
    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let mut req = MappingRequest::new(Protocol::Udp, phone.local_addr().unwrap().port());
    req.any_port = true;
    req.description = "SIP phone".into();
    req.lease_seconds = 600;
    let m = c.add(&req).await.unwrap();
    let key = format!("UDP-{}", m.external_port);
    let entry = admin.mapping(&key).await.expect("SOAP mapping listed");
    assert_eq!(entry["source"], json!("upnp"));
    assert_eq!(entry["protocol"], json!("UDP"));
    assert_eq!(entry["description"], json!("SIP phone"));
    assert_eq!(entry["internal_client"], json!("127.0.0.1"));
    assert_eq!(entry["enabled"], json!(true));
    let lease = entry["lease_seconds"].as_u64().unwrap();
    assert!((590..=600).contains(&lease), "{entry}");
    assert!(entry["host_last_seen"].as_u64().is_some(), "{entry}");
    assert!(entry["created_at"].as_u64().unwrap() > 1_600_000_000);

    // Status counts it.
    let status = admin.get("/api/status").await.json();
    assert_eq!(status["external_ip"], json!("127.0.1.1"));
    assert_eq!(status["address_kind"], json!("reserved"));
    assert_eq!(status["address_range"], json!("loopback"));
    assert_eq!(status["connection_status"], json!("Connected"));
    assert_eq!(status["backend"], json!("relay"));
    assert!(status["boot_id"].as_u64().unwrap() >= 1);
    assert_eq!(status["mappings"]["total"], json!(1));
    assert_eq!(status["mappings"]["udp"], json!(1));
    assert_eq!(status["mappings"]["tcp"], json!(0));
    assert_eq!(status["mappings"]["per_host"], json!({"127.0.0.1": 1}));
    assert_eq!(
        status["protocols"],
        json!({"upnp": true, "natpmp": false, "pcp": false})
    );

    // Changes without the CSRF token, or with a wrong one: 403 and nothing changed.
    let path = format!("/api/mappings/UDP/{}", m.external_port);
    assert_eq!(admin.send("DELETE", &path, None, false).await.status, 403);
    let wrong = Admin {
        csrf: Some("forged".into()),
        cookie: admin.cookie.clone(),
        ..Admin::new(admin.from, gw.port)
    };
    assert_eq!(wrong.send("DELETE", &path, None, true).await.status, 403);
    assert_eq!(
        wrong
            .change(
                "POST",
                &format!("{path}/enabled"),
                json!({"enabled": false})
            )
            .await
            .status,
        403
    );
    assert!(c
        .get(Protocol::Udp, m.external_port)
        .await
        .unwrap()
        .is_some());
    assert!(arrives(&phone, m.external_port, b"still").await);

    // Disable: SOAP sees it disabled and the forward stops; enable: it forwards again.
    let off = admin
        .change(
            "POST",
            &format!("{path}/enabled"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text());
    assert_eq!(off.json()["enabled"], json!(false));
    let seen = c
        .get(Protocol::Udp, m.external_port)
        .await
        .unwrap()
        .unwrap();
    assert!(!seen.enabled);
    assert!(!arrives(&phone, m.external_port, b"disabled").await);
    let on = admin
        .change("POST", &format!("{path}/enabled"), json!({"enabled": true}))
        .await;
    assert_eq!(on.json()["enabled"], json!(true));
    assert!(arrives(&phone, m.external_port, b"enabled").await);
    assert_error(
        &admin
            .change(
                "POST",
                &format!("{path}/enabled"),
                json!({"enabled": "yes"}),
            )
            .await,
        400,
        Some("enabled"),
        None,
    );

    // Delete: SOAP no longer finds it, the forward is gone; again → 404.
    let deleted = admin.send("DELETE", &path, None, true).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(c
        .get(Protocol::Udp, m.external_port)
        .await
        .unwrap()
        .is_none());
    assert!(!arrives(&phone, m.external_port, b"deleted").await);
    assert_error(
        &admin.send("DELETE", &path, None, true).await,
        404,
        None,
        Some("NoSuchEntryInArray"),
    );
    assert_eq!(
        admin
            .send("DELETE", "/api/mappings/SCTP/1", None, true)
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .send("GET", &path, None, false)
            .await
            .header("allow")
            .map(str::to_owned),
        Some("DELETE".into())
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_forwards_validate_conflict_and_forward() {
    let state = state_dir("admin", "static");
    let gw = start(config(&state, free_port(LAN))).await;
    let admin = Admin::new(Ipv4Addr::new(127, 0, 0, 31), gw.port)
        .login()
        .await;
    let phone = UdpSocket::bind((LAN, 0)).await.unwrap();
    let internal_port = phone.local_addr().unwrap().port();
    let ext = free_wan_udp_port();
    let good = json!({
        "protocol": "UDP",
        "external_port": ext,
        "internal_client": "127.0.0.1",
        "internal_port": internal_port,
        "description": "static phone",
        "lease_seconds": 0,
    });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };

    // Bad input: 400 naming the field, and nothing added.
    let cases = [
        (with("protocol", json!("SCTP")), "protocol"),
        (with("external_port", json!(0)), "external_port"),
        (with("external_port", json!(70000)), "external_port"),
        (with("external_port", json!("80a")), "external_port"),
        (
            with("internal_client", json!("router.lan")),
            "internal_client",
        ),
        (
            with("internal_client", json!("10.1.2.3")),
            "internal_client",
        ),
        (with("internal_port", json!(null)), "internal_port"),
        (with("description", json!("two\nlines")), "description"),
        (with("description", json!("x".repeat(300))), "description"),
        (with("lease_seconds", json!(604_801)), "lease_seconds"),
        (with("lease_seconds", json!(-5)), "lease_seconds"),
        (with("colour", json!("red")), "colour"),
    ];
    for (body, field) in cases {
        let error = assert_error(
            &admin.change("POST", "/api/mappings", body).await,
            400,
            Some(field),
            Some("InvalidArgs"),
        );
        assert!(error.starts_with(field), "{error}");
    }
    let outside = admin
        .change(
            "POST",
            "/api/mappings",
            with("internal_client", json!("10.1.2.3")),
        )
        .await;
    assert!(
        outside.json()["error"]
            .as_str()
            .unwrap()
            .contains("not on the LAN"),
        "{}",
        outside.text()
    );
    let not_json = raw(
        admin.from,
        LAN,
        gw.port,
        "POST",
        "/api/mappings",
        &[
            ("Cookie", admin.cookie.clone().unwrap()),
            ("X-CSRF-Token", admin.csrf.clone().unwrap()),
        ],
        b"{nope",
    )
    .await;
    assert_eq!(not_json.status, 400);
    assert!(admin.mappings().await.is_empty());

    // A good one: 201, source manual, permanent, and it forwards; SOAP sees it.
    let added = admin.change("POST", "/api/mappings", good.clone()).await;
    assert_eq!(added.status, 201, "{}", added.text());
    let m = added.json();
    assert_eq!(m["source"], json!("manual"));
    assert_eq!(m["lease_seconds"], json!(0));
    assert_eq!(m["key"], json!(format!("UDP-{ext}")));
    assert!(arrives(&phone, ext, b"static").await);
    let gw_client = soap_client(&gw).await;
    let seen = gw_client.get(Protocol::Udp, ext).await.unwrap().unwrap();
    assert_eq!(seen.description, "static phone");
    assert_eq!(seen.lease_duration, 0);
    // A SOAP client cannot take it over: 729 (held by another mechanism).
    let mut take = MappingRequest::new(Protocol::Udp, internal_port);
    take.external_port = Some(ext);
    let err = gw_client.add(&take).await.unwrap_err();
    assert!(
        err.is_upnp(igd_proto::error::ErrorCode::ConflictWithOtherMechanisms),
        "{err}"
    );

    // Conflicts: another client on the same key → 409 with the UPnP name.
    let conflict = admin
        .change(
            "POST",
            "/api/mappings",
            with("internal_client", json!("127.0.0.2")),
        )
        .await;
    assert_error(&conflict, 409, None, Some("ConflictInMappingEntry"));
    // A key held by a UPnP client → 409 ConflictWithOtherMechanisms.
    let mut soap = MappingRequest::new(Protocol::Tcp, free_port(WAN));
    soap.any_port = true;
    let soap_mapping = gw_client.add(&soap).await.unwrap();
    let conflict = admin
        .change(
            "POST",
            "/api/mappings",
            json!({
                "protocol": "TCP",
                "external_port": soap_mapping.external_port.to_string(),
                "internal_client": "127.0.0.1",
                "internal_port": "8080",
            }),
        )
        .await;
    let error = assert_error(&conflict, 409, None, Some("ConflictWithOtherMechanisms"));
    assert!(error.contains("ConflictWithOtherMechanisms"), "{error}");

    // Hostile descriptions: escaped in the page, verbatim in the JSON.
    let hostile = "<script>alert(1)</script>";
    let ext2 = free_wan_udp_port();
    let added = admin
        .change(
            "POST",
            "/api/mappings",
            json!({
                "protocol": "udp",
                "external_port": ext2,
                "internal_client": "127.0.0.1",
                "internal_port": 9,
                "description": hostile,
            }),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let mut soap_hostile = MappingRequest::new(Protocol::Udp, 9);
    soap_hostile.any_port = true;
    soap_hostile.external_port = Some(free_wan_udp_port());
    soap_hostile.description = "\"><img src=x onerror=alert(2)>".into();
    gw_client.add(&soap_hostile).await.unwrap();
    let page = admin.get("/admin/forwarding").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(
        admin.mapping(&format!("UDP-{ext2}")).await.unwrap()["description"],
        json!(hostile)
    );

    // Delete a selection: unknown keys are skipped; a malformed key is refused.
    let before = admin.mappings().await.len();
    assert_eq!(before, 4);
    assert_error(
        &admin
            .change("POST", "/api/mappings/delete", json!({"keys": ["UDP-1x"]}))
            .await,
        400,
        Some("keys"),
        None,
    );
    let deleted = admin
        .change(
            "POST",
            "/api/mappings/delete",
            json!({"keys": [format!("UDP-{ext}"), format!("UDP-{ext2}"), "TCP-1"]}),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json(), json!({"deleted": 2}));
    assert_eq!(admin.mappings().await.len(), before - 2);
    assert!(gw_client.get(Protocol::Udp, ext).await.unwrap().is_none());
    assert!(!arrives(&phone, ext, b"gone").await);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_hosts_lose_their_mappings_but_static_forwards_stay() {
    let state = state_dir("admin", "stale");
    let gw = start(config(&state, free_port(LAN))).await;
    let admin = Admin::new(Ipv4Addr::new(127, 0, 0, 41), gw.port)
        .login()
        .await;
    // Secure mode off so that one client can map for a host that never talks to us.
    let off = admin
        .change("PUT", "/api/settings", json!({"secure_mode": false}))
        .await;
    assert_eq!(off.status, 200, "{}", off.text());
    let c = soap_client(&gw).await;
    let mut own = MappingRequest::new(Protocol::Udp, 7000);
    own.any_port = true;
    let own = c.add(&own).await.unwrap();
    let mut other = MappingRequest::new(Protocol::Udp, 7001);
    other.any_port = true;
    other.internal_client = Some(Ipv4Addr::new(127, 0, 0, 77));
    let other = c.add(&other).await.unwrap();
    let ext = free_wan_udp_port();
    let added = admin
        .change(
            "POST",
            "/api/mappings",
            json!({"protocol": "UDP", "external_port": ext, "internal_client": "127.0.0.78",
                   "internal_port": 7002}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let other_entry = admin
        .mapping(&format!("UDP-{}", other.external_port))
        .await
        .unwrap();
    assert_eq!(other_entry["host_last_seen"], Value::Null);

    assert_error(
        &admin
            .change(
                "POST",
                "/api/mappings/delete-stale",
                json!({"minutes": "soon"}),
            )
            .await,
        400,
        Some("minutes"),
        None,
    );
    let stale = admin
        .change("POST", "/api/mappings/delete-stale", json!({"minutes": 5}))
        .await;
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.json(), json!({"deleted": 1}));
    let keys: Vec<String> = admin
        .mappings()
        .await
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(keys.contains(&format!("UDP-{}", own.external_port)));
    assert!(keys.contains(&format!("UDP-{ext}")), "static forward kept");
    assert!(!keys.contains(&format!("UDP-{}", other.external_port)));
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_validate_apply_live_and_persist_across_restart() {
    let state = state_dir("admin", "settings");
    let http_port = free_port(LAN);
    let gw = start(config(&state, http_port)).await;
    let admin = Admin::new(Ipv4Addr::new(127, 0, 0, 51), gw.port)
        .login()
        .await;
    let defaults = admin.get("/api/settings").await.json();
    assert_eq!(
        defaults,
        json!({"secure_mode": true, "max_mappings": 65536, "max_mappings_per_host": 256,
               "max_lease_seconds": 604800, "upnp_enabled": true})
    );

    // Validation: 400 naming the field, nothing applied.
    for (body, field) in [
        (json!({"max_mappings_per_host": 0}), "max_mappings_per_host"),
        (json!({"max_mappings": "lots"}), "max_mappings"),
        (json!({"max_lease_seconds": 604_801}), "max_lease_seconds"),
        (json!({"secure_mode": "yes"}), "secure_mode"),
        (
            json!({"max_mappings_per_host": 1, "nat_pmp": true}),
            "nat_pmp",
        ),
    ] {
        assert_error(
            &admin.change("PUT", "/api/settings", body).await,
            400,
            Some(field),
            None,
        );
    }
    assert_eq!(admin.get("/api/settings").await.json(), defaults);
    assert_eq!(
        admin
            .send("PUT", "/api/settings", Some(json!({})), false)
            .await
            .status,
        403
    );

    // Live effect: one mapping per host, then 728 for the next SOAP add.
    let put = admin
        .change(
            "PUT",
            "/api/settings",
            json!({"max_mappings_per_host": "1", "max_lease_seconds": 3600}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["max_mappings_per_host"], json!(1));
    let c = soap_client(&gw).await;
    let mut first = MappingRequest::new(Protocol::Udp, 7100);
    first.any_port = true;
    first.lease_seconds = 86_400;
    let first = c.add(&first).await.unwrap();
    assert_eq!(
        first.lease_seconds, 3600,
        "lease clamped to the new maximum"
    );
    let mut second = MappingRequest::new(Protocol::Udp, 7101);
    second.any_port = true;
    let err = c.add(&second).await.unwrap_err();
    assert!(
        err.is_upnp(igd_proto::error::ErrorCode::NoPortMapsAvailable),
        "{err}"
    );

    // UPnP off: SOAP actions fail with 501; the status page says so; on again: they work.
    let put = admin
        .change("PUT", "/api/settings", json!({"upnp_enabled": false}))
        .await;
    assert_eq!(put.json()["upnp_enabled"], json!(false));
    let err = c.get(Protocol::Udp, first.external_port).await.unwrap_err();
    assert!(
        err.is_upnp(igd_proto::error::ErrorCode::ActionFailed),
        "{err}"
    );
    assert_eq!(
        admin.get("/api/status").await.json()["protocols"]["upnp"],
        json!(false)
    );
    admin
        .change("PUT", "/api/settings", json!({"upnp_enabled": true}))
        .await;
    assert!(c
        .get(Protocol::Udp, first.external_port)
        .await
        .unwrap()
        .is_some());

    // More room, then a disabled static forward whose state must survive the restart too.
    let saved = admin
        .change(
            "PUT",
            "/api/settings",
            json!({"secure_mode": false, "max_mappings": 1000, "max_mappings_per_host": 2}),
        )
        .await
        .json();
    let ext = free_wan_udp_port();
    let added = admin
        .change(
            "POST",
            "/api/mappings",
            json!({"protocol": "UDP", "external_port": ext, "internal_client": "127.0.0.1",
                   "internal_port": 7200, "description": "kept", "enabled": false}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    assert!(state.join("settings.toml").exists());
    gw.stop().await;

    // Restart: the settings and the table come back.
    let gw = start(config(&state, http_port)).await;
    let admin = Admin::new(Ipv4Addr::new(127, 0, 0, 52), gw.port)
        .login()
        .await;
    assert_eq!(admin.get("/api/settings").await.json(), saved);
    assert_eq!(saved["max_lease_seconds"], json!(3600));
    let kept = admin.mapping(&format!("UDP-{ext}")).await.unwrap();
    assert_eq!(kept["source"], json!("manual"));
    assert_eq!(kept["enabled"], json!(false));
    assert_eq!(kept["description"], json!("kept"));
    assert!(admin
        .mapping(&format!("UDP-{}", first.external_port))
        .await
        .is_some());
    // The restored per-host limit (2) applies: 127.0.0.1 holds two already.
    let c = soap_client(&gw).await;
    let mut third = MappingRequest::new(Protocol::Udp, 7300);
    third.any_port = true;
    let err = c.add(&third).await.unwrap_err();
    assert!(
        err.is_upnp(igd_proto::error::ErrorCode::NoPortMapsAvailable),
        "{err}"
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_login_and_carry_the_contract_elements() {
    let state = state_dir("admin", "pages");
    let gw = start(config(&state, free_port(LAN))).await;
    let from = Ipv4Addr::new(127, 0, 0, 61);
    let anonymous = Admin::new(from, gw.port);
    for path in ["/admin/", "/admin/forwarding", "/admin/settings"] {
        let page = anonymous.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.header("location"), Some("/admin/login"), "{path}");
    }
    let bare = anonymous.get("/admin").await;
    assert_eq!(
        (bare.status, bare.header("location")),
        (303, Some("/admin/"))
    );
    let login = anonymous.get("/admin/login").await;
    assert_eq!(login.status, 200);
    let html = login.text();
    for needle in [
        "<form id=\"login\"",
        "name=\"password\" type=\"password\"",
        "class=\"error\"",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    for asset in ["/admin/static/admin.js", "/admin/static/admin.css"] {
        assert_eq!(anonymous.get(asset).await.status, 200, "{asset}");
    }

    // The form login without script: a redirect with the cookie, or the page with the error.
    let port = gw.port;
    let form = |password: &str| {
        let body = format!("password={}", password.replace(' ', "+"));
        async move {
            raw(
                from,
                LAN,
                port,
                "POST",
                "/admin/login",
                &[(
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                )],
                body.as_bytes(),
            )
            .await
        }
    };
    let wrong = form("nope").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("Wrong password."));
    let right = form(PASSWORD).await;
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/admin/"));
    assert!(right
        .header("set-cookie")
        .unwrap()
        .starts_with("plugline_session="));

    let admin = Admin::new(from, gw.port).login().await;
    let csrf = admin.csrf.clone().unwrap();
    let status = admin.get("/admin/").await;
    assert_eq!(status.status, 200);
    let html = status.text();
    for needle in [
        "id=\"wan-address\">127.0.1.1<",
        "id=\"address-kind\">reserved (loopback)<",
        "id=\"boot-id\"",
        "id=\"backend\">relay<",
        "id=\"mapping-count\">0<",
        &format!("<meta name=\"csrf-token\" content=\"{csrf}\">"),
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    let forwarding = admin.get("/admin/forwarding").await.text();
    for needle in [
        "<table id=\"mappings\"",
        "th scope=\"col\" data-sort=\"description\"",
        "id=\"delete-selected\"",
        "id=\"stale-minutes\"",
        "id=\"delete-stale\"",
        "id=\"filter\"",
        "<select id=\"page-size\"",
        "id=\"pager\"",
        "<form id=\"add-static\"",
        "<select name=\"protocol\"",
        "name=\"external_port\"",
        "name=\"internal_client\"",
        "name=\"internal_port\"",
        "name=\"description\"",
        "name=\"lease\"",
        "id=\"add-error\"",
    ] {
        assert!(forwarding.contains(needle), "{needle}");
    }
    let settings = admin.get("/admin/settings").await.text();
    for needle in [
        "<form id=\"settings\"",
        "name=\"secure_mode\" checked",
        "name=\"max_mappings\"",
        "name=\"max_mappings_per_host\"",
        "name=\"max_lease_seconds\"",
        "name=\"upnp_enabled\" checked",
        "id=\"settings-error\"",
    ] {
        assert!(settings.contains(needle), "{needle}");
    }
    assert_eq!(admin.get("/admin/nothing").await.status, 404);
    // The description documents and SOAP are untouched by the admin routes.
    assert_eq!(anonymous.get("/rootDesc.xml").await.status, 200);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_management_serves_only_the_admin_on_the_wan() {
    let state = state_dir("admin", "remote");
    let remote_port = free_port(WAN);
    let gw = start(GatewayConfig {
        remote_admin_port: Some(remote_port),
        ..config(&state, free_port(LAN))
    })
    .await;
    let mut outside = Admin {
        to: WAN,
        ..Admin::new(INTERNET, remote_port)
    };
    assert_eq!(outside.get("/api/status").await.status, 401);
    assert_eq!(outside.login_with("guess").await.status, 401);
    let outside = outside.login().await;
    let status = outside.get("/api/status").await;
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(outside.get("/admin/").await.status, 200);
    for path in ["/rootDesc.xml", "/ctl/IPConn", "/"] {
        assert_eq!(outside.get(path).await.status, 404, "{path}");
    }
    gw.stop().await;

    // Without the setting, nothing listens there.
    let gw = start(config(&state, free_port(LAN))).await;
    assert!(TcpStream::connect((WAN, remote_port)).await.is_err());
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_password_is_stored_hashed_and_kept() {
    let state = state_dir("admin", "generated");
    let gw = start(GatewayConfig {
        admin_password_hash: None,
        ..config(&state, free_port(LAN))
    })
    .await;
    let path = state.join("admin.hash");
    let hash = std::fs::read_to_string(&path).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    gw.stop().await;
    let gw = start(GatewayConfig {
        admin_password_hash: None,
        ..config(&state, free_port(LAN))
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        hash,
        "not regenerated"
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&state);
}
