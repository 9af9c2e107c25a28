//! Operators' view of a node: a real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/setup.sh`) scrapes every node of a testnet, and its HTTP API shows the core series
//! exist on every node and move while jobs run. `/health` and `/ready` answer on the RPC port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};

use crate::support::{TIMEOUT, start_validators, uppercase_module};

/// How often Prometheus scrapes the nodes here.
const SCRAPE_INTERVAL: &str = "500ms";

/// A plain HTTP GET on loopback; returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").expect("writes");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("reads");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // A chunked body (Prometheus' API): the JSON is what lies between the first `{` and the
    // last `}`.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b > a && body.contains("\r\n") => body[a..=b].to_string(),
        _ => body,
    };
    (status, body)
}

/// Prometheus, scraping `targets` every [`SCRAPE_INTERVAL`], on a free loopback port; killed
/// when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, targets: &[SocketAddr]) -> Prometheus {
        let config = format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n\
             scrape_configs:\n  - job_name: cairn\n    static_configs:\n      - targets: [{}]\n",
            targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts: run scripts/setup.sh (installs Debian's prometheus)");
        let p = Prometheus { child, addr };
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(addr).is_err() || http_get(addr, "/-/ready").0 != 200 {
            assert!(Instant::now() < deadline, "prometheus did not get ready:\n{}", p.log(dir));
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn log(&self, dir: &Path) -> String {
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query's samples: (instance, value).
    fn query(&self, promql: &str) -> Vec<(String, f64)> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={encoded}"));
        assert_eq!(status, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| {
                let instance = s["metric"]["instance"].as_str().unwrap_or_default().to_string();
                let value = s["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a value");
                (instance, value)
            })
            .collect()
    }

    /// Waits until `check` holds on `promql`'s samples.
    fn wait_for(&self, promql: &str, what: &str, check: impl Fn(&[(String, f64)]) -> bool) -> Vec<(String, f64)> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let samples = self.query(promql);
            if check(&samples) {
                return samples;
            }
            assert!(Instant::now() < deadline, "{what}: {promql} = {samples:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_every_node_and_the_core_series_move_while_jobs_run() {
    let net = start_validators(4, 1).await;
    let targets: Vec<SocketAddr> =
        net.t.nodes.iter().map(|n| n.metrics.expect("the testnet serves every node's metrics")).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = Prometheus::start(dir.path(), &targets);
    let nodes = targets.len();
    let every = |samples: &[(String, f64)]| samples.len() == nodes;

    prometheus.wait_for("up", "every node scraped", |s| every(s) && s.iter().all(|(_, v)| *v == 1.0));
    for series in [
        "cairn_build_info",
        "cairn_head_height",
        "cairn_head_lag_blocks",
        "cairn_peers",
        "cairn_mempool_transactions",
        "cairn_mempool_results",
        "cairn_consensus_height",
        "cairn_store_size_bytes",
        "cairn_module_cache_hits_total",
        "cairn_sandbox_jobs_running",
        "cairn_account_balance",
    ] {
        prometheus.wait_for(series, &format!("{series} on every node"), every);
    }
    let before = prometheus.query("max(cairn_head_height)");

    // Jobs run: heights, executions, gossip, RPC calls and the provider's counters move.
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    for i in 0..3 {
        let input = format!("metrics {i}").into_bytes();
        let offer = client::sign_offer(&c, &net.client_key, module_id, input, OfferTerms::default(), None)
            .await
            .expect("offer");
        client::run_to_finality(&c, offer, TIMEOUT, |_| {})
            .await
            .unwrap_or_else(|e| panic!("job {i}: {e:#}\n{}", net.logs()));
    }
    let start = before.first().map_or(0.0, |(_, v)| *v);
    prometheus.wait_for("min(cairn_head_height)", "every node's head moved", |s| s.iter().all(|(_, v)| *v > start));
    prometheus.wait_for("sum(cairn_jobs_executed_total{status=\"ok\"})", "the provider's runs counted", |s| {
        s.iter().any(|(_, v)| *v >= 3.0)
    });
    prometheus.wait_for("sum(cairn_job_fuel_used_total)", "fuel counted", |s| s.iter().any(|(_, v)| *v > 0.0));
    prometheus.wait_for("sum(cairn_rpc_requests_total{method=\"job_submit\"})", "RPC calls counted per method", |s| {
        s.iter().any(|(_, v)| *v >= 3.0)
    });
    prometheus.wait_for(
        "sum by (instance) (cairn_gossip_messages_total{verdict=\"accepted\"})",
        "gossip accepted on every node",
        |s| every(s) && s.iter().all(|(_, v)| *v > 0.0),
    );
    prometheus.wait_for(
        "count(cairn_block_execution_seconds_count > 0)",
        "blocks executed and timed on every node",
        |s| s.iter().any(|(_, v)| *v == nodes as f64),
    );
    prometheus.wait_for("count(cairn_store_write_seconds_count > 0)", "block writes timed", |s| {
        s.iter().any(|(_, v)| *v == nodes as f64)
    });
    prometheus.wait_for("max(cairn_consensus_rounds_per_height_count)", "decisions counted", |s| {
        s.iter().any(|(_, v)| *v > 0.0)
    });
    prometheus.wait_for("min(cairn_topic_peers{topic=\"blocks\"})", "every node has a mesh", |s| {
        s.iter().any(|(_, v)| *v > 0.0)
    });

    // Health on the RPC port: alive, and ready (caught up, with peers).
    let rpc: SocketAddr = net.t.nodes[0].rpc;
    let (status, body) = http_get(rpc, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(rpc, "/ready");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(ready["peers"].as_u64().expect("peers") >= 1, "{ready}");
    // `system_health` answers the same facts.
    let health = net.rpc(0).await.system_health().await.expect("system_health");
    assert_eq!(health.status, cairn_rpc::Readiness::Ready);
    assert_eq!(health.peers, ready["peers"].as_u64().expect("peers"));
    assert!(health.head_height >= ready["head_height"].as_u64().expect("height"));
}

/// A node started late reports 206 (syncing, with how far behind it is) on `/ready` while it
/// applies the blocks it missed, and 200 once it has caught up. Its block applications are
/// slowed (a test fault) so that the syncing lasts long enough to be seen.
#[tokio::test(flavor = "multi_thread")]
async fn ready_is_206_while_a_late_node_syncs_and_200_once_caught_up() {
    let mut net = crate::support::start(1).await;
    net.t.kill(1).expect("the provider stops");
    let c = net.rpc(0).await;
    // Blocks it misses: one per transfer.
    let to = net.provider_key(1);
    for _ in 0..24 {
        let transfer = cairn_ledger::Action::Transfer { to, amount: 1 };
        let tx = client::sign_tx(&c, &net.client_key, None, transfer, None).await.expect("sign");
        client::submit_tx(&c, tx, TIMEOUT).await.unwrap_or_else(|e| panic!("transfer: {e:#}\n{}", net.logs()));
    }
    let head = c.chain_head().await.expect("head").height;
    assert!(head >= 24, "{head}");
    let home = net.t.dir.join("nodes/1");
    std::fs::write(home.join(cairn_testnet::NODE_CONFIG_FILE), "test_slow_blocks_ms = 150\n").expect("config");
    net.t.restart(1).await.expect("restart");
    let rpc = net.t.nodes[1].rpc;

    let deadline = Instant::now() + TIMEOUT;
    let mut seen_syncing = None;
    loop {
        let (status, body) = http_get(rpc, "/ready");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        match status {
            206 => {
                assert_eq!(health["status"], "syncing", "{health}");
                assert!(health["lag_blocks"].as_u64().expect("lag") > 2, "{health}");
                seen_syncing.get_or_insert(health);
            }
            200 if seen_syncing.is_some() => {
                assert_eq!(health["status"], "ready", "{health}");
                assert!(health["lag_blocks"].as_u64().expect("lag") <= 2, "{health}");
                // Ready a block or two short of the head; it catches up with the rest.
                if health["head_height"].as_u64().expect("head") >= head {
                    break;
                }
            }
            // Before the first sync answer it does not know it is behind yet.
            200 | 503 => {}
            other => panic!("/ready answered {other}: {body}"),
        }
        assert!(Instant::now() < deadline, "no 206 then 200 from /ready (last: {status} {body})\n{}", net.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let syncing = seen_syncing.expect("seen");
    assert_eq!(syncing["peers"].as_u64(), Some(1), "{syncing}");
}

/// Each decided block is announced on `blocks` by the proposer of the round that decided it
/// alone: a provider, which follows the chain by that gossip, takes in one block message a
/// height — not one from each of the four validators (it accepted two a height when every
/// validator announced).
#[tokio::test(flavor = "multi_thread")]
async fn each_block_is_announced_once_by_its_proposer() {
    let net = start_validators(4, 1).await;
    let provider = 4;
    // Blocks are made while there is work: jobs, each run to finality.
    net.run_jobs(0, 12, "announced").await;
    let head = net.height(0).await;
    net.wait_height(provider, head).await;
    let metrics = net.t.nodes[provider].metrics.expect("the testnet serves every node's metrics");
    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200, "{text}");
    let count = |series: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
    };
    let accepted = count("cairn_gossip_messages_total{topic=\"blocks\",verdict=\"accepted\"}");
    let ignored = count("cairn_gossip_messages_total{topic=\"blocks\",verdict=\"ignored\"}");
    let head = count("cairn_head_height");
    assert!(head >= 4.0, "{text}");
    // Blocks it synced instead (one announcement missed) are not counted; a duplicate copy of
    // the same message is dropped by gossipsub before it is counted.
    assert!(accepted + ignored <= head + 2.0, "{accepted} accepted and {ignored} ignored for {head} blocks\n{text}");
    assert!(accepted >= head / 2.0, "the provider follows by gossip: {accepted} accepted for {head} blocks\n{text}");
}
