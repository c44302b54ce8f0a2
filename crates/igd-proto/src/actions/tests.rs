use super::*;
use crate::error::{ErrorCode, UpnpError};
use crate::urn;

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sip_mapping() -> PortMapping {
    PortMapping {
        remote_host: String::new(),
        external_port: 5060,
        protocol: Protocol::Udp,
        internal_port: 5060,
        internal_client: "192.168.0.91".into(),
        enabled: true,
        description: "Plugline SIP".into(),
        lease_duration: 3600,
    }
}

fn respond(action: &Action, out: &[(&str, &str)]) -> Result<Response, SoapError> {
    action.parse_response(&soap::build_response(
        urn::WAN_IP_CONNECTION_2,
        action.name(),
        out,
    ))
}

#[test]
fn protocol_text() {
    assert_eq!("tcp".parse::<Protocol>(), Ok(Protocol::Tcp));
    assert_eq!(" UDP ".parse::<Protocol>(), Ok(Protocol::Udp));
    assert_eq!("Udp".parse::<Protocol>(), Ok(Protocol::Udp));
    assert!("SCTP".parse::<Protocol>().is_err());
    assert_eq!(Protocol::Tcp.to_string(), "TCP");
    assert!(Protocol::Tcp < Protocol::Udp);
}

#[test]
fn add_port_mapping_request_is_byte_exact() {
    let action = Action::AddPortMapping(sip_mapping());
    let request = action.request(urn::WAN_IP_CONNECTION_1);
    assert_eq!(
        request.soap_action,
        "\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\""
    );
    let expected = vector("soap-add-port-mapping-request.xml");
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}

#[test]
fn hostile_description_request_is_byte_exact_and_round_trips() {
    let mapping = PortMapping {
        remote_host: String::new(),
        external_port: 443,
        protocol: Protocol::Tcp,
        internal_port: 8443,
        internal_client: "192.168.0.20".into(),
        enabled: false,
        description: "</NewPortMappingDescription><x> & ]]> \"q\" 'a' é".into(),
        lease_duration: 0,
    };
    let action = Action::AddPortMapping(mapping);
    let request = action.request(urn::WAN_IP_CONNECTION_2);
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        String::from_utf8(vector("soap-add-port-mapping-hostile-request.xml")).unwrap()
    );
    let call = soap::parse_request(&request.body).unwrap();
    assert_eq!(Action::from_call(&call), Ok(action));
}

#[test]
fn request_argument_order() {
    let names = |a: &Action| a.args().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(
        names(&Action::AddAnyPortMapping(sip_mapping())),
        [
            "NewRemoteHost",
            "NewExternalPort",
            "NewProtocol",
            "NewInternalPort",
            "NewInternalClient",
            "NewEnabled",
            "NewPortMappingDescription",
            "NewLeaseDuration"
        ]
    );
    let range = Action::DeletePortMappingRange {
        start_port: 1000,
        end_port: 2000,
        protocol: Protocol::Tcp,
        manage: true,
    };
    assert_eq!(
        range.args(),
        [
            ("NewStartPort", "1000".to_owned()),
            ("NewEndPort", "2000".to_owned()),
            ("NewProtocol", "TCP".to_owned()),
            ("NewManage", "1".to_owned())
        ]
    );
    let list = Action::GetListOfPortMappings {
        start_port: 0,
        end_port: 65535,
        protocol: Protocol::Udp,
        manage: false,
        number_of_ports: 1000,
    };
    assert_eq!(
        names(&list),
        [
            "NewStartPort",
            "NewEndPort",
            "NewProtocol",
            "NewManage",
            "NewNumberOfPorts"
        ]
    );
    assert_eq!(list.args()[3].1, "0");
    assert_eq!(
        names(&Action::GetGenericPortMappingEntry { index: 3 }),
        ["NewPortMappingIndex"]
    );
    let key = Action::DeletePortMapping {
        remote_host: String::new(),
        external_port: 80,
        protocol: Protocol::Tcp,
    };
    assert_eq!(
        names(&key),
        ["NewRemoteHost", "NewExternalPort", "NewProtocol"]
    );
    assert!(Action::GetExternalIPAddress.args().is_empty());
}

