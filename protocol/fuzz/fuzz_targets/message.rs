//! Party messages from untrusted bytes: never panic; whatever decodes re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = wire::decode(data) {
        let again = wire::encode(&msg);
        assert_eq!(wire::decode(&again).as_ref(), Ok(&msg));
    }
    if data.len() >= 4 {
        let _ = wire::frame_len([data[0], data[1], data[2], data[3]]);
    }
});
