//! What `plugline` and `plugline-gateway` share: logging set-up, running the gateway and the
//! stop signal. (Included by both binaries with `#[path]`: two small functions do not
//! justify a library target.)

/// The log filter: `RUST_LOG` when set (`level` or `target=level`, comma-separated, e.g.
/// `info,portmap=debug`), else `level` for everything. A `RUST_LOG` that cannot be read is
/// reported and ignored. (`Targets` instead of `EnvFilter`: no regular-expression engine in
/// the binary, which keeps it smaller and quicker to start.)
pub fn log_filter(level: &str) -> tracing_subscriber::filter::Targets {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, refused) = parse_log_filter(rust_log.as_deref(), level);
    if let Some(e) = refused {
        eprintln!(
            "plugline: RUST_LOG={:?} ignored: {e}",
            rust_log.unwrap_or_default()
        );
    }
    filter
}

/// [`log_filter`] without the environment: the filter, and why `rust_log` was refused.
pub fn parse_log_filter(
    rust_log: Option<&str>,
    level: &str,
) -> (tracing_subscriber::filter::Targets, Option<String>) {
    let default = || {
        level
            .parse()
            .unwrap_or_else(|_| tracing_subscriber::filter::Targets::new())
    };
    match rust_log {
        Some(text) if !text.trim().is_empty() => match text.parse() {
            Ok(filter) => (filter, None),
            Err(e) => (default(), Some(e.to_string())),
        },
        _ => (default(), None),
    }
}

/// The stderr log layer every command uses.
pub fn stderr_layer<S>(level: &str) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(log_filter(level))
}

/// Runs the gateway until SIGTERM or SIGINT, on one event loop: the table, the journal sync
/// and the backend have threads of their own, and one loop keeps up with the async work
/// (HTTP, SSDP, GENA, relay; see the gateway benchmark), where a multi-thread scheduler would
/// only add code and a stack. The same for `plugline-gateway` and the in-process fallback.
pub fn serve_gateway(config: gateway::GatewayConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        gateway::run(config, stop_rx)
            .await
            .map_err(|e| e.to_string())
    })
}

/// Resolves at SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The environment variable that carries the resolved gateway configuration (TOML) from
/// `plugline gateway` to `plugline-gateway`.
pub const GATEWAY_CONFIG_ENV: &str = "PLUGLINE_GATEWAY_CONFIG";
/// The environment variable that carries the log level chosen with `-v`.
pub const GATEWAY_LOG_ENV: &str = "PLUGLINE_GATEWAY_LOG";
