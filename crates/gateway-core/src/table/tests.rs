use super::*;
use crate::policy::Rule;

pub(super) const NOW: u64 = 1_700_000_000;

pub(super) fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, last)
}

pub(super) fn tcp(port: u16) -> Key {
    Key::new(Protocol::Tcp, port)
}

fn req(port: u16, client: u8, internal_port: u16) -> AddRequest {
    AddRequest {
        key: tcp(port),
        internal_client: ip(client),
        internal_port,
        description: "test".into(),
        enabled: true,
        lease_seconds: 3600,
        source: Source::Upnp,
    }
}

fn table() -> Table {
    Table::new(Limits::default(), Policy::default())
}

fn open_table() -> Table {
    Table::new(
        Limits::default(),
        Policy {
            secure_mode: false,
            rules: Vec::new(),
            loopback_lan: false,
        },
    )
}

fn with_rules(rules: &[&str]) -> Table {
    Table::new(
        Limits::default(),
        Policy {
            secure_mode: true,
            rules: rules.iter().map(|r| Rule::parse(r).unwrap()).collect(),
            loopback_lan: false,
        },
    )
}

fn drain(t: &mut Table) -> Vec<Change> {
    std::iter::from_fn(|| t.poll_change()).collect()
}

fn code<T: std::fmt::Debug>(r: Result<T, Refusal>) -> ErrorCode {
    r.expect_err("expected a refusal").code
}

fn add(t: &mut Table, now: u64, port: u16, client: u8) -> Result<Mapping, Refusal> {
    t.add(now, ip(client), req(port, client, port)).cloned()
}

#[test]
fn add_creates_and_queues_added() {
    let mut t = table();
    let m = add(&mut t, NOW, 8080, 10).unwrap();
    assert_eq!(m.key, tcp(8080));
    assert_eq!(m.internal_client, ip(10));
    assert_eq!(m.lease_seconds, 3600);
    assert_eq!(m.expires_at, Some(NOW + 3600));
    assert_eq!(m.created_at, NOW);
    assert_eq!(m.source, Source::Upnp);
    assert_eq!((t.len(), t.is_empty(), t.count_for(ip(10))), (1, false, 1));
    assert_eq!(t.get(&tcp(8080)), Some(&m));
    assert_eq!(drain(&mut t), vec![Change::Added(m)]);
    assert_eq!(t.poll_change(), None);
    t.check_invariants();
}

#[test]
fn refresh_updates_in_place() {
    let mut t = table();
    let old = add(&mut t, NOW, 8080, 10).unwrap();
    drain(&mut t);
    let mut again = req(8080, 10, 9090);
    again.description = "new".into();
    again.lease_seconds = 60;
    again.enabled = false;
    let new = t.add(NOW + 100, ip(10), again).unwrap().clone();
    assert_eq!(new.internal_port, 9090);
    assert_eq!(new.description, "new");
    assert!(!new.enabled);
    assert_eq!(new.lease_seconds, 60);
    assert_eq!(new.expires_at, Some(NOW + 160));
    assert_eq!(new.created_at, NOW, "a refresh keeps created_at");
    assert_eq!(t.len(), 1);
    assert_eq!(t.next_expiry(), Some(NOW + 160));
    assert_eq!(drain(&mut t), vec![Change::Updated { old, new }]);
    t.check_invariants();
}

#[test]
fn conflict_with_other_client_is_718() {
    let mut t = table();
    add(&mut t, NOW, 8080, 10).unwrap();
    drain(&mut t);
    assert_eq!(
        code(add(&mut t, NOW, 8080, 11)),
        ErrorCode::ConflictInMappingEntry
    );
    // Another protocol on the same port is another key.
    let mut udp = req(8080, 11, 8080);
    udp.key.protocol = Protocol::Udp;
    assert!(t.add(NOW, ip(11), udp).is_ok());
    assert_eq!(t.get(&tcp(8080)).unwrap().internal_client, ip(10));
    t.check_invariants();
}

