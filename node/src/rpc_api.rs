//! The JSON-RPC methods ([`CairnApiServer`]) over the node's [`Handle`]: reads come from the
//! view the loop publishes after every block and from the store; what only the loop knows
//! (the mempool, the job tracker) and every change (admission) is asked of it with a
//! [`Request`] and its reply channel. Signatures are verified on the verifying threads before
//! the loop sees a transaction; an offer past admission's limit is refused at once, without
//! the loop. Why a job waits ([`waiting`]) and what an offer would cost ([`estimate`]) are
//! worked out in their own modules, as pure functions of the head state.

mod estimate;
mod waiting;

use std::sync::Arc;

use cairn_contracts::{Job, JobPhase, Limit, TxError};
use cairn_ledger::{
    Block, FORMAT_VERSION, Genesis, Hash, JobOffer, PublicKey, ReceiptProof, Signature, SignedOffer, SignedTx,
    StateProof, StateValue, Transaction,
};
use cairn_rpc::error::{self, err};
use cairn_rpc::{
    AccountInfo, CairnApiServer, EstimateProblem, EvidenceInfo, EvidenceKind, HeadInfo, JobEstimate, JobEvent, JobInfo,
    JobStage, NodeInfo, OpenRpcDocument, PendingOffer, ProviderInfo, RpcResult,
};
use jsonrpsee::core::{SubscriptionResult, async_trait};
use jsonrpsee::server::{PendingSubscriptionSink, SubscriptionMessage};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use crate::backpressure::Reserved;
use crate::chain::{RetiredJob, proofs_from_store};
use crate::early::EARLY_OFFER_BLOCKS_MAX;
use crate::mempool::MempoolError;
use crate::service::AdmitError;
use crate::service::view::{Handle, LocalJob, Request, View};
use crate::tracker::result_info;

/// The most providers `provider_list` returns.
const PROVIDER_LIST_MAX: usize = 10_000;

/// `consensus_evidence` looks at this many heights, up to the highest one messages are taken for.
const EVIDENCE_HEIGHTS_MAX: u64 = 10_000;

/// The most evidence `consensus_evidence` returns.
const EVIDENCE_LIST_MAX: usize = 1_000;

/// The longest state key (a tag and a 32-byte id).
const STATE_KEY_BYTES_MAX: usize = 33;

/// Module uploads validated and compiled at once (each takes up to the compile bound of
/// JOB-ABI.md §5); more wait their turn, up to [`MODULE_UPLOADS_WAITING_MAX`].
pub const MODULE_UPLOADS_AT_ONCE: usize = 1;
/// Module uploads held at once, compiled or waiting their turn; past it `module_put` is
/// answered `overloaded` at once. Each holds its hex and its bytes (at most 3 × the sandbox's
/// `module_size_bytes_max`: 12 MiB by default, 48 MiB for all), and waits at most this many
/// compile bounds.
pub const MODULE_UPLOADS_WAITING_MAX: usize = 4;
/// The retry hint of a `module_put` refused for [`MODULE_UPLOADS_WAITING_MAX`]: about one
/// compilation at the bound.
pub const MODULE_UPLOAD_RETRY_AFTER_MS: u64 = 2_000;

/// `blob_get` calls waiting at once for a blob this node fetches; more are answered
/// `overloaded` at once.
pub const BLOB_GETS_WAITING_MAX: usize = 16;
/// How long `blob_get` waits for a blob this node fetches from its holders.
pub const BLOB_GET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a waiting `blob_get` looks whether the blob arrived.
const BLOB_GET_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How long a submitted offer ranked at a height just ahead of this node's head (read from a
/// node a block or so ahead) waits for the head to reach it, at most, before it is checked.
pub const AHEAD_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Submissions waiting at once for the head to reach their offer's height; past that an offer
/// is checked at once (and refused if its height is not finalized here).
pub const AHEAD_WAITS_MAX: usize = 64;

pub use estimate::{ESTIMATE_RETRY_AFTER_MS, ESTIMATES_AT_ONCE};

/// The RPC methods.
pub struct RpcImpl {
    node: Handle,
    uploads: Arc<tokio::sync::Semaphore>,
    upload_waits: Arc<tokio::sync::Semaphore>,
    estimates: estimate::Slots,
    blob_waits: Arc<tokio::sync::Semaphore>,
    ahead_waits: Arc<tokio::sync::Semaphore>,
}

impl RpcImpl {
    /// Over the node's handle.
    pub fn new(node: Handle) -> RpcImpl {
        RpcImpl {
            node,
            uploads: Arc::new(tokio::sync::Semaphore::new(MODULE_UPLOADS_AT_ONCE)),
            upload_waits: Arc::new(tokio::sync::Semaphore::new(MODULE_UPLOADS_WAITING_MAX)),
            estimates: estimate::Slots::new(ESTIMATES_AT_ONCE),
            blob_waits: Arc::new(tokio::sync::Semaphore::new(BLOB_GETS_WAITING_MAX)),
            ahead_waits: Arc::new(tokio::sync::Semaphore::new(AHEAD_WAITS_MAX)),
        }
    }
}

/// How long a subscription to a job this node does not know waits for it to appear (clients
/// subscribe before they submit) before it ends with `dropped`.
pub const UNKNOWN_JOB_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn internal(e: impl std::fmt::Display) -> jsonrpsee::types::ErrorObjectOwned {
    err(error::INTERNAL, format!("internal error: {e}; see the node's log"))
}

use cairn_rpc::error::overloaded;

/// The retry hint of a submission refused because the node is stopping (a restart takes about
/// this long; another node takes it at once).
pub const STOPPING_RETRY_MS: u64 = 5_000;

fn tx_error(e: &TxError) -> jsonrpsee::types::ErrorObjectOwned {
    let code = match e {
        TxError::BadSignature(_) => error::BAD_SIGNATURE,
        TxError::InsufficientBalance { .. } => error::INSUFFICIENT_BALANCE,
        TxError::Nonce { .. } => error::BAD_NONCE,
        _ => error::INVALID_TX,
    };
    error::with_reason(code, e.to_string(), e.reason())
}

fn module_unknown(module_id: &Hash) -> jsonrpsee::types::ErrorObjectOwned {
    err(
        error::MODULE_UNKNOWN,
        format!("module {module_id} is not stored on this node; upload it with module_put first"),
    )
}

fn blob_unknown(id: &Hash) -> jsonrpsee::types::ErrorObjectOwned {
    err(
        error::BLOB_UNKNOWN,
        format!("blob {id} is not stored on this node and no holder sent it; upload it with blob_put first"),
    )
}

fn message(ev: &JobEvent) -> Result<SubscriptionMessage, serde_json::Error> {
    Ok(jsonrpsee::core::to_json_raw_value(ev)?.into())
}

