//! kamailio 5.6 (Debian `kamailio`) as the SIP registrar (and optionally proxy) on the wan host
//! of a [`HomeNet`], plus SIPp and sipsak helpers that send single requests from any namespace.
//!
//! [`Kamailio::start`] writes a config into `<temp dir>/pl-<id>-kamailio/` (see
//! [`Kamailio::config_text`]) and runs, under `ip netns exec` in the wan namespace,
//!
//! ```text
//! sh -c 'mount --bind /dev/null /dev/console && exec kamailio -f CFG -L MODULES \
//!        -l udp:203.0.113.10:5060 -A CTL_SOCK="unix:DIR/ctl" -Y DIR -w DIR -DD -E -m 64 -M 8'
//! ```
//!
//! `-DD` keeps the main process in the foreground (it still forks its workers), `-E` sends the
//! log to stderr, which goes to the log file ([`Kamailio::log`]); the console bind mount is a
//! guard against syslog(3) falling back to the slow serial console (see `shared/PEERS.md`).
//! `-Y DIR` keeps kamailio's runtime files out of `/run/kamailio`. The module directory is the
//! default printed by `kamailio -h` (Debian: `/usr/lib/x86_64-linux-gnu/kamailio/modules`), or
//! the first of a few usual places holding `registrar.so`; `PLUGLINE_KAMAILIO_MODULES` overrides
//! it. `start` returns once an OPTIONS probe from the wan host is answered 200 and `kamcmd
//! core.version` answers on the control socket (≤ 5 s).
//!
//! The config has no database (usrloc `db_mode=0`) and no NAT fix-ups (no nathelper): a
//! REGISTER's Contact is stored exactly as sent, so only a correct public Contact is reachable.
//! REGISTER needs digest auth (`www_challenge` / `pv_www_authenticate("$td", password, "0")`,
//! the password picked by `$au` from [`Options::users`]; an unknown user gets 403, a wrong
//! password a new 401, an authentication user other than the To user 403). OPTIONS to the
//! server itself is answered 200. With [`Options::proxy`] it also routes: loose routing of
//! in-dialog requests, Record-Route on INVITE/SUBSCRIBE, proxy auth (407) on INVITEs whose From
//! is one of its domains, `lookup("location")` and `t_relay()` to the registered contacts.
//! Without it every other request is answered 404.
//!
//! Dropping a [`Kamailio`] stops it (SIGTERM to the main process, which stops its workers;
//! SIGKILL after 2 s) and removes the temporary directory.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{describe, find_program, unique_id, ChildGuard, HomeNet, Netns, WAN_IP};

/// The SIP port kamailio listens on (UDP).
pub const SIP_PORT: u16 = 5060;
/// The environment variable that overrides the kamailio module directory.
pub const MODULES_ENV: &str = "PLUGLINE_KAMAILIO_MODULES";

/// How long [`Kamailio::start`] waits for kamailio to answer.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one kamcmd call.
const KAMCMD_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one sipp or sipsak run (their own timeouts are shorter).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a probe waits for an answer before sending again.
const PROBE_WAIT: Duration = Duration::from_millis(50);
/// The modules the config loads.
const MODULES: &[&str] = &[
    "kex",
    "corex",
    "tm",
    "tmx",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "usrloc",
    "registrar",
    "textops",
    "siputils",
    "xlog",
    "ctl",
    "auth",
];
/// Where kamailio modules usually live, tried after the default printed by `kamailio -h`.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
];
/// `sun_path` is 108 bytes including the NUL.
const MAX_UNIX_PATH: usize = 107;

/// What kamailio serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The SIP domain (an `alias`, also the realm seen by clients that register to it).
    pub domain: String,
    /// `(user, password)` pairs allowed to register (and, with `proxy`, to call).
    pub users: Vec<(String, String)>,
    /// Also act as a proxy: relay requests to registered contacts (see the module docs).
    pub proxy: bool,
}

impl Default for Options {
    /// `example.net`, users `km` and `bob` with password `secret`, registrar only.
    fn default() -> Options {
        Options {
            domain: "example.net".to_string(),
            users: vec![
                ("km".to_string(), "secret".to_string()),
                ("bob".to_string(), "secret".to_string()),
            ],
            proxy: false,
        }
    }
}

