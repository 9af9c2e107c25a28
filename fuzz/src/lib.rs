//! What the fuzz targets share: the fixture chains accepted inputs are verified against, and
//! the checks that an encoding is canonical.
//!
//! Every target decodes its input the way a node, a client or a verifier does. When the
//! decoder accepts, the target checks that the input is the one encoding of what it decoded
//! (borsh: re-encoding gives back the input byte for byte; JSON, which allows whitespace
//! and key order: decoding the re-encoding gives the same value, and encoding it again the
//! same text), then runs the checks that follow decoding in the node (signatures, commits,
//! proofs, block structure): none may panic, whatever the input.

use std::fmt::Debug;
use std::sync::OnceLock;

use borsh::BorshSerialize;
use cairn_ledger::{Genesis, Hash, ValidatorSet};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `docs/fixtures/genesis.json`: the chain of `receipt-proof.*` and of WIRE.md's example.
pub const GENESIS_JSON: &str = include_str!("../../docs/fixtures/genesis.json");
/// `docs/fixtures/linked/genesis.json`: the chain of the linked fixtures.
pub const LINKED_GENESIS_JSON: &str = include_str!("../../docs/fixtures/linked/genesis.json");
/// `docs/fixtures/linked/state-proof.json`: a state proof whose JMT proof the
/// `state_proof_jmt` target verifies its inputs against.
pub const LINKED_STATE_PROOF_JSON: &str = include_str!("../../docs/fixtures/linked/state-proof.json");

/// A fixture chain.
pub struct Chain {
    /// Its genesis.
    pub genesis: Genesis,
    /// `H(borsh(genesis))`.
    pub chain_id: Hash,
    /// Its validators.
    pub validators: ValidatorSet,
}

/// The two fixture chains (the seeds' signatures verify against one of them).
pub fn chains() -> &'static [Chain] {
    static CHAINS: OnceLock<Vec<Chain>> = OnceLock::new();
    CHAINS.get_or_init(|| {
        [GENESIS_JSON, LINKED_GENESIS_JSON]
            .into_iter()
            .map(|text| {
                let genesis: Genesis = serde_json::from_str(text).expect("a fixture genesis parses");
                genesis.validate().expect("a fixture genesis is valid");
                let validators = genesis.validator_set().expect("validators");
                Chain { chain_id: genesis.chain_id(), validators, genesis }
            })
            .collect()
    })
}

/// Asserts that `data`, which decoded as `value`, is `value`'s borsh encoding.
pub fn assert_borsh_canonical<T: BorshSerialize + Debug>(data: &[u8], value: &T) {
    let again = borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail");
    assert!(again == data, "accepted a non-canonical encoding of {value:?}:\n input {data:02x?}\n again {again:02x?}");
}

/// Asserts that `value`'s JSON decodes back to `value` and encodes to the same text again.
pub fn assert_json_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = serde_json::to_string(value).expect("encodes as JSON");
    let back: T = match serde_json::from_str(&text) {
        Ok(back) => back,
        Err(e) => panic!("the JSON of {value:?} does not decode: {e}\n{text}"),
    };
    assert_eq!(&back, value, "JSON round trip changed the value:\n{text}");
    assert_eq!(serde_json::to_string(&back).expect("encodes as JSON"), text, "JSON encoding is not stable");
}

/// As [`assert_json_round_trip`] for a type without `PartialEq`: the text is stable.
pub fn assert_json_stable<T: Serialize + DeserializeOwned>(value: &T) {
    let text = serde_json::to_string(value).expect("encodes as JSON");
    let back: T = match serde_json::from_str(&text) {
        Ok(back) => back,
        Err(e) => panic!("JSON that was encoded does not decode: {e}\n{text}"),
    };
    assert_eq!(serde_json::to_string(&back).expect("encodes as JSON"), text, "JSON round trip changed the value");
}

/// The checks a node runs on a block after decoding it: hash, structure (the body is the
/// header's), and its last commit against each fixture chain.
pub fn check_block(block: &cairn_ledger::Block) {
    let _ = block.hash();
    let _ = block.check_structure();
    if let Some(commit) = &block.last_commit {
        check_commit(commit);
    }
}

/// [`cairn_ledger::Commit::verify`] against each fixture chain.
pub fn check_commit(commit: &cairn_ledger::Commit) {
    for chain in chains() {
        let _ = commit.verify(chain.chain_id, &chain.validators);
    }
}

/// What a node checks of a transaction: its signature (and, for a result, its output).
pub fn check_transaction(tx: &cairn_ledger::Transaction) {
    use cairn_ledger::Transaction;
    let _ = tx.hash();
    let _ = tx.leaf_hash();
    let _ = tx.job_id();
    match tx {
        Transaction::Offer(o) => {
            let _ = o.verify();
            let _ = o.offer.escrow();
        }
        Transaction::Result(r) => check_result(r),
        Transaction::Account(t) => {
            let _ = t.verify();
        }
        Transaction::Resolve { .. } => {}
    }
}

/// What a node checks of a result: output, hash, signature; and its receipt's.
pub fn check_result(result: &cairn_ledger::JobResult) {
    let _ = result.verify(cairn_ledger::PARAMS_OUTPUT_BYTES_LIMIT as usize);
    let receipt = result.receipt();
    let _ = receipt.verify();
    let _ = receipt.leaf_hash();
}
