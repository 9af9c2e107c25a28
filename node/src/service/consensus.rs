//! The consensus driver: feeds the engine ([`crate::bft`], sans-IO) and carries out what it
//! returns — the write-ahead log, gossip, timers, building the block this validator proposes
//! and checking the blocks others propose (both on the executor), and committing the block
//! decided. Every validator runs it, a lone one too (it decides at once).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_consensus::{EngineInput, EngineOutput};
use cairn_ledger::{Block, Commit, Hash, Transaction};
use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;

use super::Node;
use super::executor::{Built, Job};
use super::gossip::{Refused, Topic, proposed_block};
use super::reexec::VerdictLookup;
use crate::bft::{BLOCK_FETCH_RETRY, Bft, GossipVerdict, Step};
use crate::chain::{ExecError, ExecutedBlock};
use crate::metrics;
use crate::p2p::{ProposedBlock, WIRE_VERSION};

/// A validator's consensus: the engine's state, the block being built for a proposal, and
/// the proposals being checked.
pub struct Consensus {
    bft: Bft,
    /// The height and round a block is being built for.
    building: Option<(u64, u32)>,
    /// Proposed blocks being checked.
    checking: HashSet<(u64, Hash)>,
}

impl Consensus {
    /// Over an engine that has not started a height.
    pub fn new(bft: Bft) -> Consensus {
        Consensus { bft, building: None, checking: HashSet::new() }
    }

