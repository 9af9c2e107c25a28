//! The open-loop load generator: `cairn testnet bench --rate R --duration S [--clients C]`
//! (or `--rates R1,R2,…`, a sweep).
//!
//! # What it does
//!
//! For each rate it starts a fresh testnet in `<dir>/bench/rate-<R>` with `C` extra client
//! accounts funded at genesis (`clients/<i>.json`), uploads the job's module (the `uppercase`
//! example by default) to validator 0, and submits signed offers to validator 0 at `R` per
//! second for `S` seconds, **whatever the answers**: submission `i` is due at `i / R` seconds
//! ([`Schedule`]); a ticker wakes at each due time (at most one millisecond apart on tokio's
//! timer) and starts every submission that is due as its own task, without waiting for
//! earlier ones. So the offered load does not drop when the node slows down, and what happens
//! past capacity (queues, refusals, latency) shows.
//!
//! Each client account has its own nonce sequence and at most one submission in flight: a
//! submission takes an idle client from a pool (a bounded channel of the `C` clients) and
//! gives it back once the node answered. The nonce advances only when the node accepted the
//! offer; a refused offer's nonce is reused by that client's next offer (after a `wrong
//! nonce` refusal, a time-out or a transport error the client rereads its `next_nonce`, as the
//! node may have taken the offer). When a submission is due and every client is busy, it is
//! counted as *not sent: generator saturated* and skipped: the offered load was not kept,
//! because the node took longer than `clients / rate` to answer (see [`CLIENTS_DEFAULT`]).
//!
//! # What it measures, and how
//!
//! - **submit→accepted**: the `job_submit` round trip, for every accepted offer. Refusals are
//!   counted by JSON-RPC error code, each with how long its answer took (p50, p90, p99 and
//!   max).
//! - **submit→finalized**, for every accepted job, without a subscription per job (thousands
//!   of subscriptions a second would load the node being measured): a watcher polls
//!   `chain_head` every [`HEAD_POLL_INTERVAL`] on its own connection and reads each new block
//!   with `chain_getBlock`; a job is finalized in the block that includes its result
//!   (`Transaction::Result` with its `claim.job_id`; offers ask for one execution, k = 1). The
//!   time is when the watcher read the block, so it is late by up to one poll interval plus
//!   the block's fetch, as a client polling the chain would see it.
//! - **submit→result** (the `executed` event) for a sample: every [`SAMPLE_EVERY`]th due
//!   submission, at most [`SAMPLES_MAX`] per point, subscribes with `job_subscribe` before
//!   submitting and waits for the first event at `executed` or later, then unsubscribes. The
//!   subscriptions have [`SAMPLE_CONNECTIONS`] connections of their own, at most
//!   [`SUBSCRIPTIONS_PER_CONNECTION`] open on each (below the node's default limit of 64): a
//!   due sample with no free slot is not watched, so past capacity, when results take
//!   seconds, fewer jobs are sampled.
//! - **send lag**: how late each submission started after its due time (the generator's own
//!   health: a large lag means its timer or runtime could not keep the schedule on this
//!   machine).
//!
//! Latencies are measured from the moment `job_submit` was sent. Percentiles (p50, p90, p99,
//! max) come from `hdrhistogram` (3 significant digits).
//!
//! After the last submission has been answered, the generator **drains**: it keeps reading
//! blocks until every accepted job is finalized or `--drain` seconds (default 5) have passed;
//! jobs still not finalized then are reported as *accepted, never finalized*. Throughput:
//! offered = sent / S, accepted = accepted / S, and finalized = jobs finalized (run and drain)
//! per second between the first and the last block that finalized one of them (the first
//! block's jobs excluded): at a sustainable rate it equals the offered rate, and past capacity
//! it is the rate the chain kept up through the run and the drain (a short run with a long
//! latency tail reads low: its last jobs stretch the window).
//!
//! The generator is one address playing many clients, so the testnet's nodes lift the RPC
//! limits meant for one client address (`rpc_requests_per_ip_per_second` and its burst, in
//! each node's `node.toml`: [`NODE_CONFIG`], recorded in the report); every other limit is the
//! node's default, and the node's refusals (`overloaded` when its mempool or queue is full)
//! are what the bench measures.
//!
//! CPU is each node process's `utime + stime` (`/proc/<pid>/stat`, pids from `node.json`) from
//! the first submission to the end of the drain, as seconds and as a share of one core; peak
//! memory is `VmHWM` from `/proc/<pid>/status` at the end (the process's peak since it
//! started). The generator's own process is measured the same way: it shares the machine.
//!
//! Whether the nodes go **idle** after the load: each node's CPU is read over the second
//! before the first submission, and over each second after the last answer for `--settle`
//! seconds (default 10); the point records when every node's CPU came back within
//! [`IDLE_MARGIN_PERCENT`] of its own before the load and stayed there.
//!
//! A sweep runs each rate on a fresh testnet, one after the other, so no point inherits
//! another's backlog, chain or memory peak. Every point goes into one JSON [`Report`]
//! (`--report`, default `<dir>/bench/report.json`) and, for a sweep (or when `--plot` is
//! given), a PNG of finalized throughput and submit→finalized p50/p99 against the offered load,
//! the rate asked for ([`crate::plot`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_ledger::{FORMAT_VERSION, Hash, JobOffer, Keypair, Transaction};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, JobStage, error};
use hdrhistogram::Histogram;
use jsonrpsee::core::ClientError;
use jsonrpsee::ws_client::WsClient;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::demo::fresh;
use crate::{Spec, Testnet, generate_with_clients, up};

