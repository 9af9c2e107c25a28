//! The state commitment: a Jellyfish Merkle Tree (SHA-256) over the contract state, versioned
//! by block height (genesis is version 0).
//!
//! Keys are hashed with SHA-256 (`KeyHash::with::<Sha256>(key)`, [`key_hash`]); the tree's
//! root is the header's `state_root`. This module computes updates over any
//! [`TreeReader`] ([`prepare`]), keeps a tree in memory ([`MemoryTree`]) and verifies proofs
//! ([`StateProof`], checkable offline against the genesis). A block's root is computed through
//! a [`StateCommitment`]: the in-memory tree here, or the node's persisted tree
//! (`cairn_store::StoreTree`, over the tree laid out in rocksdb column families, whose
//! `Store` also answers the proofs).

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, Version};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::genesis::Genesis;
use crate::types::{BlockHeader, Commit, FORMAT_VERSION};
use crate::{Error, Hash, Result};

/// A state change: set `key` to `value`, or delete it when `None`.
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

/// A state key's hash in the tree.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Sha256>(key)
}

/// The root and the node writes of one version of the tree, computed but not yet stored.
#[derive(Debug)]
pub struct StateUpdate {
    /// The version (block height).
    pub version: u64,
    /// The root after the update.
    pub root: Hash,
    /// What to write.
    pub batch: TreeUpdateBatch,
}

/// Computes the tree update of `changes` at `version` over `reader` (which holds `version - 1`).
pub fn prepare<R: TreeReader>(reader: &R, changes: &[StateChange], version: u64) -> Result<StateUpdate> {
    let tree = JellyfishMerkleTree::<R, Sha256>::new(reader);
    let set = changes.iter().map(|(k, v)| (key_hash(k), v.clone()));
    let (root, batch) = tree.put_value_set(set, version).map_err(|e| Error::Storage(format!("state tree: {e}")))?;
    Ok(StateUpdate { version, root: Hash(root.0), batch })
}

/// An in-memory tree: used to recompute a root from scratch (startup checks, tests).
#[derive(Debug, Default)]
pub struct MemoryTree {
    nodes: BTreeMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl TreeReader for MemoryTree {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.values.range((key_hash, 0)..=(key_hash, max_version)).next_back().and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("restoring a tree is not supported")
    }
}

impl MemoryTree {
    /// Applies a computed update.
    pub fn apply(&mut self, update: &StateUpdate) {
        self.apply_batch(&update.batch.node_batch);
    }

    /// Adds nodes and values.
    pub fn apply_batch(&mut self, batch: &jmt::storage::NodeBatch) {
        for (k, n) in batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((version, kh), v) in batch.values() {
            self.values.insert((*kh, *version), v.clone());
        }
    }

    /// The root of a tree holding exactly `entries`, built at version 0.
    pub fn root_of(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Hash> {
        Ok(MemoryTree::with_genesis(entries)?.1)
    }

    /// A tree holding `entries` at version 0, and its root.
    pub fn with_genesis(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(MemoryTree, Hash)> {
        let mut tree = MemoryTree::default();
        let changes: Vec<StateChange> = entries.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let update = prepare(&tree, &changes, 0)?;
        tree.apply(&update);
        Ok((tree, update.root))
    }
}

/// Computes the state root after a block from its state changes (the caller's state tree,
/// at version = height). Block building and checking (`cairn-contracts`) go through it, so they
/// stay pure: where the tree lives is the caller's.
pub trait StateCommitment {
    /// The root after applying `changes` at `version`.
    fn root_after(&mut self, changes: &[StateChange], version: u64) -> Result<Hash, String>;
}

/// An in-memory state tree advances one version per call (tests, tools, light replays).
impl StateCommitment for MemoryTree {
    fn root_after(&mut self, changes: &[StateChange], version: u64) -> Result<Hash, String> {
        let update = prepare(self, changes, version).map_err(|e| e.to_string())?;
        self.apply(&update);
        Ok(update.root)
    }
}

/// A proof of one state key's value (or absence) at a finalized height, checkable offline.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateProof {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// The state key.
    #[serde(with = "crate::hash::hex_bytes")]
    #[schemars(with = "crate::schema::HexBytes")]
    pub key: Vec<u8>,
    /// Its value at the header's height, or `None` if absent.
    pub value: Option<StateValue>,
    /// The JMT sparse Merkle proof (borsh of `jmt::proof::SparseMerkleProof<Sha256>`).
    #[serde(with = "crate::hash::hex_bytes")]
    #[schemars(with = "crate::schema::HexBytes")]
    pub proof: Vec<u8>,
    /// The header whose `state_root` the proof leads to.
    pub header: BlockHeader,
    /// The commit that finalized it.
    pub commit: Commit,
}

/// A state value (hex in JSON).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
pub struct StateValue(
    #[serde(with = "crate::hash::hex_bytes")]
    #[schemars(with = "crate::schema::HexBytes")]
    pub Vec<u8>,
);

/// The largest encoded JMT proof accepted (256 siblings and a leaf, generously).
pub const STATE_PROOF_BYTES_MAX: usize = 16 << 10;

impl StateProof {
    /// Checks the commit against the genesis validators and the JMT proof against the header's
    /// state root. Returns the value proven (or `None`: proven absent) and the height.
    pub fn verify(&self, genesis: &Genesis) -> Result<(Option<Vec<u8>>, u64)> {
        if self.version != FORMAT_VERSION {
            return Err(Error::Version { what: "state proof", version: self.version });
        }
        let chain_id = genesis.chain_id();
        if self.header.chain_id != chain_id {
            return Err(Error::Proof("the block is from another chain than this genesis".into()));
        }
        if self.commit.height != self.header.height || self.commit.block_hash != self.header.hash() {
            return Err(Error::Proof("the commit is not for this block header".into()));
        }
        self.commit.verify(chain_id, &genesis.validator_set()?)?;
        let proof: jmt::proof::SparseMerkleProof<Sha256> =
            crate::decode("state proof", &self.proof, STATE_PROOF_BYTES_MAX)?;
        let value = self.value.as_ref().map(|v| v.0.clone());
        proof
            .verify(jmt::RootHash(self.header.state_root.0), key_hash(&self.key), value.as_ref())
            .map_err(|e| Error::Proof(format!("state proof: {e}")))?;
        Ok((value, self.header.height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_depend_only_on_contents() {
        let mut tree = MemoryTree::default();
        let a: Vec<StateChange> = vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), Some(b"2".to_vec()))];
        let u0 = prepare(&tree, &a, 0).expect("v0");
        tree.apply(&u0);
        let u1 = prepare(&tree, &[(b"b".to_vec(), None), (b"c".to_vec(), Some(b"3".to_vec()))], 1).expect("v1");
        tree.apply(&u1);
        let fresh = MemoryTree::root_of(&[(b"a".to_vec(), b"1".to_vec()), (b"c".to_vec(), b"3".to_vec())]);
        assert_eq!(fresh.expect("root"), u1.root);
        assert_ne!(u0.root, u1.root);
    }
}
