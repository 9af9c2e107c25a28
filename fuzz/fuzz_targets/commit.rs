//! A commit, borsh (`Commit`): canonical, then verified against the fixture chains' validators
//! (order, membership, quorum, signatures); its JSON form round-trips.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, assert_json_round_trip, check_commit};
use cairn_ledger::Commit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(commit) = cairn_ledger::decode::<Commit>("commit", data, cairn_wire::GOSSIP_MESSAGE_BYTES_MAX) {
        assert_borsh_canonical(data, &commit);
        check_commit(&commit);
        assert_json_round_trip(&commit);
    }
});
