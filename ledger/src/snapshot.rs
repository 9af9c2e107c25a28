//! State snapshots: the state at a finalized height, read in chunks that each carry a range
//! proof against that height's state root, so a node can start from a recent state instead of
//! replaying every block since genesis (state sync).
//!
//! A chunk ([`StateChunk`]) holds consecutive entries of the state tree in key-hash order —
//! each as its state key and value, the key's hash computed by the receiver — and the
//! [`SparseMerkleRangeProof`] of its last entry: the siblings to the right of that leaf's path.
//! With the entries received so far (everything to the left), they give the root; a chunk
//! that leaves out, adds, reorders or alters an entry gives another root and is refused at
//! once, so the peer that served it is known. [`StateRestore`] checks chunks as they come
//! and, once the last one is in, rebuilds the tree's nodes at the snapshot's version (its root
//! checked again as a whole, so a peer that claims the end early is caught too).
//!
//! The receiver learns which height and root to trust from a finalized block and its commit
//! (checked against the genesis validators by the caller), never from the serving peer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::proof::SparseMerkleRangeProof;
use jmt::restore::{JellyfishMerkleRestore, StateSnapshotReceiver};
use jmt::storage::{Node, NodeBatch, TreeReader, TreeUpdateBatch, TreeWriter};
use jmt::{JellyfishMerkleIterator, JellyfishMerkleTree, KeyHash, RootHash};
use sha2::Sha256;

use crate::state_tree::{StateUpdate, key_hash};
use crate::{Error, Hash, Result};

/// The most entries a chunk holds (a request asks for at most this many).
pub const STATE_CHUNK_ENTRIES_MAX: u32 = 4_096;
/// A chunk stops growing once its entries reach this many bytes (keys and values).
pub const STATE_CHUNK_BYTES_MAX: usize = 4 << 20;
/// The largest encoded range proof: one sibling per bit of the key hash at most, each a tag
/// and two hashes at most.
pub const RANGE_PROOF_BYTES_MAX: usize = 4 + 256 * 65;
/// The largest encoding of a chunk an honest node sends: entries of at most twice
/// [`STATE_CHUNK_BYTES_MAX`] (what [`StateRestore::add`] takes), their length prefixes, the
/// proof and the rest. A larger answer is refused before it is decoded.
pub const STATE_CHUNK_ANSWER_BYTES_MAX: usize =
    2 * STATE_CHUNK_BYTES_MAX + 8 * STATE_CHUNK_ENTRIES_MAX as usize + RANGE_PROOF_BYTES_MAX + 64;
/// What a chunk waiting in a lane is counted for per entry, beyond its keys' and values'
/// bytes: the two vectors that hold them.
pub const QUEUED_ENTRY_OVERHEAD_BYTES: usize = 2 * std::mem::size_of::<Vec<u8>>();
/// The most state a node restores: keys and values together (past it the snapshot is refused).
pub const RESTORED_STATE_BYTES_MAX: u64 = 4 << 30;

/// State entries: `(state key, value)` pairs.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Consecutive entries of the state tree at one version, in key-hash order, and the range
/// proof of the last one.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StateChunk {
    /// `(state key, value)` pairs, ordered by the key's hash.
    pub entries: Entries,
    /// borsh `SparseMerkleRangeProof` (SHA-256) of the last entry.
    pub proof: Vec<u8>,
    /// Whether no entry follows the last one (the receiver checks it: see [`StateRestore`]).
    pub last: bool,
}

/// The bytes of a chunk's keys and values, or why it is larger than any honest chunk: more
/// entries than a request asks for, more than twice [`STATE_CHUNK_BYTES_MAX`] of keys and
/// values (a server stops a chunk once it reaches it), or a proof past
/// [`RANGE_PROOF_BYTES_MAX`]. Counted before anything is hashed.
fn chunk_size(chunk: &StateChunk) -> std::result::Result<usize, String> {
    let entries = chunk.entries.len();
    if entries > STATE_CHUNK_ENTRIES_MAX as usize {
        return Err(format!("{entries} entries: more entries than a chunk holds ({STATE_CHUNK_ENTRIES_MAX})"));
    }
    let bytes: usize = chunk.entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > 2 * STATE_CHUNK_BYTES_MAX || chunk.proof.len() > RANGE_PROOF_BYTES_MAX {
        return Err(format!(
            "{bytes} bytes of entries, a {}-byte proof: more bytes than a chunk holds",
            chunk.proof.len()
        ));
    }
    Ok(bytes)
}

