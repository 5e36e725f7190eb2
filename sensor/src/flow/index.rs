//! The flow index: every key of every flow (its own and its aliases) → the
//! flow's slot.
//!
//! Owns: the hash table and its hasher. Input: keys, and the table's slots
//! (an entry's key is read from its flow). Output: slots. Does not: own
//! the flows (`flow::table` does) or decide when keys come and go.
//!
//! The entries hold no key: a lookup reads the flow next anyway, so the
//! table is 8 bytes an entry instead of 64 and stays in the cache.

use super::key::FlowKey;
use super::state::Flow;
use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// A flow's slot and which of its keys the entry stands for (0: its own
/// key; i: its alias i - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub(super) slot: u32,
    pub(super) key: u8,
}

/// The key an index entry stands for, read from its flow.
fn entry_key(slots: &[Option<Box<Flow>>], e: IndexEntry) -> Option<&FlowKey> {
    let flow = slots.get(e.slot as usize)?.as_deref()?;
    match e.key {
        0 => Some(&flow.key),
        i => flow.aliases.get(usize::from(i) - 1),
    }
}

/// Keys → slots (see the module documentation).
#[derive(Debug)]
pub(super) struct FlowIndex {
    table: HashTable<IndexEntry>,
    hasher: FixedState,
}

impl FlowIndex {
    /// An empty index hashing with `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self {
            table: HashTable::new(),
            hasher: FixedState::with_seed(seed),
        }
    }

    /// The slot of the flow with key `key`.
    pub(super) fn get(&self, slots: &[Option<Box<Flow>>], key: &FlowKey) -> Option<u32> {
        let hash = key.index_hash(&self.hasher);
        self.table
            .find(hash, |e| entry_key(slots, *e) == Some(key))
            .map(|e| e.slot)
    }

    /// Adds an entry for `key`, which must be absent and already stored in
    /// the flow (as its key or its alias `entry.key`).
    pub(super) fn insert(&mut self, slots: &[Option<Box<Flow>>], key: &FlowKey, entry: IndexEntry) {
        let hash = key.index_hash(&self.hasher);
        let hasher = &self.hasher;
        self.table.insert_unique(hash, entry, |e| {
            entry_key(slots, *e).map_or(0, |k| k.index_hash(hasher))
        });
    }

    /// Removes the entry of the flow in `slot` for its key `which` (the
    /// flow must still be in its slot).
    pub(super) fn remove(&mut self, slots: &[Option<Box<Flow>>], slot: u32, which: u8) {
        let Some(key) = entry_key(slots, IndexEntry { slot, key: which }) else {
            return;
        };
        let hash = key.index_hash(&self.hasher);
        if let Ok(found) = self.table.find_entry(hash, |e| {
            e.slot == slot && e.key == which && entry_key(slots, *e) == Some(key)
        }) {
            found.remove();
        }
    }
}
