//! The nftables backend: DNAT through two maps in a table of our own.
//!
//! # The ruleset
//!
//! ```text
//! table ip plugline {
//!     map udp_dnat { type inet_service : ipv4_addr . inet_service; }
//!     map tcp_dnat { type inet_service : ipv4_addr . inet_service; }
//!     chain prerouting {
//!         type nat hook prerouting priority dstnat; policy accept;
//!         iifname "<wan>" dnat ip to udp dport map @udp_dnat
//!         iifname "<wan>" dnat ip to tcp dport map @tcp_dnat
//!     }
//!     chain forward {
//!         type filter hook forward priority filter; policy accept;
//!         ct status dnat accept
//!     }
//! }
//! ```
//!
//! The rules never change after [`NftBackend::new`]: a mapping is ONE map element
//! (`<external port> : <internal client> . <internal port>`) added or deleted in one
//! transaction, O(1) whatever the table size, never a rule to find in a ruleset dump (the
//! weakness of miniupnpd: two batches per mapping, dump-and-scan per read). DNAT and the
//! forward accept cannot get out of step because the accept matches `ct status dnat`.
//!
//! [`NftBackend::new`] installs the table in one `nft -f` transaction that keeps existing map
//! elements (`add table`, `add map`, `add chain`, `flush chain`, `add rule`), so a restart
//! never interrupts live forwards; if that transaction fails (e.g. a map of another type left
//! by an older version) a second one deletes and recreates the table. Then the caller
//! [`reconcile`](Backend::reconcile)s, which re-runs that same idempotent transaction first,
//! so a table flushed or deleted from outside (a firewall reload) is restored too.
//!
//! # How commands reach nft (measured, nftables 1.0.6, kernel 6.18, 2 CPUs, in a network namespace)
//!
//! | option                                                      | cost per change |
//! |-------------------------------------------------------------|-----------------|
//! | spawn `nft add element …` per change                        | 4.0–4.4 ms (6.5 ms through `ip netns exec`) |
//! | spawn `nft -f -` per change                                 | 4.0 ms          |
//! | long-lived `nft -i`, one command + sync marker, wait for each | **0.13–0.44 ms** (machine load varied) |
//! | same, pipelined without waiting (lower bound, no per-change result) | 0.10 ms |
//! | netlink batch from the process, ACK read back (chosen when available, see below) | **0.008–0.025 ms** |
//!
//! The cost of the long-lived session does not grow with the map: repeated add+delete cost
//! 0.43, 0.36, 0.36, 0.37 ms per change with 0, 5,000, 20,000 and 50,000 elements in the map
//! (nft's netlink traffic per command stays at ~2.4 KB: it does not fetch the elements).
//!
//! The crate's own test (`nft_per_change_cost`: 2,000 `add`s through this backend, nft in a
//! test namespace) prints 0.17–0.34 ms per add across runs.
//!
//! The netlink row: the crate's test `nft_per_change_cost` (2,000 adds through this
//! backend in a test namespace, debug build) printed 0.008–0.025 ms per add via netlink against
//! 0.17–0.25 ms via `nft -i` in the same runs.
//!
//! Chosen for install, repair, listing and reconcile, and for element changes when the netlink
//! fast path is unavailable: one long-lived `nft -i` child per backend, fed through a pipe, one line per
//! change (one line = one transaction, so `delete element …; add element …` on one line
//! is atomic). Its stdout goes to /dev/null; errors come on stderr. After each command we send
//! a sync marker, `plugline_sync_<n>`, a line that is deliberately not a command: nft answers
//! it with a syntax error that echoes the marker on stderr, without touching the kernel.
//! Everything on stderr before the echo belongs to the command: nothing means success, an
//! `Error:` means failure (its text is returned). A child that does not answer within
//! [`NFT_REPLY_TIMEOUT`] or exits is killed and restarted on the next change. The child
//! runs with `HOME=/dev/null`: nft's interactive mode otherwise appends every command to
//! `~/.nft.history` (it grew to 8 MB during the measurements) and reads it at start.
//!
//! Interactive nft also keeps every line in libedit's in-memory history and walks that list
//! for each new line (nft checks the last entry through `history_get`, which libedit
//! finds by walking from the start): the cost of a command grows with the number of commands
//! the child has seen. Profiled (gateway bench, ~4,000–8,000 commands into a session): half
//! of nft's CPU time was libedit's `history`, and the child's memory grew ~0.2 KB per
//! command (3.4 MB → 7.3 MB after 18,000 commands). So a child is replaced after
//! [`SESSION_MAX_COMMANDS`] commands (between two commands: no transaction is cut; the new
//! child costs one spawn, ~4 ms, once per that many changes).
//!
//! # The netlink fast path
//!
//! Adding and deleting map elements (the only per-change work) goes through a
//! `NETLINK_NETFILTER` socket the backend keeps open when it could open one (module
//! `netlink`): one change is one nf_tables netlink batch written by the process itself, no
//! process hop. The socket is opened in the caller's network namespace (empty
//! [`NftConfig::command_prefix`]) or, for the prefix `ip netns exec <name>`, on a thread that
//! entered `/run/netns/<name>`; with any other prefix, or when the socket cannot be opened,
//! element changes use the long-lived `nft -i` above. If the socket fails later (an I/O
//! error or no answer), the backend logs it and falls back to `nft -i` for good (the change
//! is retried there: adds and deletes are idempotent here). Installing, repairing,
//! listing and reconciling stay on nft. [`NftBackend::new`] logs which path is used.
//!
//! Not chosen: libnftables FFI (GPL-2.0); a netlink crate (young, and the two messages we
//! need are small enough to encode by hand, tested byte for byte against nft's own).
//!
//! # Ending flows
//!
//! DNAT is decided once per connection, so deleting an element leaves existing flows
//! running. [`Backend::remove`] deletes the element synchronously (from then on no new flow
//! matches) and hands the removed forward to the flow thread (below), which ends its
//! existing flows within milliseconds: ~10–20 ms after the remove returns when the machine
//! is idle (one conntrack listing), bounded by the thread's pause under load. The flows ended
//! are those whose original direction went to the external port (and, with an
//! [`NftConfig::external_ip`], to that address) and whose reply comes from the removed
//! target (`<client>:<internal port>`) after a translation (original destination ≠ reply
//! source): so without a configured external IP it still never touches an unrelated
//! outgoing flow to the same port. Each is deleted by its exact tuple (`conntrack -D -p
//! <udp|tcp> -s … -d … --sport … --dport … --reply-src … --reply-port-src …`). If the same
//! forward is added again before the thread runs, its flows are left alone (they are DNATed
//! exactly as the new mapping would do).
//!
//! Why not in `remove` itself, as before: `conntrack -D` costs ~10 ms per call whatever our
//! table holds (the kernel walks all `nf_conntrack_buckets`, 262,144 here, and every entry
//! of every namespace for the filtered dump; more with many flows, e.g. 18–65 ms with
//! ~20,000 entries left by the gateway's own HTTP connections), which made a delete cost
//! ~20 ms of the control thread and capped add+delete throughput at ~100 operations/s.
//! Now a burst of removes shares one listing. Ending a replaced target's flows in
//! [`Backend::add`] (rare) stays synchronous and uses the original direction only (the old
//! target is unknown there); so do the removals of [`Backend::reconcile`] (start-up).
//!
//! [`Backend::add`] has the opposite problem: a remote that kept sending to a port before it
//! was mapped (RTP, SIP keepalives) holds a conntrack entry without DNAT, and the new mapping
//! would never apply to it. With an [`NftConfig::external_ip`], the flow thread also deletes
//! the flows to that IP which the gateway itself answers (original destination and reply
//! source both the external IP: never a DNATed flow, never a LAN host's outgoing flow) to
//! the newly mapped ports, so `add` keeps the cost of one map element and the stale flow is
//! forwarded within milliseconds.
//!
//! Most mapped ports never carry a flow before they are removed again (a client that maps
//! and unmaps, a failed call), and walking the conntrack table for them is wasted work —
//! on a busy router the walk is the dominant cost of a mapping change. So the table has a set,
//! [`FLOWED_SET`] (`inet_proto . inet_service`), which the first packet of every new flow from
//! the WAN adds its protocol and destination port to (one prerouting rule before the DNAT
//! maps, so a DNATed flow is always noted before it exists). The flow thread asks the set
//! first (one `GETSETELEM` netlink round trip, tens of µs) and drops the jobs of ports never
//! noted. Elements are never removed: that keeps the set complete without any race (a port
//! once used simply always gets the walk), and its size is bounded by 2 × 65,536. Flows from
//! before the gateway's start are noted at start (one listing). If the set cannot be used
//! (no netlink socket, the start-up listing failed), every job walks, as before.
//!
//! The flow thread (`conntrack-flows`) takes everything queued at once. One or two removed
//! forwards alone are ended with one filtered `conntrack -D` each (`-p <udp|tcp> [--orig-dst
//! <external ip>] --orig-port-dst <port> --reply-src <client> --reply-port-src <port>`, the
//! filter the synchronous version used: one hash walk, ~12 ms here, the usual case); a larger
//! round lists the flows once (`conntrack -L [--orig-dst <external ip>]`), deletes the matching
//! ones by their exact tuple (one more walk per flow actually found). Jobs queued during a
//! round share the next one. The thread's work is throttled to [`FLOW_DUTY`] of one core
//! with a burst allowance of [`FLOW_BURST`]: a lone remove is served at once, while a long
//! burst of changes makes the thread pause between rounds (at most [`FLOW_PAUSE_MAX`]) and
//! batch more per round, so conntrack never takes more than about half a core however fast
//! mappings change. Dropping the backend finishes the queued work first.
//!
//! # Namespaces
//!
//! nft and conntrack act on the network namespace they run in: the caller's, unless
//! [`NftConfig::command_prefix`] says otherwise (tests use `ip netns exec pl-gw-<id>`).

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod netlink;

