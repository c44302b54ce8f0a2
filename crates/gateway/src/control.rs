//! The control plane: one thread owns the mapping table, the journal and the forwarding backend.
//! Every change (SOAP, admin, expiry) goes through it, so there is one order of events, one
//! place where policy is applied and one durable write before any answer.
//!
//! Requests arrive on a channel; the thread drains whatever is queued, applies it to the pure
//! table, writes the resulting records with one fsync (group commit), updates the backend, and
//! only then answers each request.

use std::net::Ipv4Addr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forward::{Backend, Forward};
use gateway_core::record::Record;
use gateway_core::{igd, Change, Mapping, Table};
use igd_proto::actions::{Action, Response};
use igd_proto::error::{ErrorCode, UpnpError};
use tokio::sync::{oneshot, watch};

use crate::journal::Journal;

/// Requests handled in one batch (one journal sync) at most.
pub const MAX_BATCH: usize = 256;
/// Queue length in front of the control thread; beyond it requests are refused with 501.
pub const QUEUE_LEN: usize = 4096;
/// Longest sleep of the control thread when nothing expires sooner.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The state variables GENA events carry (WANIPConnection), as last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evented {
    /// The external address, if known.
    pub external_ip: Option<Ipv4Addr>,
    /// `Connected` or `Disconnected`.
    pub connection_status: &'static str,
    /// PortMappingNumberOfEntries.
    pub mapping_count: usize,
}

/// WAN interface counters for WANCommonInterfaceConfig.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WanCounters {
    /// Bytes sent out of the WAN interface.
    pub bytes_sent: u64,
    /// Bytes received on it.
    pub bytes_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received.
    pub packets_received: u64,
}

/// A request to the control thread.
#[derive(Debug)]
pub(crate) enum Command {
    Igd {
        requester: Ipv4Addr,
        igd_version: u8,
        action: Action,
        reply: oneshot::Sender<Result<Response, UpnpError>>,
    },
    Stop,
}

/// How the rest of the gateway talks to the control thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    pub(crate) tx: std_mpsc::SyncSender<Command>,
    pub(crate) evented: watch::Receiver<Evented>,
    pub(crate) wan_interface: Option<String>,
}

impl ControlHandle {
    /// Run one WANIPConnection action for `requester` (the TCP peer address, already checked to
    /// be on the LAN) and wait for its durable result.
    pub async fn igd(
        &self,
        requester: Ipv4Addr,
        igd_version: u8,
        action: Action,
    ) -> Result<Response, UpnpError> {
        let (reply, rx) = oneshot::channel();
        let unavailable = || UpnpError {
            code: 501,
            description: "gateway is shutting down".into(),
        };
        self.tx
            .try_send(Command::Igd {
                requester,
                igd_version,
                action,
                reply,
            })
            .map_err(|e| match e {
                std_mpsc::TrySendError::Full(_) => UpnpError {
                    code: 501,
                    description: "gateway busy".into(),
                },
                std_mpsc::TrySendError::Disconnected(_) => unavailable(),
            })?;
        rx.await.map_err(|_| unavailable())?
    }

    /// The evented state; `changed()` wakes on every change (bursts coalesce).
    pub fn evented(&self) -> watch::Receiver<Evented> {
        self.evented.clone()
    }

    /// Counters of the WAN interface, read from sysfs (zeros when unknown).
    pub fn wan_counters(&self) -> WanCounters {
        let Some(ifname) = &self.wan_interface else {
            return WanCounters::default();
        };
        let read = |name: &str| -> u64 {
            std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{name}"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        WanCounters {
            bytes_sent: read("tx_bytes"),
            bytes_received: read("rx_bytes"),
            packets_sent: read("tx_packets"),
            packets_received: read("rx_packets"),
        }
    }

    /// A handle wired to a test double instead of the real control thread: every command is
    /// passed to `f` on a task. For unit tests of the servers.
    #[doc(hidden)]
    pub fn for_tests(
        f: impl Fn(Ipv4Addr, u8, Action) -> Result<Response, UpnpError> + Send + 'static,
        evented: watch::Receiver<Evented>,
    ) -> ControlHandle {
        let (tx, rx) = std_mpsc::sync_channel::<Command>(64);
        std::thread::spawn(move || {
            while let Ok(cmd) = rx.recv() {
                match cmd {
                    Command::Igd {
                        requester,
                        igd_version,
                        action,
                        reply,
                    } => {
                        let _ = reply.send(f(requester, igd_version, action));
                    }
                    Command::Stop => return,
                }
            }
        });
        ControlHandle {
            tx,
            evented,
            wan_interface: None,
        }
    }
}

/// Unix time in seconds: the clock the pure table runs on.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the control thread needs to start.
pub struct ControlSetup {
    /// The table, already restored from the journal.
    pub table: Table,
    /// The open journal.
    pub journal: Journal,
    /// The forwarding backend, already reconciled with the table.
    pub backend: Box<dyn Backend>,
    /// The external address to report.
    pub external_ip: Option<Ipv4Addr>,
    /// WAN interface for counters.
    pub wan_interface: Option<String>,
    /// Compact the journal after this many records.
    pub compact_after_records: usize,
}

/// The running control thread.
pub struct ControlThread {
    handle: ControlHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlThread {
    /// Start the thread.
    pub fn spawn(setup: ControlSetup) -> std::io::Result<ControlThread> {
        let (tx, rx) = std_mpsc::sync_channel(QUEUE_LEN);
        let (evented_tx, evented) = watch::channel(Evented {
            external_ip: setup.external_ip,
            connection_status: "Connected",
            mapping_count: setup.table.len(),
        });
        let wan_interface = setup.wan_interface.clone();
        let thread = std::thread::Builder::new()
            .name("plugline-control".into())
            .spawn(move || Actor::new(setup, evented_tx).run(rx))?;
        Ok(ControlThread {
            handle: ControlHandle {
                tx,
                evented,
                wan_interface,
            },
            thread: Some(thread),
        })
    }

    /// A handle for servers.
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }

