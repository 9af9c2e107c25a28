//! The linked test vectors in `docs/fixtures/linked/`: one offer, the finalized block 1 that
//! holds it and its result, that block's commit, the receipt proof of the result and the state
//! proof of the job at height 1, all on the chain of `linked/genesis.json`.
//!
//! `linked/genesis.json` has the validators of `docs/fixtures/genesis.json` (seeds 10..14,
//! power 10 each) plus a funded client (seed 1) and a registered provider (seed 3): an offer
//! needs both, and the older fixture genesis has neither (its file and test are unchanged).
//! Everything is deterministic: fixed keys, fixed times, the real sandbox, the real block
//! builder and the real rocksdb state tree.
//!
//! Regenerate with `cargo test -p cairn-tests --test it -- --ignored write_linked_fixtures`.

use borsh::BorshSerialize;
use cairn_contracts::{Job, NextBlock, NoReexecution, Position, State, StateKey, VerifyAlways, build_block};
use cairn_ledger::state_tree::{self, MemoryTree};
use cairn_ledger::{
    Block, ChainParams, Commit, ExecutionReceipt, FORMAT_VERSION, Genesis, GenesisAccount, GenesisProvider, Hash,
    JobOffer, JobResult, JobStatus, Keypair, MerklePath, ReceiptProof, ResultClaim, SignedOffer, StateProof,
    StateValue, Transaction, Validator,
};
use cairn_store::{BlockWrite, JobLocation, Store, init_store_genesis};
use cairn_vm::{Vm, VmConfig};

const LINKED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/fixtures/linked");

/// The proposer's clock for block 1.
const BLOCK_TIME_MS: u64 = 1_700_000_000_000;

/// The linked set, built for real.
struct Linked {
    genesis: Genesis,
    offer: SignedOffer,
    block: Block,
    commit: Commit,
    receipt_proof: ReceiptProof,
    state_proof: StateProof,
}

fn validators() -> Vec<Keypair> {
    (10..14).map(|i| Keypair::from_seed([i; 32])).collect()
}

fn client() -> Keypair {
    Keypair::from_seed([1; 32])
}

fn provider() -> Keypair {
    Keypair::from_seed([3; 32])
}

fn genesis() -> Genesis {
    Genesis {
        version: FORMAT_VERSION,
        chain_name: "test-linked".into(),
        genesis_time_ms: 0,
        validators: validators().iter().map(|k| Validator { address: k.public(), power: 10 }).collect(),
        accounts: vec![GenesisAccount { address: client().public(), balance: 10_000_000 }],
        providers: vec![GenesisProvider {
            address: provider().public(),
            price_per_fuel: 1,
            stake: 1_000,
            capacity: 1,
            region: String::new(),
        }],
        params: ChainParams::default(),
    }
}

/// A commit of `header` signed by `signers`, in validator order.
fn signed_commit(chain_id: Hash, header: &cairn_ledger::BlockHeader, signers: &[Keypair]) -> Commit {
    let signers: Vec<&Keypair> = signers.iter().collect();
    Commit::signed_by(&signers, chain_id, header.height, 0, header.hash())
}

