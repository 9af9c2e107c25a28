//! A validator's consensus state when genesis lists several validators: the
//! [`Engine`](cairn_consensus::Engine), its timers, the proposed blocks seen, the blocks the
//! engine waits for, and when to start the next height. The I/O (gossip, the write-ahead log,
//! block execution) is done by [`crate::service::Service`], which feeds the engine and carries
//! out what it returns.
//!
//! When to start a height: a validator starts height `h + 1` once it stored block `h` and
//! `block_time_ms` has passed since it started height `h` (so a height that took longer than
//! the block time is followed at once, and one that took less waits out the rest), *and*
//! there is something to put in a block (mempool transactions, or open jobs whose clocks need
//! blocks), or `empty_blocks` is set, or another validator already sent a consensus message
//! for `h + 1`. An idle testnet therefore stops at its last block instead of deciding empty
//! blocks forever, and wakes up with the first transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_consensus::{ConsensusMessage, Engine, EngineInput, EngineOutput, TimeoutKind, VerifiedMessage};
use cairn_ledger::{Block, Hash, PublicKey};

use crate::p2p::CONSENSUS_MESSAGE_BYTES_MAX;

/// Proposed blocks kept in memory (other validators' and our own), at most.
pub const BLOCKS_CACHED_MAX: usize = 64;
/// Proposed blocks kept before any verified proposal names them, at most.
pub const UNCONFIRMED_BLOCKS_MAX: usize = 8;
/// Bytes of such blocks kept at once, at most, counted as they take memory
/// ([`unconfirmed_bytes`]): nobody vouches for them yet, and an encoding of small
/// transactions takes several times its size once decoded.
pub const UNCONFIRMED_BLOCK_BYTES_MAX: usize = 32 << 20;

/// Whether `msg` is a certificate (many signatures, checked one by one).
fn is_certificate(msg: &ConsensusMessage) -> bool {
    matches!(msg, ConsensusMessage::PolkaCertificate(_) | ConsensusMessage::RoundCertificate(_))
}

/// What a decoded block of `encoded` bytes is counted for among the unconfirmed ones: its
/// bytes, plus each transaction's in-memory size (a `Resolve` is 33 bytes on the wire, a few
/// hundred in a `Vec<Transaction>`).
pub fn unconfirmed_bytes(block: &Block, encoded: usize) -> usize {
    encoded.saturating_add(block.txs.len().saturating_mul(std::mem::size_of::<cairn_ledger::Transaction>()))
}
/// Blocks the engine waits for at once, at most.
pub const BLOCKS_NEEDED_MAX: usize = 64;
/// Certificates verified here remembered (by the hash of their bytes), at most: one sent again
/// is dropped before its signatures (up to `VALIDATORS_MAX`) are checked again. The engine
/// knows which certificates of its own height it has ([`Engine::is_spent_certificate`]); this
/// covers those of the heights ahead it looks at, which anyone could re-send without end.
pub const CERTIFICATES_REMEMBERED_MAX: usize = 256;
/// Timers at once, at most (the engine keeps a handful per round).
pub const TIMERS_MAX: usize = 1_024;
/// Inputs queued for the engine, at most.
pub const INPUTS_MAX: usize = 16_384;
/// A missing proposed block is asked for again after this long.
pub const BLOCK_FETCH_RETRY: Duration = Duration::from_millis(500);
/// A repeat of one vote or proposal is passed on at most once in this long: shorter than the
/// validators' rebroadcast timeout (2 s by default), so that each of a validator's re-sends
/// gets through, while copies that anyone re-publishes cost the network at most one relay
/// per message and interval.
pub const REPEAT_RELAY_INTERVAL: Duration = Duration::from_secs(1);
/// Repeats whose last relay is remembered, at most (the engine looks at a few heights of a
/// few rounds of one vote per validator; past this, repeats are not passed on).
pub const REPEATS_TRACKED_MAX: usize = 4_096;

/// Key of a consensus timer.
pub type TimerKey = (u64, u32, TimeoutKind);

