//! `plugline demo`: the whole story on loopback, without root or set-up. A gateway runs in this
//! process with the userspace relay backend (LAN 127.0.0.1, "WAN" 127.0.1.1); the client finds
//! it by SSDP, learns the external address, maps a UDP port, and a datagram sent from the
//! "internet" (127.0.1.10) reaches a local listener through the mapping and is answered from the
//! external port. Then the mapping is listed and deleted, and forwarding stops.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use portmap::{discover, DiscoverOptions, MappingRequest, Protocol};
use tokio::net::UdpSocket;

const LAN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const WAN: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
const INTERNET: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 10);
/// Bound on every wait of the demo.
const STEP_TIMEOUT: Duration = Duration::from_secs(3);

fn say(line: &str) {
    println!("{line}");
}

pub async fn run() -> Result<(), String> {
    let state = std::env::temp_dir().join(format!("plugline-demo-{}", std::process::id()));
    let result = demo(&state).await;
    let _ = std::fs::remove_dir_all(&state);
    result
}

async fn demo(state: &std::path::Path) -> Result<(), String> {
    say("== Plugline demo on loopback (no root): gateway, client, forwarding");
    let config = gateway::GatewayConfig {
        lan_address: Some(LAN),
        lan_prefix: Some(8),
        wan_address: Some(WAN),
        backend: gateway::BackendKind::Relay,
        http_port: 0,
        state_dir: state.to_path_buf(),
        friendly_name: "Plugline demo gateway".into(),
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gateway_task = tokio::spawn(gateway::run(config, stop_rx));
    let outcome = client_story().await;
    let _ = stop_tx.send(true);
    match tokio::time::timeout(STEP_TIMEOUT, gateway_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("gateway: {e}")),
        Ok(Err(e)) => return Err(format!("gateway task: {e}")),
        Err(_) => return Err("gateway did not stop in time".into()),
    }
    outcome?;
    say("== done: the gateway said ssdp:byebye and stopped");
    Ok(())
}

async fn client_story() -> Result<(), String> {
    // The "phone": a UDP service on the LAN side, on a port the system picks.
    let phone = UdpSocket::bind((LAN, 0)).await.map_err(|e| e.to_string())?;
    let phone_port = phone.local_addr().map_err(|e| e.to_string())?.port();
    say(&format!("phone     listening on {LAN}:{phone_port} (UDP)"));

    // The gateway may take a moment to bind; discovery repeats its M-SEARCH anyway.
    let options = DiscoverOptions {
        interface: Some("127.0.0.1".into()),
        timeout: STEP_TIMEOUT,
        ..Default::default()
    };
    let found = discover(&options).await.map_err(|e| e.to_string())?;
    let gw = &found[0];
    say(&format!(
        "discover  {} at {} ({})",
        gw.gateway.info(None).friendly_name,
        gw.gateway.location(),
        gw.gateway.connection().service_type
    ));
    let external = gw
        .external_ip
        .ok_or("the gateway reported no external address")?;
    say(&format!("UPnP: Found mapped address {external}"));

    let mut request = MappingRequest::new(Protocol::Udp, phone_port);
    request.any_port = true;
    request.lease_seconds = 600;
    request.description = "plugline demo".into();
    let mapping = gw.gateway.add(&request).await.map_err(|e| e.to_string())?;
    say(&format!(
        "add       UDP {}:{} -> {}:{} lease {} s",
        external,
        mapping.external_port,
        mapping.internal_client,
        mapping.internal_port,
        mapping.lease_seconds
    ));

    let outside = UdpSocket::bind((INTERNET, 0))
        .await
        .map_err(|e| e.to_string())?;
    let public = SocketAddr::from((external, mapping.external_port));
    outside
        .send_to(b"INVITE?", public)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(STEP_TIMEOUT, phone.recv_from(&mut buf))
        .await
        .map_err(|_| "the datagram did not come through the mapping")?
        .map_err(|e| e.to_string())?;
    say(&format!(
        "forward   {:?} from {from} arrived at the phone",
        String::from_utf8_lossy(&buf[..n])
    ));
    phone
        .send_to(b"200 OK", from)
        .await
        .map_err(|e| e.to_string())?;
    let (n, reply_from) = tokio::time::timeout(STEP_TIMEOUT, outside.recv_from(&mut buf))
        .await
        .map_err(|_| "the reply did not come back")?
        .map_err(|e| e.to_string())?;
    say(&format!(
        "reply     {:?} came back from {reply_from} (the external port)",
        String::from_utf8_lossy(&buf[..n])
    ));

    let list = gw.gateway.mappings().await.map_err(|e| e.to_string())?;
    say(&format!("list      {} mapping(s):", list.len()));
    for m in &list {
        say(&format!(
            "            {} {}->{}:{} '{}' {} s left",
            m.protocol,
            m.external_port,
            m.internal_client,
            m.internal_port,
            m.description,
            m.lease_seconds
        ));
    }
    gw.gateway
        .delete(Protocol::Udp, mapping.external_port)
        .await
        .map_err(|e| e.to_string())?;
    outside
        .send_to(b"still there?", public)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_millis(300), phone.recv_from(&mut buf)).await {
        Err(_) => say("delete    mapping gone: a new datagram no longer reaches the phone"),
        Ok(_) => return Err("a datagram still came through after delete".into()),
    }
    Ok(())
}