    /// Stop the thread after the queued requests are done.
    pub fn stop(mut self) {
        let _ = self.handle.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward_of(m: &Mapping) -> Forward {
    Forward {
        protocol: m.key.protocol,
        external_port: m.key.external_port,
        internal_client: m.internal_client,
        internal_port: m.internal_port,
    }
}

struct Actor {
    table: Table,
    journal: Journal,
    backend: Box<dyn Backend>,
    external_ip: Option<Ipv4Addr>,
    started: std::time::Instant,
    evented: watch::Sender<Evented>,
    compact_after: usize,
    records: Vec<Record>,
}

impl Actor {
    fn new(setup: ControlSetup, evented: watch::Sender<Evented>) -> Actor {
        Actor {
            table: setup.table,
            journal: setup.journal,
            backend: setup.backend,
            external_ip: setup.external_ip,
            started: std::time::Instant::now(),
            evented,
            compact_after: setup.compact_after_records,
            records: Vec::new(),
        }
    }

    fn run(mut self, rx: std_mpsc::Receiver<Command>) {
        loop {
            let now = unix_now();
            let wait = self
                .table
                .next_expiry()
                .map(|at| Duration::from_secs(at.saturating_sub(now)))
                .unwrap_or(IDLE_WAKE)
                .min(IDLE_WAKE);
            let first = match rx.recv_timeout(wait) {
                Ok(cmd) => Some(cmd),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = Vec::new();
            batch.extend(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            let mut replies = Vec::with_capacity(batch.len());
            let mut stop = false;
            let now = unix_now();
            self.expire(now);
            for cmd in batch {
                match cmd {
                    Command::Igd {
                        requester,
                        igd_version,
                        action,
                        reply,
                    } => {
                        let result = self.igd(now, requester, igd_version, &action);
                        replies.push((reply, result));
                    }
                    Command::Stop => stop = true,
                }
            }
            let durable = self.flush();
            for (reply, result) in replies {
                let result = match (&durable, result) {
                    (Err(e), Ok(_)) => Err(UpnpError {
                        code: ErrorCode::ActionFailed.code(),
                        description: format!("could not store the change: {e}"),
                    }),
                    (_, r) => r,
                };
                let _ = reply.send(result);
            }
            self.publish();
            if stop {
                return;
            }
        }
    }

    fn igd(
        &mut self,
        now: u64,
        requester: Ipv4Addr,
        igd_version: u8,
        action: &Action,
    ) -> Result<Response, UpnpError> {
        let ctx = igd::Context {
            requester,
            igd_version,
            external_ip: self.external_ip,
            connection_status: "Connected",
            uptime_seconds: u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX),
            now,
        };
        let result = igd::handle(&mut self.table, &ctx, action);
        self.apply_changes(now)?;
        result
    }

    fn expire(&mut self, now: u64) {
        let expired = self.table.expire(now);
        if !expired.is_empty() {
            tracing::info!(count = expired.len(), "leases expired");
        }
        let _ = self.apply_changes(now);
    }

    /// Push queued table changes to the backend and the pending journal records. A mapping the
    /// backend cannot install is taken out of the table again and the request fails with 501,
    /// so the table never claims a forward that does not exist.
    fn apply_changes(&mut self, now: u64) -> Result<(), UpnpError> {
        let mut failure = None;
        while let Some(change) = self.table.poll_change() {
            match change {
                Change::Added(m) => match self.backend.add(&forward_of(&m)) {
                    Ok(()) => self.records.push(Record::Put(m)),
                    Err(e) => {
                        tracing::error!(error = %e, port = m.key.external_port, "forward could not be installed");
                        let _ = self.table.remove(now, None, &m.key);
                        // Drain the Removed change of the undo without touching the backend.
                        while self.table.poll_change().is_some() {}
                        failure = Some(UpnpError {
                            code: ErrorCode::ActionFailed.code(),
                            description: format!("forwarding failed: {e}"),
                        });
                    }
                },
                Change::Removed(m) => {
                    if let Err(e) = self.backend.remove(&forward_of(&m)) {
                        tracing::error!(error = %e, port = m.key.external_port, "forward could not be removed");
                    }
                    self.records.push(Record::Delete(m.key));
                }
                Change::Updated { old, new } => {
                    if forward_of(&old) != forward_of(&new) {
                        let _ = self.backend.remove(&forward_of(&old));
                        if let Err(e) = self.backend.add(&forward_of(&new)) {
                            tracing::error!(error = %e, "forward could not be updated");
                        }
                    }
                    self.records.push(Record::Put(new));
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Make the pending records durable (one sync for the batch), compacting when due.
    fn flush(&mut self) -> std::io::Result<()> {
        let records = std::mem::take(&mut self.records);
        if let Err(e) = self.journal.append(&records) {
            tracing::error!(error = %e, "journal write failed: changes are not durable");
            return Err(e);
        }
        if self.journal.records_since_compaction() > self.compact_after
            && self.journal.records_since_compaction() > 2 * self.table.len()
        {
            if let Err(e) = self.journal.compact(self.table.iter()) {
                tracing::warn!(error = %e, "journal compaction failed; will retry");
            }
        }
        Ok(())
    }

    fn publish(&self) {
        let count = self.table.len();
        let ip = self.external_ip;
        self.evented.send_if_modified(|e| {
            let changed = e.mapping_count != count || e.external_ip != ip;
            e.mapping_count = count;
            e.external_ip = ip;
            changed
        });
    }
}
