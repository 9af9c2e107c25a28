//! A provider's work: which offers it runs (assigned to it, and on chain or next in their
//! client's nonce order), running them in the sandbox on blocking threads (at most
//! `executions_max` at once), modules fetched and compiled ahead, and the signed results
//! handed back to the loop to gossip.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use cairn_ledger::{FORMAT_VERSION, Hash, JobResult, JobStatus, Keypair, PublicKey, ResultClaim, SignedOffer};
use cairn_store::Store;
use cairn_vm::Vm;
use tokio::sync::Semaphore;

use super::{Event, Node};

/// Past this many remembered started jobs, those closed on chain are forgotten.
pub const STARTED_JOBS_PRUNE_AT: usize = 10_000;
/// Blobs (modules and inputs) waited for at once by a provider.
pub const BLOB_WAITS_MAX: usize = 1_024;
/// Offers waiting for one blob.
pub const OFFERS_PER_BLOB_WAIT_MAX: usize = 1_024;
/// Modules compiled ahead of their jobs at once. Not taken from the execution slots: a job
/// never queues behind another module's preparation.
pub const PREPARATIONS_AT_ONCE: usize = 1;
/// Offers of open jobs assigned here that are read from the store at once, off the loop (a
/// provider that missed their gossip, or a stand-in reassigned many jobs); the rest are read
/// after a later block.
pub const OFFER_LOOKUPS_MAX: usize = 256;
/// How many times a provider tries a job that failed on its side before giving up on it (the
/// slot then passes to the next ranked provider after `delivery_blocks`).
pub const EXECUTION_ATTEMPTS_MAX: u8 = 3;

/// A provider's finished run.
pub enum Ran {
    /// The job ran: its signed result.
    Done(Box<JobResult>),
    /// This node failed to run the job (a sandbox failure of its own, a missing blob): nothing
    /// was signed, and the job may be tried again.
    Failed(Hash),
}

/// The provider's own state.
pub struct Provider {
    executions: Arc<Semaphore>,
    preparations: Arc<Semaphore>,
    /// Jobs started here (so each runs once).
    started: HashSet<Hash>,
    /// Jobs whose run failed here, with the attempts so far.
    failed_attempts: HashMap<Hash, u8>,
    /// Offers waiting for their module or input blob, by blob id.
    waiting: HashMap<Hash, Vec<SignedOffer>>,
    /// Jobs whose offers are being read from the store (at most [`OFFER_LOOKUPS_MAX`]).
    looking_up: HashSet<Hash>,
    /// Runs started and not yet ended (running, or waiting for an execution slot).
    running: usize,
}

impl Provider {
    /// A provider running at most `executions_max` jobs at once.
    pub fn new(executions_max: usize) -> Provider {
        Provider {
            executions: Arc::new(Semaphore::new(executions_max.max(1))),
            preparations: Arc::new(Semaphore::new(PREPARATIONS_AT_ONCE)),
            started: HashSet::new(),
            failed_attempts: HashMap::new(),
            waiting: HashMap::new(),
            looking_up: HashSet::new(),
            running: 0,
        }
    }

    /// The blobs (modules and inputs) offers wait for.
    pub fn blobs_awaited(&self) -> impl Iterator<Item = &Hash> {
        self.waiting.keys()
    }

    /// Runs started and not yet ended.
    pub fn running(&self) -> usize {
        self.running
    }
}

/// What a run needs, moved to its blocking thread.
struct RunJob {
    store: Arc<Store>,
    vm: Arc<Vm>,
    key: Keypair,
    /// The chain's `output_bytes_max`: a larger output is left in a blob.
    output_inline_max: usize,
    wrong_result: bool,
}

impl Node {
    /// Considers `sender`'s pending offers that can be included now (a transaction of theirs
    /// just arrived, and may have filled a nonce gap).
    pub(super) fn consider_includable_offers(&mut self, sender: PublicKey) -> anyhow::Result<()> {
        if self.provider.is_none() {
            return Ok(());
        }
        let nonce = self.chain.state().account(&sender).nonce;
        for offer in self.mempool.includable_offers(sender, nonce) {
            self.consider_executing(offer)?;
        }
        Ok(())
    }

