//! The `txs` gossip message (`TxBatch`, WIRE.md): `TxBatch::decode`, canonical, then each
//! transaction checked as a node checks it.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, check_transaction};
use cairn_wire::TxBatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = TxBatch::decode(data) {
        assert_borsh_canonical(data, &batch);
        assert!(batch.encode() == data);
        batch.txs.iter().for_each(check_transaction);
    }
});
