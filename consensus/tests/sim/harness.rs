//! A deterministic simulation of n validators running [`Engine`] in one process.
//!
//! Everything is driven by one seeded PRNG and a virtual clock: message latency and jitter
//! (hence reordering), loss, partitions that heal, crashes (possibly between a WAL append and
//! the publish that follows it) and restarts from the WAL, block sync for validators that fell
//! behind, and equivocating validators that send conflicting proposals and votes to different
//! peers. Safety is checked at every decision; liveness once the last fault is over.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_consensus::{
    ConsensusMessage, ConsensusParams, Engine, EngineInput, EngineOutput, EngineStats, Evidence, SignedProposal,
    SignedVote, TimeoutKind,
};
use cairn_ledger::{Commit, Hash, Keypair, PublicKey, Validator, ValidatorSet};

/// splitmix64: small, fast, and the same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

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

/// The network's behaviour.
#[derive(Clone, Debug)]
pub struct Net {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub loss_permille: u64,
    /// Messages delivered a second time, up to two seconds later (old messages after a restart).
    pub duplicate_permille: u64,
}

/// Validators split into two sides that cannot talk from `from_ms` until `heal_ms`.
#[derive(Clone, Debug)]
pub struct Partition {
    pub side_a: Vec<usize>,
    pub from_ms: u64,
    pub heal_ms: u64,
}

/// A validator that crashes at `at_ms` (during its next step, possibly between a WAL append
/// and the publish after it) and restarts from its WAL at `restart_ms`.
#[derive(Clone, Debug)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
}

/// A fault model to run under many seeds.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub n: usize,
    pub net: Net,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    pub equivocators: Vec<usize>,
    /// Every honest validator must decide this height...
    pub target_height: u64,
    /// ...within this long after the last fault is over (virtual time).
    pub liveness_window_ms: u64,
}

impl Scenario {
    pub fn new(n: usize) -> Scenario {
        Scenario {
            n,
            net: Net { latency_ms: 10, jitter_ms: 20, loss_permille: 0, duplicate_permille: 50 },
            partitions: Vec::new(),
            crashes: Vec::new(),
            equivocators: Vec::new(),
            target_height: 4,
            liveness_window_ms: 120_000,
        }
    }

    fn faults_over_ms(&self) -> u64 {
        let p = self.partitions.iter().map(|p| p.heal_ms).max().unwrap_or(0);
        let c = self.crashes.iter().map(|c| c.restart_ms).max().unwrap_or(0);
        p.max(c)
    }
}

/// What one run observed.
#[derive(Debug, Default)]
pub struct Report {
    pub decided_heights: u64,
    pub evidence: Vec<Evidence>,
    pub max_round: u32,
    pub messages: u64,
    /// The engines' counters, summed over validators and their restarts.
    pub stats: EngineStats,
    /// Repeats of messages an engine already had, passed over before it (as the node's
    /// gossip validation does).
    pub repeats: u64,
}

#[derive(Debug)]
enum Event {
    Deliver { to: usize, from: usize, bytes: Vec<u8> },
    Timer { node: usize, incarnation: u64, token: u64, height: u64, round: u32, kind: TimeoutKind },
    Build { node: usize, incarnation: u64, height: u64, round: u32 },
    BlockChecked { node: usize, incarnation: u64, height: u64, block_hash: Hash },
    Crash { node: usize },
    Restart { node: usize },
    SyncRequest { to: usize, from: usize, height: u64 },
    SyncResponse { to: usize, decisions: Vec<(u64, Hash, Commit)> },
}

struct Node {
    key: Keypair,
    engine: Option<Engine>,
    incarnation: u64,
    /// The WAL of the current height (what survives a crash).
    wal: Vec<Vec<u8>>,
    /// Finalized blocks (what survives a crash).
    decided: BTreeMap<u64, (Hash, Commit)>,
    timers: HashMap<(u64, u32, TimeoutKind), u64>,
    crash_armed: Option<usize>,
    sync_pending_until_ms: u64,
    builds: u64,
    evidence: Vec<Evidence>,
    /// Counters of the engines this validator ran before its last restart.
    stats: EngineStats,
}

impl Node {
    fn next_height(&self) -> u64 {
        self.decided.keys().next_back().map_or(1, |h| h + 1)
    }
}

