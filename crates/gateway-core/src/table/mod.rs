//! The mapping table: every mapping of the gateway, indexed three ways, with its limits,
//! its policy checks and the queue of changes for the runtime.
//!
//! The table is ours and lives in memory (GATEWAY-NOTES, "Its table lives in the
//! firewall": miniupnpd re-parses the nft chain on every read, so listing n entries
//! costs O(n²)). Indexes, all kept in step by the two private primitives `put` and
//! `take`:
//! - `mappings: BTreeMap<Key, Mapping>`: the mappings in a stable order (by protocol,
//!   then external port), O(log n) lookup, ordered ranges for the IGD:2 range actions;
//! - `by_client: HashMap<Ipv4Addr, BTreeSet<Key>>`: per-host limits and "only the
//!   caller's own" (Manage=0) in O(log n + k);
//! - `by_expiry: BTreeSet<(u64, Key)>`: the next lease to end in O(log n);
//! - `order: Option<Vec<Key>>`: the keys as a vector for GetGenericPortMappingEntry,
//!   rebuilt lazily only after a key is added or removed, so that a control point
//!   enumerating 0, 1, 2, … until 713 costs O(1) per entry on an unchanged table.
//!
//! Every successful mutation queues its [`Change`], drained with [`Table::poll_change`].
//! Mutations that take `now` first remove the leases that ended by then (queued as
//! [`Change::Removed`]), so an expired mapping never blocks or answers a request.

use std::collections::{btree_map::Entry, BTreeMap, BTreeSet, HashMap, VecDeque};
use std::mem;
use std::net::Ipv4Addr;

use igd_proto::actions::Protocol;
use igd_proto::error::{ErrorCode, UpnpError};

use crate::addr::{classify, is_mappable_client};
use crate::mapping::{Change, Key, Mapping, Source};
use crate::policy::Policy;
use crate::record;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Default [`Limits::max_mappings`]: one per port and protocol is already 131,070;
/// 65,536 bounds memory (a few MB) while being far above any home network's needs.
pub const DEFAULT_MAX_MAPPINGS: usize = 65_536;
/// Default [`Limits::max_per_host`]: one misbehaving LAN host cannot fill the table.
pub const DEFAULT_MAX_PER_HOST: usize = 256;
/// Default [`Limits::max_lease`]: IGD:2's maximum, one week (GATEWAY-NOTES, "Lease
/// duration").
pub const DEFAULT_MAX_LEASE: u32 = igd_proto::actions::MAX_LEASE_IGD2;
/// Default [`Limits::max_description_len`], bytes of UTF-8.
pub const DEFAULT_MAX_DESCRIPTION_LEN: usize = 256;
/// The lowest port [`Table::add_any`] picks when the wanted port is unavailable: ports
/// below it (well-known services) are granted only when asked for by number.
pub const ALLOCATION_FIRST_PORT: u16 = 1024;

/// Bounds on the table. Lowering a limit does not evict existing mappings; it applies to
/// new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most mappings in the table ([`DEFAULT_MAX_MAPPINGS`]); beyond it 728.
    pub max_mappings: usize,
    /// Most mappings per internal client ([`DEFAULT_MAX_PER_HOST`]); beyond it 728.
    pub max_per_host: usize,
    /// Longest lease granted, seconds ([`DEFAULT_MAX_LEASE`]); longer requests are
    /// clamped to it (never refused). Permanent (0) requests stay permanent: the IGD
    /// layer turns an IGD:2 0 into this value before asking.
    pub max_lease: u32,
    /// Longest description, bytes of UTF-8 ([`DEFAULT_MAX_DESCRIPTION_LEN`]); beyond it
    /// 605. Never more than [`record::MAX_DESCRIPTION_LEN`] in effect.
    pub max_description_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_mappings: DEFAULT_MAX_MAPPINGS,
            max_per_host: DEFAULT_MAX_PER_HOST,
            max_lease: DEFAULT_MAX_LEASE,
            max_description_len: DEFAULT_MAX_DESCRIPTION_LEN,
        }
    }
}

