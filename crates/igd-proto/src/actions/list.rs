//! The `PortMappingList` document that `GetListOfPortMappings` (WANIPConnection:2)
//! returns as the *text* of `NewPortListing`.
//!
//! The schema (namespace `urn:schemas-upnp-org:gw:WANIPConnection`) is a
//! `PortMappingList` of `PortMappingEntry` elements with `NewRemoteHost`,
//! `NewExternalPort`, `NewProtocol`, `NewInternalPort`, `NewInternalClient`,
//! `NewEnabled`, `NewDescription` and `NewLeaseTime`. The SOAP layer has already
//! unescaped the text once; the document is then parsed as XML in its own right, under
//! the same rules as every other document (size cap, no DTD, predefined entities only),
//! since it comes from the same untrusted peer.

use crate::soap::{escape, parse_bool, parse_number, SoapError, MAX_SOAP_LEN};
use crate::xml::{self, Element};

use super::{bool_str, PortMapping};

/// The namespace of the `PortMappingList` document.
pub const PORT_MAPPING_LIST_NS: &str = "urn:schemas-upnp-org:gw:WANIPConnection";

/// Parses a `PortMappingList` document. Entries must carry the external port, protocol,
/// internal port and internal client; the other fields default to empty, enabled,
/// empty and 0 when a device omits them.
pub fn parse_port_mapping_list(xml: &str) -> Result<Vec<PortMapping>, SoapError> {
    let root = xml::parse_document(xml.as_bytes(), MAX_SOAP_LEN)?;
    if root.local != "PortMappingList" {
        return Err(SoapError::NotSoap("PortMappingList"));
    }
    root.children_named("PortMappingEntry").map(entry).collect()
}

fn entry(e: &Element) -> Result<PortMapping, SoapError> {
    let required = |name: &'static str| {
        e.child(name)
            .map(|c| c.text.as_str())
            .ok_or(SoapError::MissingArgument(name))
    };
    let optional = |name: &str| e.child(name).map(|c| c.text.as_str());
    Ok(PortMapping {
        remote_host: optional("NewRemoteHost")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        external_port: parse_number("NewExternalPort", required("NewExternalPort")?)?,
        protocol: {
            let value = required("NewProtocol")?;
            value.parse().map_err(|_| SoapError::InvalidArgument {
                name: "NewProtocol",
                value: value.to_owned(),
            })?
        },
        internal_port: parse_number("NewInternalPort", required("NewInternalPort")?)?,
        internal_client: required("NewInternalClient")?.trim().to_owned(),
        enabled: match optional("NewEnabled") {
            Some(v) => parse_bool("NewEnabled", v)?,
            None => true,
        },
        description: optional("NewDescription").unwrap_or_default().to_owned(),
        lease_duration: match optional("NewLeaseTime") {
            Some(v) => parse_number("NewLeaseTime", v)?,
            None => 0,
        },
    })
}

/// Builds a `PortMappingList` document (the gateway then sends it, escaped by the SOAP
/// layer, as `NewPortListing`). Every value is escaped here too, so a description
/// cannot break out of its element.
pub fn build_port_mapping_list(entries: &[PortMapping]) -> String {
    let mut out = String::with_capacity(300 + entries.len() * 400);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<p:PortMappingList xmlns:p=\"");
    out.push_str(PORT_MAPPING_LIST_NS);
    out.push_str(
        "\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"urn:schemas-upnp-org:gw:WANIPConnection \
         http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd\">\n",
    );
    for m in entries {
        out.push_str("<p:PortMappingEntry>");
        for (name, value) in [
            ("NewRemoteHost", escape(&m.remote_host)),
            ("NewExternalPort", m.external_port.to_string().into()),
            ("NewProtocol", m.protocol.as_str().into()),
            ("NewInternalPort", m.internal_port.to_string().into()),
            ("NewInternalClient", escape(&m.internal_client)),
            ("NewEnabled", bool_str(m.enabled).into()),
            ("NewDescription", escape(&m.description)),
            ("NewLeaseTime", m.lease_duration.to_string().into()),
        ] {
            out.push_str("<p:");
            out.push_str(name);
            out.push('>');
            out.push_str(&value);
            out.push_str("</p:");
            out.push_str(name);
            out.push('>');
        }
        out.push_str("</p:PortMappingEntry>\n");
    }
    out.push_str("</p:PortMappingList>\n");
    out
}
