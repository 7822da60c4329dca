//! The fake filesystem a shell session browses: generated per host from its persona (distro,
//! hostname, kernel) so two hosts never look identical, with bait worth stealing. Writes go to
//! a bounded in-memory overlay that lives as long as the session.

use std::{collections::BTreeMap, sync::Arc};

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::memory::{self, Held, MemoryPool};

/// Bytes an attacker may write into one session's overlay.
pub const MAX_OVERLAY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    /// Shared, so listing a directory, opening a file for reading or stat-ing one copies a
    /// pointer, not the (up to 4 MiB) content.
    File {
        content: Arc<[u8]>,
        mode: u32,
    },
}

/// Everything a host persona needs to build its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    pub distro: String,
    pub kernel: String,
    pub ip: String,
}

impl HostInfo {
    /// `PRETTY_NAME` of /etc/os-release for the distro persona.
    pub fn pretty_name(&self) -> &'static str {
        match self.distro.as_str() {
            "ubuntu22" => "Ubuntu 22.04.5 LTS",
            "ubuntu20" => "Ubuntu 20.04.6 LTS",
            "rocky9" => "Rocky Linux 9.4 (Blue Onyx)",
            "centos7" => "CentOS Linux 7 (Core)",
            "alpine" => "Alpine Linux v3.19",
            "fedora" => "Fedora Linux 39 (Server Edition)",
            "kali" => "Kali GNU/Linux Rolling",
            "arch" => "Arch Linux",
            _ => "Debian GNU/Linux 12 (bookworm)",
        }
    }

    /// The `#…` version part of `uname -v` for the distro's stock kernel.
    pub fn uname_version(&self) -> &'static str {
        match self.distro.as_str() {
            "ubuntu22" => "#135-Ubuntu SMP Fri Sep 27 13:53:58 UTC 2024",
            "ubuntu20" => "#220-Ubuntu SMP Fri Sep 27 13:19:16 UTC 2024",
            "rocky9" | "centos7" | "fedora" => {
                "#1 SMP PREEMPT_DYNAMIC Mon Oct 21 14:00:00 UTC 2024"
            }
            "alpine" => "#1-Alpine SMP PREEMPT_DYNAMIC 2024-10-28 08:31:45",
            "kali" => "#1 SMP PREEMPT_DYNAMIC Kali 6.11.2-1kali1 (2024-10-15)",
            "arch" => "#1 SMP PREEMPT_DYNAMIC Fri, 22 Nov 2024 16:04:27 +0000",
            _ => "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)",
        }
    }

    /// Alpine ships busybox `ash`; everything else here logs into bash.
    pub fn is_busybox(&self) -> bool {
        self.distro == "alpine"
    }

    fn os_release(&self) -> String {
        let (id, version) = match self.distro.as_str() {
            "ubuntu22" => ("ubuntu", "22.04"),
            "ubuntu20" => ("ubuntu", "20.04"),
            "rocky9" => ("rocky", "9.4"),
            "centos7" => ("centos", "7"),
            "alpine" => ("alpine", "3.19.4"),
            "fedora" => ("fedora", "39"),
            "kali" => ("kali", "2024.4"),
            "arch" => ("arch", ""),
            _ => ("debian", "12"),
        };
        format!(
            "PRETTY_NAME=\"{}\"\nNAME=\"{}\"\nVERSION_ID=\"{version}\"\nID={id}\n",
            self.pretty_name(),
            self.pretty_name().split(' ').next().unwrap_or("Linux")
        )
    }

    fn seed(&self) -> u64 {
        self.hostname.bytes().fold(0x8422_2325_cbf2_9ce4, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }
}

/// A path-keyed tree (absolute, normalised paths).
#[derive(Debug)]
pub struct FakeFs {
    nodes: BTreeMap<String, Node>,
    /// The overlay's bytes (files written, directories' names, ever), held from the process's
    /// memory pool (`crate::memory`): a few shells filling their 4 MiB overlays would
    /// otherwise outgrow a decky's container.
    held: Held,
}

