//! Behaviour rules, pure: timing classes, C2 guess, tool guesses, OS guess, threat score.
//! Thresholds are the original profiler's (reference §3.4) unless stated.

use serde::{Deserialize, Serialize};

/// Streaming inter-arrival statistics: Welford mean/variance over every gap, plus the most
/// recent gaps for the median, so memory stays fixed however long an attacker stays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub last_ns: Option<i64>,
    pub events: u64,
    pub gaps: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub recent: std::collections::VecDeque<f64>,
}

/// Gaps kept for the median.
const RECENT_GAPS: usize = 64;

impl Timing {
    pub fn push(&mut self, ts_ns: i64) {
        self.events += 1;
        if let Some(last) = self.last_ns {
            // Out-of-order events (two producers' clocks) count as simultaneous.
            #[allow(clippy::cast_precision_loss)]
            let gap = ts_ns.saturating_sub(last).max(0) as f64 / 1e9;
            self.gaps += 1;
            #[allow(clippy::cast_precision_loss)]
            let n = self.gaps as f64;
            let delta = gap - self.mean;
            self.mean += delta / n;
            self.m2 += delta * (gap - self.mean);
            if self.gaps == 1 {
                self.min = gap;
                self.max = gap;
            } else {
                self.min = self.min.min(gap);
                self.max = self.max.max(gap);
            }
            if self.recent.len() == RECENT_GAPS {
                self.recent.pop_front();
            }
            self.recent.push_back(gap);
        }
        self.last_ns = Some(self.last_ns.map_or(ts_ns, |l| l.max(ts_ns)));
    }

    pub fn stats(&self) -> TimingStats {
        if self.gaps == 0 {
            return TimingStats {
                count: self.events,
                ..TimingStats::default()
            };
        }
        #[allow(clippy::cast_precision_loss)]
        let stdev = (self.m2 / self.gaps as f64).max(0.0).sqrt();
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        TimingStats {
            count: self.events,
            mean_s: Some(self.mean),
            median_s: Some(median),
            stdev_s: Some(stdev),
            min_s: Some(self.min),
            max_s: Some(self.max),
            cv: (self.mean > 0.0).then(|| stdev / self.mean),
        }
    }
}

/// What `attacker_behavior.timing_stats` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimingStats {
    pub count: u64,
    pub mean_s: Option<f64>,
    /// Median of the most recent 64 gaps.
    pub median_s: Option<f64>,
    /// Population standard deviation.
    pub stdev_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    pub cv: Option<f64>,
}

/// A behaviour class and, for beaconing, its interval and jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub class: &'static str,
    pub beacon_interval_s: Option<f64>,
    pub beacon_jitter_pct: Option<f64>,
}

/// The original's classification, checked in its order. `n` = events, `services` = distinct
/// decoy services touched.
pub fn classify(n: u64, services: usize, t: &TimingStats) -> Classification {
    let plain = |class| Classification {
        class,
        beacon_interval_s: None,
        beacon_jitter_pct: None,
    };
    let Some(mean) = t.mean_s.filter(|_| n >= 3) else {
        return plain("unknown");
    };
    let cv = t.cv.unwrap_or(0.0);
    if services >= 2 && mean >= 10.0 && n >= 4 {
        return plain("slow_scan");
    }
    if (services >= 3 && mean < 10.0) || (services >= 2 && mean < 2.0) {
        return plain("scanning");
    }
    if services == 1 && n >= 8 && mean < 5.0 && cv < 0.6 {
        return plain("brute_force");
    }
    if cv < 0.35 && mean >= 5.0 && n >= 4 {
        return Classification {
            class: "beaconing",
            beacon_interval_s: Some(mean),
            beacon_jitter_pct: Some(cv * 100.0),
        };
    }
    if cv >= 0.5 && mean < 5.0 && n >= 6 {
        return plain("interactive");
    }
    plain("mixed")
}

