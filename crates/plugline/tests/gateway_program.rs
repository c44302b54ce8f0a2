//! `plugline gateway` becomes the gateway-only program `plugline-gateway` beside it (same
//! process, the configuration resolved from flags and file), and runs the gateway itself when
//! that program is missing. Loopback, relay backend, no root.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");
const READY: Duration = Duration::from_secs(20);

/// A gateway child, killed on drop.
struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(program: &Path, state: &Path, extra: &[&str]) -> Running {
    let _ = std::fs::remove_dir_all(state);
    let mut child = Command::new(program)
        .args([
            "gateway",
            "--lan-address",
            "127.0.0.1",
            "--wan-address",
            "127.0.1.1",
            "--backend",
            "relay",
            "--http-port",
            "0",
            "--state-dir",
        ])
        .arg(state)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("plugline gateway starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("plugline gateway ready at ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(READY)
        .expect("the gateway says it is ready");
    Running { child, url }
}

/// GET of the root description; the body.
fn description(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(READY)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .display()
        .to_string()
}

fn stop(mut running: Running) {
    let term = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = running.child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
}

#[test]
fn gateway_runs_as_the_gateway_program_with_the_resolved_configuration() {
    let state = std::env::temp_dir().join(format!("pl-gwprog-{}", std::process::id()));
    let config = state.with_extension("toml");
    std::fs::write(&config, "friendly_name = \"Gateway from the file\"\n").unwrap();
    let running = start(
        Path::new(PLUGLINE),
        &state,
        &["--config", config.to_str().unwrap()],
    );
    let pid = running.child.id();
    assert!(exe(pid).ends_with("/plugline-gateway"), "{}", exe(pid));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("--backend\0relay"),
        "ps shows the command typed"
    );
    // The file's setting and the flags both reached it.
    let desc = description(&running.url);
    assert!(desc.contains("Gateway from the file"), "{desc}");
    assert!(
        running.url.starts_with("http://127.0.0.1:"),
        "{}",
        running.url
    );
    stop(running);
    let _ = std::fs::remove_file(&config);
}

#[test]
fn without_the_gateway_program_plugline_runs_the_gateway_itself() {
    let dir = std::env::temp_dir().join(format!("pl-gwalone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let alone = dir.join("plugline");
    std::fs::copy(PLUGLINE, &alone).unwrap();
    let running = start(&alone, &dir.join("state"), &[]);
    assert_eq!(exe(running.child.id()), alone.display().to_string());
    assert!(
        description(&running.url).contains("urn:schemas-upnp-org:device:InternetGatewayDevice:2")
    );
    stop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_gateway_program_alone_explains_how_to_start_it() {
    let program = Path::new(PLUGLINE).with_file_name("plugline-gateway");
    let out = Command::new(program).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plugline gateway"), "{err}");
}