/// Normalise `path` relative to `cwd` (handles `.`, `..`, `~` as /root or the home given).
pub fn resolve(cwd: &str, home: &str, path: &str) -> String {
    let joined = if let Some(rest) = path.strip_prefix('~') {
        format!("{home}{rest}")
    } else if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn alnum(rng: &mut StdRng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

impl FakeFs {
    pub fn for_host(host: &HostInfo) -> Self {
        Self::for_host_in(host, memory::process_pool())
    }

    /// [`Self::for_host`] with the overlay drawing on `pool`.
    pub fn for_host_in(host: &HostInfo, pool: &'static MemoryPool) -> Self {
        let mut rng = StdRng::seed_from_u64(host.seed());
        let mut fs = Self {
            nodes: BTreeMap::new(),
            held: pool.hold(),
        };
        for dir in [
            "/",
            "/bin",
            "/boot",
            "/dev",
            "/etc",
            "/home",
            "/lib",
            "/media",
            "/mnt",
            "/opt",
            "/proc",
            "/root",
            "/run",
            "/sbin",
            "/srv",
            "/sys",
            "/tmp",
            "/usr",
            "/usr/bin",
            "/usr/local",
            "/var",
            "/var/log",
            "/var/www",
            "/var/www/html",
            "/var/backups",
            "/root/.ssh",
            "/root/.aws",
            "/etc/ssh",
        ] {
            fs.nodes.insert(dir.to_owned(), Node::Dir);
        }
        let admin = ["deploy", "backup", "devops", "sysadmin", "jenkins"][rng.random_range(0..5)];
        fs.nodes.insert(format!("/home/{admin}"), Node::Dir);
        let db_pass = format!("{}{}!", alnum(&mut rng, 8), rng.random_range(10..99));
        let domain = host
            .hostname
            .split_once('.')
            .map_or("corp.local", |(_, d)| d)
            .to_owned();
        let files: Vec<(String, String, u32)> = vec![
            (
                "/etc/hostname".into(),
                format!("{}\n", host.hostname),
                0o644,
            ),
            ("/etc/os-release".into(), host.os_release(), 0o644),
            (
                "/etc/passwd".into(),
                format!(
                    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\nmysql:x:106:112:MySQL Server,,,:/nonexistent:/bin/false\n{admin}:x:1000:1000:{admin},,,:/home/{admin}:/bin/bash\n"
                ),
                0o644,
            ),
            (
                "/etc/shadow".into(),
                format!(
                    "root:$y$j9T${}$:19700:0:99999:7:::\n{admin}:$y$j9T${}$:19712:0:99999:7:::\n",
                    alnum(&mut rng, 22),
                    alnum(&mut rng, 22)
                ),
                0o640,
            ),
            (
                "/etc/issue".into(),
                format!("{} \\n \\l\n\n", host.pretty_name()),
                0o644,
            ),
            (
                "/etc/resolv.conf".into(),
                format!("search {domain}\nnameserver 10.0.0.2\n"),
                0o644,
            ),
            (
                "/root/.bash_history".into(),
                format!(
                    "cd /var/www/html\nvim config.php\nmysql -u root -p\nsystemctl restart apache2\nscp backup.sql {admin}@10.0.0.12:/backups/\ncat /root/.aws/credentials\nexit\n"
                ),
                0o600,
            ),
            (
                "/root/.aws/credentials".into(),
                format!(
                    "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\nregion = eu-west-1\n",
                    alnum(&mut rng, 16).to_uppercase(),
                    alnum(&mut rng, 40)
                ),
                0o600,
            ),
            (
                "/root/.ssh/authorized_keys".into(),
                format!(
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} {admin}@workstation\n",
                    alnum(&mut rng, 43)
                ),
                0o600,
            ),
            (
                "/var/www/html/index.html".into(),
                "<html><body><h1>It works!</h1></body></html>\n".into(),
                0o644,
            ),
            (
                "/var/www/html/config.php".into(),
                format!(
                    "<?php\ndefine('DB_HOST', 'db.{domain}');\ndefine('DB_USER', 'webapp');\ndefine('DB_PASSWORD', '{db_pass}');\ndefine('DB_NAME', 'production');\n"
                ),
                0o640,
            ),
            (
                format!("/home/{admin}/notes.txt"),
                format!(
                    "vpn: vpn.{domain} user {admin} / {}\nrotate db password after migration\n",
                    alnum(&mut rng, 10)
                ),
                0o600,
            ),
            (
                "/var/backups/db_backup.sql".into(),
                format!(
                    "-- MySQL dump 10.13  Distrib 8.0.36\n-- Host: localhost    Database: production\nINSERT INTO users VALUES (1,'admin','admin@{domain}','$2y$10${}');\n",
                    alnum(&mut rng, 53)
                ),
                0o640,
            ),
            ("/var/log/auth.log".into(), String::new(), 0o640),
        ];
        for (path, content, mode) in files {
            fs.nodes.insert(
                path,
                Node::File {
                    content: content.into_bytes().into(),
                    mode,
                },
            );
        }
        fs
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.nodes.get(path), Some(Node::Dir))
    }

    /// Direct children of a directory, sorted, with their nodes.
    pub fn children(&self, dir: &str) -> Vec<(&str, &Node)> {
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, v)| (&k[prefix.len()..], v))
            .collect()
    }

    /// Write a file into the overlay; `false` when the parent is missing or the budget is spent.
    pub fn write(&mut self, path: &str, content: Vec<u8>, append: bool) -> bool {
        let parent = path
            .rsplit_once('/')
            .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
        if !self.is_dir(parent) || self.is_dir(path) || !name_fits(path) {
            return false;
        }
        let new = match self.nodes.get(path) {
            Some(Node::File { content: old, .. }) if append => [old, content.as_slice()].concat(),
            _ => content,
        };
        if self.held.bytes() + new.len() > MAX_OVERLAY_BYTES || !self.held.try_grow(new.len()) {
            return false;
        }
        self.nodes.insert(
            path.to_owned(),
            Node::File {
                content: new.into(),
                mode: 0o644,
            },
        );
        true
    }

    pub fn mkdir(&mut self, path: &str) -> bool {
        let parent = path
            .rsplit_once('/')
            .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
        if !self.is_dir(parent)
            || self.nodes.contains_key(path)
            || self.nodes.len() > 10_000
            || !name_fits(path)
            || self.held.bytes() + path.len() > MAX_OVERLAY_BYTES
            || !self.held.try_grow(path.len())
        {
            return false;
        }
        // Names count against the overlay too (held above): 10,000 directories of 4 KiB paths
        // each would otherwise hold 40 MiB.
        self.nodes.insert(path.to_owned(), Node::Dir);
        true
    }

    pub fn remove(&mut self, path: &str) -> bool {
        if self.is_dir(path) && !self.children(path).is_empty() {
            return false;
        }
        self.nodes.remove(path).is_some()
    }
}

