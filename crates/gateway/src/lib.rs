//! # gateway: the Plugline gateway daemon
//!
//! Runtime crate: moves bytes between sockets and the pure cores (`ssdp-proto`, `igd-proto`,
//! `gateway-core`) and drives the forwarding backend (`forward`).
//!
//! ```text
//! M-SEARCH ──► ssdp ──► answer (LOCATION on the LAN address)
//! SOAP POST ─► http ──► control thread ──► gateway_core::igd::handle ──► Table (pure)
//!                             │                 changes ──► backend (nftables | relay)
//!                             │                          └─► journal (fdatasync) ──► answer
//!                             └─► evented state ──► gena ──► NOTIFY to subscribers
//! /admin/, /api/ ─► admin ──► control thread (same table, policy, journal, backend)
//! ```

pub mod admin;
pub mod config;
pub mod control;
pub mod gena;
pub mod http;
pub mod journal;
pub mod ssdp;
pub mod stun;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use forward::nftables::{NftBackend, NftConfig};
use forward::relay::RelayBackend;
use forward::{Backend, Forward};
use gateway_core::addr::{classify, AddressKind};
use gateway_core::{Limits, Policy, Rule, Table};
use igd_proto::device::{self, DeviceInfo, EmbeddedDevice};
use ssdp_proto::advertise::Advertised;
use tokio::sync::watch;

pub use config::{BackendKind, ConfigError, GatewayConfig};
pub use control::{ControlHandle, Evented, WanCounters};

/// SERVER header and description model name.
pub const SERVER: &str = concat!("Linux UPnP/2.0 Plugline/", env!("CARGO_PKG_VERSION"));

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A network interface or address could not be found.
    #[error("{0}")]
    Interface(String),
    /// A socket could not be opened (port in use, no permission…).
    #[error("{what}: {source}")]
    Bind {
        /// Which socket.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state directory could not be used.
    #[error("state directory {path}: {source}")]
    State {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The forwarding backend could not be set up.
    #[error("forwarding backend: {0}")]
    Backend(#[from] forward::ForwardError),
}

/// The addresses the gateway works with, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// LAN address (where we listen).
    pub lan: Ipv4Addr,
    /// LAN prefix length.
    pub lan_prefix: u8,
    /// WAN address (where forwarded traffic arrives).
    pub wan: Option<Ipv4Addr>,
    /// The external address reported to clients.
    pub external: Option<Ipv4Addr>,
}

fn interface_v4(name: &str) -> Result<(Ipv4Addr, u8), GatewayError> {
    let all = if_addrs::get_if_addrs()
        .map_err(|e| GatewayError::Interface(format!("listing interfaces: {e}")))?;
    all.into_iter()
        .find_map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) if i.name == name => {
                Some((v4.ip, u32::from(v4.netmask).count_ones() as u8))
            }
            _ => None,
        })
        .ok_or_else(|| GatewayError::Interface(format!("interface {name} has no IPv4 address")))
}

/// Resolve LAN, WAN and external addresses from the configuration and the interfaces.
pub fn resolve_addresses(config: &GatewayConfig) -> Result<Addresses, GatewayError> {
    let (lan, iface_prefix) = match (config.lan_address, &config.lan_interface) {
        (Some(ip), _) => (ip, if ip.is_loopback() { 8 } else { 24 }),
        (None, Some(name)) => interface_v4(name)?,
        (None, None) => {
            return Err(GatewayError::Interface(
                "no LAN interface or address configured".into(),
            ))
        }
    };
    let lan_prefix = config.lan_prefix.unwrap_or(iface_prefix);
    let wan = match (config.wan_address, &config.wan_interface) {
        (Some(ip), _) => Some(ip),
        (None, Some(name)) => Some(interface_v4(name)?.0),
        (None, None) => None,
    };
    let external = config.external_ip.or(wan);
    Ok(Addresses {
        lan,
        lan_prefix,
        wan,
        external,
    })
}

