//! The files the FTP root offers: a site backup, a database dump, an application config and a
//! credentials note. Contents, sizes and dates are derived from the host name, so one host
//! always shows the same files and no two hosts show the same ones; the backup is a real
//! gzip'd tar archive that extracts cleanly.

use std::sync::Arc;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

/// One bait file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaitFile {
    pub name: &'static str,
    pub bytes: Arc<[u8]>,
    pub mtime: i64,
}

/// Who the bait says the host belongs to.
#[derive(Debug, Clone)]
pub struct Identity {
    pub hostname: String,
    pub domain: String,
    pub seed: u64,
}

/// Stable per-host seed (FNV-1a): same host, same bait; different hosts differ.
pub fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn alnum(rng: &mut StdRng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A password people actually pick: a word, a year or number, a symbol.
fn human_password(rng: &mut StdRng) -> String {
    const WORDS: &[&str] = &[
        "Summer", "Winter", "Welcome", "Company", "Backup", "Admin", "Spring", "Dragon", "Monday",
        "Secure", "Falcon", "Orange",
    ];
    const SYMBOLS: &[&str] = &["!", "#", "@", "$", "!!", "*"];
    format!(
        "{}{}{}",
        WORDS.choose(rng).copied().unwrap_or("Welcome"),
        rng.random_range(2019..2026),
        SYMBOLS.choose(rng).copied().unwrap_or("!")
    )
}

const FIRST: &[&str] = &[
    "james", "mary", "robert", "linda", "michael", "sarah", "david", "karen", "daniel", "lisa",
    "thomas", "nancy", "mark", "emily", "paul", "laura", "kevin", "anna", "brian", "julia",
];
const LAST: &[&str] = &[
    "smith", "jones", "brown", "miller", "davis", "wilson", "moore", "taylor", "clark", "lewis",
    "walker", "hall", "young", "king", "wright", "green", "baker", "adams", "nelson", "hill",
];

/// The four files, newest last.
pub fn generate(id: &Identity) -> Vec<BaitFile> {
    let mut rng = StdRng::seed_from_u64(id.seed);
    // Sometime between June 2024 and mid 2025: stale files on a forgotten box.
    let base = 1_717_200_000 + rng.random_range(0..300) * 86_400;
    let db_user = format!("{}_app", short_name(&id.hostname));
    let db_pass = human_password(&mut rng);
    let db_name = format!("{}_prod", short_name(&id.hostname));
    let sql = db_dump(&mut rng, id, &db_name, base + 2 * 86_400 + 8_100);
    let ini = config_ini(&mut rng, id, &db_user, &db_pass, &db_name);
    let creds = credentials(&mut rng, id, &db_user, &db_pass);
    let tgz = backup(&mut rng, id, &ini, base + 9 * 86_400 + 7_500);
    vec![
        BaitFile {
            name: "credentials.txt",
            bytes: creds.into_bytes().into(),
            mtime: base + rng.random_range(0..86_400),
        },
        BaitFile {
            name: "config.ini",
            bytes: ini.into_bytes().into(),
            mtime: base + 86_400 + rng.random_range(0..86_400),
        },
        BaitFile {
            name: "db_dump.sql",
            bytes: sql.into_bytes().into(),
            mtime: base + 2 * 86_400 + 8_107,
        },
        BaitFile {
            name: "backup.tar.gz",
            bytes: tgz.into(),
            mtime: base + 9 * 86_400 + 7_561,
        },
    ]
}

/// `srv-web-42.corp.local` → `srv_web_42`.
fn short_name(hostname: &str) -> String {
    hostname
        .split('.')
        .next()
        .unwrap_or("app")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(16)
        .collect()
}

fn db_dump(rng: &mut StdRng, id: &Identity, db: &str, when: i64) -> String {
    let (y, mo, d, h, mi, s) = super::fs::civil(when);
    let mut out = format!(
        "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n\
         -- Host: localhost    Database: {db}\n\
         -- ------------------------------------------------------\n\
         -- Server version\t8.0.36-0ubuntu0.22.04.1\n\n\
         /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n\
         /*!50503 SET NAMES utf8mb4 */;\n\
         /*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n\
         /*!40103 SET TIME_ZONE='+00:00' */;\n\
         /*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\
         /*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n\n\
         --\n-- Table structure for table `users`\n--\n\n\
         DROP TABLE IF EXISTS `users`;\n\
         CREATE TABLE `users` (\n  `id` int unsigned NOT NULL AUTO_INCREMENT,\n  \
         `username` varchar(64) NOT NULL,\n  `email` varchar(255) NOT NULL,\n  \
         `password_hash` char(60) NOT NULL,\n  `role` enum('admin','staff','customer') NOT NULL DEFAULT 'customer',\n  \
         `created_at` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,\n  PRIMARY KEY (`id`),\n  \
         UNIQUE KEY `username` (`username`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;\n\n\
         --\n-- Dumping data for table `users`\n--\n\n\
         LOCK TABLES `users` WRITE;\n/*!40000 ALTER TABLE `users` DISABLE KEYS */;\n\
         INSERT INTO `users` VALUES "
    );
    let rows = rng.random_range(60..240);
    for i in 1..=rows {
        let first = FIRST.choose(rng).copied().unwrap_or("john");
        let last = LAST.choose(rng).copied().unwrap_or("doe");
        let role = match i {
            1 | 2 => "admin",
            _ if rng.random_range(0..10) == 0 => "staff",
            _ => "customer",
        };
        let user = if i == 1 {
            "admin".to_owned()
        } else {
            format!("{}.{last}{}", &first[..1], rng.random_range(1..99))
        };
        let email = if role == "customer" {
            format!("{first}.{last}{}@gmail.com", rng.random_range(1..999))
        } else {
            format!("{first}.{last}@{}", id.domain)
        };
        let (cy, cm, cd, ch, cmi, cs) =
            super::fs::civil(when - rng.random_range(86_400..60_000_000));
        if i > 1 {
            out.push(',');
        }
        out.push_str(&format!(
            "({i},'{user}','{email}','$2y$10${}','{role}','{cy:04}-{cm:02}-{cd:02} {ch:02}:{cmi:02}:{cs:02}')",
            alnum(rng, 53)
        ));
    }
    out.push_str(&format!(
        ";\n/*!40000 ALTER TABLE `users` ENABLE KEYS */;\nUNLOCK TABLES;\n\
         /*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n\
         -- Dump completed on {y:04}-{mo:02}-{d:02} {h:2}:{mi:02}:{s:02}\n"
    ));
    out
}

fn config_ini(rng: &mut StdRng, id: &Identity, user: &str, pass: &str, db: &str) -> String {
    format!(
        "; {host} application settings - do not commit\n\n\
         [app]\nenv = production\ndebug = false\nsecret_key = {secret}\nbase_url = https://{host}\n\n\
         [database]\nhost = 127.0.0.1\nport = 3306\nname = {db}\nuser = {user}\npassword = {pass}\n\n\
         [smtp]\nhost = mail.{domain}\nport = 587\nuser = noreply@{domain}\npassword = {smtp}\n\n\
         [aws]\naccess_key_id = AKIA{key}\nsecret_access_key = {aws}\nregion = eu-west-1\nbucket = {short}-backups\n\n\
         [ldap]\nurl = ldap://dc01.{domain}\nbind_dn = CN=svc_{short},OU=Service Accounts,DC={dc}\nbind_password = {ldap}\n",
        host = id.hostname.to_ascii_lowercase(),
        secret = hex(rng, 24),
        domain = id.domain,
        smtp = alnum(rng, 14),
        key = alnum(rng, 16).to_ascii_uppercase(),
        aws = alnum(rng, 40),
        short = short_name(&id.hostname).replace('_', "-"),
        dc = id.domain.split('.').collect::<Vec<_>>().join(",DC="),
        ldap = human_password(rng),
    )
}

fn credentials(rng: &mut StdRng, id: &Identity, db_user: &str, db_pass: &str) -> String {
    let admin = FIRST.choose(rng).copied().unwrap_or("mark");
    format!(
        "servers - keep this file private!!\n\n\
         {host} (this box)\n  root / {root}\n  deploy / {deploy}\n\n\
         mysql\n  {db_user} / {db_pass}\n  root / {dbroot}\n\n\
         vpn.{domain}\n  {admin} / {vpn}\n\n\
         router admin (192.168.{net}.1)\n  admin / {router}\n\n\
         o365 global admin\n  it-admin@{domain} / {o365}\n",
        host = id.hostname.to_ascii_lowercase(),
        root = human_password(rng),
        deploy = alnum(rng, 12),
        dbroot = human_password(rng),
        domain = id.domain,
        vpn = human_password(rng),
        net = rng.random_range(0..20),
        router = alnum(rng, 10),
        o365 = human_password(rng),
    )
}

/// A `tar czf` of a web root: the config plus the site's binary data.
fn backup(rng: &mut StdRng, id: &Identity, ini: &str, when: i64) -> Vec<u8> {
    let env = format!(
        "APP_ENV=production\nAPP_KEY=base64:{}\nDB_HOST=127.0.0.1\nDB_PASSWORD={}\nMAIL_HOST=mail.{}\n",
        alnum(rng, 43),
        human_password(rng),
        id.domain
    );
    let blob_len = rng.random_range(96 * 1024..320 * 1024);
    let mut blob = vec![0u8; blob_len];
    rng.fill(&mut blob[..]);
    let mut tar = Vec::new();
    for (path, data, dir) in [
        ("var/www/html/", &b""[..], true),
        ("var/www/html/.env", env.as_bytes(), false),
        ("var/www/html/config.ini", ini.as_bytes(), false),
        ("var/www/html/storage/", &b""[..], true),
        ("var/www/html/storage/sessions.db", &blob[..], false),
    ] {
        tar_entry(
            &mut tar,
            path,
            data,
            dir,
            when - rng.random_range(0..400_000),
        );
    }
    // End of archive, padded to GNU tar's 10240-byte record.
    tar.resize(tar.len() + 1024, 0);
    tar.resize(tar.len().div_ceil(10_240) * 10_240, 0);
    gzip_stored(&tar, when)
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = text.as_bytes();
    let start = text.len().saturating_sub(digits);
    field[..digits].copy_from_slice(&text[start..]);
    field[digits] = 0;
}

fn tar_entry(out: &mut Vec<u8>, path: &str, data: &[u8], dir: bool, mtime: i64) {
    let mut h = [0u8; 512];
    let name = path.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], if dir { 0o755 } else { 0o640 });
    octal(&mut h[108..116], 33);
    octal(&mut h[116..124], 33);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], u64::try_from(mtime).unwrap_or(0));
    h[148..156].fill(b' ');
    h[156] = if dir { b'5' } else { b'0' };
    h[257..265].copy_from_slice(b"ustar  \0");
    h[265..273].copy_from_slice(b"www-data");
    h[297..305].copy_from_slice(b"www-data");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

/// Gzip with stored deflate blocks: valid for every tool, and honest about the incompressible
/// payload that makes up most of the archive.
fn gzip_stored(data: &[u8], mtime: i64) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0];
    out.extend_from_slice(&u32::try_from(mtime).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&[0, 3]);
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(host: &str) -> Identity {
        Identity {
            hostname: host.into(),
            domain: "corp.local".into(),
            seed: seed_of(host),
        }
    }

    #[test]
    fn per_host_and_stable() {
        let a = generate(&id("files01"));
        assert_eq!(a, generate(&id("files01")));
        let b = generate(&id("files02"));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.name, y.name);
            assert_ne!(x.bytes, y.bytes);
        }
        let names: Vec<_> = a.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "credentials.txt",
                "config.ini",
                "db_dump.sql",
                "backup.tar.gz"
            ]
        );
    }

    #[test]
    fn crc_and_gzip_framing() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let gz = gzip_stored(b"hello", 0);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(&gz[10..15], &[1, 5, 0, 0xfa, 0xff]);
        assert_eq!(&gz[15..20], b"hello");
    }
}
