//! A provider's result, borsh (`JobResult`): canonical, then its output, hash and signature
//! checked, and its receipt's; its JSON form round-trips.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, assert_json_round_trip, check_result};
use cairn_ledger::JobResult;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = cairn_ledger::decode::<JobResult>("job result", data, cairn_wire::BATCH_MESSAGE_BYTES_MAX) {
        assert_borsh_canonical(data, &result);
        check_result(&result);
        assert_json_round_trip(&result);
    }
});
