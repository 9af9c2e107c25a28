//! The `cairn` command line: one binary to run a node (`cairn node run`), create keys, upload
//! modules, submit jobs and follow them to a finalized receipt, verify receipts and state
//! proofs offline, manage accounts and providers, and run a local testnet of node processes
//! (`cairn testnet up|status|down|demo|bench|sync-bench`).
//!
//! This crate is the thin layer over the libraries: [`cairn_node`] runs the node,
//! [`cairn_rpc`]'s client talks to one, [`cairn_testnet`] launches and drives testnets (of
//! this same binary). [`main`] is the binary's entry point; [`Cli`] the arguments it parses.
//! Only this crate links both the node and the testnet tools.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cairn_ledger::{Action, Genesis, Hash, Keypair, Placement, PublicKey, ReceiptProof};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage};
use clap::{Args, Parser, Subcommand};

use cairn_node::NodeConfig;

/// Cairn: verifiable edge compute.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create or show keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Upload modules.
    #[command(subcommand)]
    Module(ModuleCmd),
    /// Store and fetch job data blobs (inputs and outputs larger than a chain carries inline).
    #[command(subcommand)]
    Blob(BlobCmd),
    /// Submit jobs and fetch their results and proofs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Verify receipts offline.
    #[command(subcommand)]
    Receipt(ReceiptCmd),
    /// Query accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Register and manage providers.
    #[command(subcommand)]
    Provider(ProviderCmd),
    /// Prove and verify chain state.
    #[command(subcommand)]
    State(StateCmd),
    /// A local testnet on this machine.
    #[command(subcommand)]
    Testnet(TestnetCmd),
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Create a new key file.
    New {
        /// Where to write it.
        #[arg(long, default_value = "cairn-key.json")]
        out: PathBuf,
    },
    /// Print a key file's public key.
    Show {
        /// The key file.
        path: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Run a node until Ctrl-C or SIGTERM.
    Run(Box<RunArgs>),
    /// Prepare a node's folder: a new key (`node-key.json`, kept if there is one) and a
    /// `node.toml` holding every setting with its documentation and default.
    Init {
        /// The node's data folder (created if needed).
        #[arg(long)]
        home: PathBuf,
        /// A provider: execute the jobs assigned to this key.
        #[arg(long)]
        provider: bool,
        /// A validator: finalize blocks (the key must be a genesis validator).
        #[arg(long)]
        validator: bool,
        /// The chain's genesis file (default: `<home>/genesis.json`).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Peer to dial at start (repeatable).
        #[arg(long)]
        bootstrap: Vec<String>,
        /// Replace an existing `node.toml`.
        #[arg(long)]
        force: bool,
    },
}

/// The most worker threads `--async-threads` gives a node's async runtime (defined with the
/// testnet, which starts nodes with their share of the cores).
pub use cairn_testnet::ASYNC_THREADS_MAX;

#[derive(Args, Debug)]
struct RunArgs {
    /// TOML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder.
    #[arg(long)]
    home: Option<PathBuf>,
    /// Genesis file.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Key file.
    #[arg(long)]
    key: Option<PathBuf>,
    /// libp2p listen multiaddr.
    #[arg(long)]
    listen: Option<String>,
    /// JSON-RPC address.
    #[arg(long)]
    rpc: Option<std::net::SocketAddr>,
    /// Peer to dial at start (repeatable).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// Finalize blocks.
    #[arg(long)]
    validator: bool,
    /// Execute assigned jobs.
    #[arg(long)]
    provider: bool,
    /// Block time in milliseconds.
    #[arg(long)]
    block_time_ms: Option<u64>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address (off by default).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Worker threads of the node's async runtime, which carries its network connections,
    /// timers and tasks (block execution, signature checks and the RPC server have threads of
    /// their own). Default: one per core. Nodes sharing one machine do better with fewer:
    /// each wake-up handed from one worker to another costs a context switch
    /// (`cairn testnet` gives each of its nodes its share of the cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=ASYNC_THREADS_MAX as i64))]
    async_threads: Option<u16>,
    /// Log format: `text`, or `json` — one JSON object a line, with the fields `timestamp`,
    /// `level`, `target`, `message` and the event's own (such as `peer`, `reason`, `height`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// The same as `--log-format json`.
    #[arg(long, hide = true)]
    log_json: bool,
    /// Test only: sign wrong outputs (to exercise challenges and slashing).
    #[arg(long, hide = true)]
    test_wrong_results: bool,
    /// Test only: sign and publish a conflicting vote for each vote (to exercise evidence).
    #[arg(long, hide = true)]
    test_equivocate: bool,
    /// Test only: abort once right after logging an own vote at this height, before sending it.
    #[arg(long, hide = true)]
    test_crash_after_wal_append_at_height: Option<u64>,
    /// Test only: cut off from every peer while `<home>/test-isolated` exists (a partition).
    #[arg(long, hide = true)]
    test_partition: bool,
}

#[derive(Args, Debug, Clone)]
struct RpcArg {
    /// The node's RPC address.
    #[arg(long, env = "CAIRN_RPC", default_value = "ws://127.0.0.1:9944")]
    rpc: String,
}

