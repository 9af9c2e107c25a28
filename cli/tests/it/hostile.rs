//! Hostile modules with real processes: every compile-bomb family at its limit is accepted by
//! `module_put` (validated and compiled), one step past it is refused naming the rule; and a
//! challenge of a job on the slowest module to compile is re-executed ahead of its block, so
//! blocks keep being finalized meanwhile.

use cairn_ledger::{Action, Keypair, Transaction};
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};
use cairn_vm::worst_case::{self, Edge, Family};

use crate::support::{TIMEOUT, code_of, start, uppercase_module};

#[tokio::test(flavor = "multi_thread")]
async fn compile_bombs_at_the_limit_are_accepted_and_one_step_past_is_refused_at_module_put() {
    let net = start(0).await;
    let c = net.rpc(0).await;
    for family in Family::ALL {
        let at = worst_case::module(family, Edge::At);
        let id = c.module_put(hex::encode(&at)).await.unwrap_or_else(|e| panic!("{}: {e}", family.name()));
        assert_eq!(id, cairn_ledger::Hash::of(&at));
        let past = worst_case::module(family, Edge::Past);
        let refused = c.module_put(hex::encode(&past)).await.expect_err(family.name());
        assert_eq!(code_of(&refused), Some(cairn_rpc::error::INVALID_MODULE), "{}: {refused}", family.name());
        let text = refused.to_string();
        assert!(text.contains("over the limit"), "{}: the error names the rule: {text}", family.name());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_of_the_slowest_module_is_re_executed_ahead_and_blocks_keep_coming() {
    let net = start(1).await;
    let (validator, provider) = (net.rpc(0).await, net.rpc(1).await);
    // The slowest module to compile, uploaded to the provider only: the validator fetches its
    // bytes with the offer but compiles it only when the challenge asks for a re-execution.
    let bomb = worst_case::module(Family::NestedLoops, Edge::At);
    let bomb_id = provider.module_put(hex::encode(&bomb)).await.expect("module_put");
    let upper = validator.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let offer = client::sign_offer(&provider, &net.client_key, bomb_id, vec![], OfferTerms::default(), None)
        .await
        .expect("offer");
    let job_id = offer.job_id();
    client::run_to_finality(&provider, offer, TIMEOUT, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));

    // A challenger of its own (so that its nonce does not hold up the client's next offer).
    let challenger = Keypair::generate();
    let fund = client::sign_tx(
        &validator,
        &net.client_key,
        None,
        Action::Transfer { to: challenger.public(), amount: 10_000 },
        None,
    )
    .await
    .expect("sign");
    client::submit_tx(&validator, fund, TIMEOUT).await.expect("funded");
    let challenge = client::sign_tx(&validator, &challenger, None, Action::Challenge { job_id, bond: 100 }, None)
        .await
        .expect("sign");
    validator.tx_submit(challenge.clone()).await.expect("challenge admitted");

    // Meanwhile another job runs to finality: its block does not wait for the re-execution.
    let other =
        client::sign_offer(&validator, &net.client_key, upper, b"meanwhile".to_vec(), OfferTerms::default(), None)
            .await
            .expect("offer");
    let other_id = other.job_id();
    client::run_to_finality(&validator, other, TIMEOUT, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    let other_height = validator.job_get(other_id).await.expect("job_get").receipt_height.expect("finalized");

    // The challenge went into a block at once, without re-executing anything; the validator
    // re-executes the job in the background and resolves it in a later block, while other
    // blocks are finalized.
    let find = |wanted: Transaction| {
        let validator = &validator;
        let net = &net;
        async move {
            let deadline = std::time::Instant::now() + TIMEOUT;
            let mut height = 1;
            loop {
                let head = validator.chain_head().await.expect("chain_head").height;
                while height <= head {
                    let block = validator.chain_get_block(height).await.expect("block");
                    if block.txs.contains(&wanted) {
                        return height;
                    }
                    height += 1;
                }
                assert!(std::time::Instant::now() < deadline, "{wanted:?} was never included\n{}", net.logs());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let challenge_height = find(Transaction::Account(challenge.clone())).await;
    let resolve_height = find(Transaction::Resolve { job_id }).await;
    assert!(challenge_height < resolve_height);
    assert!(
        other_height < resolve_height,
        "a block waited for the re-execution: the other job finalized at {other_height}, the resolution at {resolve_height}"
    );
    // The honest provider keeps the challenger's bond; both nodes agree on the state.
    net.wait_height(1, resolve_height).await;
    assert_eq!(
        provider.chain_get_block(resolve_height).await.expect("block").header.state_root,
        validator.chain_get_block(resolve_height).await.expect("block").header.state_root,
    );
    let challenger_after = validator.account_get(challenger.public()).await.expect("account_get");
    assert_eq!(challenger_after.balance, 10_000 - 100 - challenge.tx.fee, "the bond went to the honest provider");
}

#[tokio::test(flavor = "multi_thread")]
async fn offers_past_what_blocks_can_take_are_refused_at_once_as_overloaded_with_a_retry_hint() {
    // A validator whose block executor takes ten minutes over a block (no block comes while
    // the test runs: the offers stay pending) and a small room for pending offers.
    let net = crate::support::start_custom(1, 1, 0, |spec: &mut cairn_testnet::Spec| {
        cairn_testnet::generate(spec).expect("testnet generated");
        let path = spec.dir.join("nodes").join("0").join(cairn_testnet::NODE_CONFIG_FILE);
        std::fs::write(&path, "mempool_txs_max = 20\ntest_slow_blocks_ms = 600000\n").expect("write node.toml");
    })
    .await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let first = c.account_get(net.client_key.public()).await.expect("account_get").next_nonce;
    let mut refused = None;
    for i in 0..40u64 {
        let offer = client::sign_offer(
            &c,
            &net.client_key,
            module_id,
            format!("{i}").into_bytes(),
            OfferTerms::default(),
            Some(first + i),
        )
        .await
        .expect("offer");
        match c.job_submit(offer).await {
            Ok(_) => assert!(i < 20, "offer {i} admitted past the room"),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = refused.expect("the room filled");
    assert_eq!(i, 20, "refused exactly past the room");
    assert_eq!(code_of(&e), Some(cairn_rpc::error::OVERLOADED), "{e}");
    let jsonrpsee::core::ClientError::Call(obj) = &e else { panic!("{e}") };
    let data: serde_json::Value = serde_json::from_str(obj.data().expect("data").get()).expect("json");
    let retry = data["retry_after_ms"].as_u64().expect("a retry hint");
    assert!(retry > 0, "{data}");
}