impl RpcImpl {
    /// The head `view` shows (before the first block: height 0, the genesis state's root).
    fn head_info(&self, view: &View) -> RpcResult<HeadInfo> {
        Ok(match &view.head {
            Some(h) => HeadInfo { height: h.height, hash: h.hash(), state_root: h.state_root, time_ms: h.time_ms },
            None => HeadInfo {
                height: 0,
                hash: Hash::ZERO,
                state_root: self.node.store.state_root(0).map_err(internal)?.unwrap_or(Hash::ZERO),
                time_ms: view.genesis.genesis_time_ms,
            },
        })
    }

    /// Asks the loop; a full queue is `overloaded`.
    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> RpcResult<T> {
        let (reply, answer) = oneshot::channel();
        self.node.requests.try_send(request(reply)).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => {
                overloaded("the node is busy; retry shortly", self.node.config.block_time_ms.max(1))
            }
            tokio::sync::mpsc::error::TrySendError::Closed(_) => internal("the node is stopping"),
        })?;
        answer.await.map_err(|_| internal("the node is stopping"))
    }

    /// Waits until this node's head reaches `height`, when it is ahead by at most
    /// [`EARLY_OFFER_BLOCKS_MAX`] (the client read it from a node a little ahead of this one),
    /// for at most [`AHEAD_WAIT_MAX`], [`AHEAD_WAITS_MAX`] calls at once: the offer is then
    /// checked at a head that can rank it, instead of refused as naming a height not finalized
    /// here. Gossip holds such offers the same way ([`crate::early::EarlyOffers`]).
    async fn head_reaches(&self, height: u64) {
        let mut view = self.node.view.clone();
        let head = view.borrow().height();
        if height <= head || height - head > EARLY_OFFER_BLOCKS_MAX {
            return;
        }
        let Ok(_slot) = self.ahead_waits.try_acquire() else { return };
        let _ = tokio::time::timeout(AHEAD_WAIT_MAX, view.wait_for(|v| v.height() >= height)).await;
    }

    /// A place for one submission, if the node takes one now: refused at once, from atomics,
    /// when it is stopping or past admission's limit — before anything else is read or
    /// verified. The place counts as pending until the loop has answered.
    fn admission_place(&self) -> RpcResult<Reserved<'_>> {
        if self.node.admission.is_closed() {
            return Err(overloaded("the node is stopping: submit to another node", STOPPING_RETRY_MS));
        }
        self.node.admission.reserve().map_err(|o| overloaded(o.to_string(), o.retry_after_ms))
    }

    /// Submits `tx`, which holds `_place` until the loop has answered.
    async fn submit(&self, tx: Transaction, _place: Reserved<'_>) -> RpcResult<()> {
        let one = Arc::new(vec![tx]);
        if let Some(Err(e)) = self.node.verifier.verify(&one).await.map_err(internal)?.pop() {
            return Err(tx_error(&e));
        }
        // One transaction is verified in place, so nothing else holds it: not copied (an
        // offer may carry an input of up to `input_bytes_max`).
        let tx = Arc::try_unwrap(one)
            .unwrap_or_else(|one| (*one).clone())
            .pop()
            .ok_or_else(|| internal("the submitted transaction went missing"))?;
        let admitted = self.ask(|reply| Request::Submit { tx: Box::new(tx), reply }).await?;
        match admitted {
            Ok(_) => Ok(()),
            Err(AdmitError::Tx(e)) => Err(tx_error(&e)),
            Err(AdmitError::Overloaded(o)) => Err(overloaded(o.to_string(), o.retry_after_ms)),
            Err(AdmitError::Mempool(e @ MempoolError::Full(_))) => {
                Err(overloaded(e.to_string(), self.node.config.block_time_ms.max(1) * 4))
            }
            Err(AdmitError::Mempool(e @ MempoolError::Underpriced { .. })) => {
                Err(error::with_reason(error::INVALID_TX, e.to_string(), "replacement_underpriced"))
            }
            Err(AdmitError::Mempool(e)) => Err(err(error::INVALID_TX, e.to_string())),
        }
    }

    /// A job's receipt proofs, read from the store off the async threads.
    async fn stored_proofs(&self, job_id: Hash) -> RpcResult<Vec<ReceiptProof>> {
        let store = self.node.store.clone();
        tokio::task::spawn_blocking(move || proofs_from_store(&store, &job_id))
            .await
            .map_err(internal)?
            .map_err(internal)
    }

    /// Why a job has no receipt proof: unknown, expired without one, or not final yet.
    async fn no_receipt(&self, job_id: Hash) -> jsonrpsee::types::ErrorObjectOwned {
        match self.job_info(job_id).await {
            Ok(info) if info.stage == JobStage::Expired => {
                err(error::NOT_FOUND, format!("job {job_id} expired without a receipt"))
            }
            Ok(_) => err(
                error::NOT_FINALIZED,
                format!("job {job_id} has no finalized receipt yet; retry after its finalized event"),
            ),
            Err(e) => e,
        }
    }

    async fn job_info(&self, job_id: Hash) -> RpcResult<JobInfo> {
        let local: LocalJob = self.ask(|reply| Request::Job { job_id, reply }).await?;
        let view = self.node.view();
        let store = &self.node.store;
        let tracked = local.tracked;
        let loc = store.job(&job_id).map_err(internal)?.unwrap_or_default();
        let in_state = view.state.job(&job_id);
        // On chain: in the state, or retired from it (what the job index kept, and its offer).
        let on_chain = match (in_state, &loc.retired) {
            (Some(job), _) => Some(OnChain::of(job)),
            (None, Some(bytes)) => Some(retired_job(store, &job_id, bytes)?),
            (None, None) => None,
        };
        if let Some(job) = on_chain {
            let mut result = tracked.as_ref().and_then(|t| t.1.clone());
            if result.is_none()
                && let Some(&(h, _)) = loc.receipts.first()
                && let Some(block) = store.block(h).map_err(internal)?
            {
                result = block.txs.iter().find_map(|tx| match tx {
                    Transaction::Result(r) if r.claim.job_id == job_id => Some(result_info(r)),
                    _ => None,
                });
            }
            let stage = match job.phase {
                JobPhase::Completed | JobPhase::Settled | JobPhase::Slashed | JobPhase::Challenged => {
                    JobStage::Finalized
                }
                // Its results are in blocks; it settles when its re-execution does.
                JobPhase::Disputed => JobStage::Included,
                JobPhase::Expired => JobStage::Expired,
                JobPhase::Open => tracked.as_ref().map_or(JobStage::Accepted, |t| t.0),
            };
            let waiting = match in_state {
                Some(open) if open.phase == JobPhase::Open && result.is_none() => {
                    Some(waiting::of_open(&view.state, view.height(), open, &self.here(&open.module_id)?))
                }
                _ => None,
            };
            return Ok(JobInfo {
                job_id,
                stage,
                client: job.client,
                module_id: job.module_id,
                fuel_limit: job.fuel_limit,
                max_price: job.max_price,
                // Every provider assigned so far: the first k ranked, then stand-ins.
                assigned: job.assigned,
                result,
                offer_height: loc.offer_height,
                receipt_height: loc.receipts.last().map(|r| r.0),
                paid: (job.phase == JobPhase::Settled).then_some(job.paid),
                pending: None,
                reason: None,
                waiting,
            });
        }
        let pending = local.pending.as_ref().map(|(o, includable)| PendingOffer {
            nonce: o.offer.nonce,
            fee: o.offer.fee,
            includable: *includable,
        });
        // Pending (and whether it can be included now), or dropped (and why).
        let (o, reason, includable) = match (local.pending, local.dropped) {
            (Some((o, includable)), _) => (o, None, Some(includable)),
            (None, Some((o, why))) => (o, why, None),
            (None, None) => {
                // A node that restored the state from a snapshot has no record of the jobs that
                // ended before it.
                let base = self.node.store.base_height().map_err(internal)?;
                let why = if base > 1 {
                    format!(
                        "job {job_id} is unknown to this node: it restored the chain's state at height {base} and \
                         has no record of jobs that ended before it; check the id, or ask a node that keeps the \
                         whole history"
                    )
                } else {
                    format!("job {job_id} is unknown to this node; check the id")
                };
                return Err(err(error::NOT_FOUND, why));
            }
        };
        let result = tracked.as_ref().and_then(|t| t.1.clone());
        let waiting = match includable {
            // Pending, and no result seen yet.
            Some(includable) if result.is_none() => {
                let order = if includable {
                    waiting::NonceOrder::Includable
                } else {
                    // The first nonce of the client missing here.
                    let address = o.offer.client;
                    let missing = self.ask(|reply| Request::NextNonce { address, reply }).await?;
                    waiting::NonceOrder::Gap { missing }
                };
                let here = self.here(&o.offer.module_id)?;
                let gap_timeout = std::time::Duration::from_millis(self.node.config.mempool_gap_timeout_ms);
                Some(waiting::of_pending(&view.state, view.height(), &o.offer, &job_id, order, &here, gap_timeout))
            }
            _ => None,
        };
        Ok(JobInfo {
            job_id,
            stage: tracked.as_ref().map_or(JobStage::Accepted, |t| t.0),
            client: o.offer.client,
            module_id: o.offer.module_id,
            fuel_limit: o.offer.fuel_limit,
            max_price: o.offer.max_price,
            assigned: view.state.assignment(
                &job_id,
                o.offer.max_price,
                &o.offer.placement,
                usize::from(o.offer.redundancy),
            ),
            result,
            offer_height: None,
            receipt_height: None,
            paid: None,
            pending,
            reason,
            waiting,
        })
    }

    /// What this node knows of a job with module `module_id` that the state does not say: its
    /// address, and whether it is a provider still fetching the module.
    fn here(&self, module_id: &Hash) -> RpcResult<waiting::Here> {
        let fetching_module = self.node.config.provider && !self.node.store.has_blob(module_id).map_err(internal)?;
        Ok(waiting::Here { address: self.node.address, fetching_module })
    }

    /// That the blob store has room for `size` more bytes within `store_blobs_bytes_max`: what
    /// callers store (`blob_put`) or have fetched (`blob_get`) costs nobody a fee, so past the
    /// budget they are refused until the oldest unused blobs are deleted (at most every 10 s,
    /// none stored in the last 10 minutes), and the disk stays within it.
    fn blob_room(&self, size: usize) -> RpcResult<()> {
        let budget = self.node.config.store_blobs_bytes_max;
        if !crate::service::blobs::has_room(self.node.store.blob_bytes(), size as u64, budget) {
            return Err(overloaded(
                format!("this node's blob store is full ({budget} bytes, store_blobs_bytes_max); retry later"),
                crate::service::blobs::BLOB_EVICTION_INTERVAL.as_millis() as u64,
            ));
        }
        Ok(())
    }

    /// That the offer's module and input blob are stored here (providers fetch them from here).
    fn check_blobs_here(&self, offer: &JobOffer) -> RpcResult<()> {
        if !self.node.store.has_blob(&offer.module_id).map_err(internal)? {
            return Err(module_unknown(&offer.module_id));
        }
        match offer.input_blob {
            Some(input) if !self.node.store.has_blob(&input).map_err(internal)? => Err(blob_unknown(&input)),
            _ => Ok(()),
        }
    }

    /// `job_estimate`: see [`estimate`] for what it costs this node and how it is bounded.
    async fn estimate(&self, offer: JobOffer, job_id: Hash) -> RpcResult<JobEstimate> {
        let view = self.node.view();
        let params = view.state.params();
        // Refused before anything runs: what is too large to be an offer, a module not here.
        if offer.input.len() > params.input_bytes_max as usize {
            return Err(tx_error(&TxError::Limit(Limit::Input { max: params.input_bytes_max })));
        }
        let module_id = offer.module_id;
        self.check_blobs_here(&offer)?;
        let slot = self.estimates.try_take()?;
        // Admission's check, by the loop (it alone knows what the client's pending transactions
        // spend); the offer is unsigned, and the loop does not check signatures.
        let unsigned = SignedOffer { offer: offer.clone(), signature: Signature([0; 64]) };
        let checked = self.ask(|reply| Request::Check { tx: Box::new(Transaction::Offer(unsigned)), reply }).await?;
        let fuel_limit = estimate::fuel_to_run(&offer, params);
        let (vm, store, run_offer) = (self.node.vm.clone(), self.node.store.clone(), offer.clone());
        let run = tokio::task::spawn_blocking(move || {
            // The slot is the run's until it ends, whether or not the caller still waits.
            let _slot = slot;
            let wasm = store.blob(&module_id).map_err(internal)?.ok_or_else(|| module_unknown(&module_id))?;
            let input = crate::exec::job_input(&store, &run_offer)
                .map_err(internal)?
                .ok_or_else(|| blob_unknown(&run_offer.input_hash()))?;
            crate::exec::run_job(&vm, &module_id, &wasm, &input, fuel_limit).map_err(internal)
        })
        .await
        .map_err(internal)??;
        let mut problems = estimate::problems(&view.state, &offer, &job_id, checked);
        if let Err(o) = self.node.admission.check_now() {
            problems.push(EstimateProblem { reason: "overloaded".into(), message: o.to_string() });
        }
        Ok(estimate::assemble(&view.state, view.height(), &offer, job_id, fuel_limit, &run, problems))
    }
}

