//! Tests of the store: blocks across a reopen, and pruning of the state tree.

use cairn_ledger::state_tree;
use cairn_ledger::{
    Block, BlockHeader, Commit, ExecutionReceipt, FORMAT_VERSION, Hash, JobResult, JobStatus, Keypair, ResultClaim,
    StateChange,
};

use crate::*;

/// Records to store: they need not verify (the store checks no signature), only encode.
struct Sample {
    header: BlockHeader,
    commit: Commit,
    receipt: ExecutionReceipt,
}

/// A write of `block` with no receipts or job index entries.
fn bare<'a>(
    block: &'a Block,
    commit: &'a Commit,
    state: &'a [StateChange],
    tree: &'a state_tree::StateUpdate,
) -> BlockWrite<'a> {
    BlockWrite { block, commit, receipts: &[], jobs: &[], state, tree }
}

impl Sample {
    /// An empty block at `height` on the sample header, and its commit.
    fn block_at(&self, height: u64) -> (Block, Commit) {
        let mut block = Block { header: self.header.clone(), txs: vec![], last_commit: None };
        block.header.height = height;
        let commit = Commit { height, block_hash: block.hash(), ..self.commit.clone() };
        (block, commit)
    }
}

/// Two stores of `chain_id`, in folders of their own, that keep 3 versions of the state, each
/// with the same genesis state: keys `0..keys`.
fn two_stores_keeping_3_versions(chain_id: Hash, keys: u8) -> ([tempfile::TempDir; 2], Vec<Store>) {
    let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
    let stores = dirs
        .iter()
        .map(|d| {
            let mut store = Store::open(d.path(), chain_id).expect("open");
            store.set_state_history(3);
            let g: Vec<StateChange> = (0..keys).map(|i| (vec![i], Some(vec![i, 0]))).collect();
            store.init_genesis_state(&g, &state_tree::prepare(&store, &g, 0).expect("v0")).expect("genesis");
            store
        })
        .collect();
    (dirs, stores)
}

/// A chain id, and a block header at height 7 with its (unsigned) commit and a receipt.
fn sample() -> (Sample, Hash) {
    let chain_id = Hash::of(b"store tests");
    let provider = Keypair::from_seed([3; 32]);
    let output = b"out".to_vec();
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id: Hash::of(b"j"),
        module_id: Hash::of(b"module"),
        input_hash: Hash::of(b"in"),
        output_hash: Hash::of(&output),
        fuel_used: 100,
        status: JobStatus::Ok,
        provider: provider.public(),
    };
    let receipt = JobResult::new(claim, output, &provider).receipt();
    let header = BlockHeader {
        version: FORMAT_VERSION,
        chain_id,
        height: 7,
        parent_hash: Hash::of(b"parent"),
        time_ms: 1_700_000_000_000,
        proposer: Keypair::from_seed([10; 32]).public(),
        tx_root: Hash::of(b"txs"),
        receipt_root: Hash::of(b"receipts"),
        state_root: Hash::of(b"state"),
        last_commit_hash: Hash::of(b"last"),
        tx_count: 0,
        receipt_count: 1,
    };
    let commit = Commit { version: FORMAT_VERSION, height: 7, round: 0, block_hash: header.hash(), signatures: vec![] };
    (Sample { header, commit, receipt }, chain_id)
}