#[test]
fn conflict_with_other_mechanism_is_729() {
    let mut t = table();
    let mut pmp = req(5000, 10, 5000);
    pmp.source = Source::NatPmp;
    t.add(NOW, ip(10), pmp).unwrap();
    // Even the same client cannot take it over through UPnP.
    assert_eq!(
        code(add(&mut t, NOW, 5000, 10)),
        ErrorCode::ConflictWithOtherMechanisms
    );
    assert_eq!(
        code(add(&mut t, NOW, 5000, 11)),
        ErrorCode::ConflictWithOtherMechanisms
    );
}

#[test]
fn wildcard_ports_and_long_descriptions_are_refused() {
    let mut t = table();
    assert_eq!(
        code(add(&mut t, NOW, 0, 10)),
        ErrorCode::WildCardNotPermittedInExtPort
    );
    assert_eq!(
        code(t.add(NOW, ip(10), req(80, 10, 0))),
        ErrorCode::WildCardNotPermittedInIntPort
    );
    let mut r = req(80, 10, 80);
    r.description = "x".repeat(DEFAULT_MAX_DESCRIPTION_LEN);
    assert!(t.add(NOW, ip(10), r.clone()).is_ok());
    r.description.push('x');
    assert_eq!(
        code(t.add(NOW, ip(10), r.clone())),
        ErrorCode::StringArgumentTooLong
    );
    // Counted in bytes: 129 two-byte characters are 258 bytes.
    r.description = "é".repeat(129);
    assert_eq!(
        code(t.add(NOW, ip(10), r)),
        ErrorCode::StringArgumentTooLong
    );
    assert!(drain(&mut t).len() == 1, "refusals queue nothing");
    // Whatever the configuration, never more than a journal record carries.
    t.set_limits(Limits {
        max_description_len: usize::MAX,
        ..Limits::default()
    });
    let mut r = req(81, 10, 81);
    r.description = "x".repeat(record::MAX_DESCRIPTION_LEN + 1);
    assert_eq!(
        code(t.add(NOW, ip(10), r)),
        ErrorCode::StringArgumentTooLong
    );
}

#[test]
fn secure_mode_binds_requests_to_their_source() {
    let mut t = table();
    // 10 asks for a mapping to 11.
    assert_eq!(
        code(t.add(NOW, ip(10), req(80, 11, 80))),
        ErrorCode::ActionNotAuthorized
    );
    add(&mut t, NOW, 80, 11).unwrap();
    // Only the owner may delete; an admin (None) may delete anything.
    assert_eq!(
        code(t.remove(NOW, Some(ip(10)), &tcp(80))),
        ErrorCode::ActionNotAuthorized
    );
    assert!(t.remove(NOW, Some(ip(11)), &tcp(80)).is_ok());
    add(&mut t, NOW, 81, 11).unwrap();
    assert!(t.remove(NOW, None, &tcp(81)).is_ok());

    // Secure mode off: mapping to and deleting for other hosts is allowed.
    let mut t = open_table();
    assert!(t.add(NOW, ip(10), req(80, 11, 80)).is_ok());
    assert!(t.remove(NOW, Some(ip(12)), &tcp(80)).is_ok());
    // But never to an address no forward may reach, and an admin is no exception.
    for bad in [
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(239, 1, 1, 1),
    ] {
        let mut r = req(90, 10, 90);
        r.internal_client = bad;
        assert_eq!(
            code(t.add(NOW, bad, r)),
            ErrorCode::ActionNotAuthorized,
            "{bad}"
        );
    }
    t.check_invariants();
}

#[test]
fn remove_missing_is_714() {
    let mut t = table();
    assert_eq!(
        code(t.remove(NOW, Some(ip(10)), &tcp(80))),
        ErrorCode::NoSuchEntryInArray
    );
    assert_eq!(
        code(t.remove(NOW, None, &tcp(80))),
        ErrorCode::NoSuchEntryInArray
    );
    add(&mut t, NOW, 80, 10).unwrap();
    let mut udp = tcp(80);
    udp.protocol = Protocol::Udp;
    assert_eq!(
        code(t.remove(NOW, None, &udp)),
        ErrorCode::NoSuchEntryInArray
    );
    drain(&mut t);
    let gone = t.remove(NOW, None, &tcp(80)).unwrap();
    assert_eq!(drain(&mut t), vec![Change::Removed(gone)]);
    assert!(t.is_empty());
    t.check_invariants();
}

