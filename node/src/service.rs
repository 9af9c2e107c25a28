//! The node service: one event loop that owns the swarm and drives the chain, the mempool,
//! the provider worker and block production. RPC handlers share its state through [`Shared`]
//! and reach the loop through a bounded command channel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use cairn_consensus::{ConsensusMessage, Engine, EngineInput, EngineOutput, SignedVote, Signer, WalEntry};
use cairn_contracts::{NonceRule, SignatureCheck};
use cairn_ledger::{
    Block, Commit, FORMAT_VERSION, Hash, JobResult, JobStatus, Keypair, ResultClaim, SignedOffer, Transaction,
};
use cairn_rpc::JobStage;
use cairn_vm::Vm;
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{Semaphore, mpsc};

use crate::bft::{BLOCK_FETCH_RETRY, Bft, GossipVerdict, Step};
use crate::chain::{ApplyError, Chain, Finalized};
use crate::config::{BoundAddresses, NodeConfig};
use crate::early::EarlyResults;
use crate::mempool::{Admitted, Dropped, Mempool, MempoolError, nonce_key};
use crate::p2p::{
    self, BATCH_ITEMS_MAX, Behaviour, BehaviourEvent, BlockMsg, ModuleAnnounce, ProposedBlock, ResultBatch,
    SYNC_BLOCKS_MAX, SyncRequest, SyncResponse, Topics, TxBatch, WIRE_VERSION, Wire,
};
use crate::tracker::Tracker;
use crate::verdicts::{Verdict, Verdicts};

/// Commands queued for the event loop (bounded).
pub const COMMAND_QUEUE: usize = 4_096;
/// Past this many remembered started jobs, those closed on chain are forgotten.
pub const STARTED_JOBS_PRUNE_AT: usize = 10_000;
/// Modules waited for at once by a provider.
pub const MODULE_WAITS_MAX: usize = 1_024;
/// Offers waiting for one module.
pub const OFFERS_PER_MODULE_WAIT_MAX: usize = 1_024;
/// Announced modules a provider fetches at once (announcements cost nothing to send, so
/// beyond this they are ignored until the fetches in flight end).
pub const ANNOUNCED_FETCHES_MAX: usize = 16;
/// Modules compiled ahead of their jobs at once. Not taken from the execution slots: a job
/// never queues behind another module's preparation.
pub const PREPARATIONS_AT_ONCE: usize = 1;

/// What the RPC asks of the event loop.
#[derive(Debug)]
pub enum Command {
    /// Gossip a checked transaction (already in the mempool); execute an offer if assigned here.
    Tx(Box<Transaction>),
    /// A module was stored here: run offers waiting for it.
    ModuleStored(Hash),
    /// A module was uploaded to this node: announce it, so providers prepare it.
    ModuleUploaded(Hash),
    /// A module fetched from a peer was validated and stored (`stored`), or not.
    ModuleFetched {
        /// The module.
        module_id: Hash,
        /// Whether it is stored now (false: already there, or the store failed).
        stored: bool,
    },
}

/// Network facts the RPC reports.
#[derive(Debug, Clone, Default)]
pub struct NetInfo {
    /// This node's peer id.
    pub peer_id: String,
    /// Its listen addresses with `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: usize,
}

/// State shared by the event loop and the RPC handlers. Locks are held briefly, never across
/// an `.await`.
pub struct Shared {
    /// The chain.
    pub chain: RwLock<Chain>,
    /// Pending transactions.
    pub mempool: Mutex<Mempool>,
    /// Admission of new offers and account transactions (updated after every block).
    pub admission: crate::backpressure::Admission,
    /// Jobs seen and their events.
    pub tracker: Mutex<Tracker>,
    /// The sandbox.
    pub vm: Arc<Vm>,
    /// The node's key.
    pub key: Keypair,
    /// The configuration.
    pub config: NodeConfig,
    /// Network facts.
    pub net: Mutex<NetInfo>,
    /// Commands to the event loop.
    pub commands: mpsc::Sender<Command>,
    /// The RPC address bound, once the server is up.
    pub rpc_addr: std::sync::OnceLock<std::net::SocketAddr>,
}

/// Poisoned locks mean a thread panicked while holding them: the node cannot go on safely.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("a thread panicked while holding a node lock")
}

impl Shared {
    /// Read access to the chain.
    pub fn chain(&self) -> std::sync::RwLockReadGuard<'_, Chain> {
        self.chain.read().expect("a thread panicked while holding the chain lock")
    }

    fn chain_mut(&self) -> std::sync::RwLockWriteGuard<'_, Chain> {
        self.chain.write().expect("a thread panicked while holding the chain lock")
    }

    /// Checks an offer or account transaction against the head state, under the mempool's
    /// nonce rule (the window, and a balance that covers it on top of the sender's other
    /// pending transactions), and admits it to the mempool, or lets it replace the pending
    /// one with the same nonce ([`crate::mempool`]).
    pub fn admit(&self, tx: &Transaction) -> Result<Admitted, AdmitError> {
        let Some((sender, nonce)) = nonce_key(tx) else {
            return Err(AdmitError::Tx(cairn_contracts::TxError::Invalid(
                "only offers and account transactions are submitted: results come from providers over gossip, resolutions from block proposers".into(),
            )));
        };
        // Overloaded: refused at once, from atomics, before any lock is waited for or any
        // signature checked — unless it replaces a pending transaction (not new work), which
        // is looked up only if the mempool is free this instant.
        if let Err(overloaded) = self.admission.check_now() {
            let replaces = self.mempool.try_lock().is_ok_and(|m| m.has_nonce(sender, nonce));
            if !replaces {
                return Err(AdmitError::Overloaded(overloaded));
            }
        }
        let admitted = {
            let chain = self.chain();
            // The signature is verified once here, outside the mempool's lock, and remembered,
            // so the blocks that include the transaction do not verify it again.
            let mut sigs = &*chain.signatures;
            sigs.check(tx, chain.state.params().output_bytes_max as usize).map_err(AdmitError::Tx)?;
            // The check and the insertion under one lock: two transactions of one sender
            // admitted at once cannot both count on the same balance.
            let mut mempool = lock(&self.mempool);
            let rule = NonceRule::Pending { pending_spend: mempool.pending_spend(sender, nonce) };
            chain.state.check_tx(tx, chain.height() + 1, rule, &mut sigs).map_err(AdmitError::Tx)?;
            let admitted = mempool.insert_nonced(tx.clone()).map_err(AdmitError::Mempool)?;
            self.admission.set_pending(mempool.txs_len());
            admitted
        };
        if let Transaction::Offer(o) = tx
            && admitted != Admitted::Duplicate
        {
            lock(&self.tracker).advance(o.job_id(), JobStage::Accepted, None, None);
        }
        if let Admitted::Replaced(old) = &admitted {
            self.report_dropped(&[Dropped {
                tx: (**old).clone(),
                reason: "replaced by a transaction with the same nonce and a higher fee".into(),
            }]);
        }
        Ok(admitted)
    }

    /// Tells the subscribers of dropped offers why.
    pub fn report_dropped(&self, dropped: &[Dropped]) {
        if dropped.is_empty() {
            return;
        }
        let mut tracker = lock(&self.tracker);
        for d in dropped {
            if let Transaction::Offer(o) = &d.tx {
                tracing::info!(job_id = %o.job_id(), reason = %d.reason, "offer dropped");
                tracker.drop_offer(o, &d.reason);
            }
        }
    }
}

/// Why an offer was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// It breaks a chain rule.
    #[error("{0}")]
    Tx(cairn_contracts::TxError),
    /// The mempool refused it (full, or a replacement without a high enough fee).
    #[error("{0}")]
    Mempool(MempoolError),
    /// The node takes no new work now.
    #[error("{0}")]
    Overloaded(crate::backpressure::Overloaded),
}

/// A provider's finished execution.
enum Executed {
    /// The job ran: its signed result.
    Done(Box<JobResult>),
    /// This node failed to run the job (a sandbox failure of its own, a missing module or
    /// offer): nothing was signed, and the job may be tried again.
    Failed(Hash),
}

/// How many times a provider tries a job that failed on its side before giving up on it (the
/// slot then passes to the next ranked provider after `delivery_blocks`).
pub const EXECUTION_ATTEMPTS_MAX: u8 = 3;