/// One registered contact, as `kamcmd ul.lookup location <user>` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// The contact URI as stored (`Address:`), e.g. `sip:km@192.168.0.91:5060;transport=udp`.
    pub address: String,
    /// Seconds left (`Expires:`); `None` for `permanent`, `deleted`, `expired` and the like.
    pub expires: Option<u32>,
    /// The `received` address (`Received:`); `None` when `[not set]` (always, without nathelper).
    pub received: Option<String>,
    /// `User-Agent:` of the REGISTER.
    pub user_agent: Option<String>,
    /// `Call-ID:` of the REGISTER.
    pub call_id: Option<String>,
    /// `CSeq:` of the REGISTER.
    pub cseq: Option<u32>,
}

/// A running kamailio in the wan namespace; stops and cleans up on drop.
#[derive(Debug)]
pub struct Kamailio {
    wan: Netns,
    dir: PathBuf,
    process: Option<ChildGuard>,
    kamcmd: PathBuf,
    opts: Options,
}

impl Kamailio {
    /// Writes the config and starts kamailio on 203.0.113.10:5060 in `net.wan`; returns once it
    /// answers OPTIONS and its control socket. Errors carry the log so far.
    pub fn start(net: &HomeNet, opts: Options) -> io::Result<Kamailio> {
        validate(&opts)?;
        let program = find_program("kamailio")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "kamailio not found on PATH"))?;
        let kamcmd = find_program("kamcmd")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "kamcmd not found on PATH"))?;
        let modules = module_dir(&program)?;
        let dir = std::env::temp_dir().join(format!("pl-{}-kamailio", net.id));
        let mut me = Kamailio {
            wan: net.wan.clone(),
            dir,
            process: None,
            kamcmd,
            opts,
        };
        let ctl = me.ctl_path();
        if ctl.as_os_str().len() > MAX_UNIX_PATH || ctl.to_string_lossy().contains('"') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("control socket path {} is unusable", ctl.display()),
            ));
        }
        if me.dir.exists() {
            std::fs::remove_dir_all(&me.dir)?;
        }
        std::fs::create_dir_all(&me.dir)?;
        std::fs::write(me.config_path(), config_text(&me.opts, &net.id))?;

        let log = File::create(me.log_path())?;
        let mut cmd = net.wan.command("sh");
        cmd.arg("-c")
            .arg("mount --bind /dev/null /dev/console && exec \"$0\" \"$@\"")
            .arg(&program)
            .arg("-f")
            .arg(me.config_path())
            .arg("-L")
            .arg(&modules)
            .arg("-l")
            .arg(format!("udp:{WAN_IP}:{SIP_PORT}"))
            .arg("-A")
            .arg(format!("CTL_SOCK=\"{}\"", me.ctl_socket()))
            .arg("-Y")
            .arg(&me.dir)
            .arg("-w")
            .arg(&me.dir)
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        me.process = Some(net.wan.spawn(cmd)?);
        me.wait_ready()?;
        Ok(me)
    }

    /// The contacts registered for `user` (`kamcmd ul.lookup location <user>`); empty when the
    /// AoR is not in the location table.
    pub fn contacts(&self, user: &str) -> io::Result<Vec<Contact>> {
        match self.kamcmd(&["ul.lookup", "location", user]) {
            Ok(text) => Ok(parse_contacts(&text)),
            Err(e) if e.to_string().contains("AOR not found") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every contact in the location table (`kamcmd ul.dump`), as `(AoR, contact)` pairs.
    pub fn all_contacts(&self) -> io::Result<Vec<(String, Contact)>> {
        Ok(parse_dump(&self.kamcmd(&["ul.dump"])?))
    }

    /// Removes every contact of `user` (`kamcmd ul.rm location <user>`).
    pub fn remove_contacts(&self, user: &str) -> io::Result<()> {
        self.kamcmd(&["ul.rm", "location", user]).map(drop)
    }

    /// Runs `kamcmd -s unix:<dir>/ctl <args>` (bounded) and returns its standard output; `Err`
    /// with its output when it fails.
    pub fn kamcmd(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new(&self.kamcmd);
        cmd.arg("-s").arg(self.ctl_socket()).args(args);
        let what = describe(&cmd);
        let out = run_bounded(cmd, KAMCMD_TIMEOUT)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // kamcmd prints RPC errors ("error: 500 - ...") on stdout and exits 0 or 255.
        if out.status.success() && !stdout.starts_with("error: ") {
            Ok(stdout)
        } else {
            Err(io::Error::other(format!(
                "`{what}` failed ({}): {} {}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Its stderr (the whole log, `-E`) and stdout so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// `203.0.113.10:5060`.
    pub fn registrar_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(WAN_IP, SIP_PORT))
    }

    /// The options it was started with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The temporary directory (config, log, control socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("kamailio.cfg")
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("kamailio.log")
    }

    /// The control socket's path.
    pub fn ctl_path(&self) -> PathBuf {
        self.dir.join("ctl")
    }

    /// The control socket for `kamcmd -s`: `unix:<dir>/ctl`.
    pub fn ctl_socket(&self) -> String {
        format!("unix:{}", self.ctl_path().display())
    }

    /// The pid of the main kamailio process, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildGuard::id)
    }

    /// Whether the main process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// The config [`start`](Self::start) writes for `opts` (`id` only goes into a comment).
    pub fn config_text(opts: &Options, id: &str) -> String {
        config_text(opts, id)
    }

    /// Stops kamailio (SIGTERM, SIGKILL after 2 s) and removes its directory; returns the
    /// main process's exit status.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        let guard = self
            .process
            .take()
            .ok_or_else(|| io::Error::other("kamailio is not running"))?;
        let status = guard.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        status
    }

    fn failure(&self, what: &str) -> io::Error {
        io::Error::other(format!(
            "kamailio in {}: {what}\n--- log ---\n{}",
            self.wan.name(),
            self.log()
        ))
    }

    /// Polls with OPTIONS from the wan host until a 200 comes back, then checks kamcmd.
    fn wait_ready(&mut self) -> io::Result<()> {
        let dest = self.registrar_addr();
        let socket = self
            .wan
            .try_enter(|| UdpSocket::bind(SocketAddr::new(IpAddr::V4(WAN_IP), 0)))??;
        socket.set_read_timeout(Some(PROBE_WAIT))?;
        let local = socket.local_addr()?;
        let start = Instant::now();
        let max_rounds = START_TIMEOUT.as_millis() / PROBE_WAIT.as_millis() + 1;
        let mut answered = false;
        let mut buf = [0u8; 4096];
        for round in 0..max_rounds {
            if !self.is_running() {
                return Err(self.failure("exited during start-up"));
            }
            // The socket may not be bound yet: ICMP errors come back as send/recv errors.
            let _ = socket.send_to(options_probe(local, dest, round as u32).as_bytes(), dest);
            let deadline = Instant::now() + PROBE_WAIT;
            while Instant::now() < deadline {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == dest => {
                        if buf[..n].starts_with(b"SIP/2.0 200 ") {
                            answered = true;
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            if answered || start.elapsed() >= START_TIMEOUT {
                break;
            }
        }
        if !answered {
            return Err(self.failure(&format!(
                "no 200 to OPTIONS from {dest} within {START_TIMEOUT:?}"
            )));
        }
        match self.kamcmd(&["core.version"]) {
            Ok(v) if v.contains("kamailio") => Ok(()),
            Ok(v) => Err(self.failure(&format!("unexpected core.version answer {v:?}"))),
            Err(e) => Err(self.failure(&e.to_string())),
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.process = None;
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Users, passwords and the domain go into config strings: only plain characters are allowed.
fn validate(opts: &Options) -> io::Result<()> {
    let plain = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c) || extra.contains(c))
    };
    let bad = |what: &str, s: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("kamailio: unsupported {what} {s:?} (use letters, digits, - . _ ~)"),
        )
    };
    if !plain(&opts.domain, "") {
        return Err(bad("domain", &opts.domain));
    }
    for (user, password) in &opts.users {
        if !plain(user, "") {
            return Err(bad("user", user));
        }
        if !plain(password, "+!*") {
            return Err(bad("password", password));
        }
    }
    Ok(())
}

/// The module directory: `$PLUGLINE_KAMAILIO_MODULES`, the default shown by `kamailio -h`, or
/// the first usual place; it must hold every module the config loads.
fn module_dir(program: &Path) -> io::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os(MODULES_ENV) {
        candidates.push(PathBuf::from(dir));
    } else {
        let mut cmd = Command::new(program);
        cmd.arg("-h");
        if let Ok(out) = run_bounded(cmd, KAMCMD_TIMEOUT) {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if let Some(dir) = default_module_dir(&text) {
                candidates.push(dir);
            }
        }
        candidates.extend(MODULE_DIRS.iter().map(PathBuf::from));
    }
    let complete = |dir: &Path| {
        MODULES
            .iter()
            .all(|m| dir.join(format!("{m}.so")).is_file())
    };
    candidates
        .iter()
        .find(|d| complete(d))
        .cloned()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                "no kamailio module directory with {} (tried {candidates:?}; set {MODULES_ENV})",
                MODULES.join(", ")
            ),
            )
        })
}

