//! The block store: rocksdb with one column family per table, one atomic batch per block.
//!
//! | table (column family) | key | value |
//! |---|---|---|
//! | `blocks` | height (u64 big-endian) | borsh [`Block`] |
//! | `commits` | height | borsh [`Commit`] that finalized that block |
//! | `receipts` | height | borsh `Vec<ExecutionReceipt>`, the block's receipts in order |
//! | `jobs` | job id ‖ height (u64 BE) | borsh [`JobLocation`]: what the block at that height added to where the job's offer and receipts are, and what is kept of it once retired from the state; read back as one ([`JobLocation::merge`], in height order) |
//! | `blobs` | module id | wasm bytes |
//! | `meta` | `b"head"`, `b"chain_id"`, `b"format"`, `b"pruned"`, `b"base"` | height (u64 BE), chain id, [`STORE_FORMAT_VERSION`] (u32 BE), the state tree pruned up to; `base`: the height of the snapshot the state was restored from (blocks below it are not here) |
//! | `jmt_nodes`, `jmt_values`, `jmt_stale`, `jmt_stale_values` | see [`crate::tree`] | the state tree; each key's newest `jmt_values` row is the state's value (opaque here) |
//! | `jmt_keys` | sha256(state key) | the state key (the tree holds only hashes; the state is loaded from it and the newest value rows at startup, and state sync serves keys) |
//! | `jmt_stale_keys` | deleted-at version (u64 BE) | sha256 of each state key deleted then, end to end: its `jmt_keys` row goes once no kept version holds it (unless the key came back) |
//! | `consensus_wal` | height ‖ seq (u64 BE each) | one consensus write-ahead log entry (opaque bytes) |
//! | `proposed` | height ‖ block hash | borsh [`Block`] this validator proposed (kept until decided) |
//! | `evidence` | height ‖ sha256(evidence) | borsh evidence of equivocation (opaque bytes), kept |
//!
//! [`Store::commit_block`] writes a block, its commit, receipts, job index and state changes
//! in one synced `WriteBatch`, then moves the head: after a crash the store reopens at the last
//! block that was fully written, never half of one.

use std::path::Path;
use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBRawIterator, IteratorMode, Options, WriteBatch,
    WriteOptions,
};

use cairn_ledger::snapshot::StateChunk;
use cairn_ledger::state_tree::StateUpdate;
use cairn_ledger::{Block, BlockHeader, Commit, ExecutionReceipt, Hash, StateChange, decode};

use crate::recent::RecentWrites;
use crate::tree::{encode_value, value_in};
use crate::{Error, Result};

const CF_BLOCKS: &str = "blocks";
const CF_COMMITS: &str = "commits";
const CF_RECEIPTS: &str = "receipts";
const CF_JOBS: &str = "jobs";
/// The flat state table of formats 5 and 7 (each key's latest value, as the newest value rows
/// hold it): read once to index the keys of a database older than the key index, then dropped.
const CF_FLAT_STATE: &str = "state";
const CF_BLOBS: &str = "blobs";
const CF_META: &str = "meta";
const CF_JMT_NODES: &str = "jmt_nodes";
const CF_JMT_VALUES: &str = "jmt_values";
const CF_JMT_STALE: &str = "jmt_stale";
const CF_JMT_STALE_VALUES: &str = "jmt_stale_values";
const CF_WAL: &str = "consensus_wal";
const CF_PROPOSED: &str = "proposed";
const CF_EVIDENCE: &str = "evidence";
const CF_JMT_KEYS: &str = "jmt_keys";
const CF_JMT_STALE_KEYS: &str = "jmt_stale_keys";
const CF_BLOB_ORDER: &str = "blob_order";
/// The state tree's tables.
const CF_TREE: [&str; 6] =
    [CF_JMT_NODES, CF_JMT_VALUES, CF_JMT_STALE, CF_JMT_STALE_VALUES, CF_JMT_KEYS, CF_JMT_STALE_KEYS];
const ALL_CFS: [&str; 16] = [
    CF_BLOCKS,
    CF_COMMITS,
    CF_RECEIPTS,
    CF_JOBS,
    CF_BLOBS,
    CF_META,
    CF_JMT_NODES,
    CF_JMT_VALUES,
    CF_JMT_STALE,
    CF_JMT_STALE_VALUES,
    CF_WAL,
    CF_PROPOSED,
    CF_EVIDENCE,
    CF_JMT_KEYS,
    CF_JMT_STALE_KEYS,
    CF_BLOB_ORDER,
];

/// How many versions of the state tree are kept by default before stale nodes are pruned.
pub const STATE_HISTORY_BLOCKS_DEFAULT: u64 = 256;

const META_HEAD: &[u8] = b"head";
const META_CHAIN_ID: &[u8] = b"chain_id";
/// The store's format version ([`STORE_FORMAT_VERSION`], u32 BE).
const META_FORMAT: &[u8] = b"format";

/// The layout of the rows this store writes. A database of another version is refused at open
/// (its rows would be misread), but for formats 5 and 7, which this store upgrades at open:
/// their flat state table is dropped (after its keys are indexed, for a database older than
/// the key index), the rest is read as it is, and the database is marked format 8.
/// - Format 7 kept every key's latest value twice: in the flat `state` table and in the
///   state tree's newest value row. Format 8 keeps the value rows only, and rebuilds the
///   state from them and the key index at startup.
/// - Format 5 also kept each job's location in one row under its id, rewritten by every block
///   that added to it (this store reads such a row as the first of the job's), and indexed
///   what goes stale in the state tree one row per entry, not one row per version (pruning
///   reads both, and the old rows age out).
pub const STORE_FORMAT_VERSION: u32 = 8;
/// The earlier formats this store opens and upgrades ([`STORE_FORMAT_VERSION`]).
const STORE_FORMATS_UPGRADED: [u32; 2] = [5, 7];
/// The highest stale-since version whose tree nodes and value rows are already deleted.
const META_PRUNED: &[u8] = b"pruned";
/// The height of the snapshot a restored state started from (absent: the chain from genesis).
const META_BASE: &[u8] = b"base";
/// In a database of format 5 or 7: set once `jmt_keys` holds the key of every state entry (a
/// database written before the table existed has it filled in from its flat state table at
/// open). Format 8 databases always have the index and never read this.
const META_KEYS_INDEXED: &[u8] = b"keys_indexed";

/// The block cache shared by every column family, by default.
pub const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// The memtables of every column family together, at most, by default: past it the largest
/// is flushed to a table file.
pub const WRITE_BUFFER_BYTES: usize = 32 << 20;
/// The write-ahead log, at most, by default: past it the column families whose unflushed
/// writes hold the oldest log file are flushed, so that file can go. Without it, a column
/// family written rarely keeps every log file since its last flush alive (rocksdb's default
/// bound is four times all the memtables, gigabytes with this many column families).
pub const WAL_BYTES_MAX: u64 = 64 << 20;

/// What the store may hold in memory and in its write-ahead log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreBudget {
    /// The block cache (table blocks, their indexes and bloom filters).
    pub cache_bytes: usize,
    /// All memtables together.
    pub write_buffer_bytes: usize,
    /// The write-ahead log's files together.
    pub wal_bytes_max: u64,
}

impl Default for StoreBudget {
    fn default() -> StoreBudget {
        StoreBudget {
            cache_bytes: BLOCK_CACHE_BYTES,
            write_buffer_bytes: WRITE_BUFFER_BYTES,
            wal_bytes_max: WAL_BYTES_MAX,
        }
    }
}

