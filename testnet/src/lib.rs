//! Local Cairn testnets: keys and genesis generated in a folder, nodes launched as separate
//! `cairn node run` processes on loopback, and the demo and benchmark that drive them.
//!
//! Layout of a testnet folder:
//!
//! ```text
//! genesis.json          the chain (V validators of power 10, N providers, funded clients)
//! client-key.json       the client that pays for jobs
//! clients/<i>.json      more funded clients, when asked for (the load generator's accounts)
//! nodes/<i>/node-key.json, node.log, node.json (addresses bound), db/
//! nodes/<i>/node.toml    optional: extra node configuration, passed as `--config` if present
//! ```
//!
//! Nodes `0..V` validate (with one validator it finalizes alone; with several they run BFT
//! consensus); nodes `V..V+N` are providers. Every node binds port 0 (RPC and libp2p) and
//! writes what it bound to `node.json`; later nodes bootstrap to all earlier ones (with
//! [`Spec::discover`], to the first one only, and find the others through the DHT).
//!
//! With [`Spec::netns`] each node runs in its own network namespace with its own address, and
//! the links between them have the delays, jitter and loss of a topology file ([`netns`],
//! [`netem`]; root required).
//!
//! [`load`] is the open-loop load generator (`cairn testnet bench --rate`), [`plot`] draws
//! its sweeps.

mod demo;
pub mod load;
pub mod netem;
pub mod netns;
pub mod plot;
pub mod sync_bench;
mod sys;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_ledger::{ChainParams, FORMAT_VERSION, Genesis, GenesisAccount, GenesisProvider, Keypair, Validator};
use cairn_rpc::CairnApiClient;
use serde::Deserialize;

pub use demo::{bench, demo};

/// A node's optional configuration file in its folder (`cairn node run --config`).
pub const NODE_CONFIG_FILE: &str = "node.toml";
/// How long a node may take to start and write its addresses.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The client's balance at genesis (each extra client's too).
pub const CLIENT_BALANCE: u64 = 1_000_000_000_000_000;
/// The most extra clients (`clients/<i>.json`) a testnet's genesis funds: with the client and
/// the providers' stakes, their balances stay far below `u64::MAX`.
pub const CLIENTS_MAX: usize = 4_096;
/// Providers' price per unit of fuel at genesis.
pub const PROVIDER_PRICE: u64 = 1;
/// Providers' stake at genesis.
pub const PROVIDER_STAKE: u64 = 1_000_000;
/// Jobs a testnet provider takes at once (on chain; the node runs `executions_max` at a time).
pub const PROVIDER_CAPACITY: u32 = 10_000;
/// The most provider nodes a local testnet starts: a node process takes 30–60 MiB when the
/// chain is quiet, so 124 providers and 4 validators fit in a few GiB (BENCHMARKS.md, "Fifty
/// nodes").
pub const PROVIDERS_MAX: usize = 124;
/// The most validator nodes a local testnet starts.
pub const VALIDATORS_MAX: usize = 32;
/// Each testnet validator's voting power.
pub const VALIDATOR_POWER: u64 = 10;

/// What testnet to run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The testnet folder.
    pub dir: PathBuf,
    /// Validator nodes (at least 1): nodes `0..validators`.
    pub validators: usize,
    /// Provider nodes besides the validators.
    pub providers: usize,
    /// Block time of the validator.
    pub block_time_ms: u64,
    /// Provider nodes generated (keys in genesis) but left for the operator to start by hand;
    /// they are the last ones.
    pub manual_providers: usize,
    /// Test only: the first this many providers sign wrong outputs.
    pub lying_providers: usize,
    /// Test only: the first this many validators sign a conflicting vote for each vote.
    pub equivocating_validators: usize,
    /// Test only: validator `i` aborts once right after logging one of its votes at height
    /// `h` (`Some((i, h))`), before sending it.
    pub crash_after_wal_append: Option<(usize, u64)>,
    /// Test only: every node is cut off from its peers while `<home>/test-isolated` exists
    /// (see [`Testnet::isolate`]).
    pub partition_switch: bool,
    /// Each node is given one bootstrap address (the first running node's) instead of every
    /// other node's, and finds the rest through the DHT.
    pub discover: bool,
    /// The regions the providers declare at genesis, in turn: provider `i` is in
    /// `provider_regions[i % len]` (none given: no region).
    pub provider_regions: Vec<String>,
    /// Each node in its own network namespace, the links between them shaped by this topology
    /// (and, without [`Spec::provider_regions`], the providers in its regions).
    pub netns: Option<netem::Topology>,
    /// The chain parameters written into the genesis.
    pub params: ChainParams,
    /// The `cairn` binary to launch.
    pub binary: PathBuf,
}

