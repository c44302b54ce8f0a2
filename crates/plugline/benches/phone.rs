//! Phone benchmark: time from `plugline phone` start to the 200 OK of its REGISTER, beside the
//! same job done by the reference tools, in the namespace home network with our gateway
//! (`plugline gateway`, nftables backend) in gw and kamailio (digest auth, no NAT fix-ups) on the
//! wan host. Everything runs from the phone host, through `ip netns exec`.
//!
//! * **phone**: `plugline phone --account sip:km@example.net --registrar 203.0.113.10 …
//!   --sip-port 5060 --rtp-ports 10000-10003`, timed from just before spawn to the moment its
//!   stderr line `SIP: registered … (N ms after start)` is read from a pipe. That line is
//!   written by the phone right after it has parsed the 200 OK (one unbuffered `write` to a pipe,
//!   microseconds), so it is the 200 as the phone saw it, with process start and `ip netns exec`
//!   included. kamailio's location table (`kamcmd`, a process per query) is checked after the
//!   timing only, as proof; the phone's own in-process count (`N ms after start`, from `main` to
//!   the 200, no exec) is printed beside it. Then the phone gets SIGTERM and must exit 0 after
//!   unregistering and deleting its 5 mappings; kamailio must hold no contact of km any more.
//! * **reference**: the same sequence with the reference tools, as a script would do it:
//!   `upnpc -i -s` (discovery, description, external address), then `upnpc -u URL -e … -a
//!   192.168.0.91 P P UDP 3600` for the SIP port and 4 RTP ports (5070, 10010-10013: a separate
//!   set so that nothing of a phone run is touched), then SIPp from 192.168.0.91:5070 sending a
//!   REGISTER with the mapped public address in Via and Contact (`203.0.113.1:5070`), the 401,
//!   the REGISTER with digest auth (user bob), the 200; timed from just before the first spawn
//!   to SIPp's exit (its `-trace_msg` file is checked for the 200). Cleaned up afterwards, not
//!   timed: bob's contact is checked at kamailio and removed, the 5 mappings deleted.
//!
//! The phone and the reference alternate, after one warm-up run of each (page cache, ARP),
//! so drift hits both alike. Targets: phone median ≤ 100 ms, and reference median ≥ 20× the
//! phone's.
//!
//! Run with `cargo bench -p plugline --bench phone` (root, `ip`, `nft`, kamailio, kamcmd, sipp
//! and upnpc needed; otherwise it prints `SKIP phone bench: <reason>` and exits 0, or fails
//! under `PLUGLINE_REQUIRE_PEERS=1`). Environment:
//!
//! * `BENCH_ITERATIONS=N`: timed runs of each (default 10, at most 40: a reference run waits
//!   ~2 s in `upnpc -i -s`);
//! * `PLUGLINE_BIN=PATH`: another plugline executable than the one cargo built for the bench;
//! * `PHONE_BENCH_MARKDOWN=PATH`: also write the result table as markdown to PATH;
//! * `PLUGLINE_BENCH_CAPTURE=1`: one more, untimed, phone run (stderr with `portmap=debug`),
//!   printing the phone's `/api/status` SIP messages and log, its stderr, a packet capture of
//!   the phone host from spawn to registered (an `AF_PACKET` socket in the phone namespace:
//!   M-SEARCH, the gateway's answers, HTTP and SOAP, SIP; with how long after the 200 OK
//!   packet the `SIP: registered` line was read) and kamailio's `ul.dump` while registered,
//!   plus the last reference run's SIPp trace.
//!
//! Without cargo's `--bench` argument (e.g. `cargo test --all-targets`) it does nothing.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{args, env_count, plugline_bin, program, Stats};
use plugline_testing::kamailio::{self, Kamailio};
use plugline_testing::plugline::OurGateway;
use plugline_testing::{
    require_homenet, require_programs, ChildGuard, HomeNet, Netns, GW_LAN_IP, GW_WAN_IP, PHONE_IP,
    WAN_IP,
};
use serde_json::Value;
use socket2::{Socket, Type};

