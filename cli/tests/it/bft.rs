//! Four validators finalizing by BFT consensus, as real processes: with one validator down
//! blocks keep being finalized and jobs keep completing, and it catches up when restarted;
//! with two down nothing is finalized and nothing forks, and finality resumes when one
//! returns. Every receipt proof verifies offline against the genesis. A validator that
//! equivocates is recorded by the honest ones and nothing forks; one that dies between
//! logging a vote and sending it restarts without signing a conflicting one.

use std::time::{Duration, Instant};

use cairn_node::chain::Chain;
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};

use crate::support::{Net, TIMEOUT, start_custom, start_validators, uppercase_module};

const VALIDATORS: usize = 4;
/// Node 4 is the provider.
const PROVIDERS: usize = 1;

/// Runs one job through node `via` to its finalized receipt and checks the proof offline:
/// more than 2/3 of the power signed, so at least 3 of the 4 validators.
pub(crate) async fn job(net: &Net, via: usize, module_id: cairn_ledger::Hash, tag: &str) -> u64 {
    let c = net.rpc(via).await;
    c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let offer =
        client::sign_offer(&c, &net.client_key, module_id, tag.as_bytes().to_vec(), OfferTerms::default(), None)
            .await
            .expect("offer");
    let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("job {tag}: {e:#}\n{}", net.logs()));
    assert_eq!(run.result.output, tag.to_uppercase().into_bytes());
    let v = run.proof.verify(&net.genesis).expect("the receipt proof verifies against the genesis");
    assert!(run.proof.commit.signatures.len() >= 3, "a 4-validator commit has at least 3 signatures");
    assert!(3 * v.signed_power > 2 * v.total_power);
    v.height
}

/// The node index of the validator that proposes in round 0 of the height after node `i`'s
/// head: killing it forces the others through a round change.
async fn next_proposer(net: &Net, i: usize) -> usize {
    let set = net.genesis.validator_set().expect("validator set");
    let address = cairn_consensus::proposer(&set, net.height(i).await + 1, 0);
    (0..VALIDATORS).find(|j| net.provider_key(*j) == address).expect("the proposer is one of the nodes")
}

