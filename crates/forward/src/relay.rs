//! A userspace UDP/TCP relay: for machines without root, and the loopback demo.
//!
//! For each [`Forward`] the relay binds the external port on `listen_ip` (UDP or TCP, per the
//! forward's protocol) and relays to `internal_client:internal_port`:
//!
//! - **TCP**: accept, connect to the internal host (bounded by
//!   [`RelayLimits::tcp_connect_timeout`]), copy both ways until either side closes. At most
//!   [`RelayLimits::max_tcp_connections`] connections per forward; one more is accepted and
//!   closed at once (the remote sees a clean close, not a hang in the backlog).
//! - **UDP**: per-flow state. Each remote source gets its own upstream socket connected to the
//!   internal host, so the internal host's replies are sent back out of the external port to
//!   the right remote. A flow without traffic in either direction for
//!   [`RelayLimits::udp_flow_idle`] expires; at most [`RelayLimits::max_udp_flows`] flows per
//!   forward (a datagram that would open one more is dropped). Datagrams are relayed with
//!   non-blocking sends: when a socket buffer is full the datagram is dropped (UDP semantics)
//!   instead of stalling the other flows.
//!
//! Sockets are bound synchronously in [`Backend::add`] (so "port in use" is its error), then
//! handed to tasks on the runtime given to [`RelayBackend::new`]. [`Backend::remove`] aborts
//! the forward's task, which owns the listener and all its flows and connections, and waits
//! (at most [`REMOVE_WAIT`]) until every one of them is gone: when it returns, the external
//! port is closed and existing flows are stopped.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::{plan, Backend, Forward, ForwardError, Protocol, ReconcileReport};

/// How long a UDP flow lives without traffic in either direction.
pub const UDP_FLOW_IDLE: Duration = Duration::from_secs(60);
/// Most UDP flows (remote sources) per forward.
pub const MAX_UDP_FLOWS_PER_FORWARD: usize = 256;
/// Most TCP connections per forward.
pub const MAX_TCP_CONNECTIONS_PER_FORWARD: usize = 256;
/// How long connecting to the internal host may take.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Backend::remove`] waits for a forward's sockets to close.
pub const REMOVE_WAIT: Duration = Duration::from_secs(2);
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Listen backlog of the TCP listeners.
const TCP_BACKLOG: i32 = 128;
/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The relay's bounds; [`Default`] uses the module's constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// See [`UDP_FLOW_IDLE`].
    pub udp_flow_idle: Duration,
    /// See [`MAX_UDP_FLOWS_PER_FORWARD`].
    pub max_udp_flows: usize,
    /// See [`MAX_TCP_CONNECTIONS_PER_FORWARD`].
    pub max_tcp_connections: usize,
    /// See [`TCP_CONNECT_TIMEOUT`].
    pub tcp_connect_timeout: Duration,
}

impl Default for RelayLimits {
    fn default() -> RelayLimits {
        RelayLimits {
            udp_flow_idle: UDP_FLOW_IDLE,
            max_udp_flows: MAX_UDP_FLOWS_PER_FORWARD,
            max_tcp_connections: MAX_TCP_CONNECTIONS_PER_FORWARD,
            tcp_connect_timeout: TCP_CONNECT_TIMEOUT,
        }
    }
}

/// The userspace relay backend (see the module docs).
#[derive(Debug)]
pub struct RelayBackend {
    handle: Handle,
    listen_ip: Ipv4Addr,
    limits: RelayLimits,
    entries: BTreeMap<(Protocol, u16), Entry>,
}

/// One installed forward: its task and a way to know when all its sockets are gone.
#[derive(Debug)]
struct Entry {
    forward: Forward,
    task: JoinHandle<()>,
    /// Disconnects when every task of this forward (listener, flows, connections) has been
    /// dropped: each holds a clone of the sender.
    gone: mpsc::Receiver<()>,
}

impl RelayBackend {
    /// A relay binding external ports on `listen_ip` (the "WAN" address), running its
    /// sockets on `handle`, with the default [`RelayLimits`].
    pub fn new(handle: Handle, listen_ip: Ipv4Addr) -> RelayBackend {
        RelayBackend::with_limits(handle, listen_ip, RelayLimits::default())
    }

    /// Like [`new`](Self::new) with explicit limits.
    pub fn with_limits(handle: Handle, listen_ip: Ipv4Addr, limits: RelayLimits) -> RelayBackend {
        RelayBackend {
            handle,
            listen_ip,
            limits,
            entries: BTreeMap::new(),
        }
    }

    /// The address external ports are bound on.
    pub fn listen_ip(&self) -> Ipv4Addr {
        self.listen_ip
    }

    fn bind_error(&self, f: &Forward, e: io::Error) -> ForwardError {
        if e.kind() == io::ErrorKind::AddrInUse {
            ForwardError::PortInUse {
                protocol: f.protocol,
                port: f.external_port,
                ip: self.listen_ip,
            }
        } else {
            ForwardError::Bind {
                protocol: f.protocol,
                port: f.external_port,
                ip: self.listen_ip,
                source: e,
            }
        }
    }

