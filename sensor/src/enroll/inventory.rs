//! The inventory that tells which workload a mirrored packet comes from:
//! interface → instance id, VPC, subnet, availability zone and selected
//! tags, looked up by the outer source address and VNI of the VXLAN layer
//! AWS wraps mirrored packets in.
//!
//! Owns: building the lookup table from what a reconcile pass listed (every
//! instance's interfaces with their primary private IPs, and every session
//! with a known VNI), its cap, swapping it whole when a pass ends, and the
//! counters `/metrics` shows. Input: listed instances and (interface, VNI)
//! pairs; lookups by (address, VNI). Output: shared [`Instance`] values.
//! Does not: call AWS (the pass does), or touch records (see `enrich`).
//!
//! Keys. AWS sends mirrored packets from the primary IP of the session's
//! source interface, with the session's VNI. (address, VNI) identifies the
//! interface even where VPCs reuse addresses; the address alone is the
//! fallback for sessions whose VNI the pass did not learn (AWS chose it and
//! the session is not listed yet, or another owner's session), and answers
//! only when exactly one listed interface has that address.

use super::ec2;
use nucleus_proto::Instance;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// How a lookup was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// By (address, VNI): a session the inventory knows.
    Session(Arc<Instance>),
    /// By the address alone: the only listed interface with it.
    Address(Arc<Instance>),
    /// Unknown, or an address several interfaces share.
    Miss,
}

/// One pass's lookup table; never changed once built.
#[derive(Debug, Default)]
pub struct InventoryTable {
    /// `None`: two interfaces share the key (overlapping VPCs with one VNI
    /// policy), so it names neither.
    by_session: HashMap<(IpAddr, u32), Option<Arc<Instance>>>,
    by_address: HashMap<IpAddr, Option<Arc<Instance>>>,
    left_out: u64,
}

/// Inserts `key` → `value`, or marks the key ambiguous when another
/// interface already holds it.
fn insert<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Option<Arc<Instance>>>,
    key: K,
    value: &Arc<Instance>,
) {
    map.entry(key)
        .and_modify(|held| {
            if held.as_ref().is_some_and(|h| h.eni_id != value.eni_id) {
                *held = None;
            }
        })
        .or_insert_with(|| Some(Arc::clone(value)));
}

impl InventoryTable {
    /// The table for `instances` and the `(interface id, VNI)` of known
    /// sessions, with `tags` copied from each instance, holding at most
    /// `max_entries` entries: interfaces (in listing order) whose entries
    /// would pass it are left out whole.
    pub fn build(
        instances: &[ec2::Instance],
        sessions: &[(String, u32)],
        tags: &[String],
        max_entries: usize,
    ) -> Self {
        let mut vnis: HashMap<&str, Vec<u32>> = HashMap::new();
        for (eni, vni) in sessions {
            let list = vnis.entry(eni.as_str()).or_default();
            if !list.contains(vni) {
                list.push(*vni);
            }
        }
        let mut t = InventoryTable::default();
        for i in instances {
            let selected: BTreeMap<String, String> = tags
                .iter()
                .filter_map(|k| Some((k.clone(), i.tags.get(k)?.clone())))
                .collect();
            for eni in &i.enis {
                let Ok(address) = eni.private_ip.parse::<IpAddr>() else {
                    continue;
                };
                let eni_vnis = vnis.get(eni.id.as_str()).map_or(&[][..], Vec::as_slice);
                let new_keys = usize::from(!t.by_address.contains_key(&address))
                    + eni_vnis
                        .iter()
                        .filter(|v| !t.by_session.contains_key(&(address, **v)))
                        .count();
                if t.len() + new_keys > max_entries {
                    t.left_out += 1;
                    continue;
                }
                let subnet = if eni.subnet_id.is_empty() {
                    &i.subnet_id
                } else {
                    &eni.subnet_id
                };
                let instance = Arc::new(Instance {
                    instance_id: i.id.clone(),
                    eni_id: eni.id.clone(),
                    vpc_id: i.vpc_id.clone(),
                    subnet_id: subnet.clone(),
                    availability_zone: i.availability_zone.clone(),
                    tags: selected.clone(),
                });
                insert(&mut t.by_address, address, &instance);
                for vni in eni_vnis {
                    insert(&mut t.by_session, (address, *vni), &instance);
                }
            }
        }
        t
    }

    /// The instance of the interface that sends from `address` with `vni`.
    pub fn lookup(&self, address: IpAddr, vni: u32) -> Lookup {
        let address = address.to_canonical();
        if let Some(found) = self.by_session.get(&(address, vni)) {
            return found.clone().map_or(Lookup::Miss, Lookup::Session);
        }
        match self.by_address.get(&address) {
            Some(Some(found)) => Lookup::Address(Arc::clone(found)),
            _ => Lookup::Miss,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.by_session.len() + self.by_address.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Interfaces left out by the cap.
    pub fn left_out(&self) -> u64 {
        self.left_out
    }
}

/// The inventory shared by the enrollment loop (which replaces the table
/// after each pass) and the output thread (which looks flows up).
#[derive(Debug)]
pub struct Inventory {
    table: RwLock<Arc<InventoryTable>>,
    tags: Vec<String>,
    max_entries: usize,
    /// Tables installed.
    pub refreshes: AtomicU64,
    /// Lookups answered by (address, VNI).
    pub hits_session: AtomicU64,
    /// Lookups answered by the address alone.
    pub hits_address: AtomicU64,
    /// Lookups not answered.
    pub misses: AtomicU64,
}

impl Inventory {
    /// An empty inventory copying `tags` and holding at most `max_entries`.
    pub fn new(tags: Vec<String>, max_entries: usize) -> Self {
        Self {
            table: RwLock::new(Arc::default()),
            tags,
            max_entries,
            refreshes: AtomicU64::new(0),
            hits_session: AtomicU64::new(0),
            hits_address: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Builds the table of a pass and puts it in place of the previous one
    /// (whose entries, stale or not, are gone). Returns the interfaces the
    /// cap left out.
    pub fn refresh(&self, instances: &[ec2::Instance], sessions: &[(String, u32)]) -> u64 {
        let table = InventoryTable::build(instances, sessions, &self.tags, self.max_entries);
        let left_out = table.left_out();
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        left_out
    }

    /// The current table (a reader holds it for a batch, without a lock).
    pub fn snapshot(&self) -> Arc<InventoryTable> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds a batch's lookup results to the counters.
    pub fn count(&self, session: u64, address: u64, miss: u64) {
        self.hits_session.fetch_add(session, Ordering::Relaxed);
        self.hits_address.fetch_add(address, Ordering::Relaxed);
        self.misses.fetch_add(miss, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
