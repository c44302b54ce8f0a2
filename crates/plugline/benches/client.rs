//! Client benchmark: `plugline` against miniupnpc's `upnpc`, both driving the reference gateway
//! (miniupnpd, normal mode) in the namespace home network, from the phone host.
//!
//! Run with `cargo bench -p plugline --bench client` (root, miniupnpd and upnpc needed; otherwise
//! it prints `SKIP client bench: <reason>` and exits 0, or fails under
//! `PLUGLINE_REQUIRE_PEERS=1`). It measures the wall-clock time of whole command invocations
//! (spawn to exit, through `ip netns exec`), so both tools pay process start-up:
//!
//! * discover + external IP: `plugline discover --json` vs `upnpc -i -s`;
//! * with the gateway URL given (no discovery): status, add, list and delete.
//!
//! Environment: `BENCH_ITERATIONS=N` sets the runs per measurement (default 20; `upnpc -i -s`,
//! which waits ~2 s every time, runs N/4 times, at least 1, at most 10); `PLUGLINE_BIN=PATH`
//! benchmarks another plugline executable than the one cargo built next to this bench.
//!
//! Without cargo's `--bench` argument (e.g. `cargo test --all-targets`) it does nothing.

mod common;

use std::io;
use std::path::Path;
use std::process::{ExitCode, Output};
use std::time::{Duration, Instant};

use common::{args, env_count, plugline_bin, Stats};

use plugline_testing::miniupnpd::{Miniupnpd, Options};
use plugline_testing::{require_homenet, require_programs, HomeNet, Netns, GW_WAN_IP, PHONE_IP};

const NAME: &str = "client bench";
/// Default runs per measurement (plugline, and upnpc with the gateway URL).
const DEFAULT_ITERATIONS: usize = 20;
/// Default runs of `upnpc -i -s` (about 2 s each).
const DEFAULT_UPNPC_DISCOVERY: usize = 5;
/// Upper bounds whatever the environment says, to keep every loop (and the run) bounded.
const MAX_ITERATIONS: usize = 200;
const MAX_UPNPC_DISCOVERY: usize = 10;
/// One invocation that takes longer than this is killed and aborts the bench.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// First port of the mappings plugline adds (one per run), and of those upnpc adds.
const PLUGLINE_PORT_BASE: u16 = 40000;
const UPNPC_PORT_BASE: u16 = 45000;
/// The target of the "discover + external IP" comparison.
const TARGET_RATIO: f64 = 30.0;
/// miniupnpd's fixed delay before it answers an M-SEARCH (PEERS.md).
const SSDP_FLOOR_MS: f64 = 50.4;

fn main() -> ExitCode {
    common::bench_main(
        NAME,
        "client",
        || require_homenet(NAME) && require_programs(NAME, &["miniupnpd", "upnpc"]),
        run,
    )
}

/// One timed invocation, bounded by [`COMMAND_TIMEOUT`].
fn timed(ns: &Netns, program: &Path, args: &[String]) -> io::Result<(Duration, Output)> {
    common::timed(ns, program, args, COMMAND_TIMEOUT)
}

/// Runs one invocation, checks it (exit status 0 and `check` on stdout) and returns its time.
fn measure(
    ns: &Netns,
    program: &Path,
    args: &[String],
    check: &dyn Fn(&str) -> bool,
) -> io::Result<Duration> {
    common::checked(ns, program, args, COMMAND_TIMEOUT, check).map(|(elapsed, _)| elapsed)
}

/// Whether `needle` (an address or a port) occurs in `text` not as part of a longer number:
/// `203.0.113.1` is not found in `203.0.113.10`.
fn contains_word(text: &str, needle: &str) -> bool {
    let number_char = |c: char| c.is_ascii_digit() || c == '.';
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(number_char)
            && !after.is_some_and(|c| c.is_ascii_digit() || (c == '.' && needle.contains('.')))
    })
}

/// `min / median / max (n=…)` in milliseconds.
fn cell(stats: &Stats) -> String {
    format!("{} (n={})", stats.min_median_max(), stats.n)
}

