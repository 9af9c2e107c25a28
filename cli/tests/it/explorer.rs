//! The block explorer (`clients/explorer`, served by the node at `/explorer/`) end to end: the
//! committed build in `node/explorer/` is what its sources build, byte for byte (`npm run
//! check-build`); the node serves exactly those files; then the script `test/e2e.ts` drives
//! Debian's Chromium headless against a testnet of real node processes — the block list, a job
//! followed to "finalized" on its page, "verify in this browser" succeeding for the node's proof
//! and failing, with the verifier's own message, for a wrong genesis and for the proof a lying
//! proxy serves — and the browser example page (`clients/ts/examples/browser`) running a job
//! and verifying it; the Rust side checks what it reports. Screenshots are kept in
//! `$CARGO_TARGET_DIR/explorer-artifacts/`.
//!
//! Needs Node 22, `clients/ts/node_modules`, `clients/explorer/node_modules` and
//! `/usr/bin/chromium` (or `CAIRN_CHROMIUM`): `scripts/setup-js.sh` installs all of them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cairn_ledger::Hash;
use cairn_rpc::{CairnApiClient, JobStage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{start_validators, uppercase_module};

/// The whole run of the browser script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// The rebuild check (esbuild bundles in well under a second; Node starts in a fraction).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// One HTTP request to the node.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// What to run when something is missing.
const SETUP: &str =
    "run scripts/setup-js.sh (installs Node 22, clients/ts and clients/explorer node_modules, and Debian's chromium)";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn explorer_dir() -> PathBuf {
    repo().join("clients/explorer")
}

/// The Node 22 binary and the packages' dependencies, or a panic saying how to get them.
fn node_binary() -> PathBuf {
    crate::support::node22(
        &[
            "clients/ts/node_modules/@noble/ed25519",
            "clients/explorer/node_modules/esbuild",
            "clients/explorer/node_modules/puppeteer-core",
        ],
        SETUP,
    )
}

/// Chromium: a missing browser fails the test (it is installed by the setup script), never skips it.
fn chromium() -> PathBuf {
    let path =
        std::env::var_os("CAIRN_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(path.is_file(), "no Chromium at {}: {SETUP}", path.display());
    path
}

/// Where screenshots go: `$CARGO_TARGET_DIR/explorer-artifacts`, else next to the test binary's target dir.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // target/debug/deps/it-… → target
        let exe = std::env::current_exe().expect("the test binary's path");
        exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target"))
    });
    target.join("explorer-artifacts")
}

/// `GET path` on `addr` over plain HTTP/1.1: the status line and headers, and the body.
async fn http_get(addr: &str, path: &str) -> (String, Vec<u8>) {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to the node's RPC port");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(HTTP_TIMEOUT, get)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {HTTP_TIMEOUT:?}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("GET {path}: no header end"));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).expect("hex").trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

fn hash(v: &serde_json::Value) -> Hash {
    Hash::from_hex(v.as_str().unwrap_or_else(|| panic!("not a hash: {v}"))).expect("a hash")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_shows_follows_and_verifies_in_chromium_and_refuses_a_tampered_proof() {
    let node_bin = node_binary();
    let chromium = chromium();

    // The committed build is what the sources build.
    let mut cmd = tokio::process::Command::new(&node_bin);
    cmd.current_dir(explorer_dir()).arg("build.ts").arg("--check").kill_on_drop(true);
    let check =
        tokio::time::timeout(CHECK_TIMEOUT, cmd.output()).await.expect("the build check finishes").expect("node runs");
    assert!(
        check.status.success(),
        "node/explorer/ is not what clients/explorer builds (run `npm run build` there and commit):\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Four validators: the pages show commits signed by more than two thirds of them.
    let net = start_validators(4, 1).await;
    let addr = net.t.rpc_url(0).trim_start_matches("ws://").to_string();

    // The node serves the committed files, byte for byte.
    for (path, file, content_type) in [
        ("/explorer/", "index.html", "text/html"),
        ("/explorer/explorer.js", "explorer.js", "text/javascript"),
        ("/explorer/explorer.css", "explorer.css", "text/css"),
    ] {
        let (head, body) = http_get(&addr, path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        assert!(head.to_ascii_lowercase().contains(&format!("content-type: {content_type}")), "GET {path}: {head}");
        let want = std::fs::read(repo().join("node/explorer").join(file)).expect("the committed file");
        assert!(body == want, "GET {path}: {} bytes, not node/explorer/{file} ({} bytes)", body.len(), want.len());
    }
    let (head, _) = http_get(&addr, "/explorer").await;
    assert!(head.starts_with("HTTP/1.1 30"), "GET /explorer: {head}");

    let module = {
        let built = repo().join("examples/jobs/wasm/uppercase.wasm");
        if built.is_file() {
            built
        } else {
            let path = net.t.dir.join("uppercase.wasm");
            std::fs::write(&path, uppercase_module()).expect("write the module");
            path
        }
    };
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("the artifacts folder");
    let stderr_path = artifacts.join("e2e.log");
    let stderr = std::fs::File::create(&stderr_path).expect("script log");
    let child = tokio::process::Command::new(&node_bin)
        .current_dir(explorer_dir())
        .arg("test/e2e.ts")
        .arg("--rpc")
        .arg(net.t.rpc_url(0))
        .arg("--genesis")
        .arg(net.t.genesis_path())
        .arg("--key")
        .arg(net.t.dir.join("client-key.json"))
        .arg("--module")
        .arg(&module)
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--chromium")
        .arg(&chromium)
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
    assert_eq!(s["timeline"], serde_json::json!(["accepted", "executed", "included", "finalized"]), "{pretty}");
    // The job the page followed is final on the node, with the output the page showed.
    let c = net.rpc(0).await;
    let job = c.job_get(hash(&s["job_id"])).await.expect("job_get");
    assert!(job.stage >= JobStage::Finalized, "{job:?}");
    assert_eq!(job.result.expect("a result").output, b"HELLO FROM THE EXPLORER");
    // Verified for the honest proof, against the node's chain id; refused for the tampered
    // one with the provider's signature named; refused against another genesis.
    let verified = s["verified_text"].as_str().unwrap_or_default();
    assert!(verified.contains("verified") && verified.contains(&net.genesis.chain_id().to_hex()[..8]), "{pretty}");
    let tampered = s["tampered_error"].as_str().unwrap_or_default();
    assert!(tampered.starts_with("VerifyError: receipt: bad signature"), "{pretty}");
    assert!(s["wrong_genesis_error"].as_str().is_some_and(|e| e.starts_with("VerifyError")), "{pretty}");
    // The browser example page ran its job and verified it on the client's browser bundle.
    let example = s["browser_example"].as_array().map(|l| l.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>());
    assert!(example.as_ref().is_some_and(|l| l.contains(&"receipt proof verified in this browser")), "{pretty}");
    for shot in s["screenshots"].as_array().expect("screenshots") {
        let p = PathBuf::from(shot.as_str().expect("a path"));
        assert!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 0), "no screenshot {}", p.display());
    }
}