#[test]
fn simple_responses() {
    assert_eq!(
        respond(
            &Action::GetExternalIPAddress,
            &[("NewExternalIPAddress", " 203.0.113.1 ")]
        ),
        Ok(Response::ExternalIp("203.0.113.1".into()))
    );
    assert_eq!(
        respond(
            &Action::GetStatusInfo,
            &[
                ("NewConnectionStatus", "Connected"),
                ("NewLastConnectionError", "ERROR_NONE"),
                ("NewUptime", "86400")
            ]
        ),
        Ok(Response::StatusInfo(StatusInfo {
            connection_status: "Connected".into(),
            last_connection_error: "ERROR_NONE".into(),
            uptime_seconds: 86400
        }))
    );
    assert_eq!(
        respond(
            &Action::GetConnectionTypeInfo,
            &[
                ("NewConnectionType", "IP_Routed"),
                ("NewPossibleConnectionTypes", "IP_Routed")
            ]
        ),
        Ok(Response::ConnectionTypeInfo(ConnectionTypeInfo {
            connection_type: "IP_Routed".into(),
            possible_connection_types: "IP_Routed".into()
        }))
    );
    for (rsip, nat, expected) in [
        ("0", "1", (false, true)),
        ("no", "TRUE", (false, true)),
        ("Yes", "false", (true, false)),
    ] {
        assert_eq!(
            respond(
                &Action::GetNATRSIPStatus,
                &[("NewRSIPAvailable", rsip), ("NewNATEnabled", nat)]
            ),
            Ok(Response::NatRsipStatus(NatRsipStatus {
                rsip_available: expected.0,
                nat_enabled: expected.1
            }))
        );
    }
    assert_eq!(
        respond(&Action::AddPortMapping(sip_mapping()), &[]),
        Ok(Response::Added)
    );
    assert_eq!(
        respond(
            &Action::AddAnyPortMapping(sip_mapping()),
            &[("NewReservedPort", "5062")]
        ),
        Ok(Response::AnyAdded {
            reserved_port: 5062
        })
    );
}

#[test]
fn strict_numbers_and_booleans() {
    let any = Action::AddAnyPortMapping(sip_mapping());
    for bad in ["65536", "-1", "+5", "0x10", "", "5 5", "1e3", "٣"] {
        assert_eq!(
            respond(&any, &[("NewReservedPort", bad)]),
            Err(SoapError::InvalidArgument {
                name: "NewReservedPort",
                value: bad.into()
            }),
            "{bad:?}"
        );
    }
    assert_eq!(
        respond(&any, &[]),
        Err(SoapError::MissingArgument("NewReservedPort"))
    );
    assert_eq!(
        respond(
            &Action::GetStatusInfo,
            &[
                ("NewConnectionStatus", "Connected"),
                ("NewLastConnectionError", "ERROR_NONE"),
                ("NewUptime", "4294967296")
            ]
        ),
        Err(SoapError::InvalidArgument {
            name: "NewUptime",
            value: "4294967296".into()
        })
    );
    assert_eq!(
        respond(
            &Action::GetNATRSIPStatus,
            &[("NewRSIPAvailable", "2"), ("NewNATEnabled", "1")]
        ),
        Err(SoapError::InvalidArgument {
            name: "NewRSIPAvailable",
            value: "2".into()
        })
    );
}

#[test]
fn generic_entry_from_a_device() {
    let action = Action::GetGenericPortMappingEntry { index: 0 };
    let response = action
        .parse_response(&vector("soap-generic-entry-response.xml"))
        .unwrap();
    assert_eq!(
        response,
        Response::Entry(PortMapping {
            remote_host: String::new(),
            external_port: 5060,
            protocol: Protocol::Udp,
            internal_port: 5060,
            internal_client: "192.168.0.91".into(),
            enabled: true,
            description: "Plugline SIP <phone> & \"friends\"".into(),
            lease_duration: 3587,
        })
    );
}

#[test]
fn specific_entry_takes_the_key_from_the_request() {
    let action = Action::GetSpecificPortMappingEntry {
        remote_host: String::new(),
        external_port: 8080,
        protocol: Protocol::Tcp,
    };
    let response = respond(
        &action,
        &[
            ("NewInternalPort", "80"),
            ("NewInternalClient", "192.168.0.20"),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", "web"),
            ("NewLeaseDuration", "0"),
        ],
    );
    assert_eq!(
        response,
        Ok(Response::Entry(PortMapping {
            remote_host: String::new(),
            external_port: 8080,
            protocol: Protocol::Tcp,
            internal_port: 80,
            internal_client: "192.168.0.20".into(),
            enabled: true,
            description: "web".into(),
            lease_duration: 0,
        }))
    );
    // The gateway side emits only the five value arguments.
    let Ok(response) = response else {
        unreachable!()
    };
    let names: Vec<_> = action
        .response_args(&response)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "NewInternalPort",
            "NewInternalClient",
            "NewEnabled",
            "NewPortMappingDescription",
            "NewLeaseDuration"
        ]
    );
}

#[test]
fn list_from_a_device() {
    let action = Action::GetListOfPortMappings {
        start_port: 0,
        end_port: 65535,
        protocol: Protocol::Udp,
        manage: false,
        number_of_ports: 100,
    };
    let Response::List(list) = action
        .parse_response(&vector("soap-list-response.xml"))
        .unwrap()
    else {
        panic!("not a list")
    };
    assert_eq!(list.len(), 2);
    assert_eq!(list[0], sip_mapping());
    assert_eq!(list[1].external_port, 16384);
    assert_eq!(list[1].description, "RTP ]]> <&>");
    assert!(!list[1].enabled);
    assert_eq!(
        respond(&action, &[("NewPortListing", "")]),
        Ok(Response::List(vec![]))
    );
}