#[async_trait]
impl CairnApiServer for RpcImpl {
    async fn rpc_discover(&self) -> RpcResult<OpenRpcDocument> {
        // Built once per process; each call copies the same document (~66 KB, under the
        // response limit) and is charged to its caller's rate like any other.
        Ok(cairn_rpc::openrpc::document().clone())
    }

    async fn module_put(&self, wasm_hex: String) -> RpcResult<Hash> {
        // Refused before decoding: the hex of a module is twice its size.
        let size_bytes_max = self.node.vm.config().module_size_bytes_max;
        if wasm_hex.len() > 2 * size_bytes_max {
            let too_large = cairn_vm::VmError::ModuleTooLarge { size_bytes: wasm_hex.len() / 2, size_bytes_max };
            return Err(err(error::INVALID_MODULE, too_large.to_string()));
        }
        // Stored like any blob: within `store_blobs_bytes_max`.
        self.blob_room(wasm_hex.len() / 2)?;
        let _waiting = self.upload_waits.clone().try_acquire_owned().map_err(|_| {
            overloaded(
                format!(
                    "this node compiles at most {MODULE_UPLOADS_WAITING_MAX} uploaded modules in turn; retry later"
                ),
                MODULE_UPLOAD_RETRY_AFTER_MS,
            )
        })?;
        let wasm = cairn_ledger::decode_hex(&wasm_hex, "module")
            .map_err(|e| err(error::INVALID_PARAMS, format!("the module must be lowercase hex: {e}")))?;
        drop(wasm_hex);
        // Validated and compiled (what a job's execution compiles, within the bound of
        // JOB-ABI.md §5), a few uploads at a time, off the async threads.
        let _slot = self.uploads.acquire().await.map_err(internal)?;
        let (vm, store) = (self.node.vm.clone(), self.node.store.clone());
        let id = tokio::task::spawn_blocking(move || -> RpcResult<Hash> {
            vm.prepare(&wasm).map_err(|e| err(error::INVALID_MODULE, e.to_string()))?;
            store.put_blob(&wasm).map_err(internal)
        })
        .await
        .map_err(internal)??;
        // Announced to providers by the loop; if it is busy, they fetch the module with its
        // first job instead.
        let _ = self.node.requests.try_send(Request::ModuleUploaded(id));
        Ok(id)
    }

