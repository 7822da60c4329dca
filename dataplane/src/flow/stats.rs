//! Streaming mean / min / max / standard deviation of integer samples, constant memory.

/// Running statistics over a stream of non-negative integer samples (inter-arrival times in
/// nanoseconds).
///
/// Samples are summed as differences from the first one ("shifted data"): the sums are exact
/// integers, so a push is two adds and one multiply — no division, which Welford's update
/// needs per sample and which sat on the per-packet path of every flow — and the variance
/// stays accurate when samples are large and close together, where plain sums of squares
/// cancel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunningStats {
    pub count: u64,
    shift: u64,
    /// Σ (x − shift).
    sum: i128,
    /// Σ (x − shift)².
    sum_sq: u128,
    min: u64,
    max: u64,
}

impl RunningStats {
    #[inline]
    pub fn push(&mut self, x: u64) {
        if self.count == 0 {
            self.shift = x;
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        let d = i128::from(x) - i128::from(self.shift);
        let a = d.unsigned_abs();
        // |d| < 2^64, so d² fits in u128; the sums saturate instead of wrapping (unreachable
        // sample counts, but never a panic or a wrong sign).
        self.sum = self.sum.saturating_add(d);
        self.sum_sq = self.sum_sq.saturating_add(a * a);
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.shift as f64 + self.sum as f64 / self.count as f64
    }

    pub fn min(&self) -> f64 {
        self.min as f64
    }

    pub fn max(&self) -> f64 {
        self.max as f64
    }

    /// Population standard deviation (zero below two samples).
    pub fn stddev(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        // n²·variance = n·Σd² − (Σd)², exact in integers while it fits (any flow shorter than
        // billions of packets of hour-long gaps); floating point beyond.
        let n = u128::from(self.count);
        let sum = self.sum.unsigned_abs();
        if let (Some(a), Some(b)) = (n.checked_mul(self.sum_sq), sum.checked_mul(sum)) {
            return (a.saturating_sub(b) as f64).sqrt() / n as f64;
        }
        let (n, s) = (self.count as f64, self.sum as f64);
        ((self.sum_sq as f64 - s * s / n).max(0.0) / n).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(xs: &[u64]) -> RunningStats {
        let mut s = RunningStats::default();
        for &x in xs {
            s.push(x);
        }
        s
    }

    /// Two-pass reference in f64.
    fn reference(xs: &[u64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn matches_the_textbook_values() {
        let s = of(&[2, 4, 4, 4, 5, 5, 7, 9]);
        assert_eq!(s.count, 8);
        assert!((s.mean() - 5.0).abs() < 1e-9);
        assert!((s.stddev() - 2.0).abs() < 1e-9);
        assert_eq!(s.min(), 2.0);
        assert_eq!(s.max(), 9.0);
    }

    #[test]
    fn empty_and_single_samples_are_zero_spread() {
        let empty = RunningStats::default();
        assert_eq!((empty.count, empty.mean(), empty.stddev()), (0, 0.0, 0.0));
        let one = of(&[20_000]);
        assert_eq!(
            (one.mean(), one.stddev(), one.min(), one.max()),
            (20_000.0, 0.0, 20_000.0, 20_000.0)
        );
    }

    /// Large samples close together (an hour-long flow's arrivals a few ns apart around
    /// 10^12): plain sums of squares would cancel to noise; the shifted sums do not.
    #[test]
    fn large_close_samples_keep_their_spread() {
        const BASE: u64 = 1_000_000_000_000;
        let jitter: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 13).collect();
        let xs: Vec<u64> = jitter.iter().map(|j| BASE + j).collect();
        let s = of(&xs);
        // The reference runs on the small deviations, where f64 is exact enough.
        let (mean_jitter, sd) = reference(&jitter);
        let mean = BASE as f64 + mean_jitter;
        assert!((s.mean() - mean).abs() < 1e-3, "{} vs {mean}", s.mean());
        assert!((s.stddev() - sd).abs() < 1e-6, "{} vs {sd}", s.stddev());
        let constant = of(&[20_000; 1000]);
        assert_eq!(constant.stddev(), 0.0);
    }

    /// The first sample sets the shift; an atypical first gap (a handshake before steady
    /// traffic) must not cost precision.
    #[test]
    fn an_atypical_first_sample_keeps_the_spread() {
        const BASE: u64 = 1_000_000_000;
        let jitter: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 1000).collect();
        let mut xs = vec![0];
        xs.extend(jitter.iter().map(|j| BASE + j));
        let s = of(&xs);
        // Reference on deviations from BASE (the lone 0 is −BASE), exact enough in f64.
        let devs: Vec<f64> = xs.iter().map(|&x| x as f64 - BASE as f64).collect();
        let n = devs.len() as f64;
        let mean = devs.iter().sum::<f64>() / n;
        let sd = (devs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(
            (s.mean() - (BASE as f64 + mean)).abs() < 1e-3,
            "{}",
            s.mean()
        );
        assert!(
            (s.stddev() - sd).abs() / sd < 1e-9,
            "{} vs {sd}",
            s.stddev()
        );
    }

    #[test]
    fn extreme_samples_never_panic() {
        let s = of(&[u64::MAX, 0, u64::MAX, 0, 1]);
        assert_eq!((s.min(), s.max(), s.count), (0.0, u64::MAX as f64, 5));
        assert!(s.mean().is_finite() && s.stddev().is_finite());
    }
}
