//! Two nodes that execute the same blocks reach the same state root at every height, on disk,
//! and a state proof from one verifies against the other's header.

use cairn_consensus::Signer;
use cairn_contracts::{
    Job, NextBlock, NonceRule, Position, Reexecute, SignatureCache, SignatureCheck, State, VerifyAlways, build_block,
    execute_block,
};
use cairn_ledger::state_tree::StateUpdate;
use cairn_ledger::{
    Action, Block, ChainParams, Commit, FORMAT_VERSION, Genesis, GenesisAccount, GenesisProvider, Hash, JobOffer,
    JobResult, JobStatus, Keypair, Outcome, ResultClaim, StateProof, StateValue, Transaction, Tx, Validator,
};
use cairn_store::{BlockWrite, Store, StoreTree, init_store_genesis};

struct Node {
    _dir: tempfile::TempDir,
    store: Store,
    state: State,
}

impl Node {
    fn new(genesis: &Genesis) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), genesis.chain_id()).expect("store");
        let state = State::from_genesis(genesis).expect("state");
        init_store_genesis(&store, state.entries()).expect("genesis");
        Node { _dir: dir, store, state }
    }

    fn store_block(
        &mut self,
        block: &Block,
        commit: &Commit,
        receipts: &[cairn_ledger::ExecutionReceipt],
        tree: &StateUpdate,
    ) {
        let changes = self.state.commit();
        let w = BlockWrite { block, commit, receipts, jobs: &[], state: &changes, tree };
        self.store.commit_block(w).expect("stored");
    }
}

/// Re-executes every job as the honest providers of this test run them (output `o`, 7 fuel).
struct Honest;

impl Reexecute for Honest {
    fn reexecute(&mut self, _: &Hash, _: &Job) -> cairn_contracts::Result<Outcome> {
        Ok(Outcome { output_hash: Hash::of(b"o"), fuel_used: 7, status: JobStatus::Ok })
    }
}

