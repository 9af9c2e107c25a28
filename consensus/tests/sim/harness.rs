//! A deterministic simulation of n validators running [`Engine`] in one process.
//!
//! Everything is driven by one seeded PRNG and a virtual clock: message latency and jitter
//! (hence reordering), stretches of loss, late duplicates, partitions that heal (the
//! validators reconnect then), crashes (possibly between a WAL append and the publish that
//! follows it, or right after a decision) and restarts from the WAL, block sync for
//! validators that fell behind, blocks that honest validators check ([`crate::blocks`]), and
//! Byzantine validators ([`crate::byzantine`]).
//!
//! Checked on every run (a violation panics with everything needed to replay it):
//! - safety at every decision: agreement (no two honest validators decide different blocks at
//!   a height), validity (an honest validator decides, and votes for, only blocks that were
//!   built valid on its head — the ground truth of the [`BlockStore`], not the check honest
//!   validators run), every commit verifies, no honest validator signs two different
//!   messages for one step, no evidence against an honest validator;
//! - no progress without a quorum: the validators that could have signed for a decided height
//!   (started it, were up since, and not cut off from the decider by a partition all that
//!   time) hold a quorum; so while crashes or a partition leave no quorum, the heights under
//!   way may finish on the votes already sent, and no other is decided;
//! - liveness: once the last fault is over, every honest validator decides
//!   [`LIVENESS_HEIGHTS`] more heights within [`LIVENESS_BOUND_MS`] of virtual time;
//! - gossip validation and sync: honest messages and answers are never refused, junk is
//!   never accepted, forged sync answers are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::OnceLock;

use cairn_consensus::{
    ConsensusMessage, ConsensusParams, Engine, EngineInput, EngineOutput, EngineStats, Evidence, HEIGHTS_AHEAD_MAX,
    SignedProposal, SignedVote, TimeoutKind, VerifiedMessage,
};
use cairn_ledger::{Commit, FORMAT_VERSION, Hash, Keypair, PublicKey, Validator, ValidatorSet, Vote, VoteKind};

use crate::blocks::{self, BLOCK_TXS_MAX, BlockStore, SimTx, TX_BYTES_MAX};
use crate::byzantine::{self, BadProposal, Behaviour, Byzantine, Expect, JunkContext, JunkKind};

/// Heights every honest validator must decide after the last fault is over.
pub const LIVENESS_HEIGHTS: u64 = 5;
/// Virtual time after the last fault within which every honest validator must have decided
/// [`LIVENESS_HEIGHTS`] more heights (the highest height any honest validator had decided
/// when the last fault ended, plus that many).
pub const LIVENESS_BOUND_MS: u64 = 15_000;
/// A late duplicate of a message arrives at most this long after the original.
pub const DUPLICATE_LATE_MAX_MS: u64 = 2_000;
/// Of the network's duplicate copies, per mille that arrive soon, within
/// [`DUPLICATE_SOON_MAX_MS`] (before or just after the original), while the height is current.
pub const DUPLICATE_SOON_PERMILLE: u64 = 500;
/// How soon a soon copy arrives, at most.
pub const DUPLICATE_SOON_MAX_MS: u64 = 20;
/// A validator asked to propose builds its block within this long.
pub const BUILD_DELAY_MAX_MS: u64 = 20;
/// A validator that asked a peer for finalized blocks asks nobody else for this long.
pub const SYNC_RETRY_MS: u64 = 200;
/// Finalized blocks in one sync answer, at most (asked again while answers are full).
pub const SYNC_BLOCKS_MAX: usize = 32;
/// A proposal for a later height than the head: its block is checked again this much later.
pub const BLOCK_WAIT_RETRY_MS: u64 = 50;
/// A proposal whose block nobody has: asked for again this much later.
pub const BLOCK_FETCH_RETRY_MS: u64 = 500;
/// A junk peer sends a message every so often: at least this long apart...
pub const JUNK_INTERVAL_MIN_MS: u64 = 5;
/// ...and at most this long.
pub const JUNK_INTERVAL_MAX_MS: u64 = 40;
/// Messages a junk peer remembers to replay.
pub const OBSERVED_MAX: usize = 64;
/// Runs of a scenario from which its coverage assertions (each kind of misbehaviour seen)
/// apply: a replay of one seed checks only what that run checks.
pub const COVERAGE_RUNS_MIN: usize = 20;

/// splitmix64: small, fast, and the same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
}

/// Messages lost at random for a while (a fault: liveness is asked once every loss stops,
/// after which the network delivers every message, late or duplicated at worst).
#[derive(Clone, Debug)]
pub struct Loss {
    /// From when.
    pub from_ms: u64,
    /// Until when.
    pub until_ms: u64,
    /// Messages lost meanwhile, per thousand (the highest of the losses in force applies).
    pub permille: u64,
}

/// The network's behaviour.
#[derive(Clone, Debug)]
pub struct Net {
    /// Least delay of a message.
    pub latency_ms: u64,
    /// Random delay added, at most (so messages are reordered).
    pub jitter_ms: u64,
    /// Messages delivered a second time, up to [`DUPLICATE_LATE_MAX_MS`] later (old messages
    /// after a restart).
    pub duplicate_permille: u64,
    /// Stretches of loss.
    pub losses: Vec<Loss>,
}

/// Validators split into two sides that cannot talk from `from_ms` until `heal_ms`.
#[derive(Clone, Debug)]
pub struct Partition {
    /// One side; the other validators are the other side.
    pub side_a: Vec<usize>,
    /// From when.
    pub from_ms: u64,
    /// Until when.
    pub heal_ms: u64,
}

/// A validator that crashes at `at_ms` (during its next step, possibly between a WAL append
/// and the publish after it; or, with `after_decision`, right after it next stores a
/// decision) and restarts from its WAL at `restart_ms`.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The validator.
    pub node: usize,
    /// When it crashes.
    pub at_ms: u64,
    /// It crashes right after storing its next decision (before it starts the next height),
    /// not during its next step.
    pub after_decision: bool,
    /// When it restarts.
    pub restart_ms: u64,
}

/// A fault model to run under many seeds.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Validators (power 1 each).
    pub n: usize,
    /// The network.
    pub net: Net,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Crashes and restarts.
    pub crashes: Vec<Crash>,
    /// Byzantine behaviours (a validator named here is faulty for the whole run).
    pub byzantine: Vec<Byzantine>,
}

impl Scenario {
    /// `n` validators on a fast network that duplicates some messages, without faults.
    pub fn new(n: usize) -> Scenario {
        Scenario {
            n,
            net: Net { latency_ms: 10, jitter_ms: 20, duplicate_permille: 50, losses: Vec::new() },
            partitions: Vec::new(),
            crashes: Vec::new(),
            byzantine: Vec::new(),
        }
    }

    /// Adds `behaviour` to validator `node` from `from_ms` until `until_ms` (or the end).
    pub fn byzantine(&mut self, node: usize, behaviour: Behaviour, from_ms: u64, until_ms: Option<u64>) {
        self.byzantine.push(Byzantine { node, behaviour, from_ms, until_ms });
    }

    /// When the last fault is over: partitions healed, crashed validators restarted, losses
    /// ended, Byzantine behaviours stopped (those that never stop do not count: liveness
    /// must hold despite them).
    pub fn heal_ms(&self) -> u64 {
        let p = self.partitions.iter().map(|p| p.heal_ms);
        let c = self.crashes.iter().map(|c| c.restart_ms);
        let l = self.net.losses.iter().map(|l| l.until_ms);
        let b = self.byzantine.iter().filter_map(|b| b.until_ms);
        p.chain(c).chain(l).chain(b).max().unwrap_or(0)
    }

