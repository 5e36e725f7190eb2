//! A worker's reorder window: batches from several receive threads put back
//! into packet-time order before the flows see them.
//!
//! AWS gives the two directions of a connection different outer UDP source
//! ports, so SO_REUSEPORT often hands them to different sockets, read by
//! different receive threads. Each thread sends a worker its packets in the
//! order it read them, but the threads' batches reach the worker in the
//! order they filled up or aged out (up to 2 ms apart), so a SYN-ACK can
//! overtake its SYN. The worker therefore holds every batch for
//! `live.reorder_window` after it arrives and meanwhile releases packets
//! oldest first across the receive threads' queues (a merge of sorted runs:
//! each thread's packets are already in order).
//!
//! Owns: the held batches, one FIFO per receive thread, and the release
//! rule. Input: [`Batch`]es tagged with their receiver, the monotonic time.
//! Output: which receiver's head packet goes next ([`Merge::next_run`]) and
//! finished batches to recycle. Does not: decode or process packets (the
//! worker does), or wait (the worker sleeps until [`Merge::next_expiry`]).
//!
//! Bounds: at most `live.reorder_max_batches` batches are held; beyond that
//! the oldest packets are released before their window ends (counted as
//! `reorder_held_cap` by the worker). A packet that arrives after a later
//! one was released is processed at once (the worker counts it as
//! `packet_late`); nothing is ever dropped here.

use super::batch::{Batch, Item};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One held batch and how far it has been released.
struct Held {
    batch: Batch,
    /// Index of the next item to release.
    next: usize,
    /// When the worker received it.
    arrived: Instant,
}

/// Why packets are released now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The oldest held batch has waited its whole window.
    WindowEnded,
    /// More than the cap of batches is held.
    HeldCap,
    /// Every receiver is gone: nothing older can come.
    Closed,
}

/// Which receiver's packets go next, and up to what packet time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The receiver whose head packet is the oldest held.
    pub receiver: usize,
    /// Its packets go while their time is at most this (the next head of
    /// another receiver) and its current batch lasts.
    pub limit_ts_us: i64,
    /// Why they go now.
    pub why: Release,
}

/// Held batches of one worker, by receiver.
pub struct Merge {
    queues: Vec<VecDeque<Held>>,
    held: usize,
    window: Duration,
    max_batches: usize,
}

impl Merge {
    /// A merge over `receivers` receive threads that holds each batch for
    /// `window` and at most `max_batches` batches (at least 1).
    pub fn new(receivers: usize, window: Duration, max_batches: usize) -> Self {
        Self {
            queues: (0..receivers.max(1)).map(|_| VecDeque::new()).collect(),
            held: 0,
            window,
            max_batches: max_batches.max(1),
        }
    }

    /// Holds a batch that arrived at `now`; an empty one is handed back
    /// for recycling. A receiver index out of range (not expected) shares
    /// the last queue: its packets are still released, in arrival order.
    pub fn push(&mut self, batch: Batch, now: Instant) -> Option<Batch> {
        if batch.items.is_empty() {
            return Some(batch);
        }
        let last = self.queues.len() - 1;
        let queue = &mut self.queues[batch.receiver.min(last)];
        queue.push_back(Held {
            batch,
            next: 0,
            arrived: now,
        });
        self.held += 1;
        None
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Batches held.
    pub fn held_batches(&self) -> usize {
        self.held
    }

    /// The cap on batches held.
    pub fn max_batches(&self) -> usize {
        self.max_batches
    }

    /// When the oldest held batch's window ends (`None` when nothing is
    /// held).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| q.front())
            .map(|h| h.arrived + self.window)
            .min()
    }

    /// What may be released at `now`: the receiver holding the oldest head
    /// packet, when the oldest held batch has waited `window`, more than
    /// `max_batches` are held, or `closed` (no receiver is left).
    pub fn next_run(&self, now: Instant, closed: bool) -> Option<Run> {
        let mut oldest: Option<(usize, i64)> = None;
        let mut second = i64::MAX;
        let mut earliest_arrival: Option<Instant> = None;
        for (r, q) in self.queues.iter().enumerate() {
            let Some(h) = q.front() else { continue };
            let Some(item) = h.batch.items.get(h.next) else {
                continue;
            };
            earliest_arrival = Some(earliest_arrival.map_or(h.arrived, |a| a.min(h.arrived)));
            match oldest {
                Some((_, ts)) if item.ts_us >= ts => second = second.min(item.ts_us),
                _ => {
                    if let Some((_, ts)) = oldest {
                        second = second.min(ts);
                    }
                    oldest = Some((r, item.ts_us));
                }
            }
        }
        let (receiver, head_ts) = oldest?;
        let why = if closed {
            Release::Closed
        } else if earliest_arrival.is_some_and(|a| now.saturating_duration_since(a) >= self.window)
        {
            Release::WindowEnded
        } else if self.held > self.max_batches {
            Release::HeldCap
        } else {
            return None;
        };
        Some(Run {
            receiver,
            limit_ts_us: second.max(head_ts),
            why,
        })
    }

