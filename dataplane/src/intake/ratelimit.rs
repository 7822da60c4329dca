//! Lifecycle-noise limiter: a `connect`/`disconnect`/… event repeated for the same attacker,
//! decky, service and kind within the window adds nothing but rows, so it is dropped — and
//! counted, never silently.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use decnet_store::Event;

/// Kinds the original collector limited.
pub const DEFAULT_KINDS: [&str; 5] = ["connect", "disconnect", "connection", "accept", "close"];
/// Keys remembered before old ones are pruned.
const MAX_KEYS: usize = 10_000;

/// Per-key last-seen times for the limited kinds.
#[derive(Debug)]
pub struct RateLimiter {
    window: Duration,
    kinds: Vec<String>,
    seen: HashMap<(String, String, String, String), Instant>,
    /// Walks of `seen` to drop expired keys (each costs every key).
    prunes: u64,
}

impl RateLimiter {
    /// A limiter over `kinds` with `window` (a zero window disables it).
    pub fn new(window: Duration, kinds: &[&str]) -> Self {
        Self {
            window,
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            seen: HashMap::new(),
            prunes: 0,
        }
    }

    /// Whether `event` should be kept, as of `now`.
    pub fn admit(&mut self, event: &Event, now: Instant) -> bool {
        self.admit_parts(event.src_ip, &event.decky, &event.service, &event.kind, now)
    }

    /// [`Self::admit`] for an event given by its key parts.
    pub fn admit_parts(
        &mut self,
        src_ip: Option<IpAddr>,
        decky: &str,
        service: &str,
        kind: &str,
        now: Instant,
    ) -> bool {
        if self.window.is_zero() || !self.kinds.iter().any(|k| k == kind) {
            return true;
        }
        let ip = src_ip.map(|i| i.to_string()).unwrap_or_default();
        let key = (ip, decky.to_owned(), service.to_owned(), kind.to_owned());
        if let Some(last) = self.seen.get(&key)
            && now.saturating_duration_since(*last) < self.window
        {
            return false;
        }
        if self.seen.len() >= MAX_KEYS {
            let window = self.window;
            self.prunes += 1;
            self.seen
                .retain(|_, t| now.saturating_duration_since(*t) < window);
            // A prune must free a quarter of the keys, or the next insert prunes again: new
            // keys arriving about as fast as old ones expire made every insert walk them all.
            // Forgetting every key only lets a few repeats through.
            if self.seen.len() > MAX_KEYS * 3 / 4 {
                self.seen.clear();
            }
        }
        self.seen.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use decnet_store::Severity;

    fn ev(kind: &str, ip: &str) -> Event {
        let mut e = Event::new(0, "web01", "http", kind, Severity::Info);
        e.src_ip = Some(ip.parse().unwrap());
        e
    }

    #[test]
    fn repeats_inside_the_window_are_limited_per_key() {
        let mut rl = RateLimiter::new(Duration::from_secs(1), &DEFAULT_KINDS);
        let t0 = Instant::now();
        assert!(rl.admit(&ev("connect", "10.0.0.1"), t0));
        assert!(!rl.admit(&ev("connect", "10.0.0.1"), t0 + Duration::from_millis(500)));
        assert!(rl.admit(&ev("connect", "10.0.0.2"), t0 + Duration::from_millis(500)));
        assert!(rl.admit(&ev("disconnect", "10.0.0.1"), t0));
        assert!(rl.admit(&ev("connect", "10.0.0.1"), t0 + Duration::from_millis(1500)));
        // Attack content is never limited.
        for _ in 0..3 {
            assert!(rl.admit(&ev("auth_attempt", "10.0.0.1"), t0));
        }
        let mut off = RateLimiter::new(Duration::ZERO, &DEFAULT_KINDS);
        assert!(off.admit(&ev("connect", "10.0.0.1"), t0));
        assert!(off.admit(&ev("connect", "10.0.0.1"), t0));
    }

    /// New keys arriving about as fast as old ones expire: each prune frees a quarter of the
    /// keys at least, so inserts between prunes stay many (a prune per insert walked every key).
    #[test]
    fn prunes_stay_rare_when_keys_turn_over_steadily() {
        let window = Duration::from_secs(1);
        let mut rl = RateLimiter::new(window, &DEFAULT_KINDS);
        let t0 = Instant::now();
        let step = window / MAX_KEYS as u32;
        for i in 0..(4 * MAX_KEYS) as u32 {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            assert!(rl.admit(&ev("connect", &ip), t0 + step * i));
        }
        let prunes = rl.prunes;
        assert!(prunes <= 16, "{prunes} prunes for {} inserts", 4 * MAX_KEYS);
    }
}