    async fn blob_put(&self, bytes_hex: String) -> RpcResult<Hash> {
        let max = cairn_ledger::DATA_BLOB_BYTES_MAX;
        // Refused before decoding: the hex of a blob is twice its size.
        if bytes_hex.len() > 2 * max {
            return Err(err(
                error::INVALID_PARAMS,
                format!("the blob is {} bytes, over the limit of {max} bytes", bytes_hex.len() / 2),
            ));
        }
        let bytes = cairn_ledger::decode_hex(&bytes_hex, "blob")
            .map_err(|e| err(error::INVALID_PARAMS, format!("the blob must be lowercase hex: {e}")))?;
        self.blob_room(bytes.len())?;
        let store = self.node.store.clone();
        let id =
            tokio::task::spawn_blocking(move || store.put_blob(&bytes).map_err(internal)).await.map_err(internal)??;
        // Provided in the DHT by the loop; if it is busy, holders are still found by asking peers.
        let _ = self.node.requests.try_send(Request::BlobUploaded(id));
        Ok(id)
    }

    async fn blob_get(&self, id: Hash) -> RpcResult<String> {
        if let Some(bytes) = self.node.store.blob(&id).map_err(internal)? {
            return Ok(hex::encode(&bytes));
        }
        // Not here: the loop fetches it from its holders while this call waits, a few at once.
        self.blob_room(cairn_ledger::DATA_BLOB_BYTES_MAX)?;
        let _wait = self.blob_waits.clone().try_acquire_owned().map_err(|_| {
            overloaded(
                format!("this node waits for at most {BLOB_GETS_WAITING_MAX} fetched blobs at once; retry later"),
                BLOB_GET_WAIT.as_millis() as u64,
            )
        })?;
        let _ = self.node.requests.try_send(Request::FetchBlob(id));
        let deadline = tokio::time::Instant::now() + BLOB_GET_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(BLOB_GET_POLL).await;
            if let Some(bytes) = self.node.store.blob(&id).map_err(internal)? {
                return Ok(hex::encode(&bytes));
            }
        }
        Err(blob_unknown(&id))
    }

    async fn job_submit(&self, offer: SignedOffer) -> RpcResult<Hash> {
        // A refusal reads nothing from the store.
        let place = self.admission_place()?;
        self.check_blobs_here(&offer.offer)?;
        self.head_reaches(offer.offer.assignment_height).await;
        let job_id = offer.job_id();
        self.submit(Transaction::Offer(offer), place).await?;
        Ok(job_id)
    }

    async fn job_estimate(&self, offer: JobOffer, job_id: Hash) -> RpcResult<JobEstimate> {
        self.estimate(offer, job_id).await
    }

    async fn tx_submit(&self, tx: SignedTx) -> RpcResult<Hash> {
        let place = self.admission_place()?;
        let tx = Transaction::Account(tx);
        let hash = tx.hash();
        self.submit(tx, place).await?;
        Ok(hash)
    }

    async fn provider_list(&self) -> RpcResult<Vec<ProviderInfo>> {
        let view = self.node.view();
        let state = &view.state;
        Ok(state
            .providers()
            .take(PROVIDER_LIST_MAX)
            .map(|(address, p)| ProviderInfo {
                address: *address,
                price_per_fuel: p.price_per_fuel,
                stake: p.stake,
                capacity: p.capacity,
                active_jobs: p.active_jobs,
                unbonding: p.unbonding.iter().map(|(_, a)| *a).sum(),
                eligible: p.stake >= state.params().stake_min && p.stake > 0 && p.active_jobs < p.capacity,
                jobs_done: p.jobs_done,
                slashes: p.slashes,
                missed: p.missed,
                region: p.region.clone(),
            })
            .collect())
    }

    async fn job_get(&self, job_id: Hash) -> RpcResult<JobInfo> {
        self.job_info(job_id).await
    }

    async fn job_proof(&self, job_id: Hash, provider: Option<PublicKey>) -> RpcResult<ReceiptProof> {
        let mut proofs = self.stored_proofs(job_id).await?;
        if let Some(provider) = provider {
            return match proofs.iter().position(|p| p.receipt.claim.provider == provider) {
                Some(i) => Ok(proofs.swap_remove(i)),
                None if proofs.is_empty() => Err(self.no_receipt(job_id).await),
                None => {
                    Err(err(error::NOT_FOUND, format!("job {job_id} has no finalized receipt of provider {provider}")))
                }
            };
        }
        match proofs.len() {
            0 => Err(self.no_receipt(job_id).await),
            1 => Ok(proofs.remove(0)),
            n => Err(err(
                error::INVALID_PARAMS,
                format!("job {job_id} has {n} receipts (one per provider): name the provider, or call job_proofs"),
            )),
        }
    }

    async fn job_proofs(&self, job_id: Hash) -> RpcResult<Vec<ReceiptProof>> {
        let proofs = self.stored_proofs(job_id).await?;
        if proofs.is_empty() {
            // Unknown jobs are not found; known ones simply have none yet.
            self.job_info(job_id).await?;
        }
        Ok(proofs)
    }

    async fn job_subscribe(&self, pending: PendingSubscriptionSink, job_id: Hash) -> SubscriptionResult {
        let (mut past, mut rx) = self.ask(|reply| Request::Subscribe { job_id, reply }).await?;
        let mut unknown_until = None;
        if past.is_empty() {
            // Not seen since this node started: tell what the chain knows — or, for an id
            // this node does not know at all, say so rather than wait in silence.
            match self.job_info(job_id).await {
                Ok(info) if info.stage >= JobStage::Finalized => past.push(JobEvent {
                    job_id,
                    stage: info.stage,
                    result: info.result,
                    height: info.receipt_height,
                    reason: info.reason,
                }),
                Ok(_) => {}
                // Unknown here yet: clients subscribe before they submit, so it is watched for
                // a while, then ended with `dropped` (below) rather than left silent.
                Err(_) => unknown_until = Some(tokio::time::Instant::now() + UNKNOWN_JOB_WAIT),
            }
        }
        let sink = pending.accept().await?;
        let mut last = None;
        for ev in past {
            last = Some(ev.stage);
            sink.send(message(&ev)?).await?;
        }
        let done = |s: Option<JobStage>| s.is_some_and(JobStage::is_terminal);
        while !done(last) {
            let unknown_wait = async {
                match unknown_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                () = unknown_wait => {
                    unknown_until = None;
                    if self.job_info(job_id).await.is_err() {
                        let ev = JobEvent {
                            job_id,
                            stage: JobStage::Dropped,
                            result: None,
                            height: None,
                            reason: Some(format!(
                                "no job with this id reached this node within {} s: it was not submitted here, or its offer was refused",
                                UNKNOWN_JOB_WAIT.as_secs()
                            )),
                        };
                        sink.send(message(&ev)?).await?;
                        return Ok(());
                    }
                }
                ev = rx.recv() => match ev {
                    // The channel is this job's own (see `tracker`): only its events come.
                    Ok(ev) => {
                        debug_assert_eq!(ev.job_id, job_id);
                        unknown_until = None;
                        last = Some(ev.stage);
                        sink.send(message(&ev)?).await?;
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: resend those past the last stage sent.
                        let (past, fresh) = self.ask(|reply| Request::Subscribe { job_id, reply }).await?;
                        rx = fresh;
                        let sent = last;
                        for ev in past.into_iter().filter(|e| sent.is_none_or(|l| e.stage > l)) {
                            last = Some(ev.stage);
                            sink.send(message(&ev)?).await?;
                        }
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
        Ok(())
    }

    async fn chain_head(&self) -> RpcResult<HeadInfo> {
        self.head_info(&self.node.view())
    }

    async fn chain_subscribe_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        // The view holds only the latest head: a slow reader skips heights rather than
        // making the node buffer them.
        let mut view = self.node.view.clone();
        let sink = pending.accept().await?;
        let mut sent = None;
        loop {
            let latest = view.borrow_and_update().clone();
            let head = self.head_info(&latest)?;
            if sent != Some(head.height) {
                sent = Some(head.height);
                sink.send(SubscriptionMessage::from(jsonrpsee::core::to_json_raw_value(&head)?)).await?;
            }
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                changed = view.changed() => if changed.is_err() {
                    // The node is stopping.
                    return Ok(());
                },
            }
        }
    }

    async fn chain_genesis(&self) -> RpcResult<Genesis> {
        Ok(Genesis::clone(&self.node.view().genesis))
    }

    async fn chain_get_block(&self, height: u64) -> RpcResult<Block> {
        self.node
            .store
            .block(height)
            .map_err(internal)?
            .ok_or_else(|| err(error::NOT_FOUND, format!("no finalized block at height {height}")))
    }

    async fn account_get(&self, address: PublicKey) -> RpcResult<AccountInfo> {
        let account = self.node.view().state.account(&address);
        let next_nonce = self.ask(|reply| Request::NextNonce { address, reply }).await?;
        // The loop's head may be a block ahead of the view read above.
        let next_nonce = next_nonce.max(account.nonce);
        Ok(AccountInfo { address, balance: account.balance, nonce: account.nonce, next_nonce })
    }

    async fn state_get_proof(&self, key_hex: String, height: Option<u64>) -> RpcResult<StateProof> {
        let key = cairn_ledger::decode_hex(&key_hex, "state key")
            .map_err(|e| err(error::INVALID_PARAMS, format!("the key must be lowercase hex: {e}")))?;
        if key.len() > STATE_KEY_BYTES_MAX {
            return Err(err(error::INVALID_PARAMS, "state keys are at most 33 bytes"));
        }
        let head = self.node.view().height();
        let height = height.unwrap_or(head);
        if height == 0 || height > head {
            return Err(err(error::NOT_FOUND, format!("no finalized block at height {height} (head is {head})")));
        }
        let store = &self.node.store;
        let header = store.header(height).map_err(internal)?.ok_or_else(|| internal("block missing"))?;
        let commit = store.commit(height).map_err(internal)?.ok_or_else(|| internal("commit missing"))?;
        let (value, proof) = store.state_proof(&key, height).map_err(|e| {
            err(error::NOT_FOUND, format!("no state proof at height {height}: {e}; older versions are pruned"))
        })?;
        Ok(StateProof { version: FORMAT_VERSION, key, value: value.map(StateValue), proof, header, commit })
    }

    async fn node_info(&self) -> RpcResult<NodeInfo> {
        let view = self.node.view();
        Ok(NodeInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            chain_id: view.chain_id,
            chain_name: view.genesis.chain_name.clone(),
            address: self.node.address,
            peer_id: view.net.peer_id.clone(),
            listen_addrs: view.net.listen_addrs.clone(),
            validator: self.node.config.validator,
            provider: self.node.config.provider,
            peers: view.net.peers,
            height: view.height(),
            blocks_executed: view.blocks_executed,
            tx_fee_min: view.state.params().tx_fee_min,
        })
    }

    async fn system_health(&self) -> RpcResult<cairn_rpc::Health> {
        Ok(crate::health::health_of(&self.node.view(), &self.node.address))
    }

    async fn consensus_evidence(&self) -> RpcResult<Vec<EvidenceInfo>> {
        let head = self.node.view().height();
        let top = head + 1 + cairn_consensus::HEIGHTS_AHEAD_MAX;
        let from = top.saturating_sub(EVIDENCE_HEIGHTS_MAX).max(1);
        let kept = self.node.store.evidence_between(from, top, EVIDENCE_LIST_MAX).map_err(internal)?;
        Ok(kept
            .into_iter()
            .filter_map(|(height, bytes)| {
                let info = evidence_info(&bytes);
                if info.is_none() {
                    tracing::warn!(height, "undecodable evidence in the store");
                }
                info
            })
            .collect())
    }
}

