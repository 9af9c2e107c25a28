//! The node: one event loop — an actor — that alone owns the chain, the mempool and the job
//! tracker, and carries out everything that changes them.
//!
//! - Inputs: the swarm's events ([`gossip`], [`sync`]), requests from the RPC server
//!   ([`view::Request`], each with its reply channel), the events of its own background work
//!   ([`Event`]: blocks executed and stored, provider runs, re-executions, verified gossip,
//!   modules fetched, answers read for peers), consensus timers, and a maintenance tick.
//! - Background work, each bounded: block execution and storage on the executor thread
//!   ([`executor`]), signature verification on the verifying threads ([`view::Verifier`]),
//!   job runs ([`provider`]) and re-executions ([`reexec`]) on blocking threads.
//! - Outputs: gossip ([`gossip::Net`]), the executor's jobs, replies, and a [`view::View`] of
//!   the head published after every block — what the RPC reads. No lock is shared between the
//!   RPC and the loop.
//!
//! Every validator runs the consensus engine ([`consensus`]), a lone validator too: there is
//! one block path, and each block is executed once here ([`crate::chain`]).

pub mod blobs;
mod consensus;
pub mod discovery;
pub mod executor;
#[cfg(test)]
mod fairness_tests;
mod faults;
mod gossip;
mod provider;
mod reexec;
mod statesync;
mod sync;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_consensus::Engine;
use cairn_contracts::{NonceRule, SignatureCheck, TxError};
use cairn_ledger::{Hash, JobResult, Keypair, SignedOffer, Transaction};
use cairn_rpc::JobStage;
use cairn_vm::Vm;
use futures::{FutureExt, StreamExt};
use libp2p::Multiaddr;
use libp2p::gossipsub;
use libp2p::swarm::SwarmEvent;
use tokio::sync::{mpsc, watch};

use self::consensus::Consensus;
use self::executor::{Done, ExecutedHere, Executor, Job};
use self::faults::Faults;
use self::gossip::{Net, Topic};
use self::provider::Provider;
use self::reexec::{Reexecutions, VerdictLookup};
use self::sync::SyncState;
use self::view::{LocalJob, NetInfo, Request, Verifier, View};
use crate::backpressure::{Admission, BlockSizer};
use crate::bft::Bft;
use crate::chain::{Chain, ExecutedBlock};
use crate::config::{BoundAddresses, NodeConfig};
use crate::early::{EarlyOffers, EarlyResults};
use crate::mempool::{Admitted, Dropped, Mempool, MempoolError, nonce_key};
use crate::metrics::{self, Metrics};
use crate::p2p::{self, BehaviourEvent, ModuleAnnounce, Topics, WIRE_VERSION};
use crate::tracker::Tracker;

/// Requests queued for the loop, at most (past it the RPC answers `overloaded`).
pub const REQUEST_QUEUE: usize = 4_096;
/// Events of the node's own background work queued for the loop, at most (each kind of work
/// is bounded on its own: this only smooths bursts).
pub const EVENT_QUEUE: usize = 4_096;

/// Offers and results to gossip wait this long at most, so that they go out in batches: each
/// message costs every peer about the same whatever it carries (its receipt, decryption,
/// decoding, validation and relay), so one carrying many saves the cores the chain needs. An
/// outbox that stayed empty for a whole interval goes out at once (the interval's tick is
/// overdue), so a lone offer or result waits for nothing. 10 ms rather than 5: 7 % less CPU
/// per job at half the peak and a lower submit→result p99 there (its median a few ms
/// higher), 3–6 % more jobs finalized past the peak, idle latency unchanged (BENCHMARKS.md,
/// "Gossip batches every 10 ms").
pub const OUTBOX_FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// Requests (or events) handled in one turn of the loop, at most: the others wait for the
/// next turn, after the network had its turn.
pub const TURN_BATCH_MAX: usize = 256;

/// The loop's own work (consensus timers, maintenance, the outbox's flush) waits for a turn
/// with nothing else ready, but never longer than this past its time: then it runs after
/// whatever turn comes ([`Node::due_work`]).
pub const LATE_WORK: Duration = Duration::from_millis(20);

/// A turn of the loop taking longer than this is logged (at debug level) with what it did.
pub const LOOP_TURN_SLOW: Duration = Duration::from_millis(20);

/// How long a node asked to stop (SIGTERM) may take to finish the jobs it is running and the
/// block it is writing; past it, it stops anyway (the jobs' slots pass to the next ranked
/// providers after `delivery_blocks`).
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Once its work is done, how long a stopping node keeps its connections up for its last
/// results and announcements to leave.
pub const STOP_SEND_TIME: Duration = Duration::from_millis(300);
/// How often a stopping node checks whether it is done.
pub const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// When the loop's own work is next due: maintenance every `maintenance_every`, and the
/// outbox's flush [`OUTBOX_FLUSH_INTERVAL`] after the last one. One timer wakes the loop for
/// the earliest of them and of the consensus timers; after every other turn each runs once it
/// is [`LATE_WORK`] late ([`Node::due_work`]).
#[derive(Debug)]
struct Clocks {
    maintenance_every: Duration,
    next_maintenance: Instant,
    next_flush: Instant,
}

impl Clocks {
    /// Maintenance due at once (then every `maintenance_every`), and a flush as soon as there
    /// is something to send.
    fn new(maintenance_every: Duration, now: Instant) -> Clocks {
        Clocks { maintenance_every, next_maintenance: now, next_flush: now }
    }