fn linked() -> Linked {
    let genesis = genesis();
    let chain_id = genesis.chain_id();
    let wasm = cairn_vm::fixtures::uppercase_wasm();
    let offer = JobOffer {
        version: FORMAT_VERSION,
        chain_id,
        client: client().public(),
        nonce: 0,
        fee: 1,
        module_id: Hash::of(&wasm),
        input: b"hello".to_vec(),
        fuel_limit: 1_000_000,
        max_price: 1,
        redundancy: 1,
        assignment_height: 0,
        deadline_height: 100,
        placement: cairn_ledger::Placement::Anywhere,
        input_blob: None,
    }
    .sign(&client());

    // The provider runs the job in the real sandbox and signs the result.
    let outcome = Vm::new(VmConfig::default())
        .execute(&wasm, &offer.offer.input, offer.offer.fuel_limit)
        .expect("no internal error");
    assert_eq!((outcome.status, outcome.output.as_slice()), (JobStatus::Ok, &b"HELLO"[..]), "{}", outcome.message);
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id: offer.job_id(),
        module_id: offer.offer.module_id,
        input_hash: offer.offer.input_hash(),
        output_hash: Hash::of(&outcome.output),
        fuel_used: outcome.fuel_used,
        status: outcome.status,
        provider: provider().public(),
    };
    let result = JobResult::new(claim, outcome.output, &provider());

    // Block 1 holds the offer and its result; 3 of the 4 validators (30 of 40) finalize it.
    let validators = validators();
    let mut state = State::from_genesis(&genesis).expect("genesis state");
    let (mut tree, _) = MemoryTree::with_genesis(&state.entries()).expect("genesis tree");
    let next = NextBlock {
        at: Position { height: 1, parent_hash: Hash::ZERO },
        proposer: validators[0].public(),
        time_ms: BLOCK_TIME_MS,
        last_commit: None,
    };
    let txs = vec![Transaction::Offer(offer.clone()), Transaction::Result(result)];
    let (block, executed, rejected) =
        build_block(&mut state, next, txs, &mut tree, &mut NoReexecution, &mut VerifyAlways).expect("block builds");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(executed.receipts.len(), 1);
    let commit = signed_commit(chain_id, &block.header, &validators[..3]);

    // Stored in rocksdb as a node stores it; the state proof comes from the store.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), chain_id).expect("store");
    init_store_genesis(&store, State::from_genesis(&genesis).expect("genesis").entries()).expect("genesis state");
    let changes = state.commit();
    let tree1 = state_tree::prepare(&store, &changes, 1).expect("tree v1");
    assert_eq!(tree1.root, block.header.state_root, "the disk tree agrees with the in-memory one");
    let jobs = [(offer.job_id(), JobLocation { offer_height: Some(1), receipts: vec![(1, 0)], retired: None })];
    let write = BlockWrite {
        block: &block,
        commit: &commit,
        receipts: &executed.receipts,
        jobs: &jobs,
        state: &changes,
        tree: &tree1,
    };
    store.commit_block(write).expect("commit to disk");

    let leaves: Vec<Hash> = executed.receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
    let receipt_proof = ReceiptProof {
        version: FORMAT_VERSION,
        receipt: executed.receipts[0].clone(),
        path: MerklePath::new(&leaves, 0).expect("in range"),
        header: block.header.clone(),
        commit: commit.clone(),
    };
    // As the node's `state_getProof` builds it.
    let key = StateKey::Job(offer.job_id()).to_bytes();
    let (value, proof) = store.state_proof(&key, 1).expect("state proof");
    let state_proof = StateProof {
        version: FORMAT_VERSION,
        key,
        value: value.map(StateValue),
        proof,
        header: block.header.clone(),
        commit: commit.clone(),
    };
    Linked { genesis, offer, block, commit, receipt_proof, state_proof }
}

/// Pretty JSON with a final newline (a macro: this crate does not name `serde`).
macro_rules! json {
    ($value:expr) => {
        serde_json::to_string_pretty($value).expect("json") + "\n"
    };
}

fn borsh_hex<T: BorshSerialize>(value: &T) -> String {
    let bytes = borsh::to_vec(value).expect("encodes");
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n"
}

/// Every file of the set: its name under `docs/fixtures/linked/` and its contents.
fn files(l: &Linked) -> Vec<(String, String)> {
    let mut out = vec![("genesis.json".to_string(), json!(&l.genesis))];
    let mut both = |name: &str, json: String, hex: String| {
        out.push((format!("{name}.json"), json));
        out.push((format!("{name}.borsh.hex"), hex));
    };
    both("offer", json!(&l.offer), borsh_hex(&l.offer));
    both("block", json!(&l.block), borsh_hex(&l.block));
    both("commit", json!(&l.commit), borsh_hex(&l.commit));
    both("receipt-proof", json!(&l.receipt_proof), borsh_hex(&l.receipt_proof));
    both("state-proof", json!(&l.state_proof), borsh_hex(&l.state_proof));
    out
}

