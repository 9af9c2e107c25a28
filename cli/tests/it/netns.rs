//! A testnet that looks like the Internet, on one machine: every node in its own network
//! namespace with its own address, the links between three regions delayed by the router
//! (`cairn testnet up --netns`). The round trips the nodes see match the topology, blocks are
//! finalized on every node across the regions, and a job whose offer prefers a region runs on
//! that region's provider. Needs root (namespaces and TUN devices): skipped otherwise.

use std::time::{Duration, Instant};

use cairn_ledger::Placement;
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};
use cairn_testnet::netem::Topology;

use crate::support::{TIMEOUT, start_custom, uppercase_module};

/// Three regions 40–60 ms apart (shorter than the Internet's, to keep the test quick).
const TOPOLOGY: &str = r#"
[[region]]
name = "eu"
rtt_ms = 6
jitter_ms = 1
[[region]]
name = "us"
rtt_ms = 8
[[region]]
name = "ap"
rtt_ms = 4
[[link]]
regions = ["eu", "us"]
rtt_ms = 40
jitter_ms = 2
[[link]]
regions = ["us", "ap"]
rtt_ms = 60
jitter_ms = 2
loss_percent = 0.5
[[link]]
regions = ["ap", "eu"]
rtt_ms = 50
[nodes]
validators = ["eu", "us", "ap", "eu"]
providers = ["eu", "us", "ap"]
client = "eu"
"#;

