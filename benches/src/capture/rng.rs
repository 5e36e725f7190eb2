//! A small seeded pseudo-random generator (SplitMix64) and the few
//! distributions the traffic model needs.
//!
//! Written here rather than taken from `rand` so that a seed produces the
//! same capture with every toolchain and dependency update: `rand` does not
//! promise value stability of its generators across versions.

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, full period,
/// good enough statistics for traffic shaping.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniform value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[low, high]` (inclusive); `low` when the range
    /// is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low + 1;
        low + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An exponentially distributed value with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A log-uniform integer in `[low, high]`: as many values per decade,
    /// the shape of object sizes on the web.
    pub fn log_uniform(&mut self, low: u64, high: u64) -> u64 {
        let (l, h) = ((low.max(1) as f64).ln(), (high.max(1) as f64).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(low, high)
    }

    /// An index into `weights`, drawn in proportion to them.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut pick = self.range(0, total.saturating_sub(1));
        for (index, &weight) in weights.iter().enumerate() {
            if pick < u64::from(weight) {
                return index;
            }
            pick -= u64::from(weight);
        }
        weights.len().saturating_sub(1)
    }

    /// One element of `items`. Panics on an empty slice: callers pass
    /// constant, non-empty tables.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let last = items.len().saturating_sub(1) as u64;
        &items[self.range(0, last) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn range_stays_inside() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let v = rng.range(10, 20);
            assert!((10..=20).contains(&v));
        }
        assert_eq!(rng.range(5, 5), 5);
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            assert_eq!(rng.weighted(&[0, 5, 0]), 1);
        }
    }
}