const NAME: &str = "phone bench";
const DEFAULT_ITERATIONS: usize = 10;
/// Upper bound whatever the environment says (a reference run takes ~2.1 s).
const MAX_ITERATIONS: usize = 40;
/// One command of the reference sequence that takes longer is killed and aborts the bench.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound for the phone's registration.
const REGISTER_WITHIN: Duration = Duration::from_secs(10);
/// Bound for reading the rest of the phone's stderr after it exited.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);
/// The gateway's HTTP port (root description at `/rootDesc.xml`).
const GATEWAY_HTTP_PORT: u16 = 5000;
/// The phone's status page port (its default).
const STATUS_PORT: u16 = 80;
const DOMAIN: &str = "example.net";
const PASSWORD: &str = "secret";
/// The phone's account (user km) and ports.
const PHONE_USER: &str = "km";
const PHONE_SIP_PORT: u16 = 5060;
const PHONE_RTP_PORTS: &str = "10000-10003";
const PHONE_INSTANCE: &str = "phonebench";
/// The phone's mappings: SIP and 4 RTP ports.
const PHONE_MAPPINGS: usize = 5;
/// The reference sequence's user and ports (internal = external asked for).
const REF_USER: &str = "bob";
const REF_SIP_PORT: u16 = 5070;
const REF_RTP_PORTS: [u16; 4] = [10010, 10011, 10012, 10013];
const REF_DESCRIPTION: &str = "phonebench-reference";
/// The targets.
const TARGET_PHONE_MS: f64 = 100.0;
const TARGET_RATIO: f64 = 20.0;

fn main() -> ExitCode {
    common::bench_main(
        NAME,
        "phone",
        || {
            require_homenet(NAME)
                && require_programs(NAME, &["kamailio", "kamcmd", "sipp", "upnpc"])
        },
        run,
    )
}

/// One invocation from `ns`, bounded by [`COMMAND_TIMEOUT`].
fn timed(ns: &Netns, program: &Path, args: &[String]) -> io::Result<(Duration, Output)> {
    common::timed(ns, program, args, COMMAND_TIMEOUT)
}

/// [`timed`], then checks exit status 0 and `check` on stdout.
fn checked(
    ns: &Netns,
    program: &Path,
    args: &[String],
    check: &dyn Fn(&str) -> bool,
) -> io::Result<(Duration, String)> {
    common::checked(ns, program, args, COMMAND_TIMEOUT, check)
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The phone.

/// One phone run.
struct PhoneRun {
    /// Spawn to the `SIP: registered` line.
    wall: Duration,
    /// The phone's own count (`N ms after start`).
    own_ms: Option<f64>,
    /// What `PLUGLINE_BENCH_CAPTURE` collects.
    capture: Option<Capture>,
}

struct Capture {
    status: Value,
    ul_dump: String,
    stderr: String,
    /// The phone host's IPv4 packets from spawn until registered with 5 mappings.
    packets: Vec<Packet>,
    /// When the phone was spawned and when its `SIP: registered` line was read.
    spawned: Instant,
    registered: Instant,
}

/// The phone's command line (for the report too).
fn phone_args(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    vec![
        "phone".into(),
        "--config".into(),
        path("phone.toml"),
        "--account".into(),
        format!("sip:{PHONE_USER}@{DOMAIN}"),
        "--registrar".into(),
        WAN_IP.to_string(),
        "--password-file".into(),
        path("password"),
        "--sip-port".into(),
        PHONE_SIP_PORT.to_string(),
        "--rtp-ports".into(),
        PHONE_RTP_PORTS.into(),
    ]
}

/// `… (37 ms after start)` → 37.
fn own_count(line: &str) -> Option<f64> {
    let head = line.split(" ms after start)").next()?;
    head.rsplit('(').next()?.trim().parse().ok()
}

struct Env<'a> {
    net: &'a HomeNet,
    kam: &'a Kamailio,
    plugline: &'a Path,
    upnpc: &'a Path,
    sipp: &'a Path,
    dir: &'a Path,
}

