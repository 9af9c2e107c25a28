//! The JMT proof inside a state proof (borsh of `jmt::proof::SparseMerkleProof<Sha256>`,
//! STATE.md "State proofs"), decoded as `StateProof::verify` decodes it: canonical, then
//! verified against the linked fixture's state root, for its key and value and for absence.
#![no_main]

use std::sync::OnceLock;

use cairn_fuzz::{LINKED_STATE_PROOF_JSON, assert_borsh_canonical};
use cairn_ledger::StateProof;
use cairn_ledger::state_tree::{STATE_PROOF_BYTES_MAX, key_hash};
use jmt::proof::SparseMerkleProof;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

fn fixture() -> &'static StateProof {
    static PROOF: OnceLock<StateProof> = OnceLock::new();
    PROOF.get_or_init(|| serde_json::from_str(LINKED_STATE_PROOF_JSON).expect("the fixture state proof parses"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = cairn_ledger::decode::<SparseMerkleProof<Sha256>>("state proof", data, STATE_PROOF_BYTES_MAX)
    else {
        return;
    };
    assert_borsh_canonical(data, &proof);
    let fixture = fixture();
    let root = jmt::RootHash(fixture.header.state_root.0);
    let value = fixture.value.as_ref().map(|v| v.0.clone());
    let _ = proof.verify(root, key_hash(&fixture.key), value.as_ref());
    let _ = proof.verify(root, key_hash(&fixture.key), None::<&Vec<u8>>);
    let _ = proof.verify(root, key_hash(b"\x00"), None::<&Vec<u8>>);
});