/// Bloom filter bits per key (≈ 1 % false positives).
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// How many bytes of a table file rocksdb writes before it asks the kernel to start writing
/// them out (`bytes_per_sync`): a flush or compaction then leaves at most this much dirty in
/// the page cache at a time, rather than all of a file for the kernel to write back in one
/// burst beside the next blocks' synced writes. The file's pages stay cached for reads.
pub(crate) const TABLE_SYNC_BYTES: u64 = 1 << 20;

/// The largest record read back from disk (a block with all its transactions).
pub const RECORD_BYTES_MAX: usize = 256 << 20;

/// Where a job's transactions landed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct JobLocation {
    /// Height of the block that included the offer.
    pub offer_height: Option<u64>,
    /// Every receipt of the job — one per accepted result, at most its redundancy — as the
    /// height of the block that holds it and its index there, in the order included.
    pub receipts: Vec<(u64, u32)>,
    /// Once the chain retired the job from the state, what the node keeps of its last entry
    /// (opaque here; the node's `RetiredJob`): what `job_get` tells of it besides its offer.
    pub retired: Option<Vec<u8>>,
}

impl JobLocation {
    /// Adds what a later block wrote of the job: its offer height and retired record, if set,
    /// replace these; its receipts follow these. Each block writes only what it adds, in a row
    /// of its own, so that writing a block reads nothing from the index.
    pub fn merge(&mut self, later: JobLocation) {
        self.offer_height = later.offer_height.or(self.offer_height);
        self.receipts.extend(later.receipts);
        self.retired = later.retired.or(self.retired.take());
    }
}

/// Everything a finalized block writes.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    /// The block.
    pub block: &'a Block,
    /// The commit that finalized it.
    pub commit: &'a Commit,
    /// Its receipts, in order.
    pub receipts: &'a [ExecutionReceipt],
    /// What the block adds to the job index: for each job, what it adds to its location
    /// ([`JobLocation::merge`]), in a row of its own.
    pub jobs: &'a [(Hash, JobLocation)],
    /// The block's state changes (their values are in `tree`): the keys given a value for the
    /// first time are indexed in `jmt_keys`, and pruning keeps the index row of a key given a
    /// value again.
    pub state: &'a [StateChange],
    /// The state tree's update for this block (version = height). For the keys it names
    /// created (`StateUpdate::created`) no earlier value row is looked up: every value row of
    /// a key without a value is already marked stale (a deletion marks the row before it and
    /// its own).
    pub tree: &'a StateUpdate,
}

/// The node's rocksdb database.
pub struct Store {
    db: DB,
    /// The block cache every table shares (kept to read its usage).
    cache: Cache,
    /// Bytes of the blobs stored (their order entries' sizes), and the next order number.
    blobs: std::sync::Mutex<BlobTally>,
    state_history_blocks: u64,
    /// The consensus log and proposed blocks hold nothing below this height (pruning starts
    /// its scan here, not at the first key, past every tombstone it left).
    wal_pruned_below: std::sync::atomic::AtomicU64,
    /// The state tree's nodes and keys' newest value rows the last blocks wrote (read before
    /// the tables).
    recent: std::sync::Mutex<RecentWrites>,
    /// The rows of the stale indexes a block writes, built here ([`StaleRows`]).
    stale_rows: std::sync::Mutex<StaleRows>,
}

/// The memory a store holds (see [`Store::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// The block cache's content (table blocks, indexes and filters), within `cache_bytes`.
    pub block_cache_bytes: u64,
    /// Every memtable, within `write_buffer_bytes`.
    pub memtable_bytes: u64,
    /// Open tables' readers outside the cache.
    pub table_reader_bytes: u64,
}

/// What the store knows of its blobs without reading them.
#[derive(Debug, Default)]
struct BlobTally {
    bytes: u64,
    next_seq: u64,
}

/// A blob's entry in the order it was stored: its id, size and when (ms since the Unix epoch).
fn blob_order_value(id: &Hash, size: u64, stored_ms: u64) -> Vec<u8> {
    let mut v = id.0.to_vec();
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(&stored_ms.to_be_bytes());
    v
}

fn decode_blob_order(v: &[u8]) -> Result<(Hash, u64, u64)> {
    let bad = || Error::Corrupt("a blob order entry is not 48 bytes".into());
    let v: &[u8; 48] = v.try_into().map_err(|_| bad())?;
    let id = Hash(v[..32].try_into().map_err(|_| bad())?);
    let size = u64::from_be_bytes(v[32..40].try_into().map_err(|_| bad())?);
    let stored_ms = u64::from_be_bytes(v[40..48].try_into().map_err(|_| bad())?);
    Ok((id, size, stored_ms))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.db.path().display())
    }
}

fn storage(e: rocksdb::Error) -> Error {
    Error::Storage(e.to_string())
}

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// A `jmt_values` key: key hash ‖ version (big-endian).
fn value_row_key(key_hash: &jmt::KeyHash, version: u64) -> [u8; 40] {
    hash_then(&key_hash.0, version)
}

/// `hash` ‖ `n` (u64 big-endian): the rows of one thing, in the order of `n`.
fn hash_then(hash: &[u8; 32], n: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(hash);
    k[32..].copy_from_slice(&n.to_be_bytes());
    k
}

fn parse_value_row_key(k: &[u8]) -> Option<(jmt::KeyHash, u64)> {
    let hash: [u8; 32] = k.get(..32)?.try_into().ok()?;
    let version: [u8; 8] = k.get(32..)?.try_into().ok()?;
    Some((jmt::KeyHash(hash), u64::from_be_bytes(version)))
}

/// `key_hash`'s value at `max_version` (its latest row at or before it), sought with `rows` (an
/// iterator over `jmt_values`); `None` if it had none or was deleted.
fn value_at(
    rows: &mut DBRawIterator<'_>,
    key_hash: &jmt::KeyHash,
    max_version: u64,
) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(newest_value(rows, key_hash, max_version)?.map(<[u8]>::to_vec))
}

/// The value `key_hash`'s newest row at or before `version` holds, in place (None: no row, or a
/// deletion's), sought with `rows` (an iterator over `jmt_values`).
fn newest_value<'a>(
    rows: &'a mut DBRawIterator<'_>,
    key_hash: &jmt::KeyHash,
    version: u64,
) -> Result<Option<&'a [u8]>> {
    rows.seek_for_prev(value_row_key(key_hash, version));
    if !rows.valid() {
        return rows.status().map(|()| None).map_err(storage);
    }
    match rows.key().and_then(parse_value_row_key) {
        Some((kh, _)) if kh == *key_hash => value_in(rows.value().unwrap_or_default()),
        _ => Ok(None),
    }
}

/// The version of `key_hash`'s latest value row strictly before `version` if that row holds a
/// value, sought with `rows` (an iterator over `jmt_values`). None if there is no such row or
/// it is a deletion's: a deletion marks its own row stale with the one before it, so the key
/// then has no row left to mark.
fn live_row_before(rows: &mut DBRawIterator<'_>, key_hash: &jmt::KeyHash, version: u64) -> Result<Option<u64>> {
    let Some(below) = version.checked_sub(1) else { return Ok(None) };
    rows.seek_for_prev(value_row_key(key_hash, below));
    if !rows.valid() {
        return rows.status().map(|()| None).map_err(storage);
    }
    let Some(found) = rows.key().and_then(parse_value_row_key).filter(|(kh, _)| kh == key_hash).map(|(_, v)| v) else {
        return Ok(None);
    };
    // Read in place: only whether the row holds a value matters.
    Ok(value_in(rows.value().unwrap_or_default())?.is_some().then_some(found))
}