/// Client accounts by default. Each has one offer in flight, so the generator sends at most
/// `clients / answer time` offers a second: 2,048 keep 3,000 offers/s going while the node
/// answers within 680 ms. Past its capacity a node that queues offers instead of refusing them
/// answers ever later (a dev build on two busy cores: 0.4 s at the median with 512 clients,
/// 1.1 s with 2,048), and then no number of clients keeps the rate: the submissions not sent
/// say so.
pub const CLIENTS_DEFAULT: usize = 2_048;
/// How long the generator waits for the last jobs after the last answer, by default.
pub const DRAIN_DEFAULT: Duration = Duration::from_secs(5);
/// The longest drain.
pub const DRAIN_MAX: Duration = Duration::from_secs(600);
/// How long the nodes' CPU is watched after the last answer, by default.
pub const SETTLE_DEFAULT: Duration = Duration::from_secs(10);
/// The longest such watch.
pub const SETTLE_MAX: Duration = Duration::from_secs(600);
/// A node is idle again when its CPU over a second is within this many percent of one core
/// of what it used before the load (an idle chain still makes empty blocks).
pub const IDLE_MARGIN_PERCENT: f64 = 5.0;
/// CPU is sampled over windows this long, before the load and after it.
pub const CPU_WINDOW: Duration = Duration::from_secs(1);
/// How often the block watcher asks for the head.
pub const HEAD_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// One due submission in this many is watched with `job_subscribe` for submit→result.
pub const SAMPLE_EVERY: u64 = 10;
/// The most submissions watched per point.
pub const SAMPLES_MAX: u64 = 1_000;
/// Connections the sampled jobs' subscriptions are spread over.
pub const SAMPLE_CONNECTIONS: usize = 4;
/// Subscriptions open at once on one connection, at most: below the node's default
/// `rpc_subscriptions_per_connection_max` (64), with room for unsubscriptions still on their
/// way.
pub const SUBSCRIPTIONS_PER_CONNECTION: usize = 48;
/// What each node of a bench testnet runs with (its `node.toml`): the limits of one client
/// address lifted, since the generator is one address playing many clients.
pub const NODE_CONFIG: &str = "\
# Written by `cairn testnet bench`: its load generator is one address playing many clients,
# so the limits of one client address are lifted; every other setting is the default.
rpc_requests_per_ip_per_second = 1000000
rpc_requests_per_ip_burst = 1000000
";
/// The most timeline samples kept (`--sample-s`): a day at one a second.
pub const SAMPLES_KEPT_MAX: usize = 86_400;
/// How long watched jobs may still take to report their `executed` event after the drain.
pub const SAMPLE_GRACE: Duration = Duration::from_secs(1);
/// WebSocket connections the submissions are spread over (client `i` uses connection
/// `i mod` this): with [`crate::CLIENTS_MAX`] clients, 256 calls in flight on each, as many as
/// the client library allows on one connection by default.
pub const SUBMIT_CONNECTIONS: usize = 16;
/// How long one `job_submit` may take before it counts as an error.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The highest rate.
pub const RATE_MAX_PER_S: f64 = 100_000.0;
/// The longest run at one rate.
pub const DURATION_MAX: Duration = Duration::from_secs(3_600);
/// The most submissions at one rate: each is kept until the report (about 80 bytes, and about
/// 150 more in the finality maps once accepted), so at most ~0.5 GB.
pub const SUBMISSIONS_MAX: u64 = 2_000_000;
/// The most rates in a sweep.
pub const RATES_MAX: usize = 64;
/// The version of the JSON report's format.
pub const REPORT_VERSION: u32 = 4;
/// Blocks from the head to an offer's deadline.
pub const DEADLINE_BLOCKS: u64 = 200;
/// `/proc` counts CPU time in `USER_HZ` ticks: 100 a second on Linux (its ABI fixes it).
const USER_HZ: f64 = 100.0;
/// The longest latency a histogram holds (longer ones are counted as this), in microseconds.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// What an open-loop run does.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Offers per second; one point per rate, each on a fresh testnet.
    pub rates_per_s: Vec<f64>,
    /// How long each rate is offered.
    pub duration: Duration,
    /// Client accounts (one offer in flight each).
    pub clients: usize,
    /// The longest wait for the last jobs after the last answer.
    pub drain: Duration,
    /// How long the nodes' CPU is watched after the last answer (whether they go idle).
    pub settle: Duration,
    /// The job's module (wasm).
    pub module: PathBuf,
    /// Where to write the JSON report (default `<dir>/bench/report.json`).
    pub report: Option<PathBuf>,
    /// Where to draw the plot (default: the report's path with `.png`); drawn for a sweep of
    /// two rates or more, or when given.
    pub plot: Option<PathBuf>,
    /// Scrape every node's `/metrics` this often during the run and the drain (what a
    /// Prometheus server does), to measure what serving metrics costs.
    pub scrape_every: Option<Duration>,
    /// Record each node's resident memory and data folder this often during the run and the
    /// drain (a long run's timeline; plotted against jobs finalized).
    pub sample_every: Option<Duration>,
    /// Where the offers' jobs may run (e.g. preferring the client's region on a `--netns`
    /// testnet).
    pub placement: cairn_ledger::Placement,
}

/// One sample of the timeline (`--sample-s`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the first offer.
    pub at_s: f64,
    /// Jobs finalized so far.
    pub jobs_finalized: u64,
    /// Each node's resident memory (`VmRSS`), bytes, in node order.
    pub rss_bytes: Vec<u64>,
    /// Each node's data folder (`db`), bytes, in node order.
    pub db_bytes: Vec<u64>,
}

/// When each submission at a fixed rate is due: submission `i` at `i / rate` seconds
/// (rounded up to the nanosecond), `round(rate × duration)` of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    rate_per_s: f64,
    total: u64,
}

impl Schedule {
    /// The schedule of `rate_per_s` offers a second for `duration`.
    pub fn new(rate_per_s: f64, duration: Duration) -> anyhow::Result<Schedule> {
        anyhow::ensure!(
            rate_per_s.is_finite() && rate_per_s > 0.0 && rate_per_s <= RATE_MAX_PER_S,
            "the rate must be above 0 and at most {RATE_MAX_PER_S} offers/s (got {rate_per_s})"
        );
        anyhow::ensure!(
            !duration.is_zero() && duration <= DURATION_MAX,
            "the duration must be above 0 and at most {} s",
            DURATION_MAX.as_secs()
        );
        let total = (rate_per_s * duration.as_secs_f64()).round() as u64;
        anyhow::ensure!(total >= 1, "{rate_per_s} offers/s for {duration:?} schedules no offer at all");
        anyhow::ensure!(
            total <= SUBMISSIONS_MAX,
            "{rate_per_s} offers/s for {duration:?} is {total} offers: at most {SUBMISSIONS_MAX} per rate"
        );
        Ok(Schedule { rate_per_s, total })
    }

    /// The rate.
    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    /// How many submissions.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When submission `i` is due, from the start.
    pub fn at(&self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * 1e9 / self.rate_per_s).ceil() as u64)
    }

    /// How many submissions are due by `elapsed` (those with `at(i) <= elapsed`).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let guess = (elapsed.as_secs_f64() * self.rate_per_s).floor() as u64 + 1;
        let mut n = guess.min(self.total);
        // Float rounding may put the guess one off either way; `at` is the reference.
        while n < self.total && self.at(n) <= elapsed {
            n += 1;
        }
        while n > 0 && self.at(n - 1) > elapsed {
            n -= 1;
        }
        n
    }
}

/// Which accepted jobs are finalized: fed by the submissions (accepted) and the block watcher
/// (finalized), in either order: a block may show a result before its offer's answer is read.
#[derive(Debug, Default)]
pub struct Finality {
    finalized_at: HashMap<Hash, Duration>,
    accepted: HashSet<Hash>,
    pending: usize,
}

impl Finality {
    /// The node accepted job `id`.
    pub fn accepted(&mut self, id: Hash) {
        if self.accepted.insert(id) && !self.finalized_at.contains_key(&id) {
            self.pending += 1;
        }
    }

    /// A block read at `at` holds job `id`'s result.
    pub fn finalized(&mut self, id: Hash, at: Duration) {
        if let Entry::Vacant(slot) = self.finalized_at.entry(id) {
            slot.insert(at);
            if self.accepted.contains(&id) {
                self.pending -= 1;
            }
        }
    }

    /// Accepted jobs not finalized yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Jobs finalized so far.
    pub fn finalized_count(&self) -> usize {
        self.finalized_at.len()
    }

    /// When each finalized job's block was read.
    pub fn into_finalized(self) -> HashMap<Hash, Duration> {
        self.finalized_at
    }
}

/// How the node answered one submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Accepted: the job's id.
    Accepted(Hash),
    /// Refused with this JSON-RPC error code.
    Refused(i32),
    /// No JSON-RPC answer: a transport error or a time-out.
    Failed,
}

/// One submission, its times counted from the start of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission {
    /// When it was due.
    pub scheduled: Duration,
    /// When the generator started it (signing; subscribing, for a sampled job).
    pub started: Duration,
    /// When `job_submit` was sent.
    pub sent: Duration,
    /// When its answer came back.
    pub answered: Duration,
    /// The answer.
    pub answer: Answer,
}

/// A process's resources over a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// `node <i>` or `generator`.
    pub name: String,
    /// `validator`, `provider` or `generator`.
    pub role: String,
    /// Its process id.
    pub pid: u32,
    /// CPU time (user + system) over the run, seconds.
    pub cpu_s: f64,
    /// That CPU time as a share of one core over the run's wall time (200 = two cores busy).
    pub cpu_percent: f64,
    /// Peak resident memory since the process started (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// CPU over the second before the first submission, percent of one core.
    pub cpu_percent_before: f64,
    /// CPU over each second after the last answer, percent of one core.
    pub cpu_percent_after: Vec<f64>,
}

