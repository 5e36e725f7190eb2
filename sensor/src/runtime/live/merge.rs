//! A worker's reorder window: batches from several receive threads put back
//! into packet-time order before the flows see them.
//!
//! AWS gives the two directions of a connection different outer UDP source
//! ports, so SO_REUSEPORT often hands them to different sockets, read by
//! different receive threads. Each thread sends a worker its packets in the
//! order it read them, but the threads' batches reach the worker in the
//! order they filled up or aged out (up to 2 ms apart), so a SYN-ACK can
//! overtake its SYN. The worker therefore holds batches and releases packets
//! oldest first across the receive threads' queues (a merge of sorted runs:
//! each thread's packets are already in order). The oldest held packet goes
//! as soon as no other receiver can still send an older one: each receiver
//! either has a packet held here, already sent one at least as new, or is
//! idle: [`Quiet`] (blocked on a socket it found empty, with no partly
//! filled batch), its socket still empty, and the packet older than the
//! idle slack (a quarter of the window). Held that way, a busy worker keeps
//! about one batch per receiver, still in the cache. What waits behind a
//! receiver that fell behind (a thread waiting for a CPU) goes when its
//! batch has been held `live.reorder_window`.
//!
//! Owns: the held batches, one FIFO per receive thread, what each receiver
//! sent last, and the release rule. Input: [`Batch`]es tagged with their
//! receiver, the monotonic and wall clocks, whether a receiver is idle.
//! Output: packets in release order and finished batches to recycle
//! ([`Merge::release`]). Does not: decode or process packets (the worker
//! does), read the quiet flags or sockets (the worker answers `idle`), or
//! wait (the worker sleeps until [`Merge::next_expiry`] at most).
//!
//! Bounds: at most `live.reorder_max_batches` batches are held; beyond that
//! the oldest packets are released before their window ends (counted as
//! `reorder_held_cap` by the worker). A packet that arrives after a later
//! one was released is processed at once (the worker counts it as
//! `packet_late`); nothing is ever dropped here.

use super::batch::{Batch, Item};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How much older than the wall clock a packet must be for an idle
/// receiver not to hold it back, as a share of the window. The kernel
/// stamps a datagram's time before it reaches the socket, and a receiver
/// found idle may have just taken one without having said so yet: on
/// loopback, replayed in batches of `sendmmsg`, datagrams reached an empty
/// socket up to 1.5 ms after their timestamps, and with four receive
/// threads, two workers and the sender on two CPUs, a fixed 2 ms still let
/// a few packets through late.
const IDLE_SLACK_DIVISOR: u32 = 4;

/// Which receive threads are quiet: waiting on a socket they found empty,
/// with no partly filled batch held back. Set by each receiver for itself,
/// read by the workers.
pub struct Quiet(Box<[AtomicBool]>);

impl Quiet {
    /// Flags for `receivers` threads, none quiet.
    pub fn new(receivers: usize) -> Self {
        Self((0..receivers).map(|_| AtomicBool::new(false)).collect())
    }

    /// Receiver `i` is (or is no longer) quiet.
    pub fn set(&self, i: usize, quiet: bool) {
        if let Some(flag) = self.0.get(i) {
            flag.store(quiet, Ordering::Release);
        }
    }

    /// Whether receiver `i` is quiet.
    pub fn get(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|f| f.load(Ordering::Acquire))
    }
}

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
    /// No receiver can still send an older packet.
    Ordered,
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
    /// another receiver, or what a receiver without held packets can still
    /// undercut) and its current batch lasts.
    pub limit_ts_us: i64,
    /// Why they go now.
    pub why: Release,
}

/// Held batches of one worker, by receiver.
pub struct Merge {
    queues: Vec<VecDeque<Held>>,
    /// Newest packet time received from each receiver.
    seen: Vec<i64>,
    /// Whether each receiver is idle, asked at most once per
    /// [`release`](Self::release) call (kept to reuse its allocation).
    idle_answers: Vec<Option<bool>>,
    held: usize,
    window: Duration,
    /// See [`IDLE_SLACK_DIVISOR`].
    idle_slack: Duration,
    max_batches: usize,
}

