//! kamailio as registrar (and proxy) on the wan host, driven by sipsak and SIPp. Needs root,
//! kamailio, kamcmd, sipp and sipsak (skips otherwise, failing under PLUGLINE_REQUIRE_PEERS=1).

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::process::{Output, Stdio};
use std::thread;
use std::time::Duration;

use plugline_testing::kamailio::{
    sipp_options, sipp_register, sipp_scenario, sipsak_options, sipsak_register, Kamailio, Options,
    Registration,
};
use plugline_testing::{
    require_homenet, require_programs, stopped_cleanly, unique_id, HomeNet, WAN_IP,
};

fn ready(test: &str) -> bool {
    require_homenet(test) && require_programs(test, &["kamailio", "kamcmd", "sipp", "sipsak"])
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn host_console_untouched() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/dev/console")),
        "/dev/console is mounted over in the host mount namespace"
    );
}

fn snom_registration(password: &str) -> Registration {
    Registration {
        user: "km".into(),
        password: password.into(),
        domain: "example.net".into(),
        contact: "<sip:km@192.168.0.91:5060;transport=udp?Route=sip:203.0.113.1:60123>".into(),
        expires: 600,
    }
}

#[test]
fn kamailio_starts_in_the_wan_namespace() {
    if !ready("kamailio_starts_in_the_wan_namespace") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let kam = Kamailio::start(&net, Options::default()).unwrap();
    assert_eq!(kam.registrar_addr(), "203.0.113.10:5060".parse().unwrap());

    let pid = kam.pid().unwrap();
    let proc_ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
    let wan_ns = std::fs::metadata(net.wan.path()).unwrap();
    assert_eq!(
        proc_ns.ino(),
        wan_ns.ino(),
        "kamailio is not in {}",
        net.wan.name()
    );
    assert!(kam.kamcmd(&["core.version"]).unwrap().contains("kamailio"));
    host_console_untouched();

    let out = sipsak_options(&net.wan, "sip:203.0.113.10", "203.0.113.10:5060").unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let sipp = sipp_options(&net.wan, "sip:203.0.113.10", kam.registrar_addr()).unwrap();
    assert!(sipp.got_200, "{sipp:?}\n--- log ---\n{}", kam.log());
    assert_eq!(sipp.final_status(), Some(200));

    // The domain is an alias: OPTIONS to sip:example.net is for kamailio itself.
    let sipp = sipp_options(&net.wan, "sip:example.net", kam.registrar_addr()).unwrap();
    assert!(sipp.got_200, "{sipp:?}");

    // Registrar only: a request for a user is not routed.
    let sipp = sipp_options(&net.wan, "sip:km@example.net", kam.registrar_addr()).unwrap();
    assert!(!sipp.got_200);
    assert_eq!(sipp.final_status(), Some(404), "{sipp:?}");

    // From the phone, through the gateway's NAT.
    let sipp = sipp_options(&net.phone, "sip:203.0.113.10", kam.registrar_addr()).unwrap();
    assert!(sipp.got_200, "{sipp:?}");
    assert!(kam.log().contains("from 203.0.113.1:"), "{}", kam.log());
}

#[test]
fn sipsak_register_from_wan_is_stored() {
    if !ready("sipsak_register_from_wan_is_stored") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let kam = Kamailio::start(&net, Options::default()).unwrap();
    assert!(kam.contacts("km").unwrap().is_empty());

    let out = sipsak_register(
        &net.wan,
        "km",
        "secret",
        "sip:km@203.0.113.10:5099",
        kam.registrar_addr(),
        600,
    )
    .unwrap();
    let out_text = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{out_text}\n--- log ---\n{}",
        kam.log()
    );
    assert!(out_text.contains("SIP/2.0 401"), "{out_text}");
    assert!(out_text.contains("SIP/2.0 200"), "{out_text}");

    let contacts = kam.contacts("km").unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert_eq!(c.address, "sip:km@203.0.113.10:5099");
    assert!(c.expires.is_some_and(|e| e > 590 && e <= 600), "{c:?}");
    assert_eq!(c.received, None, "no NAT fix-ups");
    assert_eq!(c.user_agent.as_deref(), Some("sipsak 0.9.8.1"));
    assert_eq!(c.cseq, Some(2));
    assert!(c.call_id.is_some());
    assert!(kam.contacts("bob").unwrap().is_empty());
    let all = kam.all_contacts().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "km");

    // bob with his own password, then removal through kamcmd.
    let out = sipsak_register(
        &net.wan,
        "bob",
        "secret",
        "sip:bob@203.0.113.10:5098",
        kam.registrar_addr(),
        60,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(kam.contacts("bob").unwrap().len(), 1);
    kam.remove_contacts("bob").unwrap();
    assert!(kam.contacts("bob").unwrap().is_empty());
    assert_eq!(kam.contacts("km").unwrap().len(), 1);
}

