//! Receipt proofs: a self-contained bundle showing that an execution receipt is in a block
//! finalized by the chain's validators, checkable offline with only the genesis file.
//!
//! The format and the verification rules are specified in `docs/PROOFS.md`.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::genesis::Genesis;
use crate::merkle::MerklePath;
use crate::types::{BlockHeader, Commit, ExecutionReceipt, FORMAT_VERSION};
use crate::{Error, Hash, Result};

/// A receipt with everything needed to check it offline.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptProof {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The receipt.
    pub receipt: ExecutionReceipt,
    /// Its path to the header's receipt root.
    pub path: MerklePath,
    /// The header of the block that holds it.
    pub header: BlockHeader,
    /// The commit that finalized that block.
    pub commit: Commit,
}

/// What a verified proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The job.
    pub job_id: Hash,
    /// The height of the block that holds the receipt.
    pub height: u64,
    /// The voting power that signed the commit.
    pub signed_power: u64,
    /// The total voting power of the validator set.
    pub total_power: u64,
}

impl ReceiptProof {
    /// Checks, in order: versions; the header's chain id is the genesis's; the commit is for this
    /// header's hash and height and carries precommits of more than 2/3 of the genesis validators'
    /// power; the provider's signature on the receipt; the receipt's Merkle path to the header's
    /// receipt root.
    pub fn verify(&self, genesis: &Genesis) -> Result<VerifiedReceipt> {
        if self.version != FORMAT_VERSION {
            return Err(Error::Version { what: "receipt proof", version: self.version });
        }
        if self.header.version != FORMAT_VERSION {
            return Err(Error::Version { what: "block header", version: self.header.version });
        }
        let chain_id = genesis.chain_id();
        if self.header.chain_id != chain_id {
            return Err(Error::Proof("the block is from another chain than this genesis".into()));
        }
        if self.commit.height != self.header.height || self.commit.block_hash != self.header.hash() {
            return Err(Error::Proof("the commit is not for this block header".into()));
        }
        let validators = genesis.validator_set()?;
        let signed_power = self.commit.verify(chain_id, &validators)?;
        self.receipt.verify()?;
        if self.path.leaf_count != self.header.receipt_count {
            return Err(Error::Proof("the Merkle path's leaf count is not the block's receipt count".into()));
        }
        match self.path.root_from(self.receipt.leaf_hash()) {
            Some(root) if root == self.header.receipt_root => {}
            _ => return Err(Error::Proof("the receipt is not in the block's receipt root".into())),
        }
        Ok(VerifiedReceipt {
            job_id: self.receipt.claim.job_id,
            height: self.header.height,
            signed_power,
            total_power: validators.total_power(),
        })
    }
}
