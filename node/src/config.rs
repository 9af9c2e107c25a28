//! Node configuration: a TOML file whose every field has a default, overridden by flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The node's configuration (`cairn node run --config node.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The data folder: the database, and `node.json` with the addresses bound.
    pub home: PathBuf,
    /// The genesis file (default: `<home>/genesis.json`).
    pub genesis: Option<PathBuf>,
    /// The node's key file (default: `<home>/node-key.json`).
    pub key: Option<PathBuf>,
    /// The libp2p listen address. Port 0 picks a free port.
    pub listen: String,
    /// Peers to dial at start (multiaddrs with `/p2p/<peer id>`). One is enough: the node finds
    /// the others through the DHT.
    pub bootstrap: Vec<String>,
    /// Connections the node keeps: while it has fewer, it dials peers found through the DHT.
    pub peers_target: usize,
    /// The JSON-RPC address (HTTP and WebSocket). Loopback by default.
    pub rpc: SocketAddr,
    /// Finalize blocks (the key must be a genesis validator).
    pub validator: bool,
    /// Execute jobs assigned to this key (a genesis provider).
    pub provider: bool,
    /// Time between blocks when there are transactions. With several validators: the least
    /// time from one decision to the start of the next height.
    pub block_time_ms: u64,
    /// Produce blocks even with nothing to include (with several validators: start each next
    /// height without waiting for transactions).
    pub empty_blocks: bool,
    /// Consensus timeouts (used when genesis lists more than one validator).
    pub consensus: cairn_consensus::ConsensusParams,
    /// The most pending offers and account transactions (an upper bound: admission also
    /// stops at what a few blocks can take, see `service::ADMISSION_BLOCKS`).
    pub mempool_txs_max: usize,
    /// Their most bytes (encoded).
    pub mempool_tx_bytes_max: usize,
    /// The most pending results (a room of their own: offers never take their place).
    pub mempool_results_max: usize,
    /// Their most bytes (encoded).
    pub mempool_result_bytes_max: usize,
    /// Pending transactions are re-gossiped after this long without a block.
    pub rebroadcast_ms: u64,
    /// A pending transaction behind a nonce gap (an earlier nonce of its sender never
    /// arrived) is dropped after this long, with a `dropped` event for an offer.
    pub mempool_gap_timeout_ms: u64,
    /// Jobs executed at once by a provider.
    pub executions_max: usize,
    /// Concurrent RPC connections, all clients together, at most; one more is answered with
    /// HTTP 429 and closed. Each costs a socket and a task, and a WebSocket also its
    /// subscriptions.
    pub rpc_connections_max: u32,
    /// Concurrent RPC connections of one client address (an IPv6 client: its /64 network), at
    /// most; one more is answered with HTTP 429 and closed. It takes at least
    /// `rpc_connections_max / rpc_connections_per_ip_max` addresses (8 by default) to fill the
    /// node, and one address never holds more than this share.
    pub rpc_connections_per_ip_max: u32,
    /// JSON-RPC calls a second of one client address, on average (at least 1): every call
    /// counts, over HTTP and WebSocket, and each entry of a batch. A call over it is not run
    /// and gets error `OVERLOADED` with a retry hint. Bounds the work one address makes the
    /// node do to this many calls a second (the node tracks at most
    /// [`crate::rpc_limits::RATE_CLIENTS_TRACKED_MAX`] addresses).
    pub rpc_requests_per_ip_per_second: u32,
    /// Calls one client address may make at once on top of its rate, at most (at least 1): the
    /// size of its token bucket.
    pub rpc_requests_per_ip_burst: u32,
    /// The largest RPC request (a module upload is hex, so twice the module's size).
    pub rpc_request_bytes_max: u32,
    /// The largest RPC response.
    pub rpc_response_bytes_max: u32,
    /// Subscriptions per RPC connection (WebSocket), at most; one more gets a JSON-RPC error.
    /// Each costs a task and a channel receiver. With the connection limits, one client
    /// address holds at most `rpc_connections_per_ip_max × this` subscriptions (32 × 64 = 2,048
    /// by default) and the node at most `rpc_connections_max × this` (256 × 64 = 16,384).
    pub rpc_subscriptions_per_connection_max: u32,
    /// Serve Prometheus metrics (`GET /metrics`) on this address; off when absent. Loopback or
    /// a private network: the metrics say what the node does, to whoever asks.
    pub metrics: Option<SocketAddr>,
    /// Log as JSON lines instead of text.
    pub log_json: bool,
    /// Versions of the state tree kept for `state_getProof` at past heights; older ones are
    /// pruned as blocks commit (at least 1).
    pub state_history_blocks: u64,
    /// The store's block cache (table blocks, their indexes and bloom filters), in bytes.
    pub store_cache_bytes: u64,
    /// The store's memtables together, in bytes: past it the largest is flushed to disk.
    pub store_write_buffer_bytes: u64,
    /// The store's write-ahead log, in bytes at most: past it the writes holding its oldest
    /// file are flushed, and the file deleted.
    pub store_wal_bytes_max: u64,
    /// Compiled modules kept in memory by the sandbox, in bytes of machine code (the least
    /// recently used go first; the disk cache in `<home>/vm-cache` keeps them all).
    pub module_cache_bytes: u64,
    /// Blobs (modules, and jobs' input and output blobs) kept in the store, in bytes: past it
    /// the oldest are deleted, except those a job in the state uses, those this node waits
    /// for and those stored in the last 10 minutes (a node missing one later fetches it from a
    /// holder again).
    pub store_blobs_bytes_max: u64,
    /// State sync: a node with no block yet whose peer is at least `state_sync_min_blocks`
    /// ahead restores the state at that peer's head — each chunk checked against the head's
    /// state root, the head against a commit of the genesis validators — and then syncs only
    /// the blocks after it, instead of replaying every block since genesis. Blocks before that
    /// height are then not on this node (it cannot serve them, nor their receipts' proofs).
    pub state_sync: bool,
    /// How far ahead (in blocks) a peer must be for state sync to be used rather than
    /// replaying the blocks.
    pub state_sync_min_blocks: u64,
    /// State entries asked for in one state sync request (at most 4,096).
    pub state_sync_chunk_entries: u32,
    /// Test only: a provider that signs wrong outputs (to exercise challenges and slashing).
    pub test_wrong_results: bool,
    /// Test only: a validator that, for each vote it publishes, also signs and publishes a
    /// conflicting one (to exercise evidence of equivocation).
    pub test_equivocate: bool,
    /// Test only: a validator that aborts right after durably appending one of its own
    /// votes at this height to its consensus log, before publishing it (once: a marker file
    /// in `home` keeps the restarted process from aborting again).
    pub test_crash_after_wal_append_at_height: Option<u64>,
    /// Test only: while the file [`NodeConfig::test_isolated_path`] exists, the node drops
    /// every peer connection and refuses new ones — a network partition that a test starts
    /// by creating the file and heals by deleting it.
    pub test_partition: bool,
    /// Test only: the provider's first this-many executions fail on its side, as a sandbox
    /// failure of the node would (nothing signed), to exercise retries.
    pub test_fail_executions: u32,
    /// Test only: the block executor takes this many milliseconds over each block it executes
    /// (built, checked or applied), with the file `test-executing-block` in `home` while it
    /// does — to show what the node does meanwhile. 0: off.
    pub test_slow_blocks_ms: u64,
    /// Test only: how this node lies when a peer asks it for finalized blocks (sync).
    pub test_sync_lie: Option<SyncLie>,
    /// Test only: the node asks for a blob it misses only the holders the DHT names, not its
    /// connected peers (to show that the DHT alone finds a blob).
    pub test_blobs_by_dht_only: bool,
}

