//! Prometheus metrics: what an operator watches to tell whether a node is healthy, syncing,
//! earning or being penalised (`--metrics <addr>`, off by default; `docs/OPERATING.md` lists
//! them).
//!
//! Names follow Prometheus' conventions: the `cairn_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters, and `cairn_build_info`. Every label takes its
//! values from a closed set — topics, job statuses, the API's own method names (any other is
//! `other`), error codes of the API — so no peer or client can grow the series a node keeps.
//!
//! The metrics are atomics updated where things happen (the event loop, the executor, the RPC
//! middleware, the provider's runs); a scrape reads them, and the sandbox's cache counters,
//! without asking the loop anything. [`serve`] answers `GET /metrics` on its own listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_vm::Vm;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What a scrape gets: the OpenMetrics text format (which `prometheus_client` writes: `info`
/// metrics, units, `# EOF`), not Prometheus' older 0.0.4 text format.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapes answered at once, at most; past it a connection is closed unanswered.
pub const SCRAPES_AT_ONCE: usize = 4;
/// The most bytes read of a scrape's request (its request line and headers).
pub const SCRAPE_REQUEST_BYTES_MAX: usize = 8 << 10;
/// How long a scrape's connection may take to send its request.
pub const SCRAPE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A topic label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    /// The topic's short name (`txs`, `results`, `blocks`, `modules`, `consensus`, `proposals`).
    pub topic: &'static str,
}

/// A gossip verdict on a message of a topic.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabels {
    /// The topic's short name.
    pub topic: &'static str,
    /// `accepted` (relayed), `ignored` (not relayed, nobody blamed) or `rejected` (the sender
    /// penalised).
    pub verdict: &'static str,
}

/// An RPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// One of the API's methods, or `other`.
    pub method: &'static str,
}

/// An RPC method and the error code it answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCodeLabels {
    /// One of the API's methods, or `other`.
    pub method: &'static str,
    /// The JSON-RPC error code.
    pub code: i32,
}

/// A job status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The status, as results state it (`ok`, `trap`, `out_of_fuel`, …).
    pub status: &'static str,
}

/// Every metric of a node.
pub struct Metrics {
    registry: Registry,
    /// The API's method names (the only `method` label values besides `other`).
    methods: Vec<&'static str>,
    /// Height of the last finalized block here.
    pub head_height: Gauge,
    /// Finalized blocks peers have shown this node that it has not applied yet.
    pub head_lag_blocks: Gauge,
    /// Time the executor took over a block (built, checked or applied).
    pub block_execution_seconds: Histogram,
    /// Transactions per finalized block.
    pub block_transactions: Histogram,
    /// Time writing a finalized block to the store took.
    pub store_write_seconds: Histogram,
    /// The consensus height being decided.
    pub consensus_height: Gauge,
    /// The consensus round at that height.
    pub consensus_round: Gauge,
    /// Rounds a height took to decide (1: decided in its first round).
    pub consensus_rounds_per_height: Histogram,
    /// Connected peers.
    pub peers: Gauge,
    /// Peers in this node's gossip mesh, per topic.
    pub topic_peers: Family<TopicLabel, Gauge>,
    /// Gossip messages validated, per topic and verdict.
    pub gossip_messages: Family<GossipLabels, Counter>,
    /// Penalties given to peers (a rejected message, a lie to sync).
    pub peers_penalised: Counter,
    /// Requests for a missing blob sent to holders the DHT named.
    pub blob_holder_requests: Counter,
    /// Pending offers and account transactions.
    pub mempool_transactions: Gauge,
    /// Pending results.
    pub mempool_results: Gauge,
    /// RPC calls, per method.
    pub rpc_requests: Family<MethodLabel, Counter>,
    /// RPC calls answered with an error, per method and code.
    pub rpc_errors: Family<MethodCodeLabels, Counter>,
    /// Jobs this provider ran, per status.
    pub jobs_executed: Family<StatusLabel, Counter>,
    /// Time a job's run took here (compile, if needed, and run).
    pub job_execution_seconds: Histogram,
    /// Fuel the jobs run here used.
    pub job_fuel_used: Counter,
    /// Jobs running in the sandbox now.
    pub sandbox_jobs_running: Gauge,
    /// This node's account balance (a provider's earnings arrive here).
    pub account_balance: Gauge,
    /// This provider's bonded stake (penalties are taken from it).
    pub provider_stake: Gauge,
    /// Stake this provider lost to penalties (missed deadlines, slashes), since the node
    /// started.
    pub provider_slashed: Counter,
    /// Jobs assigned to this provider and not yet delivered.
    pub provider_active_jobs: Gauge,
}

