//! A discovered (or named) gateway and every WANIPConnection / WANPPPConnection action on it,
//! including the lease policy that makes one `add` work on every kind of real router.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hyper::Method;
use igd_proto::actions::{
    Action, ConnectionTypeInfo, NatRsipStatus, PortMapping, Protocol, Response, StatusInfo,
    MAX_LEASE_IGD2,
};
use igd_proto::description::{self, DeviceDescription, WanConnection, MAX_DESCRIPTION_LEN};
use igd_proto::error::ErrorCode;
use igd_proto::soap::{SoapError, MAX_SOAP_LEN};
use serde::Serialize;
use url::Url;

use crate::error::{Error, Result};
use crate::http;

/// Deadline for one HTTP exchange (description fetch or SOAP call) unless configured otherwise.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// How many other external ports `add` tries after 718 ConflictInMappingEntry when asked for any
/// port on a gateway without AddAnyPortMapping.
pub const MAX_PORT_ATTEMPTS: u16 = 16;
/// Upper bound on entries read when listing by GetGenericPortMappingEntry, so a gateway that
/// never answers 713 cannot keep us enumerating forever (two protocols × 65,535 ports).
pub const MAX_LIST_ENTRIES: u32 = 131_070;
/// Entries asked for per GetListOfPortMappings call.
pub const LIST_PAGE: u16 = 1000;

/// Per-gateway client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Deadline for each HTTP exchange.
    pub http_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }
}

/// A gateway we can talk to: its description, the connection service we use, and our address
/// as it sees us.
#[derive(Debug, Clone)]
pub struct Gateway {
    location: Url,
    description: DeviceDescription,
    connection: WanConnection,
    local_addr: IpAddr,
    config: ClientConfig,
}

/// What `plugline discover` reports about a gateway.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GatewayInfo {
    /// The root description URL.
    pub location: String,
    /// The root device's friendly name.
    pub friendly_name: String,
    /// The connection service used (e.g. `urn:schemas-upnp-org:service:WANIPConnection:2`).
    pub service_type: String,
    /// Its control URL.
    pub control_url: String,
    /// The external address, if the gateway reported one.
    pub external_ip: Option<String>,
}

/// What the gateway reports about its WAN connection (`plugline status`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// External address (None when the gateway reported none).
    pub external_ip: Option<String>,
    /// `Connected`, `Disconnected`, … as the gateway says.
    pub connection_status: String,
    /// Seconds the WAN connection has been up.
    pub uptime_seconds: u32,
    /// Number of port mappings the gateway lists to us.
    pub mappings: usize,
}

/// A request for a port mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRequest {
    /// UDP or TCP.
    pub protocol: Protocol,
    /// The port on the internal client.
    pub internal_port: u16,
    /// The wanted external port; None means the same as the internal port.
    pub external_port: Option<u16>,
    /// The internal client; None means our own address as the gateway sees it.
    pub internal_client: Option<Ipv4Addr>,
    /// Wanted lease in seconds (0 asks for a permanent or maximal lease; see [`Gateway::add`]).
    pub lease_seconds: u32,
    /// Description shown in the gateway's table.
    pub description: String,
    /// Accept another external port if the wanted one is taken.
    pub any_port: bool,
}

impl MappingRequest {
    /// A request with the usual defaults: same port outside, our own address, one hour.
    pub fn new(protocol: Protocol, internal_port: u16) -> Self {
        MappingRequest {
            protocol,
            internal_port,
            external_port: None,
            internal_client: None,
            lease_seconds: 3600,
            description: "plugline".into(),
            any_port: false,
        }
    }
}

/// A mapping as granted (or listed) by the gateway.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mapping {
    /// `UDP` or `TCP`.
    #[serde(serialize_with = "serialize_protocol")]
    pub protocol: Protocol,
    /// The gateway's external address, when known.
    pub external_ip: Option<String>,
    /// The external port.
    pub external_port: u16,
    /// The internal client's address.
    pub internal_client: String,
    /// The internal port.
    pub internal_port: u16,
    /// Lease in seconds; 0 means permanent.
    pub lease_seconds: u32,
    /// Description.
    pub description: String,
}

