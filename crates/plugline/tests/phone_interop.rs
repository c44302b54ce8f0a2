//! `plugline phone` end to end in the namespace home network: kamailio on the wan host (digest
//! auth for km, NAT fix-ups off, so only a correct public Contact is reachable), our gateway
//! (nftables backend) or miniupnpd in gw, our phone on the phone host.
//!
//! Each test needs root, `ip`, `nft`, kamailio/kamcmd and the named clients; without them it
//! prints why and skips (and fails under `PLUGLINE_REQUIRE_PEERS=1`). Every wait is bounded and
//! every process runs in a guard.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use plugline_testing::kamailio::{self, Kamailio};
use plugline_testing::miniupnpd::{self, Miniupnpd};
use plugline_testing::plugline::OurGateway;
use plugline_testing::{
    require_homenet, require_programs, ChildGuard, HomeNet, GW_WAN_IP, PHONE_IP,
};
use serde_json::Value;

const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");
const URL: &str = "http://192.168.0.1:5000/rootDesc.xml";
const INSTANCE: &str = "km-test";
const STATUS_PORT: u16 = 80;
/// Bound for the phone's first registration.
const REGISTER_WITHIN: Duration = Duration::from_secs(10);
/// The bound for re-mapping and re-registering after a gateway reboot.
const REMAP_WITHIN: Duration = Duration::from_secs(5);

fn wait_until<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Our gateway in gw.

fn start_gateway(net: &HomeNet) -> OurGateway {
    let state = OurGateway::state_dir_for(net).unwrap();
    OurGateway::start(net, Path::new(PLUGLINE), state, &[]).expect("starting plugline gateway")
}

// ---------------------------------------------------------------------------------------------
// Our phone on the phone host.

struct Phone {
    guard: Option<ChildGuard>,
    dir: PathBuf,
    started: Instant,
}

