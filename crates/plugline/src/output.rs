//! What the commands print: one JSON document with `--json`, short human lines otherwise.
//! Descriptions come from the gateway and are printed escaped, so a hostile one cannot forge
//! lines or terminal escapes.

use portmap::{Discovered, Mapping, Status};
use serde::Serialize;

fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Serialising our own plain structs cannot fail; say so loudly if it ever does.
        Err(e) => eprintln!("plugline: cannot encode JSON: {e}"),
    }
}

/// Text from the gateway, made safe for one terminal line.
fn shown(text: &str) -> String {
    text.escape_default().to_string()
}

pub fn discovered(found: &[Discovered], json: bool) {
    let infos: Vec<_> = found
        .iter()
        .map(|d| d.gateway.info(d.external_ip.map(|ip| ip.to_string())))
        .collect();
    if json {
        print_json(&infos);
        return;
    }
    for (d, info) in found.iter().zip(&infos) {
        println!("gateway  {}", shown(&info.friendly_name));
        println!("  location     {}", info.location);
        println!("  service      {}", info.service_type);
        println!("  control      {}", info.control_url);
        println!(
            "  external ip  {}",
            info.external_ip.as_deref().unwrap_or("(none)")
        );
        println!(
            "  status       {}",
            d.connection_status
                .as_deref()
                .map(shown)
                .unwrap_or_else(|| "(unknown)".into())
        );
    }
}

pub fn status(status: &Status, json: bool) {
    if json {
        print_json(status);
        return;
    }
    println!(
        "external ip  {}",
        status.external_ip.as_deref().unwrap_or("(none)")
    );
    println!("status       {}", shown(&status.connection_status));
    println!("uptime       {} s", status.uptime_seconds);
    println!("mappings     {}", status.mappings);
}

fn line(m: &Mapping) -> String {
    let lease = if m.lease_seconds == 0 {
        "permanent".to_string()
    } else {
        format!("{} s", m.lease_seconds)
    };
    format!(
        "{} {}:{} -> {}:{}  lease {}  '{}'",
        m.protocol,
        m.external_ip.as_deref().unwrap_or("?"),
        m.external_port,
        m.internal_client,
        m.internal_port,
        lease,
        shown(&m.description)
    )
}

pub fn added(m: &Mapping, json: bool) {
    if json {
        print_json(m);
    } else {
        println!("added {}", line(m));
    }
}

pub fn list(mappings: &[Mapping], json: bool) {
    if json {
        print_json(mappings);
        return;
    }
    if mappings.is_empty() {
        println!("no port mappings");
    }
    for m in mappings {
        println!("{}", line(m));
    }
}