/// The key hash right after `key` (`None` after the last possible one).
pub fn next_key_hash(key: &KeyHash) -> Option<KeyHash> {
    let mut next = key.0;
    for byte in next.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            return Some(KeyHash(next));
        }
    }
    None
}

/// Reads the chunk of `reader`'s tree at `version` that starts at key hash `start`: at most
/// `max_entries` entries and about `max_bytes` bytes (at least one entry), each key found
/// with `key_of` (the tree holds only key hashes).
pub fn read_chunk<R: TreeReader>(
    reader: Arc<R>,
    version: u64,
    start: KeyHash,
    max_entries: usize,
    max_bytes: usize,
    key_of: impl Fn(&KeyHash) -> Result<Vec<u8>>,
) -> Result<StateChunk> {
    let tree_error = |e: anyhow::Error| Error::Storage(format!("state tree at version {version}: {e}"));
    let mut leaves = JellyfishMerkleIterator::<R>::new(reader.clone(), version, start).map_err(tree_error)?;
    let mut entries = Vec::new();
    let (mut bytes, mut last_hash) = (0usize, None);
    while entries.len() < max_entries.max(1) && (entries.is_empty() || bytes < max_bytes) {
        let Some(leaf) = leaves.next() else { break };
        let (hash, value) = leaf.map_err(tree_error)?;
        let key = key_of(&hash)?;
        if key_hash(&key) != hash {
            return Err(Error::Storage(format!(
                "the key stored for state tree leaf {} has another hash",
                hex::encode(hash.0)
            )));
        }
        bytes += key.len() + value.len();
        entries.push((key, value));
        last_hash = Some(hash);
    }
    let Some(last_hash) = last_hash else {
        return Err(Error::Invalid(format!(
            "no state entry from key hash {} at version {version}",
            hex::encode(start.0)
        )));
    };
    let last = leaves.next().is_none();
    let proof =
        JellyfishMerkleTree::<R, Sha256>::new(&reader).get_range_proof(last_hash, version).map_err(tree_error)?;
    Ok(StateChunk { entries, proof: borsh::to_vec(&proof).expect("encodes"), last })
}

/// The tree nodes a restore freezes, kept in memory until the state is complete.
#[derive(Default)]
struct Collected(Mutex<NodeBatch>);

impl TreeWriter for Collected {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        self.0.lock().map_err(|_| anyhow::anyhow!("a restore panicked"))?.merge(batch.clone());
        Ok(())
    }
}

/// A state being restored from chunks, checked one by one against the root of `version`.
///
/// A chunk that fails leaves it unusable (the partial tree already took the chunk's entries):
/// start again, from a peer other than the one that served the bad chunk.
pub struct StateRestore {
    version: u64,
    root: Hash,
    restore: JellyfishMerkleRestore<Sha256>,
    nodes: Arc<Collected>,
    entries: Entries,
    bytes: u64,
    next: Option<KeyHash>,
    done: bool,
}

impl std::fmt::Debug for StateRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRestore")
            .field("version", &self.version)
            .field("root", &self.root)
            .field("entries", &self.entries.len())
            .field("done", &self.done)
            .finish()
    }
}

impl StateRestore {
    /// Restores the state whose tree at `version` has root `root` (from a finalized header).
    pub fn new(version: u64, root: Hash) -> Result<StateRestore> {
        let nodes = Arc::new(Collected::default());
        let restore = JellyfishMerkleRestore::new_overwrite(nodes.clone(), version, RootHash(root.0))
            .map_err(|e| Error::Storage(format!("state restore: {e}")))?;
        Ok(StateRestore {
            version,
            root,
            restore,
            nodes,
            entries: Vec::new(),
            bytes: 0,
            next: Some(KeyHash([0; 32])),
            done: false,
        })
    }

    /// The version (height) restored.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The root it must have.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Entries received so far.
    pub fn entries_received(&self) -> usize {
        self.entries.len()
    }

    /// Where the next chunk starts (`None` once the last chunk is in).
    pub fn next_start(&self) -> Option<KeyHash> {
        if self.done { None } else { self.next }
    }

