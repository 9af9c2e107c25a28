//! A block, borsh (`Block`): canonical, then its structure and last commit checked and each
//! transaction as a node checks it; its JSON form round-trips.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, assert_json_round_trip, check_block, check_transaction};
use cairn_ledger::Block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = cairn_ledger::decode::<Block>("block", data, cairn_wire::GOSSIP_MESSAGE_BYTES_MAX) {
        assert_borsh_canonical(data, &block);
        check_block(&block);
        block.txs.iter().for_each(check_transaction);
        assert_json_round_trip(&block);
    }
});
