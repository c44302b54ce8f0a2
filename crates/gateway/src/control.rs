//! The control plane: one thread owns the mapping table, the journal and the forwarding backend.
//! Every change (SOAP, admin, expiry) goes through it, so there is one order of events, one
//! place where policy is applied and one durable write before any answer.
//!
//! Requests arrive on a channel; the thread drains whatever is queued, applies it to the pure
//! table, updates the backend and writes the resulting records to the journal. The answers go
//! with the written records to the sync thread (`plugline-sync`), which fdatasyncs and only
//! then answers: the table never waits for the disk, every batch written while a sync runs
//! shares the next one (group commit), and since the sync thread answers in order, no answer
//! (not even a read's) leaves before everything it could have seen is durable.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forward::{Backend, Forward};
use gateway_core::record::Record;
use gateway_core::{
    igd, AddRequest, Change, Key, Limits, Mapping, Policy, Protocol, Refusal, Table,
};
use igd_proto::actions::{Action, Response};
use igd_proto::error::{ErrorCode, UpnpError};
use tokio::sync::{oneshot, watch};

use crate::admin::settings::LiveSettings;
use crate::journal::{Journal, Unsynced};

/// Requests handled in one batch (one journal sync) at most.
pub const MAX_BATCH: usize = 256;
/// Queue length in front of the control thread; beyond it requests are refused with 501.
pub const QUEUE_LEN: usize = 4096;
/// Longest sleep of the control thread when nothing expires sooner.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// LAN hosts whose last request time is remembered (for the admin page's "last seen" and
/// stale deletion); beyond it the host seen longest ago is forgotten.
pub const MAX_SEEN_HOSTS: usize = 4096;

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

/// The table as the admin page sees it, at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The instant (unix seconds): leases remaining are `Mapping::remaining(now)`.
    pub now: u64,
    /// Every mapping, in key order.
    pub mappings: Vec<Mapping>,
    /// When each internal client of a mapping last sent a request to the gateway (unix
    /// seconds); absent = not since the gateway started.
    pub last_seen: HashMap<Ipv4Addr, u64>,
}

/// What the status page shows, read from the control thread.
#[derive(Debug, Clone)]
pub struct Status {
    /// Now (unix seconds).
    pub now: u64,
    /// Seconds since the control thread started.
    pub uptime_seconds: u64,
    /// The external address, if known.
    pub external_ip: Option<Ipv4Addr>,
    /// `Connected` or `Disconnected`.
    pub connection_status: &'static str,
    /// Mappings in total.
    pub total: usize,
    /// UDP mappings.
    pub udp: usize,
    /// TCP mappings.
    pub tcp: usize,
    /// Mappings per internal client.
    pub per_host: BTreeMap<Ipv4Addr, usize>,
    /// The live settings in force.
    pub settings: LiveSettings,
}

/// Why an admin command failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The table refused (the same refusal a SOAP client would get).
    #[error("{0}")]
    Refused(Refusal),
    /// The change is in the table but could not be made durable, or settings could not be
    /// written: the operator should look at the disk.
    #[error("could not store the change: {0}")]
    Storage(String),
    /// The control thread is busy or stopping: try again.
    #[error("{0}")]
    Unavailable(&'static str),
}

type AdminReply<T> = oneshot::Sender<Result<T, AdminError>>;

