//! On one node: block execution throughput (transactions applied, state tree updated and the
//! block committed to rocksdb), with every signature verified and with every transaction
//! already in the node's signature cache; signatures verified one by one and in batches;
//! receipt and state proofs built and verified; a block's state tree update alone.
//!
//! `cargo bench -p cairn-tests --bench chain`

use cairn_consensus::Signer;
use cairn_contracts::{
    NextBlock, NoReexecution, Position, SignatureCache, SignatureCheck, State, VerifyAlways, build_block, verify_tx,
    verify_txs,
};
use cairn_ledger::{
    Action, ChainParams, ExecutionReceipt, FORMAT_VERSION, Genesis, GenesisAccount, GenesisProvider, Hash, JobOffer,
    JobResult, JobStatus, Keypair, MerklePath, ReceiptProof, ResultClaim, StateProof, StateValue, Transaction, Tx,
    Validator,
};
use cairn_store::{BlockWrite, JobLocation, Store, StoreTree, init_store_genesis};
use criterion::{BatchSize, Criterion, Throughput, criterion_main};

/// Offers (and as many results) per benchmarked block.
const JOBS_PER_BLOCK: usize = 500;

/// Blocks committed before the steady-state benchmark's measured ones.
const STEADY_BLOCKS: u64 = 40;

struct Fixture {
    genesis: Genesis,
    validator: Keypair,
    provider: Keypair,
    client: Keypair,
    txs: Vec<Transaction>,
}

fn fixture() -> Fixture {
    let validator = Keypair::from_seed([1; 32]);
    let provider = Keypair::from_seed([2; 32]);
    let client = Keypair::from_seed([3; 32]);
    let genesis = Genesis {
        version: FORMAT_VERSION,
        chain_name: "bench".into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: validator.public(), power: 1 }],
        accounts: vec![GenesisAccount { address: client.public(), balance: u64::MAX / 4 }],
        providers: vec![GenesisProvider {
            address: provider.public(),
            price_per_fuel: 1,
            stake: 1_000_000,
            capacity: 1_000_000,
            region: String::new(),
        }],
        params: ChainParams::default(),
    };
    let mut f = Fixture { genesis, validator, provider, client, txs: Vec::new() };
    f.txs = jobs(&f, 0, JOBS_PER_BLOCK, 1);
    f
}

/// `n` offers from the client, nonces from `first_nonce`, for a block at `height`, then each
/// one's result: what a block of a busy chain holds.
fn jobs(f: &Fixture, first_nonce: u64, n: usize, height: u64) -> Vec<Transaction> {
    let chain_id = f.genesis.chain_id();
    let mut txs = Vec::new();
    let mut results = Vec::new();
    for nonce in first_nonce..first_nonce + n as u64 {
        let offer = JobOffer {
            version: FORMAT_VERSION,
            chain_id,
            client: f.client.public(),
            nonce,
            fee: 1,
            module_id: Hash::of(b"module"),
            input: nonce.to_le_bytes().to_vec(),
            fuel_limit: 1_000,
            max_price: 1,
            redundancy: 1,
            assignment_height: height - 1,
            deadline_height: height + 100,
            placement: cairn_ledger::Placement::Anywhere,
            input_blob: None,
        }
        .sign(&f.client);
        let output = b"out".to_vec();
        let claim = ResultClaim {
            version: FORMAT_VERSION,
            job_id: offer.job_id(),
            module_id: offer.offer.module_id,
            input_hash: offer.offer.input_hash(),
            output_hash: Hash::of(&output),
            fuel_used: 10,
            status: JobStatus::Ok,
            provider: f.provider.public(),
        };
        results.push(Transaction::Result(JobResult::new(claim, output, &f.provider)));
        txs.push(Transaction::Offer(offer));
    }
    txs.extend(results);
    txs
}

fn open(f: &Fixture) -> (tempfile::TempDir, Store, State) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), f.genesis.chain_id()).expect("store");
    let state = State::from_genesis(&f.genesis).expect("state");
    init_store_genesis(&store, state.entries()).expect("genesis");
    (dir, store, state)
}

/// Builds, finalizes and stores block 1 with every fixture transaction, checking signatures
/// through `sigs`.
fn commit_block(
    f: &Fixture,
    store: &Store,
    state: &mut State,
    sigs: &mut dyn SignatureCheck,
) -> (cairn_ledger::Block, Vec<ExecutionReceipt>) {
    commit_block_at(f, store, state, sigs, 1, Hash::ZERO, f.txs.clone())
}