/// `-L path      Modules search path (default: DIR)` in `kamailio -h`.
fn default_module_dir(help: &str) -> Option<PathBuf> {
    help.lines()
        .find(|l| l.trim_start().starts_with("-L "))
        .and_then(|l| l.split_once("(default: "))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dir, _)| PathBuf::from(dir.trim()))
}

/// A minimal OPTIONS to the server itself.
fn options_probe(local: SocketAddr, dest: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{dest} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-plprobe-{pid}-{n};rport\r\n\
         From: <sip:probe@{local}>;tag=pl{n}\r\n\
         To: <sip:{dest}>\r\n\
         Call-ID: plprobe-{pid}-{n}@{ip}\r\n\
         CSeq: {n1} OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        pid = std::process::id(),
        ip = local.ip(),
        n1 = n + 1,
    )
}

/// The config [`Kamailio::start`] writes.
fn config_text(opts: &Options, id: &str) -> String {
    let mut passwords = String::new();
    for (user, password) in &opts.users {
        let _ = writeln!(
            passwords,
            "    if ($au == \"{user}\") {{ $var(known) = 1; $var(pw) = \"{password}\"; }}"
        );
    }
    let mut text = format!(
        r#"#!KAMAILIO
# written by plugline-testing for HomeNet {id}: registrar{proxy_note}, no database, no NAT fix-ups
# CTL_SOCK is defined on the command line (-A CTL_SOCK="unix:...").

debug=2
log_stderror=yes
children=4
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
dns_try_ipv6=no
dns_try_naptr=no
alias="{domain}"
server_header="Server: plugline-kamailio"
user_agent_header="User-Agent: plugline-kamailio"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "auth.so"

modparam("ctl", "binrpc", CTL_SOCK)
modparam("usrloc", "db_mode", 0)
# Store the expiry the client asks for (default minimum: 60 s).
modparam("registrar", "min_expires", 0)
modparam("tm", "fr_timer", 2000)
modparam("tm", "fr_inv_timer", 20000)

request_route {{
    xlog("L_INFO", "plugline: $rm $ru from $si:$sp (Contact: $hdr(Contact))\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
"#,
        proxy_note = if opts.proxy { " and proxy" } else { "" },
        domain = opts.domain,
    );
    if opts.proxy {
        text.push_str(
            r#"    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            route(RELAY);
        }
        exit;
    }
    if (!is_method("ACK")) {
        if (t_precheck_trans()) {
            t_check_trans();
            exit;
        }
        t_check_trans();
    }
    route(WITHINDLG);
    remove_hf("Route");
    if (is_method("INVITE|SUBSCRIBE")) {
        record_route();
    }
"#,
        );
    }
    text.push_str(
        r#"    if (is_method("REGISTER")) {
        route(REGISTRAR);
        exit;
    }
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (is_method("ACK")) {
        exit;
    }
"#,
    );
    if opts.proxy {
        text.push_str(
            r#"    if (uri != myself) {
        sl_send_reply("403", "Not relaying");
        exit;
    }
    if ($rU == $null) {
        sl_send_reply("484", "Address Incomplete");
        exit;
    }
    if (is_method("INVITE")) {
        route(PROXYAUTH);
    }
    route(LOCATION);
}

route[WITHINDLG] {
    if (!has_totag()) {
        return;
    }
    if (loose_route()) {
        route(RELAY);
        exit;
    }
    if (is_method("ACK")) {
        if (t_check_trans()) {
            route(RELAY);
        }
        exit;
    }
    sl_send_reply("404", "Not here");
    exit;
}

# Proxy auth (407) for INVITEs from our own domains.
route[PROXYAUTH] {
    if (from_uri != myself) {
        return;
    }
    if (!is_present_hf("Proxy-Authorization")) {
        proxy_challenge("$fd", "0");
        exit;
    }
    route(PASSWORD);
    if ($var(known) == 0) {
        sl_send_reply("403", "Forbidden");
        exit;
    }
    if (!pv_proxy_authenticate("$fd", "$var(pw)", "0")) {
        proxy_challenge("$fd", "0");
        exit;
    }
    if ($au != $fU) {
        sl_send_reply("403", "Forbidden auth ID");
        exit;
    }
    consume_credentials();
}

route[LOCATION] {
    if (!lookup("location")) {
        $var(rc) = $rc;
        t_newtran();
        switch ($var(rc)) {
            case -1:
            case -3:
                send_reply("404", "Not Found");
                exit;
            case -2:
                send_reply("405", "Method Not Allowed");
                exit;
        }
    }
    route(RELAY);
}

route[RELAY] {
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}
"#,
        );
    } else {
        text.push_str(
            r#"    sl_send_reply("404", "Not Found");
    exit;
}
"#,
        );
    }
    text.push_str(
        r#"
route[REGISTRAR] {
    route(WWWAUTH);
    if (!save("location")) {
        sl_reply_error();
    }
    exit;
}

# Digest auth (401) for REGISTER, the password picked by the authentication user.
route[WWWAUTH] {
    if (!is_present_hf("Authorization")) {
        www_challenge("$td", "0");
        exit;
    }
    route(PASSWORD);
    if ($var(known) == 0) {
        sl_send_reply("403", "Forbidden");
        exit;
    }
    if (!pv_www_authenticate("$td", "$var(pw)", "0")) {
        www_challenge("$td", "0");
        exit;
    }
    if ($au != $tU) {
        sl_send_reply("403", "Forbidden auth ID");
        exit;
    }
    consume_credentials();
}

# $var(known) = 1 and $var(pw) = the password when $au is one of our users.
route[PASSWORD] {
    $var(known) = 0;
    $var(pw) = "";
"#,
    );
    text.push_str(&passwords);
    text.push_str("}\n");
    text
}

