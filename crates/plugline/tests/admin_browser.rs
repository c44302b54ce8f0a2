//! The web admin (docs/CONTRACTS-ADMIN.md) driven in a real browser: Debian's chromium through
//! chromedriver, both running in the phone namespace, talking to `plugline gateway` (nftables
//! backend) in the gw namespace, while real clients (`upnpc`) and real packets from the wan host
//! check that what the pages show and do is what the gateway does.
//!
//! Screenshots of every page are saved under `<target>/artifacts/screenshots/`; the forwarding
//! page is also copied to `docs/screenshots/forwarding.png` for the README.

use std::fs::File;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use plugline_testing::plugline::{arrives, flow_stops, run, text, udp_pair, OurGateway};
use plugline_testing::{
    find_program, require_homenet, require_programs, ChildGuard, HomeNet, Netns,
};
use serde_json::{json, Value};

const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");
const ROOT_DESC: &str = "http://192.168.0.1:5000/rootDesc.xml";
const ADMIN: &str = "http://192.168.0.1:5000/admin";
/// What the gateway logs once at first start, followed by the generated password.
const PASSWORD_MARKER: &str = "admin password (shown once):";
/// Programs every test here needs besides `ip` and `nft`.
const PROGRAMS: &[&str] = &["chromium", "chromedriver", "upnpc"];
/// Bound on anything the page should do by itself (the table refreshes every second).
const PAGE_WAIT: Duration = Duration::from_secs(5);
/// Bound on a page load or a login.
const LOAD_WAIT: Duration = Duration::from_secs(20);
/// Bound on one whole browser session, so a hung chromedriver fails the test instead of hanging it.
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// The password generated at first start, read from the gateway's log (bounded wait: the
/// gateway listens before or after printing it).
fn admin_password(gw: &OurGateway) -> String {
    let start = Instant::now();
    loop {
        let log = gw.log();
        if let Some(rest) = log.split(PASSWORD_MARKER).nth(1) {
            let pw = rest.split_whitespace().next().unwrap_or("");
            assert!(!pw.is_empty(), "empty admin password in the log:\n{log}");
            return pw.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no `{PASSWORD_MARKER}` line in the gateway log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything a test needs: the home network, the gateway, and chromedriver in the phone
/// namespace. Field order is drop order: chromedriver, then the gateway, then the namespaces
/// (whose drop kills whatever chromium processes are left).
struct Lab {
    _driver: ChildGuard,
    driver_port: u16,
    gw: OurGateway,
    net: HomeNet,
}

impl Lab {
    fn start(test: &str) -> Option<Lab> {
        if !(require_homenet(test) && require_programs(test, PROGRAMS)) {
            return None;
        }
        let net = HomeNet::new().expect("home network");
        let state = OurGateway::state_dir_for(&net).unwrap();
        let gw = OurGateway::start(&net, Path::new(PLUGLINE), state, &["-v"])
            .expect("starting plugline gateway");
        let driver_port = free_port(&net.phone);
        let chromedriver = find_program("chromedriver").expect("checked above");
        let mut cmd = net.phone.command(chromedriver);
        cmd.arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(
                File::create(gw.state_dir().join("chromedriver.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        let driver = net.phone.spawn(cmd).expect("spawning chromedriver");
        net.phone
            .wait_tcp(
                SocketAddr::from(([127, 0, 0, 1], driver_port)),
                Duration::from_secs(10),
            )
            .expect("chromedriver not listening");
        Some(Lab {
            _driver: driver,
            driver_port,
            gw,
            net,
        })
    }

    /// Runs `body` on a thread inside the phone namespace, so that the WebDriver connection (and
    /// every socket the body makes) is there; the body runs its own [`block_on`].
    fn browse<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        self.net.phone.enter(body)
    }

    /// A new browser session with a fresh profile; `phone` emulates a 390×844 phone screen.
    async fn session(&self, phone: bool) -> Client {
        let profile = self
            .gw
            .state_dir()
            .join(format!("profile-{}", if phone { "phone" } else { "desk" }));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut options = json!({
            "binary": find_program("chromium").expect("checked at start"),
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,900",
                // No name lookups: the pages are addressed by IP, and a lookup would wait for
                // the host's resolver, which the closed network never reaches.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 192.168.0.1",
            ],
        });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1.0, "touch": true},
            });
        }
        let Value::Object(caps) = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
        }) else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.driver_port))
            .await
            .unwrap_or_else(|e| panic!("webdriver session: {e}"))
    }

    fn upnpc(&self, args: &[&str]) -> String {
        let mut all = vec!["-u", ROOT_DESC];
        all.extend_from_slice(args);
        text(&run(&self.net.phone, "upnpc", &all))
    }

    /// A UDP listener on the phone at `phone_port` and a sender on the wan host.
    fn udp_pair(&self, phone_port: u16) -> (UdpSocket, UdpSocket) {
        udp_pair(&self.net, phone_port).unwrap()
    }
}

