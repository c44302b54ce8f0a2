//! The WANIPConnection actions (IGD:1 and IGD:2) executed against the [`Table`].
//!
//! This module owns the protocol's semantics on top of the table: lease interpretation
//! per version, the wildcard-only remote host, never resolving `NewInternalClient`,
//! which error code each refusal becomes, and the read-only actions. One table serves
//! both versions (GATEWAY-NOTES, "IGD:1 and IGD:2 at once"): [`Context::igd_version`]
//! says which description the control point used.

use std::net::Ipv4Addr;

use igd_proto::actions::{
    Action, ConnectionTypeInfo, NatRsipStatus, PortMapping, Response, StatusInfo,
};
use igd_proto::error::{ErrorCode, UpnpError};

use crate::mapping::{Key, Source};
use crate::table::{AddRequest, Refusal, Table};

/// Most entries one GetListOfPortMappings answer carries (`NewNumberOfPorts` 0 means
/// "all", which must still be bounded: the listing is one SOAP string).
pub const MAX_LIST_ENTRIES: usize = 1000;

/// `NewConnectionType` and `NewPossibleConnectionTypes`: we route IP.
pub const CONNECTION_TYPE: &str = "IP_Routed";

/// `NewLastConnectionError` of GetStatusInfo.
pub const LAST_CONNECTION_ERROR: &str = "ERROR_NONE";

/// Who is asking and what the WAN looks like; filled by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The source address of the SOAP request (never a header or argument).
    pub requester: Ipv4Addr,
    /// 1 or 2: which description the client used (anything but 1 is treated as 2).
    pub igd_version: u8,
    /// The WAN address, `None` when unknown or disconnected.
    pub external_ip: Option<Ipv4Addr>,
    /// `NewConnectionStatus`, e.g. `"Connected"`.
    pub connection_status: &'static str,
    /// `NewUptime`, seconds.
    pub uptime_seconds: u32,
    /// Now, unix seconds.
    pub now: u64,
}

/// Execute one WANIPConnection action against the table with IGD semantics, answering
/// with the UPnP error to send on refusal (the code and its name only). See [`execute`]
/// for the semantics and for the refusal with its log message.
pub fn handle(table: &mut Table, ctx: &Context, action: &Action) -> Result<Response, UpnpError> {
    execute(table, ctx, action).map_err(UpnpError::from)
}

