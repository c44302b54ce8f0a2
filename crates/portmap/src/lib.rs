//! # portmap: the Plugline port-mapping client
//!
//! Finds the home gateway fast, reads its external address, and adds, lists, renews and deletes
//! port mappings over UPnP IGD (WANIPConnection:1/2 and WANPPPConnection:1). The protocol work
//! (SSDP, descriptions, SOAP) lives in the pure crates `ssdp-proto` and `igd-proto`; this crate
//! moves their bytes over tokio sockets and enforces the timeouts, size caps and address checks
//! that keep a client safe on a hostile LAN.
//!
//! ```no_run
//! use portmap::{discover, DiscoverOptions, MappingRequest, Protocol};
//!
//! # async fn run() -> Result<(), portmap::Error> {
//! let found = discover(&DiscoverOptions::default()).await?;
//! let gateway = &found[0].gateway;
//! println!("external address: {:?}", found[0].external_ip);
//! let mut request = MappingRequest::new(Protocol::Udp, 5060);
//! request.description = "my phone".into();
//! request.any_port = true;
//! let mapping = gateway.add(&request).await?;
//! println!("mapped {}:{}", mapping.external_ip.unwrap_or_default(), mapping.external_port);
//! gateway.delete(Protocol::Udp, mapping.external_port).await?;
//! # Ok(()) }
//! ```
//!
//! To keep a mapping alive, hand it to a [`MappingKeeper`], which renews it half-way through its
//! lease and reports when it is lost.

#![forbid(unsafe_code)]

pub mod discover;
pub mod error;
pub mod gateway;
mod http;
pub mod keeper;
pub mod netif;

pub use discover::{discover, DiscoverOptions, Discovered};
pub use error::{Error, Result};
pub use gateway::{ClientConfig, Gateway, GatewayInfo, Mapping, MappingRequest, Status};
pub use http::CLIENT_USER_AGENT;
pub use igd_proto::actions::Protocol;
pub use keeper::{KeeperEvent, MappingKeeper};
