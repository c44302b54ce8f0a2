//! The port-mapping lifecycle of the phone, through the `portmap` client.
//!
//! 1. Find the gateway and its external address (`portmap::discover`).
//! 2. Delete this phone's own mappings left from earlier runs or earlier LAN addresses: every
//!    mapping whose description starts with `plugline-phone <instance> ` (see
//!    [`crate::config`] for the instance).
//! 3. Map the SIP port (the same external port if free, any other otherwise) and tell the SIP
//!    task the public address ([`Announce`]); then map the RTP ports. Each mapping has a
//!    [`MappingKeeper`] that renews it half-way through its lease.
//! 4. Watch for a gateway that rebooted or changed address, and map again at once when one of
//!    these happens (the SIP task re-registers on every new [`Announce::generation`]):
//!    - an SSDP `ssdp:alive` from the gateway host with a new `BOOTID.UPNP.ORG` or a new root
//!      device uuid, or an alive after its `ssdp:byebye` (UDA 2.0 §1.2; [`GatewayWatch`]);
//!    - the first alive with an unknown BOOTID: the SIP mapping is looked up and mapped again
//!      if the gateway lost it;
//!    - a failed renewal (the keeper reports the mapping lost);
//!    - a changed `GetExternalIPAddress`, asked every `external_check_seconds`.
//! 5. At shutdown, delete every mapping (bounded by [`SHUTDOWN_TIMEOUT`]).
//!
//! Without a UPnP gateway the phone says so, announces no mapping, and the SIP task falls back
//! to the address the registrar sees (`rport`, RFC 3581) kept open by keepalives. It searches
//! again every `rediscover_seconds`, and at once when an IGD announces itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portmap::netif::LocalInterface;
use portmap::{
    discover, DiscoverOptions, Discovered, Gateway, KeeperEvent, Mapping, MappingKeeper,
    MappingRequest, Protocol,
};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use ssdp_proto::{Message, NotifyKind};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::log::unix_ms_now;
use crate::status::{MappingStatus, Shared};

/// The start of every mapping description of the phone.
pub const DESCRIPTION_PREFIX: &str = "plugline-phone";
/// Deleting the mappings at shutdown takes at most this long.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// The shortest time between two mapping sessions, so a gateway that fails every renewal at
/// once cannot make us spin.
pub const MIN_SESSION_INTERVAL: Duration = Duration::from_millis(500);
/// After the gateway refused the SIP mapping, wait this long before trying again.
pub const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// The shortest time between two presence checks triggered by announcements.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// SSDP announcements queued for the mapping task; more are dropped.
pub const NOTIFY_QUEUE: usize = 64;

/// What the mapping task tells the SIP task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announce {
    /// The first search is over. SIP waits for it, so the first REGISTER already carries the
    /// mapped address.
    pub ready: bool,
    /// The public SIP address (external IP and mapped port), `None` without a mapping.
    pub public: Option<SocketAddr>,
    /// Counts (re-)mappings: a new value asks SIP to register again even when the address is
    /// the same (the gateway rebooted and the mapping was made anew).
    pub generation: u64,
}

/// `plugline-phone <instance> ` : what every description of this phone starts with.
pub fn description_prefix(instance: &str) -> String {
    format!("{DESCRIPTION_PREFIX} {instance} ")
}

/// The SIP mapping's description, `plugline-phone <instance> sip`.
pub fn sip_description(instance: &str) -> String {
    format!("{}sip", description_prefix(instance))
}

/// An RTP mapping's description, `plugline-phone <instance> rtp <port>`.
pub fn rtp_description(instance: &str, port: u16) -> String {
    format!("{}rtp {port}", description_prefix(instance))
}

/// Whether a mapping with this description belongs to this phone instance.
pub fn is_ours(description: &str, instance: &str) -> bool {
    description.starts_with(&description_prefix(instance))
}

/// An SSDP NOTIFY, reduced to what the watch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyInfo {
    /// Who sent it.
    pub source: IpAddr,
    /// alive, byebye or update.
    pub kind: NotifyKind,
    /// `NT`.
    pub nt: String,
    /// The `uuid:…` of the USN.
    pub uuid: String,
    /// `BOOTID.UPNP.ORG`.
    pub boot_id: Option<u32>,
    /// `NEXTBOOTID.UPNP.ORG`.
    pub next_boot_id: Option<u32>,
}

