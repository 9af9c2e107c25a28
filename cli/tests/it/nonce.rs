//! The nonce rule with real processes: an offer behind a nonce gap is accepted but not
//! executed, and runs once the gap fills; a pending offer is replaced by one with a higher fee,
//! or cancelled through the CLI, and its subscriber gets `dropped` with the reason; an offer
//! whose gap never fills is dropped after the gap timeout.

use cairn_ledger::{Hash, SignedOffer};
use cairn_rpc::client::{self, OfferTerms, Watch};
use cairn_rpc::{CairnApiClient, JobStage};
use cairn_testnet::Spec;
use jsonrpsee::ws_client::WsClient;

use crate::support::{Net, TIMEOUT, start_custom, uppercase_module};

/// One validator and one provider that drop offers after 3 s behind a gap.
async fn start() -> Net {
    start_custom(1, 1, 0, |spec: &mut Spec| {
        cairn_testnet::generate(spec).expect("testnet generated");
        for i in 0..2 {
            let path = spec.dir.join("nodes").join(i.to_string()).join(cairn_testnet::NODE_CONFIG_FILE);
            std::fs::write(&path, "mempool_gap_timeout_ms = 3000\n").expect("write node.toml");
        }
    })
    .await
}

async fn offer(net: &Net, c: &WsClient, module_id: Hash, input: &str, nonce: u64, fee: Option<u64>) -> SignedOffer {
    let terms = OfferTerms { fee, ..OfferTerms::default() };
    client::sign_offer(c, &net.client_key, module_id, input.as_bytes().to_vec(), terms, Some(nonce))
        .await
        .expect("sign offer")
}

/// The next event of `watch`, which must be `stage`.
async fn expect_stage(net: &Net, watch: &mut Watch, stage: JobStage) -> cairn_rpc::JobEvent {
    let ev = watch.next(TIMEOUT).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(ev.stage, stage, "{ev:?}");
    ev
}

#[tokio::test(flavor = "multi_thread")]
async fn offers_behind_a_nonce_gap_wait_unexecuted_can_be_replaced_or_cancelled_and_always_end() {
    let net = start().await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let next = c.account_get(net.client_key.public()).await.expect("account_get").nonce;

    // Nonce next + 1 arrives first: accepted, but behind a gap.
    let gapped = offer(&net, &c, module_id, "behind a gap", next + 1, None).await;
    let mut gapped_watch = client::submit(&c, gapped.clone()).await.expect("a nonce within the window is admitted");
    expect_stage(&net, &mut gapped_watch, JobStage::Accepted).await;
    let pending = c.job_get(gapped.job_id()).await.expect("job_get").pending.expect("pending");
    assert!(!pending.includable, "behind a gap");

    // Replaced before it ever runs: the old one is dropped with the reason, the new one waits.
    let low = offer(&net, &c, module_id, "replacement", next + 1, Some(pending.fee)).await;
    let refused = c.job_submit(low).await.expect_err("the same fee does not replace");
    assert!(refused.to_string().contains("fee of at least"), "{refused}");
    let replacement = offer(&net, &c, module_id, "replacement", next + 1, Some(pending.fee * 2)).await;
    let mut replacement_watch = client::submit(&c, replacement.clone()).await.expect("a higher fee replaces");
    let dropped = expect_stage(&net, &mut gapped_watch, JobStage::Dropped).await;
    assert!(dropped.reason.as_deref().is_some_and(|r| r.contains("replaced")), "{dropped:?}");
    // No `executed` event came between `accepted` and `dropped`, and no node has a result.
    let info = c.job_get(gapped.job_id()).await.expect("job_get");
    assert!(info.result.is_none(), "the offer behind the gap was never executed: {info:?}");
    expect_stage(&net, &mut replacement_watch, JobStage::Accepted).await;

    // Nonce next fills the gap: both run and reach finality, in order.
    let first = offer(&net, &c, module_id, "fills the gap", next, None).await;
    let mut first_watch = client::submit(&c, first).await.expect("submit");
    for watch in [&mut first_watch, &mut replacement_watch] {
        let last = watch.until(JobStage::Finalized, TIMEOUT, |_| {}).await;
        last.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    }

    // Cancelled through the CLI: a transfer of nothing with the same nonce and a higher fee.
    let behind = offer(&net, &c, module_id, "to be cancelled", next + 3, None).await;
    let mut behind_watch = client::submit(&c, behind.clone()).await.expect("submit");
    expect_stage(&net, &mut behind_watch, JobStage::Accepted).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["job", "cancel", &behind.job_id().to_string(), "--rpc", &net.t.rpc_url(0)])
        .arg("--key")
        .arg(net.t.dir.join("client-key.json"))
        .output()
        .expect("cairn runs");
    assert!(out.status.success(), "cairn job cancel: {}", String::from_utf8_lossy(&out.stderr));
    let dropped = expect_stage(&net, &mut behind_watch, JobStage::Dropped).await;
    assert!(dropped.reason.as_deref().is_some_and(|r| r.contains("replaced")), "{dropped:?}");

    // Its replacement (nonce next + 3) still waits for next + 2, which never comes: after the
    // gap timeout it is dropped too; the chain is idle meanwhile, so no deadline would do it.
    // An offer behind the same gap gets a `dropped` event saying so.
    let stranded = offer(&net, &c, module_id, "stranded", next + 4, None).await;
    let mut stranded_watch = client::submit(&c, stranded.clone()).await.expect("submit");
    expect_stage(&net, &mut stranded_watch, JobStage::Accepted).await;
    let dropped = expect_stage(&net, &mut stranded_watch, JobStage::Dropped).await;
    let reason = dropped.reason.expect("a reason");
    assert!(reason.contains(&format!("nonce gap: nonce {} of the account never arrived", next + 2)), "{reason}");
    // job_get still describes it, with the reason.
    let info = c.job_get(stranded.job_id()).await.expect("job_get");
    assert_eq!((info.stage, info.reason.as_deref()), (JobStage::Dropped, Some(reason.as_str())));
    assert!(info.result.is_none(), "never executed");

    // A nonce past the window is refused outright.
    let far = offer(&net, &c, module_id, "too far", next + cairn_contracts::NONCE_WINDOW + 2, None).await;
    let refused = c.job_submit(far).await.expect_err("past the window");
    assert_eq!(crate::support::code_of(&refused), Some(cairn_rpc::error::BAD_NONCE), "{refused}");
}
