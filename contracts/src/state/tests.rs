use cairn_ledger::{
    Action, FORMAT_VERSION, GenesisAccount, GenesisProvider, JobOffer, Keypair, Placement, ResultClaim, Signature, Tx,
    Validator,
};

/// A placement that restricts nothing.
const ANY: Placement = Placement::Anywhere;

use super::*;
use crate::VerifyAlways;

fn apply(s: &mut State, tx: &Transaction, height: u64) -> Result<Option<ExecutionReceipt>> {
    s.apply_tx(tx, height, &mut NoReexecution, &mut VerifyAlways)
}

/// Applies the `Resolve` of a job, re-executing it with `exec`.
fn resolve(s: &mut State, job_id: Hash, height: u64, exec: &mut dyn Reexecute) -> Result<Option<ExecutionReceipt>> {
    s.apply_tx(&Transaction::Resolve { job_id }, height, exec, &mut VerifyAlways)
}

struct World {
    genesis: Genesis,
    client: Keypair,
    providers: Vec<Keypair>,
}

fn world() -> World {
    world_of(2)
}

/// A client with 10,000 and `n` providers (stake 10,000, price 1, capacity 1,000).
fn world_of(n: u8) -> World {
    let client = Keypair::from_seed([1; 32]);
    let providers: Vec<Keypair> = (2..2 + n).map(|i| Keypair::from_seed([i; 32])).collect();
    let genesis = Genesis {
        version: FORMAT_VERSION,
        chain_name: "test".into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: Keypair::from_seed([9; 32]).public(), power: 1 }],
        accounts: vec![GenesisAccount { address: client.public(), balance: 10_000 }],
        providers: providers
            .iter()
            .map(|p| GenesisProvider {
                address: p.public(),
                price_per_fuel: 1,
                stake: 10_000,
                capacity: 1_000,
                region: String::new(),
            })
            .collect(),
        params: ChainParams::default(),
    };
    World { genesis, client, providers }
}

/// The fee of the test offers: the chain's minimum.
const OFFER_FEE: u64 = 1;

/// The fees burned by the client's offers so far, in tests where it sends nothing else.
fn fees(s: &State, w: &World) -> u128 {
    u128::from(OFFER_FEE) * u128::from(s.account(&w.client.public()).nonce)
}

fn offer(w: &World, nonce: u64, fuel_limit: u64, max_price: u64) -> SignedOffer {
    offer_at(w, nonce, fuel_limit, max_price, 1)
}

/// An offer made when `height` is the next block.
fn offer_at(w: &World, nonce: u64, fuel_limit: u64, max_price: u64, height: u64) -> SignedOffer {
    JobOffer {
        version: FORMAT_VERSION,
        chain_id: w.genesis.chain_id(),
        client: w.client.public(),
        nonce,
        fee: OFFER_FEE,
        module_id: Hash::of(b"wasm"),
        input: b"in".to_vec(),
        fuel_limit,
        max_price,
        redundancy: 1,
        assignment_height: height - 1,
        deadline_height: height + 9,
        placement: Placement::Anywhere,
        input_blob: None,
    }
    .sign(&w.client)
}

/// The first ranked provider's result, with output `out`.
fn result(w: &World, state: &State, signed: &SignedOffer, fuel_used: u64) -> JobResult {
    let assigned = state.job(&signed.job_id()).expect("job").ranking[0];
    result_by(w, signed, assigned, fuel_used, b"out")
}

/// `provider`'s result with `output`.
fn result_by(w: &World, signed: &SignedOffer, assigned: PublicKey, fuel_used: u64, output: &[u8]) -> JobResult {
    let job_id = signed.job_id();
    let key = std::iter::once(&w.client).chain(&w.providers).find(|p| p.public() == assigned).expect("a known key");
    let output = output.to_vec();
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id,
        module_id: signed.offer.module_id,
        input_hash: signed.offer.input_hash(),
        output_hash: Hash::of(&output),
        fuel_used,
        status: JobStatus::Ok,
        provider: assigned,
    };
    JobResult::new(claim, output, key)
}

#[test]
fn offer_then_result_pays_the_provider_and_refunds_the_client() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let total = s.total_value();
    let o = offer(&w, 0, 1_000, 2);
    assert_eq!(apply(&mut s, &Transaction::Offer(o.clone()), 1), Ok(None));
    // The escrow is locked and the fee burned.
    assert_eq!(s.account(&w.client.public()), Account { balance: 8_000 - OFFER_FEE, nonce: 1 });
    let total = total - u128::from(OFFER_FEE);
    let r = result(&w, &s, &o, 300);
    let receipt = apply(&mut s, &Transaction::Result(r.clone()), 1).expect("applies").expect("a receipt");
    assert_eq!(receipt.claim, r.claim);
    assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Completed);
    assert_eq!(apply(&mut s, &Transaction::Result(r.clone()), 2), Err(TxError::JobClosed(o.job_id())));
    // Payment waits for the challenge window.
    let window = w.genesis.params.challenge_window_blocks;
    s.end_block(window);
    assert_eq!(s.account(&r.claim.provider).balance, 0);
    assert_eq!(s.total_value(), total);
    s.end_block(1 + window);
    // price 1 per fuel: provider earns 300, the client gets 2000 - 300 back.
    assert_eq!(s.account(&r.claim.provider).balance, 300);
    assert_eq!(s.account(&w.client.public()).balance, 9_700 - OFFER_FEE);
    assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Settled);
    assert_eq!(s.total_value(), total);
}

#[test]
fn finished_jobs_leave_the_state_job_retention_blocks_after_they_finish() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let total = s.total_value();
    // One job settles (a result, then the challenge window), one expires (no result).
    let settled = offer(&w, 0, 1_000, 2);
    apply(&mut s, &Transaction::Offer(settled.clone()), 1).expect("offer");
    let r = result(&w, &s, &settled, 300);
    apply(&mut s, &Transaction::Result(r.clone()), 1).expect("result");
    let expiring = offer_at(&w, 1, 1_000, 2, 1);
    apply(&mut s, &Transaction::Offer(expiring.clone()), 1).expect("offer");
    let deadline = expiring.offer.deadline_height;
    let window = w.genesis.params.challenge_window_blocks;
    let settle_at = 1 + window;
    let mut finished_at = BTreeMap::new();
    for height in 1..=deadline.max(settle_at) + 1 + JOB_RETENTION_BLOCKS {
        let closed = s.end_block_closing(height);
        for (id, job) in [&settled, &expiring].map(|o| (o.job_id(), s.job(&o.job_id()).cloned())) {
            match (job, finished_at.get(&id)) {
                (Some(job), None) if job.is_final() => {
                    assert_eq!(job.settle_height, height, "a final job records when it finished");
                    finished_at.insert(id, height);
                }
                (Some(_), Some(at)) => assert!(height < at + JOB_RETENTION_BLOCKS, "kept for the retention"),
                (None, Some(at)) => {
                    assert!(height >= at + JOB_RETENTION_BLOCKS, "not retired before the retention");
                    if height == at + JOB_RETENTION_BLOCKS {
                        let retired = closed.retired.iter().find(|(r, _)| *r == id);
                        let (_, last) = retired.expect("retired by this block, and reported");
                        assert!(last.is_final() && last.settle_height == *at, "with its last entry");
                    }
                }
                (Some(_), None) => {}
                (None, None) => panic!("a job left the state before it finished"),
            }
        }
        assert!(s.indexes_are_consistent());
        s.commit();
    }
    assert_eq!(finished_at.get(&settled.job_id()), Some(&settle_at));
    assert_eq!(finished_at.get(&expiring.job_id()), Some(&(deadline + 1)));
    assert!(s.job(&settled.job_id()).is_none() && s.job(&expiring.job_id()).is_none());
    assert!(s.entries().iter().all(|(k, _)| k[0] != 3), "no job entry is left");
    // Retiring moves no value, and a late result for a retired job is refused.
    assert_eq!(s.total_value(), total - u128::from(2 * OFFER_FEE));
    assert_eq!(s.account(&r.claim.provider).balance, 300);
    assert_eq!(apply(&mut s, &Transaction::Result(r), 99), Err(TxError::UnknownJob(settled.job_id())));
}

/// A re-execution that answers a fixed outcome.
struct Fixed(Hash, u64, JobStatus);

impl Reexecute for Fixed {
    fn reexecute(&mut self, _: &Hash, _: &Job) -> Result<Outcome> {
        Ok(Outcome { output_hash: self.0, fuel_used: self.1, status: self.2 })
    }
}

#[test]
fn a_challenge_slashes_a_wrong_result_and_costs_a_false_challenger_its_bond() {
    let w = world();
    let challenger = &w.client;
    for honest in [true, false] {
        let mut s = State::from_genesis(&w.genesis).expect("genesis");
        let total = s.total_value();
        let o = offer(&w, 0, 1_000, 2);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let r = result(&w, &s, &o, 300);
        apply(&mut s, &Transaction::Result(r.clone()), 1).expect("result");
        let provider = r.claim.provider;
        let stake = s.provider(&provider).expect("provider").stake;
        let mut exec = if honest {
            Fixed(r.claim.output_hash, r.claim.fuel_used, r.claim.status)
        } else {
            Fixed(Hash::of(b"the real output"), r.claim.fuel_used, r.claim.status)
        };
        let challenge = account_tx(&w, challenger, 1, 1, Action::Challenge { job_id: o.job_id(), bond: 500 });
        apply(&mut s, &challenge, 2).expect("challenge applies, without re-executing anything");
        let job = s.job(&o.job_id()).expect("job");
        assert_eq!(job.phase, JobPhase::Challenged, "settlement waits for the re-execution");
        assert_eq!(s.awaiting_resolution().collect::<Vec<_>>(), vec![&o.job_id()]);
        assert_eq!(s.total_value(), total - u128::from(OFFER_FEE) - 1, "the bond is held in the job");
        // Nothing settles before the resolution, even past the window.
        s.end_block(1 + w.genesis.params.challenge_window_blocks);
        assert_eq!(s.account(&provider).balance, 0);
        // Re-execution unavailable: the resolution fails and changes nothing.
        let before = s.entries();
        assert!(matches!(resolve(&mut s, o.job_id(), 12, &mut NoReexecution), Err(TxError::ReexecutionUnavailable(_))));
        assert_eq!(s.entries(), before);
        resolve(&mut s, o.job_id(), 12, &mut exec).expect("resolved");
        assert!(s.awaiting_resolution().next().is_none());
        if honest {
            // The bond goes to the provider; settlement proceeds (the window passed: at once).
            assert_eq!(s.account(&provider).balance, 500);
            assert_eq!(s.account(&challenger.public()).balance, 8_000 - OFFER_FEE - 1 - 500);
            s.end_block(12);
            assert_eq!(s.account(&provider).balance, 800);
            assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Settled);
        } else {
            // Half the stake goes to the challenger with its bond; the client (here the same
            // account) gets the whole escrow back; the provider is not paid.
            assert_eq!(s.provider(&provider).expect("provider").stake, stake / 2);
            assert_eq!(s.account(&challenger.public()).balance, 10_000 - OFFER_FEE - 1 + stake / 2);
            assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Slashed);
            s.end_block(12);
            assert_eq!(s.account(&provider).balance, 0);
        }
        assert_eq!(s.total_value(), total - u128::from(OFFER_FEE) - 1, "only the fees left the system");
        // Closed jobs cannot be challenged again, nor resolved again.
        let again = account_tx(&w, challenger, 2, 1, Action::Challenge { job_id: o.job_id(), bond: 500 });
        assert!(s.apply_tx(&again, 20, &mut exec, &mut VerifyAlways).is_err());
        assert_eq!(
            resolve(&mut s, o.job_id(), 20, &mut exec),
            Err(TxError::Limit(Limit::NothingToResolve(o.job_id())))
        );
    }
}