struct Row {
    operation: &'static str,
    plugline: Stats,
    upnpc: Stats,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.upnpc.median / self.plugline.median
    }
}

fn run() -> io::Result<()> {
    let (plugline, how) = plugline_bin()?;
    let upnpc = plugline_testing::find_program("upnpc")
        .ok_or_else(|| io::Error::other("upnpc not found"))?;
    let iterations = env_count("BENCH_ITERATIONS")?.map_or(DEFAULT_ITERATIONS, |n| n);
    let iterations = iterations.min(MAX_ITERATIONS);
    let upnpc_discovery = env_count("BENCH_ITERATIONS")?
        .map_or(DEFAULT_UPNPC_DISCOVERY, |n| (n / 4).max(1))
        .min(MAX_UPNPC_DISCOVERY);

    println!("{NAME}: plugline binary {} ({how})", plugline.display());
    if !plugline.components().any(|c| c.as_os_str() == "release") {
        println!(
            "{NAME}: WARNING: this plugline is not a release build; figures are not representative"
        );
    }
    println!(
        "{NAME}: {iterations} runs per measurement, {upnpc_discovery} of `upnpc -i -s`; \
         wall-clock per invocation (spawn to exit via `ip netns exec`, from the phone host)"
    );

    let bench_start = Instant::now();
    // Declared first so that it is dropped last (after miniupnpd).
    let net = HomeNet::new()?;
    let igd = Miniupnpd::start(
        &net,
        Options {
            debug: false,
            ..Default::default()
        },
    )?;
    let url = igd.root_desc_url();
    let phone = &net.phone;
    let wan_ip = GW_WAN_IP.to_string();
    let has_wan_ip = |s: &str| contains_word(s, &wan_ip);
    let always = |_: &str| true;

    // Reference: what `ip netns exec` plus an empty process costs.
    let true_bin = plugline_testing::find_program("true")
        .ok_or_else(|| io::Error::other("`true` not found"))?;
    let mut floor = Vec::new();
    for _ in 0..iterations {
        floor.push(measure(phone, &true_bin, &[], &always)?);
    }
    let floor = Stats::of(&floor);

    let mut rows = Vec::new();

    // 1. Discover + external IP. Warm-up once each (page cache, first ARP), not counted.
    let pl_discover = args(&["discover", "--json"]);
    let up_discover = args(&["-i", "-s"]);
    measure(phone, &plugline, &pl_discover, &has_wan_ip)?;
    let (mut pl, mut up) = (Vec::new(), Vec::new());
    for i in 0..iterations {
        pl.push(measure(phone, &plugline, &pl_discover, &has_wan_ip)?);
        // Spread the slow upnpc runs among the plugline ones.
        if i % (iterations / upnpc_discovery).max(1) == 0 && up.len() < upnpc_discovery {
            up.push(measure(phone, &upnpc, &up_discover, &has_wan_ip)?);
        }
    }
    while up.len() < upnpc_discovery {
        up.push(measure(phone, &upnpc, &up_discover, &has_wan_ip)?);
    }
    rows.push(Row {
        operation: "discover + external IP",
        plugline: Stats::of(&pl),
        upnpc: Stats::of(&up),
    });

    // 2. With the gateway URL given: the two tools alternate, so drift hits both alike.
    let pl_status = args(&["status", "--gateway", &url, "--json"]);
    let up_status = args(&["-u", &url, "-s"]);
    measure(phone, &plugline, &pl_status, &has_wan_ip)?;
    measure(phone, &upnpc, &up_status, &has_wan_ip)?;
    let (mut pl, mut up) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        pl.push(measure(phone, &plugline, &pl_status, &has_wan_ip)?);
        up.push(measure(phone, &upnpc, &up_status, &has_wan_ip)?);
    }
    rows.push(Row {
        operation: "external IP (status, URL given)",
        plugline: Stats::of(&pl),
        upnpc: Stats::of(&up),
    });

    let ports = |base: u16| (0..iterations).map(move |i| base + i as u16);
    let (mut pl, mut up) = (Vec::new(), Vec::new());
    for (p, u) in ports(PLUGLINE_PORT_BASE).zip(ports(UPNPC_PORT_BASE)) {
        let (p, u) = (p.to_string(), u.to_string());
        let a = args(&["add", "udp", &p, "--external-port", &p, "--gateway", &url]);
        pl.push(measure(phone, &plugline, &a, &always)?);
        let a = args(&[
            "-u",
            &url,
            "-a",
            &PHONE_IP.to_string(),
            &u,
            &u,
            "UDP",
            "3600",
        ]);
        up.push(measure(phone, &upnpc, &a, &|s: &str| {
            s.contains("is redirected to internal")
        })?);
    }
    rows.push(Row {
        operation: "add UDP mapping",
        plugline: Stats::of(&pl),
        upnpc: Stats::of(&up),
    });

    // List with every mapping of the add step present (2 × iterations).
    let first_pl = format!("{PLUGLINE_PORT_BASE}");
    let first_up = format!("{UPNPC_PORT_BASE}");
    let lists_all = |s: &str| contains_word(s, &first_pl) && contains_word(s, &first_up);
    let pl_list = args(&["list", "--gateway", &url]);
    let up_list = args(&["-u", &url, "-l"]);
    let (mut pl, mut up) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        pl.push(measure(phone, &plugline, &pl_list, &lists_all)?);
        up.push(measure(phone, &upnpc, &up_list, &lists_all)?);
    }
    rows.push(Row {
        operation: "list mappings",
        plugline: Stats::of(&pl),
        upnpc: Stats::of(&up),
    });

    let (mut pl, mut up) = (Vec::new(), Vec::new());
    for (p, u) in ports(PLUGLINE_PORT_BASE).zip(ports(UPNPC_PORT_BASE)) {
        let (p, u) = (p.to_string(), u.to_string());
        let a = args(&["delete", "udp", &p, "--gateway", &url]);
        pl.push(measure(phone, &plugline, &a, &always)?);
        let a = args(&["-u", &url, "-d", &u, "UDP"]);
        up.push(measure(phone, &upnpc, &a, &|s: &str| {
            s.contains("returned : 0")
        })?);
    }
    rows.push(Row {
        operation: "delete UDP mapping",
        plugline: Stats::of(&pl),
        upnpc: Stats::of(&up),
    });

    // Everything added was deleted.
    let (_, out) = timed(phone, &upnpc, &up_list)?;
    let left = String::from_utf8_lossy(&out.stdout);
    let leftover = ports(PLUGLINE_PORT_BASE)
        .chain(ports(UPNPC_PORT_BASE))
        .any(|p| contains_word(&left, &p.to_string()));
    if leftover {
        return Err(io::Error::other(format!(
            "mappings left after the delete step:\n{left}"
        )));
    }
    let total = bench_start.elapsed();
    drop(igd);
    drop(net);

    println!();
    println!("| operation | plugline min / median / max ms | upnpc min / median / max ms | ratio (upnpc / plugline median) |");
    println!("|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.1}× |",
            row.operation,
            cell(&row.plugline),
            cell(&row.upnpc),
            row.ratio()
        );
    }
    println!(
        "| (reference: `ip netns exec … true`) | {} | | |",
        cell(&floor)
    );
    println!();
    let discovery = &rows[0];
    println!(
        "note: miniupnpd waits {SSDP_FLOOR_MS} ms before answering an M-SEARCH (anti-flood \
         delay): that is the floor of any discovery against it; plugline's median is {:.1} ms \
         above it (process start and `ip netns exec` included, {:.1} ms for an empty process).",
        discovery.plugline.median - SSDP_FLOOR_MS,
        floor.median
    );
    let met = discovery.ratio() >= TARGET_RATIO;
    println!(
        "target \"discover + external IP ≥ {TARGET_RATIO:.0}× faster than upnpc\": {} \
         ({:.1}×: upnpc {:.1} ms / plugline {:.1} ms, medians)",
        if met { "MET" } else { "NOT MET" },
        discovery.ratio(),
        discovery.upnpc.median,
        discovery.plugline.median
    );
    println!("{NAME}: done in {:.1} s", total.as_secs_f64());
    Ok(())
}
