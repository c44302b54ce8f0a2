//! UPnP Internet Gateway Device (IGD:1 and IGD:2) protocol, without I/O: device
//! descriptions, SOAP envelopes, typed WANIPConnection actions and UPnP error codes.
//!
//! This crate never opens a socket, reads a clock or spawns a task: callers fetch the
//! description and POST the SOAP bodies themselves (the `portmap` client and the
//! gateway's HTTP server). Every parser takes bytes from an untrusted LAN peer and is
//! bounded: a size cap, no DTD, no entities beyond XML's five, a depth and element cap,
//! strict numbers; none of them panics on any input.
//!
//! - [`urn`]: the device and service types and what to search for.
//! - [`description`]: device description parsing, connection service choice, URLs.
//! - [`device`]: the gateway's own descriptions and SSDP targets.
//! - [`soap`]: request/response/fault envelopes, both sides.
//! - [`actions`]: the typed actions and the `PortMappingList` document.
//! - [`error`]: UPnP error codes.

#![forbid(unsafe_code)]

pub mod actions;
pub mod description;
pub mod device;
pub mod error;
pub mod soap;
pub mod urn;
mod xml;

pub use actions::{
    build_port_mapping_list, parse_port_mapping_list, Action, ConnectionTypeInfo, NatRsipStatus,
    PortMapping, Protocol, Response, StatusInfo, MAX_LEASE_IGD2,
};
pub use description::{DescriptionError, Device, DeviceDescription, Service, WanConnection};
pub use device::{DeviceInfo, EmbeddedDevice, SsdpTarget};
pub use error::{ErrorCode, UpnpError};
pub use soap::{SoapCall, SoapError, SoapRequest};
pub use xml::XmlError;
