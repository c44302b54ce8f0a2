//! `gateway_core::record::decode` on arbitrary lines: never panics, and whatever it accepts
//! encodes back to a line that decodes to the same record (the journal must replay exactly).
#![no_main]

use gateway_core::record::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode(data) {
        let mut line = Vec::new();
        encode(&record, &mut line);
        assert_eq!(decode(&line).expect("re-decode"), record);
    }
});