/// Every third job asks for two providers; of those, every other one gets a lying second
/// result, so blocks also settle disputes by re-execution. Node A verified every transaction
/// when it admitted it and builds from its signature cache; node B verifies everything while
/// replaying: they agree all the same.
#[test]
fn two_nodes_agree_on_every_state_root_and_on_state_proofs() {
    let validator = Keypair::from_seed([1; 32]);
    let client = Keypair::from_seed([3; 32]);
    let providers: Vec<Keypair> = (10..13).map(|i| Keypair::from_seed([i; 32])).collect();
    let genesis = Genesis {
        version: FORMAT_VERSION,
        chain_name: "replication".into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: validator.public(), power: 1 }],
        accounts: vec![GenesisAccount { address: client.public(), balance: 1_000_000_000 }],
        providers: providers
            .iter()
            .map(|p| GenesisProvider {
                address: p.public(),
                price_per_fuel: 1,
                stake: 1_000_000,
                capacity: 100,
                region: String::new(),
            })
            .collect(),
        params: ChainParams::default(),
    };
    let chain_id = genesis.chain_id();
    let signer = Signer::new(validator.clone(), chain_id, genesis.validator_set().expect("set")).expect("signer");
    let (mut a, mut b) = (Node::new(&genesis), Node::new(&genesis));
    let mut a_signatures = SignatureCache::default();
    let mut parent = Hash::ZERO;
    let mut last_commit = None;
    let mut nonce = 0;
    let mut pending_results: Vec<Transaction> = vec![];
    let mut delivering = vec![];
    for height in 1..=20u64 {
        let mut txs = std::mem::take(&mut pending_results);
        for _ in 0..5 {
            let offer = JobOffer {
                version: FORMAT_VERSION,
                chain_id,
                client: client.public(),
                nonce,
                fee: 1 + nonce % 3,
                module_id: Hash::of(b"m"),
                input: nonce.to_le_bytes().to_vec(),
                fuel_limit: 100,
                max_price: 1,
                redundancy: if nonce % 3 == 0 { 2 } else { 1 },
                assignment_height: height - 1,
                deadline_height: height + 3,
                placement: cairn_ledger::Placement::Anywhere,
                input_blob: None,
            }
            .sign(&client);
            let lie = nonce % 6 == 0;
            nonce += 1;
            // Half the jobs get their results in the next block; the rest expire.
            if nonce % 2 == 0 || offer.offer.redundancy == 2 {
                delivering.push((offer.clone(), lie));
            }
            txs.push(Transaction::Offer(offer));
        }
        let transfer = Tx {
            version: FORMAT_VERSION,
            chain_id,
            sender: client.public(),
            nonce,
            fee: 1,
            action: Action::Transfer { to: providers[0].public(), amount: height },
        };
        nonce += 1;
        txs.push(Transaction::Account(transfer.sign(&client)));

        let at = Position { height, parent_hash: parent };
        let next = NextBlock { at, proposer: validator.public(), time_ms: height, last_commit: last_commit.clone() };
        // Node A admits the transactions as a mempool does: their signatures are verified once,
        // and the block built from them finds every one in the cache.
        for tx in &txs {
            let output_max = a.state.params().output_bytes_max as usize;
            match tx {
                Transaction::Result(_) => a_signatures.check(tx, output_max).expect("a valid result"),
                _ => a
                    .state
                    .check_tx(tx, height, NonceRule::Pending { pending_spend: 0 }, &mut a_signatures)
                    .expect("admitted"),
            }
        }
        let hits = a_signatures.hits();
        let mut disk_a = StoreTree::new(&a.store);
        let (block, executed, rejected) =
            build_block(&mut a.state, next, txs, &mut disk_a, &mut Honest, &mut a_signatures).expect("builds");
        assert!(rejected.is_empty(), "height {height}: {rejected:?}");
        assert_eq!(a_signatures.hits() - hits, block.txs.len() as u64, "no signature verified twice on node A");
        let tree_a = disk_a.into_update().expect("update");
        let commit = signer.solo_commit(height, block.hash()).expect("commit");
        a.store_block(&block, &commit, &executed.receipts, &tree_a);
        // The assignees, as the block assigned them (a dispute earlier in the block may have
        // changed stakes, and so the ranking).
        for (offer, lie) in delivering.drain(..) {
            let assigned = a.state.job(&offer.job_id()).expect("included").assigned();
            for (i, assignee) in assigned.into_iter().enumerate() {
                let key = providers.iter().find(|p| p.public() == assignee).expect("provider");
                let output: &[u8] = if lie && i == 1 { b"lie" } else { b"o" };
                let claim = ResultClaim {
                    version: FORMAT_VERSION,
                    job_id: offer.job_id(),
                    module_id: offer.offer.module_id,
                    input_hash: offer.offer.input_hash(),
                    output_hash: Hash::of(output),
                    fuel_used: 7,
                    status: JobStatus::Ok,
                    provider: assignee,
                };
                pending_results.push(Transaction::Result(JobResult::new(claim, output.to_vec(), key)));
            }
        }

        let mut disk_b = StoreTree::new(&b.store);
        let replayed =
            execute_block(&mut b.state, at, &block, &mut disk_b, &mut Honest, &mut VerifyAlways).expect("replays");
        let tree_b = disk_b.into_update().expect("update");
        b.store_block(&block, &commit, &replayed.receipts, &tree_b);

        assert_eq!(tree_a.root, block.header.state_root);
        assert_eq!(tree_b.root, block.header.state_root, "height {height}");
        assert_eq!(a.store.state_root(height).expect("a"), b.store.state_root(height).expect("b"));
        assert_eq!(a.state.entries(), b.state.entries());

        // A proof from node A verifies against node B's stored header.
        let key = cairn_contracts::StateKey::Account(providers[0].public()).to_bytes();
        let (value, proof) = a.store.state_proof(&key, height).expect("proof");
        let header_b = b.store.block(height).expect("read").expect("block").header;
        let commit_b = b.store.commit(height).expect("read").expect("commit");
        let sp = StateProof {
            version: FORMAT_VERSION,
            key,
            value: value.map(StateValue),
            proof,
            header: header_b,
            commit: commit_b,
        };
        let (proven, h) = sp.verify(&genesis).expect("A's proof verifies against B's header");
        assert_eq!(h, height);
        let account: cairn_contracts::Account = borsh::from_slice(&proven.expect("exists")).expect("decodes");
        assert_eq!(account.balance, a.state.account(&providers[0].public()).balance);

        parent = block.hash();
        last_commit = Some(commit);
    }
    assert!(a.state.open_jobs().count() < 20, "jobs were completed and expired along the way");
    let slashed =
        providers.iter().filter(|p| a.state.provider(&p.public()).expect("provider").stake < 1_000_000).count();
    assert!(slashed >= 1, "disputes were settled by re-execution, slashing the liars");
}
