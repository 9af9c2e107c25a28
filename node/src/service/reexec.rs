//! Re-executions for challenges and disputes, run ahead of the blocks that need them
//! ([`crate::verdicts`] keeps them): the loop asks for them, one runs at a time on a blocking
//! thread, and block building and checking look them up through a [`VerdictLookup`].

use std::collections::HashMap;
use std::sync::Arc;

use cairn_contracts::{Job, Reexecute, TxError};
use cairn_ledger::Hash;
use cairn_store::Store;
use cairn_vm::Vm;

use super::{Event, Node};
use crate::chain::Lookup;
use crate::verdicts::{VERDICT_REQUESTS_MAX, Verdict, Verdicts};

/// The verdicts a block execution may use, looked up and never run: a job without one is
/// recorded as missing and its resolution fails with [`TxError::ReexecutionPending`] (not the
/// transaction's fault: it applies once the verdict is in).
#[derive(Debug, Default)]
pub struct VerdictLookup {
    verdicts: HashMap<Hash, Verdict>,
    missing: Vec<Hash>,
}

impl VerdictLookup {
    /// The verdicts of `jobs` that `verdicts` holds.
    pub fn of(verdicts: &Verdicts, jobs: impl IntoIterator<Item = Hash>) -> VerdictLookup {
        let verdicts = jobs.into_iter().filter_map(|id| verdicts.get(&id).map(|v| (id, v))).collect();
        VerdictLookup { verdicts, missing: Vec::new() }
    }

    /// For a block: the verdicts of the jobs it resolves.
    pub fn for_block(verdicts: &Verdicts, txs: &[cairn_ledger::Transaction]) -> VerdictLookup {
        VerdictLookup::of(verdicts, resolved_jobs(txs))
    }
}

/// The jobs `txs` resolve.
pub fn resolved_jobs(txs: &[cairn_ledger::Transaction]) -> impl Iterator<Item = Hash> + '_ {
    txs.iter().filter_map(|tx| match tx {
        cairn_ledger::Transaction::Resolve { job_id } => Some(*job_id),
        _ => None,
    })
}

impl Reexecute for VerdictLookup {
    fn reexecute(&mut self, job_id: &Hash, _job: &Job) -> cairn_contracts::Result<Verdict> {
        match self.verdicts.get(job_id) {
            Some(v) => Ok(*v),
            None => {
                if !self.missing.contains(job_id) {
                    self.missing.push(*job_id);
                }
                Err(TxError::ReexecutionPending(*job_id))
            }
        }
    }
}

impl Lookup for VerdictLookup {
    fn missing(&self) -> &[Hash] {
        &self.missing
    }
}

/// A background re-execution's end.
pub struct VerdictDone {
    job_id: Hash,
    /// The verdict, or why there is none.
    verdict: Result<Verdict, VerdictMiss>,
}

enum VerdictMiss {
    /// The job's module or input blob is not stored here yet (it is fetched).
    Blob(Hash),
    /// Anything else: the offer not found, a failure of this node's sandbox or store.
    Failed(String),
}

/// The re-executions of this node: the verdicts, and those waiting for a blob.
pub struct Reexecutions {
    verdicts: Verdicts,
    /// Re-executions waiting for their job's module or input blob to arrive, by job (at most
    /// [`VERDICT_REQUESTS_MAX`]): not asked for again until it does.
    need_blob: HashMap<Hash, Hash>,
    /// A finalized block could not be applied for want of a verdict: once one arrives, ask a
    /// peer for the blocks again.
    pub blocked: bool,
}

impl Reexecutions {
    pub(super) fn new() -> Reexecutions {
        Reexecutions { verdicts: Verdicts::default(), need_blob: HashMap::new(), blocked: false }
    }

    /// The verdicts.
    pub fn verdicts(&self) -> &Verdicts {
        &self.verdicts
    }

    /// The blobs (modules and inputs) re-executions wait for.
    pub fn blobs_needed(&self) -> impl Iterator<Item = &Hash> {
        self.need_blob.values()
    }
}

impl Node {
    /// Asks for these jobs' re-executions, and starts the next one if none runs. Every node
    /// that applies blocks needs them (it checks every block it stores), validators first.
    pub(super) fn want_verdicts(&mut self, jobs: &[Hash]) {
        for job_id in jobs {
            if !self.reexec.need_blob.contains_key(job_id) {
                self.reexec.verdicts.want(*job_id);
            }
        }
        self.run_verdicts();
    }

