//! A validator's consensus state when genesis lists several validators: the
//! [`Engine`](cairn_consensus::Engine), its timers, the proposed blocks seen, the blocks the
//! engine waits for, and when to start the next height. The I/O (gossip, the write-ahead log,
//! block execution) is done by [`crate::service::Service`], which feeds the engine and carries
//! out what it returns.
//!
//! When to start a height: a validator starts height `h + 1` once `block_time_ms` has passed
//! since it stored block `h`, *and* there is something to put in a block (mempool
//! transactions, or open jobs whose clocks need blocks), or `empty_blocks` is set, or another
//! validator already sent a consensus message for `h + 1`. An idle testnet therefore stops at
//! its last block instead of deciding empty blocks forever, and wakes up with the first
//! transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_consensus::{Engine, EngineInput, TimeoutKind};
use cairn_ledger::{Block, Hash, PublicKey};

/// Proposed blocks kept in memory (other validators' and our own), at most.
pub const BLOCKS_CACHED_MAX: usize = 64;
/// Blocks the engine waits for at once, at most.
pub const BLOCKS_NEEDED_MAX: usize = 64;
/// Timers at once, at most (the engine keeps a handful per round).
pub const TIMERS_MAX: usize = 1_024;
/// Inputs queued for the engine, at most.
pub const INPUTS_MAX: usize = 16_384;
/// A missing proposed block is asked for again after this long.
pub const BLOCK_FETCH_RETRY: Duration = Duration::from_millis(500);

/// Key of a consensus timer.
pub type TimerKey = (u64, u32, TimeoutKind);

/// A block the engine is waiting for.
#[derive(Clone, Debug)]
pub struct Needed {
    /// Who proposed it.
    pub proposer: PublicKey,
    /// When it was last asked for from peers.
    pub fetched: Option<Instant>,
}

/// A validator's consensus state (see the module docs).
pub struct Bft {
    /// The engine.
    pub engine: Engine,
    /// Deadlines of the engine's timers.
    timers: HashMap<TimerKey, Instant>,
    /// Inputs waiting to be fed to the engine, in order.
    pub inputs: VecDeque<EngineInput>,
    /// The height whose write-ahead log `wal_seq` counts.
    pub wal_height: u64,
    /// The next sequence number in that log.
    pub wal_seq: u64,
    /// Proposed blocks seen, by (height, hash).
    blocks: BTreeMap<(u64, Hash), Block>,
    /// Blocks the engine asked to check, by (height, hash).
    pub needed: BTreeMap<(u64, Hash), Needed>,
    /// The height to start once due (see the module docs).
    pub next_height: Option<u64>,
    /// When the head last moved.
    pub head_moved_at: Instant,
    /// A consensus message for `next_height` (or later) arrived.
    pub peers_started: bool,
}

impl Bft {
    /// Wraps an engine that has not started a height yet.
    pub fn new(engine: Engine) -> Bft {
        Bft {
            engine,
            timers: HashMap::new(),
            inputs: VecDeque::new(),
            wal_height: 0,
            wal_seq: 0,
            blocks: BTreeMap::new(),
            needed: BTreeMap::new(),
            next_height: None,
            head_moved_at: Instant::now(),
            peers_started: false,
        }
    }

    /// Queues an input for the engine (dropped, with a warning, past [`INPUTS_MAX`]).
    pub fn push(&mut self, input: EngineInput) {
        if self.inputs.len() >= INPUTS_MAX {
            tracing::warn!("consensus input queue full; dropping an input");
            return;
        }
        self.inputs.push_back(input);
    }

    /// Starts (or replaces) a timer.
    pub fn schedule(&mut self, key: TimerKey, after: Duration) {
        if self.timers.len() >= TIMERS_MAX && !self.timers.contains_key(&key) {
            // Only timers of rounds long gone can be this many: drop the oldest.
            if let Some(oldest) = self.timers.keys().min().copied() {
                self.timers.remove(&oldest);
            }
        }
        self.timers.insert(key, Instant::now() + after);
    }

    /// Stops a timer.
    pub fn cancel(&mut self, key: &TimerKey) {
        self.timers.remove(key);
    }

    /// Stops every timer.
    pub fn cancel_all(&mut self) {
        self.timers.clear();
    }

