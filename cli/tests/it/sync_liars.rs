//! Sync against liars: a node that catches up from peers that lie — blocks with forged or
//! unsigned commits, blocks that do not follow its head, blocks it already has, or no answer
//! at all — finds each lie, disconnects and distrusts the liar, and catches up from an honest
//! peer once one is there.

use std::time::{Duration, Instant};

use cairn_rpc::CairnApiClient;

use crate::support::{Net, TIMEOUT, start};

fn log_of(net: &Net, i: usize) -> String {
    std::fs::read_to_string(net.t.dir.join("nodes").join(i.to_string()).join("node.log")).unwrap_or_default()
}

/// Whether node `i`'s log has a line holding every one of `parts`.
fn logged(net: &Net, i: usize, parts: &[&str]) -> bool {
    log_of(net, i).lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_catches_up_past_peers_that_lie_to_sync() {
    // Node 0 validates, node 1 is an honest provider, nodes 2–6 lie to sync, node 7 falls
    // behind and catches up.
    let lies = ["forged", "unsigned", "unlinked", "stale", "silent"];
    let late = 2 + lies.len();
    let mut net = start(late).await;
    for (k, lie) in lies.iter().enumerate() {
        let i = 2 + k;
        let home = net.t.dir.join("nodes").join(i.to_string());
        std::fs::write(home.join(cairn_testnet::NODE_CONFIG_FILE), format!("test_sync_lie = \"{lie}\"\n"))
            .expect("node.toml");
        net.t.kill(i).expect("stop the liar");
        net.t.restart(i).await.expect("restart it lying");
    }
    let mut liar_ids = Vec::new();
    for k in 0..lies.len() {
        liar_ids.push(net.rpc(2 + k).await.node_info().await.expect("node_info").peer_id);
    }

    // The late node has some blocks (so "stale" has something to send), then falls behind.
    net.run_jobs(0, 3, "before").await;
    let head = net.height(0).await;
    net.wait_height(late, head).await;
    net.t.kill(late).expect("stop the late node");
    net.run_jobs(0, 6, "while away").await;
    let tip = net.height(0).await;
    for k in 0..lies.len() {
        net.wait_height(2 + k, tip).await;
    }

    // Only liars are up when it comes back.
    net.t.kill(0).expect("stop the validator");
    net.t.kill(1).expect("stop the honest provider");
    net.t.restart(late).await.expect("restart the late node");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let caught: Vec<bool> = liar_ids
            .iter()
            .zip(lies)
            .map(|(id, lie)| {
                let found = if lie == "silent" { "sync peer did not answer" } else { "sync peer lied" };
                logged(&net, late, &[found, id])
            })
            .collect();
        if caught.iter().all(|c| *c) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lies found: {:?}\n{}",
            lies.iter().zip(&caught).collect::<Vec<_>>(),
            net.t.log_tail(late, 60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stuck = net.height(late).await;
    assert!(stuck < tip, "nothing a liar sent was stored: at {stuck}, the tip is {tip}");

    // An honest peer comes back: the late node catches up from it.
    net.t.restart(1).await.expect("restart the honest provider");
    net.wait_height(late, tip).await;
    let c = net.rpc(late).await;
    let theirs = net.rpc(1).await.chain_head().await.expect("chain_head");
    let ours = c.chain_head().await.expect("chain_head");
    if ours.height == theirs.height {
        assert_eq!(ours.hash, theirs.hash, "the same chain");
    }
}
