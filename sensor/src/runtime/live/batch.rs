//! Hand-off from receivers to workers: batches of owned packet bytes,
//! steered by the symmetric flow hash, sent without ever waiting.
//!
//! Owns: the batch layout (one byte arena and fixed-size items, recycled
//! through a pool so the steady state allocates nothing), steering, and the
//! `worker_queue_full` count. Input: inner packets from a receiver's
//! [`Frontend`](crate::runtime::Frontend). Output: [`Batch`]es on bounded
//! channels, one per worker. Does not: decode (the worker decodes the owned
//! bytes again) or block (a full queue drops the batch and counts it).

use crate::decap::tunnel::{OuterAddrs, TunnelContext};
use crate::decap::{InnerPacket, UdpTunnel};
use crate::flow::key::{PacketTuple, steering_hash};
use crate::runtime::Origin;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use foldhash::fast::FixedState;
use std::time::{Duration, Instant};

/// Seed of the steering hash; the offline pipeline's dispatcher uses the
/// same one, so a packet lands on the same worker index in both.
pub const STEERING_SEED: u64 = 0x0073_7465_6572;

/// Packets per batch before it is sent.
pub const BATCH_PACKETS: usize = 256;
/// Arena bytes per batch before it is sent (a few jumbo datagrams over
/// `BATCH_PACKETS` small ones).
const BATCH_BYTES: usize = 1 << 20;
/// A batch that is not full is sent at the latest this long after its first
/// packet (and whenever the receiver is idle).
pub const BATCH_MAX_AGE: Duration = Duration::from_millis(2);

/// How a worker decodes an item's bytes again.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The payload of a tunnel datagram.
    Tunnel {
        /// Which tunnel the socket receives.
        tunnel: UdpTunnel,
        /// Peer and local address of the datagram.
        outer: OuterAddrs,
    },
    /// A datagram rebuilt from fragments: an IP packet inside the layers at
    /// `bases[index]`.
    Reassembled {
        /// Index into [`Batch::bases`].
        base: u32,
    },
}

/// One packet owned by a batch.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// Packet time, microseconds since the epoch.
    pub ts_us: i64,
    /// Range of the packet's bytes in [`Batch::bytes`].
    pub start: u32,
    /// End of the range.
    pub end: u32,
    /// How to decode it.
    pub source: Source,
}

/// Packets for one worker; recycled, so its vectors keep their capacity.
#[derive(Default)]
pub struct Batch {
    /// Arena of packet bytes.
    pub bytes: Vec<u8>,
    /// Packets, in arrival order.
    pub items: Vec<Item>,
    /// Tunnel layers outside rebuilt datagrams (rare).
    pub bases: Vec<TunnelContext>,
    /// Index of the receive thread that filled it (the worker's reorder
    /// window keeps one queue per receiver).
    pub receiver: usize,
    /// When the first item was added.
    first: Option<Instant>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
        self.bases.clear();
        self.first = None;
    }

    /// Bytes of an item (empty if the range is out of the arena).
    pub fn item_bytes(&self, item: &Item) -> &[u8] {
        self.bytes
            .get(item.start as usize..item.end as usize)
            .unwrap_or_default()
    }
}

/// A receiver's side of the hand-off: one filling batch per worker.
pub struct Steer {
    /// This receiver's index, written into every batch it sends.
    receiver: usize,
    hasher: FixedState,
    senders: Vec<Sender<Batch>>,
    pool: Receiver<Batch>,
    filling: Vec<Batch>,
    /// Packets dropped because a worker queue was full, not yet taken.
    dropped: u64,
}

impl Steer {
    /// Steers for receiver number `receiver` over `senders` (one per
    /// worker), taking empty batches from `pool` (workers return used ones
    /// there).
    pub fn new(receiver: usize, senders: Vec<Sender<Batch>>, pool: Receiver<Batch>) -> Self {
        let filling = senders.iter().map(|_| Batch::default()).collect();
        Self {
            receiver,
            hasher: FixedState::with_seed(STEERING_SEED),
            senders,
            pool,
            filling,
            dropped: 0,
        }
    }

    /// Copies one inner packet into its worker's batch; sends the batch when
    /// full. `payload` is the datagram payload the packet was decoded from.
    pub fn push(
        &mut self,
        p: &InnerPacket<'_>,
        origin: Origin<'_>,
        tunnel: UdpTunnel,
        outer: OuterAddrs,
        payload: &[u8],
        ts_us: i64,
    ) {
        let n = self.filling.len().max(1) as u64;
        let i = (steering_hash(&PacketTuple::of(p), &self.hasher) % n) as usize;
        let Some(b) = self.filling.get_mut(i) else {
            return;
        };
        let (bytes, source) = match origin {
            Origin::Frame => (payload, Source::Tunnel { tunnel, outer }),
            Origin::Reassembled { bytes, base } => {
                b.bases.push(base.clone());
                let index = u32::try_from(b.bases.len() - 1).unwrap_or(u32::MAX);
                (bytes, Source::Reassembled { base: index })
            }
        };
        let start = b.bytes.len();
        b.bytes.extend_from_slice(bytes);
        b.items.push(Item {
            ts_us,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(b.bytes.len()).unwrap_or(u32::MAX),
            source,
        });
        b.first.get_or_insert_with(Instant::now);
        if b.items.len() >= BATCH_PACKETS || b.bytes.len() >= BATCH_BYTES {
            self.send(i);
        }
    }