/// The `Contact: { ... }` blocks of kamcmd output (`ul.lookup` or `ul.dump`), with the AoR
/// each belongs to (the last `AoR:` seen before it).
fn parse_dump(text: &str) -> Vec<(String, Contact)> {
    let mut out = Vec::new();
    let mut aor = String::new();
    let mut current: Option<Contact> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "Contact: {" {
            current = Some(Contact::default());
            continue;
        }
        if line == "}" {
            if let Some(c) = current.take() {
                out.push((aor.clone(), c));
            }
            continue;
        }
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        let Some(c) = current.as_mut() else {
            if key == "AoR" {
                aor = value.to_string();
            }
            continue;
        };
        let set = (value != "[not set]").then(|| value.to_string());
        match key {
            "Address" => c.address = value.to_string(),
            "Expires" => c.expires = value.parse().ok(),
            "Received" => c.received = set,
            "User-Agent" => c.user_agent = set,
            "Call-ID" => c.call_id = set,
            "CSeq" => c.cseq = value.parse().ok(),
            _ => {}
        }
    }
    out
}

/// The contacts in kamcmd output.
fn parse_contacts(text: &str) -> Vec<Contact> {
    parse_dump(text).into_iter().map(|(_, c)| c).collect()
}

/// Runs `cmd` with piped output, killing it (SIGTERM, then SIGKILL) after `timeout`; returns
/// its output whatever its exit status. `Err` only when it cannot be started.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> io::Result<Output> {
    let what = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{what}`: {e}")))?;
    let mut guard = ChildGuard::new(child, what);
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = reader(
        guard
            .child()
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        guard
            .child()
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = match guard.wait_timeout(timeout)? {
        Some(status) => status,
        None => guard.stop()?,
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// What one SIPp run saw.
#[derive(Debug)]
pub struct SippOutcome {
    /// SIPp exited 0 (the scenario completed) and the last final response was a 200.
    pub got_200: bool,
    /// Status codes of the responses received, in order (provisional ones included).
    pub responses: Vec<u16>,
    /// The message trace (`-trace_msg`): every message sent and received.
    pub messages: String,
    /// SIPp's exit status, stdout (its final statistics screen) and stderr.
    pub output: Output,
}

impl SippOutcome {
    /// The last final (≥ 200) status code received.
    pub fn final_status(&self) -> Option<u16> {
        self.responses.iter().rev().copied().find(|&c| c >= 200)
    }
}

/// A REGISTER with digest auth for [`sipp_register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The user (From/To user and authentication user).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The domain of the Request-URI, From and To (e.g. `example.net`).
    pub domain: String,
    /// The whole Contact header value, e.g.
    /// `<sip:km@192.168.0.91:5060;transport=udp?Route=sip:203.0.113.1:60123>`.
    pub contact: String,
    /// The Expires header value (0 un-registers).
    pub expires: u32,
}