#[test]
fn rules_deny_with_606_including_refreshes() {
    let mut t = with_rules(&["allow 1024-65535 192.168.1.0/24 1024-65535"]);
    assert_eq!(
        code(add(&mut t, NOW, 80, 10)),
        ErrorCode::ActionNotAuthorized
    );
    assert!(add(&mut t, NOW, 2000, 10).is_ok());
    t.set_policy(Policy {
        secure_mode: true,
        rules: vec![Rule::parse("deny 0-65535 192.168.1.10 0-65535").unwrap()],
        loopback_lan: false,
    });
    assert_eq!(
        code(add(&mut t, NOW, 2000, 10)),
        ErrorCode::ActionNotAuthorized
    );
    drain(&mut t);
    let revoked = t.revoke_denied();
    assert_eq!(revoked.len(), 1);
    assert_eq!(drain(&mut t), vec![Change::Removed(revoked[0].clone())]);
    assert!(t.is_empty());
}

#[test]
fn per_host_and_total_limits_are_728() {
    let limits = Limits {
        max_mappings: 5,
        max_per_host: 3,
        ..Limits::default()
    };
    let mut t = Table::new(limits, Policy::default());
    for port in 1..=3 {
        add(&mut t, NOW, port + 1000, 10).unwrap();
    }
    assert_eq!(
        code(add(&mut t, NOW, 1004, 10)),
        ErrorCode::NoPortMapsAvailable
    );
    // A refresh at the limit is fine; another host is not affected.
    assert!(add(&mut t, NOW, 1001, 10).is_ok());
    add(&mut t, NOW, 2001, 11).unwrap();
    add(&mut t, NOW, 2002, 11).unwrap();
    assert_eq!(t.len(), 5);
    assert_eq!(
        code(add(&mut t, NOW, 3001, 12)),
        ErrorCode::NoPortMapsAvailable
    );
    assert_eq!(
        code(t.add_any(NOW, ip(12), req(3001, 12, 3001))),
        ErrorCode::NoPortMapsAvailable
    );
    t.remove(NOW, None, &tcp(2001)).unwrap();
    assert!(add(&mut t, NOW, 3001, 12).is_ok());
    assert_eq!(t.count_for(ip(10)), 3);
    t.check_invariants();
}

#[test]
fn lease_is_clamped_and_zero_is_permanent() {
    let mut t = table();
    let mut r = req(80, 10, 80);
    r.lease_seconds = u32::MAX;
    let m = t.add(NOW, ip(10), r.clone()).unwrap();
    assert_eq!(m.lease_seconds, DEFAULT_MAX_LEASE);
    assert_eq!(m.expires_at, Some(NOW + u64::from(DEFAULT_MAX_LEASE)));
    r.lease_seconds = 0;
    let m = t.add(NOW, ip(10), r.clone()).unwrap();
    assert_eq!((m.lease_seconds, m.expires_at), (0, None));
    assert_eq!(t.next_expiry(), None);
    t.set_limits(Limits {
        max_lease: 100,
        ..Limits::default()
    });
    r.lease_seconds = 3600;
    let m = t.add(NOW, ip(10), r).unwrap();
    assert_eq!((m.lease_seconds, m.expires_at), (100, Some(NOW + 100)));
    t.check_invariants();
}

#[test]
fn expiry_in_deadline_order() {
    let mut t = table();
    for (port, lease) in [(1001, 300), (1002, 100), (1003, 200), (1004, 0)] {
        let mut r = req(port, 10, port);
        r.lease_seconds = lease;
        t.add(NOW, ip(10), r).unwrap();
    }
    drain(&mut t);
    assert_eq!(t.next_expiry(), Some(NOW + 100));
    assert!(t.expire(NOW + 99).is_empty());
    // Expired at the deadline itself.
    let gone: Vec<u16> = t
        .expire(NOW + 100)
        .iter()
        .map(|m| m.key.external_port)
        .collect();
    assert_eq!(gone, vec![1002]);
    assert_eq!(t.next_expiry(), Some(NOW + 200));
    let gone = t.expire(NOW + 10_000);
    let ports: Vec<u16> = gone.iter().map(|m| m.key.external_port).collect();
    assert_eq!(ports, vec![1003, 1001], "earliest deadline first");
    let removed: Vec<Change> = drain(&mut t);
    assert_eq!(removed.len(), 3);
    assert!(removed.iter().all(|c| matches!(c, Change::Removed(_))));
    assert_eq!(t.next_expiry(), None, "the permanent one has no deadline");
    assert_eq!(t.len(), 1);
    t.check_invariants();
}