impl NotifyInfo {
    /// From a parsed NOTIFY.
    pub fn new(source: IpAddr, notify: &ssdp_proto::Notify<'_>) -> NotifyInfo {
        NotifyInfo {
            source,
            kind: notify.nts,
            nt: notify.nt.to_owned(),
            uuid: notify.usn.split("::").next().unwrap_or_default().to_owned(),
            boot_id: notify.boot_id,
            next_boot_id: notify.next_boot_id,
        }
    }
}

/// What an announcement means for the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The gateway rebooted or was replaced: map again now.
    Rebooted(String),
    /// The gateway is leaving (byebye): expect it back; the next alive maps again.
    Left,
    /// First BOOTID seen: check that the SIP mapping is still there.
    Check,
    /// No gateway yet, and an IGD announced itself: search now.
    Appeared,
}

/// Follows the gateway's SSDP announcements (UDA 2.0 §1.2): its root device uuid, its BOOTID
/// and whether it said byebye. Pure: feed it [`NotifyInfo`]s, act on the [`Trigger`]s.
#[derive(Debug, Clone, Default)]
pub struct GatewayWatch {
    gateway: Option<(IpAddr, String)>,
    boot_id: Option<u32>,
    left: bool,
}

impl GatewayWatch {
    /// Follows the gateway at `ip` whose root device is `uuid` (`uuid:…`), BOOTID not known yet.
    pub fn follow(&mut self, ip: IpAddr, uuid: &str) {
        self.gateway = Some((ip, uuid.to_owned()));
        self.boot_id = None;
        self.left = false;
    }

    /// No gateway: wait for one to appear.
    pub fn forget(&mut self) {
        *self = GatewayWatch::default();
    }

    /// The BOOTID last announced by the gateway.
    pub fn boot_id(&self) -> Option<u32> {
        self.boot_id
    }

    /// What `notify` means.
    pub fn handle(&mut self, notify: &NotifyInfo) -> Option<Trigger> {
        let Some((ip, uuid)) = &self.gateway else {
            let igd = [
                "InternetGatewayDevice",
                "WANIPConnection",
                "WANPPPConnection",
            ]
            .iter()
            .any(|t| notify.nt.contains(t));
            return (notify.kind == NotifyKind::Alive && igd).then_some(Trigger::Appeared);
        };
        if notify.source != *ip {
            return None;
        }
        let same_device = notify.uuid.eq_ignore_ascii_case(uuid);
        // Embedded devices have uuids of their own; only the root device's announcements
        // (NT upnp:rootdevice) can tell that the device was replaced.
        if !same_device && !notify.nt.eq_ignore_ascii_case("upnp:rootdevice") {
            return None;
        }
        match notify.kind {
            NotifyKind::ByeBye if same_device => {
                let first = !self.left;
                self.left = true;
                first.then_some(Trigger::Left)
            }
            NotifyKind::ByeBye => None,
            NotifyKind::Update => {
                if same_device {
                    if let Some(next) = notify.next_boot_id {
                        self.boot_id = Some(next);
                    }
                }
                None
            }
            NotifyKind::Alive => {
                if !same_device {
                    let reason = format!(
                        "the gateway at {ip} announces a new device {} (was {uuid})",
                        notify.uuid
                    );
                    self.follow(*ip, &notify.uuid.clone());
                    self.boot_id = notify.boot_id;
                    return Some(Trigger::Rebooted(reason));
                }
                if self.left {
                    self.left = false;
                    self.boot_id = notify.boot_id;
                    return Some(Trigger::Rebooted(
                        "the gateway is back after ssdp:byebye".into(),
                    ));
                }
                match (self.boot_id, notify.boot_id) {
                    (Some(old), Some(new)) if old != new => {
                        self.boot_id = Some(new);
                        Some(Trigger::Rebooted(format!(
                            "the gateway rebooted (BOOTID.UPNP.ORG {old} -> {new})"
                        )))
                    }
                    (None, Some(new)) => {
                        self.boot_id = Some(new);
                        Some(Trigger::Check)
                    }
                    _ => None,
                }
            }
        }
    }
}

