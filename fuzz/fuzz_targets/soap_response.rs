//! `igd_proto::soap::parse_response` and the typed `Action::parse_response` on arbitrary
//! bodies. The first input byte picks the action the body is read as an answer to; the rest
//! is the body.
//!
//! Invariants checked besides "never panics":
//! - out arguments a body yields, rebuilt with `soap::build_response`, parse back equal;
//! - a UPnP fault, rebuilt with `soap::build_fault`, parses back to the same code and text;
//! - a typed response, rebuilt with `Action::build_response`, parses back equal.
#![no_main]

use igd_proto::soap::{self, SoapError};
use igd_proto::{urn, Action, PortMapping, Protocol};
use libfuzzer_sys::fuzz_target;

fn mapping() -> PortMapping {
    PortMapping {
        remote_host: String::new(),
        external_port: 40000,
        protocol: Protocol::Tcp,
        internal_port: 40000,
        internal_client: "192.168.0.10".into(),
        enabled: true,
        description: "plugline".into(),
        lease_duration: 3600,
    }
}

fn actions() -> [Action; 11] {
    [
        Action::GetExternalIPAddress,
        Action::GetStatusInfo,
        Action::GetConnectionTypeInfo,
        Action::GetNATRSIPStatus,
        Action::AddPortMapping(mapping()),
        Action::AddAnyPortMapping(mapping()),
        Action::DeletePortMapping {
            remote_host: String::new(),
            external_port: 40000,
            protocol: Protocol::Udp,
        },
        Action::DeletePortMappingRange {
            start_port: 1,
            end_port: 65535,
            protocol: Protocol::Tcp,
            manage: false,
        },
        Action::GetGenericPortMappingEntry { index: 0 },
        Action::GetSpecificPortMappingEntry {
            remote_host: String::new(),
            external_port: 40000,
            protocol: Protocol::Tcp,
        },
        Action::GetListOfPortMappings {
            start_port: 1,
            end_port: 65535,
            protocol: Protocol::Tcp,
            manage: false,
            number_of_ports: 100,
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let actions = actions();
    let action = &actions[usize::from(selector) % actions.len()];
    let name = action.name();

    match soap::parse_response(body, name) {
        Ok(args) => {
            let borrowed: Vec<(&str, &str)> =
                args.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let rebuilt = soap::build_response(urn::WAN_IP_CONNECTION_2, name, &borrowed);
            assert_eq!(
                soap::parse_response(&rebuilt, name).as_ref(),
                Ok(&args),
                "rebuilt response: {:?}",
                String::from_utf8_lossy(&rebuilt)
            );
        }
        Err(SoapError::Upnp(e)) => {
            let rebuilt = soap::build_fault(e.code, &e.description);
            match soap::parse_response(&rebuilt, name) {
                Err(SoapError::Upnp(again)) => assert_eq!(again, e),
                other => panic!("rebuilt fault read as {other:?}"),
            }
        }
        Err(_) => {}
    }

    if let Ok(response) = action.parse_response(body) {
        let rebuilt = action.build_response(urn::WAN_IP_CONNECTION_2, &response);
        assert_eq!(
            action.parse_response(&rebuilt).as_ref(),
            Ok(&response),
            "rebuilt typed response: {:?}",
            String::from_utf8_lossy(&rebuilt)
        );
    }
});