/// Everything one run at one rate recorded: the input of [`aggregate`].
#[derive(Clone, Debug, Default)]
pub struct RunData {
    /// The rate asked for.
    pub rate_per_s: f64,
    /// How long it was offered.
    pub duration: Duration,
    /// The longest drain allowed.
    pub drain: Duration,
    /// The drain used: from the last answer until every accepted job was finalized, or the
    /// drain's end.
    pub drain_used: Duration,
    /// Submissions due.
    pub scheduled: u64,
    /// Submissions due while every client was busy.
    pub not_sent_saturated: u64,
    /// The submissions sent.
    pub submissions: Vec<Submission>,
    /// When each finalized job's block was read.
    pub finalized_at: HashMap<Hash, Duration>,
    /// Accepted jobs watched for their `executed` event.
    pub sampled: u64,
    /// Sampled submissions whose `job_subscribe` failed (not watched).
    pub sample_errors: u64,
    /// The first such failure.
    pub sample_error_example: Option<String>,
    /// Submit→result of the watched jobs whose event came.
    pub to_result: Vec<Duration>,
    /// Blocks finalized during the run and the drain.
    pub blocks: u64,
    /// Metrics scrapes answered during the run and the drain.
    pub scrapes: u64,
    /// The timeline's samples (`--sample-s`).
    pub timeline: Vec<Sample>,
    /// The first message of each refusal code.
    pub refusal_messages: BTreeMap<i32, String>,
    /// The first transport error or time-out.
    pub error_example: Option<String>,
    /// Each node's and the generator's resources.
    pub processes: Vec<ProcessUsage>,
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `values` (3 significant digits; none for no values).
    pub fn of(values: impl IntoIterator<Item = Duration>) -> Percentiles {
        let mut h = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
            .expect("constant bounds: 1 µs to an hour at 3 significant digits are valid");
        for v in values {
            h.saturating_record(u64::try_from(v.as_micros()).unwrap_or(u64::MAX).max(1));
        }
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The refusals with one JSON-RPC error code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusals {
    /// The code (`cairn_rpc::error`).
    pub code: i32,
    /// Its name (`overloaded`, `bad_nonce`, …).
    pub name: String,
    /// How many, and how long their answers took.
    pub answer_ms: Percentiles,
    /// The first one's message.
    pub message: String,
}

/// One rate's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The rate asked for, offers per second.
    pub rate_per_s: f64,
    /// How long it was offered, seconds.
    pub duration_s: f64,
    /// The longest drain allowed, seconds.
    pub drain_s: f64,
    /// The drain used, seconds.
    pub drain_used_s: f64,
    /// Submissions due.
    pub scheduled: u64,
    /// Submissions sent.
    pub sent: u64,
    /// Submissions due while every client was busy, not sent.
    pub not_sent_saturated: u64,
    /// Offers the node accepted.
    pub accepted: u64,
    /// Offers it refused (every code).
    pub refused: u64,
    /// Submissions with no JSON-RPC answer (transport error, time-out).
    pub errors: u64,
    /// Accepted jobs finalized by the end of the drain.
    pub finalized: u64,
    /// Accepted jobs not finalized by the end of the drain.
    pub accepted_not_finalized: u64,
    /// Sent / duration.
    pub offered_per_s: f64,
    /// Accepted / duration.
    pub accepted_per_s: f64,
    /// Finalized jobs per second between the first and last block that finalized one.
    pub finalized_per_s: f64,
    /// Blocks finalized during the run and the drain.
    pub blocks: u64,
    /// Metrics scrapes answered (`--scrape-ms`; 0 without).
    pub scrapes: u64,
    /// Each node's memory and data folder over the run (`--sample-s`; empty without).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Sample>,
    /// How late submissions started after their due time (the generator's timer and runtime).
    pub send_lag_ms: Percentiles,
    /// `job_submit` round trip of accepted offers.
    pub submit_to_accepted_ms: Percentiles,
    /// Submit → `executed` event, for the sampled jobs.
    pub submit_to_result_ms: Percentiles,
    /// Accepted jobs watched for submit→result.
    pub sampled: u64,
    /// Sampled submissions whose `job_subscribe` failed (not watched).
    pub sample_errors: u64,
    /// The first such failure.
    pub sample_error_example: Option<String>,
    /// Submit → the block with the job's result read, every finalized job.
    pub submit_to_finalized_ms: Percentiles,
    /// Refusals by code.
    pub refusals: Vec<Refusals>,
    /// The first transport error or time-out, if any.
    pub error_example: Option<String>,
    /// Each node's and the generator's CPU and peak memory.
    pub processes: Vec<ProcessUsage>,
    /// Seconds from the last answer until every node was idle again (each second's CPU within
    /// [`IDLE_MARGIN_PERCENT`] of its own before the load) and stayed so; none if that did not
    /// happen while watched.
    pub idle_after_s: Option<f64>,
}

/// The testnet a report was measured on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestnetInfo {
    /// Validator nodes.
    pub validators: usize,
    /// Provider nodes.
    pub providers: usize,
    /// Block time, milliseconds.
    pub block_time_ms: u64,
}

/// The JSON report of an open-loop run or sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The testnet of every point (a fresh one per point).
    pub testnet: TestnetInfo,
    /// The job's module file name.
    pub module: String,
    /// Client accounts.
    pub clients: usize,
    /// Each node's `node.toml` ([`NODE_CONFIG`]).
    pub node_config: String,
    /// One per rate, in the order run.
    pub points: Vec<Point>,
}

/// The name of a JSON-RPC error code (its `data.reason`).
pub fn code_name(code: i32) -> &'static str {
    error::code_name(code).unwrap_or("other")
}

/// Turns a run's records into its report point.
pub fn aggregate(d: &RunData) -> Point {
    let duration_s = d.duration.as_secs_f64().max(1e-9);
    let mut accepted = 0u64;
    let mut errors = 0u64;
    let mut to_accepted = Vec::new();
    let mut to_finalized = Vec::new();
    let mut finalized_at = Vec::new();
    let mut refusal_times: BTreeMap<i32, Vec<Duration>> = BTreeMap::new();
    for s in &d.submissions {
        let answer_time = s.answered.saturating_sub(s.sent);
        match s.answer {
            Answer::Accepted(id) => {
                accepted += 1;
                to_accepted.push(answer_time);
                if let Some(at) = d.finalized_at.get(&id) {
                    to_finalized.push(at.saturating_sub(s.sent));
                    finalized_at.push(*at);
                }
            }
            Answer::Refused(code) => refusal_times.entry(code).or_default().push(answer_time),
            Answer::Failed => errors += 1,
        }
    }
    let finalized = finalized_at.len() as u64;
    let refusals: Vec<Refusals> = refusal_times
        .into_iter()
        .map(|(code, times)| Refusals {
            code,
            name: code_name(code).into(),
            answer_ms: Percentiles::of(times),
            message: d.refusal_messages.get(&code).cloned().unwrap_or_default(),
        })
        .collect();
    let refused = refusals.iter().map(|r| r.answer_ms.count).sum();
    Point {
        rate_per_s: d.rate_per_s,
        duration_s: d.duration.as_secs_f64(),
        drain_s: d.drain.as_secs_f64(),
        drain_used_s: d.drain_used.as_secs_f64(),
        scheduled: d.scheduled,
        sent: d.submissions.len() as u64,
        not_sent_saturated: d.not_sent_saturated,
        accepted,
        refused,
        errors,
        finalized,
        accepted_not_finalized: accepted - finalized,
        offered_per_s: d.submissions.len() as f64 / duration_s,
        accepted_per_s: accepted as f64 / duration_s,
        finalized_per_s: finalized_rate(&mut finalized_at, d.duration + d.drain_used),
        blocks: d.blocks,
        scrapes: d.scrapes,
        timeline: d.timeline.clone(),
        send_lag_ms: Percentiles::of(d.submissions.iter().map(|s| s.started.saturating_sub(s.scheduled))),
        submit_to_accepted_ms: Percentiles::of(to_accepted),
        submit_to_result_ms: Percentiles::of(d.to_result.iter().copied()),
        sampled: d.sampled,
        sample_errors: d.sample_errors,
        sample_error_example: d.sample_error_example.clone(),
        submit_to_finalized_ms: Percentiles::of(to_finalized),
        refusals,
        error_example: d.error_example.clone(),
        processes: d.processes.clone(),
        idle_after_s: idle_after_s(&d.processes),
    }
}

