//! A state proof, JSON (what `state_getProof` answers; STATE.md "State proofs"): decoded,
//! round-tripped, its borsh form canonical, then verified against each fixture genesis (the
//! commit, then the JMT proof inside it against the header's state root).
#![no_main]

use cairn_fuzz::{assert_json_stable, chains};
use cairn_ledger::StateProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = serde_json::from_slice::<StateProof>(data) {
        assert_json_stable(&proof);
        let bytes = borsh::to_vec(&proof).expect("encodes");
        let back: StateProof = cairn_ledger::decode("state proof", &bytes, usize::MAX).expect("its borsh decodes");
        assert!(borsh::to_vec(&back).expect("encodes") == bytes);
        for chain in chains() {
            let _ = proof.verify(&chain.genesis);
        }
    }
});