    /// The Byzantine validators.
    pub fn faulty(&self) -> BTreeSet<usize> {
        self.byzantine.iter().map(|b| b.node).collect()
    }
}

/// What junk of one kind became at honest validators.
#[derive(Clone, Copy, Debug, Default)]
pub struct JunkCount {
    /// Sent (some are lost).
    pub sent: u64,
    /// Refused by gossip validation (decoding or verification).
    pub rejected: u64,
    /// Ignored by gossip validation (height or round out of range).
    pub ignored: u64,
    /// Passed on to the engine (validly signed and in range, or a repeat).
    pub accepted: u64,
}

/// What one run observed.
#[derive(Debug, Default)]
pub struct Report {
    /// Heights decided.
    pub decided_heights: u64,
    /// Evidence the honest validators hold.
    pub evidence: Vec<Evidence>,
    /// The highest round any validator started.
    pub max_round: u32,
    /// Messages sent (not lost).
    pub messages: u64,
    /// The engines' counters, summed over validators and their restarts.
    pub stats: EngineStats,
    /// Repeats of messages an engine already had, passed over before it (as the node's
    /// gossip validation does).
    pub repeats: u64,
    /// When the last fault was over.
    pub heal_ms: u64,
    /// Virtual time from then until every honest validator had decided
    /// [`LIVENESS_HEIGHTS`] more heights.
    pub recovery_ms: u64,
    /// Heights in progress while no quorum could talk (they had to wait for one, unless
    /// the votes already sent finished them).
    pub heights_through_quorum_loss: u64,
    /// Blocks Byzantine proposers proposed instead of honest ones, by kind.
    pub bad_proposals: BTreeMap<BadProposal, u64>,
    /// Blocks honest validators found invalid.
    pub blocks_refused: u64,
    /// Votes for invalid or unavailable blocks that Byzantine validators sent.
    pub votes_for_invalid: u64,
    /// Proposals that named a second, different block (equivocating proposers).
    pub proposal_twins: u64,
    /// Junk by kind, and what honest validators did with it.
    pub junk: BTreeMap<JunkKind, JunkCount>,
    /// Forged sync answers honest validators refused.
    pub sync_refused: u64,
}

/// What gossip validation does with a message (as the node's `Bft::check_gossip`).
enum Verdict {
    /// It does not decode or does not verify: refused (the sender would be penalised).
    Reject(String),
    /// A decided height, too far ahead, or too many rounds ahead: not looked at.
    Ignore,
    /// The same bytes as a message the engine already has: not fed again.
    Repeat,
    /// Fed to the engine.
    Accept(VerifiedMessage),
}

/// What happens at a point of virtual time.
#[derive(Debug)]
enum Event {
    /// A consensus message arrives (`junk`: made up by a junk peer, and of what kind).
    Deliver { to: usize, from: usize, bytes: Vec<u8>, junk: Option<JunkKind> },
    /// A timer the engine asked for fires (unless cancelled, replaced, or its validator
    /// restarted since: `incarnation`).
    Timer { node: usize, incarnation: u64, token: u64, height: u64, round: u32, kind: TimeoutKind },
    /// A proposer's block is built.
    Build { node: usize, incarnation: u64, height: u64, round: u32 },
    /// A validator has checked (or retries fetching or checking) a proposed block.
    BlockChecked { node: usize, incarnation: u64, height: u64, round: u32, block_hash: Hash },
    /// A validator crashes (see [`Crash`]).
    Crash { node: usize, after_decision: bool },
    /// A validator restarts from its WAL.
    Restart { node: usize },
    /// `from` asks `to` for the finalized blocks from `height` on.
    SyncRequest { to: usize, from: usize, height: u64 },
    /// `from` answers `to` with finalized blocks and their commits.
    SyncResponse { to: usize, from: usize, decisions: Vec<(u64, Hash, Commit)> },
    /// A validator tells a peer it finalized `height` (the node gossips the block and its
    /// commit): a peer that has not decided it yet asks for it.
    Finalized { to: usize, from: usize, height: u64 },
    /// A junk peer sends its next made-up message.
    Junk { node: usize },
    /// A partition starts (for [`Sim::track_quorum`]).
    Split,
    /// A partition heals: the validators it cut off connect again, and each asks a peer it
    /// was cut off from for the blocks it missed (as the node does on a new connection).
    Heal { partition: usize },
}

/// One validator: its engine (`None` while crashed) and what survives a crash.
struct Node {
    key: Keypair,
    engine: Option<Engine>,
    /// Counts restarts: events of an earlier life are dropped.
    incarnation: u64,
    /// The WAL of the current height (what survives a crash).
    wal: Vec<Vec<u8>>,
    /// Finalized blocks (what survives a crash).
    decided: BTreeMap<u64, (Hash, Commit)>,
    /// The timers running, by key, with the token of their event.
    timers: HashMap<(u64, u32, TimeoutKind), u64>,
    /// Crashes after this many more outputs.
    crash_armed: Option<usize>,
    /// Crashes right after storing its next decision.
    crash_at_decision: bool,
    /// A sync request is pending until then.
    sync_pending_until_ms: u64,
    /// Evidence its engine raised.
    evidence: Vec<Evidence>,
    /// Counters of the engines this validator ran before its last restart.
    stats: EngineStats,
    /// When it was down: (crashed, restarted), `u64::MAX` while still down.
    down: Vec<(u64, u64)>,
    /// When it first started each height (it signs nothing for a height before).
    entered: BTreeMap<u64, u64>,
    /// A Byzantine proposer's next [`BadProposal`] (an index into `BadProposal::ALL`).
    bad_next: usize,
    /// A junk peer's next [`JunkKind`] (an index into `JunkKind::ALL`).
    junk_next: usize,
    /// A junk peer's next forged sync answer relabels a real commit.
    forge_relabel: bool,
    /// Messages a junk peer received lately.
    observed: VecDeque<Vec<u8>>,
    /// Invalid blocks a Byzantine voter already voted for: (height, round, block).
    voted_invalid: BTreeSet<(u64, u32, Hash)>,
}

impl Node {
    /// The height after its last finalized block.
    fn next_height(&self) -> u64 {
        self.decided.keys().next_back().map_or(1, |h| h + 1)
    }

    /// Whether it was down from `from_ms` to `to_ms`, without a break.
    fn down_throughout(&self, from_ms: u64, to_ms: u64) -> bool {
        self.down.iter().any(|&(a, b)| a <= from_ms && to_ms < b)
    }
}

/// A signing step: height, round, and 0 prevote, 1 precommit, 2 proposal.
type Slot = (u64, u32, u8);

/// One run of a scenario under one seed.
pub struct Sim {
    name: String,
    seed: u64,
    scenario: Scenario,
    rng: Rng,
    now_ms: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    faulty: BTreeSet<usize>,
    chain_id: Hash,
    validators: ValidatorSet,
    params: ConsensusParams,
    outsider: Keypair,
    /// Every block built.
    store: BlockStore,
    /// An equivocating proposer's second block, by its first.
    twins: HashMap<Hash, Hash>,
    next_tx: u64,
    /// The one block decided at each height, by anyone honest.
    decisions: BTreeMap<u64, Hash>,
    /// When some validator first started each height.
    height_started: BTreeMap<u64, u64>,
    /// Since when no quorum of validators can talk (see [`Sim::quorum_can_talk`]).
    quorum_lost_since: Option<u64>,
    /// The stretches of time without a quorum that can talk, ended.
    quorum_losses: Vec<(u64, u64)>,
    /// What each validator signed, by (validator, (height, round, step)).
    signed: BTreeMap<(usize, Slot), Vec<u8>>,
    report: Report,
}