/// Seconds from the last answer until every node's CPU per second stays within
/// [`IDLE_MARGIN_PERCENT`] of its own before the load (the generator aside).
pub fn idle_after_s(processes: &[ProcessUsage]) -> Option<f64> {
    let nodes: Vec<&ProcessUsage> = processes.iter().filter(|u| u.role != "generator").collect();
    let windows = nodes.iter().map(|u| u.cpu_percent_after.len()).min()?;
    let busy = |w: usize| nodes.iter().any(|u| u.cpu_percent_after[w] > u.cpu_percent_before + IDLE_MARGIN_PERCENT);
    let last_busy = (0..windows).rev().find(|w| busy(*w));
    match last_busy {
        None if windows > 0 => Some(0.0),
        Some(w) if w + 1 < windows => Some((w + 1) as f64 * CPU_WINDOW.as_secs_f64()),
        _ => None,
    }
}

/// Each process's CPU over the next `windows` windows of [`CPU_WINDOW`], percent of one core.
async fn cpu_windows(pids: Vec<u32>, windows: usize) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::with_capacity(windows); pids.len()];
    let mut last: Vec<Option<u64>> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let mut at = tokio::time::Instant::now();
    for _ in 0..windows {
        at += CPU_WINDOW;
        tokio::time::sleep_until(at).await;
        for (i, pid) in pids.iter().enumerate() {
            let now = cpu_ticks(*pid);
            let used = match (last[i], now) {
                (Some(b), Some(a)) => a.saturating_sub(b) as f64 / USER_HZ,
                _ => 0.0,
            };
            out[i].push(100.0 * used / CPU_WINDOW.as_secs_f64());
            last[i] = now;
        }
    }
    out
}

/// Jobs finalized per second between the first and the last block read that finalized one,
/// the first block's jobs excluded (they mark the window's start). With one such block or
/// none, the jobs over `fallback_window`.
fn finalized_rate(at: &mut [Duration], fallback_window: Duration) -> f64 {
    at.sort_unstable();
    match (at.first(), at.last()) {
        (Some(&first), Some(&last)) if last > first => {
            let after_first = at.iter().filter(|t| **t > first).count();
            after_first as f64 / (last - first).as_secs_f64()
        }
        _ => at.len() as f64 / fallback_window.as_secs_f64().max(1e-9),
    }
}

/// `utime + stime` in clock ticks, from a `/proc/<pid>/stat` line.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is at index 0, so utime (14) and stime (15) at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmHWM` in bytes, from a `/proc/<pid>/status` text.
pub fn parse_vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn peak_rss_bytes(pid: u32) -> Option<u64> {
    parse_vm_hwm_bytes(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The processes measured: each node, then the generator.
fn measured_processes(t: &Testnet) -> Vec<(String, String, u32)> {
    let mut list: Vec<(String, String, u32)> = t
        .nodes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let role = if i < t.validators() { "validator" } else { "provider" };
            (format!("node {i}"), role.to_string(), b.pid)
        })
        .collect();
    list.push(("generator".into(), "generator".into(), std::process::id()));
    list
}

