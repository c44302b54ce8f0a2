//! Test harness for Plugline: the home network of `shared/TOPOLOGY.md` built from Linux network
//! namespaces, guards for peer programs, and skips that turn into failures under
//! `PLUGLINE_REQUIRE_PEERS=1`.
//!
//! The network ([`HomeNet`]) has three hosts, each a namespace named `pl-<role>-<id>`:
//!
//! | host  | namespace       | interfaces and addresses                                      |
//! |-------|-----------------|---------------------------------------------------------------|
//! | phone | `pl-phone-<id>` | `eth0` 192.168.0.91/24, default via 192.168.0.1, 224.0.0.0/4 on `eth0` |
//! | gw    | `pl-gw-<id>`    | `lan0` 192.168.0.1/24, `wan0` 203.0.113.1/24, forwarding, masquerade out of `wan0`, 224.0.0.0/4 on `lan0` |
//! | wan   | `pl-wan-<id>`   | `eth0` 203.0.113.10/24 only (no route to the LAN)              |
//!
//! `<id>` is `<pid>x<counter>` ([`unique_id`]), so tests running in parallel threads of one test
//! binary, and test binaries run one after the other, never collide. [`HomeNet::new`] first
//! sweeps leftovers (namespaces, temporary veths, temporary directories) of processes that no
//! longer exist; dropping a [`HomeNet`] deletes its namespaces, also when a test panics.
//!
//! Nothing here ever addresses anything outside these namespaces or loopback.
//!
//! Everything needs root (`ip netns`, `nft`); tests call [`require_root`] /
//! [`require_programs`] (or [`require_homenet`]) first and return early when they say `false`.
//!
//! Drop order: Rust drops local variables in reverse order of declaration, so declare the
//! [`HomeNet`] *first* and the guards of programs running inside it ([`ChildGuard`],
//! [`miniupnpd::Miniupnpd`]) after it; they are then stopped before the namespaces go away. As a
//! safety net, dropping a [`HomeNet`] also kills (SIGKILL) whatever process is still inside its
//! namespaces.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

pub mod kamailio;
pub mod miniupnpd;
pub mod plugline;
pub mod stun;

/// The phone's address on the LAN (namespace `pl-phone-<id>`, interface [`HOST_IF`]).
pub const PHONE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 91);
/// The gateway's LAN address (namespace `pl-gw-<id>`, interface [`LAN_IF`]).
pub const GW_LAN_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// The gateway's WAN ("public") address (namespace `pl-gw-<id>`, interface [`WAN_IF`]).
pub const GW_WAN_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The internet host's address (namespace `pl-wan-<id>`, interface [`HOST_IF`]).
pub const WAN_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The gateway's LAN interface.
pub const LAN_IF: &str = "lan0";
/// The gateway's WAN interface.
pub const WAN_IF: &str = "wan0";
/// The interface of the phone and of the wan host.
pub const HOST_IF: &str = "eth0";
/// Prefix length of both the LAN (192.168.0.0/24) and the WAN (203.0.113.0/24).
pub const PREFIX_LEN: u8 = 24;
/// The SSDP multicast group and port (LAN side only).
pub const SSDP_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(239, 255, 255, 250),
    1900,
));

/// Where named network namespaces live (`ip netns`).
const NETNS_DIR: &str = "/run/netns";
/// Directories searched after `PATH` by [`find_program`].
const EXTRA_BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin"];
/// How long [`ChildGuard`] waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Poll interval of bounded waits.
const POLL: Duration = Duration::from_millis(10);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);
/// Serialises namespace creation and sweeping inside one process (`ip netns add` sets up the
/// `/run/netns` mount on first use, which must not race).
static SETUP_LOCK: Mutex<()> = Mutex::new(());

