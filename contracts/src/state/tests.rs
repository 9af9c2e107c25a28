use cairn_ledger::{
    FORMAT_VERSION, GenesisAccount, GenesisProvider, JobOffer, Keypair, ResultClaim, Signature, Validator,
};

use super::*;

struct World {
    genesis: Genesis,
    client: Keypair,
    providers: Vec<Keypair>,
}

fn world() -> World {
    let client = Keypair::from_seed([1; 32]);
    let providers: Vec<Keypair> = (2..4).map(|i| Keypair::from_seed([i; 32])).collect();
    let genesis = Genesis {
        version: FORMAT_VERSION,
        chain_name: "test".into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: Keypair::from_seed([9; 32]).public(), power: 1 }],
        accounts: vec![GenesisAccount { address: client.public(), balance: 10_000 }],
        providers: providers.iter().map(|p| GenesisProvider { address: p.public(), price_per_fuel: 1 }).collect(),
        params: ChainParams::default(),
    };
    World { genesis, client, providers }
}

fn offer(w: &World, nonce: u64, fuel_limit: u64, max_price: u64) -> SignedOffer {
    JobOffer {
        version: FORMAT_VERSION,
        chain_id: w.genesis.chain_id(),
        client: w.client.public(),
        nonce,
        module_id: Hash::of(b"wasm"),
        input: b"in".to_vec(),
        fuel_limit,
        max_price,
        redundancy: 1,
        assignment_height: 0,
        deadline_height: 10,
    }
    .sign(&w.client)
}

fn result(w: &World, state: &State, signed: &SignedOffer, fuel_used: u64) -> JobResult {
    let job_id = signed.job_id();
    let assigned = state.job(&job_id).expect("job").assigned[0];
    let key = w.providers.iter().find(|p| p.public() == assigned).expect("a known provider");
    let output = b"out".to_vec();
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
    assert_eq!(s.apply_tx(&Transaction::Offer(o.clone()), 1), Ok(None));
    assert_eq!(s.account(&w.client.public()), Account { balance: 8_000, nonce: 1 });
    let r = result(&w, &s, &o, 300);
    let receipt = s.apply_tx(&Transaction::Result(r.clone()), 1).expect("applies").expect("a receipt");
    assert_eq!(receipt.claim, r.claim);
    // price 1 per fuel: provider earns 300, the client gets 2000 - 300 back.
    assert_eq!(s.account(&r.claim.provider).balance, 300);
    assert_eq!(s.account(&w.client.public()).balance, 9_700);
    assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Completed);
    assert_eq!(s.total_value(), total);
    assert_eq!(s.apply_tx(&Transaction::Result(r), 2), Err(TxError::JobClosed(o.job_id())));
}

#[test]
fn bad_offers_are_refused_and_change_nothing() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let root = s.entries();
    let mut bad_sig = offer(&w, 0, 1_000, 2);
    bad_sig.signature = Signature([0; 64]);
    assert!(matches!(s.apply_tx(&Transaction::Offer(bad_sig), 1), Err(TxError::Invalid(_))));
    assert_eq!(
        s.apply_tx(&Transaction::Offer(offer(&w, 0, 100_000, 1)), 1),
        Err(TxError::InsufficientBalance { balance: 10_000, escrow: 100_000 })
    );
    assert_eq!(s.apply_tx(&Transaction::Offer(offer(&w, 5, 10, 1)), 1), Err(TxError::Nonce { expected: 0, got: 5 }));
    assert_eq!(s.apply_tx(&Transaction::Offer(offer(&w, 0, 10, 0)), 1), Err(TxError::NoProvider { max_price: 0 }));
    assert_eq!(s.entries(), root);
    assert!(s.commit().is_empty());
}

#[test]
fn a_result_from_an_unassigned_provider_is_refused() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let o = offer(&w, 0, 1_000, 2);
    s.apply_tx(&Transaction::Offer(o.clone()), 1).expect("offer");
    let assigned = s.job(&o.job_id()).expect("job").assigned[0];
    let other = w.providers.iter().find(|p| p.public() != assigned).expect("two providers");
    let mut r = result(&w, &s, &o, 10);
    r.claim.provider = other.public();
    let r = JobResult::new(r.claim, r.output, other);
    assert_eq!(s.apply_tx(&Transaction::Result(r), 1), Err(TxError::NotAssigned(other.public())));
}

#[test]
fn unexecuted_jobs_expire_and_refund() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let o = offer(&w, 0, 1_000, 2);
    s.apply_tx(&Transaction::Offer(o.clone()), 1).expect("offer");
    assert!(s.end_block(10).is_empty(), "the deadline is inclusive");
    assert_eq!(s.end_block(11), vec![o.job_id()]);
    assert_eq!(s.account(&w.client.public()).balance, 10_000);
    assert_eq!(s.job(&o.job_id()).expect("job").phase, JobPhase::Expired);
}

#[test]
fn rollback_restores_and_commit_round_trips_through_entries() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let root0 = s.entries();
    s.apply_tx(&Transaction::Offer(offer(&w, 0, 1_000, 2)), 1).expect("offer");
    assert_ne!(s.entries(), root0);
    s.rollback();
    assert_eq!(s.entries(), root0);
    assert_eq!(s.account(&w.client.public()).nonce, 0);

    let o = offer(&w, 0, 1_000, 2);
    s.apply_tx(&Transaction::Offer(o.clone()), 1).expect("offer");
    let r = result(&w, &s, &o, 5);
    s.apply_tx(&Transaction::Result(r), 1).expect("result");
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
    let a = s.assignment(&id, 1, 2);
    assert_eq!(a.len(), 2);
    assert_eq!(a, s.clone().assignment(&id, 1, 2));
    assert!(s.assignment(&id, 0, 2).is_empty());
    // Different jobs spread over providers.
    let firsts: std::collections::BTreeSet<_> = (0..32u8).map(|i| s.assignment(&Hash::of(&[i]), 1, 1)[0]).collect();
    assert_eq!(firsts.len(), 2);
}

/// Random sequences of offers, results and block ends (many failing) never create or destroy
/// value, and the journal rolls back exactly.
#[test]
fn value_is_conserved_over_random_sequences() {
    let w = world();
    let mut s = State::from_genesis(&w.genesis).expect("genesis");
    let total = s.total_value();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut offers: Vec<SignedOffer> = vec![];
    for height in 1..400u64 {
        let nonce = s.account(&w.client.public()).nonce + next() % 2;
        let o = offer(&w, nonce, 1 + next() % 3_000, next() % 3);
        if s.apply_tx(&Transaction::Offer(o.clone()), height).is_ok() {
            offers.push(o);
        }
        if let Some(o) = offers.get((next() as usize) % offers.len().max(1))
            && s.job(&o.job_id()).is_some_and(|j| j.phase == JobPhase::Open)
        {
            let fuel = next() % (o.offer.fuel_limit + 10);
            let _ = s.apply_tx(&Transaction::Result(result(&w, &s, o, fuel)), height);
        }
        s.end_block(height);
        assert_eq!(s.total_value(), total, "height {height}");
        if next() % 5 == 0 {
            s.commit();
            let root = s.entries();
            let _ = s.apply_tx(&Transaction::Offer(offer(&w, s.account(&w.client.public()).nonce, 10, 1)), height);
            s.rollback();
            assert_eq!(s.entries(), root);
        }
        s.commit();
    }
}