    /// When the loop must wake at the latest: the earliest of `consensus` (its next timer or
    /// height), maintenance, and the flush if the outbox holds something.
    fn next_due(&self, consensus: Option<Instant>, has_outbox: bool) -> Instant {
        let mut at = self.next_maintenance;
        if has_outbox {
            at = at.min(self.next_flush);
        }
        consensus.map_or(at, |c| c.min(at))
    }

    /// Whether maintenance is due at `now` and has waited at least `late`; if so, the next is
    /// `maintenance_every` later.
    fn maintenance_due(&mut self, now: Instant, late: Duration) -> bool {
        let due = now >= self.next_maintenance + late;
        if due {
            self.next_maintenance = now + self.maintenance_every;
        }
        due
    }

    /// Whether the outbox's flush is due at `now` and has waited at least `late`; if so, the
    /// next is an interval later. An outbox that stayed empty for a whole interval goes out at
    /// once.
    fn flush_due(&mut self, now: Instant, late: Duration) -> bool {
        let due = now >= self.next_flush + late;
        if due {
            self.next_flush = now + OUTBOX_FLUSH_INTERVAL;
        }
        due
    }
}

/// What woke the loop.
enum Input {
    Network(Box<SwarmEvent<BehaviourEvent>>),
    Request(Request),
    Event(Event),
    /// The timer of the consensus engine, maintenance or the outbox ([`Clocks`]).
    Timers,
    /// Asked to stop (SIGTERM, Ctrl-C).
    Stop,
    /// A stopping node's next check of whether it is done.
    StopCheck,
}

impl Input {
    fn what(&self) -> &'static str {
        match self {
            Input::Network(_) => "network",
            Input::Request(_) => "requests",
            Input::Event(Event::Block(_)) => "a block executed or stored",
            Input::Event(Event::Verified(_)) => "verified gossip",
            Input::Event(_) => "background work",
            Input::Timers => "timers, maintenance or gossip",
            Input::Stop | Input::StopCheck => "stopping",
        }
    }
}

/// What the node's background work hands back to the loop.
pub enum Event {
    /// The executor finished a job.
    Block(Done),
    /// A provider run ended.
    Ran(provider::Ran),
    /// A re-execution ended.
    Verdict(reexec::VerdictDone),
    /// A gossip batch's signatures were verified.
    Verified(gossip::Verified),
    /// A blob fetched from a peer was stored (`Ok(true)`), was there already, or could not
    /// be stored.
    BlobFetched {
        /// The blob.
        id: Hash,
        /// Whether it looks like a module (starts with wasm's magic bytes): compiled ahead.
        wasm: bool,
        /// What storing it gave.
        stored: anyhow::Result<bool>,
    },
    /// A peer's request was answered from the store.
    Answer(sync::Answer),
    /// A state restored from peers was written (or refused).
    StateRestored(statesync::Restored),
    /// Offers of open jobs assigned here were read from the store.
    OffersOnChain {
        /// The jobs looked up.
        job_ids: Vec<Hash>,
        /// The offers found (those whose block holds them), or why the store could not say.
        offers: anyhow::Result<Vec<SignedOffer>>,
    },
}

/// How an offer or account transaction reached admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Over RPC, with a place taken at the door ([`crate::backpressure::Admission::reserve`]).
    Reserved,
    /// From a peer, or held until the head reached its height.
    Unreserved,
}

/// Why an offer or account transaction was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// It breaks a chain rule.
    #[error("{0}")]
    Tx(TxError),
    /// The mempool refused it (full, or a replacement without a high enough fee).
    #[error("{0}")]
    Mempool(MempoolError),
    /// The node takes no new work now.
    #[error("{0}")]
    Overloaded(crate::backpressure::Overloaded),
}

/// A signature check for transactions the verifying threads already verified: admission
/// does not verify them again, nor take the signature cache's lock.
struct AlreadyVerified;

