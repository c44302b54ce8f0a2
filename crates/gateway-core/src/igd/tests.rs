use igd_proto::actions::Protocol;

use super::*;
use crate::mapping::Change;
use crate::policy::Policy;
use crate::table::Limits;

const NOW: u64 = 1_700_000_000;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, last)
}

fn ctx(version: u8, requester: u8) -> Context {
    Context {
        requester: ip(requester),
        igd_version: version,
        external_ip: Some(Ipv4Addr::new(203, 0, 113, 5)),
        connection_status: "Connected",
        uptime_seconds: 42,
        now: NOW,
    }
}

fn at(mut c: Context, now: u64) -> Context {
    c.now = now;
    c
}

fn pm(port: u16, client: &str, lease: u32) -> PortMapping {
    PortMapping {
        remote_host: String::new(),
        external_port: port,
        protocol: Protocol::Tcp,
        internal_port: port,
        internal_client: client.to_owned(),
        enabled: true,
        description: "app".into(),
        lease_duration: lease,
    }
}

fn add(port: u16, client: &str, lease: u32) -> Action {
    Action::AddPortMapping(pm(port, client, lease))
}

fn table() -> Table {
    Table::new(Limits::default(), Policy::default())
}

fn err(r: Result<Response, UpnpError>) -> u16 {
    r.expect_err("expected a UPnP error").code
}

fn entry(r: Result<Response, UpnpError>) -> PortMapping {
    match r {
        Ok(Response::Entry(e)) => e,
        other => panic!("expected an entry, got {other:?}"),
    }
}

fn key(port: u16) -> Key {
    Key::new(Protocol::Tcp, port)
}

#[test]
fn leases_per_version() {
    let mut t = table();
    let v2 = ctx(2, 10);
    let v1 = ctx(1, 10);
    assert_eq!(
        handle(&mut t, &v2, &add(1000, "192.168.1.10", 0)),
        Ok(Response::Added)
    );
    assert_eq!(t.get(&key(1000)).unwrap().lease_seconds, 604_800);
    assert_eq!(t.get(&key(1000)).unwrap().expires_at, Some(NOW + 604_800));
    handle(&mut t, &v1, &add(1001, "192.168.1.10", 0)).unwrap();
    assert_eq!(
        t.get(&key(1001)).unwrap().expires_at,
        None,
        "IGD:1 0 is permanent"
    );
    handle(&mut t, &v2, &add(1002, "192.168.1.10", 10_000_000)).unwrap();
    assert_eq!(t.get(&key(1002)).unwrap().lease_seconds, 604_800, "clamped");
    handle(&mut t, &v1, &add(1003, "192.168.1.10", 10_000_000)).unwrap();
    assert_eq!(
        t.get(&key(1003)).unwrap().lease_seconds,
        604_800,
        "clamped in IGD:1 too"
    );
    // A lower configured maximum is what IGD:2 0 means.
    t.set_limits(Limits {
        max_lease: 3600,
        ..Limits::default()
    });
    handle(&mut t, &v2, &add(1004, "192.168.1.10", 0)).unwrap();
    assert_eq!(t.get(&key(1004)).unwrap().lease_seconds, 3600);
    // AddAnyPortMapping is IGD:2 whatever the description used.
    let any = Action::AddAnyPortMapping(pm(1005, "192.168.1.10", 0));
    handle(&mut t, &v1, &any).unwrap();
    assert_eq!(t.get(&key(1005)).unwrap().lease_seconds, 3600);
}

#[test]
fn reported_lease_counts_down() {
    let mut t = table();
    let c = ctx(2, 10);
    handle(&mut t, &c, &add(1000, "192.168.1.10", 3600)).unwrap();
    let e = entry(handle(
        &mut t,
        &at(c.clone(), NOW + 100),
        &Action::GetGenericPortMappingEntry { index: 0 },
    ));
    assert_eq!(e.lease_duration, 3500);
    let specific = Action::GetSpecificPortMappingEntry {
        remote_host: String::new(),
        external_port: 1000,
        protocol: Protocol::Tcp,
    };
    let e = entry(handle(&mut t, &at(c.clone(), NOW + 600), &specific));
    assert_eq!(e.lease_duration, 3000);
    assert_eq!(e.internal_client, "192.168.1.10");
    assert_eq!(e.description, "app");
    // At the deadline it is gone, and the removal is queued for the runtime.
    assert_eq!(err(handle(&mut t, &at(c, NOW + 3600), &specific)), 714);
    let changes: Vec<Change> = std::iter::from_fn(|| t.poll_change()).collect();
    assert!(matches!(changes.last(), Some(Change::Removed(m)) if m.key == key(1000)));
}