#[test]
fn bad_offers_are_refused_and_change_nothing() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let root = s.entries();
    let mut bad_sig = offer(&w, 0, 1_000, 2);
    bad_sig.signature = Signature([0; 64]);
    assert!(matches!(apply(&mut s, &Transaction::Offer(bad_sig), 1), Err(TxError::BadSignature(_))));
    assert_eq!(
        apply(&mut s, &Transaction::Offer(offer(&w, 0, 100_000, 1)), 1),
        Err(TxError::InsufficientBalance { balance: 10_000, escrow: 100_000 + OFFER_FEE })
    );
    // The balance must cover the fee on top of the escrow.
    assert_eq!(
        apply(&mut s, &Transaction::Offer(offer(&w, 0, 10_000, 1)), 1),
        Err(TxError::InsufficientBalance { balance: 10_000, escrow: 10_000 + OFFER_FEE })
    );
    let mut cheap = offer(&w, 0, 10, 1).offer;
    cheap.fee = w.genesis.params.tx_fee_min - 1;
    assert_eq!(
        apply(&mut s, &Transaction::Offer(cheap.sign(&w.client)), 1),
        Err(TxError::Limit(Limit::Fee { min: w.genesis.params.tx_fee_min }))
    );
    assert_eq!(apply(&mut s, &Transaction::Offer(offer(&w, 5, 10, 1)), 1), Err(TxError::Nonce { expected: 0, got: 5 }));
    assert_eq!(
        apply(&mut s, &Transaction::Offer(offer(&w, 0, 10, 0)), 1),
        Err(TxError::NoProvider { max_price: 0, needed: 1 })
    );
    assert_eq!(s.entries(), root);
    assert!(s.commit().is_empty());
}

#[test]
fn admission_takes_nonces_within_the_window_and_counts_what_pending_transactions_spend() {
    let w = world();
    let s = State::from_genesis(&w.genesis).expect("genesis");
    let check = |o: &SignedOffer, pending_spend: u64| {
        s.check_tx(&Transaction::Offer(o.clone()), 1, NonceRule::Pending { pending_spend }, &mut VerifyAlways)
    };
    // From the next nonce to NONCE_WINDOW - 1 past it; below or beyond is refused.
    check(&offer(&w, 0, 10, 1), 0).expect("the next nonce");
    check(&offer(&w, NONCE_WINDOW - 1, 10, 1), 0).expect("the last nonce of the window");
    assert_eq!(check(&offer(&w, NONCE_WINDOW, 10, 1), 0), Err(TxError::Nonce { expected: 0, got: NONCE_WINDOW }));
    // The balance (10,000) must cover this offer on top of the pending ones.
    let o = offer(&w, 1, 1_000, 1);
    let needed = balance_needed(&Transaction::Offer(o.clone())).expect("no overflow");
    assert_eq!(needed, 1_000 + OFFER_FEE);
    check(&o, 10_000 - needed).expect("exactly covered");
    assert_eq!(
        check(&o, 10_000 - needed + 1),
        Err(TxError::InsufficientBalance { balance: needed - 1, escrow: needed })
    );
    // Blocks still take only the exact next nonce.
    let mut s = s.clone();
    assert_eq!(apply(&mut s, &Transaction::Offer(offer(&w, 1, 10, 1)), 1), Err(TxError::Nonce { expected: 0, got: 1 }));
}

#[test]
fn a_result_from_an_unassigned_provider_is_refused() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let o = offer(&w, 0, 1_000, 2);
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
    let assigned = s.job(&o.job_id()).expect("job").ranking[0];
    let other = w.providers.iter().find(|p| p.public() != assigned).expect("two providers");
    let mut r = result(&w, &s, &o, 10);
    r.claim.provider = other.public();
    let r = JobResult::new(r.claim, r.output, other);
    assert_eq!(apply(&mut s, &Transaction::Result(r), 1), Err(TxError::NotAssigned(other.public())));
}

#[test]
fn unexecuted_jobs_expire_and_refund() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let o = offer(&w, 0, 1_000, 2);
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
    assert!(s.end_block(10).is_empty(), "the deadline is inclusive");
    let assignee = s.job(&o.job_id()).expect("job").ranking[0];
    assert_eq!(s.provider(&assignee).expect("provider").active_jobs, 1);
    assert_eq!(s.end_block(11), vec![o.job_id()]);
    // The escrow comes back, with 1% of the assignee's stake for the missed deadline; the fee
    // stays burned.
    assert_eq!(s.account(&w.client.public()).balance, 10_100 - OFFER_FEE);
    let p = s.provider(&assignee).expect("provider");
    assert_eq!((p.stake, p.active_jobs), (9_900, 0));
    assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Expired);
}

#[test]
fn jobs_sharing_a_deadline_close_a_bounded_number_per_block_and_refuse_late_results() {
    let mut w = world();
    w.genesis.params.block_txs_max = 10;
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let total = s.total_value();
    // More jobs share deadline 10 than one block's end may close.
    let n = DEADLINE_CLOSES_PER_BLOCK_MIN + 100;
    let offers: Vec<SignedOffer> = (0..n as u64)
        .map(|nonce| {
            let mut o = offer(&w, nonce, 1, 1).offer;
            o.deadline_height = 10;
            o.sign(&w.client)
        })
        .collect();
    for o in &offers {
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
    }
    s.commit();
    assert!(s.end_block(10).is_empty(), "the deadline is inclusive");
    s.commit();
    // The job that closes last still takes a result in the block after its deadline, like any.
    let mut by_id: Vec<Hash> = offers.iter().map(|o| o.job_id()).collect();
    by_id.sort();
    let last = offers.iter().find(|o| o.job_id() == by_id[n - 1]).expect("an offer");
    let late = offers.iter().find(|o| o.job_id() == by_id[n - 2]).expect("an offer");
    let in_time = result(&w, &s, last, 1);
    apply(&mut s, &Transaction::Result(in_time), 11).expect("in time");
    assert_eq!(s.job(&last.job_id()).expect("job").phase, JobPhase::Completed);
    let expired = s.end_block(11);
    assert_eq!(expired, by_id[..DEADLINE_CLOSES_PER_BLOCK_MIN].to_vec(), "the first by id, no more");
    assert!(expired.len() < n - 1, "some are left to close");
    assert_eq!(s.job(&late.job_id()).expect("job").phase, JobPhase::Open, "waits its turn");
    assert!(s.indexes_are_consistent());
    s.commit();
    // Past the block after its deadline, a job waiting to close refuses results.
    let refused = result(&w, &s, late, 1);
    assert_eq!(apply(&mut s, &Transaction::Result(refused.clone()), 12), Err(TxError::JobClosed(late.job_id())));
    assert_eq!(s.check_result(&refused), Err(TxError::JobClosed(late.job_id())));
    let closed = s.end_block_closing(12);
    assert_eq!(closed.expired, by_id[DEADLINE_CLOSES_PER_BLOCK_MIN..n - 1].to_vec(), "the rest, in order");
    assert!(closed.with_results.is_empty());
    assert!(s.indexes_are_consistent());
    assert!(offers.iter().all(|o| s.job(&o.job_id()).expect("job").phase != JobPhase::Open));
    assert_eq!(s.total_value(), total - u128::from(OFFER_FEE) * n as u128);
}

fn account_tx(w: &World, key: &Keypair, nonce: u64, fee: u64, action: Action) -> Transaction {
    Transaction::Account(
        Tx { version: FORMAT_VERSION, chain_id: w.genesis.chain_id(), sender: key.public(), nonce, fee, action }
            .sign(key),
    )
}

