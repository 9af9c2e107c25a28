//! The demo (every example job, end to end, proofs verified) and the latency benchmark.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, JobRun, OfferTerms};

use crate::{Spec, Testnet, up};

/// How long one job may take from submit to finalized receipt.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The demo input for an example job, by module file name.
fn demo_input(name: &str) -> Vec<u8> {
    match name {
        "uppercase" => b"hello from cairn".to_vec(),
        "sha256" => b"abc".to_vec(),
        "primes" => b"200000".to_vec(),
        "json-transform" | "json_transform" => br#"{"zeta":"last","alpha":"first","n":3}"#.to_vec(),
        _ => b"demo".to_vec(),
    }
}

fn list_modules(jobs_dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut modules: Vec<(String, PathBuf)> = std::fs::read_dir(jobs_dir)
        .with_context(|| format!("no example jobs in {}; build them with scripts/build-jobs.sh", jobs_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .map(|p| (p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), p))
        .collect();
    modules.sort();
    if modules.is_empty() {
        bail!("no *.wasm in {}; build them with scripts/build-jobs.sh", jobs_dir.display());
    }
    Ok(modules)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `spec` moved to `<dir>/<name>`, emptied first.
pub(crate) fn fresh(spec: &Spec, name: &str) -> anyhow::Result<Spec> {
    let dir = spec.dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    Ok(Spec { dir, ..spec.clone() })
}

/// Starts a fresh testnet in `<dir>/demo`, runs every example job in `jobs_dir`, prints each
/// output and latency, verifies every proof against the genesis, and stops the testnet.
pub async fn demo(spec: &Spec, jobs_dir: &Path) -> anyhow::Result<()> {
    let modules = list_modules(jobs_dir)?;
    let spec = fresh(spec, "demo")?;
    println!(
        "starting a testnet in {}: {} validator(s), {} providers",
        spec.dir.display(),
        spec.validators,
        spec.providers
    );
    let t = up(&spec).await?;
    let result = run_demo(&t, &modules).await;
    if result.is_err() {
        for i in 0..t.nodes.len() {
            eprintln!("--- node {i} log (last lines) ---\n{}", t.log_tail(i, 15));
        }
    }
    drop(t);
    println!("testnet stopped");
    result
}

async fn run_demo(t: &Testnet, modules: &[(String, PathBuf)]) -> anyhow::Result<()> {
    for (i, n) in t.nodes.iter().enumerate() {
        println!("  node {i} {} rpc ws://{}", if i < t.validators() { "validator" } else { "provider " }, n.rpc);
    }
    let genesis = t.genesis()?;
    let key = t.client_key()?;
    let c = client::connect(&t.rpc_url(0)).await?;
    // Every module is uploaded first: the node announces each one and the providers fetch and
    // compile it while the jobs are being prepared, as a client that uploads its modules ahead
    // of its jobs would see.
    let mut uploaded = Vec::new();
    for (name, path) in modules {
        let wasm = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let module_id = c.module_put(hex::encode(&wasm)).await.context("module_put")?;
        uploaded.push((name, wasm, module_id));
    }
    println!("\nuploaded {} module(s); the providers fetch and compile them ahead of the jobs", uploaded.len());
    let mut verified = 0;
    let uppercase = uploaded.iter().find(|(name, _, _)| name.as_str() == "uppercase").map(|(_, _, id)| *id);
    for (name, wasm, module_id) in uploaded {
        let input = demo_input(name);
        let offer = client::sign_offer(&c, &key, module_id, input.clone(), OfferTerms::default(), None).await?;
        let run =
            client::run_to_finality(&c, offer, JOB_TIMEOUT, |_| {}).await.with_context(|| format!("job {name}"))?;
        let v = run.proof.verify(&genesis).with_context(|| format!("proof of job {name}"))?;
        verified += 1;
        println!("\njob {name} ({} bytes of wasm)", wasm.len());
        println!("  input     {}", String::from_utf8_lossy(&input));
        println!("  output    {}", String::from_utf8_lossy(&run.result.output));
        print_status_and_latency(&run);
        println!("  proof     verified: block {}, {}/{} voting power", v.height, v.signed_power, v.total_power);
    }
    if let Some(module_id) = uppercase {
        blob_job(&c, &key, &genesis, module_id).await?;
        verified += 1;
    }
    println!("\nall {verified} job(s) ran and every proof verified against the genesis");
    Ok(())
}

/// The size of the demo's blob job's input (and output): larger than a chain carries inline.
pub const DEMO_BLOB_BYTES: usize = 1 << 20;

/// A job on 1 MiB of input: it goes into a blob on the node, the uppercase job turns it into
/// 1 MiB of output that the provider leaves in a blob, and the receipt binds both hashes.
async fn blob_job(
    c: &jsonrpsee::ws_client::WsClient,
    key: &cairn_ledger::Keypair,
    genesis: &cairn_ledger::Genesis,
    module_id: cairn_ledger::Hash,
) -> anyhow::Result<()> {
    let input: Vec<u8> = (0..DEMO_BLOB_BYTES).map(|i| b"cairn carries megabytes by hash "[i % 32]).collect();
    let mut terms = OfferTerms { fuel_limit: 1_000_000_000, ..OfferTerms::default() };
    let inline = client::place_input(c, input.clone(), &mut terms).await?;
    let offer = client::sign_offer(c, key, module_id, inline, terms, None).await?;
    let run = client::run_to_finality(c, offer, JOB_TIMEOUT, |_| {}).await.context("the blob job")?;
    let v = run.proof.verify(genesis).context("proof of the blob job")?;
    let output = client::output_of(c, &run.result).await?;
    let claim = &run.proof.receipt.claim;
    anyhow::ensure!(
        claim.input_hash == cairn_ledger::Hash::of(&input)
            && claim.output_hash == cairn_ledger::Hash::of(&output)
            && output == input.to_ascii_uppercase(),
        "the blob job's receipt does not bind its input and output"
    );
    println!("\njob uppercase on a blob ({} bytes in, {} bytes out)", input.len(), output.len());
    println!("  input     blob {} (blob_put; the provider fetched it by hash)", claim.input_hash);
    println!("  output    blob {} (left by the provider; fetched by hash with blob_get)", claim.output_hash);
    print_status_and_latency(&run);
    println!("  proof     verified: block {}, and it binds both blobs' hashes", v.height);
    Ok(())
}

/// A demo job's status, fuel, provider and latencies.
fn print_status_and_latency(run: &JobRun) {
    println!(
        "  status    {}, {} fuel, provider {}",
        run.result.status,
        run.result.fuel_used,
        &run.result.provider.to_hex()[..16]
    );
    println!(
        "  latency   submit→result {:.1} ms, submit→finalized receipt {:.1} ms",
        ms(run.to_result),
        ms(run.to_finalized)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Latency summary of a benchmark.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Jobs run.
    pub jobs: usize,
    /// Submit→result (p50, p99).
    pub to_result: (Duration, Duration),
    /// Submit→finalized (p50, p99).
    pub to_finalized: (Duration, Duration),
    /// Wall time.
    pub elapsed: Duration,
    /// Blocks finalized during the run.
    pub blocks: u64,
}

/// Runs `jobs` echo-sized jobs (the `uppercase` example, or the first example found) through a
/// fresh testnet in `<dir>/bench`, `concurrency` at a time, and prints latency percentiles.
pub async fn bench(spec: &Spec, jobs: usize, concurrency: usize) -> anyhow::Result<BenchReport> {
    let jobs_dir = Path::new("examples/jobs/wasm");
    let modules = list_modules(jobs_dir)?;
    let (_, module_path) = modules.iter().find(|(n, _)| n == "uppercase").unwrap_or(&modules[0]).clone();
    let spec = fresh(spec, "bench")?;
    let t = up(&spec).await?;
    let key = t.client_key()?;
    let c = client::connect(&t.rpc_url(0)).await?;
    let module_id = c.module_put(hex::encode(std::fs::read(&module_path)?)).await?;
    let first_height = c.chain_head().await?.height;
    let started = std::time::Instant::now();
    let mut runs: Vec<JobRun> = Vec::with_capacity(jobs);
    let mut nonce = c.account_get(key.public()).await?.next_nonce;
    let concurrency = concurrency.max(1);
    let mut remaining = jobs;
    while remaining > 0 {
        let n = remaining.min(concurrency);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let offer = client::sign_offer(
                &c,
                &key,
                module_id,
                format!("job {nonce}").into_bytes(),
                OfferTerms::default(),
                Some(nonce),
            )
            .await?;
            nonce += 1;
            let url = t.rpc_url(0);
            set.spawn(async move {
                let c = client::connect(&url).await?;
                client::run_to_finality(&c, offer, super::demo::JOB_TIMEOUT, |_| {}).await
            });
        }
        while let Some(r) = set.join_next().await {
            runs.push(r.context("bench task")??);
        }
        remaining -= n;
    }
    let elapsed = started.elapsed();
    let blocks = c.chain_head().await?.height.saturating_sub(first_height);
    let genesis = t.genesis()?;
    for r in &runs {
        r.proof.verify(&genesis)?;
    }
    let mut to_result: Vec<Duration> = runs.iter().map(|r| r.to_result).collect();
    let mut to_final: Vec<Duration> = runs.iter().map(|r| r.to_finalized).collect();
    to_result.sort();
    to_final.sort();
    let report = BenchReport {
        jobs,
        to_result: (percentile(&to_result, 50.0), percentile(&to_result, 99.0)),
        to_finalized: (percentile(&to_final, 50.0), percentile(&to_final, 99.0)),
        elapsed,
        blocks,
    };
    println!(
        "{jobs} jobs, {concurrency} in flight, block time {} ms, {} validator(s), {} providers: {:.1} s",
        spec.block_time_ms,
        t.validators(),
        spec.providers,
        elapsed.as_secs_f64()
    );
    println!(
        "finalized blocks  {blocks} in {:.1} s: {:.1} blocks/s",
        elapsed.as_secs_f64(),
        blocks as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!("submit→result     p50 {:.2} ms  p99 {:.2} ms", ms(report.to_result.0), ms(report.to_result.1));
    println!("submit→finalized  p50 {:.2} ms  p99 {:.2} ms", ms(report.to_finalized.0), ms(report.to_finalized.1));
    println!("all {} proofs verified", runs.len());
    Ok(report)
}
