//! miniupnpd 2.3.1 (Debian `miniupnpd-nftables`) as the reference gateway inside the `gw`
//! namespace of a [`HomeNet`].
//!
//! [`Miniupnpd::start`] does what this version needs to work in the test network:
//!
//! * it creates `table inet miniupnpd` in gw with the base chains `forward` (filter, jump
//!   `miniupnpd`), `prerouting` (nat, dstnat, jump `prerouting_miniupnpd`) and `postrouting`
//!   (nat, srcnat, jump `postrouting_miniupnpd`) plus those three empty chains; since 2.3.0
//!   miniupnpd does not create them itself;
//! * it runs a [`StunResponder`] on 203.0.113.10:3478 in the wan namespace: miniupnpd refuses
//!   the reserved WAN address 203.0.113.1 unless it learns it by STUN (`ext_perform_stun=yes`),
//!   and then concludes there is no filtering NAT and uses it;
//! * it writes a config into `<temp dir>/pl-<id>-miniupnpd/` (see [`Miniupnpd::config_text`]),
//!   and runs `sh -c 'mount --bind /dev/null /dev/console && exec miniupnpd -f CONF [-d] -P PID'`
//!   under `ip netns exec` (whose mount namespace is private, so the host's `/dev/console` is
//!   untouched): without `/dev/log`, syslog(3) falls back to the console, which costs
//!   milliseconds per line on this machine;
//! * it waits (≤ 5 s) until 192.168.0.1:5000 accepts TCP connections.
//!
//! With [`Options::debug`] (the default) miniupnpd runs with `-d`: in the foreground, logging
//! everything to stderr, which goes to the log file ([`Miniupnpd::log`]). Without it miniupnpd
//! has no foreground mode (`-d` is the only switch that keeps it from daemonising, and it also
//! enables debug logging, two lines per existing rule on every request), so it is left to
//! daemonise: its pid is then read from the pid file, the log stays (almost) empty, and the
//! daemon is stopped by that pid (after checking `/proc/<pid>/comm`). Use `debug: false` for
//! timing figures.
//!
//! Dropping a [`Miniupnpd`] stops it (SIGTERM, SIGKILL after 2 s), deletes its table and
//! removes the temporary directory.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::stun::StunResponder;
use crate::{
    find_program, process_name, signal, ChildGuard, HomeNet, Netns, GW_LAN_IP, GW_WAN_IP, WAN_IP,
};

/// The HTTP (UPnP) port miniupnpd listens on.
pub const HTTP_PORT: u16 = 5000;
/// The NAT-PMP/PCP port.
pub const NATPMP_PORT: u16 = 5351;
/// The STUN port of the responder on the wan host.
pub const STUN_PORT: u16 = 3478;
/// The nftables table (family `inet`) miniupnpd works in.
pub const TABLE: &str = "miniupnpd";

/// How long [`Miniupnpd::start`] waits for the HTTP port.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Grace period between SIGTERM and SIGKILL for the daemonised form.
const TERM_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

/// How to run miniupnpd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `secure_mode=yes`: clients may only map ports to their own address.
    pub secure_mode: bool,
    /// Run with `-d` (foreground, debug log to the log file); otherwise it daemonises.
    pub debug: bool,
    /// `enable_natpmp=yes` (NAT-PMP and PCP on 192.168.0.1:5351).
    pub natpmp: bool,
}

impl Default for Options {
    /// Secure mode on, debug on, NAT-PMP on.
    fn default() -> Options {
        Options {
            secure_mode: true,
            debug: true,
            natpmp: true,
        }
    }
}

/// The running process, in one of its two forms.
#[derive(Debug)]
enum Process {
    /// `-d`: the guarded child is miniupnpd itself.
    Foreground(ChildGuard),
    /// Daemonised: the pid read from the pid file.
    Daemon(i32),
    /// Not started (yet) or already stopped.
    None,
}

/// A running miniupnpd in the gw namespace; stops and cleans up on drop.
#[derive(Debug)]
pub struct Miniupnpd {
    gw: Netns,
    dir: PathBuf,
    process: Process,
    stun: Option<StunResponder>,
    table_created: bool,
}