use crate::run::{self, RunError};
use crate::{plan, sorted, Backend, Forward, ForwardError, Protocol, ReconcileReport};

/// The default table name.
pub const DEFAULT_TABLE: &str = "plugline";
/// Commands one long-lived `nft -i` serves before it is replaced (see the module docs: its
/// line history makes every command slower and the child bigger).
pub const SESSION_MAX_COMMANDS: u64 = 1_000;
/// How long one change may take in the long-lived nft before it is declared hung.
pub const NFT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a one-shot nft (install, list, reconcile batch) may take.
pub const NFT_BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `conntrack -D` may take.
pub const CONNTRACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Share of one core the flow thread may spend on conntrack in the long run.
pub const FLOW_DUTY: f64 = 0.5;
/// Work the flow thread may do back to back before [`FLOW_DUTY`] applies.
pub const FLOW_BURST: Duration = Duration::from_millis(100);
/// Longest pause of the flow thread between two rounds.
pub const FLOW_PAUSE_MAX: Duration = Duration::from_millis(100);
/// Rounds of the flow thread with at most this many removed forwards (and no stale job) end
/// them with one filtered `conntrack -D` each instead of a listing.
const DIRECT_REMOVALS: usize = 2;
/// The set of `protocol . port` pairs that ever got a new flow from the WAN (see the module
/// docs, "Ending flows"): at most 2 × 65,536 elements, so it never fills.
pub const FLOWED_SET: &str = "flowed";
/// The map of UDP forwards.
pub const UDP_MAP: &str = "udp_dnat";
/// The map of TCP forwards.
pub const TCP_MAP: &str = "tcp_dnat";
/// The prefix of the sync marker sent after each command (see the module docs).
const SYNC_MARKER: &str = "plugline_sync_";
/// Longest interface name Linux accepts (IFNAMSIZ − 1).
const MAX_IFNAME: usize = 15;
/// Longest table name we accept.
const MAX_TABLE_NAME: usize = 64;

/// How to set up the nftables backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftConfig {
    /// Our table (`table ip <table>`); default [`DEFAULT_TABLE`]. Letters, digits, `_` and
    /// `-`, starting with a letter.
    pub table: String,
    /// The WAN interface; DNAT applies to packets arriving on it. A trailing `*` is an nft
    /// wildcard (`ppp*`).
    pub wan_interface: String,
    /// The WAN address, used to pin conntrack flushes to flows addressed to it. `None`: the
    /// flush matches on port and target alone.
    pub external_ip: Option<Ipv4Addr>,
    /// Prepended to every nft and conntrack command line, e.g.
    /// `["ip", "netns", "exec", "pl-gw-1x0"]`; empty: run them directly (in the caller's
    /// network namespace).
    pub command_prefix: Vec<String>,
}

impl NftConfig {
    /// Defaults for `wan_interface`: table [`DEFAULT_TABLE`], no external IP, no prefix.
    pub fn new(wan_interface: impl Into<String>) -> NftConfig {
        NftConfig {
            table: DEFAULT_TABLE.to_string(),
            wan_interface: wan_interface.into(),
            external_ip: None,
            command_prefix: Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), ForwardError> {
        let t = &self.table;
        let table_ok = !t.is_empty()
            && t.len() <= MAX_TABLE_NAME
            && t.starts_with(|c: char| c.is_ascii_alphabetic())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !table_ok {
            return Err(ForwardError::Config(format!(
                "nftables table name {t:?}: use 1 to {MAX_TABLE_NAME} letters, digits, '_' or '-', starting with a letter"
            )));
        }
        let i = &self.wan_interface;
        let if_ok = !i.is_empty()
            && i.len() <= MAX_IFNAME
            && i != "."
            && i != ".."
            && i.chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | '\''));
        if !if_ok {
            return Err(ForwardError::Config(format!(
                "WAN interface {i:?}: set the name of the WAN network interface (1 to {MAX_IFNAME} characters, no quotes, slashes or spaces)"
            )));
        }
        Ok(())
    }
}

/// The nftables backend (see the module docs).
#[derive(Debug)]
pub struct NftBackend {
    cfg: NftConfig,
    session: Option<Session>,
    /// The netlink socket of the fast path; `None`: element changes go through `nft -i`.
    netlink: Option<netlink::Socket>,
    /// Ends the flows of removed forwards, and stale flows of newly added ports (only with
    /// an external IP), in the background.
    flows: Option<FlowThread>,
}

