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
pub use jmt::KeyHash;
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, StaleNodeIndex, TreeReader, TreeUpdateBatch};
use jmt::{JellyfishMerkleTree, OwnedValue, ValueHash, Version};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::genesis::Genesis;
use crate::types::{BlockHeader, Commit, FORMAT_VERSION};
use crate::{Error, Hash, Result};

mod update;

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
    /// What to write: shared, so that the store keeps the last blocks' updates for the next
    /// ones' reads without copying their nodes.
    pub batch: std::sync::Arc<TreeUpdateBatch>,
    /// The keys (hashes) this version gives a value that the version before did not hold,
    /// sorted, as [`prepare`] finds them on its way; left empty by an update that does not
    /// tell them. A store needs to look up no earlier value row for these.
    pub created: Vec<KeyHash>,
}

/// Computes the tree update of `changes` at `version` over `reader` (which holds `version - 1`).
///
/// One pass over the tree with every changed key, inserted, updated or deleted alike
/// ([`update`]): each internal node it changes is built once, from its finished children. The
/// library's own batch insert takes no deletions, and deleting one key at a time rehashes
/// every node above it: a busy block's update took about 1.4 times as long in the library's
/// batch insert followed by the deletions one at a time (BENCHMARKS.md, "A block's state tree
/// update in one pass"). It stores the tree that inserting one key at a time stores, position
/// by position, and marks the same positions stale ([`prepare_one_by_one`] is kept to pin
/// that: a tree's shape depends only on its keys); only the versions of some nodes differ (one
/// key at a time rewrites a leaf that a deletion moved up and an insertion moved back down;
/// one pass leaves it where it was). A key named twice in `changes` takes its last change.
pub fn prepare<R: TreeReader>(reader: &R, changes: &[StateChange], version: u64) -> Result<StateUpdate> {
    let mut latest: BTreeMap<KeyHash, Option<&Vec<u8>>> = BTreeMap::new();
    for (k, v) in changes {
        latest.insert(key_hash(k), v.as_ref());
    }
    let hashed: Vec<(KeyHash, Option<ValueHash>)> =
        latest.iter().map(|(kh, v)| (*kh, v.map(ValueHash::with::<Sha256>))).collect();
    let written = update::update(reader, &hashed, version)?;
    let values = latest.into_iter().map(|(kh, v)| ((version, kh), v.cloned())).collect();
    let mut batch = TreeUpdateBatch {
        node_batch: NodeBatch::new(written.nodes, values),
        stale_node_index_batch: written.stale,
        node_stats: Vec::new(),
    };
    mark_previous_root(reader, &mut batch, version)?;
    Ok(StateUpdate { version, root: Hash(written.root), batch: std::sync::Arc::new(batch), created: written.created })
}

/// [`prepare`] one key at a time (`put_value_set`): the library's reference insertion, whose
/// tree [`prepare`] must store position by position.
pub fn prepare_one_by_one<R: TreeReader>(reader: &R, changes: &[StateChange], version: u64) -> Result<StateUpdate> {
    put_one_by_one(reader, changes.iter().map(|(k, v)| (key_hash(k), v.clone())), version)
}

pub(crate) fn put_one_by_one<R: TreeReader>(
    reader: &R,
    changes: impl IntoIterator<Item = (KeyHash, Option<OwnedValue>)>,
    version: u64,
) -> Result<StateUpdate> {
    let tree = JellyfishMerkleTree::<R, Sha256>::new(reader);
    let (root, mut batch) = tree.put_value_set(changes, version).map_err(tree_error)?;
    mark_previous_root(reader, &mut batch, version)?;
    Ok(StateUpdate { version, root: Hash(root.0), batch: std::sync::Arc::new(batch), created: Vec::new() })
}

/// Marks the previous version's root stale at `version` where the library leaves it unmarked
/// though `batch` writes a root of its own: a version that changes nothing copies the root,
/// and the first key into an empty tree replaces its null root. Left unmarked, it would never
/// be pruned: a node for each such block, for ever.
pub(crate) fn mark_previous_root<R: TreeReader>(
    reader: &R,
    batch: &mut TreeUpdateBatch,
    version: Version,
) -> Result<()> {
    let Some(before) = version.checked_sub(1) else { return Ok(()) };
    // The root is the node at the empty path.
    let Some(root) = batch.node_batch.nodes().keys().find(|k| k.version() == version && k.nibble_path().is_empty())
    else {
        return Ok(());
    };
    // The library marks what an update replaces stale at the update's version.
    let stale =
        StaleNodeIndex { stale_since_version: version, node_key: NodeKey::new(before, root.nibble_path().clone()) };
    if batch.stale_node_index_batch.contains(&stale)
        || reader.get_node_option(&stale.node_key).map_err(tree_error)?.is_none()
    {
        return Ok(());
    }
    batch.stale_node_index_batch.insert(stale);
    Ok(())
}