/// Runs every rate of `opts` on a fresh testnet each, prints each point and writes the report
/// (and the plot, for a sweep).
pub async fn run(spec: &Spec, opts: &LoadOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(!opts.rates_per_s.is_empty(), "give a rate (--rate) or rates (--rates)");
    anyhow::ensure!(opts.rates_per_s.len() <= RATES_MAX, "at most {RATES_MAX} rates in a sweep");
    anyhow::ensure!((1..=crate::CLIENTS_MAX).contains(&opts.clients), "--clients must be 1 to {}", crate::CLIENTS_MAX);
    anyhow::ensure!(opts.drain <= DRAIN_MAX, "the drain is at most {} s", DRAIN_MAX.as_secs());
    anyhow::ensure!(opts.settle <= SETTLE_MAX, "the watch after the load is at most {} s", SETTLE_MAX.as_secs());
    let schedules =
        opts.rates_per_s.iter().map(|r| Schedule::new(*r, opts.duration)).collect::<anyhow::Result<Vec<_>>>()?;
    let wasm = std::fs::read(&opts.module).with_context(|| {
        format!(
            "cannot read the job module {}; build the example jobs with scripts/build-jobs.sh",
            opts.module.display()
        )
    })?;
    let root = fresh(spec, "bench")?;
    let report_path = opts.report.clone().unwrap_or_else(|| root.dir.join("report.json"));
    let mut report = Report {
        version: REPORT_VERSION,
        testnet: TestnetInfo {
            validators: spec.validators,
            providers: spec.providers,
            block_time_ms: spec.block_time_ms,
        },
        module: opts.module.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        clients: opts.clients,
        node_config: NODE_CONFIG.into(),
        points: Vec::new(),
    };
    for schedule in schedules {
        let spec = fresh(&root, &format!("rate-{}", schedule.rate_per_s()))?;
        println!(
            "\nrate {}/s for {:.1} s: starting a testnet in {} ({} validator(s), {} provider(s), {} clients)",
            schedule.rate_per_s(),
            opts.duration.as_secs_f64(),
            spec.dir.display(),
            spec.validators,
            spec.providers,
            opts.clients
        );
        let data = match run_on_fresh_testnet(&spec, &wasm, schedule, opts).await {
            Ok(data) => data,
            Err(e) if !report.points.is_empty() => {
                write_report(&report, &report_path)?;
                println!("\nreport of the points before the failure: {}", report_path.display());
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let point = aggregate(&data);
        print_point(&point);
        report.points.push(point);
    }
    if report.points.len() > 1 {
        print_sweep(&report.points);
    }
    write_report(&report, &report_path)?;
    println!("\nreport  {}", report_path.display());
    for (k, p) in report.points.iter().enumerate().filter(|(_, p)| !p.timeline.is_empty()) {
        let path = report_path.with_extension(format!("timeline-{k}.png"));
        let points: Vec<crate::plot::TimelinePoint> = p
            .timeline
            .iter()
            .map(|s| crate::plot::TimelinePoint {
                jobs: s.jobs_finalized as f64,
                rss_mib: s.rss_bytes.iter().map(|b| *b as f64 / f64::from(1 << 20)).collect(),
                disk_mb: s.db_bytes.iter().map(|b| *b as f64 / 1e6).collect(),
            })
            .collect();
        crate::plot::plot_timeline(&points, &path)?;
        println!("timeline {}", path.display());
    }
    if report.points.len() > 1 || opts.plot.is_some() {
        let plot_path = opts.plot.clone().unwrap_or_else(|| report_path.with_extension("png"));
        let points: Vec<crate::plot::SweepPoint> = report
            .points
            .iter()
            .map(|p| crate::plot::SweepPoint {
                offered_per_s: p.rate_per_s,
                finalized_per_s: p.finalized_per_s,
                finalized_p50_ms: p.submit_to_finalized_ms.p50,
                finalized_p99_ms: p.submit_to_finalized_ms.p99,
            })
            .collect();
        match crate::plot::plot_sweep(&points, &plot_path)? {
            crate::plot::Text::Drawn => println!("plot    {}", plot_path.display()),
            crate::plot::Text::NoFont => println!(
                "plot    {} (drawn without text: no font found under {}; install fonts-dejavu-core)",
                plot_path.display(),
                crate::plot::FONT_ROOT
            ),
        }
    }
    Ok(report)
}

/// Generates the testnet of one point in `spec.dir`, starts it, runs the point, stops it.
async fn run_on_fresh_testnet(
    spec: &Spec,
    wasm: &[u8],
    schedule: Schedule,
    opts: &LoadOptions,
) -> anyhow::Result<RunData> {
    generate_with_clients(spec, opts.clients)?;
    for i in 0..spec.validators + spec.providers {
        let path = spec.dir.join("nodes").join(i.to_string()).join(crate::NODE_CONFIG_FILE);
        std::fs::write(&path, NODE_CONFIG).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let t = up(spec).await?;
    let data = run_point(&t, wasm, schedule, opts).await;
    if data.is_err() {
        for i in 0..t.nodes.len() {
            eprintln!("--- node {i} log (last lines) ---\n{}", t.log_tail(i, 15));
        }
    }
    data
}

fn write_report(report: &Report, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A client account: its key, its next nonce, the connection it submits on.
struct Client {
    key: Keypair,
    nonce: u64,
    conn: Arc<WsClient>,
}

/// What the submissions, the block watcher and the sample watchers share.
struct Shared {
    start: Instant,
    chain_id: Hash,
    fee: u64,
    module_id: Hash,
    terms: OfferTerms,
    /// The latest finalized height seen: the offers' assignment height.
    head_height: AtomicU64,
    blocks: AtomicU64,
    stop: AtomicBool,
    finality: Mutex<Finality>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    submissions: Vec<Submission>,
    sampled: u64,
    sample_errors: u64,
    sample_error_example: Option<String>,
    to_result: Vec<Duration>,
    refusal_messages: BTreeMap<i32, String>,
    error_example: Option<String>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking task cannot leave these records half-written: each update is one push or
    // insert. Keep going with what is there.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) async fn run_point(
    t: &Testnet,
    wasm: &[u8],
    schedule: Schedule,
    opts: &LoadOptions,
) -> anyhow::Result<RunData> {
    let keys = t.extra_client_keys()?;
    anyhow::ensure!(keys.len() >= opts.clients, "the testnet funds {} clients, {} asked", keys.len(), opts.clients);
    let url = t.rpc_url(0);
    let c = client::connect(&url).await?;
    let module_id = c.module_put(hex::encode(wasm)).await.context("module_put")?;
    let info = c.node_info().await.context("node_info")?;
    let head = c.chain_head().await.context("chain_head")?;
    let mut conns = Vec::new();
    for _ in 0..SUBMIT_CONNECTIONS.min(opts.clients) {
        conns.push(Arc::new(client::connect(&url).await?));
    }
    let mut samplers = Vec::new();
    for _ in 0..SAMPLE_CONNECTIONS {
        let slots = Arc::new(Semaphore::new(SUBSCRIPTIONS_PER_CONNECTION));
        samplers.push((Arc::new(client::connect(&url).await?), slots));
    }
    let blocks_conn = client::connect(&url).await?;
    let (pool_tx, mut pool_rx) = mpsc::channel::<Client>(opts.clients);
    // Each client's next nonce, read over the submission connections at once.
    let mut reads = JoinSet::new();
    for (i, key) in keys.into_iter().take(opts.clients).enumerate() {
        let conn = conns[i % conns.len()].clone();
        reads.spawn(async move {
            let nonce = conn.account_get(key.public()).await.context("account_get")?.next_nonce;
            anyhow::Ok(Client { key, nonce, conn })
        });
    }
    while let Some(read) = reads.join_next().await {
        pool_tx.try_send(read.context("account_get task")??).expect("the pool has room for every client");
    }
    let processes = measured_processes(t);
    let pids: Vec<u32> = processes.iter().map(|(_, _, pid)| *pid).collect();
    // What the nodes use with no load, to tell when they are idle again.
    let before: Vec<f64> = cpu_windows(pids.clone(), 1).await.into_iter().map(|w| w[0]).collect();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        chain_id: info.chain_id,
        fee: info.tx_fee_min,
        module_id,
        terms: OfferTerms {
            deadline_blocks: DEADLINE_BLOCKS,
            placement: opts.placement.clone(),
            ..OfferTerms::default()
        },
        head_height: AtomicU64::new(head.height),
        blocks: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        finality: Mutex::new(Finality::default()),
        log: Mutex::new(Log::default()),
    });
    let watcher = tokio::spawn(watch_blocks(shared.clone(), blocks_conn, head.height));
    let sampler = opts.sample_every.map(|every| {
        let nodes: Vec<(u32, PathBuf)> =
            t.nodes.iter().enumerate().map(|(i, b)| (b.pid, crate::node_home(&t.dir, i).join("db"))).collect();
        tokio::spawn(sample(nodes, every, shared.clone()))
    });
    let scraper = opts.scrape_every.map(|every| {
        let targets: Vec<std::net::SocketAddr> = t.nodes.iter().filter_map(|b| b.metrics).collect();
        tokio::spawn(scrape(targets, every, shared.clone()))
    });
    let ticks_before: Vec<Option<u64>> = pids.iter().map(|pid| cpu_ticks(*pid)).collect();

    // The ticker: every due submission starts at its time, whatever happened to earlier ones.
    let mut tasks = JoinSet::new();
    let mut next = 0u64;
    let mut not_sent_saturated = 0u64;
    let mut samples_left = SAMPLES_MAX;
    while next < schedule.total() {
        let due = schedule.due_by(shared.start.elapsed());
        while next < due {
            match pool_rx.try_recv() {
                Ok(client) => {
                    let sample = if next.is_multiple_of(SAMPLE_EVERY) && samples_left > 0 {
                        samplers.iter().find_map(|(conn, slots)| {
                            slots.clone().try_acquire_owned().ok().map(|slot| (conn.clone(), slot))
                        })
                    } else {
                        None
                    };
                    samples_left -= u64::from(sample.is_some());
                    tasks.spawn(submit(shared.clone(), client, next, schedule.at(next), sample, pool_tx.clone()));
                }
                Err(_) => not_sent_saturated += 1,
            }
            next += 1;
        }
        while tasks.try_join_next().is_some() {}
        if next < schedule.total() {
            tokio::time::sleep_until((shared.start + schedule.at(next)).into()).await;
        }
    }

    // Every client back in the pool: every submission answered (or timed out, then its nonce
    // reread, each within ANSWER_TIMEOUT).
    let answers_by = tokio::time::Instant::now() + 2 * ANSWER_TIMEOUT + Duration::from_secs(5);
    let mut idle = 0;
    while idle < opts.clients {
        match tokio::time::timeout_at(answers_by, pool_rx.recv()).await {
            Ok(Some(_)) => idle += 1,
            _ => break,
        }
    }
    anyhow::ensure!(idle == opts.clients, "{} submission(s) never finished", opts.clients - idle);
    let answered_at = shared.start.elapsed();
    let settle_windows = (opts.settle.as_secs_f64() / CPU_WINDOW.as_secs_f64()).ceil() as usize;
    let after = tokio::spawn(cpu_windows(pids.clone(), settle_windows));

    // The drain: until every accepted job is finalized, or its end.
    let drain_end = Instant::now() + opts.drain;
    while locked(&shared.finality).pending() > 0 && Instant::now() < drain_end && !watcher.is_finished() {
        tokio::time::sleep(HEAD_POLL_INTERVAL).await;
    }
    let drain_used = shared.start.elapsed().saturating_sub(answered_at);
    shared.stop.store(true, Ordering::Relaxed);
    watcher.await.context("block watcher")?.context("the block watcher failed")?;
    let scrapes = match scraper {
        Some(task) => task.await.context("the scraper")?,
        None => 0,
    };
    let timeline = match sampler {
        Some(task) => task.await.context("the sampler")?,
        None => Vec::new(),
    };
    let wall = shared.start.elapsed();
    let cpu_s: Vec<f64> = pids
        .iter()
        .zip(ticks_before)
        .map(|(pid, before)| match (before, cpu_ticks(*pid)) {
            (Some(b), Some(a)) => a.saturating_sub(b) as f64 / USER_HZ,
            _ => 0.0,
        })
        .collect();
    // Watched jobs are all finalized by now (or never will be): their events are on the way.
    let _ = tokio::time::timeout(SAMPLE_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    drop(tasks);
    let after = after.await.context("the CPU watch after the load")?;
    let processes = processes
        .into_iter()
        .zip(cpu_s)
        .zip(before.into_iter().zip(after))
        .map(|(((name, role, pid), cpu_s), (cpu_percent_before, cpu_percent_after))| ProcessUsage {
            name,
            role,
            pid,
            cpu_s,
            cpu_percent: 100.0 * cpu_s / wall.as_secs_f64().max(1e-9),
            // Read last: the peak over the run, the drain and the watch after.
            peak_rss_bytes: peak_rss_bytes(pid).unwrap_or(0),
            cpu_percent_before,
            cpu_percent_after,
        })
        .collect();

    let log = std::mem::take(&mut *locked(&shared.log));
    let finalized_at = std::mem::take(&mut *locked(&shared.finality)).into_finalized();
    Ok(RunData {
        rate_per_s: schedule.rate_per_s(),
        duration: opts.duration,
        drain: opts.drain,
        drain_used,
        scheduled: schedule.total(),
        not_sent_saturated,
        submissions: log.submissions,
        finalized_at,
        sampled: log.sampled,
        sample_errors: log.sample_errors,
        sample_error_example: log.sample_error_example,
        to_result: log.to_result,
        blocks: shared.blocks.load(Ordering::Relaxed),
        scrapes,
        timeline,
        refusal_messages: log.refusal_messages,
        error_example: log.error_example,
        processes,
    })
}

/// Records each node's resident memory and data folder (`nodes`: pid, db folder) and the jobs
/// finalized so far, each `every`, until the run stops.
async fn sample(nodes: Vec<(u32, PathBuf)>, every: Duration, shared: Arc<Shared>) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(every);
    while !shared.stop.load(Ordering::Relaxed) && samples.len() < SAMPLES_KEPT_MAX {
        tick.tick().await;
        let folders: Vec<PathBuf> = nodes.iter().map(|(_, db)| db.clone()).collect();
        let db_bytes = tokio::task::spawn_blocking(move || folders.iter().map(|f| folder_bytes(f)).collect())
            .await
            .unwrap_or_default();
        samples.push(Sample {
            at_s: shared.start.elapsed().as_secs_f64(),
            jobs_finalized: locked(&shared.finality).finalized_count() as u64,
            rss_bytes: nodes.iter().map(|(pid, _)| rss_bytes(*pid).unwrap_or(0)).collect(),
            db_bytes,
        });
    }
    samples
}

/// Bytes of the files in `dir` (not below).
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reads every node's `/metrics` (at `targets`) each `every`, as a Prometheus server would,
/// until the run stops; returns the scrapes answered.
async fn scrape(targets: Vec<std::net::SocketAddr>, every: Duration, shared: Arc<Shared>) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut answered = 0;
    let mut tick = tokio::time::interval(every);
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for addr in &targets {
            let get = async {
                let mut stream = tokio::net::TcpStream::connect(addr).await?;
                stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n").await?;
                let mut body = Vec::new();
                stream.read_to_end(&mut body).await?;
                std::io::Result::Ok(body.starts_with(b"HTTP/1.1 200"))
            };
            if let Ok(Ok(true)) = tokio::time::timeout(every.max(Duration::from_secs(1)), get).await {
                answered += 1;
            }
        }
    }
    answered
}

