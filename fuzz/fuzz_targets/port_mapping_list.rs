//! `igd_proto::actions::parse_port_mapping_list` on arbitrary text (the `NewPortListing`
//! document a gateway returns, already unescaped once by the SOAP layer).
//!
//! Invariant checked besides "never panics": the entries of an accepted document, rebuilt
//! with `build_port_mapping_list`, parse back equal.
#![no_main]

use igd_proto::actions::{build_port_mapping_list, parse_port_mapping_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entries) = parse_port_mapping_list(text) else {
        return;
    };
    let rebuilt = build_port_mapping_list(&entries);
    assert_eq!(
        parse_port_mapping_list(&rebuilt).as_ref(),
        Ok(&entries),
        "rebuilt list: {rebuilt:?}"
    );
});