impl Sim {
    /// A run of `scenario` (named `name`, for replay instructions) under `seed`.
    pub fn new(name: &str, scenario: Scenario, seed: u64) -> Sim {
        let keys: Vec<Keypair> = (0..scenario.n)
            .map(|i| {
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                Keypair::from_seed(s)
            })
            .collect();
        let validators =
            ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect()).expect("set");
        let faulty = scenario.faulty();
        assert!(
            3 * faulty.len() < scenario.n,
            "{name}: {} Byzantine validators of {}: at most f < n/3 are tolerated",
            faulty.len(),
            scenario.n
        );
        let chain_id = Hash::of(b"cairn-sim");
        let params = ConsensusParams {
            propose_timeout_ms: 300,
            propose_timeout_delta_ms: 100,
            prevote_timeout_ms: 150,
            prevote_timeout_delta_ms: 50,
            precommit_timeout_ms: 150,
            precommit_timeout_delta_ms: 50,
            rebroadcast_timeout_ms: 600,
        };
        let mut rng = Rng::new(seed);
        let nodes = keys
            .into_iter()
            .map(|key| Node {
                key,
                engine: None,
                incarnation: 0,
                wal: Vec::new(),
                decided: BTreeMap::new(),
                timers: HashMap::new(),
                crash_armed: None,
                crash_at_decision: false,
                sync_pending_until_ms: 0,
                evidence: Vec::new(),
                stats: EngineStats::default(),
                down: Vec::new(),
                entered: BTreeMap::new(),
                bad_next: rng.below(BadProposal::ALL.len() as u64) as usize,
                junk_next: rng.below(JunkKind::ALL.len() as u64) as usize,
                forge_relabel: false,
                observed: VecDeque::new(),
                voted_invalid: BTreeSet::new(),
            })
            .collect();
        let mut outsider_seed = [0u8; 32];
        outsider_seed[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        Sim {
            name: name.to_string(),
            seed,
            rng,
            scenario,
            now_ms: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes,
            faulty,
            chain_id,
            validators,
            params,
            outsider: Keypair::from_seed(outsider_seed),
            store: BlockStore::default(),
            twins: HashMap::new(),
            next_tx: 0,
            decisions: BTreeMap::new(),
            height_started: BTreeMap::new(),
            quorum_lost_since: None,
            quorum_losses: Vec::new(),
            signed: BTreeMap::new(),
            report: Report::default(),
        }
    }

    /// Panics with `what` and how to replay this run.
    fn fail(&self, what: String) -> ! {
        panic!(
            "{what}\n  at {} ms of scenario {} under seed {}\n  replay: CAIRN_SIM_SEED={} cargo test -p cairn-consensus \
             --test sim {} -- --exact\n  scenario: {:?}",
            self.now_ms, self.name, self.seed, self.seed, self.name, self.scenario
        )
    }

    /// Schedules `event` at `time_ms` (after the events already there for that time).
    fn at(&mut self, time_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((time_ms, self.seq), event);
    }

    /// Whether validator `i` is honest (never Byzantine in this run).
    fn honest(&self, i: usize) -> bool {
        !self.faulty.contains(&i)
    }

    /// Whether validator `i` shows `behaviour` now.
    fn shows(&self, i: usize, behaviour: Behaviour) -> bool {
        self.scenario.byzantine.iter().any(|b| b.node == i && b.behaviour == behaviour && b.active(self.now_ms))
    }

