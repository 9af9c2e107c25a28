//! Shared helpers: start a testnet of real node processes in a temporary folder.

use std::time::Duration;

use cairn_contracts::State;
use cairn_ledger::{Genesis, Hash, Keypair, PublicKey, SignedOffer};
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};
use cairn_testnet::{Spec, Testnet};
use jsonrpsee::ws_client::WsClient;

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Net {
    pub t: Testnet,
    pub genesis: Genesis,
    pub client_key: Keypair,
    _dir: tempfile::TempDir,
}

/// One validator and `providers` providers.
pub async fn start(providers: usize) -> Net {
    start_with(providers, 0).await
}

/// One validator and `providers` providers, the first `lying` of which sign wrong outputs.
pub async fn start_with(providers: usize, lying: usize) -> Net {
    start_spec(1, providers, lying).await
}

/// `validators` validators (BFT when more than one) and `providers` providers.
pub async fn start_validators(validators: usize, providers: usize) -> Net {
    start_spec(validators, providers, 0).await
}

async fn start_spec(validators: usize, providers: usize, lying: usize) -> Net {
    start_custom(validators, providers, lying, |_| {}).await
}

/// `validators` validators and `providers` providers, with test switches set by `adjust`.
pub async fn start_custom(validators: usize, providers: usize, lying: usize, adjust: impl FnOnce(&mut Spec)) -> Net {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = Spec {
        lying_providers: lying,
        ..Spec::new(dir.path().to_path_buf(), validators, providers, env!("CARGO_BIN_EXE_cairn").into())
    };
    adjust(&mut spec);
    let t = cairn_testnet::up(&spec).await.expect("testnet starts");
    let genesis = t.genesis().expect("genesis");
    let client_key = t.client_key().expect("client key");
    Net { t, genesis, client_key, _dir: dir }
}

impl Net {
    /// Runs `jobs` jobs (the uppercase module, inputs `"<tag> <i>"`) through node `via`, each to
    /// finality.
    pub async fn run_jobs(&self, via: usize, jobs: usize, tag: &str) {
        let c = self.rpc(via).await;
        let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
        let mut runs = Vec::new();
        for i in 0..jobs {
            let input = format!("{tag} {i}").into_bytes();
            let offer = client::sign_offer(&c, &self.client_key, module_id, input, OfferTerms::default(), None)
                .await
                .expect("offer");
            runs.push(client::submit(&c, offer).await.expect("submit"));
        }
        for mut watch in runs {
            watch
                .until(cairn_rpc::JobStage::Finalized, TIMEOUT, |_| {})
                .await
                .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()));
        }
    }

    pub async fn rpc(&self, i: usize) -> WsClient {
        client::connect(&self.t.rpc_url(i)).await.expect("rpc connects")
    }

    pub fn provider_key(&self, i: usize) -> PublicKey {
        Keypair::load(&self.t.dir.join("nodes").join(i.to_string()).join("node-key.json"))
            .expect("provider key")
            .public()
    }

    /// Signs offers with successive inputs until one is assigned to `provider`.
    pub async fn offer_for(&self, c: &WsClient, module_id: Hash, provider: PublicKey, tag: &str) -> SignedOffer {
        let state = State::from_genesis(&self.genesis).expect("genesis state");
        for i in 0..256 {
            let input = format!("{tag} {i}").into_bytes();
            let offer = client::sign_offer(c, &self.client_key, module_id, input, OfferTerms::default(), None)
                .await
                .expect("sign offer");
            if state.assignment(&offer.job_id(), offer.offer.max_price, &offer.offer.placement, 1) == vec![provider] {
                return offer;
            }
        }
        panic!("no offer assigned to {provider} in 256 tries");
    }

    /// Node `i`'s head height.
    pub async fn height(&self, i: usize) -> u64 {
        self.rpc(i).await.chain_head().await.expect("chain_head").height
    }

    /// Waits until node `i` reaches `height`.
    pub async fn wait_height(&self, i: usize, height: u64) {
        let c = self.rpc(i).await;
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let h = c.chain_head().await.expect("chain_head").height;
            if h >= height {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "node {i} stuck at {h}, wanted {height}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn logs(&self) -> String {
        (0..self.t.nodes.len()).map(|i| format!("--- node {i} ---\n{}\n", self.t.log_tail(i, 30))).collect()
    }
}

pub fn uppercase_module() -> Vec<u8> {
    cairn_vm::fixtures::uppercase_wasm()
}

pub fn code_of(e: &jsonrpsee::core::ClientError) -> Option<i32> {
    match e {
        jsonrpsee::core::ClientError::Call(obj) => Some(obj.code()),
        _ => None,
    }
}

