//! The market on a live testnet: funds move, a provider registers by transaction, a job
//! assigned to an absent provider passes to the next ranked one, stake unbonds.

use cairn_ledger::{Action, Keypair};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage};

use crate::support::{TIMEOUT, start, uppercase_module};

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_provider_that_never_delivers_is_replaced() {
    let net = start(2).await;
    let c = net.rpc(0).await;
    let absent = Keypair::from_seed([42; 32]);

    // Funds move by transaction; the fee is burned.
    let before = c.account_get(net.client_key.public()).await.expect("account").balance;
    let tx =
        client::sign_tx(&c, &net.client_key, 1, Action::Transfer { to: absent.public(), amount: 60_000_000 }, None)
            .await
            .expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("transfer finalized");
    assert_eq!(c.account_get(absent.public()).await.expect("account").balance, 60_000_000);
    assert_eq!(c.account_get(net.client_key.public()).await.expect("account").balance, before - 60_000_001);

    // It registers with a stake far above the others', so it ranks first for most jobs — but
    // no node runs with its key.
    let register = Action::RegisterProvider { stake: 50_000_000, price_per_fuel: 1, capacity: 8 };
    let tx = client::sign_tx(&c, &absent, 1, register, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("registration finalized");
    let providers = c.provider_list().await.expect("provider_list");
    assert_eq!(providers.len(), 3);
    assert!(providers.iter().any(|p| p.address == absent.public() && p.stake == 50_000_000 && p.eligible));

    // Jobs first assigned to it are delivered by a stand-in after `delivery_blocks`.
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let mut replaced = 0;
    for i in 0..4 {
        let input = format!("job {i}").into_bytes();
        let offer = client::sign_offer(&c, &net.client_key, module_id, input, OfferTerms::default(), None)
            .await
            .expect("offer");
        let job_id = offer.job_id();
        let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
        let run = run.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
        assert_ne!(run.result.provider, absent.public());
        let info = c.job_get(job_id).await.expect("job_get");
        assert_eq!(info.stage, JobStage::Finalized);
        if info.assigned.first() == Some(&absent.public()) {
            assert!(info.assigned.len() >= 2, "the job passed to a stand-in");
            replaced += 1;
        }
    }
    assert!(replaced >= 1, "with 96% of the stake the absent provider ranked first at least once");
    assert_eq!(
        c.provider_list().await.expect("list").iter().find(|p| p.address == absent.public()).map(|p| p.active_jobs),
        Some(0)
    );

    // Unbonding takes the stake out of assignment at once; it returns after the period.
    let tx = client::sign_tx(&c, &absent, 1, Action::Unbond { amount: 50_000_000 }, None).await.expect("sign");
    client::submit_tx(&c, tx, TIMEOUT).await.expect("unbond finalized");
    let p = c.provider_list().await.expect("list").into_iter().find(|p| p.address == absent.public()).expect("listed");
    assert_eq!((p.stake, p.unbonding, p.eligible), (0, 50_000_000, false));
}
