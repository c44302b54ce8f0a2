//! Device descriptions: parsing the XML a `LOCATION` URL serves, finding the WAN
//! connection service in it, and resolving its URLs.
//!
//! UDA 1.1 §2 (Description): a root `<root>` holds an optional `<URLBase>` and one
//! `<device>`, which holds a `<serviceList>` of `<service>`s and a `<deviceList>` of
//! embedded devices, recursively. In IGD:1 and IGD:2 the connection service sits two
//! levels down (InternetGatewayDevice → WANDevice → WANConnectionDevice), but vendors
//! nest differently, so every depth up to [`MAX_DEPTH`] is searched. Elements are
//! matched by local name and unknown elements are skipped, because real devices prefix
//! (or forget) the `urn:schemas-upnp-org:device-1-0` namespace and add vendor elements.

use url::Url;

use crate::urn;
use crate::xml::{self, Element, XmlError, XmlFault};

/// Largest description accepted, in bytes. Real IGD descriptions are 2–10 KiB; the cap
/// bounds what a hostile LAN host can make a control point parse.
pub const MAX_DESCRIPTION_LEN: usize = 128 * 1024;

/// Deepest device nesting accepted: the root device is level 1, each embedded device one
/// more. IGD needs 3; the cap stops a recursive description from exhausting the stack.
pub const MAX_DEPTH: usize = 8;

/// A parsed device description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDescription {
    /// `URLBase` (UDA 1.0; deprecated in 1.1 but still sent by many devices): the base
    /// for relative URLs when present; checked to be an absolute `http` URL.
    pub url_base: Option<String>,
    /// The root device.
    pub device: Device,
}

/// A device and its embedded devices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// `deviceType` URN (required).
    pub device_type: String,
    /// `friendlyName` (empty when missing).
    pub friendly_name: String,
    /// `manufacturer` (empty when missing).
    pub manufacturer: String,
    /// `modelName` (empty when missing).
    pub model_name: String,
    /// `UDN`, `uuid:...` (empty when missing).
    pub udn: String,
    /// The services of `serviceList`, in document order.
    pub services: Vec<Service>,
    /// The embedded devices of `deviceList`, in document order.
    pub devices: Vec<Device>,
}

/// A service entry of a device's `serviceList`. URLs are kept as written (possibly
/// relative); [`DeviceDescription::resolve`] makes them absolute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// `serviceType` URN.
    pub service_type: String,
    /// `serviceId`.
    pub service_id: String,
    /// `SCPDURL`: the service description.
    pub scpd_url: String,
    /// `controlURL`: where SOAP actions are posted.
    pub control_url: String,
    /// `eventSubURL`: where GENA subscriptions go.
    pub event_sub_url: String,
}

/// The connection service a control point uses, with absolute URLs, plus the root
/// device's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanConnection {
    /// The service type (one of [`urn::CONNECTION_SERVICES`]); use it for SOAP requests.
    pub service_type: String,
    /// Absolute control URL.
    pub control_url: Url,
    /// Absolute event subscription URL, `None` when the description leaves it empty.
    pub event_sub_url: Option<Url>,
    /// Absolute service description URL, `None` when the description leaves it empty.
    pub scpd_url: Option<Url>,
    /// The root device's `friendlyName`.
    pub friendly_name: String,
    /// The root device's `deviceType` (tells IGD:1 from IGD:2).
    pub device_type: String,
    /// The root device's `UDN`.
    pub udn: String,
}