#[test]
fn refresh_moves_the_deadline() {
    let mut t = table();
    add(&mut t, NOW, 1001, 10).unwrap();
    add(&mut t, NOW + 10, 1002, 10).unwrap();
    assert_eq!(t.next_expiry(), Some(NOW + 3600));
    add(&mut t, NOW + 20, 1001, 10).unwrap();
    assert_eq!(t.next_expiry(), Some(NOW + 3610));
    t.check_invariants();
}

#[test]
fn an_expired_mapping_never_blocks() {
    let mut t = table();
    let mut r = req(8080, 10, 8080);
    r.lease_seconds = 10;
    t.add(NOW, ip(10), r).unwrap();
    drain(&mut t);
    // Not yet: 718. At the deadline it is gone and 11 gets the port.
    assert_eq!(
        code(add(&mut t, NOW + 9, 8080, 11)),
        ErrorCode::ConflictInMappingEntry
    );
    let m = add(&mut t, NOW + 10, 8080, 11).unwrap();
    let changes = drain(&mut t);
    assert!(
        matches!(&changes[..], [Change::Removed(old), Change::Added(new)]
        if old.internal_client == ip(10) && *new == m)
    );
    // Deleting an expired mapping is 714.
    let mut r = req(9000, 10, 9000);
    r.lease_seconds = 5;
    t.add(NOW, ip(10), r).unwrap();
    assert_eq!(
        code(t.remove(NOW + 5, None, &tcp(9000))),
        ErrorCode::NoSuchEntryInArray
    );
    t.check_invariants();
}

#[test]
fn nth_enumerates_in_key_order_and_follows_changes() {
    let mut t = table();
    for port in [3000, 1000, 2000] {
        add(&mut t, NOW, port, 10).unwrap();
    }
    let mut udp = req(500, 10, 500);
    udp.key.protocol = Protocol::Udp;
    t.add(NOW, ip(10), udp).unwrap();
    let listed: Vec<Key> = (0..).map_while(|i| t.nth(i).map(|m| m.key)).collect();
    let udp500 = Key::new(Protocol::Udp, 500);
    assert_eq!(listed, vec![tcp(1000), tcp(2000), tcp(3000), udp500]);
    assert!(t.nth(4).is_none());
    // Enumerating an unchanged table reuses the vector; a refresh keeps it.
    let cached = t.order.as_ref().unwrap().as_ptr();
    assert_eq!(t.nth(2).unwrap().key, tcp(3000));
    add(&mut t, NOW + 1, 2000, 10).unwrap();
    assert_eq!(t.order.as_ref().map(|o| o.as_ptr()), Some(cached));
    // An addition or removal is seen at once.
    t.remove(NOW, None, &tcp(1000)).unwrap();
    assert!(t.order.is_none());
    assert_eq!(t.nth(0).unwrap().key, tcp(2000));
    add(&mut t, NOW, 1500, 10).unwrap();
    assert_eq!(t.nth(0).unwrap().key, tcp(1500));
    let listed: Vec<Key> = (0..).map_while(|i| t.nth(i).map(|m| m.key)).collect();
    assert_eq!(listed, vec![tcp(1500), tcp(2000), tcp(3000), udp500]);
    t.check_invariants();
}