impl Spec {
    /// `validators` validators and `providers` providers in `dir`, launched from `binary`, with
    /// a 50 ms block time, the default chain parameters and every other setting off.
    pub fn new(dir: PathBuf, validators: usize, providers: usize, binary: PathBuf) -> Spec {
        Spec {
            dir,
            validators,
            providers,
            block_time_ms: 50,
            manual_providers: 0,
            lying_providers: 0,
            equivocating_validators: 0,
            crash_after_wal_append: None,
            partition_switch: false,
            discover: false,
            provider_regions: vec![],
            netns: None,
            params: ChainParams::default(),
            binary,
        }
    }
}

/// The bootstrap addresses node `i` is started with, given the nodes started so far: all of
/// them, or with [`Spec::discover`] the first one's (the DHT finds the rest).
fn bootstrap_for(spec: &Spec, nodes: &[Bound], i: usize) -> Vec<String> {
    let mut others = nodes.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, b)| b);
    if spec.discover {
        others.next().map(|b| b.p2p.clone()).unwrap_or_default()
    } else {
        others.flat_map(|b| b.p2p.clone()).collect()
    }
}

/// What a node wrote about itself (`node.json`).
#[derive(Clone, Debug, Deserialize)]
pub struct Bound {
    /// Process id.
    pub pid: u32,
    /// RPC address.
    pub rpc: SocketAddr,
    /// libp2p addresses with peer id.
    pub p2p: Vec<String>,
    /// Prometheus metrics address (`GET /metrics`), when served.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
}

/// A running testnet. Dropping it stops its nodes, unless detached.
pub struct Testnet {
    /// The folder.
    pub dir: PathBuf,
    spec: Spec,
    children: Vec<Option<Child>>,
    /// The nodes' addresses, by index.
    pub nodes: Vec<Bound>,
    detached: bool,
    /// The network router of a `--netns` testnet.
    router: Option<Child>,
}

pub(crate) fn node_home(dir: &Path, i: usize) -> PathBuf {
    dir.join("nodes").join(i.to_string())
}

fn extra_client_path(dir: &Path, i: usize) -> PathBuf {
    dir.join("clients").join(format!("{i}.json"))
}

/// Creates keys and genesis in `spec.dir` unless they already exist there.
pub fn generate(spec: &Spec) -> anyhow::Result<()> {
    generate_with_clients(spec, 0)
}