impl SignatureCheck for AlreadyVerified {
    fn check(&mut self, _: &Transaction, _: usize) -> cairn_contracts::Result<()> {
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What [`Node::new`] needs besides the chain.
pub struct Parts {
    /// The configuration.
    pub config: Arc<NodeConfig>,
    /// The node's key.
    pub key: Keypair,
    /// The sandbox.
    pub vm: Arc<Vm>,
    /// Admission's counters, shared with the RPC.
    pub admission: Arc<Admission>,
    /// The verifying threads, shared with the RPC.
    pub verifier: Verifier,
    /// Requests from the RPC.
    pub requests: mpsc::Receiver<Request>,
    /// Where the loop publishes its view.
    pub view: watch::Sender<Arc<View>>,
    /// The RPC address bound.
    pub rpc_addr: SocketAddr,
    /// The node's metrics (shared with the RPC's middleware and the metrics server).
    pub metrics: Arc<Metrics>,
    /// The metrics address bound, if metrics are served.
    pub metrics_addr: Option<SocketAddr>,
}

/// The node's event loop and everything it owns.
pub struct Node {
    config: Arc<NodeConfig>,
    key: Keypair,
    vm: Arc<Vm>,
    chain: Chain,
    mempool: Mempool,
    tracker: Tracker,
    early: EarlyResults,
    /// Gossiped offers naming a height this node has not reached yet.
    early_offers: EarlyOffers,
    admission: Arc<Admission>,
    sizer: BlockSizer,
    verifier: Verifier,
    net: Net,
    net_info: NetInfo,
    sync: SyncState,
    /// State sync, for a node that starts far behind its peers.
    state_sync: statesync::StateSync,
    /// Peers found through the DHT and dialed.
    discovery: discovery::Discovery,
    /// DHT lookups of the blobs this node misses.
    blobs: blobs::BlobLookups,
    /// When the blob budget was last enforced.
    blob_evictions: crate::backoff::Backoff<()>,
    /// Results whose output blob is being fetched before they are admitted.
    blob_results: blobs::ResultsAwaitingBlobs,
    /// Gossip batches at the verifying threads (at most [`gossip::VERIFYING_MAX`]).
    verifying: usize,
    executor: Executor,
    /// Blocks executed here and not yet final, for the decision to commit.
    executed: ExecutedHere,
    /// The height the executor is writing (committed or applied), if any.
    storing: Option<u64>,
    consensus: Option<Consensus>,
    provider: Option<Provider>,
    reexec: Reexecutions,
    faults: Faults,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    view: watch::Sender<Arc<View>>,
    rpc_addr: SocketAddr,
    metrics: Arc<Metrics>,
    metrics_addr: Option<SocketAddr>,
    /// Asked to stop: no new work is taken.
    stopping: bool,
    /// The budget of penalty log lines (a flood of junk must not fill the disk).
    penalty_logs: crate::log_limit::LogLimit,
    /// Blocks the executor ran up to the head: read when the head moved, before the next
    /// height's execution is asked for (the view publishes this, not a count that may include
    /// the next height's).
    executions_at_head: u64,
}

impl Node {
    /// The view of a chain as opened, before the loop runs.
    pub fn initial_view(chain: &Chain) -> View {
        View {
            chain_id: chain.chain_id,
            genesis: chain.genesis.clone(),
            head: chain.head.header.clone(),
            state: chain.head.state.clone(),
            net: NetInfo::default(),
            blocks_executed: 0,
        }
    }

    /// Builds the swarm, starts listening and dials the bootstrap peers, and starts the
    /// executor.
    pub fn new(chain: Chain, parts: Parts) -> anyhow::Result<Node> {
        let Parts { config, key, vm, admission, verifier, requests, view, rpc_addr, metrics, metrics_addr } = parts;
        let faults = Faults::from_config(&config)?;
        let topics = Topics::new(&chain.chain_id);
        let mut swarm = p2p::build_swarm(&key, &topics)?;
        let listen: Multiaddr =
            config.listen.parse().with_context(|| format!("bad listen address {}", config.listen))?;
        swarm.listen_on(listen).context("cannot listen for peers")?;
        for addr in &config.bootstrap {
            let ma: Multiaddr = addr.parse().with_context(|| format!("bad bootstrap address {addr}"))?;
            swarm.dial(ma).with_context(|| format!("cannot dial {addr}"))?;
        }
        let net_info = NetInfo { peer_id: swarm.local_peer_id().to_string(), ..NetInfo::default() };
        let mut net = Net::new(swarm, topics);
        let consensus = if config.validator {
            let engine =
                Engine::new(key.clone(), chain.chain_id, chain.validators.as_ref().clone(), config.consensus.clone())
                    .context("--validator")?;
            net.subscribe_validator_topics().context("subscribe")?;
            Some(Consensus::new(Bft::new(engine)))
        } else {
            None
        };
        let block_txs_max = chain.state().params().block_txs_max as usize;
        let sizer = BlockSizer::new(block_txs_max, Duration::from_millis(config.block_time_ms));
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        let executor = Executor::start(events.clone(), faults.slow_blocks())?;
        let provider = config.provider.then(|| Provider::new(config.executions_max));
        Ok(Node {
            mempool: Mempool::new(config.mempool_limits()),
            tracker: Tracker::default(),
            early: EarlyResults::default(),
            early_offers: EarlyOffers::default(),
            sizer,
            net,
            net_info,
            sync: SyncState::default(),
            state_sync: statesync::StateSync::default(),
            discovery: discovery::Discovery::default(),
            blobs: blobs::BlobLookups::default(),
            blob_evictions: crate::backoff::Backoff::new(blobs::BLOB_EVICTION_INTERVAL, 1),
            blob_results: blobs::ResultsAwaitingBlobs::default(),
            verifying: 0,
            executor,
            executed: ExecutedHere::default(),
            storing: None,
            consensus,
            provider,
            reexec: Reexecutions::new(),
            faults,
            requests,
            events,
            events_rx,
            view,
            rpc_addr,
            metrics,
            metrics_addr,
            executions_at_head: 0,
            stopping: false,
            penalty_logs: crate::log_limit::LogLimit::default(),
            config,
            key,
            vm,
            chain,
            admission,
            verifier,
        })
    }

    /// Blocks the executor ran so far (each block at most once per node).
    pub fn block_executions(&self) -> u64 {
        self.executor.executions()
    }

    fn block_time(&self) -> Duration {
        Duration::from_millis(self.config.block_time_ms.max(1))
    }

    /// Runs until `shutdown` resolves or a fatal error (storage) occurs.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut clocks = Clocks::new(Duration::from_millis(self.config.rebroadcast_ms.max(100) / 2), Instant::now());
        tokio::pin!(shutdown);
        self.publish_view();
        self.provide_stored_blobs()?;
        self.start_consensus()?;
        // Once asked to stop: until when it may finish its running jobs, and, once they are
        // done, until when it keeps the network running for their results to leave.
        let mut stop_by: Option<Instant> = None;
        let mut sent_by: Option<Instant> = None;
        let mut stop_check = tokio::time::interval(STOP_CHECK_INTERVAL);
        // Whether the last turn handled requests too: requests kept coming, and the others
        // wait behind them.
        let mut requests_before = false;
        loop {
            let block_time = self.block_time();
            let consensus_due = self.consensus.as_ref().and_then(|c| c.next_deadline(block_time));
            let timer = tokio::time::sleep_until(clocks.next_due(consensus_due, self.net.has_outbox()).into());
            // Requests first (a client waits on each), then the node's own work, then the
            // network, then the timer: under load every source is ready at once, and none is
            // starved (the queues are drained in bounded batches, each turn handles one
            // network event, the others get theirs after two turns of requests in a row,
            // `after_requests`, and due work runs once it is late, `due_work`).
            let input = tokio::select! {
                biased;
                _ = &mut shutdown, if stop_by.is_none() => Input::Stop,
                _ = stop_check.tick(), if stop_by.is_some() => Input::StopCheck,
                Some(request) = self.requests.recv() => Input::Request(request),
                Some(event) = self.events_rx.recv() => Input::Event(event),
                ev = self.net.swarm().select_next_some() => Input::Network(Box::new(ev)),
                _ = timer => Input::Timers,
            };
            let woke = Instant::now();
            let what = input.what();
            let requests_now = matches!(input, Input::Request(_));
            match input {
                Input::Network(ev) => self.on_swarm_event(*ev)?,
                Input::Request(request) => {
                    self.on_request(request)?;
                    for _ in 1..TURN_BATCH_MAX {
                        let Ok(request) = self.requests.try_recv() else { break };
                        self.on_request(request)?;
                    }
                    if requests_before {
                        self.after_requests()?;
                    }
                }
                Input::Event(event) => {
                    self.on_event(event)?;
                    for _ in 1..TURN_BATCH_MAX {
                        let Ok(event) = self.events_rx.try_recv() else { break };
                        self.on_event(event)?;
                    }
                }
                // Nothing else was ready: whatever is due.
                Input::Timers => self.due_work(&mut clocks, Duration::ZERO)?,
                Input::Stop => {
                    stop_by = Some(Instant::now() + STOP_GRACE);
                    self.begin_stop();
                }
                Input::StopCheck => {}
            }
            if let Some(by) = stop_by {
                let now = Instant::now();
                if sent_by.is_none() && self.stopped_work() {
                    self.net.flush_outbox();
                    sent_by = Some(now + STOP_SEND_TIME);
                }
                if sent_by.is_some_and(|at| now >= at) {
                    break;
                }
                if now >= by {
                    tracing::warn!(
                        running = self.provider.as_ref().map_or(0, |p| p.running()),
                        "stopping before its running jobs finished ({} s): their slots pass to the next \
                         ranked providers after delivery_blocks",
                        STOP_GRACE.as_secs()
                    );
                    break;
                }
            }
            requests_before = requests_now;
            let handled = woke.elapsed();
            self.due_work(&mut clocks, LATE_WORK)?;
            self.pump_consensus()?;
            self.net.flush_outbox_if_full();
            let took = woke.elapsed();
            if took > LOOP_TURN_SLOW {
                tracing::debug!(
                    took_ms = took.as_millis() as u64,
                    what,
                    handling_ms = handled.as_millis() as u64,
                    "slow turn of the event loop"
                );
            }
        }
        self.net.flush_outbox();
        tracing::info!("node stopped");
        Ok(())
    }

    /// After a second turn of requests in a row (they come first): one event of the node's
    /// own work and one of the network, if either is ready. So a flood of requests slows the
    /// rest without stopping it: blocks still commit, peers are still heard. Under ordinary
    /// load a turn of requests is followed by others, and this costs nothing.
    fn after_requests(&mut self) -> anyhow::Result<()> {
        if let Ok(event) = self.events_rx.try_recv() {
            self.on_event(event)?;
        }
        if let Some(ev) = self.net.swarm().select_next_some().now_or_never() {
            self.on_swarm_event(ev)?;
        }
        Ok(())
    }

    /// The loop's own work that has been due for at least `late`: the consensus timers,
    /// maintenance and the outbox's flush. On the loop's timer (nothing else was ready) all
    /// that is due; after every other turn what waited [`LATE_WORK`], so that a flood of
    /// anything before the timer in the loop's order (requests, network events) delays them by
    /// that much at most, while under ordinary load they wait for the end of a burst (a flush
    /// then sends the whole burst's gossip at once).
    fn due_work(&mut self, clocks: &mut Clocks, late: Duration) -> anyhow::Result<()> {
        let now = Instant::now();
        if let Some(c) = self.consensus.as_mut()
            && let Some(cutoff) = now.checked_sub(late)
        {
            c.fire_due(cutoff);
        }
        if clocks.maintenance_due(now, late) {
            self.maintain()?;
        }
        if self.net.has_outbox() && clocks.flush_due(now, late) {
            self.net.flush_outbox();
        }
        Ok(())
    }

    /// Asked to stop: take no new work (the RPC refuses submissions, the provider starts no
    /// new job), and let the running jobs finish within [`STOP_GRACE`].
    fn begin_stop(&mut self) {
        self.admission.close();
        self.stopping = true;
        let running = self.provider.as_ref().map_or(0, |p| p.running());
        tracing::info!(running, "stopping: no new jobs; finishing the running ones and the block being written");
    }

    /// Whether a stopping node has nothing left to finish: no job running, no block being
    /// written (its results are then queued to be sent).
    fn stopped_work(&self) -> bool {
        self.provider.as_ref().is_none_or(|p| p.running() == 0) && self.storing.is_none()
    }

    fn on_event(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Block(done) => self.on_block_done(done)?,
            Event::Ran(ran) => self.on_ran(ran)?,
            Event::Verdict(done) => self.on_verdict(done)?,
            Event::Verified(v) => self.on_verified(v)?,
            Event::BlobFetched { id, wasm, stored } => self.on_blob_fetched(id, wasm, stored)?,
            Event::Answer(answer) => self.on_answer(answer),
            Event::OffersOnChain { job_ids, offers } => self.on_offers_on_chain(job_ids, offers)?,
            Event::StateRestored(restored) => self.on_state_restored(restored)?,
        }
        Ok(())
    }

