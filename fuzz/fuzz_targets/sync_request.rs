//! A `/cairn/sync/1` request (`WIRE_VERSION || borsh(SyncRequest)`, the bytes inside the
//! CBOR byte string; WIRE.md): `Wire::decode`, canonical. Requests are held to
//! `SYNC_REQUEST_BYTES_MAX` on the stream.
#![no_main]

use cairn_wire::{SYNC_REQUEST_BYTES_MAX, SyncRequest, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() as u64 > SYNC_REQUEST_BYTES_MAX {
        return;
    }
    if let Ok(request) = Wire(data.to_vec()).decode::<SyncRequest>("sync request") {
        let again = Wire::encode(&request).0;
        assert!(again == data, "accepted a non-canonical sync request {request:?}");
    }
});
