//! The block store: rocksdb with one column family per table, one atomic batch per block.
//!
//! | table (column family) | key | value |
//! |---|---|---|
//! | `blocks` | height (u64 big-endian) | borsh [`Block`] |
//! | `commits` | height | borsh [`Commit`] that finalized that block |
//! | `receipts` | height | borsh `Vec<ExecutionReceipt>`, the block's receipts in order |
//! | `jobs` | job id | borsh [`JobLocation`]: where its offer and receipt are |
//! | `state` | contract state key | contract state value (opaque here) |
//! | `blobs` | module id | wasm bytes |
//! | `meta` | `b"head"`, `b"chain_id"` | height (u64 BE), chain id |
//!
//! [`Store::commit_block`] writes a block, its commit, receipts, job index and state changes
//! in one synced `WriteBatch`, then moves the head: after a crash the store reopens at the last
//! block that was fully written, never half of one.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::error::decode;
use crate::types::{Block, Commit, ExecutionReceipt};
use crate::{Error, Hash, Result};

const CF_BLOCKS: &str = "blocks";
const CF_COMMITS: &str = "commits";
const CF_RECEIPTS: &str = "receipts";
const CF_JOBS: &str = "jobs";
const CF_STATE: &str = "state";
const CF_BLOBS: &str = "blobs";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 7] = [CF_BLOCKS, CF_COMMITS, CF_RECEIPTS, CF_JOBS, CF_STATE, CF_BLOBS, CF_META];

const META_HEAD: &[u8] = b"head";
const META_CHAIN_ID: &[u8] = b"chain_id";

/// The largest record read back from disk (a block with all its transactions).
pub const RECORD_BYTES_MAX: usize = 256 << 20;

/// Where a job's transactions landed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct JobLocation {
    /// Height of the block that included the offer.
    pub offer_height: Option<u64>,
    /// Height of the block that included the accepted result, and the receipt's index in it.
    pub receipt: Option<(u64, u32)>,
}

/// A state change: set `key` to `value`, or delete it when `None`.
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

/// Everything a finalized block writes.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    /// The block.
    pub block: &'a Block,
    /// The commit that finalized it.
    pub commit: &'a Commit,
    /// Its receipts, in order.
    pub receipts: &'a [ExecutionReceipt],
    /// Job index updates.
    pub jobs: &'a [(Hash, JobLocation)],
    /// State changes.
    pub state: &'a [StateChange],
}

/// The node's rocksdb database.
pub struct Store {
    db: DB,
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

impl Store {
    /// Opens (creating if needed) the database at `path` for the chain `chain_id`. Refuses a
    /// database that belongs to another chain.
    pub fn open(path: &Path, chain_id: Hash) -> Result<Store> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(256);
        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(storage)?;
        let store = Store { db };
        match store.get(CF_META, META_CHAIN_ID)? {
            None => store.db.put_cf(store.cf(CF_META), META_CHAIN_ID, chain_id.0).map_err(storage)?,
            Some(found) if found == chain_id.0 => {}
            Some(_) => {
                return Err(Error::Storage(format!(
                    "the database at {} belongs to another chain; use another data folder or the matching genesis",
                    path.display()
                )));
            }
        }
        Ok(store)
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

    /// The commit that finalized the block at `height`.
    pub fn commit(&self, height: u64) -> Result<Option<Commit>> {
        self.get_decoded(CF_COMMITS, &height_key(height))
    }

    /// The receipts of the block at `height`.
    pub fn receipts(&self, height: u64) -> Result<Option<Vec<ExecutionReceipt>>> {
        self.get_decoded(CF_RECEIPTS, &height_key(height))
    }

    /// Where a job's offer and receipt landed.
    pub fn job(&self, job_id: &Hash) -> Result<Option<JobLocation>> {
        self.get_decoded(CF_JOBS, &job_id.0)
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
            batch.put_cf(self.cf(CF_JOBS), job_id.0, borsh::to_vec(location).expect("encodes"));
        }
        for (k, v) in w.state {
            match v {
                Some(v) => batch.put_cf(self.cf(CF_STATE), k, v),
                None => batch.delete_cf(self.cf(CF_STATE), k),
            }
        }
        batch.put_cf(self.cf(CF_META), META_HEAD, key);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(storage)
    }

    /// Every state entry, in key order (to rebuild the in-memory state at startup).
    pub fn state_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .iterator_cf(self.cf(CF_STATE), IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(storage))
            .collect()
    }

    /// Stores a blob under its hash (idempotent, synced).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Hash> {
        let id = Hash::of(bytes);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(self.cf(CF_BLOBS), id.0, bytes, &wo).map_err(storage)?;
        Ok(id)
    }

    /// The blob with hash `id`, checked against its hash.
    pub fn blob(&self, id: &Hash) -> Result<Option<Vec<u8>>> {
        match self.get(CF_BLOBS, &id.0)? {
            Some(b) if Hash::of(&b) != *id => Err(Error::Corrupt(format!("blob {id} does not match its hash"))),
            other => Ok(other),
        }
    }

    /// Whether the blob `id` is stored.
    pub fn has_blob(&self, id: &Hash) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(CF_BLOBS), id.0).map_err(storage)?.is_some())
    }
}
