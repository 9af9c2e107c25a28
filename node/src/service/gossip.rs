//! Gossip: the swarm and its topics ([`Net`]), the validation of each topic's messages —
//! pure functions from bytes to a typed message or a verdict on the sender — and what the
//! node does with what they let in.
//!
//! Signatures of offers, account transactions and results are verified off the loop, on the
//! verifying threads ([`crate::service::view::Verifier`]): a batch waits there and its
//! gossip verdict (accept, ignore, reject) is reported when it comes back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use borsh::BorshDeserialize;
use cairn_contracts::{Limit, TxError};
use cairn_ledger::{Block, BlockHeader, Commit, Hash, JobResult, Transaction};
use libp2p::gossipsub::{self, MessageAcceptance, MessageId, TopicHash};
use libp2p::{PeerId, Swarm};

use super::{Arrival, Event, Node};
use crate::mempool::nonce_key;
use crate::p2p::{
    self, BATCH_ITEMS_MAX, BATCH_MESSAGE_BYTES_MAX, Behaviour, BlockMsg, GOSSIP_MESSAGE_BYTES_MAX,
    MODULE_ANNOUNCE_BYTES_MAX, ModuleAnnounce, ProposedBlock, ResultBatch, Topics, TxBatch, WIRE_VERSION,
};

/// A finalized block's gossip message: the bytes of [`BlockMsg`] (this wire version), written
/// from borrowed parts so that the block, megabytes at most, is not copied to be sent.
pub fn block_message(block: &Block, commit: &Commit) -> Vec<u8> {
    borsh::to_vec(&(WIRE_VERSION, block, commit)).expect("a block and a commit encode")
}

/// A proposed block's gossip message: the bytes of [`ProposedBlock`], from the borrowed block.
pub fn proposal_message(block: &Block) -> Vec<u8> {
    borsh::to_vec(&(WIRE_VERSION, block)).expect("a block encodes")
}

/// The chain's gossip topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Offers and account transactions ([`TxBatch`]).
    Txs,
    /// Providers' results ([`ResultBatch`]).
    Results,
    /// Finalized blocks with their commits ([`BlockMsg`]).
    Blocks,
    /// Modules uploaded to a node ([`ModuleAnnounce`]).
    Modules,
    /// Consensus messages (validators).
    Consensus,
    /// Proposed blocks (validators: [`ProposedBlock`]).
    Proposals,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 6] =
        [Topic::Txs, Topic::Results, Topic::Blocks, Topic::Modules, Topic::Consensus, Topic::Proposals];

    /// Its short name (the last part of its topic name, and its metrics label).
    pub fn label(self) -> &'static str {
        match self {
            Topic::Txs => "txs",
            Topic::Results => "results",
            Topic::Blocks => "blocks",
            Topic::Modules => "modules",
            Topic::Consensus => "consensus",
            Topic::Proposals => "proposals",
        }
    }
}

/// What the sender of a message that does not pass validation is to blame for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Malformed or invalid: the sender is penalised ([`MessageAcceptance::Reject`]).
    Reject,
    /// Not for now (stale, ahead, unknown): dropped, not relayed, nobody penalised.
    Ignore,
}

impl From<Refused> for MessageAcceptance {
    fn from(r: Refused) -> MessageAcceptance {
        match r {
            Refused::Reject => MessageAcceptance::Reject,
            Refused::Ignore => MessageAcceptance::Ignore,
        }
    }
}

/// A batch of offers and account transactions: decodable, this wire version, within the
/// item bound.
pub fn tx_batch(data: &[u8]) -> Result<TxBatch, Refused> {
    let batch = cairn_ledger::decode::<TxBatch>("transaction batch", data, BATCH_MESSAGE_BYTES_MAX)
        .map_err(|_| Refused::Reject)?;
    if batch.version != WIRE_VERSION || batch.txs.len() > BATCH_ITEMS_MAX {
        return Err(Refused::Reject);
    }
    // Only offers and account transactions travel here.
    if batch.txs.iter().any(|tx| nonce_key(tx).is_none()) {
        return Err(Refused::Reject);
    }
    Ok(batch)
}

