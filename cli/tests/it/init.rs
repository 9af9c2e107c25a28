//! `cairn node init` prepares a folder a node runs from: a key and a `node.toml` with every
//! setting documented; a node started with it joins a running chain.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_rpc::CairnApiClient;
use cairn_rpc::client;

use crate::support::{TIMEOUT, start};

#[tokio::test(flavor = "multi_thread")]
async fn a_node_initialised_by_init_joins_the_chain_with_its_config() {
    let net = start(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("joiner");
    let bin = env!("CARGO_BIN_EXE_cairn");
    let bootstrap = net.t.nodes[0].p2p[0].clone();
    let out = Command::new(bin)
        .args(["node", "init", "--provider", "--home"])
        .arg(&home)
        .arg("--genesis")
        .arg(net.t.genesis_path())
        .args(["--bootstrap", &bootstrap])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let address = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
    let key = cairn_ledger::Keypair::load(&home.join("node-key.json")).expect("a key");
    assert_eq!(address, key.public().to_string());
    let text = std::fs::read_to_string(home.join("node.toml")).expect("node.toml");
    for field in cairn_node::config::CONFIG_FIELDS {
        assert!(*field == "consensus" || text.contains(&format!("{field} = ")), "{field} missing");
    }
    // Run again: refused, the config is kept.
    let again = Command::new(bin).args(["node", "init", "--home"]).arg(&home).output().expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // It runs from its config (ports from flags: this test binds free ones) and syncs.
    let log = std::fs::File::create(dir.path().join("joiner.log")).expect("log");
    let mut child = Command::new(bin)
        .args(["node", "run", "--config"])
        .arg(home.join("node.toml"))
        .args(["--rpc", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + TIMEOUT;
    let bound = loop {
        if let Some(bound) = cairn_testnet::read_bound(&home).expect("node.json") {
            break bound;
        }
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let head = net.height(0).await;
    let c = client::connect(&format!("ws://{}", bound.rpc)).await.expect("rpc");
    loop {
        let info = c.node_info().await.expect("node_info");
        if info.height >= head {
            assert!(info.provider && info.address == key.public(), "{info:?}");
            break;
        }
        assert!(Instant::now() < deadline, "stuck at {} of {head}", info.height);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