/// The event loop's own state.
pub struct Service {
    shared: Arc<Shared>,
    swarm: Swarm<Behaviour>,
    topics: Topics,
    signer: Option<Signer>,
    commands: mpsc::Receiver<Command>,
    executed_tx: mpsc::Sender<Executed>,
    executed_rx: mpsc::Receiver<Executed>,
    executions: Arc<Semaphore>,
    /// Slots for compiling modules ahead of their jobs ([`PREPARATIONS_AT_ONCE`]).
    preparations: Arc<Semaphore>,
    /// Jobs this provider has started (so each runs once).
    started: HashSet<Hash>,
    /// Announced modules being fetched (at most [`ANNOUNCED_FETCHES_MAX`]).
    announced: HashSet<Hash>,
    /// Jobs whose execution failed on this node, with the attempts so far.
    failed_attempts: HashMap<Hash, u8>,
    /// Executions failed on purpose so far ([`NodeConfig::test_fail_executions`]).
    injected_failures: u32,
    /// Offers waiting for their module, by module id.
    waiting: HashMap<Hash, Vec<SignedOffer>>,
    /// Blob requests in flight.
    blob_requests: HashMap<OutboundRequestId, Hash>,
    /// Fetched modules being validated and stored, off the loop.
    storing: HashSet<Hash>,
    /// Peers reported slow, with the start of their window and the reports in it (entries
    /// removed when the peer disconnects).
    slow_peers: HashMap<PeerId, (Instant, u32)>,
    /// The sync request in flight, if any.
    syncing: Option<OutboundRequestId>,
    /// Offers and results to gossip at the end of this turn of the loop, batched.
    outbox_txs: Vec<Transaction>,
    outbox_results: Vec<JobResult>,
    /// Results that arrived before their offer ([`crate::early`]).
    early: EarlyResults,
    /// Consensus, when this node validates a chain with several validators.
    bft: Option<Bft>,
    /// Proposed-block requests in flight.
    proposed_requests: HashMap<OutboundRequestId, (u64, Hash)>,
    /// Test only ([`NodeConfig::test_partition`]): cut off from every peer.
    isolated: bool,
    /// Re-executions for challenges and disputes, run ahead of the blocks that need them.
    verdicts: Verdicts,
    verdict_tx: mpsc::Sender<VerdictDone>,
    verdict_rx: mpsc::Receiver<VerdictDone>,
    /// A finalized block could not be applied for want of a verdict: once one arrives, ask a
    /// peer for the blocks again.
    blocked_on_verdicts: bool,
    /// Re-executions waiting for their job's module to arrive, by job (at most
    /// `VERDICT_REQUESTS_MAX`): not asked for again until it does.
    verdicts_need_module: HashMap<Hash, Hash>,
    /// The cap on the transactions of the blocks this node proposes.
    sizer: crate::backpressure::BlockSizer,
}

/// A background re-execution's end.
struct VerdictDone {
    job_id: Hash,
    /// The verdict, or why there is none (this node's failure, or the module not here).
    verdict: Result<Verdict, VerdictMiss>,
}