#[test]
fn remote_host_must_be_the_wildcard() {
    let mut t = table();
    let c = ctx(2, 10);
    let mut p = pm(1000, "192.168.1.10", 0);
    p.remote_host = "198.51.100.1".into();
    assert_eq!(
        err(handle(&mut t, &c, &Action::AddPortMapping(p.clone()))),
        726
    );
    assert_eq!(err(handle(&mut t, &c, &Action::AddAnyPortMapping(p))), 726);
    handle(&mut t, &c, &add(1000, "192.168.1.10", 0)).unwrap();
    let delete = Action::DeletePortMapping {
        remote_host: "198.51.100.1".into(),
        external_port: 1000,
        protocol: Protocol::Tcp,
    };
    assert_eq!(err(handle(&mut t, &c, &delete)), 726);
    let get = Action::GetSpecificPortMappingEntry {
        remote_host: "198.51.100.1".into(),
        external_port: 1000,
        protocol: Protocol::Tcp,
    };
    assert_eq!(err(handle(&mut t, &c, &get)), 726);
    assert_eq!(t.len(), 1);
}

#[test]
fn internal_client_must_be_an_ipv4_literal() {
    let mut t = table();
    let c = ctx(2, 10);
    for bad in [
        "",
        "printer.lan",
        "localhost",
        "192.168.1",
        "192.168.1.010",
        "::1",
        "192.168.1.10:80",
    ] {
        assert_eq!(err(handle(&mut t, &c, &add(1000, bad, 0))), 402, "{bad:?}");
    }
    assert!(handle(&mut t, &c, &add(1000, " 192.168.1.10 ", 0)).is_ok());
}

#[test]
fn authorisation_codes_per_version() {
    let mut t = table();
    // 10 asks for 11 (secure mode): IGD:2 606, IGD:1 718.
    assert_eq!(
        err(handle(&mut t, &ctx(2, 10), &add(1000, "192.168.1.11", 0))),
        606
    );
    assert_eq!(
        err(handle(&mut t, &ctx(1, 10), &add(1000, "192.168.1.11", 0))),
        718
    );
    handle(&mut t, &ctx(2, 11), &add(1000, "192.168.1.11", 0)).unwrap();
    let delete = Action::DeletePortMapping {
        remote_host: String::new(),
        external_port: 1000,
        protocol: Protocol::Tcp,
    };
    assert_eq!(err(handle(&mut t, &ctx(2, 10), &delete)), 606);
    assert_eq!(err(handle(&mut t, &ctx(1, 10), &delete)), 718);
    // Another client wanting the same port: 718 in both.
    assert_eq!(
        err(handle(&mut t, &ctx(2, 10), &add(1000, "192.168.1.10", 0))),
        718
    );
    // Held by NAT-PMP: 729 in IGD:2, 718 in IGD:1.
    let pmp = AddRequest {
        key: key(2000),
        internal_client: ip(12),
        internal_port: 2000,
        description: String::new(),
        enabled: true,
        lease_seconds: 100,
        source: Source::NatPmp,
    };
    t.add(NOW, ip(12), pmp).unwrap();
    assert_eq!(
        err(handle(&mut t, &ctx(2, 12), &add(2000, "192.168.1.12", 0))),
        729
    );
    assert_eq!(
        err(handle(&mut t, &ctx(1, 12), &add(2000, "192.168.1.12", 0))),
        718
    );
    // The owner deletes through IGD:1 too; the error text names only the code.
    assert_eq!(handle(&mut t, &ctx(1, 11), &delete), Ok(Response::Deleted));
    let e = handle(&mut t, &ctx(1, 11), &delete).unwrap_err();
    assert_eq!(
        (e.code, e.description.as_str()),
        (714, "NoSuchEntryInArray")
    );
}