/// A batch of results: decodable, this wire version, within the item bound.
pub fn result_batch(data: &[u8]) -> Result<ResultBatch, Refused> {
    let batch = cairn_ledger::decode::<ResultBatch>("result batch", data, BATCH_MESSAGE_BYTES_MAX)
        .map_err(|_| Refused::Reject)?;
    if batch.version != WIRE_VERSION || batch.results.len() > BATCH_ITEMS_MAX {
        return Err(Refused::Reject);
    }
    Ok(batch)
}

/// The wire version and the block header at the front of a block message (a [`BlockMsg`] or a
/// [`ProposedBlock`] starts with them), read without decoding the block's transactions: a
/// message judged on its header alone costs no more than the header.
fn block_head(data: &[u8]) -> Result<(u8, BlockHeader), Refused> {
    if data.len() > GOSSIP_MESSAGE_BYTES_MAX {
        return Err(Refused::Reject);
    }
    let mut rest = data;
    let version = u8::deserialize(&mut rest).map_err(|_| Refused::Reject)?;
    let header = BlockHeader::deserialize(&mut rest).map_err(|_| Refused::Reject)?;
    Ok((version, header))
}

/// A finalized block: decodable, this wire version, its commit for this very block, and the
/// commit's signatures more than 2/3 of `validators`' power. A block at or below `head` is
/// ignored on its header, before the rest is decoded and its signatures checked: nothing to
/// apply, and old blocks (anyone can replay them) cost no decoding or verification.
pub fn finalized_block(
    data: &[u8],
    chain_id: Hash,
    validators: &cairn_ledger::ValidatorSet,
    head: u64,
) -> Result<BlockMsg, Refused> {
    let (version, header) = block_head(data)?;
    if version != WIRE_VERSION {
        return Err(Refused::Reject);
    }
    if header.height <= head {
        return Err(Refused::Ignore);
    }
    let msg = cairn_ledger::decode::<BlockMsg>("block", data, GOSSIP_MESSAGE_BYTES_MAX).map_err(|_| Refused::Reject)?;
    if msg.commit.block_hash != msg.block.hash()
        || msg.commit.height != msg.block.header.height
        || msg.commit.verify(chain_id, validators).is_err()
        // The commit signs the header: the transactions must be the ones it names.
        || msg.block.check_structure().is_err()
    {
        return Err(Refused::Reject);
    }
    Ok(msg)
}

/// A module announcement: decodable, this wire version.
pub fn module_announce(data: &[u8]) -> Result<ModuleAnnounce, Refused> {
    let msg = cairn_ledger::decode::<ModuleAnnounce>("module announcement", data, MODULE_ANNOUNCE_BYTES_MAX)
        .map_err(|_| Refused::Reject)?;
    if msg.version != WIRE_VERSION {
        return Err(Refused::Reject);
    }
    Ok(msg)
}

/// A proposed block: decodable, this wire version, of this chain, by one of `validators`, for
/// a height the engine looks at (after `head`, at most `HEIGHTS_AHEAD_MAX` ahead). The header
/// is judged before the transactions are decoded.
pub fn proposed_block(
    data: &[u8],
    chain_id: Hash,
    validators: &cairn_ledger::ValidatorSet,
    head: u64,
) -> Result<ProposedBlock, Refused> {
    let (version, h) = block_head(data)?;
    if version != WIRE_VERSION || h.chain_id != chain_id || validators.power_of(&h.proposer).is_none() {
        return Err(Refused::Reject);
    }
    if h.height <= head || h.height > head + 1 + cairn_consensus::HEIGHTS_AHEAD_MAX {
        return Err(Refused::Ignore);
    }
    let msg = cairn_ledger::decode::<ProposedBlock>("proposed block", data, GOSSIP_MESSAGE_BYTES_MAX)
        .map_err(|_| Refused::Reject)?;
    // A proposal signs the header's hash: a body that is not the header's (other
    // transactions under the same header) would pass for the proposed block and make
    // validators vote nil. No honest node relays one.
    if msg.block.check_structure().is_err() {
        return Err(Refused::Reject);
    }
    Ok(msg)
}