/// A signing step: height, round, and 0 prevote, 1 precommit, 2 proposal.
type Slot = (u64, u32, u8);

pub struct Sim {
    seed: u64,
    scenario: Scenario,
    rng: Rng,
    now_ms: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    chain_id: Hash,
    validators: ValidatorSet,
    params: ConsensusParams,
    /// The one block decided at each height, by anyone honest.
    decisions: BTreeMap<u64, Hash>,
    messages: u64,
    max_round: u32,
    /// What each validator signed, by (validator, (height, round, step)).
    signed: BTreeMap<(usize, Slot), Vec<u8>>,
    /// Repeats of messages an engine already had, passed over before it.
    repeats: u64,
}

fn fail(seed: u64, what: String) -> ! {
    panic!("{what} (replay with CAIRN_SIM_SEED={seed})")
}

impl Sim {
    pub fn new(scenario: Scenario, seed: u64) -> Sim {
        let keys: Vec<Keypair> = (0..scenario.n)
            .map(|i| {
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                Keypair::from_seed(s)
            })
            .collect();
        let validators =
            ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect()).expect("set");
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
                sync_pending_until_ms: 0,
                builds: 0,
                evidence: Vec::new(),
                stats: EngineStats::default(),
            })
            .collect();
        Sim {
            seed,
            rng: Rng::new(seed),
            scenario,
            now_ms: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes,
            chain_id,
            validators,
            params,
            decisions: BTreeMap::new(),
            messages: 0,
            max_round: 0,
            signed: BTreeMap::new(),
            repeats: 0,
        }
    }

    fn at(&mut self, time_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((time_ms, self.seq), event);
    }

    fn honest(&self, i: usize) -> bool {
        !self.scenario.equivocators.contains(&i)
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.scenario.partitions.iter().any(|p| {
            self.now_ms >= p.from_ms && self.now_ms < p.heal_ms && (p.side_a.contains(&a) != p.side_a.contains(&b))
        })
    }

    /// Sends over the simulated network: lost, cut by a partition, or delayed with jitter.
    fn send(&mut self, from: usize, to: usize, event: Event) {
        if self.partitioned(from, to) || self.rng.chance(self.scenario.net.loss_permille) {
            return;
        }
        let delay = self.scenario.net.latency_ms + self.rng.below(self.scenario.net.jitter_ms + 1);
        self.messages += 1;
        if let Event::Deliver { to, from, bytes } = &event
            && self.rng.chance(self.scenario.net.duplicate_permille)
        {
            let late = delay + self.rng.range(1, 2000);
            self.at(self.now_ms + late, Event::Deliver { to: *to, from: *from, bytes: bytes.clone() });
        }
        self.at(self.now_ms + delay, event);
    }

    /// Checks that an honest validator never signs two different messages for one step.
    fn check_signed_once(&mut self, from: usize, bytes: &[u8]) {
        let (slot, body) = match ConsensusMessage::decode(bytes).expect("own message decodes") {
            ConsensusMessage::Vote(v) => ((v.vote.height, v.vote.round, v.vote.kind as u8), borsh::to_vec(&v.vote)),
            ConsensusMessage::Proposal(p) => ((p.proposal.height, p.proposal.round, 2), borsh::to_vec(&p.proposal)),
            _ => return,
        };
        let body = body.expect("encodes");
        let seed = self.seed;
        match self.signed.entry((from, slot)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(body);
            }
            std::collections::btree_map::Entry::Occupied(e) => {
                if *e.get() != body {
                    fail(seed, format!("DOUBLE SIGN: honest validator {from} signed two messages for {slot:?}"));
                }
            }
        }
    }

    fn broadcast(&mut self, from: usize, bytes: Vec<u8>) {
        if !self.honest(from) {
            return self.equivocate(from, bytes);
        }
        self.check_signed_once(from, &bytes);
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, Event::Deliver { to, from, bytes: bytes.clone() });
            }
        }
    }

    /// An equivocating validator signs a conflicting twin of each proposal and vote and sends
    /// each peer one of the two at random.
    fn equivocate(&mut self, from: usize, bytes: Vec<u8>) {
        let key = self.nodes[from].key.clone();
        let twin = match ConsensusMessage::decode(&bytes).expect("own message decodes") {
            // Only its own messages: a proposal it relays (from round 10 on) is someone else's.
            ConsensusMessage::Vote(v) if v.vote.validator == key.public() => {
                let mut vote = v.vote.clone();
                vote.block_hash = match vote.block_hash {
                    Some(h) => Some(Hash::of_parts(&[b"evil", &h.0])),
                    None => Some(Hash::of_parts(&[b"evil-nil", &vote.height.to_le_bytes()])),
                };
                Some(ConsensusMessage::Vote(SignedVote::sign(&key, vote)).encode())
            }
            ConsensusMessage::Proposal(p) if p.proposal.proposer == key.public() => {
                let mut proposal = p.proposal.clone();
                proposal.block_hash = Hash::of_parts(&[b"evil", &proposal.block_hash.0]);
                Some(ConsensusMessage::Proposal(SignedProposal::sign(&key, proposal)).encode())
            }
            _ => None,
        };
        for to in 0..self.nodes.len() {
            if to == from {
                continue;
            }
            // Each peer gets the original, the twin, or (sometimes) both.
            let Some(t) = &twin else {
                self.send(from, to, Event::Deliver { to, from, bytes: bytes.clone() });
                continue;
            };
            let roll = self.rng.below(10);
            if roll < 6 {
                self.send(from, to, Event::Deliver { to, from, bytes: bytes.clone() });
            }
            if roll >= 4 {
                self.send(from, to, Event::Deliver { to, from, bytes: t.clone() });
            }
        }
    }

    fn feed(&mut self, i: usize, input: EngineInput) {
        let Some(engine) = self.nodes[i].engine.as_mut() else { return };
        let outputs = engine.handle(input);
        self.apply(i, outputs);
    }

    /// Carries out a validator's outputs in order, as the node would; a crash armed for this
    /// validator happens part-way through them.
    fn apply(&mut self, i: usize, outputs: Vec<EngineOutput>) {
        let mut pending: std::collections::VecDeque<EngineOutput> = outputs.into();
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
                EngineOutput::RoundStarted { round, .. } => self.max_round = self.max_round.max(round),
                EngineOutput::RequestValue { height, round, .. } => {
                    let delay = self.rng.range(1, 20);
                    let incarnation = self.nodes[i].incarnation;
                    self.at(self.now_ms + delay, Event::Build { node: i, incarnation, height, round });
                }
                EngineOutput::NeedBlock { height, block_hash, .. } => {
                    let delay = self.scenario.net.latency_ms + self.rng.below(self.scenario.net.jitter_ms + 1);
                    let incarnation = self.nodes[i].incarnation;
                    self.at(self.now_ms + delay, Event::BlockChecked { node: i, incarnation, height, block_hash });
                }
                EngineOutput::RestreamBlock { .. } => {}
                EngineOutput::Decided { height: h, round: _, block_hash, commit } => {
                    if h == height {
                        self.decide(i, h, block_hash, commit);
                        let outputs = self.nodes[i]
                            .engine
                            .as_mut()
                            .expect("a validator that decides is running")
                            .handle(EngineInput::StartHeight { height: h + 1 });
                        pending.extend(outputs);
                    }
                }
                EngineOutput::Equivocation(e) => {
                    if !self.scenario.equivocators.contains(&self.index_of(e.offender())) {
                        fail(self.seed, format!("validator {i} holds evidence against honest {}", e.offender()));
                    }
                    if self.honest(i) {
                        self.nodes[i].evidence.push(*e);
                    }
                }
                EngineOutput::Rejected { reason } => {
                    fail(self.seed, format!("validator {i} rejected a message: {reason}"));
                }
                EngineOutput::Fault { reason } => {
                    if self.honest(i) {
                        fail(self.seed, format!("validator {i}'s consensus core failed: {reason}"));
                    }
                }
            }
        }
        if self.nodes[i].crash_armed.is_some() {
            self.crash_now(i);
        }
    }

    fn index_of(&self, key: PublicKey) -> usize {
        self.nodes.iter().position(|n| n.key.public() == key).expect("a validator")
    }

    /// Records a finalized block, checking safety and the commit; the WAL of that height is
    /// no longer needed once the block is stored.
    fn decide(&mut self, i: usize, height: u64, block_hash: Hash, commit: Commit) {
        if let Err(e) = commit.verify(self.chain_id, &self.validators) {
            fail(self.seed, format!("validator {i}: the commit of height {height} does not verify: {e}"));
        }
        if commit.height != height || commit.block_hash != block_hash {
            fail(self.seed, format!("validator {i}: the commit is not for block {height}"));
        }
        if self.honest(i) {
            match self.decisions.get(&height) {
                Some(h) if *h != block_hash => {
                    fail(self.seed, format!("SAFETY: two blocks decided at height {height}"));
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

    fn crash_now(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(e) = node.engine.take() {
            node.stats = add(node.stats, e.stats());
        }
        node.crash_armed = None;
        node.timers.clear();
        node.incarnation += 1;
    }

    fn restart(&mut self, i: usize) {
        if self.nodes[i].engine.is_some() {
            return;
        }
        let node = &mut self.nodes[i];
        let mut engine = Engine::new(node.key.clone(), self.chain_id, self.validators.clone(), self.params.clone())
            .expect("validator");
        let height = node.next_height();
        let outputs = match engine.replay(height, &node.wal) {
            Ok(o) => o,
            Err(e) => fail(self.seed, format!("validator {i}: WAL replay failed: {e}")),
        };
        node.engine = Some(engine);
        self.apply(i, outputs);
    }

    /// A validator that sees messages from a later height asks that peer for the blocks it
    /// missed (what the node's block sync does).
    fn maybe_sync(&mut self, i: usize, from: usize, msg_height: u64) {
        let next = self.nodes[i].next_height();
        if msg_height <= next || self.now_ms < self.nodes[i].sync_pending_until_ms {
            return;
        }
        self.nodes[i].sync_pending_until_ms = self.now_ms + 200;
        self.send(i, from, Event::SyncRequest { to: from, from: i, height: next });
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, bytes } => {
                if self.nodes[to].engine.is_none() {
                    return;
                }
                // As the node's gossip validation: decoded once; an exact repeat of what the
                // engine has is passed over; anything else verified once, then handed on.
                let msg = ConsensusMessage::decode(&bytes)
                    .unwrap_or_else(|e| fail(self.seed, format!("validator {to} cannot decode a message: {e}")));
                self.maybe_sync(to, from, msg.height());
                let engine = self.nodes[to].engine.as_ref().expect("running");
                if engine.is_repeat(&msg) {
                    self.repeats += 1;
                    return;
                }
                let verified = engine
                    .verify_message(msg)
                    .unwrap_or_else(|e| fail(self.seed, format!("validator {to} refused a message: {e}")));
                self.feed(to, EngineInput::Verified(verified));
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
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                self.nodes[node].builds += 1;
                let b = self.nodes[node].builds;
                let block_hash = Hash::of_parts(&[
                    b"block",
                    &height.to_le_bytes(),
                    &round.to_le_bytes(),
                    &(node as u64).to_le_bytes(),
                    &b.to_le_bytes(),
                ]);
                self.feed(node, EngineInput::ProposeValue { height, round, block_hash });
            }
            Event::BlockChecked { node, incarnation, height, block_hash } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                self.feed(node, EngineInput::BlockValidity { height, block_hash, valid: true });
            }
            Event::Crash { node } => {
                if self.nodes[node].engine.is_some() {
                    let k = self.rng.below(6) as usize;
                    self.nodes[node].crash_armed = Some(k);
                }
            }
            Event::Restart { node } => {
                // A crash still armed (the validator did nothing since) happens now.
                if self.nodes[node].crash_armed.is_some() {
                    self.crash_now(node);
                }
                self.restart(node);
            }
            Event::SyncRequest { to, from, height } => {
                if self.nodes[to].engine.is_none() {
                    return;
                }
                let decisions: Vec<(u64, Hash, Commit)> =
                    self.nodes[to].decided.range(height..).take(32).map(|(h, (b, c))| (*h, *b, c.clone())).collect();
                if !decisions.is_empty() {
                    self.send(to, from, Event::SyncResponse { to: from, decisions });
                }
            }
            Event::SyncResponse { to, decisions } => {
                if self.nodes[to].engine.is_none() {
                    return;
                }
                let mut advanced = false;
                for (h, block_hash, commit) in decisions {
                    if h != self.nodes[to].next_height() {
                        continue;
                    }
                    self.decide(to, h, block_hash, commit);
                    advanced = true;
                }
                if advanced {
                    let height = self.nodes[to].next_height();
                    self.nodes[to].sync_pending_until_ms = 0;
                    self.feed(to, EngineInput::StartHeight { height });
                }
            }
        }
    }

    /// Runs the scenario to the end; panics (with the seed) on any violation.
    pub fn run(mut self) -> Report {
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        for c in self.scenario.crashes.clone() {
            self.at(c.at_ms, Event::Crash { node: c.node });
            self.at(c.restart_ms, Event::Restart { node: c.node });
        }
        let faults_over = self.scenario.faults_over_ms();
        let deadline = faults_over + self.scenario.liveness_window_ms;
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.honest(i)).collect();
        let target = self.scenario.target_height;
        loop {
            let done = self.now_ms >= faults_over && honest.iter().all(|&i| self.nodes[i].next_height() > target);
            if done {
                break;
            }
            let Some(((time, _), event)) = self.queue.pop_first() else {
                fail(self.seed, "nothing left to do before every honest validator decided".into());
            };
            if time > deadline {
                let heights: Vec<u64> = honest.iter().map(|&i| self.nodes[i].next_height() - 1).collect();
                fail(
                    self.seed,
                    format!("LIVENESS: honest validators at heights {heights:?}, not {target}, {deadline} ms in"),
                );
            }
            self.now_ms = time;
            self.step(event);
        }
        // Every honest validator holds the same chain.
        for &i in &honest {
            for (h, (b, _)) in &self.nodes[i].decided {
                if self.decisions.get(h) != Some(b) {
                    fail(self.seed, format!("validator {i} holds another block at height {h}"));
                }
            }
        }
        let mut evidence = Vec::new();
        for &i in &honest {
            evidence.extend(self.nodes[i].evidence.iter().cloned());
        }
        let mut stats = EngineStats::default();
        for n in &self.nodes {
            stats = add(stats, n.stats);
            if let Some(e) = &n.engine {
                stats = add(stats, e.stats());
            }
        }
        Report {
            decided_heights: self.decisions.len() as u64,
            evidence,
            max_round: self.max_round,
            messages: self.messages,
            stats,
            repeats: self.repeats,
        }
    }
}