    /// Releases every packet that may go at `now`, oldest first across the
    /// receivers: `process` gets each packet with why it goes now, `done`
    /// each batch whose last packet went. Returns the packets released.
    pub fn release(
        &mut self,
        now: Instant,
        closed: bool,
        mut process: impl FnMut(&Batch, &Item, Release),
        mut done: impl FnMut(Batch),
    ) -> usize {
        let mut released = 0;
        while let Some(run) = self.next_run(now, closed) {
            let Some(queue) = self.queues.get_mut(run.receiver) else {
                break;
            };
            let Some(h) = queue.front_mut() else { break };
            let items = &h.batch.items;
            // The run's first packet is the oldest held: it always goes;
            // the rest while no other receiver's head is older.
            let end = items
                .iter()
                .enumerate()
                .skip(h.next + 1)
                .find(|(_, item)| item.ts_us > run.limit_ts_us)
                .map_or(items.len(), |(k, _)| k);
            for item in items.get(h.next..end).unwrap_or_default() {
                process(&h.batch, item, run.why);
            }
            released += end.saturating_sub(h.next);
            h.next = end;
            if h.next >= h.batch.items.len() {
                self.held -= 1;
                if let Some(h) = queue.pop_front() {
                    done(h.batch);
                }
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::Source;
    use super::*;
    use crate::decap::UdpTunnel;
    use crate::decap::tunnel::OuterAddrs;

    const MS: Duration = Duration::from_millis(1);

    fn batch(receiver: usize, times: &[i64]) -> Batch {
        let mut b = Batch::default();
        b.receiver = receiver;
        let outer = OuterAddrs {
            src: [127, 0, 0, 1].into(),
            dst: [127, 0, 0, 1].into(),
        };
        for &ts_us in times {
            b.items.push(Item {
                ts_us,
                start: 0,
                end: 0,
                source: Source::Tunnel {
                    tunnel: UdpTunnel::Vxlan,
                    outer,
                },
            });
        }
        b
    }

    /// Releases everything releasable at `now`; returns (packet time, why)
    /// in release order.
    fn release(m: &mut Merge, now: Instant, closed: bool) -> Vec<(i64, Release)> {
        let mut out = Vec::new();
        let mut done = 0;
        let n = m.release(
            now,
            closed,
            |_, item, why| out.push((item.ts_us, why)),
            |_| done += 1,
        );
        assert_eq!(n, out.len());
        out
    }

    fn times(released: &[(i64, Release)]) -> Vec<i64> {
        released.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn packets_from_several_receivers_come_out_oldest_first_once_the_window_ends() {
        let t0 = Instant::now();
        let mut m = Merge::new(3, 10 * MS, 64);
        // Receiver 1's later batch arrives first (it filled up first).
        assert!(m.push(batch(1, &[20, 40, 41, 60]), t0).is_none());
        assert!(m.push(batch(0, &[10, 30, 50]), t0 + MS).is_none());
        assert!(m.push(batch(2, &[35]), t0 + 2 * MS).is_none());
        assert!(m.push(batch(0, &[55, 70]), t0 + 3 * MS).is_none());
        // Inside the window nothing goes.
        assert!(release(&mut m, t0 + 9 * MS, false).is_empty());
        assert_eq!(m.next_expiry(), Some(t0 + 10 * MS));
        // Then everything held is released oldest first.
        let out = release(&mut m, t0 + 20 * MS, false);
        assert_eq!(times(&out), [10, 20, 30, 35, 40, 41, 50, 55, 60, 70]);
        assert!(out.iter().all(|(_, why)| *why == Release::WindowEnded));
        assert!(m.is_empty());
        assert_eq!(m.next_expiry(), None);
    }

    #[test]
    fn a_window_ending_releases_only_what_is_older_than_younger_batches_allow() {
        let t0 = Instant::now();
        let mut m = Merge::new(2, 10 * MS, 64);
        m.push(batch(0, &[10, 30]), t0);
        m.push(batch(1, &[20]), t0 + 8 * MS);
        // At 10 ms receiver 0's batch has waited its window: the head of
        // receiver 1 is older than its second packet, so it goes between.
        // While any held batch's window has ended, the oldest head goes.
        let out = release(&mut m, t0 + 10 * MS, false);
        assert_eq!(times(&out), [10, 20, 30]);
        // A batch arriving later with an older packet is released at once
        // when its own window ends (the worker counts it as late).
        m.push(batch(1, &[25]), t0 + 11 * MS);
        assert!(release(&mut m, t0 + 20 * MS, false).is_empty());
        assert_eq!(times(&release(&mut m, t0 + 21 * MS, false)), [25]);
    }

    #[test]
    fn the_batch_cap_releases_early_and_closing_releases_everything() {
        let t0 = Instant::now();
        let mut m = Merge::new(2, Duration::from_secs(3600), 2);
        m.push(batch(0, &[5, 6]), t0);
        m.push(batch(1, &[1]), t0);
        assert!(release(&mut m, t0, false).is_empty());
        // A third batch is over the cap: the oldest packets go until the
        // cap holds again (one whole batch released).
        m.push(batch(0, &[7]), t0);
        let out = release(&mut m, t0, false);
        assert_eq!(out, [(1, Release::HeldCap)]);
        assert_eq!(m.held_batches(), 2);
        let out = release(&mut m, t0, true);
        assert_eq!(
            out,
            [
                (5, Release::Closed),
                (6, Release::Closed),
                (7, Release::Closed)
            ]
        );
        assert!(m.is_empty());
    }

    #[test]
    fn empty_batches_are_handed_back_and_unknown_receivers_share_the_last_queue() {
        let t0 = Instant::now();
        let mut m = Merge::new(2, MS, 8);
        assert!(m.push(batch(0, &[]), t0).is_some());
        m.push(batch(7, &[3, 4]), t0);
        m.push(batch(1, &[1]), t0);
        // Receiver 7 does not exist: its packets share receiver 1's queue,
        // in arrival order.
        assert_eq!(times(&release(&mut m, t0 + MS, false)), [3, 4, 1]);
    }
}