/// The swarm, the chain's topics, and what waits to be gossiped (flushed every
/// [`super::OUTBOX_FLUSH_INTERVAL`], or at once when a batch is full).
pub struct Net {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    by_hash: HashMap<TopicHash, Topic>,
    outbox_txs: Vec<Transaction>,
    outbox_results: Vec<JobResult>,
    /// Peers reported slow, with the start of their window and the reports in it (entries
    /// removed when the peer disconnects).
    slow_peers: HashMap<PeerId, (Instant, u32)>,
    /// The send number of this node's last consensus message ([`p2p::consensus_data`]): it
    /// starts from the Unix time in nanoseconds when the node started and adds one per
    /// message, so that a restarted validator's re-sends are new messages too.
    consensus_send: u64,
}

impl Net {
    /// Over a built swarm.
    pub fn new(swarm: Swarm<Behaviour>, topics: Topics) -> Net {
        let by_hash = [
            (&topics.txs, Topic::Txs),
            (&topics.results, Topic::Results),
            (&topics.blocks, Topic::Blocks),
            (&topics.modules, Topic::Modules),
            (&topics.consensus, Topic::Consensus),
            (&topics.proposals, Topic::Proposals),
        ]
        .into_iter()
        .map(|(t, topic)| (t.hash(), topic))
        .collect();
        let consensus_send = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        Net {
            swarm,
            topics,
            by_hash,
            outbox_txs: Vec::new(),
            outbox_results: Vec::new(),
            slow_peers: HashMap::new(),
            consensus_send,
        }
    }

    /// The swarm.
    pub fn swarm(&mut self) -> &mut Swarm<Behaviour> {
        &mut self.swarm
    }

    /// Which topic a message came on.
    pub fn topic_of(&self, hash: &TopicHash) -> Option<Topic> {
        self.by_hash.get(hash).copied()
    }

    fn ident(&self, topic: Topic) -> &gossipsub::IdentTopic {
        match topic {
            Topic::Txs => &self.topics.txs,
            Topic::Results => &self.topics.results,
            Topic::Blocks => &self.topics.blocks,
            Topic::Modules => &self.topics.modules,
            Topic::Consensus => &self.topics.consensus,
            Topic::Proposals => &self.topics.proposals,
        }
    }

    /// Joins the validators' topics.
    pub fn subscribe_validator_topics(&mut self) -> anyhow::Result<()> {
        for t in [self.topics.consensus.clone(), self.topics.proposals.clone()] {
            self.swarm.behaviour_mut().gossipsub.subscribe(&t)?;
        }
        Ok(())
    }

    /// Peers in this node's mesh of `topic`.
    pub fn mesh_peers(&self, topic: Topic) -> usize {
        self.swarm.behaviour().gossipsub.mesh_peers(&self.ident(topic).hash()).count()
    }