impl Mapping {
    fn from_entry(entry: PortMapping, external_ip: Option<String>) -> Self {
        Mapping {
            protocol: entry.protocol,
            external_ip,
            external_port: entry.external_port,
            internal_client: entry.internal_client,
            internal_port: entry.internal_port,
            lease_seconds: entry.lease_duration,
            description: entry.description,
        }
    }
}

impl Gateway {
    /// Fetch the root description at `location` and pick its best connection service.
    ///
    /// This skips discovery (`plugline --gateway URL`). The control URL must be on the same host
    /// as the description: a description that points elsewhere is refused.
    pub async fn from_url(location: &str, config: ClientConfig) -> Result<Gateway> {
        let url = Url::parse(location).map_err(|e| Error::BadUrl {
            url: location.to_string(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "http" {
            return Err(Error::BadUrl {
                url: location.to_string(),
                reason: "a gateway description URL must be http://".into(),
            });
        }
        let answer = http::exchange(
            Method::GET,
            &url,
            &[],
            Vec::new(),
            MAX_DESCRIPTION_LEN,
            config.http_timeout,
        )
        .await?;
        if answer.status != 200 {
            return Err(Error::Http {
                method: "GET",
                url: url.to_string(),
                reason: format!("status {}", answer.status),
            });
        }
        let description =
            description::parse(&answer.body).map_err(|source| Error::Description {
                url: url.to_string(),
                source,
            })?;
        let connection = description
            .wan_connection(&url)
            .map_err(|source| Error::Description {
                url: url.to_string(),
                source,
            })?;
        if connection.control_url.host_str() != url.host_str() {
            return Err(Error::UnsafeUrl {
                url: connection.control_url.to_string(),
                source_addr: answer.local_addr,
                reason: "the control URL is on another host than the description",
            });
        }
        Ok(Gateway {
            location: url,
            description,
            connection,
            local_addr: answer.local_addr.ip(),
            config,
        })
    }

    /// The root description URL.
    pub fn location(&self) -> &Url {
        &self.location
    }

    /// The parsed root description.
    pub fn description(&self) -> &DeviceDescription {
        &self.description
    }

    /// The connection service in use.
    pub fn connection(&self) -> &WanConnection {
        &self.connection
    }

    /// Our own address as the gateway sees it (the default internal client).
    pub fn local_addr(&self) -> IpAddr {
        self.local_addr
    }

    /// True when the service is WANIPConnection:2 (AddAnyPortMapping, GetListOfPortMappings).
    pub fn is_igd2(&self) -> bool {
        self.connection.service_type.ends_with(":2")
    }

    /// A summary for `plugline discover`.
    pub fn info(&self, external_ip: Option<String>) -> GatewayInfo {
        GatewayInfo {
            location: self.location.to_string(),
            friendly_name: self.connection.friendly_name.clone(),
            service_type: self.connection.service_type.clone(),
            control_url: self.connection.control_url.to_string(),
            external_ip,
        }
    }

    /// Call one action and return the gateway's typed answer.
    pub async fn call(&self, action: &Action) -> Result<Response> {
        let name = action.name();
        let request = action.request(&self.connection.service_type);
        let answer = http::exchange(
            Method::POST,
            &self.connection.control_url,
            &[("SOAPAction", request.soap_action.as_str())],
            request.body,
            MAX_SOAP_LEN,
            self.config.http_timeout,
        )
        .await?;
        match action.parse_response(&answer.body) {
            Ok(response) if answer.status == 200 => Ok(response),
            Ok(_) => Err(Error::Http {
                method: "POST",
                url: self.connection.control_url.to_string(),
                reason: format!("{name}: status {} with a success body", answer.status),
            }),
            Err(SoapError::Upnp(error)) => Err(Error::Upnp {
                action: name,
                error,
            }),
            Err(source) if answer.status != 200 => Err(Error::Http {
                method: "POST",
                url: self.connection.control_url.to_string(),
                reason: format!("{name}: status {} ({source})", answer.status),
            }),
            Err(source) => Err(Error::Soap {
                action: name,
                source,
            }),
        }
    }

    /// GetExternalIPAddress. `None` when the gateway has no external address (it answers an
    /// empty string, e.g. while disconnected).
    pub async fn external_ip(&self) -> Result<Option<IpAddr>> {
        match self.call(&Action::GetExternalIPAddress).await? {
            Response::ExternalIp(text) => parse_external_ip(&text),
            other => Err(unexpected("GetExternalIPAddress", &other)),
        }
    }

    /// GetStatusInfo.
    pub async fn status_info(&self) -> Result<StatusInfo> {
        match self.call(&Action::GetStatusInfo).await? {
            Response::StatusInfo(info) => Ok(info),
            other => Err(unexpected("GetStatusInfo", &other)),
        }
    }

    /// GetConnectionTypeInfo.
    pub async fn connection_type_info(&self) -> Result<ConnectionTypeInfo> {
        match self.call(&Action::GetConnectionTypeInfo).await? {
            Response::ConnectionTypeInfo(info) => Ok(info),
            other => Err(unexpected("GetConnectionTypeInfo", &other)),
        }
    }

    /// GetNATRSIPStatus.
    pub async fn nat_rsip_status(&self) -> Result<NatRsipStatus> {
        match self.call(&Action::GetNATRSIPStatus).await? {
            Response::NatRsipStatus(info) => Ok(info),
            other => Err(unexpected("GetNATRSIPStatus", &other)),
        }
    }

    /// External address, connection status, uptime and number of mappings, asked concurrently.
    pub async fn status(&self) -> Result<Status> {
        let (ip, info, mappings) =
            tokio::join!(self.external_ip(), self.status_info(), self.list());
        Ok(Status {
            external_ip: ip?.map(|ip| ip.to_string()),
            connection_status: info
                .as_ref()
                .map(|i| i.connection_status.clone())
                .unwrap_or_else(|e| format!("unknown ({e})")),
            uptime_seconds: info.map(|i| i.uptime_seconds).unwrap_or(0),
            mappings: mappings?.len(),
        })
    }

    /// Add a port mapping with the lease policy that works on both kinds of real router:
    ///
    /// - a lease over 604,800 s is clamped to 604,800 (IGD:2's maximum);
    /// - 725 OnlyPermanentLeasesSupported: retried once with lease 0 (an IGD:1 router);
    /// - with `any_port`: AddAnyPortMapping on IGD:2 (the gateway picks the port); on IGD:1, or
    ///   when AddAnyPortMapping is not implemented, 718 ConflictInMappingEntry moves on to the
    ///   next external ports, [`MAX_PORT_ATTEMPTS`] at most.
    pub async fn add(&self, request: &MappingRequest) -> Result<Mapping> {
        let internal_client = match request.internal_client {
            Some(ip) => ip.to_string(),
            None => self.local_addr.to_string(),
        };
        let wanted_port = request.external_port.unwrap_or(request.internal_port);
        if request.internal_port == 0 {
            return Err(Error::InvalidRequest(
                "internal port 0 is not a port".into(),
            ));
        }
        if wanted_port == 0 && !request.any_port {
            return Err(Error::InvalidRequest(
                "external port 0 needs --any (let the gateway choose)".into(),
            ));
        }
        let lease = request.lease_seconds.min(MAX_LEASE_IGD2);
        if lease != request.lease_seconds {
            tracing::info!(
                asked = request.lease_seconds,
                granted = lease,
                "lease clamped to the IGD:2 maximum"
            );
        }
        let mut entry = PortMapping {
            remote_host: String::new(),
            external_port: wanted_port,
            protocol: request.protocol,
            internal_port: request.internal_port,
            internal_client,
            enabled: true,
            description: request.description.clone(),
            lease_duration: lease,
        };

        if request.any_port && self.is_igd2() {
            match self.add_any(&entry).await {
                Ok(port) => {
                    entry.external_port = port;
                    return self.granted(entry).await;
                }
                Err(e)
                    if e.is_upnp(ErrorCode::InvalidAction)
                        || e.is_upnp(ErrorCode::OptionalActionNotImplemented) =>
                {
                    tracing::debug!("AddAnyPortMapping not implemented; trying AddPortMapping");
                }
                Err(e) => return Err(e),
            }
        }

        let attempts = if request.any_port {
            MAX_PORT_ATTEMPTS
        } else {
            1
        };
        let mut last = None;
        for attempt in 0..attempts {
            if request.any_port {
                entry.external_port = next_port(wanted_port, attempt);
            }
            match self.add_exact(&mut entry).await {
                Ok(()) => return self.granted(entry).await,
                Err(e)
                    if request.any_port
                        && (e.is_upnp(ErrorCode::ConflictInMappingEntry)
                            || e.is_upnp(ErrorCode::ConflictWithOtherMechanisms)) =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidRequest("no port attempted".into())))
    }

    /// AddPortMapping, retrying once with lease 0 on 725.
    async fn add_exact(&self, entry: &mut PortMapping) -> Result<()> {
        match self.call(&Action::AddPortMapping(entry.clone())).await {
            Ok(_) => Ok(()),
            Err(e)
                if e.is_upnp(ErrorCode::OnlyPermanentLeasesSupported)
                    && entry.lease_duration != 0 =>
            {
                tracing::info!(
                    "gateway only supports permanent leases (725); retrying with lease 0"
                );
                entry.lease_duration = 0;
                self.call(&Action::AddPortMapping(entry.clone()))
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    async fn add_any(&self, entry: &PortMapping) -> Result<u16> {
        let mut entry = entry.clone();
        if entry.external_port == 0 {
            // AddAnyPortMapping takes a wanted port; 0 is a wildcard some gateways refuse (716).
            entry.external_port = entry.internal_port;
        }
        match self.call(&Action::AddAnyPortMapping(entry)).await? {
            Response::AnyAdded { reserved_port } => Ok(reserved_port),
            other => Err(unexpected("AddAnyPortMapping", &other)),
        }
    }

    /// The granted mapping as the gateway reports it (lease as granted), with the external IP.
    async fn granted(&self, entry: PortMapping) -> Result<Mapping> {
        let (ip, confirmed) = tokio::join!(
            self.external_ip(),
            self.get(entry.protocol, entry.external_port)
        );
        let external_ip = ip.ok().flatten().map(|ip| ip.to_string());
        Ok(match confirmed {
            Ok(Some(found)) => Mapping::from_entry(found, external_ip),
            // Some gateways do not implement GetSpecificPortMappingEntry; report what we asked.
            _ => Mapping::from_entry(entry, external_ip),
        })
    }

    /// GetSpecificPortMappingEntry; `None` for 714 NoSuchEntryInArray.
    pub async fn get(&self, protocol: Protocol, external_port: u16) -> Result<Option<PortMapping>> {
        let action = Action::GetSpecificPortMappingEntry {
            remote_host: String::new(),
            external_port,
            protocol,
        };
        match self.call(&action).await {
            Ok(Response::Entry(entry)) => Ok(Some(entry)),
            Ok(other) => Err(unexpected("GetSpecificPortMappingEntry", &other)),
            Err(e) if e.is_upnp(ErrorCode::NoSuchEntryInArray) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DeletePortMapping.
    pub async fn delete(&self, protocol: Protocol, external_port: u16) -> Result<()> {
        self.call(&Action::DeletePortMapping {
            remote_host: String::new(),
            external_port,
            protocol,
        })
        .await
        .map(|_| ())
    }

    /// DeletePortMappingRange (IGD:2). `manage` false deletes only our own mappings.
    pub async fn delete_range(
        &self,
        protocol: Protocol,
        start_port: u16,
        end_port: u16,
        manage: bool,
    ) -> Result<()> {
        if start_port > end_port {
            return Err(Error::InvalidRequest(format!(
                "range start {start_port} is after its end {end_port}"
            )));
        }
        self.call(&Action::DeletePortMappingRange {
            start_port,
            end_port,
            protocol,
            manage,
        })
        .await
        .map(|_| ())
    }

    /// GetGenericPortMappingEntry; `None` past the end (713, or 714/402 from older gateways).
    pub async fn entry_at(&self, index: u32) -> Result<Option<PortMapping>> {
        match self
            .call(&Action::GetGenericPortMappingEntry { index })
            .await
        {
            Ok(Response::Entry(entry)) => Ok(Some(entry)),
            Ok(other) => Err(unexpected("GetGenericPortMappingEntry", &other)),
            Err(e)
                if e.is_upnp(ErrorCode::SpecifiedArrayIndexInvalid)
                    || e.is_upnp(ErrorCode::NoSuchEntryInArray)
                    || e.is_upnp(ErrorCode::InvalidArgs) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// GetListOfPortMappings (IGD:2) for one protocol and port range; an empty range is `[]`.
    pub async fn list_range(
        &self,
        protocol: Protocol,
        start_port: u16,
        end_port: u16,
        number_of_ports: u16,
    ) -> Result<Vec<PortMapping>> {
        let action = Action::GetListOfPortMappings {
            start_port,
            end_port,
            protocol,
            manage: false,
            number_of_ports,
        };
        match self.call(&action).await {
            Ok(Response::List(list)) => Ok(list),
            Ok(other) => Err(unexpected("GetListOfPortMappings", &other)),
            Err(e) if e.is_upnp(ErrorCode::PortMappingNotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every mapping the gateway lists, by GetGenericPortMappingEntry (answered by IGD:1 and
    /// IGD:2 alike, and the only way to see other hosts' mappings as `upnpc -l` does), bounded
    /// by [`MAX_LIST_ENTRIES`].
    pub async fn list(&self) -> Result<Vec<PortMapping>> {
        let mut out = Vec::new();
        for index in 0..MAX_LIST_ENTRIES {
            match self.entry_at(index).await? {
                Some(entry) => out.push(entry),
                None => return Ok(out),
            }
        }
        tracing::warn!(
            limit = MAX_LIST_ENTRIES,
            "gateway listed more entries than the limit; list truncated"
        );
        Ok(out)
    }

    /// Every mapping as a [`Mapping`] with the external address filled in.
    pub async fn mappings(&self) -> Result<Vec<Mapping>> {
        let (ip, list) = tokio::join!(self.external_ip(), self.list());
        let ip = ip.ok().flatten().map(|ip| ip.to_string());
        Ok(list?
            .into_iter()
            .map(|e| Mapping::from_entry(e, ip.clone()))
            .collect())
    }
}

/// The external port to try on attempt `n` when any port will do: the wanted one first, then
/// the ones after it, wrapping within the unprivileged range.
fn next_port(wanted: u16, attempt: u16) -> u16 {
    let base = if wanted < 1024 { 1024 } else { wanted };
    let span = 65535 - 1024 + 1;
    let offset = (u32::from(base) - 1024 + u32::from(attempt)) % span;
    (1024 + offset) as u16
}

fn serialize_protocol<S: serde::Serializer>(
    p: &Protocol,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

fn parse_external_ip(text: &str) -> Result<Option<IpAddr>> {
    let text = text.trim();
    if text.is_empty() || text == "0.0.0.0" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| Error::InvalidAnswer {
        action: "GetExternalIPAddress",
        reason: format!("{text:?} is not an IP address"),
    })
}

fn unexpected(action: &'static str, response: &Response) -> Error {
    Error::InvalidAnswer {
        action,
        reason: format!("unexpected answer {response:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_port_walks_and_wraps() {
        assert_eq!(next_port(5060, 0), 5060);
        assert_eq!(next_port(5060, 3), 5063);
        assert_eq!(next_port(65535, 1), 1024);
        assert_eq!(next_port(80, 0), 1024);
    }

    #[test]
    fn external_ip_parsing() {
        assert_eq!(parse_external_ip("").unwrap(), None);
        assert_eq!(parse_external_ip("0.0.0.0").unwrap(), None);
        assert_eq!(
            parse_external_ip(" 203.0.113.1 ").unwrap(),
            Some("203.0.113.1".parse().unwrap())
        );
        assert!(parse_external_ip("nonsense").is_err());
    }
}
