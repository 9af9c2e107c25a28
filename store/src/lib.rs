//! Cairn's block store: the rocksdb database a node keeps its chain in.
//!
//! - [`Store`]: one column family per table (blocks, commits, receipts, the job index, the
//!   state tree with its value rows and key index, blobs (modules, job data), the consensus
//!   write-ahead log…), each block written with everything it changes in one synced batch
//!   ([`Store::commit_block`], [`BlockWrite`]), so a crash never leaves half a block.
//! - [`tree`]: the state tree in the store — [`StoreTree`], the
//!   [`StateCommitment`](cairn_ledger::StateCommitment) a node builds and checks blocks with,
//!   and [`init_store_genesis`]; [`Store`] prunes old versions and answers proofs.
//!
//! The records, the tree's computation and proof verification are `cairn-ledger`'s; this
//! crate only stores them.
//!
//! ```
//! use cairn_ledger::Hash;
//! use cairn_store::{Store, init_store_genesis};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), Hash::of(b"a chain id"))?;
//! init_store_genesis(&store, vec![(b"key".to_vec(), b"value".to_vec())])?;
//! assert_eq!(store.head_height()?, 0);
//! let (value, _proof) = store.state_proof(b"key", 0)?;
//! assert_eq!(value, Some(b"value".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod recent;
pub mod store;
pub mod tree;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use recent::{RECENT_NODES_MAX, RECENT_ROWS_MAX};
pub use store::{
    BLOCK_CACHE_BYTES, BlockWrite, JobLocation, RECORD_BYTES_MAX, STATE_HISTORY_BLOCKS_DEFAULT, Store, StoreBudget,
    StoreMemory, WAL_BYTES_MAX, WRITE_BUFFER_BYTES,
};
pub use tree::{StoreTree, init_store_genesis};