/// Execute one action, keeping the [`Refusal`]'s log message; its code is already the
/// one to send for the client's IGD version.
///
/// Leases expired at `ctx.now` are removed first (queued as changes), so no expired
/// mapping is reported or blocks a request. Semantics (WANIPConnection:1 and :2):
/// - lease: IGD:2 0 ⇒ [`crate::Limits::max_lease`] (604,800 by default), IGD:1 0 ⇒
///   permanent; longer leases are clamped by the table;
/// - IGD:1 answers 718 where IGD:2 answers 606 (authorisation) or 729 (another
///   mechanism), as IGD:1 has neither code; the IGD:2-only actions always use IGD:2
///   codes and lease rules;
/// - `NewRemoteHost` must be empty (wildcard) else 726 RemoteHostOnlySupportsWildcard;
/// - `NewInternalClient` must be an IPv4 literal, never resolved (miniupnpd's blocking
///   DNS lookup, GATEWAY-NOTES), else 402;
/// - GetGenericPortMappingEntry index ≥ len ⇒ 713; GetSpecificPortMappingEntry and
///   DeletePortMapping of a missing mapping ⇒ 714 (miniupnpd answers 200 to the latter);
/// - GetListOfPortMappings: Manage=0 ⇒ the requester's own, Manage=1 ⇒ all (reading is
///   harmless: a documented deviation from IGD:2, which reserves it to admins);
///   start > end ⇒ 733; none ⇒ 730; NumberOfPorts 0 ⇒ all, capped at
///   [`MAX_LIST_ENTRIES`]; leases are the remaining time;
/// - DeletePortMappingRange with Manage=1 ⇒ 606 (no admin over SOAP); Manage=0 deletes
///   only the requester's own;
/// - GetExternalIPAddress ⇒ `""` when unknown; GetConnectionTypeInfo ⇒ `IP_Routed`;
///   GetNATRSIPStatus ⇒ RSIP off, NAT on.
pub fn execute(table: &mut Table, ctx: &Context, action: &Action) -> Result<Response, Refusal> {
    let now = ctx.now;
    table.expire(now);
    let v1 = ctx.igd_version == 1;
    match action {
        Action::GetExternalIPAddress => Ok(Response::ExternalIp(
            ctx.external_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        )),
        Action::GetStatusInfo => Ok(Response::StatusInfo(StatusInfo {
            connection_status: ctx.connection_status.to_owned(),
            last_connection_error: LAST_CONNECTION_ERROR.to_owned(),
            uptime_seconds: ctx.uptime_seconds,
        })),
        Action::GetConnectionTypeInfo => Ok(Response::ConnectionTypeInfo(ConnectionTypeInfo {
            connection_type: CONNECTION_TYPE.to_owned(),
            possible_connection_types: CONNECTION_TYPE.to_owned(),
        })),
        Action::GetNATRSIPStatus => Ok(Response::NatRsipStatus(NatRsipStatus {
            rsip_available: false,
            nat_enabled: true,
        })),
        Action::AddPortMapping(pm) => {
            let req = add_request(pm, v1, table.limits().max_lease)?;
            table
                .add(now, ctx.requester, req)
                .map_err(|r| for_version(r, v1))?;
            Ok(Response::Added)
        }
        Action::AddAnyPortMapping(pm) => {
            // An IGD:2 action: IGD:2 lease rules and codes whatever the description.
            let req = add_request(pm, false, table.limits().max_lease)?;
            let m = table.add_any(now, ctx.requester, req)?;
            Ok(Response::AnyAdded {
                reserved_port: m.key.external_port,
            })
        }
        Action::DeletePortMapping {
            remote_host,
            external_port,
            protocol,
        } => {
            wildcard_only(remote_host)?;
            table
                .remove(
                    now,
                    Some(ctx.requester),
                    &Key::new(*protocol, *external_port),
                )
                .map_err(|r| for_version(r, v1))?;
            Ok(Response::Deleted)
        }
        Action::DeletePortMappingRange {
            start_port,
            end_port,
            protocol,
            manage,
        } => {
            if *manage {
                return Err(Refusal::new(
                    ErrorCode::ActionNotAuthorized,
                    format!(
                        "{} asked DeletePortMappingRange with Manage=1",
                        ctx.requester
                    ),
                ));
            }
            table.remove_range(now, Some(ctx.requester), *protocol, *start_port, *end_port)?;
            Ok(Response::DeletedRange)
        }
        Action::GetGenericPortMappingEntry { index } => usize::try_from(*index)
            .ok()
            .and_then(|i| table.nth(i))
            .map(|m| Response::Entry(m.to_port_mapping(now)))
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::SpecifiedArrayIndexInvalid,
                    format!("index {index} past the end of {} entries", table.len()),
                )
            }),
        Action::GetSpecificPortMappingEntry {
            remote_host,
            external_port,
            protocol,
        } => {
            wildcard_only(remote_host)?;
            table
                .get(&Key::new(*protocol, *external_port))
                .map(|m| Response::Entry(m.to_port_mapping(now)))
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::NoSuchEntryInArray,
                        format!("no mapping for {protocol} {external_port}"),
                    )
                })
        }
        Action::GetListOfPortMappings {
            start_port,
            end_port,
            protocol,
            manage,
            number_of_ports,
        } => {
            let (start, end) = (*start_port, *end_port);
            if start > end {
                return Err(Refusal::new(
                    ErrorCode::InconsistentParameters,
                    format!("start port {start} > end port {end}"),
                ));
            }
            let cap = match usize::from(*number_of_ports) {
                0 => MAX_LIST_ENTRIES,
                n => n.min(MAX_LIST_ENTRIES),
            };
            let entries: Vec<PortMapping> = if *manage {
                let all = table.range(*protocol, start, end);
                all.take(cap).map(|m| m.to_port_mapping(now)).collect()
            } else {
                let own = table.client_range(ctx.requester, *protocol, start, end);
                own.take(cap).map(|m| m.to_port_mapping(now)).collect()
            };
            if entries.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::PortMappingNotFound,
                    format!("no {protocol} mapping in {start}-{end}"),
                ));
            }
            Ok(Response::List(entries))
        }
    }
}

/// The table request for an AddPortMapping / AddAnyPortMapping.
fn add_request(pm: &PortMapping, v1: bool, max_lease: u32) -> Result<AddRequest, Refusal> {
    wildcard_only(&pm.remote_host)?;
    // An IP literal only: a name here made miniupnpd block on DNS (GATEWAY-NOTES).
    let internal_client: Ipv4Addr = pm.internal_client.trim().parse().map_err(|_| {
        Refusal::new(
            ErrorCode::InvalidArgs,
            format!(
                "NewInternalClient {:?} is not an IPv4 literal",
                pm.internal_client
            ),
        )
    })?;
    // WANIPConnection:2, state variable PortMappingLeaseDuration: 0 means the maximum (one week);
    // in IGD:1 0 means permanent (GATEWAY-NOTES, "Lease duration").
    let lease_seconds = match (pm.lease_duration, v1) {
        (0, true) => 0,
        (0, false) => max_lease.max(1),
        (asked, _) => asked,
    };
    Ok(AddRequest {
        key: Key::new(pm.protocol, pm.external_port),
        internal_client,
        internal_port: pm.internal_port,
        description: pm.description.clone(),
        enabled: pm.enabled,
        lease_seconds,
        source: Source::Upnp,
    })
}

/// We support only the wildcard remote host (WANIPConnection:2, state variable RemoteHost: a gateway that cannot filter by remote host answers 726 RemoteHostOnlySupportsWildcard).
fn wildcard_only(remote_host: &str) -> Result<(), Refusal> {
    if remote_host.trim().is_empty() {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::RemoteHostOnlySupportsWildcard,
            "only the wildcard (empty) remote host is supported",
        ))
    }
}

/// IGD:1 has no 606 or 729: its templates answer 718 ConflictInMappingEntry for a
/// mapping the caller may not make or delete.
fn for_version(mut refusal: Refusal, v1: bool) -> Refusal {
    if v1
        && matches!(
            refusal.code,
            ErrorCode::ActionNotAuthorized | ErrorCode::ConflictWithOtherMechanisms
        )
    {
        refusal.code = ErrorCode::ConflictInMappingEntry;
    }
    refusal
}

#[cfg(test)]
mod tests;