/// Like [`generate`], and funds `clients` more client accounts at genesis (each with
/// [`CLIENT_BALANCE`]), their keys in `clients/<i>.json`. An existing testnet is left as it is.
pub fn generate_with_clients(spec: &Spec, clients: usize) -> anyhow::Result<()> {
    anyhow::ensure!(spec.providers <= PROVIDERS_MAX, "at most {PROVIDERS_MAX} providers");
    anyhow::ensure!(clients <= CLIENTS_MAX, "at most {CLIENTS_MAX} extra clients");
    anyhow::ensure!((1..=VALIDATORS_MAX).contains(&spec.validators), "1 to {VALIDATORS_MAX} validators");
    let genesis_path = spec.dir.join("genesis.json");
    if genesis_path.exists() {
        return Ok(());
    }
    anyhow::ensure!(spec.manual_providers <= spec.providers, "more manual providers than providers");
    std::fs::create_dir_all(&spec.dir).with_context(|| format!("cannot create {}", spec.dir.display()))?;
    let mut keys = Vec::new();
    for i in 0..spec.validators + spec.providers {
        let home = node_home(&spec.dir, i);
        std::fs::create_dir_all(&home)?;
        let key = Keypair::generate();
        key.save(&home.join("node-key.json"))?;
        keys.push(key);
    }
    let client = Keypair::generate();
    client.save(&spec.dir.join("client-key.json"))?;
    let mut accounts = vec![GenesisAccount { address: client.public(), balance: CLIENT_BALANCE }];
    if clients > 0 {
        let folder = spec.dir.join("clients");
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    }
    for i in 0..clients {
        let key = Keypair::generate();
        key.save(&extra_client_path(&spec.dir, i))?;
        accounts.push(GenesisAccount { address: key.public(), balance: CLIENT_BALANCE });
    }
    let genesis = Genesis {
        version: FORMAT_VERSION,
        chain_name: "cairn-local".into(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        validators: keys[..spec.validators]
            .iter()
            .map(|k| Validator { address: k.public(), power: VALIDATOR_POWER })
            .collect(),
        accounts,
        providers: keys[spec.validators..]
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisProvider {
                address: k.public(),
                price_per_fuel: PROVIDER_PRICE,
                stake: PROVIDER_STAKE,
                capacity: PROVIDER_CAPACITY,
                region: provider_region(spec, i).to_owned(),
            })
            .collect(),
        params: spec.params.clone(),
    };
    genesis.save(&genesis_path)?;
    Ok(())
}

/// The region provider `i` (counted among the providers) declares at genesis: from
/// [`Spec::provider_regions`], else where the topology of a `--netns` testnet puts it.
pub fn provider_region(spec: &Spec, i: usize) -> &str {
    match &spec.netns {
        _ if !spec.provider_regions.is_empty() => &spec.provider_regions[i % spec.provider_regions.len()],
        Some(topology) => topology.node_region(spec.validators, spec.validators + i),
        None => "",
    }
}