impl Miniupnpd {
    /// Prepares gw and wan and starts miniupnpd; returns once 192.168.0.1:5000 accepts TCP
    /// connections. Errors carry the log so far.
    pub fn start(net: &HomeNet, opts: Options) -> io::Result<Miniupnpd> {
        let program = find_program("miniupnpd").ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "miniupnpd not found on PATH")
        })?;
        let dir = std::env::temp_dir().join(format!("pl-{}-miniupnpd", net.id));
        // From here on, Drop cleans up whatever was set up when an error returns early.
        let mut me = Miniupnpd {
            gw: net.gw.clone(),
            dir,
            process: Process::None,
            stun: None,
            table_created: false,
        };

        me.table_created = true;
        net.gw
            .run_with_stdin(&["nft", "-f", "-"], &table_script())?;

        let stun_addr = SocketAddr::V4(SocketAddrV4::new(WAN_IP, STUN_PORT));
        let socket = net.wan.try_enter(|| UdpSocket::bind(stun_addr))??;
        me.stun = Some(StunResponder::spawn(socket)?);

        if me.dir.exists() {
            std::fs::remove_dir_all(&me.dir)?;
        }
        std::fs::create_dir_all(&me.dir)?;
        std::fs::write(me.config_path(), config_text(&me.dir, &net.id, opts))?;

        let log = File::create(me.log_path())?;
        let mut cmd = net.gw.command("sh");
        cmd.arg("-c")
            .arg("mount --bind /dev/null /dev/console && exec \"$0\" \"$@\"")
            .arg(&program)
            .arg("-f")
            .arg(me.config_path());
        if opts.debug {
            cmd.arg("-d");
        }
        cmd.arg("-P")
            .arg(me.pid_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = net.gw.spawn(cmd)?;
        if opts.debug {
            me.process = Process::Foreground(child);
        } else {
            // The parent exits right after forking the daemon, which then writes the pid file.
            let status = child.wait_timeout(START_TIMEOUT)?;
            drop(child);
            match status {
                Some(s) if s.success() => {}
                other => return Err(me.failure(&format!("daemonising failed: {other:?}"))),
            }
            let pid = me.wait_pid_file()?;
            me.process = Process::Daemon(pid);
        }
        me.wait_listening()?;
        // miniupnpd performs STUN before it opens its HTTP port; with -d it logs the outcome.
        let expected = format!("public IP address {GW_WAN_IP}");
        if opts.debug && !me.log().contains(&expected) {
            return Err(me.failure(&format!("the log does not say \"{expected}\"")));
        }
        Ok(me)
    }

    /// `http://192.168.0.1:5000/rootDesc.xml`.
    pub fn root_desc_url(&self) -> String {
        format!("http://{GW_LAN_IP}:{HTTP_PORT}/rootDesc.xml")
    }

    /// Its stdout and stderr so far (for failure messages; nearly empty without `debug`).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The temporary directory holding config, log, pid file and lease file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("miniupnpd.conf")
    }

    /// The log file (stdout + stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("miniupnpd.log")
    }

    /// The pid file written by miniupnpd (`-P`).
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("miniupnpd.pid")
    }

    /// The lease file (`lease_file=`).
    pub fn lease_path(&self) -> PathBuf {
        self.dir.join("leases")
    }

    /// The pid of the miniupnpd process, if running.
    pub fn pid(&self) -> Option<i32> {
        match &self.process {
            Process::Foreground(guard) => Some(guard.id() as i32),
            Process::Daemon(pid) => Some(*pid),
            Process::None => None,
        }
    }

    /// How many STUN Binding Requests the wan-side responder has answered.
    pub fn stun_requests(&self) -> u64 {
        self.stun.as_ref().map_or(0, StunResponder::answered)
    }

    /// The config [`start`](Self::start) writes for `dir`, HomeNet id `id` and `opts`.
    pub fn config_text(dir: &Path, id: &str, opts: Options) -> String {
        config_text(dir, id, opts)
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.process {
            Process::Foreground(guard) => guard.is_running(),
            Process::Daemon(pid) => is_miniupnpd(*pid),
            Process::None => false,
        }
    }

    fn failure(&self, what: &str) -> io::Error {
        io::Error::other(format!(
            "miniupnpd in {}: {what}\n--- log ---\n{}",
            self.gw.name(),
            self.log()
        ))
    }

    fn wait_pid_file(&self) -> io::Result<i32> {
        let start = Instant::now();
        let max_polls = START_TIMEOUT.as_millis() / POLL.as_millis() + 1;
        for _ in 0..max_polls {
            if let Ok(text) = std::fs::read_to_string(self.pid_path()) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    if pid > 0 {
                        return Ok(pid);
                    }
                }
            }
            if start.elapsed() >= START_TIMEOUT {
                break;
            }
            thread::sleep(POLL);
        }
        Err(self.failure("no pid file"))
    }

    fn wait_listening(&mut self) -> io::Result<()> {
        let addr = SocketAddr::V4(SocketAddrV4::new(GW_LAN_IP, HTTP_PORT));
        let start = Instant::now();
        let slice = Duration::from_millis(100);
        let max_rounds = START_TIMEOUT.as_millis() / slice.as_millis() + 1;
        for _ in 0..max_rounds {
            if !self.is_running() {
                return Err(self.failure("exited during start-up"));
            }
            if self.gw.wait_tcp(addr, slice).is_ok() {
                return Ok(());
            }
            if start.elapsed() >= START_TIMEOUT {
                break;
            }
        }
        Err(self.failure(&format!("{addr} not listening after {START_TIMEOUT:?}")))
    }

    fn stop_process(&mut self) {
        match std::mem::replace(&mut self.process, Process::None) {
            Process::Foreground(guard) => drop(guard),
            Process::Daemon(pid) => stop_daemon(pid),
            Process::None => {}
        }
    }
}