/// The multicast socket that hears NOTIFYs on the LAN interface.
pub fn ssdp_socket(lan: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProtocol::UDP))?;
    socket.set_reuse_address(true)?;
    // Bound to the group address: only datagrams sent to it arrive here.
    socket.bind(&SocketAddr::V4(ssdp_proto::MULTICAST_ENDPOINT_V4).into())?;
    socket.join_multicast_v4(&ssdp_proto::MULTICAST_V4, &lan)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Reads NOTIFYs from on-link senders into `tx` until the receiver is gone.
async fn listen_ssdp(socket: UdpSocket, lan: LocalInterface, tx: mpsc::Sender<NotifyInfo>) {
    let mut buf = vec![0u8; ssdp_proto::MAX_MESSAGE_LEN + 1];
    loop {
        let Ok((len, source)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let IpAddr::V4(ip) = source.ip() else {
            continue;
        };
        if len > ssdp_proto::MAX_MESSAGE_LEN || !lan.contains(ip) || ip == lan.addr {
            continue;
        }
        let Some(datagram) = buf.get(..len) else {
            continue;
        };
        if let Ok(Message::Notify(notify)) = ssdp_proto::parse(datagram) {
            let info = NotifyInfo::new(source.ip(), &notify);
            tracing::debug!(?info, "SSDP NOTIFY");
            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(info) {
                return;
            }
        }
    }
}

/// What the mapping task works with.
#[derive(Debug, Clone)]
pub struct MappingContext {
    /// The checked configuration.
    pub settings: Arc<Settings>,
    /// The LAN interface.
    pub lan: LocalInterface,
    /// This phone's instance name.
    pub instance: String,
    /// The status page's record.
    pub status: Shared,
    /// Where the public address goes.
    pub announce: watch::Sender<Announce>,
}

enum Ended {
    Shutdown,
    /// Map again at once.
    Remap(String),
    /// The gateway would not map the SIP port: wait, then try again.
    Refused(String),
}

/// Runs the lifecycle until `shutdown` turns true; the mappings are deleted then.
pub async fn run(ctx: MappingContext, mut shutdown: watch::Receiver<bool>) {
    if !ctx.settings.upnp {
        tracing::info!("UPnP is off (upnp = false): no port mapping; using rport and keepalives");
        ctx.status.update(|s| s.nat.mode = "disabled".into());
        announce(&ctx, None);
        crate::stopped(&mut shutdown).await;
        return;
    }
    let (notify_tx, mut notifies) = mpsc::channel(NOTIFY_QUEUE);
    let listener = match ssdp_socket(ctx.lan.addr) {
        Ok(socket) => Some(tokio::spawn(listen_ssdp(
            socket,
            ctx.lan.clone(),
            notify_tx,
        ))),
        Err(e) => {
            tracing::warn!(
                "UPnP: cannot listen for SSDP announcements on {}: {e}; a gateway reboot is noticed by a failed renewal only",
                ctx.lan.addr
            );
            None
        }
    };
    let mut watch = GatewayWatch::default();
    let mut last_session: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Some(last) = last_session {
            let wait = MIN_SESSION_INTERVAL.saturating_sub(last.elapsed());
            tokio::select! {
                _ = crate::stopped(&mut shutdown) => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        last_session = Some(Instant::now());
        ctx.status.update(|s| s.nat.mode = "searching".into());
        let options = DiscoverOptions {
            timeout: ctx.settings.discovery_timeout,
            interface: Some(ctx.lan.name.clone()),
            all: false,
            client: portmap::ClientConfig::default(),
        };
        let found = tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            found = discover(&options) => found,
        };
        let problem = match found {
            Ok(mut list) if !list.is_empty() => {
                let found = list.remove(0);
                match found.external_ip {
                    Some(external) if found.is_connected() => {
                        match session(
                            &ctx,
                            found,
                            external,
                            &mut watch,
                            &mut notifies,
                            &mut shutdown,
                        )
                        .await
                        {
                            Ended::Shutdown => break,
                            Ended::Remap(reason) => {
                                tracing::warn!("UPnP: {reason}: mapping the ports again");
                                ctx.status.update(|s| {
                                    s.nat.remaps += 1;
                                    s.nat.last_problem = Some(reason);
                                });
                                continue;
                            }
                            Ended::Refused(reason) => {
                                tracing::error!(
                                    "UPnP: {reason}; trying again in {} s",
                                    REFUSED_RETRY.as_secs()
                                );
                                Some((reason, REFUSED_RETRY))
                            }
                        }
                    }
                    _ => Some((
                        format!(
                            "the gateway at {} is not connected or reports no external address",
                            found.gateway.location()
                        ),
                        ctx.settings.rediscover,
                    )),
                }
            }
            Ok(_) => Some(("no UPnP gateway answered".into(), ctx.settings.rediscover)),
            Err(e) => Some((e.to_string(), ctx.settings.rediscover)),
        };
        let Some((reason, wait)) = problem else {
            continue;
        };
        // No usable gateway: say so, fall back to rport, and wait for one.
        tracing::warn!(
            "UPnP: no port mapping ({reason}); falling back to rport with keepalives, searching again in {} s or when a gateway announces itself",
            wait.as_secs()
        );
        watch.forget();
        ctx.status.update(|s| {
            s.nat.mode = "no gateway".into();
            s.nat.gateway = None;
            s.nat.gateway_uuid = None;
            s.nat.boot_id = None;
            s.nat.external_ip = None;
            s.nat.last_problem = Some(reason);
            s.mappings.clear();
        });
        announce(&ctx, None);
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = crate::stopped(&mut shutdown) => break,
                _ = tokio::time::sleep_until(until) => break,
                Some(notify) = notifies.recv() => {
                    if watch.handle(&notify) == Some(Trigger::Appeared) {
                        tracing::info!("UPnP: a gateway announced itself at {}: searching", notify.source);
                        break;
                    }
                }
            }
        }
    }
    if let Some(listener) = listener {
        listener.abort();
    }
}

