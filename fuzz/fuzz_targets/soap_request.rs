//! `igd_proto::soap::parse_request` (the gateway side) and `Action::from_call` on arbitrary
//! bodies, plus `soap::parse_soap_action` on the same bytes read as a header value.
//!
//! Invariants checked besides "never panics":
//! - a parsed call, rebuilt with `soap::build_request`, parses back equal, and its
//!   `SOAPAction` header splits back into the same service type and action;
//! - a typed action, rebuilt with `Action::request`, reads back as the same action;
//! - what `parse_soap_action` accepts has non-empty, quote-free parts and survives being
//!   quoted again.
#![no_main]

use igd_proto::soap;
use igd_proto::Action;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        if let Some((service, action)) = soap::parse_soap_action(value) {
            assert!(!service.is_empty() && !action.is_empty());
            assert!(!service.contains('"') && !action.contains('"'));
            let quoted = format!("\"{service}#{action}\"");
            assert_eq!(soap::parse_soap_action(&quoted), Some((service, action)));
        }
    }

    let Ok(call) = soap::parse_request(data) else {
        return;
    };
    let args: Vec<(&str, &str)> = call
        .args
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = soap::build_request(&call.service_type, &call.action, &args);
    assert_eq!(
        soap::parse_request(&request.body).as_ref(),
        Ok(&call),
        "rebuilt request: {:?}",
        String::from_utf8_lossy(&request.body)
    );
    if !call.service_type.is_empty() && !call.service_type.contains('"') {
        assert_eq!(
            soap::parse_soap_action(&request.soap_action),
            Some((call.service_type.as_str(), call.action.as_str())),
            "SOAPAction {:?}",
            request.soap_action
        );
    }

    if let Ok(action) = Action::from_call(&call) {
        assert_eq!(action.name(), call.action);
        let request = action.request(&call.service_type);
        let again = soap::parse_request(&request.body).expect("rebuilt typed request refused");
        assert_eq!(Action::from_call(&again).as_ref(), Ok(&action));
    }
});