/// Signs and submits one offer with `client`, records the answer, gives the client back, and
/// for a sampled job waits for its `executed` event.
async fn submit(
    shared: Arc<Shared>,
    mut client: Client,
    index: u64,
    scheduled: Duration,
    sample: Option<(Arc<WsClient>, OwnedSemaphorePermit)>,
    pool: mpsc::Sender<Client>,
) {
    let started = shared.start.elapsed();
    let head = shared.head_height.load(Ordering::Relaxed);
    let offer = JobOffer {
        version: FORMAT_VERSION,
        chain_id: shared.chain_id,
        client: client.key.public(),
        nonce: client.nonce,
        fee: shared.fee,
        module_id: shared.module_id,
        input: format!("load {index}").into_bytes(),
        fuel_limit: shared.terms.fuel_limit,
        max_price: shared.terms.max_price,
        redundancy: shared.terms.redundancy,
        assignment_height: head.saturating_sub(client::ASSIGNMENT_LAG_BLOCKS),
        deadline_height: head + shared.terms.deadline_blocks,
        placement: shared.terms.placement.clone(),
        input_blob: None,
    }
    .sign(&client.key);
    let job_id = offer.job_id();
    // Subscribed before submitting, so the event cannot come before the subscription; a
    // failed subscription only loses the sample.
    let (subscription, slot) = match sample {
        Some((conn, slot)) => match conn.job_subscribe(job_id).await {
            Ok(subscription) => (Some(subscription), Some(slot)),
            Err(e) => {
                let mut log = locked(&shared.log);
                log.sample_errors += 1;
                log.sample_error_example.get_or_insert_with(|| e.to_string());
                (None, None)
            }
        },
        None => (None, None),
    };
    let sent = shared.start.elapsed();
    let result = tokio::time::timeout(ANSWER_TIMEOUT, client.conn.job_submit(offer)).await;
    let answered = shared.start.elapsed();
    let mut reread_nonce = false;
    let answer = match result {
        Ok(Ok(returned)) if returned == job_id => {
            client.nonce += 1;
            locked(&shared.finality).accepted(job_id);
            Answer::Accepted(job_id)
        }
        Ok(Ok(returned)) => {
            note_error(&shared, format!("the node returned job id {returned}, expected {job_id}"));
            reread_nonce = true;
            Answer::Failed
        }
        Ok(Err(ClientError::Call(e))) => {
            locked(&shared.log).refusal_messages.entry(e.code()).or_insert_with(|| e.message().to_string());
            reread_nonce = e.code() == error::BAD_NONCE;
            Answer::Refused(e.code())
        }
        Ok(Err(e)) => {
            note_error(&shared, e.to_string());
            reread_nonce = true;
            Answer::Failed
        }
        Err(_) => {
            note_error(&shared, format!("no answer within {ANSWER_TIMEOUT:?}"));
            reread_nonce = true;
            Answer::Failed
        }
    };
    if reread_nonce
        && let Ok(Ok(account)) =
            tokio::time::timeout(ANSWER_TIMEOUT, client.conn.account_get(client.key.public())).await
    {
        client.nonce = account.next_nonce;
    }
    locked(&shared.log).submissions.push(Submission { scheduled, started, sent, answered, answer });
    // The pool holds every client: there is always room.
    let _ = pool.send(client).await;

    let (Answer::Accepted(_), Some(mut subscription)) = (answer, subscription) else { return };
    locked(&shared.log).sampled += 1;
    while let Some(Ok(event)) = subscription.next().await {
        if event.stage == JobStage::Expired {
            break;
        }
        if event.stage >= JobStage::Executed {
            let at = shared.start.elapsed();
            locked(&shared.log).to_result.push(at.saturating_sub(sent));
            break;
        }
    }
    // Unsubscribed before the slot is free again.
    drop(subscription);
    drop(slot);
}

