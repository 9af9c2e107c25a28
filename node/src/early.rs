//! What arrives before this node can take it: results before their offer, and offers before
//! the block they name.
//!
//! A provider executes an offer as soon as gossip brings it, and gossip takes different paths:
//! its result can reach a validator before the offer does. Such a result is not yet awaited
//! (no open job, no pending offer), so it cannot take a place in the mempool — signed results
//! cost nothing to make up — but dropping it would leave the job to the provider's
//! re-broadcast, seconds later. It is held here instead, briefly and within a bound, and
//! moves to the mempool when its offer arrives (by gossip, RPC or a finalized block).
//!
//! Bounded in entries ([`EARLY_RESULTS_MAX`]) and bytes ([`EARLY_RESULT_BYTES_MAX`]), the
//! oldest evicted first, each held at most [`EARLY_RESULT_TTL`]. What is evicted or expires
//! is not lost: its provider re-broadcasts it.
//!
//! An offer names the finalized height its providers are ranked at (`assignment_height`),
//! which a client reads from the node it submits to. Gossip can bring the offer to a node
//! that has not applied that block yet — a few milliseconds behind — and there it fails
//! admission. Dropped, it would reach its provider only in the block that includes it, a
//! block time or more later (about one job in a hundred under load). [`EarlyOffers`] holds
//! those at most [`EARLY_OFFER_BLOCKS_MAX`] blocks ahead, within bounds of its own, until the
//! node's head reaches their height.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_ledger::{Hash, JobResult, PublicKey, SignedOffer};

/// How many early results are held at most.
pub const EARLY_RESULTS_MAX: usize = 4_096;
/// How many bytes of early results (encoded) are held at most.
pub const EARLY_RESULT_BYTES_MAX: usize = 16 << 20;
/// How long an early result waits for its offer at most.
pub const EARLY_RESULT_TTL: Duration = Duration::from_secs(10);

/// Results waiting for their offer, oldest first.
#[derive(Debug, Default)]
pub struct EarlyResults {
    /// (job, provider) → the result, its encoded size and when it arrived.
    held: BTreeMap<(Hash, PublicKey), (JobResult, usize, Instant)>,
    /// Arrival order, for eviction and expiry (entries already taken are skipped).
    order: VecDeque<((Hash, PublicKey), Instant)>,
    bytes: usize,
}

impl EarlyResults {
    /// Holds `r` until its offer arrives; evicts the oldest to stay within the bounds. A
    /// result larger than the whole byte bound is not held.
    pub fn hold(&mut self, r: JobResult, now: Instant) {
        let size = borsh::object_length(&r).expect("borsh sizing cannot fail");
        if size > EARLY_RESULT_BYTES_MAX {
            return;
        }
        let key = (r.claim.job_id, r.claim.provider);
        if self.held.contains_key(&key) {
            return;
        }
        while self.held.len() >= EARLY_RESULTS_MAX || self.bytes + size > EARLY_RESULT_BYTES_MAX {
            if !self.evict_oldest() {
                break;
            }
        }
        self.bytes += size;
        self.held.insert(key, (r, size, now));
        self.order.push_back((key, now));
    }

    /// Takes the results held for `job_id` (one per provider).
    pub fn take(&mut self, job_id: &Hash) -> Vec<JobResult> {
        if self.held.is_empty() {
            return Vec::new();
        }
        // Keyed by job first: a job's results are one range, not a scan of all held.
        let range = (*job_id, PublicKey([0; 32]))..=(*job_id, PublicKey([0xff; 32]));
        let keys: Vec<(Hash, PublicKey)> = self.held.range(range).map(|(k, _)| *k).collect();
        keys.into_iter()
            .filter_map(|k| self.held.remove(&k))
            .map(|(r, size, _)| {
                self.bytes -= size;
                r
            })
            .collect()
    }

    /// Drops what waited longer than [`EARLY_RESULT_TTL`].
    pub fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front().copied() {
            if now.duration_since(at) <= EARLY_RESULT_TTL {
                break;
            }
            self.order.pop_front();
            self.remove_if_held_since(&key, at);
        }
        // Entries taken early leave stale places in the order: keep it as small as what is held.
        if self.order.len() > 2 * self.held.len() + 64 {
            let held = &self.held;
            self.order.retain(|(key, at)| held.get(key).is_some_and(|(_, _, since)| since == at));
        }
    }

    /// How many results are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Removes the oldest entry still held; whether there was one.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, at)) = self.order.pop_front() {
            // Entries taken since are skipped.
            if self.remove_if_held_since(&key, at) {
                return true;
            }
        }
        false
    }

    /// Removes `key` if the result held for it arrived at `at`; whether it did.
    fn remove_if_held_since(&mut self, key: &(Hash, PublicKey), at: Instant) -> bool {
        if self.held.get(key).is_none_or(|(_, _, since)| *since != at) {
            return false;
        }
        let (_, size, _) = self.held.remove(key).expect("just found");
        self.bytes -= size;
        true
    }
}

