//! `job_estimate`: an offer run in this node's sandbox as its provider would run it
//! ([`crate::exec::run_job`], with the chain's output limit), priced at the head and checked as
//! admission would check it — nothing is signed, submitted or kept.
//!
//! What an estimate costs this node, for a caller who pays nothing for it: one blocking thread
//! for one run of at most the chain's `fuel_limit_max` fuel (the offer's fuel limit is capped to
//! it; 10^10 fuel by default, a tight loop of which took 5.2 s of one core on the 2-core
//! development machine, dev profile) on an input of at most `input_bytes_max` bytes (larger is
//! refused before anything runs), in the sandbox's memory limit, compiled once per module like
//! any job (the sandbox caches it); at most
//! [`ESTIMATES_AT_ONCE`] at once, node-wide — past that the call is answered `overloaded` at
//! once, without waiting ([`Slots`]) — and every call counts against its caller's RPC rate.
//! The output is not returned (only its size, and a failure's bounded reason, as results carry
//! it), so an estimate is not a way to have jobs run for free.

use std::sync::Arc;

use cairn_contracts::{Limit, REDUNDANCY_MAX, State, TxError};
use cairn_ledger::{ChainParams, FORMAT_VERSION, Hash, JobOffer, JobStatus};
use cairn_rpc::error::overloaded;
use cairn_rpc::{EstimateProblem, EstimateProvider, JobEstimate, RpcResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::exec::Run;

/// Estimates run at once, node-wide: each takes a core for up to a job's largest run, and
/// providers' own runs and block execution need theirs.
pub const ESTIMATES_AT_ONCE: usize = 1;

/// When a caller refused for want of a slot is told to retry: about one run of a typical job
/// (the largest take longer; the caller is refused again, at no cost to the node).
pub const ESTIMATE_RETRY_AFTER_MS: u64 = 1_000;

/// The slots estimates run in: a slot is taken at once or not at all (a caller never queues).
#[derive(Clone)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    at_once: usize,
}

impl Slots {
    /// `at_once` slots.
    pub fn new(at_once: usize) -> Slots {
        Slots { semaphore: Arc::new(Semaphore::new(at_once)), at_once }
    }

    /// A free slot, held until the permit is dropped (by the run's thread, when the run ends,
    /// even if the caller has gone); none free is `overloaded` with a retry hint.
    pub fn try_take(&self) -> RpcResult<OwnedSemaphorePermit> {
        self.semaphore.clone().try_acquire_owned().map_err(|_| {
            overloaded(
                format!(
                    "this node runs at most {} estimate(s) at once and all are in use; retry in {} ms",
                    self.at_once, ESTIMATE_RETRY_AFTER_MS
                ),
                ESTIMATE_RETRY_AFTER_MS,
            )
        })
    }
}

/// The fuel an estimate runs with: the offer's limit, at most the chain's.
pub fn fuel_to_run(offer: &JobOffer, params: &ChainParams) -> u64 {
    offer.fuel_limit.min(params.fuel_limit_max)
}

/// A refusal as an estimate's problem: the rule's `data.reason` and the refusal's message (for
/// too few providers, which of price or capacity is short, from `state`).
pub fn problem(state: &State, offer: &JobOffer, e: &TxError) -> EstimateProblem {
    let message = match e {
        TxError::NoProvider { .. } | TxError::NoProviderInRegions { .. } => {
            super::waiting::no_provider(state, offer, "it would be refused").message
        }
        e => e.to_string(),
    };
    EstimateProblem { reason: e.reason().to_owned(), message }
}

/// Every reason the offer would be refused, from the loop's check (`checked`: the first of the
/// chain's rules it breaks at the head, under the mempool's nonce rule) and from what the
/// state alone says whichever rule the chain stopped at — its version (the signature check,
/// which an estimate skips, checks it), an escrow that overflows, a fuel limit out of the
/// chain's range (the run was capped), a job id already on chain, too few eligible providers.
/// One problem per reason, the chain's first.
pub fn problems(state: &State, offer: &JobOffer, job_id: &Hash, checked: Result<(), TxError>) -> Vec<EstimateProblem> {
    let mut found: Vec<TxError> = Vec::new();
    if offer.version != FORMAT_VERSION {
        found.push(cairn_ledger::Error::Version { what: "job offer", version: offer.version }.into());
    }
    if let Err(e) = checked {
        found.push(e);
    }
    if let Err(e) = offer.escrow() {
        found.push(e.into());
    }
    // The run was capped to the chain's limit: say so, whatever the chain's check stopped at.
    if offer.fuel_limit == 0 || offer.fuel_limit > state.params().fuel_limit_max {
        found.push(TxError::Limit(Limit::FuelLimit { max: state.params().fuel_limit_max }));
    }
    if state.job(job_id).is_some() {
        found.push(TxError::DuplicateJob(*job_id));
    }
    let k = offer.redundancy;
    if (1..=REDUNDANCY_MAX).contains(&k) && state.eligible_count(offer.max_price, &offer.placement) < usize::from(k) {
        found.push(TxError::no_provider(offer.max_price, k, &offer.placement));
    }
    let mut out: Vec<EstimateProblem> = Vec::new();
    for e in &found {
        if !out.iter().any(|p| p.reason == e.reason()) {
            out.push(problem(state, offer, e));
        }
    }
    out
}