/// The stale index rows of the block being written, built in buffers kept from one block to
/// the next: a busy block's rows are hundreds of KiB, and memory that large, freed after each
/// block, went back to the system and was faulted in again for the next (about 1 % of the
/// machine at the peak). At most [`STALE_ROWS_BYTES_KEPT`] stay allocated between blocks.
#[derive(Default)]
struct StaleRows {
    /// `jmt_stale`'s row: the nodes' borsh keys, end to end.
    nodes: Vec<u8>,
    /// `jmt_stale_values`'s row: `jmt_values` keys, 40 bytes each.
    values: Vec<u8>,
    /// `jmt_stale_keys`' row: key hashes, 32 bytes each.
    keys: Vec<u8>,
}

/// The most bytes [`StaleRows`] keeps allocated between blocks.
const STALE_ROWS_BYTES_KEPT: usize = 4 << 20;

impl StaleRows {
    fn clear(&mut self) {
        self.nodes.clear();
        self.values.clear();
        self.keys.clear();
    }

    fn push_node(&mut self, key: &jmt::storage::NodeKey) {
        borsh::to_writer(&mut self.nodes, key).expect("borsh encoding into a Vec cannot fail");
    }

    /// Lets go of buffers grown past [`STALE_ROWS_BYTES_KEPT`] by an unusually large block.
    fn trim(&mut self) {
        for buffer in [&mut self.nodes, &mut self.values, &mut self.keys] {
            if buffer.capacity() > STALE_ROWS_BYTES_KEPT {
                *buffer = Vec::new();
            }
        }
    }
}

/// The version a row of stale index `index` (`jmt_stale`, `jmt_stale_values` or
/// `jmt_stale_keys`) is stale since: its key's first 8 bytes.
fn stale_since(index: &str, key: &[u8]) -> Result<u64> {
    let since = key.get(..8).ok_or_else(|| Error::Corrupt(format!("{index} key")))?;
    Ok(u64::from_be_bytes(since.try_into().expect("8 bytes")))
}

/// The entries a row of stale index `index` names: those of its version (its key is the
/// version alone; the value lists them end to end: borsh node keys, each as long as its own
/// encoding says, or 40-byte value row keys, or 32-byte key hashes), or, in a row of store
/// format 5, the one its key holds after the version.
fn stale_entries<'a>(index: &str, key: &'a [u8], value: &'a [u8]) -> Result<Vec<&'a [u8]>> {
    let corrupt = || Error::Corrupt(format!("{index} row {} does not list its entries", hex::encode(key)));
    if key.len() > 8 {
        return Ok(vec![&key[8..]]);
    }
    match index {
        CF_JMT_STALE => {
            // Each key's bytes, as far as decoding it reads (a node key ends where its own
            // encoding says).
            let mut entries = Vec::new();
            let mut rest = value;
            while !rest.is_empty() {
                let start = rest;
                <jmt::storage::NodeKey as BorshDeserialize>::deserialize_reader(&mut rest).map_err(|_| corrupt())?;
                entries.push(&start[..start.len() - rest.len()]);
            }
            Ok(entries)
        }
        _ => {
            let width = if index == CF_JMT_STALE_VALUES { 40 } else { 32 };
            if !value.len().is_multiple_of(width) {
                return Err(corrupt());
            }
            Ok(value.chunks_exact(width).collect())
        }
    }
}

fn height_pair_key(height: u64, tail: &[u8]) -> Vec<u8> {
    let mut k = height.to_be_bytes().to_vec();
    k.extend_from_slice(tail);
    k
}

impl Store {
    /// Opens (creating if needed) the database at `path` for the chain `chain_id`. Refuses a
    /// database that belongs to another chain.
    pub fn open(path: &Path, chain_id: Hash) -> Result<Store> {
        Store::open_with_budget(path, chain_id, StoreBudget::default())
    }

    /// [`Store::open`] within `budget`.
    pub fn open_with_budget(path: &Path, chain_id: Hash, budget: StoreBudget) -> Result<Store> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(256);
        opts.set_db_write_buffer_size(budget.write_buffer_bytes);
        opts.set_max_total_wal_size(budget.wal_bytes_max);
        opts.set_bytes_per_sync(TABLE_SYNC_BYTES);
        // One block cache for every table, and whole-key bloom filters: the state tree's
        // point reads (a node per level of each key written) mostly miss the newest files.
        let cache = Cache::new_lru_cache(budget.cache_bytes);
        let mut tables = BlockBasedOptions::default();
        tables.set_block_cache(&cache);
        tables.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        tables.set_cache_index_and_filter_blocks(true);
        // A database of an older format may still have its flat state table: opened to be
        // dropped (rocksdb opens a database only with every table it has).
        let flat_state = DB::list_cf(&opts, path).is_ok_and(|cfs| cfs.iter().any(|cf| cf == CF_FLAT_STATE));
        let cfs = ALL_CFS.iter().chain(flat_state.then_some(&CF_FLAT_STATE)).map(|name| {
            let mut cf = Options::default();
            cf.set_block_based_table_factory(&tables);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(storage)?;
        let mut store = Store {
            db,
            cache,
            blobs: std::sync::Mutex::new(BlobTally::default()),
            state_history_blocks: STATE_HISTORY_BLOCKS_DEFAULT,
            wal_pruned_below: std::sync::atomic::AtomicU64::new(0),
            recent: std::sync::Mutex::new(RecentWrites::new()),
            stale_rows: std::sync::Mutex::new(StaleRows::default()),
        };
        match store.get(CF_META, META_CHAIN_ID)? {
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(store.cf(CF_META), META_FORMAT, STORE_FORMAT_VERSION.to_be_bytes());
                batch.put_cf(store.cf(CF_META), META_CHAIN_ID, chain_id.0);
                store.write_synced(batch)?;
            }
            Some(found) if found == chain_id.0 => {
                let format =
                    store.get(CF_META, META_FORMAT)?.and_then(|b| Some(u32::from_be_bytes(b.try_into().ok()?)));
                if format.is_some_and(|f| STORE_FORMATS_UPGRADED.contains(&f)) {
                    store.drop_flat_state(flat_state)?;
                    store.put_synced(CF_META, META_FORMAT, &STORE_FORMAT_VERSION.to_be_bytes())?;
                } else if format != Some(STORE_FORMAT_VERSION) {
                    return Err(Error::Storage(format!(
                        "the database at {} has store format {}, this node writes format {STORE_FORMAT_VERSION}: \
                         move the folder aside and start again to sync the chain from peers",
                        path.display(),
                        format.map_or("1".into(), |f| f.to_string())
                    )));
                }
            }
            Some(_) => {
                return Err(Error::Storage(format!(
                    "the database at {} belongs to another chain; use another data folder or the matching genesis",
                    path.display()
                )));
            }
        }
        store.tally_blobs()?;
        Ok(store)
    }

