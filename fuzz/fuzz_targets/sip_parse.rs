//! `sip_proto::message::parse` on arbitrary datagrams: never panics, and the typed readers of
//! whatever it accepts never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_proto::message::{parse, SipHeaders};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = parse(data) {
        let _ = message.vias();
        let _ = message.top_via();
        let _ = message.from();
        let _ = message.to();
        let _ = message.call_id();
        let _ = message.cseq();
        let _ = message.contacts();
        let _ = message.expires();
        let _ = message.www_authenticate();
    }
});