    fn on_request(&mut self, request: Request) -> anyhow::Result<()> {
        match request {
            Request::Submit { tx, reply } => {
                // Its place was taken at the door: not refused here as overload.
                let admitted = self.admit(&tx, Arrival::Reserved);
                if admitted.is_ok() {
                    self.admitted(&tx, true)?;
                }
                let _ = reply.send(admitted);
            }
            Request::Check { tx, reply } => {
                // What `admit` checks, without admitting.
                let _ = reply.send(self.rules_admit(&tx));
            }
            Request::Job { job_id, reply } => {
                let pending = self.mempool.offer(&job_id).map(|o| {
                    let state_nonce = self.chain.state().account(&o.offer.client).nonce;
                    (o.clone(), self.mempool.is_includable(o.offer.client, o.offer.nonce, state_nonce))
                });
                let dropped = match pending {
                    Some(_) => None,
                    None => self.tracker.dropped(&job_id).map(|(o, why)| (o.clone(), why.map(str::to_owned))),
                };
                let _ = reply.send(LocalJob { tracked: self.tracker.get(&job_id), pending, dropped });
            }
            Request::Subscribe { job_id, reply } => {
                let _ = reply.send(self.tracker.subscribe(&job_id));
            }
            Request::NextNonce { address, reply } => {
                let _ = reply.send(self.mempool.next_nonce(address, self.chain.state().account(&address).nonce));
            }
            Request::ModuleUploaded(id) => {
                let msg = ModuleAnnounce { version: WIRE_VERSION, module_id: id };
                self.net.publish(Topic::Modules, borsh::to_vec(&msg).expect("encodes"));
                self.prepare_in_background(id);
                self.blob_stored(id)?;
            }
            Request::BlobUploaded(id) => self.blob_stored(id)?,
            Request::FetchBlob(id) => self.request_blob(id),
        }
        Ok(())
    }