    /// Adds up the blobs' sizes from their order entries (48 bytes each, not the blobs).
    fn tally_blobs(&self) -> Result<()> {
        let mut tally = BlobTally::default();
        for item in self.db.iterator_cf(self.cf(CF_BLOB_ORDER), IteratorMode::Start) {
            let (k, v) = item.map_err(storage)?;
            let (_, size, _) = decode_blob_order(&v)?;
            tally.bytes += size;
            let seq = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| Error::Corrupt("blob order key".into()))?);
            tally.next_seq = tally.next_seq.max(seq + 1);
        }
        *self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = tally;
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("every column family is created at open")
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf), key).map_err(storage)
    }

    fn get_decoded<T: BorshDeserialize>(&self, cf: &'static str, key: &[u8]) -> Result<Option<T>> {
        match self.get(cf, key)? {
            None => Ok(None),
            Some(bytes) => {
                decode(cf, &bytes, RECORD_BYTES_MAX).map(Some).map_err(|e| Error::Corrupt(format!("{cf}: {e}")))
            }
        }
    }

    /// The folder the database is in.
    pub fn path(&self) -> std::path::PathBuf {
        self.db.path().to_path_buf()
    }

    /// The height of the last committed block (0 before the first).
    pub fn head_height(&self) -> Result<u64> {
        match self.get(CF_META, META_HEAD)? {
            None => Ok(0),
            Some(b) => Ok(u64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| Error::Corrupt("head height is not 8 bytes".into()))?,
            )),
        }
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        self.get_decoded(CF_BLOCKS, &height_key(height))
    }

    /// The header of the block at `height`, decoded alone from the front of the stored block
    /// (a block's header comes first, then its transactions): what a proof needs, without
    /// decoding (or copying) up to `block_bytes_max` of transactions.
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>> {
        let Some(bytes) = self.db.get_pinned_cf(self.cf(CF_BLOCKS), height_key(height)).map_err(storage)? else {
            return Ok(None);
        };
        let mut rest: &[u8] = &bytes;
        BlockHeader::deserialize(&mut rest)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{CF_BLOCKS}: the header of block {height}: {e}")))
    }

    /// The commit that finalized the block at `height`.
    pub fn commit(&self, height: u64) -> Result<Option<Commit>> {
        self.get_decoded(CF_COMMITS, &height_key(height))
    }

    /// The receipts of the block at `height`.
    pub fn receipts(&self, height: u64) -> Result<Option<Vec<ExecutionReceipt>>> {
        self.get_decoded(CF_RECEIPTS, &height_key(height))
    }

    /// Where a job's offer and receipts landed: its rows, one per block that added to it, in
    /// height order (a row of store format 5 first: it is the job id alone), read as one.
    pub fn job(&self, job_id: &Hash) -> Result<Option<JobLocation>> {
        let mut rows = self.db.raw_iterator_cf(self.cf(CF_JOBS));
        rows.seek(job_id.0);
        let mut location: Option<JobLocation> = None;
        while let (Some(k), Some(v)) = (rows.key(), rows.value()) {
            if !k.starts_with(&job_id.0) {
                break;
            }
            let added: JobLocation = decode(CF_JOBS, v, RECORD_BYTES_MAX)
                .map_err(|e| Error::Corrupt(format!("{CF_JOBS} row {}: {e}", hex::encode(k))))?;
            location.get_or_insert_default().merge(added);
            rows.next();
        }
        rows.status().map_err(storage)?;
        Ok(location)
    }

    /// Writes a finalized block atomically (synced to disk) and moves the head to it.
    pub fn commit_block(&self, w: BlockWrite<'_>) -> Result<()> {
        let height = w.block.header.height;
        let head = self.head_height()?;
        if height != head + 1 {
            return Err(Error::Invalid(format!("block {height} does not follow the head {head}")));
        }
        let key = height_key(height);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_BLOCKS), key, borsh::to_vec(w.block).expect("encodes"));
        batch.put_cf(self.cf(CF_COMMITS), key, borsh::to_vec(w.commit).expect("encodes"));
        batch.put_cf(self.cf(CF_RECEIPTS), key, borsh::to_vec(w.receipts).expect("encodes"));
        for (job_id, location) in w.jobs {
            batch.put_cf(self.cf(CF_JOBS), hash_then(&job_id.0, height), borsh::to_vec(location).expect("encodes"));
        }
        if w.tree.version != height {
            return Err(Error::Invalid(format!("state update for version {} in block {height}", w.tree.version)));
        }
        let new_keys = self.put_tree(&mut batch, w.tree)?;
        self.put_keys(&mut batch, w.state, &new_keys);
        self.prune_tree(&mut batch, height, w.state)?;
        batch.put_cf(self.cf(CF_META), META_HEAD, key);
        let written = self.write_synced(batch);
        // Kept for the next blocks ([`crate::recent`]); after a failed write, nothing is.
        let mut recent = self.recent_writes();
        match &written {
            // `prune_tree` may have deleted what went stale at `height - history` or before.
            Ok(()) => recent.remember(w.tree, height.checked_sub(self.state_history_blocks)),
            Err(_) => recent.clear(),
        }
        written
    }

    fn recent_writes(&self) -> std::sync::MutexGuard<'_, RecentWrites> {
        self.recent.lock().expect("a thread panicked while holding the recent tree writes")
    }

    /// Forgets the recent tree writes, so that the next block reads everything from the tables
    /// (when the tree is replaced; tests: the same tables with and without them).
    pub(crate) fn forget_recent(&self) {
        self.recent_writes().clear();
    }

    /// Keeps `blocks` versions of the state tree; older stale nodes are deleted as blocks commit.
    pub fn set_state_history(&mut self, blocks: u64) {
        self.state_history_blocks = blocks.max(1);
    }

    /// Adds a tree update to `batch`: its nodes and value rows, and what they make stale — the
    /// nodes the tree reports, and each key's previous value row if it holds a value (plus the
    /// row itself when the update deletes the key: once no version before it is read, absence
    /// needs no row; so a deleted key has no row left unmarked). The keys the update names
    /// created have no row left unmarked: not sought. Returns the keys (hashes) given a value
    /// they did not have before: new keys.
    fn put_tree(&self, batch: &mut WriteBatch, update: &StateUpdate) -> Result<Vec<jmt::KeyHash>> {
        let created = &update.created;
        let mut new_keys = Vec::new();
        for (k, n) in update.batch.node_batch.nodes() {
            batch.put_cf(self.cf(CF_JMT_NODES), borsh::to_vec(k).expect("encodes"), borsh::to_vec(n).expect("encodes"));
        }
        // A key a recent block wrote: its previous row is known (read at once, so that the
        // lock is not held over the seeks below). Else one iterator for every key's previous
        // row (the values come in key order): creating an iterator costs more than seeking one.
        let known: Vec<Option<jmt::Version>> = {
            let recent = self.recent_writes();
            let values = update.batch.node_batch.values();
            values.keys().map(|(version, kh)| recent.rows.newest(kh).filter(|p| p < version)).collect()
        };
        let mut rows: Option<DBRawIterator<'_>> = None;
        // What goes stale goes stale at the update's version: one index row per table.
        let mut stale = self.stale_rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stale.clear();
        for (((version, kh), v), known) in update.batch.node_batch.values().iter().zip(known) {
            if *version != update.version {
                return Err(Error::Invalid(format!(
                    "a value of version {version} in the update of {}",
                    update.version
                )));
            }
            batch.put_cf(self.cf(CF_JMT_VALUES), value_row_key(kh, *version), encode_value(v));
            let previous = match known {
                Some(p) => Some(p),
                None if v.is_some() && created.binary_search(kh).is_ok() => {
                    debug_assert!(
                        live_row_before(&mut self.db.raw_iterator_cf(self.cf(CF_JMT_VALUES)), kh, *version)?.is_none(),
                        "a key given as created has a value row not marked stale"
                    );
                    None
                }
                None => {
                    let rows = rows.get_or_insert_with(|| self.db.raw_iterator_cf(self.cf(CF_JMT_VALUES)));
                    live_row_before(rows, kh, *version)?
                }
            };
            match previous {
                Some(previous) => stale.values.extend_from_slice(&value_row_key(kh, previous)),
                None if v.is_some() => new_keys.push(*kh),
                None => {}
            }
            if v.is_none() {
                stale.values.extend_from_slice(&value_row_key(kh, *version));
                stale.keys.extend_from_slice(&kh.0);
            }
        }
        for node in &update.batch.stale_node_index_batch {
            if node.stale_since_version != update.version {
                return Err(Error::Invalid(format!(
                    "a node stale since {} in the update of {}",
                    node.stale_since_version, update.version
                )));
            }
            stale.push_node(&node.node_key);
        }
        let key = update.version.to_be_bytes();
        if !stale.nodes.is_empty() {
            batch.put_cf(self.cf(CF_JMT_STALE), key, &stale.nodes);
        }
        if !stale.values.is_empty() {
            batch.put_cf(self.cf(CF_JMT_STALE_VALUES), key, &stale.values);
        }
        if !stale.keys.is_empty() {
            batch.put_cf(self.cf(CF_JMT_STALE_KEYS), key, &stale.keys);
        }
        stale.trim();
        Ok(new_keys)
    }

    /// Deletes tree nodes and value rows that went stale at or before `height - history`.
    /// Each block resumes where the last one stopped (`META_PRUNED`), so the work per block is
    /// what went stale since, not the whole index.
    /// `changes` are the block's own: a key they give a value again keeps its index row.
    fn prune_tree(&self, batch: &mut WriteBatch, height: u64, changes: &[StateChange]) -> Result<()> {
        let Some(cutoff) = height.checked_sub(self.state_history_blocks) else { return Ok(()) };
        let from = match self.get(CF_META, META_PRUNED)? {
            None => 0,
            Some(b) => {
                let done = u64::from_be_bytes(
                    b.as_slice().try_into().map_err(|_| Error::Corrupt("pruned height is not 8 bytes".into()))?,
                );
                if done >= cutoff {
                    return Ok(());
                }
                done + 1
            }
        };
        let start = from.to_be_bytes();
        for (index, target) in [(CF_JMT_STALE, CF_JMT_NODES), (CF_JMT_STALE_VALUES, CF_JMT_VALUES)] {
            let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
            for item in self.db.iterator_cf(self.cf(index), mode) {
                let (k, v) = item.map_err(storage)?;
                if stale_since(index, &k)? > cutoff {
                    break;
                }
                for entry in stale_entries(index, &k, &v)? {
                    batch.delete_cf(self.cf(target), entry);
                }
                batch.delete_cf(self.cf(index), &k);
            }
        }
        // Keys deleted at or before the cutoff are in no kept version: their index rows go,
        // unless the key has a value again (its newest value row holds one).
        let mut given: Option<std::collections::HashSet<&[u8]>> = None;
        let mut rows: Option<DBRawIterator<'_>> = None;
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_JMT_STALE_KEYS), mode) {
            let (k, v) = item.map_err(storage)?;
            if stale_since(CF_JMT_STALE_KEYS, &k)? > cutoff {
                break;
            }
            for hash in stale_entries(CF_JMT_STALE_KEYS, &k, &v)? {
                let back = match self.get(CF_JMT_KEYS, hash)? {
                    Some(key) => {
                        let given = given.get_or_insert_with(|| {
                            changes.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.as_slice()).collect()
                        });
                        let rows = rows.get_or_insert_with(|| self.db.raw_iterator_cf(self.cf(CF_JMT_VALUES)));
                        let hash = jmt::KeyHash(
                            hash.try_into().map_err(|_| Error::Corrupt("a stale key is not 32 bytes".into()))?,
                        );
                        given.contains(key.as_slice()) || newest_value(rows, &hash, u64::MAX)?.is_some()
                    }
                    None => true,
                };
                if !back {
                    batch.delete_cf(self.cf(CF_JMT_KEYS), hash);
                }
            }
            batch.delete_cf(self.cf(CF_JMT_STALE_KEYS), &k);
        }
        batch.put_cf(self.cf(CF_META), META_PRUNED, cutoff.to_be_bytes());
        Ok(())
    }

    /// Writes the genesis state (tree version 0 and its keys), once.
    pub fn init_genesis_state(&self, changes: &[StateChange], tree: &StateUpdate) -> Result<()> {
        if tree.version != 0 {
            return Err(Error::Invalid("the genesis state is version 0".into()));
        }
        if self.state_root(0)?.is_some() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let new_keys = self.put_tree(&mut batch, tree)?;
        self.put_keys(&mut batch, changes, &new_keys);
        self.write_synced(batch)
    }

    /// Adds the keys of `changes` that are new to the tree (`new`, by hash) to `jmt_keys` in
    /// `batch`: a key is written there when it gets a value it did not have (the same row again
    /// when a deleted key comes back). A deleted key's row stays while a kept version holds the
    /// key (a snapshot of it needs the key), then pruning drops it (`jmt_stale_keys`).
    fn put_keys(&self, batch: &mut WriteBatch, changes: &[StateChange], new: &[jmt::KeyHash]) {
        if new.is_empty() {
            return;
        }
        let new: std::collections::HashSet<[u8; 32]> = new.iter().map(|k| k.0).collect();
        for (k, _) in changes.iter().filter(|(_, v)| v.is_some()) {
            let hash = cairn_ledger::state_tree::key_hash(k).0;
            if new.contains(&hash) {
                batch.put_cf(self.cf(CF_JMT_KEYS), hash, k);
            }
        }
    }

    /// Drops the flat state table of an older format (`present`: the database has it), once
    /// `jmt_keys` holds every key: a database written before the key index existed has its
    /// keys indexed from the table first. A crash between the steps leaves a database that
    /// the next open upgrades the same way.
    fn drop_flat_state(&mut self, present: bool) -> Result<()> {
        if !present {
            return Ok(());
        }
        if self.get(CF_META, META_KEYS_INDEXED)?.is_none() {
            let mut batch = WriteBatch::default();
            for item in self.db.iterator_cf(self.cf(CF_FLAT_STATE), IteratorMode::Start) {
                let (k, _) = item.map_err(storage)?;
                batch.put_cf(self.cf(CF_JMT_KEYS), cairn_ledger::state_tree::key_hash(&k).0, &k);
            }
            batch.put_cf(self.cf(CF_META), META_KEYS_INDEXED, []);
            self.write_synced(batch)?;
        }
        self.db.drop_cf(CF_FLAT_STATE).map_err(storage)
    }

    /// The chunk of the state at `version` that starts at key hash `start` (state sync): at
    /// most `max_entries` entries, about `max_bytes`, with its range proof.
    pub fn state_chunk(
        store: &std::sync::Arc<Store>,
        version: u64,
        start: [u8; 32],
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<StateChunk> {
        if store.state_root(version)?.is_none() {
            return Err(Error::Invalid(format!("the state of height {version} is not kept here")));
        }
        let key_of = |hash: &jmt::KeyHash| {
            store.get(CF_JMT_KEYS, &hash.0).map_err(|e| cairn_ledger::Error::Storage(e.to_string()))?.ok_or_else(|| {
                cairn_ledger::Error::Storage(format!("no key for state tree leaf {}", hex::encode(hash.0)))
            })
        };
        // One value-row iterator for the whole chunk: creating one per leaf costs more than the
        // rest of the read.
        let reader = std::sync::Arc::new(ChunkReader {
            store,
            rows: std::sync::Mutex::new(store.db.raw_iterator_cf(store.cf(CF_JMT_VALUES))),
        });
        cairn_ledger::snapshot::read_chunk(reader, version, jmt::KeyHash(start), max_entries, max_bytes, key_of)
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// Starts an empty store from a restored state (state sync): the state at `block`'s
    /// height (`entries`, its tree `tree`, checked against the block's state root by the
    /// caller), the block and the commit that finalized it, in one synced batch. Blocks below it
    /// are never here ([`Store::base_height`]).
    pub fn restore_state(
        &self,
        block: &Block,
        commit: &Commit,
        entries: &[(Vec<u8>, Vec<u8>)],
        tree: &StateUpdate,
    ) -> Result<()> {
        let height = block.header.height;
        if self.head_height()? != 0 || self.get(CF_META, META_BASE)?.is_some() {
            return Err(Error::Invalid("a state is restored only into an empty store".into()));
        }
        if tree.version != height || tree.root != block.header.state_root {
            return Err(Error::Invalid(format!("the restored tree is not block {height}'s state")));
        }
        let mut batch = WriteBatch::default();
        // The genesis state, if written, is replaced whole.
        for cf in CF_TREE {
            batch.delete_range_cf(self.cf(cf), [].as_slice(), [0xffu8; 64].as_slice());
        }
        self.forget_recent();
        self.write_synced(batch)?;
        let mut batch = WriteBatch::default();
        // Everything is new to the emptied tables: no previous row to find or mark stale.
        for (k, _) in entries {
            batch.put_cf(self.cf(CF_JMT_KEYS), cairn_ledger::state_tree::key_hash(k).0, k);
        }
        for (k, n) in tree.batch.node_batch.nodes() {
            batch.put_cf(self.cf(CF_JMT_NODES), borsh::to_vec(k).expect("encodes"), borsh::to_vec(n).expect("encodes"));
        }
        for ((version, kh), v) in tree.batch.node_batch.values() {
            batch.put_cf(self.cf(CF_JMT_VALUES), value_row_key(kh, *version), encode_value(v));
        }
        let key = height_key(height);
        batch.put_cf(self.cf(CF_BLOCKS), key, borsh::to_vec(block).expect("encodes"));
        batch.put_cf(self.cf(CF_COMMITS), key, borsh::to_vec(commit).expect("encodes"));
        batch.put_cf(self.cf(CF_META), META_BASE, key);
        batch.put_cf(self.cf(CF_META), META_PRUNED, key);
        batch.put_cf(self.cf(CF_META), META_HEAD, key);
        self.write_synced(batch)
    }

    /// The lowest height whose block is here: 1, or the snapshot's height for a node that
    /// started from a restored state.
    pub fn base_height(&self) -> Result<u64> {
        match self.get(CF_META, META_BASE)? {
            None => Ok(1),
            Some(b) => Ok(u64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| Error::Corrupt("base height is not 8 bytes".into()))?,
            )),
        }
    }

    /// The state root at `version`, if that version is stored.
    pub fn state_root(&self, version: u64) -> Result<Option<Hash>> {
        let tree = jmt::JellyfishMerkleTree::<Store, sha2::Sha256>::new(self);
        tree.get_root_hash_option(version)
            .map(|r| r.map(|r| Hash(r.0)))
            .map_err(|e| Error::Storage(format!("state tree: {e}")))
    }

    /// The value of state `key` at `version` with its JMT proof (borsh-encoded).
    pub fn state_proof(&self, key: &[u8], version: u64) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
        let tree = jmt::JellyfishMerkleTree::<Store, sha2::Sha256>::new(self);
        let (value, proof) = tree
            .get_with_proof(cairn_ledger::state_tree::key_hash(key), version)
            .map_err(|e| Error::Storage(format!("state tree: {e}")))?;
        Ok((value, borsh::to_vec(&proof).expect("encodes")))
    }

    /// Every state entry at the head, in key order (to rebuild the in-memory state at
    /// startup): each key of the key index with its newest value row, if that holds a value
    /// (a deleted key stays indexed while a kept version holds it).
    pub fn state_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let version = self.head_height()?;
        let mut rows = self.db.raw_iterator_cf(self.cf(CF_JMT_VALUES));
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_JMT_KEYS), IteratorMode::Start) {
            let (hash, key) = item.map_err(storage)?;
            let hash = jmt::KeyHash(
                hash.as_ref()
                    .try_into()
                    .map_err(|_| Error::Corrupt("a key index row's hash is not 32 bytes".into()))?,
            );
            if let Some(value) = newest_value(&mut rows, &hash, version)? {
                entries.push((key.into_vec(), value.to_vec()));
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Stores a blob under its hash (idempotent, synced), and notes when, in the order blobs
    /// are stored ([`Store::evict_blobs`] goes by it).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Hash> {
        let id = Hash::of(bytes);
        let mut tally = self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.has_blob(&id)? {
            return Ok(id);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_BLOBS), id.0, bytes);
        batch.put_cf(
            self.cf(CF_BLOB_ORDER),
            tally.next_seq.to_be_bytes(),
            blob_order_value(&id, bytes.len() as u64, now_ms()),
        );
        self.write_synced(batch)?;
        tally.next_seq += 1;
        tally.bytes += bytes.len() as u64;
        Ok(id)
    }

    /// The memory the store holds now, against its budget ([`StoreBudget`]).
    pub fn memory(&self) -> StoreMemory {
        let sum = |property: &str| -> u64 {
            ALL_CFS.iter().filter_map(|cf| self.db.property_int_value_cf(self.cf(cf), property).ok().flatten()).sum()
        };
        StoreMemory {
            block_cache_bytes: self.cache.get_usage() as u64,
            memtable_bytes: sum("rocksdb.cur-size-all-mem-tables"),
            table_reader_bytes: sum("rocksdb.estimate-table-readers-mem"),
        }
    }

    /// Bytes of the blobs stored.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).bytes
    }

    /// Deletes the oldest blobs until they take at most `budget` bytes, skipping those `keep`
    /// says are in use, and stopping at the first stored less than `min_age` ago (a module
    /// uploaded ahead of its jobs stays that long). Returns the ids deleted.
    pub fn evict_blobs(&self, budget: u64, min_age: Duration, keep: &dyn Fn(&Hash) -> bool) -> Result<Vec<Hash>> {
        let mut tally = self.blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let young = now_ms().saturating_sub(min_age.as_millis() as u64);
        let mut deleted = Vec::new();
        let mut batch = WriteBatch::default();
        let mut bytes = tally.bytes;
        for item in self.db.iterator_cf(self.cf(CF_BLOB_ORDER), IteratorMode::Start) {
            if bytes <= budget {
                break;
            }
            let (k, v) = item.map_err(storage)?;
            let (id, size, stored_ms) = decode_blob_order(&v)?;
            if stored_ms > young {
                break;
            }
            if keep(&id) {
                continue;
            }
            batch.delete_cf(self.cf(CF_BLOBS), id.0);
            batch.delete_cf(self.cf(CF_BLOB_ORDER), k);
            bytes -= size;
            deleted.push(id);
        }
        if !deleted.is_empty() {
            self.write_synced(batch)?;
            tally.bytes = bytes;
        }
        Ok(deleted)
    }

    /// The blob with hash `id`. Not re-hashed on every read (a provider reads its module per
    /// job): [`Store::put_blob`] names every blob by the hash of its bytes, and rocksdb checks
    /// each block it reads against its own checksum, so bytes damaged on disk are an error.
    /// A node that receives a blob from a peer checks it against the id it asked for.
    pub fn blob(&self, id: &Hash) -> Result<Option<Vec<u8>>> {
        self.get(CF_BLOBS, &id.0)
    }

    /// Whether the blob `id` is stored.
    pub fn has_blob(&self, id: &Hash) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(CF_BLOBS), id.0).map_err(storage)?.is_some())
    }

    /// The ids of the stored blobs, in id order, at most `max`: read from their order entries
    /// (48 bytes each), not from the blobs' own rows, whose blocks hold the bytes.
    pub fn blob_ids(&self, max: usize) -> Result<Vec<Hash>> {
        let mut ids = std::collections::BTreeSet::new();
        for item in self.db.iterator_cf(self.cf(CF_BLOB_ORDER), IteratorMode::Start) {
            let (_, v) = item.map_err(storage)?;
            ids.insert(decode_blob_order(&v)?.0);
            if ids.len() > max {
                ids.pop_last();
            }
        }
        Ok(ids.into_iter().collect())
    }
}

