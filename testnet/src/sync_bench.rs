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
//!
//! Finished jobs leave the state 16 blocks after they finish, so a long history alone leaves a
//! small state. `--held N` makes a large one: a third provider, registered at genesis in a
//! region of its own ([`HOLDER_REGION`]) but never started, takes `N` jobs placed only there,
//! and its slots pass to no stand-in before the deadline (`delivery_blocks =
//! deadline_max_blocks` in this genesis). Once the chain is `--blocks` high, `N` offers with
//! the longest deadline are submitted, and the joins start once the holder holds them: the
//! restored state holds `N` jobs in flight. The load's own jobs are then placed only in the
//! running provider's region ([`WORKER_REGION`]); the joiner is in neither.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_rpc::CairnApiClient;
use cairn_rpc::client;
use serde::Serialize;

use cairn_ledger::{FORMAT_VERSION, Genesis, JobOffer, Keypair, Placement};
use tokio::task::JoinSet;

use crate::load::{LoadOptions, NODE_CONFIG, Schedule, aggregate, print_point, run_point};
use crate::{Spec, Testnet, generate_with_clients, node_home, up};

/// The report's format version.
pub const SYNC_REPORT_VERSION: u32 = 2;
/// The longest a join may take before the bench gives up on it.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(3_600);
/// How often the joiner's head is read.
const POLL: Duration = Duration::from_millis(100);
/// The region of the provider that holds the jobs (`--held`).
pub const HOLDER_REGION: &str = "held";
/// The region of the running provider (`--held`).
pub const WORKER_REGION: &str = "work";
/// The joiner's region (`--held`).
const JOINER_REGION: &str = "join";
/// The most held jobs (`--held`): the holder's capacity.
pub const HELD_MAX: u64 = 1_000_000;
/// Client accounts submitting the held offers at once, one offer at a time each.
const HELD_SUBMITTERS: usize = 128;
/// RPC connections they share (a node serves a few per client address).
const HELD_CONNECTIONS: usize = 8;
/// Offers a submitter signs at the head it read last, before reading it again.
const HELD_HEAD_EVERY: u64 = 32;
/// The longest the held offers may take to be included.
const HELD_TIMEOUT: Duration = Duration::from_secs(1_200);

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
    /// Jobs held in the state at the join (see the module docs; 0: none).
    pub held: u64,
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
    /// Jobs held in the state at the join (`--held`).
    pub jobs_held: u64,
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
    anyhow::ensure!(opts.held <= HELD_MAX, "--held is at most {HELD_MAX}");
    anyhow::ensure!(
        opts.held == 0 || opts.clients >= HELD_SUBMITTERS,
        "--held needs at least {HELD_SUBMITTERS} clients"
    );
    // Node 2 is the joiner; with `--held`, node 3 is the holder, never started.
    let (providers, manual) = if opts.held > 0 { (3, 2) } else { (2, 1) };
    let spec = Spec { validators: 1, providers, manual_providers: manual, ..spec };
    generate_with_clients(&spec, opts.clients)?;
    if opts.held > 0 {
        make_holder(&spec, opts.held)?;
    }
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
        placement: if opts.held > 0 { only(WORKER_REGION) } else { Placement::Anywhere },
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
    let jobs_held = if opts.held > 0 { hold(t, wasm, opts.held).await? } else { 0 };
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
        jobs_held,
        target_height: target,
        state_sync,
        replay,
        ratio,
    })
}

/// Makes the last provider of the testnet's genesis the holder of up to `held` jobs (see the
/// module docs).
fn make_holder(spec: &Spec, held: u64) -> anyhow::Result<()> {
    let path = spec.dir.join("genesis.json");
    let mut genesis = Genesis::load(&path)?;
    let deadline_max = genesis.params.deadline_max_blocks;
    genesis.params.delivery_blocks = deadline_max;
    let [worker, joiner, holder] = genesis.providers.as_mut_slice() else {
        anyhow::bail!("a sync bench with held jobs has three providers");
    };
    worker.region = WORKER_REGION.into();
    joiner.region = JOINER_REGION.into();
    holder.region = HOLDER_REGION.into();
    holder.capacity = u32::try_from(held).context("--held does not fit a provider's capacity")?;
    genesis.save(&path)?;
    Ok(())
}

/// A placement allowing `region` only.
fn only(region: &str) -> Placement {
    Placement::Only { regions: vec![region.to_owned()] }
}

