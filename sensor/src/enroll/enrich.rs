//! Enrichment of flow records with the workload they were mirrored from.
//!
//! Owns: [`EnrichingSink`], a [`RecordSink`] wrapper that sets a flow
//! record's `vantage` from the [`Inventory`] before the record reaches the
//! sink it wraps, and which layer of a flow's encapsulation is looked up.
//! Input: record batches (in the output stage, never on the packet path).
//! Output: the same records, flows filled in where the inventory knows
//! their source. Does not: build the inventory (the enrollment pass does)
//! or change any other field or record.
//!
//! The key is the flow's first VXLAN layer: the mirror session's own
//! encapsulation, whose outer source is the mirrored interface's primary
//! IP. Behind a Gateway Load Balancer the outermost layer is GENEVE from
//! the load balancer, with the VXLAN packet inside it, so "first VXLAN"
//! rather than "outermost" finds the interface either way. The flow's
//! layers are those of its first packet; a flow delivered by two sessions
//! (`vantages` 2) names the first one's workload.

use super::inventory::{Inventory, InventoryTable, Lookup};
use crate::record::RecordSink;
use nucleus_proto::{Record, TunnelLayer};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

/// The (outer source address, VNI) a flow is looked up by, if it came
/// through VXLAN.
pub fn vantage_key(tunnel: &[TunnelLayer]) -> Option<(IpAddr, u32)> {
    tunnel.iter().find_map(|l| match l {
        TunnelLayer::Vxlan { vni, outer_src, .. } => Some((*outer_src, *vni)),
        _ => None,
    })
}

/// Lookup results of one batch, added to the inventory's counters at once.
#[derive(Debug, Default)]
struct Tally {
    session: u64,
    address: u64,
    miss: u64,
}

/// Sets `vantage` on the flows of `records` that the table knows (and
/// have none yet).
fn fill(table: &InventoryTable, records: &mut [Record], tally: &mut Tally) {
    for r in records {
        let Record::Flow(f) = r else { continue };
        if f.vantage.is_some() {
            continue;
        }
        let Some((address, vni)) = vantage_key(&f.tunnel) else {
            continue;
        };
        f.vantage = match table.lookup(address, vni) {
            Lookup::Session(i) => {
                tally.session += 1;
                Some(i)
            }
            Lookup::Address(i) => {
                tally.address += 1;
                Some(i)
            }
            Lookup::Miss => {
                tally.miss += 1;
                None
            }
        };
    }
}

/// A sink that enriches flow records, then hands them to another sink.
pub struct EnrichingSink {
    inner: Box<dyn RecordSink + Send>,
    inventory: Arc<Inventory>,
}

impl EnrichingSink {
    /// Puts enrichment from `inventory` in front of `inner`.
    pub fn new(inner: Box<dyn RecordSink + Send>, inventory: Arc<Inventory>) -> Self {
        Self { inner, inventory }
    }

    fn enrich(&self, records: &mut [Record]) {
        let mut tally = Tally::default();
        fill(&self.inventory.snapshot(), records, &mut tally);
        self.inventory
            .count(tally.session, tally.address, tally.miss);
    }
}

/// Whether `r` is a flow to look up: VXLAN, and no vantage yet.
fn candidate(r: &Record) -> bool {
    match r {
        Record::Flow(f) => f.vantage.is_none() && vantage_key(&f.tunnel).is_some(),
        _ => false,
    }
}

impl RecordSink for EnrichingSink {
    /// A borrowed batch is copied only when the inventory may know one of
    /// its flows.
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()> {
        let candidates = records.iter().filter(|r| candidate(r)).count() as u64;
        if candidates == 0 {
            return self.inner.write_batch(records);
        }
        if self.inventory.snapshot().is_empty() {
            self.inventory.count(0, 0, candidates);
            return self.inner.write_batch(records);
        }
        self.write_owned(records.to_vec())
    }