impl Drop for Miniupnpd {
    fn drop(&mut self) {
        self.stop_process();
        if self.table_created && self.gw.exists() {
            let _ = self.gw.run(&["nft", "delete", "table", "inet", TABLE]);
        }
        self.stun = None;
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether `pid` is a live (not zombie) miniupnpd process.
fn is_miniupnpd(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(process_name)
        .is_some_and(|name| name == "miniupnpd")
}

/// SIGTERM, then SIGKILL after the grace period, for the daemonised form (not our child, so
/// it is reaped by init; we only wait until it is gone).
fn stop_daemon(pid: i32) {
    if !is_miniupnpd(pid) {
        return;
    }
    signal(pid, libc::SIGTERM);
    let start = Instant::now();
    let max_polls = TERM_GRACE.as_millis() / POLL.as_millis() + 1;
    for _ in 0..max_polls {
        if !is_miniupnpd(pid) || start.elapsed() >= TERM_GRACE {
            break;
        }
        thread::sleep(POLL);
    }
    if is_miniupnpd(pid) {
        signal(pid, libc::SIGKILL);
    }
}

/// The nft script creating miniupnpd's table and chains (empty chains first, so the jumps
/// resolve).
fn table_script() -> String {
    format!(
        "table inet {TABLE} {{
  chain miniupnpd {{ }}
  chain prerouting_miniupnpd {{ }}
  chain postrouting_miniupnpd {{ }}
  chain forward {{ type filter hook forward priority 0; policy accept; jump miniupnpd; }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; jump postrouting_miniupnpd; }}
}}
"
    )
}

/// A version-4-style UUID built from the id and the clock: fixed format, unique per start.
fn make_uuid(id: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let (pid, counter) = id.split_once('x').unwrap_or((id, "0"));
    let pid: u64 = pid.parse().unwrap_or(0);
    let counter: u64 = counter.parse().unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        pid & 0xffff_ffff,
        counter & 0xffff,
        (nanos >> 48) & 0xfff,
        (nanos >> 36) & 0xfff,
        nanos & 0xffff_ffff_ffff
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn config_text(dir: &Path, id: &str, opts: Options) -> String {
    format!(
        "# written by plugline-testing for HomeNet {id}
ext_ifname={wan_if}
listening_ip={lan_if}
port={HTTP_PORT}
enable_natpmp={natpmp}
enable_upnp=yes
secure_mode={secure}
lease_file={leases}
uuid={uuid}
ext_perform_stun=yes
ext_stun_host={WAN_IP}
ext_stun_port={STUN_PORT}
upnp_table_name={TABLE}
upnp_nat_table_name={TABLE}
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 192.168.0.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
",
        wan_if = crate::WAN_IF,
        lan_if = crate::LAN_IF,
        natpmp = yes_no(opts.natpmp),
        secure = yes_no(opts.secure_mode),
        leases = dir.join("leases").display(),
        uuid = make_uuid(id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_format() {
        let u = make_uuid("1234x5");
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(parts[2].starts_with('4') && parts[3].starts_with('8'));
        assert!(u.starts_with("000004d2-0005-"));
    }

    #[test]
    fn config_has_the_needed_lines() {
        let opts = Options {
            secure_mode: false,
            debug: true,
            natpmp: false,
        };
        let text = config_text(Path::new("/tmp/x"), "1x2", opts);
        for line in [
            "ext_ifname=wan0",
            "listening_ip=lan0",
            "port=5000",
            "enable_natpmp=no",
            "secure_mode=no",
            "lease_file=/tmp/x/leases",
            "ext_perform_stun=yes",
            "ext_stun_host=203.0.113.10",
            "ext_stun_port=3478",
            "upnp_table_name=miniupnpd",
            "upnp_nat_table_name=miniupnpd",
            "deny 0-65535 0.0.0.0/0 0-65535",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
    }
}
