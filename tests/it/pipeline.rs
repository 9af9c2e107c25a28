//! Offer → execution in the real sandbox → block → commit → rocksdb → proof, in one process.

use cairn_consensus::Signer;
use cairn_contracts::{NextBlock, NoReexecution, Position, State, VerifyAlways, build_block, execute_block};
use cairn_ledger::state_tree::{self, MemoryTree};
use cairn_ledger::{
    ChainParams, ExecutionReceipt, FORMAT_VERSION, Genesis, GenesisAccount, GenesisProvider, Hash, JobOffer, JobResult,
    JobStatus, Keypair, MerklePath, ReceiptProof, ResultClaim, Transaction, Validator,
};
use cairn_store::{BlockWrite, JobLocation, Store, init_store_genesis};
use cairn_vm::{Vm, VmConfig};

struct Keys {
    validator: Keypair,
    provider: Keypair,
    client: Keypair,
}

fn genesis(k: &Keys) -> Genesis {
    Genesis {
        version: FORMAT_VERSION,
        chain_name: "pipeline".into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: k.validator.public(), power: 1 }],
        accounts: vec![GenesisAccount { address: k.client.public(), balance: 1_000_000_000 }],
        providers: vec![GenesisProvider {
            address: k.provider.public(),
            price_per_fuel: 1,
            stake: 10_000,
            capacity: 100,
            region: String::new(),
        }],
        params: ChainParams::default(),
    }
}

#[test]
fn a_job_goes_from_offer_to_verified_proof() {
    let k = Keys {
        validator: Keypair::from_seed([1; 32]),
        provider: Keypair::from_seed([2; 32]),
        client: Keypair::from_seed([3; 32]),
    };
    let genesis = genesis(&k);
    let chain_id = genesis.chain_id();
    let wasm = cairn_vm::fixtures::uppercase_wasm();
    let module_id = Hash::of(&wasm);

    let offer = JobOffer {
        version: FORMAT_VERSION,
        chain_id,
        client: k.client.public(),
        nonce: 0,
        fee: 1,
        module_id,
        input: b"pipeline".to_vec(),
        fuel_limit: 1_000_000,
        max_price: 1,
        redundancy: 1,
        assignment_height: 0,
        deadline_height: 50,
        placement: cairn_ledger::Placement::Anywhere,
        input_blob: None,
    }
    .sign(&k.client);

    // The provider runs the job in the real sandbox and signs the result.
    let vm = Vm::new(VmConfig::default());
    let outcome = vm.execute(&wasm, &offer.offer.input, offer.offer.fuel_limit).expect("no internal error");
    assert_eq!(outcome.status, JobStatus::Ok, "{}", outcome.message);
    assert_eq!(outcome.output, b"PIPELINE");
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id: offer.job_id(),
        module_id,
        input_hash: offer.offer.input_hash(),
        output_hash: Hash::of(&outcome.output),
        fuel_used: outcome.fuel_used,
        status: outcome.status,
        provider: k.provider.public(),
    };
    let result = JobResult::new(claim, outcome.output.clone(), &k.provider);

    // The validator puts offer and result in one block and finalizes it.
    let mut state = State::from_genesis(&genesis).expect("genesis state");
    let mut follower = state.clone();
    let (mut tree, genesis_root) = MemoryTree::with_genesis(&state.entries()).expect("genesis tree");
    let (mut follower_tree, _) = MemoryTree::with_genesis(&state.entries()).expect("genesis tree");
    let at = Position { height: 1, parent_hash: Hash::ZERO };
    let txs = vec![Transaction::Offer(offer.clone()), Transaction::Result(result)];
    let next = NextBlock { at, proposer: k.validator.public(), time_ms: 0, last_commit: None };
    let (block, executed, rejected) =
        build_block(&mut state, next, txs, &mut tree, &mut NoReexecution, &mut VerifyAlways).expect("block builds");
    assert_ne!(block.header.state_root, genesis_root);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(executed.receipts.len(), 1);
    let signer = Signer::new(k.validator.clone(), chain_id, genesis.validator_set().expect("set")).expect("signer");
    let commit = signer.solo_commit(1, block.hash()).expect("commit");

    // Another node re-executes the block and reaches the same roots.
    let replayed = execute_block(&mut follower, at, &block, &mut follower_tree, &mut NoReexecution, &mut VerifyAlways)
        .expect("block replays");
    assert_eq!(replayed, executed);
    assert_eq!(follower.entries(), state.entries());

    // Stored in rocksdb, then the proof is rebuilt from disk and verified from genesis alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), chain_id).expect("store");
    init_store_genesis(&store, State::from_genesis(&genesis).expect("genesis").entries()).expect("genesis state");
    let changes = state.commit();
    let tree1 = state_tree::prepare(&store, &changes, 1).expect("tree v1");
    assert_eq!(tree1.root, block.header.state_root, "the disk tree agrees with the in-memory one");
    let jobs = [(offer.job_id(), JobLocation { offer_height: Some(1), receipts: vec![(1, 0)], retired: None })];
    store
        .commit_block(BlockWrite {
            block: &block,
            commit: &commit,
            receipts: &executed.receipts,
            jobs: &jobs,
            state: &changes,
            tree: &tree1,
        })
        .expect("commit to disk");
    drop(store);
    let store = Store::open(dir.path(), chain_id).expect("reopen");
    let receipts = store.receipts(1).expect("read").expect("receipts");
    let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
    let proof = ReceiptProof {
        version: FORMAT_VERSION,
        receipt: receipts[0].clone(),
        path: MerklePath::new(&leaves, 0).expect("path"),
        header: store.block(1).expect("read").expect("block").header,
        commit: store.commit(1).expect("read").expect("commit"),
    };
    let v = proof.verify(&genesis).expect("proof verifies");
    assert_eq!(v.job_id, offer.job_id());
    let reloaded = State::from_entries(&genesis, &store.state_entries().expect("entries")).expect("state");
    assert_eq!(MemoryTree::root_of(&reloaded.entries()).expect("root"), block.header.state_root);
    let job = reloaded.job(&offer.job_id()).expect("job");
    assert_eq!(job.paid, outcome.fuel_used, "paid at settlement, after the challenge window");
    assert_eq!(reloaded.account(&k.provider.public()).balance, 0);
}