    /// Adds the chunk that starts at [`StateRestore::next_start`]; `Ok(true)` once it was the
    /// last. An error says what is wrong with the chunk (its server lied, or sent another
    /// version's state).
    pub fn add(&mut self, chunk: StateChunk) -> Result<bool> {
        let bad = |why: String| Error::Invalid(format!("state chunk: {why}"));
        let Some(start) = self.next_start() else { return Err(bad("the state is complete already".into())) };
        if chunk.entries.is_empty() {
            return Err(bad("no entries".into()));
        }
        chunk_size(&chunk).map_err(bad)?;
        let proof: SparseMerkleRangeProof<Sha256> =
            crate::decode("state chunk range proof", &chunk.proof, RANGE_PROOF_BYTES_MAX)
                .map_err(|e| bad(e.to_string()))?;
        let mut leaves = Vec::with_capacity(chunk.entries.len());
        let mut previous = None;
        for (key, value) in &chunk.entries {
            let hash = key_hash(key);
            if hash < start || previous.is_some_and(|p| hash <= p) {
                return Err(bad("entries out of key-hash order, or before the chunk's start".into()));
            }
            previous = Some(hash);
            self.bytes += (key.len() + value.len()) as u64;
            leaves.push((hash, value.clone()));
        }
        if self.bytes > RESTORED_STATE_BYTES_MAX {
            return Err(bad(format!("the state is larger than {RESTORED_STATE_BYTES_MAX} bytes")));
        }
        let last_hash = previous.expect("a chunk has entries");
        self.restore
            .add_chunk(leaves, proof)
            .map_err(|e| bad(format!("it does not prove against the state root: {e}")))?;
        self.entries.extend(chunk.entries);
        self.next = next_key_hash(&last_hash);
        self.done = chunk.last || self.next.is_none();
        Ok(self.done)
    }

    /// The restored state: its entries (in key-hash order) and the state tree at the
    /// snapshot's version, as an update to write into an empty tree. Refused unless the whole
    /// tree has the root it must have (a server that claimed the end early is caught here).
    pub fn finish(self) -> Result<(Entries, StateUpdate)> {
        if !self.done {
            return Err(Error::Invalid("the state restore is not complete".into()));
        }
        let StateRestore { version, root, restore, nodes, entries, .. } = self;
        restore.finish().map_err(|e| Error::Storage(format!("state restore: {e}")))?;
        let batch = Arc::try_unwrap(nodes)
            .map_err(|_| Error::Storage("the restored tree is still shared".into()))?
            .0
            .into_inner()
            .map_err(|_| Error::Storage("a restore panicked".into()))?;
        // The nodes were built here from the entries received, each from its children: the
        // root's hash is the whole tree's.
        let root_node = batch.nodes().iter().find(|(k, _)| k.version() == version && k.nibble_path().is_empty());
        let got = match root_node.map(|(_, n)| n) {
            Some(Node::Internal(n)) => n.hash::<Sha256>(),
            Some(Node::Leaf(n)) => n.hash::<Sha256>(),
            Some(Node::Null) | None => [0; 32],
        };
        if got != root.0 {
            return Err(Error::Invalid(format!(
                "the restored state has root {}, the snapshot's header says {root}: entries are missing",
                Hash(got)
            )));
        }
        let batch =
            TreeUpdateBatch { node_batch: batch, stale_node_index_batch: Default::default(), node_stats: vec![] };
        Ok((entries, StateUpdate { version, root, batch: std::sync::Arc::new(batch), created: Vec::new() }))
    }
}

/// Ranges of the key space a restore fetches at once, at most ([`LanedRestore`]).
pub const RESTORE_LANES_MAX: usize = 4;
/// A restore is split into lanes only when its first chunk shows at least this many full chunks
/// per lane,
pub const LANE_CHUNKS_MIN: u64 = 8;
/// and at least this many entries per lane: with key hashes spread evenly, a lane is then
/// empty with a chance of about e^-1024 (a lane's requests need entries from their start on).
pub const LANE_ENTRIES_MIN: u64 = 1_024;
/// Bytes of a lane's chunks held, not yet added, before it stops asking for more.
pub const LANE_BYTES_MAX: usize = 32 << 20;

/// A [`StateRestore`] fetched in several ranges of the key space at once: lanes.
///
/// It starts as one lane from the first key hash. Once that lane's first chunk shows a large
/// state (at least [`LANE_CHUNKS_MIN`] full chunks per lane, estimated from how far into the
/// key space the chunk reaches), the key space is cut into [`RESTORE_LANES_MAX`] equal ranges,
/// each fetched chunk after chunk from its own start, the first lane going on from where it
/// was. Chunks are added to the restore in key order all the same: a lane's chunks wait until
/// the lanes before it are in, and the overlap (a lane's last chunk runs past its range's end) is
/// trimmed off the next lane's chunks — a chunk's proof is its last entry's, so dropping a
/// prefix already added keeps it valid. Every chunk is still checked against the root when it
/// is added, and a bad one blames the peer that served it. A lane holds at most
/// [`LANE_BYTES_MAX`] of chunks not yet added; past it, it asks for no more.
pub struct LanedRestore<S> {
    restore: StateRestore,
    lanes: Vec<Lane<S>>,
    /// The lane whose chunks are being added.
    feeding: usize,
    /// The server of the last chunk added (blamed if the whole does not prove).
    last_server: Option<S>,
}

