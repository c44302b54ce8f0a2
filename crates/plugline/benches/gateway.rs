//! Gateway benchmark: `plugline gateway` (nftables backend) against miniupnpd 2.3.1 (normal
//! mode), each in the gw namespace of its own fresh home network, both driven from the phone
//! host by the same two clients:
//!
//! * a Rust load client inside this bench: raw HTTP/1.1 SOAP POSTs (bodies from
//!   `igd_proto::actions::Action::request`) over std TCP sockets created in the phone
//!   namespace, N connections at once, keep-alive when the server allows it (ours does,
//!   miniupnpd closes after each answer, which the client handles by reconnecting), or
//!   `Connection: close` on every request for the row that measures a connection per request;
//! * python3-miniupnpc (the real miniupnpc C library, in-process; `benches/fixtures/
//!   miniupnpc_throughput.py`) for reference: add+delete pairs, one at a time.
//!
//! Our gateway runs twice, because durability costs differ: with its state directory on the
//! disk (`/var/tmp`, every acknowledged change is fdatasync'ed; group commit shares one sync
//! among the requests queued together) and on tmpfs (`/dev/shm`). miniupnpd never syncs.
//!
//! Measured, per gateway: SOAP add+delete throughput (Rust client with 1 and 16 connections
//! kept alive where the server allows it, 16 with a connection per request, python with 1),
//! AddPortMapping and DeletePortMapping latency of a fresh port (median and p99, one
//! connection) with 1, 1,000, 5,000 and 20,000 mappings in the table (filled by the Rust
//! client with 16 connections, or as many as the server's listen backlog: miniupnpd's is 5),
//! M-SEARCH (IGD:2) first-answer latency, VmRSS idle and with 5,000 mappings after
//! [`RSS_SETTLE`] at rest (split into anonymous and file-backed pages; ours is the
//! `plugline-gateway` process `plugline gateway` becomes), and for our gateway where its CPU
//! goes during the 16-connection throughput run. miniupnpd costs ~17 µs × n per change, so
//! filling it is O(n²): a size is only measured when the fill fits in [`FILL_BUDGET`]
//! (projected from the latencies measured so far); otherwise the row says `not measured (fill
//! would take N s)`.
//! The whole run takes about 5 minutes when miniupnpd's 5,000 fits (~3.5 of them filling
//! miniupnpd), about 2.5 otherwise.
//!
//! Run with `cargo bench -p plugline --bench gateway` (root, miniupnpd, conntrack and
//! python3-miniupnpc needed; otherwise it prints `SKIP gateway bench: <reason>` and exits 0,
//! or fails under `PLUGLINE_REQUIRE_PEERS=1`). `GATEWAY_BENCH_MARKDOWN=PATH` also writes the
//! result table as a markdown section to PATH; `GATEWAY_BENCH_PERF=DIR` records a `perf`
//! profile of our gateway (and its nft child) during each 16-connection run into DIR. Without
//! cargo's `--bench` argument (e.g. `cargo test --all-targets`) it does nothing. Other load
//! on the machine (2 shared cores here) moves every figure: the load average is printed.
//! `GATEWAY_BENCH_QUICK=1` measures only our gateway, up to 5,000 mappings, without the
//! report.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{ms, Stats};
use igd_proto::actions::{Action, PortMapping, Protocol};
use plugline_testing::miniupnpd::{Miniupnpd, Options};
use plugline_testing::plugline::OurGateway;
use plugline_testing::{
    require_homenet, require_programs, ChildGuard, HomeNet, GW_LAN_IP, PHONE_IP, SSDP_ADDR,
};

const NAME: &str = "gateway bench";
const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");
const PYTHON: &str = "/usr/bin/python3";
const PY_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/fixtures/miniupnpc_throughput.py"
);
const HTTP_PORT: u16 = 5000;
const ROOT_PATH: &str = "/rootDesc.xml";

/// Table sizes at which add/delete latency is measured (ascending: the table is filled up).
const SIZES: [usize; 4] = [1, 1_000, 5_000, 20_000];
/// The size at which VmRSS is read (besides idle).
const RSS_SIZE: usize = 5_000;
/// Quiet time before VmRSS is read at [`RSS_SIZE`] (the gateway gives free heap back to the
/// kernel after a second without requests).
const RSS_SETTLE: Duration = Duration::from_secs(2);
/// Total time the fills of one gateway may take (miniupnpd's is O(n²)).
const FILL_BUDGET: Duration = Duration::from_secs(240);
/// Extra time a fill may run past its projection before it is cut.
const FILL_GRACE: Duration = Duration::from_secs(20);
/// miniupnpd's cost per existing mapping and change (PEERS.md), used until measured.
const MINIUPNPD_SECONDS_PER_ENTRY: f64 = 17e-6;
/// Connections of the concurrent throughput run, and of the fill (there at most the
/// server's listen backlog: more only get their SYNs dropped while the server is busy).
const CONCURRENCY: usize = 16;

/// Port ranges (all UDP, all in the same nft map / chain): fill, latency, python, throughput.
const FILL_BASE: u16 = 10_000; // 10,000..30,000
const LATENCY_BASE: u16 = 40_000; // 40,000..40,100
const PY_BASE: u16 = 41_000; // 41,000..45,000 (+1 warm-up port)
const TP_BASE: u16 = 45_100; // 45,100..65,100 (TP_PORTS), reused in turn
/// Ports the throughput runs cycle through: pair `i` uses `TP_BASE + i % TP_PORTS`, so two
/// pairs on the same port are TP_PORTS pairs apart, never in flight at once.
const TP_PORTS: usize = 20_000;

