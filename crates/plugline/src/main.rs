//! The `plugline` command: wires the port-mapping client (and, later, the gateway and phone)
//! to a command line. Everything protocol-related lives in the library crates.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use portmap::{
    discover, ClientConfig, DiscoverOptions, Discovered, Gateway, Mapping, MappingRequest, Protocol,
};

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
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plugline: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugline: {e}");
            ExitCode::FAILURE
        }
    }
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

async fn run(command: Command) -> portmap::Result<()> {
    match command {
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