struct Lane<S> {
    /// Where its next chunk starts (`None`: it has all its range).
    next: Option<KeyHash>,
    /// Where the next lane starts (`None` for the last).
    end: Option<KeyHash>,
    /// Chunks received and not added yet, with their servers and sizes (keys and values), in
    /// order.
    chunks: VecDeque<(StateChunk, S, usize)>,
    /// Their sizes together.
    bytes: usize,
}

impl<S> Lane<S> {
    fn new(next: KeyHash, end: Option<KeyHash>) -> Lane<S> {
        Lane { next: Some(next), end, chunks: VecDeque::new(), bytes: 0 }
    }
}

/// The key hash whose first 8 bytes are `top` and the rest zero.
fn key_hash_at(top: u64) -> KeyHash {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&top.to_be_bytes());
    KeyHash(h)
}

/// The first 8 bytes of `hash`, as a number.
fn top_of(hash: &KeyHash) -> u64 {
    u64::from_be_bytes(hash.0[..8].try_into().expect("8 bytes"))
}

/// The lanes' starts a restore splits into, given its first chunk (from the first key hash)
/// ended at `last` with `entries` entries, chunks holding `chunk_max` entries: none (stay one
/// lane) unless the state looks large enough for every lane to hold [`LANE_CHUNKS_MIN`] full
/// chunks and [`LANE_ENTRIES_MIN`] entries.
pub fn lane_starts(last: &KeyHash, entries: usize, chunk_max: usize) -> Vec<KeyHash> {
    let lanes = RESTORE_LANES_MAX as u64;
    let reach = u128::from(top_of(last)) + 1;
    let estimated = (entries as u128) << 64;
    let per_lane = (LANE_CHUNKS_MIN * chunk_max.max(1) as u64).max(LANE_ENTRIES_MIN);
    let wanted = u128::from(per_lane * lanes) * reach;
    if entries < chunk_max || estimated < wanted {
        return Vec::new();
    }
    let step = u64::MAX / lanes + 1;
    (1..lanes).map(|i| key_hash_at(i * step)).collect()
}

impl<S: Copy> LanedRestore<S> {
    /// Over `restore` (nothing added yet), one lane from the first key hash.
    pub fn new(restore: StateRestore) -> LanedRestore<S> {
        LanedRestore { restore, lanes: vec![Lane::new(KeyHash([0; 32]), None)], feeding: 0, last_server: None }
    }

    /// The version (height) restored.
    pub fn version(&self) -> u64 {
        self.restore.version()
    }

    /// How many lanes there are now.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Where lane `lane` wants its next chunk to start, if it wants one now.
    pub fn wants(&self, lane: usize) -> Option<KeyHash> {
        let l = self.lanes.get(lane)?;
        if self.is_complete() || l.bytes >= LANE_BYTES_MAX { None } else { l.next }
    }

    /// Whether every entry is in.
    pub fn is_complete(&self) -> bool {
        self.restore.next_start().is_none()
    }