/// Builds, finalizes and stores the block at `height` on `parent_hash` with `txs`.
fn commit_block_at(
    f: &Fixture,
    store: &Store,
    state: &mut State,
    sigs: &mut dyn SignatureCheck,
    height: u64,
    parent_hash: Hash,
    txs: Vec<Transaction>,
) -> (cairn_ledger::Block, Vec<ExecutionReceipt>) {
    let signer = Signer::new(f.validator.clone(), f.genesis.chain_id(), f.genesis.validator_set().expect("set"))
        .expect("signer");
    let mut disk = StoreTree::new(store);
    let next = NextBlock {
        at: Position { height, parent_hash },
        proposer: f.validator.public(),
        time_ms: height,
        last_commit: None,
    };
    let (block, executed, rejected) =
        build_block(state, next, txs, &mut disk, &mut NoReexecution, sigs).expect("block builds");
    assert!(rejected.is_empty(), "{:?}", rejected.first());
    let commit = signer.solo_commit(height, block.hash()).expect("commit");
    let changes = state.commit();
    let jobs: Vec<(Hash, JobLocation)> = executed
        .receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.claim.job_id,
                JobLocation { offer_height: Some(height), receipts: vec![(height, i as u32)], retired: None },
            )
        })
        .collect();
    let tree = disk.into_update().expect("update");
    store
        .commit_block(BlockWrite {
            block: &block,
            commit: &commit,
            receipts: &executed.receipts,
            jobs: &jobs,
            state: &changes,
            tree: &tree,
        })
        .expect("stored");
    (block, executed.receipts)
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(f.txs.len() as u64));
    g.sample_size(10);
    g.bench_function(format!("apply_and_commit_{}_txs", f.txs.len()), |b| {
        b.iter_batched(
            || open(&f),
            |(_dir, store, mut state)| commit_block(&f, &store, &mut state, &mut VerifyAlways),
            BatchSize::PerIteration,
        )
    });

    // A block on a chain that already holds `STEADY_BLOCKS` such blocks: the state tree is
    // deep and every key written has earlier value rows, as on a busy node (signatures
    // verified on admission).
    let output_max = f.genesis.params.output_bytes_max as usize;
    g.bench_function(format!("apply_and_commit_{}_txs_after_{STEADY_BLOCKS}_blocks", f.txs.len()), |b| {
        b.iter_custom(|iters| {
            let (_dir, store, mut state) = open(&f);
            let mut parent = Hash::ZERO;
            let mut nonce = 0;
            let mut elapsed = std::time::Duration::ZERO;
            for height in 1..=STEADY_BLOCKS + iters {
                let txs = jobs(&f, nonce, JOBS_PER_BLOCK, height);
                nonce += JOBS_PER_BLOCK as u64;
                // Verified on admission, as in a node.
                let mut sigs = SignatureCache::default();
                for tx in &txs {
                    sigs.check(tx, output_max).expect("valid");
                }
                let started = std::time::Instant::now();
                let (block, _) = commit_block_at(&f, &store, &mut state, &mut sigs, height, parent, txs);
                if height > STEADY_BLOCKS {
                    elapsed += started.elapsed();
                }
                parent = block.hash();
            }
            elapsed
        })
    });
    g.finish();

    // The same block with every signature checked (nothing cached) and with every transaction
    // already verified on admission (all cached): what the signature cache saves.
    let mut cached = SignatureCache::default();
    for tx in &f.txs {
        cached.check(tx, output_max).expect("valid");
    }
    let mut g = c.benchmark_group("signatures");
    g.throughput(Throughput::Elements(f.txs.len() as u64));
    g.sample_size(10);
    for all_cached in [false, true] {
        let name = if all_cached { "signatures_cached" } else { "signatures_verified" };
        g.bench_function(format!("apply_and_commit_{}_txs_{name}", f.txs.len()), |b| {
            b.iter_batched(
                || {
                    let cache = if all_cached { cached.clone() } else { SignatureCache::default() };
                    (open(&f), cache)
                },
                |((_dir, store, mut state), mut cache)| {
                    let hits = cache.hits();
                    let out = commit_block(&f, &store, &mut state, &mut cache);
                    let expected = if all_cached { f.txs.len() as u64 } else { 0 };
                    assert_eq!(cache.hits() - hits, expected);
                    out
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();

    // Verifying signatures one by one and in batches (ZIP-215: the same verdicts): the block's
    // transactions (one client, one provider: a batch shares each key's term), and transfers
    // signed by as many keys as transactions (as offers from many clients).
    let transfers: Vec<Transaction> = (0..512u32)
        .map(|i| {
            let mut seed = [9u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let key = Keypair::from_seed(seed);
            let action = Action::Transfer { to: f.client.public(), amount: 1 };
            let tx =
                Tx { version: FORMAT_VERSION, chain_id: Hash::ZERO, sender: key.public(), nonce: 0, fee: 1, action };
            Transaction::Account(tx.sign(&key))
        })
        .collect();
    let mut g = c.benchmark_group("signature_batches");
    g.sample_size(10);
    for (what, txs) in [("block_txs_two_keys", &f.txs), ("transfers_distinct_keys", &transfers)] {
        g.throughput(Throughput::Elements(txs.len() as u64));
        let refs: Vec<&Transaction> = txs.iter().collect();
        g.bench_function(format!("verify_{}_{what}_one_by_one", txs.len()), |b| {
            b.iter(|| refs.iter().all(|tx| verify_tx(tx, output_max).is_ok()))
        });
        g.bench_function(format!("verify_{}_{what}_in_batches", txs.len()), |b| {
            b.iter(|| verify_txs(&refs, output_max).iter().all(Result::is_ok))
        });
    }
    g.finish();

    let (_dir, store, mut state) = open(&f);
    let (block, receipts) = commit_block(&f, &store, &mut state, &mut VerifyAlways);
    let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
    let commit = store.commit(1).expect("read").expect("commit");
    let receipt_proof = |i: usize| ReceiptProof {
        version: FORMAT_VERSION,
        receipt: receipts[i].clone(),
        path: MerklePath::new(&leaves, i).expect("path"),
        header: block.header.clone(),
        commit: commit.clone(),
    };
    let mut g = c.benchmark_group("proof");
    g.bench_function("receipt_build_from_store", |b| {
        b.iter(|| {
            let receipts = store.receipts(1).expect("read").expect("receipts");
            let leaves: Vec<Hash> = receipts.iter().map(ExecutionReceipt::leaf_hash).collect();
            MerklePath::new(&leaves, 123).expect("path")
        })
    });
    let proof = receipt_proof(123);
    g.bench_function("receipt_verify", |b| b.iter(|| proof.verify(&f.genesis).expect("valid")));
    let key = cairn_contracts::StateKey::Job(receipts[7].claim.job_id).to_bytes();
    g.bench_function("state_build", |b| b.iter(|| store.state_proof(&key, 1).expect("proof")));
    let (value, bytes) = store.state_proof(&key, 1).expect("proof");
    let state_proof = StateProof {
        version: FORMAT_VERSION,
        key,
        value: value.map(StateValue),
        proof: bytes,
        header: block.header.clone(),
        commit: commit.clone(),
    };
    g.bench_function("state_verify", |b| b.iter(|| state_proof.verify(&f.genesis).expect("valid")));
    g.finish();
    state_tree(c);
}

/// A block's state tree update over a tree of 40,000 keys (in memory, so only the update's
/// own work is timed): 500 new keys, 500 changed and 250 deleted, as a busy block's new jobs,
/// settled jobs and retired ones. In one pass (what a node does) and one key at a time.
fn state_tree(c: &mut Criterion) {
    use cairn_ledger::state_tree::{MemoryTree, StateChange, prepare, prepare_one_by_one};
    let key = |i: u32| Hash::of(&i.to_be_bytes()).0.to_vec();
    let value = |i: u32, v: u8| [Hash::of(&i.to_le_bytes()).0.as_slice(), &[v; 200]].concat();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..40_000).map(|i| (key(i), value(i, 0))).collect();
    let (tree, _) = MemoryTree::with_genesis(&entries).expect("a tree");
    let mut changes: Vec<StateChange> = (40_000..40_500).map(|i| (key(i), Some(value(i, 1)))).collect();
    changes.extend((0..500).map(|i| (key(i * 7), Some(value(i, 2)))));
    changes.extend((0..250).map(|i| (key(i * 7 + 1), None)));
    changes.sort();
    let mut g = c.benchmark_group("state_tree");
    g.throughput(Throughput::Elements(changes.len() as u64));
    g.bench_function(format!("prepare_{}_changes_in_one_pass", changes.len()), |b| {
        b.iter(|| prepare(&tree, &changes, 1).expect("update"))
    });
    g.bench_function(format!("prepare_{}_changes_one_key_at_a_time", changes.len()), |b| {
        b.iter(|| prepare_one_by_one(&tree, &changes, 1).expect("update"))
    });
    g.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