#[test]
fn transfers_and_provider_registration_follow_the_rules() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let total = s.total_value();
    let newcomer = Keypair::from_seed([7; 32]);
    let to = newcomer.public();
    let t = account_tx(&w, &w.client, 0, 1, Action::Transfer { to, amount: 5_000 });
    assert_eq!(apply(&mut s, &t, 1), Ok(None));
    assert_eq!(s.account(&to).balance, 5_000);
    assert_eq!(s.account(&w.client.public()), Account { balance: 4_999, nonce: 1 });
    assert_eq!(s.total_value(), total - 1, "the fee is burned");
    // A replay is refused: the nonce moved on.
    assert_eq!(apply(&mut s, &t, 1), Err(TxError::Nonce { expected: 1, got: 0 }));
    // Below the minimum stake, and without funds, registration is refused.
    let low = account_tx(
        &w,
        &newcomer,
        0,
        1,
        Action::RegisterProvider { stake: 10, price_per_fuel: 1, capacity: 1, region: String::new() },
    );
    assert_eq!(apply(&mut s, &low, 1), Err(TxError::Limit(Limit::Stake { min: w.genesis.params.stake_min })));
    let rich = account_tx(
        &w,
        &newcomer,
        0,
        1,
        Action::RegisterProvider { stake: 9_000, price_per_fuel: 1, capacity: 1, region: String::new() },
    );
    assert!(matches!(apply(&mut s, &rich, 1), Err(TxError::InsufficientBalance { .. })));
    let reg = account_tx(
        &w,
        &newcomer,
        0,
        1,
        Action::RegisterProvider { stake: 4_000, price_per_fuel: 3, capacity: 2, region: String::new() },
    );
    apply(&mut s, &reg, 1).expect("registers");
    assert_eq!(s.provider(&to).expect("registered").stake, 4_000);
    apply(&mut s, &account_tx(&w, &newcomer, 1, 1, Action::UpdatePrice { price_per_fuel: 2 }), 1).expect("price");
    assert_eq!(s.provider(&to).expect("registered").price_per_fuel, 2);
    // Unbonding leaves the stake, waits, then returns to the balance.
    apply(&mut s, &account_tx(&w, &newcomer, 2, 1, Action::Unbond { amount: 3_500 }), 2).expect("unbond");
    let p = s.provider(&to).expect("registered");
    assert_eq!((p.stake, p.unbonding.clone()), (500, vec![(102, 3_500)]));
    assert!(s.ranking(&Hash::of(b"j"), 10, &ANY, 8).iter().all(|a| *a != to), "below the minimum stake: not eligible");
    let before = s.account(&to).balance;
    assert!(s.has_pending_work(), "stake waiting to unbond keeps blocks coming");
    s.end_block(101);
    assert_eq!(s.account(&to).balance, before);
    s.end_block(102);
    assert_eq!(s.account(&to).balance, before + 3_500);
    assert!(!s.has_pending_work(), "nothing left to release, no job open");
    assert!(s.provider(&to).expect("registered").unbonding.is_empty());
    assert_eq!(s.total_value(), total - 4, "only the four fees left");
    // Only providers update prices or unbond.
    let t = account_tx(&w, &w.client, 1, 1, Action::UpdatePrice { price_per_fuel: 1 });
    assert_eq!(apply(&mut s, &t, 3), Err(TxError::NotProvider(w.client.public())));
}

#[test]
fn registrations_stop_at_the_provider_limit() {
    let mut w = world();
    // Genesis fills the registry (addresses derived from an index, not keys: they never sign).
    w.genesis.providers = (0..crate::state::PROVIDERS_MAX as u64)
        .map(|i| GenesisProvider {
            address: PublicKey(Hash::of(&i.to_le_bytes()).0),
            price_per_fuel: 1,
            stake: 10_000,
            capacity: 1,
            region: String::new(),
        })
        .collect();
    w.genesis.providers.push(GenesisProvider {
        address: w.providers[0].public(),
        price_per_fuel: 1,
        stake: 10_000,
        capacity: 1,
        region: String::new(),
    });
    w.genesis.providers.remove(0);
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let newcomer = Keypair::from_seed([7; 32]);
    apply(&mut s, &account_tx(&w, &w.client, 0, 1, Action::Transfer { to: newcomer.public(), amount: 5_000 }), 1)
        .expect("funds");
    let reg = Action::RegisterProvider { stake: 4_000, price_per_fuel: 1, capacity: 1, region: String::new() };
    let refused = apply(&mut s, &account_tx(&w, &newcomer, 0, 1, reg), 1);
    assert!(matches!(&refused, Err(TxError::Limit(Limit::Providers { max: PROVIDERS_MAX }))), "{refused:?}");
    // A registered provider may still add stake.
    let to = w.providers[0].public();
    apply(&mut s, &account_tx(&w, &w.client, 1, 1, Action::Transfer { to, amount: 10 }), 1).expect("funds");
    let more = Action::RegisterProvider { stake: 1, price_per_fuel: 1, capacity: 1, region: String::new() };
    apply(&mut s, &account_tx(&w, &w.providers[0], 0, 1, more), 1).expect("adds stake");
}

#[test]
fn an_undelivered_job_passes_to_the_next_ranked_provider() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let mut o = offer(&w, 0, 1_000, 2);
    o.offer.deadline_height = 100;
    let o = o.offer.sign(&w.client);
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
    let job = s.job(&o.job_id()).expect("job").clone();
    assert_eq!(job.ranking.len(), 2);
    let delivery = w.genesis.params.delivery_blocks;
    s.end_block(1 + delivery - 1);
    assert_eq!(s.job(&o.job_id()).expect("job").assigned(), vec![job.ranking[0]]);
    s.end_block(1 + delivery);
    let moved = s.job(&o.job_id()).expect("job");
    assert_eq!((moved.assigned(), moved.assignees()), (vec![job.ranking[1]], &job.ranking[..2]));
    assert!(moved.is_stand_in(&job.ranking[1]) && !moved.is_stand_in(&job.ranking[0]));
    assert_eq!(s.provider(&job.ranking[0]).expect("p").active_jobs, 0);
    assert_eq!(s.provider(&job.ranking[1]).expect("p").active_jobs, 1);
    // Both the stand-in and the late first provider may deliver; the first result wins.
    let id = o.job_id();
    assert!(job.ranking[..2].iter().all(|p| s.accepting(p).eq([&id])), "each finds the job it may deliver");
    let r = result(&w, &s, &o, 10);
    assert_eq!(r.claim.provider, job.ranking[0]);
    apply(&mut s, &Transaction::Result(r), 1 + delivery).expect("a late delivery still counts");
    assert!(job.ranking[..2].iter().all(|p| s.accepting(p).next().is_none()), "and none once it is in");
    assert!(s.indexes_are_consistent());
}

#[test]
fn ranking_is_weighted_by_stake() {
    let w = world();
    let mut genesis = w.genesis.clone();
    genesis.providers[0].stake = 30_000;
    genesis.providers[1].stake = 10_000;
    let s = State::from_genesis(&genesis).expect("genesis");
    let heavy = genesis.providers[0].address;
    let firsts = (0..4_000u32).filter(|i| s.ranking(&Hash::of(&i.to_le_bytes()), 1, &ANY, 1)[0] == heavy).count();
    // Expected 3/4 of 4000 = 3000; the standard deviation is about 27.
    assert!((2_850..=3_150).contains(&firsts), "{firsts}");
}

/// The first `n` of a ranking are the first `n` of the whole ranking, for every `n`, whatever
/// the stakes and ties (the first `n` are selected, then only they are sorted).
#[test]
fn the_first_n_ranked_are_those_of_the_whole_ranking() {
    let mut w = world_of(40);
    for (i, p) in w.genesis.providers.iter_mut().enumerate() {
        // Stakes that repeat, so that scores tie and the address decides.
        p.stake = 10_000 * (1 + (i as u64 % 3));
    }
    let s = State::from_genesis(&w.genesis).expect("genesis");
    for j in 0..50u32 {
        let job = Hash::of(&j.to_le_bytes());
        let whole = s.ranking(&job, 1, &ANY, usize::MAX);
        assert_eq!(whole.len(), 40);
        for n in 0..=45 {
            assert_eq!(s.ranking(&job, 1, &ANY, n), whole[..n.min(40)], "job {j}, n {n}");
        }
    }
}

#[test]
fn neg_log2_is_exact_at_powers_of_two_and_monotone() {
    assert_eq!(super::neg_log2_q32(1 << 63), 1 << 32);
    assert_eq!(super::neg_log2_q32(1 << 62), 2 << 32);
    assert_eq!(super::neg_log2_q32(0), 64 << 32);
    let mut last = u128::MAX;
    for i in 1..2_000u64 {
        let v = super::neg_log2_q32(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 63);
        let _ = v;
        let x = super::neg_log2_q32(i << 50);
        assert!(x < last, "decreasing in x");
        last = x;
    }
    // -log2(0.75) = 0.415037…
    let q = super::neg_log2_q32(3 << 62) as f64 / (1u64 << 32) as f64;
    assert!((q - 0.415_037_499).abs() < 1e-8, "{q}");
}

#[test]
fn rollback_restores_and_commit_round_trips_through_entries() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let root0 = s.entries();
    apply(&mut s, &Transaction::Offer(offer(&w, 0, 1_000, 2)), 1).expect("offer");
    assert_ne!(s.entries(), root0);
    s.rollback();
    assert_eq!(s.entries(), root0);
    assert_eq!(s.account(&w.client.public()).nonce, 0);

    let o = offer(&w, 0, 1_000, 2);
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
    let r = result(&w, &s, &o, 5);
    apply(&mut s, &Transaction::Result(r), 1).expect("result");
    let changes = s.commit();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = changes.into_iter().map(|(k, v)| (k, v.expect("nothing deleted"))).collect();
    let reloaded = State::from_entries(&w.genesis, &entries).expect("reload");
    assert_eq!(reloaded.entries(), s.entries());
}

#[test]
fn assignment_is_deterministic_and_respects_price() {
    let w = world();
    let s = State::from_genesis(&w.genesis).expect("genesis");
    let id = Hash::of(b"job");
    let a = s.assignment(&id, 1, &ANY, 2);
    assert_eq!(a.len(), 2);
    assert_eq!(a, s.clone().assignment(&id, 1, &ANY, 2));
    assert!(s.assignment(&id, 0, &ANY, 2).is_empty());
    // Different jobs spread over providers.
    let firsts: std::collections::BTreeSet<_> =
        (0..32u8).map(|i| s.assignment(&Hash::of(&[i]), 1, &ANY, 1)[0]).collect();
    assert_eq!(firsts.len(), 2);
}

/// Six providers of equal stake: two in `eu`, two in `us`, one in `ap`, one with no region.
fn regional_world() -> World {
    let mut w = world_of(6);
    for (p, region) in w.genesis.providers.iter_mut().zip(["eu", "eu", "us", "us", "ap", ""]) {
        p.region = region.into();
    }
    w
}

fn regions(names: &[&str]) -> Vec<String> {
    names.iter().map(|r| (*r).to_owned()).collect()
}

