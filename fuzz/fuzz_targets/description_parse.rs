//! `igd_proto::description::parse` on arbitrary bytes, then everything a control point does
//! with the result: walk the devices, pick the connection service, resolve its URLs.
//!
//! Invariants checked besides "never panics": every device has a `deviceType` and nesting
//! stays within `MAX_DEPTH`; `URLBase`, when kept, is an absolute http URL; connection
//! services come best first; every URL `resolve`/`wan_connection` hands out is http with a
//! host.
#![no_main]

use igd_proto::description::{self, Device, MAX_DEPTH};
use igd_proto::urn;
use libfuzzer_sys::fuzz_target;
use url::Url;

fn depth(device: &Device) -> usize {
    1 + device.devices.iter().map(depth).max().unwrap_or(0)
}

fn count(device: &Device) -> usize {
    1 + device.devices.iter().map(count).sum::<usize>()
}

fn assert_http(url: &Url) {
    assert_eq!(url.scheme(), "http", "{url}");
    assert!(url.host().is_some(), "{url}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(desc) = description::parse(data) else {
        return;
    };
    assert!(depth(&desc.device) <= MAX_DEPTH);
    assert_eq!(desc.device.iter().count(), count(&desc.device));
    for device in desc.device.iter() {
        assert!(!device.device_type.is_empty());
    }
    if let Some(base) = &desc.url_base {
        assert_http(&Url::parse(base).expect("kept URLBase is absolute"));
    }

    let services = desc.connection_services();
    let ranks: Vec<usize> = services
        .iter()
        .map(|s| urn::connection_service_rank(&s.service_type).expect("a connection service"))
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "not best first: {ranks:?}"
    );

    let location = Url::parse("http://192.168.0.1:5000/rootDesc.xml").unwrap();
    for service in desc.device.iter().flat_map(|d| d.services.iter()) {
        for reference in [
            &service.control_url,
            &service.scpd_url,
            &service.event_sub_url,
        ] {
            if let Ok(url) = desc.resolve(&location, reference) {
                assert_http(&url);
            }
        }
    }
    if let Ok(c) = desc.wan_connection(&location) {
        assert!(urn::is_connection_service(&c.service_type));
        assert_http(&c.control_url);
        c.event_sub_url
            .iter()
            .chain(c.scpd_url.iter())
            .for_each(assert_http);
        assert_eq!(c.device_type, desc.device.device_type);
    }
});