/// Why a request is refused: the UPnP code to send and a message for logs. The message
/// may name addresses and ports; send only the code (and its name) to the client, as
/// `From<Refusal> for UpnpError` does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {}: {message}", .code.code(), .code.name())]
pub struct Refusal {
    /// The UPnP error code to answer with.
    pub code: ErrorCode,
    /// What happened, for logs.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and a log message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<Refusal> for UpnpError {
    /// The code and its name only: the log message stays in the gateway.
    fn from(r: Refusal) -> Self {
        UpnpError::new(r.code)
    }
}

/// A request to add or refresh a mapping, from any mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRequest {
    /// Protocol and wanted external port.
    pub key: Key,
    /// The LAN host to forward to.
    pub internal_client: Ipv4Addr,
    /// The port on the LAN host.
    pub internal_port: u16,
    /// Free text from the client.
    pub description: String,
    /// Whether the forward is active.
    pub enabled: bool,
    /// As asked, already interpreted by the caller: 0 = permanent; clamped to
    /// [`Limits::max_lease`].
    pub lease_seconds: u32,
    /// The mechanism asking.
    pub source: Source,
}

/// Whether a key an admitted request names is free or already the requester's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Refresh,
}

/// The mapping table. See the module documentation for its indexes and costs.
#[derive(Debug)]
pub struct Table {
    limits: Limits,
    policy: Policy,
    mappings: BTreeMap<Key, Mapping>,
    by_client: HashMap<Ipv4Addr, BTreeSet<Key>>,
    by_expiry: BTreeSet<(u64, Key)>,
    /// The keys in order for [`Table::nth`]; `None` after a key was added or removed.
    order: Option<Vec<Key>>,
    changes: VecDeque<Change>,
}

/// The keys of `protocol` in `start..=end`, as a `BTreeMap`/`BTreeSet` range bound
/// (`None` when empty: `range` panics on a reversed range).
fn key_range(protocol: Protocol, start: u16, end: u16) -> Option<std::ops::RangeInclusive<Key>> {
    (start <= end).then(|| Key::new(protocol, start)..=Key::new(protocol, end))
}