/// The nft map of a protocol.
fn map_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => UDP_MAP,
        Protocol::Tcp => TCP_MAP,
    }
}

/// One map element change: the unit of both change paths (nft text and netlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Add the element of a forward.
    Add(Forward),
    /// Delete the element of (protocol, external port).
    Delete(Protocol, u16),
}

impl Change {
    /// The nft command of the change.
    fn text(&self, table: &str) -> String {
        match self {
            Change::Add(f) => format!(
                "add element ip {table} {} {{ {} }}",
                map_name(f.protocol),
                element(f)
            ),
            Change::Delete(p, port) => {
                format!("delete element ip {table} {} {{ {port} }}", map_name(*p))
            }
        }
    }
}

/// `<external port> : <client> . <internal port>`.
fn element(f: &Forward) -> String {
    format!(
        "{} : {} . {}",
        f.external_port, f.internal_client, f.internal_port
    )
}

impl NftBackend {
    /// Installs (or repairs) our table and starts the long-lived nft. Existing map elements
    /// are kept; call [`reconcile`](Backend::reconcile) next. Checks that `conntrack` runs.
    pub fn new(cfg: NftConfig) -> Result<NftBackend, ForwardError> {
        cfg.validate()?;
        let mut backend = NftBackend {
            cfg,
            session: None,
            netlink: None,
            flows: None,
        };
        backend.install()?;
        backend.check_conntrack()?;
        // Flows older than our set's rule are not in it: add their ports once, or the flow
        // thread could skip them. Without that, it ends flows without asking the set.
        let flowed_known = match backend.seed_flowed() {
            Ok(n) => {
                tracing::debug!(ports = n, "ports with flows from before the start noted");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot note the ports of existing flows; every mapping change will list the flows");
                false
            }
        };
        backend.netlink = match netlink::Socket::for_prefix(
            &backend.cfg.command_prefix,
            NFT_REPLY_TIMEOUT,
        ) {
            Some(Ok(socket)) => {
                tracing::info!(table = %backend.cfg.table, "nftables map changes go through netlink");
                Some(socket)
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot open a netfilter netlink socket; nftables map changes go through `nft -i`");
                None
            }
            None => {
                tracing::info!("nftables map changes go through `nft -i` (the command prefix is not `ip netns exec <name>`)");
                None
            }
        };
        if backend.netlink.is_none() {
            backend.session = Some(Session::start(&backend.cfg.command_prefix)?);
        }
        backend.flows = Some(FlowThread::start(
            backend.cfg.command_prefix.clone(),
            backend.cfg.external_ip,
            flowed_known.then(|| backend.cfg.table.clone()),
        )?);
        Ok(backend)
    }

    /// The configuration.
    pub fn config(&self) -> &NftConfig {
        &self.cfg
    }

