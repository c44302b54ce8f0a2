//! The client against scripted routers on loopback: every description shape and every answer
//! that real routers give and that we cannot run here.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use igd_proto::urn;
use portmap::{ClientConfig, Error, Gateway, KeeperEvent, MappingKeeper, MappingRequest, Protocol};
use support::{arg_of, description, FakeIgd, Reply};

fn ok() -> Reply {
    Reply::Ok(vec![])
}

fn external_ip() -> Reply {
    Reply::Ok(vec![("NewExternalIPAddress", "198.51.100.7".into())])
}

/// A handler that accepts additions and answers the usual read actions.
fn friendly(call: &igd_proto::soap::SoapCall) -> Reply {
    match call.action.as_str() {
        "GetExternalIPAddress" => external_ip(),
        "GetSpecificPortMappingEntry" => Reply::Fault(714),
        _ => ok(),
    }
}

async fn gateway(fake: &FakeIgd) -> Gateway {
    Gateway::from_url(&fake.url(), ClientConfig::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn wanppp_only_gateway_is_used() {
    let fake = FakeIgd::start(
        &description(1, urn::WAN_PPP_CONNECTION_1, "/ctl/PPP"),
        friendly,
    )
    .await;
    let gw = gateway(&fake).await;
    assert_eq!(gw.connection().service_type, urn::WAN_PPP_CONNECTION_1);
    assert!(gw.connection().control_url.as_str().ends_with("/ctl/PPP"));
    assert_eq!(
        gw.external_ip().await.unwrap(),
        Some("198.51.100.7".parse().unwrap())
    );
    let call = &fake.calls()[0];
    assert_eq!(call.service_type, urn::WAN_PPP_CONNECTION_1);
}

#[tokio::test]
async fn igd2_prefers_wanipconnection2_and_uses_add_any() {
    let fake = FakeIgd::start(
        &description(2, urn::WAN_IP_CONNECTION_2, "/ctl/IPConn"),
        |call| match call.action.as_str() {
            "AddAnyPortMapping" => Reply::Ok(vec![("NewReservedPort", "40001".into())]),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    assert!(gw.is_igd2());
    let mut req = MappingRequest::new(Protocol::Udp, 5060);
    req.any_port = true;
    let m = gw.add(&req).await.unwrap();
    assert_eq!(m.external_port, 40001);
    assert_eq!(m.external_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(m.internal_client, "127.0.0.1");
    assert!(fake.actions().contains(&"AddAnyPortMapping".to_string()));
    assert!(!fake.actions().contains(&"AddPortMapping".to_string()));
}

fn friendly_named(action: &str) -> Reply {
    match action {
        "GetExternalIPAddress" => external_ip(),
        "GetSpecificPortMappingEntry" => Reply::Fault(714),
        _ => ok(),
    }
}

#[tokio::test]
async fn igd1_conflict_moves_to_the_next_port_with_any() {
    let fake = FakeIgd::start(
        &description(1, urn::WAN_IP_CONNECTION_1, "/ctl/IPConn"),
        |call| match call.action.as_str() {
            "AddPortMapping" if arg_of(call, "NewExternalPort") != "5062" => Reply::Fault(718),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let mut req = MappingRequest::new(Protocol::Tcp, 5060);
    req.any_port = true;
    let m = gw.add(&req).await.unwrap();
    assert_eq!(m.external_port, 5062);
    let ports: Vec<String> = fake
        .calls()
        .iter()
        .filter(|c| c.action == "AddPortMapping")
        .map(|c| arg_of(c, "NewExternalPort"))
        .collect();
    assert_eq!(ports, ["5060", "5061", "5062"]);
}

#[tokio::test]
async fn conflict_without_any_is_reported_with_code_and_name() {
    let fake = FakeIgd::start(
        &description(1, urn::WAN_IP_CONNECTION_1, "/ctl/IPConn"),
        |call| match call.action.as_str() {
            "AddPortMapping" => Reply::Fault(718),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let err = gw
        .add(&MappingRequest::new(Protocol::Tcp, 5060))
        .await
        .unwrap_err();
    assert_eq!(err.upnp_code(), Some(718));
    assert_eq!(
        err.to_string(),
        "AddPortMapping: error 718 ConflictInMappingEntry"
    );
}

#[tokio::test]
async fn only_permanent_leases_retries_with_zero() {
    let fake = FakeIgd::start(
        &description(1, urn::WAN_IP_CONNECTION_1, "/ctl/IPConn"),
        |call| match call.action.as_str() {
            "AddPortMapping" if arg_of(call, "NewLeaseDuration") != "0" => Reply::Fault(725),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let m = gw
        .add(&MappingRequest::new(Protocol::Udp, 5060))
        .await
        .unwrap();
    assert_eq!(m.lease_seconds, 0);
    let leases: Vec<String> = fake
        .calls()
        .iter()
        .filter(|c| c.action == "AddPortMapping")
        .map(|c| arg_of(c, "NewLeaseDuration"))
        .collect();
    assert_eq!(leases, ["3600", "0"]);
}

#[tokio::test]
async fn long_leases_are_clamped_and_every_argument_escaped() {
    let fake = FakeIgd::start(
        &description(2, urn::WAN_IP_CONNECTION_2, "/ctl/IPConn"),
        friendly,
    )
    .await;
    let gw = gateway(&fake).await;
    let mut req = MappingRequest::new(Protocol::Udp, 5060);
    req.lease_seconds = 10_000_000;
    req.description = "a<b>&\"c\" ]]> 'd'".into();
    req.internal_client = Some("127.0.0.1".parse().unwrap());
    gw.add(&req).await.unwrap();
    let add = fake
        .calls()
        .into_iter()
        .find(|c| c.action == "AddPortMapping")
        .unwrap();
    assert_eq!(arg_of(&add, "NewLeaseDuration"), "604800");
    assert_eq!(
        arg_of(&add, "NewPortMappingDescription"),
        "a<b>&\"c\" ]]> 'd'"
    );
    assert_eq!(arg_of(&add, "NewInternalClient"), "127.0.0.1");
    assert_eq!(arg_of(&add, "NewProtocol"), "UDP");
    assert_eq!(arg_of(&add, "NewEnabled"), "1");
}

#[tokio::test]
async fn granted_lease_is_read_back_from_the_gateway() {
    let fake = FakeIgd::start(
        &description(2, urn::WAN_IP_CONNECTION_2, "/ctl/IPConn"),
        |call| match call.action.as_str() {
            "GetSpecificPortMappingEntry" => Reply::Ok(vec![
                ("NewInternalPort", "5060".into()),
                ("NewInternalClient", "192.168.0.91".into()),
                ("NewEnabled", "1".into()),
                ("NewPortMappingDescription", "granted".into()),
                ("NewLeaseDuration", "1200".into()),
            ]),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let m = gw
        .add(&MappingRequest::new(Protocol::Udp, 5060))
        .await
        .unwrap();
    assert_eq!(m.lease_seconds, 1200);
    assert_eq!(m.description, "granted");
}

#[tokio::test]
async fn url_base_and_deep_nesting_resolve_the_control_url() {
    let desc = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<URLBase>{base}/base/</URLBase>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>Deep</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName><UDN>uuid:1</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:Vendor:1</deviceType><friendlyName>v</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName><UDN>uuid:2</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><friendlyName>w</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName><UDN>uuid:3</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><friendlyName>c</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName><UDN>uuid:4</UDN>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>scpd.xml</SCPDURL><controlURL>ctl/ip</controlURL><eventSubURL>evt/ip</eventSubURL></service></serviceList>
</device></deviceList></device></deviceList></device></deviceList></device></root>"#;
    let fake = FakeIgd::start(desc, friendly).await;
    let gw = gateway(&fake).await;
    assert_eq!(
        gw.connection().control_url.as_str(),
        format!("http://{}/base/ctl/ip", fake.addr)
    );
    assert_eq!(gw.info(None).friendly_name, "Deep");
    gw.external_ip().await.unwrap();
}

#[tokio::test]
async fn list_enumerates_generic_entries_until_713() {
    let fake = FakeIgd::start(
        &description(1, urn::WAN_IP_CONNECTION_1, "/ctl/IPConn"),
        |call| match call.action.as_str() {
            "GetGenericPortMappingEntry" => {
                let i: u16 = arg_of(call, "NewPortMappingIndex").parse().unwrap();
                if i < 3 {
                    Reply::Ok(vec![
                        ("NewRemoteHost", String::new()),
                        ("NewExternalPort", (6000 + i).to_string()),
                        ("NewProtocol", "UDP".into()),
                        ("NewInternalPort", "5060".into()),
                        ("NewInternalClient", "192.168.0.91".into()),
                        ("NewEnabled", "1".into()),
                        ("NewPortMappingDescription", format!("m{i}")),
                        ("NewLeaseDuration", "100".into()),
                    ])
                } else {
                    Reply::Fault(713)
                }
            }
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let list = gw.mappings().await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2].external_port, 6002);
    assert_eq!(list[1].description, "m1");
    assert_eq!(list[0].external_ip.as_deref(), Some("198.51.100.7"));
}

#[tokio::test]
async fn delete_of_a_missing_mapping_reports_714() {
    let fake = FakeIgd::start(
        &description(2, urn::WAN_IP_CONNECTION_2, "/c"),
        |call| match call.action.as_str() {
            "DeletePortMapping" => Reply::Fault(714),
            other => friendly_named(other),
        },
    )
    .await;
    let err = gateway(&fake)
        .await
        .delete(Protocol::Udp, 1)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "DeletePortMapping: error 714 NoSuchEntryInArray"
    );
}

#[tokio::test]
async fn control_url_on_another_host_is_refused() {
    let desc = description(2, urn::WAN_IP_CONNECTION_2, "http://192.0.2.55/ctl");
    let fake = FakeIgd::start(&desc, friendly).await;
    let err = Gateway::from_url(&fake.url(), ClientConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeUrl { .. }), "{err}");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn description_with_a_dtd_is_refused() {
    let desc = description(2, urn::WAN_IP_CONNECTION_2, "/c").replace(
        "<?xml version=\"1.0\"?>",
        "<?xml version=\"1.0\"?><!DOCTYPE root [<!ENTITY x \"y\">]>",
    );
    let fake = FakeIgd::start(&desc, friendly).await;
    let err = Gateway::from_url(&fake.url(), ClientConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Description { .. }), "{err}");
}

#[tokio::test]
async fn oversized_answers_are_cut_off() {
    let fake = FakeIgd::start(&description(2, urn::WAN_IP_CONNECTION_2, "/c"), |_| {
        let big = vec![b'x'; igd_proto::soap::MAX_SOAP_LEN + 10];
        Reply::Raw(support::http(200, &big))
    })
    .await;
    let err = gateway(&fake).await.external_ip().await.unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[tokio::test]
async fn a_silent_gateway_times_out() {
    let fake = FakeIgd::start(&description(2, urn::WAN_IP_CONNECTION_2, "/c"), |_| {
        Reply::Hang
    })
    .await;
    let config = ClientConfig {
        http_timeout: Duration::from_millis(200),
    };
    let gw = Gateway::from_url(&fake.url(), config).await.unwrap();
    let err = gw.external_ip().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn keeper_renews_and_reports_loss() {
    let adds = Arc::new(AtomicU32::new(0));
    let fail_after = 2;
    let counter = adds.clone();
    let fake = FakeIgd::start(
        &description(2, urn::WAN_IP_CONNECTION_2, "/c"),
        move |call| match call.action.as_str() {
            "AddPortMapping" => {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if n > fail_after {
                    Reply::Fault(501)
                } else {
                    ok()
                }
            }
            "GetSpecificPortMappingEntry" => Reply::Ok(vec![
                ("NewInternalPort", "5060".into()),
                ("NewInternalClient", "127.0.0.1".into()),
                ("NewEnabled", "1".into()),
                ("NewPortMappingDescription", "k".into()),
                ("NewLeaseDuration", "2".into()),
            ]),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let mut req = MappingRequest::new(Protocol::Udp, 5060);
    req.lease_seconds = 2;
    let (keeper, mut events) = MappingKeeper::start(gw, req).await.unwrap();
    assert_eq!(keeper.mapping().lease_seconds, 2);
    // Renewal half-way through a 2 s lease, i.e. after ~1 s.
    let first = tokio::time::timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap();
    assert!(matches!(first, Some(KeeperEvent::Renewed(_))), "{first:?}");
    let second = tokio::time::timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap();
    assert!(
        matches!(second, Some(KeeperEvent::Lost { .. })),
        "{second:?}"
    );
    keeper.stop().await.unwrap();
    assert_eq!(
        fake.actions().last().map(String::as_str),
        Some("DeletePortMapping")
    );
}

#[tokio::test]
async fn igd2_list_range_delete_range_and_read_actions() {
    let fake = FakeIgd::start(
        &description(2, urn::WAN_IP_CONNECTION_2, "/c"),
        |call| match call.action.as_str() {
            "GetListOfPortMappings" => {
                assert_eq!(arg_of(call, "NewStartPort"), "1024");
                assert_eq!(arg_of(call, "NewEndPort"), "65535");
                assert_eq!(arg_of(call, "NewManage"), "0");
                let entries = vec![igd_proto::actions::PortMapping {
                    remote_host: String::new(),
                    external_port: 40000,
                    protocol: Protocol::Udp,
                    internal_port: 5060,
                    internal_client: "192.168.0.91".into(),
                    enabled: true,
                    description: "a & b".into(),
                    lease_duration: 100,
                }];
                Reply::Ok(vec![(
                    "NewPortListing",
                    igd_proto::actions::build_port_mapping_list(&entries),
                )])
            }
            "DeletePortMappingRange" if arg_of(call, "NewStartPort") == "2000" => Reply::Fault(730),
            "DeletePortMappingRange" => ok(),
            "GetConnectionTypeInfo" => Reply::Ok(vec![
                ("NewConnectionType", "IP_Routed".into()),
                ("NewPossibleConnectionTypes", "IP_Routed".into()),
            ]),
            "GetNATRSIPStatus" => Reply::Ok(vec![
                ("NewRSIPAvailable", "0".into()),
                ("NewNATEnabled", "1".into()),
            ]),
            other => friendly_named(other),
        },
    )
    .await;
    let gw = gateway(&fake).await;
    let list = gw
        .list_range(Protocol::Udp, 1024, 65535, 100)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].description, "a & b");
    gw.delete_range(Protocol::Udp, 40000, 40010, false)
        .await
        .unwrap();
    let err = gw
        .delete_range(Protocol::Udp, 2000, 2010, false)
        .await
        .unwrap_err();
    assert_eq!(err.upnp_code(), Some(730));
    assert!(matches!(
        gw.delete_range(Protocol::Udp, 9, 1, false).await,
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(
        gw.connection_type_info().await.unwrap().connection_type,
        "IP_Routed"
    );
    let rsip = gw.nat_rsip_status().await.unwrap();
    assert!(rsip.nat_enabled && !rsip.rsip_available);
}
