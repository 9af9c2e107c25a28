//! Edge placement on a live testnet: providers declare regions at genesis and by transaction;
//! an offer that prefers a region runs on a provider there, one that requires a region nobody
//! is in is refused with a reason, and the CLI's flags reach the offer.

use std::time::Instant;

use cairn_ledger::{Action, Keypair, Placement};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobEstimate, error};

use crate::support::{Net, TIMEOUT, code_of, start_custom, uppercase_module};

fn regions(names: &[&str]) -> Vec<String> {
    names.iter().map(|r| (*r).to_owned()).collect()
}

/// The `cairn` CLI with `args` against node 0; its stdout, after checking it succeeded.
fn cli(net: &Net, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .args(["--rpc", &net.t.rpc_url(0)])
        .output()
        .expect("cairn runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "cairn {args:?}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_in_the_region_their_offer_prefers_or_requires() {
    // One validator; provider nodes 1 and 2 in `eu` and `us`.
    let net = start_custom(1, 2, 0, |s| s.provider_regions = regions(&["eu", "us"])).await;
    let c = net.rpc(0).await;
    let (eu, us) = (net.provider_key(1), net.provider_key(2));
    let listed: Vec<(cairn_ledger::PublicKey, String)> =
        c.provider_list().await.expect("provider_list").into_iter().map(|p| (p.address, p.region)).collect();
    assert!(listed.contains(&(eu, "eu".into())) && listed.contains(&(us, "us".into())), "{listed:?}");
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let key = &net.client_key;

    // Preferring `us`: every job runs there (it has the capacity), and the receipt says so.
    let prefer_us = OfferTerms { placement: Placement::Prefer { regions: regions(&["us"]) }, ..OfferTerms::default() };
    for i in 0..4 {
        let input = format!("near {i}").into_bytes();
        let offer = client::sign_offer(&c, key, module_id, input, prefer_us.clone(), None).await.expect("sign");
        let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
        assert_eq!(run.result.provider, us, "job {i} ran in the preferred region");
        assert_eq!(run.proof.receipt.claim.provider, us);
    }

    // Requiring a region nobody is in: refused with its reason, nothing locked.
    let only_ap = OfferTerms { placement: Placement::Only { regions: regions(&["ap"]) }, ..OfferTerms::default() };
    let offer = client::sign_offer(&c, key, module_id, b"far".to_vec(), only_ap.clone(), None).await.expect("sign");
    let refused = c.job_submit(offer).await.expect_err("no provider in ap");
    assert_eq!(code_of(&refused), Some(error::INVALID_TX), "{refused}");
    let jsonrpsee::core::ClientError::Call(obj) = &refused else { panic!("a call error: {refused}") };
    let data: serde_json::Value = serde_json::from_str(obj.data().expect("data").get()).expect("json");
    assert_eq!(data["reason"], "no_eligible_provider_in_regions", "{refused}");

    // The CLI's flags reach the offer: the estimate of an offer for `eu` only names the `eu`
    // provider; a misspelt region is refused before anything is sent.
    let id = module_id.to_string();
    let client_key = net.t.dir.join("client-key.json");
    let key_arg = client_key.to_str().expect("utf-8 path");
    let json = cli(&net, &["job", "estimate", "--module-id", &id, "--only-region", "eu", "--json", "--key", key_arg]);
    let e: JobEstimate = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(e.providers.iter().map(|p| p.address).collect::<Vec<_>>(), vec![eu], "{json}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["job", "estimate", "--module-id", &id, "--prefer-region", "EU", "--rpc", &net.t.rpc_url(0)])
        .output()
        .expect("cairn runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("region"), "{}", String::from_utf8_lossy(&bad.stderr));

    // The `us` provider moves to `ap` (`cairn provider update --region`, paid from a balance the
    // client funds); then a job for `ap` only runs on it.
    let fund = Action::Transfer { to: us, amount: 1_000 };
    let tx = client::sign_tx(&c, key, None, fund, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("funded");
    let us_key = net.t.dir.join("nodes").join("2").join("node-key.json");
    assert_eq!(Keypair::load(&us_key).expect("key").public(), us);
    cli(&net, &["provider", "update", "--region", "ap", "--key", us_key.to_str().expect("utf-8 path")]);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let list = c.provider_list().await.expect("provider_list");
        if list.iter().any(|p| p.address == us && p.region == "ap") {
            break;
        }
        assert!(Instant::now() < deadline, "the region never changed: {list:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let offer = client::sign_offer(&c, key, module_id, b"far now".to_vec(), only_ap, None).await.expect("sign");
    let run =
        client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!((run.result.provider, run.result.output.as_slice()), (us, &b"FAR NOW"[..]));
}