/// The sandbox's module cache counters, read at each scrape.
#[derive(Debug)]
struct VmCollector(Arc<Vm>);

impl Collector for VmCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.cache_stats();
        for (name, help, value) in [
            ("module_cache_hits", "Job runs that found their module compiled in memory", s.memory_hits),
            ("module_compilations", "Modules compiled (tier-ups included)", s.compiled),
            ("module_disk_loads", "Compiled modules loaded from the disk cache", s.disk_loads),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// The store's size on disk, read at each scrape (off the event loop): the files of its folder
/// (table files, write-ahead log, manifest).
#[derive(Debug)]
struct StoreCollector(PathBuf);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let bytes: u64 = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        encode_bytes(
            &mut encoder,
            "store_size",
            "The store's size on disk (table files, write-ahead log, manifest)",
            bytes,
        )
    }
}

/// One gauge in bytes, as a collector reads it at a scrape.
fn encode_bytes(encoder: &mut DescriptorEncoder, name: &str, help: &str, bytes: u64) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
    let metric = encoder.encode_descriptor(name, help, Some(&Unit::Bytes), gauge.metric_type())?;
    gauge.encode(metric)
}

/// The store's memory, read at each scrape: its block cache, memtables and table readers.
#[derive(Debug)]
struct StoreMemoryCollector(Arc<cairn_store::Store>);

impl Collector for StoreMemoryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.memory();
        for (name, help, bytes) in [
            ("store_block_cache", "The store's block cache in use (within store_cache_bytes)", m.block_cache_bytes),
            ("store_memtable", "The store's memtables (within store_write_buffer_bytes)", m.memtable_bytes),
            ("store_table_readers", "The store's open tables' readers, outside the cache", m.table_reader_bytes),
        ] {
            encode_bytes(&mut encoder, name, help, bytes)?;
        }
        Ok(())
    }
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 100 µs to ~105 s.
    exponential_buckets(0.000_1, 2.0, 21)
}