fn policy_of(config: &GatewayConfig) -> Result<Policy, GatewayError> {
    let rules = config
        .rules
        .iter()
        .map(|r| {
            Rule::parse(r).map_err(|e| {
                GatewayError::Config(ConfigError::Invalid {
                    setting: "rules",
                    message: format!("{r:?}: {e}"),
                })
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        secure_mode: config.secure_mode,
        rules,
        loopback_lan: config.lan_address.is_some_and(|ip| ip.is_loopback()),
    })
}

fn limits_of(config: &GatewayConfig) -> Limits {
    Limits {
        max_mappings: config.max_mappings,
        max_per_host: config.max_mappings_per_host,
        max_lease: config.max_lease_seconds,
        ..Limits::default()
    }
}

/// Run the gateway until `shutdown` turns true; then send ssdp:byebye and stop, keeping state.
pub async fn run(
    mut config: GatewayConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), GatewayError> {
    config.validate()?;
    // Settings changed on the admin page win over the configuration file.
    let settings_file = config.state_dir.join(admin::settings::SETTINGS_FILE);
    let mut live = admin::settings::LiveSettings::from_config(&config);
    match admin::settings::LiveSettings::load(&settings_file) {
        Ok(Some(saved)) => {
            tracing::info!(file = %settings_file.display(), ?saved, "admin settings loaded over the configuration");
            saved.apply_to(&mut config);
            live = saved;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(
            file = %settings_file.display(),
            error = %e,
            "admin settings ignored: using the configuration's values"
        ),
    }
    let mut addrs = resolve_addresses(&config)?;
    if let (Some(server), None) = (config.stun_server, config.external_ip) {
        let from = addrs.wan.unwrap_or(Ipv4Addr::UNSPECIFIED);
        match stun::query(from, server).await {
            Ok(mapped) => {
                tracing::info!(public = %mapped.ip(), wan = ?addrs.wan, %server, "public address learned by STUN");
                addrs.external = Some(*mapped.ip());
            }
            Err(e) => tracing::warn!(error = %e, %server, "STUN failed; reporting the WAN address"),
        }
    }
    match addrs.external.map(classify) {
        Some(AddressKind::Public) => {}
        Some(AddressKind::Private) => tracing::warn!(
            external = ?addrs.external,
            "the WAN address is private (double NAT): serving it anyway; peers outside see another address"
        ),
        Some(AddressKind::Reserved(what)) => tracing::warn!(
            external = ?addrs.external,
            range = what,
            "the WAN address is in a reserved range: serving it anyway"
        ),
        None => tracing::warn!("no external address known: GetExternalIPAddress answers empty"),
    }

    let state_err = |source| GatewayError::State {
        path: config.state_dir.display().to_string(),
        source,
    };
    let identity = journal::Identity::load_and_bump(&config.state_dir).map_err(state_err)?;
    let password_hash =
        admin::auth::bootstrap(config.admin_password_hash.as_deref(), &config.state_dir).map_err(
            |e| GatewayError::State {
                path: config.state_dir.display().to_string(),
                source: std::io::Error::other(format!("admin password: {e}")),
            },
        )?;
    let (journal, saved, report) = journal::Journal::open(&config.state_dir).map_err(state_err)?;
    let now = control::unix_now();
    let mut table = Table::new(limits_of(&config), policy_of(&config)?);
    let mut restored = 0;
    for mapping in saved {
        let key = mapping.key;
        match table.restore(now, mapping) {
            Ok(Some(_)) => restored += 1,
            Ok(None) => {}
            Err(refusal) => tracing::warn!(?key, %refusal, "saved mapping refused by policy"),
        }
    }
    // Restoring queues changes; the backend is reconciled with the whole table below instead.
    while table.poll_change().is_some() {}
    tracing::info!(
        restored,
        rejected = report.rejected,
        torn = report.torn_tail,
        boot_id = identity.boot_id,
        "state restored"
    );

    let mut backend: Box<dyn Backend> = match config.backend {
        BackendKind::Nftables => Box::new(NftBackend::new(NftConfig {
            table: config.nft_table.clone(),
            wan_interface: config.wan_interface.clone().unwrap_or_default(),
            external_ip: addrs.wan,
            command_prefix: Vec::new(),
        })?),
        BackendKind::Relay => {
            let listen = addrs.wan.unwrap_or(Ipv4Addr::UNSPECIFIED);
            Box::new(RelayBackend::new(tokio::runtime::Handle::current(), listen))
        }
    };
    let wanted: Vec<Forward> = table
        .iter()
        .filter(|m| m.enabled)
        .map(|m| Forward {
            protocol: m.key.protocol,
            external_port: m.key.external_port,
            internal_client: m.internal_client,
            internal_port: m.internal_port,
        })
        .collect();
    let reconciled = backend.reconcile(&wanted)?;
    tracing::info!(
        backend = backend.name(),
        added = reconciled.added,
        removed = reconciled.removed,
        "forwarding reconciled"
    );

    let control = control::ControlThread::spawn(control::ControlSetup {
        table,
        journal,
        backend,
        external_ip: addrs.external,
        wan_interface: config.wan_interface.clone(),
        compact_after_records: config.compact_after_records,
        settings_file: Some(settings_file),
        upnp_enabled: live.upnp_enabled,
    })
    .map_err(|e| GatewayError::Bind {
        what: "control thread".into(),
        source: e,
    })?;

    let info = DeviceInfo {
        uuid: identity.uuid.clone(),
        friendly_name: config.friendly_name.clone(),
        manufacturer: "Plugline".into(),
        manufacturer_url: "https://plugline.invalid/".into(),
        model_name: "Plugline gateway".into(),
        model_number: env!("CARGO_PKG_VERSION").into(),
        serial_number: identity.uuid[..8].to_string(),
        presentation_url: None,
        config_id: 1,
    };
    let root_v1 = device::root_description(&info, 1);
    let root_v2 = if config.igd1_only {
        root_v1.clone()
    } else {
        device::root_description(&info, 2)
    };
    let docs = Arc::new(http::Documents {
        root_v2,
        root_v1,
        others: vec![
            (
                device::WANIPCN_SCPD_V2_PATH.into(),
                device::scpd_wan_ip_connection(2),
            ),
            (
                device::WANIPCN_SCPD_V1_PATH.into(),
                device::scpd_wan_ip_connection(1),
            ),
            (
                device::WANCFG_SCPD_PATH.into(),
                device::scpd_wan_common_interface_config(),
            ),
            (
                device::L3F_SCPD_PATH.into(),
                device::scpd_layer3_forwarding(),
            ),
        ],
        default_connection_service: format!(
            "{}:WANConnectionDevice:{},urn:upnp-org:serviceId:WANIPConn1",
            device::udn_of(&info, EmbeddedDevice::WanConnectionDevice),
            if config.igd1_only { 1 } else { 2 }
        ),
    });

    let listener = tokio::net::TcpListener::bind(SocketAddrV4::new(addrs.lan, config.http_port))
        .await
        .map_err(|e| GatewayError::Bind {
            what: format!("HTTP on {}:{}", addrs.lan, config.http_port),
            source: e,
        })?;
    let http_port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(config.http_port);
    let base = format!("http://{}:{}", addrs.lan, http_port);
    let sockets = ssdp::SsdpSockets::bind(addrs.lan).map_err(|e| GatewayError::Bind {
        what: format!("SSDP on {}", addrs.lan),
        source: e,
    })?;
    let with_location = |targets: Vec<device::SsdpTarget>, path: &str| -> Vec<Advertised> {
        targets
            .into_iter()
            .map(|t| Advertised {
                nt: t.nt,
                usn: t.usn,
                location: format!("{base}{path}"),
            })
            .collect()
    };
    let (targets_v2, targets_v1) = if config.igd1_only {
        (
            Vec::new(),
            with_location(device::ssdp_targets(&info, 1), device::ROOT_DESC_V1_PATH),
        )
    } else {
        let v2 = with_location(device::ssdp_targets(&info, 2), device::ROOT_DESC_V2_PATH);
        // The version-neutral targets (root device, uuids) are answered once, by the v2 list.
        let v1 = with_location(device::ssdp_targets(&info, 1), device::ROOT_DESC_V1_PATH)
            .into_iter()
            .filter(|t| !v2.iter().any(|v| v.nt == t.nt))
            .collect();
        (v2, v1)
    };
    let ssdp_config = ssdp::SsdpConfig {
        lan_addr: addrs.lan,
        lan_prefix: addrs.lan_prefix,
        targets_v2,
        targets_v1,
        server: SERVER.into(),
        boot_id: identity.boot_id,
        config_id: info.config_id,
        max_age: ssdp_proto::advertise::DEFAULT_MAX_AGE,
        notify_interval: Duration::from_secs(config.notify_interval_seconds),
    };

    let handle = control.handle();
    let gena = gena::Gena::new(gena::GenaConfig::default(), handle.clone());
    let http_config = http::HttpConfig {
        lan_addr: addrs.lan,
        lan_prefix: addrs.lan_prefix,
        keep_alive: config.http_keep_alive,
        max_connections: config.http_max_connections,
        ..http::HttpConfig::default()
    };
    let admin = Arc::new(admin::Admin::new(
        handle.clone(),
        password_hash,
        admin::AdminInfo {
            boot_id: identity.boot_id,
            backend: match config.backend {
                BackendKind::Nftables => "nftables",
                BackendKind::Relay => "relay",
            },
            lan_addr: addrs.lan,
            lan_prefix: addrs.lan_prefix,
        },
    ));
    let remote_task = match (config.remote_admin_port, addrs.wan) {
        (Some(port), Some(wan)) => {
            let remote = tokio::net::TcpListener::bind(SocketAddrV4::new(wan, port))
                .await
                .map_err(|e| GatewayError::Bind {
                    what: format!("remote admin on {wan}:{port}"),
                    source: e,
                })?;
            tracing::warn!(%wan, port, "remote administration is on: the admin pages are served on the WAN address");
            Some(tokio::spawn(http::serve_remote_admin(
                remote,
                http_config.clone(),
                admin.clone(),
                handle.clone(),
                gena.clone(),
                shutdown.clone(),
            )))
        }
        (Some(_), None) => {
            return Err(GatewayError::Interface(
                "remote_admin_port is set but the WAN address is unknown".into(),
            ))
        }
        (None, _) => None,
    };
    let http_task = tokio::spawn(http::serve_with_admin(
        listener,
        http_config,
        docs,
        handle.clone(),
        gena.clone(),
        Some(admin),
        shutdown.clone(),
    ));
    let gena_task = {
        let gena = gena.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { gena.run(shutdown).await })
    };
    let ssdp_task = tokio::spawn(ssdp::serve(sockets, ssdp_config, shutdown.clone()));
    tracing::info!(
        lan = %addrs.lan,
        location = %format!("{base}{}", device::ROOT_DESC_V2_PATH),
        external = ?addrs.external,
        backend = ?config.backend,
        "gateway ready"
    );
    // Also printed on stdout so scripts and tests can wait for it.
    println!(
        "plugline gateway ready at {base}{}",
        device::ROOT_DESC_V2_PATH
    );

    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    let _ = ssdp_task.await;
    let _ = http_task.await;
    if let Some(task) = remote_task {
        let _ = task.await;
    }
    let _ = gena_task.await;
    tokio::task::spawn_blocking(move || control.stop())
        .await
        .ok();
    tracing::info!("gateway stopped; state kept");
    Ok(())
}
