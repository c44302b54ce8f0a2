//! Property test of the table: random operations keep every index and the change queue
//! true to the map.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{ip, tcp, NOW};
use super::*;
use crate::policy::Rule;

#[derive(Debug, Clone)]
enum Op {
    Add {
        requester: u8,
        client: u8,
        port: u16,
        iport: u16,
        lease: u32,
        source: u8,
        any: bool,
    },
    Remove {
        requester: Option<u8>,
        udp: bool,
        port: u16,
    },
    RemoveRange {
        requester: Option<u8>,
        udp: bool,
        start: u16,
        end: u16,
    },
    Advance(u64),
    Expire,
    SetEnabled {
        udp: bool,
        port: u16,
        enabled: bool,
    },
    Nth(usize),
    Restore {
        client: u8,
        port: u16,
        remaining: Option<u64>,
        source: u8,
    },
    Policy(u8),
}

const SOURCES: [Source; 4] = [Source::Upnp, Source::NatPmp, Source::Pcp, Source::Manual];

fn arb_op() -> impl Strategy<Value = Op> {
    let port = 1020u16..1040;
    let client = 1u8..5;
    prop_oneof![
        4 => (client.clone(), client.clone(), port.clone(), 0u16..3, 0u32..50, 0u8..4, any::<bool>()).prop_map(
            |(requester, client, port, iport, lease, source, any)| Op::Add {
                requester, client, port, iport: iport + 1020, lease, source, any
            }
        ),
        2 => (prop::option::of(client.clone()), any::<bool>(), port.clone())
            .prop_map(|(requester, udp, port)| Op::Remove { requester, udp, port }),
        1 => (prop::option::of(client.clone()), any::<bool>(), port.clone(), port.clone())
            .prop_map(|(requester, udp, start, end)| Op::RemoveRange { requester, udp, start, end }),
        2 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => (any::<bool>(), port.clone(), any::<bool>()).prop_map(|(udp, port, enabled)| Op::SetEnabled { udp, port, enabled }),
        1 => (0usize..25).prop_map(Op::Nth),
        1 => (client, port, prop::option::of(0u64..60), 0u8..4)
            .prop_map(|(client, port, remaining, source)| Op::Restore { client, port, remaining, source }),
        1 => (0u8..4).prop_map(Op::Policy),
    ]
}

fn policy_n(n: u8) -> Policy {
    let rules: &[&str] = match n {
        0 => &[],
        1 => &["allow 1024-1035 192.168.1.0/24 0-65535"],
        2 => &[
            "deny 1030-1039 192.168.1.2 0-65535",
            "allow 0-65535 0.0.0.0/0 1021-65535",
        ],
        _ => &["deny 0-65535 0.0.0.0/0 0-65535"],
    };
    Policy {
        secure_mode: matches!(n, 0 | 2),
        rules: rules.iter().map(|r| Rule::parse(r).unwrap()).collect(),
        loopback_lan: false,
    }
}

/// Apply a drained change to the model, checking it describes the table's past state.
fn apply(model: &mut BTreeMap<Key, Mapping>, change: Change) {
    match change {
        Change::Added(m) => assert!(
            model.insert(m.key, m).is_none(),
            "Added over an existing key"
        ),
        Change::Removed(m) => {
            assert_eq!(model.remove(&m.key), Some(m), "Removed what was not there")
        }
        Change::Updated { old, new } => {
            assert_eq!(old.key, new.key);
            assert_eq!(
                model.insert(new.key, new),
                Some(old),
                "Updated from a stale old"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_indexes_consistent(ops in prop::collection::vec(arb_op(), 1..80)) {
        let limits = Limits { max_mappings: 12, max_per_host: 5, max_lease: 40, ..Limits::default() };
        let mut t = Table::new(limits, policy_n(0));
        let mut model = BTreeMap::new();
        let mut now = NOW;
        for op in ops {
            let before = t.len();
            match op {
                Op::Add { requester, client, port, iport, lease, source, any } => {
                    let r = AddRequest {
                        key: tcp(port),
                        internal_client: ip(client),
                        internal_port: iport,
                        description: String::new(),
                        enabled: true,
                        lease_seconds: lease,
                        source: SOURCES[usize::from(source)],
                    };
                    let result = if any { t.add_any(now, ip(requester), r.clone()) } else { t.add(now, ip(requester), r.clone()) };
                    if let Ok(m) = result {
                        let m = m.clone();
                        prop_assert_eq!(m.internal_client, r.internal_client);
                        prop_assert_eq!(m.internal_port, r.internal_port);
                        prop_assert!(m.lease_seconds <= 40);
                        prop_assert!(any || m.key == r.key);
                        prop_assert!(t.policy().permits(m.key.external_port, m.internal_client, m.internal_port));
                        prop_assert_eq!(t.get(&m.key), Some(&m));
                    }
                }
                Op::Remove { requester, udp, port } => {
                    let key = Key::new(if udp { Protocol::Udp } else { Protocol::Tcp }, port);
                    if let Ok(m) = t.remove(now, requester.map(ip), &key) {
                        prop_assert_eq!(m.key, key);
                        prop_assert!(t.get(&key).is_none());
                    }
                }
                Op::RemoveRange { requester, udp, start, end } => {
                    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
                    if let Ok(gone) = t.remove_range(now, requester.map(ip), protocol, start, end) {
                        prop_assert!(!gone.is_empty());
                        for m in gone {
                            prop_assert!(requester.is_none_or(|r| m.internal_client == ip(r)));
                            prop_assert!((start..=end).contains(&m.key.external_port));
                        }
                    }
                }
                Op::Advance(s) => now += s,
                Op::Expire => {
                    let gone = t.expire(now);
                    prop_assert!(gone.windows(2).all(|w| w[0].expires_at <= w[1].expires_at));
                    prop_assert!(t.iter().all(|m| !m.is_expired(now)));
                    prop_assert!(t.next_expiry().is_none_or(|at| at > now));
                }
                Op::SetEnabled { udp, port, enabled } => {
                    let key = Key::new(if udp { Protocol::Udp } else { Protocol::Tcp }, port);
                    if let Ok(m) = t.set_enabled(now, &key, enabled) {
                        prop_assert_eq!(m.enabled, enabled);
                    }
                }
                Op::Nth(i) => {
                    let expected = t.iter().nth(i).cloned();
                    prop_assert_eq!(t.nth(i).cloned(), expected);
                }
                Op::Restore { client, port, remaining, source } => {
                    let m = Mapping {
                        key: tcp(port),
                        internal_client: ip(client),
                        internal_port: port,
                        description: String::new(),
                        enabled: true,
                        lease_seconds: remaining.map_or(0, |r| u32::try_from(r).unwrap().max(1)),
                        expires_at: remaining.map(|r| now + r),
                        created_at: now,
                        source: SOURCES[usize::from(source)],
                    };
                    let _ = t.restore(now, m);
                }
                Op::Policy(n) => t.set_policy(policy_n(n)),
            }
            t.check_invariants();
            for change in std::iter::from_fn(|| t.poll_change()) {
                apply(&mut model, change);
            }
            prop_assert!(model.values().eq(t.iter()), "the changes replay to the table");
            prop_assert!(t.len() <= 12 || t.len() <= before);
            let min = t.iter().filter_map(|m| m.expires_at).min();
            prop_assert_eq!(t.next_expiry(), min);
            for c in 1..5 {
                prop_assert_eq!(t.count_for(ip(c)), t.iter().filter(|m| m.internal_client == ip(c)).count());
                prop_assert!(t.count_for(ip(c)) <= 5);
            }
        }
    }
}