/// Sends an [`Announce`]: ready, with `public`, next generation.
fn announce(ctx: &MappingContext, public: Option<SocketAddr>) {
    ctx.announce.send_modify(|a| {
        a.ready = true;
        a.public = public;
        a.generation += 1;
    });
    ctx.status
        .update(|s| s.nat.public_address = public.map(|p| p.to_string()));
}

fn mapping_status(mapping: &Mapping) -> MappingStatus {
    MappingStatus {
        protocol: mapping.protocol.as_str().to_owned(),
        external_port: mapping.external_port,
        internal_client: mapping.internal_client.clone(),
        internal_port: mapping.internal_port,
        lease_seconds: mapping.lease_seconds,
        expires_at_unix_ms: (mapping.lease_seconds > 0)
            .then(|| unix_ms_now() + u64::from(mapping.lease_seconds) * 1000),
        description: mapping.description.clone(),
        state: "active".into(),
    }
}

/// Deletes every mapping of this instance (earlier runs, earlier LAN addresses).
async fn remove_stale(gateway: &Gateway, instance: &str) {
    let list = match gateway.list().await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!("UPnP: cannot list the gateway's mappings to remove stale ones: {e}");
            return;
        }
    };
    for entry in list.iter().filter(|e| is_ours(&e.description, instance)) {
        match gateway.delete(entry.protocol, entry.external_port).await {
            Ok(()) => tracing::info!(
                "UPnP: removed stale mapping {} {} -> {}:{} ({})",
                entry.protocol.as_str(),
                entry.external_port,
                entry.internal_client,
                entry.internal_port,
                entry.description
            ),
            Err(e) => tracing::warn!(
                "UPnP: cannot remove stale mapping {} {} ({}): {e}; it ends with its lease",
                entry.protocol.as_str(),
                entry.external_port,
                entry.description
            ),
        }
    }
}

