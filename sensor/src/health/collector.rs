//! What `/metrics` shows: a `prometheus-client` [`Collector`] that reads
//! the thread snapshots in [`LiveStats`] and the current readiness at
//! scrape time, so the packet path keeps plain counters and never touches a
//! metrics library. Output: metric families for the encoder; the text
//! format is chosen in `metrics_text`. It keeps no state between scrapes.
//!
//! Cardinality is bounded: one series per registered thread (a few, fixed at
//! start) times the fixed reason lists.

use super::readiness::{Monitor, threads};
use crate::metrics::{Anomaly, Counters, Drop, LiveStats, ThreadRole};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

/// Upper bounds of `sensor_batch_size` (items per batch).
const SIZE_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// Upper bounds of `sensor_batch_latency_seconds`, in nanoseconds: 1 µs to
/// 1 s, 1-2-5 per decade.
const LATENCY_BOUNDS_NS: [u64; 19] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
];

type CounterField = (&'static str, &'static str, fn(&Counters) -> u64);

/// Per-thread counters: family name (without `_total`), help, field.
const COUNTER_FIELDS: [CounterField; 11] = [
    (
        "sensor_packets",
        "Packets handled by the thread (receivers: datagrams read).",
        |c| c.packets,
    ),
    ("sensor_bytes", "Bytes of those packets on the wire.", |c| {
        c.bytes
    }),
    (
        "sensor_non_ip_packets",
        "Packets with no IP inside (ARP, LLDP, ...).",
        |c| c.non_ip_packets,
    ),
    ("sensor_fragments", "IP fragments received.", |c| {
        c.fragments
    }),
    (
        "sensor_reassembled",
        "Datagrams rebuilt from fragments.",
        |c| c.reassembled,
    ),
    (
        "sensor_duplicate_vantage_packets",
        "Packets recognised as copies from a second mirror session.",
        |c| c.duplicate_vantage_packets,
    ),
    (
        "sensor_truncated_bytes",
        "Bytes cut off by the capture or the mirror session.",
        |c| c.truncated_bytes,
    ),
    ("sensor_flows_created", "Flows created.", |c| {
        c.flows_created
    }),
    (
        "sensor_flows_expired",
        "Flows ended (timeout, close or end of input).",
        |c| c.flows_expired,
    ),
    (
        "sensor_tcp_out_of_order_segments",
        "TCP segments that arrived ahead of a hole in their stream.",
        |c| c.tcp_out_of_order_segments,
    ),
    (
        "sensor_tcp_gap_bytes",
        "TCP stream bytes delivered to dissectors as gaps.",
        |c| c.tcp_gap_bytes,
    ),
];