impl Merge {
    /// A merge over `receivers` receive threads that holds a batch for at
    /// most `window` and at most `max_batches` batches (at least 1).
    pub fn new(receivers: usize, window: Duration, max_batches: usize) -> Self {
        Self {
            queues: (0..receivers.max(1)).map(|_| VecDeque::new()).collect(),
            seen: vec![i64::MIN; receivers.max(1)],
            idle_answers: vec![None; receivers.max(1)],
            held: 0,
            window,
            idle_slack: window / IDLE_SLACK_DIVISOR,
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
        let r = batch.receiver.min(self.queues.len() - 1);
        if let Some(newest) = batch.items.iter().map(|i| i.ts_us).max() {
            self.seen[r] = self.seen[r].max(newest);
        }
        self.queues[r].push_back(Held {
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

    /// What may be released: the receiver holding the oldest head packet,
    /// when no other receiver can send an older one (see the module
    /// documentation; `idle` answers whether a receiver is idle, and is
    /// asked only when that decides), the oldest held batch has waited
    /// `window` at `now`, more than `max_batches` are held, or `closed` (no
    /// receiver is left).
    fn next_run(
        &self,
        (now, wall_us): (Instant, i64),
        closed: bool,
        idle: &mut impl FnMut(usize) -> bool,
    ) -> Option<Run> {
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
        // The newest packet time that no receiver without a packet held
        // here can still undercut: what it sent last, or, idle, the slack's
        // age. It stops the head's run too, not only the head.
        let slack_us = i64::try_from(self.idle_slack.as_micros()).unwrap_or(i64::MAX);
        let idle_bound = wall_us.saturating_sub(slack_us);
        let mut bound = i64::MAX;
        for r in 0..self.queues.len() {
            if r == receiver || !self.queues[r].is_empty() {
                continue;
            }
            let seen = self.seen[r];
            // Past the other heads it limits nothing.
            if seen >= second.min(bound) {
                continue;
            }
            let can_undercut = if idle_bound > seen && idle(r) {
                idle_bound
            } else {
                seen
            };
            bound = bound.min(can_undercut);
        }
        let (why, limit) = if head_ts <= bound {
            (Release::Ordered, second.min(bound))
        } else if closed {
            (Release::Closed, second)
        } else if earliest_arrival.is_some_and(|a| now.saturating_duration_since(a) >= self.window)
        {
            (Release::WindowEnded, second)
        } else if self.held > self.max_batches {
            (Release::HeldCap, second)
        } else {
            return None;
        };
        Some(Run {
            receiver,
            limit_ts_us: limit.max(head_ts),
            why,
        })
    }

    /// Releases every packet that may go at `now` (`wall_us`: the wall
    /// clock, in microseconds since the epoch as packet times), oldest
    /// first across the receivers (`idle`: whether a receiver is idle):
    /// `process` gets each packet with why it goes now, `done` each batch
    /// whose last packet went. Returns the packets released.
    pub fn release(
        &mut self,
        (now, wall_us): (Instant, i64),
        closed: bool,
        idle: impl Fn(usize) -> bool,
        mut process: impl FnMut(&Batch, &Item, Release),
        mut done: impl FnMut(Batch),
    ) -> usize {
        // Whether a receiver is idle costs a system call: asked once per
        // receiver per call at most.
        let mut answers = std::mem::take(&mut self.idle_answers);
        answers.fill(None);
        let mut idle = |r: usize| match answers.get_mut(r) {
            Some(Some(known)) => *known,
            Some(slot) => *slot.insert(idle(r)),
            None => false,
        };
        let mut released = 0;
        while let Some(run) = self.next_run((now, wall_us), closed, &mut idle) {
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
        self.idle_answers = answers;
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

    /// The wall clock of the tests: packet time 0 is long past.
    const WALL_US: i64 = 1_000_000;

    /// Releases everything releasable at `now` (wall clock `wall_us`), with
    /// the receivers in `idle` idle; returns (packet time, why) in release
    /// order.
    fn release_idle(
        m: &mut Merge,
        (now, wall_us): (Instant, i64),
        idle: &[usize],
        closed: bool,
    ) -> Vec<(i64, Release)> {
        let mut out = Vec::new();
        let mut done = 0;
        let n = m.release(
            (now, wall_us),
            closed,
            |r| idle.contains(&r),
            |_, item, why| out.push((item.ts_us, why)),
            |_| done += 1,
        );
        assert_eq!(n, out.len());
        out
    }

    /// Releases at `now` with no receiver idle.
    fn release(m: &mut Merge, now: Instant, closed: bool) -> Vec<(i64, Release)> {
        release_idle(m, (now, WALL_US), &[], closed)
    }

    fn times(released: &[(i64, Release)]) -> Vec<i64> {
        released.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn packets_go_oldest_first_as_soon_as_no_receiver_can_undercut_them() {
        let t0 = Instant::now();
        let mut m = Merge::new(3, 10 * MS, 64);
        // Receiver 1's later batch arrives first (it filled up first).
        assert!(m.push(batch(1, &[20, 40, 41, 60]), t0).is_none());
        assert!(m.push(batch(0, &[10, 30, 50]), t0 + MS).is_none());
        assert!(m.push(batch(2, &[35]), t0 + 2 * MS).is_none());
        assert!(m.push(batch(0, &[55, 70]), t0 + 3 * MS).is_none());
        // While every receiver has a packet here, the oldest goes; once
        // receiver 2's queue is empty, nothing newer than its 35 may go
        // before the window ends.
        let out = release(&mut m, t0 + 9 * MS, false);
        assert_eq!(times(&out), [10, 20, 30, 35]);
        assert!(out.iter().all(|(_, why)| *why == Release::Ordered));
        assert_eq!(m.next_expiry(), Some(t0 + 10 * MS));
        // Then everything held goes, oldest first.
        let out = release(&mut m, t0 + 20 * MS, false);
        assert_eq!(times(&out), [40, 41, 50, 55, 60, 70]);
        assert!(out.iter().all(|(_, why)| *why == Release::WindowEnded));
        assert!(m.is_empty());
        assert_eq!(m.next_expiry(), None);
    }

    #[test]
    fn two_busy_receivers_hold_back_only_what_the_other_may_still_undercut() {
        let t0 = Instant::now();
        let mut m = Merge::new(2, 10 * MS, 64);
        m.push(batch(0, &[10, 30]), t0);
        m.push(batch(1, &[20]), t0);
        assert_eq!(times(&release(&mut m, t0, false)), [10, 20]);
        // Receiver 1 sent up to 20: receiver 0's 30 waits for more.
        assert_eq!(m.held_batches(), 1);
        m.push(batch(1, &[40]), t0);
        assert_eq!(times(&release(&mut m, t0, false)), [30]);
        // A batch arriving later with an older packet (a receiver that fell
        // behind) still goes in order with what is held.
        m.push(batch(0, &[35]), t0);
        assert_eq!(times(&release(&mut m, t0, false)), [35]);
        assert_eq!(times(&release(&mut m, t0 + 10 * MS, false)), [40]);
    }

    #[test]
    fn an_idle_receiver_holds_back_only_what_is_younger_than_the_slack() {
        let t0 = Instant::now();
        let mut m = Merge::new(3, 10 * MS, 64);
        m.push(batch(0, &[10, 20]), t0);
        // Receivers 1 and 2 have sent nothing: while either may still be
        // about to, nothing goes.
        assert!(release_idle(&mut m, (t0, WALL_US), &[1], false).is_empty());
        // Idle, they hold back only what is younger than the slack.
        let slack = (10 * MS / IDLE_SLACK_DIVISOR).as_micros() as i64;
        let out = release_idle(&mut m, (t0, 15 + slack), &[1, 2], false);
        assert_eq!(out, [(10, Release::Ordered)]);
        let out = release_idle(&mut m, (t0, 20 + slack), &[1, 2], false);
        assert_eq!(out, [(20, Release::Ordered)]);
    }

    #[test]
    fn what_a_receiver_sent_last_stops_another_receivers_run() {
        let t0 = Instant::now();
        let mut m = Merge::new(3, 10 * MS, 64);
        // Receiver 2 is idle throughout, receiver 0 at first.
        m.push(batch(1, &[15]), t0);
        m.push(batch(0, &[5]), t0);
        let out = release_idle(&mut m, (t0, WALL_US), &[0, 2], false);
        assert_eq!(times(&out), [5, 15]);
        // Receiver 0 wakes with packets from before 15 (late: they go at
        // once) and after it. Receiver 1 has sent up to 15 and may still
        // send 16: receiver 0's packets after 15 wait, though its head is
        // older than what receiver 1 sent.
        m.push(batch(0, &[10, 12, 20, 30]), t0);
        let out = release_idle(&mut m, (t0, WALL_US), &[2], false);
        assert_eq!(times(&out), [10, 12]);
        m.push(batch(1, &[25]), t0);
        let out = release_idle(&mut m, (t0, WALL_US), &[2], false);
        assert_eq!(times(&out), [20, 25]);
    }

    #[test]
    fn quiet_flags_are_per_receiver() {
        let quiet = Quiet::new(2);
        quiet.set(1, true);
        assert!(quiet.get(1) && !quiet.get(0));
        quiet.set(1, false);
        quiet.set(7, true);
        assert!(!quiet.get(1) && !quiet.get(7));
    }

    #[test]
    fn the_batch_cap_releases_early_and_closing_releases_everything() {
        let t0 = Instant::now();
        // Receiver 2 never sends: it holds everything back.
        let mut m = Merge::new(3, Duration::from_secs(3600), 2);
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
