//! # phone: the Plugline phone
//!
//! `plugline phone` registers a SIP account through the home NAT with nothing configured but
//! the account, as the seed's Snom phone did behind its Linksys router: it finds the UPnP
//! gateway, maps its SIP and RTP ports, and registers the public address and mapped port.
//!
//! Runtime crate: the protocol work is in the pure cores (`sip-proto` for SIP, `ssdp-proto`
//! for announcements) and in the port-mapping client (`portmap`); the modules here move bytes
//! and keep time.
//!
//! ```text
//!           ┌────────────── mapping ──────────────┐  Announce { public, generation }
//! SSDP ────►│ GatewayWatch (BOOTID, uuid, byebye) │──────────────────────┐
//! NOTIFY    │ portmap: discover, list/delete own, │                      ▼
//!           │ MappingKeeper per port (renewals)   │     sip: UDP socket ◄──► sip_proto::
//!           └─────────────────────────────────────┘       Registration, uas::answer
//!                          │ status::Shared ◄──────────────────┘
//!                          ▼
//!           status: GET / (HTML), /api/status (JSON), with log::global() (tracing layer)
//! ```
//!
//! - [`config`]: the TOML configuration and its checks, every setting documented.
//! - [`mapping`]: the port-mapping lifecycle and gateway-reboot detection.
//! - [`sip`]: the SIP transport: registration, OPTIONS/MESSAGE answers, unregister.
//! - [`status`]: the shared status record and the status page.
//! - [`log`]: the ring of log lines the page shows, filled by a `tracing` layer.

#![forbid(unsafe_code)]

pub mod config;
pub mod log;
pub mod mapping;
pub mod sip;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

pub use config::{ConfigError, ContactStyleSetting, PhoneConfig, Settings};

use crate::mapping::{Announce, MappingContext};
use crate::sip::SipContext;
use crate::status::{Shared, Status};

/// Why the phone could not start. Once started, nothing stops it but the shutdown signal:
/// failures are logged, shown on the status page and retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The configuration is invalid: the message names the setting; fix it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No usable LAN interface: pass `interface`.
    #[error("{0}")]
    Interface(String),
    /// A socket could not be opened (port in use, no permission for port 80...).
    #[error("cannot open the {what}: {source}")]
    Bind {
        /// Which socket.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The MAC address of `interface` (`/sys/class/net/<if>/address`), if readable.
fn read_mac(interface: &str) -> Option<String> {
    if interface.contains('/') || interface.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Runs the phone until `shutdown` turns true; then unregisters, deletes its mappings and
/// returns. Errors only when it cannot start.
pub async fn run(config: PhoneConfig, shutdown: watch::Receiver<bool>) -> Result<(), PhoneError> {
    let started = Instant::now();
    let settings = Arc::new(config.validate()?);
    let lan = portmap::netif::choose(settings.interface.as_deref())
        .map_err(|e| PhoneError::Interface(e.to_string()))?;
    let user = settings.aor.user.clone().unwrap_or_default();
    let instance = settings
        .instance
        .clone()
        .unwrap_or_else(|| config::default_instance(&user, read_mac(&lan.name).as_deref()));
    let local = SocketAddr::from((lan.addr, settings.sip_port));
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|source| PhoneError::Bind {
            what: format!("SIP socket on {local}"),
            source,
        })?;
    let listener = match settings.status_port {
        0 => None,
        port => Some(
            TcpListener::bind((lan.addr, port))
                .await
                .map_err(|source| PhoneError::Bind {
                    what: format!("status page on {}:{port}", lan.addr),
                    source,
                })?,
        ),
    };
    let status = Shared::new(Status {
        account: settings.aor.to_string(),
        instance: instance.clone(),
        lan_address: local.to_string(),
        started_unix_ms: log::unix_ms_now(),
        ..Status::default()
    });
    tracing::info!(
        "phone {} (instance {instance}) on {local} ({}); status page {}",
        settings.aor,
        lan.name,
        match settings.status_port {
            0 => "off".to_string(),
            port => format!("http://{}:{port}/", lan.addr),
        }
    );

    let (announce_tx, announce_rx) = watch::channel(Announce::default());
    let status_task = listener.map(|listener| {
        tokio::spawn(status::serve(
            listener,
            status.clone(),
            log::global().clone(),
            shutdown.clone(),
        ))
    });
    let mapping_task = tokio::spawn(mapping::run(
        MappingContext {
            settings: settings.clone(),
            lan: lan.clone(),
            instance,
            status: status.clone(),
            announce: announce_tx,
        },
        shutdown.clone(),
    ));
    let sip_task = tokio::spawn(sip::run(
        SipContext {
            settings,
            local,
            status,
            started,
        },
        socket,
        announce_rx,
        shutdown,
    ));
    let (sip, mapping) = tokio::join!(sip_task, mapping_task);
    for (task, result) in [("SIP", sip), ("mapping", mapping)] {
        if let Err(e) = result {
            tracing::error!("the {task} task ended abnormally: {e}");
        }
    }
    if let Some(task) = status_task {
        let _ = task.await;
    }
    tracing::info!("phone stopped");
    Ok(())
}

/// Resolves once `shutdown` is true (or its sender is gone). The guard of `wait_for` is dropped
/// inside, so the future can live in a `select!` of a spawned task.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