/// One gateway: clean up, map, watch; returns why it ended.
async fn session(
    ctx: &MappingContext,
    found: Discovered,
    external: IpAddr,
    watch: &mut GatewayWatch,
    notifies: &mut mpsc::Receiver<NotifyInfo>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let gateway = found.gateway;
    let settings = &ctx.settings;
    let uuid = gateway.description().device.udn.clone();
    let gateway_ip = gateway
        .location()
        .host_str()
        .and_then(|h| h.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    tracing::info!(
        "UPnP: gateway {:?} at {} ({})",
        gateway.connection().friendly_name,
        gateway.location(),
        gateway.connection().service_type
    );
    tracing::info!("UPnP: Found mapped address {external}");
    watch.follow(gateway_ip, &uuid);
    ctx.status.update(|s| {
        s.nat.mode = "upnp".into();
        s.nat.gateway = Some(gateway.location().to_string());
        s.nat.gateway_uuid = Some(uuid.clone());
        s.nat.boot_id = None;
        s.nat.external_ip = Some(external.to_string());
    });
    // Drain announcements queued before this session: they describe the gateway we just found.
    while notifies.try_recv().is_ok() {}

    remove_stale(&gateway, &ctx.instance).await;

    let request = |port: u16, description: String| MappingRequest {
        protocol: Protocol::Udp,
        internal_port: port,
        external_port: Some(port),
        internal_client: Some(ctx.lan.addr),
        lease_seconds: settings.lease_seconds,
        description,
        any_port: true,
    };
    let (event_tx, mut events) = mpsc::channel::<(usize, KeeperEvent)>(32);
    let mut forwarders = JoinSet::new();
    let mut keepers: Vec<MappingKeeper> = Vec::new();
    let mut add_keeper = |keeper: MappingKeeper, rx: mpsc::Receiver<KeeperEvent>| {
        let index = keepers.len();
        let tx = event_tx.clone();
        let mut rx = rx;
        forwarders.spawn(async move {
            while let Some(event) = rx.recv().await {
                if tx.send((index, event)).await.is_err() {
                    return;
                }
            }
        });
        keepers.push(keeper);
    };

    let sip = match MappingKeeper::start(
        gateway.clone(),
        request(
            settings.sip_port,
            crate::mapping::sip_description(&ctx.instance),
        ),
    )
    .await
    {
        Ok((keeper, rx)) => {
            let mapping = keeper.mapping().clone();
            add_keeper(keeper, rx);
            mapping
        }
        Err(e) => {
            return Ended::Refused(format!(
                "the gateway did not map SIP port {}: {e}",
                settings.sip_port
            ))
        }
    };
    let public = SocketAddr::new(external, sip.external_port);
    tracing::info!(
        "UPnP: mapped UDP {public} -> {}:{} (lease {} s)",
        ctx.lan.addr,
        settings.sip_port,
        sip.lease_seconds
    );
    ctx.status
        .update(|s| s.mappings = vec![mapping_status(&sip)]);
    announce(ctx, Some(public));

    for &port in &settings.rtp_ports {
        match MappingKeeper::start(
            gateway.clone(),
            request(port, rtp_description(&ctx.instance, port)),
        )
        .await
        {
            Ok((keeper, rx)) => {
                let mapping = keeper.mapping().clone();
                tracing::info!(
                    "UPnP: mapped UDP {}:{} -> {}:{port} for RTP (lease {} s)",
                    external,
                    mapping.external_port,
                    ctx.lan.addr,
                    mapping.lease_seconds
                );
                ctx.status
                    .update(|s| s.mappings.push(mapping_status(&mapping)));
                add_keeper(keeper, rx);
            }
            Err(e) => tracing::warn!("UPnP: the gateway did not map RTP port {port}: {e}"),
        }
    }
    drop(event_tx);

    let mut external_check = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.external_check,
        settings.external_check,
    );
    external_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_check: Option<Instant> = None;
    let ended = loop {
        tokio::select! {
            _ = crate::stopped(shutdown) => break Ended::Shutdown,
            Some((index, event)) = events.recv() => match event {
                KeeperEvent::Renewed(mapping) => {
                    tracing::debug!(port = mapping.external_port, lease = mapping.lease_seconds, "mapping renewed");
                    let renewed_ip = mapping.external_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
                    ctx.status.update(|s| {
                        if let Some(slot) = s.mappings.get_mut(index) {
                            *slot = mapping_status(&mapping);
                        }
                    });
                    if renewed_ip.is_some_and(|ip| ip != external) {
                        break Ended::Remap(format!(
                            "the external address changed from {external} to {}",
                            mapping.external_ip.unwrap_or_default()
                        ));
                    }
                }
                KeeperEvent::Lost { reason } => {
                    ctx.status.update(|s| {
                        if let Some(slot) = s.mappings.get_mut(index) {
                            slot.state = "renewal failing".into();
                        }
                    });
                    break Ended::Remap(format!("renewing a mapping failed ({reason})"));
                }
            },
            Some(notify) = notifies.recv() => match watch.handle(&notify) {
                Some(Trigger::Rebooted(reason)) => break Ended::Remap(reason),
                Some(Trigger::Left) => {
                    tracing::warn!("UPnP: the gateway said ssdp:byebye; mapping again when it is back");
                    ctx.status.update(|s| s.nat.last_problem = Some("the gateway said ssdp:byebye".into()));
                }
                Some(Trigger::Check) => {
                    ctx.status.update(|s| s.nat.boot_id = watch.boot_id());
                    if last_check.is_some_and(|t| t.elapsed() < MIN_CHECK_INTERVAL) {
                        continue;
                    }
                    last_check = Some(Instant::now());
                    match gateway.get(Protocol::Udp, sip.external_port).await {
                        Ok(Some(entry))
                            if entry.internal_client == ctx.lan.addr.to_string()
                                && entry.internal_port == settings.sip_port => {}
                        Ok(Some(entry)) => break Ended::Remap(format!(
                            "the gateway's UDP {} now goes to {}:{}",
                            sip.external_port, entry.internal_client, entry.internal_port
                        )),
                        Ok(None) => break Ended::Remap(format!(
                            "the gateway lost the SIP mapping UDP {}",
                            sip.external_port
                        )),
                        Err(e) => tracing::debug!(error = %e, "mapping presence check failed"),
                    }
                }
                Some(Trigger::Appeared) | None => {}
            },
            _ = external_check.tick() => match gateway.external_ip().await {
                Ok(Some(ip)) if ip == external => {}
                Ok(Some(ip)) => break Ended::Remap(format!("the external address changed from {external} to {ip}")),
                Ok(None) => break Ended::Remap("the gateway reports no external address any more".into()),
                Err(e) => break Ended::Remap(format!("the gateway does not answer ({e})")),
            },
        }
    };
    drop(forwarders);
    match ended {
        Ended::Shutdown => {
            let count = keepers.len();
            let mut stops = JoinSet::new();
            for keeper in keepers {
                stops.spawn(keeper.stop());
            }
            let deleted = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
                let mut deleted = 0usize;
                while let Some(result) = stops.join_next().await {
                    match result {
                        Ok(Ok(())) => deleted += 1,
                        Ok(Err(e)) => {
                            tracing::warn!("UPnP: deleting a mapping at shutdown failed: {e}")
                        }
                        Err(_) => {}
                    }
                }
                deleted
            })
            .await;
            match deleted {
                Ok(n) => tracing::info!("UPnP: deleted {n} of {count} mappings"),
                Err(_) => tracing::warn!(
                    "UPnP: deleting the mappings took longer than {} s; the rest end with their lease",
                    SHUTDOWN_TIMEOUT.as_secs()
                ),
            }
            ctx.status.update(|s| s.mappings.clear());
            Ended::Shutdown
        }
        other => {
            // The keepers stop renewing when dropped; the next session removes leftovers.
            drop(keepers);
            other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: &str = "192.168.0.1";
    const ROOT: &str = "uuid:aaaa";

    fn notify(kind: NotifyKind, nt: &str, uuid: &str, boot: Option<u32>) -> NotifyInfo {
        NotifyInfo {
            source: GW.parse().unwrap(),
            kind,
            nt: nt.into(),
            uuid: uuid.into(),
            boot_id: boot,
            next_boot_id: None,
        }
    }

    fn following() -> GatewayWatch {
        let mut w = GatewayWatch::default();
        w.follow(GW.parse().unwrap(), ROOT);
        w
    }

    #[test]
    fn descriptions_name_the_instance() {
        assert_eq!(sip_description("km-a1b2c3"), "plugline-phone km-a1b2c3 sip");
        assert_eq!(rtp_description("km", 10000), "plugline-phone km rtp 10000");
        assert!(is_ours("plugline-phone km sip", "km"));
        assert!(is_ours("plugline-phone km rtp 10002", "km"));
        assert!(!is_ours("plugline-phone km2 sip", "km"));
        assert!(!is_ours("plugline-phone kmsip", "km"));
        assert!(!is_ours("s0AAtN", "km"));
    }

    #[test]
    fn first_bootid_asks_for_a_check_then_a_new_one_is_a_reboot() {
        let mut w = following();
        let alive = |boot| notify(NotifyKind::Alive, "upnp:rootdevice", ROOT, Some(boot));
        assert_eq!(w.handle(&alive(7)), Some(Trigger::Check));
        assert_eq!(w.handle(&alive(7)), None);
        assert!(matches!(w.handle(&alive(8)), Some(Trigger::Rebooted(r)) if r.contains("7 -> 8")));
        assert_eq!(w.handle(&alive(8)), None);
    }

    #[test]
    fn byebye_then_alive_is_a_reboot() {
        let mut w = following();
        let bye = notify(NotifyKind::ByeBye, "upnp:rootdevice", ROOT, Some(1));
        assert_eq!(w.handle(&bye), Some(Trigger::Left));
        assert_eq!(w.handle(&bye), None, "one Left per byebye burst");
        let alive = notify(
            NotifyKind::Alive,
            "urn:x:device:InternetGatewayDevice:2",
            ROOT,
            Some(1),
        );
        assert!(matches!(w.handle(&alive), Some(Trigger::Rebooted(r)) if r.contains("byebye")));
        assert_eq!(w.handle(&alive), None);
    }

    #[test]
    fn a_new_root_uuid_is_a_reboot_but_embedded_devices_are_not() {
        let mut w = following();
        let embedded = notify(
            NotifyKind::Alive,
            "urn:x:device:WANDevice:2",
            "uuid:bbbb",
            Some(1),
        );
        assert_eq!(w.handle(&embedded), None);
        let root = notify(NotifyKind::Alive, "upnp:rootdevice", "uuid:cccc", Some(1));
        assert!(matches!(w.handle(&root), Some(Trigger::Rebooted(r)) if r.contains("uuid:cccc")));
        // Now following the new device.
        let same = notify(NotifyKind::Alive, "upnp:rootdevice", "uuid:cccc", Some(1));
        assert_eq!(w.handle(&same), None);
    }

    #[test]
    fn others_are_ignored_and_update_moves_the_bootid() {
        let mut w = following();
        let mut other = notify(NotifyKind::Alive, "upnp:rootdevice", "uuid:x", Some(1));
        other.source = "192.168.0.7".parse().unwrap();
        assert_eq!(w.handle(&other), None);
        assert_eq!(
            w.handle(&notify(NotifyKind::Alive, "upnp:rootdevice", ROOT, Some(3))),
            Some(Trigger::Check)
        );
        let mut update = notify(NotifyKind::Update, "upnp:rootdevice", ROOT, Some(3));
        update.next_boot_id = Some(4);
        assert_eq!(w.handle(&update), None);
        assert_eq!(w.boot_id(), Some(4));
        assert_eq!(
            w.handle(&notify(NotifyKind::Alive, "upnp:rootdevice", ROOT, Some(4))),
            None
        );
    }

    #[test]
    fn without_a_gateway_an_igd_alive_appears() {
        let mut w = GatewayWatch::default();
        let printer = notify(NotifyKind::Alive, "upnp:rootdevice", "uuid:p", None);
        assert_eq!(w.handle(&printer), None);
        let igd = notify(
            NotifyKind::Alive,
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
            "uuid:g",
            None,
        );
        assert_eq!(w.handle(&igd), Some(Trigger::Appeared));
        let bye = notify(
            NotifyKind::ByeBye,
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
            "uuid:g",
            None,
        );
        assert_eq!(w.handle(&bye), None);
    }

    #[test]
    fn notify_info_takes_the_uuid_of_the_usn() {
        let datagram = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n\
            LOCATION: http://192.168.0.1:5000/rootDesc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\
            SERVER: x UPnP/2.0 y\r\nUSN: uuid:aaaa::upnp:rootdevice\r\nBOOTID.UPNP.ORG: 9\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n";
        let Ok(Message::Notify(n)) = ssdp_proto::parse(datagram) else {
            panic!("not a notify")
        };
        let info = NotifyInfo::new(GW.parse().unwrap(), &n);
        assert_eq!(info.uuid, "uuid:aaaa");
        assert_eq!(info.boot_id, Some(9));
        assert_eq!(info.kind, NotifyKind::Alive);
    }
}