#[test]
fn a_preferred_region_ranks_first_and_the_others_follow() {
    let w = regional_world();
    let s = State::from_genesis(&w.genesis).expect("genesis");
    let region_of = |a: &PublicKey| s.provider(a).expect("a provider").region.clone();
    let prefer = Placement::Prefer { regions: regions(&["us", "ap"]) };
    for i in 0..64u32 {
        let id = Hash::of(&i.to_le_bytes());
        let ranked = s.ranking(&id, 1, &prefer, RANKING_MAX);
        // Everyone is ranked: the three in `us` and `ap` first, the three others after.
        assert_eq!(ranked.len(), 6);
        let tiers: Vec<bool> = ranked.iter().map(|a| ["us", "ap"].contains(&region_of(a).as_str())).collect();
        assert_eq!(tiers, [true, true, true, false, false, false], "job {i}");
        // Within a tier the order is the one without a placement (stake-weighted rendezvous).
        let plain = s.ranking(&id, 1, &ANY, RANKING_MAX);
        let in_order = |tier: bool| -> Vec<PublicKey> {
            plain.iter().filter(|a| ["us", "ap"].contains(&region_of(a).as_str()) == tier).copied().collect()
        };
        assert_eq!(ranked[..3], in_order(true)[..]);
        assert_eq!(ranked[3..], in_order(false)[..]);
        // Deterministic: the same state ranks the same way.
        assert_eq!(ranked, s.clone().ranking(&id, 1, &prefer, RANKING_MAX));
    }
    // Preferring a region nobody is in ranks as anywhere does.
    let nowhere = Placement::Prefer { regions: regions(&["mars"]) };
    assert_eq!(s.ranking(&Hash::of(b"j"), 1, &nowhere, 8), s.ranking(&Hash::of(b"j"), 1, &ANY, 8));
}

#[test]
fn an_offer_for_some_regions_only_is_assigned_there_or_refused() {
    let w = regional_world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let only_eu = Placement::Only { regions: regions(&["eu"]) };
    assert_eq!((s.eligible_count(1, &only_eu), s.priced_count(1, &only_eu)), (2, 2));
    assert_eq!(s.eligible_count(1, &ANY), 6);
    let eu: Vec<PublicKey> = w.providers[..2].iter().map(Keypair::public).collect();
    let placed = |nonce: u64, redundancy: u8, placement: Placement| {
        let mut o = offer(&w, nonce, 10, 1).offer;
        o.redundancy = redundancy;
        o.placement = placement;
        o.sign(&w.client)
    };
    // Redundancy 2 in `eu`: both `eu` providers, and no stand-in from elsewhere.
    let o = placed(0, 2, only_eu.clone());
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("applies");
    let job = s.job(&o.job_id()).expect("job");
    assert_eq!(job.ranking.iter().copied().collect::<std::collections::BTreeSet<_>>(), eu.iter().copied().collect());
    // Three providers in `eu` do not exist: refused, and the error says why.
    let three = placed(1, 3, only_eu.clone());
    let refused = apply(&mut s, &Transaction::Offer(three), 1).expect_err("refused");
    assert_eq!(refused, TxError::NoProviderInRegions { max_price: 1, needed: 3 });
    assert_eq!(refused.reason(), "no_eligible_provider_in_regions");
    // Two regions allowed: `eu` or `ap`, never the others.
    let eu_ap = Placement::Only { regions: regions(&["eu", "ap"]) };
    for i in 0..32u32 {
        for a in s.ranking(&Hash::of(&i.to_le_bytes()), 1, &eu_ap, RANKING_MAX) {
            assert!(["eu", "ap"].contains(&s.provider(&a).expect("provider").region.as_str()));
        }
    }
    // Preferring three: two from `eu`, then one from the rest.
    let o = placed(1, 3, Placement::Prefer { regions: regions(&["eu"]) });
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("applies");
    let assigned = s.job(&o.job_id()).expect("job").assigned();
    assert_eq!(assigned.iter().filter(|a| eu.contains(a)).count(), 2);
    assert_eq!(assigned.len(), 3);
}

#[test]
fn region_names_are_checked_in_offers_registrations_and_updates() {
    let w = regional_world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let placed = |placement: Placement| {
        let mut o = offer(&w, 0, 10, 1).offer;
        o.placement = placement;
        Transaction::Offer(o.sign(&w.client))
    };
    let bad_name = TxError::Limit(Limit::Region { max: cairn_ledger::REGION_BYTES_MAX });
    let bad_count = TxError::Limit(Limit::PlacementRegions { max: cairn_ledger::PLACEMENT_REGIONS_MAX });
    for (placement, expected) in [
        (Placement::Prefer { regions: regions(&["EU"]) }, &bad_name),
        (Placement::Only { regions: regions(&["eu", ""]) }, &bad_name),
        (Placement::Prefer { regions: vec![] }, &bad_count),
        (Placement::Only { regions: regions(&["eu", "eu"]) }, &bad_count),
        (Placement::Only { regions: (0..9).map(|i| format!("r{i}")).collect() }, &bad_count),
    ] {
        let tx = placed(placement.clone());
        assert_eq!(apply(&mut s, &tx, 1).as_ref(), Err(expected), "{placement:?}");
    }
    // An unchecked placement (an estimate's) with far too many regions allows nobody, at the
    // cost of one pass over the providers, not one per region.
    let huge = Placement::Only { regions: (0..100_000).map(|i| format!("r{i}")).collect() };
    assert_eq!((s.eligible_count(1, &huge), s.priced_count(1, &huge)), (0, 0));
    assert!(s.ranking(&Hash::of(b"j"), 1, &huge, RANKING_MAX).is_empty());
    assert_eq!(bad_name.reason(), "bad_region");
    assert_eq!(bad_count.reason(), "bad_placement");
    // A registration declares a region; an update changes it; empty clears it.
    let provider = &w.providers[5];
    let fund = Action::Transfer { to: provider.public(), amount: 10 };
    apply(&mut s, &account_tx(&w, &w.client, 0, 1, fund), 1).expect("applies");
    let update =
        |nonce: u64, region: &str| account_tx(&w, provider, nonce, 1, Action::UpdateRegion { region: region.into() });
    assert_eq!(apply(&mut s, &update(0, "eu west"), 1), Err(bad_name.clone()));
    apply(&mut s, &update(0, "sa-east"), 1).expect("applies");
    assert_eq!(s.provider(&provider.public()).expect("provider").region, "sa-east");
    apply(&mut s, &update(1, ""), 1).expect("applies");
    assert_eq!(s.provider(&provider.public()).expect("provider").region, "");
    let register = |region: &str| {
        account_tx(
            &w,
            &w.client,
            1,
            1,
            Action::RegisterProvider { stake: 5_000, price_per_fuel: 1, capacity: 1, region: region.into() },
        )
    };
    assert_eq!(apply(&mut s, &register("-eu"), 1), Err(bad_name));
    apply(&mut s, &register("eu"), 1).expect("applies");
    assert_eq!(s.provider(&w.client.public()).expect("provider").region, "eu");
    // Only a provider has a region to update.
    let stranger = Keypair::from_seed([42; 32]);
    let tx = account_tx(&w, &stranger, 0, 1, Action::UpdateRegion { region: "eu".into() });
    assert_eq!(apply(&mut s, &tx, 1), Err(TxError::NotProvider(stranger.public())));
}