#[test]
fn ranges_and_client_views() {
    let mut t = open_table();
    for (port, client) in [(1000, 10), (1001, 11), (1002, 10), (2000, 10)] {
        t.add(NOW, ip(1), req(port, client, port)).unwrap();
    }
    let ports = |it: &mut dyn Iterator<Item = &Mapping>| {
        it.map(|m| m.key.external_port).collect::<Vec<_>>()
    };
    assert_eq!(
        ports(&mut t.range(Protocol::Tcp, 1000, 1002)),
        vec![1000, 1001, 1002]
    );
    assert_eq!(
        ports(&mut t.range(Protocol::Tcp, 1002, 1000)),
        Vec::<u16>::new()
    );
    assert_eq!(
        ports(&mut t.range(Protocol::Udp, 0, 65535)),
        Vec::<u16>::new()
    );
    assert_eq!(
        ports(&mut t.client_range(ip(10), Protocol::Tcp, 1000, 1999)),
        vec![1000, 1002]
    );
    assert_eq!(
        ports(&mut t.client_range(ip(10), Protocol::Tcp, 9, 1)),
        Vec::<u16>::new()
    );
    assert_eq!(
        ports(&mut t.client_range(ip(99), Protocol::Tcp, 0, 65535)),
        Vec::<u16>::new()
    );
    assert_eq!(ports(&mut t.for_client(ip(10))), vec![1000, 1002, 2000]);
    assert_eq!(ports(&mut t.iter()), vec![1000, 1001, 1002, 2000]);
}

fn any_req(wanted: u16, client: u8) -> AddRequest {
    req(wanted, client, 4000)
}

#[test]
fn add_any_takes_the_wanted_port_when_free() {
    let mut t = table();
    let m = t.add_any(NOW, ip(10), any_req(5000, 10)).unwrap();
    assert_eq!(m.key.external_port, 5000);
    // Asking again is a refresh of the same port, not a second mapping.
    let m = t.add_any(NOW, ip(10), any_req(5000, 10)).unwrap();
    assert_eq!(m.key.external_port, 5000);
    assert_eq!(t.len(), 1);
}

#[test]
fn add_any_skips_held_ports_upward() {
    let mut t = table();
    for port in 5000..5003 {
        add(&mut t, NOW, port, 11).unwrap();
    }
    add(&mut t, NOW, 5004, 12).unwrap();
    let m = t.add_any(NOW, ip(10), any_req(5000, 10)).unwrap();
    assert_eq!(m.key.external_port, 5003);
    let m = t
        .add_any(NOW, ip(10), any_req(5001, 10))
        .unwrap()
        .key
        .external_port;
    assert_eq!(
        m, 5005,
        "5003 is 10's own now but another wanted port is a new mapping"
    );
    // Held by another mechanism: a different port instead of 729.
    let mut pmp = req(6000, 11, 6000);
    pmp.source = Source::NatPmp;
    t.add(NOW, ip(11), pmp).unwrap();
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(6000, 10))
            .unwrap()
            .key
            .external_port,
        6001
    );
    t.check_invariants();
}

#[test]
fn add_any_wraps_within_1024_and_up() {
    let mut t = table();
    add(&mut t, NOW, 65535, 11).unwrap();
    add(&mut t, NOW, 1024, 11).unwrap();
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(65535, 10))
            .unwrap()
            .key
            .external_port,
        1025
    );
    // A privileged port taken: never another privileged one.
    add(&mut t, NOW, 80, 11).unwrap();
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(80, 10))
            .unwrap()
            .key
            .external_port,
        1026
    );
    // A free privileged port is granted when asked for by number.
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(443, 10))
            .unwrap()
            .key
            .external_port,
        443
    );
    t.check_invariants();
}

