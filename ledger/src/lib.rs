//! Cairn's data model: the records, their hashes and signatures, and the proofs over them.
//!
//! - [`keys`]: ed25519 identities; signatures over `domain_tag || 0x00 || borsh(body)`.
//! - [`types`]: the signed, versioned records — [`SignedOffer`], [`JobResult`],
//!   [`ExecutionReceipt`], [`Transaction`], [`Block`], [`Vote`], [`Commit`].
//! - [`status`] and [`outcome`]: how a job ended ([`JobStatus`]) and what its result states
//!   ([`Outcome`]).
//! - [`placement`]: regions, and where an offer's job may run ([`Placement`]).
//! - [`merkle`]: domain-separated Merkle roots and paths over transactions and receipts.
//! - [`proof`]: [`ReceiptProof`], checkable offline against a [`Genesis`].
//! - [`schema`]: the JSON Schemas of the records' JSON forms (hex ids, keys and bytes), from
//!   which the RPC's OpenRPC document is generated.
//! - [`state_tree`]: the Jellyfish Merkle Tree over the state — updates, an in-memory tree,
//!   the [`StateCommitment`] blocks are built through, and [`StateProof`] verification.
//!
//! Nothing here touches a disk: the rocksdb store is the `cairn-store` crate.
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
pub mod outcome;
pub mod placement;
pub mod proof;
pub mod schema;
pub mod snapshot;
pub mod state_tree;
pub mod status;
pub mod types;

#[cfg(test)]
mod tests;

pub use error::{Error, Result, decode};
pub use genesis::{
    ChainParams, Genesis, GenesisAccount, GenesisProvider, PARAMS_BLOCK_BYTES_LIMIT, PARAMS_INPUT_BYTES_LIMIT,
    PARAMS_OUTPUT_BYTES_LIMIT,
};
pub use hash::{Hash, decode_hex};
pub use keys::{Domain, Keypair, PublicKey, Signature, SignatureBatch, SignatureSink, VerifyNow};
pub use merkle::MerklePath;
pub use outcome::Outcome;
pub use placement::{
    PLACEMENT_REGIONS_MAX, Placement, REGION_BYTES_MAX, check_provider_region, check_region, is_region,
};
pub use proof::{ReceiptProof, VerifiedReceipt};
pub use state_tree::{StateChange, StateCommitment, StateProof, StateUpdate, StateValue};
pub use status::{JobStatus, REASON_BYTES_MAX};
pub use types::{
    Action, Block, BlockHeader, Commit, CommitSignature, DATA_BLOB_BYTES_MAX, ExecutionReceipt, FORMAT_VERSION,
    JobOffer, JobResult, ResultClaim, SignedOffer, SignedTx, Transaction, Tx, Validator, ValidatorSet, Vote, VoteKind,
};