/// How many offers ahead of this node's head are held at most.
pub const EARLY_OFFERS_MAX: usize = 4_096;
/// How many bytes of offers ahead of this node's head (encoded) are held at most.
pub const EARLY_OFFER_BYTES_MAX: usize = 16 << 20;
/// How far ahead of this node's head an offer's assignment height may be for it to be held.
pub const EARLY_OFFER_BLOCKS_MAX: u64 = 4;
/// How long an offer waits for this node's head to reach its assignment height at most.
pub const EARLY_OFFER_TTL: Duration = Duration::from_secs(10);

/// Offers whose assignment height this node has not reached, by that height.
#[derive(Debug, Default)]
pub struct EarlyOffers {
    /// (assignment height, job) → the offer, its encoded size and when it arrived.
    held: BTreeMap<(u64, Hash), (SignedOffer, usize, Instant)>,
    bytes: usize,
}

impl EarlyOffers {
    /// Holds `offer`, whose assignment height is ahead of this node's `head`, until the head
    /// reaches it. Whether it is held: not if it is at most `head` (nothing to wait for), more
    /// than [`EARLY_OFFER_BLOCKS_MAX`] ahead, or past the bounds (the offer then reaches this
    /// node in the block that includes it, as any offer it missed).
    pub fn hold(&mut self, offer: SignedOffer, head: u64, now: Instant) -> bool {
        let at = offer.offer.assignment_height;
        if at <= head || at - head > EARLY_OFFER_BLOCKS_MAX {
            return false;
        }
        let key = (at, offer.job_id());
        if self.held.contains_key(&key) {
            return true;
        }
        let size = borsh::object_length(&offer).expect("borsh sizing cannot fail");
        if self.held.len() >= EARLY_OFFERS_MAX || self.bytes + size > EARLY_OFFER_BYTES_MAX {
            return false;
        }
        self.bytes += size;
        self.held.insert(key, (offer, size, now));
        true
    }

    /// Takes the offers this node can check now that its head is `head`: those whose
    /// assignment height is `head` or below, lowest first.
    pub fn take_ready(&mut self, head: u64) -> Vec<SignedOffer> {
        let later = self.held.split_off(&(head.saturating_add(1), Hash::ZERO));
        let ready = std::mem::replace(&mut self.held, later);
        ready
            .into_values()
            .map(|(offer, size, _)| {
                self.bytes -= size;
                offer
            })
            .collect()
    }

    /// Drops what waited longer than [`EARLY_OFFER_TTL`] (a node whose head stopped).
    pub fn expire(&mut self, now: Instant) {
        let bytes = &mut self.bytes;
        self.held.retain(|_, (_, size, at)| {
            let keep = now.duration_since(*at) <= EARLY_OFFER_TTL;
            if !keep {
                *bytes -= *size;
            }
            keep
        });
    }

    /// How many offers are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Keypair, ResultClaim};

    use super::*;

    fn result(job: &[u8], provider: &Keypair) -> JobResult {
        let claim = ResultClaim {
            version: cairn_ledger::FORMAT_VERSION,
            job_id: Hash::of(job),
            module_id: Hash::of(b"module"),
            input_hash: Hash::of(b"input"),
            output_hash: Hash::of(b"out"),
            fuel_used: 1,
            status: cairn_ledger::JobStatus::Ok,
            provider: provider.public(),
        };
        JobResult::new(claim, b"out".to_vec(), provider)
    }

    #[test]
    fn a_held_result_is_taken_when_its_offer_arrives_and_only_then() {
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let mut early = EarlyResults::default();
        let now = Instant::now();
        early.hold(result(b"job", &a), now);
        early.hold(result(b"job", &b), now);
        early.hold(result(b"job", &a), now); // a duplicate
        early.hold(result(b"other", &a), now);
        assert_eq!(early.len(), 3);
        assert!(early.take(&Hash::of(b"unknown")).is_empty());
        let taken = early.take(&Hash::of(b"job"));
        assert_eq!(taken.len(), 2, "one per provider");
        assert!(taken.iter().all(|r| r.claim.job_id == Hash::of(b"job")));
        assert!(early.take(&Hash::of(b"job")).is_empty(), "taken once");
        assert_eq!(early.len(), 1);
    }

