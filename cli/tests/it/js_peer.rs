//! A peer written in TypeScript from docs/ alone (`clients/ts`, its script
//! `test/live-peer.ts`) joins a testnet of real node processes over libp2p, decodes and verifies
//! one live message or more on every gossip topic, and checks a finalized block, state proofs
//! and a receipt proof read over RPC: the docs are enough to speak the protocol.
//!
//! Needs Node 22 and `clients/ts/node_modules`: `scripts/setup-js.sh` installs both (Node 22 in
//! `~/.cache/cairn-node22`, or `CAIRN_NODE22_DIR`; `CAIRN_NODE` names another node binary, of
//! version 22.18 or later).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_ledger::Action;
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{start_validators, uppercase_module};

/// The whole run of the peer, from its start to its summary.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the peer waits for a message on every topic (its `--timeout`).
const PEER_TOPICS_TIMEOUT_S: u64 = 40;

/// How long the transfer and the job may take to be final.
const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(30);

const TOPICS: [&str; 6] = ["txs", "results", "blocks", "modules", "consensus", "proposals"];

fn ts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts")
}

/// The Node 22 binary and the package folder, or a panic saying how to get them.
fn js_env() -> (PathBuf, PathBuf) {
    let setup = "run scripts/setup-js.sh (installs Node 22 and clients/ts/node_modules)";
    let node = std::env::var_os("CAIRN_NODE").map(PathBuf::from).unwrap_or_else(|| {
        let dir = std::env::var_os("CAIRN_NODE22_DIR").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/cairn-node22")
        });
        dir.join("node_modules/node/bin/node")
    });
    let version = std::process::Command::new(&node).arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!("no Node 22 at {}: {setup}", node.display()),
    };
    // 22.18 runs .ts files as they are (type stripping on by default).
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!((major, minor) >= (22, 18), "{} is Node {version}, 22.18 or later is needed: {setup}", node.display());
    let dir = ts_dir();
    assert!(dir.join("node_modules/libp2p").is_dir(), "no {}: {setup}", dir.join("node_modules").display());
    (node, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typescript_peer_written_from_the_docs_verifies_every_topic_a_block_and_state_proofs() {
    let (node_bin, dir) = js_env();
    // Four validators (BFT: votes, proposals, proposed blocks) and a provider (results).
    let net = start_validators(4, 1).await;
    let mut cmd = tokio::process::Command::new(&node_bin);
    cmd.current_dir(&dir)
        .arg("test/live-peer.ts")
        .arg("--genesis")
        .arg(net.t.genesis_path())
        .arg("--rpc")
        .arg(net.t.rpc_url(0))
        .arg("--timeout")
        .arg(PEER_TOPICS_TIMEOUT_S.to_string());
    // Every node: a proposed block reaches a node's neighbours only once the proposal naming it
    // did, so the peer hears proposals first-hand from whichever validator proposes, and results
    // from the provider that signed them.
    for node in &net.t.nodes {
        cmd.arg("--p2p").arg(node.p2p.first().expect("a p2p address"));
    }
    let stderr_path = net.t.dir.join("live-peer.log");
    let stderr = std::fs::File::create(&stderr_path).expect("peer log");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", node_bin.display()));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let peer_log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let started = Instant::now();

    // Wait until the peer is connected and subscribed, then make traffic on every topic.
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let ready = match ready {
        Ok(Ok(Some(line))) => line,
        other => panic!("the peer did not get ready: {other:?}\n{}\n{}", peer_log(), net.logs()),
    };
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("the ready line is JSON");
    assert_eq!(ready["event"], "ready", "{ready}");

    let c = net.rpc(0).await;
    // `modules`: an upload is announced.
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    // `txs` (an account transaction and an offer), `results`, `blocks`, `consensus`,
    // `proposals`: a transfer and a job run to finality.
    let transfer = Action::Transfer { to: net.genesis.validators[0].address, amount: 1 };
    let tx = client::sign_tx(&c, &net.client_key, None, transfer, None).await.expect("sign tx");
    client::submit_tx(&c, tx, TRAFFIC_TIMEOUT).await.unwrap_or_else(|e| panic!("transfer: {e:#}\n{}", net.logs()));
    let offer =
        client::sign_offer(&c, &net.client_key, module_id, b"hello from ts".to_vec(), OfferTerms::default(), None)
            .await
            .expect("offer");
    let run = client::run_to_finality(&c, offer, TRAFFIC_TIMEOUT, |_| {}).await;
    let run = run.unwrap_or_else(|e| panic!("job: {e:#}\n{}", net.logs()));
    assert_eq!(run.result.output, b"HELLO FROM TS");

    // The summary, within the peer's time.
    let left = PEER_TIMEOUT.saturating_sub(started.elapsed());
    let summary = tokio::time::timeout(left, async {
        let mut last = None;
        while let Ok(Some(line)) = lines.next_line().await {
            last = Some(line);
        }
        last
    })
    .await;
    let summary = match summary {
        Ok(Some(line)) => line,
        Ok(None) => panic!("the peer printed no summary\n{}", peer_log()),
        Err(_) => {
            let _ = child.kill().await;
            panic!("the peer did not finish within {PEER_TIMEOUT:?}\n{}\n{}", peer_log(), net.logs());
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let status = status.expect("the peer exits after its summary").expect("wait");
    let summary: serde_json::Value =
        serde_json::from_str(&summary).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {summary}"));
    let pretty = serde_json::to_string_pretty(&summary).expect("json");
    assert!(status.success(), "the peer failed ({status}):\n{pretty}\n{}", peer_log());
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["ok"], true, "{pretty}");
    assert_eq!(summary["chain_id"], net.genesis.chain_id().to_hex(), "{pretty}");
    for name in TOPICS {
        let t = &summary["topics"][name];
        assert!(t["verified"].as_u64().unwrap_or(0) >= 1, "no verified message on {name}:\n{pretty}");
        assert_eq!(t["failed"], 0, "{name}:\n{pretty}");
    }
    let checks = summary["rpc"].as_array().expect("rpc checks");
    assert!(checks.len() >= 7, "{pretty}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{pretty}");
}
