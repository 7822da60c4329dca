//! The persona a service container was started with: who it is and what it claims to be.
//! Everything comes from the environment the fleet composer sets (see the fleet catalogue's
//! persona keys); missing values fall back to per-service defaults.

use std::collections::BTreeMap;

/// Products whose stock version depends on the distro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stock {
    /// The `Server` header of Apache httpd.
    ApacheServerHeader,
    /// vsftpd's version number.
    Vsftpd,
}

/// Environment-derived persona settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persona {
    vars: BTreeMap<String, String>,
}

impl Persona {
    /// Read the process environment.
    pub fn from_env() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// A persona from explicit pairs (tests, tools).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A variable, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The host (decky) name events are attributed to.
    pub fn node_name(&self) -> &str {
        self.get_or("NODE_NAME", "localhost")
    }

    /// The hostname the service presents.
    pub fn hostname(&self) -> &str {
        self.get("HOSTNAME").unwrap_or_else(|| self.node_name())
    }

    pub fn distro(&self) -> &str {
        self.get_or("DISTRO", "debian")
    }

    /// The OS family the host impersonates (`linux`, `windows`, `windows_server`, …).
    pub fn os_family(&self) -> &str {
        self.get_or("OS_FAMILY", "linux")
    }

    /// The distro's own build of a product: version strings a stock install of the persona's
    /// distro reports, so banners agree with the claimed OS.
    pub fn stock_version(&self, product: Stock) -> &'static str {
        let distro = self.distro();
        match product {
            Stock::ApacheServerHeader => match distro {
                "ubuntu22" => "Apache/2.4.52 (Ubuntu)",
                "ubuntu20" => "Apache/2.4.41 (Ubuntu)",
                "rocky9" => "Apache/2.4.57 (Rocky Linux)",
                "centos7" => "Apache/2.4.6 (CentOS)",
                "fedora" => "Apache/2.4.58 (Fedora Linux)",
                "alpine" | "arch" => "Apache/2.4.62 (Unix)",
                _ => "Apache/2.4.62 (Debian)",
            },
            Stock::Vsftpd => match distro {
                "ubuntu22" | "rocky9" | "fedora" | "alpine" | "arch" => "3.0.5",
                "centos7" => "3.0.2",
                _ => "3.0.3",
            },
        }
    }

    /// `user:password` pairs from a credentials variable (`a:b, c:d`).
    pub fn credentials(&self, key: &str) -> Vec<(String, String)> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .filter_map(|pair| pair.trim().split_once(':'))
                    .map(|(u, p)| (u.to_owned(), p.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A boolean variable (`true/yes/on/1` or `false/no/off/0`), else `default`.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            _ => default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_defaults() {
        let p = Persona::from_pairs(&[
            ("NODE_NAME", "mx01"),
            ("IMAP_USERS", "admin:admin123, root:toor,bad"),
            ("X", ""),
            ("F", "off"),
        ]);
        assert_eq!(p.node_name(), "mx01");
        assert_eq!(p.hostname(), "mx01");
        assert_eq!(p.get("X"), None);
        assert_eq!(p.credentials("IMAP_USERS").len(), 2);
        assert!(!p.flag("F", true));
        assert!(p.flag("MISSING", true));
        assert_eq!(p.stock_version(Stock::Vsftpd), "3.0.3");
        let ubuntu = Persona::from_pairs(&[("DISTRO", "ubuntu22")]);
        assert_eq!(
            ubuntu.stock_version(Stock::ApacheServerHeader),
            "Apache/2.4.52 (Ubuntu)"
        );
        assert_eq!(ubuntu.stock_version(Stock::Vsftpd), "3.0.5");
    }
}