    /// Every node keeps the modules of the offers it sees (validators re-execute challenged
    /// jobs, and a stand-in provider may need the module later); a provider runs the offer if
    /// it is assigned to it and it is on chain or can be included next (never an offer behind
    /// a nonce gap, which may never be paid for), once it holds the module and the input blob
    /// (fetched only by the providers assigned).
    pub(super) fn consider_executing(&mut self, offer: SignedOffer) -> anyhow::Result<()> {
        let module_id = offer.offer.module_id;
        let has = self.chain.store.has_blob(&module_id).context("reading the module store")?;
        if !has {
            self.request_blob(module_id);
        }
        let me = self.key.public();
        let Some(provider) = self.provider.as_ref() else { return Ok(()) };
        let job_id = offer.job_id();
        if provider.started.contains(&job_id) {
            return Ok(());
        }
        let state = self.chain.state();
        let o = &offer.offer;
        let on_chain_or_next = state.job(&job_id).is_some()
            || self.mempool.is_includable(o.client, o.nonce, state.account(&o.client).nonce);
        let assigned = on_chain_or_next && may_deliver(state, &job_id, Some(o), &me);
        if !assigned {
            return Ok(());
        }
        let missing = match o.input_blob {
            _ if !has => Some(module_id),
            Some(input) if !self.chain.store.has_blob(&input).context("reading the blob store")? => {
                self.request_blob(input);
                Some(input)
            }
            _ => None,
        };
        let Some(missing) = missing else {
            self.start_run(offer);
            return Ok(());
        };
        let Some(provider) = self.provider.as_mut() else { return Ok(()) };
        if !provider.waiting.contains_key(&missing) && provider.waiting.len() >= BLOB_WAITS_MAX {
            tracing::warn!(blob = %missing, "too many blobs awaited; dropping offer");
            return Ok(());
        }
        // Its blob was requested above.
        let list = provider.waiting.entry(missing).or_default();
        if list.len() < OFFERS_PER_BLOB_WAIT_MAX && !list.iter().any(|w| w == &offer) {
            list.push(offer);
        }
        Ok(())
    }

    /// A blob is stored here: the offers that waited for it run, or wait for their next blob.
    pub(super) fn provider_blob_stored(&mut self, blob: &Hash) -> anyhow::Result<()> {
        let Some(offers) = self.provider.as_mut().and_then(|p| p.waiting.remove(blob)) else { return Ok(()) };
        offers.into_iter().try_for_each(|o| self.consider_executing(o))
    }