impl Phone {
    /// Starts `plugline phone` for `account` with `password`; `extra` TOML lines go into its
    /// config file.
    fn start(net: &HomeNet, account: &str, password: &str, extra: &str) -> Phone {
        let dir = std::env::temp_dir().join(format!("pl-{}-phone", net.id));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("password"), format!("{password}\n")).unwrap();
        std::fs::write(
            dir.join("phone.toml"),
            format!("instance = \"{INSTANCE}\"\nexternal_check_seconds = 5\n{extra}\n"),
        )
        .unwrap();
        let mut phone = Phone {
            guard: None,
            dir,
            started: Instant::now(),
        };
        phone.spawn(net, account);
        phone
    }

    fn spawn(&mut self, net: &HomeNet, account: &str) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("phone.log"))
            .unwrap();
        let mut cmd = net.phone.command(PLUGLINE);
        cmd.arg("phone")
            .arg("--config")
            .arg(self.dir.join("phone.toml"))
            .args(["--account", account, "--registrar", "203.0.113.10"])
            .arg("--password-file")
            .arg(self.dir.join("password"))
            .args(["--sip-port", "5060", "--rtp-ports", "10000-10003"])
            .stdout(Stdio::null())
            .stderr(log);
        self.started = Instant::now();
        self.guard = Some(net.phone.spawn(cmd).expect("spawning plugline phone"));
        net.phone
            .wait_tcp(
                SocketAddr::from((PHONE_IP, STATUS_PORT)),
                Duration::from_secs(5),
            )
            .unwrap_or_else(|e| panic!("phone status page not up: {e}\n{}", self.log()));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("phone.log")).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// SIGTERM; asserts a clean exit.
    fn stop(&mut self) {
        if let Some(g) = self.guard.take() {
            let status = g.stop().expect("stopping the phone");
            assert!(status.success(), "phone exit {status:?}\n{}", self.log());
        }
    }

    /// SIGKILL: no unregister, no deletion (a crash or power cut).
    fn kill(&mut self) {
        if let Some(mut g) = self.guard.take() {
            let _ = g.child().kill();
            let _ = g.child().wait();
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        drop(self.guard.take());
        if std::thread::panicking() {
            eprintln!("phone log ({}):\n{}", self.dir.display(), self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET `path` from the phone's status page, from inside the phone namespace.
fn http_get(net: &HomeNet, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {PHONE_IP}\r\nConnection: close\r\n\r\n");
    net.phone.enter(move || {
        let mut stream = TcpStream::connect_timeout(
            &SocketAddr::from((PHONE_IP, STATUS_PORT)),
            Duration::from_secs(2),
        )
        .expect("connecting to the status page");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
}

fn status(net: &HomeNet) -> Value {
    let answer = http_get(net, "/api/status");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn kamailio_start(net: &HomeNet) -> Kamailio {
    Kamailio::start(net, kamailio::Options::default()).expect("kamailio")
}

/// The contact of `user` at 203.0.113.1, once there is one.
fn public_contact(kam: &Kamailio, user: &str) -> Option<kamailio::Contact> {
    kam.contacts(user)
        .ok()?
        .into_iter()
        .find(|c| c.address.contains(&format!("@{GW_WAN_IP}:")))
}

fn contact_port(contact: &kamailio::Contact) -> u16 {
    let after = contact
        .address
        .split_once(&format!("@{GW_WAN_IP}:"))
        .unwrap()
        .1;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// Waits for the phone's registration at 203.0.113.1, prints the start → 200 OK time.
fn registered(kam: &Kamailio, phone: &Phone, net: &HomeNet, what: &str) -> kamailio::Contact {
    let contact = wait_until(REGISTER_WITHIN, || public_contact(kam, "km")).unwrap_or_else(|| {
        panic!(
            "km not registered at {GW_WAN_IP}: {:?}\n{}",
            kam.contacts("km"),
            kam.log()
        )
    });
    let seen = phone.started.elapsed();
    let s = status(net);
    println!(
        "{what}: start -> 200 OK {} ms (phone's own count), contact seen by kamcmd after {} ms: {}",
        s["registration"]["first_registered_after_ms"],
        seen.as_millis(),
        contact.address
    );
    contact
}

/// `upnpc -l` lines of this phone's instance, as (external port, line).
fn phone_mappings(net: &HomeNet) -> Vec<(u16, String)> {
    let out = net
        .phone
        .command("upnpc")
        .args(["-u", URL, "-l"])
        .output()
        .expect("upnpc");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| l.contains(&format!("'plugline-phone {INSTANCE} ")))
        .map(|l| {
            // ` 0 UDP  5060->192.168.0.91:5060  'plugline-phone km-test sip' '' 3600`
            let port = l
                .split_whitespace()
                .nth(2)
                .and_then(|m| m.split("->").next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            (port, l.to_owned())
        })
        .collect()
}

fn check_registered_and_reachable(net: &HomeNet, kam: &Kamailio, phone: &Phone, what: &str) {
    let contact = registered(kam, phone, net, what);
    let port = contact_port(&contact);
    assert_eq!(contact.address, format!("sip:km@{GW_WAN_IP}:{port}"));

    // An OPTIONS from the wan host to that contact reaches the phone through the mapping.
    let target = format!("sip:km@{GW_WAN_IP}:{port}");
    let outcome = kamailio::sipp_options(&net.wan, &target, SocketAddr::from((GW_WAN_IP, port)))
        .expect("sipp");
    assert!(
        outcome.got_200,
        "no 200 from the phone: {:?}\n{}\n{}",
        outcome.responses,
        outcome.messages,
        phone.log()
    );
    assert!(
        outcome.messages.contains("User-Agent: Plugline")
            || outcome.messages.contains("Allow: ACK, OPTIONS, MESSAGE"),
        "{}",
        outcome.messages
    );

    let s = wait_until(Duration::from_secs(5), || {
        let s = status(net);
        (s["mappings"].as_array()?.len() == 5).then_some(s)
    })
    .unwrap_or_else(|| status(net));
    assert_eq!(s["registration"]["state"], "registered", "{s:#}");
    assert_eq!(
        s["nat"]["public_address"],
        format!("{GW_WAN_IP}:{port}"),
        "{s:#}"
    );
    assert_eq!(s["nat"]["mode"], "upnp");
    assert_eq!(s["mappings"].as_array().unwrap().len(), 5, "{s:#}");
    assert!(s["registration"]["expires_in_seconds"].as_u64().unwrap() > 60);
    let log = s["log"].to_string();
    assert!(
        log.contains(&format!("UPnP: Found mapped address {GW_WAN_IP}")),
        "{log}"
    );
    assert!(log.contains("OPTIONS from"), "{log}");
    assert!(s["messages"].to_string().contains("SIP/2.0 200 OK"));
    let page = http_get(net, "/");
    assert!(page.contains("<td id=\"state\">registered</td>"), "{page}");
    assert!(page.contains(&format!("{GW_WAN_IP}:{port}")));
}

// ---------------------------------------------------------------------------------------------

#[test]
fn phone_registers_through_plugline_gateway_and_answers_options() {
    let test = "phone_registers_through_plugline_gateway_and_answers_options";
    if !(require_homenet(test) && require_programs(test, &["kamailio", "kamcmd", "sipp", "upnpc"]))
    {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let _gw = start_gateway(&net);
    let kam = kamailio_start(&net);
    let phone = Phone::start(&net, "sip:km@example.net", "secret", "");
    check_registered_and_reachable(&net, &kam, &phone, "plugline gateway");
    // The gateway's table holds the five mappings, described with the instance.
    let mine = phone_mappings(&net);
    assert_eq!(mine.len(), 5, "{mine:?}");
    assert!(mine
        .iter()
        .any(|(_, l)| l.contains("'plugline-phone km-test sip'")));
}

#[test]
fn phone_registers_through_miniupnpd_and_answers_options() {
    let test = "phone_registers_through_miniupnpd_and_answers_options";
    if !(require_homenet(test)
        && require_programs(test, &["kamailio", "kamcmd", "sipp", "miniupnpd", "upnpc"]))
    {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let _mini = Miniupnpd::start(&net, miniupnpd::Options::default()).expect("miniupnpd");
    let kam = kamailio_start(&net);
    let phone = Phone::start(&net, "sip:km@example.net", "secret", "");
    check_registered_and_reachable(&net, &kam, &phone, "miniupnpd");
    assert_eq!(phone_mappings(&net).len(), 5);
}

#[test]
fn gateway_restart_with_state_wiped_is_remapped_and_reregistered_within_5_s() {
    let test = "gateway_restart_with_state_wiped_is_remapped_and_reregistered_within_5_s";
    if !(require_homenet(test) && require_programs(test, &["kamailio", "kamcmd", "sipp", "upnpc"]))
    {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let mut gw = start_gateway(&net);
    let kam = kamailio_start(&net);
    let phone = Phone::start(&net, "sip:km@example.net", "secret", "");
    let before = registered(&kam, &phone, &net, "before the gateway restart");
    let s = status(&net);
    let registrations = s["registration"]["registrations"].as_u64().unwrap();

    gw.stop().expect("stopping the gateway");
    std::fs::remove_dir_all(gw.state_dir()).unwrap();
    std::fs::create_dir_all(gw.state_dir()).unwrap();
    assert!(phone_mappings(&net).is_empty(), "state was not wiped");
    let restart = Instant::now();
    gw.restart(&net).expect("restarting plugline gateway");
    let listening = Instant::now();

    let again = wait_until(REMAP_WITHIN, || {
        let s = status(&net);
        let fresh = s["registration"]["registrations"].as_u64()? > registrations
            && s["nat"]["remaps"].as_u64()? >= 1
            && s["registration"]["state"] == "registered";
        let contact = public_contact(&kam, "km")?;
        (fresh && contact.cseq? > before.cseq?).then_some((contact, s))
    });
    let elapsed = restart.elapsed();
    let since_listening = listening.elapsed();
    let Some((contact, s)) = again else {
        panic!(
            "no re-registration within {REMAP_WITHIN:?} of the gateway restart: {:?}\n{:#}\n{}",
            kam.contacts("km"),
            status(&net),
            gw.log()
        );
    };
    println!(
        "gateway restart (state wiped) -> re-mapped and re-registered in {} ms ({} ms after the gateway listened; CSeq {:?} -> {:?}, remap reason {})",
        elapsed.as_millis(),
        since_listening.as_millis(),
        before.cseq,
        contact.cseq,
        s["nat"]["last_problem"]
    );
    assert_eq!(phone_mappings(&net).len(), 5, "mappings not restored");
    // Reachable again through the new mapping.
    let port = contact_port(&contact);
    let outcome = kamailio::sipp_options(
        &net.wan,
        &format!("sip:km@{GW_WAN_IP}:{port}"),
        SocketAddr::from((GW_WAN_IP, port)),
    )
    .expect("sipp");
    assert!(outcome.got_200, "{:?}\n{}", outcome.responses, phone.log());
}

#[test]
fn phone_restart_leaves_no_stale_mappings_and_shutdown_cleans_up() {
    let test = "phone_restart_leaves_no_stale_mappings_and_shutdown_cleans_up";
    if !(require_homenet(test) && require_programs(test, &["kamailio", "kamcmd", "upnpc"])) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let _gw = start_gateway(&net);
    let kam = kamailio_start(&net);
    let mut phone = Phone::start(&net, "sip:km@example.net", "secret", "");
    registered(&kam, &phone, &net, "first run");
    assert_eq!(phone_mappings(&net).len(), 5);

    // A crash leaves the mappings; an earlier run on another port left one more.
    phone.kill();
    let out = net
        .phone
        .command("upnpc")
        .args(["-u", URL, "-e", &format!("plugline-phone {INSTANCE} sip")])
        .args(["-a", &PHONE_IP.to_string(), "5070", "61000", "UDP", "3600"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stale = phone_mappings(&net);
    assert_eq!(stale.len(), 6, "{stale:?}");

    kam.remove_contacts("km").unwrap();
    phone.spawn(&net, "sip:km@example.net");
    registered(&kam, &phone, &net, "after restart");
    // The RTP ports are mapped right after the SIP port (and the REGISTER): wait for all five.
    let s = wait_until(Duration::from_secs(5), || {
        let s = status(&net);
        (s["mappings"].as_array()?.len() == 5).then_some(s)
    })
    .expect("five mappings");
    let mut current: Vec<u16> = s["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["external_port"].as_u64().unwrap() as u16)
        .collect();
    current.sort_unstable();
    let mut listed: Vec<u16> = phone_mappings(&net).into_iter().map(|(p, _)| p).collect();
    listed.sort_unstable();
    assert_eq!(listed, current, "gateway table vs the phone's own mappings");
    assert!(!listed.contains(&61000), "stale mapping kept");
    assert!(
        phone.log().contains("removed stale mapping UDP 61000"),
        "{}",
        phone.log()
    );

    // Clean shutdown: unregistered at kamailio, every mapping gone.
    let stopping = Instant::now();
    phone.stop();
    println!("phone shutdown took {} ms", stopping.elapsed().as_millis());
    assert!(
        phone_mappings(&net).is_empty(),
        "{:?}",
        phone_mappings(&net)
    );
    let contacts = kam.contacts("km").unwrap();
    assert!(contacts.is_empty(), "still registered: {contacts:?}");
    assert!(phone.log().contains("SIP: unregistered"), "{}", phone.log());
}

#[test]
fn wrong_password_and_unknown_user_give_clear_errors_and_retries() {
    let test = "wrong_password_and_unknown_user_give_clear_errors_and_retries";
    if !(require_homenet(test) && require_programs(test, &["kamailio", "kamcmd"])) {
        return;
    }
    let net = HomeNet::new().expect("home network");
    let _gw = start_gateway(&net);
    let kam = kamailio_start(&net);
    let retries = "retry_initial_seconds = 1\nretry_max_seconds = 4";
    let mut phone = Phone::start(&net, "sip:km@example.net", "wrong", retries);
    let failures = |phone: &Phone| {
        phone
            .log()
            .lines()
            .filter(|l| l.contains("REGISTER refused") && l.contains("wrong username or password"))
            .count()
    };
    let seen = wait_until(Duration::from_secs(8), || {
        (failures(&phone) >= 3).then_some(())
    });
    assert!(seen.is_some(), "no repeated clear error:\n{}", phone.log());
    assert!(phone.is_running(), "the phone stopped:\n{}", phone.log());
    let log = phone.log();
    let line = log
        .lines()
        .find(|l| l.contains("REGISTER refused"))
        .unwrap();
    println!("wrong password: {line}");
    assert!(
        line.contains("401") && line.contains("trying again in"),
        "{line}"
    );
    assert!(log.contains("trying again in 2 s"), "no back-off:\n{log}");
    let s = status(&net);
    assert_eq!(s["registration"]["state"], "waiting to retry", "{s:#}");
    assert!(s["registration"]["last_error"]
        .as_str()
        .unwrap()
        .contains("401"));
    assert!(kam.contacts("km").unwrap().is_empty());
    phone.stop();
    drop(phone);

    // An account the registrar does not know: 403.
    let mut phone = Phone::start(&net, "sip:eve@example.net", "secret", retries);
    let forbidden = wait_until(Duration::from_secs(5), || {
        phone
            .log()
            .lines()
            .find(|l| l.contains("REGISTER refused") && l.contains("403"))
            .map(str::to_owned)
    });
    let Some(line) = forbidden else {
        panic!("no 403 error:\n{}", phone.log());
    };
    println!("unknown user: {line}");
    assert!(phone.is_running());
    phone.stop();
}

#[test]
fn without_a_gateway_the_phone_falls_back_to_rport() {
    let test = "without_a_gateway_the_phone_falls_back_to_rport";
    if !(require_homenet(test) && require_programs(test, &["kamailio", "kamcmd"])) {
        return;
    }
    // No UPnP gateway: only the masquerading NAT of gw.
    let net = HomeNet::new().expect("home network");
    let kam = kamailio_start(&net);
    let phone = Phone::start(
        &net,
        "sip:km@example.net",
        "secret",
        "discovery_timeout_ms = 300",
    );
    // First REGISTER from the LAN address; the registrar's received/rport tell the public
    // address, which is registered next.
    let contact = registered(&kam, &phone, &net, "no gateway (rport)");
    let s = status(&net);
    assert_eq!(s["nat"]["mode"], "no gateway", "{s:#}");
    assert_eq!(s["registration"]["state"], "registered", "{s:#}");
    assert_eq!(
        s["nat"]["public_address"],
        format!("{GW_WAN_IP}:{}", contact_port(&contact))
    );
    assert!(s["mappings"].as_array().unwrap().is_empty());
    let log = phone.log();
    assert!(log.contains("falling back to rport"), "{log}");
    assert!(
        log.contains("the registrar sees us at 203.0.113.1:"),
        "{log}"
    );
}

#[test]
fn bad_account_syntax_is_a_clear_message_not_a_crash() {
    // No namespace needed: the configuration is checked before anything is opened.
    for (account, needle) in [
        ("km@example.net", "the sip: scheme is missing"),
        ("sip:example.net", "no user part"),
        ("sips:km@example.net", "TLS"),
    ] {
        let out = std::process::Command::new(PLUGLINE)
            .args(["phone", "--account", account, "--status-port", "0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{account}: {stderr}");
        assert!(
            stderr.contains("plugline: invalid setting account:") && stderr.contains(needle),
            "{account}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