#[test]
fn add_any_follows_the_rules_and_wraps_in_their_ranges() {
    let mut t = with_rules(&[
        "allow 1500-1502 192.168.1.0/24 0-65535",
        "allow 3000-3001 192.168.1.0/24 0-65535",
    ]);
    // Wanted port denied: the first allowed port above it.
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(2000, 10))
            .unwrap()
            .key
            .external_port,
        3000
    );
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(3000, 10))
            .unwrap()
            .key
            .external_port,
        3000
    );
    assert_eq!(
        t.add_any(NOW, ip(11), any_req(3001, 11))
            .unwrap()
            .key
            .external_port,
        3001
    );
    // Above 3001 nothing is allowed: wrap to 1500.
    assert_eq!(
        t.add_any(NOW, ip(12), any_req(3001, 12))
            .unwrap()
            .key
            .external_port,
        1500
    );
    assert_eq!(
        t.add_any(NOW, ip(12), any_req(1, 12))
            .unwrap()
            .key
            .external_port,
        1501
    );
    assert_eq!(
        t.add_any(NOW, ip(13), any_req(1502, 13))
            .unwrap()
            .key
            .external_port,
        1502
    );
    // All five allowed ports held: 728.
    assert_eq!(
        code(t.add_any(NOW, ip(14), any_req(1500, 14))),
        ErrorCode::NoPortMapsAvailable
    );
    // A client the rules allow nothing: 606.
    let mut outsider = any_req(1500, 1);
    outsider.internal_client = Ipv4Addr::new(10, 0, 0, 1);
    assert_eq!(
        code(t.add_any(NOW, Ipv4Addr::new(10, 0, 0, 1), outsider)),
        ErrorCode::ActionNotAuthorized
    );
    // Freeing one makes it available again.
    t.remove(NOW, None, &tcp(1501)).unwrap();
    assert_eq!(
        t.add_any(NOW, ip(14), any_req(3000, 14))
            .unwrap()
            .key
            .external_port,
        1501
    );
    t.check_invariants();
}

#[test]
fn add_any_skips_a_denied_range() {
    let mut t = with_rules(&[
        "deny 4001-4999 0.0.0.0/0 0-65535",
        "allow 0-65535 0.0.0.0/0 0-65535",
    ]);
    add(&mut t, NOW, 4000, 11).unwrap();
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(4000, 10))
            .unwrap()
            .key
            .external_port,
        5000
    );
    // Still the checks of add: secure mode, wildcards.
    assert_eq!(
        code(t.add_any(NOW, ip(10), any_req(6000, 11))),
        ErrorCode::ActionNotAuthorized
    );
    assert_eq!(
        code(t.add_any(NOW, ip(10), any_req(0, 10))),
        ErrorCode::WildCardNotPermittedInExtPort
    );
}

#[test]
fn add_any_exhaustion_of_the_whole_range_ends() {
    let limits = Limits {
        max_mappings: 70_000,
        max_per_host: 70_000,
        ..Limits::default()
    };
    let mut t = Table::new(limits, Policy::default());
    for port in ALLOCATION_FIRST_PORT..=u16::MAX {
        t.add(NOW, ip(11), req(port, 11, port)).unwrap();
    }
    assert_eq!(
        code(t.add_any(NOW, ip(10), any_req(30000, 10))),
        ErrorCode::NoPortMapsAvailable
    );
    // Privileged ports are only granted by number.
    assert_eq!(
        t.add_any(NOW, ip(10), any_req(22, 10))
            .unwrap()
            .key
            .external_port,
        22
    );
}

fn stored(port: u16, client: u8, expires_at: Option<u64>) -> Mapping {
    Mapping {
        key: tcp(port),
        internal_client: ip(client),
        internal_port: port,
        description: "restored".into(),
        enabled: true,
        lease_seconds: expires_at.map_or(0, |_| 3600),
        expires_at,
        created_at: NOW - 1000,
        source: Source::Pcp,
    }
}

#[test]
fn restore_keeps_deadline_and_goes_through_policy() {
    let mut t = with_rules(&[
        "deny 0-65535 192.168.1.66 0-65535",
        "allow 1024-65535 192.168.1.0/24 1024-65535",
    ]);
    let m = stored(2000, 10, Some(NOW + 500));
    let back = t.restore(NOW, m.clone()).unwrap().unwrap().clone();
    assert_eq!(back, m, "deadline, created_at and source kept");
    assert_eq!(drain(&mut t), vec![Change::Added(m)]);
    // Expired: dropped, nothing queued.
    assert_eq!(t.restore(NOW, stored(2001, 10, Some(NOW))).unwrap(), None);
    assert!(drain(&mut t).is_empty());
    // A host the rules now deny is refused, so is a port they deny.
    assert_eq!(
        code(t.restore(NOW, stored(2002, 66, Some(NOW + 10)))),
        ErrorCode::ActionNotAuthorized
    );
    assert_eq!(
        code(t.restore(NOW, stored(80, 10, None))),
        ErrorCode::ActionNotAuthorized
    );
    // The same checks as a request: conflicts, wildcards.
    assert_eq!(
        code(t.restore(NOW, stored(2000, 11, None))),
        ErrorCode::ConflictInMappingEntry
    );
    assert_eq!(
        code(t.restore(NOW, stored(0, 11, None))),
        ErrorCode::WildCardNotPermittedInExtPort
    );
    // Permanent stays permanent.
    let p = t.restore(NOW, stored(3000, 10, None)).unwrap().unwrap();
    assert_eq!((p.lease_seconds, p.expires_at), (0, None));
    t.check_invariants();
}

