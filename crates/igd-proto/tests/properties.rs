//! Property tests: every builder round-trips through its parser, and no parser panics
//! (or accepts a DTD) on arbitrary input.

use igd_proto::actions::{build_port_mapping_list, parse_port_mapping_list};
use igd_proto::{description, soap, urn, Action, PortMapping, Protocol, Response};
use proptest::prelude::*;

/// Text an XML 1.0 document can carry: printable characters of any script, XML
/// specials and CDATA terminators, and ordinary whitespace (C0 controls other than
/// tab and newline cannot be represented in XML 1.0 at all, escaped or not).
fn xml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        proptest::collection::vec(
            prop_oneof![
                Just("<".to_owned()),
                Just(">".to_owned()),
                Just("&".to_owned()),
                Just("\"".to_owned()),
                Just("'".to_owned()),
                Just("]]>".to_owned()),
                Just("<![CDATA[".to_owned()),
                Just("&amp;".to_owned()),
                Just("&#x41;".to_owned()),
                Just(" ".to_owned()),
                Just("\t".to_owned()),
                Just("\n".to_owned()),
                "\\PC{0,5}",
            ],
            0..12
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn arg_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,20}"
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]
}

/// Host and client fields are trimmed by the parsers (they are addresses), so generate
/// them without surrounding whitespace.
fn trimmed_text() -> impl Strategy<Value = String> {
    xml_text().prop_map(|s| s.trim().to_owned())
}

fn mapping() -> impl Strategy<Value = PortMapping> {
    (
        trimmed_text(),
        any::<u16>(),
        protocol(),
        any::<u16>(),
        trimmed_text(),
        any::<bool>(),
        xml_text(),
        any::<u32>(),
    )
        .prop_map(
            |(
                remote_host,
                external_port,
                protocol,
                internal_port,
                internal_client,
                enabled,
                description,
                lease_duration,
            )| {
                PortMapping {
                    remote_host,
                    external_port,
                    protocol,
                    internal_port,
                    internal_client,
                    enabled,
                    description,
                    lease_duration,
                }
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::GetExternalIPAddress),
        Just(Action::GetStatusInfo),
        Just(Action::GetConnectionTypeInfo),
        Just(Action::GetNATRSIPStatus),
        mapping().prop_map(Action::AddPortMapping),
        mapping().prop_map(Action::AddAnyPortMapping),
        (trimmed_text(), any::<u16>(), protocol()).prop_map(
            |(remote_host, external_port, protocol)| {
                Action::DeletePortMapping {
                    remote_host,
                    external_port,
                    protocol,
                }
            }
        ),
        (any::<u16>(), any::<u16>(), protocol(), any::<bool>()).prop_map(
            |(start_port, end_port, protocol, manage)| Action::DeletePortMappingRange {
                start_port,
                end_port,
                protocol,
                manage
            }
        ),
        any::<u32>().prop_map(|index| Action::GetGenericPortMappingEntry { index }),
        (trimmed_text(), any::<u16>(), protocol()).prop_map(
            |(remote_host, external_port, protocol)| {
                Action::GetSpecificPortMappingEntry {
                    remote_host,
                    external_port,
                    protocol,
                }
            }
        ),
        (
            any::<u16>(),
            any::<u16>(),
            protocol(),
            any::<bool>(),
            any::<u16>()
        )
            .prop_map(
                |(start_port, end_port, protocol, manage, number_of_ports)| {
                    Action::GetListOfPortMappings {
                        start_port,
                        end_port,
                        protocol,
                        manage,
                        number_of_ports,
                    }
                }
            ),
    ]
}

