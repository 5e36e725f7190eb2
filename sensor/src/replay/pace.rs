//! When each packet of a replay is due.
//!
//! Owns: the three rate modes (as fast as possible, a steady packet rate,
//! capture timestamps scaled by a speed factor) and the caps that keep odd
//! timestamps from stalling a replay. Input: each packet's capture time, in
//! order. Output: the offset from the start of the replay at which it is
//! due. Does not: sleep or send (the caller flushes what is due, then
//! sleeps until the next packet's time).

use std::time::Duration;

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the sockets take them.
    Max,
    /// A steady number of packets per second.
    PacketsPerSecond(u64),
    /// Capture timestamps, divided by this factor (2 = twice as fast).
    Speed(f64),
}

/// How far behind schedule a `--pps` replay may fall before the schedule
/// moves instead of bursting to catch up: a slow moment costs at most this
/// much catch-up burst.
const PPS_MAX_LAG: Duration = Duration::from_millis(50);

/// Computes due times.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: Rate,
    /// `--speed`: the longest gap between two capture timestamps that is
    /// honoured, in microseconds of capture time.
    max_gap_us: i64,
    /// Packets scheduled so far.
    scheduled: u64,
    /// `--pps`: how far the schedule has been moved back after lag.
    shift: Duration,
    /// `--speed`: capture time elapsed so far (gaps capped), microseconds.
    capture_elapsed_us: i64,
    last_ts_us: Option<i64>,
}

impl Pacer {
    /// A pacer for `rate`, capping any one capture-time gap at `max_gap`.
    pub fn new(rate: Rate, max_gap: Duration) -> Self {
        Self {
            rate,
            max_gap_us: i64::try_from(max_gap.as_micros()).unwrap_or(i64::MAX),
            scheduled: 0,
            shift: Duration::ZERO,
            capture_elapsed_us: 0,
            last_ts_us: None,
        }
    }

    /// True when packets are never held back.
    pub fn unpaced(&self) -> bool {
        self.rate == Rate::Max
    }

    /// When the next packet (captured at `ts_us`) is due, as an offset from
    /// the start of the replay; `elapsed` is the time since then. `None`
    /// means now.
    pub fn next_due(&mut self, ts_us: i64, elapsed: Duration) -> Option<Duration> {
        let n = self.scheduled;
        self.scheduled += 1;
        match self.rate {
            Rate::Max => None,
            Rate::PacketsPerSecond(pps) => {
                let nanos = u128::from(n) * 1_000_000_000 / u128::from(pps.max(1));
                let mut due = duration_from_nanos(nanos) + self.shift;
                if elapsed > due + PPS_MAX_LAG {
                    self.shift += elapsed - due - PPS_MAX_LAG;
                    due = elapsed - PPS_MAX_LAG;
                }
                Some(due)
            }
            Rate::Speed(speed) => {
                if let Some(last) = self.last_ts_us {
                    // Timestamps that go backwards count as no gap.
                    let gap = ts_us.saturating_sub(last).clamp(0, self.max_gap_us);
                    self.capture_elapsed_us = self.capture_elapsed_us.saturating_add(gap);
                }
                self.last_ts_us = Some(ts_us);
                let secs = self.capture_elapsed_us as f64 / 1e6 / speed;
                Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
            }
        }
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn pps_spreads_packets_evenly() {
        let mut p = Pacer::new(Rate::PacketsPerSecond(1000), SEC);
        let due: Vec<_> = (0..1001).map(|_| p.next_due(0, Duration::ZERO)).collect();
        assert_eq!(due[0], Some(Duration::ZERO));
        assert_eq!(due[1], Some(Duration::from_millis(1)));
        assert_eq!(due[1000], Some(SEC));
    }

    #[test]
    fn pps_does_not_burst_to_catch_up_after_a_stall() {
        let mut p = Pacer::new(Rate::PacketsPerSecond(100), SEC);
        assert_eq!(p.next_due(0, Duration::ZERO), Some(Duration::ZERO));
        // Stalled for 5 s: the next packet is due now-ish, not 500 packets
        // in a burst.
        let late = Duration::from_secs(5);
        let d1 = p.next_due(0, late).unwrap();
        assert_eq!(d1, late - PPS_MAX_LAG);
        let d2 = p.next_due(0, late).unwrap();
        assert_eq!(d2, d1 + Duration::from_millis(10));
    }

    #[test]
    fn speed_follows_timestamps_scaled_and_caps_gaps() {
        let mut p = Pacer::new(Rate::Speed(2.0), SEC);
        let t0 = 1_700_000_000_000_000;
        assert_eq!(p.next_due(t0, Duration::ZERO), Some(Duration::ZERO));
        assert_eq!(
            p.next_due(t0 + 500_000, Duration::ZERO),
            Some(Duration::from_millis(250))
        );
        // A gap of an hour counts as 1 s of capture time (0.5 s at 2x).
        assert_eq!(
            p.next_due(t0 + 3_600_500_000, Duration::ZERO),
            Some(Duration::from_millis(750))
        );
        // Going backwards counts as no gap.
        assert_eq!(
            p.next_due(t0, Duration::ZERO),
            Some(Duration::from_millis(750))
        );
    }

    #[test]
    fn max_is_never_held_back() {
        let mut p = Pacer::new(Rate::Max, SEC);
        assert!(p.unpaced());
        assert_eq!(p.next_due(0, Duration::ZERO), None);
        assert_eq!(p.next_due(i64::MAX, Duration::ZERO), None);
    }
}
