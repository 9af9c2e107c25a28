//! Block execution and storage off the event loop.
//!
//! One thread, the executor, runs every block execution and every block write of the node,
//! in the order the loop asks for them, and hands each result back to the loop as an
//! [`Event`](super::Event). The loop keeps serving gossip, votes and RPC meanwhile. One thread
//! and one order are what keep the state tree consistent: a block is written before the next
//! height is executed on top of it (the tree's previous version is read from the store).
//!
//! The executor keeps its executions in a [`BlockCache`] by (height, hash): the proposer's own
//! block and every proposal checked. A finalized block ([`Job::Apply`]: decided here, gossiped
//! or synced) is written from its cached execution when there is one — also when the check
//! was still queued as the decision came, since jobs run in order — and only a block this
//! node never executed is executed then: no block is executed twice here. The loop keeps the
//! same executions to answer the engine at once for a block it already executed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_contracts::TxError;
use cairn_ledger::{Block, Commit, Hash, PublicKey, Transaction};
use tokio::sync::mpsc;

use super::Event;
use super::faults::SlowBlocks;
use super::reexec::VerdictLookup;
use crate::chain::{Base, ExecError, ExecutedBlock, Lookup, persist};

/// Jobs waiting for the executor, at most (the loop has at most a few in flight: a build or a
/// few checks, a commit, an apply).
pub const EXECUTOR_QUEUE: usize = 64;
/// Executed blocks kept for a decision, at most (proposals of the next heights and rounds).
pub const EXECUTED_CACHED_MAX: usize = 32;

/// What the executor does.
pub enum Job {
    /// Build the next block (this validator proposes at `round`).
    Build {
        /// The head to build on.
        base: Base,
        /// The round proposed at.
        round: u32,
        /// The proposer (this validator).
        proposer: PublicKey,
        /// The candidates, in order.
        candidates: Vec<Transaction>,
        /// The proposer's clock.
        time_ms: u64,
        /// The verdicts the candidates' resolutions need.
        verdicts: VerdictLookup,
    },
    /// Execute a proposed block on the head.
    Check {
        /// The head.
        base: Base,
        /// The block.
        block: Block,
        /// The verdicts its resolutions need.
        verdicts: VerdictLookup,
    },
    /// Make a finalized block final here: write the execution of it this executor ran before
    /// (built or checked), if it has one, and otherwise execute it and write it.
    Apply {
        /// The head.
        base: Base,
        /// The block.
        block: Block,
        /// Its commit.
        commit: Commit,
        /// The verdicts its resolutions need.
        verdicts: VerdictLookup,
        /// Gossip it once stored.
        announce: bool,
    },
}

/// A block built, with the candidates left out and why.
pub type Built = (Arc<ExecutedBlock>, Vec<(Transaction, TxError)>);

/// What a job gave back to the loop.
pub enum Done {
    /// A block was built.
    Built {
        /// Its height.
        height: u64,
        /// The round it was built for.
        round: u32,
        /// The execution and the candidates left out, or why none.
        result: Result<Built, ExecError>,
        /// The re-executions the candidates needed that were not there.
        missing: Vec<Hash>,
        /// How long it took.
        took: Duration,
    },
    /// A proposed block was checked.
    Checked {
        /// Its height.
        height: u64,
        /// Its hash.
        block_hash: Hash,
        /// Its execution, or why none.
        result: Result<Arc<ExecutedBlock>, ExecError>,
        /// How long it took.
        took: Duration,
    },
    /// A block is final and stored here (committed, or applied).
    Stored {
        /// The execution.
        executed: Arc<ExecutedBlock>,
        /// Its commit.
        commit: Commit,
        /// How long execution took, if it was executed in this job.
        took: Option<Duration>,
        /// How long writing it took.
        wrote: Duration,
        /// Its gossip message ([`crate::p2p::BlockMsg`]), encoded here rather than on the loop,
        /// when it is to be announced.
        announcement: Option<Vec<u8>>,
    },
    /// A finalized block could not be applied.
    NotApplied {
        /// Its height.
        height: u64,
        /// Why.
        error: ExecError,
    },
    /// Writing a block failed: fatal for the node.
    StoreFailed(anyhow::Error),
}