/// Throughput runs: at most this many pairs or this long.
const TP_MAX_PAIRS: usize = 200_000;
const TP_TIME: Duration = Duration::from_secs(3);
const PY_MAX_PAIRS: usize = 3_999;
const PY_TIME_SECONDS: f64 = 3.0;
/// Latency samples (add + delete of a fresh port) per table size, and their time bound.
const LAT_SAMPLES: usize = 60;
const LAT_TIME: Duration = Duration::from_secs(25);
/// M-SEARCH samples, one per slot (our gateway allows a burst of 20 then 10/s per source).
const SSDP_SAMPLES: usize = 25;
const SSDP_SLOT: Duration = Duration::from_millis(150);
const SSDP_TIMEOUT: Duration = Duration::from_secs(1);
/// Socket and child-process time limits.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Long enough for three SYN retransmissions (1, 3 and 7 s): miniupnpd's listen backlog is
/// small, and a full accept queue drops SYNs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PY_TIMEOUT: Duration = Duration::from_secs(40);
/// Largest HTTP answer head and body the client accepts.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// Linux reports process CPU times in units of USER_HZ, 100 per second on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// Target: throughput at least this many times miniupnpd's.
const TARGET_THROUGHPUT_RATIO: f64 = 3.0;
/// Target: latency at 20,000 mappings at most this many times the empty table's.
const TARGET_LATENCY_GROWTH: f64 = 2.0;
/// miniupnpd's VmRSS with 5,000 mappings as PEERS.md reports it (KiB), the reference when
/// this run could not fill miniupnpd that far.
const MINIUPNPD_RSS_5000_PEERS_KIB: u64 = 5_222;
/// Target: first SSDP answer within this many milliseconds.
const TARGET_SSDP_MS: f64 = 5.0;

fn main() -> ExitCode {
    common::bench_main(
        NAME,
        "gateway",
        || {
            require_homenet(NAME)
                && require_programs(NAME, &["miniupnpd", "conntrack", PYTHON])
                && (python_has_miniupnpc()
                    || plugline_testing::skip(NAME, "python3-miniupnpc is not importable"))
        },
        run,
    )
}

fn python_has_miniupnpc() -> bool {
    std::process::Command::new(PYTHON)
        .args(["-c", "import miniupnpc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}×")
    } else {
        "–".into()
    }
}

// ---------------------------------------------------------------------------------------
// The Rust load client
// ---------------------------------------------------------------------------------------

/// Where SOAP goes, from the gateway's root description.
#[derive(Debug, Clone)]
struct Endpoint {
    addr: SocketAddr,
    host: String,
    control_path: String,
    service_type: String,
}

impl Endpoint {
    /// Fetches and parses the root description (from inside the phone namespace).
    fn discover(net: &HomeNet) -> io::Result<Endpoint> {
        let addr = SocketAddr::from((GW_LAN_IP, HTTP_PORT));
        let host = format!("{GW_LAN_IP}:{HTTP_PORT}");
        let request = format!("GET {ROOT_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
        let probe = Endpoint {
            addr,
            host: host.clone(),
            control_path: String::new(),
            service_type: String::new(),
        };
        let answer = net.phone.enter(|| Client::new(&probe).exchange(&request))?;
        if answer.status != 200 {
            return Err(io::Error::other(format!(
                "GET {ROOT_PATH}: HTTP {}",
                answer.status
            )));
        }
        let location: url::Url = format!("http://{host}{ROOT_PATH}")
            .parse()
            .map_err(|e| io::Error::other(format!("root URL: {e}")))?;
        let wan = igd_proto::description::parse(&answer.body)
            .and_then(|d| d.wan_connection(&location))
            .map_err(|e| io::Error::other(format!("root description: {e}")))?;
        let mut control_path = wan.control_url.path().to_string();
        if let Some(q) = wan.control_url.query() {
            control_path = format!("{control_path}?{q}");
        }
        Ok(Endpoint {
            addr,
            host,
            control_path,
            service_type: wan.service_type,
        })
    }

    /// The whole HTTP request (head and body, one buffer) for `action`; `close`: ask for
    /// one request per connection (`Connection: close`, as miniupnpc does).
    fn soap_request(&self, action: &Action, close: bool) -> Vec<u8> {
        let soap = action.request(&self.service_type);
        let mut out = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\n{}Content-Type: {}\r\nSOAPAction: {}\r\nContent-Length: {}\r\n\r\n",
            self.control_path,
            self.host,
            if close { "Connection: close\r\n" } else { "" },
            igd_proto::soap::CONTENT_TYPE,
            soap.soap_action,
            soap.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&soap.body);
        out
    }
}

fn add_action(port: u16) -> Action {
    Action::AddPortMapping(PortMapping {
        remote_host: String::new(),
        external_port: port,
        protocol: Protocol::Udp,
        internal_port: port,
        internal_client: PHONE_IP.to_string(),
        enabled: true,
        description: "plugline bench".into(),
        lease_duration: 3600,
    })
}

fn delete_action(port: u16) -> Action {
    Action::DeletePortMapping {
        remote_host: String::new(),
        external_port: port,
        protocol: Protocol::Udp,
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Why one exchange failed: before any byte of answer (a kept-alive connection the server
/// had closed may be retried) or later.
enum ExchangeError {
    BeforeAnswer(io::Error),
    Other(io::Error),
}

/// One connection; reused while the server keeps it alive.
struct Conn {
    stream: TcpStream,
    reused: bool,
}

/// A sequential SOAP client on one endpoint. Its sockets belong to the network namespace of
/// the thread that creates them.
struct Client<'a> {
    ep: &'a Endpoint,
    conn: Option<Conn>,
    connections: usize,
    /// Send `Connection: close` (one request per connection, as miniupnpc does).
    close: bool,
}

impl<'a> Client<'a> {
    fn new(ep: &'a Endpoint) -> Client<'a> {
        Client {
            ep,
            conn: None,
            connections: 0,
            close: false,
        }
    }

    /// Runs `action`; `Err` unless the answer is 200 with the action's response in it.
    fn call(&mut self, action: &Action) -> io::Result<()> {
        let request = self.ep.soap_request(action, self.close);
        let answer = self.exchange(&request)?;
        match action.parse_response(&answer.body) {
            Ok(_) if answer.status == 200 => Ok(()),
            Ok(_) => Err(io::Error::other(format!(
                "{}: HTTP {} with a success body",
                action.name(),
                answer.status
            ))),
            Err(e) => Err(io::Error::other(format!(
                "{}: HTTP {}: {e}",
                action.name(),
                answer.status
            ))),
        }
    }

    fn connect(&mut self) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&self.ep.addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        self.connections += 1;
        Ok(Conn {
            stream,
            reused: false,
        })
    }

    /// Sends `request` and reads the answer, on the kept-alive connection if there is one
    /// (retried once on a fresh connection when the server had closed it), else on a new one.
    fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        for _ in 0..2 {
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => self.connect()?,
            };
            let reused = conn.reused;
            match round_trip(&mut conn.stream, request) {
                Ok((answer, keep_alive)) => {
                    if keep_alive {
                        conn.reused = true;
                        self.conn = Some(conn);
                    } else {
                        // Let the server close first (its FIN is on the way), so the
                        // TIME_WAIT state stays on its side, not on the phone's ports.
                        let mut byte = [0u8; 1];
                        let _ = conn.stream.read(&mut byte);
                    }
                    return Ok(answer);
                }
                Err(ExchangeError::BeforeAnswer(_)) if reused => continue,
                Err(ExchangeError::BeforeAnswer(e) | ExchangeError::Other(e)) => return Err(e),
            }
        }
        Err(io::Error::other("connection closed twice before an answer"))
    }
}

