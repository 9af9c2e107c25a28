//! A node killed with SIGKILL reopens its database where it was and rejoins.

use cairn_node::chain::Chain;
use cairn_rpc::client;
use cairn_rpc::{CairnApiClient, JobStage};

use crate::support::{TIMEOUT, start, uppercase_module};

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_provider_reopens_at_its_height_and_catches_up() {
    let mut net = start(2).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let (p1, p2) = (net.provider_key(1), net.provider_key(2));

    // A job for provider 1, so it has blocks and state of its own.
    let offer = net.offer_for(&c, module_id, p1, "before").await;
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    let height = c.chain_head().await.expect("head").height;
    net.wait_height(1, height).await;
    let before = net.rpc(1).await.chain_head().await.expect("provider head");

    net.t.kill(1).expect("kill -9");
    let db = net.t.dir.join("nodes/1/db");
    {
        let chain = Chain::open(net.genesis.clone(), &db).expect("reopens after SIGKILL");
        assert_eq!(chain.height(), before.height);
        let head = chain.head.header.as_ref().expect("a head");
        assert_eq!(head.hash(), before.hash);
        assert_eq!(head.state_root, before.state_root);
        let recomputed = cairn_ledger::state_tree::MemoryTree::root_of(&chain.state().entries()).expect("root");
        assert_eq!(recomputed, before.state_root, "recomputed state matches the header");
    }

    // The chain moves on without it; a job offered to it meanwhile waits on chain.
    let waiting = net.offer_for(&c, module_id, p1, "offered while down").await;
    let waiting_id = waiting.job_id();
    let mut waiting = client::submit(&c, waiting).await.expect("submit while down");
    let offer = net.offer_for(&c, module_id, p2, "while down").await;
    client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.expect("provider 2 still serves");
    let height = c.chain_head().await.expect("head").height;
    assert!(height > before.height);

    // Restarted, it syncs the blocks it missed and takes jobs again.
    net.t.restart(1).await.expect("restart");
    net.wait_height(1, height).await;
    let synced = net.rpc(1).await.chain_get_block(height).await.expect("synced block");
    assert_eq!(synced, c.chain_get_block(height).await.expect("block"));
    let done = waiting.until(JobStage::Finalized, TIMEOUT, |_| {}).await;
    let done = done.unwrap_or_else(|e| panic!("the job offered while it was down: {e:#}\n{}", net.logs()));
    let executed_by = done.result.expect("result").provider;
    if executed_by != p1 {
        // Away longer than `delivery_blocks` (20 blocks of 50 ms here, when the machine is
        // slow to restart it): the next ranked provider took the slot over, as it should.
        let info = c.job_get(waiting_id).await.expect("job");
        assert_eq!(
            (executed_by, info.assigned),
            (p2, vec![p1, p2]),
            "only a stand-in may run p1's job\n{}",
            net.logs()
        );
    }
    let offer = net.offer_for(&c, module_id, p1, "after").await;
    let job_id = offer.job_id();
    let input = offer.offer.input.clone();
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.provider, p1);
    assert_eq!(run.result.output, input.to_ascii_uppercase());
    assert_eq!(c.job_get(job_id).await.expect("job").stage, JobStage::Finalized);
    assert_eq!(run.proof.receipt.claim.job_id, job_id);
}