/// Random sequences of every transaction kind and block ends (many failing) never create or
/// destroy value except the fees burned, replays are refused, and the journal rolls back
/// exactly — over many seeds (`CAIRN_PROP_SEEDS` for more).
#[test]
fn value_is_conserved_over_random_sequences() {
    let seeds: u64 = std::env::var("CAIRN_PROP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(16);
    let mut disputes_by_k = [0usize; 4];
    for seed in 1..=seeds {
        let run = conservation_run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for (total, n) in disputes_by_k.iter_mut().zip(run) {
            *total += n;
        }
    }
    assert!(disputes_by_k[2] >= 4 && disputes_by_k[3] >= 4, "disputes with k = 2 and 3: {disputes_by_k:?}");
}

/// Returns the disputes resolved by re-execution, by redundancy.
fn conservation_run(seed: u64) -> [usize; 4] {
    let mut w = world_of(4);
    w.genesis.accounts[0].balance = 10_000_000;
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let total = s.total_value();
    let mut rng: u64 = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut offers: Vec<SignedOffer> = vec![];
    let mut burned: u128 = 0;
    let (mut applied_offers, mut applied_txs, mut challenges) = (0, 0, 0);
    let mut disputes_by_k = [0usize; 4];
    let mut verdicts: BTreeMap<Hash, Fixed> = BTreeMap::new();
    for height in 1..400u64 {
        let nonce = s.account(&w.client.public()).nonce + next() % 2;
        let k = 1 + (next() % 3) as u8;
        // Fees from below the minimum (refused) to a few above it.
        let fee = next() % 4;
        let mut o = offer_k_fee(&w, nonce, 1 + next() % 3_000, next() % 3, height, k, fee).offer;
        // Anywhere, or preferring or requiring a region some providers move in and out of.
        o.placement = match next() % 3 {
            0 => Placement::Anywhere,
            1 => Placement::Prefer { regions: regions(&["a"]) },
            _ => Placement::Only { regions: regions(&["a", "b"]) },
        };
        let o = o.sign(&w.client);
        if apply(&mut s, &Transaction::Offer(o.clone()), height).is_ok() {
            applied_offers += 1;
            burned += u128::from(fee);
            offers.push(o);
        }
        let p = &w.providers[(next() % 4) as usize];
        let fee = next() % 3;
        let (key, action) = match next() % 4 {
            3 if next() % 2 == 0 => (p, Action::UpdatePrice { price_per_fuel: 1 + next() % 2 }),
            3 => (p, Action::UpdateRegion { region: ["", "a", "b"][(next() % 3) as usize].into() }),
            0 => (&w.client, Action::Transfer { to: p.public(), amount: next() % 2_000 }),
            1 => (
                p,
                Action::RegisterProvider {
                    stake: next() % 1_000,
                    price_per_fuel: 1 + next() % 2,
                    capacity: 16,
                    region: ["", "a", "b"][(next() % 3) as usize].into(),
                },
            ),
            _ => (p, Action::Unbond { amount: next() % 300 }),
        };
        let nonce = s.account(&key.public()).nonce + next() % 2;
        let tx = account_tx(&w, key, nonce, fee, action);
        if apply(&mut s, &tx, height).is_ok() {
            applied_txs += 1;
            burned += u128::from(fee);
            assert!(apply(&mut s, &tx, height).is_err(), "seed {seed}: a replayed transaction must be refused");
        }
        for _ in 0..3 {
            // Mostly recent offers, whose jobs are still open.
            let recent = offers.len().saturating_sub(1 + (next() % 8) as usize);
            let pick = if next() % 4 == 0 { (next() as usize) % offers.len().max(1) } else { recent };
            if let Some(o) = offers.get(pick) {
                let (pick, lie, over) = (next() as usize, next() % 3 == 0, next() % 8 == 0);
                let _ = deliver(&w, &mut s, o, height, Delivered { pick, lie, over });
            }
        }
        // Disputes and challenges are resolved by re-execution in a later transaction; now and
        // then the re-execution is not available and the resolution waits.
        for job_id in resolve_all(&mut s, height, &verdicts, next() % 8 == 0) {
            let job = s.job(&job_id).expect("a resolved job");
            if job.verified.is_some() {
                disputes_by_k[job.redundancy()] += 1;
            }
        }
        if let Some(o) = offers.get((next() as usize) % offers.len().max(1))
            && let Some(claim) = s.job(&o.job_id()).filter(|j| j.phase == JobPhase::Completed).and_then(Job::agreed)
        {
            let verdict = if next() % 2 == 0 {
                Fixed(claim.output_hash, claim.fuel_used, claim.status)
            } else {
                Fixed(Hash::ZERO, claim.fuel_used, JobStatus::Trap)
            };
            let nonce = s.account(&w.client.public()).nonce;
            let challenge = Action::Challenge { job_id: o.job_id(), bond: 50 + next() % 500 };
            if apply(&mut s, &account_tx(&w, &w.client, nonce, 1, challenge), height).is_ok() {
                challenges += 1;
                burned += 1;
                verdicts.insert(o.job_id(), verdict);
            }
        }
        s.end_block(height);
        assert_eq!(s.total_value() + burned, total, "seed {seed} height {height}");
        assert!(s.indexes_are_consistent(), "seed {seed} height {height}: indexes drifted");
        if next() % 5 == 0 {
            s.commit();
            let root = s.entries();
            let o = offer_at(&w, s.account(&w.client.public()).nonce, 10, 1, height + 1);
            let _ = apply(&mut s, &Transaction::Offer(o), height + 1);
            s.rollback();
            assert_eq!(s.entries(), root);
            assert!(s.indexes_are_consistent(), "seed {seed}: indexes after a rollback");
        }
        s.commit();
    }
    assert!(
        applied_offers > 20 && applied_txs > 30 && challenges >= 3 && disputes_by_k[2] + disputes_by_k[3] >= 1,
        "seed {seed}: the sequence exercised the rules: {applied_offers} {applied_txs} {challenges} {disputes_by_k:?}"
    );
    disputes_by_k
}

/// An offer with redundancy `k`, made when `height` is the next block.
fn offer_k(w: &World, nonce: u64, fuel_limit: u64, max_price: u64, height: u64, k: u8) -> SignedOffer {
    offer_k_fee(w, nonce, fuel_limit, max_price, height, k, OFFER_FEE)
}

/// [`offer_k`] with the fee `fee`.
fn offer_k_fee(w: &World, nonce: u64, fuel_limit: u64, max_price: u64, height: u64, k: u8, fee: u64) -> SignedOffer {
    let mut o = offer_at(w, nonce, fuel_limit, max_price, height).offer;
    o.redundancy = k;
    o.fee = fee;
    o.sign(&w.client)
}

/// Re-executes as an honest provider runs every test job: output `out`, half the fuel limit.
struct Truth;

impl Reexecute for Truth {
    fn reexecute(&mut self, _: &Hash, job: &Job) -> Result<Outcome> {
        Ok(Outcome { output_hash: Hash::of(b"out"), fuel_used: job.fuel_limit / 2, status: JobStatus::Ok })
    }
}

/// How a test result is made.
#[derive(Clone, Copy, Debug)]
struct Delivered {
    /// Which of the job's assignees (current or replaced) signs it.
    pick: usize,
    /// A wrong output instead of the honest one.
    lie: bool,
    /// Fuel above the limit (refused).
    over: bool,
}

/// Delivers a result for `o` as `how` says (an honest result is what [`Truth`] computes).
fn deliver(w: &World, s: &mut State, o: &SignedOffer, height: u64, how: Delivered) -> Result<()> {
    let Some(job) = s.job(&o.job_id()) else { return Err(TxError::UnknownJob(o.job_id())) };
    let assignees = job.assignees().to_vec();
    let provider = assignees[how.pick % assignees.len()];
    let fuel = if how.over { o.offer.fuel_limit + 1 } else { o.offer.fuel_limit / 2 };
    let output: &[u8] = if how.lie { b"lie" } else { b"out" };
    let r = Transaction::Result(result_by(w, o, provider, fuel, output));
    let before = s.job(&o.job_id()).cloned();
    // A result never re-executes: a dispute waits for its `Resolve` (see `resolve_all`).
    match s.apply_tx(&r, height, &mut NoReexecution, &mut VerifyAlways) {
        Ok(_) => Ok(()),
        Err(e) => {
            assert_eq!(s.job(&o.job_id()).cloned(), before, "a refused result changes nothing");
            Err(e)
        }
    }
}

/// Resolves every job awaiting a re-execution: a challenged one with the verdict chosen for its
/// challenge (`challenges`, by job), a disputed one as an honest provider runs it ([`Truth`]);
/// with `exec_fails`, re-execution is unavailable and every resolution fails, changing nothing.
/// Returns the jobs resolved.
fn resolve_all(s: &mut State, height: u64, challenges: &BTreeMap<Hash, Fixed>, exec_fails: bool) -> Vec<Hash> {
    let awaiting: Vec<Hash> = s.awaiting_resolution().copied().collect();
    let mut resolved = Vec::new();
    for job_id in awaiting {
        let before = s.entries();
        let applied = match (exec_fails, challenges.get(&job_id)) {
            (true, _) => resolve(s, job_id, height, &mut NoReexecution),
            (false, Some(Fixed(h, f, st))) => resolve(s, job_id, height, &mut Fixed(*h, *f, *st)),
            (false, None) => resolve(s, job_id, height, &mut Truth),
        };
        match applied {
            Ok(_) => resolved.push(job_id),
            Err(_) => assert_eq!(s.entries(), before, "a failed resolution changes nothing"),
        }
    }
    resolved
}

mod property {
    //! The conservation property over arbitrary operation sequences, with shrinking: a failing
    //! case is reduced to a minimal sequence of operations.

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Offer { nonce_skew: u64, fuel: u64, price: u64, k: u8, fee: u64 },
        Result { pick: usize, how: Delivered },
        Account { who: usize, kind: u8, amount: u64, fee: u64, nonce_skew: u64 },
        Challenge { pick: usize, right: bool, bond: u64 },
        Resolve { exec_fails: bool },
        EndBlock,
        RolledBackOffer,
    }

    fn op() -> impl Strategy<Value = Op> {
        let delivered = (any::<usize>(), prop::bool::weighted(0.3), prop::bool::weighted(0.1))
            .prop_map(|(pick, lie, over)| Delivered { pick, lie, over });
        prop_oneof![
            3 => (0..2u64, 1..3_000u64, 0..3u64, 1..=3u8, 0..4u64)
                .prop_map(|(nonce_skew, fuel, price, k, fee)| Op::Offer { nonce_skew, fuel, price, k, fee }),
            5 => (any::<usize>(), delivered).prop_map(|(pick, how)| Op::Result { pick, how }),
            3 => (0..5usize, 0..4u8, 0..2_000u64, 0..3u64, 0..2u64)
                .prop_map(|(who, kind, amount, fee, nonce_skew)| Op::Account { who, kind, amount, fee, nonce_skew }),
            1 => (any::<usize>(), any::<bool>(), 0..600u64).prop_map(|(pick, right, bond)| Op::Challenge { pick, right, bond }),
            2 => prop::bool::weighted(0.1).prop_map(|exec_fails| Op::Resolve { exec_fails }),
            2 => Just(Op::EndBlock),
            1 => Just(Op::RolledBackOffer),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Balances + stakes + escrows (+ forfeits held by open jobs) change only by the fees
        /// burned (of account transactions and offers alike), with redundancy 1 to 3 and agreeing, lying and late providers; a replayed
        /// transaction is refused; a rolled-back transaction leaves no trace; the derived
        /// indexes always equal a recomputation from the entries.
        #[test]
        fn value_changes_only_by_burned_fees(ops in proptest::collection::vec(op(), 1..250)) {
            let mut w = world_of(4);
            w.genesis.accounts[0].balance = 10_000_000;
            let mut s = State::from_genesis(&w.genesis).expect("genesis");
            let total = s.total_value();
            let mut burned: u128 = 0;
            let mut height = 1u64;
            let mut offers: Vec<SignedOffer> = vec![];
            let mut verdicts: BTreeMap<Hash, Fixed> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Offer { nonce_skew, fuel, price, k, fee } => {
                        let nonce = s.account(&w.client.public()).nonce + nonce_skew;
                        let o = offer_k_fee(&w, nonce, fuel, price, height, k, fee);
                        if apply(&mut s, &Transaction::Offer(o.clone()), height).is_ok() {
                            // The offer's fee is burned like an account transaction's.
                            burned += u128::from(fee);
                            prop_assert!(apply(&mut s, &Transaction::Offer(o.clone()), height).is_err());
                            offers.push(o);
                        }
                    }
                    Op::Result { pick, how } => {
                        if let Some(o) = offers.get(pick % offers.len().max(1)) {
                            let _ = deliver(&w, &mut s, o, height, how);
                        }
                    }
                    Op::Account { who, kind, amount, fee, nonce_skew } => {
                        let key = if who == 0 { &w.client } else { &w.providers[who - 1] };
                        let to = w.providers[who % 4].public();
                        let action = match kind {
                            0 => Action::Transfer { to, amount },
                            1 => Action::RegisterProvider { stake: amount, price_per_fuel: 1 + amount % 2, capacity: 4, region: String::new() },
                            2 => Action::UpdatePrice { price_per_fuel: 1 + amount % 3 },
                            _ => Action::Unbond { amount: amount % 500 },
                        };
                        let tx = account_tx(&w, key, s.account(&key.public()).nonce + nonce_skew, fee, action);
                        if apply(&mut s, &tx, height).is_ok() {
                            burned += u128::from(fee);
                            prop_assert!(apply(&mut s, &tx, height).is_err(), "a replay must be refused");
                        }
                    }
                    Op::Challenge { pick, right, bond } => {
                        if let Some(o) = offers.get(pick % offers.len().max(1))
                            && let Some(claim) = s.job(&o.job_id()).and_then(Job::agreed)
                        {
                            let verdict = if right {
                                Fixed(claim.output_hash, claim.fuel_used, claim.status)
                            } else {
                                Fixed(Hash::ZERO, claim.fuel_used, JobStatus::Trap)
                            };
                            let nonce = s.account(&w.client.public()).nonce;
                            let tx = account_tx(&w, &w.client, nonce, 1, Action::Challenge { job_id: o.job_id(), bond });
                            if apply(&mut s, &tx, height).is_ok() {
                                burned += 1;
                                verdicts.insert(o.job_id(), verdict);
                            }
                        }
                    }
                    Op::Resolve { exec_fails } => {
                        resolve_all(&mut s, height, &verdicts, exec_fails);
                    }
                    Op::EndBlock => {
                        s.end_block(height);
                        s.commit();
                        height += 1;
                    }
                    Op::RolledBackOffer => {
                        s.commit();
                        let before = s.entries();
                        let o = offer_at(&w, s.account(&w.client.public()).nonce, 10, 1, height);
                        let _ = apply(&mut s, &Transaction::Offer(o), height);
                        s.rollback();
                        prop_assert_eq!(s.entries(), before);
                    }
                }
                prop_assert_eq!(s.total_value() + burned, total);
                prop_assert!(s.indexes_are_consistent(), "the derived indexes equal a recomputation");
            }
        }
    }
}