impl Metrics {
    /// The metrics of a node whose API serves `methods`, with its sandbox's cache counters and
    /// the size of its store's folder.
    pub fn new(
        methods: impl IntoIterator<Item = &'static str>,
        vm: Option<Arc<Vm>>,
        store_dir: Option<PathBuf>,
    ) -> Metrics {
        let mut r = Registry::with_prefix("cairn");
        let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        r.register("build", "The node's version", build);
        let m = Metrics {
            methods: methods.into_iter().collect(),
            head_height: Gauge::default(),
            head_lag_blocks: Gauge::default(),
            block_execution_seconds: Histogram::new(seconds_buckets()),
            block_transactions: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            store_write_seconds: Histogram::new(seconds_buckets()),
            consensus_height: Gauge::default(),
            consensus_round: Gauge::default(),
            consensus_rounds_per_height: Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0]),
            peers: Gauge::default(),
            topic_peers: Family::default(),
            gossip_messages: Family::default(),
            peers_penalised: Counter::default(),
            blob_holder_requests: Counter::default(),
            mempool_transactions: Gauge::default(),
            mempool_results: Gauge::default(),
            rpc_requests: Family::default(),
            rpc_errors: Family::default(),
            jobs_executed: Family::default(),
            job_execution_seconds: Histogram::new(seconds_buckets()),
            job_fuel_used: Counter::default(),
            sandbox_jobs_running: Gauge::default(),
            account_balance: Gauge::default(),
            provider_stake: Gauge::default(),
            provider_slashed: Counter::default(),
            provider_active_jobs: Gauge::default(),
            registry: Registry::default(),
        };
        r.register("head_height", "Height of the last finalized block here", m.head_height.clone());
        r.register(
            "head_lag_blocks",
            "Finalized blocks peers have shown this node that it has not applied yet",
            m.head_lag_blocks.clone(),
        );
        r.register_with_unit(
            "block_execution",
            "Time the executor took over a block (built, checked or applied)",
            Unit::Seconds,
            m.block_execution_seconds.clone(),
        );
        r.register("block_transactions", "Transactions per finalized block", m.block_transactions.clone());
        r.register_with_unit(
            "store_write",
            "Time writing a finalized block to the store took",
            Unit::Seconds,
            m.store_write_seconds.clone(),
        );
        r.register("consensus_height", "The consensus height being decided", m.consensus_height.clone());
        r.register("consensus_round", "The consensus round at that height", m.consensus_round.clone());
        r.register(
            "consensus_rounds_per_height",
            "Rounds a height took to decide (1: in its first round)",
            m.consensus_rounds_per_height.clone(),
        );
        r.register("peers", "Connected peers", m.peers.clone());
        r.register("topic_peers", "Peers in this node's gossip mesh, per topic", m.topic_peers.clone());
        r.register(
            "gossip_messages",
            "Gossip messages validated, per topic and verdict (accepted, ignored, rejected)",
            m.gossip_messages.clone(),
        );
        r.register(
            "peers_penalised",
            "Penalties given to peers (a rejected message, a lie to sync)",
            m.peers_penalised.clone(),
        );
        r.register(
            "blob_holder_requests",
            "Requests for a missing blob sent to holders the DHT named",
            m.blob_holder_requests.clone(),
        );
        r.register("mempool_transactions", "Pending offers and account transactions", m.mempool_transactions.clone());
        r.register("mempool_results", "Pending results", m.mempool_results.clone());
        r.register("rpc_requests", "RPC calls, per method", m.rpc_requests.clone());
        r.register("rpc_errors", "RPC calls answered with an error, per method and code", m.rpc_errors.clone());
        r.register("jobs_executed", "Jobs this provider ran, per status", m.jobs_executed.clone());
        r.register_with_unit(
            "job_execution",
            "Time a job's run took here (compile, if needed, and run)",
            Unit::Seconds,
            m.job_execution_seconds.clone(),
        );
        r.register("job_fuel_used", "Fuel the jobs run here used", m.job_fuel_used.clone());
        r.register("sandbox_jobs_running", "Jobs running in the sandbox now", m.sandbox_jobs_running.clone());
        r.register(
            "account_balance",
            "This node's account balance (a provider's earnings arrive here)",
            m.account_balance.clone(),
        );
        r.register("provider_stake", "This provider's bonded stake", m.provider_stake.clone());
        r.register(
            "provider_slashed",
            "Stake this provider lost to penalties since the node started",
            m.provider_slashed.clone(),
        );
        r.register(
            "provider_active_jobs",
            "Jobs assigned to this provider and not yet delivered",
            m.provider_active_jobs.clone(),
        );
        if let Some(vm) = vm {
            r.register_collector(Box::new(VmCollector(vm)));
        }
        if let Some(dir) = store_dir {
            r.register_collector(Box::new(StoreCollector(dir)));
        }
        Metrics { registry: r, ..m }
    }

    /// Also reports `store`'s memory at each scrape.
    pub fn with_store_memory(mut self, store: Arc<cairn_store::Store>) -> Metrics {
        self.registry.register_collector(Box::new(StoreMemoryCollector(store)));
        self
    }

    /// The label value of an RPC method: the API's own name, or `other`.
    pub fn method(&self, name: &str) -> &'static str {
        self.methods.iter().find(|m| **m == name).copied().unwrap_or("other")
    }

    /// Counts an RPC call of `method` and, if it failed, its error code.
    pub fn rpc_call(&self, method: &str, error_code: Option<i32>) {
        self.rpc_call_of(self.method(method), error_code);
    }

    /// [`Metrics::rpc_call`] with the method's label already found.
    pub fn rpc_call_of(&self, method: &'static str, error_code: Option<i32>) {
        self.rpc_requests.get_or_create(&MethodLabel { method }).inc();
        if let Some(code) = error_code {
            self.rpc_errors.get_or_create(&MethodCodeLabels { method, code }).inc();
        }
    }

    /// Counts a gossip verdict.
    pub fn gossip(&self, topic: &'static str, verdict: &'static str) {
        self.gossip_messages.get_or_create(&GossipLabels { topic, verdict }).inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

/// A gauge set from a `u64` (saturating at `i64::MAX`).
pub fn set(gauge: &Gauge, value: u64) {
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
}

/// Serves `GET /metrics` on `addr`; returns the address bound. Anything else gets 404. At most
/// [`SCRAPES_AT_ONCE`] connections are answered at once, each request read within
/// [`SCRAPE_REQUEST_TIMEOUT`] and [`SCRAPE_REQUEST_BYTES_MAX`].
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("cannot bind the metrics server to {addr}"))?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(SCRAPES_AT_ONCE));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let Ok(Some(path)) = tokio::time::timeout(SCRAPE_REQUEST_TIMEOUT, read_request(&mut socket)).await
                else {
                    return;
                };
                let (status, content_type, body) = if path == "/metrics" {
                    ("200 OK", OPENMETRICS_CONTENT_TYPE, metrics.encode())
                } else {
                    ("404 Not Found", "text/plain; charset=utf-8", "only /metrics is served here\n".to_string())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(bound)
}