/// Linux's `PATH_MAX` (4096) and `NAME_MAX` (255): a longer path cannot be created, so the
/// working directory (in every prompt and `command` event) stays short.
fn name_fits(path: &str) -> bool {
    path.len() < 4096 && path.split('/').all(|name| name.len() <= 255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_draws_on_the_memory_pool() {
        let pool: &'static MemoryPool = Box::leak(Box::new(MemoryPool::new(1000)));
        let mut a = FakeFs::for_host_in(&host("web1"), pool);
        assert!(a.write("/tmp/a", vec![1; 600], false));
        let mut b = FakeFs::for_host_in(&host("web2"), pool);
        assert!(
            !b.write("/tmp/b", vec![2; 600], false),
            "the pool has 400 left"
        );
        assert!(b.write("/tmp/b", vec![2; 300], false));
        assert!(!b.mkdir(&format!("/tmp/{}", "d".repeat(120))), "100 left");
        drop(a);
        assert!(b.write("/tmp/c", vec![3; 600], false));
    }

    #[test]
    fn names_past_linux_limits_cannot_be_created() {
        let mut fs = FakeFs::for_host(&host("web1"));
        let long = "a".repeat(256);
        assert!(!fs.mkdir(&format!("/tmp/{long}")));
        assert!(!fs.write(&format!("/tmp/{long}"), b"x".to_vec(), false));
        let name = "a".repeat(255);
        let mut path = "/tmp".to_owned();
        while path.len() + 256 < 4096 {
            path = format!("{path}/{name}");
            assert!(fs.mkdir(&path), "{}", path.len());
        }
        assert!(!fs.mkdir(&format!("{path}/{name}")), "past PATH_MAX");
    }

    fn host(name: &str) -> HostInfo {
        HostInfo {
            hostname: name.into(),
            distro: "debian".into(),
            kernel: "6.1.0-27-amd64".into(),
            ip: "10.0.0.5".into(),
        }
    }

    #[test]
    fn paths_resolve() {
        assert_eq!(resolve("/root", "/root", "../etc/./passwd"), "/etc/passwd");
        assert_eq!(resolve("/tmp", "/root", "~/.ssh"), "/root/.ssh");
        assert_eq!(resolve("/", "/root", "../../.."), "/");
    }

    #[test]
    fn per_host_bait_and_overlay() {
        let mut a = FakeFs::for_host(&host("web01"));
        let b = FakeFs::for_host(&host("web02"));
        assert_ne!(
            a.get("/root/.aws/credentials"),
            b.get("/root/.aws/credentials")
        );
        assert!(
            a.children("/root")
                .iter()
                .any(|(n, _)| *n == ".bash_history")
        );
        assert!(a.write("/tmp/x.sh", b"echo hi".to_vec(), false));
        assert!(!a.write("/nope/x", b"y".to_vec(), false));
        assert!(!a.write("/tmp/big", vec![0; MAX_OVERLAY_BYTES + 1], false));
        assert!(a.mkdir("/tmp/d") && !a.mkdir("/tmp/d"));
        assert!(a.remove("/tmp/x.sh"));
    }
}
