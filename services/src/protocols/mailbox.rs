//! Bait mailboxes shared by pop3 and imap: a few weeks of plausible corporate mail with
//! credentials worth stealing, generated per host.
//!
//! Everything (company domain, people, secrets, message ids, UIDs) derives from the host
//! name, so one host always shows the same mail while two hosts never show the same bait;
//! dates are relative to when the service started, so the mail never looks stale.

use rand::{Rng, SeedableRng, rngs::StdRng};

use std::time::Duration;

use crate::persona::Persona;

/// Dovecot's `auth_failure_delay`: a failed login is answered after this pause.
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(2);

/// Mail accounts from `key` (`user:password` pairs), or the original's default set.
pub fn mail_users(p: &Persona, key: &str) -> Vec<(String, String)> {
    let users = p.credentials(key);
    if users.is_empty() {
        Persona::from_pairs(&[("U", "admin:admin123,root:toor,mail:mail,user:user")])
            .credentials("U")
    } else {
        users
    }
}

/// One mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub name: String,
    pub local: String,
    pub host: String,
}

impl Addr {
    fn new(name: &str, local: &str, host: &str) -> Self {
        Self {
            name: name.to_owned(),
            local: local.to_owned(),
            host: host.to_owned(),
        }
    }

    pub fn email(&self) -> String {
        format!("{}@{}", self.local, self.host)
    }

    fn header(&self) -> String {
        if self.name.is_empty() {
            self.email()
        } else {
            format!("{} <{}>", self.name, self.email())
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub uid: u32,
    pub subject: String,
    pub from: Addr,
    pub to: Addr,
    /// Unix seconds.
    pub date: i64,
    pub message_id: String,
    pub seen: bool,
    /// The whole RFC 5322 message, CRLF line ends.
    pub raw: String,
    /// Bytes of the header block, including the empty line that ends it.
    pub header_len: usize,
}

impl Mail {
    pub fn header(&self) -> &str {
        self.raw.get(..self.header_len).unwrap_or(&self.raw)
    }

    pub fn body(&self) -> &str {
        self.raw.get(self.header_len..).unwrap_or("")
    }

    pub fn size(&self) -> usize {
        self.raw.len()
    }

    /// The first value of header `name` (case-insensitive), unfolded.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.header().split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn body_lines(&self) -> usize {
        self.body().matches("\r\n").count()
    }
}

/// A folder and its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub name: &'static str,
    pub special_use: Option<&'static str>,
    pub uidvalidity: u32,
    pub mails: Vec<Mail>,
}

impl Folder {
    pub fn uidnext(&self) -> u32 {
        self.mails.last().map_or(1, |m| m.uid + 1)
    }

    pub fn unseen(&self) -> usize {
        self.mails.iter().filter(|m| !m.seen).count()
    }
}

/// Every folder of the host's one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailStore {
    pub domain: String,
    /// The host's time zone, minutes east of UTC.
    pub tz: i64,
    pub owner: Addr,
    pub folders: Vec<Folder>,
}

impl MailStore {
    pub fn folder(&self, name: &str) -> Option<&Folder> {
        // INBOX is case-insensitive (RFC 3501 §5.1); other names are not.
        self.folders
            .iter()
            .find(|f| f.name == name || (f.name == "INBOX" && name.eq_ignore_ascii_case("INBOX")))
    }

    pub fn inbox(&self) -> &Folder {
        // Always built with INBOX first.
        &self.folders[0]
    }
}

/// Stable per-host seed (FNV-1a).
pub fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

