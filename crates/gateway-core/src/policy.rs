//! Who may map what: the access rules and secure mode.
//!
//! The rule syntax is miniupnpd's `allow`/`deny` lines (`upnp_perm_rules`), which
//! operators already know: `allow 1024-65535 192.168.0.0/24 1024-65535` reads "allow
//! external ports 1024-65535 to clients in 192.168.0.0/24 on internal ports
//! 1024-65535". The first rule that matches (external port, internal client, internal
//! port) decides; with no rules everything is allowed; with rules but no match the
//! request is denied (a list of rules is an ACL: what it does not allow is refused).
//!
//! Secure mode (WANIPConnection:2, the authorisation rules behind error 606; on by default
//! because Debian ships miniupnpd with it off and any LAN host can then forward to any
//! other, GATEWAY-NOTES) requires that a control point only maps to, and deletes,
//! its own address. The table enforces it; this module only holds the switch.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::addr::in_prefix;

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// True for `allow`, false for `deny`.
    pub allow: bool,
    /// The external ports the rule covers.
    pub external_ports: RangeInclusive<u16>,
    /// The internal client network (its bits beyond `prefix_len` are ignored).
    pub client: Ipv4Addr,
    /// The prefix length of the client network, 0..=32.
    pub prefix_len: u8,
    /// The internal ports the rule covers.
    pub internal_ports: RangeInclusive<u16>,
}

/// Why a rule line could not be parsed. Every variant is the operator's to fix in the
/// configuration; the offending text is included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A rule has exactly four fields: `allow|deny EXT_PORTS CLIENT[/LEN] INT_PORTS`.
    #[error("a rule has 4 fields (allow|deny, external ports, client[/len], internal ports), found {found}")]
    FieldCount {
        /// How many whitespace-separated fields the line had.
        found: usize,
    },
    /// The first field must be `allow` or `deny`.
    #[error("unknown rule action {0:?} (expected allow or deny)")]
    Action(String),
    /// A port field must be `N` or `N-M` with decimal ports 0..=65535 and `N <= M`.
    #[error("invalid port range {0:?} (expected N or N-M, 0..=65535, N <= M)")]
    PortRange(String),
    /// The client must be an IPv4 literal (names are never resolved).
    #[error("invalid client address {0:?} (expected an IPv4 literal)")]
    Address(String),
    /// The prefix length must be a decimal 0..=32.
    #[error("invalid prefix length {0:?} (expected 0..=32)")]
    PrefixLen(String),
}

fn parse_port(text: &str) -> Option<u16> {
    // Digits only: `u16::from_str` would accept a leading `+`.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, RuleError> {
    let bad = || RuleError::PortRange(text.to_owned());
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (
            parse_port(lo).ok_or_else(bad)?,
            parse_port(hi).ok_or_else(bad)?,
        ),
        None => {
            let p = parse_port(text).ok_or_else(bad)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok(lo..=hi)
}

impl Rule {
    /// Parse one rule line, e.g. `allow 1024-65535 192.168.0.0/24 1024-65535` or
    /// `deny 0-65535 0.0.0.0/0 0-65535`. A port field may be a single port; a client
    /// without `/LEN` is a single host (/32). The action is case-insensitive.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let &[action, ext, client, int] = fields.as_slice() else {
            return Err(RuleError::FieldCount {
                found: fields.len(),
            });
        };
        let allow = if action.eq_ignore_ascii_case("allow") {
            true
        } else if action.eq_ignore_ascii_case("deny") {
            false
        } else {
            return Err(RuleError::Action(action.to_owned()));
        };
        let (addr, prefix_len) = match client.split_once('/') {
            Some((addr, len)) => {
                let prefix_len =
                    (!len.is_empty() && len.len() <= 2 && len.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| len.parse::<u8>().ok())
                        .flatten()
                        .filter(|l| *l <= 32)
                        .ok_or_else(|| RuleError::PrefixLen(len.to_owned()))?;
                (addr, prefix_len)
            }
            None => (client, 32),
        };
        let client: Ipv4Addr = addr
            .parse()
            .map_err(|_| RuleError::Address(addr.to_owned()))?;
        Ok(Rule {
            allow,
            external_ports: parse_ports(ext)?,
            client,
            prefix_len,
            internal_ports: parse_ports(int)?,
        })
    }

    /// Whether the client and internal port fall under this rule (the external port
    /// aside).
    fn matches_client(&self, client: Ipv4Addr, internal_port: u16) -> bool {
        in_prefix(client, self.client, self.prefix_len)
            && self.internal_ports.contains(&internal_port)
    }

    /// Whether this rule covers a request for `external_port` to
    /// `client:internal_port`.
    pub fn matches(&self, external_port: u16, client: Ipv4Addr, internal_port: u16) -> bool {
        self.external_ports.contains(&external_port) && self.matches_client(client, internal_port)
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::parse(s)
    }
}