    /// The earliest timer's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    /// Removes the timers that are due and queues their `TimeoutElapsed`, earliest first.
    pub fn fire_due(&mut self, now: Instant) {
        let mut due: Vec<(Instant, TimerKey)> =
            self.timers.iter().filter(|(_, at)| **at <= now).map(|(k, at)| (*at, *k)).collect();
        due.sort();
        for (_, key) in due {
            self.timers.remove(&key);
            let (height, round, kind) = key;
            self.push(EngineInput::TimeoutElapsed { height, round, kind });
        }
    }

    /// Keeps a proposed block (the lowest heights go first past [`BLOCKS_CACHED_MAX`]).
    pub fn keep_block(&mut self, block: Block) {
        let key = (block.header.height, block.hash());
        self.blocks.insert(key, block);
        while self.blocks.len() > BLOCKS_CACHED_MAX {
            self.blocks.pop_first();
        }
    }

    /// A proposed block seen here.
    pub fn block(&self, height: u64, block_hash: &Hash) -> Option<&Block> {
        self.blocks.get(&(height, *block_hash))
    }

    /// Records that the engine waits for a block.
    pub fn need(&mut self, height: u64, block_hash: Hash, proposer: PublicKey) {
        if self.needed.len() >= BLOCKS_NEEDED_MAX && !self.needed.contains_key(&(height, block_hash)) {
            return;
        }
        self.needed.entry((height, block_hash)).or_insert(Needed { proposer, fetched: None });
    }

    /// The head moved to `head`: forget what is below it and wait to start the next height.
    pub fn head_moved(&mut self, head: u64) {
        self.blocks.retain(|(h, _), _| *h > head);
        self.needed.retain(|(h, _), _| *h > head);
        self.timers.retain(|(h, _, _), _| *h > head);
        if self.engine.height() <= head {
            self.next_height = Some(head + 1);
            self.peers_started = false;
        }
        self.head_moved_at = Instant::now();
    }

    /// Whether the next height should start now (see the module docs); `has_work` says
    /// whether there is anything to put in a block.
    pub fn due_to_start(&self, head: u64, block_time: Duration, empty_blocks: bool, has_work: bool) -> Option<u64> {
        let h = self.next_height?;
        if h != head + 1 || self.engine.height() >= h {
            return None;
        }
        if self.peers_started {
            return Some(h);
        }
        if self.head_moved_at.elapsed() < block_time {
            return None;
        }
        (empty_blocks || has_work).then_some(h)
    }
}

#[cfg(test)]
mod tests {
    use cairn_consensus::ConsensusParams;
    use cairn_ledger::{Keypair, Validator, ValidatorSet};

    use super::*;

    fn bft() -> Bft {
        let keys: Vec<Keypair> = (1..5).map(|i| Keypair::from_seed([i; 32])).collect();
        let set = ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 10 }).collect())
            .expect("set");
        let engine = Engine::new(keys[0].clone(), Hash::ZERO, set, ConsensusParams::default()).expect("engine");
        Bft::new(engine)
    }

    #[test]
    fn timers_replace_cancel_and_fire_in_deadline_order() {
        let mut b = bft();
        b.schedule((1, 0, TimeoutKind::Propose), Duration::from_secs(60));
        b.schedule((1, 0, TimeoutKind::Propose), Duration::ZERO);
        b.schedule((1, 0, TimeoutKind::Prevote), Duration::from_secs(60));
        b.schedule((1, 1, TimeoutKind::Precommit), Duration::ZERO);
        b.cancel(&(1, 1, TimeoutKind::Precommit));
        b.fire_due(Instant::now());
        assert_eq!(
            b.inputs.drain(..).collect::<Vec<_>>(),
            vec![EngineInput::TimeoutElapsed { height: 1, round: 0, kind: TimeoutKind::Propose }]
        );
        assert!(b.next_deadline().is_some());
        b.cancel_all();
        assert!(b.next_deadline().is_none());
    }

    #[test]
    fn an_idle_validator_waits_for_work_or_peers_before_starting_a_height() {
        let mut b = bft();
        b.head_moved(0);
        let block_time = Duration::ZERO;
        assert_eq!(b.due_to_start(0, block_time, false, false), None);
        assert_eq!(b.due_to_start(0, block_time, true, false), Some(1));
        assert_eq!(b.due_to_start(0, block_time, false, true), Some(1));
        b.peers_started = true;
        assert_eq!(b.due_to_start(0, Duration::from_secs(60), false, false), Some(1));
        let mut b = bft();
        b.head_moved(0);
        assert_eq!(b.due_to_start(0, Duration::from_secs(60), false, true), None, "block time not yet passed");
    }
}