fn add(a: EngineStats, b: EngineStats) -> EngineStats {
    EngineStats {
        signatures_verified: a.signatures_verified + b.signatures_verified,
        messages_to_core: a.messages_to_core + b.messages_to_core,
        duplicates_dropped: a.duplicates_dropped + b.duplicates_dropped,
    }
}

/// The seeds to run: `CAIRN_SIM_SEED=<n>` replays one, `CAIRN_SIM_SEEDS=<count>` runs more.
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("CAIRN_SIM_SEED") {
        return vec![s.trim().parse().expect("CAIRN_SIM_SEED is a number")];
    }
    let count = std::env::var("CAIRN_SIM_SEEDS")
        .ok()
        .map(|s| s.trim().parse().expect("CAIRN_SIM_SEEDS is a number"))
        .unwrap_or(default_count);
    (0..count).collect()
}

/// Runs `scenario` under every seed, naming the seed of a failure.
pub fn run_seeds(name: &str, default_count: u64, scenario: impl Fn(&mut Rng) -> Scenario) -> Vec<Report> {
    let mut reports = Vec::new();
    let seeds = seeds(default_count);
    let started = std::time::Instant::now();
    for seed in &seeds {
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let sc = scenario(&mut rng);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Sim::new(sc, *seed).run()));
        match result {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("{name}: seed {seed} failed; replay with CAIRN_SIM_SEED={seed} cargo test --test sim {name}");
                std::panic::resume_unwind(e);
            }
        }
    }
    let max_round = reports.iter().map(|r| r.max_round).max().unwrap_or(0);
    let messages: u64 = reports.iter().map(|r| r.messages).sum();
    let stats = reports.iter().fold(EngineStats::default(), |a, r| add(a, r.stats));
    let repeats: u64 = reports.iter().map(|r| r.repeats).sum();
    eprintln!(
        "{name}: {} seeds passed in {:.1} s (max round {max_round}, {messages} messages sent, {} signatures \
         verified, {} messages to the core, {} repeats passed over, {} dropped by the engine)",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        stats.signatures_verified,
        stats.messages_to_core,
        repeats,
        stats.duplicates_dropped,
    );
    reports
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
