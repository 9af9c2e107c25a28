//! The simulated blocks and the check every honest validator runs on a proposed one.
//!
//! Consensus decides block hashes; the blocks behind them live in the simulation's
//! [`BlockStore`] (every block ever built, available to everyone, as gossip and fetching
//! would make it). A block carries the header fields a Cairn validator checks — height,
//! parent, time, proposer, state root — and transactions with a size and an outcome. An honest
//! validator answers `BlockValidity { valid }` with [`check`]: deterministic, on its own head,
//! so every honest validator gives the same answer. A Byzantine proposer builds blocks that
//! are wrong in exactly one way ([`Invalidity`]), or names a block nobody can fetch.

use std::collections::HashMap;

use cairn_ledger::{Hash, PublicKey, ValidatorSet};

/// The largest block an honest validator accepts, in bytes (header and transactions).
pub const BLOCK_BYTES_MAX: u64 = 64 * 1024;
/// What a block header counts for in [`SimBlock::size`].
pub const HEADER_BYTES: u64 = 256;
/// How far past the checking validator's clock a block's time may be.
pub const BLOCK_TIME_DRIFT_MAX_MS: u64 = 1_000;
/// Transactions an honest proposer puts in a block, at most.
pub const BLOCK_TXS_MAX: u64 = 4;
/// The size of an honest transaction, at most (bytes).
pub const TX_BYTES_MAX: u64 = 2_000;
/// How far in the future a Byzantine proposer dates a block that is too early to accept.
pub const FUTURE_TIME_MS: u64 = 3_600_000;

/// A simulated transaction: its size, and whether executing it fails (an honest proposer
/// leaves such a transaction out of its blocks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTx {
    /// Unique in the run.
    pub id: u64,
    /// Bytes it takes in a block.
    pub bytes: u64,
    /// Its execution fails (a block holding it is invalid).
    pub fails: bool,
}

/// A block as validators check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimBlock {
    /// Its height.
    pub height: u64,
    /// The round it was built for (a block re-proposed in a later round keeps it).
    pub round: u32,
    /// The hash of the block at `height - 1` (`Hash::ZERO` at height 1).
    pub parent: Hash,
    /// The validator that built it: the proposer of (`height`, `round`).
    pub proposer: PublicKey,
    /// Its time (virtual ms): after the parent's, and not ahead of the checker's clock by
    /// more than [`BLOCK_TIME_DRIFT_MAX_MS`].
    pub time_ms: u64,
    /// Its transactions.
    pub txs: Vec<SimTx>,
    /// The state after the transactions: [`state_root_after`] the parent's.
    pub state_root: Hash,
}

impl SimBlock {
    /// The block's hash: over every field, so two blocks that differ anywhere differ here.
    pub fn hash(&self) -> Hash {
        let mut txs = Vec::with_capacity(self.txs.len() * 17);
        for tx in &self.txs {
            txs.extend_from_slice(&tx.id.to_le_bytes());
            txs.extend_from_slice(&tx.bytes.to_le_bytes());
            txs.push(u8::from(tx.fails));
        }
        Hash::of_parts(&[
            b"cairn-sim-block",
            &self.height.to_le_bytes(),
            &self.round.to_le_bytes(),
            &self.parent.0,
            &self.proposer.0,
            &self.time_ms.to_le_bytes(),
            &txs,
            &self.state_root.0,
        ])
    }

    /// Its size in bytes: the header and every transaction.
    pub fn size(&self) -> u64 {
        HEADER_BYTES + self.txs.iter().map(|t| t.bytes).sum::<u64>()
    }
}

/// Why an honest validator refuses a block. Each is one field a Byzantine proposer gets
/// wrong; [`check`] finds exactly that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invalidity {
    /// The header names another height than the proposal's.
    WrongHeight,
    /// The parent is not the block decided at the height below.
    WrongParent,
    /// The builder is not the proposer of the round it names (or that round is later than
    /// the proposal's).
    WrongProposer,
    /// Not later than the parent's time.
    TimeNotAfterParent,
    /// Further ahead of the checker's clock than [`BLOCK_TIME_DRIFT_MAX_MS`].
    TimeInFuture,
    /// Larger than [`BLOCK_BYTES_MAX`].
    Oversized,
    /// Holds a transaction whose execution fails.
    FailingTx,
    /// The state root is not what executing the transactions on the parent's state gives.
    WrongStateRoot,
}

impl Invalidity {
    /// Every kind, in the order [`check`] looks for them.
    pub const ALL: [Invalidity; 8] = [
        Invalidity::WrongHeight,
        Invalidity::WrongParent,
        Invalidity::WrongProposer,
        Invalidity::TimeNotAfterParent,
        Invalidity::TimeInFuture,
        Invalidity::Oversized,
        Invalidity::FailingTx,
        Invalidity::WrongStateRoot,
    ];
}

/// What a block is checked against: the block below it (or genesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parent {
    /// Its hash (`Hash::ZERO` for genesis).
    pub hash: Hash,
    /// Its time.
    pub time_ms: u64,
    /// The state after it.
    pub state_root: Hash,
}

