//! Event rate limiting in front of the store.
//!
//! The kinds that one packet alone can trigger (`tcp_syn`, `udp`, `icmp`, and the `flow`
//! summary of a probe-sized flow) pass a token bucket per source and kind and a global one
//! per kind, so a flood costs a few events a second instead of one or two per packet. Nothing is silent:
//! every refused event is counted per kind in [`super::SnifferMetrics`], and the next event
//! admitted for that source carries `suppressed` = how many were refused since the last one.
//! Port scans are summarised by the scan detector, which sees every probe regardless.
//!
//! Time is packet time, like the rest of the analyzer (a replay limits the same way).

use std::net::IpAddr;

/// Bucket settings; rates are events per second of packet time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    pub per_source_rate: f64,
    pub per_source_burst: f64,
    /// Across all sources of one analyzer (spoofed sources each get a fresh bucket).
    pub global_rate: f64,
    pub global_burst: f64,
    /// Sources tracked; beyond it, full buckets are forgotten, then the global bucket alone
    /// decides for new sources.
    pub max_sources: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            per_source_rate: 20.0,
            per_source_burst: 200.0,
            global_rate: 2000.0,
            global_burst: 10_000.0,
            max_sources: 1 << 16,
        }
    }
}

impl LimitConfig {
    /// No limit at all (tests of the per-packet events, offline analysis that wants them all).
    pub fn unlimited() -> Self {
        Self {
            per_source_rate: f64::INFINITY,
            per_source_burst: f64::INFINITY,
            global_rate: f64::INFINITY,
            global_burst: f64::INFINITY,
            max_sources: 0,
        }
    }

    fn is_unlimited(&self) -> bool {
        self.per_source_burst.is_infinite() && self.global_burst.is_infinite()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ns: i64,
    /// Refused since the last admitted event.
    suppressed: u64,
}

impl Bucket {
    fn full(burst: f64, now: i64) -> Self {
        Self {
            tokens: burst,
            last_ns: now,
            suppressed: 0,
        }
    }

    fn refill(&mut self, now: i64, rate: f64, burst: f64) {
        let dt = now.saturating_sub(self.last_ns).max(0) as f64 / 1e9;
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last_ns = self.last_ns.max(now);
    }
}

/// Kinds with their own buckets.
pub const KINDS: usize = 4;

/// The buckets of one analyzer (single-threaded, like the flow table).
#[derive(Debug)]
pub struct EventLimiter {
    config: LimitConfig,
    global: [Bucket; KINDS],
    sources: crate::FastMap<IpAddr, [Bucket; KINDS]>,
    /// Packet time of the last sweep for full buckets (at most one a second: a spoofed flood
    /// must not pay a table scan per packet).
    last_forget: Option<i64>,
}

impl EventLimiter {
    pub fn new(config: LimitConfig) -> Self {
        Self {
            config,
            global: [Bucket::full(config.global_burst, 0); KINDS],
            sources: crate::FastMap::default(),
            last_forget: None,
        }
    }

    /// Sources with a bucket.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// May `src` emit one more event of `kind` (< [`KINDS`]) at `now`? `Some(n)`: yes, and
    /// `n` of its events of that kind were refused since its last admitted one; `None`:
    /// refused (the caller counts it).
    pub fn admit(&mut self, kind: usize, src: IpAddr, now: i64) -> Option<u64> {
        let c = self.config;
        if c.is_unlimited() || kind >= KINDS {
            return Some(0);
        }
        if !self.sources.contains_key(&src)
            && self.sources.len() >= c.max_sources
            && self
                .last_forget
                .is_none_or(|t| now.saturating_sub(t) >= 1_000_000_000)
        {
            self.last_forget = Some(now);
            self.forget_full(now);
        }
        let tracked = self.sources.len() < c.max_sources || self.sources.contains_key(&src);
        let mut fresh = [Bucket::full(c.per_source_burst, now); KINDS];
        let buckets = if tracked {
            self.sources
                .entry(src)
                .or_insert_with(|| [Bucket::full(c.per_source_burst, now); KINDS])
        } else {
            &mut fresh
        };
        let bucket = &mut buckets[kind];
        let global = &mut self.global[kind];
        bucket.refill(now, c.per_source_rate, c.per_source_burst);
        global.refill(now, c.global_rate, c.global_burst);
        if bucket.tokens >= 1.0 && global.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            global.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            None
        }
    }

    /// Drop buckets that have refilled completely: forgetting them changes no decision.
    fn forget_full(&mut self, now: i64) {
        let c = self.config;
        self.sources.retain(|_, buckets| {
            buckets.iter().any(|b| {
                let mut b2 = *b;
                b2.refill(now, c.per_source_rate, c.per_source_burst);
                b2.tokens < c.per_source_burst || b2.suppressed > 0
            })
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_learns_what_was_refused() {
        let mut l = EventLimiter::new(LimitConfig {
            per_source_rate: 10.0,
            per_source_burst: 5.0,
            ..LimitConfig::default()
        });
        let admitted = (0..100).filter(|_| l.admit(0, ip(1), S).is_some()).count();
        assert_eq!(admitted, 5);
        // Another kind of the same source has its own bucket.
        assert_eq!(l.admit(1, ip(1), S), Some(0));
        // Another source is not affected.
        assert_eq!(l.admit(0, ip(2), S), Some(0));
        // 0.5 s later: 5 tokens back; the first admitted event reports the 95 refused.
        assert_eq!(l.admit(0, ip(1), S + S / 2), Some(95));
        assert_eq!(l.admit(0, ip(1), S + S / 2), Some(0));
    }

    #[test]
    fn the_global_bucket_bounds_spoofed_sources() {
        let mut l = EventLimiter::new(LimitConfig {
            global_rate: 100.0,
            global_burst: 50.0,
            max_sources: 1000,
            ..LimitConfig::default()
        });
        let admitted = (0..2000u32)
            .filter(|i| {
                let [_, _, a, b] = i.to_be_bytes();
                l.admit(2, IpAddr::from([10, 1, a, b]), S).is_some()
            })
            .count();
        assert_eq!(admitted, 50);
        // The source table stays bounded: refused sources keep their bucket only up to the cap.
        assert!(l.sources() <= 1000, "{}", l.sources());
    }

    #[test]
    fn full_buckets_are_forgotten_when_the_table_is_full() {
        let mut l = EventLimiter::new(LimitConfig {
            per_source_rate: 1.0,
            per_source_burst: 2.0,
            max_sources: 2,
            ..LimitConfig::default()
        });
        assert!(l.admit(0, ip(1), S).is_some());
        assert!(l.admit(0, ip(2), S).is_some());
        // 10 s later both have refilled: a third source replaces them.
        assert!(l.admit(0, ip(3), 11 * S).is_some());
        assert_eq!(l.sources(), 1);
    }

    #[test]
    fn unlimited_admits_everything() {
        let mut l = EventLimiter::new(LimitConfig::unlimited());
        assert!((0..10_000).all(|_| l.admit(3, ip(1), 0) == Some(0)));
        assert_eq!(l.sources(), 0);
    }
}
