//! Running helper programs (nft, conntrack): optional command prefix, bounded waits.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Directories searched after `PATH` (nft and conntrack live in sbin, which a service's PATH
/// may lack).
const EXTRA_BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// Poll interval of bounded waits.
const POLL: Duration = Duration::from_millis(2);

/// Finds `name` in `PATH`, then in the sbin directories; `None` if it is nowhere. A name
/// containing `/` is returned as is.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// `prefix... program` as a [`Command`]. Without a prefix the program is looked up with
/// [`find_program`]; with one (e.g. `ip netns exec <ns>`), the prefix's own program resolves it.
pub(crate) fn command(prefix: &[String], program: &str) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(find_program(first).unwrap_or_else(|| first.into()));
            cmd.args(rest).arg(program);
            cmd
        }
        None => Command::new(find_program(program).unwrap_or_else(|| program.into())),
    }
}

/// What a finished program left.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Why [`run`] gave up.
pub(crate) enum RunError {
    /// It could not be started.
    Spawn(io::Error),
    /// It did not finish in time and was killed.
    Timeout,
    /// Waiting for it failed.
    Wait(io::Error),
}

/// Runs `cmd` to completion with `stdin` as input, reading stdout and stderr concurrently (a
/// large output never deadlocks), killing it after `timeout`.
pub(crate) fn run(
    mut cmd: Command,
    stdin: Option<String>,
    timeout: Duration,
) -> Result<Finished, RunError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let writer = child.stdin.take().zip(stdin).map(|(mut pipe, text)| {
        thread::spawn(move || {
            // A program that exits early closes the pipe; its status tells what happened.
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let status = wait_timeout(&mut child, timeout);
    if !matches!(status, Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Ok(Some(status)) => Ok(Finished {
            status,
            stdout,
            stderr,
        }),
        Ok(None) => Err(RunError::Timeout),
        Err(e) => Err(RunError::Wait(e)),
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits at most `timeout` for `child` to exit; `Ok(None)` if it is still running.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_input_and_times_out() {
        let mut cmd = command(&[], "sh");
        cmd.args(["-c", "cat; echo err >&2; exit 3"]);
        let Ok(done) = run(cmd, Some("hello".into()), Duration::from_secs(10)) else {
            panic!("sh failed")
        };
        assert_eq!(done.stdout, "hello");
        assert_eq!(done.stderr, "err\n");
        assert_eq!(done.status.code(), Some(3));

        let mut cmd = command(&[], "sleep");
        cmd.arg("5");
        let start = Instant::now();
        assert!(matches!(
            run(cmd, None, Duration::from_millis(100)),
            Err(RunError::Timeout)
        ));
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn prefix_wraps_the_program() {
        let cmd = command(&["env".into(), "A=1".into()], "nft");
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["A=1", "nft"]);
    }
}