/// The estimate of `offer` (job id `job_id`) from its `run` with `fuel_limit`, priced at the
/// state of `height`: the escrow, the providers it would be assigned now (the first
/// `redundancy` ranked for the job id) with what each would be paid per unit of fuel, the cost
/// (`fuel_used × min(ask, max_price)` summed over them) and the refund.
pub fn assemble(
    state: &State,
    height: u64,
    offer: &JobOffer,
    job_id: Hash,
    fuel_limit: u64,
    run: &Run,
    problems: Vec<EstimateProblem>,
) -> JobEstimate {
    let k = usize::from(offer.redundancy.min(REDUNDANCY_MAX));
    let providers: Vec<EstimateProvider> = state
        .assignment(&job_id, offer.max_price, &offer.placement, k)
        .into_iter()
        .map(|address| EstimateProvider { address, price_per_fuel: state.pay_rate(&address, offer.max_price) })
        .collect();
    let cost = providers
        .iter()
        .try_fold(0u64, |sum, p| run.fuel_used.checked_mul(p.price_per_fuel)?.checked_add(sum))
        .unwrap_or(u64::MAX);
    let escrow = offer.escrow().unwrap_or(u64::MAX);
    JobEstimate {
        job_id,
        height,
        status: run.status,
        fuel_used: run.fuel_used,
        fuel_limit,
        output_size_bytes: run.output.len() as u64,
        reason: (run.status != JobStatus::Ok).then(|| String::from_utf8_lossy(&run.output).into_owned()),
        escrow,
        fee: offer.fee,
        providers,
        cost,
        refund: escrow.saturating_sub(cost),
        admissible: problems.is_empty(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Genesis, Keypair};

    use super::*;

    /// A client with `balance` and providers asking 1 and 3.
    fn genesis(balance: u64) -> (Genesis, Keypair) {
        let client = Keypair::from_seed([1; 32]);
        let offerings: Vec<_> = [1, 3]
            .iter()
            .enumerate()
            .map(|(i, &price)| (Keypair::from_seed([10 + i as u8; 32]).public(), price, 100))
            .collect();
        let genesis = crate::test_genesis::market("estimate", &client, balance, &offerings);
        (genesis, client)
    }

    fn offer(genesis: &Genesis, client: &Keypair, max_price: u64, redundancy: u8) -> JobOffer {
        JobOffer {
            module_id: Hash::of(b"wasm"),
            input: b"in".to_vec(),
            max_price,
            redundancy,
            deadline_height: 10,
            ..crate::test_genesis::offer(genesis.chain_id(), client)
        }
    }

    fn run(fuel_used: u64) -> Run {
        Run { status: JobStatus::Ok, output: b"OUT".to_vec(), fuel_used }
    }

    #[test]
    fn the_cost_is_what_each_assigned_provider_would_be_paid() {
        let (genesis, client) = genesis(1_000_000);
        let state = State::from_genesis(&genesis).expect("genesis");
        let o = offer(&genesis, &client, 3, 2);
        let job_id = o.clone().sign(&client).job_id();
        let e = assemble(&state, 5, &o, job_id, 1_000, &run(40), vec![]);
        // Both providers rank, each paid its ask.
        let mut rates: Vec<u64> = e.providers.iter().map(|p| p.price_per_fuel).collect();
        rates.sort_unstable();
        assert_eq!(rates, vec![1, 3]);
        assert_eq!(
            e.providers.iter().map(|p| p.address).collect::<Vec<_>>(),
            state.assignment(&job_id, 3, &cairn_ledger::Placement::Anywhere, 2)
        );
        assert_eq!((e.escrow, e.cost, e.refund, e.fee), (6_000, 40 + 120, 6_000 - 160, 1));
        // At price 2 only the one asking 1 is eligible: one provider for two executions.
        let e = assemble(&state, 5, &offer(&genesis, &client, 2, 2), job_id, 1_000, &run(40), vec![]);
        assert_eq!((e.providers.len(), e.cost, e.escrow), (1, 40, 4_000));
        assert_eq!((e.status, e.fuel_used, e.output_size_bytes, e.reason.as_deref()), (JobStatus::Ok, 40, 3, None));
        assert!(e.admissible && e.height == 5);

        // A failure carries its reason; the cost is the fuel it used.
        let trap = Run { status: JobStatus::Trap, output: b"job aborted: no".to_vec(), fuel_used: 7 };
        let e = assemble(&state, 5, &offer(&genesis, &client, 1, 1), job_id, 1_000, &trap, vec![]);
        assert_eq!((e.reason.as_deref(), e.cost), (Some("job aborted: no"), 7));
    }

    #[test]
    fn every_reason_to_refuse_is_reported_once() {
        let (genesis, client) = genesis(10);
        let state = State::from_genesis(&genesis).expect("genesis");
        let mut o = offer(&genesis, &client, 0, 1);
        o.version = 9;
        let job_id = Hash::of(b"id");
        let checked = Err(TxError::InsufficientBalance { balance: 10, escrow: 1 });
        let found = problems(&state, &o, &job_id, checked);
        let reasons: Vec<&str> = found.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons, vec!["invalid_encoding", "insufficient_balance", "no_eligible_provider"]);
        assert!(found[2].message.contains("the lowest ask is 1"), "{}", found[2].message);

        // The chain's check found the providers short too: listed once.
        let o = offer(&genesis, &client, 0, 1);
        let found = problems(&state, &o, &job_id, Err(TxError::NoProvider { max_price: 0, needed: 1 }));
        assert_eq!(found.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(), vec!["no_eligible_provider"]);
        // An escrow that overflows; nothing else wrong.
        let mut o = offer(&genesis, &client, 2, 1);
        o.fuel_limit = u64::MAX;
        let found = problems(&state, &o, &job_id, Ok(()));
        assert_eq!(
            found.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(),
            vec!["overflow", "fuel_limit_out_of_range"]
        );
        assert_eq!(assemble(&state, 0, &o, job_id, 1, &run(1), vec![]).escrow, u64::MAX);
        assert!(problems(&state, &offer(&genesis, &client, 1, 1), &job_id, Ok(())).is_empty());
    }

    #[test]
    fn past_its_slots_an_estimate_is_refused_at_once_as_overloaded() {
        let slots = Slots::new(ESTIMATES_AT_ONCE);
        let held: Vec<_> = (0..ESTIMATES_AT_ONCE).map(|_| slots.try_take().expect("a free slot")).collect();
        let refused = slots.try_take().expect_err("every slot is taken");
        assert_eq!(refused.code(), cairn_rpc::error::OVERLOADED);
        assert_eq!(cairn_rpc::error::reason_of(&refused).as_deref(), Some("overloaded"));
        let data = refused.data().expect("data").get();
        assert!(data.contains(&format!("\"retry_after_ms\":{ESTIMATE_RETRY_AFTER_MS}")), "{data}");
        drop(held);
        let _again = slots.try_take().expect("a slot is free again once a run ends");
    }

    #[test]
    fn docs_rpc_md_states_the_bounds() {
        let doc = include_str!("../../../docs/RPC.md");
        assert!(doc.contains(&format!("`ESTIMATES_AT_ONCE` ({ESTIMATES_AT_ONCE})")), "RPC.md states the slots");
        assert_eq!(ESTIMATE_RETRY_AFTER_MS, 1_000, "RPC.md states the retry hint as 1,000");
        assert!(doc.contains("`retry_after_ms`\n(1,000)") || doc.contains("`retry_after_ms` 1,000"));
    }

    #[test]
    fn the_fuel_run_is_capped_by_the_chain() {
        let (genesis, client) = genesis(1);
        let mut o = offer(&genesis, &client, 1, 1);
        o.fuel_limit = u64::MAX;
        assert_eq!(fuel_to_run(&o, &genesis.params), genesis.params.fuel_limit_max);
        o.fuel_limit = 5;
        assert_eq!(fuel_to_run(&o, &genesis.params), 5);
    }
}