#[derive(Subcommand, Debug)]
enum ModuleCmd {
    /// Upload a wasm module; prints its id.
    Put {
        /// The module.
        wasm: PathBuf,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

#[derive(Subcommand, Debug)]
enum BlobCmd {
    /// Store a file as a blob (at most 4 MiB) on the node; prints its id. An offer names it as
    /// its input with the id (`job run` does it by itself for an input file larger than the
    /// chain carries inline).
    Put {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Fetch a blob by id (a job's input, or an output a result left in a blob) from the node,
    /// which fetches it from its holders if it has not got it; checks it against the id.
    Get {
        /// The blob's id (SHA-256 of its bytes).
        id: Hash,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

/// A job's input and terms, as `job run` and `job estimate` take them.
#[derive(Args, Debug)]
struct JobArgs {
    /// The input, as text.
    #[arg(long, conflicts_with = "input_file")]
    input: Option<String>,
    /// The input, from a file. One larger than the chain carries inline (`input_bytes_max`)
    /// is stored on the node as a blob (at most 4 MiB), and the offer names it.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// Most fuel the job may use.
    #[arg(long, default_value_t = 100_000_000)]
    fuel_limit: u64,
    /// Highest price per unit of fuel.
    #[arg(long, default_value_t = 1)]
    max_price: u64,
    /// How many providers execute the job (k, 1 to 4); the escrow covers k executions.
    #[arg(long, default_value_t = 1)]
    redundancy: u8,
    /// The fee, burned when the offer is included (default: the chain's minimum).
    #[arg(long)]
    fee: Option<u64>,
    /// Rank providers in these regions first (comma-separated; the others follow).
    #[arg(long, value_delimiter = ',', value_parser = parse_region, conflicts_with = "only_region")]
    prefer_region: Vec<String>,
    /// Let only providers in these regions run the job (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_region)]
    only_region: Vec<String>,
}

impl JobArgs {
    /// The input (read from its file if given) and the offer's terms.
    fn input_and_terms(self) -> anyhow::Result<(Vec<u8>, OfferTerms)> {
        let input = read_input(self.input, self.input_file)?;
        let terms = OfferTerms {
            fuel_limit: self.fuel_limit,
            max_price: self.max_price,
            redundancy: self.redundancy,
            fee: self.fee,
            placement: match (self.prefer_region, self.only_region) {
                (prefer, only) if !only.is_empty() => {
                    debug_assert!(prefer.is_empty(), "clap: the two conflict");
                    Placement::Only { regions: only }
                }
                (prefer, _) if !prefer.is_empty() => Placement::Prefer { regions: prefer },
                _ => Placement::Anywhere,
            },
            ..OfferTerms::default()
        };
        terms.placement.check()?;
        Ok((input, terms))
    }
}

#[derive(Subcommand, Debug)]
enum JobCmd {
    /// Upload a module, submit a job, wait for its result and finalized receipt.
    #[command(visible_alias = "submit")]
    Run {
        /// The module.
        wasm: PathBuf,
        /// The client key (pays for the job).
        #[arg(long, env = "CAIRN_KEY", default_value = "cairn-key.json")]
        key: PathBuf,
        #[command(flatten)]
        job: JobArgs,
        /// Where to write the proof.
        #[arg(long)]
        proof_out: Option<PathBuf>,
        /// Where to write the output (default: printed, or for an output left in a blob,
        /// `<job id>.output`).
        #[arg(long)]
        output_file: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Estimate a job without submitting it: the node runs it in its sandbox and says the fuel
    /// it uses, how it ends, what it would cost at the current asks and who would run it, and
    /// whether the offer would be admitted now (and if not, why). Nothing is signed on the
    /// node's side or paid.
    Estimate {
        /// The module (uploaded to the node first); or `--module-id`.
        #[arg(required_unless_present = "module_id", conflicts_with = "module_id")]
        wasm: Option<PathBuf>,
        /// A module already stored on the node.
        #[arg(long)]
        module_id: Option<Hash>,
        /// The client key (whose balance and nonce are checked; the offer is signed locally
        /// only to learn its job id, and the signature is not sent).
        #[arg(long, env = "CAIRN_KEY", default_value = "cairn-key.json")]
        key: PathBuf,
        #[command(flatten)]
        job: JobArgs,
        /// Print the estimate as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Show what a node knows of a job.
    Get {
        /// The job id.
        id: Hash,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Challenge a job's result within its challenge window, with a bond: validators
    /// re-execute the job; a wrong result is slashed to you (bond returned, client refunded), a
    /// right one keeps your bond.
    Challenge {
        /// The job id.
        id: Hash,
        /// The bond (at least the chain's `challenge_bond_min`).
        #[arg(long)]
        bond: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Cancel a pending offer (not in a block yet): sign a transaction with its nonce and a
    /// higher fee that moves nothing, which takes its place; the offer's subscribers get
    /// `dropped`.
    Cancel {
        /// The job id.
        id: Hash,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Fetch a job's receipt proof.
    Proof {
        /// The job id.
        id: Hash,
        /// Whose receipt, for a job with several providers (redundancy k ≥ 2).
        #[arg(long)]
        provider: Option<PublicKey>,
        /// Where to write it (default: `<id>.proof.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

#[derive(Subcommand, Debug)]
enum ReceiptCmd {
    /// Verify a receipt proof offline against a genesis file.
    Verify {
        /// The proof (JSON).
        proof: PathBuf,
        /// The chain's genesis file.
        #[arg(long)]
        genesis: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCmd {
    /// An account's balance and next nonce.
    Get {
        /// The address (hex public key).
        address: PublicKey,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Send funds to another account.
    Transfer {
        /// The recipient.
        #[arg(long)]
        to: PublicKey,
        /// How much.
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Args, Debug, Clone)]
struct TxArgs {
    /// The sending account's key.
    #[arg(long, env = "CAIRN_KEY", default_value = "cairn-key.json")]
    key: PathBuf,
    /// The fee, burned (default: the chain's minimum).
    #[arg(long)]
    fee: Option<u64>,
    #[command(flatten)]
    rpc: RpcArg,
}

#[derive(Subcommand, Debug)]
enum ProviderCmd {
    /// Register this key as a provider (or add stake), with its ask and capacity.
    Register {
        /// Stake to bond from the balance.
        #[arg(long)]
        stake: u64,
        /// Price per unit of fuel.
        #[arg(long)]
        price: u64,
        /// Jobs taken at once.
        #[arg(long, default_value_t = 4)]
        capacity: u32,
        /// Where this provider runs (offers may prefer or require regions); none by default.
        #[arg(long, value_parser = parse_provider_region, default_value = "")]
        region: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Change the ask, the region, or both.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["price", "region"]))]
    Update {
        /// New price per unit of fuel.
        #[arg(long)]
        price: Option<u64>,
        /// New region (`""`: none).
        #[arg(long, value_parser = parse_provider_region)]
        region: Option<String>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Withdraw stake (it returns to the balance after the unbonding period).
    Unbond {
        /// How much.
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// The registered providers.
    List {
        #[command(flatten)]
        rpc: RpcArg,
    },
}

#[derive(Subcommand, Debug)]
enum StateCmd {
    /// Fetch a proof of a state entry at a finalized height.
    Proof {
        /// The state key (hex), e.g. `01<address>` for an account.
        #[arg(long, conflicts_with = "account", required_unless_present = "account")]
        key: Option<String>,
        /// Prove this account's entry.
        #[arg(long)]
        account: Option<PublicKey>,
        /// The height (default: the head).
        #[arg(long)]
        height: Option<u64>,
        /// Where to write it.
        #[arg(long, default_value = "state.proof.json")]
        out: PathBuf,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Verify a state proof offline against a genesis file.
    Verify {
        /// The proof (JSON).
        proof: PathBuf,
        /// The chain's genesis file.
        #[arg(long)]
        genesis: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
struct TestnetArgs {
    /// The testnet's folder.
    #[arg(long, default_value = ".testnet")]
    dir: PathBuf,
    /// Validator nodes (with one, it finalizes alone; with several, BFT consensus).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Provider nodes (besides the validators).
    #[arg(long, default_value_t = 2)]
    providers: usize,
    /// Nodes in all: the validators, and providers for the rest (instead of `--providers`).
    #[arg(long, conflicts_with = "providers")]
    nodes: Option<usize>,
    /// Block time in milliseconds.
    #[arg(long, default_value_t = 100)]
    block_time_ms: u64,
    /// Of the providers, how many to leave for you to start by hand (the last ones).
    #[arg(long, default_value_t = 0)]
    manual: usize,
    /// Give each node only the first node's address: the nodes find each other through the DHT
    /// (by default every node is given every earlier node's).
    #[arg(long)]
    discover: bool,
    /// Regions the providers declare at genesis, given in turn (`eu,us`: the first provider in
    /// `eu`, the second in `us`, the third in `eu`…); none by default.
    #[arg(long, value_delimiter = ',', value_parser = parse_region)]
    provider_regions: Vec<String>,
    /// Run each node in its own network namespace, the links between them shaped by this
    /// topology file (regions, round trips, jitter, loss; see ops/topology-3-regions.toml);
    /// the providers declare the regions it puts them in. Needs root.
    #[arg(long, value_name = "TOPOLOGY")]
    netns: Option<PathBuf>,
}

/// A region's name, checked as the chain checks it.
fn parse_region(s: &str) -> Result<String, String> {
    cairn_ledger::check_region(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
}

/// A provider's region: a region's name, or empty for none.
fn parse_provider_region(s: &str) -> Result<String, String> {
    cairn_ledger::check_provider_region(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
}

#[derive(Subcommand, Debug)]
enum TestnetCmd {
    /// Start a testnet in the background.
    Up(TestnetArgs),
    /// Stop it.
    Down {
        /// The testnet's folder.
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
    },
    /// Show its nodes.
    Status {
        /// The testnet's folder.
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
    },
    /// Start a testnet, run the example jobs, verify every proof, stop it.
    Demo {
        #[command(flatten)]
        net: TestnetArgs,
        /// Folder of example job modules (`*.wasm`).
        #[arg(long, default_value = "examples/jobs/wasm")]
        jobs: PathBuf,
    },
    /// Measure the chain on a fresh testnet. Closed loop (`--jobs`, `--concurrency`):
    /// submit→result and submit→finalized latency over many jobs, a few in flight at once.
    /// Open loop (`--rate` or `--rates`): offers at a fixed rate whatever the answers, then
    /// offered vs accepted vs finalized throughput, latency percentiles, refusals, CPU and
    /// memory per node, in a JSON report (and a plot for a sweep).
    Bench {
        #[command(flatten)]
        net: TestnetArgs,
        /// Closed loop: how many jobs.
        #[arg(long, default_value_t = 200, conflicts_with_all = ["rate", "rates"])]
        jobs: usize,
        /// Closed loop: jobs in flight at once.
        #[arg(long, default_value_t = 1, conflicts_with_all = ["rate", "rates"])]
        concurrency: usize,
        /// Open loop: offers per second.
        #[arg(long, conflicts_with = "rates")]
        rate: Option<f64>,
        /// Open loop, a sweep: offers per second at each point, e.g. `250,500,1000` (a fresh
        /// testnet per rate).
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        /// Open loop: seconds of offers at each rate.
        #[arg(long = "duration", default_value_t = 10.0)]
        duration_s: f64,
        /// Open loop: client accounts funded at genesis, each with one offer in flight at most.
        #[arg(long, default_value_t = cairn_testnet::load::CLIENTS_DEFAULT)]
        clients: usize,
        /// Open loop: at most this many seconds after the last answer to wait for the last jobs'
        /// finalization.
        #[arg(long = "drain", default_value_t = cairn_testnet::load::DRAIN_DEFAULT.as_secs_f64())]
        drain_s: f64,
        /// Open loop: seconds the nodes' CPU is watched after the last answer, to tell when
        /// they are idle again.
        #[arg(long = "settle", default_value_t = cairn_testnet::load::SETTLE_DEFAULT.as_secs_f64())]
        settle_s: f64,
        /// Open loop: the job's module.
        #[arg(long, default_value = "examples/jobs/wasm/uppercase.wasm")]
        module: PathBuf,
        /// Open loop: the JSON report (default: `<dir>/bench/report.json`).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Open loop: the PNG plot, drawn for a sweep or when given (default: the report's path
        /// with `.png`).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Open loop: scrape every node's `/metrics` this often (milliseconds), as a
        /// Prometheus server would, to measure what serving metrics costs.
        #[arg(long)]
        scrape_ms: Option<u64>,
        /// Open loop: record each node's resident memory and data folder every this many
        /// seconds (a long run's timeline, in the report and plotted against jobs finalized).
        #[arg(long)]
        sample_s: Option<f64>,
        /// Open loop: the offers prefer providers in these regions (comma-separated), e.g. the
        /// client's region of a `--netns` testnet.
        #[arg(long, value_delimiter = ',', value_parser = parse_region)]
        prefer_region: Vec<String>,
    },
    /// Measure how long a node joining a long chain takes to reach its head: restoring the
    /// state from its peers (state sync), then replaying every block. A fresh testnet (one
    /// validator, one provider, and the joiner) is loaded with `--jobs` jobs and grows to
    /// `--blocks` blocks first; a JSON report in `<dir>/sync-bench/report.json`.
    SyncBench {
        /// The testnet's folder.
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
        /// Block time in milliseconds (the validator decides a block every block time).
        #[arg(long, default_value_t = 20)]
        block_time_ms: u64,
        /// Jobs finalized before the join.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// Offers per second while loading.
        #[arg(long, default_value_t = 800.0)]
        rate: f64,
        /// The chain's height before the join.
        #[arg(long, default_value_t = 20_000)]
        blocks: u64,
        /// Client accounts of the load.
        #[arg(long, default_value_t = cairn_testnet::load::CLIENTS_DEFAULT)]
        clients: usize,
        /// Jobs held in flight in the state at the join: a provider that never starts takes
        /// them, so the state to restore holds this many jobs (0: none).
        #[arg(long, default_value_t = 0)]
        held: u64,
        /// The job's module.
        #[arg(long, default_value = "examples/jobs/wasm/uppercase.wasm")]
        module: PathBuf,
        /// The JSON report (default: `<dir>/sync-bench/report.json`).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Measure the round trips between the nodes of a running `--netns` testnet, as the nodes
    /// see them (TCP handshakes from inside each node's namespace), against its topology.
    Rtt {
        /// The testnet's folder.
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
        /// Handshakes per pair of nodes.
        #[arg(long, default_value_t = 10)]
        samples: usize,
        /// Print every pair as JSON instead of the table by regions.
        #[arg(long)]
        json: bool,
    },
    /// Simulate the gossip network in this process at a scale processes cannot reach here:
    /// `--nodes` swarms (the node's own libp2p behaviours on the in-memory transport), each
    /// dialing `--degree` others; measure how an offer-sized and a block-sized message spread.
    Sim {
        /// Nodes.
        #[arg(long, default_value_t = 200)]
        nodes: usize,
        /// Peers each node dials.
        #[arg(long, default_value_t = 8)]
        degree: usize,
        /// Messages of each kind, each from a random node.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Bytes of the offer-sized message.
        #[arg(long, default_value_t = 400)]
        offer_bytes: usize,
        /// Bytes of the block-sized message.
        #[arg(long, default_value_t = 256 << 10)]
        block_bytes: usize,
        /// Milliseconds a node checks a message before forwarding it.
        #[arg(long, default_value_t = 1.0)]
        validation_ms: f64,
        /// Seed of the graph and the publishers.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The nodes' `peers_target`: each prunes its connections above 3 times it, as a node
        /// does (0: no pruning).
        #[arg(long, default_value_t = cairn_node::config::PEERS_TARGET_DEFAULT)]
        peers_target: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The network router of a `--netns` testnet (started by `up`).
    #[command(hide = true)]
    Router {
        /// The testnet's folder.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Before any thread starts (a thread keeps the allocator arena it was given).
    cairn_node::malloc::limit_arenas();
    quiet_on_closed_output();
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Node(NodeCmd::Run(args)) = &cli.command
        && let Some(threads) = args.async_threads
    {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Output to a pipe whose reader has gone (`cairn … | head -1`) ends the program quietly
/// (status 0) rather than with a panic and a backtrace. Rust ignores SIGPIPE, so the failed
/// write reaches `println!`, which panics with this message; restoring SIGPIPE's default
/// would need unsafe code, which the workspace forbids.
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to std") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// How the node writes its log (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, the event's fields at the top level.
    Json,
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,libp2p_gossipsub=error,informalsystems_malachitebft_core_consensus=warn",
        )
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        // Field names are stable: `timestamp`, `level`, `target`, `message` (when the event has
        // one), then the event's own.
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
}

/// What a node started as a provider or a validator says first when this binary is a dev build
/// (`optimized` false): such a build validates, instruments and compiles job modules — possibly
/// hostile ones — and executes blocks many times slower than the release build that
/// `scripts/install.sh` installs. `None` for an optimized build, or a node that is neither.
fn unoptimized_build_warning(config: &NodeConfig, optimized: bool) -> Option<String> {
    let role = match (config.provider, config.validator) {
        _ if optimized => return None,
        (true, true) => "a provider and validator",
        (true, false) => "a provider",
        (false, true) => "a validator",
        (false, false) => return None,
    };
    Some(format!(
        "this cairn is an unoptimized dev build, started as {role}: it validates and compiles job modules \
         (possibly hostile ones) and executes blocks many times slower than a release build; install the \
         optimized binary with scripts/install.sh (docs/OPERATING.md, \"Install\")"
    ))
}

fn testnet_spec(net: &TestnetArgs) -> anyhow::Result<cairn_testnet::Spec> {
    let providers = match net.nodes {
        Some(n) => n
            .checked_sub(net.validators)
            .filter(|p| *p > 0)
            .with_context(|| format!("--nodes {n} leaves no provider beside the {} validator(s)", net.validators))?,
        None => net.providers,
    };
    let binary = std::env::current_exe().context("locating the cairn binary")?;
    Ok(cairn_testnet::Spec {
        block_time_ms: net.block_time_ms,
        manual_providers: net.manual,
        discover: net.discover,
        provider_regions: net.provider_regions.clone(),
        netns: net.netns.as_deref().map(cairn_testnet::netem::Topology::load).transpose()?,
        ..cairn_testnet::Spec::new(net.dir.clone(), net.validators, providers, binary)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keys(KeysCmd::New { out }) => {
            let key = Keypair::generate();
            key.save(&out)?;
            println!("{}", key.public());
            eprintln!("wrote {}", out.display());
        }
        Command::Keys(KeysCmd::Show { path }) => println!("{}", Keypair::load(&path)?.public()),
        Command::Node(NodeCmd::Init { home, provider, validator, genesis, bootstrap, force }) => {
            node_init(&home, NodeConfig { provider, validator, genesis, bootstrap, ..NodeConfig::default() }, force)?;
        }
        Command::Node(NodeCmd::Run(args)) => {
            let config = node_config(*args)?;
            init_logs(config.log_json);
            if let Some(warning) = unoptimized_build_warning(&config, !cfg!(debug_assertions)) {
                tracing::warn!("{warning}");
            }
            cairn_node::run_node(config, cairn_node::shutdown_signal()).await?;
        }
        Command::Module(ModuleCmd::Put { wasm, rpc }) => {
            let bytes = read_module(&wasm)?;
            let c = client::connect(&rpc.rpc).await?;
            println!("{}", c.module_put(hex::encode(bytes)).await?);
        }
        Command::Blob(BlobCmd::Put { file, rpc }) => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let c = client::connect(&rpc.rpc).await?;
            println!("{}", client::put_blob(&c, &bytes).await.with_context(|| format!("{}", file.display()))?);
        }
        Command::Blob(BlobCmd::Get { id, out, rpc }) => {
            let c = client::connect(&rpc.rpc).await?;
            let bytes = client::get_blob(&c, id).await?;
            match out {
                Some(out) => std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
        Command::Job(JobCmd::Run { wasm, key, job, proof_out, output_file, timeout_s, rpc }) => {
            let (input, terms) = job.input_and_terms()?;
            let key = Keypair::load(&key)?;
            let files = RunFiles { proof: proof_out, output: output_file };
            job_run(&rpc.rpc, &key, &wasm, input, terms, files, timeout_s).await?;
        }
        Command::Job(JobCmd::Estimate { wasm, module_id, key, job, json, rpc }) => {
            let (input, mut terms) = job.input_and_terms()?;
            let key = Keypair::load(&key)?;
            let c = client::connect(&rpc.rpc).await?;
            let input = client::place_input(&c, input, &mut terms).await?;
            let module_id = match (module_id, wasm) {
                (Some(id), _) => id,
                (None, Some(wasm)) => c.module_put(hex::encode(read_module(&wasm)?)).await.context("module_put")?,
                (None, None) => anyhow::bail!("give a module file or --module-id"),
            };
            let offer = client::build_offer(&c, key.public(), module_id, input, terms, None).await?;
            let estimate = client::estimate(&c, &key, offer.clone()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&estimate)?);
            } else {
                print!("{}", estimate_summary(&offer, &estimate));
            }
        }
        Command::Job(JobCmd::Get { id, rpc }) => {
            let c = client::connect(&rpc.rpc).await?;
            println!("{}", serde_json::to_string_pretty(&c.job_get(id).await?)?);
        }
        Command::Job(JobCmd::Proof { id, provider, out, rpc }) => {
            let c = client::connect(&rpc.rpc).await?;
            let proof = c.job_proof(id, provider).await?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.proof.json")));
            std::fs::write(&out, serde_json::to_string_pretty(&proof)?)?;
            println!("{}", out.display());
        }
        Command::Receipt(ReceiptCmd::Verify { proof, genesis }) => {
            let text = read_proof_file(&proof)?;
            let proof: ReceiptProof = serde_json::from_str(&text).context("the file is not a receipt proof")?;
            let genesis = Genesis::load(&genesis)?;
            let v = proof.verify(&genesis)?;
            let c = &proof.receipt.claim;
            println!(
                "proof verified: job {} is in block {} finalized by {}/{} voting power",
                v.job_id, v.height, v.signed_power, v.total_power
            );
            println!(
                "  provider {}  status {}  fuel {}  output sha256 {}",
                c.provider, c.status, c.fuel_used, c.output_hash
            );
        }
        Command::Account(AccountCmd::Get { address, rpc }) => {
            let c = client::connect(&rpc.rpc).await?;
            println!("{}", serde_json::to_string_pretty(&c.account_get(address).await?)?);
        }
        Command::Job(JobCmd::Challenge { id, bond, tx }) => send_tx(tx, Action::Challenge { job_id: id, bond }).await?,
        Command::Job(JobCmd::Cancel { id, tx }) => cancel_offer(id, tx).await?,
        Command::Account(AccountCmd::Transfer { to, amount, tx }) => {
            send_tx(tx, Action::Transfer { to, amount }).await?;
        }
        Command::Provider(ProviderCmd::Register { stake, price, capacity, region, tx }) => {
            send_tx(tx, Action::RegisterProvider { stake, price_per_fuel: price, capacity, region }).await?;
        }
        Command::Provider(ProviderCmd::Update { price, region, tx }) => {
            if let Some(price) = price {
                send_tx(tx.clone(), Action::UpdatePrice { price_per_fuel: price }).await?;
            }
            if let Some(region) = region {
                send_tx(tx, Action::UpdateRegion { region }).await?;
            }
        }
        Command::Provider(ProviderCmd::Unbond { amount, tx }) => send_tx(tx, Action::Unbond { amount }).await?,
        Command::Provider(ProviderCmd::List { rpc }) => {
            let c = client::connect(&rpc.rpc).await?;
            println!("{}", serde_json::to_string_pretty(&c.provider_list().await?)?);
        }
        Command::State(StateCmd::Proof { key, account, height, out, rpc }) => {
            let key = match (key, account) {
                (Some(k), _) => k,
                (None, Some(a)) => hex::encode(cairn_contracts::StateKey::Account(a).to_bytes()),
                (None, None) => anyhow::bail!("give --key or --account"),
            };
            let c = client::connect(&rpc.rpc).await?;
            let proof = c.state_get_proof(key, height).await?;
            std::fs::write(&out, serde_json::to_string_pretty(&proof)?)?;
            println!("{}", out.display());
        }
        Command::State(StateCmd::Verify { proof, genesis }) => {
            let text = read_proof_file(&proof)?;
            let proof: cairn_ledger::StateProof =
                serde_json::from_str(&text).context("the file is not a state proof")?;
            let (value, height) = proof.verify(&Genesis::load(&genesis)?)?;
            match value {
                Some(v) => {
                    println!("proof verified: at height {height} key {} = {}", hex::encode(&proof.key), hex::encode(v))
                }
                None => println!("proof verified: at height {height} key {} is absent", hex::encode(&proof.key)),
            }
        }
        Command::Testnet(cmd) => testnet(cmd).await?,
    }
    Ok(())
}

async fn testnet(cmd: TestnetCmd) -> anyhow::Result<()> {
    match cmd {
        TestnetCmd::Up(net) => {
            let t = cairn_testnet::up(&testnet_spec(&net)?).await?;
            t.detach();
            println!(
                "testnet running in {}; stop it with `cairn testnet down --dir {}`",
                net.dir.display(),
                net.dir.display()
            );
            cairn_testnet::print_status(&net.dir).await?;
        }
        TestnetCmd::Down { dir } => cairn_testnet::down(&dir)?,
        TestnetCmd::Sim {
            nodes,
            degree,
            rounds,
            offer_bytes,
            block_bytes,
            validation_ms,
            seed,
            peers_target,
            json,
        } => {
            let opts = cairn_node::gossip_sim::SimOptions {
                nodes,
                degree,
                rounds,
                offer_bytes,
                block_bytes,
                validation: Duration::from_secs_f64(validation_ms.clamp(0.0, 10_000.0) / 1_000.0),
                seed,
                peers_target,
            };
            let report = cairn_node::gossip_sim::run(&opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{nodes} nodes, each dialing {degree}: {:.1} connections per node (at most {}), set up in {:.1} s",
                    report.connections_mean, report.connections_max, report.setup_s
                );
                println!(
                    "{:<6} {:>8} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6}",
                    "kind", "bytes", "reached", "p50 ms", "p90 ms", "max ms", "hops", "max"
                );
                for s in &report.spreads {
                    println!(
                        "{:<6} {:>8} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>6}",
                        s.kind,
                        s.bytes,
                        format!("{}/{}", s.reached, nodes - 1),
                        s.p50_ms,
                        s.p90_ms,
                        s.max_ms,
                        s.hops_p50,
                        s.hops_max
                    );
                }
            }
        }
        TestnetCmd::Router { dir } => cairn_testnet::netns::run_router(&dir).await?,
        TestnetCmd::Rtt { dir, samples, json } => {
            let samples = cairn_testnet::measure_rtts(&dir, samples.max(1))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&samples)?);
            } else {
                println!("{:<20} {:>12} {:>12}", "regions", "topology ms", "measured ms");
                for ((a, b), (expected, measured)) in cairn_testnet::netns::rtt_by_regions(&samples) {
                    println!("{:<20} {expected:>12.1} {measured:>12.1}", format!("{a} – {b}"));
                }
            }
        }
        TestnetCmd::Status { dir } => cairn_testnet::print_status(&dir).await?,
        TestnetCmd::Demo { net, jobs } => cairn_testnet::demo(&testnet_spec(&net)?, &jobs).await?,
        TestnetCmd::Bench {
            net,
            jobs,
            concurrency,
            rate,
            rates,
            duration_s,
            clients,
            drain_s,
            settle_s,
            module,
            report,
            plot,
            scrape_ms,
            sample_s,
            prefer_region,
        } => {
            let rates: Vec<f64> = rate.into_iter().chain(rates).collect();
            if rates.is_empty() {
                cairn_testnet::bench(&testnet_spec(&net)?, jobs, concurrency).await?;
            } else {
                let seconds = |name: &str, s: f64| {
                    anyhow::ensure!(s.is_finite() && s >= 0.0, "--{name} must be a number of seconds (got {s})");
                    Ok(Duration::from_secs_f64(s.min(1e6)))
                };
                let opts = cairn_testnet::load::LoadOptions {
                    rates_per_s: rates,
                    duration: seconds("duration", duration_s)?,
                    clients,
                    drain: seconds("drain", drain_s)?,
                    settle: seconds("settle", settle_s)?,
                    module,
                    report,
                    plot,
                    scrape_every: scrape_ms.map(|ms| Duration::from_millis(ms.max(1))),
                    sample_every: sample_s
                        .map(|s| seconds("sample-s", s))
                        .transpose()?
                        .map(|d| d.max(Duration::from_millis(100))),
                    placement: if prefer_region.is_empty() {
                        Placement::Anywhere
                    } else {
                        Placement::Prefer { regions: prefer_region }
                    },
                };
                cairn_testnet::load::run(&testnet_spec(&net)?, &opts).await?;
            }
        }
        TestnetCmd::SyncBench { dir, block_time_ms, jobs, rate, blocks, clients, held, module, report } => {
            let net = TestnetArgs {
                dir,
                validators: 1,
                providers: 2,
                nodes: None,
                block_time_ms,
                manual: 1,
                discover: false,
                provider_regions: vec![],
                netns: None,
            };
            let opts = cairn_testnet::sync_bench::SyncBenchOptions {
                jobs,
                rate_per_s: rate,
                blocks,
                clients,
                held,
                module,
                report,
            };
            cairn_testnet::sync_bench::run(&testnet_spec(&net)?, &opts).await?;
        }
    }
    Ok(())
}

/// `cairn node init`: the folder, a key (an existing one is kept) and an annotated
/// `node.toml` for `config` (its `home` set to the folder).
fn node_init(home: &Path, config: NodeConfig, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    let home = home.canonicalize().with_context(|| format!("cannot resolve {}", home.display()))?;
    let config_path = home.join("node.toml");
    anyhow::ensure!(
        force || !config_path.exists(),
        "{} exists already; pass --force to replace it",
        config_path.display()
    );
    let config = NodeConfig { home: home.clone(), ..config };
    let key_path = config.key_path();
    let key = if key_path.exists() {
        Keypair::load(&key_path).with_context(|| format!("{} exists but cannot be read", key_path.display()))?
    } else {
        let key = Keypair::generate();
        key.save(&key_path)?;
        key
    };
    let text = cairn_node::config::annotated_toml(&config)?;
    std::fs::write(&config_path, text).with_context(|| format!("cannot write {}", config_path.display()))?;
    println!("{}", key.public());
    eprintln!("wrote {} (the node's address is printed above) and {}", key_path.display(), config_path.display());
    if !config.genesis_path().exists() {
        eprintln!("next: put the chain's genesis at {}", config.genesis_path().display());
    }
    eprintln!("then: cairn node run --config {}", config_path.display());
    Ok(())
}

fn node_config(a: RunArgs) -> anyhow::Result<NodeConfig> {
    let mut c = match &a.config {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::default(),
    };
    if let Some(v) = a.home {
        c.home = v;
    }
    if a.genesis.is_some() {
        c.genesis = a.genesis;
    }
    if a.key.is_some() {
        c.key = a.key;
    }
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = a.rpc {
        c.rpc = v;
    }
    c.bootstrap.extend(a.bootstrap);
    c.validator |= a.validator;
    c.provider |= a.provider;
    if let Some(v) = a.block_time_ms {
        c.block_time_ms = v;
    }
    if a.metrics.is_some() {
        c.metrics = a.metrics;
    }
    match a.log_format {
        Some(LogFormat::Json) => c.log_json = true,
        Some(LogFormat::Text) => c.log_json = false,
        None => {}
    }
    c.log_json |= a.log_json;
    c.test_wrong_results |= a.test_wrong_results;
    c.test_equivocate |= a.test_equivocate;
    c.test_partition |= a.test_partition;
    if a.test_crash_after_wal_append_at_height.is_some() {
        c.test_crash_after_wal_append_at_height = a.test_crash_after_wal_append_at_height;
    }
    Ok(c)
}

/// How long `send_tx` waits for its transaction to be finalized.
pub const TX_FINALITY_TIMEOUT: Duration = Duration::from_secs(60);

/// Replaces a pending offer by a transfer of nothing to its own client, with the same nonce
/// and the least fee that replaces it (or `--fee`, if higher).
async fn cancel_offer(id: Hash, args: TxArgs) -> anyhow::Result<()> {
    let key = Keypair::load(&args.key)?;
    let c = client::connect(&args.rpc.rpc).await?;
    let info = c.job_get(id).await?;
    let pending = info.pending.with_context(|| {
        format!(
            "job {id} is not pending on this node (stage {:?}): only an offer not yet in a block can be cancelled",
            info.stage
        )
    })?;
    anyhow::ensure!(
        info.client == key.public(),
        "job {id} was offered by {}, not by this key ({})",
        info.client,
        key.public()
    );
    let fee = cairn_node::mempool::replacement_fee_min(pending.fee).max(args.fee.unwrap_or(0));
    let action = Action::Transfer { to: key.public(), amount: 0 };
    let tx = client::sign_tx(&c, &key, Some(fee), action, Some(pending.nonce)).await?;
    let hash = c.tx_submit(tx).await.context("tx_submit")?;
    println!("offer {id} replaced by transaction {hash} (nonce {}, fee {fee})", pending.nonce);
    Ok(())
}

/// Signs `action` with the key in `args`, submits it and waits until it is in a finalized
/// block.
async fn send_tx(args: TxArgs, action: Action) -> anyhow::Result<()> {
    let key = Keypair::load(&args.key)?;
    let c = client::connect(&args.rpc.rpc).await?;
    let tx = client::sign_tx(&c, &key, args.fee, action, None).await?;
    let hash = client::submit_tx(&c, tx, TX_FINALITY_TIMEOUT).await?;
    println!("transaction {hash} finalized");
    Ok(())
}

/// The largest proof file read (someone else's file: a receipt proof of a block with 256
/// signatures and a deep Merkle path is tens of KiB).
pub const PROOF_FILE_BYTES_MAX: u64 = 1 << 20;

fn read_proof_file(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    anyhow::ensure!(len <= PROOF_FILE_BYTES_MAX, "{} is larger than {PROOF_FILE_BYTES_MAX} bytes", path.display());
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The largest module file read.
pub const MODULE_FILE_BYTES_MAX: u64 = 4 << 20;

fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    anyhow::ensure!(len <= MODULE_FILE_BYTES_MAX, "{} is larger than {MODULE_FILE_BYTES_MAX} bytes", path.display());
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The input given as `--input` text or `--input-file` (neither: empty).
fn read_input(input: Option<String>, input_file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    Ok(match (input, input_file) {
        (Some(s), _) => s.into_bytes(),
        (None, Some(f)) => std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?,
        (None, None) => Vec::new(),
    })
}

/// `cairn job estimate`'s summary of an estimate of `offer`, for people.
fn estimate_summary(offer: &cairn_ledger::JobOffer, e: &cairn_rpc::JobEstimate) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("job        {} (estimated at height {}; nothing submitted)", e.job_id, e.height));
    line(format!(
        "run        {}, {} fuel of {}; output {} bytes",
        e.status, e.fuel_used, e.fuel_limit, e.output_size_bytes
    ));
    if let Some(reason) = &e.reason {
        line(format!("reason     {reason}"));
    }
    if e.providers.is_empty() {
        line("providers  none eligible now".to_owned());
    }
    for (i, p) in e.providers.iter().enumerate() {
        let label = if i == 0 { "providers" } else { "" };
        line(format!("{label:<10} {} at {} per fuel", p.address, p.price_per_fuel));
    }
    line(format!(
        "escrow     {} (fuel_limit {} × max_price {} × redundancy {}); {} refunded",
        e.escrow, offer.fuel_limit, offer.max_price, offer.redundancy, e.refund
    ));
    line(format!("cost       {} to the providers + fee {} = {}", e.cost, e.fee, e.cost.saturating_add(e.fee)));
    if e.admissible {
        line("admitted   yes, if signed and submitted now".to_owned());
    } else {
        let mut text = String::from("admitted   no:");
        for p in &e.problems {
            let _ = write!(text, "\n  - {}: {}", p.reason, p.message);
        }
        line(text);
    }
    out
}

/// Where `job run` writes what it got.
struct RunFiles {
    /// The proof (default: `<job id>.proof.json`).
    proof: Option<PathBuf>,
    /// The output (default: printed; one left in a blob: `<job id>.output`).
    output: Option<PathBuf>,
}

async fn job_run(
    rpc: &str,
    key: &Keypair,
    wasm: &Path,
    input: Vec<u8>,
    mut terms: OfferTerms,
    files: RunFiles,
    timeout_s: u64,
) -> anyhow::Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(80));
    spinner.set_message("uploading module");
    let c = client::connect(rpc).await?;
    let module_id = c.module_put(hex::encode(read_module(wasm)?)).await.context("module_put")?;
    let input = client::place_input(&c, input, &mut terms).await?;
    spinner.set_message("signing offer");
    let offer = client::sign_offer(&c, key, module_id, input, terms, None).await?;
    spinner.set_message("submitted");
    let run = client::run_to_finality(&c, offer, Duration::from_secs(timeout_s), |stage| {
        spinner.set_message(match stage {
            JobStage::Accepted => "accepted — waiting for a provider",
            JobStage::Executed => "executed — waiting for a block",
            JobStage::Included => "included — waiting for finality",
            JobStage::Finalized => "finalized",
            JobStage::Expired => "expired",
            JobStage::Dropped => "dropped",
        });
    })
    .await;
    spinner.finish_and_clear();
    let run = run?;
    let out = files.proof.unwrap_or_else(|| PathBuf::from(format!("{}.proof.json", run.job_id)));
    std::fs::write(&out, serde_json::to_string_pretty(&run.proof)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("job      {}", run.job_id);
    println!("status   {}  fuel {}  provider {}", run.result.status, run.result.fuel_used, run.result.provider);
    let output_file = match files.output {
        Some(f) => Some(f),
        None if run.result.output_in_blob => Some(PathBuf::from(format!("{}.output", run.job_id))),
        None => None,
    };
    match (&run.result.reason, output_file) {
        (Some(reason), _) => println!("reason   {reason}"),
        (None, Some(f)) => {
            let output = client::output_of(&c, &run.result).await?;
            std::fs::write(&f, &output).with_context(|| format!("cannot write {}", f.display()))?;
            let place = if run.result.output_in_blob { "a blob, " } else { "" };
            println!("output   {} ({} bytes, {place}sha256 {})", f.display(), output.len(), run.result.output_hash);
        }
        (None, None) => println!("output   {}", String::from_utf8_lossy(&run.result.output)),
    }
    println!("result   in {:.1} ms; finalized in {:.1} ms", ms(run.to_result), ms(run.to_finalized));
    println!(
        "proof    {} (check it with `cairn receipt verify {} --genesis <genesis.json>`)",
        out.display(),
        out.display()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{FORMAT_VERSION, JobOffer, JobStatus, PublicKey};
    use cairn_rpc::{EstimateProblem, EstimateProvider, JobEstimate};

    use super::*;

    #[test]
    fn a_dev_build_warns_a_provider_or_validator_that_it_is_unoptimized() {
        let mut config = NodeConfig::default();
        assert_eq!(unoptimized_build_warning(&config, false), None, "neither a provider nor a validator");
        config.provider = true;
        let warning = unoptimized_build_warning(&config, false).expect("a dev build warns a provider");
        assert!(warning.contains("unoptimized dev build, started as a provider:"), "{warning}");
        assert!(warning.contains("scripts/install.sh"), "{warning}");
        assert_eq!(unoptimized_build_warning(&config, true), None, "an optimized build says nothing");
        config.validator = true;
        let warning = unoptimized_build_warning(&config, false).expect("a dev build warns a validator");
        assert!(warning.contains("started as a provider and validator:"), "{warning}");
        config.provider = false;
        let warning = unoptimized_build_warning(&config, false).expect("a dev build warns a validator");
        assert!(warning.contains("started as a validator:"), "{warning}");
        assert_eq!(unoptimized_build_warning(&config, true), None);
    }

    #[test]
    fn async_threads_are_a_count_within_their_bound() {
        let threads = |arg: &str| match Cli::try_parse_from(["cairn", "node", "run", "--async-threads", arg]) {
            Ok(Cli { command: Command::Node(NodeCmd::Run(args)) }) => Ok(args.async_threads),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => Err(e.kind()),
        };
        assert_eq!(threads("1"), Ok(Some(1)));
        assert_eq!(threads(&ASYNC_THREADS_MAX.to_string()), Ok(Some(ASYNC_THREADS_MAX)));
        assert_eq!(threads("0"), Err(clap::error::ErrorKind::ValueValidation), "a runtime needs a worker");
        assert_eq!(threads(&(ASYNC_THREADS_MAX + 1).to_string()), Err(clap::error::ErrorKind::ValueValidation));
        let Ok(Cli { command: Command::Node(NodeCmd::Run(args)) }) = Cli::try_parse_from(["cairn", "node", "run"])
        else {
            panic!("node run parses");
        };
        assert_eq!(args.async_threads, None, "one per core by default");
    }

    #[test]
    fn an_estimate_reads_as_a_summary() {
        let offer = JobOffer {
            version: FORMAT_VERSION,
            chain_id: Hash::ZERO,
            client: PublicKey([1; 32]),
            nonce: 0,
            fee: 1,
            module_id: Hash::ZERO,
            input: vec![],
            fuel_limit: 1_000,
            max_price: 2,
            redundancy: 1,
            assignment_height: 0,
            deadline_height: 10,
            placement: Placement::Anywhere,
            input_blob: None,
        };
        let provider = PublicKey([7; 32]);
        let mut e = JobEstimate {
            job_id: Hash::ZERO,
            height: 4,
            status: JobStatus::Ok,
            fuel_used: 300,
            fuel_limit: 1_000,
            output_size_bytes: 5,
            reason: None,
            escrow: 2_000,
            fee: 1,
            providers: vec![EstimateProvider { address: provider, price_per_fuel: 2 }],
            cost: 600,
            refund: 1_400,
            admissible: true,
            problems: vec![],
        };
        let text = estimate_summary(&offer, &e);
        assert!(text.contains("run        ok, 300 fuel of 1000; output 5 bytes"), "{text}");
        assert!(text.contains(&format!("providers  {provider} at 2 per fuel")), "{text}");
        assert!(
            text.contains("escrow     2000 (fuel_limit 1000 × max_price 2 × redundancy 1); 1400 refunded"),
            "{text}"
        );
        assert!(text.contains("cost       600 to the providers + fee 1 = 601"), "{text}");
        assert!(text.contains("admitted   yes"), "{text}");

        e.admissible = false;
        e.providers.clear();
        e.problems = vec![EstimateProblem { reason: "bad_nonce".into(), message: "nonce 9 is wrong".into() }];
        let text = estimate_summary(&offer, &e);
        assert!(text.contains("providers  none eligible now"), "{text}");
        assert!(text.contains("admitted   no:\n  - bad_nonce: nonce 9 is wrong"), "{text}");
    }
}