/// A request to the control thread.
#[derive(Debug)]
pub(crate) enum Command {
    Igd {
        requester: Ipv4Addr,
        igd_version: u8,
        action: Action,
        reply: oneshot::Sender<Result<Response, UpnpError>>,
    },
    /// Every mapping with its remaining lease and the last request time of its host.
    Snapshot {
        reply: AdminReply<Snapshot>,
    },
    /// Status counters and the live settings.
    Status {
        reply: AdminReply<Status>,
    },
    /// Delete one mapping as the administrator (any owner, secure mode aside).
    AdminRemove {
        key: Key,
        reply: AdminReply<Mapping>,
    },
    /// Delete the mappings with these keys (missing ones are skipped): how many went.
    RemoveSelection {
        keys: Vec<Key>,
        reply: AdminReply<usize>,
    },
    /// Delete the non-manual mappings of hosts whose last request is older than
    /// `older_than_seconds`, or who sent none since the start.
    RemoveStale {
        older_than_seconds: u64,
        reply: AdminReply<usize>,
    },
    /// Add (or refresh) a static forward: `Source::Manual`, requester = internal client.
    AddStatic {
        request: AddRequest,
        reply: AdminReply<Mapping>,
    },
    /// Enable or disable a mapping (its forward is removed while disabled).
    SetEnabled {
        key: Key,
        enabled: bool,
        reply: AdminReply<Mapping>,
    },
    /// Persist (`settings.toml`) and apply validated live settings.
    ApplySettings {
        settings: LiveSettings,
        reply: AdminReply<LiveSettings>,
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

    async fn admin<T>(&self, make: impl FnOnce(AdminReply<T>) -> Command) -> Result<T, AdminError> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(make(reply)).map_err(|e| match e {
            std_mpsc::TrySendError::Full(_) => AdminError::Unavailable("gateway busy"),
            std_mpsc::TrySendError::Disconnected(_) => {
                AdminError::Unavailable("gateway is shutting down")
            }
        })?;
        rx.await
            .map_err(|_| AdminError::Unavailable("gateway is shutting down"))?
    }

    /// Every mapping, with the instant and the hosts' last request times.
    pub async fn snapshot(&self) -> Result<Snapshot, AdminError> {
        self.admin(|reply| Command::Snapshot { reply }).await
    }

    /// Counters for the status page and the live settings.
    pub async fn status(&self) -> Result<Status, AdminError> {
        self.admin(|reply| Command::Status { reply }).await
    }

    /// Delete a mapping whoever holds it (714 when absent); durable before the answer.
    pub async fn admin_remove(&self, key: Key) -> Result<Mapping, AdminError> {
        self.admin(|reply| Command::AdminRemove { key, reply })
            .await
    }

    /// Delete the mappings with these keys; how many existed and went.
    pub async fn remove_selection(&self, keys: Vec<Key>) -> Result<usize, AdminError> {
        self.admin(|reply| Command::RemoveSelection { keys, reply })
            .await
    }

    /// Delete the mappings (static forwards aside) of hosts not seen for
    /// `older_than_seconds` or never seen since the start.
    pub async fn remove_stale(&self, older_than_seconds: u64) -> Result<usize, AdminError> {
        self.admin(|reply| Command::RemoveStale {
            older_than_seconds,
            reply,
        })
        .await
    }

    /// Add a static forward through the same table, policy, journal and backend as SOAP.
    pub async fn add_static(&self, request: AddRequest) -> Result<Mapping, AdminError> {
        self.admin(|reply| Command::AddStatic { request, reply })
            .await
    }

    /// Enable or disable a mapping.
    pub async fn set_enabled(&self, key: Key, enabled: bool) -> Result<Mapping, AdminError> {
        self.admin(|reply| Command::SetEnabled {
            key,
            enabled,
            reply,
        })
        .await
    }