    /// Whether a partition cuts `a` off from `b` now.
    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.scenario.partitions.iter().any(|p| {
            self.now_ms >= p.from_ms && self.now_ms < p.heal_ms && (p.side_a.contains(&a) != p.side_a.contains(&b))
        })
    }

    /// The voting power of these validators.
    fn power(&self, who: impl Iterator<Item = usize>) -> u64 {
        who.filter_map(|i| self.validators.power_of(&self.nodes[i].key.public())).sum()
    }

    /// Whether some validators that are up and can all talk hold a quorum right now
    /// (Byzantine ones count as up and on every side).
    fn quorum_can_talk(&self) -> bool {
        let n = self.nodes.len();
        let up = |j: usize| !self.honest(j) || self.nodes[j].engine.is_some();
        (0..n).filter(|&i| up(i)).any(|i| {
            let group = (0..n).filter(|&j| up(j) && (!self.honest(j) || !self.partitioned(i, j)));
            self.validators.is_quorum(self.power(group))
        })
    }

    /// Messages lost now, per thousand.
    fn loss_permille(&self) -> u64 {
        let now = self.now_ms;
        let losses = self.scenario.net.losses.iter();
        losses.filter(|l| now >= l.from_ms && now < l.until_ms).map(|l| l.permille).max().unwrap_or(0)
    }

    /// Sends over the simulated network: lost, cut by a partition, or delayed with jitter.
    fn send(&mut self, from: usize, to: usize, event: Event) {
        if self.partitioned(from, to) {
            return;
        }
        let loss = self.loss_permille();
        if self.rng.chance(loss) {
            return;
        }
        let delay = self.scenario.net.latency_ms + self.rng.below(self.scenario.net.jitter_ms + 1);
        self.report.messages += 1;
        if let Event::Deliver { to, from, bytes, junk } = &event
            && self.rng.chance(self.scenario.net.duplicate_permille)
        {
            // Half the copies come soon (a repeat the engine still looks at), half late.
            let late = if self.rng.chance(DUPLICATE_SOON_PERMILLE) {
                self.rng.range(1, DUPLICATE_SOON_MAX_MS)
            } else {
                delay + self.rng.range(1, DUPLICATE_LATE_MAX_MS)
            };
            let copy = Event::Deliver { to: *to, from: *from, bytes: bytes.clone(), junk: *junk };
            self.at(self.now_ms + late, copy);
        }
        self.at(self.now_ms + delay, event);
    }

    /// Sends a consensus message from one validator to another.
    fn deliver(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.send(from, to, Event::Deliver { to, from, bytes, junk: None });
    }

    /// Checks that an honest validator never signs two different messages for one step, and
    /// never votes for a block that is not valid on its head.
    fn check_honest_message(&mut self, from: usize, bytes: &[u8]) {
        let msg = ConsensusMessage::decode(bytes).unwrap_or_else(|e| self.fail(format!("own message: {e}")));
        let (slot, body) = match &msg {
            ConsensusMessage::Vote(v) => ((v.vote.height, v.vote.round, v.vote.kind as u8), borsh::to_vec(&v.vote)),
            ConsensusMessage::Proposal(p) => ((p.proposal.height, p.proposal.round, 2), borsh::to_vec(&p.proposal)),
            _ => return,
        };
        if let ConsensusMessage::Vote(v) = &msg
            && let Some(block_hash) = v.vote.block_hash
        {
            let (h, r) = (v.vote.height, v.vote.round);
            if let Err(why) = self.valid_block(from, h, block_hash) {
                self.fail(format!(
                    "VALIDITY: honest validator {from} voted ({:?}) at height {h}, round {r} for block {block_hash:?}, \
                     which is {why}",
                    v.vote.kind
                ));
            }
        }
        let body = body.expect("encodes");
        match self.signed.entry((from, slot)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(body);
            }
            std::collections::btree_map::Entry::Occupied(e) => {
                if *e.get() != body {
                    self.fail(format!("DOUBLE SIGN: honest validator {from} signed two messages for {slot:?}"));
                }
            }
        }
    }

    /// Validity by construction (the ground truth, independent of the check honest validators
    /// run): the block `block_hash` was built honestly, for `height`, on the block validator
    /// `i` decided at `height - 1`.
    fn valid_block(&self, i: usize, height: u64, block_hash: Hash) -> Result<(), String> {
        let Some(block) = self.store.get(&block_hash) else { return Err("a block nobody has".into()) };
        if let Some(kind) = self.store.spoiled(&block_hash) {
            return Err(format!("built invalid ({kind:?})"));
        }
        let below = if height == 1 { Some(Hash::ZERO) } else { self.nodes[i].decided.get(&(height - 1)).map(|d| d.0) };
        if block.height != height || Some(block.parent) != below {
            return Err(format!("built for height {} on {:?}, not on {below:?}", block.height, block.parent));
        }
        Ok(())
    }

    /// The honest check of the block `block_hash` proposed at `height`, `round`, on
    /// validator `i`'s head: `Err` says why it is refused.
    fn check_block(&self, i: usize, height: u64, round: u32, block_hash: Hash) -> Result<(), String> {
        let Some(block) = self.store.get(&block_hash) else { return Err("a block nobody has".into()) };
        let below = match height {
            1 => None,
            h => match self.nodes[i].decided.get(&(h - 1)) {
                Some((b, _)) => Some(*b),
                None => return Err(format!("above the head of validator {i}")),
            },
        };
        let parent = self.store.parent(below).unwrap_or_else(|| self.fail(format!("decided block {below:?} unknown")));
        blocks::check(block, height, round, &parent, &self.validators, self.now_ms)
            .map_err(|k| format!("invalid: {k:?}"))
    }

    /// Publishes a message a validator's engine signed (checked first if it is honest;
    /// twinned if it is Byzantine and equivocates).
    fn broadcast(&mut self, from: usize, bytes: Vec<u8>) {
        if self.honest(from) {
            self.check_honest_message(from, &bytes);
        } else if let Some(twin) = self.twin_of(from, &bytes) {
            return self.equivocate(from, bytes, twin);
        }
        for to in 0..self.nodes.len() {
            if to != from {
                self.deliver(from, to, bytes.clone());
            }
        }
    }

    /// A Byzantine validator's conflicting twin of a message it signed, if it equivocates on
    /// that kind of message now.
    fn twin_of(&mut self, from: usize, bytes: &[u8]) -> Option<Vec<u8>> {
        let key = self.nodes[from].key.clone();
        match ConsensusMessage::decode(bytes).expect("own message decodes") {
            // Only its own messages: a proposal it relays is someone else's.
            ConsensusMessage::Vote(v)
                if v.vote.validator == key.public() && self.shows(from, Behaviour::EquivocatingVotes) =>
            {
                let mut vote = v.vote.clone();
                vote.block_hash = match vote.block_hash {
                    Some(h) => Some(self.twins.get(&h).copied().unwrap_or_else(|| Hash::of_parts(&[b"evil", &h.0]))),
                    None => Some(Hash::of_parts(&[b"evil-nil", &vote.height.to_le_bytes()])),
                };
                Some(ConsensusMessage::Vote(SignedVote::sign(&key, vote)).encode())
            }
            ConsensusMessage::Proposal(p)
                if p.proposal.proposer == key.public() && self.shows(from, Behaviour::EquivocatingProposals) =>
            {
                let other = *self.twins.get(&p.proposal.block_hash)?;
                let mut proposal = p.proposal.clone();
                proposal.block_hash = other;
                self.report.proposal_twins += 1;
                Some(ConsensusMessage::Proposal(SignedProposal::sign(&key, proposal)).encode())
            }
            _ => None,
        }
    }

    /// Sends each peer the message, its twin, or (sometimes) both.
    fn equivocate(&mut self, from: usize, bytes: Vec<u8>, twin: Vec<u8>) {
        for to in 0..self.nodes.len() {
            if to == from {
                continue;
            }
            let roll = self.rng.below(10);
            if roll < 6 {
                self.deliver(from, to, bytes.clone());
            }
            if roll >= 4 {
                self.deliver(from, to, twin.clone());
            }
        }
    }

    /// A Byzantine voter's prevote and precommit for an invalid block, sent to everyone.
    fn vote_for_invalid(&mut self, i: usize, height: u64, round: u32, block_hash: Hash) {
        if !self.nodes[i].voted_invalid.insert((height, round, block_hash)) {
            return;
        }
        let key = self.nodes[i].key.clone();
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            let vote = Vote {
                version: FORMAT_VERSION,
                chain_id: self.chain_id,
                kind,
                height,
                round,
                block_hash: Some(block_hash),
                validator: key.public(),
            };
            let bytes = ConsensusMessage::Vote(SignedVote::sign(&key, vote)).encode();
            self.report.votes_for_invalid += 1;
            for to in 0..self.nodes.len() {
                if to != i {
                    self.deliver(i, to, bytes.clone());
                }
            }
        }
    }

    /// Feeds an input to a running validator and carries out the outputs.
    fn feed(&mut self, i: usize, input: EngineInput) {
        let Some(engine) = self.nodes[i].engine.as_mut() else { return };
        let outputs = engine.handle(input);
        self.apply(i, outputs);
    }

    /// Records that validator `i` starts `height` now.
    fn enter(&mut self, i: usize, height: u64) {
        let now = self.now_ms;
        self.nodes[i].entered.entry(height).or_insert(now);
        self.height_started.entry(height).or_insert(now);
    }

    fn start_height(&mut self, i: usize, height: u64) {
        self.enter(i, height);
        self.feed(i, EngineInput::StartHeight { height });
    }

    /// Notes when the validators that are up and can talk stop (or start again) holding a
    /// quorum: after a crash, a restart, and when a partition starts or heals.
    fn track_quorum(&mut self) {
        match (self.quorum_can_talk(), self.quorum_lost_since) {
            (false, None) => self.quorum_lost_since = Some(self.now_ms),
            (true, Some(since)) => {
                self.quorum_losses.push((since, self.now_ms));
                self.quorum_lost_since = None;
            }
            _ => {}
        }
    }

    /// Carries out a validator's outputs in order, as the node would; a crash armed for this
    /// validator happens part-way through them.
    fn apply(&mut self, i: usize, outputs: Vec<EngineOutput>) {
        let mut pending: VecDeque<EngineOutput> = outputs.into();
        let mut done = 0usize;
        while let Some(out) = pending.pop_front() {
            if let Some(k) = self.nodes[i].crash_armed
                && done >= k
            {
                self.crash_now(i);
                return;
            }
            done += 1;
            let height = self.nodes[i].next_height();
            match out {
                EngineOutput::WalAppend(bytes) => self.nodes[i].wal.push(bytes),
                EngineOutput::Publish(bytes) => self.broadcast(i, bytes),
                EngineOutput::ScheduleTimeout { height, round, kind, duration_ms } => {
                    self.seq += 1;
                    let token = self.seq;
                    self.nodes[i].timers.insert((height, round, kind), token);
                    let incarnation = self.nodes[i].incarnation;
                    let ev = Event::Timer { node: i, incarnation, token, height, round, kind };
                    self.at(self.now_ms + duration_ms, ev);
                }
                EngineOutput::CancelTimeout { height, round, kind } => {
                    self.nodes[i].timers.remove(&(height, round, kind));
                }
                EngineOutput::CancelAllTimeouts => self.nodes[i].timers.clear(),
                EngineOutput::RoundStarted { round, .. } => self.report.max_round = self.report.max_round.max(round),
                EngineOutput::RequestValue { height, round, .. } => {
                    let delay = self.rng.range(1, BUILD_DELAY_MAX_MS);
                    let incarnation = self.nodes[i].incarnation;
                    self.at(self.now_ms + delay, Event::Build { node: i, incarnation, height, round });
                }
                EngineOutput::NeedBlock { height, round, block_hash, .. } => {
                    let delay = self.scenario.net.latency_ms + self.rng.below(self.scenario.net.jitter_ms + 1);
                    let incarnation = self.nodes[i].incarnation;
                    let ev = Event::BlockChecked { node: i, incarnation, height, round, block_hash };
                    self.at(self.now_ms + delay, ev);
                }
                EngineOutput::RestreamBlock { .. } => {}
                EngineOutput::Decided { height: h, block_hash, commit, .. } => {
                    if h == height {
                        if self.honest(i) {
                            self.check_quorum_could_talk(i, h);
                        }
                        self.decide(i, h, block_hash, commit);
                        if self.nodes[i].crash_at_decision {
                            self.crash_now(i);
                            return;
                        }
                        for to in 0..self.nodes.len() {
                            if to != i {
                                self.send(i, to, Event::Finalized { to, from: i, height: h });
                            }
                        }
                        self.enter(i, h + 1);
                        let outputs = self.nodes[i]
                            .engine
                            .as_mut()
                            .expect("a validator that decides is running")
                            .handle(EngineInput::StartHeight { height: h + 1 });
                        pending.extend(outputs);
                    }
                }
                EngineOutput::Equivocation(e) => {
                    let offender = self.index_of(e.offender());
                    if self.honest(offender) {
                        self.fail(format!("validator {i} holds evidence against honest validator {offender}: {e:?}"));
                    }
                    if self.honest(i) {
                        self.nodes[i].evidence.push(*e);
                    }
                }
                EngineOutput::Rejected { reason } => {
                    self.fail(format!("validator {i} rejected a message it was fed verified: {reason}"));
                }
                EngineOutput::Fault { reason } => {
                    if self.honest(i) {
                        self.fail(format!("validator {i}'s consensus core failed: {reason}"));
                    }
                }
            }
        }
        if self.nodes[i].crash_armed.is_some() {
            self.crash_now(i);
        }
    }

    fn index_of(&self, key: PublicKey) -> usize {
        self.nodes.iter().position(|n| n.key.public() == key).unwrap_or_else(|| self.fail(format!("{key} unknown")))
    }

    /// No progress without a quorum: validator `i` decides `height` by consensus now. The
    /// validators that could have signed for that height — each started it, was up at some
    /// time since, and was not cut off from `i` by a partition all that time (a validator
    /// signs nothing for a height it has not started) — must hold a quorum. So a height
    /// that a quorum could not work on is not decided until one can; the heights in progress
    /// when the quorum went down may still finish on the votes already sent. Byzantine
    /// validators count as able. Also counts the heights that lived through a quorum loss.
    fn check_quorum_could_talk(&mut self, i: usize, height: u64) {
        let now = self.now_ms;
        let started = self.height_started.get(&height).copied().unwrap_or(now);
        let cut = |j: usize, since: u64| {
            self.scenario
                .partitions
                .iter()
                .any(|p| p.from_ms <= since && now < p.heal_ms && p.side_a.contains(&i) != p.side_a.contains(&j))
        };
        let able: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| {
                !self.honest(j)
                    || self.nodes[j]
                        .entered
                        .get(&height)
                        .is_some_and(|&e| e <= now && !self.nodes[j].down_throughout(e, now) && !cut(j, e))
            })
            .collect();
        if !self.validators.is_quorum(self.power(able.iter().copied())) {
            self.fail(format!(
                "QUORUM: validator {i} decided height {height} though only validators {able:?} could have signed for \
                 it (it started at {started} ms)"
            ));
        }
        if !self.decisions.contains_key(&height) {
            let lost = self.quorum_losses.iter().copied().chain(self.quorum_lost_since.map(|s| (s, u64::MAX)));
            if lost.into_iter().any(|(a, b)| a < now && b > started) {
                self.report.heights_through_quorum_loss += 1;
            }
        }
    }

    /// Records a finalized block, checking agreement, validity and the commit; the WAL of
    /// that height is no longer needed once the block is stored.
    fn decide(&mut self, i: usize, height: u64, block_hash: Hash, commit: Commit) {
        if let Err(e) = commit.verify(self.chain_id, &self.validators) {
            self.fail(format!("validator {i}: the commit of height {height} does not verify: {e}"));
        }
        if commit.height != height || commit.block_hash != block_hash {
            self.fail(format!("validator {i}: the commit is not for block {height}"));
        }
        if self.honest(i) {
            if let Err(why) = self.valid_block(i, height, block_hash) {
                self.fail(format!(
                    "VALIDITY: honest validator {i} decided block {block_hash:?} at height {height}: {why}"
                ));
            }
            match self.decisions.get(&height) {
                Some(h) if *h != block_hash => {
                    self.fail(format!(
                        "SAFETY: honest validator {i} decided {block_hash:?} at height {height}, another decided {h:?}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.decisions.insert(height, block_hash);
                }
            }
        }
        let node = &mut self.nodes[i];
        node.decided.insert(height, (block_hash, commit));
        node.wal.clear();
    }

    /// The validator stops: only its WAL and finalized blocks survive.
    fn crash_now(&mut self, i: usize) {
        let now = self.now_ms;
        let node = &mut self.nodes[i];
        if let Some(e) = node.engine.take() {
            node.stats = add(node.stats, e.stats());
            node.down.push((now, u64::MAX));
        }
        node.crash_armed = None;
        node.crash_at_decision = false;
        node.timers.clear();
        node.incarnation += 1;
        self.track_quorum();
    }

    /// Starts a validator (again) from its WAL, on the height after its last block.
    fn restart(&mut self, i: usize) {
        if self.nodes[i].engine.is_some() {
            return;
        }
        let now = self.now_ms;
        let node = &mut self.nodes[i];
        if let Some(last) = node.down.last_mut() {
            last.1 = now;
        }
        let mut engine = Engine::new(node.key.clone(), self.chain_id, self.validators.clone(), self.params.clone())
            .expect("validator");
        let height = node.next_height();
        let outputs = match engine.replay(height, &node.wal) {
            Ok(o) => o,
            Err(e) => self.fail(format!("validator {i}: WAL replay failed: {e}")),
        };
        self.nodes[i].engine = Some(engine);
        self.enter(i, height);
        self.track_quorum();
        self.apply(i, outputs);
        if now > 0 {
            // Connecting to its peers again, it asks one for what it missed.
            let peer = (i + 1 + self.rng.below(self.nodes.len() as u64 - 1) as usize) % self.nodes.len();
            self.maybe_sync(i, peer);
        }
    }

    /// Asks `from` for the blocks validator `i` is missing, unless a request is pending.
    fn maybe_sync(&mut self, i: usize, from: usize) {
        if self.now_ms < self.nodes[i].sync_pending_until_ms {
            return;
        }
        self.nodes[i].sync_pending_until_ms = self.now_ms + SYNC_RETRY_MS;
        let height = self.nodes[i].next_height();
        self.send(i, from, Event::SyncRequest { to: from, from: i, height });
    }

    /// Gossip validation, as the node's `Bft::check_gossip`: decoded once; decided heights,
    /// heights too far ahead and rounds too far ahead ignored; an exact repeat of what the
    /// engine has passed over; anything else verified once.
    fn gossip_check(&self, i: usize, bytes: &[u8]) -> (Option<u64>, Verdict) {
        let engine = self.nodes[i].engine.as_ref().expect("running");
        let msg = match ConsensusMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => return (None, Verdict::Reject(e.to_string())),
        };
        let (height, next) = (msg.height(), self.nodes[i].next_height());
        if height < next || height > next + HEIGHTS_AHEAD_MAX || !engine.round_in_range(height, msg.round()) {
            return (Some(height), Verdict::Ignore);
        }
        if engine.is_repeat(&msg) {
            return (Some(height), Verdict::Repeat);
        }
        match engine.verify_message(msg) {
            Ok(v) => (Some(height), Verdict::Accept(v)),
            Err(e) => (Some(height), Verdict::Reject(e.to_string())),
        }
    }

    /// Checks what gossip validation did with a junk message against what it must do.
    fn check_junk(&mut self, to: usize, kind: JunkKind, bytes: &[u8], verdict: &Verdict) {
        let count = self.report.junk.entry(kind).or_default();
        let what = match verdict {
            Verdict::Reject(_) => {
                count.rejected += 1;
                "refused"
            }
            Verdict::Ignore => {
                count.ignored += 1;
                "ignored"
            }
            Verdict::Repeat | Verdict::Accept(_) => {
                count.accepted += 1;
                "accepted"
            }
        };
        let ok = match (kind.expect(), verdict) {
            (Expect::Rejected, Verdict::Reject(_)) => true,
            (Expect::Rejected, _) => false,
            (Expect::NotAccepted, Verdict::Reject(_) | Verdict::Ignore) => true,
            (Expect::NotAccepted, _) => false,
            (Expect::NotRejected, Verdict::Reject(_)) => false,
            (Expect::NotRejected, _) => true,
        };
        if !ok {
            self.fail(format!("JUNK: validator {to} {what} a {kind:?} message ({:?})", kind.expect()));
        }
        if matches!(verdict, Verdict::Ignore) && kind.expect() == Expect::NotRejected {
            // The engine, fed it without gossip validation, drops it too.
            let engine = self.nodes[to].engine.as_mut().expect("running");
            let out = engine.handle(EngineInput::Message(bytes.to_vec()));
            if !out.is_empty() {
                self.fail(format!("JUNK: validator {to}'s engine acted on an out-of-range {kind:?} message: {out:?}"));
            }
        }
    }

    /// Carries out one event.
    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, bytes, junk } => {
                if self.nodes[to].engine.is_none() {
                    return;
                }
                let next = self.nodes[to].next_height();
                let (height, verdict) = self.gossip_check(to, &bytes);
                match junk {
                    Some(kind) => self.check_junk(to, kind, &bytes, &verdict),
                    None => {
                        if let Verdict::Reject(e) = &verdict {
                            self.fail(format!("validator {to} refused a message from honest validator {from}: {e}"));
                        }
                    }
                }
                if matches!(verdict, Verdict::Accept(_) | Verdict::Repeat) && self.shows(to, Behaviour::Junk) {
                    let observed = &mut self.nodes[to].observed;
                    if observed.len() >= OBSERVED_MAX {
                        observed.pop_front();
                    }
                    observed.push_back(bytes.clone());
                }
                let accepted = match verdict {
                    Verdict::Accept(v) => {
                        if let ConsensusMessage::Proposal(p) = v.message()
                            && self.shows(to, Behaviour::VotesForInvalid)
                        {
                            let (h, r, b) = (p.proposal.height, p.proposal.round, p.proposal.block_hash);
                            if h == next && self.check_block(to, h, r, b).is_err() {
                                self.vote_for_invalid(to, h, r, b);
                            }
                        }
                        self.feed(to, EngineInput::Verified(v));
                        true
                    }
                    Verdict::Repeat => {
                        self.report.repeats += 1;
                        true
                    }
                    Verdict::Reject(_) | Verdict::Ignore => false,
                };
                // Others are deciding later heights: fetch the finalized blocks missed.
                if accepted && height.is_some_and(|h| h > next) {
                    self.maybe_sync(to, from);
                }
            }
            Event::Timer { node, incarnation, token, height, round, kind } => {
                let n = &mut self.nodes[node];
                if n.incarnation != incarnation || n.timers.get(&(height, round, kind)) != Some(&token) {
                    return;
                }
                n.timers.remove(&(height, round, kind));
                self.feed(node, EngineInput::TimeoutElapsed { height, round, kind });
            }
            Event::Build { node, incarnation, height, round } => {
                if self.nodes[node].incarnation == incarnation {
                    self.build(node, height, round);
                }
            }
            Event::BlockChecked { node, incarnation, height, round, block_hash } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                let next = self.nodes[node].next_height();
                if height < next {
                    return;
                }
                let retry = |sim: &mut Sim, after: u64| {
                    let ev = Event::BlockChecked { node, incarnation, height, round, block_hash };
                    sim.at(sim.now_ms + after, ev);
                };
                if self.shows(node, Behaviour::VotesForInvalid) {
                    return self.feed(node, EngineInput::BlockValidity { height, block_hash, valid: true });
                }
                if height > next {
                    // Checked once the head reaches its parent.
                    return retry(self, BLOCK_WAIT_RETRY_MS);
                }
                if self.store.get(&block_hash).is_none() {
                    // Nobody has it: asked for again, never called valid or invalid.
                    return retry(self, BLOCK_FETCH_RETRY_MS);
                }
                let valid = self.check_block(node, height, round, block_hash).is_ok();
                if !valid && self.honest(node) {
                    self.report.blocks_refused += 1;
                }
                self.feed(node, EngineInput::BlockValidity { height, block_hash, valid });
            }
            Event::Crash { node, after_decision } => {
                if self.nodes[node].engine.is_some() {
                    if after_decision {
                        self.nodes[node].crash_at_decision = true;
                    } else {
                        let k = self.rng.below(6) as usize;
                        self.nodes[node].crash_armed = Some(k);
                    }
                }
            }
            Event::Restart { node } => {
                // A crash still armed (the validator did nothing since) happens now.
                if self.nodes[node].crash_armed.is_some() || self.nodes[node].crash_at_decision {
                    self.crash_now(node);
                }
                self.restart(node);
            }
            Event::SyncRequest { to, from, height } => {
                if self.nodes[to].engine.is_none() {
                    return;
                }
                let decisions: Vec<(u64, Hash, Commit)> = if self.shows(to, Behaviour::Junk) {
                    let n = &mut self.nodes[to];
                    n.forge_relabel = !n.forge_relabel;
                    byzantine::forged_sync(&n.key, self.chain_id, height, &n.decided, n.forge_relabel)
                } else {
                    let decided = &self.nodes[to].decided;
                    decided.range(height..).take(SYNC_BLOCKS_MAX).map(|(h, (b, c))| (*h, *b, c.clone())).collect()
                };
                if !decisions.is_empty() {
                    self.send(to, from, Event::SyncResponse { to: from, from: to, decisions });
                }
            }
            Event::SyncResponse { to, from, decisions } => self.on_sync_response(to, from, decisions),
            Event::Finalized { to, from, height } => {
                if self.nodes[to].engine.is_some() && height >= self.nodes[to].next_height() {
                    self.maybe_sync(to, from);
                }
            }
            Event::Junk { node } => self.send_junk(node),
            Event::Split => self.track_quorum(),
            Event::Heal { partition } => {
                self.track_quorum();
                let side_a = self.scenario.partitions[partition].side_a.clone();
                let n = self.nodes.len();
                for i in 0..n {
                    let across: Vec<usize> = (0..n).filter(|j| side_a.contains(j) != side_a.contains(&i)).collect();
                    if self.nodes[i].engine.is_some() && !across.is_empty() {
                        let peer = across[self.rng.below(across.len() as u64) as usize];
                        self.maybe_sync(i, peer);
                    }
                }
            }
        }
    }

    /// Finalized blocks from a peer: each verified (its commit, and the block on this
    /// validator's head) before it is stored; a forged one ends the answer.
    fn on_sync_response(&mut self, to: usize, from: usize, decisions: Vec<(u64, Hash, Commit)>) {
        if self.nodes[to].engine.is_none() {
            return;
        }
        let full = decisions.len() == SYNC_BLOCKS_MAX;
        let mut advanced = false;
        for (h, block_hash, commit) in decisions {
            if h != self.nodes[to].next_height() {
                continue;
            }
            let verified = commit.verify(self.chain_id, &self.validators).map_err(|e| e.to_string()).and_then(|_| {
                if commit.height != h || commit.block_hash != block_hash {
                    return Err("the commit is for another block".into());
                }
                self.check_block(to, h, commit.round, block_hash)
            });
            if let Err(why) = verified {
                if self.honest(from) {
                    self.fail(format!("SYNC: validator {to} refused height {h} from honest validator {from}: {why}"));
                }
                self.report.sync_refused += 1;
                break;
            }
            self.decide(to, h, block_hash, commit);
            advanced = true;
        }
        if advanced {
            let height = self.nodes[to].next_height();
            self.nodes[to].sync_pending_until_ms = 0;
            self.start_height(to, height);
            if full && self.nodes[to].engine.is_some() {
                self.maybe_sync(to, from);
            }
        }
    }

    /// Random transactions that execute (what an honest proposer takes from its mempool).
    fn honest_txs(&mut self) -> Vec<SimTx> {
        let count = self.rng.below(BLOCK_TXS_MAX + 1);
        (0..count)
            .map(|_| {
                self.next_tx += 1;
                SimTx { id: self.next_tx, bytes: self.rng.range(100, TX_BYTES_MAX), fails: false }
            })
            .collect()
    }

    /// Validator `node` builds its proposal for `height`, `round` and feeds it: an honest
    /// block, or what its Byzantine behaviour makes of it.
    fn build(&mut self, node: usize, height: u64, round: u32) {
        let below = match height {
            1 => None,
            h => match self.nodes[node].decided.get(&(h - 1)) {
                Some((b, _)) => Some(*b),
                None => return,
            },
        };
        let parent = self.store.parent(below).unwrap_or_else(|| self.fail(format!("decided block {below:?} unknown")));
        let me = self.nodes[node].key.public();
        let txs = self.honest_txs();
        let block = blocks::build(height, round, &parent, me, self.now_ms, txs);
        let block_hash = if self.shows(node, Behaviour::InvalidProposals) {
            let n = &mut self.nodes[node];
            let bad = BadProposal::ALL[n.bad_next % BadProposal::ALL.len()];
            n.bad_next += 1;
            *self.report.bad_proposals.entry(bad).or_default() += 1;
            let hash = match bad {
                BadProposal::Withheld => Hash::of_parts(&[b"withheld", &block.hash().0]),
                BadProposal::Invalid(kind) => {
                    let other = self.nodes[(node + 1) % self.nodes.len()].key.public();
                    self.next_tx += 1;
                    let spoiled = blocks::spoil(block, kind, &parent, other, self.next_tx);
                    let found = blocks::check(&spoiled, height, round, &parent, &self.validators, self.now_ms);
                    if found != Err(kind) {
                        self.fail(format!("the block model is wrong: a block spoiled as {kind:?} checks as {found:?}"));
                    }
                    self.store.insert(spoiled, Some(kind))
                }
            };
            if self.shows(node, Behaviour::VotesForInvalid) {
                self.vote_for_invalid(node, height, round, hash);
            }
            hash
        } else if self.shows(node, Behaviour::EquivocatingProposals) {
            let mut txs = self.honest_txs();
            self.next_tx += 1;
            txs.push(SimTx { id: self.next_tx, bytes: 100, fails: false });
            let other = blocks::build(height, round, &parent, me, self.now_ms, txs);
            let first = self.store.insert(block, None);
            let second = self.store.insert(other, None);
            self.twins.insert(first, second);
            first
        } else {
            self.store.insert(block, None)
        };
        self.feed(node, EngineInput::ProposeValue { height, round, block_hash });
    }

    /// A junk peer sends one made-up message to a random peer, and comes back later.
    fn send_junk(&mut self, node: usize) {
        let active =
            self.scenario.byzantine.iter().any(|b| {
                b.node == node && b.behaviour == Behaviour::Junk && b.until_ms.is_none_or(|u| self.now_ms < u)
            });
        if !active {
            return;
        }
        let next = self.now_ms + self.rng.range(JUNK_INTERVAL_MIN_MS, JUNK_INTERVAL_MAX_MS);
        self.at(next, Event::Junk { node });
        let n = &self.nodes[node];
        let Some(engine) = &n.engine else { return };
        let victim = (0..self.nodes.len()).find(|&j| self.honest(j)).expect("an honest validator");
        let ctx = JunkContext {
            key: &n.key,
            outsider: &self.outsider,
            victim: self.nodes[victim].key.public(),
            chain_id: self.chain_id,
            validators: &self.validators,
            height: n.next_height(),
            round: engine.round().unwrap_or(0),
            observed: &n.observed,
        };
        let mut rng = self.rng.clone();
        let mut made = None;
        for k in 0..JunkKind::ALL.len() {
            let kind = JunkKind::ALL[(n.junk_next + k) % JunkKind::ALL.len()];
            if let Some(bytes) = ctx.make(kind, &mut rng) {
                made = Some((k, kind, bytes));
                break;
            }
        }
        self.rng = rng;
        let Some((skipped, kind, bytes)) = made else { return };
        self.nodes[node].junk_next += skipped + 1;
        self.report.junk.entry(kind).or_default().sent += 1;
        let to = (node + 1 + self.rng.below(self.nodes.len() as u64 - 1) as usize) % self.nodes.len();
        self.send(node, to, Event::Deliver { to, from: node, bytes, junk: Some(kind) });
    }

    /// Runs the scenario to the end; panics (with how to replay) on any violation.
    pub fn run(mut self) -> Report {
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        // Starting one after the other at time 0 is no loss of quorum.
        self.quorum_losses.clear();
        self.quorum_lost_since = None;
        for c in self.scenario.crashes.clone() {
            self.at(c.at_ms, Event::Crash { node: c.node, after_decision: c.after_decision });
            self.at(c.restart_ms, Event::Restart { node: c.node });
        }
        for (partition, p) in self.scenario.partitions.clone().into_iter().enumerate() {
            self.at(p.from_ms, Event::Split);
            self.at(p.heal_ms, Event::Heal { partition });
        }
        for b in self.scenario.byzantine.clone() {
            if b.behaviour == Behaviour::Junk {
                self.at(b.from_ms, Event::Junk { node: b.node });
            }
        }
        let heal = self.scenario.heal_ms();
        let deadline = heal + LIVENESS_BOUND_MS;
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.honest(i)).collect();
        let mut target: Option<u64> = None;
        loop {
            if let Some(t) = target
                && honest.iter().all(|&i| self.nodes[i].next_height() > t)
            {
                break;
            }
            let Some(((time, _), event)) = self.queue.pop_first() else {
                self.fail("nothing left to do before every honest validator decided".into());
            };
            if time >= heal && target.is_none() {
                // The last fault is over: from the highest height decided so far, LIVENESS_HEIGHTS more.
                let highest = self.decisions.keys().next_back().copied().unwrap_or(0);
                target = Some(highest + LIVENESS_HEIGHTS);
            }
            if time > deadline {
                let heights: Vec<u64> = honest.iter().map(|&i| self.nodes[i].next_height() - 1).collect();
                let rounds: Vec<Option<u32>> =
                    honest.iter().map(|&i| self.nodes[i].engine.as_ref().and_then(|e| e.round())).collect();
                self.fail(format!(
                    "LIVENESS: honest validators {honest:?} at heights {heights:?} (rounds {rounds:?}), not all at {} \
                     ({LIVENESS_HEIGHTS} more than when the last fault ended at {heal} ms) within {LIVENESS_BOUND_MS} ms",
                    target.unwrap_or(0)
                ));
            }
            self.now_ms = time;
            self.step(event);
        }
        // Every honest validator holds the same chain.
        for &i in &honest {
            for (h, (b, _)) in &self.nodes[i].decided {
                if self.decisions.get(h) != Some(b) {
                    self.fail(format!("SAFETY: validator {i} holds another block at height {h}"));
                }
            }
        }
        let mut report = std::mem::take(&mut self.report);
        for &i in &honest {
            report.evidence.extend(self.nodes[i].evidence.iter().cloned());
        }
        for n in &self.nodes {
            report.stats = add(report.stats, n.stats);
            if let Some(e) = &n.engine {
                report.stats = add(report.stats, e.stats());
            }
        }
        report.decided_heights = self.decisions.len() as u64;
        report.heal_ms = heal;
        report.recovery_ms = self.now_ms.saturating_sub(heal);
        report
    }
}

