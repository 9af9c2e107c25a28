//! What the last blocks wrote to the state tree, kept in memory for the next blocks' updates.
//!
//! Each block's tree update reads the nodes on the path to every key it changes, and the
//! store then looks up each written key's previous value row (to mark it stale). Both mostly
//! find what the blocks just before wrote: the tree's upper levels are rewritten by every
//! block, and a job's entry is written again a few blocks after it was (its result, its
//! settlement, its retirement), an account's with each of its offers. Keeping those writes
//! here spares a rocksdb lookup (and a node's decoding) for each.
//!
//! Only what a block wrote, after its batch was written, enters; a failed write clears both
//! (the store then knows nothing it did not read back). Neither can answer differently from
//! the store: a node's key names one node forever (its version is in the key), and a key's
//! newest value row is never pruned while it is the newest (only rows made stale by a later
//! one are). A miss reads the store, as before.

use std::collections::{HashMap, VecDeque};

use cairn_ledger::state_tree::StateUpdate;
use jmt::storage::{Node, NodeKey};
use jmt::{KeyHash, Version};

/// Tree nodes kept, at most: the last blocks' nodes, newest first (an internal node takes
/// about 1 KiB, so at most about 16 MiB).
pub const RECENT_NODES_MAX: usize = 16_384;

/// Keys whose newest value row's version is kept, at most (about 50 bytes each: at most about
/// 8 MiB with the eviction queue).
pub const RECENT_ROWS_MAX: usize = 131_072;

/// What the last blocks wrote to the state tree: their nodes and their keys' newest rows.
#[derive(Debug)]
pub(crate) struct RecentWrites {
    pub(crate) nodes: RecentNodes,
    pub(crate) rows: RecentRows,
}

impl RecentWrites {
    pub(crate) fn new() -> RecentWrites {
        RecentWrites { nodes: RecentNodes::new(RECENT_NODES_MAX), rows: RecentRows::new(RECENT_ROWS_MAX) }
    }

    /// Keeps what a written block's tree `update` wrote; the store may since have pruned what
    /// went stale at `pruned_through` or before.
    pub(crate) fn remember(&mut self, update: &StateUpdate, pruned_through: Option<Version>) {
        self.nodes.add(update.version, update.batch.node_batch.nodes().iter());
        if let Some(pruned) = pruned_through {
            self.nodes.forget_through(pruned);
        }
        for ((version, kh), v) in update.batch.node_batch.values() {
            self.rows.wrote(*kh, *version, v.is_some());
        }
    }

    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.rows.clear();
    }
}

/// The tree nodes the last blocks wrote, by key; whole blocks are forgotten oldest first.
#[derive(Debug)]
pub(crate) struct RecentNodes {
    nodes: HashMap<NodeKey, Node>,
    /// The version (height) of each block's nodes and their keys, oldest first.
    blocks: VecDeque<(Version, Vec<NodeKey>)>,
    nodes_max: usize,
}

impl RecentNodes {
    pub(crate) fn new(nodes_max: usize) -> RecentNodes {
        RecentNodes { nodes: HashMap::new(), blocks: VecDeque::new(), nodes_max }
    }

    pub(crate) fn get(&self, key: &NodeKey) -> Option<Node> {
        self.nodes.get(key).cloned()
    }

