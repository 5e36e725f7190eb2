//! Interleaves thousands of flows in time: a fixed number of slots, each
//! running one flow after another; a min-heap on each slot's next packet
//! time decides which packet is written next, so the output is in time
//! order and flows overlap as they would on a busy link.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::content::Content;
use super::dns::plan_dns;
use super::flow::Flow;
use super::http::plan_http;
use super::ping::plan_ping;
use super::rng::Rng;
use super::topology::Topology;
use super::wire::CaptureWriter;

/// Mean idle time of a slot between two flows.
const SLOT_IDLE_MEAN_NS: f64 = 20e6;
/// How often (in packets) the number of open flows is sampled.
const ACTIVE_SAMPLE_EVERY: u64 = 256;

/// How many flows of each kind start inside the capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCounts {
    /// HTTP/1.1 connections.
    pub http: u64,
    /// Of which over IPv6.
    pub http_ipv6: u64,
    /// Of which with 8900-byte frames.
    pub http_jumbo: u64,
    /// Of which refused (SYN, RST).
    pub http_refused: u64,
    /// Of which ended by RST.
    pub http_reset: u64,
    /// DNS exchanges.
    pub dns: u64,
    /// Of which over IPv6.
    pub dns_ipv6: u64,
    /// ICMP echo series.
    pub ping: u64,
    /// Of which ICMPv6.
    pub ping_ipv6: u64,
}

/// What the scheduler saw while writing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleReport {
    /// Flows started, by kind.
    pub flows: FlowCounts,
    /// Mean number of open flows (started, not finished) over the capture.
    pub mean_open_flows: f64,
    /// Flows already under way when the capture starts (not in
    /// [`FlowCounts`]).
    pub open_at_start: u64,
    /// Most open flows at once.
    pub max_open_flows: u64,
    /// Time of the first packet written, ns on the simulation clock.
    pub first_packet_ns: Option<u64>,
    /// Time of the last packet written, ns on the simulation clock.
    pub last_packet_ns: u64,
}

/// The inputs every new flow draws from.
pub struct FlowFactory<'a> {
    /// Addresses.
    pub topology: &'a Topology,
    /// Capture time zero, Unix seconds (for HTTP dates and ping payloads).
    pub epoch_s: u64,
    /// Mean pause between an HTTP response and the next request.
    pub think_mean_ns: f64,
}

impl FlowFactory<'_> {
    fn start(&self, rng: &mut Rng, at_ns: u64, counts: &mut FlowCounts) -> Flow {
        match rng.weighted(&[62, 36, 2]) {
            0 => {
                let (flow, shape) =
                    plan_http(rng, self.topology, self.epoch_s, at_ns, self.think_mean_ns);
                counts.http += 1;
                counts.http_ipv6 += u64::from(shape.ipv6);
                counts.http_jumbo += u64::from(shape.jumbo);
                counts.http_refused += u64::from(shape.refused);
                counts.http_reset += u64::from(shape.reset);
                flow
            }
            1 => {
                let (flow, ipv6) = plan_dns(rng, self.topology, at_ns);
                counts.dns += 1;
                counts.dns_ipv6 += u64::from(ipv6);
                flow
            }
            _ => {
                let (flow, ipv6) = plan_ping(rng, self.topology, self.epoch_s, at_ns);
                counts.ping += 1;
                counts.ping_ipv6 += u64::from(ipv6);
                flow
            }
        }
    }
}

/// When flows start and when the capture does.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Flow slots running at once.
    pub slots: usize,
    /// The first flow of each slot starts at a uniform time in `[0, ramp_ns)`.
    pub ramp_ns: u64,
    /// Packets before this time are planned but not written, so that the
    /// capture opens on a network in its steady state (with connections
    /// already under way, as any live capture does).
    pub warmup_ns: u64,
    /// Stop once `vxlan.pcap` is this large.
    pub target_vxlan_bytes: u64,
}

/// Runs the flow slots of `timeline` until the capture is large enough.
pub fn run(
    rng: &mut Rng,
    factory: &FlowFactory<'_>,
    content: &Content,
    writer: &mut CaptureWriter,
    timeline: Timeline,
) -> Result<ScheduleReport> {
    let Timeline {
        slots,
        ramp_ns,
        warmup_ns,
        target_vxlan_bytes,
    } = timeline;
    let mut report = ScheduleReport::default();
    let mut flows: Vec<Option<Flow>> = (0..slots).map(|_| None).collect();
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..slots)
        .map(|slot| Reverse((rng.range(0, ramp_ns), slot)))
        .collect();
    let mut scratch = Vec::with_capacity(16 * 1024);
    let (mut open, mut open_sum, mut samples) = (0u64, 0u64, 0u64);

    while writer.totals.vxlan_file_bytes < target_vxlan_bytes {
        let Some(Reverse((at_ns, slot))) = heap.pop() else {
            break;
        };
        let next = match &mut flows[slot] {
            None => {
                // Flows that start during the warm-up are not counted.
                let mut uncounted = FlowCounts::default();
                let counts = if at_ns < warmup_ns {
                    &mut uncounted
                } else {
                    &mut report.flows
                };
                let flow = factory.start(rng, at_ns, counts);
                open += 1;
                report.max_open_flows = report.max_open_flows.max(open);
                let next = flow.next_at_ns();
                flows[slot] = Some(flow);
                next
            }
            Some(flow) if at_ns < warmup_ns => {
                flow.plans.pop_front();
                flow.next_at_ns()
            }
            Some(flow) => {
                flow.write_next(factory.topology, content, &mut scratch, writer)?;
                if report.first_packet_ns.is_none() {
                    report.first_packet_ns = Some(at_ns);
                    report.open_at_start = open;
                }
                report.last_packet_ns = at_ns;
                if writer.totals.packets % ACTIVE_SAMPLE_EVERY == 0 {
                    open_sum += open;
                    samples += 1;
                }
                flow.next_at_ns()
            }
        };
        match next {
            Some(next_ns) => heap.push(Reverse((next_ns, slot))),
            None => {
                flows[slot] = None;
                open -= 1;
                let idle_ns = rng.exponential(SLOT_IDLE_MEAN_NS) as u64;
                heap.push(Reverse((at_ns + idle_ns, slot)));
            }
        }
    }
    report.mean_open_flows = if samples == 0 {
        0.0
    } else {
        open_sum as f64 / samples as f64
    };
    Ok(report)
}