#[test]
fn list_document_rules() {
    let built = build_port_mapping_list(&[sip_mapping()]);
    assert!(
        built.contains("<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\"")
    );
    assert!(built.contains("<p:NewDescription>Plugline SIP</p:NewDescription>"));
    assert_eq!(parse_port_mapping_list(&built), Ok(vec![sip_mapping()]));
    assert_eq!(
        parse_port_mapping_list("<!DOCTYPE x><PortMappingList/>"),
        Err(SoapError::Dtd)
    );
    assert_eq!(
        parse_port_mapping_list("<PortMappingList><PortMappingEntry><NewDescription>&e;</NewDescription></PortMappingEntry></PortMappingList>"),
        Err(SoapError::Entity)
    );
    assert_eq!(
        parse_port_mapping_list("<Other/>"),
        Err(SoapError::NotSoap("PortMappingList"))
    );
    assert_eq!(
        parse_port_mapping_list("<PortMappingList><PortMappingEntry><NewExternalPort>1</NewExternalPort></PortMappingEntry></PortMappingList>"),
        Err(SoapError::MissingArgument("NewProtocol"))
    );
    assert_eq!(
        parse_port_mapping_list("<PortMappingList><PortMappingEntry><NewExternalPort>1</NewExternalPort><NewProtocol>ICMP</NewProtocol></PortMappingEntry></PortMappingList>"),
        Err(SoapError::InvalidArgument { name: "NewProtocol", value: "ICMP".into() })
    );
    assert_eq!(parse_port_mapping_list("<PortMappingList/>"), Ok(vec![]));
}

#[test]
fn faults_reach_the_caller() {
    let action = Action::AddPortMapping(sip_mapping());
    assert_eq!(
        action.parse_response(&soap::build_fault(718, "ConflictInMappingEntry")),
        Err(SoapError::Upnp(UpnpError::new(
            ErrorCode::ConflictInMappingEntry
        )))
    );
    assert_eq!(
        action.parse_response(&vector("soap-fault-725.xml")),
        Err(SoapError::Upnp(UpnpError {
            code: 725,
            description: "OnlyPermanentLeasesSupported".into()
        }))
    );
}

#[test]
fn gateway_side_round_trip() {
    let action = Action::AddPortMapping(sip_mapping());
    let request = action.request(urn::WAN_IP_CONNECTION_2);
    let call = soap::parse_request(&request.body).unwrap();
    assert_eq!(
        soap::parse_soap_action(&request.soap_action),
        Some((call.service_type.as_str(), call.action.as_str()))
    );
    assert_eq!(Action::from_call(&call), Ok(action.clone()));
    let body = action.build_response(&call.service_type, &Response::Added);
    assert_eq!(action.parse_response(&body), Ok(Response::Added));
}

#[test]
fn gateway_side_tolerance_and_refusals() {
    let call = |action: &str, args: &[(&str, &str)]| SoapCall {
        service_type: urn::WAN_IP_CONNECTION_1.into(),
        action: action.into(),
        args: args
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    // Optional arguments omitted, as some control points do.
    assert_eq!(
        Action::from_call(&call(
            "AddPortMapping",
            &[
                ("NewExternalPort", "5060"),
                ("NewProtocol", "udp"),
                ("NewInternalPort", "5060"),
                ("NewInternalClient", "192.168.0.91"),
            ]
        )),
        Ok(Action::AddPortMapping(PortMapping {
            description: String::new(),
            lease_duration: 0,
            ..sip_mapping()
        }))
    );
    assert_eq!(
        Action::from_call(&call("AddPortMapping", &[("NewExternalPort", "5060")])),
        Err(SoapError::MissingArgument("NewProtocol"))
    );
    assert_eq!(
        Action::from_call(&call(
            "GetGenericPortMappingEntry",
            &[("NewPortMappingIndex", "x")]
        )),
        Err(SoapError::InvalidArgument {
            name: "NewPortMappingIndex",
            value: "x".into()
        })
    );
    assert_eq!(
        Action::from_call(&call("ForceTermination", &[])),
        Err(SoapError::UnknownAction("ForceTermination".into()))
    );
}

#[test]
fn igd2_lease_rules() {
    assert_eq!(igd2_lease(0), MAX_LEASE_IGD2);
    assert_eq!(igd2_lease(1), 1);
    assert_eq!(igd2_lease(MAX_LEASE_IGD2 + 1), MAX_LEASE_IGD2);
    assert_eq!(igd2_lease(u32::MAX), MAX_LEASE_IGD2);
}