/// Writes the request and reads one answer; `keep_alive` says whether the connection may be
/// used again.
fn round_trip(stream: &mut TcpStream, request: &[u8]) -> Result<(Answer, bool), ExchangeError> {
    stream
        .write_all(request)
        .map_err(ExchangeError::BeforeAnswer)?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(ExchangeError::Other(io::Error::other(
                "answer head too long",
            )));
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                return Err(ExchangeError::BeforeAnswer(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before answering",
                )))
            }
            Ok(0) => {
                return Err(ExchangeError::Other(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed inside the answer head",
                )))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(ExchangeError::BeforeAnswer(e)),
            Err(e) => return Err(ExchangeError::Other(e)),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let other = |m: String| ExchangeError::Other(io::Error::other(m));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| other(format!("bad status line {status_line:?}")))?;
    let mut length = None;
    let mut connection = String::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| other(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(other(format!(
                "Transfer-Encoding {value:?} is not supported by the bench client"
            )));
        }
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => !connection.contains("close"),
        _ => connection.contains("keep-alive"),
    };
    let mut body = buf.split_off(head_end);
    match length {
        Some(len) if len > MAX_BODY => return Err(other(format!("body of {len} bytes"))),
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk).map_err(ExchangeError::Other)?;
                if n == 0 {
                    return Err(other("closed inside the body".into()));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            if body.len() > len {
                return Err(other("more bytes than Content-Length".into()));
            }
        }
        None => {
            // No length: the body ends with the connection.
            keep_alive = false;
            loop {
                let n = stream.read(&mut chunk).map_err(ExchangeError::Other)?;
                if n == 0 {
                    break;
                }
                if body.len() + n > MAX_BODY {
                    return Err(other("body too long".into()));
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
    }
    Ok((Answer { status, body }, keep_alive))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `work(i)` on `n` threads inside the phone namespace, all released at once; returns
/// the wall time from the release to the end of the last one, and their results.
fn in_phone_parallel<R: Send>(
    net: &HomeNet,
    n: usize,
    work: impl Fn(usize) -> io::Result<R> + Sync,
) -> io::Result<(Duration, Vec<R>)> {
    net.phone.enter(|| {
        let barrier = Barrier::new(n + 1);
        let (elapsed, results) = thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let (barrier, work) = (&barrier, &work);
                    s.spawn(move || {
                        barrier.wait();
                        work(i)
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let results: Vec<io::Result<R>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("a client thread panicked")))
                })
                .collect();
            (start.elapsed(), results)
        });
        let results = results.into_iter().collect::<io::Result<Vec<R>>>()?;
        Ok((elapsed, results))
    })
}

/// Adds fill ports `from..to` with `connections` connections, stopping at `deadline`.
/// Returns the size reached (the ports handed out are always done, so it is contiguous).
fn fill(
    net: &HomeNet,
    ep: &Endpoint,
    connections: usize,
    (from, to): (usize, usize),
    deadline: Instant,
) -> io::Result<usize> {
    let next = AtomicUsize::new(from);
    let failed = AtomicBool::new(false);
    let (_, done) = in_phone_parallel(net, connections, |_| {
        let mut client = Client::new(ep);
        let mut done = 0usize;
        while !failed.load(Ordering::Relaxed) && Instant::now() < deadline {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= to {
                break;
            }
            if let Err(e) = client.call(&add_action(FILL_BASE + i as u16)) {
                failed.store(true, Ordering::Relaxed);
                return Err(io::Error::other(format!(
                    "fill, port {}: {e}",
                    FILL_BASE + i as u16
                )));
            }
            done += 1;
        }
        Ok(done)
    })?;
    Ok(from + done.iter().sum::<usize>())
}

/// Add+delete pairs on ports no other pair in flight uses, with `n` clients (`close`: each
/// request on a connection of its own), bounded by [`TP_MAX_PAIRS`] and [`TP_TIME`]. Returns
/// operations per second (an add and a delete are two).
fn throughput(net: &HomeNet, ep: &Endpoint, n: usize, close: bool) -> io::Result<Rate> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    let (elapsed, pairs) = in_phone_parallel(net, n, |_| {
        let mut client = Client::new(ep);
        client.close = close;
        let mut pairs = 0usize;
        while !failed.load(Ordering::Relaxed) && start.elapsed() < TP_TIME {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= TP_MAX_PAIRS {
                break;
            }
            let port = TP_BASE + (i % TP_PORTS) as u16;
            let result = client
                .call(&add_action(port))
                .and_then(|()| client.call(&delete_action(port)));
            if let Err(e) = result {
                failed.store(true, Ordering::Relaxed);
                return Err(io::Error::other(format!("throughput, port {port}: {e}")));
            }
            pairs += 1;
        }
        Ok(pairs)
    })?;
    let ops = 2 * pairs.iter().sum::<usize>();
    Ok(Rate {
        ops,
        seconds: elapsed.as_secs_f64(),
    })
}

/// Latency of AddPortMapping then DeletePortMapping of fresh ports, one connection.
fn latency(net: &HomeNet, ep: &Endpoint) -> io::Result<(Stats, Stats)> {
    net.phone.enter(|| {
        let mut client = Client::new(ep);
        // Warm-up, not counted.
        let warm = LATENCY_BASE + LAT_SAMPLES as u16;
        client.call(&add_action(warm))?;
        client.call(&delete_action(warm))?;
        let (mut adds, mut deletes) = (Vec::new(), Vec::new());
        let start = Instant::now();
        for k in 0..LAT_SAMPLES {
            if start.elapsed() >= LAT_TIME {
                break;
            }
            let port = LATENCY_BASE + k as u16;
            let t0 = Instant::now();
            client.call(&add_action(port))?;
            let t1 = Instant::now();
            client.call(&delete_action(port))?;
            deletes.push(t1.elapsed());
            adds.push(t1 - t0);
        }
        Ok((Stats::of(&adds), Stats::of(&deletes)))
    })
}