#[test]
fn restore_cuts_long_deadlines_and_respects_limits() {
    let limits = Limits {
        max_per_host: 1,
        max_lease: 1000,
        ..Limits::default()
    };
    let mut t = Table::new(limits, Policy::default());
    let mut m = stored(2000, 10, Some(NOW + 1_000_000));
    m.lease_seconds = 2_000_000;
    let back = t.restore(NOW, m).unwrap().unwrap();
    assert_eq!(
        (back.lease_seconds, back.expires_at),
        (1000, Some(NOW + 1000))
    );
    assert_eq!(
        code(t.restore(NOW, stored(2001, 10, None))),
        ErrorCode::NoPortMapsAvailable
    );
    t.check_invariants();
}

#[test]
fn remove_range_deletes_only_the_requesters_own() {
    let mut t = open_table();
    for (port, client) in [(1000, 10), (1001, 11), (1002, 10), (1003, 11), (2000, 10)] {
        t.add(NOW, ip(10), req(port, client, port)).unwrap();
    }
    let mut udp = req(1000, 10, 1000);
    udp.key.protocol = Protocol::Udp;
    t.add(NOW, ip(10), udp).unwrap();
    drain(&mut t);
    // Even with secure mode off, a requester deletes only its own (miniupnpd doesn't).
    let gone = t
        .remove_range(NOW, Some(ip(10)), Protocol::Tcp, 1000, 1999)
        .unwrap();
    let ports: Vec<u16> = gone.iter().map(|m| m.key.external_port).collect();
    assert_eq!(ports, vec![1000, 1002]);
    assert_eq!(drain(&mut t).len(), 2);
    assert_eq!(
        code(t.remove_range(NOW, Some(ip(10)), Protocol::Tcp, 1000, 1999)),
        ErrorCode::PortMappingNotFound
    );
    assert_eq!(
        code(t.remove_range(NOW, Some(ip(10)), Protocol::Tcp, 1999, 1000)),
        ErrorCode::InconsistentParameters
    );
    assert_eq!(t.count_for(ip(11)), 2);
    // An admin deletes everyone's in the range; the UDP one and 2000 stay.
    assert_eq!(
        t.remove_range(NOW, None, Protocol::Tcp, 0, 1999)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(t.len(), 2);
    assert_eq!(
        code(t.remove_range(NOW, None, Protocol::Tcp, 0, 1999)),
        ErrorCode::PortMappingNotFound
    );
    t.check_invariants();
}

#[test]
fn set_enabled_queues_only_real_changes() {
    let mut t = table();
    let old = add(&mut t, NOW, 80, 10).unwrap();
    drain(&mut t);
    let new = t.set_enabled(NOW, &tcp(80), false).unwrap().clone();
    assert!(!new.enabled);
    assert_eq!(drain(&mut t), vec![Change::Updated { old, new }]);
    assert!(!t.set_enabled(NOW, &tcp(80), false).unwrap().enabled);
    assert!(drain(&mut t).is_empty());
    assert_eq!(
        code(t.set_enabled(NOW, &tcp(81), true)),
        ErrorCode::NoSuchEntryInArray
    );
    t.check_invariants();
}

#[test]
fn refusal_sends_only_the_code() {
    let r = Refusal::new(ErrorCode::ConflictInMappingEntry, "held by 192.168.1.3");
    assert_eq!(
        r.to_string(),
        "718 ConflictInMappingEntry: held by 192.168.1.3"
    );
    let e = UpnpError::from(r);
    assert_eq!(
        (e.code, e.description.as_str()),
        (718, "ConflictInMappingEntry")
    );
}