    /// How map element changes are applied: `"netlink"` or `"nft -i"`.
    pub fn change_path(&self) -> &'static str {
        if self.netlink.is_some() {
            "netlink"
        } else {
            "nft -i"
        }
    }

    /// Closes the netlink socket: element changes go through `nft -i` from now on
    /// (comparisons and tests).
    pub fn without_netlink(mut self) -> NftBackend {
        if self.netlink.take().is_some() {
            tracing::info!("nftables map changes go through `nft -i` (netlink turned off)");
        }
        self
    }

    /// Deletes our table with all its forwards (uninstall). Existing flows keep their NAT
    /// until they time out.
    pub fn delete_table(mut self) -> Result<(), ForwardError> {
        self.session = None;
        self.flows = None;
        let cmd = format!("delete table ip {}", self.cfg.table);
        self.oneshot(&cmd, Some(cmd.clone() + "\n")).map(drop)
    }

    /// The ruleset text of the idempotent install transaction.
    fn install_text(&self) -> String {
        let t = &self.cfg.table;
        let wan = &self.cfg.wan_interface;
        let map_type = "type inet_service : ipv4_addr . inet_service;";
        format!(
            "add table ip {t}\n\
             add map ip {t} {UDP_MAP} {{ {map_type} }}\n\
             add map ip {t} {TCP_MAP} {{ {map_type} }}\n\
             add set ip {t} {FLOWED_SET} {{ type inet_proto . inet_service; flags dynamic; size 131072; }}\n\
             add chain ip {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
             flush chain ip {t} prerouting\n\
             add rule ip {t} prerouting iifname \"{wan}\" ct state new meta l4proto {{ tcp, udp }} add @{FLOWED_SET} {{ meta l4proto . th dport }}\n\
             add rule ip {t} prerouting iifname \"{wan}\" dnat ip to udp dport map @{UDP_MAP}\n\
             add rule ip {t} prerouting iifname \"{wan}\" dnat ip to tcp dport map @{TCP_MAP}\n\
             add chain ip {t} forward {{ type filter hook forward priority filter; policy accept; }}\n\
             flush chain ip {t} forward\n\
             add rule ip {t} forward ct status dnat accept\n"
        )
    }

    /// Creates or repairs our table in one transaction, keeping map elements; if that fails,
    /// deletes and recreates it in one transaction (elements lost: reconcile restores them).
    fn install(&mut self) -> Result<(), ForwardError> {
        let text = self.install_text();
        let first = match self.oneshot("install table", Some(text.clone())) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        tracing::warn!(error = %first, table = %self.cfg.table, "cannot repair the nftables table in place; recreating it");
        let t = &self.cfg.table;
        let recreate = format!("add table ip {t}\ndelete table ip {t}\n{text}");
        self.oneshot("recreate table", Some(recreate)).map(drop)
    }

    /// Runs `nft -f -` once with `input`; `Ok(stdout)` when it exits 0.
    fn oneshot(&self, what: &str, input: Option<String>) -> Result<String, ForwardError> {
        self.nft_args(what, &["-f", "-"], input)
    }

    /// Runs `nft <args>` once.
    fn nft_args(
        &self,
        what: &str,
        args: &[&str],
        input: Option<String>,
    ) -> Result<String, ForwardError> {
        let mut cmd = run::command(&self.cfg.command_prefix, "nft");
        cmd.args(args).env("HOME", "/dev/null");
        match run::run(cmd, input, NFT_BATCH_TIMEOUT) {
            Ok(done) if done.status.success() => Ok(done.stdout),
            Ok(done) => Err(ForwardError::Nft {
                command: what.to_string(),
                message: one_line(&done.stderr),
            }),
            Err(RunError::Spawn(source)) => Err(ForwardError::Spawn {
                program: "nft".into(),
                source,
            }),
            Err(RunError::Timeout) => Err(ForwardError::NftTimeout {
                command: what.to_string(),
                timeout: NFT_BATCH_TIMEOUT,
            }),
            Err(RunError::Wait(e)) => Err(ForwardError::NftExited {
                command: what.to_string(),
                status: e.to_string(),
            }),
        }
    }

    /// Fails early (with an operator hint) when conntrack cannot run.
    fn check_conntrack(&self) -> Result<(), ForwardError> {
        let mut cmd = run::command(&self.cfg.command_prefix, "conntrack");
        cmd.arg("--version");
        match run::run(cmd, None, CONNTRACK_TIMEOUT) {
            Ok(done) if done.status.success() => Ok(()),
            Ok(done) => Err(ForwardError::Spawn {
                program: "conntrack".into(),
                source: std::io::Error::other(format!(
                    "`conntrack --version` failed ({}): {}",
                    done.status,
                    one_line(&done.stderr)
                )),
            }),
            Err(RunError::Spawn(source)) => Err(ForwardError::Spawn {
                program: "conntrack".into(),
                source,
            }),
            Err(RunError::Timeout | RunError::Wait(_)) => Err(ForwardError::Spawn {
                program: "conntrack".into(),
                source: std::io::Error::other("`conntrack --version` did not finish"),
            }),
        }
    }

    /// Sends one command line to the long-lived nft (started or restarted as needed) and
    /// returns its error lines (empty: success).
    fn exec(&mut self, command: &str) -> Result<Vec<String>, ForwardError> {
        let usable = match self.session.as_mut() {
            Some(s) => {
                if !s.is_running() {
                    tracing::warn!("the long-lived nft exited; restarting it");
                    false
                } else if s.seq >= SESSION_MAX_COMMANDS {
                    tracing::debug!(
                        commands = s.seq,
                        "replacing the long-lived nft (its line history grows)"
                    );
                    false
                } else {
                    true
                }
            }
            None => false,
        };
        if !usable {
            if let Some(old) = self.session.take() {
                old.finish();
            }
            self.session = Some(Session::start(&self.cfg.command_prefix)?);
        }
        let Some(session) = self.session.as_mut() else {
            unreachable!("session started above")
        };
        match session.exec(command) {
            Ok(lines) => Ok(lines),
            Err(e) => {
                // Drop (and kill) the child; the next change starts a fresh one.
                let status = self.session.take().map(Session::finish);
                Err(match e {
                    SessionError::Timeout => ForwardError::NftTimeout {
                        command: command.to_string(),
                        timeout: NFT_REPLY_TIMEOUT,
                    },
                    SessionError::Gone => ForwardError::NftExited {
                        command: command.to_string(),
                        status: status.unwrap_or_else(|| "unknown status".into()),
                    },
                })
            }
        }
    }

    /// Applies `changes` in one transaction (netlink when open, else the long-lived nft)
    /// and returns the nft command text (for errors) with the error lines (empty: success;
    /// a kernel refusal through netlink is one line with the errno text, as nft prints it).
    fn apply(&mut self, changes: &[Change]) -> Result<(String, Vec<String>), ForwardError> {
        let text = changes
            .iter()
            .map(|c| c.text(&self.cfg.table))
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(socket) = self.netlink.as_mut() {
            match socket.apply(&self.cfg.table, changes) {
                Ok(()) => return Ok((text, Vec::new())),
                Err(netlink::ApplyError::Refused(errno)) => {
                    let e = std::io::Error::from_raw_os_error(errno);
                    return Ok((text, vec![format!("Error: netlink: {e}")]));
                }
                Err(netlink::ApplyError::Io(e)) => {
                    tracing::warn!(error = %e, "the netfilter netlink socket failed; nftables map changes go through `nft -i` from now on");
                    self.netlink = None;
                }
            }
        }
        let lines = self.exec(&text)?;
        Ok((text, lines))
    }

    /// Like [`apply`](Self::apply), turning error output into [`ForwardError::Nft`].
    fn apply_ok(&mut self, changes: &[Change]) -> Result<(), ForwardError> {
        let (text, lines) = self.apply(changes)?;
        if lines.is_empty() {
            Ok(())
        } else {
            Err(nft_error(&text, &lines))
        }
    }

    /// Ends the conntrack flows of `f` (`with_target`: only those DNATed to its target).
    fn flush_conntrack(&self, f: &Forward, with_target: bool) -> Result<usize, ForwardError> {
        flush_conntrack(
            &self.cfg.command_prefix,
            self.cfg.external_ip,
            f,
            with_target,
        )
    }

    /// Adds the (protocol, port) of every existing flow to us to [`FLOWED_SET`]; returns
    /// how many pairs.
    fn seed_flowed(&self) -> Result<usize, ForwardError> {
        let listing = list_flows(&self.cfg.command_prefix, self.cfg.external_ip)?;
        let ports: BTreeSet<(Protocol, u16)> = listing
            .lines()
            .filter_map(Flow::parse)
            .filter(|f| self.cfg.external_ip.is_none_or(|ip| f.dst == ip))
            .map(|f| (f.protocol, f.dport))
            .collect();
        let t = &self.cfg.table;
        let pairs: Vec<String> = ports
            .iter()
            .map(|(p, port)| format!("{} . {port}", proto_name(*p)))
            .collect();
        for chunk in pairs.chunks(1000) {
            let cmd = format!(
                "add element ip {t} {FLOWED_SET} {{ {} }}\n",
                chunk.join(", ")
            );
            self.oneshot("note the ports of existing flows", Some(cmd))?;
        }
        Ok(ports.len())
    }

    /// Queues the background removal of `f`'s stale flows (see [`FlowThread`]).
    fn end_stale_flows(&self, f: &Forward) {
        if let Some(flows) = &self.flows {
            flows.added(f);
        }
    }

    /// Our maps' elements as nft shows them.
    fn held(&self) -> Result<Vec<Held>, ForwardError> {
        let text = self.nft_args(
            "list table",
            &["-n", "list", "table", "ip", &self.cfg.table],
            None,
        )?;
        let mut out = parse_map(&text, UDP_MAP, Protocol::Udp)?;
        out.extend(parse_map(&text, TCP_MAP, Protocol::Tcp)?);
        Ok(out)
    }
}

impl Backend for NftBackend {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn add(&mut self, f: &Forward) -> Result<(), ForwardError> {
        f.validate()?;
        let add = Change::Add(*f);
        let (command, lines) = self.apply(&[add])?;
        if lines.is_empty() {
            self.end_stale_flows(f);
            return Ok(());
        }
        let text = lines.join("\n");
        if text.contains("File exists") {
            // The port is mapped to another target: replace it in one transaction.
            self.apply_ok(&[Change::Delete(f.protocol, f.external_port), add])?;
            self.flush_conntrack(f, false)?;
            return Ok(());
        }
        if text.contains("No such file or directory") {
            // Our table or map was deleted from outside (a firewall reload): restore it.
            tracing::warn!(table = %self.cfg.table, "the nftables table is gone; recreating it (reconcile to restore the other forwards)");
            self.install()?;
            self.apply_ok(&[add])?;
            self.end_stale_flows(f);
            return Ok(());
        }
        Err(nft_error(&command, &lines))
    }

