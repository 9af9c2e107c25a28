//! The state tree in the store: the Jellyfish Merkle Tree of `cairn_ledger::state_tree`,
//! persisted next to the blocks and versioned by height (genesis is version 0).
//!
//! Column families: `jmt_nodes` (borsh node key → borsh node), `jmt_values` (key hash ‖
//! version BE → `0x00` deleted | `0x01` ‖ value), and, for pruning, one row per version in
//! each of `jmt_stale` (stale-since version BE → the borsh node keys that went stale then,
//! end to end) and `jmt_stale_values` (stale-since version BE → the `jmt_values` keys that
//! went stale then, 40 bytes each, end to end). A value row goes stale when its key is next
//! written (and a deletion row when it is written); once no version before that is kept,
//! reads never reach it. (Stores of format 5 wrote a row per entry, its key the version ‖
//! the entry, its value empty: pruning still reads them.) The [`Store`] reads the tree (it is
//! a [`TreeReader`](jmt::storage::TreeReader)), writes each block's update in that block's
//! batch, prunes, and answers proofs ([`Store::state_proof`]).
//!
//! [`StoreTree`] is the [`StateCommitment`] a node builds and checks blocks with.

use cairn_ledger::state_tree::{StateCommitment, StateUpdate, prepare};
use cairn_ledger::{Hash, StateChange};
use jmt::OwnedValue;

use crate::{Error, Result, Store};

/// The state tree in a node's store as a [`StateCommitment`]: computes the next version's root
/// from the stored previous version, and keeps the update for the block's write batch (the
/// caller writes it with the block, [`crate::BlockWrite::tree`]).
#[derive(Debug)]
pub struct StoreTree<'a> {
    store: &'a Store,
    update: Option<StateUpdate>,
}

impl<'a> StoreTree<'a> {
    /// Over `store`, which holds the parent version.
    pub fn new(store: &'a Store) -> StoreTree<'a> {
        StoreTree { store, update: None }
    }

    /// The update of the last root computed.
    pub fn into_update(self) -> Option<StateUpdate> {
        self.update
    }
}

impl StateCommitment for StoreTree<'_> {
    fn root_after(&mut self, changes: &[StateChange], version: u64) -> Result<Hash, String> {
        let update = prepare(self.store, changes, version).map_err(|e| e.to_string())?;
        let root = update.root;
        self.update = Some(update);
        Ok(root)
    }
}

/// Writes `entries` (the genesis state's, in any order) into `store` as the genesis state
/// (version 0 of the state tree), unless the store already holds one.
pub fn init_store_genesis(store: &Store, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
    let changes: Vec<StateChange> = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
    let tree = prepare(store, &changes, 0)?;
    store.init_genesis_state(&changes, &tree)
}

/// Encodes a value row of `jmt_values`.
pub(crate) fn encode_value(v: &Option<OwnedValue>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(v) => {
            let mut b = Vec::with_capacity(v.len() + 1);
            b.push(1);
            b.extend_from_slice(v);
            b
        }
    }
}

/// The value a row of `jmt_values` holds, in place (`None`: a deletion's row).
pub(crate) fn value_in(b: &[u8]) -> Result<Option<&[u8]>> {
    match b.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, v)) => Ok(Some(v)),
        _ => Err(Error::Corrupt("bad state value row".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rows_round_trip() {
        for v in [None, Some(vec![]), Some(b"x".to_vec())] {
            assert_eq!(value_in(&encode_value(&v)).expect("decodes"), v.as_deref());
        }
        assert!(value_in(&[2]).is_err());
        assert!(value_in(&[0, 1]).is_err());
    }
}
