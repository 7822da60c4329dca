//! Hostname generation in the style of each distro and OS family.

use rand::{Rng, seq::IndexedRandom};

use crate::{distro::HostnameStyle, os::OsFamily};

const WORDS: [&str; 25] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "prod", "web", "db", "mail", "proxy", "dev",
    "stage", "backup", "monitor", "files",
];

/// Characters Windows setup uses in generated computer names.
const WIN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A hostname for a decky of this distro style and OS family.
///
/// Non-Unix personas ignore the distro style: a Windows workstation is `DESKTOP-XXXXXXX` as
/// setup names it, a Windows server an upper-case `WORD-SRVnn` an administrator would choose,
/// embedded devices and routers short lower-case names.
pub fn generate(rng: &mut impl Rng, style: HostnameStyle, os: OsFamily) -> String {
    let word = WORDS.choose(rng).copied().unwrap_or("alpha");
    let n: u8 = rng.random_range(10..100);
    match os {
        OsFamily::Windows => {
            let tail: String = (0..7)
                .map(|_| char::from(WIN_CHARS[rng.random_range(0..WIN_CHARS.len())]))
                .collect();
            return format!("DESKTOP-{tail}");
        }
        OsFamily::WindowsServer => return format!("{}-SRV{n}", word.to_ascii_uppercase()),
        // Appliances keep short names whatever their firmware is built on.
        OsFamily::Embedded => return format!("{word}-{n}"),
        OsFamily::Cisco => return format!("{word}-rtr{n}"),
        OsFamily::Linux | OsFamily::Bsd => {}
    }
    match style {
        HostnameStyle::Generic => format!("SRV-{}-{n}", word.to_ascii_uppercase()),
        HostnameStyle::Rhel => format!("{word}{n}.localdomain"),
        HostnameStyle::Minimal => format!("{word}-{n}"),
        HostnameStyle::Rolling => {
            let second = WORDS.choose(rng).copied().unwrap_or("bravo");
            format!("{word}-{second}")
        }
    }
}

/// Whether `name` is a valid RFC 1123 host name (labels of 1–63 alphanumerics and inner
/// hyphens, at most 253 bytes).
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn styles_have_their_shapes() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let g = generate(&mut rng, HostnameStyle::Generic, OsFamily::Linux);
            assert!(g.starts_with("SRV-") && is_valid(&g), "{g}");
            let r = generate(&mut rng, HostnameStyle::Rhel, OsFamily::Linux);
            assert!(r.ends_with(".localdomain") && is_valid(&r), "{r}");
            let m = generate(&mut rng, HostnameStyle::Minimal, OsFamily::Embedded);
            assert!(
                is_valid(&m) && m.rsplit('-').next().unwrap().parse::<u8>().is_ok(),
                "{m}"
            );
            let w = generate(&mut rng, HostnameStyle::Generic, OsFamily::Windows);
            assert!(
                w.starts_with("DESKTOP-") && w.len() == 15 && is_valid(&w),
                "{w}"
            );
            let s = generate(&mut rng, HostnameStyle::Rhel, OsFamily::WindowsServer);
            assert!(s.contains("-SRV") && is_valid(&s), "{s}");
        }
    }

    #[test]
    fn validity_rules() {
        assert!(is_valid("web01.localdomain"));
        assert!(!is_valid("-web"));
        assert!(!is_valid("a..b"));
        assert!(!is_valid("under_score"));
        assert!(!is_valid(&"a".repeat(64)));
    }
}
