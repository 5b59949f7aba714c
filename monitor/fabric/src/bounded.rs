//! A map that stays within a bound: a count of entries, or a total weight
//! (bytes), the oldest entry evicted first. The newest entry always stays,
//! whatever its weight.

use std::collections::{HashMap, VecDeque};

/// A bounded map, oldest entry evicted first, by count or by weight.
pub struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    weight: usize,
    limit: usize,
    weigh: fn(&V) -> usize,
}

impl<V: Clone> Bounded<V> {
    /// An empty map holding at most `limit` of `weigh`'s weight (`|_| 1`:
    /// at most `limit` entries).
    pub fn new(limit: usize, weigh: fn(&V) -> usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            weight: 0,
            limit,
            weigh,
        }
    }

    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.map.get(key).cloned()
    }

    /// Removes `key`'s entry; returns it.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let value = self.map.remove(key)?;
        self.weight -= (self.weigh)(&value);
        self.order.retain(|k| k != key);
        Some(value)
    }

    /// Adds or replaces `key`'s entry, then evicts the oldest entries
    /// until the map is within its bound.
    pub fn insert(&mut self, key: String, value: V) {
        self.weight += (self.weigh)(&value);
        if let Some(old) = self.map.insert(key.clone(), value) {
            self.weight -= (self.weigh)(&old);
        } else {
            self.order.push_back(key);
        }
        while self.weight > self.limit && self.order.len() > 1 {
            if let Some(k) = self.order.pop_front()
                && let Some(v) = self.map.remove(&k)
            {
                self.weight -= (self.weigh)(&v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_entry_no_longer_weighs() {
        let mut b: Bounded<Vec<u8>> = Bounded::new(10, |v| v.len());
        b.insert("a".into(), vec![0; 6]);
        assert_eq!(b.remove("a"), Some(vec![0; 6]));
        assert_eq!(b.remove("a"), None);
        b.insert("b".into(), vec![0; 5]);
        b.insert("c".into(), vec![0; 5]);
        assert!(b.get("b").is_some() && b.get("c").is_some());
    }

    #[test]
    fn bounded_evicts_oldest_by_weight() {
        let mut b: Bounded<Vec<u8>> = Bounded::new(10, |v| v.len());
        b.insert("a".into(), vec![0; 4]);
        b.insert("b".into(), vec![0; 4]);
        b.insert("c".into(), vec![0; 4]);
        assert!(b.get("a").is_none());
        assert!(b.get("b").is_some() && b.get("c").is_some());
        // Replacing an entry re-weighs it without a second place in line.
        b.insert("c".into(), vec![0; 1]);
        assert_eq!(b.weight, 5);
        assert_eq!(b.order.len(), 2);
    }
}