#[test]
fn store_reopens_at_its_head_and_refuses_another_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, chain_id) = sample();
    let (block, commit) = records.block_at(1);
    {
        let store = Store::open(dir.path(), chain_id).expect("open");
        assert_eq!(store.head_height().expect("head"), 0);
        let jobs = [(Hash::of(b"j"), JobLocation { offer_height: Some(1), receipts: vec![(1, 0)], retired: None })];
        let genesis_state = [(b"g".to_vec(), Some(b"0".to_vec()))];
        let tree0 = state_tree::prepare(&store, &genesis_state, 0).expect("tree v0");
        store.init_genesis_state(&genesis_state, &tree0).expect("genesis state");
        let state = [(b"k".to_vec(), Some(b"v".to_vec()))];
        let tree = state_tree::prepare(&store, &state, 1).expect("tree v1");
        store
            .commit_block(BlockWrite {
                block: &block,
                commit: &commit,
                receipts: std::slice::from_ref(&records.receipt),
                jobs: &jobs,
                state: &state,
                tree: &tree,
            })
            .expect("commit");
        assert_eq!(store.state_root(1).expect("root"), Some(tree.root));
        let not_next = bare(&block, &commit, &[], &tree);
        assert!(store.commit_block(not_next).is_err(), "height 1 again must be refused");
        let id = store.put_blob(b"wasm").expect("blob");
        assert_eq!(store.blob(&id).expect("read"), Some(b"wasm".to_vec()));
        let other = store.put_blob(b"other").expect("blob");
        let mut both = vec![id, other];
        both.sort();
        assert_eq!(store.blob_ids(10).expect("ids"), both, "in id order");
        assert_eq!(store.blob_ids(1).expect("ids"), both[..1], "at most max");
        assert_eq!(store.blob_bytes(), 4 + 5);
    }
    let store = Store::open(dir.path(), chain_id).expect("reopen");
    assert_eq!(store.head_height().expect("head"), 1);
    assert_eq!(store.header(1).expect("read"), Some(block.header.clone()), "the header alone");
    assert_eq!(store.header(2).expect("read"), None);
    assert_eq!(store.block(1).expect("read"), Some(block));
    assert_eq!(store.commit(1).expect("read"), Some(commit));
    assert_eq!(store.receipts(1).expect("read"), Some(vec![records.receipt.clone()]));
    let entries = store.state_entries().expect("read");
    assert_eq!(entries, vec![(b"g".to_vec(), b"0".to_vec()), (b"k".to_vec(), b"v".to_vec())]);
    assert_eq!(state_tree::MemoryTree::root_of(&entries).expect("root"), store.state_root(1).expect("r").expect("v1"));
    // Proofs of presence and absence from the stored tree.
    let (value, proof) = store.state_proof(b"k", 1).expect("proof");
    assert_eq!(value, Some(b"v".to_vec()));
    let proof: jmt::proof::SparseMerkleProof<sha2::Sha256> = borsh::from_slice(&proof).expect("decodes");
    let root = jmt::RootHash(store.state_root(1).expect("r").expect("v1").0);
    proof.verify_existence(root, state_tree::key_hash(b"k"), b"v").expect("exists");
    let (value, proof) = store.state_proof(b"absent", 1).expect("proof");
    assert_eq!(value, None);
    let proof: jmt::proof::SparseMerkleProof<sha2::Sha256> = borsh::from_slice(&proof).expect("decodes");
    proof.verify_nonexistence(root, state_tree::key_hash(b"absent")).expect("absent");
    assert_eq!(store.job(&Hash::of(b"j")).expect("read").map(|j| j.receipts), Some(vec![(1, 0)]));
    drop(store);
    assert!(Store::open(dir.path(), Hash::of(b"another chain")).is_err());
}

