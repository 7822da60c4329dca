//! Interactive sessions recorded as asciinema v2 casts: a JSON header line, then one
//! `[seconds, "o"|"i"|"r", data]` line per chunk. Bounded: once full, later chunks are
//! dropped and the cast says so by ending early.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Bytes one cast may hold; an attacker pasting megabytes cannot grow it further.
pub const MAX_CAST: usize = 1024 * 1024;

/// Where a session reads the time from: the system clock in service, a hand-set one in tests
/// (the sessions stay sans-IO and their outputs reproducible).
#[derive(Debug, Clone)]
pub enum Clock {
    System {
        start: Instant,
        unix: u64,
    },
    /// Milliseconds since the session started, set by the test; the epoch start is fixed.
    Manual(Arc<AtomicU64>),
}

/// The epoch second a [`Clock::Manual`] session claims to have started at.
pub const MANUAL_EPOCH: u64 = 1_795_000_000;

impl Clock {
    pub fn system() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::System {
            start: Instant::now(),
            unix,
        }
    }

    /// Time since the session started.
    pub fn elapsed(&self) -> Duration {
        match self {
            Self::System { start, .. } => start.elapsed(),
            Self::Manual(ms) => Duration::from_millis(ms.load(Ordering::Relaxed)),
        }
    }

    /// Epoch second the session started at.
    pub fn started_unix(&self) -> u64 {
        match self {
            Self::System { unix, .. } => *unix,
            Self::Manual(_) => MANUAL_EPOCH,
        }
    }
}

/// One interactive session's recording.
#[derive(Debug)]
pub struct Transcript {
    cast: Vec<u8>,
    /// When recording began, as [`Clock::elapsed`] of the session.
    began: Duration,
    last: Duration,
    full: bool,
}

impl Transcript {
    /// Start a cast for a `width`×`height` terminal of type `term` (empty: no pty).
    pub fn new(clock: &Clock, width: u32, height: u32, term: &str) -> Self {
        let began = clock.elapsed();
        let header = serde_json::json!({
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": clock.started_unix() + began.as_secs(),
            "env": {"SHELL": "/bin/bash", "TERM": term},
        });
        let mut cast = header.to_string().into_bytes();
        cast.push(b'\n');
        Self {
            cast,
            began,
            last: began,
            full: false,
        }
    }

    /// Terminal output the attacker saw.
    pub fn output(&mut self, clock: &Clock, data: &[u8]) {
        self.record(clock, "o", &String::from_utf8_lossy(data));
    }

    /// Keystrokes the attacker sent.
    pub fn input(&mut self, clock: &Clock, data: &[u8]) {
        self.record(clock, "i", &String::from_utf8_lossy(data));
    }

    /// The terminal was resized.
    pub fn resize(&mut self, clock: &Clock, width: u32, height: u32) {
        self.record(clock, "r", &format!("{width}x{height}"));
    }

    fn record(&mut self, clock: &Clock, kind: &str, data: &str) {
        if self.full || data.is_empty() {
            return;
        }
        let now = clock.elapsed().max(self.last);
        self.last = now;
        let t = now.saturating_sub(self.began).as_secs_f64();
        let line = serde_json::json!([(t * 1e6).round() / 1e6, kind, data]).to_string();
        if self.cast.len() + line.len() + 1 > MAX_CAST {
            self.full = true;
            return;
        }
        self.cast.extend_from_slice(line.as_bytes());
        self.cast.push(b'\n');
    }

    /// Seconds between the start and the last recorded chunk.
    pub fn duration(&self) -> Duration {
        self.last.saturating_sub(self.began)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.cast
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code
    use super::*;

    #[test]
    fn cast_is_asciinema_v2() {
        let ms = Arc::new(AtomicU64::new(1500));
        let clock = Clock::Manual(Arc::clone(&ms));
        let mut t = Transcript::new(&clock, 120, 40, "xterm-256color");
        ms.store(2750, Ordering::Relaxed);
        t.output(&clock, b"root@h:~# ");
        ms.store(4000, Ordering::Relaxed);
        t.input(&clock, b"id\r");
        t.resize(&clock, 100, 30);
        assert_eq!(t.duration(), Duration::from_millis(2500));
        let text = String::from_utf8(t.into_bytes()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 120);
        assert_eq!(lines[0]["timestamp"], MANUAL_EPOCH + 1);
        assert_eq!(lines[0]["env"]["TERM"], "xterm-256color");
        assert_eq!(lines[1], serde_json::json!([1.25, "o", "root@h:~# "]));
        assert_eq!(lines[2], serde_json::json!([2.5, "i", "id\r"]));
        assert_eq!(lines[3], serde_json::json!([2.5, "r", "100x30"]));
    }

    #[test]
    fn cast_stays_bounded() {
        let clock = Clock::Manual(Arc::default());
        let mut t = Transcript::new(&clock, 80, 24, "");
        for _ in 0..10_000 {
            t.output(&clock, &[b'x'; 1000]);
        }
        assert!(t.into_bytes().len() <= MAX_CAST);
    }
}
