//! One version's update of the state tree, in a single pass over the keys it changes.
//!
//! The library's own updates take either many keys at once but no deletion
//! (`batch_put_value_sets`) or one key at a time (`put_value_set`), and a deletion one at a
//! time rehashes every internal node above its key: with a block's retired jobs a quarter of
//! its keys, the deletions cost nearly as much as all the rest (BENCHMARKS.md, "What the state
//! tree costs: two probes"). This pass walks the tree once, top down, with every changed key —
//! inserted, updated or deleted — and builds each internal node it changes once, from its
//! finished children. It writes what the library writes: nodes of the same hashes at the same
//! positions (a tree's shape depends only on its keys; some versions differ), in the library's
//! node format (the one `jmt_nodes` holds on disk), each replaced node marked stale at the
//! update's version.
//!
//! The shape, as the library lays it out: an empty subtree has no node; a subtree of one key
//! is that key's leaf, at the subtree's top position; a subtree of two keys or more is an
//! internal node with a child per nibble (an internal node may have a single child when that
//! child is itself an internal node). A deletion that leaves a subtree one leaf thus moves the
//! leaf up, and an insertion beside a leaf moves it down.

use std::collections::{BTreeMap, BTreeSet};

use jmt::storage::{LeafNode, NibblePath, Node, NodeKey, StaleNodeIndex, TreeReader};
use jmt::{KeyHash, ValueHash, Version};
use sha2::Sha256;

use crate::{Error, Result};

/// The hash of an empty tree (the library's placeholder for an absent subtree).
pub(super) const EMPTY_ROOT: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// What one version's update writes and makes stale, and its root.
pub(super) struct Written {
    pub(super) root: [u8; 32],
    pub(super) nodes: BTreeMap<NodeKey, Node>,
    pub(super) stale: BTreeSet<StaleNodeIndex>,
    /// The keys given a value that the tree did not hold before, in increasing order.
    pub(super) created: Vec<KeyHash>,
}

/// Updates the tree `reader` holds at `version - 1` (none at version 0) with `changes` — key
/// hashes in increasing order, each once, with the hash of the key's new value or `None` to
/// delete it — at `version`.
pub(super) fn update<R: TreeReader>(
    reader: &R,
    changes: &[(KeyHash, Option<ValueHash>)],
    version: Version,
) -> Result<Written> {
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0), "changes in increasing key order, each once");
    let mut pass = Pass { reader, version, nodes: BTreeMap::new(), stale: BTreeSet::new(), replaced: Vec::new() };
    let mut path = Vec::with_capacity(64);
    let old_root = match version.checked_sub(1) {
        None => None,
        Some(before) => {
            let key = NodeKey::new(before, nibble_path(&path));
            let node = pass.read(&key)?;
            Some((key, node))
        }
    };
    let root = if changes.is_empty() {
        // Every version has a root: one that changes nothing copies the last one (which the
        // caller marks stale).
        let node = old_root.map_or(Node::Null, |(_, node)| node);
        let hash = node_hash(&node);
        pass.write(&path, node);
        hash
    } else {
        let sub = match old_root {
            None => pass.build(&mut path, &leaves(None, changes))?,
            Some((key, node)) => pass.descend(&mut path, key, node, None, changes)?,
        };
        match sub {
            Sub::Empty => {
                pass.write(&path, Node::Null);
                EMPTY_ROOT
            }
            Sub::Leaf(leaf) => {
                // The root is written at every version, even a leaf that stays.
                if let Some(stored) = leaf.stored {
                    pass.stale(stored);
                }
                pass.write(&path, Node::Leaf(leaf.node));
                leaf.hash
            }
            Sub::Internal(child) => child.hash,
        }
    };
    // A key the old tree held has its leaf there, which the walk met: every other key given a
    // value is new.
    let mut replaced = pass.replaced;
    replaced.sort_unstable();
    let created = changes
        .iter()
        .filter(|(kh, vh)| vh.is_some() && replaced.binary_search(kh).is_err())
        .map(|(kh, _)| *kh)
        .collect();
    Ok(Written { root, nodes: pass.nodes, stale: pass.stale, created })
}