/// C2 framework defaults: (tool, interval s, ± s, CV, ± CV).
pub const C2_TABLE: [(&str, f64, f64, f64, f64); 4] = [
    ("cobalt_strike", 60.0, 8.0, 0.20, 0.05),
    ("sliver", 60.0, 10.0, 0.30, 0.08),
    ("havoc", 45.0, 8.0, 0.10, 0.03),
    ("mythic", 30.0, 6.0, 0.15, 0.03),
];

/// The first C2 framework whose default sleep/jitter matches (mean, CV).
pub fn c2_guess(mean_s: f64, cv: f64) -> Option<&'static str> {
    C2_TABLE
        .iter()
        .find(|(_, m, dm, c, dc)| (mean_s - m).abs() <= *dm && (cv - c).abs() <= *dc)
        .map(|(tool, ..)| *tool)
}

/// Substrings (lower-case) of HTTP headers (mostly User-Agent, X-Mailer) naming a tool.
pub const HEADER_TOOLS: [(&str, &str); 20] = [
    ("nmap scripting engine", "nmap"),
    ("nmap", "nmap"),
    ("gophish", "gophish"),
    ("nikto", "nikto"),
    ("sqlmap", "sqlmap"),
    ("nuclei", "nuclei"),
    ("masscan", "masscan"),
    ("zgrab", "zgrab"),
    ("metasploit", "metasploit"),
    ("msf", "metasploit"),
    ("curl/", "curl"),
    ("python-requests", "python-requests"),
    ("gobuster", "gobuster"),
    ("dirbuster", "dirbuster"),
    ("hydra", "hydra"),
    ("wfuzz", "wfuzz"),
    ("fuzz faster u fool", "ffuf"),
    ("feroxbuster", "feroxbuster"),
    ("wpscan", "wpscan"),
    ("zmap", "zmap"),
];

/// Tools named by header text.
pub fn tools_from_headers(text: &str) -> Vec<&'static str> {
    let lower = text.to_ascii_lowercase();
    let mut out: Vec<&'static str> = HEADER_TOOLS
        .iter()
        .filter(|(needle, _)| lower.contains(needle))
        .map(|(_, tool)| *tool)
        .collect();
    out.dedup();
    out
}

/// SSH client banners (lower-case substrings) that give the client library away.
pub const SSH_BANNER_TOOLS: [(&str, &str); 6] = [
    ("nmap", "nmap"),
    ("libssh", "hydra"),
    ("paramiko", "paramiko"),
    ("ruby/net::ssh", "metasploit"),
    ("ssh-2.0-go", "zgrab"),
    ("masscan", "masscan"),
];

pub fn tools_from_ssh_banner(banner: &str) -> Option<&'static str> {
    let lower = banner.to_ascii_lowercase();
    SSH_BANNER_TOOLS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, tool)| *tool)
}

/// OS from an observed TTL when no SYN label exists (the original's buckets).
pub fn os_from_ttl(ttl: u32) -> Option<&'static str> {
    match ttl {
        55..=70 => Some("linux"),
        115..=135 => Some("windows"),
        235..=255 => Some("embedded"),
        _ => None,
    }
}

/// What the threat score is computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreInputs {
    pub services: usize,
    pub decky_count: usize,
    pub scanning: bool,
    pub auth_attempted: bool,
    pub auth_succeeded: bool,
    pub commands: u64,
    pub payloads: u64,
    pub beaconing: bool,
}

