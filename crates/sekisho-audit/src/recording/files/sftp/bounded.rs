//! A map with a size limit that forgets its oldest entry, for state kept per request or per
//! handle on behalf of a peer that might never answer.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::mem;

use super::MAX_PENDING;

/// A map that forgets its oldest entry beyond [`MAX_PENDING`] entries.
#[derive(Debug)]
pub(super) struct Bounded<K, V> {
    entries: HashMap<K, (u64, V)>,
    order: BTreeMap<u64, K>,
    next: u64,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded { entries: HashMap::new(), order: BTreeMap::new(), next: 0 }
    }
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// Inserts; returns the value replaced under `key`, or else the oldest one forgotten.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut out = self.remove(&key);
        if out.is_none() && self.entries.len() >= MAX_PENDING {
            out = self.order.pop_first().and_then(|(_, oldest)| self.entries.remove(&oldest)).map(|(_, v)| v);
        }
        self.order.insert(self.next, key.clone());
        self.entries.insert(key, (self.next, value));
        self.next += 1;
        out
    }

    pub(super) fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let (seq, value) = self.entries.remove(key)?;
        self.order.remove(&seq);
        Some(value)
    }

    pub(super) fn contains<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.entries.contains_key(key)
    }

    pub(super) fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().map(|(_, v)| v)
    }

    /// Removes everything, oldest first.
    pub(super) fn drain(&mut self) -> Vec<V> {
        let order = mem::take(&mut self.order);
        order.into_values().filter_map(|key| self.entries.remove(&key)).map(|(_, v)| v).collect()
    }
}