/// A TCP port free on the loopback of `ns` (the namespace is new, so nothing else races for it).
fn free_port(ns: &Netns) -> u16 {
    ns.enter(|| TcpListener::bind(("127.0.0.1", 0)))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `fut` to completion on a current-thread runtime created on the calling thread.
fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(SESSION_LIMIT, fut)
                .await
                .expect("browser session took too long")
        })
}

/// `<target>/artifacts/screenshots`: `CARGO_TARGET_DIR` if set, else the target directory this
/// test binary was built in (the ancestor holding `CACHEDIR.TAG`), else `<repo>/target`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            exe.ancestors()
                .find(|d| d.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("artifacts").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies the forwarding page's screenshot to `docs/screenshots/forwarding.png` (shown in the
/// README) when that file is missing or `PLUGLINE_UPDATE_SCREENSHOTS=1`, so that an ordinary
/// test run does not rewrite a tracked file with a new timestamp in it every time.
fn update_docs_screenshot(png: &Path) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    let target = docs.join("forwarding.png");
    let asked = std::env::var_os("PLUGLINE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1");
    if asked || !target.exists() {
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(png, &target).unwrap();
        eprintln!("updated {}", target.display());
    }
}

/// Saves a screenshot of the current page as `<name>.png` and returns its path.
async fn shoot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot {} ({} bytes)", path.display(), png.len());
    path
}

async fn css(c: &Client, selector: &str) -> Element {
    c.find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
}

async fn css_text(c: &Client, selector: &str) -> String {
    css(c, selector)
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
}

/// Waits (bounded by [`PAGE_WAIT`]) until `selector` matches an element: for what the page
/// should do by itself (a live update, the answer to a form).
async fn wait_for(c: &Client, selector: &str) -> Element {
    wait_within(c, selector, PAGE_WAIT).await
}

/// Waits (bounded by [`LOAD_WAIT`]) until `selector` matches an element: for a page load or a
/// login (a password check on a busy machine can take a while).
async fn wait_load(c: &Client, selector: &str) -> Element {
    wait_within(c, selector, LOAD_WAIT).await
}

/// Waits until `selector` matches an element, at most `bound`; on failure saves a screenshot
/// (`failed-wait.png`) for the artifacts before panicking.
async fn wait_within(c: &Client, selector: &str, bound: Duration) -> Element {
    match c
        .wait()
        .at_most(bound)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(selector))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = c.current_url().await.map(|u| u.to_string());
            let _ = c
                .screenshot()
                .await
                .map(|png| std::fs::write(screenshot_dir().join("failed-wait.png"), png));
            panic!("{selector} did not appear within {bound:?} (page {url:?}): {e}");
        }
    }
}

