//! What the RPC server sees of the node: a [`View`] of the head, published by the loop after
//! every finalized block (an immutable snapshot: reading it takes no lock the loop holds),
//! and [`Request`]s to the loop, each with its reply channel. A [`Handle`] bundles them with
//! what is safe to share: the store (reads), the sandbox (module uploads), admission's
//! counters and the verifying threads.

use std::sync::{Arc, Mutex};

use cairn_contracts::{SignatureCache, SignatureCheck, State, TxError};
use cairn_ledger::{BlockHeader, Genesis, Hash, PublicKey, SignedOffer, Transaction};
use cairn_rpc::{JobEvent, JobStage, ResultInfo};
use cairn_store::Store;
use cairn_vm::Vm;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use crate::backpressure::Admission;
use crate::config::NodeConfig;
use crate::mempool::Admitted;

/// Network facts the RPC reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetInfo {
    /// This node's peer id.
    pub peer_id: String,
    /// Its listen addresses with `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// The highest finalized height peers have shown this node (a finalized block gossiped
    /// with its commit, a validator's signed message at a later height, blocks a sync answer
    /// linked to the head): how far behind it is.
    pub peer_height: u64,
}

/// The node as of its last finalized block.
#[derive(Clone)]
pub struct View {
    /// The chain id.
    pub chain_id: Hash,
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// The head's header (`None` before the first block).
    pub head: Option<BlockHeader>,
    /// The state after the head (a snapshot: O(1) to take).
    pub state: State,
    /// The network.
    pub net: NetInfo,
    /// Blocks this node executed since it started, up to the head (each at most once).
    pub blocks_executed: u64,
}

impl View {
    /// The finalized height.
    pub fn height(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.height)
    }
}

/// What the loop alone knows of a job: the tracker's stage and result, the pending offer, or
/// the dropped one and why.
#[derive(Debug, Default)]
pub struct LocalJob {
    /// The stage reached and the result seen here, if any.
    pub tracked: Option<(JobStage, Option<ResultInfo>)>,
    /// The offer pending in the mempool, and whether it is includable now.
    pub pending: Option<(SignedOffer, bool)>,
    /// The offer, if it left the mempool unincluded, and why.
    pub dropped: Option<(SignedOffer, Option<String>)>,
}

/// What the RPC asks of the loop.
pub enum Request {
    /// Admit a transaction whose signatures were verified ([`Verifier`]) and gossip it.
    Submit {
        /// The transaction.
        tx: Box<Transaction>,
        /// Whether it was admitted.
        reply: oneshot::Sender<Result<Admitted, crate::service::AdmitError>>,
    },
    /// Check an offer as admission would (the chain's rules at the head, under the mempool's
    /// nonce rule), without admitting it: `job_estimate`'s check. Its signature is not checked.
    Check {
        /// The offer.
        tx: Box<Transaction>,
        /// The first rule it breaks, if any.
        reply: oneshot::Sender<Result<(), TxError>>,
    },
    /// What the loop knows of a job.
    Job {
        /// The job.
        job_id: Hash,
        /// The answer.
        reply: oneshot::Sender<LocalJob>,
    },
    /// A job's events so far and the stream of new ones.
    Subscribe {
        /// The job.
        job_id: Hash,
        /// The events so far, and a receiver of the job's new events (of this job only).
        reply: oneshot::Sender<(Vec<JobEvent>, broadcast::Receiver<JobEvent>)>,
    },
    /// An account's next nonce counting its pending transactions.
    NextNonce {
        /// The account.
        address: PublicKey,
        /// The nonce.
        reply: oneshot::Sender<u64>,
    },
    /// A module was uploaded to this node (validated and stored): announce it.
    ModuleUploaded(Hash),
    /// A data blob was uploaded to this node (stored): provide it in the DHT.
    BlobUploaded(Hash),
    /// `blob_get` asks for a blob this node does not hold: fetch it from its holders.
    FetchBlob(Hash),
}

/// Transactions verified on the calling task rather than a blocking thread, at most: one
/// signature takes tens of microseconds, less than handing it to another thread and back.
pub const VERIFIED_IN_PLACE_MAX: usize = 2;

/// The threads that verify transaction signatures, off the loop: at most one job per core at
/// once. What they verify is remembered in the node's signature cache, so blocks that
/// include it do not verify it again.
#[derive(Clone)]
pub struct Verifier {
    slots: Arc<Semaphore>,
    signatures: Arc<Mutex<SignatureCache>>,
    output_bytes_max: usize,
}

impl Verifier {
    /// Verifying threads over `signatures`; `output_bytes_max` is the chain's output limit.
    pub fn new(signatures: Arc<Mutex<SignatureCache>>, output_bytes_max: usize) -> Verifier {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Verifier { slots: Arc::new(Semaphore::new(threads)), signatures, output_bytes_max }
    }

    /// Verifies each transaction's signatures: a few at once in place (each takes tens of
    /// microseconds), more on a blocking thread once a slot is free, in batches
    /// ([`cairn_contracts::check_all`]).
    /// Fails only when this node cannot verify (it is stopping, a verifying thread failed):
    /// never the transactions' fault.
    pub async fn verify(&self, txs: &Arc<Vec<Transaction>>) -> anyhow::Result<Vec<Result<(), TxError>>> {
        if txs.len() <= VERIFIED_IN_PLACE_MAX {
            let mut sigs = &*self.signatures;
            return Ok(txs.iter().map(|tx| sigs.check(tx, self.output_bytes_max)).collect());
        }
        let _slot = self.slots.acquire().await.map_err(|_| anyhow::anyhow!("the node is stopping"))?;
        let signatures = self.signatures.clone();
        let output_max = self.output_bytes_max;
        let txs = txs.clone();
        tokio::task::spawn_blocking(move || cairn_contracts::check_all(&signatures, &txs, output_max))
            .await
            .map_err(|e| anyhow::anyhow!("a verifying thread failed: {e}"))
    }
}

/// What the RPC server holds of the node.
#[derive(Clone)]
pub struct Handle {
    /// Requests to the loop (bounded: a full queue is answered `overloaded`).
    pub requests: mpsc::Sender<Request>,
    /// The head, as the loop last published it.
    pub view: watch::Receiver<Arc<View>>,
    /// The store (reads).
    pub store: Arc<Store>,
    /// The sandbox (module uploads are validated and compiled with it).
    pub vm: Arc<Vm>,
    /// Admission's counters: an offer past them is refused at once, without the loop.
    pub admission: Arc<Admission>,
    /// The verifying threads.
    pub verifier: Verifier,
    /// The configuration.
    pub config: Arc<NodeConfig>,
    /// The node's address.
    pub address: PublicKey,
}

impl Handle {
    /// The latest view.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }
}
