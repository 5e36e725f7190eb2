//! How far a pooled backlog figure can be trusted: a bootstrap interval of
//! the ratio of two receivers' pooled rates over the pairs measured.
//!
//! Single backlog measures on a shared VM vary by tens of percent (some
//! backlogs run 20 to 30 % slower for either receiver), so the pooled ratio
//! of 9 pairs moves by several points between runs. Resampling the pairs
//! (with replacement, whole pairs, so each pair's shared conditions stay
//! together) and recomputing the pooled ratio each time shows how much of
//! the figure is the machine: when the central 95 % of the resampled ratios
//! straddles the target, the run has not decided it.
//!
//! Input: the two receivers' measures, pair by pair. Output: the interval.
//! The resampling is seeded, so the same measures give the same interval.

use super::backlog::{BacklogRate, pooled};
use crate::capture::rng::Rng;

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 4000;
/// Fixed so that a report can be recomputed from its printed pairs.
const SEED: u64 = 0x5eed_0b00_75ab_0001;

/// The pooled rate of `second` over the pooled rate of `first`, over the
/// pairs `picks` names (a pair may be named more than once).
fn pooled_ratio(first: &[BacklogRate], second: &[BacklogRate], picks: &[usize]) -> f64 {
    let f = pooled(picks.iter().map(|&i| &first[i]));
    let s = pooled(picks.iter().map(|&i| &second[i]));
    s.pps() / f.pps().max(1e-9)
}

/// The central 95 % of the pooled ratio `second / first` over bootstrap
/// resamples of the pairs, as (low, high); None with fewer than two pairs
/// (one pair has no spread to resample).
pub fn ratio_interval(first: &[BacklogRate], second: &[BacklogRate]) -> Option<(f64, f64)> {
    let n = first.len().min(second.len());
    if n < 2 {
        return None;
    }
    let mut rng = Rng::new(SEED);
    let mut picks = vec![0usize; n];
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        for p in picks.iter_mut() {
            *p = rng.range(0, n as u64 - 1) as usize;
        }
        ratios.push(pooled_ratio(first, second, &picks));
    }
    ratios.sort_by(f64::total_cmp);
    let low = ratios[RESAMPLES * 25 / 1000];
    let high = ratios[RESAMPLES * 975 / 1000 - 1];
    Some((low, high))
}

/// Where an interval lies against a target ratio, in words for the report.
pub fn against(target: f64, (low, high): (f64, f64)) -> &'static str {
    if low >= target {
        "the interval lies above the target"
    } else if high < target {
        "the interval lies below the target"
    } else {
        "the interval straddles the target: this run does not decide it"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(received: u64, seconds: f64) -> BacklogRate {
        BacklogRate::for_test(received, seconds)
    }

    #[test]
    fn pairs_with_one_ratio_give_that_ratio_exactly() {
        let first: Vec<_> = (0..9)
            .map(|i| rate(500_000, 0.5 + 0.01 * i as f64))
            .collect();
        let second: Vec<_> = first
            .iter()
            .map(|r| rate(r.received, r.seconds / 0.8))
            .collect();
        let (low, high) = ratio_interval(&first, &second).unwrap();
        assert!(
            (low - 0.8).abs() < 1e-9 && (high - 0.8).abs() < 1e-9,
            "{low} {high}"
        );
    }

    #[test]
    fn the_interval_holds_the_pooled_ratio_and_widens_with_spread() {
        let first: Vec<_> = (0..9).map(|_| rate(500_000, 0.5)).collect();
        let spread = |k: f64| -> Vec<BacklogRate> {
            (0..9)
                .map(|i| rate(500_000, 0.6 + k * (i as f64 - 4.0) / 40.0))
                .collect()
        };
        let narrow = spread(0.2);
        let wide = spread(1.0);
        let all: Vec<usize> = (0..9).collect();
        let (nl, nh) = ratio_interval(&first, &narrow).unwrap();
        let (wl, wh) = ratio_interval(&first, &wide).unwrap();
        let pooled = pooled_ratio(&first, &wide, &all);
        assert!(wl <= pooled && pooled <= wh, "{wl} {pooled} {wh}");
        assert!(
            wh - wl > 2.0 * (nh - nl),
            "narrow {nl}-{nh}, wide {wl}-{wh}"
        );
        assert!(nl < nh);
    }

    #[test]
    fn one_pair_has_no_interval() {
        assert_eq!(ratio_interval(&[rate(1, 1.0)], &[rate(1, 1.0)]), None);
        assert_eq!(ratio_interval(&[], &[]), None);
    }

    #[test]
    fn the_words_follow_the_interval() {
        assert_eq!(
            against(0.8, (0.81, 0.9)),
            "the interval lies above the target"
        );
        assert_eq!(
            against(0.8, (0.7, 0.79)),
            "the interval lies below the target"
        );
        assert!(against(0.8, (0.75, 0.85)).starts_with("the interval straddles"));
    }
}