/// Reads a node's `node.json`.
pub fn read_bound(home: &Path) -> anyhow::Result<Option<Bound>> {
    let path = home.join("node.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("bad {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl Testnet {
    /// How many of the nodes (the first ones) are validators.
    pub fn validators(&self) -> usize {
        self.spec.validators
    }

    /// Whether node `i` is running (not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.children.get(i).is_some_and(Option::is_some)
    }

    /// The client key that pays for jobs.
    pub fn client_key(&self) -> anyhow::Result<Keypair> {
        Ok(Keypair::load(&self.dir.join("client-key.json"))?)
    }

    /// The extra clients funded at genesis (`clients/<i>.json`, in order; see
    /// [`generate_with_clients`]).
    pub fn extra_client_keys(&self) -> anyhow::Result<Vec<Keypair>> {
        let mut keys = Vec::new();
        for i in 0..CLIENTS_MAX {
            let path = extra_client_path(&self.dir, i);
            if !path.exists() {
                break;
            }
            keys.push(Keypair::load(&path)?);
        }
        Ok(keys)
    }

    /// The genesis.
    pub fn genesis(&self) -> anyhow::Result<Genesis> {
        Ok(Genesis::load(&self.dir.join("genesis.json"))?)
    }

    /// The genesis file's path.
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }

    /// The RPC URL of node `i`.
    pub fn rpc_url(&self, i: usize) -> String {
        format!("ws://{}", self.nodes[i].rpc)
    }

    /// Leaves the nodes running after this value is dropped.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Kills node `i` with SIGKILL (no clean shutdown) and waits for it to exit.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[i].take() {
            child.kill().context("kill")?;
            child.wait().context("wait")?;
        }
        Ok(())
    }

    /// Asks node `i` to stop (SIGTERM) and waits up to `timeout` for it to exit; returns its
    /// exit status and how long it took (then it can be [`Testnet::restart`]ed). A node still
    /// running after `timeout` is killed, and that is an error.
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> anyhow::Result<(std::process::ExitStatus, Duration)> {
        let mut child = self.children[i].take().with_context(|| format!("node {i} is not running"))?;
        let asked = Instant::now();
        terminate(child.id());
        loop {
            if let Some(status) = child.try_wait().context("wait")? {
                return Ok((status, asked.elapsed()));
            }
            if asked.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {i} did not stop within {timeout:?} of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether node `i`'s process has exited by itself (then it can be [`Testnet::restart`]ed).
    pub fn exited(&mut self, i: usize) -> anyhow::Result<bool> {
        let Some(child) = self.children[i].as_mut() else { return Ok(false) };
        if child.try_wait().context("wait")?.is_some() {
            self.children[i] = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Cuts node `i` off from every peer (`isolated`) or lets it reconnect, with
    /// [`Spec::partition_switch`]: the node notices within a second.
    pub fn isolate(&self, i: usize, isolated: bool) -> anyhow::Result<()> {
        anyhow::ensure!(self.spec.partition_switch, "the testnet was started without the partition switch");
        let marker = node_home(&self.dir, i).join("test-isolated");
        if isolated {
            std::fs::write(&marker, b"").with_context(|| format!("cannot write {}", marker.display()))
        } else {
            match std::fs::remove_file(&marker) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("cannot delete {}", marker.display())),
            }
        }
    }

    /// Starts node `i` again (after [`Testnet::kill`]) and waits until it serves RPC.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.children[i].is_none(), "node {i} is still running");
        let bootstrap = bootstrap_for(&self.spec, &self.nodes, i);
        let _ = std::fs::remove_file(node_home(&self.dir, i).join("node.json"));
        let (child, bound) = start_node(&self.spec, i, &bootstrap).await?;
        self.children[i] = Some(child);
        self.nodes[i] = bound;
        Ok(())
    }

    /// Starts the first node not started yet (a manual provider) and waits until it serves RPC.
    pub async fn start_next(&mut self) -> anyhow::Result<()> {
        let i = self.children.len();
        anyhow::ensure!(node_home(&self.dir, i).is_dir(), "the testnet has no node {i}");
        let bootstrap = bootstrap_for(&self.spec, &self.nodes, i);
        let _ = std::fs::remove_file(node_home(&self.dir, i).join("node.json"));
        let (child, bound) = start_node(&self.spec, i, &bootstrap).await?;
        self.children.push(Some(child));
        self.nodes.push(bound);
        Ok(())
    }

    /// The network plan of a `--netns` testnet.
    pub fn netns_plan(&self) -> anyhow::Result<Option<netns::Plan>> {
        netns::Plan::load(&self.dir)
    }

    /// Stops every node (SIGTERM, then SIGKILL after a grace period), then the network router
    /// of a `--netns` testnet.
    pub fn stop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            terminate(child.id());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for slot in self.children.iter_mut() {
            if let Some(mut child) = slot.take() {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(mut router) = self.router.take() {
            netns::stop_router(&self.dir);
            let _ = router.kill();
            let _ = router.wait();
        }
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(node_home(&self.dir, i).join("node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// The worker threads of each node's async runtime when `nodes` nodes share this machine: its
/// share of the cores, at least one (each node has threads of its own besides, for block
/// execution, signature checks and RPC). Measured with six nodes on two cores, one worker each
/// instead of two: node CPU per job −3.5 % at half the peak, and no lower a peak (BENCHMARKS.md,
/// "One async worker per node on a shared machine").
pub fn async_threads(nodes: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / nodes.max(1)).clamp(1, usize::from(ASYNC_THREADS_MAX))
}

/// The most worker threads a node's async runtime takes (`cairn node run --async-threads`).
pub const ASYNC_THREADS_MAX: u16 = 256;

async fn start_node(spec: &Spec, i: usize, bootstrap: &[String]) -> anyhow::Result<(Child, Bound)> {
    let home = node_home(&spec.dir, i);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .with_context(|| format!("cannot open {}", home.join("node.log").display()))?;
    let validators = spec.validators.max(1);
    let is_validator = i < validators;
    let plan = if spec.netns.is_some() { netns::Plan::load(&spec.dir)? } else { None };
    let (mut cmd, address) = match &plan {
        // In its namespace, on its own address.
        Some(plan) => {
            let node = plan.nodes.get(i).with_context(|| format!("the network plan has no node {i}"))?;
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", &node.netns]).arg(&spec.binary);
            (cmd, node.ip.to_string())
        }
        None => (std::process::Command::new(&spec.binary), "127.0.0.1".to_owned()),
    };
    cmd.args(["node", "run", "--listen", &format!("/ip4/{address}/tcp/0")])
        .args(["--rpc", &format!("{address}:0"), "--metrics", &format!("{address}:0")])
        .arg("--home")
        .arg(&home)
        .arg("--genesis")
        .arg(spec.dir.join("genesis.json"))
        .arg("--block-time-ms")
        .arg(spec.block_time_ms.to_string())
        .args(["--async-threads", &async_threads(spec.validators.max(1) + spec.providers).to_string()])
        .arg(if is_validator { "--validator" } else { "--provider" })
        .args((!is_validator && i - validators < spec.lying_providers).then_some("--test-wrong-results"))
        .args((is_validator && i < spec.equivocating_validators).then_some("--test-equivocate"))
        .args(spec.partition_switch.then_some("--test-partition"))
        .args(
            home.join(NODE_CONFIG_FILE)
                .exists()
                .then(|| ["--config".into(), home.join(NODE_CONFIG_FILE)])
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    for b in bootstrap {
        cmd.arg("--bootstrap").arg(b);
    }
    if let Some((node, height)) = spec.crash_after_wal_append
        && node == i
        && is_validator
    {
        cmd.arg("--test-crash-after-wal-append-at-height").arg(height.to_string());
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a Ctrl-C meant for the CLI does not kill detached nodes.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot start {}", spec.binary.display()))?;
    let deadline = Instant::now() + NODE_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("node {i} exited with {status} while starting; see {}", home.join("node.log").display());
        }
        if let Some(bound) = read_bound(&home)?
            && bound.pid == child.id()
            && !bound.p2p.is_empty()
            && let Ok(c) = cairn_rpc::client::connect(&bound.rpc.to_string()).await
            && c.node_info().await.is_ok()
        {
            return Ok((child, bound));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("node {i} did not start within {NODE_START_TIMEOUT:?}; see {}", home.join("node.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Generates the testnet if needed and starts its nodes; returns once every node serves RPC
/// and the validator sees every provider.
pub async fn up(spec: &Spec) -> anyhow::Result<Testnet> {
    generate(spec)?;
    let genesis = Genesis::load(&spec.dir.join("genesis.json"))?;
    // An existing testnet keeps the validators its genesis lists.
    let spec = &Spec { validators: genesis.validators.len(), ..spec.clone() };
    let count = genesis.validators.len() + genesis.providers.len() - spec.manual_providers.min(genesis.providers.len());
    let mut t = Testnet {
        dir: spec.dir.clone(),
        spec: spec.clone(),
        children: Vec::new(),
        nodes: Vec::new(),
        detached: false,
        router: None,
    };
    if let Some(topology) = &spec.netns {
        netns::require_root()?;
        let all = genesis.validators.len() + genesis.providers.len();
        netns::Plan::new(&spec.dir, topology.clone(), genesis.validators.len(), all)?.save(&spec.dir)?;
        t.router = Some(netns::start_router(&spec.dir, &spec.binary)?);
    } else {
        let _ = std::fs::remove_file(spec.dir.join(netns::PLAN_FILE));
    }
    for i in 0..count {
        let _ = std::fs::remove_file(node_home(&spec.dir, i).join("node.json"));
        let bootstrap = bootstrap_for(spec, &t.nodes, i);
        let (child, bound) = start_node(spec, i, &bootstrap).await?;
        t.children.push(Some(child));
        t.nodes.push(bound);
    }
    // Node 0 waits for every other node, but those a --netns topology cuts from it.
    let cut = spec.netns.as_ref().map_or(0, |topology| (1..count).filter(|i| topology.is_cut(0, *i)).count());
    wait_for_peers(&t, count - 1 - cut).await?;
    Ok(t)
}

/// Waits until every node has at least `min` peers... of the validator; providers at least one.
pub async fn wait_for_peers(t: &Testnet, providers: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + NODE_START_TIMEOUT;
    for i in 0..t.nodes.len() {
        let c = cairn_rpc::client::connect(&t.rpc_url(i)).await?;
        let want = if i == 0 { providers } else { 1 };
        loop {
            let info = c.node_info().await?;
            if info.peers >= want {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {i} has {} peers, expected at least {want}", info.peers);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Stops the nodes of the testnet in `dir` (started by `up`).
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let nodes = dir.join("nodes");
    let entries = std::fs::read_dir(&nodes).with_context(|| format!("no testnet in {}", dir.display()))?;
    let mut stopped = 0;
    for entry in entries {
        let home = entry?.path();
        if let Some(b) = read_bound(&home)? {
            // A stale node.json (the node crashed) may name a pid now used by another process:
            // signal it only if it is still a `cairn node` serving this home.
            if is_node_of(b.pid, &home) {
                terminate(b.pid);
                stopped += 1;
            }
            let _ = std::fs::remove_file(home.join("node.json"));
        }
    }
    println!("stopped {stopped} node(s)");
    if netns::Plan::load(dir)?.is_some() {
        netns::stop_router(dir);
        println!("stopped the network router and deleted the namespaces");
    }
    Ok(())
}

/// Whether process `pid` is a `cairn node run` with `--home` `home` (Linux: its command line).
fn is_node_of(pid: u32, home: &Path) -> bool {
    let Ok(cmdline) = std::fs::read_to_string(format!("/proc/{pid}/cmdline")) else { return false };
    let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else { return false };
    let Ok(home) = home.canonicalize() else { return false };
    let args: Vec<&str> = cmdline.split('\0').collect();
    args.contains(&"node")
        && args.windows(2).any(|w| w[0] == "--home" && cwd.join(w[1]).canonicalize().is_ok_and(|p| p == home))
}

/// Measures the round trips between the running nodes of the `--netns` testnet in `dir`
/// ([`netns::measure_rtts`], `samples` handshakes per pair).
pub fn measure_rtts(dir: &Path, samples: usize) -> anyhow::Result<Vec<netns::RttSample>> {
    let plan = netns::Plan::load(dir)?.context("this testnet was not started with --netns")?;
    let mut targets = Vec::new();
    for i in 0..plan.nodes.len() {
        match read_bound(&node_home(dir, i))? {
            Some(b) => targets.push(b.rpc),
            None => break,
        }
    }
    anyhow::ensure!(targets.len() >= 2, "fewer than two nodes of {} are running", dir.display());
    netns::measure_rtts(&plan, &targets, samples)
}

/// Prints each node's role, addresses, peers and height.
pub async fn print_status(dir: &Path) -> anyhow::Result<()> {
    let nodes = dir.join("nodes");
    let mut homes: Vec<PathBuf> = std::fs::read_dir(&nodes)
        .with_context(|| format!("no testnet in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    homes.sort();
    for home in homes {
        let name = home.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(b) = read_bound(&home)? else {
            println!("node {name}: stopped");
            continue;
        };
        match cairn_rpc::client::connect(&b.rpc.to_string()).await {
            Ok(c) => match c.node_info().await {
                Ok(info) => println!(
                    "node {name}: {} height {} peers {} rpc ws://{} p2p {}",
                    if info.validator { "validator" } else { "provider " },
                    info.height,
                    info.peers,
                    b.rpc,
                    b.p2p.first().map(String::as_str).unwrap_or("-")
                ),
                Err(e) => println!("node {name}: not answering ({e})"),
            },
            Err(_) => println!("node {name}: not running (pid {} gone?)", b.pid),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_share_of_the_cores_and_at_least_one_worker() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let all = cores.min(usize::from(ASYNC_THREADS_MAX));
        assert_eq!(async_threads(1), all, "never past what the node takes");
        assert_eq!(async_threads(0), all, "no nodes counts as one");
        assert_eq!(async_threads(cores), 1);
        assert_eq!(async_threads(cores + 1), 1, "never none");
        assert_eq!(async_threads(6 * cores), 1);
        if cores >= 4 {
            assert_eq!(async_threads(2), cores / 2);
        }
    }
}