/// What gossip validation makes of a consensus message.
#[derive(Debug)]
pub enum GossipVerdict {
    /// Valid, for a height the engine looks at: forward it, and feed it to the engine as it is
    /// (decoded and verified once, here).
    Accept(VerifiedMessage),
    /// The very bytes of a vote or proposal the engine already has (a re-send): valid, so
    /// neither verified nor fed again. Forwarded at most once a [`REPEAT_RELAY_INTERVAL`]
    /// ([`Bft::relay_repeat`]): a validator's rebroadcast reaches peers that missed the first
    /// one, and copies re-published by anyone else do not multiply across the network.
    Repeat {
        /// The height it is for.
        height: u64,
    },
    /// For a height already stored or further ahead than the engine looks: neither forwarded
    /// nor fed, and not held against the sender (it may simply be ahead or behind).
    Ignore,
    /// Like [`GossipVerdict::Ignore`], for a height further ahead than the engine looks: the
    /// others are deciding heights this node has not stored, so it has blocks to fetch.
    Ahead {
        /// The message's height.
        height: u64,
    },
    /// Too large, undecodable, for another chain, or not signed by the validator it names:
    /// the peer that sent it is penalised.
    Reject(String),
}

/// One thing to carry out of an engine step: a run of consecutive WAL appends, written in
/// one synced rocksdb write, or any other output.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Consecutive [`EngineOutput::WalAppend`]s: one synced write, before the next step.
    WalWrite(Vec<Vec<u8>>),
    /// Any other output.
    Output(EngineOutput),
}

/// Groups an engine step's outputs, in order, so that consecutive WAL appends become one
/// synced write; an append never moves past a publish (or any other output) that follows it.
pub fn steps(outputs: Vec<EngineOutput>) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::with_capacity(outputs.len());
    for output in outputs {
        match (output, steps.last_mut()) {
            (EngineOutput::WalAppend(bytes), Some(Step::WalWrite(run))) => run.push(bytes),
            (EngineOutput::WalAppend(bytes), _) => steps.push(Step::WalWrite(vec![bytes])),
            (other, _) => steps.push(Step::Output(other)),
        }
    }
    steps
}

/// Whether acting on `output` needs the consensus log's entries before it to be durable: it
/// leaves this process's memory (a message or block sent, a decision stored, a block built or
/// asked for, evidence kept). Timers, round starts and refusals do not: a restart replays the
/// log and sets them again.
pub fn needs_durable_log(output: &EngineOutput) -> bool {
    match output {
        EngineOutput::Publish(_)
        | EngineOutput::RestreamBlock { .. }
        | EngineOutput::Decided { .. }
        | EngineOutput::Equivocation(_)
        | EngineOutput::RequestValue { .. }
        | EngineOutput::NeedBlock { .. } => true,
        EngineOutput::WalAppend(_)
        | EngineOutput::ScheduleTimeout { .. }
        | EngineOutput::CancelTimeout { .. }
        | EngineOutput::CancelAllTimeouts
        | EngineOutput::RoundStarted { .. }
        | EngineOutput::Rejected { .. }
        | EngineOutput::Fault { .. } => false,
    }
}

