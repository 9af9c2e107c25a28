//! `cairn testnet sync-bench`: how long a node that joins a long chain takes to reach its
//! head — restoring the state from its peers (state sync), then replaying every block since
//! genesis — one after the other on the same chain.
//!
//! A fresh testnet of one validator (deciding a block every block time, work or not) and two
//! providers, the second left unstarted, is loaded with `--jobs` jobs by the open-loop
//! generator ([`crate::load`]); blocks go on until the chain is `--blocks` high. Then the joiner
//! starts with an empty data folder, and the time until its head reaches that height is taken;
//! then again with `state_sync = false`, from an empty folder once more. The restore's own
//! time (from its log) and what each run executed are reported too, in a JSON report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_rpc::CairnApiClient;
use cairn_rpc::client;
use serde::Serialize;

use crate::load::{LoadOptions, NODE_CONFIG, Schedule, aggregate, print_point, run_point};
use crate::{Spec, Testnet, generate_with_clients, node_home, up};

/// The report's format version.
pub const SYNC_REPORT_VERSION: u32 = 1;
/// The longest a join may take before the bench gives up on it.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(3_600);
/// How often the joiner's head is read.
const POLL: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Clone, Debug)]
pub struct SyncBenchOptions {
    /// Jobs to finalize before the join.
    pub jobs: u64,
    /// Offers per second while loading.
    pub rate_per_s: f64,
    /// The height the chain reaches before the join.
    pub blocks: u64,
    /// Client accounts of the load.
    pub clients: usize,
    /// The job's module.
    pub module: PathBuf,
    /// Where to write the report (default `<dir>/sync-bench/report.json`).
    pub report: Option<PathBuf>,
}