    /// Publishes `data` on `topic` (a consensus message with this node's next send number).
    pub fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        let ident = self.ident(topic).clone();
        let data = match topic {
            Topic::Consensus => {
                self.consensus_send = self.consensus_send.wrapping_add(1);
                p2p::consensus_data(&data, self.consensus_send)
            }
            _ => data,
        };
        match self.swarm.behaviour_mut().gossipsub.publish(ident, data) {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            // Alone for now (or a lone validator): the mempool re-broadcasts once peers arrive.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::trace!(?topic, "no peers to gossip to");
            }
            Err(e) => tracing::warn!(?topic, "gossip publish failed: {e}"),
        }
    }

    /// Queues a transaction for this turn's batch.
    pub fn queue_tx(&mut self, tx: Transaction) {
        self.outbox_txs.push(tx);
    }

    /// Queues a result for this turn's batch.
    pub fn queue_result(&mut self, r: JobResult) {
        self.outbox_results.push(r);
    }

    /// Whether anything waits to be gossiped.
    pub fn has_outbox(&self) -> bool {
        !self.outbox_txs.is_empty() || !self.outbox_results.is_empty()
    }

    /// Publishes the outbox at once if a whole batch waits.
    pub fn flush_outbox_if_full(&mut self) {
        if self.outbox_txs.len() >= BATCH_ITEMS_MAX || self.outbox_results.len() >= BATCH_ITEMS_MAX {
            self.flush_outbox();
        }
    }

    /// Publishes what accumulated since the last flush, as few messages as the batch bounds allow.
    /// Batches are cut at [`BATCH_ITEMS_MAX`] items and [`p2p::BATCH_BYTES_MAX`] bytes.
    pub fn flush_outbox(&mut self) {
        while !self.outbox_txs.is_empty() {
            let n = batch_len(&self.outbox_txs);
            let txs: Vec<Transaction> = self.outbox_txs.drain(..n).collect();
            let msg = TxBatch { version: WIRE_VERSION, sent_ms: super::now_ms(), txs };
            self.publish(Topic::Txs, borsh::to_vec(&msg).expect("encodes"));
        }
        while !self.outbox_results.is_empty() {
            let n = batch_len(&self.outbox_results);
            let results: Vec<JobResult> = self.outbox_results.drain(..n).collect();
            let msg = ResultBatch { version: WIRE_VERSION, sent_ms: super::now_ms(), results };
            self.publish(Topic::Results, borsh::to_vec(&msg).expect("encodes"));
        }
    }

    /// Reports a message's validation to gossipsub (it relays accepted ones).
    pub fn report(&mut self, message_id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(message_id, source, acceptance);
    }

    /// The chain's Kademlia protocol.
    pub fn kad_protocol(&self) -> &libp2p::StreamProtocol {
        &self.topics.kad
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerId> {
        self.swarm.connected_peers().copied().collect()
    }

    /// Forgets a disconnected peer's slowness.
    pub fn forget(&mut self, peer: &PeerId) {
        self.slow_peers.remove(peer);
    }

    /// Gossipsub dropped messages queued for a peer too slow to take them: after
    /// [`p2p::SLOW_PEER_REPORTS_MAX`] reports within [`p2p::SLOW_PEER_WINDOW`] it is
    /// disconnected, so that it stops holding this node's queues (it can reconnect and sync).
    pub fn on_slow_peer(&mut self, peer: PeerId, dropped: usize) {
        let now = Instant::now();
        let reports = self.slow_peers.entry(peer).or_insert((now, 0));
        if now.duration_since(reports.0) > p2p::SLOW_PEER_WINDOW {
            *reports = (now, 0);
        }
        reports.1 += 1;
        tracing::info!(%peer, dropped, reports = reports.1, "peer too slow: gossip messages dropped for it");
        if reports.1 >= p2p::SLOW_PEER_REPORTS_MAX {
            self.slow_peers.remove(&peer);
            tracing::warn!(%peer, "disconnecting a peer too slow to keep up");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}

/// How many of `items` (at least one) go into the next gossip batch: at most
/// [`BATCH_ITEMS_MAX`], and at most [`p2p::BATCH_BYTES_MAX`] bytes unless the first alone is
/// larger.
fn batch_len<T: borsh::BorshSerialize>(items: &[T]) -> usize {
    let mut bytes = 0usize;
    let mut n = 0;
    for item in items.iter().take(BATCH_ITEMS_MAX) {
        bytes += borsh::object_length(item).expect("borsh sizing cannot fail");
        if n > 0 && bytes > p2p::BATCH_BYTES_MAX {
            break;
        }
        n += 1;
    }
    n.max(1)
}

/// Gossip batches waiting for or under verification, at most: each holds up to
/// [`p2p::BATCH_MESSAGE_BYTES_MAX`] of transactions.
pub const VERIFYING_MAX: usize = 64;

/// A gossip batch back from the verifying threads.
pub struct Verified {
    /// Its topic.
    topic: Topic,
    /// The message.
    message_id: MessageId,
    /// Who sent it to this node.
    source: PeerId,
    /// What it carries.
    txs: Vec<Transaction>,
    /// Each transaction's signature check.
    checks: anyhow::Result<Vec<Result<(), TxError>>>,
}

impl Node {
    /// A gossip message arrived: validated (its signatures off the loop), acted on, and its
    /// verdict reported to gossipsub.
    pub(super) fn on_gossip(
        &mut self,
        source: PeerId,
        message_id: MessageId,
        message: gossipsub::Message,
    ) -> anyhow::Result<()> {
        let Some(topic) = self.net.topic_of(&message.topic) else {
            self.penalise(None, &message_id, &source, "a message on a topic this node does not serve");
            return Ok(());
        };
        let acceptance = match topic {
            Topic::Txs => match tx_batch(&message.data) {
                Ok(batch) => match self.worth_verifying(batch.txs) {
                    Ok(txs) if txs.is_empty() => MessageAcceptance::Ignore,
                    Ok(txs) => {
                        self.verify_then(topic, message_id, source, txs);
                        return Ok(());
                    }
                    Err(why) => {
                        self.penalise(Some(topic), &message_id, &source, &why);
                        return Ok(());
                    }
                },
                Err(r) => r.into(),
            },
            Topic::Results => match result_batch(&message.data) {
                Ok(batch) => {
                    // Only a provider registered at the head may ever have a result taken: the
                    // others' (keys cost nothing to make) cost no signature check. Not held
                    // against the sender: this node may lack the block that registered one.
                    let state = self.chain.state();
                    let txs: Vec<Transaction> = batch
                        .results
                        .into_iter()
                        .filter(|r| state.provider(&r.claim.provider).is_some())
                        .map(Transaction::Result)
                        .collect();
                    if txs.is_empty() {
                        MessageAcceptance::Ignore
                    } else {
                        self.verify_then(topic, message_id, source, txs);
                        return Ok(());
                    }
                }
                Err(r) => r.into(),
            },
            Topic::Blocks => {
                match finalized_block(&message.data, self.chain.chain_id, &self.chain.validators, self.chain.height()) {
                    Ok(msg) => {
                        self.peer_at(msg.block.header.height);
                        if !self.on_finalized_block(msg.block, msg.commit, false)? {
                            // Ahead of this node: fetch what it missed.
                            self.request_sync(source);
                        }
                        MessageAcceptance::Accept
                    }
                    Err(r) => r.into(),
                }
            }
            Topic::Modules => match module_announce(&message.data) {
                Ok(msg) => self.on_module_announced(msg.module_id)?,
                Err(r) => r.into(),
            },
            Topic::Consensus => match p2p::split_consensus_data(&message.data) {
                Ok((consensus, _send)) => self.on_consensus_gossip(source, consensus),
                Err(e) => {
                    tracing::debug!(%source, "invalid consensus gossip: {e}");
                    MessageAcceptance::Reject
                }
            },
            Topic::Proposals => self.on_proposed_gossip(&message.data)?,
        };
        if acceptance == MessageAcceptance::Reject {
            let why = match topic {
                Topic::Consensus => "an invalid consensus message",
                _ => "an undecodable or invalid message, or one of another wire version",
            };
            self.penalise(Some(topic), &message_id, &source, why);
        } else {
            self.verdict(Some(topic), &message_id, &source, acceptance);
        }
        Ok(())
    }

    /// Rejects a message (gossipsub lowers its sender's score) and says so in the log, at
    /// info: which peer, on which topic, why — at most [`crate::log_limit::PENALTY_LOGS_PER_WINDOW`]
    /// lines a minute.
    fn penalise(&mut self, topic: Option<Topic>, message_id: &MessageId, source: &PeerId, why: &str) {
        let topic_name = topic.map_or("unknown", Topic::label);
        if let crate::log_limit::Allow::Log { suppressed } = self.penalty_logs.allow(Instant::now()) {
            tracing::info!(peer = %source, topic = topic_name, reason = why, suppressed, "peer penalised: message rejected");
        }
        self.verdict(topic, message_id, source, MessageAcceptance::Reject);
    }

    /// Reports a message's verdict to gossipsub, and counts it.
    fn verdict(
        &mut self,
        topic: Option<Topic>,
        message_id: &MessageId,
        source: &PeerId,
        acceptance: MessageAcceptance,
    ) {
        let label = match acceptance {
            MessageAcceptance::Accept => "accepted",
            MessageAcceptance::Ignore => "ignored",
            MessageAcceptance::Reject => {
                self.metrics.peers_penalised.inc();
                "rejected"
            }
        };
        self.metrics.gossip(topic.map_or("unknown", Topic::label), label);
        self.net.report(message_id, source, acceptance);
    }

    /// The transactions of a gossiped batch worth their signature checks, judged first
    /// without their signatures against the head and the mempool: those admission could take
    /// now, and offers ranked at a height this node has not reached (held until it does). The
    /// rest — stale, unfunded, past the nonce window, or refused while the node is overloaded —
    /// cost no signature check, so that nobody can keep the verifying threads busy with
    /// transactions no block will hold (admission judges the others again once verified). A
    /// transaction no honest node relays (malformed, for another chain) makes the batch its
    /// sender's fault: `Err` says why.
    fn worth_verifying(&self, txs: Vec<Transaction>) -> Result<Vec<Transaction>, String> {
        let mut worth = Vec::with_capacity(txs.len());
        for tx in txs {
            match self.admissible(&tx, Arrival::Unreserved) {
                Ok(()) | Err(super::AdmitError::Tx(TxError::Limit(Limit::AssignmentHeight { .. }))) => worth.push(tx),
                Err(super::AdmitError::Tx(
                    e @ (TxError::Invalid(_) | TxError::NotSubmittable | TxError::WrongChain),
                )) => return Err(format!("an invalid transaction: {e}")),
                Err(_) => {}
            }
        }
        Ok(worth)
    }

    /// Sends a batch's signatures to the verifying threads; the batch comes back as an
    /// [`Event::Verified`].
    /// At most [`VERIFYING_MAX`] batches wait or are verified at once; past that a batch is
    /// ignored (neither relayed nor held against its sender).
    fn verify_then(&mut self, topic: Topic, message_id: MessageId, source: PeerId, txs: Vec<Transaction>) {
        if self.verifying >= VERIFYING_MAX {
            self.verdict(Some(topic), &message_id, &source, MessageAcceptance::Ignore);
            return;
        }
        self.verifying += 1;
        let verifier = self.verifier.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let txs = Arc::new(txs);
            let checks = verifier.verify(&txs).await;
            // The verifying thread's copy is gone once it answered.
            let txs = Arc::try_unwrap(txs).unwrap_or_else(|txs| (*txs).clone());
            let _ = events.send(Event::Verified(Verified { topic, message_id, source, txs, checks })).await;
        });
    }

    /// A verified gossip batch: a bad signature is the sender's fault (rejected); valid
    /// transactions are admitted, valid results kept if their job awaits them.
    pub(super) fn on_verified(&mut self, v: Verified) -> anyhow::Result<()> {
        let Verified { topic, message_id, source, txs, checks } = v;
        let topic = Some(topic);
        self.verifying = self.verifying.saturating_sub(1);
        let checks = match checks {
            Ok(checks) => checks,
            // This node's failure, not the sender's: neither relayed nor penalised.
            Err(e) => {
                tracing::warn!("gossip not verified: {e:#}");
                self.verdict(topic, &message_id, &source, MessageAcceptance::Ignore);
                return Ok(());
            }
        };
        if let Some(Err(e)) = checks.iter().find(|c| c.is_err()) {
            self.penalise(topic, &message_id, &source, &format!("a bad signature: {e}"));
            return Ok(());
        }
        let mut useful = false;
        for tx in txs {
            match tx {
                Transaction::Result(r) => useful |= self.on_gossiped_result(r)?,
                tx => match self.admit(&tx, Arrival::Unreserved) {
                    Ok(_) => {
                        useful = true;
                        self.admitted(&tx, false)?;
                    }
                    // What no honest node relays: malformed, or for another chain.
                    Err(super::AdmitError::Tx(
                        e @ (TxError::Invalid(_) | TxError::NotSubmittable | TxError::WrongChain),
                    )) => {
                        self.penalise(topic, &message_id, &source, &format!("an invalid transaction: {e}"));
                        return Ok(());
                    }
                    // Ranked at a height this node has not reached: held until it does.
                    Err(super::AdmitError::Tx(TxError::Limit(Limit::AssignmentHeight { .. }))) => {
                        if let Transaction::Offer(offer) = tx {
                            self.early_offers.hold(offer, self.chain.height(), Instant::now());
                        }
                    }
                    // Stale (already included, nonce used) or full: not the sender's fault.
                    Err(_) => {}
                },
            }
        }
        let acceptance = if useful { MessageAcceptance::Accept } else { MessageAcceptance::Ignore };
        self.verdict(topic, &message_id, &source, acceptance);
        Ok(())
    }

    /// A gossiped result with a valid signature: kept (and relayed) only while its job awaits
    /// results, and only from a provider that may have been assigned it
    /// ([`super::provider::may_keep_result`]) — signed results cost nothing to make up. One
    /// whose offer has not arrived yet is held aside ([`crate::early`]), and judged when the
    /// offer comes. Returns whether it was kept.
    fn on_gossiped_result(&mut self, r: JobResult) -> anyhow::Result<bool> {
        if !self.mempool.awaits_result(self.chain.state(), &r.claim.job_id) {
            self.early.hold(r, Instant::now());
            return Ok(false);
        }
        if !self.may_keep_result(&r) {
            tracing::debug!(job_id = %r.claim.job_id, provider = %r.claim.provider, "a result from a provider not assigned");
            return Ok(false);
        }
        self.accept_result(r)?;
        Ok(true)
    }

    /// [`super::provider::may_keep_result`] at this node's head and mempool.
    pub(super) fn may_keep_result(&self, r: &JobResult) -> bool {
        let pending = self.mempool.offer(&r.claim.job_id).map(|o| &o.offer);
        super::provider::may_keep_result(self.chain.state(), pending, r)
    }

    /// An announced module: a provider fetches it (and compiles it) before its first job.
    /// Relayed only by a node that has the module or is fetching it: an id nobody holds
    /// (announcements cost nothing to make up) goes no further than one hop.
    fn on_module_announced(&mut self, id: Hash) -> anyhow::Result<MessageAcceptance> {
        if self.chain.store.has_blob(&id)? || self.sync.is_announced(&id) {
            return Ok(MessageAcceptance::Accept);
        }
        // Fetched ahead only while the blob store has room within `store_blobs_bytes_max`
        // (a fetch in flight may pass it by a blob; at most `BLOB_FETCHES_MAX` are): nothing
        // is paid for an announcement, and what is fetched stays at least
        // `BLOB_EVICTION_MIN_AGE`. A provider without room fetches the module with its first
        // job instead.
        let room = super::blobs::room_for_a_blob(self.chain.store.blob_bytes(), self.config.store_blobs_bytes_max);
        if self.provider.is_some() && room && self.sync.announce(id) {
            self.request_blob(id);
            return Ok(MessageAcceptance::Accept);
        }
        Ok(MessageAcceptance::Ignore)
    }
}

#[cfg(test)]
mod tests;