/// A child as its parent internal node records it.
#[derive(Clone, Copy, Debug)]
struct ChildRef {
    hash: [u8; 32],
    /// The version that wrote the child's node (with the position, its node key).
    version: Version,
    /// `None` for a leaf; the leaves under it for an internal node.
    leaves: Option<u64>,
}

/// A leaf of the new tree, not yet placed: its parent puts it at the position of the subtree
/// it is alone in, or passes it up.
#[derive(Clone, Debug)]
struct NewLeaf {
    node: LeafNode,
    hash: [u8; 32],
    /// Where the old tree stores it, if it is an unchanged leaf of the old tree.
    stored: Option<NodeKey>,
}

/// What a subtree became.
enum Sub {
    Empty,
    Leaf(NewLeaf),
    /// An internal node this update wrote.
    Internal(ChildRef),
}

/// A position under an internal node being rebuilt.
enum Slot {
    /// Untouched by the update: the old tree's child, kept as it is.
    Old(ChildRef),
    New(Sub),
}

struct Pass<'a, R> {
    reader: &'a R,
    version: Version,
    nodes: BTreeMap<NodeKey, Node>,
    stale: BTreeSet<StaleNodeIndex>,
    /// The keys of the old tree's leaves that a change names (replaced or deleted).
    replaced: Vec<KeyHash>,
}