/// A cumulative-bucket histogram read from an hdrhistogram.
#[derive(Debug, Clone, PartialEq)]
struct BucketedHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, count in this bucket)`, not cumulative; ends with +Inf.
    buckets: Vec<(f64, u64)>,
}

/// Places the recorded values of `h` into fixed buckets `bounds` (in the
/// histogram's unit), reported as `bound / divisor` (dividing keeps
/// `2000 / 1e9` exactly `2e-6`). A value is placed by the
/// lowest value equivalent to it at the histogram's precision, so values at
/// a bound stay in that bucket.
fn bucketize(h: &hdrhistogram::Histogram<u64>, bounds: &[u64], divisor: f64) -> BucketedHistogram {
    let mut per_bucket = vec![0u64; bounds.len() + 1];
    let mut sum = 0.0;
    for v in h.iter_recorded() {
        let value = h.lowest_equivalent(v.value_iterated_to());
        let n = v.count_at_value();
        let slot = bounds.partition_point(|b| *b < value);
        per_bucket[slot] += n;
        sum += h.median_equivalent(value) as f64 / divisor * n as f64;
    }
    let buckets = bounds
        .iter()
        .map(|b| *b as f64 / divisor)
        .chain(std::iter::once(f64::INFINITY))
        .zip(per_bucket)
        .collect();
    BucketedHistogram {
        sum,
        count: h.len(),
        buckets,
    }
}

/// What a scrape shows of one thread, copied under its lock.
#[derive(Debug)]
struct ThreadView {
    name: String,
    role: ThreadRole,
    counters: Counters,
    active_flows: u64,
    reassembly_bytes: u64,
    batch_size: BucketedHistogram,
    batch_latency: BucketedHistogram,
}

impl ThreadView {
    fn labels(&self) -> [(&'static str, &str); 2] {
        [("thread", self.name.as_str()), ("role", self.role.name())]
    }
}

fn thread_views(stats: &LiveStats) -> Vec<ThreadView> {
    threads(stats)
        .iter()
        .map(|t| {
            let s = t.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            ThreadView {
                name: t.name.clone(),
                role: t.role,
                counters: s.counters.clone(),
                active_flows: s.active_flows,
                reassembly_bytes: s.reassembly_bytes,
                batch_size: bucketize(&s.batch_size, &SIZE_BOUNDS, 1.0),
                batch_latency: bucketize(&s.batch_latency_ns, &LATENCY_BOUNDS_NS, 1e9),
            }
        })
        .collect()
}

/// Reads the live stats at every scrape.
#[derive(Debug)]
pub(crate) struct SensorCollector {
    monitor: Arc<Monitor>,
}

impl SensorCollector {
    /// A collector over what `monitor` watches.
    pub fn new(monitor: Arc<Monitor>) -> Self {
        Self { monitor }
    }
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> std::fmt::Result {
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for SensorCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let ready = self.monitor.readiness().ready();
        let stats = &self.monitor.stats;
        gauge(
            &mut enc,
            "sensor_ready",
            "1 when /readyz answers 200.",
            u64::from(ready),
        )?;
        let draining = stats.draining.load(Ordering::Acquire);
        gauge(
            &mut enc,
            "sensor_draining",
            "1 once shutdown started.",
            u64::from(draining),
        )?;
        let uptime = stats.started.elapsed().as_secs_f64();
        gauge(
            &mut enc,
            "sensor_uptime_seconds",
            "Seconds since the sensor started.",
            uptime,
        )?;
        let rcvbuf = stats.rcvbuf_bytes.load(Ordering::Relaxed);
        gauge(
            &mut enc,
            "sensor_socket_rcvbuf_bytes",
            "Receive buffer the kernel granted per tunnel socket (smallest).",
            rcvbuf,
        )?;
        gauge(
            &mut enc,
            "sensor_transparent_huge_pages",
            "1 when the heap may use transparent huge pages (live.huge_pages), 0 when they are disabled for the process.",
            stats.huge_pages.load(Ordering::Relaxed),
        )?;

        let views = thread_views(stats);
        let mut m = enc.encode_descriptor(
            "sensor_threads",
            "Registered threads by role.",
            None,
            MetricType::Gauge,
        )?;
        for role in [ThreadRole::Receiver, ThreadRole::Worker, ThreadRole::Output] {
            let n = views.iter().filter(|v| v.role == role).count() as u64;
            ConstGauge::new(n).encode(m.encode_family(&[("role", role.name())])?)?;
        }

        for (name, help, field) in COUNTER_FIELDS {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for v in &views {
                ConstCounter::new(field(&v.counters)).encode(m.encode_family(&v.labels())?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sensor_records",
            "Records emitted.",
            None,
            MetricType::Counter,
        )?;
        for v in &views {
            ConstCounter::new(v.counters.records).encode(m.encode_family(&v.labels())?)?;
        }
        let mut m = enc.encode_descriptor(
            "sensor_anomalies",
            "Malformed or surprising input, by reason (decapsulation errors included).",
            None,
            MetricType::Counter,
        )?;
        for v in &views {
            let [thread, role] = v.labels();
            for a in Anomaly::ALL {
                let labels = [thread, role, ("reason", a.name())];
                let n = v.counters.anomalies[*a as usize];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sensor_drops",
            "Packets, records or state given up, by reason.",
            None,
            MetricType::Counter,
        )?;
        for v in &views {
            let [thread, role] = v.labels();
            for d in Drop::ALL {
                let labels = [thread, role, ("reason", d.name())];
                let n = v.counters.drops[*d as usize];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sensor_app_records",
            "Application records emitted, by protocol.",
            None,
            MetricType::Counter,
        )?;
        for v in &views {
            let [thread, role] = v.labels();
            for &(protocol, n) in &v.counters.app_records {
                let labels = [thread, role, ("protocol", protocol)];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sensor_app_anomalies",
            "Dissector anomalies, by protocol and reason.",
            None,
            MetricType::Counter,
        )?;
        for v in &views {
            let [thread, role] = v.labels();
            for &(protocol, reason, n) in &v.counters.app_anomalies {
                let labels = [thread, role, ("protocol", protocol), ("reason", reason)];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sensor_reassembly_buffered_bytes",
            "Out-of-order TCP bytes held now (cap: reassembly.max_bytes per worker).",
            None,
            MetricType::Gauge,
        )?;
        for v in &views {
            ConstGauge::new(v.reassembly_bytes).encode(m.encode_family(&v.labels())?)?;
        }
        let mut m = enc.encode_descriptor(
            "sensor_flows_active",
            "Flows tracked now.",
            None,
            MetricType::Gauge,
        )?;
        for v in &views {
            ConstGauge::new(v.active_flows).encode(m.encode_family(&v.labels())?)?;
        }
        encode_histogram_family(
            &mut enc,
            "sensor_batch_size",
            "Items per batch (datagrams per receive call, packets per worker batch).",
            &views,
            |v| &v.batch_size,
        )?;
        encode_histogram_family(
            &mut enc,
            "sensor_batch_latency_seconds",
            "Processing time per batch.",
            &views,
            |v| &v.batch_latency,
        )?;
        Ok(())
    }
}

fn encode_histogram_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    views: &[ThreadView],
    field: fn(&ThreadView) -> &BucketedHistogram,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for v in views {
        let h = field(v);
        m.encode_family(&v.labels())?
            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdr_values_land_in_le_buckets() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 20, 2).unwrap();
        for v in [1, 2, 3, 32, 1024] {
            h.record(v).unwrap();
        }
        h.record_n(5000, 2).unwrap();
        let b = bucketize(&h, &SIZE_BOUNDS, 1.0);
        assert_eq!(b.count, 7);
        let at = |le: f64| b.buckets.iter().find(|(x, _)| *x == le).map(|(_, n)| *n);
        assert_eq!(at(1.0), Some(1));
        assert_eq!(at(2.0), Some(1));
        assert_eq!(at(4.0), Some(1));
        assert_eq!(at(32.0), Some(1));
        assert_eq!(at(1024.0), Some(1));
        assert_eq!(at(f64::INFINITY), Some(2));
        assert_eq!(b.buckets.len(), SIZE_BOUNDS.len() + 1);
        // 1+2+3+32+1024+2*5000 = 11062, within hdr's 1% precision.
        assert!((b.sum - 11062.0).abs() < 111.0, "{}", b.sum);
    }

    #[test]
    fn latency_buckets_are_seconds() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2).unwrap();
        h.record(1_500).unwrap(); // 1.5 µs
        h.record(900_000_000).unwrap(); // 0.9 s
        let b = bucketize(&h, &LATENCY_BOUNDS_NS, 1e9);
        assert_eq!(b.buckets[1], (2e-6, 1));
        assert_eq!(b.buckets[18], (1.0, 1));
        assert_eq!(b.buckets.last(), Some(&(f64::INFINITY, 0)));
    }
}