fn tree_error(e: anyhow::Error) -> Error {
    Error::Storage(format!("state tree: {e}"))
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

    /// A tree as a node keeping no history stores it: each update's nodes added, the nodes it
    /// made stale removed at once.
    pub(super) fn apply_and_prune(tree: &mut MemoryTree, update: &StateUpdate) {
        tree.apply(update);
        for stale in &update.batch.stale_node_index_batch {
            assert!(stale.stale_since_version == update.version, "{stale:?} stale at its update's version");
            assert!(tree.nodes.remove(&stale.node_key).is_some(), "{stale:?} was stored");
        }
    }

    /// What a stored tree holds, position by position (nibble path to node hash), whatever
    /// version wrote each node, and that it holds one node at each position: every node
    /// replaced was marked stale (the root an empty set copies, the null root of an empty
    /// tree, too).
    pub(super) fn shape(tree: &MemoryTree) -> BTreeMap<String, [u8; 32]> {
        let nodes: Vec<_> = tree
            .nodes
            .iter()
            .map(|(k, n)| match n {
                Node::Internal(n) => (k, n.hash::<Sha256>()),
                Node::Leaf(n) => (k, n.hash::<Sha256>()),
                Node::Null => (k, [0; 32]),
            })
            .collect();
        let shape: BTreeMap<_, _> = nodes.iter().map(|(k, h)| (format!("{:?}", k.nibble_path()), *h)).collect();
        assert_eq!(shape.len(), nodes.len(), "one node per position");
        shape
    }

    /// [`prepare`]'s single pass makes the tree that inserting one key at a time makes,
    /// version after version, through inserts, updates, deletions (of present and absent
    /// keys, down to an empty tree, and into it again) and empty sets: the same root, value
    /// rows and nodes at the same positions, every node it makes stale stored and every node
    /// it stores reachable (the two trees, pruned of their stale nodes, hold exactly the same
    /// positions); and every key's proof verifies. Only the versions of some nodes differ:
    /// one key at a time, a leaf a deletion moved up and an insertion moved down again is
    /// written anew, where the single pass leaves it where it was.
    #[test]
    fn prepare_writes_what_one_key_at_a_time_writes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut tree = MemoryTree::default();
        let mut reference = MemoryTree::default();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut present: Vec<u32> = Vec::new();
        let value = |rng: &mut rand::rngs::StdRng| Some(rng.r#gen::<[u8; 8]>().to_vec());
        for version in 0..70u64 {
            let mut changes: Vec<StateChange> = Vec::new();
            let (new, updated, deleted, absent) = match version % 10 {
                0 => (0, 0, 0, 0),
                1 if version == 41 => (0, 0, present.len(), 2),
                2 => (0, 0, 5, 3),
                3 => (3, 40, 0, 0),
                _ => (rng.gen_range(1..400), rng.gen_range(0..50), rng.gen_range(0..60), rng.gen_range(0..3)),
            };
            for _ in 0..new {
                let k = rng.r#gen::<u32>();
                changes.push((k.to_be_bytes().to_vec(), value(&mut rng)));
                present.push(k);
            }
            for _ in 0..updated.min(present.len()) {
                let k = present[rng.gen_range(0..present.len())];
                changes.push((k.to_be_bytes().to_vec(), value(&mut rng)));
            }
            for _ in 0..deleted.min(present.len()) {
                let k = present.swap_remove(rng.gen_range(0..present.len()));
                changes.push((k.to_be_bytes().to_vec(), None));
            }
            for _ in 0..absent {
                changes.push((rng.r#gen::<u64>().to_be_bytes().to_vec(), None));
            }
            // A key changed twice (inserted then deleted, or updated after it was deleted)
            // takes its last change.
            let twice = prepare(&tree, &changes, version).expect("changes repeating keys");
            assert_eq!(twice.root, prepare_one_by_one(&tree, &changes, version).expect("one by one").root);
            // Each key once, as a state's pending changes are.
            let mut last = BTreeMap::new();
            for (k, v) in changes {
                last.insert(k, v);
            }
            let changes: Vec<StateChange> = last.into_iter().collect();
            let one_pass = prepare(&tree, &changes, version).expect("one pass");
            let one_by_one = prepare_one_by_one(&reference, &changes, version).expect("one by one");
            assert_eq!(twice.root, one_pass.root);
            assert_eq!(one_pass.root, one_by_one.root, "root at {version}");
            assert_eq!(one_pass.batch.node_batch.values(), one_by_one.batch.node_batch.values(), "values at {version}");
            apply_and_prune(&mut tree, &one_pass);
            apply_and_prune(&mut reference, &one_by_one);
            assert_eq!(shape(&tree), shape(&reference), "positions at {version}");
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
        }
        assert!(model.len() > 2000, "the tree grew: {}", model.len());
        let jmt = JellyfishMerkleTree::<_, Sha256>::new(&tree);
        let root = jmt.get_root_hash(69).expect("root");
        for (k, v) in model.iter().step_by(7) {
            let (value, proof) = jmt.get_with_proof(key_hash(k), 69).expect("a proof");
            assert_eq!(value.as_ref(), Some(v));
            proof.verify_existence(root, key_hash(k), v).expect("verifies");
        }
        let absent = key_hash(b"never written");
        let (value, proof) = jmt.get_with_proof(absent, 69).expect("a proof of absence");
        assert_eq!(value, None);
        proof.verify_nonexistence(root, absent).expect("verifies");
    }
}
