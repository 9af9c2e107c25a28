//! The `results` gossip message (`ResultBatch`, WIRE.md): `ResultBatch::decode`, canonical,
//! then each result checked as a node checks it.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, check_result};
use cairn_wire::ResultBatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = ResultBatch::decode(data) {
        assert_borsh_canonical(data, &batch);
        assert!(batch.encode() == data);
        batch.results.iter().for_each(check_result);
    }
});
