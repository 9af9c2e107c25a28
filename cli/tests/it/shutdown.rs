//! A node asked to stop (SIGTERM) takes no new work, finishes the jobs it is running, sends
//! their results and exits 0 within its grace; started again, it opens at its height and
//! replays no block.

use std::time::Duration;

use cairn_contracts::State;
use cairn_ledger::{Hash, PublicKey, SignedOffer};
use cairn_node::service::STOP_GRACE;
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage};
use jsonrpsee::ws_client::WsClient;

use crate::support::{Net, TIMEOUT, start, uppercase_module};

/// An offer with `terms` and an input tagged `tag` that the genesis ranking assigns to
/// `provider` (or to anyone when `None`).
async fn offer(
    net: &Net,
    c: &WsClient,
    module_id: Hash,
    provider: Option<PublicKey>,
    tag: &str,
    terms: OfferTerms,
) -> SignedOffer {
    let state = State::from_genesis(&net.genesis).expect("genesis state");
    for i in 0..256 {
        let input = format!("{tag} {i}").into_bytes();
        let offer = client::sign_offer(c, &net.client_key, module_id, input, terms.clone(), None).await.expect("sign");
        let assigned = state.assignment(&offer.job_id(), offer.offer.max_price, &offer.offer.placement, 1);
        if provider.is_none_or(|p| assigned == vec![p]) {
            return offer;
        }
    }
    panic!("no offer assigned to {provider:?} in 256 tries");
}

/// Jobs node `i` is running now, from its metrics.
fn running(net: &Net, i: usize) -> u64 {
    let addr = net.t.nodes[i].metrics.expect("metrics");
    let (_, text) = crate::metrics::http_get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("cairn_sandbox_jobs_running "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_running_jobs_loses_none_and_a_restart_replays_no_block() {
    let mut net = start(2).await;
    let c = net.rpc(0).await;
    let p1 = net.provider_key(1);
    // Slow jobs: a loop that runs until its fuel is gone (about a second each here).
    let slow = c.module_put(hex::encode(cairn_vm::fixtures::infinite_loop_wasm())).await.expect("module_put");
    let quick = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let slow_terms = OfferTerms { fuel_limit: 1_000_000_000, ..OfferTerms::default() };
    let mut watches = Vec::new();
    for tag in ["slow a", "slow b"] {
        let o = offer(&net, &c, slow, Some(p1), tag, slow_terms.clone()).await;
        watches.push((o.job_id(), client::submit(&c, o).await.expect("submit")));
    }
    let deadline = std::time::Instant::now() + TIMEOUT;
    while running(&net, 1) == 0 {
        assert!(std::time::Instant::now() < deadline, "provider 1 never ran its jobs\n{}", net.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Under load: quick jobs for anyone, submitted as it stops.
    for i in 0..6 {
        let o = offer(&net, &c, quick, None, &format!("quick {i}"), OfferTerms::default()).await;
        watches.push((o.job_id(), client::submit(&c, o).await.expect("submit")));
    }
    let stopped_at = net.rpc(1).await.chain_head().await.expect("head").height;
    let (status, took) = net.t.terminate(1, STOP_GRACE + Duration::from_secs(10)).expect("stops");
    assert!(status.success(), "exit status {status}\n{}", net.logs());
    assert!(took < STOP_GRACE + Duration::from_secs(2), "took {took:?} to stop");
    let log = std::fs::read_to_string(net.t.dir.join("nodes/1/node.log")).expect("log");
    assert!(log.contains("stopping: no new jobs"), "{log}");

    // Nothing lost: every job final, with a receipt that verifies; the slow ones by the node
    // that stopped (it finished them before exiting).
    for (job_id, mut watch) in watches {
        let done = watch.until(JobStage::Finalized, TIMEOUT, |_| {}).await;
        let done = done.unwrap_or_else(|e| panic!("job {job_id}: {e:#}\n{}", net.logs()));
        let proof = c.job_proof(job_id, None).await.expect("a receipt proof");
        proof.verify(&net.genesis).expect("the receipt verifies");
        if done.result.as_ref().is_some_and(|r| r.status == cairn_ledger::JobStatus::OutOfFuel) {
            assert_eq!(done.result.expect("result").provider, p1, "a slow job finished by the stopping node");
        }
    }

    // Started again: at its height, and only the blocks since are executed (no replay).
    net.t.restart(1).await.expect("restart");
    let head = c.chain_head().await.expect("head").height;
    net.wait_height(1, head).await;
    let info = net.rpc(1).await.node_info().await.expect("node_info");
    assert!(info.height >= stopped_at);
    assert!(
        info.blocks_executed <= info.height - stopped_at,
        "{} blocks executed after the restart for {} new blocks",
        info.blocks_executed,
        info.height - stopped_at
    );
}