/// The sum of two sets of engine counters.
fn add(a: EngineStats, b: EngineStats) -> EngineStats {
    EngineStats {
        signatures_verified: a.signatures_verified + b.signatures_verified,
        messages_to_core: a.messages_to_core + b.messages_to_core,
        duplicates_dropped: a.duplicates_dropped + b.duplicates_dropped,
    }
}

/// A random 64-bit number from the operating system's randomness (std's hasher keys) and
/// the clock: no dependency needed.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

/// This test process's base seed: `CAIRN_SIM_BASE`, or drawn at random (so every run of
/// `cargo test` covers new seeds), printed once.
pub fn base_seed() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| {
        let base = match std::env::var("CAIRN_SIM_BASE") {
            Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("CAIRN_SIM_BASE={s} is not a u64")),
            Err(_) => random_u64(),
        };
        eprintln!("simulation base seed {base} (CAIRN_SIM_BASE={base} runs these seeds again)");
        base
    })
}

/// FNV-1a of a scenario's name: each scenario draws its own seeds from the base.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}

/// The seed of run `index` of scenario `name` under `base`.
pub fn derive_seed(base: u64, name: &str, index: u64) -> u64 {
    Rng::new(base ^ name_hash(name) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// The seeds to run: `CAIRN_SIM_SEED=<seed>` replays one; otherwise `CAIRN_SIM_SEEDS=<count>`
/// (or `default_count`) seeds derived from the base seed ([`base_seed`]).
pub fn seeds(name: &str, default_count: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("CAIRN_SIM_SEED") {
        return vec![s.trim().parse().unwrap_or_else(|_| panic!("CAIRN_SIM_SEED={s} is not a u64"))];
    }
    let count = std::env::var("CAIRN_SIM_SEEDS")
        .ok()
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("CAIRN_SIM_SEEDS={s} is not a number")))
        .unwrap_or(default_count);
    let base = base_seed();
    (0..count).map(|i| derive_seed(base, name, i)).collect()
}

