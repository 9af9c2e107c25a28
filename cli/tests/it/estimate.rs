//! Cost before commitment and errors a developer can act on, on a live testnet: an estimate
//! of a job matches its real run and what its provider is paid; an offer nobody can take is
//! said to be so, by the estimate before it is signed and by `job_get` while it waits; an
//! offer behind a nonce gap names the nonce it waits for.

use std::time::Instant;

use cairn_ledger::{Action, Hash, Keypair};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobEstimate, JobStage, WaitingReason, error};
use jsonrpsee::ws_client::WsClient;

use crate::support::{Net, TIMEOUT, code_of, start, uppercase_module};

fn reasons(e: &JobEstimate) -> Vec<&str> {
    e.problems.iter().map(|p| p.reason.as_str()).collect()
}

/// `cairn job estimate` with `args`, against node 0, paying with the testnet's client key.
fn cli_estimate(net: &Net, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["job", "estimate"])
        .args(args)
        .args(["--rpc", &net.t.rpc_url(0)])
        .arg("--key")
        .arg(net.t.dir.join("client-key.json"))
        .output()
        .expect("cairn runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "cairn job estimate: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn an_estimate_matches_the_real_run_and_what_the_provider_was_paid() {
    let net = start(1).await;
    let c = net.rpc(0).await;
    let provider = net.provider_key(1);
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let key = &net.client_key;

    // A module the node does not store: refused, nothing runs.
    let unknown =
        client::build_offer(&c, key.public(), Hash::of(b"no such module"), vec![], OfferTerms::default(), None)
            .await
            .expect("offer");
    let refused = c.job_estimate(unknown, Hash::of(b"any")).await.expect_err("module unknown");
    assert_eq!(code_of(&refused), Some(error::MODULE_UNKNOWN), "{refused}");

    // Through the CLI, by module id: JSON, and the summary for people.
    let id = module_id.to_string();
    let json = cli_estimate(&net, &["--module-id", &id, "--input", "from the cli", "--json"]);
    let e: JobEstimate = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!((e.status, e.output_size_bytes, e.admissible), (cairn_ledger::JobStatus::Ok, 12, true), "{json}");
    let text = cli_estimate(&net, &["--module-id", &id, "--input", "from the cli"]);
    assert!(text.contains("admitted   yes") && text.contains(&provider.to_string()), "{text}");

    // The estimate of an offer, then the offer itself signed and run to finality.
    let offer =
        client::build_offer(&c, key.public(), module_id, b"hello estimate".to_vec(), OfferTerms::default(), None)
            .await
            .expect("offer");
    let e = client::estimate(&c, key, offer.clone()).await.expect("estimate");
    assert!(e.admissible, "{:?}", e.problems);
    assert_eq!(e.providers.len(), 1);
    assert_eq!((e.providers[0].address, e.providers[0].price_per_fuel), (provider, cairn_testnet::PROVIDER_PRICE));
    assert_eq!(e.escrow, offer.fuel_limit * offer.max_price);
    let signed = offer.sign(key);
    assert_eq!(signed.job_id(), e.job_id, "signing the same offer again gives the id estimated for");
    let run =
        client::run_to_finality(&c, signed, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.output, b"HELLO ESTIMATE");
    assert_eq!((run.result.status, run.result.fuel_used), (e.status, e.fuel_used), "the estimate is the real run");
    assert_eq!(run.result.provider, e.providers[0].address, "run by the provider estimated");

    // Once settled, the provider was paid exactly the estimated cost.
    let deadline = Instant::now() + TIMEOUT;
    let paid = loop {
        let info = c.job_get(e.job_id).await.expect("job_get");
        assert!(info.waiting.is_none(), "a job with a result does not wait: {info:?}");
        if let Some(paid) = info.paid {
            break paid;
        }
        assert!(Instant::now() < deadline, "job {} not settled\n{}", e.job_id, net.logs());
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(paid, e.cost);
}

/// Waits until `job_get` on `c` shows `job_id` waiting for `reason`; returns the message.
async fn wait_for(net: &Net, c: &WsClient, job_id: Hash, reason: WaitingReason) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let info = c.job_get(job_id).await.expect("job_get");
        assert_eq!(info.stage, JobStage::Accepted, "{info:?}");
        let waiting = info.waiting.clone().unwrap_or_else(|| panic!("a pending job says why it waits: {info:?}"));
        if waiting.reason == reason {
            return waiting.message;
        }
        assert!(Instant::now() < deadline, "job {job_id} waits for {waiting:?}, not {reason}\n{}", net.logs());
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_nobody_can_take_says_why_before_and_after_it_is_submitted() {
    let net = start(1).await;
    let c = net.rpc(0).await;
    let key = &net.client_key;
    let provider = Keypair::load(&net.t.dir.join("nodes").join("1").join("node-key.json")).expect("provider key");
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let offer = |max_price: u64, nonce: Option<u64>| {
        let c = &c;
        async move {
            let terms = OfferTerms { max_price, ..OfferTerms::default() };
            client::build_offer(c, key.public(), module_id, b"nobody".to_vec(), terms, nonce).await.expect("offer")
        }
    };

    // Below every ask: the estimate runs it, and says nobody would take it.
    let e = client::estimate(&c, key, offer(0, None).await).await.expect("estimate");
    assert_eq!((e.status, e.admissible, e.providers.len(), e.cost), (cairn_ledger::JobStatus::Ok, false, 0, 0));
    assert_eq!(reasons(&e), vec!["no_eligible_provider"]);
    let lowest = format!("the lowest ask is {}", cairn_testnet::PROVIDER_PRICE);
    assert!(e.problems[0].message.contains(&lowest), "{}", e.problems[0].message);
    // Submitted anyway, it is refused for the same reason.
    let refused = c.job_submit(offer(0, None).await.sign(key)).await.expect_err("no eligible provider");
    assert_eq!(code_of(&refused), Some(error::INVALID_TX), "{refused}");

    // The provider needs funds to pay its transactions' fees.
    let fund = Action::Transfer { to: provider.public(), amount: 1_000 };
    let tx = client::sign_tx(&c, key, None, fund, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("transfer finalized");

    // An offer behind a nonce gap, at the provider's ask: it names the missing nonce.
    let next = c.account_get(key.public()).await.expect("account_get").next_nonce;
    let gapped = offer(cairn_testnet::PROVIDER_PRICE, Some(next + 1)).await.sign(key);
    let job_id = c.job_submit(gapped).await.expect("a nonce within the window is admitted");
    let message = wait_for(&net, &c, job_id, WaitingReason::WaitingForNonce).await;
    assert!(message.contains(&format!("nonce {next} of account")), "{message}");
    let e =
        client::estimate(&c, key, offer(cairn_testnet::PROVIDER_PRICE, Some(next + 2)).await).await.expect("estimate");
    assert!(e.admissible, "behind the same gap, admission takes it: {:?}", e.problems);

    // The provider raises its ask above the offer's price: nobody can take the offer now, which
    // filling the gap would not change.
    let raise = Action::UpdatePrice { price_per_fuel: cairn_testnet::PROVIDER_PRICE + 1 };
    let tx = client::sign_tx(&c, &provider, None, raise, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("price update finalized");
    let message = wait_for(&net, &c, job_id, WaitingReason::NoEligibleProvider).await;
    assert!(message.contains(&format!("the lowest ask is {}", cairn_testnet::PROVIDER_PRICE + 1)), "{message}");
    let e =
        client::estimate(&c, key, offer(cairn_testnet::PROVIDER_PRICE, Some(next + 2)).await).await.expect("estimate");
    assert_eq!(reasons(&e), vec!["no_eligible_provider"]);
}