/// Why a description was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    /// The document is larger than [`MAX_DESCRIPTION_LEN`]: not a gateway we can use.
    #[error("description is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size of the document.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document contains a `<!DOCTYPE>`: refused outright (entity expansion and
    /// external entities need one; UPnP never does).
    #[error("description contains a DOCTYPE (refused)")]
    Dtd,
    /// The document references an entity other than the five predefined ones.
    #[error("description references an entity other than the XML predefined ones (refused)")]
    Entity,
    /// The document is not well-formed XML.
    #[error("description is not well-formed XML: {0}")]
    Xml(XmlError),
    /// Devices or elements are nested deeper than [`MAX_DEPTH`] (or the XML nesting cap).
    #[error("description is nested too deeply")]
    TooDeep,
    /// The document has more elements than a description can plausibly need.
    #[error("description has too many elements")]
    TooManyElements,
    /// A required element is missing (the name says which).
    #[error("description lacks <{0}>")]
    MissingElement(&'static str),
    /// A URL in the description (or the location it is resolved against) is malformed
    /// or not `http`: UPnP control happens over plain HTTP, so any other scheme is a
    /// broken or hostile device.
    #[error("bad URL {url:?} in description: {reason}")]
    BadUrl {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No WANIPConnection or WANPPPConnection service anywhere: not an Internet gateway.
    #[error("description has no WANIPConnection or WANPPPConnection service")]
    NoConnectionService,
}

impl From<XmlFault> for DescriptionError {
    fn from(fault: XmlFault) -> Self {
        match fault {
            XmlFault::TooLarge { len, max } => Self::TooLarge { len, max },
            XmlFault::Dtd => Self::Dtd,
            XmlFault::Entity => Self::Entity,
            XmlFault::TooDeep => Self::TooDeep,
            XmlFault::TooManyElements => Self::TooManyElements,
            XmlFault::Malformed(e) => Self::Xml(e),
        }
    }
}

/// Parses a device description.
///
/// Refuses documents over [`MAX_DESCRIPTION_LEN`], any DOCTYPE, entities other than the
/// predefined ones, nesting beyond [`MAX_DEPTH`], and any absolute URL that is not
/// `http`. Missing optional text elements become empty strings.
pub fn parse(xml: &[u8]) -> Result<DeviceDescription, DescriptionError> {
    let root = xml::parse_document(xml, MAX_DESCRIPTION_LEN)?;
    if root.local != "root" {
        return Err(DescriptionError::MissingElement("root"));
    }
    let url_base = match root.child_text("URLBase") {
        None | Some("") => None,
        Some(base) => {
            parse_http(base)?;
            Some(base.to_owned())
        }
    };
    let device = root
        .child("device")
        .ok_or(DescriptionError::MissingElement("device"))?;
    let device = parse_device(device, 1)?;
    Ok(DeviceDescription { url_base, device })
}

fn parse_device(element: &Element, depth: usize) -> Result<Device, DescriptionError> {
    if depth > MAX_DEPTH {
        return Err(DescriptionError::TooDeep);
    }
    let text = |name: &str| element.child_text(name).unwrap_or_default().to_owned();
    let device_type = match element.child_text("deviceType") {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => return Err(DescriptionError::MissingElement("deviceType")),
    };
    let mut services = Vec::new();
    for list in element.children_named("serviceList") {
        for service in list.children_named("service") {
            services.push(parse_service(service)?);
        }
    }
    let mut devices = Vec::new();
    for list in element.children_named("deviceList") {
        for device in list.children_named("device") {
            devices.push(parse_device(device, depth + 1)?);
        }
    }
    Ok(Device {
        device_type,
        friendly_name: text("friendlyName"),
        manufacturer: text("manufacturer"),
        model_name: text("modelName"),
        udn: text("UDN"),
        services,
        devices,
    })
}

fn parse_service(element: &Element) -> Result<Service, DescriptionError> {
    let text = |name: &str| element.child_text(name).unwrap_or_default().to_owned();
    let service = Service {
        service_type: text("serviceType"),
        service_id: text("serviceId"),
        scpd_url: text("SCPDURL"),
        control_url: text("controlURL"),
        event_sub_url: text("eventSubURL"),
    };
    for url in [
        &service.scpd_url,
        &service.control_url,
        &service.event_sub_url,
    ] {
        check_reference(url)?;
    }
    Ok(service)
}

/// A URL reference from the description: relative ones are fine (they are resolved
/// later), absolute ones must already be `http`.
fn check_reference(reference: &str) -> Result<(), DescriptionError> {
    match Url::parse(reference) {
        Ok(url) => check_http(reference, &url),
        Err(url::ParseError::RelativeUrlWithoutBase) => Ok(()),
        Err(_) => Err(bad_url(reference, "malformed")),
    }
}

fn parse_http(text: &str) -> Result<Url, DescriptionError> {
    let url = Url::parse(text).map_err(|_| bad_url(text, "not an absolute URL"))?;
    check_http(text, &url)?;
    Ok(url)
}

fn check_http(text: &str, url: &Url) -> Result<(), DescriptionError> {
    if url.scheme() != "http" {
        return Err(bad_url(text, "not http"));
    }
    if url.host().is_none() {
        return Err(bad_url(text, "no host"));
    }
    Ok(())
}

fn bad_url(url: &str, reason: &'static str) -> DescriptionError {
    DescriptionError::BadUrl {
        url: url.to_owned(),
        reason,
    }
}

impl Device {
    /// This device and every embedded device, depth first in document order.
    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            let device = stack.pop()?;
            stack.extend(device.devices.iter().rev());
            Some(device)
        })
    }
}