/// Value conservation checked from outside, through RPC and state proofs alone: at node
/// `via`'s head H, every account's balance, every provider's stake (bonded and unbonding),
/// and what every job holds (escrow, forfeited stake, a challenger's bond) — each read from a
/// state proof at H verified against the genesis — plus every fee burned by the blocks up to
/// H, is exactly the genesis supply. Returns H.
pub async fn assert_value_conserved(net: &Net, via: usize) -> u64 {
    use std::collections::BTreeSet;

    use cairn_contracts::{Account, Job, JobPhase, Provider, StateKey};
    use cairn_ledger::{Action, Transaction};

    let c = net.rpc(via).await;
    let height = c.chain_head().await.expect("chain_head").height;
    let g = &net.genesis;
    let supply: u128 = g.accounts.iter().map(|a| u128::from(a.balance)).sum::<u128>()
        + g.providers.iter().map(|p| u128::from(p.stake)).sum::<u128>();

    // Everyone and every job the chain has seen, and the fees it burned.
    let mut addresses: BTreeSet<PublicKey> = g.accounts.iter().map(|a| a.address).collect();
    addresses.extend(g.providers.iter().map(|p| p.address));
    addresses.extend(g.validators.iter().map(|v| v.address));
    let mut jobs = BTreeSet::new();
    let mut burned: u128 = 0;
    for h in 1..=height {
        let block = c.chain_get_block(h).await.expect("chain_getBlock");
        for tx in &block.txs {
            match tx {
                Transaction::Offer(o) => {
                    burned += u128::from(o.offer.fee);
                    addresses.insert(o.offer.client);
                    jobs.insert(o.job_id());
                }
                Transaction::Result(r) => {
                    addresses.insert(r.claim.provider);
                }
                Transaction::Account(t) => {
                    burned += u128::from(t.tx.fee);
                    addresses.insert(t.tx.sender);
                    if let Action::Transfer { to, .. } = t.tx.action {
                        addresses.insert(to);
                    }
                }
                Transaction::Resolve { .. } => {}
            }
        }
    }

    // Each value read through a proof checked against the genesis, at H.
    let proven = |key: StateKey| {
        let c = &c;
        async move {
            let proof = c.state_get_proof(hex::encode(key.to_bytes()), Some(height)).await.expect("state_getProof");
            let (value, at) = proof.verify(g).unwrap_or_else(|e| panic!("the proof of {key:?} verifies: {e}"));
            assert_eq!(at, height, "proved at the height asked");
            value
        }
    };
    let mut held: u128 = 0;
    for address in &addresses {
        if let Some(bytes) = proven(StateKey::Account(*address)).await {
            held += u128::from(borsh::from_slice::<Account>(&bytes).expect("an account").balance);
        }
        if let Some(bytes) = proven(StateKey::Provider(*address)).await {
            let p: Provider = borsh::from_slice(&bytes).expect("a provider");
            held += u128::from(p.stake) + p.unbonding.iter().map(|(_, a)| u128::from(*a)).sum::<u128>();
        }
    }
    for job_id in &jobs {
        let Some(bytes) = proven(StateKey::Job(*job_id)).await else { continue };
        let j: Job = borsh::from_slice(&bytes).expect("a job");
        held += match j.phase {
            JobPhase::Open | JobPhase::Disputed => u128::from(j.escrow) + u128::from(j.forfeit),
            JobPhase::Completed => u128::from(j.escrow),
            JobPhase::Challenged => u128::from(j.escrow) + j.challenge.map_or(0, |c| u128::from(c.bond)),
            JobPhase::Expired | JobPhase::Settled | JobPhase::Slashed => 0,
        };
    }
    assert_eq!(
        held + burned,
        supply,
        "at height {height}: {held} held in {} accounts and {} jobs + {burned} burned in fees = the genesis supply",
        addresses.len(),
        jobs.len()
    );
    height
}

/// The Node 22 binary (`CAIRN_NODE`, else `node_modules/node/bin/node` in `CAIRN_NODE22_DIR`
/// or `~/.cache/cairn-node22`), checked to be 22.18 or later (which runs `.ts` files as they
/// are), with each of `deps` (folders below the repository) present; otherwise a panic that
/// says to run `setup`.
pub fn node22(deps: &[&str], setup: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    let node = std::env::var_os("CAIRN_NODE").map(PathBuf::from).unwrap_or_else(|| {
        let dir = std::env::var_os("CAIRN_NODE22_DIR").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/cairn-node22")
        });
        dir.join("node_modules/node/bin/node")
    });
    let version = match std::process::Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!("no Node 22 at {}: {setup}", node.display()),
    };
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!((major, minor) >= (22, 18), "{} is Node {version}, 22.18 or later is needed: {setup}", node.display());
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dep in deps {
        assert!(repo.join(dep).is_dir(), "no {dep}: {setup}");
    }
    node
}

/// Waits for a test script (`child`, its standard error written to `stderr_path`) within
/// `timeout` and reads its summary, the JSON object on the last line of its output: the
/// summary, and the same pretty-printed for messages. A script that fails, times out, or says
/// `"ok": false` fails the test with its log and the testnet's.
pub async fn script_summary(
    child: tokio::process::Child,
    stderr_path: &std::path::Path,
    timeout: Duration,
    net: &Net,
) -> (serde_json::Value, String) {
    let log = || std::fs::read_to_string(stderr_path).unwrap_or_default();
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.expect("the script runs"),
        Err(_) => panic!("the script did not finish within {timeout:?}\n{}\n{}", log(), net.logs()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no summary\n{}\n{}", log(), net.logs()));
    let s: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("the summary is not JSON ({e}): {line}\n{}", log()));
    let pretty = serde_json::to_string_pretty(&s).expect("json");
    assert!(
        out.status.success() && s["ok"] == true,
        "the script failed ({}):\n{pretty}\n{}\n{}",
        out.status,
        log(),
        net.logs()
    );
    (s, pretty)
}