/// Reads an HTTP request's head; returns the path of a `GET`, `None` for anything else.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= SCRAPE_REQUEST_BYTES_MAX {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\r').next()?;
    let mut parts = std::str::from_utf8(line).ok()?.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(path)) => Some(path.split('?').next().unwrap_or(path).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_follow_the_conventions() {
        let vm = Arc::new(Vm::new(cairn_vm::VmConfig::default()));
        let dir = tempfile::tempdir().expect("a folder");
        std::fs::write(dir.path().join("000001.sst"), [0u8; 1234]).expect("a file");
        let m = Metrics::new(["job_submit", "chain_head"], Some(vm), Some(dir.path().to_owned()));
        m.head_height.set(7);
        m.rpc_call("job_submit", None);
        m.rpc_call("made_up_method", Some(-32601));
        m.gossip("txs", "rejected");
        m.job_execution_seconds.observe(0.002);
        let text = m.encode();
        for line in [
            "cairn_build_info{version=\"",
            "cairn_head_height 7",
            "cairn_rpc_requests_total{method=\"job_submit\"} 1",
            "cairn_rpc_requests_total{method=\"other\"} 1",
            "cairn_rpc_errors_total{method=\"other\",code=\"-32601\"} 1",
            "cairn_gossip_messages_total{topic=\"txs\",verdict=\"rejected\"} 1",
            "cairn_job_execution_seconds_count 1",
            "cairn_store_size_bytes 1234",
            "# TYPE cairn_block_execution_seconds histogram",
            "cairn_module_cache_hits_total 0",
            "# TYPE cairn_module_compilations counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("made_up_method"), "a stranger's method name is not a label value");
    }

    #[test]
    fn the_stores_memory_is_reported_against_its_budget() {
        let dir = tempfile::tempdir().expect("a folder");
        let store = Arc::new(cairn_store::Store::open(dir.path(), cairn_ledger::Hash::of(b"chain")).expect("store"));
        store.put_blob(&[7u8; 4_096]).expect("a blob");
        let m = Metrics::new(["chain_head"], None, None).with_store_memory(store.clone());
        let text = m.encode();
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        };
        // The blob just written sits in a memtable.
        assert!(value("cairn_store_memtable_bytes") >= 4_096, "{text}");
        assert!(value("cairn_store_block_cache_bytes") <= cairn_store::BLOCK_CACHE_BYTES as u64);
        let _ = value("cairn_store_table_readers_bytes");
    }

    #[tokio::test]
    async fn the_server_answers_get_metrics_and_nothing_else() {
        let m = Arc::new(Metrics::new(["chain_head"], None, None));
        m.peers.set(3);
        let addr = serve("127.0.0.1:0".parse().expect("addr"), m).await.expect("serves");
        let get = |request: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connects");
            s.write_all(request.as_bytes()).await.expect("writes");
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.expect("reads");
            answer
        };
        let ok = get("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK") && ok.contains("cairn_peers 3"), "{ok}");
        let missing = get("GET /other HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    }
}
