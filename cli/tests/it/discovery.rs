//! Discovery through the DHT: nodes given one bootstrap address find each other, and the
//! network outlives the node they were all given.

use std::time::{Duration, Instant};

use cairn_rpc::CairnApiClient;

use crate::support::{TIMEOUT, start_custom};

#[tokio::test(flavor = "multi_thread")]
async fn nodes_given_one_address_find_each_other_and_outlive_their_bootstrap_node() {
    // 4 validators and 2 providers; every node but the first is given only the first's address.
    let mut net = start_custom(4, 2, 0, |spec| spec.discover = true).await;
    let nodes = 6;
    // Each node other than the first knows one address; three peers or more means it found
    // at least two through the DHT.
    let deadline = Instant::now() + TIMEOUT;
    for i in 1..nodes {
        let c = net.rpc(i).await;
        loop {
            let peers = c.node_info().await.expect("node_info").peers;
            if peers >= 3 {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} found {peers} peers only\n{}", net.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The node everyone bootstrapped from goes away: the others still finalize jobs (3 of 4
    // validators are left) and every one of them sees every block.
    net.t.kill(0).expect("kill node 0");
    net.run_jobs(1, 2, "without the bootstrap node").await;
    let head = net.height(1).await;
    for i in 2..nodes {
        net.wait_height(i, head).await;
    }
}
