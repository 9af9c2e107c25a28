//! One path through the node: every block is executed once per node (a decision commits the
//! execution that checked or built it), and the RPC is served while a block executes (the
//! executor is off the event loop, and the RPC reads a published view).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage};

use crate::support::{TIMEOUT, start, start_validators, uppercase_module};

/// Runs `jobs` jobs to finality through node 0, a few at a time.
async fn run_jobs(net: &crate::support::Net, jobs: usize) {
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let mut runs = Vec::new();
    for i in 0..jobs {
        let offer = client::sign_offer(
            &c,
            &net.client_key,
            module_id,
            format!("job {i}").into_bytes(),
            OfferTerms::default(),
            None,
        )
        .await
        .expect("offer");
        runs.push(client::submit(&c, offer).await.expect("submit"));
    }
    for mut watch in runs {
        watch.until(JobStage::Finalized, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    }
}

/// Heights decided after a first round that did not decide (a proposal missed, a timeout):
/// each may have had one more proposal built or checked.
fn later_rounds(log: &str) -> u64 {
    log.lines().filter(|l| l.contains("consensus round started")).count() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_validator_and_a_provider_execute_each_block_once() {
    let net = start(1).await;
    run_jobs(&net, 12).await;
    let head = net.height(0).await;
    net.wait_height(1, head).await;
    for i in 0..2 {
        let info = net.rpc(i).await.node_info().await.expect("node_info");
        // The validator built each block once and committed that execution; the provider
        // applied each block it received once.
        assert_eq!(info.blocks_executed, info.height, "node {i}: one execution per block\n{}", net.logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_validators_execute_each_block_once() {
    let net = start_validators(4, 1).await;
    run_jobs(&net, 12).await;
    let head = net.height(0).await;
    for i in 0..5 {
        net.wait_height(i, head).await;
    }
    for i in 0..5 {
        let info = net.rpc(i).await.node_info().await.expect("node_info");
        // Every block it stored, executed once (checked, built or applied); a round that did
        // not decide may have added one proposal's execution.
        let log =
            std::fs::read_to_string(net.t.dir.join("nodes").join(i.to_string()).join("node.log")).unwrap_or_default();
        let extra = later_rounds(&log);
        assert!(
            info.blocks_executed >= info.height && info.blocks_executed <= info.height + extra,
            "node {i}: {} executions for {} blocks ({extra} later rounds)\n{}",
            info.blocks_executed,
            info.height,
            net.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rpc_answers_while_a_block_executes() {
    // The validator's executor takes 3 s over each block it executes, and says so with a
    // marker file while it does.
    let mut net = start(1).await;
    let home = net.t.dir.join("nodes").join("0");
    std::fs::write(home.join(cairn_testnet::NODE_CONFIG_FILE), "test_slow_blocks_ms = 3000\n").expect("node.toml");
    net.t.kill(0).expect("stop the validator");
    net.t.restart(0).await.expect("restart it with its config");
    let marker: PathBuf = home.join("test-executing-block");
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let before = c.chain_head().await.expect("chain_head").height;
    let offer = client::sign_offer(&c, &net.client_key, module_id, b"slow".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    let job_id = offer.job_id();
    let mut watch = client::submit(&c, offer).await.expect("submit");

    // A block with the offer is being built: the executor is busy with it.
    let deadline = Instant::now() + TIMEOUT;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "no block started executing\n{}", net.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Reads and a submission are answered meanwhile, from the head as it was.
    let head = c.chain_head().await.expect("chain_head");
    let info = c.node_info().await.expect("node_info");
    let job = c.job_get(job_id).await.expect("job_get");
    let next = client::sign_offer(&c, &net.client_key, module_id, b"meanwhile".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    let next_id = client::submit(&c, next).await.expect("a submission is admitted meanwhile").job_id;
    let account = c.account_get(net.client_key.public()).await.expect("account_get");
    assert!(marker.exists(), "the block was still executing while all of that was answered\n{}", net.logs());
    assert_eq!((head.height, info.height), (before, before), "answered from the head before the block");
    assert_eq!(account.next_nonce, account.nonce + 2, "both offers pending");
    assert!(job.stage < JobStage::Included, "not in a block yet: {:?}", job.stage);
    assert_ne!(next_id, job_id);

    // And the block does finish.
    watch.until(JobStage::Finalized, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
}