    /// This receiver's index among all receivers.
    pub fn receiver(&self) -> usize {
        self.receiver
    }

    /// Takes worker `i`'s filling batch to send, stamped with this
    /// receiver's index.
    fn take_filling(&mut self, i: usize) -> Batch {
        let mut b = std::mem::take(&mut self.filling[i]);
        b.receiver = self.receiver;
        b
    }

    /// When the oldest packet waiting in a partly filled batch arrived.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.filling.iter().filter_map(|b| b.first).min()
    }

    /// Sends every batch older than [`BATCH_MAX_AGE`] (all non-empty ones
    /// when `all`).
    pub fn flush(&mut self, all: bool) {
        for i in 0..self.filling.len() {
            let due = match self.filling[i].first {
                Some(t) => all || t.elapsed() >= BATCH_MAX_AGE,
                None => false,
            };
            if due {
                self.send(i);
            }
        }
    }

    /// Sends every non-empty batch, waiting for room: only at shutdown, when
    /// nothing more is being received and workers are still running.
    pub fn flush_blocking(&mut self) {
        for i in 0..self.filling.len() {
            if self.filling[i].items.is_empty() {
                continue;
            }
            let b = self.take_filling(i);
            let lost = b.items.len() as u64;
            if self.senders[i].send(b).is_err() {
                self.dropped += lost;
            }
        }
    }

    fn send(&mut self, i: usize) {
        let b = self.take_filling(i);
        match self.senders[i].try_send(b) {
            Ok(()) => {
                let mut fresh = self.pool.try_recv().unwrap_or_default();
                fresh.clear();
                self.filling[i] = fresh;
            }
            Err(TrySendError::Full(mut b) | TrySendError::Disconnected(mut b)) => {
                self.dropped += b.items.len() as u64;
                // Keep the storage: it becomes the next filling batch.
                b.clear();
                self.filling[i] = b;
            }
        }
    }

    /// Packets dropped on full worker queues since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

/// Empties a used batch for the pool.
pub fn recycle(mut b: Batch, pool: &Sender<Batch>) {
    b.clear();
    let _ = pool.try_send(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DecapConfig;
    use crate::decap::{Decoded, Decoder};
    use crate::metrics::Counters;
    use crossbeam_channel::bounded;

    fn vxlan_udp(src_port: u16) -> Vec<u8> {
        let mut out = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(src_port, 53)
            .write(&mut out, b"q")
            .unwrap();
        out
    }

    fn outer() -> OuterAddrs {
        OuterAddrs {
            src: [127, 0, 0, 1].into(),
            dst: [127, 0, 0, 1].into(),
        }
    }

    /// Pushes one packet `times` times.
    fn push(steer: &mut Steer, payload: &[u8], times: usize) {
        let decoder = Decoder::new(DecapConfig::default());
        let mut ctx = TunnelContext::new();
        let mut c = Counters::default();
        let Decoded::Packet(p) =
            decoder.decode_tunnel_payload(UdpTunnel::Vxlan, outer(), payload, &mut ctx, &mut c)
        else {
            panic!("not a packet");
        };
        for _ in 0..times {
            steer.push(&p, Origin::Frame, UdpTunnel::Vxlan, outer(), payload, 1);
        }
    }

    #[test]
    fn a_full_queue_drops_whole_batches_and_counts_their_packets() {
        let (tx, rx) = bounded(1);
        let (_pool_tx, pool_rx) = bounded(4);
        let mut steer = Steer::new(0, vec![tx], pool_rx);
        let payload = vxlan_udp(1000);
        push(&mut steer, &payload, BATCH_PACKETS * 3 + 5);
        // The first full batch is queued, the next two find the queue full.
        assert_eq!(steer.take_dropped(), 2 * BATCH_PACKETS as u64);
        let b = rx.try_recv().unwrap();
        assert_eq!(b.items.len(), BATCH_PACKETS);
        assert_eq!(b.item_bytes(&b.items[7]), &payload[..]);
        // The remainder goes out on a flush once there is room again.
        steer.flush(true);
        assert_eq!(rx.try_recv().unwrap().items.len(), 5);
        assert_eq!(steer.take_dropped(), 0);
    }

    #[test]
    fn both_directions_go_to_one_worker_and_aged_batches_are_flushed() {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..4).map(|_| bounded(8)).unzip();
        let (_pool_tx, pool_rx) = bounded(4);
        let mut steer = Steer::new(0, senders, pool_rx);
        let there = vxlan_udp(1234);
        let mut back = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .udp(53, 1234)
            .write(&mut back, b"a")
            .unwrap();
        push(&mut steer, &there, 1);
        push(&mut steer, &back, 1);
        std::thread::sleep(BATCH_MAX_AGE * 2);
        steer.flush(false);
        let sizes: Vec<usize> = receivers
            .iter()
            .map(|r| r.try_recv().map_or(0, |b| b.items.len()))
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 2);
        assert!(sizes.contains(&2), "{sizes:?}");
    }
}