    fn start_run(&mut self, offer: SignedOffer) {
        let job_id = offer.job_id();
        // A stopping node starts nothing new (the job's slot passes on if it never runs).
        if self.stopping {
            return;
        }
        let Some(provider) = self.provider.as_mut() else { return };
        if !provider.started.insert(job_id) {
            return;
        }
        provider.running += 1;
        let events = self.events.clone();
        if self.faults.fail_execution() {
            tracing::error!(%job_id, "cannot execute: failed on purpose (test_fail_executions)");
            tokio::spawn(async move {
                let _ = events.send(Event::Ran(Ran::Failed(job_id))).await;
            });
            return;
        }
        let permits = provider.executions.clone();
        let job = RunJob {
            store: self.chain.store.clone(),
            vm: self.vm.clone(),
            key: self.key.clone(),
            output_inline_max: self.chain.state().params().output_bytes_max as usize,
            wrong_result: self.faults.wrong_results(),
        };
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            metrics.sandbox_jobs_running.inc();
            let started = std::time::Instant::now();
            let ran = tokio::task::spawn_blocking(move || run(&job, &offer)).await;
            metrics.sandbox_jobs_running.dec();
            let ran = match ran {
                Ok(Ok(result)) => {
                    metrics.job_execution_seconds.observe(started.elapsed().as_secs_f64());
                    let status = crate::metrics::StatusLabel { status: result.claim.status.as_str() };
                    metrics.jobs_executed.get_or_create(&status).inc();
                    metrics.job_fuel_used.inc_by(result.claim.fuel_used);
                    Ran::Done(Box::new(result))
                }
                Ok(Err(e)) => {
                    tracing::error!(%job_id, "cannot execute: {e:#}");
                    Ran::Failed(job_id)
                }
                Err(e) => {
                    tracing::error!(%job_id, "execution task failed: {e}");
                    Ran::Failed(job_id)
                }
            };
            let _ = events.send(Event::Ran(ran)).await;
        });
    }

    /// A run ended: its result is gossiped and kept; a failure of this node may be tried again.
    pub(super) fn on_ran(&mut self, ran: Ran) -> anyhow::Result<()> {
        if let Some(provider) = self.provider.as_mut() {
            provider.running = provider.running.saturating_sub(1);
        }
        let r = match ran {
            Ran::Done(r) => *r,
            Ran::Failed(job_id) => {
                let Some(provider) = self.provider.as_mut() else { return Ok(()) };
                // Forgetting the start lets the next block's scan (or the offer's next gossip)
                // try again, a bounded number of times.
                let attempts = provider.failed_attempts.entry(job_id).or_insert(0);
                *attempts += 1;
                if *attempts < EXECUTION_ATTEMPTS_MAX {
                    provider.started.remove(&job_id);
                } else {
                    tracing::warn!(%job_id, attempts = *attempts, "giving up on a job that keeps failing here");
                }
                return Ok(());
            }
        };
        tracing::info!(job_id = %r.claim.job_id, status = %r.claim.status, fuel = r.claim.fuel_used, "executed");
        if r.output_in_blob {
            // Stored by the run: holders of the output are found through the DHT.
            self.provide_blob(r.claim.output_hash);
        }
        self.accept_result(r.clone())?;
        self.net.queue_result(r);
        Ok(())
    }

    /// Compiles a stored module into the sandbox's caches off the event loop, so its first
    /// job starts warm. A job on that module arriving meanwhile waits for this compilation
    /// rather than starting its own.
    pub(super) fn prepare_in_background(&self, module_id: Hash) {
        let Some(provider) = self.provider.as_ref() else { return };
        let store = self.chain.store.clone();
        let vm = self.vm.clone();
        let permits = provider.preparations.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let wasm = store.blob(&module_id)?.context("not stored")?;
                vm.prepare(&wasm)?;
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

    /// After a block: a provider that missed an offer's gossip still runs it once it is on
    /// chain; a stand-in runs the jobs it was just reassigned, and a job whose run failed
    /// here is tried again. Started jobs no longer open on chain nor pending here are
    /// forgotten past [`STARTED_JOBS_PRUNE_AT`].
    pub(super) fn provider_after_block(&mut self, offers: Vec<SignedOffer>) -> anyhow::Result<()> {
        for o in offers {
            self.consider_executing(o)?;
        }
        let me = self.key.public();
        let mempool = &self.mempool;
        let Some(provider) = self.provider.as_mut() else { return Ok(()) };
        let state = self.chain.head.state.clone();
        if provider.started.len() > STARTED_JOBS_PRUNE_AT {
            // Kept: jobs open on chain, and offers still pending here. A job not in the state
            // and not pending is closed (finished jobs leave the state) or was dropped.
            provider.started.retain(|id| still_started(state.job(id), mempool.offer(id).is_some()));
            let started = &provider.started;
            provider.failed_attempts.retain(|id, _| started.contains(id));
        }
        let room = OFFER_LOOKUPS_MAX.saturating_sub(provider.looking_up.len());
        let next = state.height() + 1;
        let mine: Vec<Hash> = state
            .accepting(&me)
            .filter(|id| !provider.started.contains(*id) && !provider.looking_up.contains(*id))
            .filter(|id| state.job(id).is_some_and(|job| job.takes_results_in(next)))
            .copied()
            .take(room)
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        provider.looking_up.extend(mine.iter().copied());
        // Blocks are read and decoded off the loop, each once for all its offers.
        let store = self.chain.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let offers = match tokio::task::spawn_blocking({
                let ids = mine.clone();
                move || crate::exec::offers_on_chain(&store, &ids)
            })
            .await
            {
                Ok(read) => read,
                Err(e) => Err(anyhow::anyhow!("the task reading offers failed: {e}")),
            };
            let _ = events.send(Event::OffersOnChain { job_ids: mine, offers }).await;
        });
        Ok(())
    }

    /// Offers of open jobs assigned here, read from the store: run those not started yet.
    pub(super) fn on_offers_on_chain(
        &mut self,
        job_ids: Vec<Hash>,
        offers: anyhow::Result<Vec<SignedOffer>>,
    ) -> anyhow::Result<()> {
        if let Some(provider) = self.provider.as_mut() {
            for id in &job_ids {
                provider.looking_up.remove(id);
            }
        }
        match offers {
            Ok(offers) => offers.into_iter().try_for_each(|o| self.consider_executing(o)),
            Err(e) => Err(e.context("reading the offers of jobs assigned here")),
        }
    }
}

