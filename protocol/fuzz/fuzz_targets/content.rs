//! Manifests and blob requests from untrusted bytes: never panic; a manifest that passes its
//! checks keeps its id, and its pieces map onto its files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::blobs::{BlobAnswer, BlobRequest};
use partyline_protocol::content::{Layout, Manifest};

fuzz_target!(|data: &[u8]| {
    let id = Manifest::id_of(data);
    if let Ok(m) = Manifest::decode(data, &id) {
        assert_eq!(m.id(), id);
        let layout = Layout::new(&m);
        for piece in 0..layout.pieces().min(64) {
            let covered: u64 = layout.segments(piece).iter().map(|s| s.len).sum();
            assert_eq!(covered, layout.piece_len(piece));
        }
    }
    let _ = BlobRequest::decode(data);
    let _ = BlobAnswer::decode(data);
});