    /// Binds `f`'s external port and starts its task.
    fn start(&self, f: &Forward) -> Result<Entry, ForwardError> {
        let local = SocketAddr::V4(SocketAddrV4::new(self.listen_ip, f.external_port));
        let target = SocketAddr::V4(SocketAddrV4::new(f.internal_client, f.internal_port));
        let (done, gone) = mpsc::channel::<()>();
        let limits = self.limits;
        let _runtime = self.handle.enter();
        let task = match f.protocol {
            Protocol::Udp => {
                let socket = std::net::UdpSocket::bind(local)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .and_then(UdpSocket::from_std)
                    .map_err(|e| self.bind_error(f, e))?;
                self.handle.spawn(udp_forward(socket, target, limits, done))
            }
            Protocol::Tcp => {
                let listener = bind_tcp(local)
                    .and_then(TcpListener::from_std)
                    .map_err(|e| self.bind_error(f, e))?;
                self.handle
                    .spawn(tcp_forward(listener, target, limits, done))
            }
        };
        tracing::debug!(forward = %f, "relay started");
        Ok(Entry {
            forward: *f,
            task,
            gone,
        })
    }

    /// Aborts an entry's task and waits until all its sockets are closed.
    fn stop(entry: Entry) {
        entry.task.abort();
        match entry.gone.recv_timeout(REMOVE_WAIT) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                forward = %entry.forward,
                "relay tasks did not stop within {REMOVE_WAIT:?}; they stop when the runtime next runs them"
            ),
        }
    }
}

impl Drop for RelayBackend {
    fn drop(&mut self) {
        for entry in self.entries.values() {
            entry.task.abort();
        }
    }
}

impl Backend for RelayBackend {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn add(&mut self, f: &Forward) -> Result<(), ForwardError> {
        f.validate()?;
        if let Some(held) = self.entries.get(&f.key()) {
            if held.forward == *f && !held.task.is_finished() {
                return Ok(());
            }
            // Another target (or a dead task): replace it.
            if let Some(old) = self.entries.remove(&f.key()) {
                Self::stop(old);
            }
        }
        let entry = self.start(f)?;
        self.entries.insert(f.key(), entry);
        Ok(())
    }

    fn remove(&mut self, f: &Forward) -> Result<(), ForwardError> {
        if let Some(entry) = self.entries.remove(&f.key()) {
            Self::stop(entry);
            tracing::debug!(forward = %f, "relay stopped");
        }
        Ok(())
    }

    fn reconcile(&mut self, wanted: &[Forward]) -> Result<ReconcileReport, ForwardError> {
        // A forward whose task died (it should not) is not held any more.
        let dead: Vec<(Protocol, u16)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.task.is_finished())
            .map(|(k, _)| *k)
            .collect();
        for key in dead {
            if let Some(entry) = self.entries.remove(&key) {
                tracing::warn!(forward = %entry.forward, "relay task had ended; restarting it");
                Self::stop(entry);
            }
        }
        let current: Vec<Forward> = self.entries.values().map(|e| e.forward).collect();
        let p = plan(&current, wanted)?;
        let mut report = ReconcileReport::default();
        for f in &p.remove {
            if let Some(entry) = self.entries.remove(&f.key()) {
                Self::stop(entry);
                report.removed += 1;
            }
        }
        let mut failures: Vec<ForwardError> = Vec::new();
        for f in &p.add {
            match self.start(f) {
                Ok(entry) => {
                    self.entries.insert(f.key(), entry);
                    report.added += 1;
                }
                Err(e) => {
                    tracing::warn!(forward = %f, error = %e, "reconcile: cannot start relay");
                    failures.push(e);
                }
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(report),
            Some(first) => Err(ForwardError::Reconcile {
                failed,
                first: Box::new(first),
            }),
        }
    }

    fn list(&mut self) -> Result<Vec<Forward>, ForwardError> {
        Ok(self.entries.values().map(|e| e.forward).collect())
    }
}