#[test]
fn stale_state_tree_nodes_and_values_are_pruned_beyond_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, chain_id) = sample();
    let mut store = Store::open(dir.path(), chain_id).expect("open");
    store.set_state_history(2);
    let g = [(b"k".to_vec(), Some(b"0".to_vec())), (b"gone".to_vec(), Some(b"x".to_vec()))];
    store.init_genesis_state(&g, &state_tree::prepare(&store, &g, 0).expect("v0")).expect("genesis");
    let commit_at = |store: &Store, height: u64, changes: &[StateChange]| {
        let (block, commit) = records.block_at(height);
        let tree = state_tree::prepare(store, changes, height).expect("update");
        let w = bare(&block, &commit, changes, &tree);
        store.commit_block(w).expect("commit");
    };
    for height in 1..=6u64 {
        let mut changes = vec![(b"k".to_vec(), Some(height.to_le_bytes().to_vec()))];
        if height == 2 {
            changes.push((b"gone".to_vec(), None));
        }
        commit_at(&store, height, &changes);
    }
    // Recent versions still prove; versions older than the history are gone.
    for height in [4u64, 5, 6] {
        let (value, _) = store.state_proof(b"k", height).expect("recent proof");
        assert_eq!(value, Some(height.to_le_bytes().to_vec()));
        let (absent, _) = store.state_proof(b"gone", height).expect("absence proof");
        assert_eq!(absent, None);
    }
    assert!(store.state_root(1).expect("read").is_none(), "version 1's root was pruned");
    assert!(store.state_proof(b"k", 1).is_err());
    // Value rows: `k` keeps the rows versions 4..=6 read; the deleted key keeps none, nor its
    // row in the key index (no kept version holds it).
    assert_eq!(store.row_count("jmt_values"), 3);
    assert_eq!((store.row_count("jmt_keys"), store.row_count("jmt_stale_keys")), (1, 0), "only `k` is indexed");
    // Pruning resumes where it stopped: a store reopened with a longer history prunes
    // nothing more, and one with the same history keeps pruning block by block.
    drop(store);
    let mut store = Store::open(dir.path(), chain_id).expect("reopen");
    store.set_state_history(2);
    commit_at(&store, 7, &[(b"k".to_vec(), Some(b"7".to_vec()))]);
    assert_eq!(store.row_count("jmt_values"), 3, "rows of versions 5..=7");
    assert!(store.state_root(4).expect("read").is_none(), "version 4 was pruned after block 7");
    assert!(store.state_root(5).expect("read").is_some());
    // A deleted key that comes back, in the very block that prunes its deletion, keeps its
    // index row; so does one deleted and back within the history.
    commit_at(&store, 8, &[(b"again".to_vec(), Some(b"1".to_vec()))]);
    commit_at(&store, 9, &[(b"again".to_vec(), None), (b"back".to_vec(), Some(b"1".to_vec()))]);
    commit_at(&store, 10, &[(b"back".to_vec(), None)]);
    // Block 11 prunes `again`'s deletion (at 9) and gives it a value; `back`, deleted at 10,
    // is back before block 12 prunes that deletion.
    commit_at(&store, 11, &[(b"again".to_vec(), Some(b"2".to_vec())), (b"back".to_vec(), Some(b"2".to_vec()))]);
    for height in 12..=14u64 {
        commit_at(&store, height, &[(b"k".to_vec(), Some(height.to_le_bytes().to_vec()))]);
    }
    assert_eq!(store.row_count("jmt_keys"), 3, "k, again and back are indexed");
    for key in [b"k".as_slice(), b"again", b"back"] {
        assert!(store.key_indexed(key), "{key:?} is indexed");
    }
    let stale = store.row_count("jmt_stale");
    store.set_state_history(100);
    commit_at(&store, 15, &[(b"k".to_vec(), Some(b"15".to_vec()))]);
    assert!(store.row_count("jmt_stale") > stale, "nothing pruned with the longer history");
    assert!(store.state_root(12).expect("read").is_some());
}

#[test]
fn a_database_of_another_store_format_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain_id = Hash::of(b"chain");
    {
        let store = Store::open(dir.path(), chain_id).expect("a new database takes this format");
        // As a database written before the format was recorded.
        store.forget_format();
    }
    let e = Store::open(dir.path(), chain_id).expect_err("an older format is refused");
    let message = e.to_string();
    assert!(message.contains("store format 1") && message.contains("move the folder aside"), "{message}");
}

/// Each block writes only what it adds to a job's location, in a row of its own: a read gives
/// the whole location, in height order, before and after the store is reopened, and nothing
/// of another job's. A row that does not decode fails the read.
#[test]
fn job_locations_are_merged_block_by_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, chain_id) = sample();
    let (job, other) = (Hash::of(b"job"), Hash::of(b"other"));
    let adds = [
        vec![(job, JobLocation { offer_height: Some(1), ..JobLocation::default() })],
        vec![
            (job, JobLocation { receipts: vec![(2, 0), (2, 3)], ..JobLocation::default() }),
            (other, JobLocation { offer_height: Some(2), ..JobLocation::default() }),
        ],
        vec![(job, JobLocation { receipts: vec![(3, 1)], ..JobLocation::default() })],
        vec![(job, JobLocation { retired: Some(b"retired".to_vec()), ..JobLocation::default() })],
    ];
    let whole = JobLocation {
        offer_height: Some(1),
        receipts: vec![(2, 0), (2, 3), (3, 1)],
        retired: Some(b"retired".to_vec()),
    };
    {
        let store = Store::open(dir.path(), chain_id).expect("open");
        let genesis = [(b"k".to_vec(), Some(b"v".to_vec()))];
        store.init_genesis_state(&genesis, &state_tree::prepare(&store, &genesis, 0).expect("v0")).expect("genesis");
        for (i, jobs) in adds.iter().enumerate() {
            let height = i as u64 + 1;
            let (block, commit) = records.block_at(height);
            let tree = state_tree::prepare(&store, &[], height).expect("update");
            store.commit_block(BlockWrite { jobs, ..bare(&block, &commit, &[], &tree) }).expect("commit");
        }
        assert_eq!(store.job(&job).expect("read"), Some(whole.clone()));
        let other_alone = JobLocation { offer_height: Some(2), ..JobLocation::default() };
        assert_eq!(store.job(&other).expect("read"), Some(other_alone));
    }
    let store = Store::open(dir.path(), chain_id).expect("reopen");
    assert_eq!(store.job(&job).expect("read"), Some(whole));
    assert_eq!(store.job(&Hash::of(b"never")).expect("read"), None);
    store.put_job_row(&other, 9, &[0xff; 3]);
    assert!(store.job(&other).is_err(), "a row that does not decode is an error, not a job");
}