impl<R: TreeReader> Pass<'_, R> {
    fn read(&self, key: &NodeKey) -> Result<Node> {
        self.reader
            .get_node_option(key)
            .map_err(|e| Error::Storage(format!("state tree: {e}")))?
            .ok_or_else(|| Error::Storage(format!("state tree: no node {key:?}")))
    }

    fn write(&mut self, path: &[u8], node: Node) {
        self.nodes.insert(NodeKey::new(self.version, nibble_path(path)), node);
    }

    fn stale(&mut self, key: NodeKey) {
        self.stale.insert(StaleNodeIndex { stale_since_version: self.version, node_key: key });
    }

    /// The subtree at `path` of the old tree, whose top node is `node` (stored at `key`; its
    /// hash if its parent records it), with `changes` (all under `path`).
    fn descend(
        &mut self,
        path: &mut Vec<u8>,
        key: NodeKey,
        node: Node,
        hash: Option<[u8; 32]>,
        changes: &[(KeyHash, Option<ValueHash>)],
    ) -> Result<Sub> {
        match node {
            Node::Null => {
                self.stale(key);
                self.build(path, &leaves(None, changes))
            }
            Node::Leaf(node) => {
                let carried = if changes.binary_search_by_key(&node.key_hash(), |c| c.0).is_ok() {
                    // Replaced or deleted.
                    self.replaced.push(node.key_hash());
                    self.stale(key);
                    None
                } else {
                    let hash = hash.unwrap_or_else(|| node.hash::<Sha256>());
                    Some(NewLeaf { hash, node, stored: Some(key) })
                };
                self.build(path, &leaves(carried, changes))
            }
            Node::Internal(internal) => {
                self.stale(key);
                let mut slots: [Option<Slot>; 16] = Default::default();
                for (nibble, child) in internal.children_sorted() {
                    let leaves = (!child.is_leaf()).then(|| child.leaf_count() as u64);
                    slots[nibble.as_usize()] =
                        Some(Slot::Old(ChildRef { hash: child.hash, version: child.version, leaves }));
                }
                for (nibble, part) in runs(changes, path.len(), |c| c.0) {
                    path.push(nibble as u8);
                    let sub = match slots[nibble].take() {
                        Some(Slot::Old(child)) => {
                            let key = NodeKey::new(child.version, nibble_path(path));
                            let node = self.read(&key)?;
                            self.descend(path, key, node, Some(child.hash), part)?
                        }
                        _ => self.build(path, &leaves(None, part))?,
                    };
                    path.pop();
                    slots[nibble] = Some(Slot::New(sub));
                }
                self.assemble(path, slots)
            }
        }
    }

    /// A new subtree at `path` holding exactly `leaves` (in increasing key order).
    fn build(&mut self, path: &mut Vec<u8>, leaves: &[NewLeaf]) -> Result<Sub> {
        match leaves {
            [] => Ok(Sub::Empty),
            [leaf] => Ok(Sub::Leaf(leaf.clone())),
            _ => {
                let mut slots: [Option<Slot>; 16] = Default::default();
                for (nibble, part) in runs(leaves, path.len(), |l| l.node.key_hash()) {
                    path.push(nibble as u8);
                    let sub = self.build(path, part)?;
                    path.pop();
                    slots[nibble] = Some(Slot::New(sub));
                }
                self.assemble(path, slots)
            }
        }
    }

    /// The subtree at `path` made of `slots`: nothing, a leaf passed up, or an internal node
    /// written here.
    fn assemble(&mut self, path: &mut Vec<u8>, mut slots: [Option<Slot>; 16]) -> Result<Sub> {
        let present: Vec<usize> = (0..16)
            .filter(|&i| matches!(&slots[i], Some(Slot::Old(_)) | Some(Slot::New(Sub::Leaf(_) | Sub::Internal(_)))))
            .collect();
        match present[..] {
            [] => return Ok(Sub::Empty),
            [only] => match slots[only].take() {
                Some(Slot::New(Sub::Leaf(leaf))) => return Ok(Sub::Leaf(leaf)),
                Some(Slot::Old(child)) if child.leaves.is_none() => {
                    // An unchanged leaf left alone under this node: it moves up.
                    path.push(only as u8);
                    let key = NodeKey::new(child.version, nibble_path(path));
                    path.pop();
                    return match self.read(&key)? {
                        Node::Leaf(node) => Ok(Sub::Leaf(NewLeaf { node, hash: child.hash, stored: Some(key) })),
                        _ => Err(Error::Storage(format!("state tree: {key:?} is recorded as a leaf but is not one"))),
                    };
                }
                other => slots[only] = other,
            },
            _ => {}
        }
        let mut children = [None; 16];
        for (i, slot) in slots.into_iter().enumerate() {
            children[i] = match slot {
                None | Some(Slot::New(Sub::Empty)) => None,
                Some(Slot::Old(child)) | Some(Slot::New(Sub::Internal(child))) => Some(child),
                Some(Slot::New(Sub::Leaf(leaf))) => {
                    path.push(i as u8);
                    let child = self.place(path, leaf);
                    path.pop();
                    Some(child)
                }
            };
        }
        let node = internal_node(&children)?;
        let hash = node_hash(&node);
        let leaves = children.iter().flatten().map(|c| c.leaves.unwrap_or(1)).sum();
        self.write(path, node);
        Ok(Sub::Internal(ChildRef { hash, version: self.version, leaves: Some(leaves) }))
    }

    /// Puts `leaf` at `path`: where it is, if the old tree stores it there; else written anew.
    fn place(&mut self, path: &[u8], leaf: NewLeaf) -> ChildRef {
        if let Some(stored) = leaf.stored {
            if stored.nibble_path() == &nibble_path(path) {
                return ChildRef { hash: leaf.hash, version: stored.version(), leaves: None };
            }
            self.stale(stored);
        }
        self.write(path, Node::Leaf(leaf.node));
        ChildRef { hash: leaf.hash, version: self.version, leaves: None }
    }
}

