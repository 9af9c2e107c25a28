//! Bad input gets a clear error with a stable code and loses nothing.

use cairn_ledger::{Hash, Signature};
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::error;

use crate::support::{TIMEOUT, code_of, start, uppercase_module};

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_is_refused_clearly_and_the_node_keeps_working() {
    let net = start(1).await;
    let c = net.rpc(0).await;

    // Garbage bytes as a module.
    let e = c.module_put(hex::encode(b"\0asm garbage that is not wasm")).await.expect_err("garbage refused");
    assert_eq!(code_of(&e), Some(error::INVALID_MODULE), "{e}");
    // Not hex at all: the parameter is malformed (JSON-RPC's invalid params), not the module.
    let e = c.module_put("not hex".into()).await.expect_err("non-hex refused");
    assert_eq!(code_of(&e), Some(error::INVALID_PARAMS), "{e}");

    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");

    // An offer with a bad signature.
    let mut offer = client::sign_offer(&c, &net.client_key, module_id, b"x".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    offer.signature = Signature([7; 64]);
    let e = c.job_submit(offer).await.expect_err("bad signature refused");
    assert_eq!(code_of(&e), Some(error::BAD_SIGNATURE), "{e}");

    // An offer whose escrow exceeds the balance.
    let terms = OfferTerms { fuel_limit: 1_000_000_000, max_price: 10_000_000, ..OfferTerms::default() };
    let offer = client::sign_offer(&c, &net.client_key, module_id, b"x".to_vec(), terms, None).await.expect("offer");
    let e = c.job_submit(offer).await.expect_err("escrow above balance refused");
    assert_eq!(code_of(&e), Some(error::INSUFFICIENT_BALANCE), "{e}");

    // An offer for a module the node does not have.
    let offer = client::sign_offer(&c, &net.client_key, Hash::of(b"nope"), vec![], OfferTerms::default(), None)
        .await
        .expect("offer");
    let e = c.job_submit(offer).await.expect_err("unknown module refused");
    assert_eq!(code_of(&e), Some(error::MODULE_UNKNOWN), "{e}");

    // An unknown job id.
    let e = c.job_get(Hash::of(b"no such job")).await.expect_err("unknown job");
    assert_eq!(code_of(&e), Some(error::NOT_FOUND), "{e}");
    let e = c.job_proof(Hash::of(b"no such job"), None).await.expect_err("unknown job");
    assert_eq!(code_of(&e), Some(error::NOT_FOUND), "{e}");

    // An oversized request is refused without harming the node.
    let huge = "00".repeat(12 << 20);
    assert!(c.module_put(huge).await.is_err(), "a request above the size limit is refused");

    // Nothing was lost: the nonce was not consumed and a good job still runs.
    let c = net.rpc(0).await;
    let account = c.account_get(net.client_key.public()).await.expect("account");
    assert_eq!((account.balance, account.next_nonce), (cairn_testnet::CLIENT_BALANCE, 0));
    let offer = client::sign_offer(&c, &net.client_key, module_id, b"still fine".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.output, b"STILL FINE");
}