/// Threat score 0–100: how far along the kill chain the attacker got.
///
/// | reached | points |
/// |---|---|
/// | touched a decky at all | 5 |
/// | reconnaissance breadth: ≥3 services, or classified scanning/slow_scan | 10 |
/// | attempted authentication | 15 |
/// | authenticated successfully | 15 |
/// | ran at least one command | 15 |
/// | ran ten or more commands | 10 |
/// | uploaded a file or made a decky fetch a URL | 15 |
/// | traversal: ≥2 deckies | 10 |
/// | ≥3 deckies | 5 |
/// | beaconing (C2-like timing) | 10 |
///
/// The sum is capped at 100.
pub fn score(i: &ScoreInputs) -> u8 {
    let parts = [
        (true, 5),
        (i.services >= 3 || i.scanning, 10),
        (i.auth_attempted, 15),
        (i.auth_succeeded, 15),
        (i.commands >= 1, 15),
        (i.commands >= 10, 10),
        (i.payloads >= 1, 15),
        (i.decky_count >= 2, 10),
        (i.decky_count >= 3, 5),
        (i.beaconing, 10),
    ];
    let total: u32 = parts.iter().filter(|(on, _)| *on).map(|(_, p)| *p).sum();
    u8::try_from(total.min(100)).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn timing(gaps_s: &[f64]) -> TimingStats {
        let mut t = Timing::default();
        let mut ts = 0i64;
        t.push(ts);
        for g in gaps_s {
            #[allow(clippy::cast_possible_truncation)]
            {
                ts += (g * 1e9) as i64;
            }
            t.push(ts);
        }
        t.stats()
    }

    #[test]
    fn classes_follow_the_original_order_and_thresholds() {
        assert_eq!(classify(2, 1, &timing(&[1.0])).class, "unknown");
        assert_eq!(classify(5, 2, &timing(&[20.0; 4])).class, "slow_scan");
        assert_eq!(classify(5, 3, &timing(&[1.0; 4])).class, "scanning");
        assert_eq!(classify(5, 2, &timing(&[1.0; 4])).class, "scanning");
        assert_eq!(classify(10, 1, &timing(&[1.0; 9])).class, "brute_force");
        let beacon = classify(5, 1, &timing(&[48.0, 72.0, 48.0, 72.0]));
        assert_eq!(beacon.class, "beaconing");
        assert!((beacon.beacon_interval_s.unwrap() - 60.0).abs() < 1e-9);
        assert!((beacon.beacon_jitter_pct.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(
            classify(7, 1, &timing(&[0.2, 4.0, 0.5, 9.0, 0.1, 3.0])).class,
            "interactive"
        );
        assert_eq!(classify(4, 1, &timing(&[1.0, 30.0, 2.0])).class, "mixed");
    }

    #[test]
    fn timing_is_exact_and_median_bounded() {
        let t = timing(&[1.0, 2.0, 3.0, 10.0]);
        assert_eq!(t.count, 5);
        assert!((t.mean_s.unwrap() - 4.0).abs() < 1e-9);
        assert!((t.median_s.unwrap() - 2.5).abs() < 1e-9);
        assert!((t.min_s.unwrap() - 1.0).abs() < 1e-9);
        assert!((t.max_s.unwrap() - 10.0).abs() < 1e-9);
        let mut long = Timing::default();
        for i in 0..10_000 {
            long.push(i * 1_000_000_000);
        }
        assert_eq!(long.recent.len(), RECENT_GAPS);
    }

    #[test]
    fn c2_table_and_tools() {
        assert_eq!(c2_guess(60.0, 0.2), Some("cobalt_strike"));
        assert_eq!(c2_guess(62.0, 0.31), Some("sliver"));
        assert_eq!(c2_guess(45.0, 0.1), Some("havoc"));
        assert_eq!(c2_guess(30.0, 0.15), Some("mythic"));
        assert_eq!(c2_guess(300.0, 0.15), None);
        assert_eq!(
            tools_from_headers(
                "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"
            ),
            vec!["nmap"]
        );
        assert_eq!(tools_from_headers("sqlmap/1.7#stable"), vec!["sqlmap"]);
        assert_eq!(tools_from_ssh_banner("SSH-2.0-libssh_0.9.6"), Some("hydra"));
        assert_eq!(os_from_ttl(64), Some("linux"));
        assert_eq!(os_from_ttl(128), Some("windows"));
    }

    #[test]
    fn score_formula() {
        assert_eq!(score(&ScoreInputs::default()), 5);
        let all = ScoreInputs {
            services: 5,
            decky_count: 3,
            scanning: true,
            auth_attempted: true,
            auth_succeeded: true,
            commands: 20,
            payloads: 1,
            beaconing: true,
        };
        assert_eq!(score(&all), 100);
        let brute = ScoreInputs {
            services: 1,
            decky_count: 1,
            auth_attempted: true,
            ..ScoreInputs::default()
        };
        assert_eq!(score(&brute), 20);
    }
}
