//! `plugline-gateway`: the gateway daemon alone. `plugline gateway` resolves the command line
//! and the configuration file, then replaces itself with this program when it is installed
//! beside it (else it runs the gateway in-process).
//!
//! Why a program of its own: a gateway runs for months, and most of its resident memory is
//! the code the kernel maps for it. This program holds only the gateway (no client commands,
//! phone, SIP or demo, no argument parser: 2.1 MB of code against 2.9 MB for `plugline`, both
//! with the static libc), and one event loop. It is not meant to be started by hand: it takes the resolved configuration as TOML
//! in `PLUGLINE_GATEWAY_CONFIG` and the log level in `PLUGLINE_GATEWAY_LOG`; its arguments
//! are those `plugline` was given (so `ps` shows the command the user typed) and are not read.

use std::process::ExitCode;

#[path = "../daemon.rs"]
mod daemon;

fn main() -> ExitCode {
    let Some(text) = std::env::var_os(daemon::GATEWAY_CONFIG_ENV) else {
        eprintln!(
            "plugline-gateway: start the gateway with `plugline gateway` (this program takes \
             its resolved configuration from {})",
            daemon::GATEWAY_CONFIG_ENV
        );
        return ExitCode::from(2);
    };
    let config = match text
        .to_str()
        .ok_or_else(|| "not UTF-8".to_string())
        .and_then(gateway::GatewayConfig::parse)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plugline-gateway: bad {}: {e}", daemon::GATEWAY_CONFIG_ENV);
            return ExitCode::from(2);
        }
    };
    let level = std::env::var(daemon::GATEWAY_LOG_ENV).unwrap_or_else(|_| "info".into());
    // Read once; the programs the gateway runs (nft, conntrack) need not inherit them. Still
    // one thread here, so changing the environment races with nothing.
    std::env::remove_var(daemon::GATEWAY_CONFIG_ENV);
    std::env::remove_var(daemon::GATEWAY_LOG_ENV);
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(daemon::stderr_layer(&level))
            .init();
    }
    match daemon::serve_gateway(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugline: {e}");
            ExitCode::FAILURE
        }
    }
}