/// Time from sending an M-SEARCH for IGD:2 to the first answer, [`SSDP_SAMPLES`] times.
fn msearch(net: &HomeNet) -> io::Result<(Stats, usize)> {
    const SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n\r\n";
    net.phone.enter(|| {
        let sock = UdpSocket::bind((PHONE_IP, 0))?;
        let mut buf = [0u8; 4096];
        let mut samples = Vec::new();
        let mut lost = 0;
        for _ in 0..SSDP_SAMPLES {
            // Drop late answers of the previous round.
            sock.set_nonblocking(true)?;
            while sock.recv_from(&mut buf).is_ok() {}
            sock.set_nonblocking(false)?;
            let t0 = Instant::now();
            sock.send_to(SEARCH, SSDP_ADDR)?;
            let mut answered = None;
            while answered.is_none() {
                let left = SSDP_TIMEOUT.saturating_sub(t0.elapsed());
                if left.is_zero() {
                    break;
                }
                sock.set_read_timeout(Some(left))?;
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if from.ip() == GW_LAN_IP
                            && text.starts_with("HTTP/1.1 200")
                            && text.to_ascii_lowercase().contains("location:")
                        {
                            answered = Some(t0.elapsed());
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e),
                }
            }
            match answered {
                Some(d) => samples.push(d),
                None => lost += 1,
            }
            thread::sleep(SSDP_SLOT.saturating_sub(t0.elapsed()));
        }
        Ok((Stats::of(&samples), lost))
    })
}

// ---------------------------------------------------------------------------------------
// python3-miniupnpc
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Rate {
    ops: usize,
    seconds: f64,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
}

