//! Backpressure: what the node takes in follows what the chain finalizes.
//!
//! - [`BlockSizer`]: a proposer caps the transactions of the blocks it builds so that the part
//!   of a height that grows with its transactions takes at most [`SIZE_BUDGET_BLOCK_TIMES`]
//!   block times. Every node measures what executing a block cost it per transaction (an
//!   average over the blocks it built, checked or applied, [`COST_SMOOTHING`]); a height costs
//!   about [`HEIGHT_COST_PER_BUILD`] times that per transaction (each node executes a block
//!   once — the proposer builds it, the others check or apply it — then writes it; and the
//!   proposer's execution comes before the others' checks).
//!   The rest of a height (consensus rounds, the wait for the block time) does not depend on
//!   its size, so it is left out. Local (no other node checks the cap), so it needs no
//!   agreement.
//! - [`Admission`]: new offers and account transactions are refused, at once — from
//!   atomics, before any lock is taken or signature checked — once the pending ones fill
//!   [`ADMISSION_BLOCKS`] blocks of the current cap (a job takes two transactions: its offer
//!   and its result): past that, what is admitted now would wait longer than a few heights,
//!   and the mempool would only grow. A refused client gets `overloaded` with the time the
//!   backlog should take to drain as a retry hint. Results are never refused for this: they
//!   have a room of their own in the mempool.
//!   A submission over RPC that passes takes a place ([`Admission::reserve`]) that counts as
//!   pending until the event loop has answered it: a burst cannot pass the check all at once
//!   while the first of it is still on its way (its signatures checked, then its turn in the
//!   loop), which would leave the loop to refuse the rest after that wait instead of the door
//!   at once. The loop does not check a reserved submission again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The smallest cap on a block's transactions.
pub const BLOCK_TXS_MIN: usize = 64;
/// How many block times the size-dependent part of a height may take.
pub const SIZE_BUDGET_BLOCK_TIMES: f64 = 2.0;
/// A height's cost per transaction, as a multiple of what executing the block cost this node
/// per transaction: the proposer's execution, then the others' (in parallel), then the write.
pub const HEIGHT_COST_PER_BUILD: f64 = 2.0;
/// Weight of the newest block in the average cost per transaction.
pub const COST_SMOOTHING: f64 = 0.25;
/// How many blocks of pending jobs admission lets in.
pub const ADMISSION_BLOCKS: usize = 3;
/// Blocks with fewer transactions say little about the cost per transaction (their cost is
/// mostly the block's own: state root, commit, storage), so they are not observed.
pub const OBSERVED_BLOCK_TXS_MIN: usize = 16;
/// The cap before this node has executed a block.
pub const BLOCK_TXS_INITIAL: usize = 1_000;
/// The longest retry hint given.
pub const RETRY_AFTER_MS_MAX: u64 = 10_000;

/// The cap on the transactions of the blocks this node proposes.
#[derive(Clone, Debug)]
pub struct BlockSizer {
    cap: usize,
    max: usize,
    block_time: Duration,
    /// Average build cost per transaction, in seconds (none before the first block built).
    cost_per_tx_s: Option<f64>,
}

impl BlockSizer {
    /// Starts at `max` (the chain's `block_txs_max`).
    pub fn new(max: usize, block_time: Duration) -> BlockSizer {
        let max = max.max(BLOCK_TXS_MIN);
        let cap = BLOCK_TXS_INITIAL.clamp(BLOCK_TXS_MIN, max);
        BlockSizer { cap, max, block_time: block_time.max(Duration::from_millis(1)), cost_per_tx_s: None }
    }