fn phone_run(env: &Env<'_>, capture: bool) -> io::Result<PhoneRun> {
    let phone_args = phone_args(env.dir);
    let mut cmd = env.net.phone.command(env.plugline);
    cmd.args(&phone_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if capture {
        cmd.env("RUST_LOG", "info,portmap=debug");
    } else {
        cmd.env_remove("RUST_LOG");
    }
    let sniffer = if capture {
        Some(Sniffer::start(&env.net.phone)?)
    } else {
        None
    };

    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start plugline phone: {e}")))?;
    let stderr = child.stderr.take();
    let guard = ChildGuard::new(child, "plugline phone");
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = thread::spawn(move || {
        let Some(stderr) = stderr else { return };
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });

    let mut log = String::new();
    let mut registered: Option<(Instant, String)> = None;
    let deadline = start + REGISTER_WITHIN;
    while registered.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok((at, line)) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("SIP: registered ") {
                    registered = Some((at, line));
                }
            }
            Err(_) => break,
        }
    }
    let Some((at, line)) = registered else {
        drop(guard);
        drain(&rx, &mut log);
        let _ = reader.join();
        return Err(io::Error::other(format!(
            "the phone did not register within {REGISTER_WITHIN:?}:\n{log}"
        )));
    };
    let wall = at - start;
    let own_ms = own_count(&line);
    let public = format!("@{GW_WAN_IP}:");
    if !line.contains(&public) {
        return Err(io::Error::other(format!(
            "the phone registered a contact that is not the public address: {line}\n{log}"
        )));
    }

    // Proof at the registrar (not timed).
    let contacts = env.kam.contacts(PHONE_USER)?;
    if !contacts.iter().any(|c| c.address.contains(&public)) {
        return Err(io::Error::other(format!(
            "kamailio has no public contact for {PHONE_USER}: {contacts:?}\n{log}"
        )));
    }

    let mut captured = None;
    if let Some(sniffer) = sniffer {
        // The RTP ports are mapped after the SIP port (the REGISTER goes out in between).
        let status = wait_for_five_mappings(env.net)?;
        let packets = sniffer.stop();
        let ul_dump = env.kam.kamcmd(&["ul.dump"])?;
        captured = Some((status, ul_dump, packets));
    }

    // Clean stop: SIGTERM, unregister, delete the mappings, exit 0.
    let status = guard.stop()?;
    drain(&rx, &mut log);
    let _ = reader.join();
    check_clean_exit(status, &log)?;
    let left = env.kam.contacts(PHONE_USER)?;
    if !left.is_empty() {
        return Err(io::Error::other(format!(
            "{PHONE_USER} still registered after the phone stopped: {left:?}\n{log}"
        )));
    }

    let capture = captured.map(|(status, ul_dump, packets)| Capture {
        status,
        ul_dump,
        stderr: log,
        packets,
        spawned: start,
        registered: at,
    });
    Ok(PhoneRun {
        wall,
        own_ms,
        capture,
    })
}

/// The rest of the phone's stderr, until the pipe closes (bounded).
fn drain(rx: &mpsc::Receiver<(Instant, String)>, log: &mut String) {
    let deadline = Instant::now() + DRAIN_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, line)) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => return,
        }
    }
}

fn check_clean_exit(status: ExitStatus, log: &str) -> io::Result<()> {
    let deleted = format!("UPnP: deleted {PHONE_MAPPINGS} of {PHONE_MAPPINGS} mappings");
    if !status.success() || !log.contains("SIP: unregistered") || !log.contains(&deleted) {
        return Err(io::Error::other(format!(
            "the phone did not stop cleanly ({status}; expected `SIP: unregistered` and \
             `{deleted}`):\n{log}"
        )));
    }
    Ok(())
}