/// The leaves of a rebuilt subtree: `carried` (an old leaf no change names) and the changes
/// that give a value, in increasing key order.
fn leaves(carried: Option<NewLeaf>, changes: &[(KeyHash, Option<ValueHash>)]) -> Vec<NewLeaf> {
    let mut out: Vec<NewLeaf> = changes
        .iter()
        .filter_map(|(kh, vh)| {
            vh.map(|vh| {
                let node = LeafNode::new(*kh, vh);
                NewLeaf { hash: node.hash::<Sha256>(), node, stored: None }
            })
        })
        .collect();
    if let Some(carried) = carried {
        let at = out.partition_point(|l| l.node.key_hash() < carried.node.key_hash());
        out.insert(at, carried);
    }
    out
}

/// The nibble of `key` at `depth` (0 is the high half of the first byte).
fn nibble(key: &KeyHash, depth: usize) -> usize {
    let byte = key.0[depth / 2];
    usize::from(if depth.is_multiple_of(2) { byte >> 4 } else { byte & 0x0f })
}

/// `items` (in increasing key order) split into runs by their keys' nibble at `depth`.
fn runs<T>(items: &[T], depth: usize, key: impl Fn(&T) -> KeyHash) -> Vec<(usize, &[T])> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let n = nibble(&key(&items[start]), depth);
        let len = items[start..].partition_point(|item| nibble(&key(item), depth) == n);
        out.push((n, &items[start..start + len]));
        start += len;
    }
    out
}

fn nibble_path(nibbles: &[u8]) -> NibblePath {
    nibbles.iter().map(|&n| n.into()).collect()
}

fn node_hash(node: &Node) -> [u8; 32] {
    match node {
        Node::Null => EMPTY_ROOT,
        Node::Leaf(leaf) => leaf.hash::<Sha256>(),
        Node::Internal(internal) => internal.hash::<Sha256>(),
    }
}