    /// Takes the chunk `server` sent for lane `lane` (asked from [`LanedRestore::wants`]),
    /// `chunk_max` the entries a chunk was asked for, and adds what can be added; `Ok(true)`
    /// once every entry is in. An error names the server of the chunk that is wrong.
    pub fn take(&mut self, lane: usize, chunk: StateChunk, server: S, chunk_max: usize) -> Result<bool, (S, Error)> {
        let bad = |why: &str| (server, Error::Invalid(format!("state chunk: {why}")));
        // A lane that has its range by now (the lane before covered it) wants nothing more:
        // an answer asked for before is dropped, its server is not to blame.
        let Some(l) = self.lanes.get_mut(lane) else { return Ok(self.is_complete()) };
        let Some(start) = l.next else { return Ok(self.is_complete()) };
        let (Some(first), Some(last)) = (chunk.entries.first(), chunk.entries.last()) else {
            return Err(bad("no entries"));
        };
        let (first, last) = (key_hash(&first.0), key_hash(&last.0));
        if first < start || last < first {
            return Err(bad("entries before the chunk's start, or out of order"));
        }
        // What `add` checks, before the chunk waits in its lane: the lane's budget counts what
        // waits in memory.
        let raw = chunk_size(&chunk).map_err(|why| bad(&why))?;
        let next = if chunk.last || l.end.is_some_and(|end| last >= end) { None } else { next_key_hash(&last) };
        l.next = next;
        let bytes = raw + chunk.entries.len() * QUEUED_ENTRY_OVERHEAD_BYTES + chunk.proof.len();
        // The first chunk shows how large the state is: split if it is large.
        if self.lanes.len() == 1 && self.restore.entries_received() == 0 {
            let starts = lane_starts(&last, chunk.entries.len(), chunk_max);
            if let (Some(next), Some(second)) = (next, starts.first())
                && next < *second
            {
                self.lanes[0].end = Some(*second);
                for (i, s) in starts.iter().enumerate() {
                    self.lanes.push(Lane::new(*s, starts.get(i + 1).copied()));
                }
            }
        }
        let l = &mut self.lanes[lane];
        l.bytes += bytes;
        l.chunks.push_back((chunk, server, bytes));
        self.add_ready()
    }

    /// Adds the chunks that are next in key order.
    fn add_ready(&mut self) -> Result<bool, (S, Error)> {
        while let Some(lane) = self.lanes.get_mut(self.feeding) {
            let Some((mut chunk, server, bytes)) = lane.chunks.pop_front() else {
                if lane.next.is_none() {
                    self.feeding += 1;
                    if self.feeding == self.lanes.len() && !self.is_complete() {
                        // Every range is in, and no chunk said it was the last: the one that
                        // ended the state did not say so.
                        // (Lane 0's first chunk is always added, so there is a server.)
                        if let Some(server) = self.last_server {
                            let why = "state chunk: the chunks ended without one saying it was the last";
                            return Err((server, Error::Invalid(why.into())));
                        }
                        return Ok(false);
                    }
                    continue;
                }
                break;
            };
            lane.bytes -= bytes;
            let Some(start) = self.restore.next_start() else { break };
            // What an earlier lane's last chunk added already (only a lane's first chunks
            // overlap: the others start where the state received so far ends).
            if chunk.entries.first().is_some_and(|(k, _)| key_hash(k) < start) {
                chunk.entries.retain(|(k, _)| key_hash(k) >= start);
                if chunk.entries.is_empty() {
                    continue;
                }
            }
            let done = self.restore.add(chunk).map_err(|e| (server, e))?;
            self.last_server = Some(server);
            if done {
                return Ok(true);
            }
            // Later lanes whose whole range is in already ask for nothing more.
            if let Some(next) = self.restore.next_start() {
                for later in self.lanes.iter_mut().skip(self.feeding + 1) {
                    if later.end.is_some_and(|end| next >= end) {
                        later.next = None;
                        later.chunks.clear();
                        later.bytes = 0;
                    }
                }
            }
        }
        Ok(self.is_complete())
    }