impl Store {
    /// Removes the format version, as in a database written before it was recorded (tests).
    #[cfg(test)]
    pub(crate) fn forget_format(&self) {
        self.db.delete_cf(self.cf(CF_META), META_FORMAT).expect("delete");
    }

    /// The format the database is marked with (tests).
    #[cfg(test)]
    pub(crate) fn format(&self) -> Option<u32> {
        self.get(CF_META, META_FORMAT).expect("read").map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    /// Records format `format` for the database, as an older node wrote it (tests).
    #[cfg(test)]
    pub(crate) fn set_format(&self, format: u32) {
        self.db.put_cf(self.cf(CF_META), META_FORMAT, format.to_be_bytes()).expect("put");
    }

    /// Writes `location` whole as job `id`'s one row, as format 5 did (tests).
    #[cfg(test)]
    pub(crate) fn put_whole_job(&self, id: &Hash, location: &JobLocation) {
        self.db.put_cf(self.cf(CF_JOBS), id.0, borsh::to_vec(location).expect("encodes")).expect("put");
    }

    /// Writes `bytes` as what the block at `height` added to job `id` (tests of rows that do
    /// not decode).
    #[cfg(test)]
    pub(crate) fn put_job_row(&self, id: &Hash, height: u64, bytes: &[u8]) {
        self.db.put_cf(self.cf(CF_JOBS), hash_then(&id.0, height), bytes).expect("put");
    }

    /// Rewrites the stale indexes as stores of format 5 wrote them: a row per entry,
    /// its key the version ‖ the entry, its value empty (tests). Returns the rows written.
    #[cfg(test)]
    pub(crate) fn rewrite_stale_rows_one_per_entry(&self) -> usize {
        let mut batch = WriteBatch::default();
        let mut written = 0;
        for index in [CF_JMT_STALE, CF_JMT_STALE_VALUES, CF_JMT_STALE_KEYS] {
            for item in self.db.iterator_cf(self.cf(index), IteratorMode::Start) {
                let (k, v) = item.expect("reads");
                assert_eq!(k.len(), 8, "a row per version");
                for entry in stale_entries(index, &k, &v).expect("decodes") {
                    batch.put_cf(self.cf(index), [&k[..], entry].concat(), []);
                    written += 1;
                }
                batch.delete_cf(self.cf(index), &k);
            }
        }
        self.db.write(batch).expect("write");
        written
    }

    /// Whether `key` has its row in the key index.
    #[cfg(test)]
    pub(crate) fn key_indexed(&self, key: &[u8]) -> bool {
        self.get(CF_JMT_KEYS, &cairn_ledger::state_tree::key_hash(key).0).expect("read").is_some()
    }

    /// The number of rows in column family `cf` (tests of pruning).
    #[cfg(test)]
    pub(crate) fn row_count(&self, cf: &str) -> usize {
        self.db.iterator_cf(self.cf(cf), IteratorMode::Start).count()
    }

    /// Every row of every state tree table, each as its table's name, key and value (tests).
    #[cfg(test)]
    pub(crate) fn tree_rows(&self) -> Vec<[Vec<u8>; 3]> {
        let mut rows = Vec::new();
        for cf in CF_TREE {
            for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
                let (k, v) = item.expect("reads");
                rows.push([cf.as_bytes().to_vec(), k.into_vec(), v.into_vec()]);
            }
        }
        rows
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(storage)
    }