/// Submits `held` offers with the longest deadline, from [`HELD_SUBMITTERS`] clients at once,
/// and waits until the holder (the last provider) holds the jobs ranked to it; returns how
/// many it holds.
async fn hold(t: &Testnet, wasm: &[u8], held: u64) -> anyhow::Result<u64> {
    let c = client::connect(&t.rpc_url(0)).await?;
    let module_id = c.module_put(hex::encode(wasm)).await.context("module_put")?;
    let info = c.node_info().await.context("node_info")?;
    let genesis = Genesis::load(&t.genesis_path())?;
    let holder = genesis.providers.last().context("the testnet has no provider")?.address;
    let deadline_blocks = genesis.params.deadline_max_blocks;
    let keys: Vec<Keypair> = t.extra_client_keys()?.into_iter().take(HELD_SUBMITTERS).collect();
    println!("holding {held} jobs: submitting offers with a deadline {deadline_blocks} blocks ahead");
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..HELD_CONNECTIONS {
        conns.push(std::sync::Arc::new(client::connect(&t.rpc_url(0)).await?));
    }
    let mut tasks = JoinSet::new();
    let per = held.div_ceil(keys.len() as u64);
    for (i, key) in keys.into_iter().enumerate() {
        let count = per.min(held.saturating_sub(per * i as u64));
        let c = conns[i % conns.len()].clone();
        let chain_id = info.chain_id;
        let fee = info.tx_fee_min;
        tasks.spawn(async move {
            let mut nonce = c.account_get(key.public()).await.context("account_get")?.next_nonce;
            let mut head = 0;
            for n in 0..count {
                // The head moves on while they are submitted; an offer's assignment height must
                // stay within the chain's window of it (1,000 blocks by default).
                if n % HELD_HEAD_EVERY == 0 {
                    head = c.chain_head().await.context("chain_head")?.height;
                }
                let offer = JobOffer {
                    version: FORMAT_VERSION,
                    chain_id,
                    client: key.public(),
                    nonce,
                    fee,
                    module_id,
                    input: format!("held {i} {n}").into_bytes(),
                    fuel_limit: client::OfferTerms::default().fuel_limit,
                    max_price: 1,
                    redundancy: 1,
                    assignment_height: head,
                    deadline_height: head + deadline_blocks,
                    placement: only(HOLDER_REGION),
                    input_blob: None,
                }
                .sign(&key);
                // Refused while the node is overloaded, or while the account has as many
                // offers pending as it may: asked again shortly.
                loop {
                    let code = match c.job_submit(offer.clone()).await {
                        Ok(_) => break,
                        Err(jsonrpsee::core::ClientError::Call(e)) => e.code(),
                        Err(e) => return Err(anyhow::anyhow!("job_submit: {e}")),
                    };
                    let next = c.account_get(key.public()).await.context("account_get")?.next_nonce;
                    anyhow::ensure!(
                        code == cairn_rpc::error::OVERLOADED || (code == cairn_rpc::error::BAD_NONCE && nonce >= next),
                        "job_submit refused the held offer (code {code})"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                nonce += 1;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a submitting task")??;
    }
    println!(
        "{held} offers submitted in {:.1} s; waiting for the holder to hold them",
        started.elapsed().as_secs_f64()
    );
    let mut last = (0, Instant::now());
    loop {
        let active = c
            .provider_list()
            .await
            .context("provider_list")?
            .into_iter()
            .find(|p| p.address == holder)
            .map_or(0, |p| u64::from(p.active_jobs));
        if active != last.0 {
            last = (active, Instant::now());
        }
        if active >= held || (active > 0 && last.1.elapsed() > Duration::from_secs(10)) {
            println!("the holder holds {active} jobs ({:.1} s after the first offer)", started.elapsed().as_secs_f64());
            return Ok(active);
        }
        anyhow::ensure!(started.elapsed() < HELD_TIMEOUT, "the held offers were not included in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
    fn the_holder_takes_only_jobs_placed_in_its_region_until_their_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = Spec { manual_providers: 2, ..Spec::new(dir.path().to_path_buf(), 1, 3, PathBuf::from("cairn")) };
        generate_with_clients(&spec, 0).expect("generate");
        make_holder(&spec, 100_000).expect("holder");
        let genesis = Genesis::load(&dir.path().join("genesis.json")).expect("genesis");
        let regions: Vec<&str> = genesis.providers.iter().map(|p| p.region.as_str()).collect();
        assert_eq!(regions, [WORKER_REGION, JOINER_REGION, HOLDER_REGION]);
        assert_eq!(genesis.providers[2].capacity, 100_000);
        assert_eq!(genesis.params.delivery_blocks, genesis.params.deadline_max_blocks);
        assert!(only(HOLDER_REGION).allows(HOLDER_REGION) && !only(HOLDER_REGION).allows(WORKER_REGION));
        // A node accepts the genesis (regions well formed, parameters within bounds).
        genesis.validate().expect("a valid genesis");
    }

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
