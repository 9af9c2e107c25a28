//! A bounded backoff list: what was let through recently, and when, so that the same thing
//! (a dial of one peer, a lookup of one blob) is not done again before its backoff.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys remembered with when they last passed, at most `max` of them (the oldest forgotten
/// first); a key passes again only `backoff` after it last did.
#[derive(Debug)]
pub struct Backoff<K> {
    at: HashMap<K, Instant>,
    backoff: Duration,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Copy> Backoff<K> {
    /// An empty list.
    pub fn new(backoff: Duration, max: usize) -> Backoff<K> {
        Backoff { at: HashMap::new(), backoff, max: max.max(1) }
    }

    /// Whether `key` may pass at `now` (it did not within the backoff); if so it is remembered
    /// as passed now.
    pub fn pass(&mut self, key: K, now: Instant) -> bool {
        if self.at.get(&key).is_some_and(|at| now.duration_since(*at) < self.backoff) {
            return false;
        }
        if self.at.len() >= self.max {
            let backoff = self.backoff;
            self.at.retain(|_, at| now.duration_since(*at) < backoff);
            if self.at.len() >= self.max
                && let Some(oldest) = self.at.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
            {
                self.at.remove(&oldest);
            }
        }
        self.at.insert(key, now);
        true
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_passes_again_only_after_its_backoff_and_the_list_stays_bounded() {
        let mut b = Backoff::new(Duration::from_secs(30), 4);
        let t0 = Instant::now();
        assert!(b.pass(1u32, t0));
        assert!(!b.pass(1, t0 + Duration::from_secs(15)), "within the backoff");
        assert!(b.pass(1, t0 + Duration::from_secs(30)), "after it");
        for k in 2..20u32 {
            assert!(b.pass(k, t0 + Duration::from_secs(30) + Duration::from_millis(u64::from(k))));
            assert!(b.len() <= 4);
        }
        // The oldest went first: the newest are still held back.
        assert!(!b.pass(19, t0 + Duration::from_secs(31)));
    }
}
