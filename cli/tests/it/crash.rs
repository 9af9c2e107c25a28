//! A validator killed with SIGKILL at arbitrary moments while it commits blocks always reopens
//! at a consistent height whose recomputed state root matches the header.

use std::time::Duration;

use cairn_node::chain::Chain;
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};

use crate::support::{TIMEOUT, start, uppercase_module};

/// Kill cycles per run (each: load, random delay, SIGKILL, reopen, restart).
const CYCLES: u64 = 6;

#[tokio::test(flavor = "multi_thread")]
async fn a_validator_killed_mid_commit_reopens_consistent() {
    let mut net = start(1).await;
    // Clients talk to the provider, which outlives the validator's restarts.
    let url = net.t.rpc_url(1);
    let c = client::connect(&url).await.expect("rpc");
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let key = net.client_key.clone();
    let load = tokio::spawn(async move {
        let c = client::connect(&url).await.expect("rpc");
        for i in 0u64.. {
            let offer =
                client::sign_offer(&c, &key, module_id, format!("load {i}").into_bytes(), OfferTerms::default(), None)
                    .await;
            match offer {
                Ok(o) => {
                    let _ = c.job_submit(o).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut last_height = 0;
    let db = net.t.dir.join("nodes/0/db");
    for cycle in 0..CYCLES {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(100 + seed % 400)).await;
        net.t.kill(0).expect("kill -9");
        let chain = Chain::open(net.genesis.clone(), &db)
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): the store must reopen consistent: {e:#}"));
        assert!(chain.height() >= last_height, "cycle {cycle}: height went back");
        last_height = chain.height();
        drop(chain);
        net.t.restart(0).await.expect("restart");
    }
    assert!(last_height > 0, "blocks were committed under load");
    load.abort();

    // The load's last offers may still be pending on the provider, which admitted them, while
    // the restarted validator has not heard them yet: wait until they are all on chain, so the
    // next offer's nonce is not one of theirs.
    let provider = net.rpc(1).await;
    let client_address = net.client_key.public();
    let drained = tokio::time::timeout(TIMEOUT, async {
        loop {
            let account = provider.account_get(client_address).await.expect("account_get");
            if account.nonce == account.next_nonce {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drained.unwrap_or_else(|_| panic!("the load's offers were never included\n{}", net.logs()));

    // Still live: a job goes through to finality.
    let c = net.rpc(0).await;
    c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let offer =
        client::sign_offer(&c, &net.client_key, module_id, b"after the crashes".to_vec(), OfferTerms::default(), None)
            .await
            .expect("offer");
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    run.proof.verify(&net.genesis).expect("proof verifies");
}