/// An internal node of the library with `children`, in its node format (borsh: the variant,
/// sixteen optional children — hash, version, leaf or internal with its leaf count —, the
/// number of children and the leaves under it), which the library only builds itself.
fn internal_node(children: &[Option<ChildRef>; 16]) -> Result<Node> {
    let mut bytes = Vec::with_capacity(1 + 16 * 50 + 16);
    bytes.push(1); // Node::Internal
    let mut count = 0u64;
    let mut leaves = 0u64;
    for child in children {
        match child {
            None => bytes.push(0),
            Some(c) => {
                count += 1;
                bytes.push(1);
                bytes.extend_from_slice(&c.hash);
                bytes.extend_from_slice(&c.version.to_le_bytes());
                match c.leaves {
                    None => {
                        leaves += 1;
                        bytes.push(0);
                    }
                    Some(n) => {
                        leaves += n;
                        bytes.push(1);
                        bytes.extend_from_slice(&n.to_le_bytes());
                    }
                }
            }
        }
    }
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&leaves.to_le_bytes());
    borsh::from_slice(&bytes).map_err(|e| Error::Storage(format!("state tree: an internal node: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node format written here is the library's: every internal node of a tree the
    /// library built, rebuilt from what its parent-facing accessors show, encodes to the same
    /// bytes.
    #[test]
    fn internal_nodes_are_the_librarys() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            (0..3000u32).map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; 3])).collect();
        let (tree, _) = crate::state_tree::MemoryTree::with_genesis(&entries).expect("a tree");
        let mut checked = 0;
        for node in tree.nodes.values() {
            let Node::Internal(internal) = node else { continue };
            let mut children = [None; 16];
            for (nibble, c) in internal.children_sorted() {
                let leaves = (!c.is_leaf()).then(|| c.leaf_count() as u64);
                children[nibble.as_usize()] = Some(ChildRef { hash: c.hash, version: c.version, leaves });
            }
            let rebuilt = internal_node(&children).expect("decodes");
            assert_eq!(borsh::to_vec(&rebuilt).expect("encodes"), borsh::to_vec(node).expect("encodes"));
            assert_eq!(node_hash(&rebuilt), internal.hash::<Sha256>());
            checked += 1;
        }
        assert!(checked > 200, "{checked} internal nodes");
    }

    /// Key hashes sharing long prefixes (a chain of internal nodes of one child each, leaves
    /// deep down, moved up and down as their neighbours come and go), which hashed keys
    /// almost never make: the same root and the same positions as the library's one key at a
    /// time, version after version, every node made stale stored.
    #[test]
    fn deep_paths_match_one_key_at_a_time() {
        use crate::state_tree::tests::{apply_and_prune, shape};
        use crate::state_tree::{MemoryTree, StateUpdate, put_one_by_one};
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // Every key starts with the same 20 nibbles; then two of 4 values for the next 20.
        let key = |rng: &mut rand::rngs::StdRng| {
            let mut k = [0xab; 32];
            for b in &mut k[10..20] {
                *b = [0x00, 0x01, 0x10, 0x11][rng.gen_range(0..4)];
            }
            k[31] = rng.r#gen();
            KeyHash(k)
        };
        let (mut ours, mut theirs) = (MemoryTree::default(), MemoryTree::default());
        let mut present: Vec<KeyHash> = Vec::new();
        let mut deepest = 0;
        for version in 0..40u64 {
            let mut changes: BTreeMap<KeyHash, Option<Vec<u8>>> = BTreeMap::new();
            for _ in 0..rng.gen_range(0..12) {
                let k = key(&mut rng);
                changes.insert(k, Some(vec![rng.r#gen(); 4]));
            }
            // Some keys the tree holds get a new value.
            for _ in 0..rng.gen_range(0..4).min(present.len()) {
                changes.insert(present[rng.gen_range(0..present.len())], Some(vec![rng.r#gen(); 4]));
            }
            for _ in 0..rng.gen_range(0..8).min(present.len()) {
                let k = present.swap_remove(rng.gen_range(0..present.len()));
                changes.insert(k, None);
            }
            if version % 13 == 12 {
                changes.extend(present.drain(..).map(|k| (k, None)));
            }
            let created: Vec<KeyHash> =
                changes.iter().filter(|(k, v)| v.is_some() && !present.contains(k)).map(|(k, _)| *k).collect();
            for (k, v) in &changes {
                if v.is_some() && !present.contains(k) {
                    present.push(*k);
                }
            }
            let hashed: Vec<(KeyHash, Option<ValueHash>)> =
                changes.iter().map(|(k, v)| (*k, v.as_ref().map(ValueHash::with::<Sha256>))).collect();
            let written = update(&ours, &hashed, version).expect("one pass");
            assert_eq!(written.created, created, "keys new at {version}");
            let mut batch = jmt::storage::TreeUpdateBatch {
                node_batch: jmt::storage::NodeBatch::new(written.nodes, BTreeMap::new()),
                stale_node_index_batch: written.stale,
                node_stats: Vec::new(),
            };
            crate::state_tree::mark_previous_root(&ours, &mut batch, version).expect("root marked");
            let one = StateUpdate {
                version,
                root: crate::Hash(written.root),
                batch: std::sync::Arc::new(batch),
                created: written.created,
            };
            let reference = put_one_by_one(&theirs, changes.clone(), version).expect("one by one");
            assert_eq!(one.root, reference.root, "root at {version}");
            apply_and_prune(&mut ours, &one);
            apply_and_prune(&mut theirs, &reference);
            let ours_positions = shape(&ours);
            assert_eq!(ours_positions, shape(&theirs), "positions at {version}");
            deepest = deepest.max(ours_positions.keys().map(String::len).max().unwrap_or(0));
        }
        assert!(deepest >= 30, "the deepest position has {deepest} nibbles");
    }

    #[test]
    fn the_empty_root_is_the_librarys() {
        let tree = crate::state_tree::MemoryTree::default();
        let update = crate::state_tree::prepare_one_by_one(&tree, &[], 0).expect("an empty tree");
        assert_eq!(update.root.0, EMPTY_ROOT);
    }
}