/// Sends one OPTIONS to `target_uri` (the Request-URI and To) from `ns` to `dest` with SIPp
/// (a scenario written to a temporary file: send OPTIONS, expect 200 within 3 s).
pub fn sipp_options(ns: &Netns, target_uri: &str, dest: SocketAddr) -> io::Result<SippOutcome> {
    check_sipp_text("target URI", target_uri)?;
    let scenario = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="plugline OPTIONS">
  <send retrans="500">
    <![CDATA[

OPTIONS {target_uri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:plugline@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <{target_uri}>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Contact: <sip:plugline@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: plugline-sipp
Accept: application/sdp
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" timeout="3000"/>
</scenario>
"#
    );
    sipp_scenario(ns, &scenario, dest)
}

/// Registers with SIPp from `ns` to `dest`: REGISTER, expect 401, REGISTER with
/// `[authentication]`, expect 200 (each within 3 s).
pub fn sipp_register(ns: &Netns, reg: &Registration, dest: SocketAddr) -> io::Result<SippOutcome> {
    for (what, s) in [
        ("user", &reg.user),
        ("password", &reg.password),
        ("domain", &reg.domain),
        ("contact", &reg.contact),
    ] {
        check_sipp_text(what, s)?;
    }
    for (what, s) in [("user", &reg.user), ("password", &reg.password)] {
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sipp: unusable {what} {s:?}"),
            ));
        }
    }
    let Registration {
        user,
        password,
        domain,
        contact,
        expires,
    } = reg;
    let request = |cseq: u32, auth: &str| {
        format!(
            r#"  <send retrans="500">
    <![CDATA[

REGISTER sip:{domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{user}@{domain}>;tag=[pid]SIPpTag00[call_number]
To: <sip:{user}@{domain}>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: {contact}
{auth}Expires: {expires}
Max-Forwards: 70
User-Agent: plugline-sipp
Content-Length: 0

    ]]>
  </send>
"#
        )
    };
    let scenario = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="plugline REGISTER">
{first}  <recv response="100" optional="true"/>
  <recv response="401" auth="true" timeout="3000"/>
{second}  <recv response="100" optional="true"/>
  <recv response="200" timeout="3000"/>
</scenario>
"#,
        first = request(1, ""),
        second = request(
            2,
            &format!("[authentication username={user} password={password}]\n")
        ),
    );
    sipp_scenario(ns, &scenario, dest)
}