    /// Persist and apply live settings (already validated).
    pub async fn apply_settings(&self, settings: LiveSettings) -> Result<LiveSettings, AdminError> {
        self.admin(|reply| Command::ApplySettings { settings, reply })
            .await
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
                    // Admin commands: the reply is dropped, the caller sees "unavailable".
                    _ => {}
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
    /// Where live settings changed by the admin page are persisted (`None`: not persisted).
    pub settings_file: Option<PathBuf>,
    /// Whether UPnP IGD control is on at start (off: every WANIPConnection action is
    /// answered 501 ActionFailed).
    pub upnp_enabled: bool,
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

/// Returns the free memory of every malloc arena to the kernel (`malloc_trim`): after a burst
/// of requests the HTTP tasks' buffers are free but stay resident otherwise.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; the argument is
    // the padding to keep, and any value is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Batches handed to the sync thread at once (one sync per journal file among them).
const MAX_SYNC_JOBS: usize = 1024;

/// Where the answer to one IGD action goes.
type IgdReply = oneshot::Sender<Result<Response, UpnpError>>;

/// One batch's answers, released by the sync thread once its records are durable.
struct SyncJob {
    /// The written records (`None`: nothing was written, the answers only wait for the
    /// batches before them), or why they could not be written.
    records: std::io::Result<Option<Unsynced>>,
    replies: Vec<(IgdReply, Result<Response, UpnpError>)>,
    pending: Vec<Pending>,
}

/// What the sync thread did, logged when it ends (how long the disk makes answers wait).
#[derive(Debug, Default)]
struct SyncStats {
    syncs: u64,
    batches: u64,
    total: Duration,
    longest: Duration,
}

fn sync_thread(rx: &std_mpsc::Receiver<SyncJob>) {
    let mut stats = SyncStats::default();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_SYNC_JOBS {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        sync_jobs(jobs, &mut stats);
    }
    if stats.syncs > 0 {
        tracing::info!(
            syncs = stats.syncs,
            batches = stats.batches,
            mean_ms = stats.total.as_secs_f64() * 1e3 / stats.syncs as f64,
            longest_ms = stats.longest.as_secs_f64() * 1e3,
            "journal syncs"
        );
    }
}

/// Syncs each journal file the jobs wrote to once, then answers every job in order.
fn sync_jobs(jobs: Vec<SyncJob>, stats: &mut SyncStats) {
    let mut synced: Vec<(Unsynced, Result<(), String>)> = Vec::new();
    stats.batches += jobs.len() as u64;
    for job in &jobs {
        if let Ok(Some(u)) = &job.records {
            if !synced.iter().any(|(s, _)| s.same_file(u)) {
                let started = std::time::Instant::now();
                let result = u.sync().map_err(|e| {
                    tracing::error!(error = %e, "journal sync failed: changes are not durable");
                    e.to_string()
                });
                let took = started.elapsed();
                stats.syncs += 1;
                stats.total += took;
                stats.longest = stats.longest.max(took);
                synced.push((u.clone(), result));
            }
        }
    }
    for job in jobs {
        let failure = match &job.records {
            Err(e) => Some(e.to_string()),
            Ok(None) => None,
            Ok(Some(u)) => synced
                .iter()
                .find(|(s, _)| s.same_file(u))
                .and_then(|(_, r)| r.clone().err()),
        };
        let failure = failure.map(std::io::Error::other);
        for complete in job.pending {
            complete(failure.as_ref());
        }
        for (reply, result) in job.replies {
            let result = match (&failure, result) {
                (Some(e), Ok(_)) => Err(UpnpError {
                    code: ErrorCode::ActionFailed.code(),
                    description: format!("could not store the change: {e}"),
                }),
                (_, r) => r,
            };
            let _ = reply.send(result);
        }
    }
}

/// How a pending admin reply is completed once the batch is durable (or not).
type Pending = Box<dyn FnOnce(Option<&std::io::Error>) + Send>;

/// An admin reply that waits for the batch's journal sync: a change that was applied but
/// not made durable is answered with [`AdminError::Storage`].
fn after_sync<T: Send + 'static>(reply: AdminReply<T>, result: Result<T, AdminError>) -> Pending {
    Box::new(move |sync_error| {
        let result = match (sync_error, result) {
            (Some(e), Ok(_)) => Err(AdminError::Storage(e.to_string())),
            (_, r) => r,
        };
        let _ = reply.send(result);
    })
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
    settings_file: Option<PathBuf>,
    upnp_enabled: bool,
    /// Last request (unix seconds) per LAN host, at most [`MAX_SEEN_HOSTS`].
    last_seen: HashMap<Ipv4Addr, u64>,
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
            settings_file: setup.settings_file,
            upnp_enabled: setup.upnp_enabled,
            last_seen: HashMap::new(),
        }
    }

    /// Serve until stopped, with the sync thread beside (see [`SyncJob`]).
    fn run(self, rx: std_mpsc::Receiver<Command>) {
        let (sync_tx, sync_rx) = std_mpsc::channel::<SyncJob>();
        let syncer = std::thread::Builder::new()
            .name("plugline-sync".into())
            .spawn(move || sync_thread(&sync_rx));
        if let Err(e) = &syncer {
            // Without the thread every send fails and the batch is synced in line.
            tracing::error!(error = %e, "cannot start the journal sync thread: syncing in line");
        }
        self.serve(&rx, &sync_tx);
        // The sync thread answers what is queued, then ends.
        drop(sync_tx);
        if let Ok(syncer) = syncer {
            let _ = syncer.join();
        }
    }

    fn serve(mut self, rx: &std_mpsc::Receiver<Command>, sync: &std_mpsc::Sender<SyncJob>) {
        // Batches since the heap was last given back (see `trim_heap`), and the last one.
        let mut batches_since_trim = 0usize;
        let mut last_batch = std::time::Instant::now();
        loop {
            let now = unix_now();
            let wait = self
                .table
                .next_expiry()
                .map(|at| Duration::from_secs(at.saturating_sub(now)))
                .unwrap_or(IDLE_WAKE)
                .min(IDLE_WAKE);
            let first = match rx.recv_timeout(wait) {
                Ok(cmd) => {
                    batches_since_trim += 1;
                    last_batch = std::time::Instant::now();
                    Some(cmd)
                }
                Err(std_mpsc::RecvTimeoutError::Timeout)
                    if batches_since_trim > 0 && last_batch.elapsed() >= IDLE_WAKE =>
                {
                    // Quiet for a while after work: give the memory a burst left free back
                    // to the kernel (glibc keeps it otherwise, per thread arena).
                    batches_since_trim = 0;
                    trim_heap();
                    None
                }
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
            let mut pending: Vec<Pending> = Vec::new();
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
                        self.seen(requester, now);
                        let result = if self.upnp_enabled {
                            self.igd(now, requester, igd_version, &action)
                        } else {
                            Err(UpnpError {
                                code: ErrorCode::ActionFailed.code(),
                                description: "UPnP is switched off on this gateway".into(),
                            })
                        };
                        replies.push((reply, result));
                    }
                    Command::Stop => stop = true,
                    admin => pending.extend(self.admin(now, admin)),
                }
            }
            let job = SyncJob {
                records: self.flush(),
                replies,
                pending,
            };
            if let Err(std_mpsc::SendError(job)) = sync.send(job) {
                // The sync thread is gone (it never panics on its own): sync here.
                sync_jobs(vec![job], &mut SyncStats::default());
            }
            // GENA may announce a new mapping count a sync before the answers leave: the
            // event carries a count, not an acknowledgement, and the next event corrects it.
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

    /// Remember that `host` sent a request at `now`.
    fn seen(&mut self, host: Ipv4Addr, now: u64) {
        if self.last_seen.len() >= MAX_SEEN_HOSTS && !self.last_seen.contains_key(&host) {
            if let Some(oldest) = self
                .last_seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(h, _)| *h)
            {
                self.last_seen.remove(&oldest);
            }
        }
        self.last_seen.insert(host, now);
    }

    /// Run one admin command; a change's reply waits for the batch's sync (returned), a
    /// read is answered at once.
    fn admin(&mut self, now: u64, cmd: Command) -> Option<Pending> {
        match cmd {
            Command::Snapshot { reply } => {
                let mappings: Vec<Mapping> = self.table.iter().cloned().collect();
                let last_seen = mappings
                    .iter()
                    .filter_map(|m| {
                        let at = self.last_seen.get(&m.internal_client)?;
                        Some((m.internal_client, *at))
                    })
                    .collect();
                let _ = reply.send(Ok(Snapshot {
                    now,
                    mappings,
                    last_seen,
                }));
                None
            }
            Command::Status { reply } => {
                let _ = reply.send(Ok(self.status(now)));
                None
            }
            Command::AdminRemove { key, reply } => {
                let result = self
                    .table
                    .remove(now, None, &key)
                    .map_err(AdminError::Refused);
                let _ = self.apply_changes(now);
                if let Ok(m) = &result {
                    tracing::info!(protocol = %m.key.protocol, port = m.key.external_port, client = %m.internal_client, "mapping deleted by the administrator");
                }
                Some(after_sync(reply, result))
            }
            Command::RemoveSelection { keys, reply } => {
                let deleted = self.remove_keys(now, keys);
                Some(after_sync(reply, Ok(deleted)))
            }
            Command::RemoveStale {
                older_than_seconds,
                reply,
            } => {
                let cutoff = now.saturating_sub(older_than_seconds);
                let keys: Vec<Key> = self
                    .table
                    .iter()
                    .filter(|m| m.source != gateway_core::Source::Manual)
                    .filter(|m| {
                        self.last_seen
                            .get(&m.internal_client)
                            .is_none_or(|at| *at < cutoff)
                    })
                    .map(|m| m.key)
                    .collect();
                let deleted = self.remove_keys(now, keys);
                Some(after_sync(reply, Ok(deleted)))
            }
            Command::AddStatic { request, reply } => {
                let requester = request.internal_client;
                let added = self
                    .table
                    .add(now, requester, request)
                    .map(|m| m.key)
                    .map_err(AdminError::Refused);
                let result = match (added, self.apply_changes(now)) {
                    (Ok(key), Ok(())) => self.table.get(&key).cloned().ok_or_else(|| {
                        AdminError::Refused(Refusal::new(
                            ErrorCode::ActionFailed,
                            "the mapping is gone",
                        ))
                    }),
                    (Ok(_), Err(e)) => Err(AdminError::Refused(Refusal::new(
                        ErrorCode::ActionFailed,
                        e.description,
                    ))),
                    (Err(e), _) => Err(e),
                };
                if let Ok(m) = &result {
                    tracing::info!(protocol = %m.key.protocol, port = m.key.external_port, client = %m.internal_client, internal_port = m.internal_port, "static forward added by the administrator");
                }
                Some(after_sync(reply, result))
            }
            Command::SetEnabled {
                key,
                enabled,
                reply,
            } => {
                let changed = self
                    .table
                    .set_enabled(now, &key, enabled)
                    .map(|_| ())
                    .map_err(AdminError::Refused);
                let result = match (changed, self.apply_changes(now)) {
                    (Ok(()), Ok(())) => self.table.get(&key).cloned().ok_or_else(|| {
                        AdminError::Refused(Refusal::new(
                            ErrorCode::NoSuchEntryInArray,
                            "the mapping is gone",
                        ))
                    }),
                    (Ok(()), Err(e)) => Err(AdminError::Refused(Refusal::new(
                        ErrorCode::ActionFailed,
                        e.description,
                    ))),
                    (Err(e), _) => Err(e),
                };
                Some(after_sync(reply, result))
            }
            Command::ApplySettings { settings, reply } => {
                let result = self.apply_settings(settings);
                let _ = reply.send(result);
                None
            }
            Command::Igd { .. } | Command::Stop => None,
        }
    }

    fn remove_keys(&mut self, now: u64, keys: Vec<Key>) -> usize {
        let mut deleted = 0;
        for key in keys {
            if self.table.remove(now, None, &key).is_ok() {
                deleted += 1;
            }
        }
        let _ = self.apply_changes(now);
        if deleted > 0 {
            tracing::info!(deleted, "mappings deleted by the administrator");
        }
        deleted
    }

    fn settings(&self) -> LiveSettings {
        let limits = self.table.limits();
        LiveSettings {
            secure_mode: self.table.policy().secure_mode,
            max_mappings: limits.max_mappings,
            max_mappings_per_host: limits.max_per_host,
            max_lease_seconds: limits.max_lease,
            upnp_enabled: self.upnp_enabled,
        }
    }

    fn status(&self, now: u64) -> Status {
        let mut per_host = BTreeMap::new();
        let (mut udp, mut tcp) = (0, 0);
        for m in self.table.iter() {
            *per_host.entry(m.internal_client).or_insert(0) += 1;
            match m.key.protocol {
                Protocol::Udp => udp += 1,
                Protocol::Tcp => tcp += 1,
            }
        }
        Status {
            now,
            uptime_seconds: self.started.elapsed().as_secs(),
            external_ip: self.external_ip,
            connection_status: "Connected",
            total: self.table.len(),
            udp,
            tcp,
            per_host,
            settings: self.settings(),
        }
    }

    /// Persist first (a setting that cannot be stored is not applied), then apply: limits
    /// and secure mode to the table (existing mappings stay), the UPnP switch here.
    fn apply_settings(&mut self, settings: LiveSettings) -> Result<LiveSettings, AdminError> {
        if let Some(path) = &self.settings_file {
            settings
                .save(path)
                .map_err(|e| AdminError::Storage(format!("{}: {e}", path.display())))?;
        }
        self.table.set_limits(Limits {
            max_mappings: settings.max_mappings,
            max_per_host: settings.max_mappings_per_host,
            max_lease: settings.max_lease_seconds,
            ..self.table.limits().clone()
        });
        self.table.set_policy(Policy {
            secure_mode: settings.secure_mode,
            ..self.table.policy().clone()
        });
        self.upnp_enabled = settings.upnp_enabled;
        tracing::info!(?settings, "settings changed by the administrator");
        Ok(self.settings())
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
    /// so the table never claims a forward that does not exist. A disabled mapping has no
    /// forward: disabling removes it, enabling installs it (and fails the same way).
    fn apply_changes(&mut self, now: u64) -> Result<(), UpnpError> {
        let mut failure = None;
        while let Some(change) = self.table.poll_change() {
            match change {
                // A disabled mapping is kept (and journaled) but has no forward.
                Change::Added(m) if !m.enabled => self.records.push(Record::Put(m)),
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
                    if m.enabled {
                        if let Err(e) = self.backend.remove(&forward_of(&m)) {
                            tracing::error!(error = %e, port = m.key.external_port, "forward could not be removed");
                        }
                    }
                    self.records.push(Record::Delete(m.key));
                }
                Change::Updated { old, new } => {
                    let moved = forward_of(&old) != forward_of(&new);
                    if old.enabled && (!new.enabled || moved) {
                        if let Err(e) = self.backend.remove(&forward_of(&old)) {
                            tracing::error!(error = %e, port = old.key.external_port, "forward could not be removed");
                        }
                    }
                    if new.enabled && (!old.enabled || moved) {
                        if let Err(e) = self.backend.add(&forward_of(&new)) {
                            tracing::error!(error = %e, port = new.key.external_port, "forward could not be installed");
                            if !old.enabled {
                                // Enabling failed: keep it disabled, as the journal says.
                                let _ = self.table.set_enabled(now, &new.key, false);
                                while self.table.poll_change().is_some() {}
                                failure = Some(UpnpError {
                                    code: ErrorCode::ActionFailed.code(),
                                    description: format!("forwarding failed: {e}"),
                                });
                                continue;
                            }
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

    /// Write the batch's records to the journal (the sync thread makes them durable),
    /// compacting when due.
    fn flush(&mut self) -> std::io::Result<Option<Unsynced>> {
        let records = std::mem::take(&mut self.records);
        let written = match self.journal.write(&records) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "journal write failed: changes are not durable");
                return Err(e);
            }
        };
        if self.journal.records_since_compaction() > self.compact_after
            && self.journal.records_since_compaction() > 2 * self.table.len()
        {
            // The snapshot holds every record written so far and is synced before it replaces
            // the journal, so batches still waiting for the old file's sync lose nothing.
            if let Err(e) = self.journal.compact(self.table.iter()) {
                tracing::warn!(error = %e, "journal compaction failed; will retry");
            }
        }
        Ok(written)
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

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Source;
    use std::net::Ipv4Addr;

    fn journal(name: &str) -> Journal {
        let dir = std::env::temp_dir().join(format!("pl-control-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Journal::open(&dir).expect("journal").0
    }

    fn put(port: u16) -> Record {
        Record::Put(Mapping {
            key: Key::new(Protocol::Udp, port),
            internal_client: Ipv4Addr::new(192, 168, 0, 91),
            internal_port: 5060,
            description: "t".into(),
            enabled: true,
            lease_seconds: 600,
            expires_at: Some(2_000_000_000),
            created_at: 1_999_999_400,
            source: Source::Upnp,
        })
    }

    fn ip() -> Result<Response, UpnpError> {
        Ok(Response::ExternalIp("203.0.113.1".into()))
    }

    type Answer = oneshot::Receiver<Result<Response, UpnpError>>;

    fn job(
        records: std::io::Result<Option<Unsynced>>,
        results: Vec<Result<Response, UpnpError>>,
    ) -> (SyncJob, Vec<Answer>) {
        let mut replies = Vec::new();
        let mut answers = Vec::new();
        for r in results {
            let (tx, rx) = oneshot::channel();
            replies.push((tx, r));
            answers.push(rx);
        }
        (
            SyncJob {
                records,
                replies,
                pending: Vec::new(),
            },
            answers,
        )
    }

    #[test]
    fn one_sync_per_file_then_every_answer_in_order() {
        let mut j = journal("order");
        let first = j.write(&[put(1)]).unwrap();
        let second = j.write(&[put(2)]).unwrap();
        let (a, mut a_rx) = job(Ok(first), vec![ip()]);
        let (b, mut b_rx) = job(Ok(second), vec![ip(), ip()]);
        // A read-only batch waits for the writes before it, then passes unchanged.
        let (c, mut c_rx) = job(
            Ok(None),
            vec![Err(UpnpError {
                code: 714,
                description: "x".into(),
            })],
        );
        let mut stats = SyncStats::default();
        sync_jobs(vec![a, b, c], &mut stats);
        assert_eq!(stats.syncs, 1, "both batches went to the same file");
        assert_eq!(stats.batches, 3);
        for rx in a_rx.iter_mut().chain(b_rx.iter_mut()) {
            assert!(rx.try_recv().unwrap().is_ok());
        }
        assert_eq!(c_rx[0].try_recv().unwrap().unwrap_err().code, 714);
    }

    #[test]
    fn a_batch_that_could_not_be_stored_fails_its_changes_only() {
        let mut j = journal("fail");
        let ok = j.write(&[put(3)]).unwrap();
        let (a, mut a_rx) = job(
            Err(std::io::Error::other("disk full")),
            vec![
                ip(),
                Err(UpnpError {
                    code: 718,
                    description: "conflict".into(),
                }),
            ],
        );
        let (b, mut b_rx) = job(Ok(ok), vec![ip()]);
        let stored = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = stored.clone();
        let (mut a, b) = (a, b);
        a.pending.push(Box::new(move |e: Option<&std::io::Error>| {
            *seen.lock().unwrap() = Some(e.map(|e| e.to_string()));
        }));
        sync_jobs(vec![a, b], &mut SyncStats::default());
        let failed = a_rx[0].try_recv().unwrap().unwrap_err();
        assert_eq!(failed.code, ErrorCode::ActionFailed.code());
        assert!(
            failed.description.contains("disk full"),
            "{}",
            failed.description
        );
        assert_eq!(
            a_rx[1].try_recv().unwrap().unwrap_err().code,
            718,
            "refusals keep their code"
        );
        assert_eq!(
            stored.lock().unwrap().clone(),
            Some(Some("disk full".to_string()))
        );
        assert!(
            b_rx[0].try_recv().unwrap().is_ok(),
            "the next batch is unaffected"
        );
    }
}