mod redundancy {
    //! Redundancy k ≥ 2: assignment per slot, agreement, disputes settled by re-execution,
    //! deadlines with missing results, challenges against the agreed result.

    use super::*;

    /// `world_of(n)` with every provider's stake set to `stake`.
    fn state_of(n: u8, stake: u64) -> (World, State) {
        let mut w = world_of(n);
        for p in &mut w.genesis.providers {
            p.stake = stake;
        }
        let s = State::from_genesis(&w.genesis).expect("genesis");
        (w, s)
    }

    fn honest(w: &World, o: &SignedOffer, p: PublicKey) -> Transaction {
        Transaction::Result(result_by(w, o, p, o.offer.fuel_limit / 2, b"out"))
    }

    fn lying(w: &World, o: &SignedOffer, p: PublicKey, output: &[u8]) -> Transaction {
        Transaction::Result(result_by(w, o, p, o.offer.fuel_limit / 2, output))
    }

    fn balance(s: &State, p: &PublicKey) -> u64 {
        s.account(p).balance
    }

    fn stake(s: &State, p: &PublicKey) -> u64 {
        s.provider(p).expect("provider").stake
    }

    #[test]
    fn redundancy_is_bounded_and_needs_k_eligible_providers() {
        let (w, mut s) = state_of(3, 10_000);
        let root = s.entries();
        for k in [0, REDUNDANCY_MAX + 1] {
            let o = offer_k(&w, 0, 10, 1, 1, k);
            assert_eq!(
                apply(&mut s, &Transaction::Offer(o), 1),
                Err(TxError::Limit(Limit::Redundancy { max: REDUNDANCY_MAX })),
                "k = {k}"
            );
        }
        let o = offer_k(&w, 0, 10, 1, 1, 4);
        assert_eq!(apply(&mut s, &Transaction::Offer(o), 1), Err(TxError::NoProvider { max_price: 1, needed: 4 }));
        // The escrow covers k executions, overflow-checked.
        let o = offer_k(&w, 0, 1_000, 2, 1, 3);
        assert_eq!(o.offer.escrow().ok(), Some(6_000));
        let mut huge = offer_k(&w, 0, 10_000_000_000, u64::MAX / 10_000_000_000, 1, 2).offer;
        assert!(huge.escrow().is_err());
        huge.redundancy = 1;
        assert!(huge.escrow().is_ok());
        let huge = offer_k(&w, 0, 10_000_000_000, u64::MAX / 10_000_000_000, 1, 2);
        assert_eq!(apply(&mut s, &Transaction::Offer(huge), 1), Err(TxError::Overflow("escrow")));
        assert_eq!(s.entries(), root, "refused offers change nothing");
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("k = 3 with three providers");
        let job = s.job(&o.job_id()).expect("job");
        assert_eq!((job.escrow, job.redundancy()), (6_000, 3));
        assert_eq!(job.assigned(), job.ranking[..3].to_vec(), "the top k ranked are assigned");
        assert_eq!(job.assigned(), s.assignment(&o.job_id(), 2, &ANY, 3));
        for p in job.assigned() {
            assert_eq!(s.provider(&p).expect("provider").active_jobs, 1, "capacity counts per slot");
        }
        assert_eq!(balance(&s, &w.client.public()), 4_000 - OFFER_FEE);
    }

    #[test]
    fn agreeing_results_complete_the_job_and_each_provider_is_paid_its_ask() {
        let (w, mut s) = state_of(3, 10_000);
        let total = s.total_value();
        let o = offer_k(&w, 0, 1_000, 2, 1, 2);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let id = o.job_id();
        let [a, b] = s.job(&id).expect("job").assigned()[..] else { panic!("two assigned") };
        assert!(apply(&mut s, &honest(&w, &o, a), 1).expect("applies").is_some(), "every result is a receipt");
        let job = s.job(&id).expect("job");
        assert_eq!(job.phase, JobPhase::Open, "waiting for the second result");
        assert!(!job.accepts(&a) && job.accepts(&b));
        assert_eq!(s.provider(&a).expect("a").active_jobs, 0);
        assert_eq!(apply(&mut s, &honest(&w, &o, a), 1), Err(TxError::SlotFilled(a)));
        apply(&mut s, &honest(&w, &o, b), 2).expect("second result");
        let job = s.job(&id).expect("job");
        let window = w.genesis.params.challenge_window_blocks;
        assert_eq!((job.phase, job.paid, job.settle_height), (JobPhase::Completed, 1_000, 2 + window));
        assert_eq!(apply(&mut s, &honest(&w, &o, b), 2), Err(TxError::JobClosed(id)));
        s.end_block(1 + window);
        assert_eq!((balance(&s, &a), balance(&s, &b)), (0, 0), "paid after the challenge window");
        s.end_block(2 + window);
        assert_eq!((balance(&s, &a), balance(&s, &b)), (500, 500));
        assert_eq!(balance(&s, &w.client.public()), 10_000 - 1_000 - OFFER_FEE);
        assert_eq!(s.job(&id).expect("job").phase, JobPhase::Settled);
        assert_eq!(s.total_value(), total - fees(&s, &w));
    }

    #[test]
    fn jobs_awaiting_resolution_come_earliest_deadline_first_whatever_their_ids() {
        let (w, mut s) = state_of(2, 10_000);
        // Two disputes; the one with the earlier deadline has the greater id.
        let make = |nonce: u64, deadline: u64, fuel: u64| {
            let mut o = offer_k(&w, nonce, fuel, 2, 1, 2).offer;
            o.deadline_height = deadline;
            o.sign(&w.client)
        };
        let offers = (1_000..)
            .map(|fuel| vec![make(0, 50, fuel), make(1, 20, fuel)])
            .find(|o| o[1].job_id() > o[0].job_id())
            .expect("ids of either order");
        for o in &offers {
            apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
            let [a, b] = s.job(&o.job_id()).expect("job").assigned()[..] else { panic!("two assigned") };
            apply(&mut s, &honest(&w, o, a), 1).expect("a result");
            apply(&mut s, &lying(&w, o, b, b"lie"), 1).expect("a disagreeing result");
        }
        let by_deadline = vec![offers[1].job_id(), offers[0].job_id()];
        assert_eq!(s.awaiting_resolution().copied().collect::<Vec<_>>(), by_deadline);
        assert!(s.indexes_are_consistent());
    }

    #[test]
    fn disagreeing_results_are_settled_by_re_execution_without_a_challenge() {
        let (w, mut s) = state_of(2, 10_000);
        let total = s.total_value();
        let o = offer_k(&w, 0, 1_000, 2, 1, 2);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let id = o.job_id();
        let [right, liar] = s.job(&id).expect("job").assigned()[..] else { panic!("two assigned") };
        apply(&mut s, &honest(&w, &o, right), 1).expect("honest result");
        // The disagreeing result is taken without re-executing anything: the job, closed with
        // both results in, waits for its resolution.
        apply(&mut s, &lying(&w, &o, liar, b"lie"), 2).expect("the second result");
        assert_eq!(s.job(&id).expect("job").phase, JobPhase::Disputed);
        assert_eq!(s.awaiting_resolution().collect::<Vec<_>>(), vec![&id]);
        assert_eq!(s.total_value(), total - fees(&s, &w), "the escrow is still held");
        // Re-execution unavailable here (module or offer missing): nothing changes.
        let before = s.entries();
        assert!(matches!(resolve(&mut s, id, 3, &mut NoReexecution), Err(TxError::ReexecutionUnavailable(_))));
        assert_eq!(s.entries(), before);
        resolve(&mut s, id, 3, &mut Truth).expect("the dispute is resolved");
        let job = s.job(&id).expect("job").clone();
        assert_eq!(
            job.verified,
            Some(Outcome { output_hash: Hash::of(b"out"), fuel_used: 500, status: JobStatus::Ok })
        );
        // The liar loses half its stake to the right provider, which is paid at once; the client
        // gets the rest of the escrow back.
        assert_eq!((job.phase, job.paid, job.forfeit), (JobPhase::Settled, 500, 5_000));
        assert_eq!(stake(&s, &liar), 5_000);
        assert_eq!((balance(&s, &right), balance(&s, &liar)), (500 + 5_000, 0));
        assert_eq!(balance(&s, &w.client.public()), 10_000 - 500 - OFFER_FEE);
        assert_eq!(s.total_value(), total - fees(&s, &w));
        let (p, q) = (s.provider(&right).expect("p"), s.provider(&liar).expect("q"));
        assert_eq!((p.active_jobs, q.active_jobs), (0, 0));
    }