/// Runs `scenario` under every seed, naming the seed (and the base it came from) of a failure.
pub fn run_seeds(name: &str, default_count: u64, scenario: impl Fn(&mut Rng) -> Scenario) -> Vec<Report> {
    let mut reports = Vec::new();
    let seeds = seeds(name, default_count);
    let started = std::time::Instant::now();
    for (index, seed) in seeds.iter().enumerate() {
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let sc = scenario(&mut rng);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Sim::new(name, sc, *seed).run()));
        match result {
            Ok(r) => reports.push(r),
            Err(e) => {
                let base = std::env::var("CAIRN_SIM_SEED")
                    .map_or_else(|_| format!("base {}", base_seed()), |_| "replayed".into());
                eprintln!(
                    "{name}: seed {seed} failed (run {index}, {base}); replay with CAIRN_SIM_SEED={seed} cargo test -p \
                     cairn-consensus --test sim {name} -- --exact"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    let max_round = reports.iter().map(|r| r.max_round).max().unwrap_or(0);
    let messages: u64 = reports.iter().map(|r| r.messages).sum();
    let stats = reports.iter().fold(EngineStats::default(), |a, r| add(a, r.stats));
    let repeats: u64 = reports.iter().map(|r| r.repeats).sum();
    let recovery = reports.iter().map(|r| r.recovery_ms).max().unwrap_or(0);
    let stalled: u64 = reports.iter().map(|r| r.heights_through_quorum_loss).sum();
    eprintln!(
        "{name}: {} seeds passed in {:.1} s (max round {max_round}, slowest recovery {recovery} ms of \
         {LIVENESS_BOUND_MS}, {stalled} heights through a quorum loss, {messages} messages sent, {} signatures \
         verified, {} messages to the core, {repeats} repeats passed over, {} dropped by the engine)",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        stats.signatures_verified,
        stats.messages_to_core,
        stats.duplicates_dropped,
    );
    reports
}

/// Asserts `what` over a scenario's runs, when there are enough of them to expect it
/// ([`COVERAGE_RUNS_MIN`]).
pub fn assert_coverage(reports: &[Report], holds: bool, what: &str) {
    if reports.len() >= COVERAGE_RUNS_MIN {
        assert!(holds, "over {} runs, expected: {what}", reports.len());
    }
}

/// Validators `0..n` shuffled, to pick faulty ones at random.
pub fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// A random split of `0..n` with each side non-empty.
pub fn split(rng: &mut Rng, n: usize) -> Vec<usize> {
    let order = shuffled(rng, n);
    let size = rng.range(1, n as u64 - 1) as usize;
    let side: BTreeSet<usize> = order.into_iter().take(size).collect();
    side.into_iter().collect()
}