impl fmt::Display for Rule {
    /// The line [`Rule::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}/{} {}-{}",
            if self.allow { "allow" } else { "deny" },
            self.external_ports.start(),
            self.external_ports.end(),
            self.client,
            self.prefix_len,
            self.internal_ports.start(),
            self.internal_ports.end()
        )
    }
}

/// The access policy: secure mode and the ordered rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// A requester may only map to, and delete, its own address (default true).
    pub secure_mode: bool,
    /// First match wins; no rules = allow everything; rules but no match = deny.
    pub rules: Vec<Rule>,
    /// The LAN is the loopback network (the userspace relay on one machine, e.g. the demo):
    /// 127/8 clients are then LAN hosts. Off by default, since a forward to the gateway's own
    /// loopback would expose its local services to the WAN.
    pub loopback_lan: bool,
}

impl Default for Policy {
    /// Secure mode on, no rules.
    fn default() -> Self {
        Policy {
            secure_mode: true,
            rules: Vec::new(),
            loopback_lan: false,
        }
    }
}

impl Policy {
    /// Whether the rules allow forwarding `external_port` to `client:internal_port`.
    pub fn permits(&self, external_port: u16, client: Ipv4Addr, internal_port: u16) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules
            .iter()
            .find(|r| r.matches(external_port, client, internal_port))
            .is_some_and(|r| r.allow)
    }

    /// The external ports (1..=65535) the rules allow for `client:internal_port`, as
    /// sorted, disjoint, non-adjacent `(first, last)` ranges: what port allocation
    /// searches, so that it skips a denied range in one step instead of port by port.
    /// O(r²) in the number of rules.
    pub(crate) fn allowed_external(&self, client: Ipv4Addr, internal_port: u16) -> Vec<(u16, u16)> {
        if self.rules.is_empty() {
            return vec![(1, u16::MAX)];
        }
        // Ports not yet decided by an earlier rule; each rule splits at most one range
        // in two, so this stays small.
        let mut undecided: Vec<(u16, u16)> = vec![(1, u16::MAX)];
        let mut allowed = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.matches_client(client, internal_port))
        {
            let (lo, hi) = (*rule.external_ports.start(), *rule.external_ports.end());
            let mut rest = Vec::with_capacity(undecided.len() + 1);
            for (a, b) in undecided {
                let (ia, ib) = (a.max(lo), b.min(hi));
                if ia > ib {
                    rest.push((a, b));
                    continue;
                }
                if rule.allow {
                    allowed.push((ia, ib));
                }
                if a < ia {
                    rest.push((a, ia - 1));
                }
                if ib < b {
                    rest.push((ib + 1, b));
                }
            }
            undecided = rest;
            if undecided.is_empty() {
                break;
            }
        }
        allowed.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(allowed.len());
        for (a, b) in allowed {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_miniupnpd_lines() {
        let r = Rule::parse("allow 1024-65535 192.168.0.0/24 1024-65535").unwrap();
        assert!(r.allow);
        assert_eq!(r.external_ports, 1024..=65535);
        assert_eq!(r.client, ip("192.168.0.0"));
        assert_eq!(r.prefix_len, 24);
        assert_eq!(r.internal_ports, 1024..=65535);
        let r: Rule = "  DENY 0-65535\t0.0.0.0/0 0-65535 ".parse().unwrap();
        assert!(!r.allow);
        assert_eq!(r.prefix_len, 0);
        let r = Rule::parse("allow 80 192.168.1.5 8080").unwrap();
        assert_eq!(r.external_ports, 80..=80);
        assert_eq!(r.prefix_len, 32);
        assert_eq!(r.internal_ports, 8080..=8080);
        assert_eq!(r.to_string(), "allow 80-80 192.168.1.5/32 8080-8080");
        assert_eq!(Rule::parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn refuses_bad_lines() {
        let cases: [(&str, RuleError); 12] = [
            ("", RuleError::FieldCount { found: 0 }),
            ("allow 1-2 1.2.3.4/8", RuleError::FieldCount { found: 3 }),
            (
                "allow 1-2 1.2.3.4/8 1-2 extra",
                RuleError::FieldCount { found: 5 },
            ),
            ("permit 1-2 1.2.3.4 1-2", RuleError::Action("permit".into())),
            ("allow 2-1 1.2.3.4 1-2", RuleError::PortRange("2-1".into())),
            (
                "allow 1-65536 1.2.3.4 1-2",
                RuleError::PortRange("1-65536".into()),
            ),
            ("allow +1 1.2.3.4 1-2", RuleError::PortRange("+1".into())),
            ("allow 1- 1.2.3.4 1-2", RuleError::PortRange("1-".into())),
            ("allow 1 1.2.3.4 x", RuleError::PortRange("x".into())),
            (
                "allow 1 router.lan 1",
                RuleError::Address("router.lan".into()),
            ),
            ("allow 1 1.2.3.4/33 1", RuleError::PrefixLen("33".into())),
            ("allow 1 1.2.3.4/ 1", RuleError::PrefixLen("".into())),
        ];
        for (text, err) in cases {
            assert_eq!(Rule::parse(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn first_match_wins_and_no_match_denies() {
        let none = Policy::default();
        assert!(none.secure_mode);
        assert!(none.permits(80, ip("10.0.0.1"), 80));
        let p = Policy {
            secure_mode: true,
            loopback_lan: false,
            rules: vec![
                Rule::parse("deny 5000-5999 192.168.1.66 0-65535").unwrap(),
                Rule::parse("allow 1024-65535 192.168.1.0/24 1024-65535").unwrap(),
            ],
        };
        assert!(p.permits(1024, ip("192.168.1.10"), 1024));
        assert!(
            !p.permits(1023, ip("192.168.1.10"), 1024),
            "no rule covers port 1023"
        );
        assert!(
            !p.permits(5500, ip("192.168.1.66"), 2000),
            "deny comes first"
        );
        assert!(p.permits(6000, ip("192.168.1.66"), 2000));
        assert!(!p.permits(6000, ip("192.168.2.10"), 2000), "other subnet");
        assert!(!p.permits(6000, ip("192.168.1.10"), 80), "internal port");
        assert_eq!(
            p.allowed_external(ip("192.168.1.66"), 2000),
            vec![(1024, 4999), (6000, 65535)]
        );
        assert_eq!(p.allowed_external(ip("10.0.0.1"), 2000), vec![]);
        assert_eq!(none.allowed_external(ip("10.0.0.1"), 1), vec![(1, 65535)]);
    }

    fn arb_rule() -> impl Strategy<Value = Rule> {
        (
            any::<bool>(),
            any::<u16>(),
            0u16..3000,
            0u8..4,
            prop::sample::select(vec![0u8, 8, 24, 31, 32]),
            any::<u16>(),
            0u16..2000,
        )
            .prop_map(|(allow, lo, span, host, prefix_len, ilo, ispan)| Rule {
                allow,
                external_ports: lo..=lo.saturating_add(span),
                client: Ipv4Addr::new(10, 0, 0, host),
                prefix_len,
                internal_ports: ilo..=ilo.saturating_add(ispan),
            })
    }

    proptest! {
        /// The interval form used by allocation agrees with `permits` port by port.
        #[test]
        fn allowed_external_agrees_with_permits(
            rules in prop::collection::vec(arb_rule(), 0..6),
            host in 0u8..4,
            iport in any::<u16>(),
            probes in prop::collection::vec(1u16..=u16::MAX, 64),
        ) {
            let policy = Policy { secure_mode: false, rules, loopback_lan: false };
            let client = Ipv4Addr::new(10, 0, 0, host);
            let allowed = policy.allowed_external(client, iport);
            for w in allowed.windows(2) {
                prop_assert!(u32::from(w[0].1) + 1 < u32::from(w[1].0));
            }
            let mut probes = probes;
            for &(a, b) in &allowed {
                probes.extend([a, b, a.saturating_sub(1).max(1), b.saturating_add(1)]);
            }
            for port in probes {
                let inside = allowed.iter().any(|&(a, b)| (a..=b).contains(&port));
                prop_assert_eq!(inside, policy.permits(port, client, iport), "port {}", port);
            }
        }

        #[test]
        fn display_parse_round_trip(rule in arb_rule()) {
            prop_assert_eq!(Rule::parse(&rule.to_string()).unwrap(), rule);
        }
    }
}