#[test]
fn wrong_password_or_unknown_user_is_not_registered() {
    if !ready("wrong_password_or_unknown_user_is_not_registered") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let kam = Kamailio::start(&net, Options::default()).unwrap();
    let registrar = kam.registrar_addr();

    let out = sipsak_register(
        &net.wan,
        "km",
        "wrong",
        "sip:km@203.0.113.10:5099",
        registrar,
        600,
    )
    .unwrap();
    let out_text = text(&out);
    assert_ne!(out.status.code(), Some(0), "{out_text}");
    assert!(out_text.contains("SIP/2.0 401"), "{out_text}");
    assert!(!out_text.contains("SIP/2.0 200"), "{out_text}");
    assert!(kam.contacts("km").unwrap().is_empty());

    let sipp = sipp_register(&net.wan, &snom_registration("wrong"), registrar).unwrap();
    assert!(!sipp.got_200);
    assert_eq!(sipp.responses, [401, 401], "{sipp:?}");
    assert!(kam.contacts("km").unwrap().is_empty());

    let eve = Registration {
        user: "eve".into(),
        ..snom_registration("secret")
    };
    let sipp = sipp_register(&net.wan, &eve, registrar).unwrap();
    assert_eq!(sipp.responses, [401, 403], "{sipp:?}");
    assert!(kam.contacts("eve").unwrap().is_empty());

    // Authenticating as km while registering bob's AoR.
    let out = sipsak_register(
        &net.wan,
        "bob",
        "secret",
        "sip:bob@203.0.113.10:5098",
        registrar,
        60,
    );
    assert_eq!(out.unwrap().status.code(), Some(0));
    let mut cmd = net.wan.command("sipsak");
    cmd.args([
        "-vv",
        "-U",
        "-C",
        "sip:km@203.0.113.10:5097",
        "-s",
        "sip:bob@203.0.113.10",
        "-a",
        "secret",
        "-u",
        "km",
        "-H",
        "203.0.113.10",
    ]);
    let out = plugline_testing::kamailio::run_bounded(cmd, Duration::from_secs(10)).unwrap();
    assert!(text(&out).contains("SIP/2.0 403"), "{}", text(&out));
    let bob = kam.contacts("bob").unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].address, "sip:bob@203.0.113.10:5098");
}

#[test]
fn sipp_register_from_phone_stores_the_contact_as_sent() {
    if !ready("sipp_register_from_phone_stores_the_contact_as_sent") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let kam = Kamailio::start(&net, Options::default()).unwrap();
    let reg = snom_registration("secret");
    let sipp = sipp_register(&net.phone, &reg, kam.registrar_addr()).unwrap();
    assert!(sipp.got_200, "{sipp:?}\n--- log ---\n{}", kam.log());
    assert_eq!(sipp.responses, [401, 200]);
    let contacts = kam.contacts("km").unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(
        contacts[0].address,
        "sip:km@192.168.0.91:5060;transport=udp?Route=sip:203.0.113.1:60123"
    );
    assert_eq!(contacts[0].received, None);
    assert_eq!(contacts[0].user_agent.as_deref(), Some("plugline-sipp"));
    assert_eq!(contacts[0].cseq, Some(2));

    // Expires 0 un-registers.
    let gone = Registration { expires: 0, ..reg };
    let sipp = sipp_register(&net.phone, &gone, kam.registrar_addr()).unwrap();
    assert!(sipp.got_200, "{sipp:?}");
    assert!(kam.contacts("km").unwrap().is_empty());
}

#[test]
fn stop_cleans_up() {
    if !ready("stop_cleans_up") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let kam = Kamailio::start(&net, Options::default()).unwrap();
    let dir = kam.dir().to_path_buf();
    let pid = kam.pid().unwrap();
    assert!(dir.join("kamailio.cfg").exists());
    assert!(dir.join("ctl").exists());
    assert!(net.wan.pids().len() > 1, "kamailio forks workers");
    let status = kam.stop().unwrap();
    assert!(stopped_cleanly(status), "{status:?}");
    assert!(!dir.exists());
    assert!(
        net.wan.pids().is_empty(),
        "left behind: {:?}",
        net.wan.pids()
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let out = sipsak_options(&net.wan, "sip:203.0.113.10", "203.0.113.10:5060").unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // Dropping works too, and a new one can start in the same network.
    let kam = Kamailio::start(&net, Options::default()).unwrap();
    let dir = kam.dir().to_path_buf();
    drop(kam);
    assert!(!dir.exists());
    assert!(net.wan.pids().is_empty());
}

/// A UA that answers one relayed OPTIONS with 200 and returns what it received.
fn answer_one_options(socket: UdpSocket) -> thread::JoinHandle<Option<String>> {
    thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 8192];
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut reply = String::from("SIP/2.0 200 OK\r\n");
        for line in request.lines().skip(1) {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
                reply.push_str(line);
                reply.push_str("\r\n");
            } else if name == "to" {
                reply.push_str(line);
                reply.push_str(";tag=bobua\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        socket.send_to(reply.as_bytes(), from).ok()?;
        Some(request)
    })
}