    /// The current cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// This node executed a block of `txs` transactions in `took` (built, checked or applied
    /// it). Blocks under [`OBSERVED_BLOCK_TXS_MIN`] transactions are not counted.
    pub fn observe_build(&mut self, txs: usize, took: Duration) {
        if txs < OBSERVED_BLOCK_TXS_MIN {
            return;
        }
        let cost = took.as_secs_f64() / txs as f64;
        let average = match self.cost_per_tx_s {
            Some(old) => old + COST_SMOOTHING * (cost - old),
            None => cost,
        };
        self.cost_per_tx_s = Some(average);
        let budget = SIZE_BUDGET_BLOCK_TIMES * self.block_time.as_secs_f64();
        let fitting = budget / (HEIGHT_COST_PER_BUILD * average.max(f64::MIN_POSITIVE));
        self.cap = (fitting.min(self.max as f64) as usize).clamp(BLOCK_TXS_MIN, self.max);
        tracing::debug!(
            txs,
            took_us = took.as_micros() as u64,
            average_us = average * 1e6,
            cap = self.cap,
            "block sizer"
        );
    }
}

/// Admission of new offers and account transactions, shared by the event loop (which updates
/// it after every block) and the RPC handlers and gossip (which check it).
#[derive(Debug)]
pub struct Admission {
    /// The most pending offers and account transactions admitted.
    limit: AtomicUsize,
    /// Offers and account transactions pending now (kept by whoever changes the mempool).
    pending: AtomicUsize,
    /// Submissions that passed the check and are on their way to the mempool ([`Reserved`]).
    in_flight: AtomicUsize,
    /// Time to drain a full backlog, for the retry hint.
    drain_ms: AtomicU64,
    /// The mempool's own bound.
    txs_max: usize,
    block_time_ms: u64,
    /// The node is stopping: it takes no new offers or transactions.
    closed: AtomicBool,
}

/// Why a transaction was refused at admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node is overloaded: {pending} offers and transactions are pending, the most it takes while blocks hold what they hold now is {limit}; retry in {retry_after_ms} ms"
)]
pub struct Overloaded {
    /// Pending now.
    pub pending: usize,
    /// The admission limit.
    pub limit: usize,
    /// When to retry.
    pub retry_after_ms: u64,
}

impl Admission {
    /// Before any block: the mempool's bound.
    pub fn new(txs_max: usize, block_time_ms: u64) -> Admission {
        Admission {
            limit: AtomicUsize::new(txs_max),
            pending: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            drain_ms: AtomicU64::new(block_time_ms),
            txs_max,
            block_time_ms: block_time_ms.max(1),
            closed: AtomicBool::new(false),
        }
    }

    /// The node is stopping: from now on it admits nothing new.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether the node is stopping.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// After a block: admit at most [`ADMISSION_BLOCKS`] blocks of jobs, at two transactions a
    /// job, with blocks of `cap` transactions.
    pub fn update(&self, cap: usize) {
        let limit = (cap / 2).saturating_mul(ADMISSION_BLOCKS).min(self.txs_max).max(1);
        self.limit.store(limit, Ordering::Relaxed);
        self.drain_ms.store(self.block_time_ms.saturating_mul(ADMISSION_BLOCKS as u64), Ordering::Relaxed);
    }

    /// The mempool now holds `pending` offers and account transactions.
    pub fn set_pending(&self, pending: usize) {
        self.pending.store(pending, Ordering::Relaxed);
    }

    /// Whether one more can be admitted now: pending and on their way, under the limit.
    pub fn check_now(&self) -> Result<(), Overloaded> {
        self.check(self.pending.load(Ordering::Relaxed) + self.in_flight.load(Ordering::Relaxed))
    }

    /// Takes a place for one submission if one more can be admitted now: it counts as pending
    /// until the returned guard is dropped (once the mempool holds it, or it was refused).
    pub fn reserve(&self) -> Result<Reserved<'_>, Overloaded> {
        let ahead = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let place = Reserved(self);
        self.check(self.pending.load(Ordering::Relaxed) + ahead)?;
        Ok(place)
    }

    /// Whether one more can be admitted with `pending` waiting.
    pub fn check(&self, pending: usize) -> Result<(), Overloaded> {
        let limit = self.limit.load(Ordering::Relaxed);
        if pending < limit {
            return Ok(());
        }
        // The backlog drains a block's worth of jobs per block time.
        let blocks = pending.div_ceil((limit / ADMISSION_BLOCKS).max(1)).max(1) as u64;
        let retry_after_ms = (self.block_time_ms.saturating_mul(blocks))
            .max(self.drain_ms.load(Ordering::Relaxed) / ADMISSION_BLOCKS as u64)
            .clamp(1, RETRY_AFTER_MS_MAX);
        Err(Overloaded { pending, limit, retry_after_ms })
    }
}