/// One join.
#[derive(Clone, Debug, Serialize)]
pub struct Join {
    /// Seconds from starting the node to its head at the target height.
    pub to_head_s: f64,
    /// Blocks the node executed on the way (those after the restored state, or all of them).
    pub blocks_executed: u64,
    /// The height whose state was restored (state sync only).
    pub restored_height: Option<u64>,
    /// State entries restored (state sync only).
    pub restored_entries: Option<u64>,
    /// Milliseconds the restore took, from the head's answer to the state written (state sync
    /// only).
    pub restore_ms: Option<u64>,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct SyncBenchReport {
    /// [`SYNC_REPORT_VERSION`].
    pub version: u32,
    /// The block time of the chain.
    pub block_time_ms: u64,
    /// Jobs finalized by the load.
    pub jobs_finalized: u64,
    /// The height both joins had to reach.
    pub target_height: u64,
    /// With state sync.
    pub state_sync: Join,
    /// Replaying every block.
    pub replay: Join,
    /// `state_sync.to_head_s / replay.to_head_s`.
    pub ratio: f64,
}

/// Runs the bench (see the module docs).
pub async fn run(spec: &Spec, opts: &SyncBenchOptions) -> anyhow::Result<SyncBenchReport> {
    anyhow::ensure!(opts.jobs >= 1, "--jobs must be at least 1");
    let wasm = std::fs::read(&opts.module).with_context(|| {
        format!(
            "cannot read the job module {}; build the example jobs with scripts/build-jobs.sh",
            opts.module.display()
        )
    })?;
    let spec = crate::demo::fresh(spec, "sync-bench")?;
    let spec = Spec { validators: 1, providers: 2, manual_providers: 1, ..spec };
    generate_with_clients(&spec, opts.clients)?;
    for i in 0..3 {
        let extra = if i == 0 { "empty_blocks = true\n" } else { "" };
        let path = node_home(&spec.dir, i).join(crate::NODE_CONFIG_FILE);
        std::fs::write(&path, format!("{NODE_CONFIG}{extra}"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut t = up(&spec).await?;
    let result = measure(&mut t, &spec, &wasm, opts).await;
    if result.is_err() {
        for i in 0..t.nodes.len() {
            eprintln!("--- node {i} log (last lines) ---\n{}", t.log_tail(i, 20));
        }
    }
    t.stop();
    let report = result?;
    let path = opts.report.clone().unwrap_or_else(|| spec.dir.join("report.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("report  {}", path.display());
    Ok(report)
}

async fn measure(
    t: &mut Testnet,
    spec: &Spec,
    wasm: &[u8],
    opts: &SyncBenchOptions,
) -> anyhow::Result<SyncBenchReport> {
    let duration = Duration::from_secs_f64(opts.jobs as f64 / opts.rate_per_s);
    let schedule = Schedule::new(opts.rate_per_s, duration)?;
    let load = LoadOptions {
        rates_per_s: vec![opts.rate_per_s],
        duration,
        clients: opts.clients,
        drain: crate::load::DRAIN_MAX,
        settle: Duration::ZERO,
        module: opts.module.clone(),
        report: None,
        plot: None,
        scrape_every: None,
        sample_every: None,
        placement: cairn_ledger::Placement::Anywhere,
    };
    println!("loading: {} jobs at {}/s", opts.jobs, opts.rate_per_s);
    let point = aggregate(&run_point(t, wasm, schedule, &load).await?);
    print_point(&point);
    let validator = client::connect(&t.rpc_url(0)).await?;
    loop {
        let height = validator.chain_head().await?.height;
        if height >= opts.blocks {
            break;
        }
        println!("the chain is at height {height}, waiting for {}", opts.blocks);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let target = validator.chain_head().await?.height;
    let joiner = 2;
    println!("joining at height {target}: state sync first");
    let state_sync = join(t, joiner, target, None).await?;
    println!(
        "state sync: head reached in {:.2} s (the state of height {} restored in {} ms, {} entries); {} blocks executed",
        state_sync.to_head_s,
        state_sync.restored_height.unwrap_or(0),
        state_sync.restore_ms.unwrap_or(0),
        state_sync.restored_entries.unwrap_or(0),
        state_sync.blocks_executed
    );
    t.kill(joiner)?;
    std::fs::remove_dir_all(node_home(&spec.dir, joiner).join("db")).context("emptying the joiner's store")?;
    println!("joining at height {target} again: replaying every block");
    let replay = join(t, joiner, target, Some("state_sync = false\n")).await?;
    println!("replay: head reached in {:.2} s; {} blocks executed", replay.to_head_s, replay.blocks_executed);
    let ratio = state_sync.to_head_s / replay.to_head_s;
    println!("state sync took {ratio:.3} of the replay's time");
    Ok(SyncBenchReport {
        version: SYNC_REPORT_VERSION,
        block_time_ms: spec.block_time_ms,
        jobs_finalized: point.finalized,
        target_height: target,
        state_sync,
        replay,
        ratio,
    })
}

/// Starts node `i` (with `extra` added to its config) and waits until its head reaches `target`.
async fn join(t: &mut Testnet, i: usize, target: u64, extra: Option<&str>) -> anyhow::Result<Join> {
    let home = node_home(&t.dir, i);
    let config = home.join(crate::NODE_CONFIG_FILE);
    std::fs::write(&config, format!("{NODE_CONFIG}{}", extra.unwrap_or_default()))
        .with_context(|| format!("cannot write {}", config.display()))?;
    // Only this run's lines are read back.
    let log_from = std::fs::metadata(home.join("node.log")).map_or(0, |m| m.len()) as usize;
    let started = Instant::now();
    if i < t.children.len() {
        t.restart(i).await?
    } else {
        t.start_next().await?
    };
    let c = client::connect(&t.rpc_url(i)).await?;
    loop {
        if c.chain_head().await?.height >= target {
            break;
        }
        anyhow::ensure!(started.elapsed() < JOIN_TIMEOUT, "node {i} did not reach height {target} in time");
        tokio::time::sleep(POLL).await;
    }
    let to_head_s = started.elapsed().as_secs_f64();
    let blocks_executed = c.node_info().await?.blocks_executed;
    let log = std::fs::read(home.join("node.log")).unwrap_or_default();
    let log = strip_ansi(&String::from_utf8_lossy(log.get(log_from..).unwrap_or_default()));
    let restored = log.lines().find(|l| l.contains("state sync: restored the state of height"));
    let field = |name: &str| restored.and_then(|l| log_field(l, name));
    Ok(Join {
        to_head_s,
        blocks_executed,
        restored_height: field("height"),
        restored_entries: field("entries"),
        restore_ms: field("took_ms"),
    })
}

/// `text` without its terminal colour codes (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `name=<u64>` in a log line.
fn log_field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_a_log_line() {
        let line = "2026-12-06T07:00:00Z  INFO cairn_node::service::statesync: state sync: restored the state of height 20103 \
                    from peers; syncing the blocks after it height=20103 entries=102400 took_ms=4210";
        assert_eq!(log_field(line, "height"), Some(20103));
        assert_eq!(log_field(line, "entries"), Some(102_400));
        assert_eq!(log_field(line, "took_ms"), Some(4210));
        assert_eq!(log_field(line, "missing"), None);
        let coloured = "\u{1b}[2mstate sync\u{1b}[0m: restored \u{1b}[3mheight\u{1b}[0m\u{1b}[2m=\u{1b}[0m7";
        assert_eq!(strip_ansi(coloured), "state sync: restored height=7");
        assert_eq!(log_field(&strip_ansi(coloured), "height"), Some(7));
    }
}