/// A non-blocking TCP listener on `addr` with SO_REUSEADDR (so a forward can be re-added while
/// connections of its previous incarnation are in TIME_WAIT; a live listener still conflicts).
fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A clock for activity stamps: milliseconds since the forward started.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_ms(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One UDP flow as the listener sees it.
struct Flow {
    upstream: Arc<UdpSocket>,
    last_active: Arc<AtomicU64>,
    task: AbortHandle,
}

/// The task of one UDP forward: owns the external socket and every flow (in `flows`: dropping
/// this future aborts them all).
async fn udp_forward(
    external: UdpSocket,
    target: SocketAddr,
    limits: RelayLimits,
    done: mpsc::Sender<()>,
) {
    let external = Arc::new(external);
    let clock = Clock(Instant::now());
    let idle_ms = u64::try_from(limits.udp_flow_idle.as_millis()).unwrap_or(u64::MAX);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut tasks: JoinSet<SocketAddr> = JoinSet::new();
    let sweep_every = (limits.udp_flow_idle / 4).max(Duration::from_millis(10));
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = external.recv_from(&mut buf) => {
                let (n, remote) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        // e.g. ICMP errors reported on the socket: not fatal.
                        tracing::debug!(error = %e, "relay: UDP receive error");
                        continue;
                    }
                };
                if !flows.contains_key(&remote) {
                    if flows.len() >= limits.max_udp_flows {
                        tracing::debug!(%remote, "relay: UDP flow limit reached; datagram dropped");
                        continue;
                    }
                    match open_flow(&external, remote, target, clock, &mut tasks, &done).await {
                        Ok(flow) => { flows.insert(remote, flow); }
                        Err(e) => {
                            tracing::warn!(error = %e, %target, "relay: cannot open an upstream UDP socket");
                            continue;
                        }
                    }
                }
                if let Some(flow) = flows.get(&remote) {
                    flow.last_active.store(clock.now_ms(), Ordering::Relaxed);
                    if let Err(e) = send_now(&flow.upstream, &buf[..n], None) {
                        tracing::debug!(error = %e, "relay: UDP datagram to the internal host dropped");
                    }
                }
            }
            _ = sweep.tick() => {
                let now = clock.now_ms();
                flows.retain(|_, flow| {
                    let keep = now.saturating_sub(flow.last_active.load(Ordering::Relaxed)) < idle_ms;
                    if !keep {
                        flow.task.abort();
                    }
                    keep
                });
            }
            Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                // A flow task that ended by itself (socket error): forget it. Aborted ones were
                // removed from `flows` already.
                if let Ok((id, remote)) = ended {
                    if flows.get(&remote).is_some_and(|f| f.task.id() == id) {
                        flows.remove(&remote);
                    }
                }
            }
        }
    }
}

/// Opens the upstream socket of a new flow and starts the task relaying its replies.
async fn open_flow(
    external: &Arc<UdpSocket>,
    remote: SocketAddr,
    target: SocketAddr,
    clock: Clock,
    tasks: &mut JoinSet<SocketAddr>,
    done: &mpsc::Sender<()>,
) -> io::Result<Flow> {
    let upstream = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?;
    upstream.connect(target).await?;
    let upstream = Arc::new(upstream);
    let last_active = Arc::new(AtomicU64::new(clock.now_ms()));
    let task = tasks.spawn(udp_replies(
        Arc::clone(external),
        Arc::clone(&upstream),
        remote,
        Arc::clone(&last_active),
        clock,
        done.clone(),
    ));
    Ok(Flow {
        upstream,
        last_active,
        task,
    })
}

/// Relays the internal host's replies of one flow back out of the external port.
async fn udp_replies(
    external: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    remote: SocketAddr,
    last_active: Arc<AtomicU64>,
    clock: Clock,
    _done: mpsc::Sender<()>,
) -> SocketAddr {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(n) => {
                last_active.store(clock.now_ms(), Ordering::Relaxed);
                if let Err(e) = send_now(&external, &buf[..n], Some(remote)) {
                    tracing::debug!(error = %e, %remote, "relay: UDP reply dropped");
                }
            }
            // The internal host answered with ICMP port unreachable: it may listen later.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::debug!(error = %e, "relay: upstream UDP socket failed; flow closed");
                return remote;
            }
        }
    }
}

/// Sends a datagram now or drops it: a plain non-blocking `send`/`sendto` on the socket.
///
/// Not tokio's `try_send`: that reports `WouldBlock` until the reactor has seen the socket
/// writable once, which drops the first datagram of every new flow.
fn send_now(socket: &UdpSocket, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
    let s = SockRef::from(socket);
    match to {
        Some(addr) => s.send_to(data, &addr.into()),
        None => s.send(data),
    }
}

/// The task of one TCP forward: owns the listener and every connection.
async fn tcp_forward(
    listener: TcpListener,
    target: SocketAddr,
    limits: RelayLimits,
    done: mpsc::Sender<()>,
) {
    let mut connections: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    if connections.len() >= limits.max_tcp_connections {
                        tracing::debug!(%remote, "relay: TCP connection limit reached; connection closed");
                        drop(stream);
                        continue;
                    }
                    connections.spawn(tcp_connection(stream, target, limits.tcp_connect_timeout, done.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Relays one TCP connection until either side closes.
async fn tcp_connection(
    mut inbound: TcpStream,
    target: SocketAddr,
    connect_timeout: Duration,
    _done: mpsc::Sender<()>,
) {
    let mut outbound = match tokio::time::timeout(connect_timeout, TcpStream::connect(target)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %target, "relay: cannot connect to the internal host");
            return;
        }
        Err(_) => {
            tracing::debug!(%target, "relay: connecting to the internal host timed out");
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        tracing::debug!(error = %e, "relay: TCP connection ended with an error");
    }
}