#[test]
fn refusals_of_add_reach_the_client() {
    let mut t = table();
    let c = ctx(2, 10);
    assert_eq!(err(handle(&mut t, &c, &add(0, "192.168.1.10", 0))), 716);
    let mut p = pm(1000, "192.168.1.10", 0);
    p.internal_port = 0;
    assert_eq!(err(handle(&mut t, &c, &Action::AddPortMapping(p))), 732);
    let mut p = pm(1000, "192.168.1.10", 0);
    p.description = "d".repeat(257);
    assert_eq!(err(handle(&mut t, &c, &Action::AddPortMapping(p))), 605);
    t.set_limits(Limits {
        max_per_host: 1,
        ..Limits::default()
    });
    handle(&mut t, &c, &add(1000, "192.168.1.10", 0)).unwrap();
    assert_eq!(err(handle(&mut t, &c, &add(1001, "192.168.1.10", 0))), 728);
    // Refreshing the same mapping is not a new one.
    assert_eq!(
        handle(&mut t, &c, &add(1000, "192.168.1.10", 60)),
        Ok(Response::Added)
    );
}

#[test]
fn delete_missing_is_714_not_200() {
    let mut t = table();
    let delete = Action::DeletePortMapping {
        remote_host: String::new(),
        external_port: 80,
        protocol: Protocol::Udp,
    };
    assert_eq!(err(handle(&mut t, &ctx(2, 10), &delete)), 714);
    assert_eq!(err(handle(&mut t, &ctx(1, 10), &delete)), 714);
}

#[test]
fn generic_enumeration_ends_with_713() {
    let mut t = table();
    let c = ctx(2, 10);
    for port in [3000, 1000, 2000] {
        handle(&mut t, &c, &add(port, "192.168.1.10", 0)).unwrap();
    }
    let ports: Vec<u16> = (0..3)
        .map(|index| {
            entry(handle(
                &mut t,
                &c,
                &Action::GetGenericPortMappingEntry { index },
            ))
            .external_port
        })
        .collect();
    assert_eq!(ports, vec![1000, 2000, 3000]);
    for index in [3, u32::MAX] {
        assert_eq!(
            err(handle(
                &mut t,
                &c,
                &Action::GetGenericPortMappingEntry { index }
            )),
            713
        );
    }
}

#[test]
fn add_any_reports_the_reserved_port() {
    let mut t = table();
    let any = |client: &str| Action::AddAnyPortMapping(pm(5000, client, 0));
    assert_eq!(
        handle(&mut t, &ctx(2, 10), &any("192.168.1.10")),
        Ok(Response::AnyAdded {
            reserved_port: 5000
        })
    );
    assert_eq!(
        handle(&mut t, &ctx(2, 11), &any("192.168.1.11")),
        Ok(Response::AnyAdded {
            reserved_port: 5001
        })
    );
    assert_eq!(err(handle(&mut t, &ctx(2, 11), &any("192.168.1.12"))), 606);
    assert_eq!(err(handle(&mut t, &ctx(2, 11), &any("not-an-ip"))), 402);
}

fn range(start: u16, end: u16, manage: bool) -> Action {
    Action::DeletePortMappingRange {
        start_port: start,
        end_port: end,
        protocol: Protocol::Tcp,
        manage,
    }
}

#[test]
fn delete_range_manage_and_ownership() {
    let mut t = table();
    for (port, client) in [(1000, 10), (1001, 11), (1002, 10)] {
        let c = ctx(2, client);
        handle(&mut t, &c, &add(port, &ip(client).to_string(), 0)).unwrap();
    }
    assert_eq!(
        err(handle(&mut t, &ctx(2, 10), &range(0, 65535, true))),
        606
    );
    assert_eq!(
        err(handle(&mut t, &ctx(2, 10), &range(2000, 1000, false))),
        733
    );
    assert_eq!(
        handle(&mut t, &ctx(2, 10), &range(0, 65535, false)),
        Ok(Response::DeletedRange)
    );
    assert_eq!(t.len(), 1, "11's mapping survives");
    assert_eq!(
        err(handle(&mut t, &ctx(2, 10), &range(0, 65535, false))),
        730
    );
}

fn list(start: u16, end: u16, manage: bool, n: u16) -> Action {
    Action::GetListOfPortMappings {
        start_port: start,
        end_port: end,
        protocol: Protocol::Tcp,
        manage,
        number_of_ports: n,
    }
}