impl DeviceDescription {
    /// Every WANIPConnection:2, WANIPConnection:1 and WANPPPConnection:1 service at any
    /// depth, best first in that order, then in document order.
    pub fn connection_services(&self) -> Vec<&Service> {
        let mut found: Vec<(usize, &Service)> = self
            .device
            .iter()
            .flat_map(|d| d.services.iter())
            .filter_map(|s| urn::connection_service_rank(&s.service_type).map(|r| (r, s)))
            .collect();
        // A stable sort keeps document order among services of the same type.
        found.sort_by_key(|(rank, _)| *rank);
        found.into_iter().map(|(_, s)| s).collect()
    }

    /// Resolves a URL reference from this description (RFC 3986 §5) against `URLBase`
    /// when present, else against `location` (UDA 1.1 §2: the description's own URL).
    /// The result must be an `http` URL with a host.
    pub fn resolve(&self, location: &Url, reference: &str) -> Result<Url, DescriptionError> {
        let base = match &self.url_base {
            Some(base) => parse_http(base)?,
            None => {
                check_http(location.as_str(), location)?;
                location.clone()
            }
        };
        let reference = reference.trim();
        let url = base
            .join(reference)
            .map_err(|_| bad_url(reference, "malformed"))?;
        check_http(reference, &url)?;
        Ok(url)
    }