enum VerdictMiss {
    /// The job's module is not stored here yet (it is fetched).
    Module(Hash),
    /// Anything else: the offer not found, a failure of this node's sandbox or store.
    Failed(String),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Service {
    /// Builds the swarm, starts listening and dials the bootstrap peers.
    pub fn new(shared: Arc<Shared>, commands: mpsc::Receiver<Command>) -> anyhow::Result<Service> {
        let config = &shared.config;
        let (chain_id, validators, block_txs_max) = {
            let chain = shared.chain();
            (chain.chain_id, chain.validators.clone(), chain.state.params().block_txs_max as usize)
        };
        let topics = Topics::new(&chain_id);
        let mut swarm = p2p::build_swarm(&shared.key, &topics)?;
        let listen: Multiaddr =
            config.listen.parse().with_context(|| format!("bad listen address {}", config.listen))?;
        swarm.listen_on(listen).context("cannot listen for peers")?;
        for addr in &config.bootstrap {
            let ma: Multiaddr = addr.parse().with_context(|| format!("bad bootstrap address {addr}"))?;
            swarm.dial(ma).with_context(|| format!("cannot dial {addr}"))?;
        }
        lock(&shared.net).peer_id = swarm.local_peer_id().to_string();
        // One validator finalizes alone; several run the consensus engine.
        let (signer, bft) = if config.validator && validators.validators().len() > 1 {
            let engine = Engine::new(shared.key.clone(), chain_id, validators, config.consensus.clone())
                .context("--validator")?;
            for t in [&topics.consensus, &topics.proposals] {
                swarm.behaviour_mut().gossipsub.subscribe(t).context("subscribe")?;
            }
            (None, Some(Bft::new(engine)))
        } else if config.validator {
            (Some(Signer::new(shared.key.clone(), chain_id, validators).context("--validator")?), None)
        } else {
            (None, None)
        };
        let sizer = crate::backpressure::BlockSizer::new(block_txs_max, Duration::from_millis(config.block_time_ms));
        let (executed_tx, executed_rx) = mpsc::channel(COMMAND_QUEUE);
        let (verdict_tx, verdict_rx) = mpsc::channel(crate::verdicts::VERDICT_REQUESTS_MAX);
        let executions = Arc::new(Semaphore::new(config.executions_max.max(1)));
        Ok(Service {
            shared,
            swarm,
            topics,
            signer,
            commands,
            executed_tx,
            executed_rx,
            executions,
            preparations: Arc::new(Semaphore::new(PREPARATIONS_AT_ONCE)),
            started: HashSet::new(),
            announced: HashSet::new(),
            failed_attempts: HashMap::new(),
            injected_failures: 0,
            waiting: HashMap::new(),
            blob_requests: HashMap::new(),
            storing: HashSet::new(),
            slow_peers: HashMap::new(),
            syncing: None,
            outbox_txs: Vec::new(),
            outbox_results: Vec::new(),
            early: EarlyResults::default(),
            bft,
            proposed_requests: HashMap::new(),
            isolated: false,
            verdicts: Verdicts::default(),
            verdict_tx,
            verdict_rx,
            blocked_on_verdicts: false,
            verdicts_need_module: HashMap::new(),
            sizer,
        })
    }

    /// Runs until `shutdown` resolves or a fatal error (storage) occurs.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let config = self.shared.config.clone();
        let mut block_timer = tokio::time::interval(Duration::from_millis(config.block_time_ms.max(1)));
        block_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut maintenance = tokio::time::interval(Duration::from_millis(config.rebroadcast_ms.max(100) / 2));
        tokio::pin!(shutdown);
        self.start_consensus()?;
        loop {
            let deadline = self.bft.as_ref().and_then(Bft::next_deadline);
            let timer = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into());
            tokio::select! {
                _ = &mut shutdown => break,
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev)?,
                Some(cmd) = self.commands.recv() => {
                    self.on_command(cmd);
                    while let Ok(cmd) = self.commands.try_recv() {
                        self.on_command(cmd);
                    }
                }
                Some(done) = self.executed_rx.recv() => {
                    self.on_executed(done);
                    while let Ok(done) = self.executed_rx.try_recv() {
                        self.on_executed(done);
                    }
                }
                Some(done) = self.verdict_rx.recv() => self.on_verdict(done),
                _ = block_timer.tick(), if self.signer.is_some() || self.bft.is_some() => {
                    if self.signer.is_some() {
                        self.produce_block()?;
                    }
                }
                _ = timer, if deadline.is_some() => {
                    if let Some(bft) = self.bft.as_mut() {
                        bft.fire_due(Instant::now());
                    }
                }
                _ = maintenance.tick() => self.maintain(),
            }
            self.pump_consensus()?;
            self.flush_outbox();
        }
        tracing::info!("node stopped");
        Ok(())
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Tx(tx) => {
                self.outbox_txs.push((*tx).clone());
                self.offer_known(&tx);
                self.want_challenged(&tx);
                if let Some((sender, _)) = nonce_key(&tx) {
                    self.consider_includable_offers(sender);
                }
            }
            Command::ModuleUploaded(id) => {
                let msg = ModuleAnnounce { version: WIRE_VERSION, module_id: id };
                self.publish(self.topics.modules.clone(), borsh::to_vec(&msg).expect("encodes"));
                if self.shared.config.provider {
                    self.prepare_in_background(id);
                }
                self.on_command(Command::ModuleStored(id));
            }
            Command::ModuleFetched { module_id, stored } => {
                self.storing.remove(&module_id);
                if stored {
                    self.announced.remove(&module_id);
                    if self.shared.config.provider {
                        self.prepare_in_background(module_id);
                    }
                    self.on_command(Command::ModuleStored(module_id));
                }
            }
            Command::ModuleStored(id) => {
                let ready: Vec<Hash> =
                    self.verdicts_need_module.iter().filter(|(_, m)| **m == id).map(|(job, _)| *job).collect();
                for job in &ready {
                    self.verdicts_need_module.remove(job);
                }
                self.want_verdicts(&ready);
                if let Some(offers) = self.waiting.remove(&id) {
                    for o in offers {
                        self.start_execution(o);
                    }
                }
            }
        }
    }

    /// Publishes what accumulated during this turn of the loop as one message per topic.
    /// Batches are cut at [`BATCH_ITEMS_MAX`] items and [`p2p::BATCH_BYTES_MAX`] bytes.
    fn flush_outbox(&mut self) {
        while !self.outbox_txs.is_empty() {
            let n = batch_len(&self.outbox_txs);
            let txs: Vec<Transaction> = self.outbox_txs.drain(..n).collect();
            let msg = TxBatch { version: WIRE_VERSION, sent_ms: now_ms(), txs };
            self.publish(self.topics.txs.clone(), borsh::to_vec(&msg).expect("encodes"));
        }
        while !self.outbox_results.is_empty() {
            let n = batch_len(&self.outbox_results);
            let results: Vec<JobResult> = self.outbox_results.drain(..n).collect();
            let msg = ResultBatch { version: WIRE_VERSION, sent_ms: now_ms(), results };
            self.publish(self.topics.results.clone(), borsh::to_vec(&msg).expect("encodes"));
        }
    }

    fn publish(&mut self, topic: gossipsub::IdentTopic, data: Vec<u8>) {
        match self.swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
            Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
            // Alone for now: the mempool re-broadcasts once peers arrive.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!(%topic, "no peers to gossip to yet");
            }
            Err(e) => tracing::warn!(%topic, "gossip publish failed: {e}"),
        }
    }

    /// Provider: considers `sender`'s pending offers that can be included now (a transaction of
    /// theirs just arrived, and may have filled a nonce gap).
    fn consider_includable_offers(&mut self, sender: cairn_ledger::PublicKey) {
        let offers = {
            let chain = self.shared.chain();
            lock(&self.shared.mempool).includable_offers(sender, chain.state.account(&sender).nonce)
        };
        for offer in offers {
            self.consider_executing(offer);
        }
    }

    /// Provider: run the offer if this node is assigned to it and it is on chain or can be
    /// included next (never an offer behind a nonce gap, which may never be paid for).
    fn consider_executing(&mut self, offer: SignedOffer) {
        // Every node keeps the modules of the offers it sees: validators re-execute challenged
        // jobs, and a stand-in provider may need the module later.
        let module_id = offer.offer.module_id;
        let has = self.shared.chain().store.has_blob(&module_id).unwrap_or(false);
        if !has {
            self.request_blob(module_id);
        }
        if !self.shared.config.provider || self.started.contains(&offer.job_id()) {
            return;
        }
        let assigned = {
            let chain = self.shared.chain();
            let job_id = offer.job_id();
            let o = &offer.offer;
            match chain.state.job(&job_id) {
                Some(job) => job.accepts(&self.shared.key.public()),
                None => {
                    lock(&self.shared.mempool).is_includable(o.client, o.nonce, chain.state.account(&o.client).nonce)
                        && chain
                            .state
                            .assignment(&job_id, o.max_price, usize::from(o.redundancy))
                            .contains(&self.shared.key.public())
                }
            }
        };
        if !assigned {
            return;
        }
        if has {
            self.start_execution(offer);
        } else {
            if !self.waiting.contains_key(&module_id) && self.waiting.len() >= MODULE_WAITS_MAX {
                tracing::warn!(%module_id, "too many modules awaited; dropping offer");
                return;
            }
            // Its module was requested above.
            let list = self.waiting.entry(module_id).or_default();
            if list.len() < OFFERS_PER_MODULE_WAIT_MAX && !list.iter().any(|o| o == &offer) {
                list.push(offer);
            }
        }
    }

    /// Compiles a stored module into the sandbox's caches off the event loop, so its first
    /// job starts warm. A job on that module arriving meanwhile waits for this compilation
    /// rather than starting its own.
    fn prepare_in_background(&self, module_id: Hash) {
        let shared = self.shared.clone();
        let permits = self.preparations.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let wasm = shared.chain().store.blob(&module_id)?.context("not stored")?;
                shared.vm.prepare(&wasm)?;
                Ok(())
            })
            .await;
            match prepared {
                Ok(Ok(())) => tracing::info!(%module_id, "module prepared"),
                Ok(Err(e)) => tracing::warn!(%module_id, "cannot prepare module: {e:#}"),
                Err(e) => tracing::warn!(%module_id, "module preparation failed: {e}"),
            }
        });
    }

    fn request_blob(&mut self, module_id: Hash) {
        // Asked already, or arrived and being stored.
        if self.storing.contains(&module_id) || self.blob_requests.values().any(|m| *m == module_id) {
            return;
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.request_blob_from(peer, module_id);
        }
    }

    fn request_blob_from(&mut self, peer: PeerId, module_id: Hash) {
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, Wire::encode(&SyncRequest::Blob(module_id)));
        self.blob_requests.insert(id, module_id);
    }

    fn start_execution(&mut self, offer: SignedOffer) {
        let job_id = offer.job_id();
        if !self.started.insert(job_id) {
            return;
        }
        let shared = self.shared.clone();
        let permits = self.executions.clone();
        let done = self.executed_tx.clone();
        if self.injected_failures < self.shared.config.test_fail_executions {
            self.injected_failures += 1;
            tracing::error!(%job_id, "cannot execute: failed on purpose (test_fail_executions)");
            tokio::spawn(async move {
                let _ = done.send(Executed::Failed(job_id)).await;
            });
            return;
        }
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let result = tokio::task::spawn_blocking(move || execute(&shared, &offer)).await;
            match result {
                Ok(Ok(result)) => {
                    let _ = done.send(Executed::Done(Box::new(result))).await;
                }
                Ok(Err(e)) => {
                    tracing::error!(%job_id, "cannot execute: {e:#}");
                    let _ = done.send(Executed::Failed(job_id)).await;
                }
                Err(e) => {
                    tracing::error!(%job_id, "execution task failed: {e}");
                    let _ = done.send(Executed::Failed(job_id)).await;
                }
            }
        });
    }

    fn on_executed(&mut self, done: Executed) {
        let r = match done {
            Executed::Done(r) => *r,
            Executed::Failed(job_id) => {
                // Forgetting the start lets the next block's scan (or the offer's next gossip)
                // try again, a bounded number of times.
                let attempts = self.failed_attempts.entry(job_id).or_insert(0);
                *attempts += 1;
                if *attempts < EXECUTION_ATTEMPTS_MAX {
                    self.started.remove(&job_id);
                } else {
                    tracing::warn!(%job_id, attempts = *attempts, "giving up on a job that keeps failing here");
                }
                return;
            }
        };
        tracing::info!(job_id = %r.claim.job_id, status = %r.claim.status, fuel = r.claim.fuel_used, "executed");
        self.accept_result(r.clone());
        self.outbox_results.push(r);
    }

    /// An offer arrived here (admitted, or on chain): the results that came before it are
    /// awaited now.
    fn offer_known(&mut self, tx: &Transaction) {
        if let Transaction::Offer(o) = tx {
            for r in self.early.take(&o.job_id()) {
                self.accept_result(r);
            }
        }
    }

    fn accept_result(&mut self, r: JobResult) {
        let new = match lock(&self.shared.mempool).insert_result(r.clone()) {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!("result dropped: {e}");
                return;
            }
        };
        if new {
            lock(&self.shared.tracker).advance(r.claim.job_id, JobStage::Executed, Some(&r), None);
            if self.disputes(&r) {
                self.want_verdicts(&[r.claim.job_id]);
            }
        }
    }

    /// Whether a result disagrees with another result of its job (on chain, not yet settled by
    /// a re-execution, or pending here): the block that includes both re-executes the job.
    fn disputes(&self, r: &JobResult) -> bool {
        let outcome = cairn_contracts::Outcome::of(&r.claim);
        let chain = self.shared.chain();
        let on_chain = chain
            .state
            .job(&r.claim.job_id)
            .is_some_and(|j| j.verified.is_none() && j.deliveries().any(|d| d.outcome != outcome));
        on_chain
            || lock(&self.shared.mempool)
                .results_of(&r.claim.job_id)
                .any(|other| cairn_contracts::Outcome::of(&other.claim) != outcome)
    }

    /// A challenge admitted here will make a block re-execute its job.
    fn want_challenged(&mut self, tx: &Transaction) {
        if let Transaction::Account(t) = tx
            && let cairn_ledger::Action::Challenge { job_id, .. } = t.tx.action
        {
            self.want_verdicts(&[job_id]);
        }
    }

    /// Asks for these jobs' re-executions, and starts the next one if none runs. Every node
    /// that applies blocks needs them (it checks every block it stores), validators first.
    fn want_verdicts(&mut self, jobs: &[Hash]) {
        for job_id in jobs {
            if !self.verdicts_need_module.contains_key(job_id) {
                self.verdicts.want(*job_id);
            }
        }
        self.run_verdicts();
    }

    /// Starts the next re-execution, off the event loop: the job's module and input are read
    /// and the job run on a blocking thread, the verdict sent back to the loop.
    fn run_verdicts(&mut self) {
        let Some(job_id) = self.verdicts.start_next() else { return };
        let (job, pending_input) = {
            let chain = self.shared.chain();
            let job = chain.state.job(&job_id).cloned();
            let input = lock(&self.shared.mempool).offer(&job_id).map(|o| o.offer.input.clone());
            (job, input)
        };
        let Some(job) = job else {
            // Not on chain (yet): the block that needs it will ask again.
            self.verdicts.finished(job_id, None);
            return self.run_verdicts();
        };
        let shared = self.shared.clone();
        let done = self.verdict_tx.clone();
        tokio::spawn(async move {
            let run = tokio::task::spawn_blocking(move || -> Result<Verdict, VerdictMiss> {
                let store = shared.chain().store.clone();
                let input = match pending_input {
                    Some(input) => input,
                    None => crate::exec::offer_on_chain(&store, &job_id)
                        .map(|o| o.offer.input)
                        .ok_or_else(|| VerdictMiss::Failed("the job's offer is not in this node's blocks".into()))?,
                };
                let wasm = store
                    .blob(&job.module_id)
                    .map_err(|e| VerdictMiss::Failed(e.to_string()))?
                    .ok_or(VerdictMiss::Module(job.module_id))?;
                let output_max = shared.chain().state.params().output_bytes_max as usize;
                let run = crate::exec::run_job(&shared.vm, &job.module_id, &wasm, &input, job.fuel_limit, output_max)
                    .map_err(|e| VerdictMiss::Failed(e.to_string()))?;
                Ok(run.outcome())
            })
            .await
            .unwrap_or_else(|e| Err(VerdictMiss::Failed(format!("the re-execution task failed: {e}"))));
            let _ = done.send(VerdictDone { job_id, verdict: run }).await;
        });
    }

    /// A re-execution ended: keep the verdict, start the next, and check again what waited
    /// for it (proposals, blocks to apply).
    fn on_verdict(&mut self, done: VerdictDone) {
        let VerdictDone { job_id, verdict } = done;
        let verdict = match verdict {
            Ok(verdict) => Some(verdict),
            Err(VerdictMiss::Module(module_id)) => {
                tracing::info!(%job_id, %module_id, "re-execution waits for the job's module");
                if self.verdicts_need_module.len() < crate::verdicts::VERDICT_REQUESTS_MAX {
                    self.verdicts_need_module.insert(job_id, module_id);
                }
                self.request_blob(module_id);
                None
            }
            Err(VerdictMiss::Failed(why)) => {
                tracing::warn!(%job_id, "cannot re-execute the job here: {why}");
                None
            }
        };
        let ready = verdict.is_some();
        if ready {
            tracing::info!(%job_id, "re-execution ready");
        }
        self.verdicts.finished(job_id, verdict);
        self.run_verdicts();
        if ready {
            self.check_needed_blocks();
            let peer = self.swarm.connected_peers().next().copied();
            if std::mem::take(&mut self.blocked_on_verdicts)
                && let Some(peer) = peer
            {
                self.request_sync(peer);
            }
        }
    }

    /// What the next block takes, in order: the resolutions this node has the verdicts for
    /// (they settle jobs), then the mempool's includable transactions and results.
    /// At most the block sizer's cap of them, so that a height takes about the block time.
    fn block_candidates(&mut self) -> Vec<Transaction> {
        let mut candidates = self.ready_resolutions();
        candidates.extend(lock(&self.shared.mempool).candidates(&self.shared.chain().state));
        candidates.truncate(self.sizer.cap());
        candidates
    }

    /// `Resolve` transactions for the jobs awaiting a re-execution whose verdict is here (at
    /// most what a block may take); the others are asked for.
    fn ready_resolutions(&mut self) -> Vec<Transaction> {
        let awaiting: Vec<Hash> = self
            .shared
            .chain()
            .state
            .awaiting_resolution()
            .take(crate::verdicts::VERDICT_REQUESTS_MAX)
            .copied()
            .collect();
        let (ready, waiting): (Vec<Hash>, Vec<Hash>) =
            awaiting.into_iter().partition(|job_id| self.verdicts.get(job_id).is_some());
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
        let chain = self.shared.chain();
        chain.state.has_pending_work()
            || lock(&self.shared.mempool).has_includable(&chain.state)
            || chain.state.awaiting_resolution().any(|job_id| self.verdicts.get(job_id).is_some())
    }

    fn produce_block(&mut self) -> anyhow::Result<()> {
        let Some(signer) = self.signer.clone() else { return Ok(()) };
        // Idle chains do not grow: a block is made when there is something to do.
        if !self.has_work() && !self.shared.config.empty_blocks {
            return Ok(());
        }
        let candidates = self.block_candidates();
        let mut cached = self.verdicts.cached();
        let started = Instant::now();
        let (finalized, rejected) = {
            let mut chain = self.shared.chain_mut();
            chain.propose(&signer, candidates, now_ms(), &mut cached).context("finalizing a block")?
        };
        self.sizer.observe_build(finalized.block.txs.len(), started.elapsed());
        let missing = cached.missing;
        self.want_verdicts(&missing);
        for (tx, e) in &rejected {
            tracing::debug!(tx = %tx.hash(), "left out of the block: {e}");
        }
        let dropped = lock(&self.shared.mempool).remove_rejected(&rejected);
        self.shared.report_dropped(&dropped);
        let msg = BlockMsg { version: WIRE_VERSION, block: finalized.block.clone(), commit: finalized.commit.clone() };
        self.publish(self.topics.blocks.clone(), borsh::to_vec(&msg).expect("encodes"));
        self.after_finalized(&finalized);
        Ok(())
    }

    /// Bookkeeping once a block is final here, however it got here.
    fn after_finalized(&mut self, f: &Finalized) {
        let height = f.block.header.height;
        tracing::info!(height, txs = f.block.txs.len(), receipts = f.executed.receipts.len(), "finalized");
        // What admission lets in follows what the next blocks can take.
        self.shared.admission.update(self.sizer.cap());
        {
            let mut mempool = lock(&self.shared.mempool);
            mempool.remove_included(&f.block);
            self.shared.admission.set_pending(mempool.txs_len());
        }
        let mut offers = Vec::new();
        // A job with redundancy k is final once its k-th result is (until then its results are
        // only included).
        let open: HashSet<Hash> = {
            let chain = self.shared.chain();
            f.block
                .txs
                .iter()
                .filter_map(|tx| match tx {
                    Transaction::Result(r) => Some(r.claim.job_id),
                    Transaction::Resolve { job_id } => Some(*job_id),
                    _ => None,
                })
                .filter(|id| {
                    chain.state.job(id).is_some_and(|j| {
                        matches!(j.phase, cairn_contracts::JobPhase::Open | cairn_contracts::JobPhase::Disputed)
                    })
                })
                .collect()
        };
        {
            let mut tracker = lock(&self.shared.tracker);
            for tx in &f.block.txs {
                match tx {
                    Transaction::Result(r) => {
                        let id = r.claim.job_id;
                        let stage = if open.contains(&id) { JobStage::Included } else { JobStage::Finalized };
                        tracker.advance(id, stage, Some(r), Some(height))
                    }
                    Transaction::Offer(o) => {
                        tracker.advance(o.job_id(), JobStage::Accepted, None, None);
                        offers.push(o.clone());
                    }
                    // A disputed job that closed with its results is final once re-executed.
                    Transaction::Resolve { job_id } => {
                        if !open.contains(job_id) {
                            tracker.advance(*job_id, JobStage::Finalized, None, Some(height));
                        }
                    }
                    Transaction::Account(_) => {}
                }
            }
            for id in &f.executed.expired {
                tracker.advance(*id, JobStage::Expired, None, Some(height));
            }
            // A job that closed at its deadline with some of its k results is final with this
            // block, though the block holds none of its result transactions.
            for id in &f.executed.closed {
                tracker.advance(*id, JobStage::Finalized, None, Some(height));
            }
        }
        // Re-execute ahead what the chain now waits for (challenges and disputes this node may
        // not have seen arrive), so the blocks that resolve them do not wait here.
        let awaiting: Vec<Hash> = self
            .shared
            .chain()
            .state
            .awaiting_resolution()
            .take(crate::verdicts::VERDICT_REQUESTS_MAX)
            .copied()
            .collect();
        self.want_verdicts(&awaiting);
        // A provider that missed an offer's gossip still executes it once it is on chain; a
        // stand-in executes the jobs it was just reassigned, and a job whose run failed here is
        // tried again.
        for o in offers {
            let tx = Transaction::Offer(o.clone());
            self.offer_known(&tx);
            self.consider_executing(o);
        }
        if self.shared.config.provider {
            for o in self.unstarted_offers() {
                self.consider_executing(o);
            }
        }
    }

    /// Open jobs whose result this provider owes (it holds or held a slot without a result)
    /// and that it has not started, with their offers (read from the blocks that included
    /// them).
    fn unstarted_offers(&self) -> Vec<SignedOffer> {
        let me = self.shared.key.public();
        let chain = self.shared.chain();
        let mine: Vec<Hash> = chain
            .state
            .open_jobs()
            .filter(|(id, job)| !self.started.contains(id) && job.accepts(&me))
            .map(|(id, _)| *id)
            .collect();
        mine.iter().filter_map(|id| crate::exec::offer_on_chain(&chain.store, id)).collect()
    }

    /// Keeps the node connected: redials the bootstrap peers when it has none (they restarted,
    /// or a partition healed), and, in tests ([`NodeConfig::test_partition`]), cuts it off
    /// while its isolation file exists.
    fn maintain_peers(&mut self) {
        if self.shared.config.test_partition {
            let isolated = self.shared.config.test_isolated_path().exists();
            if isolated != self.isolated {
                tracing::warn!(isolated, "test: network partition switched");
                self.isolated = isolated;
            }
            if isolated {
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                for peer in peers {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
                return;
            }
        }
        if self.swarm.connected_peers().next().is_none() {
            for addr in &self.shared.config.bootstrap {
                if let Ok(ma) = addr.parse::<Multiaddr>() {
                    let _ = self.swarm.dial(ma);
                }
            }
        }
    }

    fn maintain(&mut self) {
        self.maintain_peers();
        self.early.expire(Instant::now());
        // Announced fetches that ended without the module (no peer had it) free their place.
        let requested: HashSet<Hash> = self.blob_requests.values().copied().collect();
        self.announced.retain(|id| requested.contains(id));
        let interval = Duration::from_millis(self.shared.config.rebroadcast_ms);
        let (offers, results, dropped) = {
            let chain = self.shared.chain();
            let mut mempool = lock(&self.shared.mempool);
            let gap_timeout = Duration::from_millis(self.shared.config.mempool_gap_timeout_ms);
            let dropped = mempool.prune(&chain.state, chain.height() + 1, gap_timeout);
            self.shared.admission.set_pending(mempool.txs_len());
            // Forget started jobs that are closed on chain: the set stays as small as the work
            // in flight.
            if self.started.len() > STARTED_JOBS_PRUNE_AT {
                self.started
                    .retain(|id| chain.state.job(id).is_none_or(|j| j.phase == cairn_contracts::JobPhase::Open));
                let started = &self.started;
                self.failed_attempts.retain(|id, _| started.contains(id));
            }
            let (offers, results) = mempool.due_for_rebroadcast(interval, BATCH_ITEMS_MAX);
            (offers, results, dropped)
        };
        self.shared.report_dropped(&dropped);
        self.outbox_txs.extend(offers);
        self.outbox_results.extend(results);
        let modules: Vec<Hash> = self.waiting.keys().chain(self.verdicts_need_module.values()).copied().collect();
        for m in modules {
            self.request_blob(m);
        }
    }

    fn write_addresses(&self) {
        let net = lock(&self.shared.net).clone();
        let bound = BoundAddresses {
            pid: std::process::id(),
            rpc: self.shared.rpc_addr.get().copied().unwrap_or(self.shared.config.rpc),
            p2p: net.listen_addrs,
        };
        let path = self.shared.config.addresses_path();
        let text = serde_json::to_string_pretty(&bound).expect("serializes");
        // Write then rename, so readers never see half a file.
        let tmp = path.with_extension("json.tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn request_sync(&mut self, peer: PeerId) {
        if self.syncing.is_some() {
            return;
        }
        let from = self.shared.chain().height() + 1;
        let req = SyncRequest::Blocks { from, max: SYNC_BLOCKS_MAX };
        self.syncing = Some(self.swarm.behaviour_mut().sync.send_request(&peer, Wire::encode(&req)));
    }

    /// Applies a finalized block from a peer. Returns whether it was applied; `Err` only for a
    /// fatal (storage) error.
    fn apply_block(&mut self, msg: BlockMsg) -> anyhow::Result<Result<bool, String>> {
        let height = self.shared.chain().height();
        let h = msg.block.header.height;
        if h <= height {
            return Ok(Ok(false));
        }
        if h > height + 1 {
            return Ok(Err(format!("block {h} is ahead of the head {height}")));
        }
        let mut cached = self.verdicts.cached();
        let (txs, started) = (msg.block.txs.len(), Instant::now());
        let applied = self.shared.chain_mut().apply(msg.block, msg.commit, &mut cached);
        if applied.is_ok() {
            self.sizer.observe_build(txs, started.elapsed());
        }
        let missing = cached.missing;
        if applied.is_err() && !missing.is_empty() {
            // Its re-executions have not run here yet: run them, and ask for the block again
            // once they have (sync or gossip brings it).
            self.blocked_on_verdicts = true;
            self.want_verdicts(&missing);
        }
        match applied {
            Ok(f) => {
                self.after_finalized(&f);
                self.consensus_head_moved()?;
                Ok(Ok(true))
            }
            Err(ApplyError::Storage(e)) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) -> anyhow::Result<()> {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = format!("{address}/p2p/{}", self.swarm.local_peer_id());
                tracing::info!("listening on {full}");
                lock(&self.shared.net).listen_addrs.push(full);
                self.write_addresses();
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.isolated => {
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                lock(&self.shared.net).peers = self.swarm.connected_peers().count();
                if num_established.get() == 1 {
                    tracing::info!(%peer_id, "peer connected");
                    self.request_sync(peer_id);
                    let modules: Vec<Hash> = self.waiting.keys().copied().collect();
                    for m in modules {
                        self.request_blob_from(peer_id, m);
                    }
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                lock(&self.shared.net).peers = self.swarm.connected_peers().count();
                if num_established == 0 {
                    self.slow_peers.remove(&peer_id);
                    tracing::info!(%peer_id, "peer disconnected");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(libp2p::identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                // Learn peers of peers on loopback so a small testnet becomes a full mesh.
                for addr in info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let acceptance = self.on_gossip(propagation_source, &message)?;
                let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => {
                self.on_slow_peer(peer_id, failed_messages.priority + failed_messages.non_priority);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev)?,
            _ => {}
        }
        Ok(())
    }

    /// Gossipsub dropped messages queued for a peer too slow to take them: after
    /// [`p2p::SLOW_PEER_REPORTS_MAX`] reports within [`p2p::SLOW_PEER_WINDOW`] it is
    /// disconnected, so that it stops holding this node's queues (it can reconnect and sync).
    fn on_slow_peer(&mut self, peer: PeerId, dropped: usize) {
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

    fn on_gossip(&mut self, source: PeerId, message: &gossipsub::Message) -> anyhow::Result<MessageAcceptance> {
        let t = &message.topic;
        let limit = p2p::GOSSIP_MESSAGE_BYTES_MAX;
        if *t == self.topics.txs.hash() {
            let Ok(batch) =
                cairn_ledger::decode::<TxBatch>("transaction batch", &message.data, p2p::BATCH_MESSAGE_BYTES_MAX)
            else {
                return Ok(MessageAcceptance::Reject);
            };
            if batch.version != WIRE_VERSION || batch.txs.len() > BATCH_ITEMS_MAX {
                return Ok(MessageAcceptance::Reject);
            }
            let mut any_valid = false;
            for tx in batch.txs {
                match self.shared.admit(&tx) {
                    Ok(_) => {
                        any_valid = true;
                        self.offer_known(&tx);
                        self.want_challenged(&tx);
                        if let Some((sender, _)) = nonce_key(&tx) {
                            self.consider_includable_offers(sender);
                        }
                    }
                    Err(AdmitError::Tx(
                        cairn_contracts::TxError::Invalid(e) | cairn_contracts::TxError::BadSignature(e),
                    )) => {
                        tracing::debug!(%source, "invalid transaction: {e}");
                        return Ok(MessageAcceptance::Reject);
                    }
                    // Stale (already included, nonce used) or full: not the sender's fault.
                    Err(_) => {}
                }
            }
            return Ok(if any_valid { MessageAcceptance::Accept } else { MessageAcceptance::Ignore });
        }
        if *t == self.topics.modules.hash() {
            let Ok(msg) = cairn_ledger::decode::<ModuleAnnounce>(
                "module announcement",
                &message.data,
                p2p::MODULE_ANNOUNCE_BYTES_MAX,
            ) else {
                return Ok(MessageAcceptance::Reject);
            };
            if msg.version != WIRE_VERSION {
                return Ok(MessageAcceptance::Reject);
            }
            // Relayed only by a node that has the module or is fetching it: an id nobody
            // holds (announcements cost nothing to make up) goes no further than one hop.
            let id = msg.module_id;
            if self.shared.chain().store.has_blob(&id).unwrap_or(false) || self.announced.contains(&id) {
                return Ok(MessageAcceptance::Accept);
            }
            if self.shared.config.provider && self.announced.len() < ANNOUNCED_FETCHES_MAX {
                self.announced.insert(id);
                self.request_blob(id);
                return Ok(MessageAcceptance::Accept);
            }
            return Ok(MessageAcceptance::Ignore);
        }
        if *t == self.topics.results.hash() {
            let Ok(batch) =
                cairn_ledger::decode::<ResultBatch>("result batch", &message.data, p2p::BATCH_MESSAGE_BYTES_MAX)
            else {
                return Ok(MessageAcceptance::Reject);
            };
            if batch.version != WIRE_VERSION || batch.results.len() > BATCH_ITEMS_MAX {
                return Ok(MessageAcceptance::Reject);
            }
            let txs: Vec<Transaction> = batch.results.into_iter().map(Transaction::Result).collect();
            let awaited: Vec<bool> = {
                // Verified once here and remembered for the blocks that include them.
                let (output_max, signatures) = {
                    let chain = self.shared.chain();
                    (chain.state.params().output_bytes_max as usize, chain.signatures.clone())
                };
                let mut sigs = &*signatures;
                if txs.iter().any(|tx| sigs.check(tx, output_max).is_err()) {
                    return Ok(MessageAcceptance::Reject);
                }
                // Signed results cost nothing to make up: only those for a job still awaiting
                // results (open on chain, or offered in the mempool) take a place in it. Any
                // other is dropped here, not relayed (its provider re-broadcasts it).
                let chain = self.shared.chain();
                let mempool = lock(&self.shared.mempool);
                txs.iter().map(|tx| tx.job_id().is_some_and(|id| mempool.awaits_result(&chain.state, &id))).collect()
            };
            let mut any_awaited = false;
            for (tx, awaited) in txs.into_iter().zip(awaited) {
                let Transaction::Result(r) = tx else { continue };
                if awaited {
                    any_awaited = true;
                    self.accept_result(r);
                } else {
                    // Its offer may still be on its way here.
                    self.early.hold(r, Instant::now());
                }
            }
            return Ok(if any_awaited { MessageAcceptance::Accept } else { MessageAcceptance::Ignore });
        }
        if *t == self.topics.blocks.hash() {
            let Ok(msg) = cairn_ledger::decode::<BlockMsg>("block", &message.data, limit) else {
                return Ok(MessageAcceptance::Reject);
            };
            if msg.version != WIRE_VERSION {
                return Ok(MessageAcceptance::Reject);
            }
            let commit_ok = {
                let chain = self.shared.chain();
                msg.commit.block_hash == msg.block.hash()
                    && msg.commit.height == msg.block.header.height
                    && msg.commit.verify(chain.chain_id, &chain.validators).is_ok()
            };
            if !commit_ok {
                return Ok(MessageAcceptance::Reject);
            }
            match self.apply_block(msg)? {
                Ok(_) => {}
                Err(why) => {
                    tracing::debug!("block not applied now: {why}; syncing");
                    self.request_sync(source);
                }
            }
            return Ok(MessageAcceptance::Accept);
        }
        if *t == self.topics.consensus.hash() {
            return Ok(self.on_consensus_gossip(source, message.source, &message.data));
        }
        if *t == self.topics.proposals.hash() {
            return self.on_proposed_gossip(&message.data);
        }
        Ok(MessageAcceptance::Reject)
    }

    fn on_sync(&mut self, ev: request_response::Event<Wire, Wire>) -> anyhow::Result<()> {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let response = match request.decode::<SyncRequest>("sync request") {
                        Ok(SyncRequest::Blocks { from, max }) => {
                            let budget = p2p::SYNC_RESPONSE_BYTES_MAX as usize / 2;
                            match self.shared.chain().blocks_from(from, max.min(SYNC_BLOCKS_MAX), budget) {
                                Ok(blocks) => SyncResponse::Blocks(blocks),
                                Err(e) => SyncResponse::Error(e.to_string()),
                            }
                        }
                        Ok(SyncRequest::Blob(id)) => match self.shared.chain().store.blob(&id) {
                            Ok(b) => SyncResponse::Blob(b),
                            Err(e) => SyncResponse::Error(e.to_string()),
                        },
                        Ok(SyncRequest::Proposed { height, block_hash }) => {
                            SyncResponse::Proposed(self.proposed_block(height, &block_hash).map(Box::new))
                        }
                        Err(e) => SyncResponse::Error(e.to_string()),
                    };
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, Wire::encode(&response));
                }
                request_response::Message::Response { request_id, response } => {
                    let decoded = response.decode::<SyncResponse>("sync response");
                    if self.syncing == Some(request_id) {
                        self.syncing = None;
                        if let Ok(SyncResponse::Blocks(blocks)) = decoded {
                            // Answers are cut by count and size: ask again until one is empty.
                            let full = !blocks.is_empty();
                            for (block, commit) in blocks {
                                let h = block.header.height;
                                if let Err(why) = self.apply_block(BlockMsg { version: WIRE_VERSION, block, commit })? {
                                    tracing::warn!(%peer, "synced block {h} refused: {why}");
                                    return Ok(());
                                }
                            }
                            if full {
                                self.request_sync(peer);
                            }
                        }
                    } else if let Some((height, block_hash)) = self.proposed_requests.remove(&request_id) {
                        if let Ok(SyncResponse::Proposed(Some(block))) = decoded
                            && block.header.height == height
                            && block.hash() == block_hash
                            && let Some(bft) = self.bft.as_mut()
                        {
                            bft.keep_block(*block);
                            self.check_needed_blocks();
                        }
                    } else if let Some(module_id) = self.blob_requests.remove(&request_id)
                        && let Ok(SyncResponse::Blob(Some(bytes))) = decoded
                    {
                        self.on_blob(module_id, bytes);
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, peer, error, .. } => {
                tracing::debug!(%peer, "request failed: {error}");
                if self.syncing == Some(request_id) {
                    self.syncing = None;
                }
                self.blob_requests.remove(&request_id);
                self.proposed_requests.remove(&request_id);
            }
            _ => {}
        }
        Ok(())
    }

    /// Loads the engine: replays the write-ahead log of the next height if there is one (a
    /// restart mid-height), or waits to start the next height.
    fn start_consensus(&mut self) -> anyhow::Result<()> {
        let Some(bft) = self.bft.as_mut() else { return Ok(()) };
        let (store, head) = {
            let chain = self.shared.chain();
            (chain.store.clone(), chain.height())
        };
        store.wal_prune_below(head + 1).context("pruning the consensus log")?;
        let entries = store.wal_entries(head + 1).context("reading the consensus log")?;
        bft.head_moved(head);
        if entries.is_empty() {
            // Due at once if there is work: no block time to wait for after a restart.
            bft.head_moved_at = Instant::now() - Duration::from_millis(self.shared.config.block_time_ms);
            return Ok(());
        }
        tracing::info!(height = head + 1, entries = entries.len(), "replaying the consensus log");
        let outputs = bft.engine.replay(head + 1, &entries).context("replaying the consensus log")?;
        bft.next_height = None;
        bft.wal_height = head + 1;
        bft.wal_seq = entries.len() as u64;
        self.carry_out(head + 1, outputs)?;
        self.pump_consensus()
    }

    /// Starts the next height when due, then feeds the engine every queued input and carries
    /// out what it returns.
    fn pump_consensus(&mut self) -> anyhow::Result<()> {
        if self.bft.is_none() {
            return Ok(());
        }
        let has_work = self.has_work();
        let head = self.shared.chain().height();
        let config = &self.shared.config;
        let block_time = Duration::from_millis(config.block_time_ms);
        if let Some(bft) = self.bft.as_mut()
            && let Some(height) = bft.due_to_start(head, block_time, config.empty_blocks, has_work)
        {
            bft.next_height = None;
            bft.push(EngineInput::StartHeight { height });
        }
        loop {
            let Some(bft) = self.bft.as_mut() else { return Ok(()) };
            let Some(input) = bft.inputs.pop_front() else { return Ok(()) };
            let outputs = bft.engine.handle(input);
            let height = bft.engine.height();
            self.carry_out(height, outputs)?;
        }
    }

    /// Carries out the engine's outputs in order. Inputs they lead to are queued, not fed
    /// here, so that every output of one call is done before the next call.
    fn carry_out(&mut self, height: u64, outputs: Vec<EngineOutput>) -> anyhow::Result<()> {
        for step in crate::bft::steps(outputs) {
            let output = match step {
                Step::WalWrite(entries) => {
                    self.wal_write(height, &entries)?;
                    continue;
                }
                Step::Output(output) => output,
            };
            let Some(bft) = self.bft.as_mut() else { return Ok(()) };
            match output {
                EngineOutput::WalAppend(bytes) => self.wal_write(height, &[bytes])?,
                EngineOutput::Publish(bytes) => {
                    let conflicting = if self.shared.config.test_equivocate {
                        conflicting_vote(&bytes, &self.shared.key)
                    } else {
                        None
                    };
                    self.publish(self.topics.consensus.clone(), bytes);
                    if let Some(second) = conflicting {
                        self.publish(self.topics.consensus.clone(), second);
                    }
                }
                EngineOutput::ScheduleTimeout { height, round, kind, duration_ms } => {
                    bft.schedule((height, round, kind), Duration::from_millis(duration_ms));
                }
                EngineOutput::CancelTimeout { height, round, kind } => bft.cancel(&(height, round, kind)),
                EngineOutput::CancelAllTimeouts => bft.cancel_all(),
                EngineOutput::RoundStarted { height, round, proposer } => {
                    if round > 0 {
                        tracing::info!(height, round, %proposer, "consensus round started");
                    } else {
                        tracing::debug!(height, round, %proposer, "consensus round started");
                    }
                }
                EngineOutput::RequestValue { height, round, .. } => self.propose(height, round)?,
                EngineOutput::NeedBlock { height, block_hash, proposer, .. } => {
                    bft.need(height, block_hash, proposer);
                    self.check_needed_blocks();
                }
                EngineOutput::RestreamBlock { height, block_hash, .. } => {
                    if let Some(block) = self.proposed_block(height, &block_hash) {
                        let msg = ProposedBlock { version: WIRE_VERSION, block };
                        self.publish(self.topics.proposals.clone(), borsh::to_vec(&msg).expect("encodes"));
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
                    self.shared.chain().store.put_evidence(evidence.height(), &bytes).context("storing evidence")?;
                }
                EngineOutput::Rejected { reason } => tracing::debug!("consensus message refused: {reason}"),
                EngineOutput::Fault { reason } => tracing::error!("consensus engine fault: {reason}"),
            }
        }
        Ok(())
    }

    /// Appends consecutive consensus log entries of `height` in one synced write: durable
    /// before anything after them is acted on, so a restart never signs twice.
    fn wal_write(&mut self, height: u64, entries: &[Vec<u8>]) -> anyhow::Result<()> {
        let Some(bft) = self.bft.as_mut() else { return Ok(()) };
        let store = self.shared.chain().store.clone();
        if bft.wal_height != height {
            bft.wal_height = height;
            bft.wal_seq = store.wal_entries(height).context("reading the consensus log")?.len() as u64;
        }
        store.wal_append_batch(height, bft.wal_seq, entries).context("writing the consensus log")?;
        bft.wal_seq += entries.len() as u64;
        if self.shared.config.test_crash_after_wal_append_at_height == Some(height)
            && entries.iter().any(|e| is_own_vote(e, &self.shared.key.public()))
        {
            crash_for_test(&self.shared.config, height);
        }
        Ok(())
    }

    /// This validator proposes at `height`, `round`: builds a block on the head from the
    /// mempool (without committing it), keeps it durably, gossips it, and hands its hash to
    /// the engine.
    fn propose(&mut self, height: u64, round: u32) -> anyhow::Result<()> {
        if self.shared.chain().height() + 1 != height {
            tracing::debug!(height, "asked to propose at a height this node is not at yet");
            return Ok(());
        }
        let candidates = self.block_candidates();
        let mut cached = self.verdicts.cached();
        let started = Instant::now();
        let built = self.shared.chain_mut().build_proposal(self.shared.key.public(), candidates, now_ms(), &mut cached);
        if let Ok((block, _)) = &built {
            self.sizer.observe_build(block.txs.len(), started.elapsed());
        }
        let missing = cached.missing;
        self.want_verdicts(&missing);
        let (block, rejected) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(height, round, "cannot build a block to propose: {e:#}");
                return Ok(());
            }
        };
        let dropped = lock(&self.shared.mempool).remove_rejected(&rejected);
        self.shared.report_dropped(&dropped);
        self.shared.chain().store.put_proposed(&block).context("keeping the proposed block")?;
        let block_hash = block.hash();
        tracing::debug!(height, round, %block_hash, txs = block.txs.len(), "proposing");
        let msg = ProposedBlock { version: WIRE_VERSION, block: block.clone() };
        self.publish(self.topics.proposals.clone(), borsh::to_vec(&msg).expect("encodes"));
        if let Some(bft) = self.bft.as_mut() {
            bft.keep_block(block);
            bft.push(EngineInput::ProposeValue { height, round, block_hash });
        }
        Ok(())
    }

    /// A proposed block seen here or kept on disk.
    fn proposed_block(&self, height: u64, block_hash: &Hash) -> Option<Block> {
        if let Some(b) = self.bft.as_ref().and_then(|bft| bft.block(height, block_hash)) {
            return Some(b.clone());
        }
        self.shared.chain().store.proposed(height, block_hash).ok().flatten()
    }

    /// Checks the blocks the engine waits for that extend the head and are here; asks peers
    /// for those that are not.
    fn check_needed_blocks(&mut self) {
        let head = self.shared.chain().height();
        let Some(bft) = self.bft.as_ref() else { return };
        let wanted: Vec<((u64, Hash), crate::bft::Needed)> =
            bft.needed.iter().filter(|((h, _), _)| *h == head + 1).map(|(k, v)| (*k, v.clone())).collect();
        for ((height, block_hash), needed) in wanted {
            match self.proposed_block(height, &block_hash) {
                Some(block) => {
                    let mut cached = self.verdicts.cached();
                    let started = Instant::now();
                    let verdict = if block.header.proposer != needed.proposer {
                        Err("the block's proposer is not the proposal's".to_string())
                    } else {
                        self.shared.chain_mut().check_proposal(&block, &mut cached)
                    };
                    if verdict.is_ok() {
                        self.sizer.observe_build(block.txs.len(), started.elapsed());
                    }
                    let missing = cached.missing;
                    if verdict.is_err() && !missing.is_empty() {
                        // Not invalid: it needs re-executions this node has not run yet. No
                        // vote until they are in (the check runs again when they are).
                        tracing::info!(height, %block_hash, jobs = missing.len(), "proposed block waits for re-executions");
                        if let Some(bft) = self.bft.as_mut() {
                            bft.keep_block(block);
                        }
                        self.want_verdicts(&missing);
                        continue;
                    }
                    if let Err(why) = &verdict {
                        tracing::warn!(height, %block_hash, "proposed block is invalid: {why}");
                    }
                    if let Some(bft) = self.bft.as_mut() {
                        bft.needed.remove(&(height, block_hash));
                        bft.keep_block(block);
                        bft.push(EngineInput::BlockValidity { height, block_hash, valid: verdict.is_ok() });
                    }
                }
                None => {
                    if needed.fetched.is_some_and(|t| t.elapsed() < BLOCK_FETCH_RETRY) {
                        continue;
                    }
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for peer in peers {
                        let req = Wire::encode(&SyncRequest::Proposed { height, block_hash });
                        let id = self.swarm.behaviour_mut().sync.send_request(&peer, req);
                        self.proposed_requests.insert(id, (height, block_hash));
                    }
                    if let Some(n) = self.bft.as_mut().and_then(|b| b.needed.get_mut(&(height, block_hash))) {
                        n.fetched = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// The engine decided: store the block with its commit (unless already stored), tell the
    /// network, and move on.
    fn on_decided(&mut self, height: u64, round: u32, block_hash: Hash, commit: Commit) -> anyhow::Result<()> {
        let head = self.shared.chain().height();
        if height <= head {
            return self.consensus_head_moved();
        }
        let Some(block) = self.proposed_block(height, &block_hash) else {
            tracing::warn!(height, %block_hash, "decided a block this node does not have; syncing");
            let peer = self.swarm.connected_peers().next().copied();
            if let Some(peer) = peer {
                self.request_sync(peer);
            }
            return Ok(());
        };
        tracing::debug!(height, round, signatures = commit.signatures.len(), "decided");
        let msg = BlockMsg { version: WIRE_VERSION, block: block.clone(), commit: commit.clone() };
        match self.apply_block(msg.clone())? {
            Ok(true) => self.publish(self.topics.blocks.clone(), borsh::to_vec(&msg).expect("encodes")),
            Ok(false) => {}
            Err(why) => tracing::error!(height, "cannot apply the decided block: {why}"),
        }
        Ok(())
    }

    /// The head moved (a decision, a gossiped block or sync): drop the consensus log below
    /// it and wait to start the next height.
    fn consensus_head_moved(&mut self) -> anyhow::Result<()> {
        let Some(bft) = self.bft.as_mut() else { return Ok(()) };
        let (store, head) = {
            let chain = self.shared.chain();
            (chain.store.clone(), chain.height())
        };
        store.wal_prune_below(head + 1).context("pruning the consensus log")?;
        bft.head_moved(head);
        self.check_needed_blocks();
        Ok(())
    }

    /// `source` sent the message to this node; `author` published it (gossipsub's signed
    /// source).
    fn on_consensus_gossip(&mut self, source: PeerId, author: Option<PeerId>, data: &[u8]) -> MessageAcceptance {
        let head = self.shared.chain().height();
        let Some(bft) = self.bft.as_mut() else { return MessageAcceptance::Ignore };
        // Decoded and verified once, here (cheap checks first); the engine gets the result.
        let (height, msg) = match bft.check_gossip(head, data) {
            GossipVerdict::Accept(m) => (m.height(), Some(m)),
            // Valid (the same bytes as one verified before): not fed again, and passed on only
            // as its signer's own rebroadcast.
            GossipVerdict::Repeat { height, signer } => {
                if author.is_none() || author != p2p::peer_id_of(&signer) {
                    return MessageAcceptance::Ignore;
                }
                (height, None)
            }
            GossipVerdict::Ignore => return MessageAcceptance::Ignore,
            GossipVerdict::Reject(e) => {
                tracing::debug!(%source, "invalid consensus message: {e}");
                return MessageAcceptance::Reject;
            }
        };
        if bft.next_height.is_some_and(|h| height >= h) {
            bft.peers_started = true;
        }
        if let Some(msg) = msg {
            bft.push(EngineInput::Verified(msg));
        }
        if height > head + 1 {
            // Others are deciding later heights: fetch the finalized blocks this node missed.
            self.request_sync(source);
        }
        MessageAcceptance::Accept
    }

    fn on_proposed_gossip(&mut self, data: &[u8]) -> anyhow::Result<MessageAcceptance> {
        let head = self.shared.chain().height();
        let chain_id = self.shared.chain().chain_id;
        let Some(bft) = self.bft.as_mut() else { return Ok(MessageAcceptance::Ignore) };
        let Ok(msg) = cairn_ledger::decode::<ProposedBlock>("proposed block", data, p2p::GOSSIP_MESSAGE_BYTES_MAX)
        else {
            return Ok(MessageAcceptance::Reject);
        };
        let h = &msg.block.header;
        if msg.version != WIRE_VERSION
            || h.chain_id != chain_id
            || bft.engine.validators().power_of(&h.proposer).is_none()
        {
            return Ok(MessageAcceptance::Reject);
        }
        if h.height <= head || h.height > head + 1 + cairn_consensus::HEIGHTS_AHEAD_MAX {
            return Ok(MessageAcceptance::Ignore);
        }
        // The message is not signed: only a verified proposal naming the block vouches for
        // it. Named already: kept and passed on. Not yet (it came first, or it is made up):
        // kept aside, bounded, and not passed on; the proposal, when it comes, finds it.
        if bft.needed.contains_key(&(h.height, msg.block.hash())) {
            bft.keep_block(msg.block);
            self.check_needed_blocks();
            return Ok(MessageAcceptance::Accept);
        }
        bft.keep_unconfirmed(msg.block, data.len());
        Ok(MessageAcceptance::Ignore)
    }

    /// A module this node asked for arrived: stored off the event loop, then announced to the
    /// loop as stored.
    fn on_blob(&mut self, module_id: Hash, bytes: Vec<u8>) {
        // Only blobs this node asked for arrive here; the hash is the check. It asks every
        // peer, so the same module may arrive more than once.
        if Hash::of(&bytes) != module_id || !self.storing.insert(module_id) {
            return;
        }
        let store = self.shared.chain().store.clone();
        let commands = self.shared.commands.clone();
        tokio::spawn(async move {
            // Stored as it is, valid or not: a job on an invalid module ends `invalid_module`
            // everywhere (its reason says why), and re-executing one needs its bytes. Whoever
            // runs a job validates the module then.
            let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
                if store.has_blob(&module_id)? {
                    return Ok(false);
                }
                store.put_blob(&bytes)?;
                Ok(true)
            })
            .await;
            let fetched = match stored {
                Ok(Ok(stored)) => stored,
                Ok(Err(e)) => {
                    tracing::error!(%module_id, "cannot store module: {e:#}");
                    false
                }
                Err(e) => {
                    tracing::error!(%module_id, "storing the module failed: {e}");
                    false
                }
            };
            // Sent either way, so the loop forgets the module is being stored.
            let _ = commands.send(Command::ModuleFetched { module_id, stored: fetched }).await;
        });
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

/// Whether a consensus log entry is a vote signed by `me`.
fn is_own_vote(entry: &[u8], me: &cairn_ledger::PublicKey) -> bool {
    matches!(
        WalEntry::decode(entry),
        Ok(WalEntry::Message(ConsensusMessage::Vote(v))) if v.vote.validator == *me
    )
}

/// Test only ([`NodeConfig::test_crash_after_wal_append_at_height`]): dies between logging a
/// vote and sending it, once (the marker file keeps the restarted process alive).
fn crash_for_test(config: &NodeConfig, height: u64) {
    let marker = config.test_crash_marker_path();
    if marker.exists() {
        return;
    }
    if let Err(e) = std::fs::write(&marker, height.to_string()) {
        tracing::error!("cannot write {}: {e}", marker.display());
        return;
    }
    tracing::warn!(height, "test: aborting after logging a vote, before sending it");
    std::process::abort();
}

/// Test only ([`NodeConfig::test_equivocate`]): for a vote of this validator's, the same
/// vote for something else (nil for a block, a made-up block for nil), signed — what an
/// equivocating validator sends besides. `None` for any other message.
fn conflicting_vote(message: &[u8], key: &Keypair) -> Option<Vec<u8>> {
    let ConsensusMessage::Vote(signed) = ConsensusMessage::decode(message).ok()? else { return None };
    if signed.vote.validator != key.public() {
        return None;
    }
    let mut vote = signed.vote;
    vote.block_hash = match vote.block_hash {
        Some(_) => None,
        None => Some(Hash::of(message)),
    };
    Some(ConsensusMessage::Vote(SignedVote::sign(key, vote)).encode())
}

/// Runs a job in the sandbox and signs the result (blocking: call from a blocking thread).
fn execute(shared: &Shared, offer: &SignedOffer) -> anyhow::Result<JobResult> {
    let o = &offer.offer;
    let wasm = shared
        .chain()
        .store
        .blob(&o.module_id)?
        .with_context(|| format!("module {} is not stored here", o.module_id))?;
    let output_max = shared.chain().state.params().output_bytes_max as usize;
    // A sandbox failure of this node (not of the job) is an error, logged by the caller
    // with the job id: nothing is signed for it.
    let mut run = crate::exec::run_job(&shared.vm, &o.module_id, &wasm, &o.input, o.fuel_limit, output_max)?;
    if shared.config.test_wrong_results && run.status == JobStatus::Ok {
        // Test-only: a provider that lies about its output (to exercise challenges).
        run.output.push(b'!');
    }
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id: offer.job_id(),
        module_id: o.module_id,
        input_hash: o.input_hash(),
        output_hash: Hash::of(&run.output),
        fuel_used: run.fuel_used,
        status: run.status,
        provider: shared.key.public(),
    };
    Ok(JobResult::new(claim, run.output, &shared.key))
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Vote, VoteKind};

    use super::*;

    fn vote(key: &Keypair, block_hash: Option<Hash>) -> Vec<u8> {
        let v = Vote {
            version: FORMAT_VERSION,
            chain_id: Hash::ZERO,
            kind: VoteKind::Precommit,
            height: 3,
            round: 1,
            block_hash,
            validator: key.public(),
        };
        ConsensusMessage::Vote(SignedVote::sign(key, v)).encode()
    }

    #[test]
    fn an_equivocating_validator_signs_the_same_step_for_something_else_and_only_its_own_votes() {
        let key = Keypair::from_seed([1; 32]);
        for block_hash in [Some(Hash::of(b"block")), None] {
            let first = vote(&key, block_hash);
            let second = conflicting_vote(&first, &key).expect("a conflicting vote");
            let (Ok(ConsensusMessage::Vote(a)), Ok(ConsensusMessage::Vote(b))) =
                (ConsensusMessage::decode(&first), ConsensusMessage::decode(&second))
            else {
                panic!("votes")
            };
            assert_ne!(a.vote.block_hash, b.vote.block_hash);
            assert_eq!((a.vote.height, a.vote.round, a.vote.kind), (b.vote.height, b.vote.round, b.vote.kind));
            assert!(is_own_vote(&WalEntry::Message(ConsensusMessage::Vote(b)).encode(), &key.public()));
        }
        let other = Keypair::from_seed([2; 32]);
        assert_eq!(conflicting_vote(&vote(&other, None), &key), None, "never for someone else's vote");
        assert!(!is_own_vote(
            &WalEntry::Timeout { kind: cairn_consensus::TimeoutKind::Prevote, round: 0 }.encode(),
            &key.public()
        ));
    }
}