const FIRST: &[&str] = &[
    "James", "Maria", "David", "Sarah", "Michael", "Laura", "Daniel", "Emma", "Thomas", "Anna",
    "Robert", "Julia", "Peter", "Sophie", "Mark", "Claire", "Paul", "Nina", "Steven", "Helen",
];
const LAST: &[&str] = &[
    "Miller", "Schmidt", "Walker", "Fischer", "Turner", "Bauer", "Collins", "Weber", "Harris",
    "Novak", "Parker", "Keller", "Bennett", "Hoffmann", "Wright", "Lang", "Hughes", "Brandt",
    "Foster", "Richter",
];
const STEMS: &[&str] = &[
    "northwind",
    "bluepeak",
    "ardent",
    "corvalis",
    "meridian",
    "halcyon",
    "stonebridge",
    "kestrel",
    "veritas",
    "ironwood",
    "lakeshore",
    "brightline",
    "copperfield",
    "redwood",
    "silverline",
    "eastgate",
];
const SUFFIXES: &[&str] = &["", "-group", "-logistics", "-tech", "-partners", "-systems"];
const TLDS: &[&str] = &["com", "net", "io", "eu"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: &[&str] = &["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn chars(rng: &mut StdRng, set: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(set[rng.random_range(0..set.len())]))
        .collect()
}

fn upper_alnum(rng: &mut StdRng, len: usize) -> String {
    chars(rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", len)
}

fn mixed(rng: &mut StdRng, len: usize) -> String {
    chars(
        rng,
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
        len,
    )
}

/// A password a person would pick: a word, digits and a symbol.
fn human_password(rng: &mut StdRng) -> String {
    const WORDS: &[&str] = &[
        "Summer", "Winter", "Autumn", "Spring", "Welcome", "Company", "Dragon", "Monday",
        "Sunshine", "Falcon", "Harbor", "Rocket",
    ];
    const SYMBOLS: &[&str] = &["!", "#", "$", "?", "@", "!!"];
    format!(
        "{}{}{}",
        pick(rng, WORDS),
        rng.random_range(2019..2026),
        pick(rng, SYMBOLS)
    )
}

/// Civil date of a day count since 1970-01-01, month as a 0-based index.
fn civil(days: i64) -> (i64, usize, i64) {
    let (year, month, day) = decnet_store::rfc5424::civil_from_days(days);
    (year, usize::try_from(month - 1).unwrap_or(0), day)
}

/// A time zone offset in minutes, as `+hhmm`.
fn zone(offset_min: i64) -> String {
    let sign = if offset_min < 0 { '-' } else { '+' };
    let m = offset_min.abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

fn split_time(secs: i64, offset_min: i64) -> (i64, usize, i64, i64, i64, i64, usize) {
    let local = secs + offset_min * 60;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let wd = usize::try_from(days.rem_euclid(7)).unwrap_or(0);
    (y, mo, d, rem / 3600, rem / 60 % 60, rem % 60, wd)
}

/// RFC 5322 date: `Tue, 14 May 2024 09:12:44 +0200`.
pub fn rfc5322_date(secs: i64, offset_min: i64) -> String {
    let (y, mo, d, h, mi, s, wd) = split_time(secs, offset_min);
    format!(
        "{}, {d} {} {y} {h:02}:{mi:02}:{s:02} {}",
        DAYS[wd],
        MONTHS[mo],
        zone(offset_min)
    )
}

/// IMAP date-time: `14-May-2024 09:12:44 +0200`.
pub fn imap_date(secs: i64, offset_min: i64) -> String {
    let (y, mo, d, h, mi, s, _) = split_time(secs, offset_min);
    format!(
        "{d:02}-{}-{y} {h:02}:{mi:02}:{s:02} {}",
        MONTHS[mo],
        zone(offset_min)
    )
}

/// What a mail says, before headers are added.
struct Draft {
    from: Addr,
    to: Addr,
    subject: String,
    body: String,
    days_ago: i64,
}

/// The people and secrets of one host, drawn once so every mail agrees with the others.
struct World {
    rng: StdRng,
    domain: String,
    owner: Addr,
    colleague: Addr,
    dba: Addr,
    it: Addr,
    netops: Addr,
    hr: Addr,
}

fn person(rng: &mut StdRng, domain: &str) -> Addr {
    let (first, last) = (pick(rng, FIRST), pick(rng, LAST));
    Addr::new(
        &format!("{first} {last}"),
        &format!("{}.{}", first.to_lowercase(), last.to_lowercase()),
        domain,
    )
}

fn domain_of(hostname: &str, rng: &mut StdRng) -> String {
    let rest: Vec<&str> = hostname.split('.').skip(1).collect();
    if rest.len() >= 2 || rest.first().is_some_and(|r| *r == "local" || *r == "lan") {
        return rest.join(".").to_ascii_lowercase();
    }
    format!(
        "{}{}.{}",
        pick(rng, STEMS),
        pick(rng, SUFFIXES),
        pick(rng, TLDS)
    )
}

impl World {
    fn new(hostname: &str) -> Self {
        let mut rng = StdRng::seed_from_u64(seed_of(hostname) ^ 0x6d61_696c);
        let domain = domain_of(hostname, &mut rng);
        let owner = person(&mut rng, &domain);
        let mut colleague = person(&mut rng, &domain);
        if colleague.local == owner.local {
            colleague.local.push('2');
        }
        let dba = person(&mut rng, &domain);
        Self {
            it: Addr::new("IT Service Desk", "servicedesk", &domain),
            netops: Addr::new("Network Operations", "netops", &domain),
            hr: Addr::new("HR Department", "hr", &domain),
            rng,
            domain,
            owner,
            colleague,
            dba,
        }
    }

    fn first_name(a: &Addr) -> String {
        a.name.split(' ').next().unwrap_or_default().to_owned()
    }

    fn inbox(&mut self) -> Vec<Draft> {
        let d = self.domain.clone();
        let me = self.owner.clone();
        let hi = Self::first_name(&me);
        let rng = &mut self.rng;
        let temp_pw = format!("Tmp-{}{}", mixed(rng, 6), rng.random_range(10..99));
        let vpn_pw = human_password(rng);
        let akia = format!("AKIA{}", upper_alnum(rng, 16));
        let aws_secret = chars(
            rng,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        );
        let db_pw = format!("{}!{}", mixed(rng, 10), rng.random_range(100..999));
        let invoice = rng.random_range(10_000..99_999);
        let amount = format!(
            "{}.{:02}",
            rng.random_range(1_200..48_000),
            rng.random_range(0..100)
        );
        let iban = format!(
            "DE{:02} {:04} {:04} {:04} {:04} {:02}",
            rng.random_range(10..99),
            rng.random_range(1000..9999),
            rng.random_range(1000..9999),
            rng.random_range(1000..9999),
            rng.random_range(1000..9999),
            rng.random_range(10..99)
        );
        let zip_pw = human_password(rng);
        let glpat = format!("glpat-{}", mixed(rng, 20));
        let wifi_pw = format!(
            "{}{}",
            pick(rng, &["Guest", "Visitor", "Lobby"]),
            rng.random_range(1000..9999)
        );
        let nas_pw = human_password(rng);
        let svc_pw = format!("{}#{}", mixed(rng, 12), rng.random_range(10..99));
        let db_host = format!("db{:02}", rng.random_range(1..9));
        let colleague = self.colleague.clone();
        let dba = self.dba.clone();
        let (it, netops, hr) = (self.it.clone(), self.netops.clone(), self.hr.clone());
        let vendor = Addr::new(
            "Accounts Receivable",
            "billing",
            &format!("{}-supplies.com", pick(rng, STEMS)),
        );
        let gitlab = Addr::new("GitLab", "gitlab", &d);
        let user = me.local.clone();
        vec![
            Draft {
                from: hr.clone(),
                to: me.clone(),
                subject: "Updated remote work policy".into(),
                body: format!(
                    "Dear colleagues,\r\n\r\nplease find the updated remote work policy on the intranet:\r\nhttps://intranet.{d}/hr/policies/remote-work\r\n\r\nAll staff working remotely must connect through the company VPN.\r\n\r\nKind regards,\r\nHR Department\r\n"
                ),
                days_ago: 41,
            },
            Draft {
                from: netops,
                to: me.clone(),
                subject: "VPN access for remote work".into(),
                body: format!(
                    "Hi {hi},\r\n\r\nyour VPN account is active.\r\n\r\n  Gateway:  vpn.{d} (port 443)\r\n  Username: {user}\r\n  Password: {vpn_pw}\r\n  Group:    Employees\r\n\r\nThe client profile can be downloaded from https://vpn.{d}/profile.ovpn\r\nPlease change the password after the first login.\r\n\r\nNetwork Operations\r\n"
                ),
                days_ago: 36,
            },
            Draft {
                from: vendor,
                to: me.clone(),
                subject: format!("Invoice INV-{invoice} - payment overdue"),
                body: format!(
                    "Hello,\r\n\r\nour invoice INV-{invoice} over EUR {amount} is now 14 days overdue.\r\nPlease transfer the amount to:\r\n\r\n  IBAN: {iban}\r\n  Reference: INV-{invoice}\r\n\r\nIf you have already paid, please ignore this message.\r\n\r\nAccounts Receivable\r\n"
                ),
                days_ago: 29,
            },
            Draft {
                from: colleague.clone(),
                to: me.clone(),
                subject: "AWS keys for the backup bucket".into(),
                body: format!(
                    "Hey {hi},\r\n\r\nhere are the keys for the nightly backup job, the old ones are revoked:\r\n\r\n  aws_access_key_id     = {akia}\r\n  aws_secret_access_key = {aws_secret}\r\n  region                = eu-central-1\r\n  bucket                = s3://{}-backups\r\n\r\nDon't commit them to the repo this time ;)\r\n\r\n{}\r\n",
                    d.split('.').next().unwrap_or("corp"),
                    Self::first_name(&colleague)
                ),
                days_ago: 23,
            },
            Draft {
                from: hr,
                to: me.clone(),
                subject: "Payroll export".into(),
                body: format!(
                    "Hi {hi},\r\n\r\nthe payroll export is on \\\\fs01\\hr$\\payroll\\export.zip\r\nThe archive password is {zip_pw}\r\n\r\nThanks,\r\nHR Department\r\n"
                ),
                days_ago: 18,
            },
            Draft {
                from: dba.clone(),
                to: me.clone(),
                subject: "DB migration notes (prod cutover Saturday)".into(),
                body: format!(
                    "Hi all,\r\n\r\nnotes for Saturday's cutover:\r\n\r\n1. stop the app servers (app01, app02)\r\n2. final dump from the old host\r\n3. restore on {db_host}.{d}:5432, database \"erp_prod\"\r\n4. switch the connection string:\r\n   postgresql://erp_app:{db_pw}@{db_host}.{d}:5432/erp_prod\r\n5. smoke tests, then start the app servers\r\n\r\nRollback: point the apps back to the old host, nothing is deleted there.\r\n\r\n{}\r\n",
                    Self::first_name(&dba)
                ),
                days_ago: 12,
            },
            Draft {
                from: gitlab,
                to: me.clone(),
                subject: "A new deploy token was created".into(),
                body: format!(
                    "Hi {hi},\r\n\r\na deploy token was created for infrastructure/ansible:\r\n\r\n  Name:  ci-deploy\r\n  Token: {glpat}\r\n  Scope: read_repository, read_registry\r\n\r\nYou can manage tokens at https://gitlab.{d}/infrastructure/ansible/-/settings/repository\r\n"
                ),
                days_ago: 8,
            },
            Draft {
                from: it.clone(),
                to: me.clone(),
                subject: "Guest Wi-Fi password this month".into(),
                body: format!(
                    "Hello,\r\n\r\nthe guest Wi-Fi password has changed.\r\n\r\n  SSID:     {}-Guest\r\n  Password: {wifi_pw}\r\n\r\nIT Service Desk\r\n",
                    d.split('.').next().unwrap_or("Corp")
                ),
                days_ago: 5,
            },
            Draft {
                from: colleague.clone(),
                to: me.clone(),
                subject: "Re: admin access to the NAS".into(),
                body: format!(
                    "Sure, use the admin account until your own is set up:\r\n\r\n  https://nas01.{d}:5001\r\n  admin / {nas_pw}\r\n\r\nThe service account for the backups is svc_backup / {svc_pw}\r\n\r\n> Could you give me access to the NAS? I need the old project shares.\r\n"
                ),
                days_ago: 2,
            },
            Draft {
                from: it,
                to: me,
                subject: "Your password has been reset".into(),
                body: format!(
                    "Hello {hi},\r\n\r\nas requested, your network password has been reset.\r\n\r\n  Username:           {user}\r\n  Temporary password: {temp_pw}\r\n\r\nYou will be asked to choose a new password at https://sso.{d}/\r\nIf you did not request this, contact the service desk on extension 4400.\r\n\r\nIT Service Desk\r\n"
                ),
                days_ago: 0,
            },
        ]
    }

    fn sent(&mut self) -> Vec<Draft> {
        let d = self.domain.clone();
        let door = self.rng.random_range(1000..9999);
        vec![
            Draft {
                from: self.owner.clone(),
                to: self.colleague.clone(),
                subject: "Re: VPN access for remote work".into(),
                body: "Works now, thanks! The profile had the wrong port at first.\r\n".into(),
                days_ago: 35,
            },
            Draft {
                from: self.owner.clone(),
                to: Addr::new("", "facilities", &d),
                subject: "Server room door code".into(),
                body: format!(
                    "Hi,\r\n\r\nthe contractor needs access on Thursday. The door code for the server room is {door}#.\r\nPlease change it afterwards.\r\n\r\nThanks\r\n"
                ),
                days_ago: 9,
            },
        ]
    }

    fn drafts(&mut self) -> Vec<Draft> {
        let rng = &mut self.rng;
        let (a, b, c) = (human_password(rng), human_password(rng), mixed(rng, 14));
        vec![Draft {
            from: self.owner.clone(),
            to: self.owner.clone(),
            subject: "notes".into(),
            body: format!(
                "firewall web ui: admin / {a}\r\nprinter: admin / {b}\r\nwiki root: {c}\r\n"
            ),
            days_ago: 15,
        }]
    }

    fn archive(&mut self) -> Vec<Draft> {
        let d = self.domain.clone();
        let root_pw = human_password(&mut self.rng);
        vec![
            Draft {
                from: self.dba.clone(),
                to: self.owner.clone(),
                subject: "Root password for the legacy ERP server".into(),
                body: format!(
                    "erp-old.{d} still runs, root / {root_pw}\r\nWe decommission it next quarter.\r\n"
                ),
                days_ago: 120,
            },
            Draft {
                from: self.hr.clone(),
                to: self.owner.clone(),
                subject: "Welcome aboard!".into(),
                body: "Welcome to the team! Your onboarding plan is attached to your calendar invite.\r\n"
                    .into(),
                days_ago: 300,
            },
        ]
    }
}

fn build_folder(
    name: &'static str,
    special_use: Option<&'static str>,
    drafts: Vec<Draft>,
    rng: &mut StdRng,
    now: i64,
    tz: i64,
    domain: &str,
) -> Folder {
    let uidvalidity = u32::try_from(now - 86_400 * rng.random_range(400..900)).unwrap_or(1);
    let mut uid = rng.random_range(1..40u32);
    let count = drafts.len();
    let mails = drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            uid += rng.random_range(1..4);
            // Office hours, a few minutes apart at random.
            let date = (now - d.days_ago * 86_400).div_euclid(86_400) * 86_400
                + rng.random_range(7 * 3600..18 * 3600)
                - tz * 60;
            let date = date.min(now - 60);
            let (y, mo, day, h, mi, s, _) = split_time(date, 0);
            let message_id = format!(
                "<{y}{:02}{day:02}{h:02}{mi:02}{s:02}.{}@mail.{domain}>",
                mo + 1,
                upper_alnum(rng, 10)
            );
            let header = format!(
                "Return-Path: <{}>\r\nDelivered-To: {}\r\nDate: {}\r\nFrom: {}\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
                d.from.email(),
                d.to.email(),
                rfc5322_date(date, tz),
                d.from.header(),
                d.to.header(),
                d.subject
            );
            let header_len = header.len();
            Mail {
                uid,
                subject: d.subject,
                from: d.from,
                to: d.to,
                date,
                message_id,
                // The newest few are still unread, as in anyone's inbox.
                seen: name != "INBOX" || i + 3 < count,
                raw: header + &d.body,
                header_len,
            }
        })
        .collect();
    Folder {
        name,
        special_use,
        uidvalidity,
        mails,
    }
}

/// The bait mailbox of the host `persona` describes, dated relative to `now`.
pub fn for_host(persona: &Persona, now: i64) -> MailStore {
    let mut world = World::new(persona.hostname());
    let tz = *[0i64, 60, 120, -300, -240]
        .get(world.rng.random_range(0..5))
        .unwrap_or(&0);
    let (inbox, sent, drafts, archive) =
        (world.inbox(), world.sent(), world.drafts(), world.archive());
    let domain = world.domain.clone();
    let rng = &mut world.rng;
    let folders = vec![
        build_folder("INBOX", None, inbox, rng, now, tz, &domain),
        build_folder("Sent", Some("\\Sent"), sent, rng, now, tz, &domain),
        build_folder("Drafts", Some("\\Drafts"), drafts, rng, now, tz, &domain),
        build_folder("Archive", None, archive, rng, now, tz, &domain),
    ];
    MailStore {
        domain,
        tz,
        owner: world.owner.clone(),
        folders,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(host: &str) -> MailStore {
        for_host(&Persona::from_pairs(&[("HOSTNAME", host)]), 1_715_680_000)
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_715_678_364, 120),
            "Tue, 14 May 2024 11:19:24 +0200"
        );
        assert_eq!(imap_date(1_715_678_364, -300), "14-May-2024 04:19:24 -0500");
    }

    #[test]
    fn mailbox_is_complete_and_well_formed() {
        let s = store("mx01");
        let names: Vec<&str> = s.folders.iter().map(|f| f.name).collect();
        assert_eq!(names, ["INBOX", "Sent", "Drafts", "Archive"]);
        let inbox = s.inbox();
        assert_eq!(inbox.mails.len(), 10);
        assert_eq!(inbox.unseen(), 3);
        let mut last_uid = 0;
        for m in &inbox.mails {
            assert!(m.uid > last_uid);
            last_uid = m.uid;
            assert!(m.raw.contains("\r\n\r\n"));
            assert!(!m.raw.replace("\r\n", "").contains('\n'), "bare LF");
            assert_eq!(m.header_value("subject"), Some(m.subject.as_str()));
            assert!(m.header().ends_with("\r\n\r\n"));
            assert!(m.date <= 1_715_680_000);
            let lower = m.raw.to_ascii_lowercase();
            for word in ["decnet", "honeypot", "decoy", "fake"] {
                assert!(!lower.contains(word), "{word} in {}", m.raw);
            }
        }
        assert!(inbox.mails.iter().any(|m| m.body().contains("AKIA")));
        assert!(s.folder("inbox").is_some() && s.folder("sent").is_none());
    }

    #[test]
    fn bait_differs_per_host_and_is_stable() {
        let (a, b) = (store("mx01"), store("mail-02"));
        assert_eq!(a, store("mx01"));
        assert_ne!(a.domain, b.domain);
        assert_ne!(a.inbox().mails[3].raw, b.inbox().mails[3].raw);
        assert_eq!(store("mail.acme.local").domain, "acme.local");
    }
}
