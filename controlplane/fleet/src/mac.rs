//! Per-decky MAC addresses with a plausible vendor prefix for the persona.
//!
//! Docker's default MACs are locally administered (`02:42:…`): every decky would look
//! vendor-less, a well-known tell. Each persona instead gets a real, globally administered
//! IEEE OUI of hardware that OS family (or archetype) actually runs on. The table is checked
//! against the IEEE registry in tests.

use std::fmt;

use rand::{Rng, seq::IndexedRandom};
use serde::{Serialize, Serializer};

use crate::os::OsFamily;

/// A vendor prefix and the vendor the IEEE registry lists for it.
pub type Oui = ([u8; 3], &'static str);

const SERVER: &[Oui] = &[
    ([0xF8, 0xBC, 0x12], "Dell"),
    ([0x18, 0x66, 0xDA], "Dell"),
    ([0x14, 0x18, 0x77], "Dell"),
    ([0x3C, 0xD9, 0x2B], "Hewlett Packard"),
    ([0xF4, 0xCE, 0x46], "Hewlett Packard"),
    ([0x0C, 0xC4, 0x7A], "Super Micro"),
    ([0xAC, 0x1F, 0x6B], "Super Micro"),
    ([0xA0, 0x36, 0x9F], "Intel"),
    ([0x3C, 0xFD, 0xFE], "Intel"),
    ([0x00, 0x50, 0x56], "VMware"),
    ([0x00, 0x0C, 0x29], "VMware"),
];
const WORKSTATION: &[Oui] = &[
    ([0xD4, 0xBE, 0xD9], "Dell"),
    ([0xE4, 0x54, 0xE8], "Dell"),
    ([0xA4, 0xBB, 0x6D], "Dell"),
    ([0x8C, 0xEC, 0x4B], "Dell"),
    ([0x48, 0x4D, 0x7E], "Dell"),
    ([0x98, 0xFA, 0x9B], "LCFC"),
    ([0x54, 0xEE, 0x75], "Wistron"),
    ([0xB4, 0x2E, 0x99], "GIGA-BYTE"),
];
const WINDOWS_SERVER: &[Oui] = &[
    ([0x14, 0x18, 0x77], "Dell"),
    ([0x18, 0x66, 0xDA], "Dell"),
    ([0x3C, 0xD9, 0x2B], "Hewlett Packard"),
    ([0x00, 0x50, 0x56], "VMware"),
    ([0x00, 0x15, 0x5D], "Microsoft"),
];
const BSD: &[Oui] = &[
    ([0x0C, 0xC4, 0x7A], "Super Micro"),
    ([0xAC, 0x1F, 0x6B], "Super Micro"),
    ([0x00, 0x25, 0x90], "Super Micro"),
    ([0x3C, 0xFD, 0xFE], "Intel"),
    ([0xA0, 0x36, 0x9F], "Intel"),
];
const EMBEDDED: &[Oui] = &[
    ([0xB8, 0x27, 0xEB], "Raspberry Pi"),
    ([0xDC, 0xA6, 0x32], "Raspberry Pi"),
    ([0x24, 0x0A, 0xC4], "Espressif"),
    ([0x00, 0x0B, 0xAB], "Advantech"),
];
const CISCO: &[Oui] = &[
    ([0x00, 0x00, 0x0C], "Cisco"),
    ([0x58, 0xAC, 0x78], "Cisco"),
    ([0x00, 0x1A, 0xA1], "Cisco"),
];
const PRINTER: &[Oui] = &[
    ([0x00, 0x1B, 0x78], "Hewlett Packard"),
    ([0x00, 0x26, 0x55], "Hewlett Packard"),
    ([0x3C, 0x2A, 0xF4], "Brother"),
];
const PLC: &[Oui] = &[
    ([0x00, 0x1B, 0x1B], "Siemens"),
    ([0x00, 0x0E, 0x8C], "Siemens"),
    ([0x28, 0x63, 0x36], "Siemens"),
    ([0x00, 0x00, 0xBC], "Rockwell Automation"),
    ([0x00, 0x1D, 0x9C], "Rockwell Automation"),
];
const VOIP: &[Oui] = &[
    ([0x00, 0x04, 0xF2], "Polycom"),
    ([0x00, 0x50, 0x56], "VMware"),
];

/// Every OUI table, for registry checks.
pub fn all_ouis() -> impl Iterator<Item = &'static Oui> {
    [
        SERVER,
        WORKSTATION,
        WINDOWS_SERVER,
        BSD,
        EMBEDDED,
        CISCO,
        PRINTER,
        PLC,
        VOIP,
    ]
    .into_iter()
    .flatten()
}

/// The vendor prefixes plausible for a persona; an archetype with its own hardware (printer,
/// PLC, PBX) wins over the OS family.
pub fn ouis_for(os: OsFamily, archetype: Option<&str>) -> &'static [Oui] {
    match archetype {
        Some("printer") => return PRINTER,
        Some("industrial-control") => return PLC,
        Some("voip-server") => return VOIP,
        _ => {}
    }
    match os {
        OsFamily::Linux => SERVER,
        OsFamily::Windows => WORKSTATION,
        OsFamily::WindowsServer => WINDOWS_SERVER,
        OsFamily::Bsd => BSD,
        OsFamily::Embedded => EMBEDDED,
        OsFamily::Cisco => CISCO,
    }
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random address under one of `ouis`.
    pub fn random(rng: &mut impl Rng, ouis: &[Oui]) -> Self {
        let (oui, _) = ouis
            .choose(rng)
            .copied()
            .unwrap_or(([0x00, 0x50, 0x56], "VMware"));
        let tail: [u8; 3] = rng.random();
        Self([oui[0], oui[1], oui[2], tail[0], tail[1], tail[2]])
    }

    /// Locally administered bit (Docker's `02:42:…` has it set).
    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn oui(self) -> [u8; 3] {
        [self.0[0], self.0[1], self.0[2]]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn ouis_are_global_unicast() {
        for (oui, vendor) in all_ouis() {
            let mac = MacAddr([oui[0], oui[1], oui[2], 0, 0, 0]);
            assert!(!mac.is_locally_administered(), "{vendor} {mac}");
            assert!(!mac.is_multicast(), "{vendor} {mac}");
        }
    }

    /// The IEEE registry (Debian's `ieee-data`, installed by the test script) must list each
    /// prefix under the vendor we claim.
    #[test]
    fn ouis_match_the_ieee_registry() {
        let path = "/usr/share/ieee-data/oui.txt";
        let Ok(registry) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: {path} missing; install Debian's ieee-data to check OUIs");
            return;
        };
        for (oui, vendor) in all_ouis() {
            let key = format!("{:02X}-{:02X}-{:02X}", oui[0], oui[1], oui[2]);
            let line = registry
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("{key} ({vendor}) is not in the IEEE registry"));
            assert!(
                line.to_ascii_lowercase()
                    .contains(&vendor.to_ascii_lowercase()),
                "{key}: registry says {line:?}, table says {vendor}"
            );
        }
    }

    #[test]
    fn random_macs_use_the_persona_table() {
        let mut rng = StdRng::seed_from_u64(1);
        for os in OsFamily::ALL {
            let table = ouis_for(os, None);
            for _ in 0..50 {
                let mac = MacAddr::random(&mut rng, table);
                assert!(table.iter().any(|(o, _)| *o == mac.oui()));
                assert!(!mac.is_locally_administered());
            }
        }
        assert_eq!(
            ouis_for(OsFamily::Embedded, Some("printer"))[0].1,
            "Hewlett Packard"
        );
    }
}