/// A database of format 5 (a job's location in one row, rewritten whole) opens as this format,
/// and a job's row there comes first of what later blocks add; formats other than 5, 7 and 8
/// are refused.
#[test]
fn a_format_5_database_is_upgraded_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain_id = Hash::of(b"chain");
    let job = Hash::of(b"job");
    {
        let store = Store::open(dir.path(), chain_id).expect("open");
        store.set_format(5);
        store.put_whole_job(&job, &JobLocation { offer_height: Some(4), ..JobLocation::default() });
    }
    {
        let store = Store::open(dir.path(), chain_id).expect("format 5 opens");
        assert_eq!(store.format(), Some(crate::store::STORE_FORMAT_VERSION), "marked as this format at open");
        store.put_job_row(
            &job,
            5,
            &borsh::to_vec(&JobLocation { receipts: vec![(5, 0)], ..JobLocation::default() }).expect("encodes"),
        );
        assert_eq!(
            store.job(&job).expect("read"),
            Some(JobLocation { offer_height: Some(4), receipts: vec![(5, 0)], retired: None })
        );
        store.set_format(4);
    }
    let e = Store::open(dir.path(), chain_id).expect_err("format 4 is refused");
    assert!(e.to_string().contains("store format 4"), "{e}");
    for format in [6, 9] {
        let dir = tempfile::tempdir().expect("tempdir");
        Store::open(dir.path(), chain_id).expect("open").set_format(format);
        let e = Store::open(dir.path(), chain_id).expect_err("refused");
        assert!(e.to_string().contains(&format!("store format {format}")), "{e}");
    }
}

