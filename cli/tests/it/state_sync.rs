//! State sync with real node processes: a node that joins far behind restores the state at a
//! peer's head — chunk by chunk, each checked against that head's state root, the head
//! against the validators' commit — instead of replaying every block since genesis, then
//! syncs the blocks after it and takes part like any other node. A peer that serves a
//! tampered chunk is caught, disconnected and distrusted, and the state comes from the others.

use std::time::{Duration, Instant};

use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};

use crate::support::{Net, TIMEOUT, code_of, start, uppercase_module};

/// How far ahead a peer must be for the late node to restore the state.
const MIN_BLOCKS: u64 = 100;

fn log_of(net: &Net, i: usize) -> String {
    std::fs::read_to_string(net.t.dir.join("nodes").join(i.to_string()).join("node.log")).unwrap_or_default()
}

/// Writes node `i`'s `node.toml` and restarts it with it.
async fn restart_with(net: &mut Net, i: usize, toml: &str) {
    let home = net.t.dir.join("nodes").join(i.to_string());
    std::fs::write(home.join(cairn_testnet::NODE_CONFIG_FILE), toml).expect("node.toml");
    net.t.kill(i).expect("stop");
    net.t.restart(i).await.expect("restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_node_restores_the_state_from_peers_and_catches_a_tampered_chunk() {
    // Node 0 validates (a block every 50 ms, work or not), nodes 1 and 2 provide (2 tampers
    // with the state it serves), node 3 joins late with an empty data folder.
    let late = 3;
    let mut net = start(3).await;
    net.t.kill(late).expect("stop the late node");
    std::fs::remove_dir_all(net.t.dir.join("nodes").join(late.to_string()).join("db")).expect("empty its store");
    restart_with(&mut net, 0, "empty_blocks = true\n").await;
    restart_with(&mut net, 2, "test_sync_lie = \"tampered_state\"\n").await;
    let tamperer = net.rpc(2).await.node_info().await.expect("node_info").peer_id;
    net.run_jobs(0, 6, "before").await;
    // One more, whose id is kept: it settles and leaves the state long before the snapshot.
    let c0 = net.rpc(0).await;
    let module_id = c0.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let old = client::sign_offer(&c0, &net.client_key, module_id, b"old".to_vec(), OfferTerms::default(), None)
        .await
        .expect("sign");
    let old_job = old.job_id();
    client::run_to_finality(&c0, old, TIMEOUT, |_| {}).await.expect("the old job");
    let deadline = Instant::now() + TIMEOUT;
    while net.height(0).await < MIN_BLOCKS + 20 {
        assert!(Instant::now() < deadline, "the chain does not grow:\n{}", net.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Small chunks, so that every peer serves some: the tamperer is asked too.
    let toml = format!("state_sync_min_blocks = {MIN_BLOCKS}\nstate_sync_chunk_entries = 2\n");
    restart_with(&mut net, late, &toml).await;
    let deadline = Instant::now() + TIMEOUT;
    let restored_at = loop {
        let log = log_of(&net, late);
        if let Some(line) = log.lines().find(|l| l.contains("state sync: restored the state of height")) {
            let height: u64 = line
                .split("state sync: restored the state of height ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|h| h.trim_end_matches(';').parse().ok())
                .unwrap_or_else(|| panic!("no height in {line}"));
            break height;
        }
        assert!(Instant::now() < deadline, "no state restored:\n{}", net.t.log_tail(late, 80));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = log_of(&net, late);
    assert!(
        log.lines().any(|l| l.contains("sync peer lied") && l.contains(&tamperer) && l.contains("does not prove")),
        "the tampered chunk was not caught:\n{}",
        net.t.log_tail(late, 80)
    );
    assert!(restored_at >= MIN_BLOCKS, "restored at {restored_at}");

    // It syncs the blocks after the snapshot, executing each itself: the roots it computes
    // are the chain's, or it could not go on.
    let tip = net.height(0).await;
    net.wait_height(late, tip).await;
    let c = net.rpc(late).await;
    let head = c.chain_head().await.expect("chain_head");
    let theirs = net.rpc(0).await.chain_get_block(head.height).await.expect("the validator's block");
    assert_eq!(head.hash, theirs.header.hash(), "the same chain");
    assert_eq!(head.state_root, theirs.header.state_root);
    let info = c.node_info().await.expect("node_info");
    assert!(
        info.blocks_executed <= head.height - restored_at + 1,
        "it replayed blocks before the snapshot: {} executed, head {}, restored at {restored_at}",
        info.blocks_executed,
        head.height
    );
    // Blocks before the snapshot are not on it.
    let before = c.chain_get_block(1).await.expect_err("block 1 is not on a node that restored the state");
    assert_eq!(code_of(&before), Some(cairn_rpc::error::NOT_FOUND));
    // It serves what it restored: a state proof at its head verifies against the genesis.
    let key = format!("01{}", hex::encode(net.client_key.public().0));
    let proof = c.state_get_proof(key, None).await.expect("state proof");
    proof.verify(&net.genesis).expect("the proof verifies against the genesis");

    // A job that ended before the snapshot is not known here, and the answer says why; a node
    // with the whole history still tells it.
    let unknown = c.job_get(old_job).await.expect_err("no record of a job retired before the snapshot");
    assert_eq!(code_of(&unknown), Some(cairn_rpc::error::NOT_FOUND));
    assert!(unknown.to_string().contains(&format!("restored the chain's state at height {restored_at}")), "{unknown}");
    assert_eq!(c0.job_get(old_job).await.expect("node 0 keeps its record").stage, cairn_rpc::JobStage::Finalized);

    // And takes part: jobs submitted through it are finalized.
    net.run_jobs(late, 2, "after").await;
}