    /// The earliest time the loop must wake for consensus: a timer, or the next height's start.
    pub fn next_deadline(&self, block_time: Duration) -> Option<Instant> {
        let timer = self.bft.next_deadline();
        let start = self.bft.start_due_at(block_time);
        match (timer, start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers that are due.
    pub fn fire_due(&mut self, now: Instant) {
        self.bft.fire_due(now);
    }
}

impl Node {
    /// Loads the engine: replays the write-ahead log of the next height if there is one (a
    /// restart mid-height), or waits to start the next height.
    pub(super) fn start_consensus(&mut self) -> anyhow::Result<()> {
        let head = self.chain.height();
        let store = self.chain.store.clone();
        let block_time = self.block_time();
        let Some(c) = self.consensus.as_mut() else { return Ok(()) };
        store.wal_prune_below(head + 1).context("pruning the consensus log")?;
        let entries = store.wal_entries(head + 1).context("reading the consensus log")?;
        c.bft.head_moved(head);
        if entries.is_empty() {
            // Due at once if there is work: no block time to wait for after a restart.
            c.bft.started_at = Instant::now() - block_time;
            return Ok(());
        }
        tracing::info!(height = head + 1, entries = entries.len(), "replaying the consensus log");
        let outputs = match c.bft.engine.replay(head + 1, &entries) {
            Ok(outputs) => outputs,
            // What it signed at that height is unknown: voting there again could contradict
            // it. Others can finalize the height without this validator; a lone one cannot.
            Err(e) if self.chain.validators.validators().len() > 1 => {
                tracing::error!(
                    height = head + 1,
                    "the consensus log of height {} is corrupt ({e}): this validator does not vote at that height \
                     (it cannot know what it signed there) and votes again from the next, once the others finalize it",
                    head + 1
                );
                c.bft.sit_out = Some(head + 1);
                return Ok(());
            }
            Err(e) => {
                return Err(anyhow::anyhow!(e)).context(format!(
                    "the consensus log of height {} is corrupt, and as the only validator this node cannot leave that \
                     height to others: restore its data folder from a backup",
                    head + 1
                ));
            }
        };
        c.bft.next_height = None;
        c.bft.wal_height = head + 1;
        c.bft.wal_seq = entries.len() as u64;
        self.carry_out(head + 1, outputs)?;
        self.pump_consensus()
    }

    /// Starts the next height when due, then feeds the engine every queued input and carries
    /// out what it returns.
    pub(super) fn pump_consensus(&mut self) -> anyhow::Result<()> {
        if self.consensus.is_none() {
            return Ok(());
        }
        let head = self.chain.height();
        let block_time = self.block_time();
        let empty_blocks = self.config.empty_blocks;
        // Whether there is work is asked only when it decides (it looks through the mempool):
        // not on every turn of the loop.
        let due = match &self.consensus {
            Some(c) if !self.storing_block() => c.bft.due_to_start(head, block_time, empty_blocks, || self.has_work()),
            _ => None,
        };
        if let Some(height) = due
            && let Some(c) = self.consensus.as_mut()
        {
            c.bft.next_height = None;
            c.bft.started_at = Instant::now();
            c.bft.start_height(height);
        }
        loop {
            let Some(c) = self.consensus.as_mut() else { return Ok(()) };
            let Some(input) = c.bft.inputs.pop_front() else {
                metrics::set(&self.metrics.consensus_height, c.bft.engine.height());
                metrics::set(&self.metrics.consensus_round, c.bft.engine.round().map_or(0, u64::from));
                return Ok(());
            };
            let outputs = c.bft.engine.handle(input);
            let height = c.bft.engine.height();
            self.carry_out(height, outputs)?;
        }
    }

    /// Carries out the engine's outputs in order. Inputs they lead to are queued, not fed
    /// here, so that every output of one call is done before the next call.
    ///
    /// The consensus log's entries are written before anything after them is acted on
    /// beyond this process's memory ([`crate::bft::needs_durable_log`]): then in one synced
    /// write, so that a restart never signs twice. Entries that nothing such follows — most
    /// are the votes of others, logged as they arrive — are written at the end without waiting
    /// for the disk: the next synced write makes them durable with it, and were they lost in a
    /// crash before that, so would be everything that followed them (nothing left the node).
    fn carry_out(&mut self, height: u64, outputs: Vec<EngineOutput>) -> anyhow::Result<()> {
        let mut unwritten: Vec<Vec<u8>> = Vec::new();
        for step in crate::bft::steps(outputs) {
            let output = match step {
                Step::WalWrite(entries) => {
                    unwritten.extend(entries);
                    continue;
                }
                Step::Output(output) => output,
            };
            if crate::bft::needs_durable_log(&output) {
                self.wal_write(height, &mut unwritten, true)?;
            }
            match output {
                EngineOutput::WalAppend(bytes) => unwritten.push(bytes),
                EngineOutput::Publish(bytes) => {
                    let conflicting = self.faults.conflicting_vote(&bytes, &self.key);
                    self.net.publish(Topic::Consensus, bytes);
                    if let Some(second) = conflicting {
                        self.net.publish(Topic::Consensus, second);
                    }
                }
                EngineOutput::ScheduleTimeout { height, round, kind, duration_ms } => {
                    self.bft_mut()?.schedule((height, round, kind), Duration::from_millis(duration_ms));
                }
                EngineOutput::CancelTimeout { height, round, kind } => self.bft_mut()?.cancel(&(height, round, kind)),
                EngineOutput::CancelAllTimeouts => self.bft_mut()?.cancel_all(),
                EngineOutput::RoundStarted { height, round, proposer } => {
                    if round > 0 {
                        tracing::info!(height, round, %proposer, "consensus round started");
                    } else {
                        tracing::debug!(height, round, %proposer, "consensus round started");
                    }
                }
                EngineOutput::RequestValue { height, round, .. } => self.request_build(height, round)?,
                EngineOutput::NeedBlock { height, round, block_hash, proposer } => {
                    self.bft_mut()?.need(height, round, block_hash, proposer);
                    self.check_needed_blocks()?;
                }
                EngineOutput::RestreamBlock { height, block_hash, .. } => {
                    if let Some(block) = self.proposed_block(height, &block_hash) {
                        let msg = ProposedBlock { version: WIRE_VERSION, block };
                        self.net.publish(Topic::Proposals, borsh::to_vec(&msg).expect("encodes"));
                    }
                }
                EngineOutput::Decided { height, round, block_hash, commit } => {
                    self.on_decided(height, round, block_hash, commit)?;
                }
                EngineOutput::Equivocation(evidence) => {
                    tracing::warn!(
                        offender = %evidence.offender(),
                        height = evidence.height(),
                        "equivocation: a validator signed two different messages for one step; evidence kept"
                    );
                    let bytes = borsh::to_vec(&*evidence).expect("encodes");
                    self.chain.store.put_evidence(evidence.height(), &bytes).context("storing evidence")?;
                }
                EngineOutput::Rejected { reason } => tracing::debug!("consensus message refused: {reason}"),
                EngineOutput::Fault { reason } => tracing::error!("consensus engine fault: {reason}"),
            }
        }
        self.wal_write(height, &mut unwritten, false)
    }

    fn bft_mut(&mut self) -> anyhow::Result<&mut Bft> {
        self.consensus.as_mut().map(|c| &mut c.bft).context("consensus output on a node that does not validate")
    }

    /// Appends consecutive consensus log entries of `height` in one write (and takes them
    /// from `entries`); `synced`: durable before it returns, with every entry written before
    /// (a sync of the log alone when there is nothing new but earlier writes were not synced).
    fn wal_write(&mut self, height: u64, entries: &mut Vec<Vec<u8>>, synced: bool) -> anyhow::Result<()> {
        if entries.is_empty() {
            if synced && self.bft_mut()?.wal_unsynced {
                self.chain.store.sync_wal().context("syncing the consensus log")?;
                self.bft_mut()?.wal_unsynced = false;
            }
            return Ok(());
        }
        let store = self.chain.store.clone();
        let bft = self.bft_mut()?;
        if bft.wal_height != height {
            bft.wal_height = height;
            bft.wal_seq = store.wal_entries(height).context("reading the consensus log")?.len() as u64;
        }
        store.wal_append_batch(height, bft.wal_seq, entries, synced).context("writing the consensus log")?;
        bft.wal_seq += entries.len() as u64;
        bft.wal_unsynced = !synced;
        self.faults.after_wal_write(&self.config, height, entries, &self.key.public());
        entries.clear();
        Ok(())
    }

    /// This validator proposes at `height`, `round`: the executor builds a block on the head
    /// from the mempool ([`Node::on_built`] proposes it).
    fn request_build(&mut self, height: u64, round: u32) -> anyhow::Result<()> {
        if self.chain.height() + 1 != height || self.storing_block() {
            tracing::debug!(height, "asked to propose at a height this node is not at yet");
            return Ok(());
        }
        let candidates = self.block_candidates();
        let verdicts = VerdictLookup::for_block(self.reexec.verdicts(), &candidates);
        let job = Job::Build {
            base: self.chain.base(),
            round,
            proposer: self.key.public(),
            candidates,
            time_ms: super::now_ms(),
            verdicts,
        };
        self.executor.submit(job)?;
        if let Some(c) = self.consensus.as_mut() {
            c.building = Some((height, round));
        }
        Ok(())
    }

    /// The executor built the block to propose: keep its execution, gossip it, and hand its
    /// hash to the engine.
    pub(super) fn on_built(
        &mut self,
        height: u64,
        round: u32,
        result: Result<Built, ExecError>,
        missing: Vec<Hash>,
        took: Duration,
    ) -> anyhow::Result<()> {
        if let Some(c) = self.consensus.as_mut()
            && c.building == Some((height, round))
        {
            c.building = None;
        }
        self.want_verdicts(&missing);
        let (executed, rejected) = match result {
            Ok(built) => built,
            Err(ExecError::Fault(e)) => return Err(e.context("building a block")),
            Err(e) => {
                tracing::error!(height, round, "cannot build a block to propose: {e}");
                return Ok(());
            }
        };
        self.sizer.observe_build(executed.block.txs.len(), took);
        for (tx, e) in &rejected {
            tracing::debug!(tx = %tx.hash(), "left out of the block: {e}");
        }
        let dropped = self.mempool.remove_rejected(&rejected);
        self.admission.set_pending(self.mempool.txs_len());
        self.report_dropped(&dropped);
        if self.chain.height() + 1 != height {
            return Ok(());
        }
        let block_hash = executed.hash;
        tracing::debug!(height, round, %block_hash, txs = executed.block.txs.len(), "proposing");
        self.executed.insert(height, block_hash);
        self.net.publish(Topic::Proposals, super::gossip::proposal_message(&executed.block));
        let bft = self.bft_mut()?;
        bft.keep_block(executed.block.clone());
        bft.push(EngineInput::ProposeValue { height, round, block_hash });
        Ok(())
    }

    /// A proposed block seen here (in memory only: cheap enough to answer on the loop).
    pub(super) fn proposed_in_memory(&self, height: u64, block_hash: &Hash) -> Option<&Block> {
        self.consensus.as_ref().and_then(|c| c.bft.block(height, block_hash))
    }

    /// A proposed block seen here or kept on disk.
    pub(super) fn proposed_block(&self, height: u64, block_hash: &Hash) -> Option<Block> {
        if let Some(b) = self.consensus.as_ref().and_then(|c| c.bft.block(height, block_hash)) {
            return Some(b.clone());
        }
        match self.chain.store.proposed(height, block_hash) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(height, %block_hash, "cannot read a proposed block: {e}");
                None
            }
        }
    }