/// How long dropping the executor waits for its thread to end (the block it is executing,
/// then what it holds — the store among it — released).
pub const EXECUTOR_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The handle the loop keeps: the executor's queue and a count of the blocks it executed.
/// Dropping it ends the thread and waits (at most [`EXECUTOR_STOP_TIMEOUT`]) until it has
/// released what it holds: a process must not exit while another thread still closes the
/// database (rocksdb's background threads would outlive its statics, and abort).
pub struct Executor {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    executions: Arc<AtomicU64>,
    /// Closed by the thread once it has dropped everything it held.
    ended: std::sync::mpsc::Receiver<()>,
}

impl Drop for Executor {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = self.ended.recv_timeout(EXECUTOR_STOP_TIMEOUT) {
            tracing::warn!("the block executor did not stop within {EXECUTOR_STOP_TIMEOUT:?}");
        }
    }
}

impl Executor {
    /// Starts the executor thread; its results go to `events`. `slow`: test only, the executor
    /// takes longer over each block.
    pub fn start(events: mpsc::Sender<Event>, slow: Option<SlowBlocks>) -> anyhow::Result<Executor> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(EXECUTOR_QUEUE);
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let executions = Arc::new(AtomicU64::new(0));
        let counted = executions.clone();
        std::thread::Builder::new().name("cairn-executor".into()).spawn(move || {
            let mut cache = BlockCache::default();
            // The execution of the last block stored, kept until the next job: by then the
            // loop has let go of it, so it is freed here rather than on the loop (a busy
            // block's transactions, changes and receipts take milliseconds to free; its tree
            // update goes when the store forgets it, on this thread too).
            let mut stored: Option<Arc<ExecutedBlock>> = None;
            while let Ok(job) = queue.recv() {
                drop(stored.take());
                let done = match &slow {
                    Some(slow) => {
                        let height = job.height();
                        slow.run(height, || run(job, &counted, &mut cache))
                    }
                    None => run(job, &counted, &mut cache),
                };
                if let Done::Stored { executed, .. } = &done {
                    stored = Some(executed.clone());
                }
                if events.blocking_send(Event::Block(done)).is_err() {
                    // The loop is gone: the node is stopping.
                    break;
                }
            }
            // Released before the handle hears of the end: the queue's jobs and the cache
            // hold the store.
            drop(queue);
            drop(stored);
            drop(cache);
            drop(events);
            drop(ended_tx);
        })?;
        Ok(Executor { jobs: Some(jobs), executions, ended })
    }

    /// Queues a job. The loop never has more than a few in flight; a full queue means the
    /// executor thread is gone or stuck, which the node cannot recover from.
    pub fn submit(&self, job: Job) -> anyhow::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(|| anyhow::anyhow!("the block executor stopped"))?;
        jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => anyhow::anyhow!("the block executor's queue is full"),
            std::sync::mpsc::TrySendError::Disconnected(_) => anyhow::anyhow!("the block executor stopped"),
        })
    }

    /// Blocks executed so far (built, checked or applied): each block at most once.
    pub fn executions(&self) -> u64 {
        self.executions.load(Ordering::Relaxed)
    }
}

impl Job {
    /// The height of the block it is about.
    fn height(&self) -> u64 {
        match self {
            Job::Build { base, .. } => base.head.height() + 1,
            Job::Check { block, .. } | Job::Apply { block, .. } => block.header.height,
        }
    }
}