    /// A blob arrived: the re-executions that waited for it can run.
    pub(super) fn verdicts_blob_stored(&mut self, blob: &Hash) {
        let ready: Vec<Hash> = self.reexec.need_blob.iter().filter(|(_, b)| *b == blob).map(|(job, _)| *job).collect();
        for job in &ready {
            self.reexec.need_blob.remove(job);
        }
        self.want_verdicts(&ready);
    }

    /// Starts the next re-execution, off the event loop: the job's module and input are read
    /// and the job run on a blocking thread, the verdict sent back to the loop.
    fn run_verdicts(&mut self) {
        let Some(job_id) = self.reexec.verdicts.start_next() else { return };
        let job = self.chain.state().job(&job_id).cloned();
        let pending = self.mempool.offer(&job_id).map(|o| o.offer.clone());
        let Some(job) = job else {
            // Not on chain (yet): the block that needs it will ask again.
            self.reexec.verdicts.finished(job_id, None);
            return self.run_verdicts();
        };
        let store = self.chain.store.clone();
        let vm = self.vm.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let run = tokio::task::spawn_blocking(move || reexecute(&store, &vm, job_id, &job, pending))
                .await
                .unwrap_or_else(|e| Err(VerdictMiss::Failed(format!("the re-execution task failed: {e}"))));
            let _ = events.send(Event::Verdict(VerdictDone { job_id, verdict: run })).await;
        });
    }

    /// A re-execution ended: keep the verdict, start the next, and check again what waited
    /// for it (proposals, blocks to apply).
    pub(super) fn on_verdict(&mut self, done: VerdictDone) -> anyhow::Result<()> {
        let VerdictDone { job_id, verdict } = done;
        let verdict = match verdict {
            Ok(verdict) => Some(verdict),
            Err(VerdictMiss::Blob(blob)) => {
                // Stored since the re-execution looked (another fetch was storing it): again now.
                if anyhow::Context::context(self.chain.store.has_blob(&blob), "reading the blob store")? {
                    tracing::debug!(%job_id, %blob, "the job's module or input arrived meanwhile; re-executing again");
                    self.reexec.verdicts.finished(job_id, None);
                    self.want_verdicts(&[job_id]);
                    return Ok(());
                }
                tracing::info!(%job_id, %blob, "re-execution waits for the job's module or input blob");
                if self.reexec.need_blob.len() < VERDICT_REQUESTS_MAX {
                    self.reexec.need_blob.insert(job_id, blob);
                }
                self.request_blob(blob);
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
        self.reexec.verdicts.finished(job_id, verdict);
        self.run_verdicts();
        if ready {
            self.check_needed_blocks()?;
            if std::mem::take(&mut self.reexec.blocked) {
                self.sync_from_any_peer();
            }
        }
        Ok(())
    }
}

/// Re-executes a job (blocking): its offer pending here or read from its block, its module
/// and input (inline or a blob) from the store.
fn reexecute(
    store: &Store,
    vm: &Arc<Vm>,
    job_id: Hash,
    job: &Job,
    pending: Option<cairn_ledger::JobOffer>,
) -> Result<Verdict, VerdictMiss> {
    let failed = |e: anyhow::Error| VerdictMiss::Failed(format!("{e:#}"));
    let offer = match pending {
        Some(offer) => offer,
        None => crate::exec::offer_on_chain(store, &job_id)
            .map_err(failed)?
            .map(|o| o.offer)
            .ok_or_else(|| VerdictMiss::Failed("the job's offer is not in this node's blocks".into()))?,
    };
    let input = crate::exec::job_input(store, &offer).map_err(failed)?.ok_or(VerdictMiss::Blob(offer.input_hash()))?;
    let wasm = store
        .blob(&job.module_id)
        .map_err(|e| VerdictMiss::Failed(e.to_string()))?
        .ok_or(VerdictMiss::Blob(job.module_id))?;
    let run = crate::exec::run_job(vm, &job.module_id, &wasm, &input, job.fuel_limit)
        .map_err(|e| VerdictMiss::Failed(e.to_string()))?;
    Ok(run.outcome())
}