    #[test]
    fn held_results_are_bounded_oldest_first_and_expire() {
        let a = Keypair::from_seed([1; 32]);
        let mut early = EarlyResults::default();
        let start = Instant::now();
        for i in 0..EARLY_RESULTS_MAX + 10 {
            early.hold(result(&i.to_le_bytes(), &a), start);
        }
        assert_eq!(early.len(), EARLY_RESULTS_MAX);
        assert!(early.take(&Hash::of(&0usize.to_le_bytes())).is_empty(), "the oldest went first");
        assert_eq!(early.take(&Hash::of(&10usize.to_le_bytes())).len(), 1, "the 11th is still held");
        let one_size = borsh::object_length(&result(b"x", &a)).expect("sizes");
        assert_eq!(early.bytes, early.len() * one_size, "bytes follow what is held");
        // Taken entries are skipped by eviction; a later arrival outlives the expiry.
        let later = start + EARLY_RESULT_TTL;
        early.hold(result(b"late", &a), later);
        early.expire(later + Duration::from_millis(1));
        assert_eq!(early.len(), 1);
        assert_eq!(early.take(&Hash::of(b"late")).len(), 1);
        assert_eq!(early.bytes, 0);
    }

    fn offer(at: u64, input: &[u8]) -> SignedOffer {
        let client = Keypair::from_seed([3; 32]);
        cairn_ledger::JobOffer {
            input: input.to_vec(),
            assignment_height: at,
            deadline_height: at + 100,
            ..crate::test_genesis::offer(Hash::of(b"chain"), &client)
        }
        .sign(&client)
    }

    #[test]
    fn an_offer_ahead_of_the_head_is_held_until_the_head_reaches_it() {
        let mut early = EarlyOffers::default();
        let now = Instant::now();
        assert!(!early.hold(offer(10, b"a"), 10, now), "at the head: nothing to wait for");
        assert!(!early.hold(offer(9, b"a"), 10, now), "behind the head");
        assert!(!early.hold(offer(10 + EARLY_OFFER_BLOCKS_MAX + 1, b"a"), 10, now), "too far ahead");
        assert!(early.hold(offer(11, b"a"), 10, now));
        assert!(early.hold(offer(11, b"a"), 10, now), "a duplicate is held once");
        assert!(early.hold(offer(12, b"b"), 10, now));
        assert!(early.hold(offer(10 + EARLY_OFFER_BLOCKS_MAX, b"c"), 10, now));
        assert_eq!(early.len(), 3);
        assert!(early.take_ready(10).is_empty());
        let ready = early.take_ready(12);
        assert_eq!(ready.iter().map(|o| o.offer.assignment_height).collect::<Vec<_>>(), vec![11, 12]);
        assert_eq!(early.len(), 1);
        let one = borsh::object_length(&offer(14, b"c")).expect("sizes");
        assert_eq!(early.bytes, one, "bytes follow what is held");
        assert_eq!(early.take_ready(u64::MAX).len(), 1);
        assert!(early.is_empty());
        assert_eq!(early.bytes, 0);
    }

    #[test]
    fn held_offers_are_bounded_and_expire() {
        let mut early = EarlyOffers::default();
        let start = Instant::now();
        for i in 0..EARLY_OFFERS_MAX + 10 {
            let held = early.hold(offer(11, &i.to_le_bytes()), 10, start);
            assert_eq!(held, i < EARLY_OFFERS_MAX, "offer {i}");
        }
        assert_eq!(early.len(), EARLY_OFFERS_MAX);
        early.take_ready(11);
        // Bytes bound the held offers too.
        let big = vec![7; EARLY_OFFER_BYTES_MAX / 2];
        assert!(early.hold(offer(11, &big), 10, start));
        assert!(!early.hold(offer(12, &big), 10, start), "past the byte bound");
        let later = start + EARLY_OFFER_TTL;
        assert!(early.hold(offer(12, b"late"), 10, later));
        early.expire(later + Duration::from_millis(1));
        assert_eq!(early.len(), 1, "the late one stays");
        assert_eq!(early.take_ready(12)[0].offer.input, b"late");
        assert_eq!(early.bytes, 0);
    }
}