    /// The restored state ([`StateRestore::finish`]); an error names the server of the last
    /// chunk added, if any (it claimed the end).
    pub fn finish(self) -> Result<(Entries, StateUpdate), (Option<S>, Error)> {
        let last_server = self.last_server;
        self.restore.finish().map_err(|e| (last_server, e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state_tree::{MemoryTree, StateChange, prepare};

    /// A tree, the state keys by their hashes, its entries by key, and its root.
    type Tree = (Arc<MemoryTree>, BTreeMap<KeyHash, Vec<u8>>, Entries, Hash);

    /// A tree at version 3 (three updates on top of a genesis).
    fn tree(n: u32) -> Tree {
        let mut tree = MemoryTree::default();
        let mut live: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut root = Hash::ZERO;
        for version in 0..4u64 {
            let changes: Vec<StateChange> = (0..n)
                .filter(|i| !(u64::from(*i) + version).is_multiple_of(3) || version == 0)
                .map(|i| (format!("key-{i}").into_bytes(), Some(format!("value-{i}-at-{version}").into_bytes())))
                .collect();
            let update = prepare(&tree, &changes, version).expect("update");
            tree.apply(&update);
            for (k, v) in changes {
                live.insert(k, v.expect("set"));
            }
            root = update.root;
        }
        let entries: Entries = live.into_iter().collect();
        let keys = entries.iter().map(|(k, _)| (key_hash(k), k.clone())).collect();
        (Arc::new(tree), keys, entries, root)
    }

    fn chunks(tree: &Arc<MemoryTree>, keys: &BTreeMap<KeyHash, Vec<u8>>, per_chunk: usize) -> Vec<StateChunk> {
        let mut out = Vec::new();
        let mut start = Some(KeyHash([0; 32]));
        while let Some(from) = start {
            let key_of = |h: &KeyHash| keys.get(h).cloned().ok_or_else(|| Error::Storage("no key".into()));
            let chunk = read_chunk(tree.clone(), 3, from, per_chunk, STATE_CHUNK_BYTES_MAX, key_of).expect("chunk");
            let last_hash = key_hash(&chunk.entries.last().expect("entries").0);
            start = if chunk.last { None } else { next_key_hash(&last_hash) };
            out.push(chunk);
        }
        out
    }

    /// Fetches `tree`'s state through a [`LanedRestore`], lanes asked in turn (last first, so
    /// that chunks wait for the lanes before them); `tamper` may change the chunk served for a
    /// (lane, turn). Returns the restore's lane count and what it ended with.
    #[allow(clippy::type_complexity)]
    fn laned(
        tree: &Arc<MemoryTree>,
        keys: &BTreeMap<KeyHash, Vec<u8>>,
        root: Hash,
        per_chunk: usize,
        tamper: &dyn Fn(usize, usize, &mut StateChunk),
    ) -> (usize, Result<(Entries, StateUpdate), (Option<u32>, Error)>) {
        let key_of = |h: &KeyHash| keys.get(h).cloned().ok_or_else(|| Error::Storage("no key".into()));
        let mut laned = LanedRestore::<u32>::new(StateRestore::new(3, root).expect("restore"));
        let mut lanes_seen = 1;
        for turn in 0.. {
            assert!(turn < 10_000, "the restore does not end");
            if laned.is_complete() {
                break;
            }
            lanes_seen = lanes_seen.max(laned.lanes());
            let wanting: Vec<(usize, KeyHash)> =
                (0..laned.lanes()).rev().filter_map(|l| laned.wants(l).map(|s| (l, s))).collect();
            assert!(!wanting.is_empty(), "nothing wanted, yet not complete");
            for (lane, start) in wanting {
                let mut chunk =
                    read_chunk(tree.clone(), 3, start, per_chunk, STATE_CHUNK_BYTES_MAX, key_of).expect("chunk");
                tamper(lane, turn, &mut chunk);
                // The server's id is its lane.
                if let Err((server, e)) = laned.take(lane, chunk, lane as u32, per_chunk) {
                    return (lanes_seen, Err((Some(server), e)));
                }
            }
        }
        (lanes_seen, laned.finish())
    }

    #[test]
    fn a_large_state_is_fetched_in_lanes_and_restored_in_key_order() {
        let (big, keys, entries, root) = tree(6_000);
        let (lanes, done) = laned(&big, &keys, root, 20, &|_, _, _| {});
        assert_eq!(lanes, RESTORE_LANES_MAX, "6,000 entries in chunks of 20 are split");
        let (restored, update) = done.expect("complete");
        assert_eq!(update.root, root);
        let mut by_key = restored.clone();
        by_key.sort();
        assert_eq!(by_key, entries, "every entry, once, though the lanes' chunks overlap");
        // A smaller state stays one lane: its lanes would hold fewer than LANE_ENTRIES_MIN.
        let (small, small_keys, small_entries, small_root) = tree(2_000);
        let (lanes, done) = laned(&small, &small_keys, small_root, 20, &|_, _, _| {});
        assert_eq!(lanes, 1);
        assert_eq!(done.expect("complete").0.len(), small_entries.len());
    }

    #[test]
    fn a_bad_chunk_in_a_later_lane_blames_its_server_when_its_turn_comes() {
        let (big, keys, _, root) = tree(6_000);
        // Lane 2's second chunk has one value changed.
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 2 && turn == 2 {
                chunk.entries[3].1 = b"forged".to_vec();
            }
        });
        let (server, e) = done.expect_err("caught");
        assert_eq!(server, Some(2), "{e}");
        // A lane server that leaves out entries between two of its chunks is caught too.
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 3 && turn == 2 {
                chunk.entries.drain(..2);
            }
        });
        assert_eq!(done.expect_err("caught").0, Some(3));
        // Leaving out the start of its range costs nothing: the lane before covers it (its
        // last chunk runs past the range's end), and what it adds is checked.
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 3 && turn == 1 {
                chunk.entries.drain(..2);
            }
        });
        assert_eq!(done.expect("the overlap covers it").1.root, root);
        // One whose chunk runs to the end of the state without saying it is the last: the
        // ranges after it are trimmed away, every range is in, yet the state is not complete.
        let key_of = |h: &KeyHash| keys.get(h).cloned().ok_or_else(|| Error::Storage("no key".into()));
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 2 && turn == 3 {
                let from = key_hash(&chunk.entries[0].0);
                *chunk = read_chunk(big.clone(), 3, from, 4_096, usize::MAX, key_of).expect("to the end");
                assert!(chunk.last, "the chunk reaches the end");
                chunk.last = false;
            }
        });
        assert_eq!(done.expect_err("caught, not waited for").0, Some(2));
        // One that claims the end early is caught when the whole is checked.
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 3 && turn == 3 {
                chunk.last = true;
            }
        });
        assert!(done.is_err(), "a state ended early is refused");
    }

    #[test]
    fn a_chunk_larger_than_any_honest_one_is_refused_before_it_waits_in_its_lane() {
        assert_eq!(STATE_CHUNK_ANSWER_BYTES_MAX, 8_438_084, "WIRE.md states it");
        let (big, keys, _, root) = tree(6_000);
        // Lane 3's first chunk, waiting for the lanes before it, with more entries than a chunk
        // holds (empty ones cost a few bytes each on the wire, a vector pair each in memory).
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 3 && turn == 1 {
                let last = chunk.entries.last().cloned().expect("entries");
                chunk.entries.extend(std::iter::repeat_n(last, STATE_CHUNK_ENTRIES_MAX as usize));
            }
        });
        let (server, e) = done.expect_err("refused");
        assert_eq!(server, Some(3));
        assert!(e.to_string().contains("more entries than a chunk holds"), "{e}");
        // One whose values pass twice what a chunk holds.
        let (_, done) = laned(&big, &keys, root, 20, &|lane, turn, chunk| {
            if lane == 3 && turn == 1 {
                chunk.entries[0].1 = vec![0; 2 * STATE_CHUNK_BYTES_MAX + 1];
            }
        });
        let (server, e) = done.expect_err("refused");
        assert_eq!(server, Some(3));
        assert!(e.to_string().contains("more bytes than a chunk holds"), "{e}");
    }

    #[test]
    fn an_answer_for_a_lane_that_has_its_range_is_dropped_without_blame() {
        let (big, keys, _, root) = tree(6_000);
        let key_of = |h: &KeyHash| keys.get(h).cloned().ok_or_else(|| Error::Storage("no key".into()));
        let read = |start| read_chunk(big.clone(), 3, start, 20, STATE_CHUNK_BYTES_MAX, key_of).expect("chunk");
        let mut laned = LanedRestore::<u32>::new(StateRestore::new(3, root).expect("restore"));
        assert!(!laned.take(0, read(KeyHash([0; 32])), 0, 20).expect("first chunk"));
        assert_eq!(laned.lanes(), RESTORE_LANES_MAX);
        // The last lane fetched to the end: it wants nothing more, and a chunk for it then (an
        // answer to a request made before its range was covered) is dropped, not blamed.
        let start_of_lane_3 = laned.wants(3).expect("lane 3 wants");
        while let Some(start) = laned.wants(3) {
            assert!(!laned.take(3, read(start), 3, 20).expect("taken"), "lanes 0 to 2 are not in yet");
        }
        assert!(!laned.take(3, read(start_of_lane_3), 3, 20).expect("dropped"));
        assert!(!laned.take(9, read(start_of_lane_3), 9, 20).expect("no lane 9: dropped"));
    }

    #[test]
    fn lanes_split_only_a_state_that_fills_each_with_chunks() {
        let at = |top: u64| key_hash_at(top);
        // 2,048 entries reaching 1/64 of the key space: about 131,000 entries, 16 chunks a lane.
        let starts = lane_starts(&at(u64::MAX / 64), 2_048, 2_048);
        assert_eq!(starts, vec![at(1 << 62), at(2 << 62), at(3 << 62)]);
        // Reaching 1/16: about 32,000 entries, 4 chunks a lane: not split.
        assert!(lane_starts(&at(u64::MAX / 16), 2_048, 2_048).is_empty());
        // Small chunks: still at least LANE_ENTRIES_MIN entries a lane (2 entries reaching
        // 1/2,048 of the key space: about 4,096 entries, 1,024 a lane).
        assert_eq!(lane_starts(&at(u64::MAX / 2_048), 2, 2).len(), RESTORE_LANES_MAX - 1);
        assert!(lane_starts(&at(u64::MAX / 1_024), 2, 2).is_empty());
        // A chunk cut short by its byte bound (fewer entries than asked) says nothing: not split.
        assert!(lane_starts(&at(1), 100, 2_048).is_empty());
    }

    #[test]
    fn a_state_restored_from_chunks_has_the_root_and_entries_of_the_original() {
        let (tree, keys, entries, root) = tree(300);
        let chunks = chunks(&tree, &keys, 37);
        assert_eq!(chunks.len(), 300usize.div_ceil(37));
        let mut restore = StateRestore::new(3, root).expect("restore");
        for (i, chunk) in chunks.into_iter().enumerate() {
            assert_eq!(restore.add(chunk).expect("a valid chunk"), i == 300 / 37, "the last chunk ends it");
        }
        let (restored, update) = restore.finish().expect("complete");
        assert_eq!(update.root, root);
        assert_eq!(update.version, 3);
        let mut by_key = restored.clone();
        by_key.sort();
        assert_eq!(by_key, entries, "every entry, once");
        assert_eq!(MemoryTree::root_of(&restored).expect("root"), root, "the same state as the original");
        // The restored tree takes the next version's update like the original does.
        let mut copy = MemoryTree::default();
        copy.apply(&update);
        let change: Vec<StateChange> =
            vec![(b"key-5".to_vec(), Some(b"changed".to_vec())), (b"new".to_vec(), Some(b"x".to_vec()))];
        let next = prepare(&copy, &change, 4).expect("next version");
        let original = prepare(tree.as_ref(), &change, 4).expect("next version");
        assert_eq!(next.root, original.root);
    }

    #[test]
    fn a_tampered_reordered_or_short_chunk_is_refused() {
        let (tree, keys, _, root) = tree(120);
        let good = chunks(&tree, &keys, 40);
        let try_second = |tamper: &dyn Fn(&mut StateChunk)| {
            let mut restore = StateRestore::new(3, root).expect("restore");
            restore.add(good[0].clone()).expect("the first chunk is honest");
            let mut bad = good[1].clone();
            tamper(&mut bad);
            restore.add(bad)
        };
        assert!(try_second(&|_| {}).is_ok(), "untouched");
        let value = try_second(&|c| c.entries[3].1.push(b'!')).expect_err("an altered value");
        assert!(value.to_string().contains("does not prove against the state root"), "{value}");
        assert!(
            try_second(&|c| {
                c.entries.remove(5);
            })
            .is_err(),
            "a left-out entry"
        );
        assert!(try_second(&|c| c.entries.swap(1, 2)).is_err(), "out of order");
        assert!(try_second(&|c| c.entries.push((b"made-up".to_vec(), b"x".to_vec()))).is_err(), "an added entry");
        assert!(try_second(&|c| c.proof.clear()).is_err(), "no proof");
        assert!(try_second(&|c| c.entries.clear()).is_err(), "empty");
        let huge = try_second(&|c| c.entries[0].1 = vec![0; 2 * STATE_CHUNK_BYTES_MAX + 1]).expect_err("too large");
        assert!(huge.to_string().contains("bytes of entries"), "{huge}");
        // Another version's root: the very first chunk fails.
        let mut other = StateRestore::new(3, Hash::of(b"another root")).expect("restore");
        assert!(other.add(good[0].clone()).is_err());
        // A server that says "last" early: each chunk proves, the whole does not.
        let mut early = StateRestore::new(3, root).expect("restore");
        early.add(good[0].clone()).expect("honest");
        let mut cut = good[1].clone();
        cut.last = true;
        assert!(early.add(cut).expect("the chunk itself proves"));
        let short = early.finish().expect_err("entries are missing");
        assert!(
            short.to_string().contains("entries are missing") || short.to_string().contains("incomplete"),
            "{short}"
        );
    }

    #[test]
    fn key_hashes_count_up_with_a_carry() {
        assert_eq!(next_key_hash(&KeyHash([0; 32])).expect("next").0[31], 1);
        let mut k = [0u8; 32];
        k[31] = 0xff;
        let n = next_key_hash(&KeyHash(k)).expect("next");
        assert_eq!((n.0[30], n.0[31]), (1, 0));
        assert!(next_key_hash(&KeyHash([0xff; 32])).is_none());
    }
}
