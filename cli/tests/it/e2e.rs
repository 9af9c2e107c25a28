//! A job's whole life on a 3-process testnet.

use cairn_ledger::{Hash, ReceiptProof};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage};

use crate::support::{TIMEOUT, start, uppercase_module};

#[tokio::test(flavor = "multi_thread")]
async fn a_job_runs_on_a_provider_and_its_proof_verifies_offline() {
    let net = start(2).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    assert_eq!(module_id, Hash::of(&uppercase_module()));

    let offer =
        client::sign_offer(&c, &net.client_key, module_id, b"hello cairn".to_vec(), OfferTerms::default(), None)
            .await
            .expect("offer");
    let mut watch = client::submit(&c, offer.clone()).await.expect("submit");
    let mut stages = vec![];
    let last = watch.until(JobStage::Finalized, TIMEOUT, |ev| stages.push(ev.stage)).await;
    let last = last.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(stages, vec![JobStage::Accepted, JobStage::Executed, JobStage::Included, JobStage::Finalized]);
    let result = last.result.expect("finalized carries the result");
    assert_eq!(result.output, b"HELLO CAIRN");
    let assigned = net.genesis.providers.iter().any(|p| p.address == result.provider);
    assert!(assigned, "executed by a genesis provider");

    // The receipt proof, fetched over RPC, verifies against the genesis alone.
    let proof = c.job_proof(offer.job_id(), None).await.expect("job_proof");
    let verified = proof.verify(&net.genesis).expect("proof verifies");
    assert_eq!(verified.job_id, offer.job_id());
    assert_eq!(proof.receipt.claim.output_hash, Hash::of(b"HELLO CAIRN"));

    // The JSON a user saves verifies too, and tampering with any part breaks it.
    let json = serde_json::to_string(&proof).expect("json");
    let back: ReceiptProof = serde_json::from_str(&json).expect("parses");
    back.verify(&net.genesis).expect("round-tripped proof verifies");
    type Tamper = Box<dyn Fn(&mut ReceiptProof)>;
    let tampered: Vec<(&str, Tamper)> = vec![
        ("receipt output", Box::new(|p| p.receipt.claim.output_hash = Hash::of(b"HELLO WORLD"))),
        ("receipt fuel", Box::new(|p| p.receipt.claim.fuel_used += 1)),
        ("merkle path", Box::new(|p| p.path.siblings.push(Hash::ZERO))),
        ("merkle index", Box::new(|p| p.path.leaf_count += 1)),
        ("header root", Box::new(|p| p.header.state_root = Hash::ZERO)),
        ("header height", Box::new(|p| p.header.height += 1)),
        ("commit signature", Box::new(|p| p.commit.signatures[0].signature.0[5] ^= 1)),
        ("commit round", Box::new(|p| p.commit.round += 1)),
    ];
    for (what, tamper) in tampered {
        let mut p = proof.clone();
        tamper(&mut p);
        assert!(p.verify(&net.genesis).is_err(), "tampering with the {what} must break the proof");
    }

    // job_get agrees, and once the challenge window has passed the client paid exactly
    // fuel × price, and the offer's fee: by default the chain's minimum.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let info = loop {
        let info = c.job_get(offer.job_id()).await.expect("job_get");
        if info.paid.is_some() || std::time::Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(info.stage, JobStage::Finalized);
    assert_eq!(info.paid, Some(result.fuel_used * cairn_testnet::PROVIDER_PRICE));
    assert_eq!(offer.offer.fee, net.genesis.params.tx_fee_min);
    let spent = result.fuel_used * cairn_testnet::PROVIDER_PRICE + offer.offer.fee;
    let account = c.account_get(net.client_key.public()).await.expect("account");
    assert_eq!(account.balance, cairn_testnet::CLIENT_BALANCE - spent);
    assert_eq!(account.next_nonce, 1);

    // The client's account is proven from the state root of a finalized header.
    let key = format!("01{}", net.client_key.public().to_hex());
    let state_proof = c.state_get_proof(key, None).await.expect("state_getProof");
    let (value, _) = state_proof.verify(&net.genesis).expect("state proof verifies");
    let account: cairn_contracts::Account = borsh::from_slice(&value.expect("the account exists")).expect("decodes");
    assert_eq!(account.balance, cairn_testnet::CLIENT_BALANCE - spent);
    let mut forged = state_proof.clone();
    forged.value = Some(cairn_ledger::StateValue(
        borsh::to_vec(&cairn_contracts::Account { balance: u64::MAX, nonce: 1 }).expect("encodes"),
    ));
    assert!(forged.verify(&net.genesis).is_err(), "a changed value must not verify");
    let absent =
        c.state_get_proof(format!("01{}", Hash::of(b"nobody").to_hex()), None).await.expect("proof of absence");
    assert_eq!(absent.verify(&net.genesis).expect("absence verifies").0, None);

    // Every node follows the same chain.
    let head = c.chain_head().await.expect("head");
    for i in 1..3 {
        net.wait_height(i, head.height).await;
        let block = net.rpc(i).await.chain_get_block(head.height).await.expect("block");
        assert_eq!(block.hash(), head.hash);
    }

    // The settled job is in the state, proven; JOB_RETENTION_BLOCKS after it settled it leaves
    // the state, and job_get still answers from the nodes' job index.
    let job_key = format!("03{}", offer.job_id().to_hex());
    let proof = c.state_get_proof(job_key.clone(), None).await.expect("state_getProof");
    let (value, _) = proof.verify(&net.genesis).expect("the job's state proof verifies");
    let job: cairn_contracts::Job = borsh::from_slice(&value.expect("a settled job is kept a while")).expect("job");
    assert_eq!(job.phase, cairn_contracts::JobPhase::Settled);
    let retired_at = job.settle_height + cairn_contracts::JOB_RETENTION_BLOCKS;
    // The chain grows only with work: more jobs carry it past the retention.
    let mut tag = 0;
    while c.chain_head().await.expect("head").height < retired_at {
        net.run_jobs(0, 1, &format!("later {tag}")).await;
        tag += 1;
    }
    let proof = c.state_get_proof(job_key, None).await.expect("state_getProof");
    assert_eq!(proof.verify(&net.genesis).expect("the absence verifies").0, None, "retired from the state");
    for i in 0..3 {
        net.wait_height(i, retired_at).await;
        let again = net.rpc(i).await.job_get(offer.job_id()).await.expect("job_get of a retired job");
        assert_eq!((again.stage, again.paid, again.receipt_height), (info.stage, info.paid, info.receipt_height));
        assert_eq!(
            (again.client, again.module_id, again.assigned),
            (info.client, info.module_id, info.assigned.clone())
        );
    }
    let providers = c.provider_list().await.expect("provider_list");
    let done = providers.iter().find(|p| p.address == result.provider).map(|p| (p.jobs_done, p.slashes, p.missed));
    assert!(done.is_some_and(|(jobs, slashes, missed)| jobs >= 1 && slashes == 0 && missed == 0), "{done:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_module_is_announced_and_prepared_by_providers_before_any_job() {
    // The module is uploaded to the validator; both providers hear the announcement, fetch the
    // module and compile it, with no offer for it anywhere.
    let net = start(2).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let deadline = std::time::Instant::now() + TIMEOUT;
    for provider in [1, 2] {
        loop {
            let log = net.t.log_tail(provider, 200);
            if log.contains("module prepared") && log.contains(&module_id.to_string()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "provider {provider} did not prepare the module\n{}",
                net.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // Its first job then finds the module stored and compiled on the provider.
    let offer = client::sign_offer(&c, &net.client_key, module_id, b"warm".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(run.result.output, b"WARM");
    let provider = usize::from(run.result.provider != net.provider_key(1)) + 1;
    let log = net.t.log_tail(provider, 200);
    assert_eq!(log.matches("module prepared").count(), 1, "compiled once, ahead of the job\n{log}");
}
