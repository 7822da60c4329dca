//! The mutator's rules: which services a decky may be re-rolled to, the next service set, and
//! the interval format of the API.
//!
//! A mutation changes only a decky's service set (the original's "intra-archetype shuffle"):
//! its address, MAC, hostname, distro and OS persona stay, so the host an attacker mapped is
//! still there but answers on other ports.

use rand::{Rng, seq::IndexedRandom};

use crate::{
    archetype::archetype,
    catalog::{Catalog, Port},
};

/// Draws before giving up on finding a set that differs from the current one (the original's
/// figure).
pub const REROLL_ATTEMPTS: usize = 20;

/// The services a decky may draw from: its archetype's, or every built-in per-decky service
/// when it has none (custom services are never drawn: they run somebody's own image).
pub fn pool(archetype_slug: Option<&str>) -> Vec<&'static str> {
    match archetype_slug.and_then(archetype) {
        Some(a) => a.services.to_vec(),
        None => Catalog::random_pool(),
    }
}

/// A new service set for a decky now running `current`: 1 to 3 services of `pool` (fewer
/// when the pool is smaller) whose ports do not clash, different from `current` as a set.
/// `None` when [`REROLL_ATTEMPTS`] draws found no different set (a one-service pool that is
/// already the current set, say).
pub fn reroll(
    current: &[String],
    pool: &[&str],
    catalog: &Catalog,
    rng: &mut impl Rng,
) -> Option<Vec<String>> {
    let usable: Vec<&str> = pool
        .iter()
        .copied()
        .filter(|slug| catalog.get(slug).is_some())
        .collect();
    if usable.is_empty() {
        return None;
    }
    let mut sorted_current: Vec<&str> = current.iter().map(String::as_str).collect();
    sorted_current.sort_unstable();
    for _ in 0..REROLL_ATTEMPTS {
        let want = rng.random_range(1..=3usize).min(usable.len());
        let mut picked: Vec<&str> = Vec::with_capacity(want);
        let mut ports: Vec<Port> = Vec::new();
        for _ in 0..REROLL_ATTEMPTS {
            if picked.len() == want {
                break;
            }
            let Some(slug) = usable.choose(rng) else {
                break;
            };
            let Some(service) = catalog.get(slug) else {
                continue;
            };
            if picked.contains(slug) || service.ports().iter().any(|p| ports.contains(p)) {
                continue;
            }
            ports.extend_from_slice(service.ports());
            picked.push(slug);
        }
        let mut sorted = picked.clone();
        sorted.sort_unstable();
        if !picked.is_empty() && sorted != sorted_current {
            return Some(picked.into_iter().map(str::to_owned).collect());
        }
    }
    None
}

/// Why an interval text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "interval {0:?} must be a number from 1 to 999999 followed by m (minutes), d (days), M (months) or y (years), e.g. 30m, or never"
)]
pub struct BadInterval(pub String);

/// The API's interval syntax, for schemas.
pub const INTERVAL_PATTERN: &str = "^(never|[1-9][0-9]{0,5}[mdMyY])$";

/// Minutes of an API interval ([`INTERVAL_PATTERN`]: m = 1 minute, d = 1,440, M = 43,200,
/// y/Y = 525,600, as the original; beyond `u32::MAX` minutes, about 8,000 years, it saturates).
/// `never` is 0, the INI's and the CLI's "never mutate".
pub fn interval_minutes(text: &str) -> Result<u32, BadInterval> {
    if text == "never" {
        return Ok(0);
    }
    let bad = || BadInterval(text.chars().take(32).collect());
    let mut chars = text.chars();
    let unit = chars.next_back().ok_or_else(bad)?;
    let digits = chars.as_str();
    if digits.is_empty()
        || digits.len() > 6
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let scale: u32 = match unit {
        'm' => 1,
        'd' => 1_440,
        'M' => 43_200,
        'y' | 'Y' => 525_600,
        _ => return Err(bad()),
    };
    digits
        .parse::<u32>()
        .map(|n| n.saturating_mul(scale))
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn pool_is_the_archetype_or_every_builtin_service() {
        assert_eq!(pool(Some("windows-workstation")), vec!["smb", "rdp"]);
        assert_eq!(pool(None), Catalog::random_pool());
        assert_eq!(pool(Some("no-such-archetype")), Catalog::random_pool());
    }

    #[test]
    fn reroll_changes_the_set_within_the_pool_without_port_clashes() {
        let catalog = Catalog::builtin();
        let full = Catalog::random_pool();
        for seed in 0..300 {
            let mut rng = StdRng::seed_from_u64(seed);
            let current = vec!["ssh".to_owned(), "http".to_owned()];
            let next = reroll(&current, &full, &catalog, &mut rng).unwrap();
            assert!((1..=3).contains(&next.len()), "{next:?}");
            let mut a = next.clone();
            a.sort();
            let mut b = current.clone();
            b.sort();
            assert_ne!(a, b, "seed {seed}: unchanged");
            let mut ports: Vec<Port> = next
                .iter()
                .flat_map(|s| catalog.get(s).unwrap().ports().to_vec())
                .collect();
            let n = ports.len();
            ports.sort();
            ports.dedup();
            assert_eq!(ports.len(), n, "seed {seed}: {next:?} share a port");
            assert!(next.iter().all(|s| full.contains(&s.as_str())), "{next:?}");
        }
    }

    #[test]
    fn reroll_reports_when_no_other_set_exists() {
        let catalog = Catalog::builtin();
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(
            reroll(&["ssh".to_owned()], &["ssh"], &catalog, &mut rng),
            None
        );
        assert_eq!(reroll(&[], &[], &catalog, &mut rng), None);
        assert_eq!(reroll(&[], &["not-a-service"], &catalog, &mut rng), None);
        // Two services: the only other sets are {a}, {b} or {a, b} minus the current one.
        let next = reroll(&["smb".to_owned()], &["smb", "rdp"], &catalog, &mut rng).unwrap();
        assert!(next.contains(&"rdp".to_owned()), "{next:?}");
    }

    #[test]
    fn intervals_follow_the_original_format() {
        assert_eq!(interval_minutes("30m"), Ok(30));
        assert_eq!(interval_minutes("2d"), Ok(2_880));
        assert_eq!(interval_minutes("1M"), Ok(43_200));
        assert_eq!(interval_minutes("1y"), Ok(525_600));
        assert_eq!(interval_minutes("1Y"), Ok(525_600));
        assert_eq!(interval_minutes("999999y"), Ok(u32::MAX));
        assert_eq!(interval_minutes("never"), Ok(0));
        for bad in [
            "Never", "never ", "", "m", "0m", "05m", "30", "30s", "-1m", "3 m", "1000000m", "1é",
        ] {
            assert!(interval_minutes(bad).is_err(), "{bad:?} accepted");
        }
    }
}