/// GET `path` from the phone's status page, from inside the phone namespace.
fn http_get(net: &HomeNet, path: &str) -> io::Result<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {PHONE_IP}\r\nConnection: close\r\n\r\n");
    net.phone.try_enter(move || -> io::Result<String> {
        let mut stream = TcpStream::connect_timeout(
            &SocketAddr::from((PHONE_IP, STATUS_PORT)),
            Duration::from_secs(2),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })?
}

fn api_status(net: &HomeNet) -> io::Result<Value> {
    let answer = http_get(net, "/api/status")?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("/api/status: {head}")));
    }
    serde_json::from_str(body).map_err(|e| io::Error::other(format!("/api/status: {e}: {body}")))
}

fn wait_for_five_mappings(net: &HomeNet) -> io::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = api_status(net)?;
        let five = status["mappings"]
            .as_array()
            .is_some_and(|m| m.len() == PHONE_MAPPINGS);
        if five || Instant::now() >= deadline {
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One IPv4 packet seen on the phone host.
struct Packet {
    at: Instant,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    proto: &'static str,
    flags: String,
    payload: Vec<u8>,
}

/// A packet capture in the phone namespace for the capture run: an `AF_PACKET`/`SOCK_DGRAM`
/// socket for `ETH_P_ALL` (network-layer packets, both directions, every interface; only IPv4
/// is parsed), read on a thread
/// until stopped (at most [`SNIFF_AT_MOST`]). Only UDP and TCP between the phone's address and
/// another host are kept (so not the bench's own status-page requests over `lo`), each once.
struct Sniffer {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<Packet>>,
}

const SNIFF_AT_MOST: Duration = Duration::from_secs(30);
/// Every protocol: only `ETH_P_ALL` sockets see outgoing packets too.
const ETH_P_ALL: u16 = 0x0003;

impl Sniffer {
    fn start(ns: &Netns) -> io::Result<Sniffer> {
        let protocol = socket2::Protocol::from(i32::from(ETH_P_ALL.to_be()));
        let socket =
            ns.try_enter(|| Socket::new(socket2::Domain::PACKET, Type::DGRAM, Some(protocol)))??;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut packets: Vec<Packet> = Vec::new();
            let mut buf = vec![0u8; 65_536];
            let until = Instant::now() + SNIFF_AT_MOST;
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                let Ok(n) = (&socket).read(&mut buf) else {
                    continue;
                };
                let at = Instant::now();
                let Some(p) = parse_ipv4(at, buf.get(..n).unwrap_or_default()) else {
                    continue;
                };
                let phone = |a: &SocketAddrV4| *a.ip() == PHONE_IP;
                if !(phone(&p.src) || phone(&p.dst)) || p.src.ip() == p.dst.ip() {
                    continue;
                }
                // A multicast datagram looped back to the sender shows up twice.
                let dup = packets.last().is_some_and(|q| {
                    q.src == p.src
                        && q.dst == p.dst
                        && q.payload == p.payload
                        && q.flags == p.flags
                        && p.at - q.at < Duration::from_millis(1)
                });
                if !dup {
                    packets.push(p);
                }
            }
            packets
        });
        Ok(Sniffer { stop, thread })
    }

    fn stop(self) -> Vec<Packet> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn parse_ipv4(at: Instant, ip: &[u8]) -> Option<Packet> {
    let version_ihl = *ip.first()?;
    if version_ihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?])).min(ip.len());
    let protocol = *ip.get(9)?;
    let addr = |at: usize| -> Option<Ipv4Addr> {
        Some(Ipv4Addr::new(
            *ip.get(at)?,
            *ip.get(at + 1)?,
            *ip.get(at + 2)?,
            *ip.get(at + 3)?,
        ))
    };
    let (src_ip, dst_ip) = (addr(12)?, addr(16)?);
    let l4 = ip.get(ihl..total)?;
    let port =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?])) };
    let (sport, dport) = (port(0)?, port(2)?);
    let (proto, flags, payload) = match protocol {
        17 => ("UDP", String::new(), l4.get(8..)?),
        6 => {
            let offset = usize::from(*l4.get(12)? >> 4) * 4;
            let bits = *l4.get(13)?;
            let names = [
                (0x02, "SYN"),
                (0x10, "ACK"),
                (0x08, "PSH"),
                (0x01, "FIN"),
                (0x04, "RST"),
            ];
            let set: Vec<&str> = names
                .iter()
                .filter(|(bit, _)| bits & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            ("TCP", format!("[{}] ", set.join(",")), l4.get(offset..)?)
        }
        _ => return None,
    };
    Some(Packet {
        at,
        src: SocketAddrV4::new(src_ip, sport),
        dst: SocketAddrV4::new(dst_ip, dport),
        proto,
        flags,
        payload: payload.to_vec(),
    })
}