    #[test]
    fn the_forfeit_is_split_between_the_right_providers_and_late_liars_are_slashed_on_arrival() {
        for third_lies in [false, true] {
            let (w, mut s) = state_of(3, 10_002);
            let total = s.total_value();
            let o = offer_k(&w, 0, 1_000, 2, 1, 3);
            apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
            let id = o.job_id();
            let [a, b, c] = s.job(&id).expect("job").assigned()[..] else { panic!("three assigned") };
            apply(&mut s, &honest(&w, &o, a), 1).expect("a");
            apply(&mut s, &lying(&w, &o, b, b"lie"), 1).expect("b");
            assert_eq!(stake(&s, &b), 10_002, "nothing is slashed before the re-execution");
            resolve(&mut s, id, 2, &mut Truth).expect("the dispute is resolved while c is awaited");
            assert_eq!(stake(&s, &b), 5_001, "slashed as soon as the dispute is resolved");
            assert_eq!(s.job(&id).expect("job").phase, JobPhase::Open, "still waiting for c");
            // Once re-executed, later results are judged against it without running it again.
            let third = if third_lies { lying(&w, &o, c, b"other") } else { honest(&w, &o, c) };
            apply(&mut s, &third, 2).expect("c, without re-execution");
            let job = s.job(&id).expect("job");
            assert_eq!(job.phase, JobPhase::Settled);
            if third_lies {
                assert_eq!(stake(&s, &c), 5_001);
                assert_eq!(balance(&s, &a), 500 + 2 * 5_001);
                assert_eq!(balance(&s, &w.client.public()), 10_000 - 500 - OFFER_FEE);
            } else {
                // 5,001 split two ways: 2,500 each, the odd unit to the client.
                assert_eq!((balance(&s, &a), balance(&s, &c)), (500 + 2_500, 500 + 2_500));
                assert_eq!(balance(&s, &w.client.public()), 10_000 - 1_000 + 1 - OFFER_FEE);
            }
            assert_eq!(balance(&s, &b), 0);
            assert_eq!(s.total_value(), total - fees(&s, &w));
        }
    }

    #[test]
    fn when_no_provider_is_right_all_are_slashed_to_the_client() {
        let (w, mut s) = state_of(2, 10_000);
        let total = s.total_value();
        let o = offer_k(&w, 0, 1_000, 2, 1, 2);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let [a, b] = s.job(&o.job_id()).expect("job").assigned()[..] else { panic!("two assigned") };
        apply(&mut s, &lying(&w, &o, a, b"one"), 1).expect("a");
        apply(&mut s, &lying(&w, &o, b, b"two"), 1).expect("b");
        resolve(&mut s, o.job_id(), 2, &mut Truth).expect("resolved");
        let job = s.job(&o.job_id()).expect("job");
        assert_eq!((job.phase, job.paid), (JobPhase::Slashed, 0));
        assert_eq!((stake(&s, &a), stake(&s, &b)), (5_000, 5_000));
        assert_eq!((balance(&s, &a), balance(&s, &b)), (0, 0));
        let counts = |p: &PublicKey| s.provider(p).map(|p| (p.jobs_done, p.slashes, p.missed));
        assert_eq!((counts(&a), counts(&b)), (Some((0, 1, 0)), Some((0, 1, 0))), "each slashed once");
        assert_eq!(balance(&s, &w.client.public()), 10_000 + 10_000 - OFFER_FEE);
        assert_eq!(s.total_value(), total - fees(&s, &w));
    }

    #[test]
    fn at_the_deadline_missing_slots_are_penalised_and_agreeing_results_are_paid() {
        let (w, mut s) = state_of(2, 10_000);
        let total = s.total_value();
        let o = offer_k(&w, 0, 1_000, 2, 1, 2);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let id = o.job_id();
        let [a, b] = s.job(&id).expect("job").assigned()[..] else { panic!("two assigned") };
        apply(&mut s, &honest(&w, &o, a), 2).expect("a");
        assert!(s.end_block(10).is_empty(), "the deadline (10) is inclusive");
        let closed = s.end_block_closing(11);
        assert_eq!(
            closed,
            Closed { expired: vec![], with_results: vec![id], retired: vec![] },
            "a job with a result does not expire"
        );
        let job = s.job(&id).expect("job");
        let window = w.genesis.params.challenge_window_blocks;
        assert_eq!((job.phase, job.paid, job.settle_height), (JobPhase::Completed, 500, 11 + window));
        assert_eq!((stake(&s, &b), s.provider(&b).expect("b").active_jobs), (9_900, 0), "b missed its slot");
        s.end_block(11 + window);
        assert_eq!(balance(&s, &a), 500);
        let counts = |p: &PublicKey| s.provider(p).map(|p| (p.jobs_done, p.slashes, p.missed));
        assert_eq!((counts(&a), counts(&b)), (Some((1, 0, 0)), Some((0, 0, 1))), "a paid once, b missed once");
        assert_eq!(balance(&s, &w.client.public()), 10_000 - 500 + 100 - OFFER_FEE);
        assert_eq!(s.total_value(), total - fees(&s, &w));

        // Nothing delivered: the job expires, every slot's holder is penalised.
        let o = offer_k(&w, 1, 1_000, 2, 30, 2);
        apply(&mut s, &Transaction::Offer(o.clone()), 30).expect("offer");
        let before = balance(&s, &w.client.public());
        assert_eq!(s.end_block(40), vec![o.job_id()]);
        assert_eq!(balance(&s, &w.client.public()), before + 4_000 + 99 + 100);
        assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Expired);
        assert_eq!(s.total_value(), total - fees(&s, &w));
    }

    #[test]
    fn at_the_deadline_re_executed_results_settle_with_the_right_ones() {
        let (w, mut s) = state_of(3, 10_000);
        let total = s.total_value();
        let o = offer_k(&w, 0, 1_000, 2, 1, 3);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let [a, b, c] = s.job(&o.job_id()).expect("job").assigned()[..] else { panic!("three assigned") };
        apply(&mut s, &honest(&w, &o, a), 1).expect("a");
        apply(&mut s, &lying(&w, &o, b, b"lie"), 1).expect("b");
        // Not re-executed by the deadline: the job closes disputed (c pays for its missing
        // slot) and settles with the re-execution.
        s.end_block(11);
        assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Disputed);
        assert_eq!(s.total_value(), total - fees(&s, &w));
        resolve(&mut s, o.job_id(), 12, &mut Truth).expect("resolved");
        assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Settled);
        assert_eq!((stake(&s, &b), stake(&s, &c)), (5_000, 9_900));
        assert_eq!(balance(&s, &a), 500 + 5_000);
        assert_eq!(balance(&s, &w.client.public()), 10_000 - 500 + 100 - OFFER_FEE);
        assert_eq!(s.total_value(), total - fees(&s, &w));
    }

    #[test]
    fn each_slot_passes_to_the_next_ranked_provider_independently() {
        let (w, mut s) = state_of(4, 10_000);
        let mut o = offer_k(&w, 0, 1_000, 2, 1, 2).offer;
        o.deadline_height = 100;
        let o = o.sign(&w.client);
        let id = o.job_id();
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let ranking = s.job(&id).expect("job").ranking.clone();
        assert_eq!(ranking.len(), 4);
        apply(&mut s, &honest(&w, &o, ranking[1]), 2).expect("slot 1 delivers");
        let delivery = w.genesis.params.delivery_blocks;
        s.end_block(delivery);
        assert_eq!(s.job(&id).expect("job").assigned(), ranking[..2].to_vec());
        s.end_block(1 + delivery);
        let job = s.job(&id).expect("job");
        assert_eq!(job.assigned(), vec![ranking[2], ranking[1]], "only the late slot moved");
        assert_eq!(job.assignees(), &ranking[..3]);
        assert!(job.is_stand_in(&ranking[2]));
        let active = |s: &State, i: usize| s.provider(&ranking[i]).expect("provider").active_jobs;
        assert_eq!((active(&s, 0), active(&s, 1), active(&s, 2), active(&s, 3)), (0, 0, 1, 0));
        // The stand-in is late too: the last ranked provider takes the slot.
        s.end_block(1 + 2 * delivery);
        assert_eq!(s.job(&id).expect("job").assigned(), vec![ranking[3], ranking[1]]);
        s.end_block(1 + 3 * delivery);
        assert_eq!(s.job(&id).expect("job").assigned(), vec![ranking[3], ranking[1]], "no stand-in left");
        // A replaced provider's late result still fills its slot; then the slot is full.
        apply(&mut s, &honest(&w, &o, ranking[0]), 70).expect("late first holder");
        assert_eq!(s.job(&id).expect("job").phase, JobPhase::Completed);
        assert_eq!((active(&s, 2), active(&s, 3)), (0, 0));
        assert!(s.indexes_are_consistent());
    }

    #[test]
    fn a_challenge_against_agreeing_results_slashes_them_all_or_shares_the_bond() {
        for right in [true, false] {
            let (w, mut s) = state_of(2, 10_000);
            let total = s.total_value();
            let o = offer_k(&w, 0, 1_000, 2, 1, 2);
            apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
            let [a, b] = s.job(&o.job_id()).expect("job").assigned()[..] else { panic!("two assigned") };
            apply(&mut s, &honest(&w, &o, a), 1).expect("a");
            apply(&mut s, &honest(&w, &o, b), 1).expect("b");
            let challenge = account_tx(&w, &w.client, 1, 1, Action::Challenge { job_id: o.job_id(), bond: 501 });
            let mut exec =
                if right { Fixed(Hash::of(b"out"), 500, JobStatus::Ok) } else { Fixed(Hash::ZERO, 1, JobStatus::Trap) };
            apply(&mut s, &challenge, 2).expect("challenge");
            resolve(&mut s, o.job_id(), 3, &mut exec).expect("resolved");
            if right {
                // The bond is split between the providers, the odd unit to the first slot's.
                assert_eq!((balance(&s, &a), balance(&s, &b)), (251, 250));
                s.end_block(1 + w.genesis.params.challenge_window_blocks);
                assert_eq!((balance(&s, &a), balance(&s, &b)), (251 + 500, 250 + 500));
            } else {
                assert_eq!((stake(&s, &a), stake(&s, &b)), (5_000, 5_000));
                assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Slashed);
                assert_eq!(balance(&s, &w.client.public()), 10_000 - OFFER_FEE - 1 + 10_000);
            }
            assert_eq!(s.total_value(), total - u128::from(OFFER_FEE) - 1);
        }
    }

    /// The state's job entry format is pinned: changing it is a deliberate act (and changes
    /// every state root that holds a job).
    #[test]
    fn the_job_entry_encoding_is_pinned() {
        let p = PublicKey([7; 32]);
        let delivery = Delivery {
            provider: p,
            outcome: Outcome { output_hash: Hash::of(b"out"), fuel_used: 5, status: JobStatus::Ok },
            payment: 10,
        };
        let job = Job {
            client: PublicKey([1; 32]),
            module_id: Hash::of(b"m"),
            input_hash: Hash::of(b"i"),
            fuel_limit: 100,
            max_price: 2,
            escrow: 400,
            deadline_height: 9,
            ranking: vec![p, PublicKey([8; 32])],
            slots: vec![
                Slot { holders: vec![0], assigned_height: 1, delivery: Some(delivery) },
                Slot { holders: vec![1], assigned_height: 1, delivery: None },
            ],
            next: 2,
            phase: JobPhase::Open,
            verified: Some(delivery.outcome),
            forfeit: 3,
            paid: 0,
            settle_height: 0,
            challenge: Some(Challenge { challenger: PublicKey([9; 32]), bond: 100 }),
        };
        let bytes = borsh::to_vec(&job).expect("encodes");
        assert_eq!(borsh::from_slice::<Job>(&bytes).expect("decodes"), job);
        assert_eq!(Hash::of(&bytes).to_hex(), JOB_ENTRY_FIXTURE);
    }

    const JOB_ENTRY_FIXTURE: &str = "6223eebfb508b57e025b05b19ed8d5d381083615417ececbd4c072227f8954d8";

    #[test]
    fn the_provider_entry_encoding_is_pinned() {
        let provider = Provider {
            price_per_fuel: 2,
            stake: 1_000,
            capacity: 4,
            active_jobs: 1,
            unbonding: vec![(120, 50)],
            jobs_done: 7,
            slashes: 1,
            missed: 2,
            region: "eu".into(),
        };
        let bytes = borsh::to_vec(&provider).expect("encodes");
        assert_eq!(borsh::from_slice::<Provider>(&bytes).expect("decodes"), provider);
        // Every field little-endian in the order of STATE.md; the unbonding list as a u32
        // count and its pairs.
        let mut expected = Vec::new();
        for field in [&2u64.to_le_bytes()[..], &1_000u64.to_le_bytes(), &4u32.to_le_bytes(), &1u32.to_le_bytes()] {
            expected.extend_from_slice(field);
        }
        expected.extend_from_slice(&1u32.to_le_bytes());
        for n in [120u64, 50, 7, 1, 2] {
            expected.extend_from_slice(&n.to_le_bytes());
        }
        // The region as a string: a u32 length, then its bytes.
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice(b"eu");
        assert_eq!(bytes, expected);
    }
}