/// Stores of format 5 indexed what goes stale in the state tree one row per entry;
/// this store writes a row per version and prunes both: a store whose index was rewritten in
/// the older layout midway ends with the same tables as one whose index never was.
#[test]
fn stale_rows_of_the_older_layout_are_pruned_too() {
    let (records, chain_id) = sample();
    let (_dirs, stores) = two_stores_keeping_3_versions(chain_id, 30);
    for height in 1..=14u64 {
        // Twelve of forty keys a block, a quarter of them deleted.
        let changes: Vec<StateChange> = (0..12u64)
            .map(|i| {
                (vec![((height * 7 + i * 3) % 40) as u8], ((height + i) % 4 != 0).then(|| vec![height as u8, i as u8]))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        for store in &stores {
            let (block, commit) = records.block_at(height);
            let tree = state_tree::prepare(store, &changes, height).expect("update");
            store.commit_block(bare(&block, &commit, &changes, &tree)).expect("commit");
        }
        if height == 6 {
            let rows = stores[1].rewrite_stale_rows_one_per_entry();
            assert!(rows > 3 * 12, "every entry of versions 4 to 6 in a row of its own: {rows}");
        }
        assert_eq!(stores[0].state_root(height).expect("read"), stores[1].state_root(height).expect("read"));
    }
    assert!(stores[0].tree_rows() == stores[1].tree_rows(), "the same tree tables once the older rows are pruned");
    assert!(stores[1].state_root(10).expect("read").is_none(), "pruned beyond the history");
}

/// Bytes of the write-ahead log's files in a store's folder (a file rocksdb deletes while
/// they are listed counts as gone).
fn wal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Blocks of ~64 KiB written one after the other, after one write to a column family nobody
/// writes again: within its budget the write-ahead log stays near its bound (rocksdb flushes
/// what holds the oldest file once it is over), where rocksdb's default — four times every
/// column family's memtables, gigabytes here — lets it keep every file since that write.
#[test]
fn the_write_ahead_log_stays_within_the_budget() {
    let (records, chain_id) = sample();
    let write_blocks = |dir: &std::path::Path, budget: StoreBudget| {
        let store = Store::open_with_budget(dir, chain_id, budget).expect("open");
        let g = [(b"k".to_vec(), Some(b"0".to_vec()))];
        store.init_genesis_state(&g, &state_tree::prepare(&store, &g, 0).expect("v0")).expect("genesis");
        // A column family written once (a module): its unflushed write pins every log file
        // since, until something flushes it.
        store.put_blob(b"a module").expect("blob");
        for height in 1..=96u64 {
            let (block, commit) = records.block_at(height);
            let changes = vec![(b"k".to_vec(), Some(vec![height as u8; 64 << 10]))];
            let tree = state_tree::prepare(&store, &changes, height).expect("update");
            let w = bare(&block, &commit, &changes, &tree);
            store.commit_block(w).expect("commit");
        }
        wal_bytes(dir)
    };
    let bounded = tempfile::tempdir().expect("tempdir");
    let unbounded = tempfile::tempdir().expect("tempdir");
    let budget = StoreBudget { write_buffer_bytes: 1 << 20, wal_bytes_max: 2 << 20, ..StoreBudget::default() };
    let within = write_blocks(bounded.path(), budget);
    // rocksdb's own default (0: four times every column family's memtables).
    let default_rocksdb = write_blocks(unbounded.path(), StoreBudget { wal_bytes_max: 0, ..budget });
    // Flushes run in the background: on a busy machine the log may lag its bound a little,
    // and rocksdb's own flushes (of the largest memtable, at the memtables' budget) sometimes
    // release a file or two without a budget too.
    assert!(within <= 4 << 20, "the log holds {within} bytes with a budget of 2 MiB");
    assert!(default_rocksdb > within, "without a budget the log holds {default_rocksdb} bytes, with one {within}");
}

/// A state served in chunks from one store and restored into another: the same entries,
/// root and proofs, the block and commit at the snapshot's height as the head, and the next
/// block's update on top of it gives the same root in both.
#[test]
fn a_state_served_in_chunks_restores_into_an_empty_store() {
    let (records, chain_id) = sample();
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = std::sync::Arc::new(Store::open(source_dir.path(), chain_id).expect("open"));
    let genesis: Vec<StateChange> = (0..50u32).map(|i| (format!("g{i}").into_bytes(), Some(vec![1; 40]))).collect();
    source.init_genesis_state(&genesis, &state_tree::prepare(source.as_ref(), &genesis, 0).expect("v0")).expect("g");
    let block_at = |height: u64| {
        let mut block = Block { header: records.header.clone(), txs: vec![], last_commit: None };
        block.header.height = height;
        block
    };
    let mut last = None;
    for height in 1..=5u64 {
        let changes: Vec<StateChange> = (0..40u32)
            .map(|i| (format!("k{}", i + 10 * height as u32).into_bytes(), Some(height.to_le_bytes().to_vec())))
            .collect();
        let tree = state_tree::prepare(source.as_ref(), &changes, height).expect("update");
        let mut block = block_at(height);
        block.header.state_root = tree.root;
        let commit = Commit { height, block_hash: block.hash(), ..records.commit.clone() };
        let w = bare(&block, &commit, &changes, &tree);
        source.commit_block(w).expect("commit");
        last = Some((block, commit));
    }
    let (block, commit) = last.expect("blocks");
    let live = source.state_entries().expect("entries").len();
    assert_eq!(source.row_count("jmt_keys"), live, "each key is indexed once, when it is new");
    // Served in chunks of 16 entries, as a peer would; checked by the restore as they come.
    let mut restore = cairn_ledger::snapshot::StateRestore::new(5, block.header.state_root).expect("restore");
    let mut chunks = 0;
    while let Some(start) = restore.next_start() {
        let chunk = Store::state_chunk(&source, 5, start.0, 16, 1 << 20).expect("chunk");
        restore.add(chunk).expect("an honest chunk proves");
        chunks += 1;
    }
    assert_eq!(chunks, source.state_entries().expect("entries").len().div_ceil(16));
    assert!(Store::state_chunk(&source, 99, [0; 32], 16, 1 << 20).is_err(), "a height not kept");
    let (entries, tree) = restore.finish().expect("complete");
    let dir = tempfile::tempdir().expect("tempdir");
    let restored = std::sync::Arc::new(Store::open(dir.path(), chain_id).expect("open"));
    restored.restore_state(&block, &commit, &entries, &tree).expect("restore");
    assert!(restored.restore_state(&block, &commit, &entries, &tree).is_err(), "only into an empty store");
    assert_eq!((restored.head_height().expect("head"), restored.base_height().expect("base")), (5, 5));
    assert_eq!(source.base_height().expect("base"), 1);
    assert_eq!(restored.block(5).expect("read"), Some(block.clone()));
    assert_eq!(restored.commit(5).expect("read"), Some(commit));
    assert_eq!(restored.block(4).expect("read"), None, "blocks before the snapshot are not here");
    assert_eq!(restored.state_entries().expect("entries"), source.state_entries().expect("entries"));
    assert_eq!(restored.state_root(5).expect("root"), Some(block.header.state_root));
    let (value, _) = restored.state_proof(b"k55", 5).expect("proof");
    assert_eq!(value, Some(5u64.to_le_bytes().to_vec()));
    // The restored store serves chunks itself (its keys are indexed too), and goes on.
    Store::state_chunk(&restored, 5, [0; 32], 16, 1 << 20).expect("a restored store serves its state");
    let next = [(b"k0".to_vec(), Some(b"six".to_vec())), (b"new".to_vec(), Some(b"x".to_vec()))];
    let a = state_tree::prepare(source.as_ref(), &next, 6).expect("next");
    let b = state_tree::prepare(restored.as_ref(), &next, 6).expect("next");
    assert_eq!(a.root, b.root);
    let block6 = block_at(6);
    let commit6 = Commit { height: 6, block_hash: block6.hash(), ..records.commit.clone() };
    let w = bare(&block6, &commit6, &next, &b);
    restored.commit_block(w).expect("the next block commits on the restored state");
    assert_eq!(restored.state_root(6).expect("root"), Some(a.root));
}

/// Rewrites the stopped store at `path` as a node of format `format` left it: `entries`
/// (the state at its head) also in the flat `state` table, and when `key_index` is false no
/// key index (a database written before it existed).
fn as_older_format(path: &std::path::Path, format: u32, entries: &[(Vec<u8>, Vec<u8>)], key_index: bool) {
    let opts = rocksdb::Options::default();
    let tables = rocksdb::DB::list_cf(&opts, path).expect("tables");
    let mut db = rocksdb::DB::open_cf(&opts, path, &tables).expect("open the stopped store");
    db.create_cf("state", &opts).expect("the flat state table");
    let mut batch = rocksdb::WriteBatch::default();
    for (k, v) in entries {
        batch.put_cf(db.cf_handle("state").expect("table"), k, v);
    }
    let meta = db.cf_handle("meta").expect("table");
    batch.put_cf(meta, b"format", format.to_be_bytes());
    if key_index {
        batch.put_cf(meta, b"keys_indexed", []);
    } else {
        batch.delete_range_cf(db.cf_handle("jmt_keys").expect("table"), [].as_slice(), [0xffu8; 33].as_slice());
    }
    db.write(batch).expect("write");
}

/// Databases of formats 5 and 7 kept each key's latest value in a flat `state` table too;
/// opened, the table is dropped (a database older than the key index has its keys indexed
/// from it first), the state read from the tree's value rows is the same, and the database
/// is marked format 8. One whose table was dropped before a crash (format 7, no table)
/// upgrades the same way.
#[test]
fn the_flat_state_table_of_older_formats_is_dropped_at_open() {
    let (records, chain_id) = sample();
    for (format, key_index, table) in [(5, false, true), (7, true, true), (7, false, true), (7, true, false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = {
            let store = Store::open(dir.path(), chain_id).expect("open");
            let g: Vec<StateChange> = (0..6u8).map(|i| (vec![b'k', i], Some(vec![i; 20]))).collect();
            store.init_genesis_state(&g, &state_tree::prepare(&store, &g, 0).expect("v0")).expect("genesis");
            // A key changed, one deleted, one new.
            let changes = vec![(vec![b'k', 1], Some(vec![9; 5])), (vec![b'k', 2], None), (vec![b'n'], Some(vec![1]))];
            let (block, commit) = records.block_at(1);
            let tree = state_tree::prepare(&store, &changes, 1).expect("update");
            store.commit_block(bare(&block, &commit, &changes, &tree)).expect("commit");
            store.state_entries().expect("entries")
        };
        assert_eq!(entries.len(), 6, "six keys left");
        assert!(entries.contains(&(vec![b'k', 1], vec![9; 5])) && !entries.iter().any(|(k, _)| k == &[b'k', 2]));
        if table {
            as_older_format(dir.path(), format, &entries, key_index);
        } else {
            Store::open(dir.path(), chain_id).expect("open").set_format(format);
        }
        let store = Store::open(dir.path(), chain_id).expect("an older format opens");
        assert_eq!(store.format(), Some(crate::store::STORE_FORMAT_VERSION), "marked as this format at open");
        assert_eq!(store.state_entries().expect("entries"), entries, "format {format}, key index {key_index}");
        drop(store);
        let tables = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).expect("tables");
        assert!(!tables.iter().any(|t| t == "state"), "the flat state table is gone: {tables:?}");
    }
}

/// What serving and checking a large state costs, chunk by chunk (state sync): 100,000 entries
/// the size of a job's, served in chunks of 2,048 and restored. Run by hand, release build:
/// `cargo test --release -p cairn-store -- --ignored --nocapture state_sync_costs`.
#[test]
#[ignore = "a measurement, run by hand"]
fn state_sync_costs() {
    use std::time::{Duration, Instant};
    let (records, chain_id) = sample();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = std::sync::Arc::new(Store::open(dir.path(), chain_id).expect("open"));
    let genesis: Vec<StateChange> = vec![(b"g".to_vec(), Some(vec![1; 8]))];
    source.init_genesis_state(&genesis, &state_tree::prepare(source.as_ref(), &genesis, 0).expect("v0")).expect("g");
    let changes: Vec<StateChange> = (0..100_000u32)
        .map(|i| {
            let mut key = vec![3u8];
            key.extend_from_slice(&Hash::of(&i.to_le_bytes()).0);
            (key, Some(vec![(i % 251) as u8; 450]))
        })
        .collect();
    let tree = state_tree::prepare(source.as_ref(), &changes, 1).expect("update");
    let mut block = Block { header: records.header.clone(), txs: vec![], last_commit: None };
    block.header.height = 1;
    block.header.state_root = tree.root;
    let commit = Commit { height: 1, block_hash: block.hash(), ..records.commit.clone() };
    let w = bare(&block, &commit, &changes, &tree);
    source.commit_block(w).expect("commit");
    let mut restore = cairn_ledger::snapshot::StateRestore::new(1, block.header.state_root).expect("restore");
    let (mut read, mut encode, mut add, mut chunks) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    let all = Instant::now();
    while let Some(start) = restore.next_start() {
        let t = Instant::now();
        let chunk = Store::state_chunk(&source, 1, start.0, 2_048, 4 << 20).expect("chunk");
        read += t.elapsed();
        let t = Instant::now();
        let bytes = borsh::to_vec(&chunk).expect("encodes");
        let chunk: cairn_ledger::snapshot::StateChunk = borsh::from_slice(&bytes).expect("decodes");
        encode += t.elapsed();
        let t = Instant::now();
        restore.add(chunk).expect("proves");
        add += t.elapsed();
        chunks += 1;
    }
    let t = Instant::now();
    let (entries, _) = restore.finish().expect("complete");
    let finish = t.elapsed();
    println!(
        "{} entries, {chunks} chunks: read {read:?}, encode+decode {encode:?}, add {add:?}, finish {finish:?}, all {:?}",
        entries.len(),
        all.elapsed()
    );
    // What a node restarted on this state reads to rebuild it: each key's newest value row.
    source.flush_tables().expect("flush");
    drop(source);
    let reopened = Store::open(dir.path(), chain_id).expect("reopen");
    let t = Instant::now();
    let loaded = reopened.state_entries().expect("entries");
    println!("{} entries loaded at startup in {:?}", loaded.len(), t.elapsed());
}

#[test]
fn blobs_past_their_budget_are_deleted_oldest_first_unless_in_use_or_young() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain_id = Hash::of(b"blobs");
    let ids: Vec<Hash>;
    {
        let store = Store::open(dir.path(), chain_id).expect("open");
        ids = (0..5u8).map(|i| store.put_blob(&[i; 100]).expect("blob")).collect();
        assert_eq!(store.put_blob(&[0; 100]).expect("again"), ids[0], "idempotent");
        assert_eq!(store.blob_bytes(), 500, "counted once each");
        // Young: nothing goes while every blob is younger than the minimum age.
        let none = store.evict_blobs(0, std::time::Duration::from_secs(60), &|_| false).expect("evict");
        assert!(none.is_empty());
        // Old enough: the oldest go first, the one in use stays, until within the budget.
        let in_use = ids[1];
        let deleted = store.evict_blobs(250, std::time::Duration::ZERO, &|id| *id == in_use).expect("evict");
        assert_eq!(deleted, vec![ids[0], ids[2], ids[3]]);
        assert_eq!(store.blob_bytes(), 200);
        assert!(!store.has_blob(&ids[0]).expect("read") && store.has_blob(&in_use).expect("read"));
        // Within the budget: nothing more.
        assert!(store.evict_blobs(250, std::time::Duration::ZERO, &|_| false).expect("evict").is_empty());
    }
    // The tally survives a restart, and new blobs come after the old ones.
    let store = Store::open(dir.path(), chain_id).expect("reopen");
    assert_eq!(store.blob_bytes(), 200);
    let newer = store.put_blob(b"newer").expect("blob");
    let deleted = store.evict_blobs(0, std::time::Duration::ZERO, &|_| false).expect("evict");
    assert_eq!(deleted, vec![ids[1], ids[4], newer]);
    assert_eq!(store.blob_bytes(), 0);
}

/// The store keeps the tree nodes and value row versions the last blocks wrote in memory
/// (`crate::recent`), and is told which keys a block creates (`StateUpdate::created`): a store
/// that uses both and one that forgets the first after every block and is told nothing end
/// with the same tables and roots, through updates, deletions, keys that come back, and
/// pruning. The keys the tree update names created are those a model of the state finds new.
#[test]
fn recent_tree_writes_change_nothing_stored() {
    let (records, chain_id) = sample();
    let (_dirs, stores) = two_stores_keeping_3_versions(chain_id, 50);
    // A small generator, the same for both: each block changes 20 of 80 keys; a third of the
    // changes delete.
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Which keys have a value, to check which ones each block creates.
    let mut valued: std::collections::BTreeSet<Vec<u8>> = (0..50u8).map(|i| vec![i]).collect();
    let mut told = 0;
    for height in 1..=40u64 {
        let mut keys = std::collections::BTreeMap::new();
        for _ in 0..20 {
            let r = next();
            let value = (r % 3 != 0).then(|| vec![(r >> 8) as u8, height as u8]);
            keys.insert(vec![((r >> 16) % 80) as u8], value);
        }
        let changes: Vec<StateChange> = keys.into_iter().collect();
        let mut created: Vec<jmt::KeyHash> = changes
            .iter()
            .filter(|(k, v)| v.is_some() && !valued.contains(k))
            .map(|(k, _)| state_tree::key_hash(k))
            .collect();
        created.sort_unstable();
        told += created.len();
        for (k, v) in &changes {
            match v {
                Some(_) => valued.insert(k.clone()),
                None => valued.remove(k),
            };
        }
        let mut roots = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            let (block, commit) = records.block_at(height);
            let mut tree = state_tree::prepare(store, &changes, height).expect("update");
            assert_eq!(tree.created, created, "block {height}'s new keys");
            if i == 1 {
                tree.created.clear();
            }
            roots.push(tree.root);
            store.commit_block(bare(&block, &commit, &changes, &tree)).expect("commit");
            if i == 1 {
                store.forget_recent();
            }
        }
        assert_eq!(roots[0], roots[1], "block {height}'s root");
        assert!(stores[0].tree_rows() == stores[1].tree_rows(), "block {height}: the same tree tables");
    }
    for height in [37, 40] {
        assert_eq!(
            stores[0].state_proof(&[7], height).expect("proof"),
            stores[1].state_proof(&[7], height).expect("proof")
        );
    }
    assert!(stores[0].state_root(36).expect("read").is_none(), "pruned beyond the history in both");
    assert!(told > 40, "keys created, some of them deleted before: {told}");
}

/// rocksdb runs with the store's settings: its options file says that table files are synced
/// as they are written, every [`TABLE_SYNC_BYTES`](crate::store::TABLE_SYNC_BYTES).
#[test]
fn table_files_are_synced_as_they_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = Store::open(dir.path(), Hash::of(b"chain")).expect("open");
    let options = std::fs::read_dir(dir.path())
        .expect("folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("OPTIONS-"))
        .map(|e| std::fs::read_to_string(e.path()).expect("options file"))
        .last()
        .expect("rocksdb writes its options file");
    let line = format!("bytes_per_sync={}", crate::store::TABLE_SYNC_BYTES);
    assert!(options.lines().any(|l| l.trim() == line), "{line} in:\n{options}");
}