/// Runs a job in the sandbox and signs the result (blocking: call from a blocking thread). An
/// `ok` output larger than the chain's `output_bytes_max` is stored as a blob first, and the
/// result names it.
fn run(job: &RunJob, offer: &SignedOffer) -> anyhow::Result<JobResult> {
    let o = &offer.offer;
    let wasm = job.store.blob(&o.module_id)?.with_context(|| format!("module {} is not stored here", o.module_id))?;
    let input = crate::exec::job_input(&job.store, o)?
        .with_context(|| format!("input blob {} is not stored here", o.input_hash()))?;
    // A sandbox failure of this node (not of the job) is an error, logged by the caller
    // with the job id: nothing is signed for it.
    let mut run = crate::exec::run_job(&job.vm, &o.module_id, &wasm, &input, o.fuel_limit)?;
    if job.wrong_result && run.status == JobStatus::Ok {
        // Test only: a provider that lies about its output (to exercise challenges).
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
        provider: job.key.public(),
    };
    if run.status == JobStatus::Ok && run.output.len() > job.output_inline_max {
        job.store.put_blob(&run.output)?;
        return Ok(JobResult::with_output_in_blob(claim, &job.key));
    }
    Ok(JobResult::new(claim, run.output, &job.key))
}

/// Whether `provider` may deliver a result for job `job_id`: the job is on chain and open, and
/// it holds or held a slot with no result yet; or, the job not on chain, its offer (`pending`)
/// is assigned to it at the head.
pub(super) fn may_deliver(
    state: &cairn_contracts::State,
    job_id: &Hash,
    pending: Option<&cairn_ledger::JobOffer>,
    provider: &PublicKey,
) -> bool {
    match state.job(job_id) {
        Some(job) => job.accepts(provider) && job.takes_results_in(state.height() + 1),
        None => pending.is_some_and(|o| {
            state.assignment(job_id, o.max_price, &o.placement, usize::from(o.redundancy)).contains(provider)
        }),
    }
}

/// Whether a result a peer sent may be kept (and relayed): from a provider that may deliver it
/// ([`may_deliver`]) or, while the job's offer is still pending, from any provider registered
/// with the stake to be assigned — the offer's ranking at the head the provider ran it on may
/// differ from this node's by a block's changes of capacity. Results cost nothing to sign:
/// from anyone else they would take the mempool's room for results, be relayed to every node,
/// and make every node re-execute the jobs they disagree on.
pub(super) fn may_keep_result(
    state: &cairn_contracts::State,
    pending: Option<&cairn_ledger::JobOffer>,
    result: &JobResult,
) -> bool {
    let (job_id, provider) = (&result.claim.job_id, &result.claim.provider);
    let stake_min = state.params().stake_min;
    may_deliver(state, job_id, pending, provider)
        || (pending.is_some()
            && state.job(job_id).is_none()
            && state.provider(provider).is_some_and(|p| p.stake >= stake_min && p.stake > 0))
}

/// Whether a job this provider started is still remembered: open on chain, or (not on chain)
/// its offer still pending here. A job not in the state and not pending is closed — finished
/// jobs leave the state — or was dropped.
fn still_started(on_chain: Option<&cairn_contracts::Job>, pending: bool) -> bool {
    match on_chain {
        Some(job) => job.phase == cairn_contracts::JobPhase::Open,
        None => pending,
    }
}

#[cfg(test)]
mod tests {
    use cairn_contracts::{Job, JobPhase};
    use cairn_ledger::{Hash, Keypair, PublicKey, SignedOffer};

    use super::still_started;

    fn job(phase: JobPhase) -> Job {
        Job {
            client: PublicKey([1; 32]),
            module_id: Hash::of(b"m"),
            input_hash: Hash::of(b"i"),
            fuel_limit: 1,
            max_price: 1,
            escrow: 1,
            deadline_height: 9,
            ranking: vec![],
            slots: vec![],
            next: 0,
            phase,
            verified: None,
            forfeit: 0,
            paid: 0,
            settle_height: 0,
            challenge: None,
        }
    }