    /// Adds the nodes the block at `version` wrote: internal nodes first (every update under
    /// them reads them), then leaves, while they fit; older blocks' nodes make room.
    pub(crate) fn add<'a>(&mut self, version: Version, written: impl Iterator<Item = (&'a NodeKey, &'a Node)> + Clone) {
        let internal = written.clone().filter(|(_, n)| matches!(n, Node::Internal(_)));
        let others = written.filter(|(_, n)| !matches!(n, Node::Internal(_)));
        let mut keys = Vec::new();
        for (key, node) in internal.chain(others).take(self.nodes_max) {
            keys.push(key.clone());
            self.nodes.insert(key.clone(), node.clone());
        }
        self.blocks.push_back((version, keys));
        while self.nodes.len() > self.nodes_max {
            self.forget_oldest();
        }
    }

    /// Forgets the nodes of blocks at `version` or before: the store may have pruned them (a
    /// node of a later block was stale at no version pruned yet).
    pub(crate) fn forget_through(&mut self, version: Version) {
        while self.blocks.front().is_some_and(|(v, _)| *v <= version) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, keys)) = self.blocks.pop_front() {
            for key in keys {
                self.nodes.remove(&key);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.blocks.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// The version of each recently written key's newest value row — for keys that have a value
/// (a deleted key is forgotten: its row is pruned once old enough).
#[derive(Debug)]
pub(crate) struct RecentRows {
    newest: HashMap<KeyHash, Version>,
    /// Keys in the order they were written (a key written again is here twice; the older
    /// entry no longer matches `newest` and is dropped without effect).
    order: VecDeque<(KeyHash, Version)>,
    rows_max: usize,
}

impl RecentRows {
    pub(crate) fn new(rows_max: usize) -> RecentRows {
        RecentRows { newest: HashMap::new(), order: VecDeque::new(), rows_max }
    }

    /// The version of `key`'s newest row, if known here.
    pub(crate) fn newest(&self, key: &KeyHash) -> Option<Version> {
        self.newest.get(key).copied()
    }

    /// A block wrote `key`'s row at `version`: with a value (`exists`), or deleting it.
    pub(crate) fn wrote(&mut self, key: KeyHash, version: Version, exists: bool) {
        if !exists {
            self.newest.remove(&key);
            return;
        }
        self.newest.insert(key, version);
        self.order.push_back((key, version));
        while self.order.len() > self.rows_max {
            let Some((old, v)) = self.order.pop_front() else { break };
            if self.newest.get(&old) == Some(&v) {
                self.newest.remove(&old);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.newest.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_ledger::state_tree::{MemoryTree, prepare_one_by_one};

    use super::*;

    /// The nodes a tree of `entries` keys written at `version` has (over an empty tree, which
    /// only the one-key-at-a-time insertion takes without a root at `version - 1`).
    fn written(version: Version, entries: u8) -> BTreeMap<NodeKey, Node> {
        let changes: Vec<_> = (0..entries).map(|i| (vec![i], Some(vec![i]))).collect();
        prepare_one_by_one(&MemoryTree::default(), &changes, version)
            .expect("prepares")
            .batch
            .node_batch
            .nodes()
            .clone()
    }

    #[test]
    fn nodes_are_kept_by_block_and_the_oldest_blocks_make_room() {
        let (a, b, c) = (written(1, 1), written(2, 1), written(3, 1));
        assert_eq!((a.len(), b.len(), c.len()), (1, 1, 1), "one leaf each");
        let mut recent = RecentNodes::new(2);
        recent.add(1, a.iter());
        recent.add(2, b.iter());
        assert_eq!(recent.len(), 2);
        let (ka, na) = a.iter().next().expect("a node");
        assert_eq!(recent.get(ka).as_ref(), Some(na));
        // A third node: the whole oldest block goes.
        recent.add(3, c.iter());
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.get(ka), None);
        let (kc, nc) = c.iter().next().expect("a node");
        assert_eq!(recent.get(kc).as_ref(), Some(nc));
        // A block larger than the bound keeps its internal nodes first, and nothing older.
        let big = written(4, 40);
        assert!(big.len() > 2 && big.values().any(|n| matches!(n, Node::Internal(_))));
        recent.add(4, big.iter());
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.get(kc), None);
        let kept: Vec<_> = big.keys().filter_map(|k| recent.get(k)).collect();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|n| matches!(n, Node::Internal(_))));
        recent.clear();
        assert_eq!(recent.len(), 0);
        // Blocks at a version the store may have pruned are forgotten.
        let mut recent = RecentNodes::new(100);
        recent.add(1, a.iter());
        recent.add(2, b.iter());
        recent.add(3, c.iter());
        recent.forget_through(2);
        assert_eq!((recent.get(ka), recent.get(kc).as_ref()), (None, Some(nc)));
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn rows_follow_each_keys_newest_write_and_forget_deleted_and_evicted_keys() {
        let mut rows = RecentRows::new(3);
        let (a, b, c) = (KeyHash([1; 32]), KeyHash([2; 32]), KeyHash([3; 32]));
        rows.wrote(a, 5, true);
        rows.wrote(b, 5, true);
        rows.wrote(a, 7, true);
        assert_eq!((rows.newest(&a), rows.newest(&b)), (Some(7), Some(5)));
        // The queue is full (a@5, b@5, a@7): c pushes a@5 out, which no longer is a's newest.
        rows.wrote(c, 8, true);
        assert_eq!((rows.newest(&a), rows.newest(&c)), (Some(7), Some(8)));
        // Next out is b@5, b's newest: b is forgotten.
        rows.wrote(c, 9, true);
        assert_eq!(rows.newest(&b), None);
        // A deleted key is forgotten at once.
        rows.wrote(a, 10, false);
        assert_eq!(rows.newest(&a), None);
        rows.clear();
        assert_eq!(rows.newest(&c), None);
    }
}
