//! What the bench binaries (`client`, `gateway`, `phone`) share: the `--bench` guard and the
//! harness's skip rule ([`bench_main`]), the plugline executable to measure ([`plugline_bin`]),
//! positive counts from the environment ([`env_count`]), bounded and timed command invocations
//! ([`timed`], [`checked`]) and statistics of samples ([`Stats`]).
//!
//! Each bench includes this file with `mod common;`; not every bench uses every item.

#![allow(dead_code)]

use std::io;
use std::panic::UnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use plugline_testing::Netns;

/// The whole of a bench's `main`: without cargo's `--bench` argument (e.g. `cargo test
/// --all-targets`) it does nothing; when `peers` says the peers are missing it skips (exit 0)
/// or, under `PLUGLINE_REQUIRE_PEERS=1`, fails; otherwise it runs `run` and reports its error.
/// `name` is the bench's name in messages (`client bench`), `target` its cargo bench target.
pub fn bench_main(
    name: &str,
    target: &str,
    peers: impl FnOnce() -> bool + UnwindSafe,
    run: impl FnOnce() -> io::Result<()>,
) -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "{name}: not run without --bench (use `cargo bench -p plugline --bench {target}`)"
        );
        return ExitCode::SUCCESS;
    }
    match peers_ready(peers) {
        Ok(true) => {}
        Ok(false) => return ExitCode::SUCCESS,
        Err(reason) => {
            // The harness's message already starts with "<name>: ".
            eprintln!("{reason}");
            return ExitCode::FAILURE;
        }
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The harness's skip rule without a panic message and backtrace: `peers` calls
/// `require_homenet` / `require_programs` / `skip`; `Ok(false)` after they printed `SKIP <name>:
/// <reason>`, `Err(reason)` under `PLUGLINE_REQUIRE_PEERS=1` (where they panic).
pub fn peers_ready(peers: impl FnOnce() -> bool + UnwindSafe) -> Result<bool, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(peers);
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "cannot run (PLUGLINE_REQUIRE_PEERS=1 forbids skipping)".into())
    })
}

/// The plugline executable: `PLUGLINE_BIN`, else the one cargo built for this bench; with how
/// it was chosen.
pub fn plugline_bin() -> io::Result<(PathBuf, &'static str)> {
    let (path, how) = match std::env::var_os("PLUGLINE_BIN") {
        Some(p) => (PathBuf::from(p), "from PLUGLINE_BIN"),
        None => (
            PathBuf::from(env!("CARGO_BIN_EXE_plugline")),
            "built by cargo for this bench",
        ),
    };
    let path = std::fs::canonicalize(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("plugline at {}: {e}", path.display())))?;
    if plugline_testing::find_program(&path.to_string_lossy()).is_none() {
        return Err(io::Error::other(format!(
            "{} is not an executable file",
            path.display()
        )));
    }
    Ok((path, how))
}

/// A program on the `PATH`, as an error if missing.
pub fn program(name: &str) -> io::Result<PathBuf> {
    plugline_testing::find_program(name)
        .ok_or_else(|| io::Error::other(format!("{name} not found")))
}

/// The positive integer in the environment variable `name`, `None` if it is not set.
pub fn env_count(name: &str) -> io::Result<Option<usize>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| io::Error::other(format!("{name}={v:?}: expected a positive integer"))),
    }
}

/// Owned arguments.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `program args…` for messages.
pub fn describe(program: &Path, args: &[String]) -> String {
    format!("{} {}", program.display(), args.join(" "))
}

/// One invocation from `ns`: wall-clock from just before spawn to just after the child was
/// reaped (stdin from `/dev/null`, stdout and stderr captured through pipes); killed and an
/// error after `timeout`.
pub fn timed(
    ns: &Netns,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> io::Result<(Duration, Output)> {
    let mut cmd = ns.command(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = describe(program, args);
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{what}`: {e}")))?;
    let pid = child.id();
    let waiter = thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send((Instant::now(), out));
    });
    match rx.recv_timeout(timeout) {
        Ok((end, out)) => {
            let _ = waiter.join();
            Ok((end - start, out?))
        }
        Err(_) => {
            // Still unreaped (the waiter has not returned), so the pid is still our child's.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = rx.recv_timeout(Duration::from_secs(5));
            Err(io::Error::other(format!(
                "`{what}` did not finish within {timeout:?}"
            )))
        }
    }
}

/// [`timed`], then checks exit status 0 and `check` on stdout; the time and stdout.
pub fn checked(
    ns: &Netns,
    program: &Path,
    args: &[String],
    timeout: Duration,
    check: &dyn Fn(&str) -> bool,
) -> io::Result<(Duration, String)> {
    let (elapsed, out) = timed(ns, program, args, timeout)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !check(&stdout) {
        return Err(io::Error::other(format!(
            "unexpected result of `{}` ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            describe(program, args),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok((elapsed, stdout))
}

/// min, median, max and p99 (nearest rank) of samples, in milliseconds (NaN without samples).
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub p99: f64,
    pub n: usize,
}

impl Stats {
    pub fn of_ms(mut ms: Vec<f64>) -> Stats {
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => ms[n / 2],
            _ => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
        };
        let rank = ((n as f64) * 0.99).ceil() as usize;
        Stats {
            min: ms.first().copied().unwrap_or(f64::NAN),
            median,
            max: ms.last().copied().unwrap_or(f64::NAN),
            p99: ms.get(rank.saturating_sub(1)).copied().unwrap_or(f64::NAN),
            n,
        }
    }

    pub fn of(samples: &[Duration]) -> Stats {
        Stats::of_ms(samples.iter().map(|d| d.as_secs_f64() * 1e3).collect())
    }

    /// `min / median / max`, one decimal.
    pub fn min_median_max(&self) -> String {
        format!("{:.1} / {:.1} / {:.1}", self.min, self.median, self.max)
    }

    /// `median / p99` with [`ms`].
    pub fn median_p99(&self) -> String {
        format!("{} / {}", ms(self.median), ms(self.p99))
    }
}

/// Milliseconds with a precision that suits the magnitude (`–` for NaN).
pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}
