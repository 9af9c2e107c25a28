//! The market on a live testnet: funds move, a provider registers by transaction, a job
//! assigned to an absent provider passes to the next ranked one, stake unbonds; a lying
//! provider is slashed by a challenge, or by re-execution when a second provider disagrees.

use cairn_ledger::{Action, Hash, Keypair, PublicKey};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage, ProviderInfo};
use jsonrpsee::ws_client::WsClient;

use crate::support::{Net, TIMEOUT, start, uppercase_module};

/// A testnet with a lying provider (1) and an honest one (2), the uppercase module uploaded.
async fn liar_and_honest() -> (Net, WsClient, PublicKey, PublicKey, Hash) {
    let net = crate::support::start_with(2, 1).await;
    let c = net.rpc(0).await;
    let (liar, honest) = (net.provider_key(1), net.provider_key(2));
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    (net, c, liar, honest, module_id)
}

fn stake_of(list: &[ProviderInfo], who: PublicKey) -> Option<u64> {
    list.iter().find(|p| p.address == who).map(|p| p.stake)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_provider_that_never_delivers_is_replaced() {
    let net = start(2).await;
    let c = net.rpc(0).await;
    let absent = Keypair::from_seed([42; 32]);

    // Funds move by transaction; the fee is burned.
    let before = c.account_get(net.client_key.public()).await.expect("account").balance;
    let tx = client::sign_tx(
        &c,
        &net.client_key,
        Some(1),
        Action::Transfer { to: absent.public(), amount: 60_000_000 },
        None,
    )
    .await
    .expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("transfer finalized");
    assert_eq!(c.account_get(absent.public()).await.expect("account").balance, 60_000_000);
    assert_eq!(c.account_get(net.client_key.public()).await.expect("account").balance, before - 60_000_001);

    // It registers with a stake far above the others', so it ranks first for most jobs — but
    // no node runs with its key.
    let register =
        Action::RegisterProvider { stake: 50_000_000, price_per_fuel: 1, capacity: 8, region: String::new() };
    let tx = client::sign_tx(&c, &absent, Some(1), register, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("registration finalized");
    let providers = c.provider_list().await.expect("provider_list");
    assert_eq!(providers.len(), 3);
    assert!(providers.iter().any(|p| p.address == absent.public() && p.stake == 50_000_000 && p.eligible));

    // Jobs first assigned to it are delivered by a stand-in after `delivery_blocks`.
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let mut replaced = 0;
    for i in 0..4 {
        let input = format!("job {i}").into_bytes();
        let offer = client::sign_offer(&c, &net.client_key, module_id, input, OfferTerms::default(), None)
            .await
            .expect("offer");
        let job_id = offer.job_id();
        let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
        let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
        assert_ne!(run.result.provider, absent.public());
        let info = c.job_get(job_id).await.expect("job_get");
        assert_eq!(info.stage, JobStage::Finalized);
        if info.assigned.first() == Some(&absent.public()) {
            assert!(info.assigned.len() >= 2, "the job passed to a stand-in");
            replaced += 1;
        }
    }
    assert!(replaced >= 1, "with 96% of the stake the absent provider ranked first at least once");
    assert_eq!(
        c.provider_list().await.expect("list").iter().find(|p| p.address == absent.public()).map(|p| p.active_jobs),
        Some(0)
    );

    // A job with redundancy 2 and a deadline before any stand-in can take over: the absent
    // provider holds one of its slots (with 96% of the stake it ranks in the top two but for
    // odds below 1 in 1,000), the other delivers. At the deadline the job completes with the one
    // result it has, in a block that holds none of its results, and the subscriber hears that
    // it is final.
    let terms = OfferTerms { redundancy: 2, deadline_blocks: 10, ..OfferTerms::default() };
    let offer =
        client::sign_offer(&c, &net.client_key, module_id, b"one of two".to_vec(), terms, None).await.expect("offer");
    let job_id = offer.job_id();
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_ne!(run.result.provider, absent.public());
    let info = c.job_get(job_id).await.expect("job_get");
    assert_eq!(info.stage, JobStage::Finalized);
    assert!(info.assigned.contains(&absent.public()), "the absent provider held a slot: {:?}", info.assigned);
    assert_eq!(info.assigned.len(), 2, "no stand-in before the deadline");

    // Unbonding takes the stake out of assignment at once; it returns after the period.
    let listed = |list: Vec<ProviderInfo>| list.into_iter().find(|p| p.address == absent.public());
    let stake = listed(c.provider_list().await.expect("list")).expect("listed").stake;
    assert!(stake < 50_000_000, "the missed deadline cost the absent provider part of its stake");
    let tx = client::sign_tx(&c, &absent, Some(1), Action::Unbond { amount: stake }, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("unbond finalized");
    let p = listed(c.provider_list().await.expect("list")).expect("listed");
    assert_eq!((p.stake, p.unbonding, p.eligible), (0, stake, false));
    // The missed-deadline penalty, the registration and the unbonding stake, from outside.
    crate::support::assert_value_conserved(&net, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_provider_is_slashed_by_a_challenge_and_the_client_refunded() {
    // Provider 1 lies about outputs; provider 2 is honest.
    let (net, c, liar, honest, module_id) = liar_and_honest().await;

    // An honest job and a lying one, both finalized with receipts.
    let offer = net.offer_for(&c, module_id, honest, "honest").await;
    let honest_input = offer.offer.input.clone();
    let honest_run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.expect("honest job");
    assert_eq!(honest_run.result.output, honest_input.to_ascii_uppercase());
    let offer = net.offer_for(&c, module_id, liar, "lie").await;
    let escrow = offer.offer.escrow().expect("escrow");
    let input = offer.offer.input.clone();
    let lie_job = offer.job_id();
    let lie = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.expect("lying job finalized");
    assert_eq!(lie.result.provider, liar);
    assert_ne!(lie.result.output, input.to_ascii_uppercase(), "the liar signed a wrong output");

    // The client challenges within the window: validators re-execute and slash the liar.
    let before = c.account_get(net.client_key.public()).await.expect("account");
    let stakes_before = c.provider_list().await.expect("list");
    let bond = 500;
    // Through the CLI, as a client would.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["job", "challenge", &lie_job.to_string(), "--bond", &bond.to_string(), "--fee", "1", "--rpc"])
        .arg(net.t.rpc_url(0))
        .arg("--key")
        .arg(net.t.dir.join("client-key.json"))
        .output()
        .expect("cairn runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "challenge: {}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr), net.logs());
    assert!(stdout.contains("finalized"), "{stdout}");
    // The challenge is in a block; a later block resolves it, once the validators have
    // re-executed the job.
    let liar_stake = stake_of(&stakes_before, liar).expect("liar listed");
    let slash = liar_stake / 2;
    let deadline = std::time::Instant::now() + TIMEOUT;
    let stakes_after = loop {
        let stakes = c.provider_list().await.expect("list");
        if stake_of(&stakes, liar) != Some(liar_stake) {
            break stakes;
        }
        assert!(std::time::Instant::now() < deadline, "the challenge was never resolved\n{}", net.logs());
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(stake_of(&stakes_after, liar), Some(liar_stake - slash));
    assert_eq!(stake_of(&stakes_after, honest), stake_of(&stakes_before, honest));
    // The client paid the fee, got its bond back, the slash, and the whole escrow.
    let after = c.account_get(net.client_key.public()).await.expect("account");
    assert_eq!(after.balance, before.balance - 1 + slash + escrow);
    let info = c.job_get(lie_job).await.expect("job");
    assert_eq!(info.paid, None, "the liar is never paid");

    // The honest provider is paid exactly fuel × price once its window passes; the liar nothing.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let honest_balance = c.account_get(honest).await.expect("account").balance;
        if honest_balance == honest_run.result.fuel_used * cairn_testnet::PROVIDER_PRICE {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "honest provider not paid: {honest_balance}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(c.account_get(liar).await.expect("account").balance, 0);
    // Slashed stake, the challenger's bond, escrows and fees all accounted for, from outside.
    crate::support::assert_value_conserved(&net, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn n2_redundant_job_with_one_liar_is_resolved_by_re_execution_without_a_challenge() {
    // Provider 1 lies about outputs; provider 2 is honest. A job with redundancy 2 goes to both.
    let (net, c, liar, honest, module_id) = liar_and_honest().await;
    let terms = OfferTerms { redundancy: 2, ..OfferTerms::default() };
    let offer =
        client::sign_offer(&c, &net.client_key, module_id, b"k = 2".to_vec(), terms, None).await.expect("offer");
    let escrow = offer.offer.escrow().expect("escrow");
    assert_eq!(escrow, 2 * offer.offer.fuel_limit * offer.offer.max_price, "the escrow covers both executions");
    let fee = offer.offer.fee;
    assert_eq!(fee, net.genesis.params.tx_fee_min, "the client pays the chain's minimum fee by default");
    let job_id = offer.job_id();

    let account = |who| {
        let c = &c;
        async move { c.account_get(who).await.expect("account_get").balance }
    };
    let client_before = account(net.client_key.public()).await;
    let (liar_before, honest_before) = (account(liar).await, account(honest).await);
    let stakes_before = c.provider_list().await.expect("list");

    // Both results reach a block; they disagree, so the validator re-executes the job while
    // applying the block and settles it at once: no challenge, no challenge window. The job is
    // final only with its second result.
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    let info = c.job_get(job_id).await.expect("job_get");
    assert_eq!(info.stage, JobStage::Finalized);
    let mut assigned = info.assigned.clone();
    assigned.sort();
    let mut both = vec![liar, honest];
    both.sort();
    assert_eq!(assigned, both, "the top two ranked providers: both of them");
    let fuel_used = run.proof.receipt.claim.fuel_used;
    let payment = fuel_used * cairn_testnet::PROVIDER_PRICE;
    assert_eq!(info.paid, Some(payment), "only the honest provider is paid");

    // Two results, two receipts: each one's proof, none chosen silently.
    let proofs = c.job_proofs(job_id).await.expect("job_proofs");
    let mut signers: Vec<_> = proofs.iter().map(|p| p.receipt.claim.provider).collect();
    signers.sort();
    assert_eq!(signers, both, "a receipt per provider");
    for p in &proofs {
        p.verify(&net.genesis).expect("each receipt proof verifies");
        let one = c.job_proof(job_id, Some(p.receipt.claim.provider)).await.expect("job_proof of a provider");
        assert_eq!(&one, p);
    }
    let unnamed = c.job_proof(job_id, None).await.expect_err("which receipt? the caller names it");
    assert_eq!(crate::support::code_of(&unnamed), Some(cairn_rpc::error::INVALID_PARAMS), "{unnamed}");

    // The liar loses `slash_bps` of its stake to the honest provider, which is also paid
    // `fuel_used × ask`; the client gets everything else back, less the offer's fee (burned).
    let stakes_after = c.provider_list().await.expect("list");
    let liar_stake = stake_of(&stakes_before, liar).expect("liar listed");
    let slash = liar_stake * u64::from(net.genesis.params.slash_bps) / 10_000;
    assert!(slash > 0);
    assert_eq!(stake_of(&stakes_after, liar), Some(liar_stake - slash));
    assert_eq!(stake_of(&stakes_after, honest), stake_of(&stakes_before, honest));
    assert_eq!(account(honest).await, honest_before + payment + slash);
    assert_eq!(account(liar).await, liar_before);
    assert_eq!(account(net.client_key.public()).await, client_before - payment - fee);
    crate::support::assert_value_conserved(&net, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_missing_a_disputed_jobs_module_fetches_it_and_applies_the_block() {
    // Provider 1 lies, provider 2 is honest, provider 3 is down while a k = 2 job between the
    // first two is disputed and settled by re-execution. Provider 3 never saw the offer, so it
    // lacks the module: applying the block with the results needs it. It must fetch it (when
    // it applies the offer's block, or — offer and results in one block — when that block
    // fails for want of it) and catch up.
    let mut net = crate::support::start_with(3, 1).await;
    let c = net.rpc(0).await;
    let (liar, honest) = (net.provider_key(1), net.provider_key(2));
    net.t.kill(3).expect("kill provider 3");
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let state = cairn_contracts::State::from_genesis(&net.genesis).expect("genesis state");
    let terms = OfferTerms { redundancy: 2, ..OfferTerms::default() };
    let mut pair = vec![liar, honest];
    pair.sort();
    let mut offer = None;
    for i in 0..256 {
        let o =
            client::sign_offer(&c, &net.client_key, module_id, format!("late {i}").into_bytes(), terms.clone(), None)
                .await
                .expect("offer");
        let mut assigned = state.assignment(&o.job_id(), o.offer.max_price, &o.offer.placement, 2);
        assigned.sort();
        if assigned == pair {
            offer = Some(o);
            break;
        }
    }
    let offer = offer.expect("an offer assigned to providers 1 and 2");
    let job_id = offer.job_id();
    client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    let info = c.job_get(job_id).await.expect("job_get");
    assert_eq!(info.paid.map(|p| p > 0), Some(true), "settled by re-execution, the honest provider paid");

    // Provider 3 comes back; another job (on another module, so its offer does not bring the
    // first module along) keeps blocks coming so it has something to sync to.
    net.t.restart(3).await.expect("restart provider 3");
    let echo = c.module_put(hex::encode(cairn_vm::fixtures::echo_wasm())).await.expect("module_put");
    let offer = net.offer_for(&c, echo, honest, "after").await;
    client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    let head = net.height(0).await;
    net.wait_height(3, head).await;
    let late = net.rpc(3).await;
    assert_eq!(late.job_get(job_id).await.expect("job_get").paid, info.paid, "provider 3 agrees on the settlement");
    assert_eq!(
        late.chain_get_block(head).await.expect("block").header.state_root,
        c.chain_get_block(head).await.expect("block").header.state_root,
        "same state at the same height"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_whose_execution_fails_on_its_side_signs_nothing_and_tries_again() {
    // The provider's first two executions fail on its side (as a sandbox failure of the node
    // would): it signs nothing for them and runs the job again, within its attempt limit.
    let mut net = start(1).await;
    let provider = net.provider_key(1);
    let config = net.t.dir.join("nodes").join("1").join(cairn_testnet::NODE_CONFIG_FILE);
    std::fs::write(&config, "test_fail_executions = 2\n").expect("write node.toml");
    net.t.kill(1).expect("stop the provider");
    net.t.restart(1).await.expect("restart the provider with its config");
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let offer = net.offer_for(&c, module_id, provider, "retried").await;
    let input = offer.offer.input.clone();
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.output, input.to_ascii_uppercase());
    assert_eq!(run.result.provider, provider);
    let log = net.t.log_tail(1, 500);
    assert_eq!(log.matches("failed on purpose").count(), 2, "two failed attempts before the result\n{log}");
}