    /// A blob is stored here: what waited for it can go on, and the DHT learns who holds it.
    fn blob_stored(&mut self, id: Hash) -> anyhow::Result<()> {
        self.provide_blob(id);
        self.verdicts_blob_stored(&id);
        for r in self.blob_results.take(&id) {
            self.accept_result(r)?;
        }
        self.provider_blob_stored(&id)
    }

    /// Checks an offer or account transaction (its signatures verified already) against the
    /// head state under the mempool's nonce rule (the window, and a balance that covers it on
    /// top of the sender's other pending transactions), and admits it to the mempool, or lets
    /// it replace the pending one with the same nonce ([`crate::mempool`]).
    fn admit(&mut self, tx: &Transaction, arrival: Arrival) -> Result<Admitted, AdmitError> {
        self.admissible(tx, arrival)?;
        let admitted = self.mempool.insert_nonced(tx.clone()).map_err(AdmitError::Mempool)?;
        self.admission.set_pending(self.mempool.txs_len());
        if let Transaction::Offer(o) = tx
            && admitted != Admitted::Duplicate
        {
            self.tracker.advance(o.job_id(), JobStage::Accepted, None, None);
        }
        if let Admitted::Replaced(old) = &admitted {
            self.report_dropped(&[Dropped {
                tx: (**old).clone(),
                reason: "replaced by a transaction with the same nonce and a higher fee".into(),
            }]);
        }
        Ok(admitted)
    }

    /// Whether `tx` would be admitted now, its signature aside (the caller's): the node not
    /// overloaded (unless `tx` replaces a pending transaction, which is no new work, or
    /// admission counted it already), and the chain's rules against the head and what the
    /// sender has pending. The mempool's own room is not looked at.
    fn admissible(&self, tx: &Transaction, arrival: Arrival) -> Result<(), AdmitError> {
        let Some((sender, nonce)) = nonce_key(tx) else {
            return Err(AdmitError::Tx(TxError::NotSubmittable));
        };
        if arrival == Arrival::Unreserved
            && let Err(overloaded) = self.admission.check_now()
            && !self.mempool.has_nonce(sender, nonce)
        {
            return Err(AdmitError::Overloaded(overloaded));
        }
        self.rules_admit(tx).map_err(AdmitError::Tx)
    }

    /// The chain's rules `tx` must pass to be admitted, its signature aside: against the head,
    /// under the mempool's nonce rule with what its sender has pending.
    fn rules_admit(&self, tx: &Transaction) -> Result<(), TxError> {
        let (sender, nonce) = nonce_key(tx).ok_or(TxError::NotSubmittable)?;
        let rule = NonceRule::Pending { pending_spend: self.mempool.pending_spend(sender, nonce) };
        self.chain.state().check_tx(tx, self.chain.height() + 1, rule, &mut AlreadyVerified)
    }

    /// What follows an admission: gossip (what came over RPC; gossip relays the rest), the
    /// re-execution a challenge will need, the offers this provider may run now, and the
    /// results that came before their offer.
    fn admitted(&mut self, tx: &Transaction, from_rpc: bool) -> anyhow::Result<()> {
        if from_rpc {
            self.net.queue_tx(tx.clone());
        }
        match tx {
            Transaction::Account(t) => {
                if let cairn_ledger::Action::Challenge { job_id, .. } = t.tx.action {
                    self.want_verdicts(&[job_id]);
                }
            }
            Transaction::Offer(o) => self.offer_known(o.job_id())?,
            _ => {}
        }
        if let Some((sender, _)) = nonce_key(tx) {
            self.consider_includable_offers(sender)?;
        }
        Ok(())
    }