fn listed(r: Result<Response, UpnpError>) -> Vec<(u16, String, u32)> {
    match r {
        Ok(Response::List(entries)) => entries
            .into_iter()
            .map(|e| (e.external_port, e.internal_client, e.lease_duration))
            .collect(),
        other => panic!("expected a list, got {other:?}"),
    }
}

#[test]
fn list_filters_by_owner_range_and_count() {
    let mut t = table();
    for (port, client) in [(1000, 10), (1001, 11), (1002, 10), (3000, 10)] {
        handle(
            &mut t,
            &ctx(2, client),
            &add(port, &ip(client).to_string(), 600),
        )
        .unwrap();
    }
    let c = at(ctx(2, 10), NOW + 100);
    let own = listed(handle(&mut t, &c, &list(1000, 2000, false, 0)));
    assert_eq!(
        own,
        vec![
            (1000, "192.168.1.10".into(), 500),
            (1002, "192.168.1.10".into(), 500)
        ]
    );
    let all: Vec<u16> = listed(handle(&mut t, &c, &list(0, 65535, true, 0)))
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(all, vec![1000, 1001, 1002, 3000]);
    let two: Vec<u16> = listed(handle(&mut t, &c, &list(0, 65535, true, 2)))
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(two, vec![1000, 1001]);
    assert_eq!(err(handle(&mut t, &c, &list(2000, 1000, false, 0))), 733);
    assert_eq!(err(handle(&mut t, &c, &list(4000, 5000, true, 0))), 730);
    assert_eq!(
        err(handle(&mut t, &ctx(2, 12), &list(0, 65535, false, 0))),
        730
    );
    let mut udp = list(0, 65535, true, 0);
    if let Action::GetListOfPortMappings { protocol, .. } = &mut udp {
        *protocol = Protocol::Udp;
    }
    assert_eq!(err(handle(&mut t, &c, &udp)), 730);
}

#[test]
fn list_of_everything_is_capped() {
    let mut t = Table::new(
        Limits {
            max_per_host: 2000,
            ..Limits::default()
        },
        Policy::default(),
    );
    let c = ctx(2, 10);
    for port in 1..=1200 {
        handle(&mut t, &c, &add(port, "192.168.1.10", 0)).unwrap();
    }
    assert_eq!(
        listed(handle(&mut t, &c, &list(0, 65535, false, 0))).len(),
        MAX_LIST_ENTRIES
    );
    assert_eq!(
        listed(handle(&mut t, &c, &list(0, 65535, true, 5000))).len(),
        MAX_LIST_ENTRIES
    );
}

#[test]
fn read_only_actions() {
    let mut t = table();
    let mut c = ctx(2, 10);
    assert_eq!(
        handle(&mut t, &c, &Action::GetExternalIPAddress),
        Ok(Response::ExternalIp("203.0.113.5".into()))
    );
    c.external_ip = None;
    assert_eq!(
        handle(&mut t, &c, &Action::GetExternalIPAddress),
        Ok(Response::ExternalIp(String::new()))
    );
    assert_eq!(
        handle(&mut t, &c, &Action::GetStatusInfo),
        Ok(Response::StatusInfo(StatusInfo {
            connection_status: "Connected".into(),
            last_connection_error: "ERROR_NONE".into(),
            uptime_seconds: 42,
        }))
    );
    assert_eq!(
        handle(&mut t, &c, &Action::GetConnectionTypeInfo),
        Ok(Response::ConnectionTypeInfo(ConnectionTypeInfo {
            connection_type: "IP_Routed".into(),
            possible_connection_types: "IP_Routed".into(),
        }))
    );
    assert_eq!(
        handle(&mut t, &c, &Action::GetNATRSIPStatus),
        Ok(Response::NatRsipStatus(NatRsipStatus {
            rsip_available: false,
            nat_enabled: true,
        }))
    );
    assert!(t.poll_change().is_none());
}

#[test]
fn execute_keeps_the_log_message() {
    let mut t = table();
    let r = execute(&mut t, &ctx(1, 10), &add(1000, "192.168.1.11", 0)).unwrap_err();
    assert_eq!(r.code, ErrorCode::ConflictInMappingEntry);
    assert!(r.message.contains("secure mode"), "{}", r.message);
}