#[test]
fn a_block_needs_at_most_reexecutions_per_block_max_re_executions() {
    use cairn_ledger::state_tree::MemoryTree;

    use crate::{NextBlock, Position, REEXECUTIONS_PER_BLOCK_MAX, StateCommitment, build_block, execute_block};

    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let genesis_entries = s.entries();
    // One more challenged job than a block may resolve.
    let jobs = REEXECUTIONS_PER_BLOCK_MAX as u64 + 1;
    let mut resolutions = Vec::new();
    for i in 0..jobs {
        let o = offer(&w, 2 * i, 100, 1);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let r = result(&w, &s, &o, 50);
        apply(&mut s, &Transaction::Result(r), 1).expect("result");
        let challenge = Action::Challenge { job_id: o.job_id(), bond: 100 };
        apply(&mut s, &account_tx(&w, &w.client, 2 * i + 1, 1, challenge), 1).expect("challenge");
        resolutions.push(Transaction::Resolve { job_id: o.job_id() });
    }
    let changes = s.commit();
    let tree_after_block_1 = || {
        let mut tree = MemoryTree::with_genesis(&genesis_entries).expect("genesis tree").0;
        tree.root_after(&changes, 1).expect("block 1 in the tree");
        tree
    };
    let mut tree = tree_after_block_1();
    let at = Position { height: 2, parent_hash: Hash::ZERO };
    let next = NextBlock { at, proposer: w.client.public(), time_ms: 2, last_commit: None };
    let mut exec = Truth;
    let (mut block, _, rejected) =
        build_block(&mut s, next, resolutions.clone(), &mut tree, &mut exec, &mut VerifyAlways).expect("built");
    assert_eq!(block.txs.len(), REEXECUTIONS_PER_BLOCK_MAX, "the builder stops at the budget");
    assert_eq!(rejected, vec![(resolutions[REEXECUTIONS_PER_BLOCK_MAX].clone(), TxError::TooManyReexecutions)]);
    s.rollback();
    // A block that needs one more is invalid, whatever its roots say.
    block.txs = resolutions;
    block.header.tx_count = block.txs.len() as u32;
    block.header.tx_root =
        cairn_ledger::merkle::root(&block.txs.iter().map(Transaction::leaf_hash).collect::<Vec<_>>());
    let mut tree = tree_after_block_1();
    let err = execute_block(&mut s, at, &block, &mut tree, &mut exec, &mut VerifyAlways).expect_err("over the budget");
    assert!(
        matches!(err, crate::BlockError::Tx { index, error: TxError::TooManyReexecutions } if index == REEXECUTIONS_PER_BLOCK_MAX),
        "{err:?}"
    );
}

#[test]
fn read_helpers_tell_a_price_too_low_from_busy_providers_and_price_results_as_applied() {
    // Asks 1, 2 and 3; the cheapest takes one job at a time.
    let mut w = world_of(3);
    for (i, p) in w.genesis.providers.iter_mut().enumerate() {
        p.price_per_fuel = 1 + i as u64;
    }
    w.genesis.providers[0].capacity = 1;
    let cheapest = w.providers[0].public();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    assert_eq!(s.lowest_ask(), Some(1));
    for max_price in 0..5 {
        let expected = (max_price as usize).min(3);
        assert_eq!(s.priced_count(max_price, &ANY), expected, "priced at {max_price}");
        // The oracle: what the ranking ranks.
        let ranked = s.ranking(&Hash::of(b"any job"), max_price, &ANY, usize::MAX).len();
        assert_eq!(s.eligible_count(max_price, &ANY), ranked, "eligible at {max_price}");
        assert_eq!(ranked, expected);
    }

    // A job at price 1 goes to the cheapest provider and fills its capacity: it is priced, but
    // no longer eligible.
    let o = offer(&w, 0, 100, 1);
    apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
    assert_eq!((s.priced_count(1, &ANY), s.eligible_count(1, &ANY)), (1, 0));
    assert_eq!(s.eligible_count(3, &ANY), 2);
    let job = s.job(&o.job_id()).expect("job");
    assert_eq!(job.awaited().collect::<Vec<_>>(), vec![(cheapest, 1)]);
    assert!(!job.has_stand_in(), "no other provider asks 1 or less");
    // Once it delivers, nothing is awaited and its capacity is free again.
    let r = result_by(&w, &o, cheapest, 40, b"out");
    apply(&mut s, &Transaction::Result(r), 1).expect("result");
    assert_eq!(s.job(&o.job_id()).expect("job").awaited().count(), 0);
    assert_eq!(s.eligible_count(1, &ANY), 1);

    // What a result is paid is `fuel_used × pay_rate`: the ask, at most the offer's price.
    for (nonce, max_price) in [(1, 2), (2, 3), (3, 9)] {
        let o = offer(&w, nonce, 100, max_price);
        apply(&mut s, &Transaction::Offer(o.clone()), 1).expect("offer");
        let assigned = s.job(&o.job_id()).expect("job").assigned()[0];
        let rate = s.pay_rate(&assigned, max_price);
        assert!(rate <= max_price);
        apply(&mut s, &Transaction::Result(result_by(&w, &o, assigned, 7, b"out")), 1).expect("result");
        let paid: Vec<u64> = s.job(&o.job_id()).expect("job").deliveries().map(|d| d.payment).collect();
        assert_eq!(paid, vec![7 * rate], "at max_price {max_price}, provider {assigned}");
    }
    assert_eq!(s.pay_rate(&w.client.public(), 5), 5, "not a provider: the offer's price");
}

#[test]
fn an_input_blob_is_the_jobs_input_hash_and_an_output_blob_result_is_accepted_like_an_inline_one() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let blob = Hash::of(&vec![7u8; 1 << 20]);
    // An offer naming a blob carries no inline input.
    let both = JobOffer { input_blob: Some(blob), ..offer(&w, 0, 1_000, 2).offer }.sign(&w.client);
    let refused = apply(&mut s, &Transaction::Offer(both), 1).expect_err("input and input_blob");
    assert_eq!(refused, TxError::Limit(Limit::InputAndBlob));
    assert_eq!(refused.reason(), "input_and_input_blob");
    let o = JobOffer { input: Vec::new(), input_blob: Some(blob), ..offer(&w, 0, 1_000, 2).offer }.sign(&w.client);
    assert_eq!(apply(&mut s, &Transaction::Offer(o.clone()), 1), Ok(None));
    let job = s.job(&o.job_id()).expect("job");
    assert_eq!(job.input_hash, blob, "the job's input is the blob's bytes");
    // The result's output is a blob too: the receipt commits to its hash like any output's.
    let provider = job.ranking[0];
    let key = w.providers.iter().find(|p| p.public() == provider).expect("a provider key");
    let output = vec![b'X'; 1 << 20];
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id: o.job_id(),
        module_id: o.offer.module_id,
        input_hash: blob,
        output_hash: Hash::of(&output),
        fuel_used: 300,
        status: JobStatus::Ok,
        provider,
    };
    let in_blob = JobResult::with_output_in_blob(claim.clone(), key);
    // Not a blob result with inline bytes, nor a failure's reason left in a blob.
    let mut with_bytes = in_blob.clone();
    with_bytes.output = b"x".to_vec();
    assert!(matches!(s.check_result(&with_bytes), Err(TxError::Invalid(_))));
    let failed = JobResult::with_output_in_blob(ResultClaim { status: JobStatus::Trap, ..claim.clone() }, key);
    assert!(matches!(s.check_result(&failed), Err(TxError::Invalid(_))));
    let receipt = apply(&mut s, &Transaction::Result(in_blob), 1).expect("applies").expect("a receipt");
    assert_eq!(receipt.claim.output_hash, Hash::of(&output));
    assert_eq!(receipt.claim.input_hash, blob);
}