/// A block the engine is waiting for.
#[derive(Clone, Debug)]
pub struct Needed {
    /// Who proposed it.
    pub proposer: PublicKey,
    /// The round it was proposed in (a block re-proposed in a later round was built in an
    /// earlier one, by that round's proposer).
    pub round: u32,
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
    /// Entries were written to the log since its last synced write.
    pub wal_unsynced: bool,
    /// Proposed blocks a verified proposal named, by (height, hash).
    blocks: BTreeMap<(u64, Hash), Block>,
    /// Proposed blocks no verified proposal has named yet, oldest first, with their sizes: a
    /// `ProposedBlock` is not signed, so these may be made up. Bounded apart from `blocks`,
    /// so they can never push out a block a proposal named.
    unconfirmed: VecDeque<(Block, usize)>,
    /// Blocks the engine asked to check, by (height, hash).
    pub needed: BTreeMap<(u64, Hash), Needed>,
    /// The height to start once due (see the module docs).
    pub next_height: Option<u64>,
    /// When this validator last started a height (the block time counts from there).
    pub started_at: Instant,
    /// A consensus message for `next_height` (or later) arrived.
    pub peers_started: bool,
    /// A height this validator does not vote at: its consensus log there is corrupt, so it
    /// cannot know what it signed (it takes the block the others finalize).
    pub sit_out: Option<u64>,
    /// Repeats passed on, by the hash of their bytes: their height and when (bounded by
    /// [`REPEATS_TRACKED_MAX`]).
    relayed: HashMap<Hash, (u64, Instant)>,
    /// Certificates verified here, by the hash of their bytes, oldest first (at most
    /// [`CERTIFICATES_REMEMBERED_MAX`]).
    certificates: VecDeque<Hash>,
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
            wal_unsynced: false,
            blocks: BTreeMap::new(),
            unconfirmed: VecDeque::new(),
            needed: BTreeMap::new(),
            next_height: None,
            started_at: Instant::now(),
            peers_started: false,
            sit_out: None,
            relayed: HashMap::new(),
            certificates: VecDeque::new(),
        }
    }

    /// Gossip validation of a consensus message, with the cheap checks first: its size, its
    /// decoding, its height against the head (`head`) and its round against the engine's,
    /// whether the engine has it already, and only then its signatures.
    pub fn check_gossip(&self, head: u64, data: &[u8]) -> GossipVerdict {
        if data.len() > CONSENSUS_MESSAGE_BYTES_MAX {
            return GossipVerdict::Reject(format!("{} bytes, more than {CONSENSUS_MESSAGE_BYTES_MAX}", data.len()));
        }
        let msg = match ConsensusMessage::decode(data) {
            Ok(m) => m,
            Err(e) => return GossipVerdict::Reject(e.to_string()),
        };
        if msg.height() > head + 1 + cairn_consensus::HEIGHTS_AHEAD_MAX {
            // Not fed to the engine (too far), so only a validator's vote or proposal, by its
            // verified signature, makes this node fetch blocks: nobody else can point its sync
            // at themselves with made-up heights. One whose signature fails is its sender's
            // own (no node relays what it did not verify): rejected, so that a peer cannot
            // have this node check signatures on the loop for nothing, without a penalty.
            let one_signature = matches!(msg, ConsensusMessage::Vote(_) | ConsensusMessage::Proposal(_));
            if !one_signature {
                return GossipVerdict::Ignore;
            }
            return match msg.check(self.engine.chain_id(), self.engine.validators()) {
                Ok(_) => GossipVerdict::Ahead { height: msg.height() },
                Err(e) => GossipVerdict::Reject(format!("a message far ahead: {e}")),
            };
        }
        if msg.height() <= head || !self.engine.round_in_range(msg.height(), msg.round()) {
            return GossipVerdict::Ignore;
        }
        if self.engine.is_repeat(&msg) {
            return GossipVerdict::Repeat { height: msg.height() };
        }
        if self.engine.is_spent_certificate(&msg) || self.engine.is_further_equivocation(&msg) {
            return GossipVerdict::Ignore;
        }
        if is_certificate(&msg) && self.certificates.contains(&Hash::of(data)) {
            return GossipVerdict::Ignore;
        }
        match self.engine.verify_message(msg) {
            Ok(v) => GossipVerdict::Accept(v),
            Err(e) => GossipVerdict::Reject(e.to_string()),
        }
    }

    /// Remembers a certificate's bytes once it was verified ([`Bft::check_gossip`] then drops
    /// the same bytes unchecked); other messages are not remembered here.
    pub fn verified(&mut self, msg: &VerifiedMessage, data: &[u8]) {
        if !is_certificate(msg.message()) {
            return;
        }
        let key = Hash::of(data);
        if self.certificates.contains(&key) {
            return;
        }
        if self.certificates.len() >= CERTIFICATES_REMEMBERED_MAX {
            self.certificates.pop_front();
        }
        self.certificates.push_back(key);
    }

    /// Whether to pass on a repeat (`message`, its bytes, for `height`) received at `now`: not
    /// if one of the same bytes was passed on less than [`REPEAT_RELAY_INTERVAL`] ago, nor
    /// when [`REPEATS_TRACKED_MAX`] repeats of the heights the engine looks at are remembered.
    pub fn relay_repeat(&mut self, message: &[u8], height: u64, now: Instant) -> bool {
        let key = Hash::of(message);
        if let Some((_, at)) = self.relayed.get(&key)
            && now.saturating_duration_since(*at) < REPEAT_RELAY_INTERVAL
        {
            return false;
        }
        if self.relayed.len() >= REPEATS_TRACKED_MAX && !self.relayed.contains_key(&key) {
            // What is older than the interval or below the engine's height tells nothing.
            let current = self.engine.height();
            self.relayed
                .retain(|_, (h, at)| *h >= current && now.saturating_duration_since(*at) < REPEAT_RELAY_INTERVAL);
            if self.relayed.len() >= REPEATS_TRACKED_MAX {
                return false;
            }
        }
        self.relayed.insert(key, (height, now));
        true
    }

    /// Starts `height`: fed to the engine before every input queued.
    pub fn start_height(&mut self, height: u64) {
        // Ahead of what is queued: a message that arrived first (the one that told this
        // validator others had started) reaches an engine that has started the height, not
        // one that drops it as out of range.
        self.inputs.push_front(EngineInput::StartHeight { height });
    }

    /// Queues an input for the engine (bounded: past [`INPUTS_MAX`] it is dropped).
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
        // The first copy stays: every copy kept passed `check_structure`, so one with the same
        // hash has the same transactions.
        let key = (block.header.height, block.hash());
        self.blocks.entry(key).or_insert(block);
        while self.blocks.len() > BLOCKS_CACHED_MAX {
            self.blocks.pop_first();
        }
    }

    /// Keeps a proposed block that arrived before any proposal named it (`size`: what it takes,
    /// [`unconfirmed_bytes`]), within [`UNCONFIRMED_BLOCKS_MAX`] and
    /// [`UNCONFIRMED_BLOCK_BYTES_MAX`], oldest dropped first.
    pub fn keep_unconfirmed(&mut self, block: Block, size: usize) {
        if size > UNCONFIRMED_BLOCK_BYTES_MAX || self.block(block.header.height, &block.hash()).is_some() {
            return;
        }
        self.unconfirmed.push_back((block, size));
        while self.unconfirmed.len() > UNCONFIRMED_BLOCKS_MAX
            || self.unconfirmed.iter().map(|(_, s)| s).sum::<usize>() > UNCONFIRMED_BLOCK_BYTES_MAX
        {
            self.unconfirmed.pop_front();
        }
    }

    /// A proposed block seen here.
    pub fn block(&self, height: u64, block_hash: &Hash) -> Option<&Block> {
        self.blocks.get(&(height, *block_hash)).or_else(|| {
            self.unconfirmed.iter().map(|(b, _)| b).find(|b| b.header.height == height && b.hash() == *block_hash)
        })
    }

    /// Records that the engine waits for a block.
    pub fn need(&mut self, height: u64, round: u32, block_hash: Hash, proposer: PublicKey) {
        if self.needed.len() >= BLOCKS_NEEDED_MAX && !self.needed.contains_key(&(height, block_hash)) {
            return;
        }
        self.needed.entry((height, block_hash)).or_insert(Needed { proposer, round, fetched: None });
    }

    /// The head moved to `head`: forget what is below it and wait to start the next height.
    pub fn head_moved(&mut self, head: u64) {
        self.blocks.retain(|(h, _), _| *h > head);
        self.unconfirmed.retain(|(b, _)| b.header.height > head);
        self.needed.retain(|(h, _), _| *h > head);
        self.timers.retain(|(h, _, _), _| *h > head);
        self.relayed.retain(|_, (h, _)| *h > head);
        if self.engine.height() <= head {
            self.next_height = Some(head + 1);
            self.peers_started = false;
        }
    }

    /// When the block time since the last height started ends, if a height waits to start and
    /// that is still ahead: the loop wakes then to start it (if there is work by then).
    pub fn start_due_at(&self, block_time: Duration) -> Option<Instant> {
        self.next_height?;
        let at = self.started_at + block_time;
        (at > Instant::now()).then_some(at)
    }

    /// Whether the next height should start now (see the module docs); `has_work` says
    /// whether there is anything to put in a block, asked only when that decides.
    pub fn due_to_start(
        &self,
        head: u64,
        block_time: Duration,
        empty_blocks: bool,
        has_work: impl FnOnce() -> bool,
    ) -> Option<u64> {
        let h = self.next_height?;
        if h != head + 1 || self.engine.height() >= h || self.sit_out == Some(h) {
            return None;
        }
        if self.peers_started {
            return Some(h);
        }
        if self.started_at.elapsed() < block_time {
            return None;
        }
        (empty_blocks || has_work()).then_some(h)
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

    fn block(height: u64, time_ms: u64) -> Block {
        let header = cairn_ledger::BlockHeader {
            version: cairn_ledger::FORMAT_VERSION,
            chain_id: Hash::ZERO,
            height,
            parent_hash: Hash::ZERO,
            time_ms,
            proposer: Keypair::from_seed([1; 32]).public(),
            tx_root: Hash::ZERO,
            receipt_root: Hash::ZERO,
            state_root: Hash::ZERO,
            last_commit_hash: Hash::ZERO,
            tx_count: 0,
            receipt_count: 0,
        };
        Block { header, txs: vec![], last_commit: None }
    }

    #[test]
    fn blocks_no_proposal_named_are_bounded_apart_and_never_push_out_named_ones() {
        let mut bft = bft();
        let named = block(2, 0);
        bft.keep_block(named.clone());
        // A flood of made-up blocks: only the newest few stay, the named one stays too.
        for t in 1..=100 {
            bft.keep_unconfirmed(block(2, t), 1_000);
        }
        assert!(bft.block(2, &named.hash()).is_some());
        assert_eq!(bft.unconfirmed.len(), UNCONFIRMED_BLOCKS_MAX);
        assert!(bft.block(2, &block(2, 100).hash()).is_some(), "the newest unconfirmed block is found");
        assert!(bft.block(2, &block(2, 1).hash()).is_none(), "the oldest was dropped");
        // Bytes are bounded too: a block over the budget is not kept; big ones push out others.
        bft.keep_unconfirmed(block(2, 500), UNCONFIRMED_BLOCK_BYTES_MAX + 1);
        assert!(bft.block(2, &block(2, 500).hash()).is_none());
        bft.keep_unconfirmed(block(2, 501), UNCONFIRMED_BLOCK_BYTES_MAX / 2 + 1);
        bft.keep_unconfirmed(block(2, 502), UNCONFIRMED_BLOCK_BYTES_MAX / 2 + 1);
        assert!(bft.unconfirmed.iter().map(|(_, s)| s).sum::<usize>() <= UNCONFIRMED_BLOCK_BYTES_MAX);
        assert!(bft.block(2, &block(2, 502).hash()).is_some());
        // A decided height forgets them.
        bft.head_moved(2);
        assert!(bft.unconfirmed.is_empty());
        // They count as they take memory: small transactions, decoded, take more than their bytes.
        let mut resolves = block(3, 0);
        resolves.txs = vec![cairn_ledger::Transaction::Resolve { job_id: Hash::ZERO }; 1_000];
        let encoded = borsh::to_vec(&resolves).expect("encodes").len();
        assert!(unconfirmed_bytes(&resolves, encoded) > 3 * encoded, "{encoded} bytes on the wire");
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

    fn keys() -> Vec<Keypair> {
        (1..5).map(|i| Keypair::from_seed([i; 32])).collect()
    }

    fn prevote(key: &Keypair, chain_id: Hash, height: u64) -> Vec<u8> {
        let vote = cairn_ledger::Vote {
            version: cairn_ledger::FORMAT_VERSION,
            chain_id,
            kind: cairn_ledger::VoteKind::Prevote,
            height,
            round: 0,
            block_hash: None,
            validator: key.public(),
        };
        ConsensusMessage::Vote(cairn_consensus::SignedVote::sign(key, vote)).encode()
    }

    #[test]
    fn gossip_validation_rejects_what_the_sender_is_to_blame_for_and_ignores_the_rest() {
        let b = bft();
        let keys = keys();
        let head = 4;
        assert!(matches!(b.check_gossip(head, &prevote(&keys[1], Hash::ZERO, head + 1)), GossipVerdict::Accept(_)));
        // Not the sender's fault: a decided height, or one further ahead than the engine looks.
        assert!(matches!(b.check_gossip(head, &prevote(&keys[1], Hash::ZERO, head)), GossipVerdict::Ignore));
        let far = head + 2 + cairn_consensus::HEIGHTS_AHEAD_MAX;
        assert!(matches!(
            b.check_gossip(head, &prevote(&keys[1], Hash::ZERO, far)),
            GossipVerdict::Ahead { height } if height == far
        ));
        // Far ahead but not a validator's signed message: no reason to sync, and the sender's
        // fault (no node relays a message it could not verify).
        let stranger_far = prevote(&Keypair::from_seed([9; 32]), Hash::ZERO, far);
        assert!(matches!(b.check_gossip(head, &stranger_far), GossipVerdict::Reject(_)));
        let mut forged_far = prevote(&keys[1], Hash::ZERO, far);
        let end = forged_far.len() - 1;
        forged_far[end] ^= 1;
        assert!(matches!(b.check_gossip(head, &forged_far), GossipVerdict::Reject(_)));
        // The sender's fault: undecodable, too large, a bad signature, a stranger, another chain.
        assert!(matches!(b.check_gossip(head, b"\x01garbage"), GossipVerdict::Reject(_)));
        let huge = vec![1u8; CONSENSUS_MESSAGE_BYTES_MAX + 1];
        assert!(matches!(b.check_gossip(head, &huge), GossipVerdict::Reject(_)));
        let mut bad_signature = prevote(&keys[1], Hash::ZERO, head + 1);
        let last = bad_signature.len() - 1;
        bad_signature[last] ^= 1;
        assert!(matches!(b.check_gossip(head, &bad_signature), GossipVerdict::Reject(_)));
        let stranger = Keypair::from_seed([9; 32]);
        assert!(matches!(b.check_gossip(head, &prevote(&stranger, Hash::ZERO, head + 1)), GossipVerdict::Reject(_)));
        let other_chain = prevote(&keys[1], Hash::of(b"other"), head + 1);
        assert!(matches!(b.check_gossip(head, &other_chain), GossipVerdict::Reject(_)));
    }

    /// A message of a round further ahead than the engine looks is ignored before any
    /// signature is verified (and so is not forwarded either).
    #[test]
    fn a_message_of_a_round_too_far_ahead_is_ignored_unverified() {
        let b = bft();
        let keys = keys();
        let vote = |round: u32| {
            let vote = cairn_ledger::Vote {
                version: cairn_ledger::FORMAT_VERSION,
                chain_id: Hash::ZERO,
                kind: cairn_ledger::VoteKind::Prevote,
                height: 1,
                round,
                block_hash: None,
                validator: keys[1].public(),
            };
            ConsensusMessage::Vote(cairn_consensus::SignedVote::sign(&keys[1], vote)).encode()
        };
        let last = cairn_consensus::ROUNDS_AHEAD_MAX;
        assert!(matches!(b.check_gossip(0, &vote(last)), GossipVerdict::Accept(_)));
        let verified = b.engine.stats().signatures_verified;
        assert!(matches!(b.check_gossip(0, &vote(last + 1)), GossipVerdict::Ignore));
        assert!(matches!(b.check_gossip(0, &vote(u32::MAX)), GossipVerdict::Ignore));
        assert_eq!(b.engine.stats().signatures_verified, verified, "nothing verified");
    }

    /// The message that tells a validator others started the next height reaches the engine
    /// after that height starts, not before (when the engine would drop it as out of range).
    #[test]
    fn the_first_message_of_a_height_is_fed_after_the_height_starts() {
        let mut b = bft();
        let keys = keys();
        let GossipVerdict::Accept(verified) = b.check_gossip(0, &prevote(&keys[1], Hash::ZERO, 1)) else {
            panic!("a valid vote")
        };
        b.push(EngineInput::Verified(verified));
        b.start_height(1);
        while let Some(input) = b.inputs.pop_front() {
            b.engine.handle(input);
        }
        assert_eq!(b.engine.stats().messages_to_core, 1, "the vote reached the core");
    }

    #[test]
    fn a_vote_the_engine_has_is_passed_on_without_being_verified_or_fed_again() {
        let mut b = bft();
        let keys = keys();
        b.engine.handle(EngineInput::StartHeight { height: 1 });
        let vote = prevote(&keys[1], Hash::ZERO, 1);
        let GossipVerdict::Accept(verified) = b.check_gossip(0, &vote) else { panic!("a valid vote") };
        b.engine.handle(EngineInput::Verified(verified));
        let verified = b.engine.stats().signatures_verified;
        let GossipVerdict::Repeat { height: 1 } = b.check_gossip(0, &vote) else { panic!("a repeat") };
        assert_eq!(b.engine.stats().signatures_verified, verified, "a repeat is not verified again");
        // The same step signed differently is not a repeat: it is verified (and is evidence).
        let mut other = cairn_consensus::ConsensusMessage::decode(&vote).expect("decodes");
        if let ConsensusMessage::Vote(v) = &mut other {
            v.vote.block_hash = Some(Hash::of(b"block"));
            *v = cairn_consensus::SignedVote::sign(&keys[1], v.vote.clone());
        }
        assert!(matches!(b.check_gossip(0, &other.encode()), GossipVerdict::Accept(_)));
    }

    #[test]
    fn a_repeat_is_passed_on_at_most_once_an_interval_and_within_a_bound() {
        let mut b = bft();
        let t0 = Instant::now();
        assert!(b.relay_repeat(b"vote a", 1, t0), "the first repeat");
        assert!(!b.relay_repeat(b"vote a", 1, t0 + REPEAT_RELAY_INTERVAL / 2), "a copy within the interval");
        assert!(b.relay_repeat(b"vote b", 1, t0), "another message");
        assert!(b.relay_repeat(b"vote a", 1, t0 + REPEAT_RELAY_INTERVAL), "the next re-send");
        // Forgotten with their height.
        b.head_moved(1);
        assert!(b.relay_repeat(b"vote a", 2, t0 + REPEAT_RELAY_INTERVAL), "a new height's");
        // Bounded: once full of recent repeats, no more are passed on, until they age.
        for i in 0..REPEATS_TRACKED_MAX {
            b.relay_repeat(&i.to_le_bytes(), 2, t0);
        }
        assert_eq!(b.relayed.len(), REPEATS_TRACKED_MAX);
        assert!(!b.relay_repeat(b"vote c", 2, t0 + REPEAT_RELAY_INTERVAL / 2), "full");
        assert!(b.relay_repeat(b"vote c", 2, t0 + REPEAT_RELAY_INTERVAL * 2), "the old ones made room");
        assert!(b.relayed.len() < REPEATS_TRACKED_MAX);
    }

    #[test]
    fn the_log_is_made_durable_before_what_leaves_memory_and_not_before_timers() {
        let publish = EngineOutput::Publish(vec![1]);
        let decided = EngineOutput::Decided {
            height: 1,
            round: 0,
            block_hash: Hash::ZERO,
            commit: cairn_ledger::Commit {
                version: cairn_ledger::FORMAT_VERSION,
                height: 1,
                round: 0,
                block_hash: Hash::ZERO,
                signatures: vec![],
            },
        };
        assert!(needs_durable_log(&publish) && needs_durable_log(&decided));
        let timer = EngineOutput::ScheduleTimeout { height: 1, round: 0, kind: TimeoutKind::Propose, duration_ms: 1 };
        assert!(!needs_durable_log(&timer) && !needs_durable_log(&EngineOutput::CancelAllTimeouts));
        assert!(!needs_durable_log(&EngineOutput::WalAppend(vec![1])));
    }

    #[test]
    fn consecutive_wal_appends_become_one_write_that_never_passes_a_publish() {
        let append = |b: u8| EngineOutput::WalAppend(vec![b]);
        let outputs = vec![
            append(1),
            append(2),
            append(3),
            EngineOutput::Publish(vec![9]),
            append(4),
            EngineOutput::CancelAllTimeouts,
            append(5),
            append(6),
        ];
        assert_eq!(
            steps(outputs),
            vec![
                Step::WalWrite(vec![vec![1], vec![2], vec![3]]),
                Step::Output(EngineOutput::Publish(vec![9])),
                Step::WalWrite(vec![vec![4]]),
                Step::Output(EngineOutput::CancelAllTimeouts),
                Step::WalWrite(vec![vec![5], vec![6]]),
            ]
        );
        assert!(steps(Vec::new()).is_empty());
    }

    #[test]
    fn an_idle_validator_waits_for_work_or_peers_before_starting_a_height() {
        let mut b = bft();
        b.head_moved(0);
        let block_time = Duration::ZERO;
        assert_eq!(b.due_to_start(0, block_time, false, || false), None);
        assert_eq!(b.due_to_start(0, block_time, true, || false), Some(1));
        assert_eq!(b.due_to_start(0, block_time, false, || true), Some(1));
        b.peers_started = true;
        assert_eq!(b.due_to_start(0, Duration::from_secs(60), false, || false), Some(1));
        let mut b = bft();
        b.head_moved(0);
        assert_eq!(b.due_to_start(0, Duration::from_secs(60), false, || true), None, "block time not yet passed");
        let unasked = || -> bool { panic!("whether there is work decides nothing before the block time") };
        assert_eq!(b.due_to_start(0, Duration::from_secs(60), false, unasked), None);
    }
}
