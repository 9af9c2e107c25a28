//! Running a job the way every node must: the provider to produce its result, a validator to
//! re-execute a challenged one. Both go through [`run_job`], so their claims agree byte for byte.

use anyhow::Context;
use cairn_contracts::{Job, Reexecute};
use cairn_ledger::{Hash, JobStatus, SignedOffer, Store, Transaction};
use cairn_vm::{InternalError, Vm};

/// What a job's run yields, as its result states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// How it ended.
    pub status: JobStatus,
    /// Its output; for any other status than ok, the reason (UTF-8, bounded).
    pub output: Vec<u8>,
    /// Fuel used (the limit when out of fuel).
    pub fuel_used: u64,
}

/// Runs `wasm` on `input` within `fuel_limit`; an output above `output_bytes_max` becomes
/// `output_too_large`.
///
/// `Err` is a failure of this node, not of the job (memory it could not reserve, a panic in
/// the sandbox): another node would not reproduce it, so it must never become a signed
/// status. A provider signs nothing for that job; a re-execution has no verdict.
pub fn run_job(
    vm: &Vm,
    module_id: &Hash,
    wasm: &[u8],
    input: &[u8],
    fuel_limit: u64,
    output_bytes_max: usize,
) -> Result<Run, InternalError> {
    let outcome = vm.execute_with_id(&module_id.0, wasm, input, fuel_limit)?;
    let (status, output) = match outcome.status {
        // The chain's own limit may be below the sandbox's: the same rule, the same reason.
        JobStatus::Ok if outcome.output.len() > output_bytes_max => (
            JobStatus::OutputTooLarge,
            format!("the output is {} bytes, over the limit of {output_bytes_max} bytes", outcome.output.len())
                .into_bytes(),
        ),
        // Otherwise the output as the sandbox gave it: the result, or the reason of a failure.
        _ => (outcome.status, outcome.output),
    };
    // The sandbox already reports the limit for out of fuel and never more than it otherwise.
    Ok(Run { status, output, fuel_used: outcome.fuel_used })
}

/// The signed offer of a job, from the block that included it.
pub fn offer_on_chain(store: &Store, job_id: &Hash) -> Option<SignedOffer> {
    let height = store.job(job_id).ok()??.offer_height?;
    let block = store.block(height).ok()??;
    block.txs.into_iter().find_map(|tx| match tx {
        Transaction::Offer(o) if o.job_id() == *job_id => Some(o),
        _ => None,
    })
}

/// Re-executes challenged jobs from the node's store (offer input from its block, module from
/// the blob store) in its sandbox.
pub struct Reexecutor<'a> {
    /// The store.
    pub store: &'a Store,
    /// The sandbox.
    pub vm: &'a Vm,
    /// The chain's output limit.
    pub output_bytes_max: usize,
}

impl<'a> Reexecutor<'a> {
    /// Re-executes from `store` in `vm`, with the chain's output limit from `params`.
    pub fn new(store: &'a Store, vm: &'a Vm, params: &cairn_ledger::ChainParams) -> Reexecutor<'a> {
        Reexecutor { store, vm, output_bytes_max: params.output_bytes_max as usize }
    }
}

impl Reexecute for Reexecutor<'_> {
    fn reexecute(&mut self, job_id: &Hash, job: &Job) -> Result<(Hash, u64, JobStatus), String> {
        let go = || -> anyhow::Result<(Hash, u64, JobStatus)> {
            let offer = offer_on_chain(self.store, job_id).context("the job's offer is not in this node's blocks")?;
            let wasm = self.store.blob(&job.module_id)?.context("the job's module is not stored on this node")?;
            // A failure of this node gives no verdict: the caller gets an error, not a status.
            let run =
                run_job(self.vm, &job.module_id, &wasm, &offer.offer.input, job.fuel_limit, self.output_bytes_max)?;
            Ok((Hash::of(&run.output), run.fuel_used, run.status))
        };
        go().map_err(|e| format!("{e:#}"))
    }
}