    fn write_owned(&mut self, mut records: Vec<Record>) -> io::Result<()> {
        self.enrich(&mut records);
        self.inner.write_owned(records)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn tick(&mut self) {
        self.inner.tick();
    }

    fn close(&mut self) -> io::Result<()> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::ec2;
    use nucleus_proto::{FlowRecord, Proto};
    use std::sync::Mutex;

    fn flow(tunnel: Vec<TunnelLayer>) -> Record {
        Record::Flow(Box::new(FlowRecord {
            proto: Proto(6),
            dst_port: 2,
            history: "S".into(),
            tunnel,
            ..crate::record::flow_record(1)
        }))
    }

    fn vxlan(src: [u8; 4], vni: u32) -> TunnelLayer {
        TunnelLayer::Vxlan {
            vni,
            outer_src: src.into(),
            outer_dst: [10, 0, 200, 10].into(),
        }
    }

    /// Keeps what it is given.
    #[derive(Clone, Default)]
    struct Keep(Arc<Mutex<Vec<Record>>>);

    impl RecordSink for Keep {
        fn write_batch(&mut self, records: &[Record]) -> io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(records);
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn inventory() -> Arc<Inventory> {
        let inv = Inventory::new(vec!["Name".into()], 100);
        let instance = ec2::Instance {
            id: "i-web".into(),
            state: "running".into(),
            vpc_id: "vpc-a".into(),
            subnet_id: "subnet-a".into(),
            availability_zone: "us-east-1a".into(),
            tags: [("Name".to_string(), "web".to_string())].into(),
            enis: vec![ec2::Eni {
                id: "eni-web".into(),
                device_index: 0,
                private_ip: "10.0.10.11".into(),
                subnet_id: String::new(),
            }],
        };
        inv.refresh(&[instance], &[("eni-web".into(), 4242)]);
        Arc::new(inv)
    }

    fn vantage_of(r: &Record) -> Option<&str> {
        match r {
            Record::Flow(f) => f.vantage.as_ref().map(|v| v.instance_id.as_str()),
            _ => None,
        }
    }

    #[test]
    fn flows_get_the_instance_of_their_first_vxlan_layer() {
        let inv = inventory();
        let kept = Keep::default();
        let mut sink = EnrichingSink::new(Box::new(kept.clone()), Arc::clone(&inv));
        let geneve = TunnelLayer::Geneve {
            vni: 0,
            outer_src: [10, 0, 2, 20].into(),
            outer_dst: [10, 0, 2, 21].into(),
            aws_gwlb: None,
            options: Vec::new(),
        };
        let batch = vec![
            flow(vec![vxlan([10, 0, 10, 11], 4242)]),
            // Behind a GWLB: GENEVE outside, the session's VXLAN inside.
            flow(vec![geneve, vxlan([10, 0, 10, 11], 99)]),
            flow(vec![vxlan([10, 0, 10, 99], 4242)]),
            flow(Vec::new()),
        ];
        sink.write_owned(batch.clone()).unwrap();
        sink.write_batch(&batch).unwrap();
        let kept = kept.0.lock().unwrap();
        let names: Vec<Option<&str>> = kept.iter().map(vantage_of).collect();
        let one = [Some("i-web"), Some("i-web"), None, None];
        assert_eq!(names, [one, one].concat());
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        // Per batch: one session hit, one by address, one miss; the flow
        // without VXLAN is not a lookup.
        assert_eq!(
            (
                load(&inv.hits_session),
                load(&inv.hits_address),
                load(&inv.misses)
            ),
            (2, 2, 2)
        );
        // The JSON view names the workload.
        let json = serde_json::to_value(&kept[0]).unwrap();
        assert_eq!(
            json["vantage"],
            serde_json::json!({"instance_id": "i-web", "eni_id": "eni-web", "vpc_id": "vpc-a",
                "subnet_id": "subnet-a", "availability_zone": "us-east-1a", "tags": {"Name": "web"}})
        );
        // An unknown source leaves the record as it was: no `vantage` key.
        let json = serde_json::to_value(&kept[2]).unwrap();
        assert!(json.get("vantage").is_none(), "{json}");
    }

    #[test]
    fn without_an_inventory_table_records_pass_unchanged_as_misses() {
        let inv = Arc::new(Inventory::new(vec!["Name".into()], 100));
        let kept = Keep::default();
        let mut sink = EnrichingSink::new(Box::new(kept.clone()), Arc::clone(&inv));
        let batch = vec![flow(vec![vxlan([10, 0, 10, 11], 4242)])];
        sink.write_batch(&batch).unwrap();
        sink.flush().unwrap();
        assert_eq!(*kept.0.lock().unwrap(), batch);
        assert_eq!(inv.misses.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    /// Counts the calls that only pass through.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<(u32, u32)>>);

    impl RecordSink for Calls {
        fn write_batch(&mut self, _records: &[Record]) -> io::Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn tick(&mut self) {
            self.0.lock().unwrap().0 += 1;
        }
        fn close(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().1 += 1;
            Err(io::Error::other("undelivered"))
        }
    }

    #[test]
    fn ticks_and_the_close_reach_the_sink_behind() {
        // The exporter behind enrichment seals by age on tick and reports
        // undelivered records from close: both must get through.
        let calls = Calls::default();
        let mut sink = EnrichingSink::new(Box::new(calls.clone()), inventory());
        sink.tick();
        sink.tick();
        assert!(sink.close().is_err());
        assert_eq!(*calls.0.lock().unwrap(), (2, 1));
    }
}