/// What `job_get` tells of a job on chain, from its state entry or, once the chain retired it,
/// from the job index and its offer.
struct OnChain {
    phase: JobPhase,
    client: cairn_ledger::PublicKey,
    module_id: Hash,
    fuel_limit: u64,
    max_price: u64,
    assigned: Vec<cairn_ledger::PublicKey>,
    paid: u64,
}

impl OnChain {
    fn of(job: &Job) -> OnChain {
        OnChain {
            phase: job.phase,
            client: job.client,
            module_id: job.module_id,
            fuel_limit: job.fuel_limit,
            max_price: job.max_price,
            assigned: job.assignees().to_vec(),
            paid: job.paid,
        }
    }
}

/// A retired job: its record in the job index (`bytes`) and its offer, read from its block.
fn retired_job(store: &cairn_store::Store, job_id: &Hash, bytes: &[u8]) -> RpcResult<OnChain> {
    let retired: RetiredJob = borsh::from_slice(bytes).map_err(internal)?;
    let offer = crate::exec::offer_on_chain(store, job_id)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("job {job_id} is retired but its offer is not in the store")))?
        .offer;
    Ok(OnChain {
        phase: retired.phase,
        client: offer.client,
        module_id: offer.module_id,
        fuel_limit: offer.fuel_limit,
        max_price: offer.max_price,
        assigned: retired.assigned,
        paid: retired.paid,
    })
}