/// Waits (bounded by [`PAGE_WAIT`]) until `selector` matches nothing.
async fn wait_gone(c: &Client, selector: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < PAGE_WAIT {
        if c.find_all(Locator::Css(selector)).await.unwrap().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits (at most `bound`) until the element `selector` shows some text other than `before`,
/// and returns it.
async fn wait_new_text(c: &Client, selector: &str, before: &str, bound: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(selector)).await {
            if let Ok(t) = e.text().await {
                if !t.trim().is_empty() && t != before {
                    return t;
                }
            }
        }
        assert!(
            start.elapsed() < bound,
            "{selector} shows no (new) text within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most `bound`) until the element `selector` shows some text, and returns it.
async fn wait_text(c: &Client, selector: &str, bound: Duration) -> String {
    wait_new_text(c, selector, "", bound).await
}

/// Accepts a `confirm()` the page may open for a destructive action (none is fine too).
async fn accept_confirm(c: &Client) {
    for _ in 0..10 {
        if c.accept_alert().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fills in the login form and submits it.
async fn submit_login(c: &Client, password: &str) {
    c.goto(&format!("{ADMIN}/login")).await.unwrap();
    let field = css(c, "form#login input[name=password]").await;
    field.send_keys(password).await.unwrap();
    css(c, "form#login [type=submit], form#login button")
        .await
        .click()
        .await
        .unwrap();
}

/// Logs in and waits for the status page.
async fn login(c: &Client, password: &str) {
    submit_login(c, password).await;
    wait_load(c, "#wan-address").await;
}

async fn session_cookie(c: &Client) -> Option<String> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name() == "plugline_session")
        .map(|k| k.value().to_string())
}

/// `fetch()` from the page, returning the HTTP status (or the error text).
async fn page_fetch(c: &Client, url: &str, init: Value) -> Value {
    c.execute_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0], arguments[1])
           .then(r => done(r.status))
           .catch(e => done(String(e)));",
        vec![json!(url), init],
    )
    .await
    .unwrap()
}