    fn put_synced(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(self.cf(cf), key, value, &wo).map_err(storage)
    }

    /// Entries of `cf` whose key starts with `height` (8 bytes BE), in key order.
    fn at_height(&self, cf: &str, height: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let prefix = height_key(height);
        let mut out = Vec::new();
        let mode = IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(cf), mode) {
            let (k, v) = item.map_err(storage)?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    /// Appends entry `seq` of the consensus write-ahead log of `height`, synced to disk before
    /// it returns (a validator acts on nothing it signed before its log entry is durable).
    pub fn wal_append(&self, height: u64, seq: u64, entry: &[u8]) -> Result<()> {
        self.put_synced(CF_WAL, &height_pair_key(height, &seq.to_be_bytes()), entry)
    }

    /// Appends `entries` as entries `first_seq..` of the consensus write-ahead log of
    /// `height` in one write, all of them or none: with `synced`, durable before it returns
    /// (and so is everything written before it); without, durable with the next synced write
    /// or [`Store::sync_wal`] — or lost in a crash before that, with whatever came after.
    pub fn wal_append_batch(&self, height: u64, first_seq: u64, entries: &[Vec<u8>], synced: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (seq, entry) in (first_seq..).zip(entries) {
            batch.put_cf(self.cf(CF_WAL), height_pair_key(height, &seq.to_be_bytes()), entry);
        }
        if synced { self.write_synced(batch) } else { self.db.write(batch).map_err(storage) }
    }

    /// Makes every write so far durable (an fsync of rocksdb's log).
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(storage)
    }

