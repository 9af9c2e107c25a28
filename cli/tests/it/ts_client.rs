//! The TypeScript client (`clients/ts`, its script `test/e2e.ts`) end to end against a testnet of
//! real node processes: every read method; `estimate` and `runJob` with the uppercase module's
//! bytes (uploaded because the node lacks them), the output returned only once the receipt proof
//! verified against the genesis; a challenge; tampered proofs refused; its WebSocket cut right
//! after `accepted` and refused until the job is final, with every stage delivered once, in
//! order; a transfer and a provider's transactions, each proven through a state proof. The Rust
//! side then checks what the client says it did.
//!
//! Needs Node 22 and `clients/ts/node_modules`: `scripts/setup-js.sh` installs both (Node 22 in
//! `~/.cache/cairn-node22`, or `CAIRN_NODE22_DIR`; `CAIRN_NODE` names another node binary, of
//! version 22.18 or later).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cairn_ledger::{Hash, PublicKey};
use cairn_rpc::{CairnApiClient, JobStage};

use crate::support::{start, uppercase_module};

/// The whole run of the script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

fn ts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts")
}

/// The Node 22 binary and the package's dependencies, or a panic saying how to get them.
fn node_binary() -> PathBuf {
    crate::support::node22(
        &["clients/ts/node_modules/@noble/ed25519"],
        "run scripts/setup-js.sh (installs Node 22 and clients/ts/node_modules)",
    )
}

/// The uppercase module: the example job built by scripts/build-jobs.sh, or else the vm's
/// fixture (the same job), written next to the testnet.
fn uppercase_path(dir: &Path) -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/wasm/uppercase.wasm");
    if built.is_file() {
        return built;
    }
    let path = dir.join("uppercase.wasm");
    std::fs::write(&path, uppercase_module()).expect("write the module");
    path
}

fn hash(v: &serde_json::Value) -> Hash {
    Hash::from_hex(v.as_str().unwrap_or_else(|| panic!("not a hash: {v}"))).expect("a hash")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_client_runs_verifies_resumes_and_transacts_against_a_testnet() {
    let node_bin = node_binary();
    let net = start(1).await;
    let module = uppercase_path(&net.t.dir);
    let stderr_path = net.t.dir.join("ts-e2e.log");
    let stderr = std::fs::File::create(&stderr_path).expect("script log");
    let child = tokio::process::Command::new(&node_bin)
        .current_dir(ts_dir())
        .arg("test/e2e.ts")
        .arg("--rpc")
        .arg(net.t.rpc_url(0))
        .arg("--genesis")
        .arg(net.t.genesis_path())
        .arg("--key")
        .arg(net.t.dir.join("client-key.json"))
        .arg("--module")
        .arg(&module)
        .arg("--timeout")
        .arg((SCRIPT_TIMEOUT.as_secs() - 10).to_string())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", node_bin.display()));
    let (s, pretty) = crate::support::script_summary(child, &stderr_path, SCRIPT_TIMEOUT, &net).await;
    assert_eq!(s["chain_id"], net.genesis.chain_id().to_hex(), "{pretty}");
    assert_eq!(s["client"], net.client_key.public().to_hex(), "{pretty}");

    let c = net.rpc(0).await;
    // The verified job: the node agrees on its stage and output.
    let stages = serde_json::json!(["accepted", "executed", "included", "finalized"]);
    assert_eq!(s["job"]["output"], "HELLO FROM THE TS CLIENT", "{pretty}");
    assert_eq!(s["job"]["stages"], stages, "{pretty}");
    let job = c.job_get(hash(&s["job"]["job_id"])).await.expect("job_get");
    assert!(job.stage >= JobStage::Finalized, "{job:?}");
    assert_eq!(job.result.expect("a result").output, b"HELLO FROM THE TS CLIENT");

    // The job through blobs: the node serves its output by hash.
    let blob_job = &s["blob_job"];
    assert_eq!(blob_job["output_in_blob"], true, "{pretty}");
    assert_eq!(blob_job["output_bytes"], 300 << 10, "{pretty}");
    let output = c.blob_get(hash(&blob_job["output_hash"])).await.expect("blob_get");
    assert_eq!(output.len(), 2 * (300 << 10), "hex of the output");

    // Every tampering refused, by the offline check and by runJob.
    let tampered = s["tampered"].as_object().expect("tampered");
    assert!(tampered.len() >= 7, "{pretty}");
    assert!(tampered.values().all(|v| v.as_str().is_some_and(|m| m != "ACCEPTED")), "{pretty}");

    // The cut connection: resubscribed, nothing lost, the same stages as a fresh replay.
    let resume = &s["resume"];
    assert_eq!(resume["stages"], stages, "{pretty}");
    assert_eq!(resume["replayed_by_fresh_subscription"], stages, "{pretty}");
    assert!(resume["resubscriptions"].as_u64().unwrap_or(0) >= 1, "{pretty}");
    assert!(resume["refused_reconnections"].as_u64().unwrap_or(0) >= 1, "{pretty}");
    assert_eq!(resume["stage_while_disconnected"], "finalized", "{pretty}");
    let cut_job = c.job_get(hash(&resume["job_id"])).await.expect("job_get");
    let cut_output = resume["output"].as_str().expect("output");
    assert!(cut_output.starts_with("CUT ME OFF "), "{pretty}");
    assert_eq!(cut_job.result.expect("a result").output, cut_output.as_bytes());

    // The transactions, as the node sees them.
    let to = PublicKey::from_hex(s["transfer"]["to"].as_str().expect("to")).expect("an address");
    assert_eq!(c.account_get(to).await.expect("account_get").balance, 12_345, "{pretty}");
    let provider = c
        .provider_list()
        .await
        .expect("provider_list")
        .into_iter()
        .find(|p| p.address == net.client_key.public())
        .unwrap_or_else(|| panic!("the client registered as a provider\n{pretty}"));
    assert_eq!(provider.price_per_fuel, 2_000_000_000);
    assert_eq!(provider.stake, net.genesis.params.stake_min - 1);
    assert_eq!(provider.unbonding, 1);
    // Four offers, the transfer and the provider's three transactions (and the challenge, if
    // it made its window) moved the client's nonce.
    let client_account = c.account_get(net.client_key.public()).await.expect("account_get");
    assert!(client_account.nonce >= 8, "{client_account:?}\n{pretty}");
}
