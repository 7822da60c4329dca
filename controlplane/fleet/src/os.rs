//! OS families and the namespace-scoped sysctls that bend a decky's TCP/IP stack toward them.
//!
//! The values follow the original's table with one correction from its own later finding:
//! modern Windows runs TCP timestamps ON, and that field weighs most in nmap's OS match.

use serde::Serialize;

/// The OS family a decky impersonates (the INI's `nmap_os`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    Linux,
    Windows,
    WindowsServer,
    Bsd,
    Embedded,
    Cisco,
}

/// One namespace-scoped sysctl of an OS profile.
pub type Sysctl = (&'static str, &'static str);

impl OsFamily {
    pub const ALL: [Self; 6] = [
        Self::Linux,
        Self::Windows,
        Self::WindowsServer,
        Self::Bsd,
        Self::Embedded,
        Self::Cisco,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Windows => "windows",
            Self::WindowsServer => "windows_server",
            Self::Bsd => "bsd",
            Self::Embedded => "embedded",
            Self::Cisco => "cisco",
        }
    }

    /// Parse an `nmap_os` value (`windows-server` is accepted for `windows_server`).
    pub fn parse(text: &str) -> Option<Self> {
        let norm = text.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|f| f.slug() == norm)
    }

    pub fn is_windows(self) -> bool {
        matches!(self, Self::Windows | Self::WindowsServer)
    }

    /// The sysctls applied to the decky's base container (shared by its services).
    pub fn sysctls(self) -> [Sysctl; 10] {
        // ttl, syn_retries, timestamps, window_scaling, sack, ecn, no_pmtu_disc,
        // fin_timeout, icmp_ratelimit, icmp_ratemask
        let v: [&'static str; 10] = match self {
            Self::Linux => ["64", "6", "1", "1", "1", "2", "0", "60", "1000", "6168"],
            Self::Windows | Self::WindowsServer => {
                ["128", "2", "1", "1", "1", "0", "0", "30", "0", "0"]
            }
            Self::Bsd => ["64", "6", "1", "1", "1", "0", "0", "60", "250", "6168"],
            Self::Embedded => ["255", "3", "0", "0", "0", "0", "1", "15", "0", "0"],
            Self::Cisco => ["255", "2", "0", "0", "0", "0", "1", "15", "0", "0"],
        };
        [
            ("net.ipv4.ip_default_ttl", v[0]),
            ("net.ipv4.tcp_syn_retries", v[1]),
            ("net.ipv4.tcp_timestamps", v[2]),
            ("net.ipv4.tcp_window_scaling", v[3]),
            ("net.ipv4.tcp_sack", v[4]),
            ("net.ipv4.tcp_ecn", v[5]),
            ("net.ipv4.ip_no_pmtu_disc", v[6]),
            ("net.ipv4.tcp_fin_timeout", v[7]),
            ("net.ipv4.icmp_ratelimit", v[8]),
            ("net.ipv4.icmp_ratemask", v[9]),
        ]
    }
}

impl std::fmt::Display for OsFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(f: OsFamily, key: &str) -> &'static str {
        f.sysctls()
            .iter()
            .find(|(k, _)| k.ends_with(key))
            .map(|(_, v)| *v)
            .unwrap()
    }

    #[test]
    fn profiles_match_the_reference_table() {
        assert_eq!(get(OsFamily::Linux, "ip_default_ttl"), "64");
        assert_eq!(get(OsFamily::Windows, "ip_default_ttl"), "128");
        assert_eq!(get(OsFamily::Embedded, "ip_default_ttl"), "255");
        assert_eq!(get(OsFamily::Cisco, "tcp_syn_retries"), "2");
        assert_eq!(get(OsFamily::Bsd, "icmp_ratelimit"), "250");
        assert_eq!(get(OsFamily::Linux, "tcp_ecn"), "2");
    }

    #[test]
    fn modern_windows_keeps_tcp_timestamps_on() {
        assert_eq!(get(OsFamily::Windows, "tcp_timestamps"), "1");
        assert_eq!(get(OsFamily::WindowsServer, "tcp_timestamps"), "1");
    }

    #[test]
    fn parse_accepts_both_spellings() {
        assert_eq!(
            OsFamily::parse("Windows-Server"),
            Some(OsFamily::WindowsServer)
        );
        assert_eq!(OsFamily::parse("bsd"), Some(OsFamily::Bsd));
        assert_eq!(OsFamily::parse("solaris"), None);
    }
}