    /// The held offers whose assignment height the head (`height`) now reaches are admitted
    /// as if they had just arrived (one the block included fails admission as a stale one).
    fn admit_early_offers(&mut self, height: u64) -> anyhow::Result<()> {
        for offer in self.early_offers.take_ready(height) {
            let tx = Transaction::Offer(offer);
            if self.admit(&tx, Arrival::Unreserved).is_ok() {
                self.admitted(&tx, false)?;
            }
        }
        Ok(())
    }

    /// An offer arrived here (admitted, or on chain): the results that came before it are
    /// awaited now.
    fn offer_known(&mut self, job_id: Hash) -> anyhow::Result<()> {
        for r in self.early.take(&job_id) {
            if self.may_keep_result(&r) {
                self.accept_result(r)?;
            }
        }
        Ok(())
    }

    /// Keeps a result in the mempool (its own room), tracks it, and asks for the re-execution
    /// a disagreement will need. A result whose output is in a blob waits until the blob is
    /// stored here (fetched from its holders), so that whoever includes it holds the output;
    /// only one from a provider the job is assigned to waits (and costs a fetch): signed
    /// results cost nothing to make up.
    fn accept_result(&mut self, r: JobResult) -> anyhow::Result<()> {
        if r.output_in_blob && !self.chain.store.has_blob(&r.claim.output_hash).context("reading the blob store")? {
            let (job_id, provider) = (r.claim.job_id, r.claim.provider);
            let pending = self.mempool.offer(&job_id).map(|o| &o.offer);
            if !provider::may_deliver(self.chain.state(), &job_id, pending, &provider) {
                tracing::debug!(%job_id, %provider, "a result whose output is in a blob, from a provider not assigned");
                return Ok(());
            }
            let blob = r.claim.output_hash;
            if self.blob_results.hold(r, Instant::now()) {
                tracing::debug!(%blob, "fetching a result's output blob before admitting it");
                self.request_blob(blob);
            }
            return Ok(());
        }
        let new = match self.mempool.insert_result(r.clone()) {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!("result dropped: {e}");
                return Ok(());
            }
        };
        if new {
            self.tracker.advance(r.claim.job_id, JobStage::Executed, Some(&r), None);
            if self.disputes(&r) {
                self.want_verdicts(&[r.claim.job_id]);
            }
        }
        Ok(())
    }

    /// Whether a result disagrees with another result of its job (on chain, not yet settled by
    /// a re-execution, or pending here): the block that includes both re-executes the job.
    fn disputes(&self, r: &JobResult) -> bool {
        let outcome = cairn_contracts::Outcome::of(&r.claim);
        let on_chain = self
            .chain
            .state()
            .job(&r.claim.job_id)
            .is_some_and(|j| j.verified.is_none() && j.deliveries().any(|d| d.outcome != outcome));
        on_chain
            || self
                .mempool
                .results_of(&r.claim.job_id)
                .any(|other| cairn_contracts::Outcome::of(&other.claim) != outcome)
    }

    /// Tells the subscribers of dropped offers why.
    fn report_dropped(&mut self, dropped: &[Dropped]) {
        for d in dropped {
            if let Transaction::Offer(o) = &d.tx {
                tracing::info!(job_id = %o.job_id(), reason = %d.reason, "offer dropped");
                self.tracker.drop_offer(o, &d.reason);
            }
        }
    }

    /// Whether the executor is writing a block (the head is about to move).
    fn storing_block(&self) -> bool {
        self.storing.is_some()
    }

    /// A finalized block (decided here, gossiped, or synced): committed if this node executed
    /// it, otherwise executed and written. `announce`: gossip it once stored (a decision of
    /// this validator). Returns false if it is ahead of the head (the caller syncs).
    fn on_finalized_block(
        &mut self,
        block: cairn_ledger::Block,
        commit: cairn_ledger::Commit,
        announce: bool,
    ) -> anyhow::Result<bool> {
        let height = block.header.height;
        let head = self.chain.height();
        if height <= head || self.storing == Some(height) {
            return Ok(true);
        }
        if height > head + 1 || self.storing.is_some() {
            return Ok(height <= head + 1);
        }
        self.apply_finalized(block, commit, announce)?;
        Ok(true)
    }

    /// A finalized block (the next one): written from the executor's cached execution, or
    /// executed and written there.
    fn apply_finalized(
        &mut self,
        block: cairn_ledger::Block,
        commit: cairn_ledger::Commit,
        announce: bool,
    ) -> anyhow::Result<()> {
        let height = block.header.height;
        let verdicts = VerdictLookup::for_block(self.reexec.verdicts(), &block.txs);
        self.executor.submit(Job::Apply { base: self.chain.base(), block, commit, verdicts, announce })?;
        self.storing = Some(height);
        Ok(())
    }

    fn on_block_done(&mut self, done: Done) -> anyhow::Result<()> {
        match done {
            Done::Built { height, round, result, missing, took } => {
                self.metrics.block_execution_seconds.observe(took.as_secs_f64());
                self.on_built(height, round, result, missing, took)
            }
            Done::Checked { height, block_hash, result, took } => {
                self.metrics.block_execution_seconds.observe(took.as_secs_f64());
                self.on_checked(height, block_hash, result, took)
            }
            Done::Stored { executed, commit, took, wrote, announcement } => {
                self.storing = None;
                self.sync_stored(executed.block.header.height);
                let provider_before = self.chain.state().provider(&self.key.public()).cloned();
                self.chain.advance(&executed, commit);
                self.metrics.store_write_seconds.observe(wrote.as_secs_f64());
                if let Some(took) = took {
                    self.metrics.block_execution_seconds.observe(took.as_secs_f64());
                    self.sizer.observe_build(executed.block.txs.len(), took);
                }
                if let Some(message) = announcement {
                    self.net.publish(Topic::Blocks, message);
                }
                self.after_finalized(&executed)?;
                self.record_head(&executed, provider_before.as_ref());
                self.consensus_head_moved()?;
                self.apply_next_synced()
            }
            Done::NotApplied { height, error } => {
                self.storing = None;
                match error {
                    crate::chain::ExecError::Pending(missing) => {
                        // Its re-executions have not run here yet: run them, and ask for the
                        // block again once they have (sync or gossip brings it).
                        self.reexec.blocked = true;
                        self.want_verdicts(&missing);
                    }
                    crate::chain::ExecError::Invalid(why) => {
                        tracing::warn!(height, "finalized block refused: {why}");
                        self.sync_failed(height, true);
                        return Ok(());
                    }
                    crate::chain::ExecError::Fault(e) => return Err(e),
                }
                self.sync_failed(height, false);
                Ok(())
            }
            Done::StoreFailed(e) => Err(e.context("the block executor failed")),
        }
    }

    /// Bookkeeping once a block is final here.
    fn after_finalized(&mut self, f: &ExecutedBlock) -> anyhow::Result<()> {
        let height = f.block.header.height;
        tracing::info!(height, txs = f.block.txs.len(), receipts = f.executed.receipts.len(), "finalized");
        // Read after the head moved and before the next height's execution is asked for.
        self.executions_at_head = self.executor.executions();
        self.executed.head_moved(height);
        // What admission lets in follows what the next blocks can take.
        self.admission.update(self.sizer.cap());
        self.mempool.remove_included(&f.block);
        self.admission.set_pending(self.mempool.txs_len());
        let state = self.chain.head.state.clone();
        self.admit_early_offers(height)?;
        // A job with redundancy k is final once its k-th result is (until then its results are
        // only included).
        let open = |id: &Hash| {
            state.job(id).is_some_and(|j| {
                matches!(j.phase, cairn_contracts::JobPhase::Open | cairn_contracts::JobPhase::Disputed)
            })
        };
        let mut offers = Vec::new();
        for tx in &f.block.txs {
            match tx {
                Transaction::Result(r) => {
                    let id = r.claim.job_id;
                    let stage = if open(&id) { JobStage::Included } else { JobStage::Finalized };
                    self.tracker.advance(id, stage, Some(r), Some(height));
                }
                Transaction::Offer(o) => {
                    self.tracker.advance(o.job_id(), JobStage::Accepted, None, None);
                    offers.push(o.clone());
                }
                // A disputed job that closed with its results is final once re-executed.
                Transaction::Resolve { job_id } => {
                    if !open(job_id) {
                        self.tracker.advance(*job_id, JobStage::Finalized, None, Some(height));
                    }
                }
                Transaction::Account(_) => {}
            }
        }
        for id in &f.executed.expired {
            self.tracker.advance(*id, JobStage::Expired, None, Some(height));
        }
        // A job that closed at its deadline with some of its k results is final with this
        // block, though the block holds none of its result transactions.
        for id in &f.executed.closed {
            self.tracker.advance(*id, JobStage::Finalized, None, Some(height));
        }
        self.publish_view();
        // Re-execute ahead what the chain now waits for (challenges and disputes this node may
        // not have seen arrive), so the blocks that resolve them do not wait here.
        let awaiting: Vec<Hash> =
            state.awaiting_resolution().take(crate::verdicts::VERDICT_REQUESTS_MAX).copied().collect();
        self.want_verdicts(&awaiting);
        for o in &offers {
            self.offer_known(o.job_id())?;
        }
        self.provider_after_block(offers)
    }

    /// The head's metrics, after a block became final here: heights, the block's size, the
    /// mempool, and this node's account and provider standing (`before`: its provider entry
    /// before the block, to tell a penalty from an unbonding).
    fn record_head(&self, f: &ExecutedBlock, before: Option<&cairn_contracts::Provider>) {
        let m = &self.metrics;
        let height = f.block.header.height;
        metrics::set(&m.head_height, height);
        metrics::set(&m.head_lag_blocks, self.net_info.peer_height.saturating_sub(height));
        m.block_transactions.observe(f.block.txs.len() as f64);
        metrics::set(&m.mempool_transactions, self.mempool.txs_len() as u64);
        metrics::set(&m.mempool_results, self.mempool.results_len() as u64);
        let state = self.chain.state();
        let me = self.key.public();
        metrics::set(&m.account_balance, state.account(&me).balance);
        let after = state.provider(&me);
        if let Some(p) = after {
            metrics::set(&m.provider_stake, p.stake);
            metrics::set(&m.provider_active_jobs, u64::from(p.active_jobs));
        }
        if let Some(before) = before {
            m.provider_slashed.inc_by(stake_lost(before, after, height));
        }
    }

    /// A peer showed that `height` is final: how far behind this node is.
    fn peer_at(&mut self, height: u64) {
        if height > self.net_info.peer_height {
            self.net_info.peer_height = height;
            metrics::set(&self.metrics.head_lag_blocks, height.saturating_sub(self.chain.height()));
            if height > self.chain.height() {
                self.publish_view();
            }
        }
    }

    /// Publishes the head and the network facts for the RPC.
    fn publish_view(&self) {
        let view = View {
            chain_id: self.chain.chain_id,
            genesis: self.chain.genesis.clone(),
            head: self.chain.head.header.clone(),
            state: self.chain.head.state.clone(),
            net: self.net_info.clone(),
            blocks_executed: self.executions_at_head,
        };
        self.view.send_replace(Arc::new(view));
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) -> anyhow::Result<()> {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = format!("{address}/p2p/{}", self.net_info.peer_id);
                tracing::info!("listening on {full}");
                self.net_info.listen_addrs.push(full);
                self.publish_view();
                self.write_addresses();
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.faults.is_isolated() => {
                let _ = self.net.swarm().disconnect_peer_id(peer_id);
            }
            // A peer that lied to sync is kept away while it is distrusted.
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.sync.is_liar(&peer_id) => {
                let _ = self.net.swarm().disconnect_peer_id(peer_id);
            }
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                self.net_info.peers = self.net.peers().len();
                metrics::set(&self.metrics.peers, self.net_info.peers as u64);
                self.publish_view();
                if num_established.get() == 1 {
                    tracing::info!(%peer_id, "peer connected");
                    self.request_sync(peer_id);
                    let modules: Vec<Hash> = if self.faults.blobs_by_dht_only() {
                        Vec::new()
                    } else {
                        self.provider.iter().flat_map(|p| p.blobs_awaited()).copied().collect()
                    };
                    for m in modules {
                        self.request_blob_from(peer_id, m);
                    }
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                self.net_info.peers = self.net.peers().len();
                metrics::set(&self.metrics.peers, self.net_info.peers as u64);
                self.publish_view();
                if num_established == 0 {
                    self.net.forget(&peer_id);
                    tracing::info!(%peer_id, "peer disconnected");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(libp2p::identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identify(peer_id, info),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message)?,
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => {
                self.net.on_slow_peer(peer_id, failed_messages.priority + failed_messages.non_priority);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev)?,
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev)?,
            _ => {}
        }
        Ok(())
    }

    /// Keeps the node connected: redials the bootstrap peers when it has none but liars (they
    /// restarted, a partition healed, or the peers it has lied to sync), and, in tests, cuts
    /// it off while it is isolated.
    fn maintain_peers(&mut self) {
        let (isolated, changed) = self.faults.isolated();
        if let Some(isolated) = changed {
            tracing::warn!(isolated, "test: network partition switched");
        }
        if isolated {
            for peer in self.net.peers() {
                let _ = self.net.swarm().disconnect_peer_id(peer);
            }
            return;
        }
        // No peer, or only peers that lied to sync (they are being dropped): dial the
        // bootstrap peers.
        if self.net.peers().iter().all(|p| self.sync.is_liar(p)) {
            for addr in &self.config.bootstrap {
                if let Ok(ma) = addr.parse::<Multiaddr>() {
                    let _ = self.net.swarm().dial(ma);
                }
            }
        }
    }

    fn maintain(&mut self) -> anyhow::Result<()> {
        self.maintain_peers();
        if !self.faults.is_isolated() {
            self.maintain_discovery();
        }
        self.resume_state_sync();
        self.probe_sync();
        for topic in gossip::Topic::ALL {
            let peers = self.net.mesh_peers(topic) as u64;
            metrics::set(&self.metrics.topic_peers.get_or_create(&metrics::TopicLabel { topic: topic.label() }), peers);
        }
        metrics::set(&self.metrics.mempool_transactions, self.mempool.txs_len() as u64);
        metrics::set(&self.metrics.mempool_results, self.mempool.results_len() as u64);
        self.sync.forget_finished_announcements();
        self.evict_blobs()?;
        self.early.expire(Instant::now());
        self.early_offers.expire(Instant::now());
        self.blob_results.expire(Instant::now());
        let gap_timeout = Duration::from_millis(self.config.mempool_gap_timeout_ms);
        let dropped = self.mempool.prune(self.chain.state(), self.chain.height() + 1, gap_timeout);
        self.admission.set_pending(self.mempool.txs_len());
        self.report_dropped(&dropped);
        let interval = Duration::from_millis(self.config.rebroadcast_ms);
        let (offers, results) = self.mempool.due_for_rebroadcast(interval, p2p::BATCH_ITEMS_MAX);
        for tx in offers {
            self.net.queue_tx(tx);
        }
        for r in results {
            self.net.queue_result(r);
        }
        let blobs: Vec<Hash> = self
            .provider
            .iter()
            .flat_map(|p| p.blobs_awaited())
            .chain(self.reexec.blobs_needed())
            .chain(self.blob_results.blobs())
            .copied()
            .collect();
        for b in blobs {
            self.request_blob(b);
        }
        Ok(())
    }

    /// Writes `node.json` (pid, RPC and listen addresses) for tools and tests.
    fn write_addresses(&self) {
        let bound = BoundAddresses {
            pid: std::process::id(),
            rpc: self.rpc_addr,
            p2p: self.net_info.listen_addrs.clone(),
            metrics: self.metrics_addr,
        };
        let path = self.config.addresses_path();
        let text = serde_json::to_string_pretty(&bound).expect("serializes");
        // Write then rename, so readers never see half a file.
        let tmp = path.with_extension("json.tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// Stake a provider lost to penalties in the block at `height`: what it had bonded (its stake
/// and its unbonding entries) less what unbonding released at that height, less what it has
/// bonded after. A registration or a top-up only adds; an unbonding only moves stake between
/// the two.
pub fn stake_lost(before: &cairn_contracts::Provider, after: Option<&cairn_contracts::Provider>, height: u64) -> u64 {
    let bonded = |p: &cairn_contracts::Provider| {
        p.unbonding.iter().fold(p.stake, |sum, (_, amount)| sum.saturating_add(*amount))
    };
    let released: u64 = before.unbonding.iter().filter(|(at, _)| *at <= height).map(|(_, amount)| *amount).sum();
    bonded(before).saturating_sub(released).saturating_sub(after.map_or(0, bonded))
}