    /// Writes every memtable to table files (tests: reads then come from the files).
    #[cfg(test)]
    pub(crate) fn flush_tables(&self) -> Result<()> {
        let cfs: Vec<_> = ALL_CFS.iter().map(|name| self.cf(name)).collect();
        self.db.flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default()).map_err(storage)
    }

    /// The consensus write-ahead log of `height`, in append order.
    pub fn wal_entries(&self, height: u64) -> Result<Vec<Vec<u8>>> {
        Ok(self.at_height(CF_WAL, height)?.into_iter().map(|(_, v)| v).collect())
    }

    /// Deletes the write-ahead logs, and the proposed blocks kept, of every height below
    /// `height` (their blocks are stored with their commits).
    ///
    /// One write, not synced: it runs after every finalized block, on the node's event loop,
    /// and waiting for the disk there (two fsyncs, as it was) delayed everything behind it. A
    /// prune lost in a crash leaves entries below the head, which nothing reads (a validator
    /// reads the log of the height after its head only) and the next prune removes.
    pub fn wal_prune_below(&self, height: u64) -> Result<()> {
        use std::sync::atomic::Ordering;
        // Point deletes of the few keys there are, from where the last prune stopped: a range
        // delete per block would pile up range tombstones in the memtable, which every read
        // and iterator of the table then fragments again, at a cost growing with the chain.
        let from = self.wal_pruned_below.load(Ordering::Relaxed);
        if height <= from {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let (start, end) = (height_key(from), height_key(height));
        for cf in [CF_WAL, CF_PROPOSED] {
            for item in self.db.iterator_cf(self.cf(cf), IteratorMode::From(&start, rocksdb::Direction::Forward)) {
                let (k, _) = item.map_err(storage)?;
                if k.get(..8).is_none_or(|h| h >= end.as_slice()) {
                    break;
                }
                batch.delete_cf(self.cf(cf), &k);
            }
        }
        if !batch.is_empty() {
            self.db.write(batch).map_err(storage)?;
        }
        self.wal_pruned_below.fetch_max(height, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps a block this validator proposes (synced), so that after a restart it can serve
    /// and apply the block its write-ahead log names only by hash.
    pub fn put_proposed(&self, block: &Block) -> Result<()> {
        let key = height_pair_key(block.header.height, &block.hash().0);
        self.put_synced(CF_PROPOSED, &key, &borsh::to_vec(block).expect("encodes"))
    }

    /// A block kept with [`Store::put_proposed`].
    pub fn proposed(&self, height: u64, block_hash: &Hash) -> Result<Option<Block>> {
        self.get_decoded(CF_PROPOSED, &height_pair_key(height, &block_hash.0))
    }

    /// Keeps evidence of equivocation seen at `height` (synced; idempotent).
    pub fn put_evidence(&self, height: u64, evidence: &[u8]) -> Result<()> {
        self.put_synced(CF_EVIDENCE, &height_pair_key(height, &Hash::of(evidence).0), evidence)
    }

    /// The evidence kept for `height`.
    pub fn evidence(&self, height: u64) -> Result<Vec<Vec<u8>>> {
        Ok(self.at_height(CF_EVIDENCE, height)?.into_iter().map(|(_, v)| v).collect())
    }

    /// The evidence kept for heights `from..=to`, with its height, in height order: at most
    /// `max` entries, read in one scan.
    pub fn evidence_between(&self, from: u64, to: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let start = height_key(from);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_EVIDENCE), IteratorMode::From(&start, rocksdb::Direction::Forward)) {
            let (k, v) = item.map_err(storage)?;
            let height = k
                .get(..8)
                .and_then(|h| h.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::Corrupt("evidence key".into()))?;
            if height > to || out.len() >= max {
                break;
            }
            out.push((height, v.into_vec()));
        }
        Ok(out)
    }
}

