//! The `plugline` command: wires the port-mapping client, the gateway and the phone to a
//! command line. Everything protocol-related lives in the library crates.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use portmap::{
    discover, ClientConfig, DiscoverOptions, Discovered, Gateway, Mapping, MappingRequest, Protocol,
};

mod daemon;
mod demo;
mod output;

/// Plugline: make a device behind a home router reachable, with nothing configured.
#[derive(Debug, Parser)]
#[command(name = "plugline", version, about)]
struct Cli {
    /// Log more (repeat for more detail); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: a UPnP IGD on the LAN with real forwarding (foreground; SIGTERM stops it).
    Gateway(GatewayArgs),
    /// Run the phone: map its ports through the UPnP gateway and register the SIP account at
    /// the public address (foreground; SIGTERM unregisters, deletes the mappings and stops).
    Phone(PhoneArgs),
    /// A self-contained demo on loopback, no root: a gateway (relay backend), discovery, a
    /// mapping, a datagram through it from the "internet" address, list and delete.
    Demo,
    /// Find UPnP Internet gateways on the local network.
    Discover {
        #[command(flatten)]
        search: SearchArgs,
        /// Collect every gateway that answers within the timeout.
        #[arg(long)]
        all: bool,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the gateway's external address, connection status, uptime and number of mappings.
    Status {
        #[command(flatten)]
        target: TargetArgs,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Add (or refresh) a port mapping to this host or another internal client.
    Add {
        /// udp or tcp.
        protocol: ProtocolArg,
        /// The port on the internal client.
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        internal_port: u16,
        /// The external port (default: the internal port).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        external_port: Option<u16>,
        /// Accept another external port if the wanted one is taken.
        #[arg(long)]
        any: bool,
        /// The internal client (default: this host's address as the gateway sees it).
        #[arg(long)]
        internal_client: Option<Ipv4Addr>,
        /// Lease in seconds (0 asks for the gateway's maximum; clamped to 604800).
        #[arg(long, default_value_t = 3600)]
        lease: u32,
        /// Description shown in the gateway's table.
        #[arg(long, default_value = "plugline")]
        description: String,
        #[command(flatten)]
        target: TargetArgs,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete a port mapping.
    Delete {
        /// udp or tcp.
        protocol: ProtocolArg,
        /// The external port of the mapping.
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        external_port: u16,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the gateway's port mappings.
    List {
        #[command(flatten)]
        target: TargetArgs,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// TOML configuration file (flags override it).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// LAN interface: SSDP, HTTP and GENA listen there only.
    #[arg(long)]
    lan_interface: Option<String>,
    /// WAN interface: its address is the external address.
    #[arg(long)]
    wan_interface: Option<String>,
    /// Listen on this LAN address instead of the LAN interface's (e.g. 127.0.0.1).
    #[arg(long)]
    lan_address: Option<Ipv4Addr>,
    /// The WAN address (relay backend: external ports are bound here).
    #[arg(long)]
    wan_address: Option<Ipv4Addr>,
    /// Report this external address.
    #[arg(long)]
    external_ip: Option<Ipv4Addr>,
    /// LAN HTTP port (0 picks a free one).
    #[arg(long)]
    http_port: Option<u16>,
    /// Forwarding backend: nftables (root) or relay (userspace).
    #[arg(long)]
    backend: Option<gateway::BackendKind>,
    /// Directory for the journal and identity.
    #[arg(long)]
    state_dir: Option<std::path::PathBuf>,
    /// Mappings per LAN host.
    #[arg(long)]
    max_mappings_per_host: Option<usize>,
    /// Turn secure mode off (any LAN host may map to any other). Not recommended.
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Args)]
struct PhoneArgs {
    /// TOML configuration file (flags override it; every setting is documented in the phone
    /// crate's `config` module).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The SIP account (address of record), e.g. sip:km@example.net.
    #[arg(long)]
    account: Option<String>,
    /// Where REGISTERs go: HOST or HOST:PORT (default: the account's domain, port 5060).
    #[arg(long)]
    registrar: Option<String>,
    /// A file whose first line is the password.
    #[arg(long)]
    password_file: Option<std::path::PathBuf>,
    /// Local SIP port (UDP), also the external port asked for (default 5060).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    sip_port: Option<u16>,
    /// Local RTP ports to map, A-B (default 10000-10003; "" for none).
    #[arg(long)]
    rtp_ports: Option<String>,
    /// The name in this phone's mapping descriptions (default: the account user, a dash, and the end of the MAC address).
    #[arg(long)]
    instance: Option<String>,
    /// LAN interface name or address (default: the default route's).
    #[arg(long)]
    interface: Option<String>,
    /// Status page port on the LAN address (default 80; 0 turns it off).
    #[arg(long)]
    status_port: Option<u16>,
    /// Contact style: public (mapped address) or snom (private address plus ?Route=).
    #[arg(long)]
    contact_style: Option<phone::ContactStyleSetting>,
    /// Lease asked for each mapping, seconds (default 3600).
    #[arg(long)]
    lease: Option<u32>,
    /// Do not map ports (no UPnP): rport and keepalives only.
    #[arg(long)]
    no_upnp: bool,
}

#[derive(Debug, Args)]
struct SearchArgs {
    /// How long to search, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    timeout_ms: u64,
    /// Interface name or IPv4 address to search from (default: the default route's).
    #[arg(long)]
    interface: Option<String>,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The gateway's root description URL; skips discovery.
    #[arg(long)]
    gateway: Option<String>,
    #[command(flatten)]
    search: SearchArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProtocolArg {
    Udp,
    Tcp,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Udp => Protocol::Udp,
            ProtocolArg::Tcp => Protocol::Tcp,
        }
    }
}

fn main() -> ExitCode {
    let Cli { verbose, command } = Cli::parse();
    let daemon = matches!(
        command,
        Command::Gateway(_) | Command::Phone(_) | Command::Demo
    );
    let level = match verbose {
        0 if daemon => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    if let Command::Gateway(args) = command {
        return gateway_main(args, level);
    }
    {
        use tracing_subscriber::prelude::*;
        let registry = tracing_subscriber::registry().with(daemon::stderr_layer(level));
        if matches!(command, Command::Phone(_)) {
            // The phone also keeps its log lines for its status page.
            registry.with(phone::log::layer()).init();
        } else {
            registry.init();
        }
    }
    // The client is one short sequence of requests: one thread is enough and starts fastest.
    let built = if daemon {
        // The phone serves its status page and SIP at once; the demo runs everything.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plugline: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    finish(runtime.block_on(run(command)))
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `plugline gateway`: resolves the flags over the configuration file, then becomes
/// `plugline-gateway` (the gateway-only program beside this one, see its docs) with that
/// configuration, or runs the gateway here when that program is not installed.
fn gateway_main(args: GatewayArgs, level: &str) -> ExitCode {
    let config = match gateway_config(args) {
        Ok(c) => c,
        Err(e) => return finish(Err(e)),
    };
    let exec_failed = exec_gateway_program(&config, level);
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(daemon::stderr_layer(level))
        .init();
    if let Some(why) = exec_failed {
        tracing::debug!(%why, "running the gateway in this process");
    }
    finish(daemon::serve_gateway(config))
}

/// The gateway-only program, looked for beside `plugline`.
const GATEWAY_PROGRAM: &str = "plugline-gateway";

/// Replaces this process with `plugline-gateway` running `config`; returns (only) why not.
fn exec_gateway_program(config: &gateway::GatewayConfig, level: &str) -> Option<String> {
    use std::os::unix::process::CommandExt;
    let program = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(GATEWAY_PROGRAM),
        Err(e) => return Some(format!("cannot find this program's path: {e}")),
    };
    if !program.is_file() {
        return Some(format!("{} is not installed", program.display()));
    }
    let text = match config.to_toml() {
        Ok(t) => t,
        Err(e) => return Some(format!("cannot hand the configuration over: {e}")),
    };
    // argv stays what the user typed (`ps` shows `plugline gateway --lan-interface …`); the
    // program reads only the resolved configuration.
    let e = std::process::Command::new(&program)
        .arg0("plugline")
        .args(std::env::args_os().skip(1))
        .env(daemon::GATEWAY_CONFIG_ENV, text)
        .env(daemon::GATEWAY_LOG_ENV, level)
        .exec();
    Some(format!("cannot start {}: {e}", program.display()))
}

fn discover_options(search: &SearchArgs, all: bool) -> DiscoverOptions {
    DiscoverOptions {
        timeout: Duration::from_millis(search.timeout_ms),
        interface: search.interface.clone(),
        all,
        client: ClientConfig::default(),
    }
}

/// The gateway named by `--gateway`, or the first one discovery finds.
async fn target(args: &TargetArgs) -> portmap::Result<Gateway> {
    match &args.gateway {
        Some(url) => Gateway::from_url(url, ClientConfig::default()).await,
        None => {
            let mut found = discover(&discover_options(&args.search, false)).await?;
            Ok(found.remove(0).gateway)
        }
    }
}

fn gateway_config(args: GatewayArgs) -> Result<gateway::GatewayConfig, String> {
    let mut config = match &args.config {
        Some(path) => gateway::GatewayConfig::load(path).map_err(|e| e.to_string())?,
        None => gateway::GatewayConfig::default(),
    };
    if let Some(v) = args.lan_interface {
        config.lan_interface = Some(v);
    }
    if let Some(v) = args.wan_interface {
        config.wan_interface = Some(v);
    }
    if let Some(v) = args.lan_address {
        config.lan_address = Some(v);
    }
    if let Some(v) = args.wan_address {
        config.wan_address = Some(v);
    }
    if let Some(v) = args.external_ip {
        config.external_ip = Some(v);
    }
    if let Some(v) = args.http_port {
        config.http_port = v;
    }
    if let Some(v) = args.backend {
        config.backend = v;
    }
    if let Some(v) = args.state_dir {
        config.state_dir = v;
    }
    if let Some(v) = args.max_mappings_per_host {
        config.max_mappings_per_host = v;
    }
    if args.insecure {
        config.secure_mode = false;
    }
    Ok(config)
}

fn phone_config(args: PhoneArgs) -> Result<phone::PhoneConfig, String> {
    let mut config = match &args.config {
        Some(path) => phone::PhoneConfig::load(path).map_err(|e| e.to_string())?,
        None => phone::PhoneConfig::default(),
    };
    if let Some(v) = args.account {
        config.account = Some(v);
    }
    if let Some(v) = args.registrar {
        config.registrar = Some(v);
    }
    if let Some(v) = args.password_file {
        config.password_file = Some(v);
    }
    if let Some(v) = args.sip_port {
        config.sip_port = v;
    }
    if let Some(v) = args.rtp_ports {
        config.rtp_ports = v;
    }
    if let Some(v) = args.instance {
        config.instance = Some(v);
    }
    if let Some(v) = args.interface {
        config.interface = Some(v);
    }
    if let Some(v) = args.status_port {
        config.status_port = v;
    }
    if let Some(v) = args.contact_style {
        config.contact_style = v;
    }
    if let Some(v) = args.lease {
        config.lease_seconds = v;
    }
    if args.no_upnp {
        config.upnp = false;
    }
    Ok(config)
}

async fn run_phone(args: PhoneArgs) -> Result<(), String> {
    let config = phone_config(args)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        daemon::wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    phone::run(config, stop_rx).await.map_err(|e| e.to_string())
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Gateway(_) => Err("internal: the gateway is started by gateway_main".into()),
        Command::Phone(args) => run_phone(args).await,
        Command::Demo => demo::run().await,
        other => run_client(other).await.map_err(|e| e.to_string()),
    }
}

async fn run_client(command: Command) -> portmap::Result<()> {
    match command {
        Command::Gateway(_) | Command::Phone(_) | Command::Demo => {
            unreachable!("handled by run")
        }
        Command::Discover { search, all, json } => {
            let found: Vec<Discovered> = discover(&discover_options(&search, all)).await?;
            output::discovered(&found, json);
        }
        Command::Status { target: t, json } => {
            let gateway = target(&t).await?;
            let status = gateway.status().await?;
            output::status(&status, json);
        }
        Command::Add {
            protocol,
            internal_port,
            external_port,
            any,
            internal_client,
            lease,
            description,
            target: t,
            json,
        } => {
            let gateway = target(&t).await?;
            let request = MappingRequest {
                protocol: protocol.into(),
                internal_port,
                external_port,
                internal_client,
                lease_seconds: lease,
                description,
                any_port: any,
            };
            let mapping: Mapping = gateway.add(&request).await?;
            output::added(&mapping, json);
        }
        Command::Delete {
            protocol,
            external_port,
            target: t,
        } => {
            let gateway = target(&t).await?;
            let protocol: Protocol = protocol.into();
            gateway.delete(protocol, external_port).await?;
            println!("deleted {protocol} {external_port}");
        }
        Command::List { target: t, json } => {
            let gateway = target(&t).await?;
            let mappings = gateway.mappings().await?;
            output::list(&mappings, json);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::daemon::parse_log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_directives_and_the_verbosity_default() {
        let (f, refused) = parse_log_filter(None, "warn");
        assert!(refused.is_none());
        assert!(f.would_enable("gateway::http", &Level::WARN));
        assert!(!f.would_enable("gateway::http", &Level::INFO));

        let (f, refused) = parse_log_filter(Some("info,portmap=debug"), "warn");
        assert!(refused.is_none());
        assert!(f.would_enable("portmap::discover", &Level::DEBUG));
        assert!(!f.would_enable("gateway::http", &Level::DEBUG));
        assert!(f.would_enable("gateway::http", &Level::INFO));

        let (f, refused) = parse_log_filter(Some("portmap=trace,x=="), "info");
        assert!(refused.is_some_and(|e| !e.is_empty()));
        assert!(
            f.would_enable("gateway", &Level::INFO),
            "falls back to the level"
        );
        assert!(!f.would_enable("portmap", &Level::DEBUG));
    }
}