/// Test only: the lies of a sync peer ([`NodeConfig::test_sync_lie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncLie {
    /// The blocks asked for, each with its commit's signatures altered.
    Forged,
    /// The blocks asked for, each with a commit that holds no signature.
    Unsigned,
    /// The blocks after the one asked for (they do not link to the asker's head).
    Unlinked,
    /// Blocks before the ones asked for (the asker has them).
    Stale,
    /// No answer at all.
    Silent,
    /// Blocks honestly, but state sync chunks with one value altered.
    TamperedState,
}

/// The default of `store_blobs_bytes_max`: 1 GiB of blobs, hundreds of large modules or inputs.
pub const STORE_BLOBS_BYTES_DEFAULT: u64 = 1 << 30;

/// The default of `peers_target`: enough for every gossip topic's mesh (3 to 6 peers) and
/// some to spare.
pub const PEERS_TARGET_DEFAULT: usize = 8;

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            home: PathBuf::from(".cairn"),
            genesis: None,
            key: None,
            listen: "/ip4/127.0.0.1/tcp/0".into(),
            bootstrap: vec![],
            peers_target: PEERS_TARGET_DEFAULT,
            rpc: SocketAddr::from(([127, 0, 0, 1], 9944)),
            validator: false,
            provider: false,
            block_time_ms: 200,
            empty_blocks: false,
            consensus: cairn_consensus::ConsensusParams::default(),
            mempool_txs_max: 20_000,
            mempool_tx_bytes_max: 256 << 20,
            mempool_results_max: 40_000,
            mempool_result_bytes_max: 128 << 20,
            rebroadcast_ms: 2_000,
            mempool_gap_timeout_ms: 60_000,
            executions_max: 2,
            rpc_connections_max: 256,
            rpc_connections_per_ip_max: 32,
            rpc_requests_per_ip_per_second: 1_000,
            rpc_requests_per_ip_burst: 2_000,
            rpc_request_bytes_max: 10 << 20,
            rpc_response_bytes_max: 32 << 20,
            rpc_subscriptions_per_connection_max: 64,
            metrics: None,
            log_json: false,
            state_history_blocks: cairn_store::STATE_HISTORY_BLOCKS_DEFAULT,
            store_cache_bytes: cairn_store::BLOCK_CACHE_BYTES as u64,
            store_write_buffer_bytes: cairn_store::WRITE_BUFFER_BYTES as u64,
            store_wal_bytes_max: cairn_store::WAL_BYTES_MAX,
            module_cache_bytes: cairn_vm::VmConfig::default().cache_bytes_max as u64,
            store_blobs_bytes_max: STORE_BLOBS_BYTES_DEFAULT,
            state_sync: true,
            state_sync_min_blocks: 1_000,
            state_sync_chunk_entries: 2_048,
            test_wrong_results: false,
            test_equivocate: false,
            test_crash_after_wal_append_at_height: None,
            test_partition: false,
            test_fail_executions: 0,
            test_slow_blocks_ms: 0,
            test_sync_lie: None,
            test_blobs_by_dht_only: false,
        }
    }
}

