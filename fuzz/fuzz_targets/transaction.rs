//! A transaction, borsh (`Transaction`: offer, result, account transaction or resolution):
//! canonical, then checked as a node checks it; its JSON form round-trips.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, assert_json_round_trip, check_transaction};
use cairn_ledger::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = cairn_ledger::decode::<Transaction>("transaction", data, cairn_wire::BATCH_MESSAGE_BYTES_MAX) {
        assert_borsh_canonical(data, &tx);
        check_transaction(&tx);
        assert_json_round_trip(&tx);
    }
});