/// Whether this machine can run a `--netns` testnet (root, `ip`, namespaces and TUN devices
/// that can really be created); if not, the test says why and passes.
fn can_run() -> bool {
    match cairn_testnet::netns::probe() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipped: this machine cannot run a --netns testnet: {e:#}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_region_netns_testnet_has_its_round_trips_finalizes_and_places_jobs() {
    if !can_run() {
        return;
    }
    let topology = Topology::parse(TOPOLOGY).expect("a valid topology");
    let net = start_custom(4, 3, 0, |s| s.netns = Some(topology.clone())).await;
    let plan = net.t.netns_plan().expect("plan").expect("a netns testnet");
    assert_eq!(plan.nodes.len(), 7);
    for (i, n) in plan.nodes.iter().enumerate() {
        assert!(plan.netns_path(i).exists(), "namespace {} exists", n.netns);
        assert_eq!(net.t.nodes[i].rpc.ip(), std::net::IpAddr::V4(n.ip), "node {i} serves on its own address");
    }
    let regions: Vec<&str> = plan.nodes.iter().map(|n| n.region.as_str()).collect();
    assert_eq!(regions, ["eu", "us", "ap", "eu", "eu", "us", "ap"]);

    // The round trips the nodes see are the topology's (the router adds what it says, and a
    // little for its own and the machine's work).
    let rtts = cairn_testnet::measure_rtts(&net.t.dir, 5).expect("measure");
    assert_eq!(rtts.len(), 7 * 6);
    for s in &rtts {
        assert!(
            s.median_ms >= 0.9 * s.expected_ms && s.median_ms <= s.expected_ms + 50.0,
            "node {} → {} ({:?}): {:.1} ms measured, {} ms in the topology",
            s.from,
            s.to,
            s.regions,
            s.median_ms,
            s.expected_ms
        );
    }

    // Each region's provider declared its region at genesis; a job preferring a region runs
    // there, and its block is finalized on every node.
    let c = net.rpc(0).await;
    let listed = c.provider_list().await.expect("provider_list");
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let mut last_height = 0;
    for (provider_node, region) in [(4, "eu"), (5, "us"), (6, "ap")] {
        let provider = net.provider_key(provider_node);
        assert!(listed.iter().any(|p| p.address == provider && p.region == region), "{listed:?}");
        let terms =
            OfferTerms { placement: Placement::Prefer { regions: vec![region.into()] }, ..OfferTerms::default() };
        let input = format!("to {region}").into_bytes();
        let offer = client::sign_offer(&c, &net.client_key, module_id, input, terms, None).await.expect("sign");
        let run = client::run_to_finality(&c, offer, TIMEOUT, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
        assert_eq!(run.result.provider, provider, "the {region} job ran in {region}");
        assert_eq!(run.result.output, format!("TO {}", region.to_uppercase()).into_bytes());
        last_height = last_height.max(run.proof.header.height);
    }
    let deadline = Instant::now() + TIMEOUT;
    for (i, region) in regions.iter().enumerate() {
        let node = net.rpc(i).await;
        while node.chain_head().await.expect("chain_head").height < last_height {
            assert!(Instant::now() < deadline, "node {i} ({region}) never reached height {last_height}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Stopping the testnet stops the router, which deletes the namespaces.
    let namespaces: Vec<std::path::PathBuf> = (0..7).map(|i| plan.netns_path(i)).collect();
    drop(net);
    for ns in namespaces {
        assert!(!ns.exists(), "{} deleted", ns.display());
    }
}

/// One region; node 3 (a provider) cannot reach node 0 (the validator the client uses, where
/// the module is uploaded), and asks only the holders the DHT names for a module it misses.
const CUT: &str = r#"
cuts = [[0, 3]]
[[region]]
name = "eu"
rtt_ms = 2
[nodes]
validators = ["eu"]
providers = ["eu"]
client = "eu"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_cut_from_the_clients_node_finds_the_module_through_the_dht_and_runs_the_job() {
    if !can_run() {
        return;
    }
    let topology = Topology::parse(CUT).expect("a valid topology");
    let net = start_custom(1, 3, 0, |s| {
        s.netns = Some(topology.clone());
        // Node 3 finds the module's holders through the DHT before it can run the job; a busy
        // machine's dev build may take longer than the default 20 blocks of 50 ms, after which
        // the job would pass to the other provider, so the delivery window is 10 s here.
        s.params.delivery_blocks = 200;
        let home = s.dir.join("nodes").join("3");
        std::fs::create_dir_all(&home).expect("node 3's folder");
        std::fs::write(home.join(cairn_testnet::NODE_CONFIG_FILE), "test_blobs_by_dht_only = true\n")
            .expect("node.toml");
    })
    .await;
    let c = net.rpc(0).await;
    let far = net.provider_key(3);
    // The module goes to node 0 only; the providers it reaches fetch it, and say so in the DHT.
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let offer = net.offer_for(&c, module_id, far, "through the dht").await;
    let run =
        client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.provider, far, "run by node 3: {:?}\n{}", run.result, net.t.log_tail(3, 60));
    // Node 3 never reached node 0: each sees the other two nodes only.
    for i in [0, 3] {
        let peers = net.rpc(i).await.node_info().await.expect("node_info").peers;
        assert_eq!(peers, 2, "node {i} has {peers} peers");
    }
    // It asked holders the DHT named (its connected peers it did not ask).
    let metrics = net.t.nodes[3].metrics.expect("metrics served");
    let (status, text) = crate::metrics::http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    let asked = text
        .lines()
        .find_map(|l| l.strip_prefix("cairn_blob_holder_requests_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no cairn_blob_holder_requests_total in\n{text}"));
    assert!(asked >= 1.0, "node 3 asked {asked} holders");

    // Job data too: an input blob stored on node 0 and node 1 reaches node 3 through node 1;
    // the output blob node 3 leaves reaches node 0 through the nodes that took the result.
    let input: Vec<u8> = (0..300 << 10).map(|i| b"abcdefghij"[i % 10]).collect();
    for i in [0, 1] {
        let id = net.rpc(i).await.blob_put(hex::encode(&input)).await.expect("blob_put");
        assert_eq!(id, cairn_ledger::Hash::of(&input));
    }
    let terms = client::OfferTerms {
        fuel_limit: 100_000_000,
        input_blob: Some(cairn_ledger::Hash::of(&input)),
        ..client::OfferTerms::default()
    };
    let state = cairn_contracts::State::from_genesis(&net.genesis).expect("genesis state");
    let mut found = None;
    for deadline_blocks in 200..456 {
        // Another deadline, another job id: one whose only assignee is node 3.
        let terms = client::OfferTerms { deadline_blocks, ..terms.clone() };
        let offer = client::sign_offer(&c, &net.client_key, module_id, Vec::new(), terms, None).await.expect("sign");
        let o = &offer.offer;
        if state.assignment(&offer.job_id(), o.max_price, &o.placement, 1) == vec![far] {
            found = Some(offer);
            break;
        }
    }
    let offer = found.expect("an offer ranked for node 3");
    let run =
        client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    assert_eq!(run.result.provider, far);
    assert!(run.result.output_in_blob, "{:?}", run.result);
    let output = client::output_of(&c, &run.result).await.expect("node 0 holds the output");
    assert_eq!(output, input.to_ascii_uppercase());
}