fn note_error(shared: &Shared, message: String) {
    locked(&shared.log).error_example.get_or_insert(message);
}

/// Reads every block finalized after `height`, every [`HEAD_POLL_INTERVAL`], until told to
/// stop: the finalized jobs, and the head for new offers.
async fn watch_blocks(shared: Arc<Shared>, c: WsClient, mut height: u64) -> anyhow::Result<()> {
    while !shared.stop.load(Ordering::Relaxed) {
        let head = c.chain_head().await.context("chain_head")?;
        shared.head_height.store(head.height, Ordering::Relaxed);
        while height < head.height {
            height += 1;
            let block = c.chain_get_block(height).await.with_context(|| format!("chain_getBlock {height}"))?;
            let at = shared.start.elapsed();
            let mut finality = locked(&shared.finality);
            for tx in &block.txs {
                if let Transaction::Result(r) = tx {
                    finality.finalized(r.claim.job_id, at);
                }
            }
            drop(finality);
            shared.blocks.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(HEAD_POLL_INTERVAL).await;
    }
    Ok(())
}

fn row(name: &str, p: &Percentiles) -> String {
    format!("  {name:<22} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}", p.count, p.p50, p.p90, p.p99, p.max)
}

/// Prints one point, readably.
pub fn print_point(p: &Point) {
    println!(
        "jobs        scheduled {}  sent {}  not sent (generator saturated: every client awaiting an answer) {}",
        p.scheduled, p.sent, p.not_sent_saturated
    );
    println!(
        "            accepted {}  refused {}  errors {}  finalized {}  accepted, never finalized {}",
        p.accepted, p.refused, p.errors, p.finalized, p.accepted_not_finalized
    );
    println!(
        "throughput  offered {:.1}/s  accepted {:.1}/s  finalized {:.1}/s  ({} blocks; drain {:.1} s of at most {:.1} s)",
        p.offered_per_s, p.accepted_per_s, p.finalized_per_s, p.blocks, p.drain_used_s, p.drain_s
    );
    if p.scrapes > 0 {
        println!("metrics     {} scrapes answered", p.scrapes);
    }
    println!("latency (ms)                  count       p50       p90       p99       max");
    println!("{}", row("submit→accepted", &p.submit_to_accepted_ms));
    println!("{}", row(&format!("submit→result (1/{SAMPLE_EVERY})"), &p.submit_to_result_ms));
    println!("{}", row("submit→finalized", &p.submit_to_finalized_ms));
    println!("{}", row("send lag", &p.send_lag_ms));
    for r in &p.refusals {
        println!(
            "refused     {} {}: {} (answer p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms) \"{}\"",
            r.code,
            r.name,
            r.answer_ms.count,
            r.answer_ms.p50,
            r.answer_ms.p90,
            r.answer_ms.p99,
            r.answer_ms.max,
            r.message
        );
    }
    if let Some(e) = &p.error_example {
        println!("errors      {} (first: {e})", p.errors);
    }
    if let Some(e) = &p.sample_error_example {
        println!("samples     {} not watched: job_subscribe failed (first: {e})", p.sample_errors);
    }
    println!("process     cpu (of one core)  peak RSS   before  after the last answer, each second");
    for u in &p.processes {
        let after: Vec<String> = u.cpu_percent_after.iter().map(|c| format!("{c:.0}")).collect();
        println!(
            "  {:<9} {:<9} {:>7.1}% {:>7.1} s  {:>7.1} MiB  {:>4.0}%  {}",
            u.name,
            u.role,
            u.cpu_percent,
            u.cpu_s,
            u.peak_rss_bytes as f64 / (1 << 20) as f64,
            u.cpu_percent_before,
            after.join(" ")
        );
    }
    match p.idle_after_s {
        Some(s) => println!("idle        every node idle again {s:.0} s after the last answer"),
        None => println!("idle        the nodes were not idle again while watched"),
    }
}

/// Prints a sweep's points side by side.
pub fn print_sweep(points: &[Point]) {
    println!("\nsweep        offered  accepted finalized   final p50   final p99   refused  unfinalized  not sent");
    for p in points {
        println!(
            "  {:>7}/s {:>8.1} {:>9.1} {:>9.1} {:>9.1} ms {:>9.1} ms {:>9} {:>12} {:>9}",
            p.rate_per_s,
            p.offered_per_s,
            p.accepted_per_s,
            p.finalized_per_s,
            p.submit_to_finalized_ms.p50,
            p.submit_to_finalized_ms.p99,
            p.refused,
            p.accepted_not_finalized,
            p.not_sent_saturated
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_schedule_spaces_submissions_evenly_and_counts_those_due() {
        let s = Schedule::new(4.0, Duration::from_secs(2)).expect("valid");
        assert_eq!(s.total(), 8);
        assert_eq!((0..4).map(|i| s.at(i)).collect::<Vec<_>>(), vec![ms(0), ms(250), ms(500), ms(750)]);
        assert_eq!(s.due_by(ms(0)), 1, "the first is due at once");
        assert_eq!(s.due_by(ms(249)), 1);
        assert_eq!(s.due_by(ms(250)), 2, "due exactly at its time");
        assert_eq!(s.due_by(ms(1_999)), 8);
        assert_eq!(s.due_by(Duration::from_secs(60)), 8, "never more than the total");
    }

    #[test]
    fn due_by_agrees_with_at_for_awkward_rates() {
        for rate in [3.0, 7.0, 0.3, 1_000.0, 2_999.0, 3_000.0, 33_333.0] {
            let s = Schedule::new(rate, Duration::from_secs(3)).expect("valid");
            assert_eq!(s.total(), (rate * 3.0_f64).round() as u64);
            for i in (0..s.total()).step_by((s.total() / 50).max(1) as usize) {
                let at = s.at(i);
                assert_eq!(s.due_by(at), i + 1, "rate {rate}: submission {i} is due at {at:?}");
                if let Some(before) = at.checked_sub(Duration::from_nanos(1)) {
                    assert_eq!(s.due_by(before), i, "rate {rate}: not before its time");
                }
            }
            // Due times never go backwards and are within a nanosecond of i / rate.
            let mut last = Duration::ZERO;
            for i in 0..s.total().min(10_000) {
                let at = s.at(i);
                assert!(at >= last);
                assert!((at.as_secs_f64() - i as f64 / rate).abs() < 2e-9 * (1.0 + i as f64 / rate));
                last = at;
            }
        }
    }

    #[test]
    fn schedules_out_of_bounds_are_refused() {
        assert!(Schedule::new(0.0, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(-5.0, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(f64::NAN, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(RATE_MAX_PER_S * 2.0, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(10.0, Duration::ZERO).is_err());
        assert!(Schedule::new(0.1, Duration::from_secs(1)).is_err(), "rounds to no offer");
        assert!(Schedule::new(RATE_MAX_PER_S, DURATION_MAX).is_err(), "too many offers to keep");
    }

    #[test]
    fn finality_counts_accepted_jobs_until_their_block_is_read_in_either_order() {
        let (a, b, c) = (Hash::of(b"a"), Hash::of(b"b"), Hash::of(b"c"));
        let mut f = Finality::default();
        f.accepted(a);
        f.accepted(b);
        f.accepted(a);
        assert_eq!(f.pending(), 2, "an id accepted twice counts once");
        f.finalized(a, ms(10));
        assert_eq!(f.pending(), 1);
        f.finalized(c, ms(11));
        assert_eq!(f.pending(), 1, "a result in a block before its offer's answer is read");
        f.accepted(c);
        assert_eq!(f.pending(), 1, "…is finalized when accepted");
        f.finalized(b, ms(12));
        f.finalized(b, ms(99));
        assert_eq!(f.pending(), 0);
        let at = f.into_finalized();
        assert_eq!(at[&b], ms(12), "the first block that holds it counts");
        assert_eq!(at.len(), 3);
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
        let p = Percentiles::of((1..=100).map(ms));
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p90 - 90.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
        let huge = Percentiles::of([Duration::from_secs(10 * 3_600)]);
        assert!((huge.max - 3_600_000.0).abs() / 3_600_000.0 < 1e-3, "saturates at an hour: {huge:?}");
    }

    fn submission(sent_ms: u64, answer_ms: u64, answer: Answer) -> Submission {
        Submission {
            scheduled: ms(sent_ms),
            started: ms(sent_ms + 1),
            sent: ms(sent_ms + 1),
            answered: ms(sent_ms + 1 + answer_ms),
            answer,
        }
    }

    #[test]
    fn a_run_is_aggregated_into_throughput_latency_and_refusals() {
        // 10 due over 1 s, 1 not sent; 6 accepted (5 finalized), 2 overloaded, 1 error.
        let ids: Vec<Hash> = (0..6u8).map(|i| Hash::of(&[i])).collect();
        let mut submissions: Vec<Submission> =
            ids.iter().enumerate().map(|(i, id)| submission(100 * i as u64, 2, Answer::Accepted(*id))).collect();
        submissions.push(submission(600, 5, Answer::Refused(error::OVERLOADED)));
        submissions.push(submission(700, 7, Answer::Refused(error::OVERLOADED)));
        submissions.push(submission(800, 30_000, Answer::Failed));
        // Blocks read at 200 ms (jobs 0, 1), 400 ms (2, 3) and 600 ms (4); job 5 never.
        let finalized_at: HashMap<Hash, Duration> =
            [(0, 200), (1, 200), (2, 400), (3, 400), (4, 600)].into_iter().map(|(i, t)| (ids[i], ms(t))).collect();
        let data = RunData {
            rate_per_s: 10.0,
            duration: Duration::from_secs(1),
            drain: Duration::from_secs(5),
            drain_used: Duration::from_secs(5),
            scheduled: 10,
            not_sent_saturated: 1,
            submissions,
            finalized_at,
            sampled: 1,
            sample_errors: 0,
            sample_error_example: None,
            to_result: vec![ms(40)],
            blocks: 7,
            scrapes: 3,
            timeline: vec![],
            refusal_messages: [(error::OVERLOADED, "mempool full".to_string())].into(),
            error_example: Some("no answer".into()),
            processes: vec![],
        };
        let p = aggregate(&data);
        assert_eq!(p.scrapes, 3);
        assert_eq!((p.scheduled, p.sent, p.not_sent_saturated), (10, 9, 1));
        assert_eq!((p.accepted, p.refused, p.errors), (6, 2, 1));
        assert_eq!((p.finalized, p.accepted_not_finalized), (5, 1));
        assert!((p.offered_per_s - 9.0).abs() < 1e-9);
        assert!((p.accepted_per_s - 6.0).abs() < 1e-9);
        // Blocks at 200, 400 and 600 ms: 3 jobs after the first block, over 0.4 s.
        assert!((p.finalized_per_s - 7.5).abs() < 1e-9, "{}", p.finalized_per_s);
        assert_eq!(p.submit_to_accepted_ms.count, 6);
        assert!((p.submit_to_accepted_ms.p50 - 2.0).abs() < 0.01);
        // Finalized latencies from the send (1 ms after each due time): 199, 99, 199, 99, 199.
        assert_eq!(p.submit_to_finalized_ms.count, 5);
        assert!((p.submit_to_finalized_ms.p50 - 199.0).abs() < 0.2, "{:?}", p.submit_to_finalized_ms);
        assert!((p.submit_to_finalized_ms.max - 199.0).abs() < 0.2);
        assert_eq!(p.send_lag_ms.count, 9);
        assert!((p.send_lag_ms.max - 1.0).abs() < 0.01);
        assert_eq!((p.sampled, p.submit_to_result_ms.count), (1, 1));
        assert_eq!(p.refusals.len(), 1);
        let r = &p.refusals[0];
        assert_eq!(
            (r.code, r.name.as_str(), r.answer_ms.count, r.message.as_str()),
            (error::OVERLOADED, "overloaded", 2, "mempool full")
        );
        assert!((r.answer_ms.max - 7.0).abs() < 0.01);
        // Answered in 5 and 7 ms: every percentile between them, in order.
        let answers = [r.answer_ms.p50, r.answer_ms.p90, r.answer_ms.p99, r.answer_ms.max];
        assert!(answers.windows(2).all(|w| w[0] <= w[1]), "{answers:?}");
        assert!((4.99..=7.01).contains(&r.answer_ms.p50), "{answers:?}");
        assert_eq!(p.blocks, 7);
        // It round-trips through the report's JSON.
        let json = serde_json::to_string(&p).expect("serializes");
        assert_eq!(serde_json::from_str::<Point>(&json).expect("parses"), p);
    }

    #[test]
    fn the_finalized_rate_falls_back_to_the_whole_window_with_one_block() {
        let mut one_block = vec![ms(300); 4];
        assert!((finalized_rate(&mut one_block, Duration::from_secs(2)) - 2.0).abs() < 1e-9);
        assert_eq!(finalized_rate(&mut [], Duration::from_secs(2)), 0.0);
    }

    #[test]
    fn nodes_are_idle_again_once_every_one_stays_near_its_cpu_before_the_load() {
        let usage = |role: &str, before: f64, after: &[f64]| ProcessUsage {
            name: "p".into(),
            role: role.into(),
            pid: 1,
            cpu_s: 0.0,
            cpu_percent: 0.0,
            peak_rss_bytes: 0,
            cpu_percent_before: before,
            cpu_percent_after: after.to_vec(),
        };
        let a = usage("validator", 3.0, &[90.0, 40.0, 7.0, 9.0, 20.0, 6.0, 4.0]);
        let b = usage("provider", 1.0, &[50.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        // The generator's own CPU does not count.
        let g = usage("generator", 0.0, &[99.0; 7]);
        assert_eq!(idle_after_s(&[a, b.clone(), g]), Some(5.0), "a's last busy second is the fifth");
        assert_eq!(idle_after_s(std::slice::from_ref(&b)), Some(1.0));
        assert_eq!(idle_after_s(&[usage("validator", 0.0, &[1.0, 2.0])]), Some(0.0));
        assert_eq!(idle_after_s(&[usage("validator", 0.0, &[1.0, 80.0])]), None, "busy to the end");
        assert_eq!(idle_after_s(&[usage("validator", 0.0, &[])]), None, "not watched");
        assert_eq!(idle_after_s(&[]), None);
    }

    #[test]
    fn proc_files_are_parsed() {
        // A command name with spaces and parentheses, as the kernel writes it.
        let stat = "4242 (cairn (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_ticks("4242 (short) S 1"), None);
        let status = "Name:\tcairn\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(parse_vm_hwm_bytes(status), Some(123_456 * 1024));
        assert_eq!(parse_vm_hwm_bytes("Name:\tcairn\n"), None);
        // This very process can be measured.
        assert!(cpu_ticks(std::process::id()).is_some());
        assert!(peak_rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