/// A response that fits `action` (for a specific entry, with the request's key).
fn response_for(action: &Action) -> BoxedStrategy<Response> {
    match action.clone() {
        Action::GetExternalIPAddress => trimmed_text().prop_map(Response::ExternalIp).boxed(),
        Action::GetStatusInfo => (trimmed_text(), trimmed_text(), any::<u32>())
            .prop_map(
                |(connection_status, last_connection_error, uptime_seconds)| {
                    Response::StatusInfo(igd_proto::StatusInfo {
                        connection_status,
                        last_connection_error,
                        uptime_seconds,
                    })
                },
            )
            .boxed(),
        Action::GetConnectionTypeInfo => (trimmed_text(), trimmed_text())
            .prop_map(|(connection_type, possible_connection_types)| {
                Response::ConnectionTypeInfo(igd_proto::ConnectionTypeInfo {
                    connection_type,
                    possible_connection_types,
                })
            })
            .boxed(),
        Action::GetNATRSIPStatus => (any::<bool>(), any::<bool>())
            .prop_map(|(rsip_available, nat_enabled)| {
                Response::NatRsipStatus(igd_proto::NatRsipStatus {
                    rsip_available,
                    nat_enabled,
                })
            })
            .boxed(),
        Action::AddPortMapping(_) => Just(Response::Added).boxed(),
        Action::AddAnyPortMapping(_) => any::<u16>()
            .prop_map(|reserved_port| Response::AnyAdded { reserved_port })
            .boxed(),
        Action::DeletePortMapping { .. } => Just(Response::Deleted).boxed(),
        Action::DeletePortMappingRange { .. } => Just(Response::DeletedRange).boxed(),
        Action::GetGenericPortMappingEntry { .. } => mapping().prop_map(Response::Entry).boxed(),
        Action::GetSpecificPortMappingEntry {
            remote_host,
            external_port,
            protocol,
        } => mapping()
            .prop_map(move |m| {
                Response::Entry(PortMapping {
                    remote_host: remote_host.clone(),
                    external_port,
                    protocol,
                    ..m
                })
            })
            .boxed(),
        Action::GetListOfPortMappings { .. } => proptest::collection::vec(mapping(), 0..5)
            .prop_map(Response::List)
            .boxed(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_round_trips(
        service_type in "urn:[a-z:-]{1,20}:[A-Za-z]{1,10}:[0-9]",
        action in "[A-Za-z][A-Za-z0-9]{0,20}",
        args in proptest::collection::vec((arg_name(), xml_text()), 0..8),
    ) {
        let borrowed: Vec<(&str, &str)> = args.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let request = soap::build_request(&service_type, &action, &borrowed);
        let call = soap::parse_request(&request.body).unwrap();
        prop_assert_eq!(&call.service_type, &service_type);
        prop_assert_eq!(&call.action, &action);
        prop_assert_eq!(&call.args, &args);
        prop_assert_eq!(
            soap::parse_soap_action(&request.soap_action),
            Some((service_type.as_str(), action.as_str()))
        );
    }

    #[test]
    fn service_type_with_specials_round_trips(service_type in xml_text().prop_filter("non-empty", |s| !s.is_empty())) {
        let request = soap::build_request(&service_type, "A", &[]);
        let call = soap::parse_request(&request.body).unwrap();
        prop_assert_eq!(call.service_type, service_type);
    }

    #[test]
    fn response_round_trips(
        action in "[A-Za-z][A-Za-z0-9]{0,20}",
        args in proptest::collection::vec((arg_name(), xml_text()), 0..8),
    ) {
        let borrowed: Vec<(&str, &str)> = args.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let body = soap::build_response(urn::WAN_IP_CONNECTION_2, &action, &borrowed);
        prop_assert_eq!(soap::parse_response(&body, &action).unwrap(), args);
    }

    #[test]
    fn fault_round_trips(code in any::<u16>(), description in xml_text()) {
        let body = soap::build_fault(code, &description);
        match soap::parse_response(&body, "AddPortMapping") {
            Err(soap::SoapError::Upnp(e)) => {
                prop_assert_eq!(e.code, code);
                prop_assert_eq!(e.description, description.trim());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn typed_actions_round_trip((action, response) in action().prop_flat_map(|a| {
        let r = response_for(&a);
        (Just(a), r)
    })) {
        let request = action.request(urn::WAN_IP_CONNECTION_2);
        let call = soap::parse_request(&request.body).unwrap();
        prop_assert_eq!(Action::from_call(&call).unwrap(), action.clone());
        let body = action.build_response(urn::WAN_IP_CONNECTION_2, &response);
        prop_assert_eq!(action.parse_response(&body).unwrap(), response);
    }

    #[test]
    fn port_mapping_list_round_trips(entries in proptest::collection::vec(mapping(), 0..8)) {
        let doc = build_port_mapping_list(&entries);
        prop_assert_eq!(parse_port_mapping_list(&doc).unwrap(), entries);
    }

    #[test]
    fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = description::parse(&bytes);
        let _ = soap::parse_response(&bytes, "AddPortMapping");
        let _ = soap::parse_request(&bytes);
        let _ = parse_port_mapping_list(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsers_never_panic_on_xmlish_text(parts in proptest::collection::vec(prop_oneof![
        Just("<"), Just(">"), Just("</"), Just("/>"), Just("&"), Just(";"), Just("&lt;"), Just("&#"),
        Just("&#x"), Just("<!DOCTYPE"), Just("<![CDATA["), Just("]]>"), Just("<?xml"), Just("?>"),
        Just("<!--"), Just("-->"), Just("\""), Just("'"), Just("="), Just(":"), Just("xmlns"),
        Just("xmlns:s"), Just(" "), Just("s:"), Just("Envelope"), Just("Body"), Just("Fault"),
        Just("root"), Just("device"), Just("deviceList"), Just("serviceList"), Just("service"),
        Just("controlURL"), Just("URLBase"), Just("UPnPError"), Just("errorCode"), Just("1"),
        Just("PortMappingList"), Just("PortMappingEntry"), Just("NewExternalPort"), Just("http://"),
        Just("AddPortMappingResponse"), Just("é"),
    ], 0..80)) {
        let text = parts.concat();
        let _ = description::parse(text.as_bytes());
        let _ = soap::parse_response(text.as_bytes(), "AddPortMapping");
        let _ = soap::parse_request(text.as_bytes());
        let _ = parse_port_mapping_list(&text);
        if text.contains("<!DOCTYPE") {
            prop_assert!(description::parse(text.as_bytes()).is_err());
            prop_assert!(soap::parse_request(text.as_bytes()).is_err());
        }
    }

    #[test]
    fn descriptions_resolve_without_panicking(reference in "\\PC{0,30}", base in "\\PC{0,30}") {
        let doc = format!(
            "<root><URLBase>{}</URLBase><device><deviceType>{}</deviceType><serviceList><service>\
             <serviceType>{}</serviceType><controlURL>{}</controlURL></service></serviceList></device></root>",
            soap::escape(&base), urn::IGD_1, urn::WAN_IP_CONNECTION_1, soap::escape(&reference)
        );
        if let Ok(d) = description::parse(doc.as_bytes()) {
            let location = url::Url::parse("http://192.168.0.1:5000/rootDesc.xml").unwrap();
            if let Ok(c) = d.wan_connection(&location) {
                prop_assert_eq!(c.control_url.scheme(), "http");
            }
        }
    }
}
