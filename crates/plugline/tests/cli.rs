//! The command line contract that needs no network: usage errors and unreachable gateways give a
//! non-zero exit and one line of reason.

use std::process::Command;

const PLUGLINE: &str = env!("CARGO_BIN_EXE_plugline");

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(PLUGLINE).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_protocol_is_a_usage_error() {
    let (ok, _, err) = run(&["add", "sctp", "5060"]);
    assert!(!ok);
    assert!(err.contains("invalid value 'sctp'"), "{err}");
}

#[test]
fn port_out_of_range_is_refused() {
    let (ok, _, err) = run(&["add", "udp", "70000"]);
    assert!(!ok);
    assert!(err.contains("70000"), "{err}");
}

#[test]
fn port_zero_is_refused_before_anything_is_sent() {
    let (ok, _, err) = run(&[
        "add",
        "udp",
        "0",
        "--gateway",
        "http://127.0.0.1:9/rootDesc.xml",
    ]);
    assert!(!ok);
    assert!(err.contains("'0'"), "{err}");
    assert!(!err.contains("connect"), "nothing may be sent: {err}");
}

#[test]
fn unreachable_gateway_is_one_line() {
    let (ok, out, err) = run(&[
        "status",
        "--gateway",
        "http://127.0.0.1:9/rootDesc.xml",
        "--json",
    ]);
    assert!(!ok);
    assert!(out.is_empty(), "nothing on stdout on failure: {out}");
    assert!(
        err.starts_with("plugline: HTTP GET http://127.0.0.1:9/rootDesc.xml: connect"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn non_http_gateway_url_is_refused() {
    let (ok, _, err) = run(&["list", "--gateway", "file:///etc/passwd"]);
    assert!(!ok);
    assert!(err.contains("must be http://"), "{err}");
}

#[test]
fn unknown_interface_is_named() {
    let (ok, _, err) = run(&[
        "discover",
        "--interface",
        "nosuchif0",
        "--timeout-ms",
        "100",
    ]);
    assert!(!ok);
    assert!(err.contains("nosuchif0"), "{err}");
}
