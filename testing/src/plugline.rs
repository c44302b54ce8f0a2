//! Our own gateway, `plugline gateway` with the nftables backend, in the `gw` namespace of a
//! [`HomeNet`], and the UDP probes the tests use to check real forwarding from the wan host.
//!
//! [`OurGateway::start`] runs `plugline gateway --lan-interface lan0 --wan-interface wan0
//! --backend nftables --http-port 5000 --state-dir DIR [extra args]` (`-v` is a global flag, so
//! it may be one of the extra arguments) with stdin from `/dev/null`, stdout discarded, stderr
//! appended to `DIR/gateway.log` ([`OurGateway::log`]) and `RUST_LOG` removed, and waits
//! (≤ 10 s) until 192.168.0.1:5000 accepts TCP connections from the phone host. The caller
//! passes the binary (in an integration test `env!("CARGO_BIN_EXE_plugline")`), so this crate
//! does not depend on plugline.
//!
//! [`run`] and [`text`] run a client program inside a namespace and show what it printed.
//!
//! Dropping an [`OurGateway`] stops the process (SIGTERM, SIGKILL after 2 s) and
//! removes the state directory, unless the thread is panicking: then the log is printed and the
//! directory kept.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{stopped_cleanly, ChildGuard, HomeNet, Netns, GW_LAN_IP, GW_WAN_IP, PHONE_IP, WAN_IP};

/// The HTTP (UPnP and admin) port our gateway listens on.
pub const HTTP_PORT: u16 = 5000;
/// How long [`OurGateway::start`] waits for the HTTP port.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The read timeout of the phone's socket from [`udp_pair`].
const UDP_READ_TIMEOUT: Duration = Duration::from_millis(1500);

/// `plugline gateway` running in gw, with its state directory.
#[derive(Debug)]
pub struct OurGateway {
    guard: Option<ChildGuard>,
    binary: PathBuf,
    state: PathBuf,
    extra: Vec<OsString>,
}

impl OurGateway {
    /// `<temp dir>/pl-<id>-gateway`, created (the name [`HomeNet::new`] sweeps when the process
    /// that made it is gone).
    pub fn state_dir_for(net: &HomeNet) -> io::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("pl-{}-gateway", net.id));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Starts `binary` as the gateway in gw with `state_dir` (created if missing) and
    /// `extra_args` after the standard ones, and waits until it listens.
    pub fn start(
        net: &HomeNet,
        binary: &Path,
        state_dir: PathBuf,
        extra_args: &[&str],
    ) -> io::Result<OurGateway> {
        std::fs::create_dir_all(&state_dir)?;
        let mut gw = OurGateway {
            guard: None,
            binary: binary.to_path_buf(),
            state: state_dir,
            extra: extra_args.iter().map(OsString::from).collect(),
        };
        gw.restart(net)?;
        Ok(gw)
    }

    /// Starts the gateway again with the same binary, state directory and arguments (after
    /// [`OurGateway::stop`] or [`OurGateway::kill`]); a process still running is stopped first.
    pub fn restart(&mut self, net: &HomeNet) -> io::Result<()> {
        drop(self.guard.take());
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.state.join("gateway.log"))?;
        let mut cmd = net.gw.command(&self.binary);
        cmd.args([
            "gateway",
            "--lan-interface",
            "lan0",
            "--wan-interface",
            "wan0",
            "--backend",
            "nftables",
            "--http-port",
            "5000",
            "--state-dir",
        ])
        .arg(&self.state)
        .args(&self.extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let guard = net.gw.spawn(cmd)?;
        self.guard = Some(guard);
        net.phone
            .wait_tcp(SocketAddr::from((GW_LAN_IP, HTTP_PORT)), START_TIMEOUT)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("gateway not listening: {e}\n{}", self.log()),
                )
            })
    }

    /// The gateway's stderr so far (empty if there is none yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("gateway.log")).unwrap_or_default()
    }

    /// The process id of the running gateway (`ip netns exec` execs it), 0 if none runs.
    pub fn pid(&self) -> u32 {
        self.guard.as_ref().map_or(0, ChildGuard::id)
    }

    /// The state directory (`--state-dir`).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Whether a gateway process is running.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Stops the gateway with SIGTERM and returns its exit status; an error if it was not
    /// running, could not be stopped, or did not exit cleanly (the message has the log).
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        let guard = self
            .guard
            .take()
            .ok_or_else(|| io::Error::other("the gateway is not running"))?;
        let status = guard.stop()?;
        if stopped_cleanly(status) {
            Ok(status)
        } else {
            Err(io::Error::other(format!(
                "gateway exit {status:?}\n{}",
                self.log()
            )))
        }
    }

    /// Kills the gateway with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) -> io::Result<()> {
        let mut guard = self
            .guard
            .take()
            .ok_or_else(|| io::Error::other("the gateway is not running"))?;
        guard.child().kill()?;
        let _ = guard.child().wait();
        Ok(())
    }
}

impl Drop for OurGateway {
    fn drop(&mut self) {
        drop(self.guard.take());
        if std::thread::panicking() {
            eprintln!("gateway log ({}):\n{}", self.state.display(), self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// A UDP listener on the phone at `phone_port` (read timeout 1.5 s) and a sender on the wan
/// host.
pub fn udp_pair(net: &HomeNet, phone_port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let phone = net
        .phone
        .try_enter(|| UdpSocket::bind((PHONE_IP, phone_port)))??;
    phone.set_read_timeout(Some(UDP_READ_TIMEOUT))?;
    let wan = net.wan.try_enter(|| UdpSocket::bind((WAN_IP, 0)))??;
    Ok((phone, wan))
}

/// Sends `payload` from `wan` to the gateway's WAN address at `port` and tells whether `phone`
/// receives exactly that (within its read timeout).
pub fn arrives(phone: &UdpSocket, wan: &UdpSocket, port: u16, payload: &[u8]) -> bool {
    wan.send_to(payload, (GW_WAN_IP, port)).unwrap();
    let mut buf = [0u8; 256];
    match phone.recv_from(&mut buf) {
        Ok((n, _)) => &buf[..n] == payload,
        Err(_) => false,
    }
}

/// Whether the flow of `wan` to `port` stops reaching `phone` within `within`: the gateway
/// deletes the forward at once and ends the existing flow's conntrack entry in the background
/// within milliseconds. Probes until one is not delivered, then checks that the flow stays
/// stopped. The phone's read timeout is restored afterwards.
pub fn flow_stops(phone: &UdpSocket, wan: &UdpSocket, port: u16, within: Duration) -> bool {
    let start = Instant::now();
    let restore = phone.read_timeout().ok().flatten();
    phone
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut stopped = false;
    while !stopped && start.elapsed() < within {
        stopped = !arrives(phone, wan, port, b"after delete");
    }
    phone.set_read_timeout(restore).unwrap();
    stopped && !arrives(phone, wan, port, b"still after delete")
}

/// Runs `program` with `args` in `ns` to completion and returns what it did; panics when it
/// cannot be started.
pub fn run(ns: &Netns, program: &str, args: &[&str]) -> Output {
    ns.command(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// The stdout and then the stderr of `out`, lossily decoded.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