    fn remove(&mut self, f: &Forward) -> Result<(), ForwardError> {
        let (delete, lines) = self.apply(&[Change::Delete(f.protocol, f.external_port)])?;
        // "No such file or directory": already absent (or the whole table is gone).
        if !lines.is_empty() && !lines.join("\n").contains("No such file or directory") {
            return Err(nft_error(&delete, &lines));
        }
        // No new flow matches any more; the existing ones end in the background.
        match &self.flows {
            Some(flows) => flows.removed(f),
            None => {
                self.flush_conntrack(f, true)?;
            }
        }
        tracing::debug!(forward = %f, "forward removed");
        Ok(())
    }

    fn reconcile(&mut self, wanted: &[Forward]) -> Result<ReconcileReport, ForwardError> {
        // Restores our rules if they were flushed or changed from outside; keeps elements.
        self.install()?;
        let held = self.held()?;
        let parsed: Vec<Forward> = held.iter().filter_map(Held::forward).collect();
        let p = plan(&parsed, wanted)?;
        // Elements we cannot read are foreign: delete them by key.
        let unreadable: Vec<&Held> = held.iter().filter(|h| h.target.is_none()).collect();
        let t = &self.cfg.table;
        let mut batch = String::new();
        for proto in [Protocol::Udp, Protocol::Tcp] {
            let keys: Vec<String> = p
                .remove
                .iter()
                .filter(|f| f.protocol == proto)
                .map(|f| f.external_port)
                .chain(
                    unreadable
                        .iter()
                        .filter(|h| h.protocol == proto)
                        .map(|h| h.port),
                )
                .map(|port| port.to_string())
                .collect();
            if !keys.is_empty() {
                batch += &format!(
                    "delete element ip {t} {} {{ {} }}\n",
                    map_name(proto),
                    keys.join(", ")
                );
            }
        }
        for proto in [Protocol::Udp, Protocol::Tcp] {
            let elements: Vec<String> = p
                .add
                .iter()
                .filter(|f| f.protocol == proto)
                .map(element)
                .collect();
            if !elements.is_empty() {
                batch += &format!(
                    "add element ip {t} {} {{ {} }}\n",
                    map_name(proto),
                    elements.join(", ")
                );
            }
        }
        if !batch.is_empty() {
            self.oneshot("reconcile batch", Some(batch))?;
        }
        for f in &p.add {
            self.end_stale_flows(f);
        }
        for f in &p.remove {
            if let Err(e) = self.flush_conntrack(f, true) {
                tracing::warn!(error = %e, "reconcile: cannot end the flows of a removed forward");
            }
        }
        for h in &unreadable {
            let f = Forward {
                protocol: h.protocol,
                external_port: h.port,
                internal_client: Ipv4Addr::new(0, 0, 0, 0),
                internal_port: 0,
            };
            if let Err(e) = self.flush_conntrack(&f, false) {
                tracing::warn!(error = %e, "reconcile: cannot end the flows of a removed element");
            }
        }
        Ok(ReconcileReport {
            added: p.add.len(),
            removed: p.remove.len() + unreadable.len(),
        })
    }

    fn list(&mut self) -> Result<Vec<Forward>, ForwardError> {
        let held = match self.held() {
            Ok(h) => h,
            // No table: nothing is forwarded.
            Err(ForwardError::Nft { message, .. })
                if message.contains("No such file or directory") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        Ok(sorted(held.iter().filter_map(Held::forward).collect()))
    }
}

/// One element of our maps as listed by nft.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    protocol: Protocol,
    port: u16,
    /// `None` when the value is not `<ipv4> . <port>` (someone else's element).
    target: Option<(Ipv4Addr, u16)>,
}

impl Held {
    fn forward(&self) -> Option<Forward> {
        let (internal_client, internal_port) = self.target?;
        Some(Forward {
            protocol: self.protocol,
            external_port: self.port,
            internal_client,
            internal_port,
        })
    }
}

/// The elements of `map { … }` in the output of `nft -n list table`; a missing map is an
/// error (install creates both).
fn parse_map(text: &str, map: &str, protocol: Protocol) -> Result<Vec<Held>, ForwardError> {
    let header = format!("map {map} {{");
    let start = text
        .find(&header)
        .ok_or_else(|| ForwardError::Parse(format!("no `{header}` in `nft list table`")))?;
    let body = &text[start + header.len()..];
    let map_end = body
        .find('}')
        .ok_or_else(|| ForwardError::Parse(format!("unterminated map {map}")))?;
    const ELEMENTS: &str = "elements = {";
    let Some(e) = body.find(ELEMENTS).filter(|&e| e < map_end) else {
        return Ok(Vec::new());
    };
    let list = &body[e + ELEMENTS.len()..];
    let end = list
        .find('}')
        .ok_or_else(|| ForwardError::Parse(format!("unterminated elements of map {map}")))?;
    let mut out = Vec::new();
    for item in list[..end].split(',') {
        let item = item.split_whitespace().collect::<Vec<_>>().join(" ");
        if item.is_empty() {
            continue;
        }
        let (key, value) = item.split_once(':').unwrap_or((item.as_str(), ""));
        let port = key
            .split_whitespace()
            .next()
            .and_then(|k| k.parse::<u16>().ok())
            .ok_or_else(|| ForwardError::Parse(format!("element {item:?} of map {map}")))?;
        let target = value
            .trim()
            .split_once(" . ")
            .and_then(|(ip, p)| Some((ip.trim().parse().ok()?, p.trim().parse().ok()?)));
        out.push(Held {
            protocol,
            port,
            target,
        });
    }
    Ok(out)
}

/// `N` in conntrack's "N flow entries have been deleted".
fn deleted_count(text: &str) -> Option<usize> {
    let i = text.find(" flow entries have been deleted")?;
    text[..i]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Multi-line tool output as one line for an error message.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == '~'))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn nft_error(command: &str, lines: &[String]) -> ForwardError {
    ForwardError::Nft {
        command: command.to_string(),
        message: one_line(&lines.join("\n")),
    }
}

/// `conntrack -D` of the flows to `f`'s external port (and the external IP, if known);
/// `with_target`: only those whose reply comes from `f`'s target. One walk of the conntrack
/// hash. Returns how many flows ended.
fn flush_conntrack(
    prefix: &[String],
    external_ip: Option<Ipv4Addr>,
    f: &Forward,
    with_target: bool,
) -> Result<usize, ForwardError> {
    let mut cmd = run::command(prefix, "conntrack");
    cmd.args(["-D", "-p", proto_name(f.protocol)]);
    if let Some(ip) = external_ip {
        cmd.arg("--orig-dst").arg(ip.to_string());
    }
    cmd.arg("--orig-port-dst").arg(f.external_port.to_string());
    if with_target {
        cmd.arg("--reply-src")
            .arg(f.internal_client.to_string())
            .arg("--reply-port-src")
            .arg(f.internal_port.to_string());
    }
    let conntrack_error = |message: String| ForwardError::Conntrack {
        forward: *f,
        message,
    };
    match run::run(cmd, None, CONNTRACK_TIMEOUT) {
        Ok(done) => {
            let text = format!("{}{}", done.stdout, done.stderr);
            let deleted = deleted_count(&text);
            match (done.status.code(), deleted) {
                (Some(0), n) => Ok(n.unwrap_or(0)),
                (Some(1), Some(0)) => Ok(0),
                _ => Err(conntrack_error(format!(
                    "{}: {}",
                    done.status,
                    one_line(&text)
                ))),
            }
        }
        Err(RunError::Spawn(e)) => Err(conntrack_error(format!("cannot run conntrack: {e}"))),
        Err(RunError::Timeout) => Err(conntrack_error(format!(
            "conntrack did not finish within {CONNTRACK_TIMEOUT:?}"
        ))),
        Err(RunError::Wait(e)) => Err(conntrack_error(e.to_string())),
    }
}