    /// The best connection service (see [`Self::connection_services`]) with absolute
    /// URLs, and the root device's identity.
    pub fn wan_connection(&self, location: &Url) -> Result<WanConnection, DescriptionError> {
        let service = *self
            .connection_services()
            .first()
            .ok_or(DescriptionError::NoConnectionService)?;
        if service.control_url.is_empty() {
            return Err(DescriptionError::MissingElement("controlURL"));
        }
        let optional = |reference: &str| -> Result<Option<Url>, DescriptionError> {
            if reference.is_empty() {
                Ok(None)
            } else {
                self.resolve(location, reference).map(Some)
            }
        };
        Ok(WanConnection {
            service_type: service.service_type.clone(),
            control_url: self.resolve(location, &service.control_url)?,
            event_sub_url: optional(&service.event_sub_url)?,
            scpd_url: optional(&service.scpd_url)?,
            friendly_name: self.device.friendly_name.clone(),
            device_type: self.device.device_type.clone(),
            udn: self.device.udn.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn location(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn igd2_like_miniupnpd() {
        let d = parse(&vector("desc-igd2-miniupnpd.xml")).unwrap();
        assert_eq!(d.url_base, None);
        assert_eq!(d.device.device_type, urn::IGD_2);
        assert_eq!(d.device.friendly_name, "Plugline test router");
        assert_eq!(d.device.udn, "uuid:5f1d2a6e-0b7c-4e3a-9d51-6c2f0a8b7e14");
        assert_eq!(d.device.services[0].service_type, urn::LAYER3_FORWARDING_1);
        let wan = &d.device.devices[0];
        assert_eq!(wan.device_type, urn::WAN_DEVICE_2);
        assert_eq!(
            wan.services[0].service_type,
            urn::WAN_COMMON_INTERFACE_CONFIG_1
        );
        let conn = &wan.devices[0];
        assert_eq!(conn.device_type, urn::WAN_CONNECTION_DEVICE_2);
        let types: Vec<_> = conn
            .services
            .iter()
            .map(|s| s.service_type.as_str())
            .collect();
        assert_eq!(
            types,
            [urn::WAN_IP_CONNECTION_2, urn::WAN_IPV6_FIREWALL_CONTROL_1]
        );
        assert_eq!(d.device.iter().count(), 3);

        let services = d.connection_services();
        assert_eq!(services.len(), 1);
        let loc = location("http://192.168.0.1:5000/rootDesc.xml");
        let c = d.wan_connection(&loc).unwrap();
        assert_eq!(c.service_type, urn::WAN_IP_CONNECTION_2);
        assert_eq!(c.control_url.as_str(), "http://192.168.0.1:5000/ctl/IPConn");
        assert_eq!(
            c.event_sub_url.unwrap().as_str(),
            "http://192.168.0.1:5000/evt/IPConn"
        );
        assert_eq!(
            c.scpd_url.unwrap().as_str(),
            "http://192.168.0.1:5000/WANIPCn.xml"
        );
        assert_eq!(c.device_type, urn::IGD_2);
        assert_eq!(c.friendly_name, "Plugline test router");
    }

    #[test]
    fn igd1_only() {
        let d = parse(&vector("desc-igd1.xml")).unwrap();
        assert_eq!(d.device.device_type, urn::IGD_1);
        let loc = location("http://10.1.1.1:2869/upnp/rootdevice.xml");
        let c = d.wan_connection(&loc).unwrap();
        assert_eq!(c.service_type, urn::WAN_IP_CONNECTION_1);
        assert_eq!(
            c.control_url.as_str(),
            "http://10.1.1.1:2869/upnp/control/WANIPConn1"
        );
        assert_eq!(c.event_sub_url, None);
    }

    #[test]
    fn ppp_only() {
        let d = parse(&vector("desc-ppp-only.xml")).unwrap();
        let loc = location("http://192.168.178.1:49000/igddesc.xml");
        let c = d.wan_connection(&loc).unwrap();
        assert_eq!(c.service_type, urn::WAN_PPP_CONNECTION_1);
        assert_eq!(
            c.control_url.as_str(),
            "http://192.168.178.1:49000/igdupnp/control/WANPPPConn1"
        );
    }

    #[test]
    fn url_base_with_relative_urls_and_prefixes() {
        let d = parse(&vector("desc-urlbase-relative.xml")).unwrap();
        assert_eq!(d.url_base.as_deref(), Some("http://10.0.0.138:2800/igd/"));
        assert_eq!(d.device.friendly_name, "Broadband Router");
        assert_eq!(d.device.device_type, urn::IGD_1);
        assert_eq!(d.device.manufacturer, "Example & Sons");
        assert_eq!(d.device.model_name, "BR-1 <rev B>");
        // The PPP service comes first in the document; WANIPConnection:1 is preferred.
        let services = d.connection_services();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].service_type, urn::WAN_IP_CONNECTION_1);
        assert_eq!(services[1].service_type, urn::WAN_PPP_CONNECTION_1);
        // URLBase wins over the location.
        let loc = location("http://10.0.0.138:80/desc.xml");
        let c = d.wan_connection(&loc).unwrap();
        assert_eq!(
            c.control_url.as_str(),
            "http://10.0.0.138:2800/igd/ctl/wanip"
        );
        assert_eq!(
            c.scpd_url.unwrap().as_str(),
            "http://10.0.0.138:2800/igd/scpd/wanip.xml"
        );
        assert_eq!(
            d.resolve(&loc, "/abs/path").unwrap().as_str(),
            "http://10.0.0.138:2800/abs/path"
        );
    }

    #[test]
    fn nested_four_levels() {
        let d = parse(&vector("desc-nested-4.xml")).unwrap();
        assert_eq!(d.device.iter().count(), 4);
        let services = d.connection_services();
        let types: Vec<_> = services.iter().map(|s| s.service_type.as_str()).collect();
        assert_eq!(types, [urn::WAN_IP_CONNECTION_1, urn::WAN_PPP_CONNECTION_1]);
        let c = d
            .wan_connection(&location("http://192.168.2.1/d.xml"))
            .unwrap();
        assert_eq!(c.control_url.as_str(), "http://192.168.2.1/level4/ip");
    }

    #[test]
    fn doctype_and_entities_are_refused() {
        assert_eq!(
            parse(&vector("desc-doctype.xml")),
            Err(DescriptionError::Dtd)
        );
        assert_eq!(
            parse(&vector("desc-external-entity.xml")),
            Err(DescriptionError::Dtd)
        );
        assert_eq!(
            parse(&vector("desc-undeclared-entity.xml")),
            Err(DescriptionError::Entity)
        );
    }

    #[test]
    fn huge_is_refused() {
        let mut doc = br#"<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>x</deviceType><friendlyName>"#.to_vec();
        doc.resize(MAX_DESCRIPTION_LEN + 1, b'a');
        assert_eq!(
            parse(&doc),
            Err(DescriptionError::TooLarge {
                len: MAX_DESCRIPTION_LEN + 1,
                max: MAX_DESCRIPTION_LEN
            })
        );
    }

    fn nested(levels: usize) -> String {
        let mut doc = String::from("<root>");
        for i in 0..levels {
            doc.push_str(&format!(
                "<device><deviceType>urn:x:{i}</deviceType><deviceList>"
            ));
        }
        for _ in 0..levels {
            doc.push_str("</deviceList></device>");
        }
        doc.push_str("</root>");
        doc
    }

    #[test]
    fn depth_cap() {
        let ok = parse(nested(MAX_DEPTH).as_bytes()).unwrap();
        assert_eq!(ok.device.iter().count(), MAX_DEPTH);
        assert_eq!(
            parse(nested(MAX_DEPTH + 1).as_bytes()),
            Err(DescriptionError::TooDeep)
        );
        assert_eq!(parse(nested(40).as_bytes()), Err(DescriptionError::TooDeep));
    }

    fn with_service(control_url: &str, url_base: &str) -> Vec<u8> {
        format!(
            "<root>{url_base}<device><deviceType>{}</deviceType><serviceList><service>\
             <serviceType>{}</serviceType><controlURL>{control_url}</controlURL>\
             </service></serviceList></device></root>",
            urn::IGD_1,
            urn::WAN_IP_CONNECTION_1
        )
        .into_bytes()
    }

    #[test]
    fn non_http_urls_are_refused() {
        for url in [
            "https://192.168.0.1/ctl",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "ftp://h/x",
        ] {
            assert!(
                matches!(
                    parse(&with_service(url, "")),
                    Err(DescriptionError::BadUrl {
                        reason: "not http",
                        ..
                    })
                ),
                "{url}"
            );
        }
        assert!(matches!(
            parse(&with_service(
                "/ctl",
                "<URLBase>https://192.168.0.1/</URLBase>"
            )),
            Err(DescriptionError::BadUrl { .. })
        ));
        assert!(matches!(
            parse(&with_service("/ctl", "<URLBase>ctl/</URLBase>")),
            Err(DescriptionError::BadUrl { .. })
        ));
        // Host names are ASCII only (idna_adapter 1.0, no Unicode tables): a Unicode host is
        // a clear error, not a lookup of a look-alike name.
        assert!(matches!(
            parse(&with_service(
                "/ctl",
                "<URLBase>http://r\u{00f6}uter.example/</URLBase>"
            )),
            Err(DescriptionError::BadUrl { .. })
        ));
        assert!(matches!(
            parse(&with_service("http://[::1/ctl", "")),
            Err(DescriptionError::BadUrl {
                reason: "malformed",
                ..
            })
        ));
        // A non-http location is refused at resolution time.
        let d = parse(&with_service("ctl", "")).unwrap();
        assert!(matches!(
            d.wan_connection(&location("https://192.168.0.1/desc.xml")),
            Err(DescriptionError::BadUrl { .. })
        ));
        // A relative reference resolved against the location, without a leading slash.
        assert_eq!(
            d.wan_connection(&location("http://192.168.0.1:1780/dir/desc.xml"))
                .unwrap()
                .control_url
                .as_str(),
            "http://192.168.0.1:1780/dir/ctl"
        );
    }

    #[test]
    fn missing_pieces() {
        assert_eq!(
            parse(b"<root><specVersion/></root>"),
            Err(DescriptionError::MissingElement("device"))
        );
        assert_eq!(
            parse(b"<device><deviceType>x</deviceType></device>"),
            Err(DescriptionError::MissingElement("root"))
        );
        assert_eq!(
            parse(b"<root><device><friendlyName>x</friendlyName></device></root>"),
            Err(DescriptionError::MissingElement("deviceType"))
        );
        let d = parse(
            format!(
                "<root><device><deviceType>{}</deviceType></device></root>",
                urn::IGD_1
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            d.wan_connection(&location("http://1.2.3.4/")),
            Err(DescriptionError::NoConnectionService)
        );
        let d = parse(&with_service("", "")).unwrap();
        assert_eq!(
            d.wan_connection(&location("http://1.2.3.4/")),
            Err(DescriptionError::MissingElement("controlURL"))
        );
        assert!(matches!(
            parse(b"<root><device>"),
            Err(DescriptionError::Xml(_))
        ));
    }
}