/// The largest config file read.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1 << 20;

impl NodeConfig {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
        anyhow::ensure!(
            len <= CONFIG_FILE_BYTES_MAX,
            "{} is larger than {CONFIG_FILE_BYTES_MAX} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// The genesis file's path.
    pub fn genesis_path(&self) -> PathBuf {
        self.genesis.clone().unwrap_or_else(|| self.home.join("genesis.json"))
    }

    /// The key file's path.
    pub fn key_path(&self) -> PathBuf {
        self.key.clone().unwrap_or_else(|| self.home.join("node-key.json"))
    }

    /// The mempool's rooms.
    pub fn mempool_limits(&self) -> crate::mempool::MempoolLimits {
        crate::mempool::MempoolLimits {
            txs_max: self.mempool_txs_max,
            tx_bytes_max: self.mempool_tx_bytes_max,
            results_max: self.mempool_results_max,
            result_bytes_max: self.mempool_result_bytes_max,
        }
    }

    /// The store's budget.
    pub fn store_budget(&self) -> cairn_store::StoreBudget {
        let bytes = |b: u64| usize::try_from(b).unwrap_or(usize::MAX);
        cairn_store::StoreBudget {
            cache_bytes: bytes(self.store_cache_bytes),
            write_buffer_bytes: bytes(self.store_write_buffer_bytes),
            wal_bytes_max: self.store_wal_bytes_max,
        }
    }

    /// The database folder.
    pub fn db_path(&self) -> PathBuf {
        self.home.join("db")
    }

    /// The marker a validator leaves when it aborts for
    /// [`NodeConfig::test_crash_after_wal_append_at_height`].
    pub fn test_crash_marker_path(&self) -> PathBuf {
        self.home.join("test-crashed")
    }

    /// The file that cuts the node off from its peers while it exists, with
    /// [`NodeConfig::test_partition`].
    pub fn test_isolated_path(&self) -> PathBuf {
        self.home.join("test-isolated")
    }

    /// Where the node writes the addresses it bound (`node.json`).
    pub fn addresses_path(&self) -> PathBuf {
        self.home.join("node.json")
    }
}

/// The fields of [`NodeConfig`] in the order `cairn node init` writes them (a test keeps this
/// list equal to the struct's fields).
pub const CONFIG_FIELDS: &[&str] = &[
    "home",
    "genesis",
    "key",
    "listen",
    "bootstrap",
    "peers_target",
    "rpc",
    "validator",
    "provider",
    "block_time_ms",
    "empty_blocks",
    "mempool_txs_max",
    "mempool_tx_bytes_max",
    "mempool_results_max",
    "mempool_result_bytes_max",
    "rebroadcast_ms",
    "mempool_gap_timeout_ms",
    "executions_max",
    "rpc_connections_max",
    "rpc_connections_per_ip_max",
    "rpc_requests_per_ip_per_second",
    "rpc_requests_per_ip_burst",
    "rpc_request_bytes_max",
    "rpc_response_bytes_max",
    "rpc_subscriptions_per_connection_max",
    "metrics",
    "log_json",
    "state_history_blocks",
    "store_cache_bytes",
    "store_write_buffer_bytes",
    "store_wal_bytes_max",
    "module_cache_bytes",
    "store_blobs_bytes_max",
    "state_sync",
    "state_sync_min_blocks",
    "state_sync_chunk_entries",
    "test_wrong_results",
    "test_equivocate",
    "test_crash_after_wal_append_at_height",
    "test_partition",
    "test_fail_executions",
    "test_slow_blocks_ms",
    "test_sync_lie",
    "test_blobs_by_dht_only",
    "consensus",
];

/// `config` as a TOML file that documents itself: every field, with its doc comment and its
/// value (commented out where it is unset, and for the test-only fields, which a release build
/// refuses). What `cairn node init` writes.
pub fn annotated_toml(config: &NodeConfig) -> anyhow::Result<String> {
    let schema = serde_json::to_value(schemars::schema_for!(NodeConfig))?;
    let values = serde_json::to_value(config)?;
    let mut out = String::from(
        "# A Cairn node's configuration (`cairn node run --config node.toml`; flags override it).\n\
         # Every field is here with its value; a field left out takes its default, and an unknown\n\
         # field is refused with its name.\n",
    );
    for field in CONFIG_FIELDS.iter().filter(|f| **f != "consensus") {
        let description = schema["properties"][field]["description"].as_str().unwrap_or_default();
        let commented = field.starts_with("test_") || values[field].is_null();
        if *field == "test_wrong_results" {
            out.push_str("\n# Test only: a release build refuses a configuration that sets any of these.\n");
        }
        write_field(&mut out, field, description, &values[field], commented)?;
    }
    let consensus = schema["$defs"]["ConsensusParams"].clone();
    out.push_str(&format!("\n{}[consensus]\n", comment(schema["properties"]["consensus"]["description"].as_str())));
    // In the struct's order, as TOML writes it.
    for line in toml::to_string(&config.consensus)?.lines() {
        let Some((field, _)) = line.split_once(" = ") else { continue };
        let description = consensus["properties"][field]["description"].as_str().unwrap_or_default();
        out.push('\n');
        out.push_str(&comment(Some(description)));
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// A doc comment as `#` lines.
fn comment(text: Option<&str>) -> String {
    text.unwrap_or_default().lines().map(|l| format!("# {l}\n").replace("# \n", "#\n")).collect()
}

fn write_field(
    out: &mut String,
    field: &str,
    description: &str,
    value: &serde_json::Value,
    commented: bool,
) -> anyhow::Result<()> {
    out.push('\n');
    out.push_str(&comment(Some(description)));
    let shown = match value {
        serde_json::Value::Null => "(unset)".to_string(),
        v => toml::Value::try_from(v).with_context(|| format!("{field} as TOML"))?.to_string(),
    };
    out.push_str(&format!("{}{field} = {shown}\n", if commented { "# " } else { "" }));
    Ok(())
}

/// What a running node writes to `<home>/node.json` once it listens, so scripts and tests that
/// asked for port 0 can find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundAddresses {
    /// The node's process id.
    pub pid: u32,
    /// The RPC address bound.
    pub rpc: SocketAddr,
    /// The libp2p addresses, with `/p2p/<peer id>`.
    pub p2p: Vec<String>,
    /// The metrics address bound, when metrics are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotated_file_holds_every_field_and_reads_back_as_the_config() {
        let schema = serde_json::to_value(schemars::schema_for!(NodeConfig)).expect("schema");
        let mut fields: Vec<&str> =
            schema["properties"].as_object().expect("fields").keys().map(|k| k.as_str()).collect();
        let mut listed = CONFIG_FIELDS.to_vec();
        fields.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, fields, "CONFIG_FIELDS lists the struct's fields");

        let config = NodeConfig {
            home: PathBuf::from("/var/lib/cairn"),
            provider: true,
            bootstrap: vec!["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW".into()],
            ..NodeConfig::default()
        };
        let text = annotated_toml(&config).expect("writes");
        assert_eq!(toml::from_str::<NodeConfig>(&text).expect("reads back"), config);
        for field in CONFIG_FIELDS {
            assert!(text.contains(&format!("{field} = ")) || *field == "consensus", "{field} missing:\n{text}");
        }
        assert!(text.contains("\n[consensus]\n") && text.contains("propose_timeout_ms = 1000"), "{text}");
        assert!(text.contains("# The JSON-RPC address (HTTP and WebSocket)."), "doc comments are kept:\n{text}");
        assert!(text.contains("\n# metrics = (unset)\n"), "an unset field is commented out:\n{text}");
        assert!(text.contains("\n# test_partition = false\n"), "test fields are commented out:\n{text}");
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_name() {
        let e = toml::from_str::<NodeConfig>("provider = true\nblock_tme_ms = 50\n").expect_err("refused");
        assert!(e.to_string().contains("block_tme_ms"), "{e}");
    }

    #[test]
    fn an_empty_file_gives_the_defaults_and_unknown_keys_are_refused() {
        assert_eq!(toml::from_str::<NodeConfig>("").expect("parses"), NodeConfig::default());
        let c: NodeConfig = toml::from_str("provider = true\nblock_time_ms = 50").expect("parses");
        assert!(c.provider);
        assert_eq!(c.block_time_ms, 50);
        assert!(toml::from_str::<NodeConfig>("block_time = 5").is_err());
        let c: NodeConfig = toml::from_str("[consensus]\npropose_timeout_ms = 300").expect("parses");
        assert_eq!(c.consensus.propose_timeout_ms, 300);
        assert_eq!(c.consensus.prevote_timeout_ms, cairn_consensus::ConsensusParams::default().prevote_timeout_ms);
        let c: NodeConfig = toml::from_str("state_history_blocks = 64").expect("parses");
        assert_eq!(c.state_history_blocks, 64);
    }
}