/// The state tree as one state chunk reads it: nodes from the store, values through one
/// iterator kept for the chunk (it sees the rows written before the chunk began, all a past
/// version needs).
struct ChunkReader<'a> {
    store: &'a Store,
    rows: std::sync::Mutex<DBRawIterator<'a>>,
}

impl jmt::storage::TreeReader for ChunkReader<'_> {
    fn get_node_option(&self, node_key: &jmt::storage::NodeKey) -> anyhow::Result<Option<jmt::storage::Node>> {
        self.store.get_node_option(node_key)
    }

    fn get_value_option(&self, max_version: jmt::Version, key_hash: jmt::KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        let mut rows = self.rows.lock().map_err(|_| anyhow::anyhow!("a chunk read panicked"))?;
        value_at(&mut rows, &key_hash, max_version)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(jmt::storage::NodeKey, jmt::storage::LeafNode)>> {
        anyhow::bail!("restoring a state tree is not supported")
    }
}

impl jmt::storage::TreeReader for Store {
    fn get_node_option(&self, node_key: &jmt::storage::NodeKey) -> anyhow::Result<Option<jmt::storage::Node>> {
        if let Some(node) = self.recent_writes().nodes.get(node_key) {
            return Ok(Some(node));
        }
        let key = borsh::to_vec(node_key)?;
        match self.db.get_cf(self.cf(CF_JMT_NODES), key)? {
            None => Ok(None),
            Some(b) => Ok(Some(decode("state tree node", &b, RECORD_BYTES_MAX)?)),
        }
    }

    fn get_value_option(&self, max_version: jmt::Version, key_hash: jmt::KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        value_at(&mut self.db.raw_iterator_cf(self.cf(CF_JMT_VALUES)), &key_hash, max_version)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(jmt::storage::NodeKey, jmt::storage::LeafNode)>> {
        anyhow::bail!("restoring a state tree is not supported")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `jmt_stale` row is the node keys a block wrote (`StaleRows::push_node`), end to end,
    /// read back key by key; a row cut short or with bytes left over is corrupt, as is a value
    /// list whose length is not a whole number of entries.
    #[test]
    fn stale_rows_read_what_was_written() {
        let version = 7u64.to_be_bytes();
        let keys: Vec<jmt::storage::NodeKey> = (0..5u8)
            .map(|i| {
                jmt::storage::NodeKey::new(u64::from(i), (0..i).map(Into::into).collect::<jmt::storage::NibblePath>())
            })
            .collect();
        let mut rows = StaleRows::default();
        for key in &keys {
            rows.push_node(key);
        }
        let encoded: Vec<Vec<u8>> = keys.iter().map(|k| borsh::to_vec(k).expect("encodes")).collect();
        let row = rows.nodes.clone();
        let read = stale_entries(CF_JMT_STALE, &version, &row).expect("reads");
        assert_eq!(read, encoded.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for bad in [&row[..row.len() - 1], &[row.as_slice(), &[0]].concat(), &row[..2]] {
            assert!(stale_entries(CF_JMT_STALE, &version, bad).is_err());
        }
        assert!(stale_entries(CF_JMT_STALE, &version, &[]).expect("reads").is_empty());
        rows.clear();
        assert!(rows.nodes.is_empty(), "cleared for the next block");
        let values = [[1u8; 40], [2; 40]].concat();
        assert_eq!(
            stale_entries(CF_JMT_STALE_VALUES, &version, &values).expect("reads"),
            vec![&[1u8; 40][..], &[2; 40]]
        );
        assert!(stale_entries(CF_JMT_STALE_VALUES, &version, &values[..39]).is_err());
        assert!(stale_entries(CF_JMT_STALE_KEYS, &version, &[0; 33]).is_err());
        // A row of the older layout names its one entry in its key.
        let old = [&version[..], &[5; 32]].concat();
        assert_eq!(stale_entries(CF_JMT_STALE_KEYS, &old, &[]).expect("reads"), vec![&[5u8; 32][..]]);
    }

    #[test]
    fn the_consensus_wal_keeps_order_per_height_survives_reopen_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain_id = Hash::of(b"chain");
        {
            let store = Store::open(dir.path(), chain_id).expect("open");
            for seq in 0..100u64 {
                store.wal_append(5, seq, &seq.to_le_bytes()).expect("append");
            }
            // One step's entries in one synced write, after the single ones.
            let batch: Vec<Vec<u8>> = (100..300u64).map(|seq| seq.to_le_bytes().to_vec()).collect();
            store.wal_append_batch(5, 100, &batch[..150], true).expect("append a batch");
            // Not synced, then synced: reopened, they are there.
            store.wal_append_batch(5, 250, &batch[150..], false).expect("append a batch");
            store.sync_wal().expect("sync");
            store.wal_append(6, 0, b"next").expect("append");
            store.put_evidence(5, b"two votes").expect("evidence");
            store.put_evidence(5, b"two votes").expect("idempotent");
        }
        let store = Store::open(dir.path(), chain_id).expect("reopen");
        let entries = store.wal_entries(5).expect("entries");
        assert_eq!(entries.len(), 300);
        assert!(entries.iter().enumerate().all(|(i, e)| *e == (i as u64).to_le_bytes()));
        assert_eq!(store.wal_entries(6).expect("entries"), vec![b"next".to_vec()]);
        assert_eq!(store.evidence(5).expect("evidence"), vec![b"two votes".to_vec()]);
        store.wal_prune_below(6).expect("prune");
        assert!(store.wal_entries(5).expect("entries").is_empty());
        assert_eq!(store.wal_entries(6).expect("entries").len(), 1);
        assert_eq!(store.evidence(5).expect("evidence kept").len(), 1);
        // A range of heights is read in one scan, bounded by height and by count.
        store.put_evidence(7, b"two proposals").expect("evidence");
        store.put_evidence(9, b"later").expect("evidence");
        let between = store.evidence_between(5, 8, 10).expect("evidence");
        assert_eq!(between, vec![(5, b"two votes".to_vec()), (7, b"two proposals".to_vec())]);
        assert_eq!(store.evidence_between(6, 9, 1).expect("evidence"), vec![(7, b"two proposals".to_vec())]);
        assert!(store.evidence_between(10, 20, 10).expect("evidence").is_empty());
        // Later prunes start where the last one stopped, and take what lies below their height.
        store.wal_append(7, 0, b"seven").expect("append");
        store.wal_append(8, 0, b"eight").expect("append");
        store.wal_prune_below(5).expect("a prune below an earlier one does nothing");
        assert_eq!(store.wal_entries(6).expect("entries").len(), 1);
        store.wal_prune_below(8).expect("prune");
        assert!(store.wal_entries(6).expect("entries").is_empty() && store.wal_entries(7).expect("entries").is_empty());
        assert_eq!(store.wal_entries(8).expect("entries"), vec![b"eight".to_vec()]);
    }
}
