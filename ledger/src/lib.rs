//! Cairn's data model and storage.
//!
//! - [`keys`]: ed25519 identities; signatures over `domain_tag || 0x00 || borsh(body)`.
//! - [`types`]: the signed, versioned records — [`SignedOffer`], [`JobResult`],
//!   [`ExecutionReceipt`], [`Transaction`], [`Block`], [`Vote`], [`Commit`].
//! - [`merkle`]: domain-separated Merkle roots and paths over transactions and receipts.
//! - [`proof`]: [`ReceiptProof`], checkable offline against a [`Genesis`].
//! - [`state_tree`]: the Jellyfish Merkle Tree over the state, its proofs.
//! - [`store`]: the rocksdb block store, one atomic batch per block.
//!
//! ```
//! use cairn_ledger::{Keypair, Domain};
//! let key = Keypair::from_seed([1; 32]);
//! let sig = key.sign(Domain::JobOffer, &7u64);
//! assert!(key.public().verify(Domain::JobOffer, &7u64, &sig).is_ok());
//! ```

pub mod error;
pub mod genesis;
pub mod hash;
pub mod keys;
pub mod merkle;
pub mod proof;
pub mod state_tree;
pub mod status;
pub mod store;
pub mod types;

#[cfg(test)]
mod tests;

pub use error::{Error, Result, decode};
pub use genesis::{ChainParams, Genesis, GenesisAccount, GenesisProvider};
pub use hash::Hash;
pub use keys::{Domain, Keypair, PublicKey, Signature};
pub use merkle::MerklePath;
pub use proof::{ReceiptProof, VerifiedReceipt};
pub use state_tree::{StateProof, StateUpdate, StateValue};
pub use status::{JobStatus, REASON_BYTES_MAX};
pub use store::{BlockWrite, JobLocation, StateChange, Store};
pub use types::{
    Action, Block, BlockHeader, Commit, CommitSignature, ExecutionReceipt, FORMAT_VERSION, JobOffer, JobResult,
    ResultClaim, SignedOffer, SignedTx, Transaction, Tx, Validator, ValidatorSet, Vote, VoteKind,
};
