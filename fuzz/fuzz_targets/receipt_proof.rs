//! A receipt proof, borsh (`ReceiptProof`, PROOFS.md): canonical, then verified against each
//! fixture genesis (the checks of PROOFS.md "Verifying a proof"); its JSON form round-trips.
#![no_main]

use cairn_fuzz::{assert_borsh_canonical, assert_json_round_trip, chains};
use cairn_ledger::ReceiptProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = cairn_ledger::decode::<ReceiptProof>("receipt proof", data, 1 << 20) {
        assert_borsh_canonical(data, &proof);
        for chain in chains() {
            let _ = proof.verify(&chain.genesis);
        }
        assert_json_round_trip(&proof);
    }
});
