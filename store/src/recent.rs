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
use std::sync::Arc;

use cairn_ledger::state_tree::StateUpdate;
use jmt::storage::{Node, NodeKey, TreeUpdateBatch};
use jmt::{KeyHash, Version};

/// Tree nodes kept, at most, in the last blocks' updates, newest first (an internal node takes
/// about 1 KiB: about 16 MiB, and the same updates' value rows) — except that the newest
/// block's update is kept whatever its size (it was in memory as the block executed).
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
        self.nodes.add(update.version, Arc::clone(&update.batch));
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

/// The tree updates of the last blocks, oldest first; whole blocks are forgotten oldest first.
///
/// An update is shared with the block that wrote it, not copied: a node's key holds the
/// version that wrote it, so the node is looked up in that version's update alone.
#[derive(Debug)]
pub(crate) struct RecentNodes {
    /// Each kept block's version and update, in increasing versions.
    blocks: VecDeque<(Version, Arc<TreeUpdateBatch>)>,
    /// The nodes in `blocks`.
    nodes: usize,
    nodes_max: usize,
}

impl RecentNodes {
    pub(crate) fn new(nodes_max: usize) -> RecentNodes {
        RecentNodes { blocks: VecDeque::new(), nodes: 0, nodes_max }
    }

    pub(crate) fn get(&self, key: &NodeKey) -> Option<Node> {
        let i = self.blocks.binary_search_by_key(&key.version(), |(v, _)| *v).ok()?;
        self.blocks[i].1.node_batch.get_node(key).cloned()
    }

    /// Adds the update of the block at `version`; older blocks make room, and a version not
    /// above the newest kept (the store started over from another state) replaces them all.
    pub(crate) fn add(&mut self, version: Version, update: Arc<TreeUpdateBatch>) {
        if self.blocks.back().is_some_and(|(newest, _)| *newest >= version) {
            self.clear();
        }
        self.nodes += update.node_batch.nodes().len();
        self.blocks.push_back((version, update));
        while self.nodes > self.nodes_max && self.blocks.len() > 1 {
            self.forget_oldest();
        }
    }

    /// Forgets the blocks at `version` or before: the store may have pruned their nodes (a
    /// node of a later block was stale at no version pruned yet).
    pub(crate) fn forget_through(&mut self, version: Version) {
        while self.blocks.front().is_some_and(|(v, _)| *v <= version) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, update)) = self.blocks.pop_front() {
            self.nodes -= update.node_batch.nodes().len();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
        self.nodes = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes
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
    use cairn_ledger::state_tree::{MemoryTree, prepare_one_by_one};

    use super::*;

    /// The update of a tree of `entries` keys written at `version` (over an empty tree, which
    /// only the one-key-at-a-time insertion takes without a root at `version - 1`).
    fn written(version: Version, entries: u8) -> Arc<TreeUpdateBatch> {
        let changes: Vec<_> = (0..entries).map(|i| (vec![i], Some(vec![i]))).collect();
        prepare_one_by_one(&MemoryTree::default(), &changes, version).expect("prepares").batch
    }

    fn first(update: &TreeUpdateBatch) -> (NodeKey, Node) {
        let (k, n) = update.node_batch.nodes().iter().next().expect("a node");
        (k.clone(), n.clone())
    }

    #[test]
    fn nodes_are_kept_by_block_and_the_oldest_blocks_make_room() {
        let (a, b, c) = (written(1, 1), written(2, 1), written(3, 1));
        let count = |u: &TreeUpdateBatch| u.node_batch.nodes().len();
        assert_eq!((count(&a), count(&b), count(&c)), (1, 1, 1), "one leaf each");
        let mut recent = RecentNodes::new(2);
        recent.add(1, a.clone());
        recent.add(2, b.clone());
        assert_eq!(recent.len(), 2);
        let (ka, na) = first(&a);
        assert_eq!(recent.get(&ka), Some(na));
        // A node under another version is not there, even at the same position.
        let elsewhere = NodeKey::new(2, ka.nibble_path().clone());
        assert_eq!(recent.get(&elsewhere), b.node_batch.get_node(&elsewhere).cloned());
        assert_eq!(recent.get(&NodeKey::new(9, ka.nibble_path().clone())), None);
        // A third node: the whole oldest block goes.
        recent.add(3, c.clone());
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.get(&ka), None);
        let (kc, nc) = first(&c);
        assert_eq!(recent.get(&kc), Some(nc.clone()));
        // A block larger than the bound is kept alone.
        let big = written(4, 40);
        assert!(count(&big) > 2);
        recent.add(4, big.clone());
        assert_eq!(recent.len(), count(&big));
        assert_eq!(recent.get(&kc), None);
        assert!(big.node_batch.nodes().iter().all(|(k, n)| recent.get(k).as_ref() == Some(n)));
        // An older version than the newest kept: the store started over, the rest goes.
        recent.add(2, b.clone());
        assert_eq!(recent.len(), 1);
        recent.clear();
        assert_eq!(recent.len(), 0);
        // Blocks at a version the store may have pruned are forgotten.
        let mut recent = RecentNodes::new(100);
        recent.add(1, a);
        recent.add(2, b);
        recent.add(3, c);
        recent.forget_through(2);
        assert_eq!((recent.get(&ka), recent.get(&kc)), (None, Some(nc)));
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
