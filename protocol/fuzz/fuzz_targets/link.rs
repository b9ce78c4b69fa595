//! Join links from untrusted text and bytes: never panic; whatever parses re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::JoinLink;

fuzz_target!(|data: &[u8]| {
    if let Ok(link) = JoinLink::from_payload(data) {
        assert_eq!(JoinLink::from_payload(&link.to_payload()).as_ref(), Ok(&link));
        assert_eq!(link.to_string().parse::<JoinLink>().as_ref(), Ok(&link));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<JoinLink>();
        let _ = format!("partyline://join/{text}").parse::<JoinLink>();
    }
});
