//! A least-recently-used map bounded by entry count and by total weight (bytes), for
//! compiled modules.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// At most `capacity` entries weighing at most `weight_max` together; inserting evicts the
/// least recently used entries until both bounds hold. An entry heavier than `weight_max`
/// is not kept. Lookups and inserts are O(log n).
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity: usize,
    weight_max: usize,
    weight: usize,
    /// Bumped on every use; gives each entry its recency.
    clock: u64,
    /// Value, weight, recency.
    entries: HashMap<K, (V, usize, u64)>,
    /// Recency → key, oldest first.
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// A map holding at most `capacity` entries (0: holds nothing) weighing at most
    /// `weight_max` together.
    pub(crate) fn new(capacity: usize, weight_max: usize) -> Self {
        Lru { capacity, weight_max, weight: 0, clock: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value for `key`, now the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let now = self.tick();
        let (value, _, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = now;
        self.order.insert(now, key.clone());
        Some(value.clone())
    }

    /// Inserts or replaces `key`'s value, evicting least recently used entries until the
    /// bounds hold; returns the keys evicted (last used just before they went).
    pub(crate) fn insert(&mut self, key: K, value: V, weight: usize) -> Vec<K> {
        if let Some((_, old_weight, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
            self.weight -= old_weight;
        }
        let mut evicted = Vec::new();
        if self.capacity == 0 || weight > self.weight_max {
            return evicted;
        }
        while self.entries.len() >= self.capacity || self.weight + weight > self.weight_max {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some((_, old_weight, _)) = self.entries.remove(&oldest) {
                self.weight -= old_weight;
            }
            evicted.push(oldest);
        }
        let now = self.tick();
        self.order.insert(now, key.clone());
        self.entries.insert(key, (value, weight, now));
        self.weight += weight;
        evicted
    }

    /// Whether `key` is cached (without touching its recency).
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Total weight of the entries.
    pub(crate) fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(2, usize::MAX);
        lru.insert(1, "one", 1);
        lru.insert(2, "two", 1);
        assert_eq!(lru.get(&1), Some("one")); // 2 is now the oldest
        assert_eq!(lru.insert(3, "three", 1), vec![2], "the evicted keys are told");
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.get(&1), Some("one"));
        assert_eq!(lru.get(&3), Some("three"));
    }

    #[test]
    fn replacing_a_key_does_not_evict() {
        let mut lru = Lru::new(2, usize::MAX);
        lru.insert(1, "one", 1);
        lru.insert(2, "two", 1);
        lru.insert(1, "uno", 5);
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.weight(), 6);
        assert_eq!(lru.get(&1), Some("uno"));
        assert_eq!(lru.get(&2), Some("two"));
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut lru = Lru::new(0, usize::MAX);
        lru.insert(1, "one", 1);
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.get(&1), None);
    }

    #[test]
    fn bounded_in_weight() {
        let mut lru = Lru::new(100, 10);
        lru.insert(1, "one", 4);
        lru.insert(2, "two", 4);
        assert_eq!(lru.get(&1), Some("one")); // 2 is now the oldest
        lru.insert(3, "three", 4); // 12 > 10: evicts 2
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.weight(), 8);
        assert_eq!(lru.get(&2), None);
        lru.insert(4, "too heavy", 11); // never kept, evicts nothing
        assert_eq!(lru.get(&4), None);
        assert_eq!(lru.len(), 2);
        lru.insert(5, "five", 10); // evicts everything else
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.weight(), 10);
    }
}
