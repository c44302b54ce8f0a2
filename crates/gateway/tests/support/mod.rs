//! The whole gateway in-process on loopback with the relay backend, for the integration tests
//! that need no root: start, wait until it answers, stop cleanly.

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway::{BackendKind, GatewayConfig};
use portmap::{ClientConfig, Gateway};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The gateway's LAN address.
pub const LAN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The gateway's "WAN" address, where the relay binds external ports.
pub const WAN: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// A host "on the internet".
pub const INTERNET: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 10);

/// A gateway running on a task of the test's runtime.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), gateway::GatewayError>>,
    /// Its HTTP port on [`LAN`].
    pub port: u16,
}

impl Running {
    /// Stop it and check it stopped cleanly, in time.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("gateway stops in time")
            .unwrap()
            .unwrap();
    }

    /// Its root description URL.
    pub fn url(&self) -> String {
        format!("http://{LAN}:{}/rootDesc.xml", self.port)
    }
}

/// A TCP port free on `ip` now.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    StdTcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh state directory for one test.
pub fn state_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pl-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The loopback relay configuration; tests override fields with `..relay_config(..)`.
pub fn relay_config(state: &Path, http_port: u16) -> GatewayConfig {
    GatewayConfig {
        lan_address: Some(LAN),
        lan_prefix: Some(8),
        wan_address: Some(WAN),
        backend: BackendKind::Relay,
        http_port,
        state_dir: state.to_path_buf(),
        ..Default::default()
    }
}

/// Start the gateway and wait (bounded) until its HTTP server answers.
pub async fn start(config: GatewayConfig) -> Running {
    let port = config.http_port;
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(gateway::run(config, rx));
    for _ in 0..300 {
        if TcpStream::connect((LAN, port)).await.is_ok() {
            return Running { stop, task, port };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gateway did not start");
}

/// Our client on the gateway's description.
pub async fn client(url: &str) -> Gateway {
    Gateway::from_url(url, ClientConfig::default())
        .await
        .unwrap()
}
