//! The gateway's mapping table, without I/O: leases, policy, port allocation, the IGD
//! action semantics on top of it, and the journal record format.
//!
//! Like `quinn-proto`, this crate never opens a socket, reads a clock or spawns a task:
//! every input carries `now` (unix seconds) and the caller drains the outputs. The
//! `control` actor of the `gateway` crate owns one [`Table`]; after each input it drains
//! [`Table::poll_change`] (str0m's rule: every input is followed by draining) and feeds
//! the changes to the journal and the forwarding backend, and it arms a timer for
//! [`Table::next_expiry`].
//!
//! - [`mapping`]: what a mapping is ([`Key`], [`Mapping`], [`Source`]) and the [`Change`]
//!   events.
//! - [`policy`]: the access rules (miniupnpd-style allow/deny lines) and secure mode.
//! - [`table`]: the indexed table itself, its limits and refusals.
//! - [`igd`]: WANIPConnection actions executed against the table (IGD:1 and IGD:2).
//! - [`record`]: one-line, checksummed journal records and their replay.
//! - [`addr`]: IPv4 address classification (public, private, special-purpose).

#![forbid(unsafe_code)]

pub mod addr;
pub mod igd;
pub mod mapping;
pub mod policy;
pub mod record;
pub mod table;

pub use igd_proto::actions::Protocol;
pub use mapping::{Change, Key, Mapping, Source};
pub use policy::{Policy, Rule, RuleError};
pub use table::{AddRequest, Limits, Refusal, Table};