/// A short id unique on this machine while this process lives: `<pid>x<counter>`.
///
/// The pid part lets a later run recognise leftovers of dead processes (see [`HomeNet::new`]).
pub fn unique_id() -> String {
    format!(
        "{}x{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// Skips a test: prints `SKIP <test>: <reason>` to stderr and returns `false`.
///
/// When the environment has `PLUGLINE_REQUIRE_PEERS=1` it panics instead with
/// `<test>: <reason> (PLUGLINE_REQUIRE_PEERS=1 forbids skipping)`, so CI cannot silently skip.
pub fn skip(test: &str, reason: &str) -> bool {
    if std::env::var_os("PLUGLINE_REQUIRE_PEERS").is_some_and(|v| v == "1") {
        panic!("{test}: {reason} (PLUGLINE_REQUIRE_PEERS=1 forbids skipping)");
    }
    eprintln!("SKIP {test}: {reason}");
    false
}

/// `true` when running as root (effective uid 0), else [`skip`]s.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || skip(test, &format!("needs root (euid is {euid})"))
}

/// `true` when every program is found by [`find_program`], else [`skip`]s naming the missing ones.
pub fn require_programs(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    missing.is_empty() || skip(test, &format!("missing program(s): {}", missing.join(", ")))
}

/// [`require_root`] and [`require_programs`] for what [`HomeNet::new`] needs (`ip`, `nft`).
pub fn require_homenet(test: &str) -> bool {
    require_root(test) && require_programs(test, &["ip", "nft"])
}

/// Finds an executable: a name with a `/` is taken as a path; otherwise each directory of `PATH`
/// is searched, then `/usr/sbin`, `/sbin`, `/usr/bin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    fn executable(p: &Path) -> bool {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The `ip` binary (falls back to plain `ip`, looked up by `Command`).
fn ip_program() -> PathBuf {
    find_program("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

/// Runs a command to completion; `Err` (with its stderr) unless it exits with status 0.
fn run_checked(mut cmd: Command, stdin: Option<&str>) -> io::Result<Output> {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{what}`: {e}")))?;
    if let Some(text) = stdin {
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(text.as_bytes())?;
        }
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `program arg arg ...` for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `ip <args>` in the current (root) namespace.
fn ip(args: &[&str]) -> io::Result<Output> {
    let mut cmd = Command::new(ip_program());
    cmd.args(args);
    run_checked(cmd, None)
}

/// Sends `signal` to `pid`, ignoring errors (the process may be gone).
fn signal(pid: i32, signal: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) takes plain integers; pid > 0 so it targets exactly one process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The command name (`comm`) of process `pid` when it exists and has not exited; `None` for a
/// missing pid or a zombie (an exited process its parent has not reaped yet, e.g. a daemon
/// whose new parent is init).
pub fn process_name(pid: u32) -> Option<String> {
    // /proc/<pid>/stat is `pid (comm) state ...`; comm may itself contain ") ".
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.split_once(" (")?;
    let (comm, rest) = rest.rsplit_once(") ")?;
    (!rest.starts_with(['Z', 'X'])).then(|| comm.to_string())
}

/// A named network namespace (`/run/netns/<name>`). A handle only: dropping it deletes nothing
/// ([`HomeNet`] owns the namespaces it creates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A handle to the (existing or future) namespace `name`.
    pub fn from_name(name: impl Into<String>) -> Netns {
        Netns { name: name.into() }
    }

    /// The namespace's name, e.g. `pl-gw-1234x0`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Whether `/run/netns/<name>` exists.
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// `ip netns exec <name> <program>`: add arguments, stdio etc. and run or [`spawn`](Self::spawn) it.
    ///
    /// `ip netns exec` also gives the program a private mount namespace (so a bind mount it
    /// makes, e.g. over `/dev/console`, never reaches the host).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(ip_program());
        cmd.arg("netns")
            .arg("exec")
            .arg(&self.name)
            .arg(program.as_ref());
        cmd
    }

    /// Runs `args[0] args[1..]` inside the namespace and returns its output; `Err` with its
    /// stderr text when it cannot start or exits with a status other than 0.
    pub fn run(&self, args: &[&str]) -> io::Result<Output> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut cmd = self.command(program);
        cmd.args(rest);
        run_checked(cmd, None)
    }

    /// Like [`run`](Self::run), writing `stdin` to the program's standard input (e.g. `nft -f -`).
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> io::Result<Output> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut cmd = self.command(program);
        cmd.args(rest);
        run_checked(cmd, Some(stdin))
    }

    /// Spawns `cmd` inside this namespace and guards it ([`ChildGuard`] stops it on drop).
    ///
    /// Usually `cmd` comes from [`command`](Self::command); any other `Command` is moved into the
    /// namespace as well (its child `setns()`es before `exec`), keeping its stdio settings, but
    /// then without the private mount namespace of `ip netns exec`.
    pub fn spawn(&self, mut cmd: Command) -> io::Result<ChildGuard> {
        let label = describe(&cmd);
        let ns = File::open(self.path())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path().display())))?;
        let fd = ns.as_raw_fd();
        // SAFETY: the hook runs in the forked child before exec and only calls setns(2), which is
        // async-signal-safe; `fd` stays open until after `spawn` returns because `ns` lives until
        // the end of this function (it is O_CLOEXEC, so the program does not inherit it).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot spawn `{label}`: {e}")))?;
        drop(ns);
        Ok(ChildGuard::new(child, label))
    }

    /// Runs `f` on a fresh thread that has `setns()`'d into this namespace and returns its
    /// result. Sockets `f` creates live in this namespace for good, so a test can create a
    /// listener on the phone host or a sender on the wan host and then use it from any thread.
    ///
    /// Panics if the namespace cannot be entered (see [`try_enter`](Self::try_enter)); a panic of
    /// `f` is propagated.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match self.try_enter(f) {
            Ok(v) => v,
            Err(e) => panic!("cannot enter network namespace {}: {e}", self.name),
        }
    }

    /// Like [`enter`](Self::enter), but returns `Err` when the namespace cannot be entered.
    pub fn try_enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = self.path();
        let ns = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        thread::scope(|scope| {
            let handle = thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(scope, move || {
                    // SAFETY: `ns` is an open namespace file for the whole call; setns(2) with
                    // CLONE_NEWNET only changes the network namespace of this (new) thread.
                    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    drop(ns);
                    Ok(f())
                })?;
            match handle.join() {
                Ok(result) => result,
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Polls until a TCP connect from inside this namespace to `addr` succeeds: attempts 10 ms
    /// apart, bounded by `timeout` (and by the matching number of attempts).
    pub fn wait_tcp(&self, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
        let name = self.name.clone();
        self.try_enter(move || {
            let start = Instant::now();
            let max_attempts = timeout.as_millis() / POLL.as_millis() + 1;
            let mut last_err: Option<io::Error> = None;
            for _ in 0..max_attempts {
                let remaining = timeout.saturating_sub(start.elapsed());
                let attempt = remaining.clamp(POLL, Duration::from_millis(500));
                match TcpStream::connect_timeout(&addr, attempt) {
                    Ok(_) => return Ok(()),
                    Err(e) => last_err = Some(e),
                }
                if start.elapsed() >= timeout {
                    break;
                }
                thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())));
            }
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no TCP connection from {name} to {addr} within {timeout:?}: {}",
                    last_err.map_or_else(|| "no attempt".to_string(), |e| e.to_string())
                ),
            ))
        })?
    }

    /// Pids of the processes whose network namespace is this one (`ip netns pids`), without
    /// the calling process.
    pub fn pids(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        ip(&["netns", "pids", &self.name])
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .filter(|&pid| pid != me)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILLs every process still inside the namespace (bounded: a few rounds).
    fn kill_all(&self) {
        for _ in 0..5 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                signal(pid, libc::SIGKILL);
            }
            thread::sleep(POLL);
        }
    }

    /// Deletes the namespace (its interfaces go with it once no process is left inside).
    fn delete(&self) -> io::Result<()> {
        if !self.exists() {
            return Ok(());
        }
        ip(&["netns", "delete", &self.name]).map(drop)
    }
}

/// A spawned program that is stopped when the guard drops: SIGTERM, then SIGKILL after 2 s,
/// then `wait` (no zombie is left behind).
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    label: String,
}

impl ChildGuard {
    /// Guards an already spawned child; `label` names it in messages.
    pub fn new(child: Child, label: impl Into<String>) -> ChildGuard {
        ChildGuard {
            child,
            label: label.into(),
        }
    }

    /// The child process (its pid, piped stdio, `try_wait`, ...).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The command line it was started with.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running (it is reaped when it has exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits at most `timeout` for it to exit by itself (polling every 10 ms).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let start = Instant::now();
        let max_polls = timeout.as_millis() / POLL.as_millis() + 1;
        for _ in 0..max_polls {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() >= timeout {
                break;
            }
            thread::sleep(POLL);
        }
        self.child.try_wait()
    }

    /// Stops it now (SIGTERM, SIGKILL after 2 s) and returns its exit status.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // The child is not reaped yet, so its pid cannot have been reused.
        signal(self.child.id() as i32, libc::SIGTERM);
        if let Some(status) = self.wait_timeout(TERM_GRACE)? {
            return Ok(status);
        }
        // Already-exited races are fine: kill() on an exited, unreaped child is harmless.
        let _ = self.child.kill();
        self.child.wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Whether an exit status means "stopped by the guard's SIGTERM/SIGKILL" or a clean exit.
pub fn stopped_cleanly(status: ExitStatus) -> bool {
    status.success() || matches!(status.signal(), Some(libc::SIGTERM | libc::SIGKILL))
}

/// The test home network (see the crate docs): three namespaces joined by two veth pairs.
///
/// Dropping it deletes the namespaces (also during a panic), after killing any process still
/// inside them. Declare it before the guards of programs that run inside it.
#[derive(Debug)]
pub struct HomeNet {
    /// `<pid>x<counter>`, the suffix of the namespace names.
    pub id: String,
    /// `pl-phone-<id>`: [`PHONE_IP`] on `eth0`.
    pub phone: Netns,
    /// `pl-gw-<id>`: [`GW_LAN_IP`] on `lan0`, [`GW_WAN_IP`] on `wan0`, NAT.
    pub gw: Netns,
    /// `pl-wan-<id>`: [`WAN_IP`] on `eth0`.
    pub wan: Netns,
}

impl HomeNet {
    /// Sweeps leftovers of dead processes, then builds the network. Needs root.
    pub fn new() -> io::Result<HomeNet> {
        let _lock = SETUP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        sweep_stale();
        let id = unique_id();
        let net = HomeNet {
            phone: Netns::from_name(format!("pl-phone-{id}")),
            gw: Netns::from_name(format!("pl-gw-{id}")),
            wan: Netns::from_name(format!("pl-wan-{id}")),
            id,
        };
        // On error `net` drops here and deletes what was created.
        net.build()?;
        Ok(net)
    }

    /// The three namespaces: phone, gw, wan.
    pub fn namespaces(&self) -> [&Netns; 3] {
        [&self.phone, &self.gw, &self.wan]
    }

    fn build(&self) -> io::Result<()> {
        for ns in self.namespaces() {
            // A namespace with our id can only be a leftover of a dead process with our pid.
            ns.kill_all();
            ns.delete()?;
            ip(&["netns", "add", ns.name()])?;
        }
        // veth pairs, created in the root namespace under short temporary names (IFNAMSIZ is 16
        // including the NUL), moved into their namespaces and renamed there.
        let temp = |side: char| format!("pl{}{side}", self.id);
        let (a, b, c, d) = (temp('a'), temp('b'), temp('c'), temp('d'));
        if a.len() > 15 {
            return Err(io::Error::other(format!(
                "temporary interface name {a} is too long"
            )));
        }
        let result = self.build_links(&a, &b, &c, &d);
        if result.is_err() {
            for name in [&a, &c] {
                if Path::new("/sys/class/net").join(name).exists() {
                    let _ = ip(&["link", "delete", name]);
                }
            }
        }
        result?;
        self.configure()
    }

    fn build_links(&self, a: &str, b: &str, c: &str, d: &str) -> io::Result<()> {
        let links = [
            (a, &self.phone, HOST_IF),
            (b, &self.gw, LAN_IF),
            (c, &self.gw, WAN_IF),
            (d, &self.wan, HOST_IF),
        ];
        for name in [a, c] {
            if Path::new("/sys/class/net").join(name).exists() {
                ip(&["link", "delete", name])?;
            }
        }
        ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
        ip(&["link", "add", c, "type", "veth", "peer", "name", d])?;
        for (temp, ns, _) in links {
            ip(&["link", "set", temp, "netns", ns.name()])?;
        }
        for (temp, ns, final_name) in links {
            ip(&["-n", ns.name(), "link", "set", temp, "name", final_name])?;
        }
        Ok(())
    }

    fn configure(&self) -> io::Result<()> {
        let lan = format!("{GW_LAN_IP}/{PREFIX_LEN}");
        let addrs = [
            (&self.phone, HOST_IF, format!("{PHONE_IP}/{PREFIX_LEN}")),
            (&self.gw, LAN_IF, lan),
            (&self.gw, WAN_IF, format!("{GW_WAN_IP}/{PREFIX_LEN}")),
            (&self.wan, HOST_IF, format!("{WAN_IP}/{PREFIX_LEN}")),
        ];
        for (ns, dev, addr) in &addrs {
            ip(&["-n", ns.name(), "addr", "add", addr, "dev", dev])?;
        }
        for ns in self.namespaces() {
            ip(&["-n", ns.name(), "link", "set", "lo", "up"])?;
        }
        for (ns, dev, _) in &addrs {
            ip(&["-n", ns.name(), "link", "set", dev, "up"])?;
        }
        let gw = GW_LAN_IP.to_string();
        let phone = self.phone.name();
        ip(&["-n", phone, "route", "add", "default", "via", &gw])?;
        ip(&["-n", phone, "route", "add", "224.0.0.0/4", "dev", HOST_IF])?;
        ip(&[
            "-n",
            self.gw.name(),
            "route",
            "add",
            "224.0.0.0/4",
            "dev",
            LAN_IF,
        ])?;

        // Forwarding: /proc/sys/net is resolved against the network namespace of the thread
        // that opens it.
        self.gw.try_enter(|| -> io::Result<()> {
            let path = "/proc/sys/net/ipv4/ip_forward";
            std::fs::write(path, "1\n")?;
            let now = std::fs::read_to_string(path)?;
            if now.trim() == "1" {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{path} is {now:?} after writing 1"
                )))
            }
        })??;
        let nat = format!(
            "table ip plnat {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{WAN_IF}\" masquerade\n  }}\n}}\n"
        );
        self.gw.run_with_stdin(&["nft", "-f", "-"], &nat)?;
        Ok(())
    }
}

impl Drop for HomeNet {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            ns.kill_all();
            if let Err(e) = ns.delete() {
                eprintln!(
                    "plugline-testing: cannot delete namespace {}: {e}",
                    ns.name()
                );
            }
        }
    }
}

/// The pid in an id `<pid>x<counter>` (the whole string must have that form).
fn id_pid(id: &str) -> Option<u32> {
    let (pid, counter) = id.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(counter)).then(|| pid.parse().ok())?
}

/// Whether the process `pid` no longer exists.
fn pid_dead(pid: u32) -> bool {
    !Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes leftovers of dead processes: namespaces `pl-<role>-<pid>x<n>`, temporary veths
/// `pl<pid>x<n><a-d>` in the root namespace, temporary directories `pl-<pid>x<n>-*`.
fn sweep_stale() {
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("pl-") else {
                continue;
            };
            let Some((_role, id)) = rest.split_once('-') else {
                continue;
            };
            if id_pid(id).is_some_and(pid_dead) {
                let ns = Netns::from_name(name.clone());
                ns.kill_all();
                match ns.delete() {
                    Ok(()) => eprintln!("plugline-testing: swept stale namespace {name}"),
                    Err(e) => eprintln!("plugline-testing: cannot sweep {name}: {e}"),
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("pl") else {
                continue;
            };
            let Some(id) = rest.strip_suffix(['a', 'b', 'c', 'd']) else {
                continue;
            };
            if id_pid(id).is_some_and(pid_dead) {
                let _ = ip(&["link", "delete", &name]);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("pl-") else {
                continue;
            };
            let Some((id, _what)) = rest.split_once('-') else {
                continue;
            };
            if id_pid(id).is_some_and(pid_dead) && entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_short() {
        let a = unique_id();
        let b = unique_id();
        assert_ne!(a, b);
        assert_eq!(id_pid(&a), Some(std::process::id()));
        assert!(format!("pl{a}a").len() <= 15);
    }

    #[test]
    fn id_parsing() {
        assert_eq!(id_pid("123x4"), Some(123));
        assert_eq!(id_pid("123x"), None);
        assert_eq!(id_pid("x4"), None);
        assert_eq!(id_pid("12a3x4"), None);
        assert_eq!(id_pid("123x4-miniupnpd"), None);
    }

    #[test]
    fn finds_programs() {
        assert!(find_program("sh").is_some());
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("no-such-program-plugline").is_none());
        assert!(find_program("").is_none());
    }

    #[test]
    fn command_wraps_ip_netns_exec() {
        let ns = Netns::from_name("pl-x-1x1");
        let cmd = ns.command("true");
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["netns", "exec", "pl-x-1x1", "true"]);
    }

    #[test]
    fn process_name_ignores_zombies() {
        assert!(process_name(std::process::id()).is_some());
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it has exited (bounded wait).
        for _ in 0..200 {
            if process_name(pid).is_none() {
                break;
            }
            thread::sleep(POLL);
        }
        assert_eq!(process_name(pid), None);
        child.wait().unwrap();
    }

    #[test]
    fn child_guard_stops_a_sleeper() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let guard = ChildGuard::new(child, "sleep 30");
        let start = Instant::now();
        let status = guard.stop().unwrap();
        assert!(stopped_cleanly(status), "{status:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