/// A place taken at admission ([`Admission::reserve`]), given back when dropped.
#[derive(Debug)]
#[must_use = "the place is given back when dropped"]
pub struct Reserved<'a>(&'a Admission);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_the_size_dependent_part_of_a_height_within_its_budget() {
        let block_time = Duration::from_millis(100);
        let mut s = BlockSizer::new(5_000, block_time);
        assert_eq!(s.cap(), BLOCK_TXS_INITIAL, "before any block executed");
        // 100 µs a transaction to execute: a height costs 200 µs a transaction; 200 ms of
        // budget.
        s.observe_build(1_000, Duration::from_millis(100));
        assert_eq!(s.cap(), 1_000);
        // Cheaper blocks let it grow, up to the chain's maximum.
        for _ in 0..50 {
            s.observe_build(1_000, Duration::from_millis(5));
        }
        assert_eq!(s.cap(), 5_000);
        // Empty and small blocks (their cost is the block's own) change nothing.
        s.observe_build(0, Duration::from_secs(9));
        s.observe_build(OBSERVED_BLOCK_TXS_MIN - 1, Duration::from_millis(5));
        assert_eq!(s.cap(), 5_000);
        // The average moves by a quarter of the difference per block.
        let mut s = BlockSizer::new(5_000, block_time);
        s.observe_build(100, Duration::from_millis(5));
        s.observe_build(100, Duration::from_millis(45));
        // (50 + 0.25 × (450 − 50)) µs = 150 µs → 200 ms / 300 µs.
        assert_eq!(s.cap(), 666);
        // Never below the minimum.
        s.observe_build(OBSERVED_BLOCK_TXS_MIN, Duration::from_secs(10));
        assert_eq!(s.cap(), BLOCK_TXS_MIN);
    }

    #[test]
    fn admission_stops_at_a_few_blocks_of_the_cap_with_a_drain_time_hint() {
        let a = Admission::new(20_000, 100);
        assert!(a.check(19_999).is_ok(), "before any block: the mempool's bound");
        assert!(a.check(20_000).is_err());
        a.update(1_000);
        assert!(a.check(1_499).is_ok());
        let refused = a.check(1_500).expect_err("three blocks of 500 jobs");
        assert_eq!((refused.pending, refused.limit), (1_500, 1_500));
        assert_eq!(refused.retry_after_ms, 300, "three blocks of 100 ms to drain");
        a.set_pending(1_500);
        assert_eq!(a.check_now(), Err(refused));
        a.set_pending(10);
        assert!(a.check_now().is_ok());
        assert_eq!(a.check(1_000_000).expect_err("far over").retry_after_ms, RETRY_AFTER_MS_MAX);
        // The mempool's own bound stays the ceiling.
        a.update(1_000_000);
        assert!(a.check(20_000).is_err());
    }

    #[test]
    fn submissions_on_their_way_count_as_pending_until_they_give_their_place_back() {
        let a = Admission::new(20_000, 100);
        a.update(1_000);
        a.set_pending(1_497);
        let first = a.reserve().expect("1,497 pending");
        let second = a.reserve().expect("1,498 pending or on their way");
        let third = a.reserve().expect("1,499");
        let refused = a.reserve().expect_err("1,500: the limit");
        assert_eq!((refused.pending, refused.limit), (1_500, 1_500));
        assert_eq!(a.check_now().expect_err("three on their way").pending, 1_500);
        // A refused reservation holds no place.
        assert_eq!(a.in_flight.load(Ordering::Relaxed), 3);
        drop(first);
        assert!(a.check_now().is_ok());
        // Admitted: the mempool holds it, and its place is given back.
        a.set_pending(1_498);
        drop(second);
        assert!(a.check_now().is_ok(), "1,498 pending, one on its way");
        let fourth = a.reserve().expect("1,499");
        assert!(a.reserve().is_err());
        drop((third, fourth));
        assert_eq!(a.in_flight.load(Ordering::Relaxed), 0);
    }
}