#[test]
fn proxy_relays_to_registered_contacts() {
    if !ready("proxy_relays_to_registered_contacts") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let opts = Options {
        proxy: true,
        ..Options::default()
    };
    let kam = Kamailio::start(&net, opts).unwrap();
    let bob_ua = net
        .wan
        .enter(|| UdpSocket::bind(SocketAddr::from((WAN_IP, 5099))))
        .unwrap();
    let out = sipsak_register(
        &net.wan,
        "bob",
        "secret",
        "sip:bob@203.0.113.10:5099",
        kam.registrar_addr(),
        600,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let ua = answer_one_options(bob_ua);
    let sipp = sipp_options(&net.phone, "sip:bob@example.net", kam.registrar_addr()).unwrap();
    let relayed = ua.join().unwrap();
    assert!(sipp.got_200, "{sipp:?}\n--- log ---\n{}", kam.log());
    let relayed = relayed.expect("bob's UA got nothing");
    assert!(
        relayed.starts_with("OPTIONS sip:bob@203.0.113.10:5099 SIP/2.0\r\n"),
        "{relayed}"
    );
    let vias = relayed
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
        .count();
    assert_eq!(vias, 2, "{relayed}");

    // Unregistered user: 404.
    let sipp = sipp_options(&net.phone, "sip:km@example.net", kam.registrar_addr()).unwrap();
    assert_eq!(sipp.final_status(), Some(404), "{sipp:?}");
}

/// km calls bob through kamailio: 407, INVITE with credentials, 180, 200 (Record-Route), ACK
/// and BYE routed back through kamailio (loose routing).
const UAC_CALL: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="plugline call with proxy auth">
  <send retrans="500">
    <![CDATA[

INVITE sip:bob@example.net SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:km@example.net>;tag=[pid]SIPpTag00[call_number]
To: <sip:bob@example.net>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:km@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=km 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true" timeout="3000"/>
  <send>
    <![CDATA[

ACK sip:bob@example.net SIP/2.0
[last_Via:]
From: <sip:km@example.net>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

INVITE sip:bob@example.net SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:km@example.net>;tag=[pid]SIPpTag00[call_number]
To: <sip:bob@example.net>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:km@[local_ip]:[local_port]>
[authentication username=km password=secret]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=km 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true" timeout="5000"/>
  <send>
    <![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:km@example.net>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:km@example.net>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" timeout="3000"/>
</scenario>
"#;

/// bob's phone: answers one call, echoing the Record-Route set, and the BYE.
const UAS_CALL: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="plugline answer">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bob 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

#[test]
fn proxy_call_with_proxy_auth_and_loose_routing() {
    if !ready("proxy_call_with_proxy_auth_and_loose_routing") {
        return;
    }
    let net = HomeNet::new().unwrap();
    let opts = Options {
        proxy: true,
        ..Options::default()
    };
    let kam = Kamailio::start(&net, opts).unwrap();
    let out = sipsak_register(
        &net.wan,
        "bob",
        "secret",
        "sip:bob@203.0.113.10:5099",
        kam.registrar_addr(),
        600,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // bob's phone: SIPp as UAS on 203.0.113.10:5099 (one call, then it exits).
    let dir = std::env::temp_dir().join(format!("pl-{}-uas", unique_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("uas.xml"), UAS_CALL).unwrap();
    let mut cmd = net.wan.command("sipp");
    cmd.current_dir(&dir)
        .arg("-sf")
        .arg(dir.join("uas.xml"))
        .args(["-m", "1", "-nostdin", "-timeout", "10s", "-timeout_error"])
        .args(["-i", "203.0.113.10", "-p", "5099", "-mp", "16000"])
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join("uas.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut uas = net.wan.spawn(cmd).unwrap();
    // Bounded wait until the UAS listens: its port is taken.
    for _ in 0..200 {
        let taken = net
            .wan
            .enter(|| UdpSocket::bind(SocketAddr::from((WAN_IP, 5099))).is_err());
        if taken {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }

    let outcome = sipp_scenario(&net.wan, UAC_CALL, kam.registrar_addr()).unwrap();
    let uas_status = uas.wait_timeout(Duration::from_secs(5)).unwrap();
    let uas_log = std::fs::read_to_string(dir.join("uas.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        outcome.got_200,
        "{outcome:?}\n--- UAS ---\n{uas_log}\n--- log ---\n{}",
        kam.log()
    );
    assert_eq!(outcome.responses.iter().filter(|&&c| c == 407).count(), 1);
    assert!(outcome.responses.contains(&180), "{:?}", outcome.responses);
    assert!(
        outcome
            .messages
            .contains("Record-Route: <sip:203.0.113.10;lr"),
        "{}",
        outcome.messages
    );
    assert!(
        uas_status.is_some_and(|s| s.success()),
        "UAS: {uas_status:?}\n{uas_log}"
    );
    // The ACK and the BYE reached bob through kamailio (two Vias: kamailio's and km's).
    assert!(
        uas_log.contains("BYE sip:bob@203.0.113.10:5099 SIP/2.0"),
        "{uas_log}"
    );
}