impl Table {
    /// An empty table.
    pub fn new(limits: Limits, policy: Policy) -> Table {
        Table {
            limits,
            policy,
            mappings: BTreeMap::new(),
            by_client: HashMap::new(),
            by_expiry: BTreeSet::new(),
            order: None,
            changes: VecDeque::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replace the limits; existing mappings stay (see [`Limits`]).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Replace the policy; existing mappings stay until [`Table::revoke_denied`].
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// How many mappings the table holds.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    /// True when the table holds no mapping.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// How many mappings forward to `client`.
    pub fn count_for(&self, client: Ipv4Addr) -> usize {
        self.by_client.get(&client).map_or(0, BTreeSet::len)
    }

    /// The mapping with this key.
    pub fn get(&self, key: &Key) -> Option<&Mapping> {
        self.mappings.get(key)
    }

    /// The mapping at `index` in key order (GetGenericPortMappingEntry). Amortised O(1)
    /// on an unchanged table: the key vector is rebuilt (O(n)) only on the first call
    /// after a mapping was added or removed; refreshes keep it.
    pub fn nth(&mut self, index: usize) -> Option<&Mapping> {
        let mappings = &self.mappings;
        let order = self
            .order
            .get_or_insert_with(|| mappings.keys().copied().collect());
        mappings.get(order.get(index)?)
    }

    /// The mappings of `protocol` with external ports in `start..=end`, in port order
    /// (empty when `start > end`).
    pub fn range(
        &self,
        protocol: Protocol,
        start: u16,
        end: u16,
    ) -> impl Iterator<Item = &Mapping> {
        key_range(protocol, start, end)
            .into_iter()
            .flat_map(|r| self.mappings.range(r).map(|(_, m)| m))
    }

    /// The mappings of `client` for `protocol` with external ports in `start..=end`, in
    /// port order: O(log n + k) through the per-client index.
    pub fn client_range(
        &self,
        client: Ipv4Addr,
        protocol: Protocol,
        start: u16,
        end: u16,
    ) -> impl Iterator<Item = &Mapping> {
        let keys = self.by_client.get(&client);
        key_range(protocol, start, end)
            .into_iter()
            .flat_map(move |r| keys.into_iter().flat_map(move |set| set.range(r.clone())))
            .filter_map(|k| self.mappings.get(k))
    }

    /// Every mapping, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.mappings.values()
    }

    /// The mappings of `client`, in key order.
    pub fn for_client(&self, client: Ipv4Addr) -> impl Iterator<Item = &Mapping> {
        self.by_client
            .get(&client)
            .into_iter()
            .flatten()
            .filter_map(|k| self.mappings.get(k))
    }

    /// Add or refresh a mapping. `requester` is the source address of the request.
    ///
    /// Checked in this order: external port 0 ⇒ 716, internal port 0 ⇒ 732, description
    /// too long ⇒ 605, an internal client no forward can reach (loopback, multicast, …,
    /// see [`is_mappable_client`]) ⇒ 606, secure mode and `requester != internal_client`
    /// ⇒ 606; the key held by another [`Source`] ⇒ 729, by another client ⇒ 718; the
    /// rules deny it ⇒ 606; a new mapping beyond the total or per-host limit ⇒ 728.
    /// Same key and client (and source) is a refresh (WANIPConnection:2 AddPortMapping:
    /// "same mapping again" updates it): internal port, description, enabled and lease
    /// are replaced, `created_at` kept, [`Change::Updated`] queued.
    pub fn add(
        &mut self,
        now: u64,
        requester: Ipv4Addr,
        req: AddRequest,
    ) -> Result<&Mapping, Refusal> {
        self.expire(now);
        self.check_request(
            requester,
            &req.key,
            req.internal_client,
            req.internal_port,
            &req.description,
        )?;
        let slot = self.holder(&req.key, req.internal_client, req.source)?;
        self.check_rules(&req.key, req.internal_client, req.internal_port)?;
        if slot == Slot::Free {
            self.check_capacity(req.internal_client)?;
        }
        Ok(self.grant(now, req.key, req))
    }

    /// Like [`Table::add`], but when the wanted key is held by someone else or denied by
    /// the rules, pick another external port (IGD:2 AddAnyPortMapping): the wanted one,
    /// then upward from it, wrapping, within 1024..=65535, skipping ports held or denied.
    /// The search skips whole held runs and denied ranges, so it costs O(n + r²) at
    /// worst (n mappings, r rules) and always ends. No port the rules allow for this
    /// client ⇒ 606; none free ⇒ 728.
    pub fn add_any(
        &mut self,
        now: u64,
        requester: Ipv4Addr,
        mut req: AddRequest,
    ) -> Result<&Mapping, Refusal> {
        self.expire(now);
        self.check_request(
            requester,
            &req.key,
            req.internal_client,
            req.internal_port,
            &req.description,
        )?;
        let wanted = req.key;
        let refresh = self.holder(&wanted, req.internal_client, req.source) == Ok(Slot::Refresh)
            && self
                .policy
                .permits(wanted.external_port, req.internal_client, req.internal_port);
        if !refresh {
            self.check_capacity(req.internal_client)?;
            let allowed = self
                .policy
                .allowed_external(req.internal_client, req.internal_port);
            if allowed.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::ActionNotAuthorized,
                    format!(
                        "rules allow no external port to {}:{}",
                        req.internal_client, req.internal_port
                    ),
                ));
            }
            let port = self
                .allocate(wanted.protocol, wanted.external_port, &allowed)
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::NoPortMapsAvailable,
                        format!(
                            "no free {} port for {}",
                            wanted.protocol, req.internal_client
                        ),
                    )
                })?;
            req.key.external_port = port;
        }
        Ok(self.grant(now, req.key, req))
    }

    /// Delete a mapping. Absent ⇒ 714 (miniupnpd answers 200 here; the spec says 714).
    /// In secure mode only the mapping's own client may delete it (606); `requester:
    /// None` is an admin (the web page) and may delete any.
    pub fn remove(
        &mut self,
        now: u64,
        requester: Option<Ipv4Addr>,
        key: &Key,
    ) -> Result<Mapping, Refusal> {
        self.expire(now);
        let no_entry = || {
            Refusal::new(
                ErrorCode::NoSuchEntryInArray,
                format!("no mapping for {} {}", key.protocol, key.external_port),
            )
        };
        let m = self.mappings.get(key).ok_or_else(no_entry)?;
        if let Some(r) = requester {
            if self.policy.secure_mode && r != m.internal_client {
                return Err(Refusal::new(
                    ErrorCode::ActionNotAuthorized,
                    format!(
                        "{r} may not delete {} {} of {} (secure mode)",
                        key.protocol, key.external_port, m.internal_client
                    ),
                ));
            }
        }
        self.take(key).ok_or_else(no_entry)
    }

    /// IGD:2 DeletePortMappingRange: `start > end` ⇒ 733; a requester deletes only its
    /// own mappings, whatever secure mode says (miniupnpd ignores ownership here, so one
    /// LAN host can wipe everyone's: GATEWAY-NOTES); `None` (admin, Manage=1) deletes
    /// all in the range. Nothing deleted ⇒ 730. Returns what was deleted, in port order.
    pub fn remove_range(
        &mut self,
        now: u64,
        requester: Option<Ipv4Addr>,
        protocol: Protocol,
        start: u16,
        end: u16,
    ) -> Result<Vec<Mapping>, Refusal> {
        if start > end {
            return Err(Refusal::new(
                ErrorCode::InconsistentParameters,
                format!("start port {start} > end port {end}"),
            ));
        }
        self.expire(now);
        let keys: Vec<Key> = match requester {
            Some(client) => self
                .client_range(client, protocol, start, end)
                .map(|m| m.key)
                .collect(),
            None => self.range(protocol, start, end).map(|m| m.key).collect(),
        };
        if keys.is_empty() {
            return Err(Refusal::new(
                ErrorCode::PortMappingNotFound,
                format!("no {protocol} mapping to delete in {start}-{end}"),
            ));
        }
        Ok(keys.iter().filter_map(|k| self.take(k)).collect())
    }

    /// Remove and return the mappings whose lease ended at or before `now`, earliest
    /// first ([`Change::Removed`] queued for each).
    pub fn expire(&mut self, now: u64) -> Vec<Mapping> {
        let mut expired = Vec::new();
        while let Some(&(at, key)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            match self.take(&key) {
                Some(m) => expired.push(m),
                // Unreachable while the indexes agree; never loop forever if not.
                None => {
                    self.by_expiry.pop_first();
                }
            }
        }
        expired
    }

    /// When the next lease ends (unix seconds): the runtime's next timer.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|&(at, _)| at)
    }

    /// Restore a persisted mapping through the same checks and limits as a live
    /// request, its requester being its own internal client (miniupnpd replays its
    /// lease file without the policy check: a mapping for a host denied since would
    /// come back). An already-expired one is dropped (`Ok(None)`). The deadline is kept,
    /// not restarted, but cut to `now + max_lease`; `created_at` and `source` are kept.
    pub fn restore(&mut self, now: u64, mapping: Mapping) -> Result<Option<&Mapping>, Refusal> {
        self.expire(now);
        if mapping.is_expired(now) {
            return Ok(None);
        }
        let client = mapping.internal_client;
        self.check_request(
            client,
            &mapping.key,
            client,
            mapping.internal_port,
            &mapping.description,
        )?;
        let slot = self.holder(&mapping.key, client, mapping.source)?;
        self.check_rules(&mapping.key, client, mapping.internal_port)?;
        if slot == Slot::Free {
            self.check_capacity(client)?;
        }
        let mut m = mapping;
        let max_lease = self.limits.max_lease.max(1);
        match m.expires_at {
            None => m.lease_seconds = 0,
            Some(at) => {
                let at = at.min(now.saturating_add(u64::from(max_lease)));
                m.expires_at = Some(at);
                let granted = if m.lease_seconds == 0 {
                    m.remaining(now)
                } else {
                    m.lease_seconds
                };
                m.lease_seconds = granted.clamp(1, max_lease);
            }
        }
        Ok(Some(self.put(m)))
    }

    /// Enable or disable a mapping (an admin action: no requester). Absent ⇒ 714.
    /// Queues [`Change::Updated`] only when the flag changes.
    pub fn set_enabled(&mut self, now: u64, key: &Key, enabled: bool) -> Result<&Mapping, Refusal> {
        self.expire(now);
        let no_entry = || {
            Refusal::new(
                ErrorCode::NoSuchEntryInArray,
                format!("no mapping for {} {}", key.protocol, key.external_port),
            )
        };
        let current = self.mappings.get(key).ok_or_else(no_entry)?;
        if current.enabled != enabled {
            let updated = Mapping {
                enabled,
                ..current.clone()
            };
            return Ok(self.put(updated));
        }
        self.mappings.get(key).ok_or_else(no_entry)
    }

    /// Remove the mappings the current rules deny (after [`Table::set_policy`], e.g. on a
    /// configuration reload), queuing [`Change::Removed`] for each. O(n · r).
    pub fn revoke_denied(&mut self) -> Vec<Mapping> {
        let denied: Vec<Key> = self
            .mappings
            .values()
            .filter(|m| {
                !self
                    .policy
                    .permits(m.key.external_port, m.internal_client, m.internal_port)
            })
            .map(|m| m.key)
            .collect();
        denied.iter().filter_map(|k| self.take(k)).collect()
    }

    /// The next queued change, oldest first. Drain after every input: the queue is
    /// unbounded and only the runtime empties it.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    // ---- checks ----

    /// The checks that depend only on the request, not on the table.
    fn check_request(
        &self,
        requester: Ipv4Addr,
        key: &Key,
        client: Ipv4Addr,
        internal_port: u16,
        description: &str,
    ) -> Result<(), Refusal> {
        if key.external_port == 0 {
            return Err(Refusal::new(
                ErrorCode::WildCardNotPermittedInExtPort,
                "external port 0 (wildcard) is not allowed",
            ));
        }
        if internal_port == 0 {
            return Err(Refusal::new(
                ErrorCode::WildCardNotPermittedInIntPort,
                "internal port 0 (wildcard) is not allowed",
            ));
        }
        // Never beyond what a journal record carries, whatever the configuration says.
        let max_description = self
            .limits
            .max_description_len
            .min(record::MAX_DESCRIPTION_LEN);
        if description.len() > max_description {
            return Err(Refusal::new(
                ErrorCode::StringArgumentTooLong,
                format!(
                    "description of {} bytes (limit {max_description})",
                    description.len()
                ),
            ));
        }
        let loopback_ok = self.policy.loopback_lan && client.is_loopback();
        if !is_mappable_client(client) && !loopback_ok {
            return Err(Refusal::new(
                ErrorCode::ActionNotAuthorized,
                format!(
                    "internal client {client} is not a unicast host address ({:?})",
                    classify(client)
                ),
            ));
        }
        if self.policy.secure_mode && requester != client {
            return Err(Refusal::new(
                ErrorCode::ActionNotAuthorized,
                format!("{requester} may not map to {client} (secure mode)"),
            ));
        }
        Ok(())
    }

    /// Who holds `key`: nobody, the same client and mechanism (a refresh), or someone
    /// else (729 for another mechanism, 718 for another client).
    fn holder(&self, key: &Key, client: Ipv4Addr, source: Source) -> Result<Slot, Refusal> {
        let Some(m) = self.mappings.get(key) else {
            return Ok(Slot::Free);
        };
        if m.source != source {
            return Err(Refusal::new(
                ErrorCode::ConflictWithOtherMechanisms,
                format!(
                    "{} {} is held via {:?}, asked via {source:?}",
                    key.protocol, key.external_port, m.source
                ),
            ));
        }
        if m.internal_client != client {
            return Err(Refusal::new(
                ErrorCode::ConflictInMappingEntry,
                format!(
                    "{} {} is held by {}, asked for {client}",
                    key.protocol, key.external_port, m.internal_client
                ),
            ));
        }
        Ok(Slot::Refresh)
    }

    fn check_rules(&self, key: &Key, client: Ipv4Addr, internal_port: u16) -> Result<(), Refusal> {
        if self
            .policy
            .permits(key.external_port, client, internal_port)
        {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::ActionNotAuthorized,
                format!(
                    "rules deny {} {} to {client}:{internal_port}",
                    key.protocol, key.external_port
                ),
            ))
        }
    }

    /// Room for one more mapping of `client`.
    fn check_capacity(&self, client: Ipv4Addr) -> Result<(), Refusal> {
        if self.mappings.len() >= self.limits.max_mappings {
            return Err(Refusal::new(
                ErrorCode::NoPortMapsAvailable,
                format!("table full ({} mappings)", self.limits.max_mappings),
            ));
        }
        if self.count_for(client) >= self.limits.max_per_host {
            return Err(Refusal::new(
                ErrorCode::NoPortMapsAvailable,
                format!(
                    "{client} holds {} mappings, the per-host limit",
                    self.limits.max_per_host
                ),
            ));
        }
        Ok(())
    }

    // ---- allocation ----

    /// A free external port for `protocol` within `allowed` (sorted disjoint ranges):
    /// `wanted` itself, then `wanted+1..=65535`, then `1024..wanted` (both cut to
    /// [`ALLOCATION_FIRST_PORT`]..=65535).
    fn allocate(&self, protocol: Protocol, wanted: u16, allowed: &[(u16, u16)]) -> Option<u16> {
        let permitted = |p: u16| allowed.iter().any(|&(a, b)| (a..=b).contains(&p));
        if wanted != 0
            && permitted(wanted)
            && !self.mappings.contains_key(&Key::new(protocol, wanted))
        {
            return Some(wanted);
        }
        // In u32 so that `wanted + 1` past 65535 is simply an empty segment.
        let (wanted, first, last) = (
            u32::from(wanted),
            u32::from(ALLOCATION_FIRST_PORT),
            u32::from(u16::MAX),
        );
        let segments = [
            ((wanted + 1).max(first), last),
            (first, wanted.saturating_sub(1)),
        ];
        segments
            .into_iter()
            .flat_map(|(lo, hi)| {
                allowed.iter().filter_map(move |&(a, b)| {
                    let (a, b) = (u32::from(a).max(lo), u32::from(b).min(hi));
                    // Both within u16 here: a >= lo >= 1024 and b <= 65535.
                    Some((u16::try_from(a).ok()?, u16::try_from(b).ok()?)).filter(|(a, b)| a <= b)
                })
            })
            .find_map(|(a, b)| self.first_free(protocol, a, b))
    }

    /// The lowest port in `lo..=hi` no mapping of `protocol` holds: walks the held keys
    /// of the range until the first gap.
    fn first_free(&self, protocol: Protocol, lo: u16, hi: u16) -> Option<u16> {
        let mut candidate = u32::from(lo);
        for key in key_range(protocol, lo, hi)
            .into_iter()
            .flat_map(|r| self.mappings.range(r).map(|(k, _)| k))
        {
            if u32::from(key.external_port) > candidate {
                break;
            }
            candidate = u32::from(key.external_port) + 1;
        }
        u16::try_from(candidate).ok().filter(|p| *p <= hi)
    }

    // ---- the two primitives that keep the indexes in step ----

    /// Grant `req` on `key` (already admitted): a new mapping or a refresh.
    fn grant(&mut self, now: u64, key: Key, req: AddRequest) -> &Mapping {
        let (lease_seconds, expires_at) = match req.lease_seconds {
            0 => (0, None),
            asked => {
                let granted = asked.min(self.limits.max_lease.max(1));
                (granted, Some(now.saturating_add(u64::from(granted))))
            }
        };
        let (created_at, source) = self
            .mappings
            .get(&key)
            .map_or((now, req.source), |m| (m.created_at, m.source));
        self.put(Mapping {
            key,
            internal_client: req.internal_client,
            internal_port: req.internal_port,
            description: req.description,
            enabled: req.enabled,
            lease_seconds,
            expires_at,
            created_at,
            source,
        })
    }

    /// Insert or replace the mapping at `m.key`, updating every index and queuing
    /// [`Change::Added`] or [`Change::Updated`].
    fn put(&mut self, m: Mapping) -> &Mapping {
        let key = m.key;
        if let Some(old) = self.mappings.get(&key) {
            unindex(&mut self.by_client, &mut self.by_expiry, old);
        } else {
            self.order = None;
        }
        self.by_client
            .entry(m.internal_client)
            .or_default()
            .insert(key);
        if let Some(at) = m.expires_at {
            self.by_expiry.insert((at, key));
        }
        match self.mappings.entry(key) {
            Entry::Vacant(slot) => {
                self.changes.push_back(Change::Added(m.clone()));
                slot.insert(m)
            }
            Entry::Occupied(slot) => {
                let slot = slot.into_mut();
                let old = mem::replace(slot, m);
                self.changes.push_back(Change::Updated {
                    old,
                    new: slot.clone(),
                });
                slot
            }
        }
    }

    /// Remove the mapping at `key` from every index, queuing [`Change::Removed`].
    fn take(&mut self, key: &Key) -> Option<Mapping> {
        let m = self.mappings.remove(key)?;
        unindex(&mut self.by_client, &mut self.by_expiry, &m);
        self.order = None;
        self.changes.push_back(Change::Removed(m.clone()));
        Some(m)
    }

    /// Panics unless every index agrees with the map (tests only).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut clients = 0;
        for (client, keys) in &self.by_client {
            assert!(!keys.is_empty(), "empty client set left for {client}");
            for k in keys {
                let m = self
                    .mappings
                    .get(k)
                    .expect("client index names a missing key");
                assert_eq!(
                    m.internal_client, *client,
                    "client index disagrees for {k:?}"
                );
            }
            clients += keys.len();
        }
        assert_eq!(clients, self.mappings.len(), "client index size");
        let expiring: BTreeSet<(u64, Key)> = self
            .mappings
            .values()
            .filter_map(|m| m.expires_at.map(|at| (at, m.key)))
            .collect();
        assert_eq!(expiring, self.by_expiry, "expiry index");
        for (k, m) in &self.mappings {
            assert_eq!(*k, m.key, "map key");
            assert_ne!(k.external_port, 0);
            assert_ne!(m.internal_port, 0);
            assert_eq!(
                m.lease_seconds == 0,
                m.expires_at.is_none(),
                "lease vs deadline of {k:?}"
            );
        }
        if let Some(order) = &self.order {
            assert!(order.iter().eq(self.mappings.keys()), "stale order cache");
        }
    }
}

/// Remove `m` from the client and expiry indexes (dropping an emptied client set).
fn unindex(
    by_client: &mut HashMap<Ipv4Addr, BTreeSet<Key>>,
    by_expiry: &mut BTreeSet<(u64, Key)>,
    m: &Mapping,
) {
    if let Some(keys) = by_client.get_mut(&m.internal_client) {
        keys.remove(&m.key);
        if keys.is_empty() {
            by_client.remove(&m.internal_client);
        }
    }
    if let Some(at) = m.expires_at {
        by_expiry.remove(&(at, m.key));
    }
}