/// Text that goes into a SIPp scenario: no keywords (`[`/`]`), no line breaks, no CDATA end.
fn check_sipp_text(what: &str, s: &str) -> io::Result<()> {
    if s.contains(['[', ']', '\r', '\n']) || s.contains("]]>") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sipp: unusable {what} {s:?}"),
        ));
    }
    Ok(())
}

/// The address `ns` sends from towards `dest`, and a UDP port free there right now.
fn local_endpoint(ns: &Netns, dest: SocketAddr) -> io::Result<SocketAddr> {
    ns.try_enter(|| -> io::Result<SocketAddr> {
        let probe = UdpSocket::bind(SocketAddr::new(
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            0,
        ))?;
        probe.connect(dest)?;
        let ip = probe.local_addr()?.ip();
        let free = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        free.local_addr()
    })?
}

/// Runs one call of the SIPp scenario `scenario` (XML text) from `ns` to `dest`: written to a
/// temporary directory, run as `sipp -sf FILE -m 1 -i <ip of ns towards dest> -p <free port>
/// -timeout 5s -timeout_error -trace_msg ...` (bounded), the directory removed afterwards.
/// SIPp sends every message to `dest`, whatever the Request-URI.
pub fn sipp_scenario(ns: &Netns, scenario: &str, dest: SocketAddr) -> io::Result<SippOutcome> {
    let program = find_program("sipp")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "sipp not found on PATH"))?;
    let local = local_endpoint(ns, dest)?;
    let dir = std::env::temp_dir().join(format!("pl-{}-sipp", unique_id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let scenario_path = dir.join("scenario.xml");
        let messages_path = dir.join("messages.log");
        std::fs::write(&scenario_path, scenario)?;
        let mut cmd = ns.command(&program);
        cmd.current_dir(&dir)
            .arg("-sf")
            .arg(&scenario_path)
            .args(["-m", "1", "-nostdin", "-timeout", "5s", "-timeout_error"])
            .arg("-i")
            .arg(local.ip().to_string())
            .arg("-p")
            .arg(local.port().to_string())
            .args(["-trace_msg", "-message_file"])
            .arg(&messages_path)
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .arg(dest.to_string());
        let output = run_bounded(cmd, CLIENT_TIMEOUT)?;
        let messages = std::fs::read(&messages_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let responses = received_statuses(&messages);
        let last_final = responses.iter().rev().copied().find(|&c| c >= 200);
        Ok(SippOutcome {
            got_200: output.status.success() && last_final == Some(200),
            responses,
            messages,
            output,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Status codes of the responses in a SIPp message trace (`... message received [N] bytes :`
/// followed by the message).
fn received_statuses(trace: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let mut after_received = false;
    for line in trace.lines() {
        let line = line.trim();
        // Not "Unexpected UDP message received:", which repeats a message already traced.
        if line.contains("message received [") {
            after_received = true;
            continue;
        }
        if !after_received || line.is_empty() {
            continue;
        }
        after_received = false;
        if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
            if let Some(code) = rest.get(..3).and_then(|c| c.parse().ok()) {
                out.push(code);
            }
        }
    }
    out
}

/// `sipsak -vvv -s <uri> -p <outbound>` from `ns` (one OPTIONS; bounded). When `outbound` is an
/// IP address (with or without port), `-H` is set to the address `ns` sends from, so the Via
/// names a reachable host. sipsak exits 0 on a 200, 1 on another final response, 3 on no answer.
///
/// sipsak resolves the host of `uri` even with `-p`: use an IP address there (the wan
/// namespace has no DNS).
pub fn sipsak_options(ns: &Netns, uri: &str, outbound: &str) -> io::Result<Output> {
    let mut args = vec![
        "-vvv".to_string(),
        "-s".to_string(),
        uri.to_string(),
        "-p".to_string(),
        outbound.to_string(),
    ];
    if let Some(ip) = sender_ip(ns, outbound)? {
        args.extend(["-H".to_string(), ip.to_string()]);
    }
    run_sipsak(ns, &args)
}

/// `sipsak -U` from `ns`: registers `contact` for `user` (Request-URI and To
/// `sip:<user>@<registrar ip>`, since sipsak resolves that host) at `registrar` with password
/// `password` and Expires `expires`. Exit status 0 means a 200 came back after the 401.
pub fn sipsak_register(
    ns: &Netns,
    user: &str,
    password: &str,
    contact: &str,
    registrar: SocketAddr,
    expires: u32,
) -> io::Result<Output> {
    let mut args = vec![
        "-vvv".to_string(),
        "-U".to_string(),
        "-C".to_string(),
        contact.to_string(),
        "-s".to_string(),
        format!("sip:{user}@{}", registrar.ip()),
        "-r".to_string(),
        registrar.port().to_string(),
        "-a".to_string(),
        password.to_string(),
        "-u".to_string(),
        user.to_string(),
        "-x".to_string(),
        expires.to_string(),
    ];
    if let Some(ip) = sender_ip(ns, &registrar.to_string())? {
        args.extend(["-H".to_string(), ip.to_string()]);
    }
    run_sipsak(ns, &args)
}

/// The local address `ns` uses towards `target` (`ip` or `ip:port`); `None` for host names.
fn sender_ip(ns: &Netns, target: &str) -> io::Result<Option<IpAddr>> {
    let dest = match (target.parse::<SocketAddr>(), target.parse::<IpAddr>()) {
        (Ok(addr), _) => addr,
        (_, Ok(ip)) => SocketAddr::new(ip, SIP_PORT),
        _ => return Ok(None),
    };
    local_endpoint(ns, dest).map(|a| Some(a.ip()))
}

fn run_sipsak(ns: &Netns, args: &[String]) -> io::Result<Output> {
    let program = find_program("sipsak")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "sipsak not found on PATH"))?;
    let mut cmd = ns.command(program);
    cmd.args(args);
    run_bounded(cmd, CLIENT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOKUP: &str = "{
\tAoR: km
\tContacts: {
\t\tContact: {
\t\t\tAddress: sip:km@192.168.0.91:5060;transport=udp?Route=sip:203.0.113.1:60123
\t\t\tExpires: 583
\t\t\tQ: -1
\t\t\tCall-ID: 175513527@203.0.113.10
\t\t\tCSeq: 2
\t\t\tUser-Agent: sipsak 0.9.8.1
\t\t\tReceived: [not set]
\t\t\tPath: [not set]
\t\t}
\t\tContact: {
\t\t\tAddress: sip:km@203.0.113.10:5099
\t\t\tExpires: permanent
\t\t\tCall-ID: x@y
\t\t\tCSeq: 7
\t\t\tUser-Agent: [not set]
\t\t\tReceived: sip:203.0.113.1:60123
\t\t}
\t}
}";

    #[test]
    fn parses_ul_lookup() {
        let c = parse_contacts(LOOKUP);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0],
            Contact {
                address: "sip:km@192.168.0.91:5060;transport=udp?Route=sip:203.0.113.1:60123"
                    .into(),
                expires: Some(583),
                received: None,
                user_agent: Some("sipsak 0.9.8.1".into()),
                call_id: Some("175513527@203.0.113.10".into()),
                cseq: Some(2),
            }
        );
        assert_eq!(c[1].expires, None);
        assert_eq!(c[1].user_agent, None);
        assert_eq!(c[1].received.as_deref(), Some("sip:203.0.113.1:60123"));
        let all = parse_dump(LOOKUP);
        assert!(all.iter().all(|(aor, _)| aor == "km"));
    }

    #[test]
    fn parses_sipp_trace() {
        let trace = "----- 2026\nUDP message sent (343 bytes):\n\nOPTIONS sip:x SIP/2.0\n\n\
                     ----- 2026\nUDP message received [339] bytes :\n\nSIP/2.0 100 Trying\nVia: x\n\n\
                     ----- 2026\nUDP message received [339] bytes :\n\nSIP/2.0 404 Not Found\n\n\
                     -----\nUnexpected UDP message received:\n\nSIP/2.0 404 Not Found\n";
        assert_eq!(received_statuses(trace), [100, 404]);
    }

    #[test]
    fn finds_the_default_module_dir() {
        let help = "    -l address   Listen\n    -L path      Modules search path (default: /usr/lib/x/kamailio/modules)\n";
        assert_eq!(
            default_module_dir(help),
            Some(PathBuf::from("/usr/lib/x/kamailio/modules"))
        );
        assert_eq!(default_module_dir("nothing"), None);
    }

    #[test]
    fn config_has_the_essentials() {
        let text = config_text(&Options::default(), "1x2");
        for needle in [
            "modparam(\"usrloc\", \"db_mode\", 0)",
            "modparam(\"ctl\", \"binrpc\", CTL_SOCK)",
            "alias=\"example.net\"",
            "pv_www_authenticate(\"$td\", \"$var(pw)\", \"0\")",
            "if ($au == \"km\") { $var(known) = 1; $var(pw) = \"secret\"; }",
            "if ($au == \"bob\") { $var(known) = 1; $var(pw) = \"secret\"; }",
            "save(\"location\")",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
        assert!(!text.contains("nathelper"));
        assert!(!text.contains("lookup(\"location\")"));
        let proxy = config_text(
            &Options {
                proxy: true,
                ..Options::default()
            },
            "1x2",
        );
        for needle in [
            "record_route()",
            "loose_route()",
            "lookup(\"location\")",
            "t_relay()",
            "pv_proxy_authenticate(\"$fd\", \"$var(pw)\", \"0\")",
        ] {
            assert!(proxy.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn rejects_unsafe_config_strings() {
        let mut opts = Options::default();
        opts.users.push(("eve".into(), "a\"b".into()));
        assert!(validate(&opts).is_err());
        let opts = Options {
            domain: "ex$ample".into(),
            ..Options::default()
        };
        assert!(validate(&opts).is_err());
        assert!(validate(&Options::default()).is_ok());
    }
}