    /// Checks the blocks the engine waits for that extend the head: those executed here
    /// already are valid at once; the others go to the executor; those not here are asked
    /// for from peers.
    pub(super) fn check_needed_blocks(&mut self) -> anyhow::Result<()> {
        let head = self.chain.height();
        if self.storing_block() {
            // The head is about to move; checks wait for it.
            return Ok(());
        }
        let Some(c) = self.consensus.as_ref() else { return Ok(()) };
        let wanted: Vec<((u64, Hash), crate::bft::Needed)> =
            c.bft.needed.iter().filter(|((h, _), _)| *h == head + 1).map(|(k, v)| (*k, v.clone())).collect();
        for ((height, block_hash), needed) in wanted {
            if self.consensus.as_ref().is_some_and(|c| c.checking.contains(&(height, block_hash))) {
                continue;
            }
            if self.executed.contains(height, &block_hash) {
                self.block_validity(height, block_hash, true)?;
                continue;
            }
            match self.proposed_block(height, &block_hash) {
                // Built by the proposer of the proposal's round or of an earlier one: a locked
                // block re-proposed in a later round names the proposer that built it.
                Some(block)
                    if block.header.proposer != needed.proposer
                        && !built_in_an_earlier_round(&self.chain.validators, &block, needed.round) =>
                {
                    tracing::warn!(
                        height,
                        %block_hash,
                        "proposed block is invalid: no round up to the proposal's has its builder as proposer"
                    );
                    self.block_validity(height, block_hash, false)?;
                }
                Some(block) => {
                    let verdicts = VerdictLookup::for_block(self.reexec.verdicts(), &block.txs);
                    self.executor.submit(Job::Check { base: self.chain.base(), block, verdicts })?;
                    if let Some(c) = self.consensus.as_mut() {
                        c.checking.insert((height, block_hash));
                    }
                }
                None => {
                    if needed.fetched.is_some_and(|t| t.elapsed() < BLOCK_FETCH_RETRY) {
                        continue;
                    }
                    self.request_proposed(height, block_hash);
                    if let Some(n) = self.bft_mut()?.needed.get_mut(&(height, block_hash)) {
                        n.fetched = Some(Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    fn block_validity(&mut self, height: u64, block_hash: Hash, valid: bool) -> anyhow::Result<()> {
        let bft = self.bft_mut()?;
        bft.needed.remove(&(height, block_hash));
        bft.push(EngineInput::BlockValidity { height, block_hash, valid });
        Ok(())
    }

    /// The executor checked a proposed block.
    pub(super) fn on_checked(
        &mut self,
        height: u64,
        block_hash: Hash,
        result: Result<Arc<ExecutedBlock>, ExecError>,
        took: Duration,
    ) -> anyhow::Result<()> {
        if let Some(c) = self.consensus.as_mut() {
            c.checking.remove(&(height, block_hash));
        }
        if height != self.chain.height() + 1 {
            return Ok(());
        }
        match result {
            Ok(executed) => {
                self.sizer.observe_build(executed.block.txs.len(), took);
                self.executed.insert(height, block_hash);
                self.block_validity(height, block_hash, true)
            }
            Err(ExecError::Pending(missing)) => {
                // Not invalid: it needs re-executions this node has not run yet. No vote until
                // they are in (the check runs again when they are).
                tracing::info!(height, %block_hash, jobs = missing.len(), "proposed block waits for re-executions");
                self.want_verdicts(&missing);
                Ok(())
            }
            Err(ExecError::Invalid(why)) => {
                tracing::warn!(height, %block_hash, "proposed block is invalid: {why}");
                self.block_validity(height, block_hash, false)
            }
            Err(ExecError::Fault(e)) => Err(e.context("checking a proposed block")),
        }
    }

    /// The engine decided: the block is committed (its execution here, if any, written; if
    /// none, executed and written), then told to the network by the proposer of the round that
    /// decided it alone. Every validator announcing it sent each node up to one copy per
    /// validator, each a whole block to receive, decode and check (a provider accepted and
    /// forwarded two a height); one is enough for the nodes that follow the chain by gossip.
    /// That round's proposer, not the block's builder: a block re-proposed in a later round was
    /// built by a proposer that may be why the round changed. If it stops before it announces,
    /// the others learn the block from the next one announced, which is ahead of their head by
    /// two: they sync the one they missed (`sync.rs`).
    fn on_decided(&mut self, height: u64, round: u32, block_hash: Hash, commit: Commit) -> anyhow::Result<()> {
        if height <= self.chain.height() {
            return self.consensus_head_moved();
        }
        let Some(block) = self.proposed_block(height, &block_hash) else {
            tracing::warn!(height, %block_hash, "decided a block this node does not have; syncing");
            self.sync_from_any_peer();
            return Ok(());
        };
        tracing::debug!(height, round, signatures = commit.signatures.len(), "decided");
        self.metrics.consensus_rounds_per_height.observe(f64::from(round) + 1.0);
        let announce = cairn_consensus::proposer(&self.chain.validators, height, round) == self.key.public();
        self.on_finalized_block(block, commit, announce)?;
        Ok(())
    }

    /// The head moved (a decision, a gossiped block or sync): drop the consensus log below
    /// it and wait to start the next height.
    pub(super) fn consensus_head_moved(&mut self) -> anyhow::Result<()> {
        let head = self.chain.height();
        let store = self.chain.store.clone();
        let Some(c) = self.consensus.as_mut() else { return Ok(()) };
        store.wal_prune_below(head + 1).context("pruning the consensus log")?;
        c.bft.head_moved(head);
        c.checking.retain(|(h, _)| *h > head);
        self.check_needed_blocks()
    }

    /// A consensus message (its bytes, without the send number) that `source` sent this node.
    pub(super) fn on_consensus_gossip(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let head = self.chain.height();
        let Some(c) = self.consensus.as_mut() else { return MessageAcceptance::Ignore };
        // Decoded and verified once, here (cheap checks first); the engine gets the result.
        let verdict = c.bft.check_gossip(head, data);
        if let GossipVerdict::Ahead { height } = verdict {
            // Too far ahead to feed: fetch the finalized blocks this node missed, so that it
            // can take part again (it may be needed for a quorum).
            tracing::debug!(%source, height, head, "consensus message far ahead: syncing");
            self.request_sync(source);
            return MessageAcceptance::Ignore;
        }
        let Some(c) = self.consensus.as_mut() else { return MessageAcceptance::Ignore };
        let (height, msg) = match verdict {
            GossipVerdict::Accept(m) => {
                c.bft.verified(&m, data);
                (m.height(), Some(m))
            }
            // Valid (the same bytes as one verified before): not fed again, and passed on at
            // most once a `REPEAT_RELAY_INTERVAL` (a validator's rebroadcast, for peers that
            // missed the first one).
            GossipVerdict::Repeat { height } => {
                if !c.bft.relay_repeat(data, height, Instant::now()) {
                    return MessageAcceptance::Ignore;
                }
                (height, None)
            }
            GossipVerdict::Ignore | GossipVerdict::Ahead { .. } => return MessageAcceptance::Ignore,
            GossipVerdict::Reject(e) => {
                tracing::debug!(%source, "invalid consensus message: {e}");
                return MessageAcceptance::Reject;
            }
        };
        if c.bft.next_height.is_some_and(|h| height >= h) {
            c.bft.peers_started = true;
        }
        if let Some(msg) = msg {
            c.bft.push(EngineInput::Verified(msg));
        }
        if height > head + 1 {
            // Others are deciding later heights: fetch the finalized blocks this node missed.
            self.request_sync(source);
        }
        MessageAcceptance::Accept
    }

    /// A proposed block gossiped. The message is not signed: only a verified proposal naming
    /// the block vouches for it. Named already: kept and passed on. Not yet (it came first,
    /// or it is made up): kept aside, bounded, and not passed on; the proposal, when it comes,
    /// finds it.
    pub(super) fn on_proposed_gossip(&mut self, data: &[u8]) -> anyhow::Result<MessageAcceptance> {
        let head = self.chain.height();
        let Some(c) = self.consensus.as_mut() else { return Ok(MessageAcceptance::Ignore) };
        let msg = match proposed_block(data, self.chain.chain_id, c.bft.engine.validators(), head) {
            Ok(msg) => msg,
            Err(r @ (Refused::Reject | Refused::Ignore)) => return Ok(r.into()),
        };
        let h = &msg.block.header;
        if c.bft.needed.contains_key(&(h.height, msg.block.hash())) {
            c.bft.keep_block(msg.block);
            self.check_needed_blocks()?;
            return Ok(MessageAcceptance::Accept);
        }
        let size = crate::bft::unconfirmed_bytes(&msg.block, data.len());
        c.bft.keep_unconfirmed(msg.block, size);
        Ok(MessageAcceptance::Ignore)
    }

    /// A proposed block asked from a peer arrived.
    pub(super) fn proposed_arrived(&mut self, block: Block) -> anyhow::Result<()> {
        let Some(c) = self.consensus.as_mut() else { return Ok(()) };
        c.bft.keep_block(block);
        self.check_needed_blocks()
    }

    /// What the next block takes, in order: the resolutions this node has the verdicts for
    /// (they settle jobs), then the mempool's includable transactions and results.
    /// At most the block sizer's cap of them, so that a height takes about the block time.
    fn block_candidates(&mut self) -> Vec<Transaction> {
        let cap = self.sizer.cap();
        let mut candidates = self.ready_resolutions();
        let room = cap.saturating_sub(candidates.len());
        candidates.extend(self.mempool.candidates_up_to(self.chain.state(), room));
        candidates.truncate(cap);
        candidates
    }

    /// `Resolve` transactions for the jobs awaiting a re-execution whose verdict is here (at
    /// most what a block may take); the others are asked for.
    fn ready_resolutions(&mut self) -> Vec<Transaction> {
        let awaiting: Vec<Hash> =
            self.chain.state().awaiting_resolution().take(crate::verdicts::VERDICT_REQUESTS_MAX).copied().collect();
        let (ready, waiting): (Vec<Hash>, Vec<Hash>) =
            awaiting.into_iter().partition(|job_id| self.reexec.verdicts().get(job_id).is_some());
        self.want_verdicts(&waiting);
        ready
            .into_iter()
            .take(cairn_contracts::REEXECUTIONS_PER_BLOCK_MAX)
            .map(|job_id| Transaction::Resolve { job_id })
            .collect()
    }

    /// Whether the next block has something to do: a transaction or result to include, a
    /// resolution ready, or open jobs whose delivery and deadline clocks must keep running.
    /// Transactions behind a nonce gap and resolutions whose re-execution has not run do not
    /// count: they cannot go into a block yet.
    fn has_work(&self) -> bool {
        let state = self.chain.state();
        state.has_pending_work()
            || self.mempool.has_includable(state)
            || state
                .awaiting_resolution()
                .take(crate::verdicts::VERDICT_REQUESTS_MAX)
                .any(|job_id| self.reexec.verdicts().get(job_id).is_some())
    }
}

/// Whether `block`'s builder (its header's proposer) is the proposer of some round before
/// `round` at its height: a block locked in an earlier round and re-proposed names the
/// validator that built it, not the re-proposer.
fn built_in_an_earlier_round(validators: &cairn_ledger::ValidatorSet, block: &Block, round: u32) -> bool {
    let height = block.header.height;
    (0..round).any(|r| cairn_consensus::proposer(validators, height, r) == block.header.proposer)
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{BlockHeader, FORMAT_VERSION, Keypair, Validator, ValidatorSet};

    use super::*;

    /// A block locked in round 0 and re-proposed in round 2 names round 0's proposer: it is
    /// not refused for that; a builder that proposes in no round up to the proposal's is.
    #[test]
    fn a_re_proposed_block_names_the_proposer_that_built_it() {
        let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
        let set =
            ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect()).expect("set");
        let height = 7;
        let block = |proposer| Block {
            header: BlockHeader {
                version: FORMAT_VERSION,
                chain_id: Hash::ZERO,
                height,
                parent_hash: Hash::ZERO,
                time_ms: 0,
                proposer,
                tx_root: Hash::ZERO,
                receipt_root: Hash::ZERO,
                state_root: Hash::ZERO,
                last_commit_hash: Hash::ZERO,
                tx_count: 0,
                receipt_count: 0,
            },
            txs: vec![],
            last_commit: None,
        };
        let round0 = cairn_consensus::proposer(&set, height, 0);
        assert!(built_in_an_earlier_round(&set, &block(round0), 2), "built in round 0, re-proposed in round 2");
        assert!(!built_in_an_earlier_round(&set, &block(round0), 0), "round 0 has no earlier round");
        let later: Vec<_> = (0..3).map(|r| cairn_consensus::proposer(&set, height, r)).collect();
        if let Some(stranger) = keys.iter().map(Keypair::public).find(|k| !later.contains(k)) {
            assert!(!built_in_an_earlier_round(&set, &block(stranger), 3), "proposes in no round up to 2");
        }
    }
}