/// Fills the add-static form (clearing each field first) and submits it.
async fn add_static(c: &Client, proto: &str, ext: &str, client: &str, int: &str, desc: &str) {
    let form = "form#add-static";
    css(c, &format!("{form} select[name=protocol]"))
        .await
        .select_by_value(proto)
        .await
        .unwrap_or_else(|e| panic!("protocol {proto}: {e}"));
    for (name, value) in [
        ("external_port", ext),
        ("internal_client", client),
        ("internal_port", int),
        ("description", desc),
        ("lease", "0"),
    ] {
        let field = css(c, &format!("{form} input[name={name}]")).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    css(c, &format!("{form} [type=submit], {form} button"))
        .await
        .click()
        .await
        .unwrap();
}

#[test]
fn wrong_password_is_refused_then_login_shows_status_and_settings() {
    let Some(lab) = Lab::start("wrong_password_is_refused_then_login_shows_status_and_settings")
    else {
        return;
    };
    let password = admin_password(&lab.gw);
    lab.browse(|| {
        block_on(async {
            let c = lab.session(false).await;

            // Not logged in: a page sends us to the login form.
            c.goto(&format!("{ADMIN}/")).await.unwrap();
            wait_load(&c, "form#login").await;
            assert!(
                c.current_url()
                    .await
                    .unwrap()
                    .path()
                    .ends_with("/admin/login"),
                "{}",
                c.current_url().await.unwrap()
            );
            shoot(&c, "login").await;

            // (a) A wrong password: an error, and no session.
            submit_login(&c, "not-the-password").await;
            let error = wait_text(&c, ".error", LOAD_WAIT).await;
            eprintln!("wrong password error: {error:?}");
            shoot(&c, "login-wrong-password").await;
            assert_eq!(
                session_cookie(&c).await,
                None,
                "session after a wrong password"
            );
            c.goto(&format!("{ADMIN}/")).await.unwrap();
            wait_load(&c, "form#login").await;
            assert!(c.find(Locator::Css("#wan-address")).await.is_err());
            let status = page_fetch(&c, "/api/status", json!({})).await;
            assert_eq!(status, json!(401), "/api/status after a wrong password");

            // (b) The right one: the status page.
            login(&c, &password).await;
            assert!(session_cookie(&c).await.is_some(), "no session cookie");
            let wan = css_text(&c, "#wan-address").await;
            assert!(wan.contains("203.0.113.1"), "#wan-address: {wan:?}");
            let kind = css_text(&c, "#address-kind").await;
            assert!(
                kind.to_lowercase().contains("reserved"),
                "#address-kind: {kind:?}"
            );
            let backend = css_text(&c, "#backend").await;
            assert!(backend.contains("nftables"), "#backend: {backend:?}");
            assert!(!css_text(&c, "#boot-id").await.trim().is_empty());
            css(&c, "#mapping-count").await;
            shoot(&c, "status").await;

            c.goto(&format!("{ADMIN}/settings")).await.unwrap();
            wait_load(&c, "form#settings").await;
            for name in [
                "secure_mode",
                "max_mappings",
                "max_mappings_per_host",
                "max_lease_seconds",
                "upnp_enabled",
            ] {
                css(&c, &format!("form#settings [name={name}]")).await;
            }
            shoot(&c, "settings").await;
            c.close().await.unwrap();
        })
    });
}

#[test]
fn upnpc_mapping_appears_live_and_delete_in_the_page_stops_forwarding() {
    let Some(lab) =
        Lab::start("upnpc_mapping_appears_live_and_delete_in_the_page_stops_forwarding")
    else {
        return;
    };
    let password = admin_password(&lab.gw);
    let (phone, wan) = lab.udp_pair(5060);
    lab.browse(|| {
        block_on(async {
            let c = lab.session(false).await;
            login(&c, &password).await;
            c.goto(&format!("{ADMIN}/forwarding")).await.unwrap();
            wait_load(&c, "table#mappings").await;
            let row = r#"tr[data-key="UDP-42000"]"#;
            assert!(c.find(Locator::Css(row)).await.is_err(), "row before upnpc");

            // (c) A mapping made by a real client appears without a reload.
            let out = lab.upnpc(&[
                "-e",
                "SIP phone",
                "-a",
                "192.168.0.91",
                "5060",
                "42000",
                "UDP",
                "600",
            ]);
            assert!(out.contains("is redirected"), "{out}\n{}", lab.gw.log());
            let added = Instant::now();
            wait_for(&c, row).await;
            eprintln!("row appeared {:?} after upnpc returned", added.elapsed());
            assert!(
                arrives(&phone, &wan, 42000, b"before"),
                "no forwarding\n{}",
                lab.gw.log()
            );
            let cells = css_text(&c, row).await;
            assert!(
                cells.contains("SIP phone") && cells.contains("192.168.0.91"),
                "{cells}"
            );

            // More rows for the screenshot, one of them with a hostile description (added with
            // the page's form: miniupnpc sends its description into the SOAP XML unescaped).
            let hostile = "<img src=x onerror=alert(1)>";
            add_static(&c, "TCP", "42443", "192.168.0.91", "8443", hostile).await;
            let out = lab.upnpc(&[
                "-e",
                "game",
                "-a",
                "192.168.0.91",
                "3074",
                "43074",
                "UDP",
                "0",
            ]);
            assert!(out.contains("is redirected"), "{out}");
            wait_for(&c, r#"tr[data-key="TCP-42443"]"#).await;
            wait_for(&c, r#"tr[data-key="UDP-43074"]"#).await;
            let hostile_row = css_text(&c, r#"tr[data-key="TCP-42443"]"#).await;
            assert!(
                hostile_row.contains(hostile),
                "description not shown as text: {hostile_row}"
            );
            assert!(
                c.get_alert_text().await.is_err(),
                "the description ran as HTML"
            );
            assert!(
                c.find(Locator::Css(r#"tr[data-key="TCP-42443"] img"#))
                    .await
                    .is_err(),
                "the description became an element"
            );

            // The remaining lease counts down in the page.
            let lease = |c: &Client| {
                let c = c.clone();
                async move { css_text(&c, &format!("{row} .lease")).await }
            };
            let first = lease(&c).await;
            tokio::time::sleep(Duration::from_millis(2100)).await;
            let second = lease(&c).await;
            assert_ne!(first, second, "lease does not count down");

            let forwarding = shoot(&c, "forwarding").await;
            update_docs_screenshot(&forwarding);

            // Delete it in the page.
            css(&c, &format!("{row} button.delete"))
                .await
                .click()
                .await
                .unwrap();
            accept_confirm(&c).await;
            assert!(wait_gone(&c, row).await, "row still shown after delete");
            let list = lab.upnpc(&["-l"]);
            assert!(!list.contains("42000"), "upnpc -l still lists it:\n{list}");
            assert!(list.contains("42443"), "other mappings went too:\n{list}");
            assert!(
                flow_stops(&phone, &wan, 42000, Duration::from_millis(500)),
                "still forwarded after the delete in the page"
            );
            c.close().await.unwrap();

            // The same page on a phone-sized screen.
            let p = lab.session(true).await;
            login(&p, &password).await;
            p.goto(&format!("{ADMIN}/forwarding")).await.unwrap();
            wait_load(&p, r#"tr[data-key="UDP-43074"]"#).await;
            let width: Value = p
                .execute("return window.innerWidth;", vec![])
                .await
                .unwrap();
            assert_eq!(width, json!(390), "phone emulation");
            shoot(&p, "forwarding-phone").await;
            p.close().await.unwrap();
        })
    });
}

#[test]
fn static_forward_from_the_form_forwards_and_changes_need_the_csrf_token() {
    let Some(lab) =
        Lab::start("static_forward_from_the_form_forwards_and_changes_need_the_csrf_token")
    else {
        return;
    };
    let password = admin_password(&lab.gw);
    let (phone, wan) = lab.udp_pair(5100);
    lab.browse(|| {
        block_on(async {
            let c = lab.session(false).await;
            login(&c, &password).await;
            c.goto(&format!("{ADMIN}/forwarding")).await.unwrap();
            wait_load(&c, "form#add-static").await;

            // (d) A static forward from the form.
            let row = r#"tr[data-key="UDP-42100"]"#;
            add_static(&c, "UDP", "42100", "192.168.0.91", "5100", "static test").await;
            wait_for(&c, row).await;
            let list = lab.upnpc(&["-l"]);
            assert!(list.contains("UDP 42100->192.168.0.91:5100"), "{list}");
            assert!(
                arrives(&phone, &wan, 42100, b"static"),
                "static forward does not forward\n{}",
                lab.gw.log()
            );

            // Bad input the server refuses, each with a clear error under the form: a port out
            // of range, then a client outside the LAN.
            add_static(&c, "UDP", "70000", "192.168.0.91", "5100", "too big").await;
            let error = wait_text(&c, "#add-error", PAGE_WAIT).await;
            eprintln!("external port 70000 refused: {error:?}");
            assert!(error.contains("external"), "#add-error: {error:?}");
            add_static(&c, "UDP", "42101", "10.9.9.9", "5100", "outside").await;
            let error = wait_new_text(&c, "#add-error", &error, PAGE_WAIT).await;
            eprintln!("outside-LAN client refused: {error:?}");
            assert!(error.contains("10.9.9.9"), "#add-error: {error:?}");
            c.execute(
                "document.getElementById('add-error').scrollIntoView({block: 'center'});",
                vec![],
            )
            .await
            .unwrap();
            shoot(&c, "forwarding-add-error").await;
            assert!(c
                .find(Locator::Css(r#"tr[data-key="UDP-42101"]"#))
                .await
                .is_err());
            assert!(!lab.upnpc(&["-l"]).contains("42101"));

            // (e) A change without the CSRF token is refused, even with the session cookie.
            let url = "/api/mappings/UDP/42100";
            let status = page_fetch(&c, url, json!({"method": "DELETE"})).await;
            assert_eq!(status, json!(403), "DELETE without X-CSRF-Token");
            let status = page_fetch(
                &c,
                url,
                json!({"method": "DELETE", "headers": {"X-CSRF-Token": "forged"}}),
            )
            .await;
            assert_eq!(status, json!(403), "DELETE with a wrong X-CSRF-Token");
            assert!(
                lab.upnpc(&["-l"]).contains("42100"),
                "mapping deleted without the token"
            );
            assert!(c.find(Locator::Css(row)).await.is_ok());
            assert!(arrives(&phone, &wan, 42100, b"still"), "forwarding stopped");

            // Control: the same request with the page's token goes through.
            let token: Value = c
                .execute(
                    "return document.querySelector('meta[name=csrf-token]').content;",
                    vec![],
                )
                .await
                .unwrap();
            let status = page_fetch(
                &c,
                url,
                json!({"method": "DELETE", "headers": {"X-CSRF-Token": token}}),
            )
            .await;
            assert_eq!(status, json!(204), "DELETE with the token");
            assert!(wait_gone(&c, row).await);
            assert!(!lab.upnpc(&["-l"]).contains("42100"));
            c.close().await.unwrap();
        })
    });
}