/// What the RPC shows of stored evidence (borsh of [`cairn_consensus::Evidence`]).
fn evidence_info(bytes: &[u8]) -> Option<EvidenceInfo> {
    use cairn_consensus::Evidence;
    let evidence: Evidence = borsh::from_slice(bytes).ok()?;
    let (round, kind) = match &evidence {
        Evidence::ConflictingVotes { first, .. } => (
            first.vote.round,
            match first.vote.kind {
                cairn_ledger::VoteKind::Prevote => EvidenceKind::ConflictingPrevotes,
                cairn_ledger::VoteKind::Precommit => EvidenceKind::ConflictingPrecommits,
            },
        ),
        Evidence::ConflictingProposals { first, .. } => (first.proposal.round, EvidenceKind::ConflictingProposals),
    };
    Some(EvidenceInfo { offender: evidence.offender(), height: evidence.height(), round, kind, hash: Hash::of(bytes) })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cairn_ledger::{Genesis, Keypair};
    use cairn_rpc::CairnApiClient;
    use cairn_rpc::CairnApiServer;
    use cairn_rpc::openrpc;
    use jsonrpsee::core::ClientError;
    use jsonrpsee::core::client::ClientT;
    use jsonrpsee::http_client::HttpClientBuilder;
    use jsonrpsee::types::error::METHOD_NOT_FOUND_CODE;
    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::backpressure::Admission;
    use crate::chain::Chain;
    use crate::config::NodeConfig;
    use crate::mempool::Admitted;
    use crate::service::view::Verifier;

    /// What the RPC server holds of a node over a fresh chain (the genesis of `docs/fixtures`),
    /// its RPC bound to a free loopback port. No loop runs: calls that ask it fail (`internal`),
    /// which is enough to tell a served method from an unknown one. Also returns the loop's end
    /// of the request queue, to keep it open.
    fn handle(home: &std::path::Path) -> (Handle, mpsc::Receiver<Request>) {
        let genesis: Genesis =
            serde_json::from_str(include_str!("../../docs/fixtures/genesis.json")).expect("the fixture genesis");
        handle_of(home, genesis)
    }

    /// [`handle`] over a chain of `genesis`.
    fn handle_of(home: &std::path::Path, genesis: Genesis) -> (Handle, mpsc::Receiver<Request>) {
        let (handle, requests, _) = handle_with_view(home, genesis);
        (handle, requests)
    }

    /// [`handle_of`], and the loop's end of the published view.
    fn handle_with_view(
        home: &std::path::Path,
        genesis: Genesis,
    ) -> (Handle, mpsc::Receiver<Request>, watch::Sender<Arc<View>>) {
        let chain = Chain::open(genesis, &home.join("db")).expect("open the chain");
        let config = Arc::new(NodeConfig {
            home: home.to_path_buf(),
            rpc: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..NodeConfig::default()
        });
        let (requests, requests_rx) = mpsc::channel(1);
        let (view_tx, view) = watch::channel(Arc::new(crate::service::Node::initial_view(&chain)));
        let output_bytes_max = chain.state().params().output_bytes_max as usize;
        let handle = Handle {
            requests,
            view,
            store: chain.store.clone(),
            vm: Arc::new(cairn_vm::Vm::new(cairn_vm::VmConfig::default())),
            admission: Arc::new(Admission::new(config.mempool_txs_max, config.block_time_ms)),
            verifier: Verifier::new(chain.signatures.clone(), output_bytes_max),
            config,
            address: Keypair::from_seed([1; 32]).public(),
        };
        (handle, requests_rx, view_tx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rpc_discover_lists_exactly_the_methods_the_node_serves() {
        let home = tempfile::tempdir().expect("a temporary home");
        let (node, _loop_end) = handle(home.path());
        let document = openrpc::document();
        let listed: BTreeSet<&str> = openrpc::method_names(&document.0).into_iter().collect();

        // The module the server serves (rpc_server::start builds the same): subscriptions are
        // served as their subscribe and unsubscribe methods; notifications are not methods.
        let module = RpcImpl::new(node.clone()).into_rpc();
        let served: BTreeSet<&str> = module.method_names().collect();
        assert_eq!(listed, served, "the OpenRPC document lists exactly the served methods");
        assert!(served.contains(openrpc::DISCOVER_METHOD) && served.contains("job_unsubscribe"));

        // Over the wire, from the node's real server: the same document, and every listed
        // method is there (whatever else it answers to no params), an unlisted one is not.
        let (addr, server) = crate::rpc_server::start(node).await.expect("the RPC server starts");
        let client = HttpClientBuilder::default().build(format!("http://{addr}")).expect("a client");
        let answer = client.rpc_discover().await.expect("rpc.discover answers");
        assert_eq!(&answer, document, "rpc.discover answers the generated document");
        let raw: serde_json::Value =
            client.request(openrpc::DISCOVER_METHOD, jsonrpsee::rpc_params![]).await.expect("raw rpc.discover");
        assert_eq!(raw, document.0);
        let code = |r: Result<serde_json::Value, ClientError>| match r {
            Ok(_) => None,
            Err(ClientError::Call(e)) => Some(e.code()),
            Err(e) => panic!("a JSON-RPC answer, not {e}"),
        };
        for name in &listed {
            let answer = code(client.request(name, jsonrpsee::rpc_params![]).await);
            assert_ne!(answer, Some(METHOD_NOT_FOUND_CODE), "{name} is served over the wire");
        }
        let unlisted = code(client.request("job_list", jsonrpsee::rpc_params![]).await);
        assert_eq!(unlisted, Some(METHOD_NOT_FOUND_CODE), "a method not in the document is not served");
        server.stop().expect("stop the server");
        server.stopped().await;
    }

    /// A trailing optional parameter may be left out of a positional call (RPC.md marks it
    /// optional), as well as given as `null` or by name.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trailing_optional_params_may_be_left_out_of_positional_calls() {
        let home = tempfile::tempdir().expect("a temporary home");
        let (node, _loop_end) = handle(home.path());
        let (addr, server) = crate::rpc_server::start(node).await.expect("the RPC server starts");
        let client = HttpClientBuilder::default().build(format!("http://{addr}")).expect("a client");
        // A fresh chain has no finalized block to prove against: not found, whether the height
        // is left out or null — never invalid params.
        let code = |r: Result<serde_json::Value, ClientError>| match r {
            Err(ClientError::Call(e)) => e.code(),
            other => panic!("{other:?}"),
        };
        let left_out = client.request("state_getProof", jsonrpsee::rpc_params!["00"]).await;
        let null = client.request("state_getProof", jsonrpsee::rpc_params!["00", serde_json::Value::Null]).await;
        assert_eq!((code(left_out), code(null)), (error::NOT_FOUND, error::NOT_FOUND));
        server.stop().expect("stop the server");
        server.stopped().await;
    }

    /// A chain with a funded client and one provider asking 2 per unit of fuel.
    fn market() -> (Genesis, Keypair, PublicKey) {
        let client = Keypair::from_seed([1; 32]);
        let provider = Keypair::from_seed([2; 32]).public();
        let genesis = crate::test_genesis::market("estimates", &client, 1 << 40, &[(provider, 2, 10)]);
        (genesis, client, provider)
    }

    /// An offer of `client` on the [`market`] chain for the stored `module_id`, ranked at
    /// `assignment_height`.
    fn market_offer(
        genesis: &Genesis,
        client: &Keypair,
        module_id: Hash,
        max_price: u64,
        input: &[u8],
        assignment_height: u64,
    ) -> JobOffer {
        JobOffer {
            module_id,
            input: input.to_vec(),
            fuel_limit: 10_000_000,
            max_price,
            assignment_height,
            ..crate::test_genesis::offer(genesis.chain_id(), client)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_estimate_runs_the_stored_module_as_a_provider_would_and_prices_it() {
        let home = tempfile::tempdir().expect("a temporary home");
        let (genesis, client, provider) = market();
        let (node, mut loop_end) = handle_of(home.path(), genesis.clone());
        // The loop's part: admission's check (here: nothing wrong).
        tokio::spawn(async move {
            while let Some(request) = loop_end.recv().await {
                if let Request::Check { reply, .. } = request {
                    let _ = reply.send(Ok(()));
                }
            }
        });
        let wasm = cairn_vm::fixtures::uppercase_wasm();
        let module_id = node.store.put_blob(&wasm).expect("store the module");
        let rpc = RpcImpl::new(node.clone());
        let offer = |max_price: u64, input: &[u8]| market_offer(&genesis, &client, module_id, max_price, input, 0);
        let o = offer(5, b"hello estimate");
        let job_id = o.clone().sign(&client).job_id();
        let e = rpc.job_estimate(o.clone(), job_id).await.expect("an estimate");
        // What a provider's run gives.
        let run = crate::exec::run_job(&node.vm, &module_id, &wasm, &o.input, o.fuel_limit).expect("runs");
        assert_eq!(run.output, b"HELLO ESTIMATE");
        assert_eq!((e.status, e.fuel_used, e.output_size_bytes), (run.status, run.fuel_used, 14));
        assert!(e.fuel_used > 0 && e.reason.is_none());
        assert_eq!(e.providers, vec![cairn_rpc::EstimateProvider { address: provider, price_per_fuel: 2 }]);
        assert_eq!((e.escrow, e.cost, e.refund), (50_000_000, 2 * e.fuel_used, 50_000_000 - 2 * e.fuel_used));
        assert!(e.admissible && e.problems.is_empty(), "{:?}", e.problems);
        assert_eq!(e.job_id, job_id);

        // Below the provider's ask: it runs all the same, nobody would be assigned or paid.
        let e = rpc.job_estimate(offer(1, b"x"), job_id).await.expect("an estimate");
        assert_eq!((e.providers.len(), e.cost, e.escrow, e.refund), (0, 0, 10_000_000, 10_000_000));
        assert!(!e.admissible);
        assert_eq!(e.problems.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(), vec!["no_eligible_provider"]);
        assert!(e.problems[0].message.contains("the lowest ask is 2"), "{}", e.problems[0].message);

        // Refused before anything runs: a module not stored here, an input over the chain's limit.
        let mut unknown = offer(5, b"x");
        unknown.module_id = Hash::of(b"not stored");
        let refused = rpc.job_estimate(unknown, job_id).await.expect_err("module unknown");
        assert_eq!(refused.code(), error::MODULE_UNKNOWN);
        let big = offer(5, &vec![b'a'; genesis.params.input_bytes_max as usize + 1]);
        let refused = rpc.job_estimate(big, job_id).await.expect_err("input too large");
        assert_eq!(
            (refused.code(), error::reason_of(&refused).as_deref()),
            (error::INVALID_TX, Some("input_too_large"))
        );

        // Every slot busy: refused at once, with a hint of when to retry.
        let held: Vec<_> = (0..ESTIMATES_AT_ONCE).map(|_| rpc.estimates.try_take().expect("a slot")).collect();
        let refused = rpc.job_estimate(o.clone(), job_id).await.expect_err("overloaded");
        assert_eq!(refused.code(), error::OVERLOADED);
        assert!(refused.data().expect("data").get().contains("retry_after_ms"));
        drop(held);
        rpc.job_estimate(o, job_id).await.expect("a slot is free again");
    }

    /// `module_put` stores a valid module; one past the size limit is refused before its hex is
    /// decoded, and past [`MODULE_UPLOADS_WAITING_MAX`] uploads in turn the next is answered
    /// `overloaded` at once, with a hint of when to retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn module_uploads_are_bounded_in_size_and_in_number() {
        let home = tempfile::tempdir().expect("a temporary home");
        let (genesis, _, _) = market();
        let (node, _loop_end) = handle_of(home.path(), genesis);
        let rpc = RpcImpl::new(node.clone());
        let wasm = cairn_vm::fixtures::uppercase_wasm();
        let id = rpc.module_put(hex::encode(&wasm)).await.expect("a valid module");
        assert!(node.store.has_blob(&id).expect("read"));

        let max = node.vm.config().module_size_bytes_max;
        // Not hex at all: refused for its size alone, before any decoding.
        let refused = rpc.module_put("z".repeat(2 * max + 2)).await.expect_err("too large");
        assert_eq!(refused.code(), error::INVALID_MODULE);
        assert!(refused.message().contains(&format!("over the limit of {max} bytes")), "{}", refused.message());

        let held =
            rpc.upload_waits.clone().try_acquire_many_owned(MODULE_UPLOADS_WAITING_MAX as u32).expect("every place");
        let refused = rpc.module_put(hex::encode(&wasm)).await.expect_err("overloaded");
        assert_eq!(refused.code(), error::OVERLOADED);
        assert!(refused.data().expect("data").get().contains("retry_after_ms"));
        drop(held);
        rpc.module_put(hex::encode(&wasm)).await.expect("a place is free again");
    }

    /// An offer ranked at a height just ahead of this node's head waits for the head to reach
    /// it before the loop checks it; one further ahead is checked (and refused) at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offer_ranked_just_ahead_of_the_head_waits_for_it() {
        let home = tempfile::tempdir().expect("a temporary home");
        let (genesis, client, _) = market();
        let (node, mut loop_end, view) = handle_with_view(home.path(), genesis.clone());
        let module_id = node.store.put_blob(&cairn_vm::fixtures::uppercase_wasm()).expect("store the module");
        let offer = |assignment_height: u64| {
            market_offer(&genesis, &client, module_id, 5, b"ahead", assignment_height).sign(&client)
        };
        let rpc = Arc::new(RpcImpl::new(node.clone()));
        let submitted = |o: SignedOffer| {
            let rpc = rpc.clone();
            tokio::spawn(async move { rpc.job_submit(o).await })
        };
        let answer = |request: Option<Request>, admitted: Result<Admitted, AdmitError>| match request {
            Some(Request::Submit { reply, .. }) => {
                let _ = reply.send(admitted);
            }
            _ => panic!("a submission"),
        };
        let quiet = std::time::Duration::from_millis(300);

        // One block ahead: nothing reaches the loop until the head is there.
        let near = offer(1);
        let call = submitted(near.clone());
        assert!(tokio::time::timeout(quiet, loop_end.recv()).await.is_err(), "it waits for the head");
        let mut next = (*node.view()).clone();
        // A header at height 1 (only its height is read here).
        let proof: cairn_ledger::ReceiptProof =
            serde_json::from_str(include_str!("../../docs/fixtures/receipt-proof.json")).expect("the fixture proof");
        next.head = Some(cairn_ledger::BlockHeader { height: 1, ..proof.header });
        view.send(Arc::new(next)).expect("the view is watched");
        let request = tokio::time::timeout(AHEAD_WAIT_MAX, loop_end.recv()).await.expect("checked once there");
        answer(request, Ok(Admitted::New));
        assert_eq!(call.await.expect("the call ends").expect("accepted"), near.job_id());

        // Past what gossip would hold: checked at once, and refused by the loop's rules.
        let far = offer(1 + EARLY_OFFER_BLOCKS_MAX + 1);
        let call = submitted(far);
        let request = tokio::time::timeout(quiet, loop_end.recv()).await.expect("checked at once");
        let refusal = TxError::Limit(Limit::AssignmentHeight { got: 6, window: 64, head: 1 });
        answer(request, Err(AdmitError::Tx(refusal)));
        let refused = call.await.expect("the call ends").expect_err("refused");
        assert_eq!(error::reason_of(&refused).as_deref(), Some("assignment_height_out_of_window"));

        // Every waiting slot taken: one block ahead is checked at once too.
        let held = rpc.ahead_waits.try_acquire_many(AHEAD_WAITS_MAX as u32).expect("every slot");
        let call = submitted(offer(2));
        let request = tokio::time::timeout(quiet, loop_end.recv()).await.expect("checked at once");
        let refusal = TxError::Limit(Limit::AssignmentHeight { got: 2, window: 64, head: 1 });
        answer(request, Err(AdmitError::Tx(refusal)));
        call.await.expect("the call ends").expect_err("refused");
        drop(held);
    }

    /// Submissions that passed the door count against admission's limit until the loop has
    /// answered them: past it, the next one is refused at once, without reaching the loop,
    /// and the door opens again once their answers came.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submissions_on_their_way_to_the_loop_count_against_the_limit() {
        let home = tempfile::tempdir().expect("a temporary home");
        let (genesis, client, _) = market();
        let (node, mut loop_end) = handle_of(home.path(), genesis.clone());
        let module_id = node.store.put_blob(&cairn_vm::fixtures::uppercase_wasm()).expect("store the module");
        let offer =
            |nonce: u64| JobOffer { nonce, ..market_offer(&genesis, &client, module_id, 5, b"burst", 0) }.sign(&client);
        // Blocks of 4 transactions: room for 6 pending; 4 are.
        node.admission.update(4);
        node.admission.set_pending(4);
        let rpc = Arc::new(RpcImpl::new(node.clone()));
        let submitted = |o: SignedOffer| {
            let rpc = rpc.clone();
            tokio::spawn(async move { rpc.job_submit(o).await })
        };
        let quiet = std::time::Duration::from_millis(300);
        let mut waiting = Vec::new();
        for nonce in 0..2 {
            let call = submitted(offer(nonce));
            let Some(Request::Submit { reply, .. }) = loop_end.recv().await else { panic!("a submission") };
            waiting.push((call, reply));
        }
        // Two on their way (the loop has not answered): the third is refused at the door.
        let refused = tokio::time::timeout(quiet, rpc.job_submit(offer(2)))
            .await
            .expect("answered without the loop")
            .expect_err("past the limit");
        assert_eq!(refused.code(), error::OVERLOADED);
        assert!(tokio::time::timeout(quiet, loop_end.recv()).await.is_err(), "the loop never saw it");
        // The loop admits them; their places are given back once their answers came.
        node.admission.set_pending(6);
        for (call, reply) in waiting.drain(..) {
            let _ = reply.send(Ok(Admitted::New));
            call.await.expect("the call ends").expect("accepted");
        }
        tokio::time::timeout(quiet, rpc.job_submit(offer(2)))
            .await
            .expect("answered without the loop")
            .expect_err("six pending");
        node.admission.set_pending(5);
        let call = submitted(offer(2));
        let Some(Request::Submit { reply, .. }) = loop_end.recv().await else { panic!("a submission") };
        let _ = reply.send(Ok(Admitted::New));
        call.await.expect("the call ends").expect("room again");
    }
}
