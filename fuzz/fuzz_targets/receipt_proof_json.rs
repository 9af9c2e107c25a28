//! A receipt proof, JSON (what `job_proof` answers and `cairn receipt verify` reads; PROOFS.md):
//! decoded, round-tripped, then verified against each fixture genesis.
#![no_main]

use cairn_fuzz::{assert_json_round_trip, chains};
use cairn_ledger::ReceiptProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = serde_json::from_slice::<ReceiptProof>(data) {
        assert_json_round_trip(&proof);
        for chain in chains() {
            let _ = proof.verify(&chain.genesis);
        }
    }
});