/// The files are current (byte for byte) and what they say holds together.
#[test]
fn linked_fixtures_verify_and_are_current() {
    let l = linked();
    for (name, text) in files(&l) {
        let on_disk = std::fs::read_to_string(format!("{LINKED_DIR}/{name}")).unwrap_or_else(|e| {
            panic!("docs/fixtures/linked/{name}: {e}; regenerate with `cargo test -p cairn-tests --test it -- --ignored write_linked_fixtures`")
        });
        assert!(
            on_disk == text,
            "docs/fixtures/linked/{name} is stale; regenerate with `cargo test -p cairn-tests --test it -- --ignored write_linked_fixtures`"
        );
    }
    let read = |name: &str| std::fs::read_to_string(format!("{LINKED_DIR}/{name}")).expect("read");
    let genesis: Genesis = serde_json::from_str(&read("genesis.json")).expect("genesis parses");
    let offer: SignedOffer = serde_json::from_str(&read("offer.json")).expect("offer parses");
    let block: Block = serde_json::from_str(&read("block.json")).expect("block parses");
    let commit: Commit = serde_json::from_str(&read("commit.json")).expect("commit parses");
    let receipt_proof: ReceiptProof = serde_json::from_str(&read("receipt-proof.json")).expect("receipt proof parses");
    let state_proof: StateProof = serde_json::from_str(&read("state-proof.json")).expect("state proof parses");
    let chain_id = genesis.chain_id();

    // The genesis keeps the validators of the older fixture genesis.
    let old: Genesis = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/fixtures/genesis.json")).expect("read"),
    )
    .expect("fixture genesis parses");
    assert_eq!(genesis.validators, old.validators);

    // The offer: signed by its client, for this chain.
    offer.verify().expect("the offer's signature verifies");
    assert_eq!(offer.offer.chain_id, chain_id);
    let job_id = offer.job_id();

    // The block: height 1 of this chain, well formed, holding the offer then its result,
    // finalized by more than 2/3 of the genesis validators.
    block.check_structure().expect("block structure");
    assert_eq!((block.header.height, block.header.chain_id), (1, chain_id));
    assert_eq!(block.header.parent_hash, Hash::ZERO);
    assert_eq!(block.txs.first(), Some(&Transaction::Offer(offer.clone())));
    assert!(matches!(block.txs.get(1), Some(Transaction::Result(r)) if r.claim.job_id == job_id));
    assert_eq!(block.header.receipt_count, 1);
    assert_eq!((commit.height, commit.block_hash), (1, block.hash()));
    let signed = commit.verify(chain_id, &genesis.validator_set().expect("set")).expect("the commit verifies");
    assert!(signed * 3 > 40 * 2, "signed power {signed} of 40");

    // The receipt proof: the result of this offer, in this block.
    let v = receipt_proof.verify(&genesis).expect("the receipt proof verifies");
    assert_eq!((v.job_id, v.height), (job_id, 1));
    assert_eq!(receipt_proof.receipt.claim.job_id, job_id);
    assert_eq!((receipt_proof.header.clone(), receipt_proof.commit.clone()), (block.header.clone(), commit.clone()));

    // The state proof: this job's entry at height 1, in this block's state root.
    let (value, height) = state_proof.verify(&genesis).expect("the state proof verifies");
    assert_eq!(height, 1);
    assert_eq!(state_proof.key, StateKey::Job(job_id).to_bytes());
    assert_eq!(state_proof.header, block.header);
    let job: Job = borsh::from_slice(&value.expect("the job exists")).expect("the value decodes to a job");
    assert_eq!((job.client, job.module_id), (offer.offer.client, offer.offer.module_id));
}

/// Writes `docs/fixtures/linked/` (run deliberately, then review the diff).
#[test]
#[ignore = "writes docs/fixtures/linked; run by hand when a format changes on purpose"]
fn write_linked_fixtures() {
    std::fs::create_dir_all(LINKED_DIR).expect("mkdir");
    for (name, text) in files(&linked()) {
        std::fs::write(format!("{LINKED_DIR}/{name}"), text).expect("write");
    }
}