fn run(job: Job, executions: &AtomicU64, cache: &mut BlockCache) -> Done {
    match job {
        Job::Build { base, round, proposer, candidates, time_ms, mut verdicts } => {
            let height = base.head.height() + 1;
            let started = Instant::now();
            executions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(height, round, "building a block");
            let result = base.build(proposer, candidates, time_ms, &mut verdicts);
            let result = result.and_then(|(executed, rejected)| {
                // Kept durably before it is proposed: after a restart this validator re-proposes
                // the very block it may have voted for.
                base.store.put_proposed(&executed.block).map_err(|e| ExecError::Fault(e.into()))?;
                let executed = Arc::new(executed);
                cache.keep(executed.clone());
                Ok((executed, rejected))
            });
            Done::Built { height, round, result, missing: verdicts.missing().to_vec(), took: started.elapsed() }
        }
        Job::Check { base, block, mut verdicts } => {
            let (height, block_hash) = (block.header.height, block.hash());
            tracing::debug!(height, %block_hash, "executing a proposed block");
            let started = Instant::now();
            executions.fetch_add(1, Ordering::Relaxed);
            let result = base.check(block, &mut verdicts).map(Arc::new);
            if let Ok(executed) = &result {
                cache.keep(executed.clone());
            }
            Done::Checked { height, block_hash, result, took: started.elapsed() }
        }
        Job::Apply { base, block, commit, mut verdicts, announce } => {
            let height = block.header.height;
            if let Some(executed) = cache.get(height, &block.hash()) {
                cache.head_moved(height);
                let writing = Instant::now();
                return match persist(&base.store, &executed, &commit) {
                    Ok(()) => {
                        let wrote = writing.elapsed();
                        let announcement = announce.then(|| super::gossip::block_message(&executed.block, &commit));
                        Done::Stored { executed, commit, took: None, wrote, announcement }
                    }
                    Err(e) => Done::StoreFailed(e),
                };
            }
            let started = Instant::now();
            executions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(height, block_hash = %block.hash(), "executing a finalized block");
            match base.check_finalized(block, &commit, &mut verdicts) {
                Ok(executed) => {
                    let took = started.elapsed();
                    cache.head_moved(height);
                    let writing = Instant::now();
                    match persist(&base.store, &executed, &commit) {
                        Ok(()) => {
                            let wrote = writing.elapsed();
                            let announcement = announce.then(|| super::gossip::block_message(&executed.block, &commit));
                            Done::Stored { executed: Arc::new(executed), commit, took: Some(took), wrote, announcement }
                        }
                        Err(e) => Done::StoreFailed(e),
                    }
                }
                Err(ExecError::Fault(e)) => Done::StoreFailed(e),
                Err(error) => Done::NotApplied { height, error },
            }
        }
    }
}

/// Executions kept for a decision, by (height, hash), the lowest heights dropped first past
/// [`EXECUTED_CACHED_MAX`].
#[derive(Default)]
pub struct BlockCache {
    blocks: BTreeMap<(u64, Hash), Arc<ExecutedBlock>>,
}

impl BlockCache {
    /// Keeps an execution.
    pub fn keep(&mut self, executed: Arc<ExecutedBlock>) {
        self.blocks.insert((executed.block.header.height, executed.hash), executed);
        while self.blocks.len() > EXECUTED_CACHED_MAX {
            self.blocks.pop_first();
        }
    }

    /// The execution of a block, if this node executed it.
    pub fn get(&self, height: u64, block_hash: &Hash) -> Option<Arc<ExecutedBlock>> {
        self.blocks.get(&(height, *block_hash)).cloned()
    }

    /// The head moved to `head`: executions at or below it can no longer be committed.
    pub fn head_moved(&mut self, head: u64) {
        self.blocks.retain(|(h, _), _| *h > head);
    }
}

/// What the loop knows of the executor's [`BlockCache`]: which blocks (height, hash) it
/// holds a valid execution of, so a decision or a vote needs no execution again. Bounded like
/// the cache.
#[derive(Default)]
pub struct ExecutedHere {
    blocks: BTreeSet<(u64, Hash)>,
}

impl ExecutedHere {
    /// The executor holds a valid execution of this block.
    pub fn insert(&mut self, height: u64, block_hash: Hash) {
        self.blocks.insert((height, block_hash));
        while self.blocks.len() > EXECUTED_CACHED_MAX {
            self.blocks.pop_first();
        }
    }

    /// Whether the executor holds a valid execution of this block.
    pub fn contains(&self, height: u64, block_hash: &Hash) -> bool {
        self.blocks.contains(&(height, *block_hash))
    }

    /// The head moved to `head`: blocks at or below it are no longer wanted.
    pub fn head_moved(&mut self, head: u64) {
        self.blocks.retain(|(h, _)| *h > head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_knows_what_the_executor_keeps_within_the_same_bound() {
        let mut known = ExecutedHere::default();
        let block = |i: u64| (i, Hash::of(&i.to_be_bytes()));
        for i in 1..=(EXECUTED_CACHED_MAX as u64 + 2) {
            let (height, hash) = block(i);
            known.insert(height, hash);
        }
        assert_eq!(known.blocks.len(), EXECUTED_CACHED_MAX);
        assert!(!known.contains(1, &block(1).1), "the lowest heights go first");
        let (top, top_hash) = block(EXECUTED_CACHED_MAX as u64 + 2);
        assert!(known.contains(top, &top_hash));
        assert!(!known.contains(top, &Hash::ZERO), "another block at that height is not known");
        known.head_moved(top - 1);
        assert_eq!(known.blocks.len(), 1);
        known.head_moved(top);
        assert!(!known.contains(top, &top_hash));
    }
}