fn python_throughput(net: &HomeNet) -> io::Result<(Rate, String)> {
    let url = format!("http://{GW_LAN_IP}:{HTTP_PORT}{ROOT_PATH}");
    let mut cmd = net.phone.command(PYTHON);
    cmd.args([
        PY_SCRIPT.to_string(),
        url,
        PY_MAX_PAIRS.to_string(),
        PY_TIME_SECONDS.to_string(),
        PY_BASE.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{PYTHON}: {e}")))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(PY_TIMEOUT) {
        Ok(out) => {
            let _ = waiter.join();
            out?
        }
        Err(_) => {
            // Not reaped yet, so the pid is still our child's.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = rx.recv_timeout(Duration::from_secs(5));
            return Err(io::Error::other(format!(
                "python3-miniupnpc did not finish within {PY_TIMEOUT:?}"
            )));
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    match parsed {
        Some(v) if out.status.success() => {
            let pairs = v["pairs"].as_u64().unwrap_or(0) as usize;
            let seconds = v["seconds"].as_f64().unwrap_or(f64::NAN);
            let how = v["how"].as_str().unwrap_or("?").to_string();
            Ok((
                Rate {
                    ops: 2 * pairs,
                    seconds,
                },
                how,
            ))
        }
        _ => Err(io::Error::other(format!(
            "python3-miniupnpc failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Processes: memory and CPU
// ---------------------------------------------------------------------------------------

/// A `<name>: <n> kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// VmRSS of `pid` in KiB.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// The fields after `(comm)` of a `/proc/.../stat` line, and comm.
fn stat_fields(path: &str) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.split_once(" (")?;
    let (comm, rest) = rest.rsplit_once(") ")?;
    Some((
        comm.to_string(),
        rest.split_whitespace().map(str::to_string).collect(),
    ))
}

/// Live child processes of `pid`: (pid, comm).
fn children(pid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let (comm, f) = stat_fields(&format!("/proc/{p}/stat"))?;
            // f[0] is the state, f[1] the parent pid.
            (f.get(1)?.parse::<u32>().ok()? == pid).then_some((p, comm))
        })
        .collect()
}

/// Memory of a gateway: its own VmRSS, and that of its helper children (our `nft -i`).
#[derive(Debug, Clone, Copy)]
struct Rss {
    own_kib: u64,
    /// Of which anonymous memory (heap, stacks) and file-backed pages (the program's code).
    anon_kib: u64,
    file_kib: u64,
    children_kib: u64,
}

impl Rss {
    fn of(pid: u32) -> Option<Rss> {
        Some(Rss {
            own_kib: vm_rss_kib(pid)?,
            anon_kib: status_kib(pid, "RssAnon").unwrap_or(0),
            file_kib: status_kib(pid, "RssFile").unwrap_or(0),
            children_kib: children(pid)
                .iter()
                .filter_map(|(p, _)| vm_rss_kib(*p))
                .sum(),
        })
    }

    fn cell(&self) -> String {
        let mb = |k: u64| k as f64 / 1024.0;
        if self.children_kib == 0 {
            format!("{:.1} MB", mb(self.own_kib))
        } else {
            format!(
                "{:.1} MB (+{:.1} MB nft child)",
                mb(self.own_kib),
                mb(self.children_kib)
            )
        }
    }
}

/// CPU ticks of a gateway's threads (grouped by name), its live children and its reaped
/// children, and of this bench process (the load client).
#[derive(Debug, Clone, Default)]
struct Cpu {
    groups: BTreeMap<String, u64>,
}

fn ticks(f: &[String], i: usize) -> u64 {
    f.get(i).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Cpu {
    fn sample(pid: u32) -> Cpu {
        let mut groups = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let path = format!("{}/stat", task.path().display());
                let Some((comm, f)) = stat_fields(&path) else {
                    continue;
                };
                // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after comm.
                let t = ticks(&f, 11) + ticks(&f, 12);
                let group = match comm.as_str() {
                    c if c.starts_with("plugline-contro") => "control thread".to_string(),
                    c if c.starts_with("tokio-runtime") => "tokio workers (HTTP)".to_string(),
                    "nft-stderr" => "nft stderr reader".to_string(),
                    c if c.starts_with("conntrack") => "conntrack thread".to_string(),
                    // The process's own name: `plugline`, or `plugline-gateway` cut to 15 bytes.
                    "plugline" | "plugline-gatewa" => "main thread".to_string(),
                    other => format!("thread {other:?}"),
                };
                *groups.entry(group).or_insert(0) += t;
            }
        }
        if let Some((_, f)) = stat_fields(&format!("/proc/{pid}/stat")) {
            // cutime and cstime (16, 17): children that have exited and been reaped.
            *groups
                .entry("exited children (conntrack, replaced nft)".to_string())
                .or_insert(0) += ticks(&f, 13) + ticks(&f, 14);
        }
        for (child, comm) in children(pid) {
            if let Some((_, f)) = stat_fields(&format!("/proc/{child}/stat")) {
                let group = if comm == "nft" {
                    "nft child".to_string()
                } else {
                    format!("child {comm:?}")
                };
                *groups.entry(group).or_insert(0) += ticks(&f, 11) + ticks(&f, 12);
            }
        }
        if let Some((_, f)) = stat_fields("/proc/self/stat") {
            groups.insert(
                "bench load client".to_string(),
                ticks(&f, 11) + ticks(&f, 12),
            );
        }
        Cpu { groups }
    }

    /// Percent of one CPU per group between `self` (before) and `after`, over `seconds`.
    fn report(&self, after: &Cpu, seconds: f64) -> String {
        let mut parts = Vec::new();
        for (group, end) in &after.groups {
            let start = self.groups.get(group).copied().unwrap_or(0);
            let pct = end.saturating_sub(start) as f64 / TICKS_PER_SECOND / seconds * 100.0;
            if pct >= 1.0 {
                parts.push(format!("{group} {pct:.0}%"));
            }
        }
        parts.join(", ")
    }
}

/// The listen backlog of the HTTP socket in gw (`ss`: Send-Q of a listening socket).
fn listen_backlog(net: &HomeNet) -> Option<usize> {
    let filter = format!("sport = :{HTTP_PORT}");
    let out = net.gw.run(&["ss", "-ltnH", &filter]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// With `GATEWAY_BENCH_PERF=DIR`, records a CPU profile of the gateway and its nft child
/// (`perf record -g`) into `DIR/perf-<label>.data` during the concurrent throughput run.
fn start_perf(label: &str, pid: u32) -> Option<ChildGuard> {
    let dir = std::env::var_os("GATEWAY_BENCH_PERF")?;
    let perf = plugline_testing::find_program("perf")?;
    let name: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let out = PathBuf::from(dir).join(format!("perf-{name}.data"));
    let pids: Vec<String> = std::iter::once(pid)
        .chain(children(pid).into_iter().map(|(p, _)| p))
        .map(|p| p.to_string())
        .collect();
    let mut cmd = std::process::Command::new(perf);
    cmd.args(["record", "-F", "999", "-g", "-q", "-o"])
        .arg(&out)
        .args(["-p", &pids.join(",")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let guard = cmd
        .spawn()
        .ok()
        .map(|c| ChildGuard::new(c, "perf record"))?;
    // perf needs a moment to attach.
    thread::sleep(Duration::from_millis(300));
    println!("{NAME}: [{label}] perf profile → {}", out.display());
    Some(guard)
}

/// Connection-tracking entries in gw (every SOAP connection leaves one for a while).
fn conntrack_count(net: &HomeNet) -> Option<u64> {
    let out = net.gw.run(&["conntrack", "-C"]).ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// /proc/loadavg: other work on the machine skews every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The file system a path is on, from /proc/self/mounts (longest mount point prefix).
fn file_system(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} on {}", f[2], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".into(), |(_, fs)| fs)
}

/// Median cost of a 100-byte append + fdatasync in `dir` (what the journal pays per batch).
fn fdatasync_ms(dir: &Path) -> io::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = File::options().create(true).append(true).open(&path)?;
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        file.write_all(&[b'x'; 100])?;
        file.sync_data()?;
        samples.push(t0.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Stats::of(&samples).median)
}

// ---------------------------------------------------------------------------------------
// The gateways
// ---------------------------------------------------------------------------------------

/// Where our gateway keeps its journal in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Disk,
    Tmpfs,
}

impl Durability {
    fn base(self) -> &'static Path {
        match self {
            Durability::Disk => Path::new("/var/tmp"),
            Durability::Tmpfs => Path::new("/dev/shm"),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Durability::Disk => "ours, state on disk",
            Durability::Tmpfs => "ours, state on tmpfs",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Durability::Disk => "disk",
            Durability::Tmpfs => "tmpfs",
        }
    }
}

/// `plugline gateway` in the gw namespace with its state directory in `durability`'s base;
/// stopped and its directory removed on drop.
fn start_ours(net: &HomeNet, durability: Durability) -> io::Result<OurGateway> {
    let dir = durability
        .base()
        .join(format!("pl-{}-gwbench-{}", net.id, durability.short()));
    let gw = OurGateway::start(
        net,
        Path::new(PLUGLINE),
        dir,
        &["--max-mappings-per-host", "30000"],
    )?;
    // `ip netns exec` execs `plugline`, which execs `plugline-gateway` (the kernel keeps 15
    // bytes of the name), so the guarded pid is the gateway's.
    let name = plugline_testing::process_name(gw.pid());
    if name.as_deref() != Some("plugline-gatewa") {
        return Err(io::Error::other(format!(
            "pid {} is {name:?}, not plugline-gateway",
            gw.pid()
        )));
    }
    Ok(gw)
}

/// Removes bench directories of dead runs (`pl-<pid>x<n>-gwbench-*` in /var/tmp and /dev/shm).
fn sweep_own_leftovers() {
    for base in [Durability::Disk.base(), Durability::Tmpfs.base()] {
        let Ok(entries) = std::fs::read_dir(base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_prefix("pl-")
                .and_then(|r| r.split_once("-gwbench-"))
                .map(|(id, _)| id.to_string())
            else {
                continue;
            };
            let pid = id.split_once('x').and_then(|(p, _)| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new("/proc").join(p.to_string()).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// One gateway's figures
// ---------------------------------------------------------------------------------------

enum SizeResult {
    Measured { add: Stats, delete: Stats },
    NotMeasured(String),
}

struct Figures {
    label: String,
    tp1: Rate,
    tpn: Rate,
    /// 16 connections, each request on its own connection (`Connection: close`).
    tpn_close: Rate,
    python: Rate,
    python_how: String,
    sizes: Vec<(usize, SizeResult)>,
    ssdp: Stats,
    ssdp_lost: usize,
    rss_idle: Option<Rss>,
    rss_at: Option<Rss>,
    fill_seconds: f64,
    cpu: Option<String>,
    notes: Vec<String>,
}

impl Figures {
    fn size(&self, n: usize) -> Option<(Stats, Stats)> {
        self.sizes.iter().find_map(|(s, r)| match r {
            SizeResult::Measured { add, delete } if *s == n => Some((*add, *delete)),
            _ => None,
        })
    }
}

/// The measurements common to both gateways. `pid` is the gateway's process; `cpu`: sample
/// its CPU during the concurrent throughput run; `prior`: seconds per existing mapping and
/// change assumed before any measurement (for the fill projection).
fn measure(net: &HomeNet, label: &str, pid: u32, cpu: bool, prior: f64) -> io::Result<Figures> {
    let mut notes = Vec::new();
    thread::sleep(Duration::from_millis(500));
    let rss_idle = Rss::of(pid);
    let ep = Endpoint::discover(net)?;
    let backlog = listen_backlog(net);
    let fill_connections = backlog.map_or(CONCURRENCY, |b| b.clamp(1, CONCURRENCY));
    println!(
        "{NAME}: [{label}] control {} ({}); HTTP listen backlog {}; idle VmRSS {}",
        ep.control_path,
        ep.service_type,
        backlog.map_or_else(|| "?".into(), |b| b.to_string()),
        rss_idle.map_or_else(|| "?".into(), |r| r.cell())
    );
    let (ssdp, ssdp_lost) = msearch(net)?;
    println!(
        "{NAME}: [{label}] M-SEARCH first answer median / p99 {} ms (n={}, lost {ssdp_lost})",
        ssdp.median_p99(),
        ssdp.n
    );

    // Throughput on a (nearly) empty table.
    net.phone.enter(|| {
        let mut warm = Client::new(&ep);
        warm.call(&add_action(TP_BASE - 1))
            .and_then(|()| warm.call(&delete_action(TP_BASE - 1)))
    })?;
    let tp1 = throughput(net, &ep, 1, false)?;
    let before = cpu.then(|| Cpu::sample(pid));
    let perf = if cpu { start_perf(label, pid) } else { None };
    let tpn = throughput(net, &ep, CONCURRENCY, false)?;
    if let Some(p) = perf {
        let _ = p.stop();
    }
    let cpu = before.map(|b| b.report(&Cpu::sample(pid), tpn.seconds));
    let tpn_close = throughput(net, &ep, CONCURRENCY, true)?;
    let (python, python_how) = python_throughput(net)?;
    println!(
        "{NAME}: [{label}] add+delete ops/s: Rust c=1 {:.0} ({} ops), c={CONCURRENCY} {:.0} ({} ops), c={CONCURRENCY} with Connection: close {:.0} ({} ops), python c=1 {:.0} ({} ops, gateway by {python_how})",
        tp1.per_second(),
        tp1.ops,
        tpn.per_second(),
        tpn.ops,
        tpn_close.per_second(),
        tpn_close.ops,
        python.per_second(),
        python.ops
    );
    if let Some(c) = &cpu {
        println!("{NAME}: [{label}] CPU during the c={CONCURRENCY} run (% of one core): {c}");
    }

    // Latency at growing table sizes.
    let mut sizes = Vec::new();
    let mut reached = 0usize;
    let mut fill_spent = Duration::ZERO;
    let mut base_add: Option<f64> = None;
    let mut slope = prior;
    let mut rss_at = None;
    let mut capped = false;
    for &n in measured_sizes() {
        // Projected fill time: Σ (a + slope·k) for k in reached..n.
        let a = base_add.unwrap_or(0.001);
        let projected =
            (n - reached) as f64 * a + slope * ((n * n) as f64 - (reached * reached) as f64) / 2.0;
        if capped || fill_spent.as_secs_f64() + projected > FILL_BUDGET.as_secs_f64() {
            capped = true;
            let text = format!("not measured (fill would take {projected:.0} s)");
            println!("{NAME}: [{label}] {n} mappings: {text}");
            sizes.push((n, SizeResult::NotMeasured(text)));
            continue;
        }
        let t0 = Instant::now();
        let left = FILL_BUDGET.saturating_sub(fill_spent);
        reached = fill(
            net,
            &ep,
            fill_connections,
            (reached, n),
            t0 + left + FILL_GRACE,
        )?;
        let took = t0.elapsed();
        fill_spent += took;
        if reached < n {
            capped = true;
            let text = format!(
                "not measured (fill stopped at {reached} after {:.0} s)",
                took.as_secs_f64()
            );
            println!("{NAME}: [{label}] {n} mappings: {text}");
            sizes.push((n, SizeResult::NotMeasured(text)));
            continue;
        }
        let (add, delete) = latency(net, &ep)?;
        println!(
            "{NAME}: [{label}] {n} mappings (filled in {:.1} s): add {} ms, delete {} ms (median / p99, n={}); conntrack entries in gw {}",
            took.as_secs_f64(),
            add.median_p99(),
            delete.median_p99(),
            add.n,
            conntrack_count(net).map_or_else(|| "?".into(), |c| c.to_string())
        );
        let add_s = add.median / 1e3;
        match base_add {
            None => base_add = Some(add_s),
            Some(base) => slope = ((add_s - base) / n as f64).max(0.0),
        }
        if n == RSS_SIZE {
            // Read at rest, as the idle figure is: a gateway with 5,000 mappings spends most
            // of its life between requests.
            thread::sleep(RSS_SETTLE);
            rss_at = Rss::of(pid);
            println!(
                "{NAME}: [{label}] VmRSS at {n} mappings {}",
                rss_at.map_or_else(|| "?".into(), |r| r.cell())
            );
        }
        sizes.push((n, SizeResult::Measured { add, delete }));
    }
    if ssdp_lost > 0 {
        notes.push(format!(
            "{ssdp_lost} M-SEARCH without an answer within {SSDP_TIMEOUT:?}"
        ));
    }
    if let Some(b) = backlog.filter(|b| *b < CONCURRENCY) {
        notes.push(format!(
            "HTTP listen backlog {b}: with {CONCURRENCY} connections SYNs are dropped and retried after 1 s; filled with {fill_connections} connections"
        ));
    }
    Ok(Figures {
        label: label.to_string(),
        tp1,
        tpn,
        tpn_close,
        python,
        python_how,
        sizes,
        ssdp,
        ssdp_lost,
        rss_idle,
        rss_at,
        fill_seconds: fill_spent.as_secs_f64(),
        cpu,
        notes,
    })
}

fn run_ours(durability: Durability) -> io::Result<(Figures, String)> {
    let net = HomeNet::new()?;
    let gw = start_ours(&net, durability)?;
    let fs = file_system(gw.state_dir());
    let sync = fdatasync_ms(gw.state_dir())?;
    let where_ = format!(
        "{} ({fs}; append + fdatasync {} ms)",
        gw.state_dir().display(),
        ms(sync)
    );
    println!("{NAME}: [{}] state dir {where_}", durability.label());
    let result = measure(&net, durability.label(), gw.pid(), true, 0.0);
    if quick() {
        let mut gw = gw;
        let _ = gw.stop();
        for line in gw.log().lines().filter(|l| l.contains("journal syncs")) {
            println!("{NAME}: [{}] {line}", durability.label());
        }
        return result.map(|f| (f, where_));
    }
    match result {
        Ok(f) => Ok((f, where_)),
        Err(e) => Err(io::Error::other(format!(
            "{e}\n--- gateway log ---\n{}",
            gw.log()
        ))),
    }
}

fn run_miniupnpd() -> io::Result<Figures> {
    let net = HomeNet::new()?;
    let igd = Miniupnpd::start(
        &net,
        Options {
            debug: false,
            ..Default::default()
        },
    )?;
    let pid = igd
        .pid()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| io::Error::other("miniupnpd has no pid"))?;
    measure(
        &net,
        "miniupnpd 2.3.1",
        pid,
        false,
        MINIUPNPD_SECONDS_PER_ENTRY,
    )
    .map_err(|e| io::Error::other(format!("{e}\n--- miniupnpd log ---\n{}", igd.log())))
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn report(ours: &[(Figures, String)], mini: &Figures, total: Duration) -> String {
    let mut out = String::new();
    let o: Vec<&Figures> = ours.iter().map(|(f, _)| f).collect();
    let _ = writeln!(
        out,
        "### Gateway benchmark: plugline gateway vs miniupnpd 2.3.1\n"
    );
    let _ = writeln!(
        out,
        "`cargo bench -p plugline --bench gateway`: namespace network, both gateways in gw, \
         clients on the phone host; nftables backend; secure mode on. Latency = one connection, \
         fresh UDP port, median / p99 ms. Ratios: ours vs miniupnpd, > 1× means ours is better."
    );
    for (f, where_) in ours {
        let _ = writeln!(out, "- {}: {where_}", f.label);
    }
    let _ = writeln!(out);
    let _ = write!(out, "| measurement |");
    for f in &o {
        let _ = write!(out, " {} |", f.label);
    }
    let _ = write!(out, " {} |", mini.label);
    for f in &o {
        let _ = write!(out, " ratio ({}) |", f.label.trim_start_matches("ours, "));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|{}", "---|".repeat(2 + 2 * o.len()));

    let row = |out: &mut String, name: &str, cells: Vec<String>, ratios: Vec<String>| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} |",
            cells.join(" | "),
            ratios.join(" | ")
        );
    };
    let all = || o.iter().copied().chain(std::iter::once(mini));
    let rate_row = |out: &mut String, name: &str, pick: &dyn Fn(&Figures) -> Rate| {
        row(
            out,
            name,
            all()
                .map(|f| format!("{:.0}", pick(f).per_second()))
                .collect(),
            o.iter()
                .map(|f| ratio(pick(f).per_second() / pick(mini).per_second()))
                .collect(),
        );
    };
    rate_row(
        &mut out,
        "add+delete ops/s, Rust client, 1 connection",
        &|f| f.tp1,
    );
    rate_row(
        &mut out,
        &format!("add+delete ops/s, Rust client, {CONCURRENCY} connections"),
        &|f| f.tpn,
    );
    rate_row(
        &mut out,
        &format!(
            "add+delete ops/s, Rust client, {CONCURRENCY} connections, `Connection: close` (a connection per request)"
        ),
        &|f| f.tpn_close,
    );
    rate_row(&mut out, "add+delete ops/s, python3-miniupnpc", &|f| {
        f.python
    });
    for (i, what) in ["AddPortMapping", "DeletePortMapping"].iter().enumerate() {
        for &n in &SIZES {
            let cell = |f: &Figures| -> String {
                match f.sizes.iter().find(|(s, _)| *s == n).map(|(_, r)| r) {
                    Some(SizeResult::Measured { add, delete }) => {
                        if i == 0 {
                            add.median_p99()
                        } else {
                            delete.median_p99()
                        }
                    }
                    Some(SizeResult::NotMeasured(t)) => t.clone(),
                    None => "–".into(),
                }
            };
            let pick = |f: &Figures| f.size(n).map(|(a, d)| if i == 0 { a } else { d });
            row(
                &mut out,
                &format!("{what} ms at {n} mapping{}", if n == 1 { "" } else { "s" }),
                all().map(cell).collect(),
                o.iter()
                    .map(|f| match (pick(f), pick(mini)) {
                        (Some(a), Some(b)) => ratio(b.median / a.median),
                        _ => "–".into(),
                    })
                    .collect(),
            );
        }
    }
    row(
        &mut out,
        "M-SEARCH (IGD:2) first answer ms",
        all()
            .map(|f| {
                let lost = if f.ssdp_lost > 0 {
                    format!(" ({} lost)", f.ssdp_lost)
                } else {
                    String::new()
                };
                format!("{}{lost}", f.ssdp.median_p99())
            })
            .collect(),
        o.iter()
            .map(|f| ratio(mini.ssdp.median / f.ssdp.median))
            .collect(),
    );
    let rss_ratio = |a: Option<Rss>, b: Option<Rss>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}× the size", a.own_kib as f64 / b.own_kib as f64),
        _ => "–".into(),
    };
    row(
        &mut out,
        "VmRSS idle",
        all()
            .map(|f| f.rss_idle.map_or_else(|| "–".into(), |r| r.cell()))
            .collect(),
        o.iter()
            .map(|f| rss_ratio(f.rss_idle, mini.rss_idle))
            .collect(),
    );
    row(
        &mut out,
        &format!("VmRSS at {RSS_SIZE} mappings"),
        all()
            .map(|f| f.rss_at.map_or_else(|| "not measured".into(), |r| r.cell()))
            .collect(),
        o.iter().map(|f| rss_ratio(f.rss_at, mini.rss_at)).collect(),
    );
    row(
        &mut out,
        "time spent filling the table (s)",
        all().map(|f| format!("{:.1}", f.fill_seconds)).collect(),
        o.iter().map(|_| String::new()).collect(),
    );
    let _ = writeln!(out);

    // Targets.
    let _ = writeln!(out, "Targets:");
    let best = |f: &Figures| f.tp1.per_second().max(f.tpn.per_second());
    for f in &o {
        let r = best(f) / best(mini);
        let rp = f.python.per_second() / mini.python.per_second();
        let _ = writeln!(
            out,
            "- {} throughput ≥ {TARGET_THROUGHPUT_RATIO:.0}× miniupnpd (Rust client, best of 1 and {CONCURRENCY} connections on each side): {} ({:.1}×: {:.0} vs {:.0} ops/s; python3-miniupnpc {:.1}×)",
            f.label,
            verdict(r >= TARGET_THROUGHPUT_RATIO),
            r,
            best(f),
            best(mini),
            rp
        );
    }
    let last = SIZES[SIZES.len() - 1];
    for f in &o {
        match (f.size(SIZES[0]), f.size(last)) {
            (Some((a0, d0)), Some((a, d))) => {
                let (ga, gd) = (a.median / a0.median, d.median / d0.median);
                let _ = writeln!(
                    out,
                    "- {} add/delete at {last} mappings within {TARGET_LATENCY_GROWTH:.0}× of the empty table (medians): {} (add {:.2}×, delete {:.2}×)",
                    f.label,
                    verdict(ga <= TARGET_LATENCY_GROWTH && gd <= TARGET_LATENCY_GROWTH),
                    ga,
                    gd
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "- {} add/delete at {last} mappings: not measured",
                    f.label
                );
            }
        }
    }
    for f in &o {
        let _ = writeln!(
            out,
            "- {} first SSDP answer ≤ {TARGET_SSDP_MS:.0} ms (median): {} ({} ms; p99 {} ms)",
            f.label,
            verdict(f.ssdp.median <= TARGET_SSDP_MS && f.ssdp_lost == 0),
            ms(f.ssdp.median),
            ms(f.ssdp.p99)
        );
    }
    for f in &o {
        let Some(a) = f.rss_at else {
            let _ = writeln!(
                out,
                "- {} VmRSS at {RSS_SIZE} mappings: not measured",
                f.label
            );
            continue;
        };
        let (b, whose) = match mini.rss_at {
            Some(b) => (b.own_kib, "miniupnpd's in this run"),
            None => (
                MINIUPNPD_RSS_5000_PEERS_KIB,
                "miniupnpd's per PEERS.md (not reached in this run)",
            ),
        };
        let _ = writeln!(
            out,
            "- {} VmRSS at {RSS_SIZE} mappings ≤ miniupnpd's: {} ({:.1} MB vs {:.1} MB, {whose}; with the nft child {:.1} MB)",
            f.label,
            verdict(a.own_kib <= b),
            a.own_kib as f64 / 1024.0,
            b as f64 / 1024.0,
            (a.own_kib + a.children_kib) as f64 / 1024.0
        );
    }
    let _ = writeln!(out);
    for f in all() {
        let split = |r: Option<Rss>| {
            r.map_or_else(
                || "–".to_string(),
                |r| {
                    format!(
                        "anon {:.1} MB + file {:.1} MB",
                        r.anon_kib as f64 / 1024.0,
                        r.file_kib as f64 / 1024.0
                    )
                },
            )
        };
        let _ = writeln!(
            out,
            "- VmRSS of {}: idle {}; at {RSS_SIZE} mappings {}",
            f.label,
            split(f.rss_idle),
            split(f.rss_at)
        );
    }
    for f in &o {
        if let Some(c) = &f.cpu {
            let _ = writeln!(
                out,
                "- CPU during the {CONCURRENCY}-connection run, {} (% of one core, 2 cores): {c}",
                f.label
            );
        }
    }
    for f in all() {
        for n in &f.notes {
            let _ = writeln!(out, "- note ({}): {n}", f.label);
        }
        let _ = writeln!(
            out,
            "- python3-miniupnpc selected {} by {}",
            f.label, f.python_how
        );
    }
    let _ = writeln!(
        out,
        "- whole run: {:.0} s; load average at the end {} (2 cores, shared)",
        total.as_secs_f64(),
        load_average()
    );
    out
}

/// `GATEWAY_BENCH_QUICK=1`: only our gateway, sizes up to [`RSS_SIZE`], no report (for
/// iterating on the gateway's speed; the figures to compare are those of a full run).
fn quick() -> bool {
    std::env::var_os("GATEWAY_BENCH_QUICK").is_some_and(|v| v == "1")
}

/// The table sizes this run measures.
fn measured_sizes() -> &'static [usize] {
    if quick() {
        &SIZES[..3]
    } else {
        &SIZES
    }
}

fn run() -> io::Result<()> {
    let start = Instant::now();
    sweep_own_leftovers();
    println!(
        "{NAME}: plugline binary {PLUGLINE}; load average {}",
        load_average()
    );
    if !PLUGLINE.contains("/release/") {
        println!("{NAME}: WARNING: not a release build; figures are not representative");
    }
    let mut ours = Vec::new();
    for d in [Durability::Disk, Durability::Tmpfs] {
        ours.push(run_ours(d)?);
    }
    if quick() {
        println!("{NAME}: quick run (GATEWAY_BENCH_QUICK=1): miniupnpd and the report left out");
        return Ok(());
    }
    let mini = run_miniupnpd()?;
    let text = report(&ours, &mini, start.elapsed());
    println!();
    println!("{text}");
    if let Some(path) = std::env::var_os("GATEWAY_BENCH_MARKDOWN") {
        std::fs::write(&path, &text).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e}", PathBuf::from(&path).display()))
        })?;
        println!(
            "{NAME}: markdown written to {}",
            PathBuf::from(path).display()
        );
    }
    Ok(())
}
