//! Running a job the way every node must: the provider to produce its result, a validator to
//! re-execute a challenged or disputed one (ahead of the block, `crate::verdicts`). Both go
//! through [`run_job`], so their claims agree byte for byte.

use cairn_ledger::{Hash, JobStatus, Outcome, SignedOffer, Transaction};
use cairn_store::Store;
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

impl Run {
    /// What the result of this run states: the output's hash, the fuel used, the status.
    pub fn outcome(&self) -> Outcome {
        Outcome { output_hash: Hash::of(&self.output), fuel_used: self.fuel_used, status: self.status }
    }
}

/// Runs `wasm` on `input` within `fuel_limit`; an output above
/// [`DATA_BLOB_BYTES_MAX`](cairn_ledger::DATA_BLOB_BYTES_MAX) becomes `output_too_large` (one
/// above the chain's `output_bytes_max` is not: its result leaves it in a blob).
///
/// `Err` is a failure of this node, not of the job (memory it could not reserve, a panic in
/// the sandbox): another node would not reproduce it, so it must never become a signed
/// status. A provider signs nothing for that job; a re-execution has no verdict.
pub fn run_job(vm: &Vm, module_id: &Hash, wasm: &[u8], input: &[u8], fuel_limit: u64) -> Result<Run, InternalError> {
    let outcome = vm.execute_with_id(&module_id.0, wasm, input, fuel_limit)?;
    let max = cairn_ledger::DATA_BLOB_BYTES_MAX;
    let (status, output) = match outcome.status {
        // The chain's limit holds whatever the sandbox's: the same rule, the same reason.
        JobStatus::Ok if outcome.output.len() > max => (
            JobStatus::OutputTooLarge,
            format!("the output is {} bytes, over the limit of {max} bytes", outcome.output.len()).into_bytes(),
        ),
        // Otherwise the output as the sandbox gave it: the result, or the reason of a failure.
        _ => (outcome.status, outcome.output),
    };
    // The sandbox already reports the limit for out of fuel and never more than it otherwise.
    Ok(Run { status, output, fuel_used: outcome.fuel_used })
}

/// A job's input: the offer's inline input, or the blob it names read from `store` (`None`
/// if the blob is not stored here).
pub fn job_input(store: &Store, offer: &cairn_ledger::JobOffer) -> anyhow::Result<Option<Vec<u8>>> {
    match offer.input_blob {
        None => Ok(Some(offer.input.clone())),
        Some(id) => Ok(store.blob(&id)?),
    }
}

/// The signed offers of jobs, from the blocks that included them, each block read once; jobs
/// with no offer on chain are left out.
pub fn offers_on_chain(store: &Store, job_ids: &[Hash]) -> anyhow::Result<Vec<SignedOffer>> {
    let mut by_height: std::collections::BTreeMap<u64, std::collections::HashSet<Hash>> = Default::default();
    for id in job_ids {
        if let Some(height) = store.job(id)?.and_then(|l| l.offer_height) {
            by_height.entry(height).or_default().insert(*id);
        }
    }
    let mut offers = Vec::new();
    for (height, ids) in by_height {
        let block = store.block(height)?.ok_or_else(|| anyhow::anyhow!("block {height} is missing from the store"))?;
        offers.extend(block.txs.into_iter().filter_map(|tx| match tx {
            Transaction::Offer(o) if ids.contains(&o.job_id()) => Some(o),
            _ => None,
        }));
    }
    Ok(offers)
}

/// The signed offer of a job, from the block that included it.
pub fn offer_on_chain(store: &Store, job_id: &Hash) -> anyhow::Result<Option<SignedOffer>> {
    Ok(offers_on_chain(store, &[*job_id])?.pop())
}
