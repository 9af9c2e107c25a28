//! A least-recently-used map bounded by entry count, for compiled modules.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// At most `capacity` entries; inserting into a full map evicts the least recently used.
/// Lookups and inserts are O(log n).
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity: usize,
    /// Bumped on every use; gives each entry its recency.
    clock: u64,
    entries: HashMap<K, (V, u64)>,
    /// Recency → key, oldest first.
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// A map holding at most `capacity` entries (0: holds nothing).
    pub(crate) fn new(capacity: usize) -> Self {
        Lru { capacity, clock: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value for `key`, now the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let now = self.tick();
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = now;
        self.order.insert(now, key.clone());
        Some(value.clone())
    }

    /// Inserts or replaces `key`'s value, evicting the least recently used entry if full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let now = self.tick();
        if let Some((_, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
        } else if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.entries.remove(&oldest);
        }
        self.order.insert(now, key.clone());
        self.entries.insert(key, (value, now));
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert(1, "one");
        lru.insert(2, "two");
        assert_eq!(lru.get(&1), Some("one")); // 2 is now the oldest
        lru.insert(3, "three");
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.get(&1), Some("one"));
        assert_eq!(lru.get(&3), Some("three"));
    }

    #[test]
    fn replacing_a_key_does_not_evict() {
        let mut lru = Lru::new(2);
        lru.insert(1, "one");
        lru.insert(2, "two");
        lru.insert(1, "uno");
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.get(&1), Some("uno"));
        assert_eq!(lru.get(&2), Some("two"));
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut lru = Lru::new(0);
        lru.insert(1, "one");
        assert_eq!(lru.len(), 0);
        assert_eq!(lru.get(&1), None);
    }
}