// ---------------------------------------------------------------------------------------------
// The reference sequence.

struct RefRun {
    wall: Duration,
    discovery: Duration,
    mappings: Duration,
    sipp: Duration,
    trace: String,
}

/// `desc: http://…` and `ExternalIPAddress = …` in `upnpc -s` output.
fn upnpc_status(stdout: &str) -> Option<(String, String)> {
    let url = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("desc: "))?
        .trim()
        .to_owned();
    let ip = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExternalIPAddress = "))?
        .trim()
        .to_owned();
    Some((url, ip))
}

fn ref_scenario(public: &str) -> String {
    let request = |cseq: u32, auth: &str| {
        format!(
            r#"  <send retrans="500">
    <![CDATA[

REGISTER sip:{DOMAIN} SIP/2.0
Via: SIP/2.0/[transport] {public};branch=[branch];rport
Max-Forwards: 70
From: <sip:{REF_USER}@{DOMAIN}>;tag=[pid]SIPpTag00[call_number]
To: <sip:{REF_USER}@{DOMAIN}>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:{REF_USER}@{public}>
{auth}Expires: 3600
User-Agent: sipp-reference
Content-Length: 0

    ]]>
  </send>
"#
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="reference REGISTER with the mapped address">
{first}  <recv response="100" optional="true"/>
  <recv response="401" auth="true" timeout="3000"/>
{second}  <recv response="100" optional="true"/>
  <recv response="200" timeout="3000"/>
</scenario>
"#,
        first = request(1, ""),
        second = request(
            2,
            &format!("[authentication username={REF_USER} password={PASSWORD}]\n")
        ),
    )
}

fn ref_ports() -> impl Iterator<Item = u16> {
    std::iter::once(REF_SIP_PORT).chain(REF_RTP_PORTS)
}

fn reference_run(env: &Env<'_>) -> io::Result<RefRun> {
    let phone = &env.net.phone;
    let scenario_path = env.dir.join("reference.xml");
    let trace_path = env.dir.join("reference-trace.log");
    let _ = std::fs::remove_file(&trace_path);

    let start = Instant::now();
    // 1. Discovery, description, external address.
    let (_, stdout) = checked(phone, env.upnpc, &args(&["-i", "-s"]), &|s| {
        upnpc_status(s).is_some()
    })?;
    let (url, external) = upnpc_status(&stdout).unwrap_or_default();
    let discovery = start.elapsed();
    // 2. SIP port and 4 RTP ports, one `upnpc -a` each.
    for port in ref_ports() {
        let port = port.to_string();
        let a = args(&[
            "-u",
            &url,
            "-e",
            REF_DESCRIPTION,
            "-a",
            &PHONE_IP.to_string(),
            &port,
            &port,
            "UDP",
            "3600",
        ]);
        checked(phone, env.upnpc, &a, &|s| {
            s.contains("is redirected to internal")
        })?;
    }
    let mappings = start.elapsed();
    // 3. REGISTER, 401, REGISTER with digest auth, 200, with the public address.
    let public = format!("{external}:{REF_SIP_PORT}");
    std::fs::write(&scenario_path, ref_scenario(&public))?;
    let sipp_args = vec![
        "-sf".to_string(),
        scenario_path.to_string_lossy().into_owned(),
        "-m".into(),
        "1".into(),
        "-nostdin".into(),
        "-timeout".into(),
        "5s".into(),
        "-timeout_error".into(),
        "-i".into(),
        PHONE_IP.to_string(),
        "-p".into(),
        REF_SIP_PORT.to_string(),
        "-trace_msg".into(),
        "-message_file".into(),
        trace_path.to_string_lossy().into_owned(),
        SocketAddr::from((WAN_IP, kamailio::SIP_PORT)).to_string(),
    ];
    let sipp_result = timed(phone, env.sipp, &sipp_args);
    let wall = start.elapsed();
    let (_, out) = sipp_result?;
    let trace = read_lossy(&trace_path);
    if !out.status.success() || !trace.contains("SIP/2.0 200 OK") {
        return Err(io::Error::other(format!(
            "SIPp did not register ({}):\n{trace}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }

    // Not timed: proof at the registrar, then clean up.
    let contacts = env.kam.contacts(REF_USER)?;
    let expected = format!("sip:{REF_USER}@{public}");
    if !contacts.iter().any(|c| c.address == expected) {
        return Err(io::Error::other(format!(
            "kamailio has no contact {expected}: {contacts:?}"
        )));
    }
    env.kam.remove_contacts(REF_USER)?;
    for port in ref_ports() {
        let d = args(&["-u", &url, "-d", &port.to_string(), "UDP"]);
        checked(phone, env.upnpc, &d, &|s| s.contains("returned : 0"))?;
    }
    Ok(RefRun {
        wall,
        discovery,
        mappings: mappings - discovery,
        sipp: wall - mappings,
        trace,
    })
}

// ---------------------------------------------------------------------------------------------

fn run() -> io::Result<()> {
    let (plugline, how) = plugline_bin()?;
    let upnpc = program("upnpc")?;
    let sipp = program("sipp")?;
    let true_bin = program("true")?;
    let iterations = env_count("BENCH_ITERATIONS")?
        .unwrap_or(DEFAULT_ITERATIONS)
        .min(MAX_ITERATIONS);
    let capture = std::env::var_os("PLUGLINE_BENCH_CAPTURE").is_some_and(|v| v == "1");
    let markdown = std::env::var_os("PHONE_BENCH_MARKDOWN").map(PathBuf::from);

    println!("{NAME}: plugline binary {} ({how})", plugline.display());
    if !plugline.components().any(|c| c.as_os_str() == "release") {
        println!(
            "{NAME}: WARNING: this plugline is not a release build; figures are not representative"
        );
    }
    println!(
        "{NAME}: {iterations} timed runs of each after one warm-up, alternating; from the phone \
         host via `ip netns exec`"
    );
    let bench_start = Instant::now();

    // Declared first so that it is dropped last.
    let net = HomeNet::new()?;
    let dir = TempDir::new(&format!("pl-{}-phonebench", net.id))?;
    std::fs::write(dir.0.join("password"), format!("{PASSWORD}\n"))?;
    std::fs::write(
        dir.0.join("phone.toml"),
        format!("instance = \"{PHONE_INSTANCE}\"\n"),
    )?;
    let mut gateway = OurGateway::start(&net, &plugline, dir.0.join("gw"), &[])?;
    let kam = Kamailio::start(&net, kamailio::Options::default())?;
    let env = Env {
        net: &net,
        kam: &kam,
        plugline: &plugline,
        upnpc: &upnpc,
        sipp: &sipp,
        dir: &dir.0,
    };

    // What `ip netns exec` plus an empty process costs.
    let mut floor = Vec::new();
    for _ in 0..iterations {
        floor.push(timed(&net.phone, &true_bin, &[])?.0);
    }

    phone_run(&env, false)?;
    reference_run(&env)?;
    let (mut phone, mut own, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    let (mut discovery, mut mapping, mut sipp_step) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_trace = String::new();
    for i in 0..iterations {
        let p = phone_run(&env, false)?;
        let r = reference_run(&env)?;
        println!(
            "run {:>2}: phone {:7.1} ms (own count {} ms) | reference {:7.1} ms \
             (discovery {:.1}, 5 mappings {:.1}, sipp {:.1})",
            i + 1,
            p.wall.as_secs_f64() * 1e3,
            p.own_ms.map_or("?".into(), |v| format!("{v:.0}")),
            r.wall.as_secs_f64() * 1e3,
            r.discovery.as_secs_f64() * 1e3,
            r.mappings.as_secs_f64() * 1e3,
            r.sipp.as_secs_f64() * 1e3,
        );
        phone.push(p.wall);
        own.extend(p.own_ms);
        reference.push(r.wall);
        discovery.push(r.discovery);
        mapping.push(r.mappings);
        sipp_step.push(r.sipp);
        last_trace = r.trace;
    }
    let captured = if capture {
        phone_run(&env, true)?.capture
    } else {
        None
    };
    // Nothing of ours is left at the gateway or the registrar.
    let (_, listed) = checked(
        &net.phone,
        &upnpc,
        &args(&[
            "-u",
            &format!("http://{GW_LAN_IP}:{GATEWAY_HTTP_PORT}/rootDesc.xml"),
            "-l",
        ]),
        &|_| true,
    )?;
    if listed.contains(PHONE_INSTANCE) || listed.contains(REF_DESCRIPTION) {
        return Err(io::Error::other(format!("mappings left:\n{listed}")));
    }
    let dump = kam.kamcmd(&["ul.dump"])?;
    if dump.contains("Contact: {") {
        return Err(io::Error::other(format!("contacts left:\n{dump}")));
    }
    drop(kam);
    gateway.stop()?;
    drop(gateway);
    let captured_dir = dir.0.clone();
    drop(dir);
    drop(net);
    let total = bench_start.elapsed();

    let phone = Stats::of(&phone);
    let own = Stats::of_ms(own);
    let reference = Stats::of(&reference);
    let floor = Stats::of(&floor);
    let ratio = reference.median / phone.median;
    let fast = phone.median <= TARGET_PHONE_MS;
    let faster = ratio >= TARGET_RATIO;
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };

    let mut table = String::new();
    table.push_str(&format!(
        "| start → 200 OK of REGISTER (n={}) | min / median / max ms |\n|---|---|\n",
        phone.n
    ));
    table.push_str(&format!(
        "| `plugline phone` (spawn → its `SIP: registered` line) | {} |\n",
        phone.min_median_max()
    ));
    table.push_str(&format!(
        "| `plugline phone`, its own count (in-process start → 200) | {} |\n",
        own.min_median_max()
    ));
    table.push_str(&format!(
        "| reference: `upnpc -i -s`, 5 × `upnpc -a`, `sipp` REGISTER + digest | {} |\n",
        reference.min_median_max()
    ));
    table.push_str(&format!(
        "| … `upnpc -i -s` (discovery + external address) | {} |\n",
        Stats::of(&discovery).min_median_max()
    ));
    table.push_str(&format!(
        "| … 5 × `upnpc -u URL -a` (SIP + 4 RTP) | {} |\n",
        Stats::of(&mapping).min_median_max()
    ));
    table.push_str(&format!(
        "| … `sipp` REGISTER → 401 → REGISTER with auth → 200 | {} |\n",
        Stats::of(&sipp_step).min_median_max()
    ));
    table.push_str(&format!(
        "| (`ip netns exec … true`, for scale) | {} |\n",
        floor.min_median_max()
    ));
    let targets = format!(
        "- phone median ≤ {TARGET_PHONE_MS:.0} ms: **{}** ({:.1} ms; max {:.1} ms)\n\
         - reference / phone (medians) ≥ {TARGET_RATIO:.0}×: **{}** ({ratio:.1}×: {:.1} ms / {:.1} ms)\n",
        verdict(fast),
        phone.median,
        phone.max,
        verdict(faster),
        reference.median,
        phone.median,
    );

    if let Some(c) = &captured {
        print_capture(c, &plugline, &captured_dir, &last_trace);
    }
    println!();
    print!("{table}");
    println!();
    print!("{targets}");
    println!("{NAME}: done in {:.1} s", total.as_secs_f64());
    if let Some(path) = markdown {
        let text = format!(
            "Measured with `cargo bench -p plugline --bench phone` ({} timed runs each, \
             alternating, after one warm-up; our gateway with the nftables backend in gw, \
             kamailio 5.6 with digest auth on the wan host, everything started from the phone \
             host via `ip netns exec`):\n\n{table}\n{targets}",
            phone.n
        );
        std::fs::write(&path, text)?;
        println!("{NAME}: table written to {}", path.display());
    }
    Ok(())
}

fn print_capture(c: &Capture, plugline: &Path, dir: &Path, trace: &str) {
    println!("===== capture: command line =====");
    println!(
        "ip netns exec <phone ns> {} {}",
        plugline.display(),
        phone_args(dir).join(" ")
    );
    println!("===== capture: phone.toml =====");
    println!("instance = \"{PHONE_INSTANCE}\"");
    println!("===== capture: /api/status SIP messages =====");
    for m in c.status["messages"].as_array().into_iter().flatten() {
        println!(
            "--- {} {} {} (unix ms {})",
            m["direction"].as_str().unwrap_or_default(),
            if m["direction"] == "sent" {
                "to"
            } else {
                "from"
            },
            m["peer"].as_str().unwrap_or_default(),
            m["unix_ms"]
        );
        println!(
            "{}",
            m["text"].as_str().unwrap_or_default().replace("\r\n", "\n")
        );
    }
    println!("===== capture: /api/status log =====");
    for l in c.status["log"].as_array().into_iter().flatten() {
        println!(
            "{} {:<5} {}",
            l["time"].as_str().unwrap_or_default(),
            l["level"].as_str().unwrap_or_default(),
            l["message"].as_str().unwrap_or_default()
        );
    }
    println!("===== capture: /api/status registration, nat, mappings =====");
    println!("{:#}", c.status["registration"]);
    println!("{:#}", c.status["nat"]);
    println!("{:#}", c.status["mappings"]);
    println!("===== capture: phone stderr (RUST_LOG=info,portmap=debug) =====");
    print!("{}", c.stderr);
    println!("===== capture: packets on the phone host (AF_PACKET), ms after spawn =====");
    for p in &c.packets {
        println!(
            "+{:9.3} {} -> {} {} {}{} B",
            (p.at - c.spawned).as_secs_f64() * 1e3,
            p.src,
            p.dst,
            p.proto,
            p.flags,
            p.payload.len()
        );
        if !p.payload.is_empty() {
            println!(
                "{}",
                String::from_utf8_lossy(&p.payload).replace("\r\n", "\n")
            );
        }
    }
    let ok = c.packets.iter().find(|p| {
        p.payload.starts_with(b"SIP/2.0 200")
            && String::from_utf8_lossy(&p.payload).contains("REGISTER")
    });
    if let Some(ok) = ok {
        println!(
            "200 OK of REGISTER on the wire at +{:.3} ms after spawn; the phone's `SIP: \
             registered` line was read {:.3} ms after that packet",
            (ok.at - c.spawned).as_secs_f64() * 1e3,
            (c.registered.saturating_duration_since(ok.at)).as_secs_f64() * 1e3
        );
    }
    println!("===== capture: kamcmd ul.dump while registered =====");
    print!("{}", c.ul_dump);
    println!("===== capture: last reference SIPp trace =====");
    print!("{trace}");
    println!("===== end of capture =====");
}