/// Polls the running validators' heads for `window`: returns the height if none moved.
async fn head_stays(net: &Net, nodes: &[usize], window: Duration) -> Result<u64, String> {
    let start = net.height(nodes[0]).await;
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        for &i in nodes {
            let h = net.height(i).await;
            if h != start {
                return Err(format!("node {i} moved from {start} to {h}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(start)
}

/// After the nodes stop: every validator's store holds the same block at every height, each
/// with a commit that verifies against the genesis.
pub(crate) fn assert_no_fork(net: &Net) {
    let mut chains = Vec::new();
    for i in 0..VALIDATORS {
        let db = net.t.dir.join("nodes").join(i.to_string()).join("db");
        chains.push(Chain::open(net.genesis.clone(), &db).expect("the store reopens consistent"));
    }
    let top = chains.iter().map(Chain::height).max().unwrap_or(0);
    for h in 1..=top {
        let mut hashes = chains.iter().filter_map(|c| c.store.block(h).expect("read").map(|b| b.hash()));
        let first = hashes.next().expect("some validator has every height");
        assert!(hashes.all(|x| x == first), "validators disagree at height {h}");
        for c in &chains {
            if let Some(commit) = c.store.commit(h).expect("read") {
                assert_eq!(commit.block_hash, first);
                commit.verify(c.chain_id, &c.validators).expect("every commit verifies");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn n4_one_validator_down_keeps_finalizing_and_catches_up_after_restart() {
    let mut net = start_validators(VALIDATORS, PROVIDERS).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    job(&net, 0, module_id, "all four").await;

    // The next proposer goes down: the others must change round to finalize. Jobs go through
    // the provider (node 4), which outlives every validator.
    let down = next_proposer(&net, 0).await;
    net.t.kill(down).expect("kill -9 the next proposer");
    let alive: Vec<usize> = (0..VALIDATORS).filter(|i| *i != down).collect();
    let before = net.height(alive[0]).await;
    for i in 0..3 {
        job(&net, VALIDATORS, module_id, &format!("three of four {i}")).await;
    }
    let after = net.height(alive[0]).await;
    assert!(after > before, "blocks are finalized with one validator down");

    net.t.restart(down).await.expect("restart the validator");
    net.wait_height(down, after).await;
    // And it takes part again: a job submitted through it completes.
    job(&net, down, module_id, "back to four").await;
    net.t.stop();
    assert_no_fork(&net);
}

#[tokio::test(flavor = "multi_thread")]
async fn n4_two_validators_down_halt_finality_without_forking_until_one_returns() {
    let mut net = start_validators(VALIDATORS, PROVIDERS).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    job(&net, 0, module_id, "before").await;

    net.t.kill(2).expect("kill -9 validator 2");
    net.t.kill(3).expect("kill -9 validator 3");
    // Work is waiting: an offer in the mempool of the two that are left.
    let offer = client::sign_offer(&c, &net.client_key, module_id, b"stuck".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    c.job_submit(offer.clone()).await.expect("job_submit");
    // Votes already in flight may finish the height being decided; after that, nothing.
    let mut halted = None;
    let deadline = Instant::now() + TIMEOUT;
    while halted.is_none() {
        assert!(Instant::now() < deadline, "the head never settled\n{}", net.logs());
        halted = head_stays(&net, &[0, 1], Duration::from_secs(1)).await.ok();
    }
    let halted = halted.expect("settled");
    head_stays(&net, &[0, 1], Duration::from_secs(4))
        .await
        .unwrap_or_else(|e| panic!("a block was finalized by 2 of 4 validators: {e}"));

    net.t.restart(2).await.expect("restart validator 2");
    net.wait_height(0, halted + 1).await;
    let proof = {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(p) = c.job_proof(offer.job_id(), None).await {
                break p;
            }
            assert!(Instant::now() < deadline, "the waiting job never finalized\n{}", net.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    proof.verify(&net.genesis).expect("the proof of the job that waited verifies");
    job(&net, 2, module_id, "after").await;
    net.t.stop();
    assert_no_fork(&net);
}

/// The evidence node `i` kept, by offender.
async fn evidence_against(net: &Net, i: usize, offender: cairn_ledger::PublicKey) -> Vec<cairn_rpc::EvidenceInfo> {
    let all = net.rpc(i).await.consensus_evidence().await.expect("consensus_evidence");
    all.into_iter().filter(|e| e.offender == offender).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn n4_an_equivocating_validator_is_recorded_by_the_others_and_nothing_forks() {
    let mut net = start_custom(VALIDATORS, PROVIDERS, 0, |s| s.equivocating_validators = 1).await;
    let offender = net.provider_key(0);
    let c = net.rpc(1).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    // Jobs keep completing (every proof verifies, in `job`) while validator 0 signs two
    // votes for each step; until every honest validator has recorded it.
    let mut recorded = false;
    for i in 0..10 {
        job(&net, VALIDATORS, module_id, &format!("equivocation {i}")).await;
        let mut all = true;
        for v in 1..VALIDATORS {
            all &= !evidence_against(&net, v, offender).await.is_empty();
        }
        if i >= 2 && all {
            recorded = true;
            break;
        }
    }
    assert!(recorded, "every honest validator records evidence against the equivocator\n{}", net.logs());
    for v in 1..VALIDATORS {
        let all = net.rpc(v).await.consensus_evidence().await.expect("consensus_evidence");
        assert!(all.iter().all(|e| e.offender == offender), "evidence names only the equivocator: {all:?}");
        assert!(all.iter().all(|e| e.kind != cairn_rpc::EvidenceKind::ConflictingProposals));
    }
    net.t.stop();
    assert_no_fork(&net);
}

#[tokio::test(flavor = "multi_thread")]
async fn n4_a_validator_killed_between_logging_and_sending_a_vote_never_signs_a_conflicting_one() {
    const CRASH_HEIGHT: u64 = 3;
    let mut net = start_custom(VALIDATORS, PROVIDERS, 0, |s| s.crash_after_wal_append = Some((0, CRASH_HEIGHT))).await;
    let me = net.provider_key(0);
    let c = net.rpc(1).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    // Validator 0 aborts as it votes at CRASH_HEIGHT, its vote logged but not sent.
    let mut i = 0;
    while !net.t.exited(0).expect("try_wait") {
        assert!(i < 20, "validator 0 never aborted at height {CRASH_HEIGHT}\n{}", net.logs());
        job(&net, VALIDATORS, module_id, &format!("before the crash {i}")).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let marker = net.t.dir.join("nodes").join("0").join("test-crashed");
    assert!(marker.exists(), "it aborted for the test switch, not something else\n{}", net.logs());
    // Finality goes on with three.
    job(&net, VALIDATORS, module_id, "three of four").await;
    // It restarts, replays its log, catches up and takes part again.
    net.t.restart(0).await.expect("restart validator 0");
    let log = std::fs::read_to_string(net.t.dir.join("nodes").join("0").join("node.log")).expect("node 0's log");
    assert!(log.contains("replaying the consensus log"), "the restarted validator replays its log\n{}", net.logs());
    let head = net.height(1).await;
    net.wait_height(0, head).await;
    for i in 0..3 {
        job(&net, 0, module_id, &format!("after the restart {i}")).await;
    }
    for v in 1..VALIDATORS {
        let against = evidence_against(&net, v, me).await;
        assert!(against.is_empty(), "validator {v} recorded evidence against the restarted one: {against:?}");
    }
    net.t.stop();
    assert_no_fork(&net);
}

/// Waits until node `i` reports `peers` connected peers.
async fn wait_peers(net: &Net, i: usize, peers: usize) {
    let c = net.rpc(i).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = c.node_info().await.expect("node_info").peers;
        if now == peers {
            return;
        }
        assert!(Instant::now() < deadline, "node {i} has {now} peers, not {peers}\n{}", net.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn n4_a_partitioned_validator_rejoins_when_the_partition_heals_and_nothing_forks() {
    const CUT: usize = 3;
    let net = start_custom(VALIDATORS, PROVIDERS, 0, |s| s.partition_switch = true).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    job(&net, 0, module_id, "before the partition").await;

    // Validator 3 is cut off from everyone, and keeps running: it has work of its own (an offer
    // only it holds), so it starts the next height alone and signs its first messages there,
    // while the others decide that height and more without it. The offer takes the client's
    // nonce after the jobs the others finalize meanwhile.
    net.t.isolate(CUT, true).expect("isolate validator 3");
    wait_peers(&net, CUT, 0).await;
    let cut_at = net.height(CUT).await;
    let cut = net.rpc(CUT).await;
    const JOBS_DURING: u64 = 3;
    let next_nonce = cut.account_get(net.client_key.public()).await.expect("account").next_nonce;
    let terms = OfferTerms::default();
    let stranded = client::sign_offer(
        &cut,
        &net.client_key,
        module_id,
        b"stranded".to_vec(),
        terms,
        Some(next_nonce + JOBS_DURING),
    )
    .await
    .expect("offer");
    cut.job_submit(stranded.clone()).await.expect("job_submit to the isolated validator");

    // The other three finalize without it; alone, it finalizes nothing.
    for i in 0..JOBS_DURING {
        job(&net, VALIDATORS, module_id, &format!("during the partition {i}")).await;
    }
    let majority = net.height(0).await;
    assert!(majority > cut_at, "three of four keep finalizing");
    assert_eq!(net.height(CUT).await, cut_at, "a validator alone finalizes nothing");

    // The partition heals: it reconnects and catches up to the others' head; the offer it
    // held alone reaches them and completes with a proof that verifies; and it takes part again.
    net.t.isolate(CUT, false).expect("heal");
    net.wait_height(CUT, majority).await;
    let deadline = Instant::now() + TIMEOUT;
    let proof = loop {
        if let Ok(p) = c.job_proof(stranded.job_id(), None).await {
            break p;
        }
        assert!(Instant::now() < deadline, "the stranded job never finalized\n{}", net.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    proof.verify(&net.genesis).expect("its proof verifies");
    job(&net, CUT, module_id, "after the partition").await;
    let mut net = net;
    net.t.stop();
    assert_no_fork(&net);
}