    /// A market of two providers (price 1, capacity 10) and a pending offer of its client.
    fn two_providers_and_an_offer() -> (cairn_contracts::State, Vec<Keypair>, SignedOffer) {
        let client = Keypair::from_seed([1; 32]);
        let providers: Vec<Keypair> = (2..4).map(|i| Keypair::from_seed([i; 32])).collect();
        let offerings: Vec<_> = providers.iter().map(|p| (p.public(), 1, 10)).collect();
        let genesis = crate::test_genesis::market("deliver", &client, 1_000_000, &offerings);
        let state = cairn_contracts::State::from_genesis(&genesis).expect("genesis");
        let offer = crate::test_genesis::offer(genesis.chain_id(), &client).sign(&client);
        (state, providers, offer)
    }

    #[test]
    fn only_a_provider_the_job_is_assigned_to_may_deliver() {
        use cairn_contracts::{NoReexecution, VerifyAlways};
        use cairn_ledger::{Placement, Transaction};
        let (mut state, providers, offer) = two_providers_and_an_offer();
        let job_id = offer.job_id();
        let assigned = state.assignment(&job_id, 1, &Placement::Anywhere, 1)[0];
        let other = providers.iter().map(Keypair::public).find(|p| *p != assigned).expect("two providers");
        let stranger = Keypair::from_seed([7; 32]).public();
        // Pending: the offer's assignment at the head; nothing without the offer.
        assert!(super::may_deliver(&state, &job_id, Some(&offer.offer), &assigned));
        assert!(!super::may_deliver(&state, &job_id, Some(&offer.offer), &other));
        assert!(!super::may_deliver(&state, &job_id, Some(&offer.offer), &stranger));
        assert!(!super::may_deliver(&state, &job_id, None, &assigned));
        // On chain: the slot's holder.
        state.apply_tx(&Transaction::Offer(offer), 1, &mut NoReexecution, &mut VerifyAlways).expect("offer");
        assert!(super::may_deliver(&state, &job_id, None, &assigned));
        assert!(!super::may_deliver(&state, &job_id, None, &stranger));
    }

    /// A result from a key that is no provider is never kept, whatever job it names; while the
    /// offer is pending, one from a registered provider is (its ranking may have been another
    /// head's); once the job is on chain, only the slot's holder's.
    #[test]
    fn results_are_kept_only_from_providers_that_may_have_been_assigned() {
        use cairn_contracts::{NoReexecution, VerifyAlways};
        use cairn_ledger::{FORMAT_VERSION, JobResult, JobStatus, Placement, ResultClaim, Transaction};
        let (mut state, providers, offer) = two_providers_and_an_offer();
        let job_id = offer.job_id();
        let result_by = |key: &Keypair| {
            let claim = ResultClaim {
                version: FORMAT_VERSION,
                job_id,
                module_id: Hash::of(b"m"),
                input_hash: Hash::of(b"in"),
                output_hash: Hash::of(b"out"),
                fuel_used: 1,
                status: JobStatus::Ok,
                provider: key.public(),
            };
            JobResult::new(claim, b"out".to_vec(), key)
        };
        let assigned_key = state.assignment(&job_id, 1, &Placement::Anywhere, 1)[0];
        let assigned = providers.iter().find(|p| p.public() == assigned_key).expect("a provider");
        let other = providers.iter().find(|p| p.public() != assigned_key).expect("two providers");
        let stranger = Keypair::from_seed([7; 32]);
        let pending = Some(&offer.offer);
        assert!(super::may_keep_result(&state, pending, &result_by(assigned)));
        assert!(super::may_keep_result(&state, pending, &result_by(other)), "registered, ranked on another head");
        assert!(!super::may_keep_result(&state, pending, &result_by(&stranger)), "no provider");
        assert!(!super::may_keep_result(&state, None, &result_by(assigned)), "no offer known");
        state.apply_tx(&Transaction::Offer(offer), 1, &mut NoReexecution, &mut VerifyAlways).expect("offer");
        assert!(super::may_keep_result(&state, None, &result_by(assigned)));
        assert!(!super::may_keep_result(&state, None, &result_by(other)), "on chain: the slot's holder only");
        assert!(!super::may_keep_result(&state, None, &result_by(&stranger)));
    }

    #[test]
    fn a_started_job_is_forgotten_once_closed_retired_or_dropped() {
        assert!(still_started(Some(&job(JobPhase::Open)), false), "open on chain");
        assert!(!still_started(Some(&job(JobPhase::Completed)), false), "closed on chain");
        assert!(still_started(None, true), "pending here, not on chain yet");
        assert!(!still_started(None, false), "retired from the state, or dropped");
    }
}