/// What the flow thread is to do next.
#[derive(Debug, Default)]
struct FlowJobs {
    /// Newly mapped (protocol, external port): end the flows to them that the gateway
    /// itself answers (only queued with an external IP).
    stale: BTreeSet<(Protocol, u16)>,
    /// Removed forwards: end the flows DNATed to them.
    removed: HashSet<Forward>,
    /// The backend is gone: finish what is queued and stop.
    closed: bool,
}

impl FlowJobs {
    fn is_empty(&self) -> bool {
        self.stale.is_empty() && self.removed.is_empty()
    }
}

type SharedJobs = Arc<(Mutex<FlowJobs>, Condvar)>;

/// The background thread that ends flows (see the module docs, "Ending flows").
#[derive(Debug)]
struct FlowThread {
    jobs: SharedJobs,
    external_ip: Option<Ipv4Addr>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FlowThread {
    /// `flowed_table`: the table whose [`FLOWED_SET`] is complete (every port that ever had
    /// a flow from the WAN is in it); `None`: end flows without asking it.
    fn start(
        prefix: Vec<String>,
        external_ip: Option<Ipv4Addr>,
        flowed_table: Option<String>,
    ) -> Result<FlowThread, ForwardError> {
        let jobs: SharedJobs = Arc::default();
        let shared = jobs.clone();
        let thread = thread::Builder::new()
            .name("conntrack-flows".into())
            .spawn(move || {
                let flowed = flowed_table.and_then(|table| {
                    match netlink::Socket::for_prefix(&prefix, NFT_REPLY_TIMEOUT)? {
                        Ok(socket) => Some((socket, table)),
                        Err(e) => {
                            tracing::warn!(error = %e, "flow thread: no netlink socket; every mapping change will list the flows");
                            None
                        }
                    }
                });
                flow_thread(&shared, &prefix, external_ip, flowed)
            })
            .map_err(|source| ForwardError::Spawn {
                program: "conntrack (flow thread)".into(),
                source,
            })?;
        Ok(FlowThread {
            jobs,
            external_ip,
            thread: Some(thread),
        })
    }

    fn edit(&self, f: impl FnOnce(&mut FlowJobs)) {
        let (lock, wake) = &*self.jobs;
        f(&mut lock.lock().unwrap_or_else(|e| e.into_inner()));
        wake.notify_one();
    }

    /// `f` was installed: its flows are welcome again if a removal was still queued, and its
    /// port's stale flows are to end.
    fn added(&self, f: &Forward) {
        let stale = self.external_ip.is_some();
        self.edit(|jobs| {
            jobs.removed.remove(f);
            if stale {
                jobs.stale.insert(f.key());
            }
        });
    }

    /// `f` was removed: its flows are to end.
    fn removed(&self, f: &Forward) {
        self.edit(|jobs| {
            jobs.removed.insert(*f);
        });
    }
}

impl Drop for FlowThread {
    fn drop(&mut self) {
        // The thread finishes the queued work, then ends (bounded by the timeouts).
        self.edit(|jobs| jobs.closed = true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn flow_thread(
    jobs: &SharedJobs,
    prefix: &[String],
    external_ip: Option<Ipv4Addr>,
    mut flowed: Option<(netlink::Socket, String)>,
) {
    let (lock, wake) = &**jobs;
    // Seconds of work the thread may do now: earns FLOW_DUTY per second, up to FLOW_BURST.
    let mut credit = FLOW_BURST.as_secs_f64();
    let mut earned_at = Instant::now();
    loop {
        let closing = {
            let mut queued = lock.lock().unwrap_or_else(|e| e.into_inner());
            while queued.is_empty() && !queued.closed {
                queued = wake.wait(queued).unwrap_or_else(|e| e.into_inner());
            }
            if queued.is_empty() {
                return;
            }
            queued.closed
        };
        let now = Instant::now();
        credit = (credit + now.duration_since(earned_at).as_secs_f64() * FLOW_DUTY)
            .min(FLOW_BURST.as_secs_f64());
        earned_at = now;
        if credit < 0.0 && !closing {
            // Over budget: pause; what is queued meanwhile joins this round.
            let pause = Duration::from_secs_f64(-credit / FLOW_DUTY).min(FLOW_PAUSE_MAX);
            thread::sleep(pause);
            credit = 0.0;
            earned_at = Instant::now();
        }
        let mut batch = {
            let mut queued = lock.lock().unwrap_or_else(|e| e.into_inner());
            FlowJobs {
                stale: std::mem::take(&mut queued.stale),
                removed: std::mem::take(&mut queued.removed),
                closed: false,
            }
        };
        let started = Instant::now();
        if let Some((socket, table)) = &mut flowed {
            drop_unflowed(socket, table, &mut batch);
        }
        if !batch.is_empty() {
            end_flows(prefix, external_ip, &batch);
        }
        credit -= started.elapsed().as_secs_f64();
    }
}

/// Drops the jobs of ports that never had a flow from the WAN ([`FLOWED_SET`]): they have
/// nothing to end, and asking the set costs one netlink round trip instead of a walk of the
/// whole conntrack table. When the kernel cannot answer, the job stays (ending is safe).
fn drop_unflowed(socket: &mut netlink::Socket, table: &str, jobs: &mut FlowJobs) {
    let mut had_flows = |protocol: Protocol, port: u16| {
        socket
            .set_holds(table, FLOWED_SET, protocol, port)
            .unwrap_or_else(|e| {
                tracing::debug!(error = %e, port, "cannot ask the flowed set; listing the flows");
                true
            })
    };
    jobs.stale.retain(|&(p, port)| had_flows(p, port));
    jobs.removed
        .retain(|f| had_flows(f.protocol, f.external_port));
}

/// `conntrack -L [--orig-dst <external ip>]`: the listing [`Flow::parse`] reads.
fn list_flows(prefix: &[String], external_ip: Option<Ipv4Addr>) -> Result<String, ForwardError> {
    let mut cmd = run::command(prefix, "conntrack");
    cmd.arg("-L");
    if let Some(ip) = external_ip {
        cmd.args(["--orig-dst", &ip.to_string()]);
    }
    let failed = |message: String| ForwardError::ConntrackList { message };
    match run::run(cmd, None, CONNTRACK_TIMEOUT) {
        Ok(done) if done.status.success() => Ok(done.stdout),
        Ok(done) => Err(failed(format!(
            "{}: {}",
            done.status,
            one_line(&done.stderr)
        ))),
        Err(RunError::Spawn(e)) => Err(failed(format!("cannot run conntrack: {e}"))),
        Err(RunError::Timeout) => Err(failed(format!(
            "did not finish within {CONNTRACK_TIMEOUT:?}"
        ))),
        Err(RunError::Wait(e)) => Err(failed(e.to_string())),
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
    }
}

/// Ends the flows the jobs name. A round of at most [`DIRECT_REMOVALS`] removed forwards
/// (and no stale job) uses one filtered `conntrack -D` per forward; anything larger lists the
/// flows once and deletes the matching ones (see [`Flow::matches`]) by their exact tuple.
/// Every conntrack call walks the whole conntrack hash (~10 ms here), so a lone remove costs
/// one walk and a burst of them one walk plus one per flow actually found.
fn end_flows(prefix: &[String], external_ip: Option<Ipv4Addr>, jobs: &FlowJobs) {
    if jobs.stale.is_empty() && jobs.removed.len() <= DIRECT_REMOVALS {
        for f in &jobs.removed {
            match flush_conntrack(prefix, external_ip, f, true) {
                Ok(n) => {
                    tracing::debug!(forward = %f, flows = n, "flows of a removed forward ended")
                }
                Err(e) => tracing::warn!(error = %e, "cannot end the flows of a removed forward"),
            }
        }
        return;
    }
    let listing = match list_flows(prefix, external_ip) {
        Ok(listing) => listing,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list flows to end");
            return;
        }
    };
    let mut ended = 0usize;
    for line in listing.lines() {
        let Some(flow) = Flow::parse(line) else {
            continue;
        };
        if !flow.matches(external_ip, jobs) {
            continue;
        }
        let mut cmd = run::command(prefix, "conntrack");
        cmd.args(["-D", "-p", proto_name(flow.protocol)])
            .args(["-s", &flow.src.to_string(), "-d", &flow.dst.to_string()])
            .args([
                "--sport",
                &flow.sport.to_string(),
                "--dport",
                &flow.dport.to_string(),
            ])
            .args(["--reply-src", &flow.reply_src.to_string()])
            .args(["--reply-port-src", &flow.reply_sport.to_string()]);
        match run::run(cmd, None, CONNTRACK_TIMEOUT) {
            Ok(done) if done.status.success() || deleted_count(&done.stderr) == Some(0) => {
                ended += 1;
                tracing::debug!(flow = %line.trim(), "flow ended");
            }
            _ => tracing::warn!(flow = %line.trim(), "cannot end a flow"),
        }
    }
    tracing::debug!(
        removed = jobs.removed.len(),
        stale = jobs.stale.len(),
        ended,
        "flow round done"
    );
}

/// One IPv4 TCP or UDP line of `conntrack -L`: the original tuple and the reply source.
#[derive(Debug, PartialEq, Eq)]
struct Flow {
    protocol: Protocol,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    reply_src: Ipv4Addr,
    reply_sport: u16,
}

impl Flow {
    /// The first `src=`, `dst=`, `sport=`, `dport=` of the line are the original direction,
    /// the second ones the reply direction. Other protocols and IPv6 give `None`.
    fn parse(line: &str) -> Option<Flow> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let protocol = match *words.first()? {
            "udp" => Protocol::Udp,
            "tcp" => Protocol::Tcp,
            _ => return None,
        };
        let values = |name: &str| -> Vec<&str> {
            words.iter().filter_map(|w| w.strip_prefix(name)).collect()
        };
        let (src, dst, sport, dport) = (
            values("src="),
            values("dst="),
            values("sport="),
            values("dport="),
        );
        Some(Flow {
            protocol,
            src: src.first()?.parse().ok()?,
            dst: dst.first()?.parse().ok()?,
            sport: sport.first()?.parse().ok()?,
            dport: dport.first()?.parse().ok()?,
            reply_src: src.get(1)?.parse().ok()?,
            reply_sport: sport.get(1)?.parse().ok()?,
        })
    }

    /// Whether a job names this flow: a stale flow to a newly mapped port (addressed to the
    /// external IP and answered by it), or a flow translated to a removed forward's target.
    fn matches(&self, external_ip: Option<Ipv4Addr>, jobs: &FlowJobs) -> bool {
        let to_us = external_ip.is_none_or(|ip| self.dst == ip);
        let stale = external_ip.is_some_and(|ip| self.dst == ip && self.reply_src == ip)
            && jobs.stale.contains(&(self.protocol, self.dport));
        let removed = to_us
            && self.dst != self.reply_src
            && jobs.removed.contains(&Forward {
                protocol: self.protocol,
                external_port: self.dport,
                internal_client: self.reply_src,
                internal_port: self.reply_sport,
            });
        stale || removed
    }
}

/// The long-lived `nft -i` child.
#[derive(Debug)]
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines of its stderr, from a reader thread.
    lines: mpsc::Receiver<String>,
    reader: Option<thread::JoinHandle<()>>,
    seq: u64,
}

#[derive(Debug)]
enum SessionError {
    Timeout,
    Gone,
}

impl Session {
    fn start(prefix: &[String]) -> Result<Session, ForwardError> {
        let mut cmd = run::command(prefix, "nft");
        cmd.arg("-i")
            // Interactive nft keeps a history file in $HOME: keep none.
            .env("HOME", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| ForwardError::Spawn {
            program: "nft".into(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel();
        let reader = thread::Builder::new()
            .name("nft-stderr".into())
            .spawn(move || {
                let Some(stderr) = stderr else { return };
                let mut r = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|source| ForwardError::Spawn {
                program: "nft (stderr reader thread)".into(),
                source,
            })?;
        Ok(Session {
            child,
            stdin,
            lines: rx,
            reader: Some(reader),
            seq: 0,
        })
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `command` and the sync marker; returns the command's error lines.
    fn exec(&mut self, command: &str) -> Result<Vec<String>, SessionError> {
        debug_assert!(!command.contains('\n'));
        self.seq += 1;
        let marker = format!("{SYNC_MARKER}{}", self.seq);
        let stdin = self.stdin.as_mut().ok_or(SessionError::Gone)?;
        stdin
            .write_all(format!("{command}\n{marker}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|_| SessionError::Gone)?;
        let deadline = Instant::now() + NFT_REPLY_TIMEOUT;
        let mut out: Vec<String> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(SessionError::Timeout),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(SessionError::Gone),
            };
            let trimmed = line.trim();
            if trimmed == marker {
                break;
            }
            // Caret lines point into the echoed input; the rest of a message says it all
            // (and the marker's own caret line arrives after the marker).
            if trimmed.is_empty() || trimmed.chars().all(|c| c == '^' || c == '~') {
                continue;
            }
            out.push(trimmed.to_string());
        }
        // The marker's own "Error: syntax error …" precedes its echo.
        if out.last().is_some_and(|l| l.starts_with("Error:")) {
            out.pop();
        }
        Ok(out)
    }

    /// Closes its input, waits briefly, kills it if needed; returns its status as text.
    fn finish(mut self) -> String {
        self.stop()
    }

    fn stop(&mut self) -> String {
        drop(self.stdin.take());
        let status = match run::wait_timeout(&mut self.child, Duration::from_secs(1)) {
            Ok(Some(s)) => s.to_string(),
            _ => {
                let _ = self.child.kill();
                self.child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string())
            }
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(NftConfig::new("wan0").validate().is_ok());
        assert!(NftConfig::new("ppp*").validate().is_ok());
        for bad in ["", "wan\"0", "a b", "0123456789abcdef", "x/y", ".."] {
            assert!(NftConfig::new(bad).validate().is_err(), "{bad:?}");
        }
        let mut c = NftConfig::new("wan0");
        for bad in ["", "1abc", "a;b", "a b", "a}"] {
            c.table = bad.into();
            assert!(c.validate().is_err(), "{bad:?}");
        }
        c.table = "pl_gw-2".into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn parses_listing() {
        let text = "table ip plugline {\n\tmap udp_dnat {\n\t\ttype inet_service : ipv4_addr . inet_service\n\t\telements = { 5000 : 192.168.0.91 . 5000, 6000 : 192.168.0.92 . 7000,\n\t\t\t     7777 : 10.0.0.1 }\n\t}\n\n\tmap tcp_dnat {\n\t\ttype inet_service : ipv4_addr . inet_service\n\t}\n\n\tchain prerouting {\n\t}\n}\n";
        let udp = parse_map(text, UDP_MAP, Protocol::Udp).unwrap();
        assert_eq!(udp.len(), 3);
        assert_eq!(
            udp[1].forward(),
            Some(Forward {
                protocol: Protocol::Udp,
                external_port: 6000,
                internal_client: Ipv4Addr::new(192, 168, 0, 92),
                internal_port: 7000
            })
        );
        assert_eq!(udp[2].port, 7777);
        assert_eq!(udp[2].target, None);
        assert!(parse_map(text, TCP_MAP, Protocol::Tcp).unwrap().is_empty());
        assert!(parse_map("table ip plugline {\n}\n", TCP_MAP, Protocol::Tcp).is_err());
        assert!(parse_map(
            "map udp_dnat { type x\n elements = { http : 1.2.3.4 . 80 } }",
            UDP_MAP,
            Protocol::Udp
        )
        .is_err());
    }

    #[test]
    fn reads_conntrack_counts() {
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"
            ),
            Some(0)
        );
        assert_eq!(
            deleted_count("conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted."),
            Some(12)
        );
        assert_eq!(deleted_count("Operation not permitted"), None);
    }

    #[test]
    fn parses_conntrack_lines() {
        let line = "udp      17 29 src=203.0.113.10 dst=203.0.113.1 sport=40000 dport=6000 [UNREPLIED] src=203.0.113.1 dst=203.0.113.10 sport=6000 dport=40000 mark=0 use=1";
        let stale = Flow {
            protocol: Protocol::Udp,
            src: Ipv4Addr::new(203, 0, 113, 10),
            dst: Ipv4Addr::new(203, 0, 113, 1),
            sport: 40000,
            dport: 6000,
            reply_src: Ipv4Addr::new(203, 0, 113, 1),
            reply_sport: 6000,
        };
        assert_eq!(Flow::parse(line), Some(stale));
        let dnat = "tcp      6 431999 ESTABLISHED src=203.0.113.10 dst=203.0.113.1 sport=41000 dport=9090 src=192.168.0.91 dst=203.0.113.10 sport=8080 dport=41000 [ASSURED] mark=0 use=1";
        let flow = Flow::parse(dnat).unwrap();
        assert_eq!(flow.protocol, Protocol::Tcp);
        assert_eq!(flow.reply_src, Ipv4Addr::new(192, 168, 0, 91));
        assert_eq!(flow.reply_sport, 8080);
        assert_eq!(
            Flow::parse("conntrack v1.4.7: 1 flow entries have been shown."),
            None
        );
        assert_eq!(
            Flow::parse(
                "tcp 6 src=-x dst=1.2.3.4 sport=1 dport=2 src=1.2.3.4 dst=5.6.7.8 sport=2 dport=1"
            ),
            None
        );
        assert_eq!(
            Flow::parse("icmp 1 29 src=1.2.3.4 dst=5.6.7.8 type=8 code=0 id=1 src=5.6.7.8 dst=1.2.3.4 type=0 code=0 id=1"),
            None
        );
        // Only the original direction: no reply tuple, no flow.
        assert_eq!(
            Flow::parse("udp 17 29 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2"),
            None
        );
    }

    #[test]
    fn flow_matching() {
        let ip = Ipv4Addr::new(203, 0, 113, 1);
        let phone = Ipv4Addr::new(192, 168, 0, 91);
        let removed = Forward {
            protocol: Protocol::Tcp,
            external_port: 9090,
            internal_client: phone,
            internal_port: 8080,
        };
        let mut jobs = FlowJobs::default();
        jobs.removed.insert(removed);
        jobs.stale.insert((Protocol::Udp, 6000));
        let dnat = Flow::parse("tcp 6 431999 ESTABLISHED src=203.0.113.10 dst=203.0.113.1 sport=41000 dport=9090 src=192.168.0.91 dst=203.0.113.10 sport=8080 dport=41000 [ASSURED] mark=0 use=1").unwrap();
        assert!(dnat.matches(Some(ip), &jobs));
        assert!(dnat.matches(None, &jobs));
        // Another target, another external port, another address: left alone.
        let other = Flow {
            reply_sport: 8081,
            ..dnat
        };
        assert!(!other.matches(Some(ip), &jobs));
        let other = Flow {
            dport: 9091,
            ..dnat
        };
        assert!(!other.matches(Some(ip), &jobs));
        let other = Flow {
            dst: Ipv4Addr::new(203, 0, 113, 2),
            ..dnat
        };
        assert!(!other.matches(Some(ip), &jobs));
        // The phone's own connection to a server port 9090 of another host that answers
        // from 192.168.0.91:8080 cannot exist untranslated: original dst = reply src.
        let untranslated = Flow { dst: phone, ..dnat };
        assert!(!untranslated.matches(None, &jobs));
        // Stale: to the external IP, answered by it, on a newly mapped port.
        let stale = Flow::parse("udp 17 29 src=203.0.113.10 dst=203.0.113.1 sport=40000 dport=6000 [UNREPLIED] src=203.0.113.1 dst=203.0.113.10 sport=6000 dport=40000 mark=0 use=1").unwrap();
        assert!(stale.matches(Some(ip), &jobs));
        assert!(
            !stale.matches(None, &jobs),
            "no external IP: no stale flows"
        );
        assert!(!Flow {
            dport: 6001,
            ..stale
        }
        .matches(Some(ip), &jobs));
        // A flow translated to a forward of the same port that is not the removed one.
        jobs.removed.clear();
        assert!(!dnat.matches(Some(ip), &jobs));
    }

    #[test]
    fn element_text() {
        let f = Forward {
            protocol: Protocol::Tcp,
            external_port: 8080,
            internal_client: Ipv4Addr::new(192, 168, 0, 91),
            internal_port: 80,
        };
        assert_eq!(element(&f), "8080 : 192.168.0.91 . 80");
        assert_eq!(map_name(f.protocol), TCP_MAP);
    }
}