/// The state before block 1.
pub fn genesis() -> Parent {
    Parent { hash: Hash::ZERO, time_ms: 0, state_root: Hash::of(b"cairn-sim-genesis-state") }
}

/// The state root after executing `txs` on the state `parent_root`.
pub fn state_root_after(parent_root: Hash, txs: &[SimTx]) -> Hash {
    txs.iter().fold(parent_root, |root, tx| Hash::of_parts(&[&root.0, &tx.id.to_le_bytes()]))
}

/// The check an honest validator runs on a block proposed at `height` in `round`, on its
/// head `parent`, at its clock `now_ms`. Deterministic: every honest validator with that
/// head gives the same answer (the clock only matters for a block dated in the future).
pub fn check(
    block: &SimBlock,
    height: u64,
    round: u32,
    parent: &Parent,
    validators: &ValidatorSet,
    now_ms: u64,
) -> Result<(), Invalidity> {
    if block.height != height {
        return Err(Invalidity::WrongHeight);
    }
    if block.parent != parent.hash {
        return Err(Invalidity::WrongParent);
    }
    if block.round > round || block.proposer != cairn_consensus::proposer(validators, height, block.round) {
        return Err(Invalidity::WrongProposer);
    }
    if block.time_ms <= parent.time_ms {
        return Err(Invalidity::TimeNotAfterParent);
    }
    if block.time_ms > now_ms + BLOCK_TIME_DRIFT_MAX_MS {
        return Err(Invalidity::TimeInFuture);
    }
    if block.size() > BLOCK_BYTES_MAX {
        return Err(Invalidity::Oversized);
    }
    if block.txs.iter().any(|t| t.fails) {
        return Err(Invalidity::FailingTx);
    }
    if block.state_root != state_root_after(parent.state_root, &block.txs) {
        return Err(Invalidity::WrongStateRoot);
    }
    Ok(())
}

/// An honest block on `parent`: dated `now_ms` (or just after the parent), with `txs`.
pub fn build(height: u64, round: u32, parent: &Parent, proposer: PublicKey, now_ms: u64, txs: Vec<SimTx>) -> SimBlock {
    let state_root = state_root_after(parent.state_root, &txs);
    SimBlock { height, round, parent: parent.hash, proposer, time_ms: now_ms.max(parent.time_ms + 1), txs, state_root }
}

/// `honest` made wrong in exactly the way `kind` names (`other` is a validator that is not
/// the proposer of the round, `next_tx` an unused transaction id).
pub fn spoil(mut block: SimBlock, kind: Invalidity, parent: &Parent, other: PublicKey, next_tx: u64) -> SimBlock {
    match kind {
        Invalidity::WrongHeight => block.height += 1,
        Invalidity::WrongParent => block.parent = Hash::of_parts(&[b"not-the-parent", &block.parent.0]),
        Invalidity::WrongProposer => block.proposer = other,
        Invalidity::TimeNotAfterParent => block.time_ms = parent.time_ms,
        Invalidity::TimeInFuture => block.time_ms += FUTURE_TIME_MS,
        Invalidity::Oversized => {
            block.txs.push(SimTx { id: next_tx, bytes: BLOCK_BYTES_MAX, fails: false });
            block.state_root = state_root_after(parent.state_root, &block.txs);
        }
        Invalidity::FailingTx => {
            block.txs.push(SimTx { id: next_tx, bytes: 100, fails: true });
            block.state_root = state_root_after(parent.state_root, &block.txs);
        }
        Invalidity::WrongStateRoot => block.state_root = Hash::of_parts(&[b"wrong-root", &block.state_root.0]),
    }
    block
}

/// Every block built in a run, by hash, with how it was built: the ground truth that the
/// simulation's validity check compares decisions and honest votes with, independently of
/// [`check`] (which is what honest validators run, and could be wrong).
#[derive(Debug, Default)]
pub struct BlockStore {
    blocks: HashMap<Hash, (SimBlock, Option<Invalidity>)>,
}

impl BlockStore {
    /// Keeps `block`, built honestly (`spoiled` is `None`) or made wrong on purpose; returns
    /// its hash.
    pub fn insert(&mut self, block: SimBlock, spoiled: Option<Invalidity>) -> Hash {
        let hash = block.hash();
        self.blocks.insert(hash, (block, spoiled));
        hash
    }

    /// The block with this hash, if anyone built it.
    pub fn get(&self, hash: &Hash) -> Option<&SimBlock> {
        self.blocks.get(hash).map(|(b, _)| b)
    }

    /// How the block with this hash was made wrong, if it was (`None` also for an unknown
    /// block).
    pub fn spoiled(&self, hash: &Hash) -> Option<Invalidity> {
        self.blocks.get(hash).and_then(|(_, s)| *s)
    }

    /// What a block at `height` is checked against, given the hash decided at `height - 1`
    /// (`None` at height 1). `None` if that block is unknown (it cannot be, for a decided one).
    pub fn parent(&self, below: Option<Hash>) -> Option<Parent> {
        match below {
            None => Some(genesis()),
            Some(hash) => {
                let (b, _) = self.blocks.get(&hash)?;
                Some(Parent { hash, time_ms: b.time_ms, state_root: b.state_root })
            }
        }
    }
}
