//! Backpressure: what the node takes in follows what the chain finalizes.
//!
//! - [`BlockSizer`]: a proposer caps the transactions of the blocks it builds so that a height
//!   takes about the block time. It watches how long each height with transactions took from
//!   one finalized block to the next and how many transactions it held: a height that took
//!   more than [`SLOW_HEIGHT_FACTOR`] block times shrinks the cap to what it held, scaled down;
//!   a full height that took less than [`FAST_HEIGHT_FACTOR`] block times grows it. Local to the
//!   proposer (no other node checks it), so it needs no agreement.
//! - [`Admission`]: new offers and account transactions are refused, at once and before any
//!   signature is checked, once the pending ones fill [`ADMISSION_BLOCKS`] blocks of the
//!   current cap: past that, what is admitted now would wait longer than a few heights, and
//!   the mempool would only grow. A refused client gets `overloaded` with the time the
//!   backlog should take to drain as a retry hint. Results are never refused for this: they
//!   have a room of their own in the mempool.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The smallest cap on a block's transactions.
pub const BLOCK_TXS_MIN: usize = 64;
/// A height slower than this many block times shrinks the cap.
pub const SLOW_HEIGHT_FACTOR: f64 = 2.0;
/// A full height faster than this many block times grows the cap.
pub const FAST_HEIGHT_FACTOR: f64 = 1.25;
/// How much a slow height shrinks the cap below what it held, at most.
pub const SHRINK: f64 = 0.75;
/// How much a fast full height grows the cap.
pub const GROW: f64 = 1.25;
/// How many blocks of pending offers and account transactions admission lets in.
pub const ADMISSION_BLOCKS: usize = 4;
/// The longest retry hint given.
pub const RETRY_AFTER_MS_MAX: u64 = 10_000;

/// The cap on the transactions of the blocks this node proposes.
#[derive(Clone, Debug)]
pub struct BlockSizer {
    cap: usize,
    max: usize,
    block_time: Duration,
}

impl BlockSizer {
    /// Starts at `max` (the chain's `block_txs_max`).
    pub fn new(max: usize, block_time: Duration) -> BlockSizer {
        let max = max.max(BLOCK_TXS_MIN);
        BlockSizer { cap: max, max, block_time: block_time.max(Duration::from_millis(1)) }
    }

    /// The current cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A height with `txs` transactions took `took`, from the previous finalized block to its
    /// own.
    pub fn observe(&mut self, txs: usize, took: Duration) {
        if txs == 0 {
            return;
        }
        let times = took.as_secs_f64() / self.block_time.as_secs_f64();
        if times > SLOW_HEIGHT_FACTOR {
            // What this height held, scaled to the block time, and a little less.
            let fitting = (txs as f64 * SLOW_HEIGHT_FACTOR / times * SHRINK) as usize;
            self.cap = fitting.min(self.cap).clamp(BLOCK_TXS_MIN, self.max);
        } else if times < FAST_HEIGHT_FACTOR && txs * 10 >= self.cap * 9 {
            self.cap = ((self.cap as f64 * GROW) as usize).clamp(BLOCK_TXS_MIN, self.max);
        }
    }
}

/// Admission of new offers and account transactions, shared by the event loop (which updates
/// it after every block) and the RPC handlers and gossip (which check it).
#[derive(Debug)]
pub struct Admission {
    /// The most pending offers and account transactions admitted.
    limit: AtomicUsize,
    /// Time to drain a full backlog, for the retry hint.
    drain_ms: AtomicU64,
    /// The mempool's own bound.
    txs_max: usize,
    block_time_ms: u64,
}

/// Why a transaction was refused at admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node is overloaded: {pending} offers and transactions wait for blocks that take about {limit} at a time; retry in {retry_after_ms} ms"
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
            drain_ms: AtomicU64::new(block_time_ms),
            txs_max,
            block_time_ms: block_time_ms.max(1),
        }
    }

    /// After a block: admit at most [`ADMISSION_BLOCKS`] blocks of `cap` transactions.
    pub fn update(&self, cap: usize) {
        let limit = cap.saturating_mul(ADMISSION_BLOCKS).min(self.txs_max).max(1);
        self.limit.store(limit, Ordering::Relaxed);
        self.drain_ms.store(self.block_time_ms.saturating_mul(ADMISSION_BLOCKS as u64), Ordering::Relaxed);
    }

    /// Whether one more can be admitted with `pending` waiting.
    pub fn check(&self, pending: usize) -> Result<(), Overloaded> {
        let limit = self.limit.load(Ordering::Relaxed);
        if pending < limit {
            return Ok(());
        }
        // The backlog drains a block's cap per block time: the part over the limit first.
        let blocks = pending.div_ceil(limit / ADMISSION_BLOCKS).max(1) as u64;
        let retry_after_ms = (self.block_time_ms.saturating_mul(blocks))
            .max(self.drain_ms.load(Ordering::Relaxed) / ADMISSION_BLOCKS as u64)
            .clamp(1, RETRY_AFTER_MS_MAX);
        Err(Overloaded { pending, limit, retry_after_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_heights_shrink_the_cap_and_fast_full_ones_grow_it_within_bounds() {
        let block_time = Duration::from_millis(100);
        let mut s = BlockSizer::new(5_000, block_time);
        assert_eq!(s.cap(), 5_000);
        // 4,900 transactions took 1.1 s: eleven block times. The cap goes to what fits in two.
        s.observe(4_900, Duration::from_millis(1_100));
        assert_eq!(s.cap(), (4_900.0 * 2.0 / 11.0 * SHRINK) as usize);
        let shrunk = s.cap();
        // A height that took its time is left alone; so is an idle or a half-full fast one.
        s.observe(shrunk, Duration::from_millis(150));
        s.observe(0, Duration::from_secs(9));
        s.observe(shrunk / 2, Duration::from_millis(50));
        assert_eq!(s.cap(), shrunk);
        // Full and fast: it grows, up to the chain's maximum.
        s.observe(shrunk, Duration::from_millis(80));
        assert_eq!(s.cap(), (shrunk as f64 * GROW) as usize);
        for _ in 0..100 {
            let cap = s.cap();
            s.observe(cap, Duration::from_millis(80));
        }
        assert_eq!(s.cap(), 5_000);
        // Never below the minimum.
        for _ in 0..100 {
            s.observe(BLOCK_TXS_MIN, Duration::from_secs(10));
        }
        assert_eq!(s.cap(), BLOCK_TXS_MIN);
    }

    #[test]
    fn admission_stops_at_a_few_blocks_of_the_cap_with_a_drain_time_hint() {
        let a = Admission::new(20_000, 100);
        assert!(a.check(19_999).is_ok(), "before any block: the mempool's bound");
        assert!(a.check(20_000).is_err());
        a.update(500);
        assert!(a.check(1_999).is_ok());
        let refused = a.check(2_000).expect_err("four blocks of 500");
        assert_eq!((refused.pending, refused.limit), (2_000, 2_000));
        assert_eq!(refused.retry_after_ms, 400, "four blocks of 100 ms to drain");
        assert_eq!(a.check(1_000_000).expect_err("far over").retry_after_ms, RETRY_AFTER_MS_MAX);
        // The mempool's own bound stays the ceiling.
        a.update(1_000_000);
        assert!(a.check(20_000).is_err());
    }
}
