//! The profiler core: a pure state machine over events. No I/O — the caller feeds events,
//! restores saved per-attacker state, and takes the changes to write.
//!
//! Memory is bounded by design: per attacker only streaming aggregates and capped lists are
//! kept (never the events), and [`Profiler::evict`] drops written attackers once the cache
//! holds more than [`Config::max_cached_attackers`] of them or more than
//! [`Config::max_cached_bytes`]; their state lives in the repository and is restored when they
//! come back. One whose sessions are still open is remembered by address and time alone
//! ([`Profiler::take_dormant_due`]) and restored when those sessions are due to end.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    net::IpAddr,
};

use decnet_store::{
    Event,
    repo::{Attacker, AttackerUpdate, BehaviorRow, NewBounty, SavedAttacker, SessionRow},
};
use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    IntelError,
    bounty::{self, CREDENTIAL},
    profile::{self, ScoreInputs, Timing},
};

/// Profiler settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Inactivity that ends a session.
    pub session_gap_ns: i64,
    /// Distinct deckies that make a traversal (the original's `min_deckies`).
    pub min_deckies: usize,
    /// Attackers kept in memory between batches.
    pub max_cached_attackers: usize,
    /// Bytes the attackers kept in memory between batches may hold (estimated from their
    /// saved state and open sessions): an attacker at every list's cap with the longest
    /// entries holds a few MiB, so a count alone bounds nothing an attacker cannot inflate.
    pub max_cached_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            session_gap_ns: 300 * 1_000_000_000,
            min_deckies: 2,
            max_cached_attackers: 50_000,
            max_cached_bytes: 1 << 30,
        }
    }
}

// Caps on what one attacker's state may hold, so a hostile attacker cannot grow it.
const MAX_SERVICES: usize = 64;
const MAX_DECKIES: usize = 256;
const MAX_COMMANDS: usize = 200;
const MAX_SESSION_COMMANDS: usize = 50;
const MAX_SESSION_CREDENTIALS: usize = 20;
const MAX_IDENTITY_CREDENTIALS: usize = 8;
const MAX_FINGERPRINTS: usize = 64;
const MAX_OPEN_SESSIONS: usize = 32;
const MAX_BOUNTY_KEYS: usize = 1024;
const MAX_OS_LABELS: usize = 16;
const MAX_HOP_SAMPLES: usize = 32;
const MAX_TEXT: usize = 1024;
/// Credentials in order needed before a credential list identifies an actor.
const MIN_IDENTITY_CREDENTIALS: usize = 3;
const LARGE_PAYLOAD: u64 = 1024 * 1024;

/// Event kinds holding a command, and the fields that may carry it (the original's sets,
/// plus `-`: bash PROMPT_COMMAND lines, which the original missed).
const COMMAND_KINDS: [&str; 10] = [
    "command",
    "exec",
    "query",
    "input",
    "shell_input",
    "execute",
    "run",
    "sql_query",
    "redis_command",
    "-",
];
const COMMAND_FIELDS: [&str; 6] = ["command", "query", "input", "line", "sql", "cmd"];
const RECON_KINDS: [&str; 11] = [
    "scan",
    "connect",
    "connection",
    "banner",
    "probe",
    "login_attempt",
    "auth",
    "auth_attempt",
    "auth_failure",
    "tcp_syn_fingerprint",
    "request",
];
const EXFIL_KINDS: [&str; 12] = [
    "download",
    "upload",
    "file_transfer",
    "data_exfil",
    "command",
    "exec",
    "query",
    "shell_input",
    "retr",
    "fetch",
    "file_read",
    "url_fetch",
];
const AUTH_KINDS: [&str; 6] = [
    "auth",
    "auth_attempt",
    "login_attempt",
    "login",
    "auth_failure",
    "auth_success",
];
const PAYLOAD_KINDS: [&str; 5] = [
    "upload",
    "url_fetch",
    "file_captured",
    "file_upload",
    "message_accepted",
];

/// A decky the attacker touched, and when first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub decky: String,
    pub first_ns: i64,
}

/// A command as the attackers table lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRec {
    pub service: String,
    pub decky: String,
    pub command: String,
    pub ts_ns: i64,
}

/// One credential inside a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCredential {
    pub shape: String,
    pub username: String,
    pub secret: String,
    pub success: bool,
    pub ts_ns: i64,
}

/// A capped list kept as the JSON array text its row column stores: appending serializes one
/// element, and writing the row copies the text, where serializing the whole list again on
/// every batch that touched the session was the engine's largest cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonList {
    text: String,
    len: usize,
}

impl Default for JsonList {
    fn default() -> Self {
        Self {
            text: "[]".to_owned(),
            len: 0,
        }
    }
}

impl JsonList {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The JSON array text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn push<T: Serialize + ?Sized>(&mut self, v: &T) {
        self.text.pop();
        if self.len > 0 {
            self.text.push(',');
        }
        self.text.push_str(&json_text(v));
        self.text.push(']');
        self.len += 1;
    }

    fn commands(commands: &[String]) -> Self {
        let mut list = Self::default();
        for c in commands {
            list.push(c);
        }
        list
    }

    fn credentials(credentials: &[SessionCredential]) -> Self {
        let mut list = Self::default();
        for c in credentials {
            list.push(&CredentialJson::of(c));
        }
        list
    }

    /// States saved before open sessions became rows still carry them, as lists.
    fn of_commands<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::commands(&Vec::<String>::deserialize(d)?))
    }

    fn of_credentials<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::credentials(&Vec::<SessionCredential>::deserialize(
            d,
        )?))
    }
}

/// A session not yet ended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenSession {
    pub id: String,
    pub decky: String,
    pub service: String,
    pub dst_port: Option<u16>,
    pub start_ns: i64,
    pub end_ns: i64,
    pub event_count: u64,
    pub flow_count: u64,
    /// The session's commands (strings), as its row stores them.
    #[serde(deserialize_with = "JsonList::of_commands")]
    pub commands: JsonList,
    /// The session's credentials ([`CredentialJson`]s), as its row stores them.
    #[serde(deserialize_with = "JsonList::of_credentials")]
    pub credentials: JsonList,
    pub auth_success: bool,
    /// Changed since the last [`Profiler::take_changes`]: its row must be written.
    #[serde(skip)]
    pub dirty: bool,
    /// `commands` or `credentials` changed since the row was last written: only then are they
    /// written again (up to 50 commands and 20 credentials of 1 KiB each).
    #[serde(skip)]
    lists_changed: bool,
    /// [`session_key`] of `decky` and `service`: finding an event's session compares this
    /// first instead of two strings per open session.
    #[serde(skip)]
    key: u64,
}

fn session_key(decky: &str, service: &str) -> u64 {
    fnv1a(&[decky, service])
}

// The stored JSON columns were built through `serde_json::Value`, whose objects sort their
// keys. These views serialize straight to text (no `Value` tree of cloned strings per row)
// with their fields in that same sorted order, so the stored text is unchanged.

#[derive(Serialize)]
struct CommandJson<'a> {
    command: &'a str,
    decky: &'a str,
    service: &'a str,
    ts_ns: i64,
}

impl<'a> CommandJson<'a> {
    fn of(c: &'a CommandRec) -> Self {
        Self {
            command: &c.command,
            decky: &c.decky,
            service: &c.service,
            ts_ns: c.ts_ns,
        }
    }
}

#[derive(Serialize)]
struct CredentialJson<'a> {
    secret: &'a str,
    shape: &'a str,
    success: bool,
    ts_ns: i64,
    username: &'a str,
}

impl<'a> CredentialJson<'a> {
    fn of(c: &'a SessionCredential) -> Self {
        Self {
            secret: &c.secret,
            shape: &c.shape,
            success: c.success,
            ts_ns: c.ts_ns,
            username: &c.username,
        }
    }
}

#[derive(Serialize)]
struct FingerprintJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a str,
}

/// A fingerprint as the attacker row's list holds it ([`FingerprintJson`]), read back.
#[derive(Deserialize)]
struct StoredFingerprint {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// JSON text of a value whose serialization cannot fail (string keys, plain fields).
fn json_text<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// A kill-chain phase and when it was first reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseMark {
    pub phase: String,
    pub ts_ns: i64,
}

/// Everything the profiler keeps about one attacker IP: streaming aggregates and capped
/// lists, saved as JSON in `attacker_state` after each batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackerState {
    pub ip: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub event_count: u64,
    pub services: Vec<String>,
    pub deckies: Vec<Hop>,
    pub hop_count: u64,
    pub timing: Timing,
    /// Kept in the attacker row, not in the saved state (restored from the row): written
    /// only when it changes.
    #[serde(default, skip_serializing)]
    pub commands: Vec<CommandRec>,
    pub command_count: u64,
    /// The first credentials tried, in order (identity linking).
    pub credential_order: Vec<String>,
    pub auth_attempts: u64,
    pub auth_successes: u64,
    pub payloads: u64,
    pub large_payloads: u64,
    /// `(type, value)` in first-seen order. Like `commands`, kept in the attacker row only.
    #[serde(default, skip_serializing)]
    pub fingerprints: Vec<(String, String)>,
    pub hassh: Option<String>,
    pub ja4: Option<String>,
    pub ssh_banner: Option<String>,
    pub tools: BTreeSet<String>,
    pub os_labels: BTreeMap<String, u64>,
    pub last_ttl: Option<u32>,
    pub hop_distances: VecDeque<u32>,
    pub tcp_fingerprint: BTreeMap<String, String>,
    pub retransmits: u64,
    pub phases: Vec<PhaseMark>,
    pub last_recon_ns: Option<i64>,
    pub first_exfil_ns: Option<i64>,
    /// FNV-1a of each bounty's (type, payload), to count distinct bounties without a query.
    pub bounty_keys: BTreeSet<u64>,
    pub bounty_count: u64,
    pub credential_count: u64,
    /// Open sessions. Not part of the saved state: each is a `closed = 0` row of the sessions
    /// table, written in the same transaction, and restored from there (states saved before
    /// that still carry them and are read as before).
    #[serde(default, skip_serializing)]
    pub sessions: Vec<OpenSession>,
    /// Ids of `sessions` in the engine's order, saved so a restore puts the rows back in it.
    #[serde(default)]
    session_order: Vec<String>,
    /// Bytes this state holds in memory, estimated when it was last saved or restored
    /// ([`Self::weight`]).
    #[serde(skip)]
    weight: usize,
    /// `commands` or `fingerprints` changed since the attacker row was last written (up to
    /// 200 commands and 64 fingerprints of 1 KiB each): only then are they written again, so
    /// an attacker at its caps costs each batch its counters, not its lists.
    #[serde(skip)]
    lists_changed: bool,
}

/// A traversal: an attacker that touched at least `min_deckies` deckies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traversal {
    pub attacker_ip: String,
    pub deckies: Vec<String>,
    pub path: String,
    pub decky_count: usize,
    pub hop_count: u64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub duration_s: f64,
}

/// What one batch changed, ready for [`decnet_store::repo::SqlRepository::commit_intel`].
#[derive(Debug, Default)]
pub struct Changes {
    pub attackers: Vec<AttackerUpdate>,
    pub sessions: Vec<SessionRow>,
    pub bounties: Vec<NewBounty>,
}

/// `rows` in id order (the order the sessions table's key is written in), each id once.
/// Sorting indices and moving every row once is cheaper than sorting the rows themselves,
/// which moves them `log n` times each.
fn sorted_by_id(rows: Vec<SessionRow>) -> Vec<SessionRow> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|a, b| rows[*a].id.cmp(&rows[*b].id));
    order.dedup_by(|a, b| rows[*a].id == rows[*b].id);
    let mut slots: Vec<Option<SessionRow>> = rows.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// The profiler state machine.
#[derive(Debug)]
pub struct Profiler {
    config: Config,
    // Three lookups per event: foldhash (randomly seeded, so still no chosen-collision
    // flooding) instead of SipHash.
    states: HashMap<IpAddr, AttackerState, RandomState>,
    dirty: HashSet<IpAddr, RandomState>,
    with_open_sessions: HashSet<IpAddr, RandomState>,
    /// Attackers of the last [`Self::take_changes`], spared by [`Self::evict_sparing_taken`].
    taken: HashSet<IpAddr, RandomState>,
    /// Sum of the states' [`AttackerState::weight`].
    held_bytes: usize,
    /// Estimated bytes the states grew by since the last [`Self::take_changes`] (new
    /// attackers and sessions, commands and credentials).
    grown_bytes: usize,
    /// Attackers evicted with sessions still open, and when the last of those was active:
    /// restored ([`Self::take_dormant_due`]) once that is a session gap ago.
    dormant: HashMap<IpAddr, i64, RandomState>,
    closed_sessions: Vec<SessionRow>,
    bounties: Vec<NewBounty>,
    /// Bytes of `bounties`' payloads (what a batch holds until it commits).
    bounty_bytes: usize,
    /// Latest event time seen: the clock sessions end by (event time, so replays agree).
    watermark_ns: i64,
    pub events_seen: u64,
    pub events_skipped: u64,
}

/// Most attackers remembered only by address while their sessions stay open; past it, one
/// evicted with open sessions has them ended when it comes back or the profiler restarts.
pub const MAX_DORMANT: usize = 1 << 20;
/// What a new attacker's state holds before any list grows (its strings, maps and vectors).
const NEW_ATTACKER_BYTES: usize = 1024;
/// Most dormant attackers restored in one batch to end their sessions.
pub const MAX_DORMANT_RESTORES: usize = 10_000;

fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn clip(s: &str) -> String {
    clipped(s).to_owned()
}

fn clipped(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn hex_id(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let mut s = hex::encode(h.finalize());
    s.truncate(len);
    s
}

/// A stable uuid-shaped id for an IP, so the same attacker gets the same id on every replay.
pub fn attacker_uuid(ip: &str) -> String {
    let h = hex_id(&["decnet-attacker", ip], 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The attacker an event is about: the prober's target, else the source address.
pub fn attacker_ip(e: &Event) -> Option<IpAddr> {
    if e.service == "prober" {
        return e.field("target_ip").and_then(|v| v.parse().ok());
    }
    e.src_ip.or_else(|| {
        ["src_ip", "attacker_ip"]
            .iter()
            .find_map(|k| e.field(k))
            .and_then(|v| v.parse().ok())
    })
}

fn is_internal(service: &str) -> bool {
    matches!(service, "sniffer" | "prober" | "correlator")
}

fn command_of(e: &Event) -> Option<String> {
    if !COMMAND_KINDS.contains(&e.kind.as_str()) {
        return None;
    }
    let cmd = COMMAND_FIELDS.iter().find_map(|k| e.field(k))?;
    if cmd.is_empty() {
        return None;
    }
    // Redis and friends split the verb from its arguments.
    Some(match e.field("args").filter(|a| !a.is_empty()) {
        Some(args) if !cmd.contains(' ') => clip(&format!("{cmd} {args}")),
        _ => clip(cmd),
    })
}

fn payload_bytes(e: &Event) -> u64 {
    ["bytes", "size", "content_length"]
        .iter()
        .filter_map(|k| e.field(k)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

impl AttackerState {
    fn new(ip: &str) -> Self {
        Self {
            ip: ip.to_owned(),
            first_seen_ns: i64::MAX,
            last_seen_ns: i64::MIN,
            lists_changed: true,
            ..Self::default()
        }
    }

    fn phase(&mut self, phase: &str, ts_ns: i64) {
        if let Some(p) = self.phases.iter_mut().find(|p| p.phase == phase) {
            p.ts_ns = p.ts_ns.min(ts_ns);
        } else {
            self.phases.push(PhaseMark {
                phase: phase.to_owned(),
                ts_ns,
            });
        }
    }

    /// Note a fingerprint; true when it was already noted (so what follows from it has been
    /// done already).
    fn fingerprint(&mut self, kind: &str, value: &str) -> bool {
        let value = clipped(value);
        if value.is_empty() {
            return false;
        }
        if self
            .fingerprints
            .iter()
            .any(|(k, v)| k == kind && v == value)
        {
            return true;
        }
        if self.fingerprints.len() < MAX_FINGERPRINTS {
            self.fingerprints.push((kind.to_owned(), value.to_owned()));
            self.lists_changed = true;
        }
        false
    }

    /// Memory this state holds, estimated from its saved JSON (about as large again once
    /// parsed into strings and vectors), its row's lists and its open sessions' lists.
    fn weight(&self, state_json: usize) -> usize {
        let open: usize = self
            .sessions
            .iter()
            .map(|s| s.commands.as_str().len() + s.credentials.as_str().len() + 256)
            .sum();
        let commands: usize = self
            .commands
            .iter()
            .map(|c| c.command.len() + c.decky.len() + c.service.len() + 80)
            .sum();
        let fingerprints: usize = self
            .fingerprints
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum();
        state_json.saturating_mul(2) + open + commands + fingerprints + 1024
    }

    fn services_touched(&self) -> usize {
        self.services.len()
    }

    /// Strong-fingerprint key: HASSH + JA4 + SSH client banner when all three are known,
    /// else the order of the first credentials tried.
    pub fn identity_key(&self) -> Option<String> {
        if let (Some(h), Some(j), Some(b)) = (&self.hassh, &self.ja4, &self.ssh_banner) {
            return Some(hex_id(&["fp", h, j, b], 32));
        }
        if self.credential_order.len() >= MIN_IDENTITY_CREDENTIALS {
            let mut parts = vec!["creds"];
            parts.extend(self.credential_order.iter().map(String::as_str));
            return Some(hex_id(&parts, 32));
        }
        None
    }

    pub fn classification(&self) -> profile::Classification {
        profile::classify(
            self.timing.events,
            self.services_touched(),
            &self.timing.stats(),
        )
    }

    pub fn is_traversal(&self, min_deckies: usize) -> bool {
        self.deckies.len() >= min_deckies.max(2)
    }

    pub fn path(&self) -> String {
        self.deckies
            .iter()
            .map(|h| h.decky.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    }

    pub fn score(&self) -> u8 {
        let class = self.classification().class;
        profile::score(&ScoreInputs {
            services: self.services_touched(),
            decky_count: self.deckies.len(),
            scanning: matches!(class, "scanning" | "slow_scan"),
            auth_attempted: self.auth_attempts > 0,
            auth_succeeded: self.auth_successes > 0,
            commands: self.command_count,
            payloads: self.payloads,
            beaconing: class == "beaconing",
        })
    }

    pub fn os_guess(&self) -> Option<String> {
        self.os_labels
            .iter()
            .filter(|(l, _)| l.as_str() != "unknown")
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(l, _)| l.clone())
            .or_else(|| {
                self.last_ttl
                    .and_then(profile::os_from_ttl)
                    .map(str::to_owned)
            })
    }

    pub fn tool_guesses(&self) -> Vec<String> {
        let mut tools: Vec<String> = self.tools.iter().cloned().collect();
        let stats = self.timing.stats();
        if self.classification().class == "beaconing"
            && let (Some(m), Some(cv)) = (stats.mean_s, stats.cv)
            && let Some(c2) = profile::c2_guess(m, cv)
        {
            tools.push(c2.to_owned());
        }
        tools
    }

    /// The attacker row; its lists are left empty (the stored ones kept) unless they changed
    /// since the row was last written.
    fn attacker_row(&self, min_deckies: usize) -> Attacker {
        let traversal = self.is_traversal(min_deckies);
        let (fingerprints, commands) = if self.lists_changed {
            let fingerprints: Vec<_> = self
                .fingerprints
                .iter()
                .map(|(kind, value)| FingerprintJson { kind, value })
                .collect();
            let commands: Vec<_> = self.commands.iter().map(CommandJson::of).collect();
            (json_text(&fingerprints), json_text(&commands))
        } else {
            (String::new(), String::new())
        };
        Attacker {
            uuid: attacker_uuid(&self.ip),
            ip: self.ip.clone(),
            first_seen_ns: self.first_seen_ns.min(self.last_seen_ns),
            last_seen_ns: self.last_seen_ns.max(self.first_seen_ns),
            event_count: i64::try_from(self.event_count).unwrap_or(i64::MAX),
            service_count: i64::try_from(self.services.len()).unwrap_or(i64::MAX),
            decky_count: i64::try_from(self.deckies.len()).unwrap_or(i64::MAX),
            services: json_text(&self.services),
            deckies: json_text(&self.deckies.iter().map(|h| &h.decky).collect::<Vec<_>>()),
            fingerprints,
            commands,
            traversal_path: if traversal {
                self.path()
            } else {
                String::new()
            },
            is_traversal: traversal,
            bounty_count: i64::try_from(self.bounty_count).unwrap_or(i64::MAX),
            credential_count: i64::try_from(self.credential_count).unwrap_or(i64::MAX),
            score: i64::from(self.score()),
        }
    }

    fn behavior_row(&self) -> BehaviorRow {
        let stats = self.timing.stats();
        let c = self.classification();
        let mut hops: Vec<u32> = self.hop_distances.iter().copied().collect();
        hops.sort_unstable();
        let latency = match (self.last_recon_ns, self.first_exfil_ns) {
            (Some(r), Some(x)) => {
                #[allow(clippy::cast_precision_loss)]
                let s = (x - r) as f64 / 1e9;
                Some(s)
            }
            _ => None,
        };
        BehaviorRow {
            os_guess: self.os_guess(),
            hop_distance: hops.get(hops.len() / 2).map(|h| i64::from(*h)),
            tcp_fingerprint: json!(self.tcp_fingerprint).to_string(),
            retransmit_count: i64::try_from(self.retransmits).unwrap_or(i64::MAX),
            behavior_class: c.class.to_owned(),
            beacon_interval_s: c.beacon_interval_s,
            beacon_jitter_pct: c.beacon_jitter_pct,
            tool_guesses: json!(self.tool_guesses()).to_string(),
            timing_stats: json!(stats).to_string(),
            phase_sequence: json!({
                "phases": self.phases,
                "last_recon_ns": self.last_recon_ns,
                "first_exfil_ns": self.first_exfil_ns,
                "recon_to_exfil_s": latency,
                "large_payloads": self.large_payloads,
            })
            .to_string(),
        }
    }
}

impl OpenSession {
    /// The open session a `closed = 0` row of the sessions table holds.
    pub fn from_row(r: &SessionRow) -> Result<Self, IntelError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            IntelError::BadState(format!("session {} {what}: {e}", r.id))
        };
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Self {
            id: r.id.clone(),
            decky: r.decky.clone(),
            service: r.service.clone(),
            dst_port: r.dst_port.and_then(|p| u16::try_from(p).ok()),
            start_ns: r.start_ns,
            end_ns: r.end_ns,
            event_count: count(r.event_count),
            flow_count: count(r.flow_count),
            commands: JsonList::commands(
                &serde_json::from_str::<Vec<String>>(&r.commands)
                    .map_err(|e| bad("commands", &e))?,
            ),
            credentials: JsonList::credentials(
                &serde_json::from_str::<Vec<SessionCredential>>(&r.credentials)
                    .map_err(|e| bad("credentials", &e))?,
            ),
            auth_success: r.auth_success,
            dirty: false,
            lists_changed: false,
            key: session_key(&r.decky, &r.service),
        })
    }

    /// The session's row; its lists are left empty (the stored ones kept) unless they
    /// changed since the row was last written.
    fn row(&self, ip: &str, closed: bool) -> SessionRow {
        let list = |l: &JsonList| {
            if self.lists_changed {
                l.as_str().to_owned()
            } else {
                String::new()
            }
        };
        SessionRow {
            id: self.id.clone(),
            attacker_ip: ip.to_owned(),
            decky: self.decky.clone(),
            service: self.service.clone(),
            dst_port: self.dst_port.map(i64::from),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            event_count: i64::try_from(self.event_count).unwrap_or(i64::MAX),
            flow_count: i64::try_from(self.flow_count).unwrap_or(i64::MAX),
            commands: list(&self.commands),
            credentials: list(&self.credentials),
            auth_success: self.auth_success,
            closed,
        }
    }
}

impl Profiler {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            states: HashMap::default(),
            dirty: HashSet::default(),
            with_open_sessions: HashSet::default(),
            taken: HashSet::default(),
            held_bytes: 0,
            grown_bytes: 0,
            dormant: HashMap::default(),
            closed_sessions: Vec::new(),
            bounties: Vec::new(),
            bounty_bytes: 0,
            watermark_ns: i64::MIN,
            events_seen: 0,
            events_skipped: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Attacker IPs of `events` not in memory: the caller restores their saved state (if any)
    /// before feeding.
    pub fn missing<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
        let mut seen = HashSet::new();
        events
            .into_iter()
            .filter_map(attacker_ip)
            .filter(|ip| !self.states.contains_key(ip) && seen.insert(*ip))
            .map(|ip| ip.to_string())
            .collect()
    }

    /// Put back an attacker's saved state, its row's lists and its open sessions (the
    /// `closed = 0` rows of the sessions table; a state saved before sessions left it carries
    /// its own, as one saved before the lists left it carries those).
    pub fn restore(
        &mut self,
        saved: &SavedAttacker,
        open_sessions: &[SessionRow],
    ) -> Result<(), IntelError> {
        let ip = saved.ip.as_str();
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| IntelError::BadState(format!("attacker IP {ip:?} does not parse")))?;
        let state_json = saved.state.as_str();
        let mut state: AttackerState = serde_json::from_str(state_json)
            .map_err(|e| IntelError::BadState(format!("state of {ip}: {e}")))?;
        let commands = serde_json::from_str::<Vec<CommandRec>>(&saved.commands);
        let fingerprints = serde_json::from_str::<Vec<StoredFingerprint>>(&saved.fingerprints);
        match (commands, fingerprints) {
            (Ok(commands), Ok(fingerprints)) => {
                state.commands = commands;
                state.fingerprints = fingerprints
                    .into_iter()
                    .map(|f| (f.kind, f.value))
                    .collect();
            }
            // A row whose lists do not read (edited by hand): continue from what the state
            // has (nothing, unless saved before the lists left it) and write them anew.
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(%ip, error = %e, "attacker row lists unreadable; rewriting them");
                state.lists_changed = true;
            }
        }
        if open_sessions.is_empty() {
            // Sessions saved inside an older state have no row yet.
            for s in &mut state.sessions {
                s.lists_changed = true;
            }
        } else {
            let mut rows: Vec<&SessionRow> = open_sessions.iter().collect();
            // The engine's order; rows it does not name (none, unless hand-edited) go last.
            let pos = |id: &str| {
                state
                    .session_order
                    .iter()
                    .position(|o| o == id)
                    .unwrap_or(usize::MAX)
            };
            rows.sort_by_cached_key(|r| (pos(&r.id), r.start_ns, r.id.clone()));
            state.sessions = rows
                .into_iter()
                .map(OpenSession::from_row)
                .collect::<Result<_, _>>()?;
        }
        for s in &mut state.sessions {
            s.key = session_key(&s.decky, &s.service);
        }
        if !state.sessions.is_empty() {
            self.with_open_sessions.insert(addr);
        }
        self.dormant.remove(&addr);
        self.watermark_ns = self.watermark_ns.max(state.last_seen_ns);
        state.weight = state.weight(state_json.len());
        self.held_bytes += state.weight;
        if let Some(old) = self.states.insert(addr, state) {
            self.held_bytes = self.held_bytes.saturating_sub(old.weight);
        }
        Ok(())
    }

    /// Remember an attacker whose saved sessions are still open, last active at `end_ns`,
    /// without loading it (a starting worker's attackers with open sessions): it is restored
    /// when it comes back or when [`Self::take_dormant_due`] says its sessions are due to end.
    pub fn add_dormant(&mut self, ip: &str, end_ns: i64) -> Result<(), IntelError> {
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| IntelError::BadState(format!("attacker IP {ip:?} does not parse")))?;
        if !self.states.contains_key(&addr) {
            self.remember_dormant(addr, end_ns);
        }
        Ok(())
    }

    fn remember_dormant(&mut self, addr: IpAddr, end_ns: i64) {
        if self.dormant.len() < MAX_DORMANT || self.dormant.contains_key(&addr) {
            let end = self.dormant.entry(addr).or_insert(end_ns);
            *end = (*end).max(end_ns);
        }
    }

    /// Dormant attackers whose open sessions have been idle for a session gap at the latest
    /// event time (at most [`MAX_DORMANT_RESTORES`], oldest first): the caller restores them
    /// before [`Self::take_changes`], which then ends those sessions. They are forgotten as
    /// dormant whether or not a state is found for them.
    pub fn take_dormant_due(&mut self) -> Vec<String> {
        let due_before = self.watermark_ns.saturating_sub(self.config.session_gap_ns);
        let mut due: Vec<(i64, IpAddr)> = self
            .dormant
            .iter()
            .filter(|(_, end)| **end < due_before)
            .map(|(ip, end)| (*end, *ip))
            .collect();
        if due.len() > MAX_DORMANT_RESTORES {
            due.select_nth_unstable(MAX_DORMANT_RESTORES);
            due.truncate(MAX_DORMANT_RESTORES);
        }
        due.sort_unstable();
        due.into_iter()
            .map(|(_, ip)| {
                self.dormant.remove(&ip);
                ip.to_string()
            })
            .collect()
    }

    /// Attackers remembered only by address until their sessions are due to end.
    pub fn dormant(&self) -> usize {
        self.dormant.len()
    }

    /// Estimated bytes the attackers in memory hold, as of their last save or restore.
    pub fn cached_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Estimated bytes the attackers in memory hold now, with what they gained since the last
    /// [`Self::take_changes`]: a caller ends its batch once this passes
    /// [`Config::max_cached_bytes`], since written attackers can leave memory only after the
    /// batch that touched them is written.
    pub fn memory_estimate(&self) -> usize {
        self.held_bytes.saturating_add(self.grown_bytes)
    }

    /// Attackers in memory.
    pub fn attackers(&self) -> impl Iterator<Item = &AttackerState> {
        self.states.values()
    }

    pub fn attacker(&self, ip: &str) -> Option<&AttackerState> {
        self.states.get(&ip.parse().ok()?)
    }

    pub fn cached(&self) -> usize {
        self.states.len()
    }

    /// Traversals among the attackers in memory, by first contact.
    pub fn traversals(&self) -> Vec<Traversal> {
        let mut out: Vec<Traversal> = self
            .states
            .values()
            .filter(|s| s.is_traversal(self.config.min_deckies))
            .map(|s| {
                #[allow(clippy::cast_precision_loss)]
                let duration_s = (s.last_seen_ns - s.first_seen_ns).max(0) as f64 / 1e9;
                Traversal {
                    attacker_ip: s.ip.clone(),
                    deckies: s.deckies.iter().map(|h| h.decky.clone()).collect(),
                    path: s.path(),
                    decky_count: s.deckies.len(),
                    hop_count: s.hop_count,
                    first_seen_ns: s.first_seen_ns,
                    last_seen_ns: s.last_seen_ns,
                    duration_s,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.first_seen_ns, &a.attacker_ip).cmp(&(b.first_seen_ns, &b.attacker_ip))
        });
        out
    }

    /// Identity groups (≥2 IPs sharing a strong key) among the attackers in memory.
    pub fn identities(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in self.states.values() {
            if let Some(k) = s.identity_key() {
                groups.entry(k).or_default().push(s.ip.clone());
            }
        }
        groups
            .into_iter()
            .filter(|(_, ips)| ips.len() > 1)
            .map(|(k, mut ips)| {
                ips.sort();
                (k, ips)
            })
            .collect()
    }

    /// Account for one event.
    pub fn feed(&mut self, e: &Event) {
        let Some(addr) = attacker_ip(e) else {
            self.events_skipped += 1;
            return;
        };
        self.events_seen += 1;
        let gap = self.config.session_gap_ns;
        let grown = &mut self.grown_bytes;
        let st = self.states.entry(addr).or_insert_with(|| {
            *grown += NEW_ATTACKER_BYTES;
            AttackerState::new(&addr.to_string())
        });
        self.dirty.insert(addr);

        let credential = bounty::credential(e);
        let user_agent = bounty::user_agent(e);
        let bounties = &mut self.bounties;
        let bounty_bytes = &mut self.bounty_bytes;
        bounty::payloads(
            e,
            credential.as_ref(),
            user_agent.as_deref(),
            |bounty_type, payload| {
                let key = fnv1a(&[bounty_type, &payload]);
                if st.bounty_keys.contains(&key) {
                    return;
                }
                // Past the cap, counts stop growing but bounties still reach the repository,
                // whose unique key deduplicates them.
                if st.bounty_keys.len() < MAX_BOUNTY_KEYS {
                    st.bounty_keys.insert(key);
                    st.bounty_count += 1;
                    if bounty_type == CREDENTIAL {
                        st.credential_count += 1;
                    }
                }
                *bounty_bytes += payload.len();
                bounties.push(NewBounty {
                    ts_ns: e.ts_ns,
                    decky: e.decky.clone(),
                    service: e.service.clone(),
                    attacker_ip: st.ip.clone(),
                    bounty_type: bounty_type.to_owned(),
                    payload,
                });
            },
        );

        if e.service == "prober" {
            // The prober's target is an attacker, but probing is our traffic, not theirs: it
            // adds fingerprints, never hops, counts or timing.
            for k in ["jarm_hash", "hassh_server", "tcpfp_hash", "hash"] {
                if let Some(v) = e.field(k) {
                    st.fingerprint(&e.kind, v);
                    break;
                }
            }
            return;
        }

        self.watermark_ns = self.watermark_ns.max(e.ts_ns);
        st.event_count += 1;
        st.first_seen_ns = st.first_seen_ns.min(e.ts_ns);
        st.last_seen_ns = st.last_seen_ns.max(e.ts_ns);
        st.timing.push(e.ts_ns);
        if !is_internal(&e.service)
            && !st.services.contains(&e.service)
            && st.services.len() < MAX_SERVICES
        {
            st.services.push(clip(&e.service));
        }
        if !e.decky.is_empty() && e.service != "correlator" {
            st.hop_count += 1;
            let full = st.deckies.len() >= MAX_DECKIES;
            match st.deckies.iter_mut().find(|h| h.decky == e.decky) {
                Some(h) => h.first_ns = h.first_ns.min(e.ts_ns),
                None if !full => st.deckies.push(Hop {
                    decky: clip(&e.decky),
                    first_ns: e.ts_ns,
                }),
                None => {}
            }
        }

        let kind = e.kind.as_str();
        if RECON_KINDS.contains(&kind) {
            st.last_recon_ns = Some(st.last_recon_ns.map_or(e.ts_ns, |t| t.max(e.ts_ns)));
            st.phase("reconnaissance", e.ts_ns);
        }
        if EXFIL_KINDS.contains(&kind) {
            st.first_exfil_ns = Some(st.first_exfil_ns.map_or(e.ts_ns, |t| t.min(e.ts_ns)));
        }
        if payload_bytes(e) >= LARGE_PAYLOAD {
            st.large_payloads += 1;
        }

        let command = command_of(e);
        if let Some(cmd) = &command {
            st.command_count += 1;
            if st.commands.len() < MAX_COMMANDS {
                *grown += cmd.len() + e.decky.len() + e.service.len() + 80;
                st.commands.push(CommandRec {
                    service: e.service.clone(),
                    decky: e.decky.clone(),
                    command: cmd.clone(),
                    ts_ns: e.ts_ns,
                });
                st.lists_changed = true;
            }
            st.phase("execution", e.ts_ns);
        }
        let success = bounty::is_success(e);
        if credential.is_some() || AUTH_KINDS.contains(&kind) {
            st.auth_attempts += 1;
            st.phase("credential_access", e.ts_ns);
            if success && !is_internal(&e.service) {
                st.auth_successes += 1;
                st.phase("initial_access", e.ts_ns);
            }
        }
        if let Some(c) = &credential
            && st.credential_order.len() < MAX_IDENTITY_CREDENTIALS
        {
            st.credential_order
                .push(clip(&format!("{}:{}", c.username, c.secret)));
        }
        if PAYLOAD_KINDS.contains(&kind)
            || (e.field("sha256").is_some() && kind != "message_accepted")
        {
            st.payloads += 1;
            st.phase("installation", e.ts_ns);
        }
        if matches!(
            kind,
            "download" | "retr" | "fetch" | "file_read" | "file_transfer" | "data_exfil"
        ) {
            st.phase("exfiltration", e.ts_ns);
        }

        // Fingerprints and tool guesses.
        if let Some(ua) = user_agent
            && !st.fingerprint("http_useragent", &ua)
        {
            // A User-Agent already noted has had its tools noted too: scanning it again for
            // every request of a scan was a tenth of the engine's time.
            for t in profile::tools_from_headers(&ua) {
                if !st.tools.contains(t) {
                    st.tools.insert(t.to_owned());
                }
            }
        }
        if let Some(mailer) = e.field("x_mailer") {
            for t in profile::tools_from_headers(mailer) {
                st.tools.insert(t.to_owned());
            }
        }
        if let Some(h) = e.field("hassh").filter(|v| !v.is_empty()) {
            st.hassh.get_or_insert_with(|| clip(h));
            st.fingerprint("hassh", h);
        }
        if let Some(b) = bounty::ssh_banner(e) {
            st.ssh_banner.get_or_insert_with(|| clip(b));
            st.fingerprint("ssh_client_version", b);
            if let Some(t) = profile::tools_from_ssh_banner(b) {
                st.tools.insert(t.to_owned());
            }
        }
        if let Some(j) = e.field("ja4").filter(|v| !v.is_empty()) {
            st.ja4.get_or_insert_with(|| clip(j));
            st.fingerprint("ja4", j);
        }
        if let Some(j) = e.field("ja3").filter(|v| !v.is_empty()) {
            st.fingerprint("ja3", j);
        }
        match kind {
            "tcp_syn_fingerprint" => {
                let label = e.field("os_guess").unwrap_or("unknown");
                if st.os_labels.len() < MAX_OS_LABELS || st.os_labels.contains_key(label) {
                    *st.os_labels.entry(clip(label)).or_insert(0) += 1;
                }
                if label == "nmap" {
                    st.tools.insert("nmap".to_owned());
                }
                // masscan's SYN: window 1024 and no TCP options at all.
                if e.field("window") == Some("1024")
                    && e.field("options_sig").unwrap_or("").is_empty()
                {
                    st.tools.insert("masscan".to_owned());
                }
                if let Some(ttl) = e.field("ttl").and_then(|v| v.parse().ok()) {
                    st.last_ttl = Some(ttl);
                }
                if let Some(h) = e
                    .field("hop_distance")
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|h| *h > 0)
                {
                    if st.hop_distances.len() == MAX_HOP_SAMPLES {
                        st.hop_distances.pop_front();
                    }
                    st.hop_distances.push_back(h);
                }
                st.tcp_fingerprint = [
                    "ttl",
                    "initial_ttl",
                    "window",
                    "mss",
                    "wscale",
                    "options_sig",
                    "has_sack",
                    "has_timestamps",
                    "os_guess",
                ]
                .iter()
                .filter_map(|k| Some(((*k).to_owned(), clip(e.field(k)?))))
                .collect();
            }
            "tcp_flow_timing" => {
                st.retransmits += e
                    .field("retransmits")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            _ => {}
        }

        // Sessions: one per (decky, service), ended by inactivity; the sniffer's flows join
        // the open session on the same decky and port.
        if e.service == "sniffer" {
            if kind == "tcp_flow_timing" {
                let port = e
                    .dst_port
                    .or_else(|| e.field("dst_port").and_then(|v| v.parse().ok()));
                if let Some(s) = st
                    .sessions
                    .iter_mut()
                    .find(|s| s.decky == e.decky && port.is_some() && s.dst_port == port)
                {
                    s.flow_count += 1;
                    s.dirty = true;
                }
            }
            return;
        }
        if is_internal(&e.service) {
            return;
        }
        // At most one open session per (decky, service).
        let key = session_key(&e.decky, &e.service);
        let mut found = st
            .sessions
            .iter()
            .position(|s| s.key == key && s.service == e.service && s.decky == e.decky);
        if let Some(i) = found
            && e.ts_ns.saturating_sub(st.sessions[i].end_ns) > gap
        {
            let old = st.sessions.remove(i);
            self.closed_sessions.push(old.row(&st.ip, true));
            found = None;
        }
        let idx = match found {
            Some(i) => i,
            None => {
                if st.sessions.len() >= MAX_OPEN_SESSIONS
                    && let Some(oldest) = st
                        .sessions
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.end_ns)
                        .map(|(i, _)| i)
                {
                    let old = st.sessions.remove(oldest);
                    self.closed_sessions.push(old.row(&st.ip, true));
                }
                let (decky, service) = (clip(&e.decky), clip(&e.service));
                *grown += 256 + decky.len() + service.len();
                st.sessions.push(OpenSession {
                    id: hex_id(&[&st.ip, &e.decky, &e.service, &e.ts_ns.to_string()], 32),
                    key: session_key(&decky, &service),
                    decky,
                    service,
                    dst_port: e.dst_port,
                    start_ns: e.ts_ns,
                    end_ns: e.ts_ns,
                    event_count: 0,
                    flow_count: 0,
                    commands: JsonList::default(),
                    credentials: JsonList::default(),
                    auth_success: false,
                    dirty: true,
                    lists_changed: true,
                });
                st.sessions.len() - 1
            }
        };
        self.with_open_sessions.insert(addr);
        let s = &mut st.sessions[idx];
        s.event_count += 1;
        s.start_ns = s.start_ns.min(e.ts_ns);
        s.end_ns = s.end_ns.max(e.ts_ns);
        if s.dst_port.is_none() {
            s.dst_port = e.dst_port;
        }
        if let Some(cmd) = command
            && s.commands.len() < MAX_SESSION_COMMANDS
        {
            *grown += cmd.len() + 4;
            s.commands.push(&cmd);
            s.lists_changed = true;
        }
        if success && (credential.is_some() || AUTH_KINDS.contains(&kind)) {
            s.auth_success = true;
        }
        if let Some(c) = credential
            && s.credentials.len() < MAX_SESSION_CREDENTIALS
        {
            *grown += c.username.len() + c.secret.len() + 96;
            s.lists_changed = true;
            s.credentials.push(&CredentialJson {
                secret: clipped(&c.secret),
                shape: c.shape,
                success,
                ts_ns: e.ts_ns,
                username: clipped(&c.username),
            });
        }
        s.dirty = true;
    }

    /// End sessions idle longer than the gap at the current event time.
    fn close_idle(&mut self) {
        let gap = self.config.session_gap_ns;
        let now = self.watermark_ns;
        let ips: Vec<IpAddr> = self.with_open_sessions.iter().copied().collect();
        for addr in ips {
            let Some(st) = self.states.get_mut(&addr) else {
                self.with_open_sessions.remove(&addr);
                continue;
            };
            let mut i = 0;
            while i < st.sessions.len() {
                if now.saturating_sub(st.sessions[i].end_ns) > gap {
                    let old = st.sessions.remove(i);
                    self.closed_sessions.push(old.row(&st.ip, true));
                    self.dirty.insert(addr);
                } else {
                    i += 1;
                }
            }
            if st.sessions.is_empty() {
                self.with_open_sessions.remove(&addr);
            }
        }
    }

    /// Forget the sessions ended and bounties found since the last [`Self::take_changes`], for
    /// a caller that keeps no repository (`decnet correlate` reports from the attackers
    /// themselves): without it they pile up for the whole log.
    pub fn discard_changes(&mut self) {
        self.closed_sessions.clear();
        self.bounties.clear();
        self.bounty_bytes = 0;
    }

    /// Bytes of bounty payloads found since the last [`Self::take_changes`]: a caller ends its
    /// batch early when they grow large (every attempt of a brute force with long, distinct
    /// passwords is a bounty of up to a few KiB).
    pub fn pending_bounty_bytes(&self) -> usize {
        self.bounty_bytes
    }

    /// Everything changed since the last call: attacker rows (with behaviour, identity key
    /// and saved state), sessions ended or updated, and new bounties.
    pub fn take_changes(&mut self) -> Result<Changes, IntelError> {
        self.close_idle();
        // Each dirty attacker's weight is measured again below.
        self.grown_bytes = 0;
        let mut dirty: Vec<IpAddr> = std::mem::take(&mut self.dirty).into_iter().collect();
        dirty.sort_unstable();
        self.taken.clear();
        self.taken.extend(dirty.iter().copied());
        // Sized up front: a batch holds tens of thousands of rows, and growing their vectors
        // by doubling copied each several times over (a sixth of the engine's time).
        let open_rows: usize = dirty
            .iter()
            .filter_map(|a| self.states.get(a))
            .map(|st| st.sessions.iter().filter(|s| s.dirty).count())
            .sum();
        let closed = std::mem::take(&mut self.closed_sessions);
        let mut sessions = Vec::with_capacity(closed.len() + open_rows);
        sessions.extend(closed);
        let expected = self.bounties.len().min(1 << 16);
        let bounties = std::mem::replace(&mut self.bounties, Vec::with_capacity(expected));
        self.bounty_bytes = 0;
        let mut attackers = Vec::with_capacity(dirty.len());
        // One buffer for every state's JSON, copied out at its exact size.
        let mut text = Vec::with_capacity(16 * 1024);
        for addr in dirty {
            let Some(st) = self.states.get_mut(&addr) else {
                continue;
            };
            for s in st.sessions.iter_mut().filter(|s| s.dirty) {
                sessions.push(s.row(&st.ip, false));
                s.dirty = false;
                s.lists_changed = false;
            }
            // Only the prober has spoken of this IP: nothing of its own to profile yet.
            if st.event_count == 0 {
                continue;
            }
            st.session_order.clear();
            st.session_order
                .extend(st.sessions.iter().map(|s| s.id.clone()));
            text.clear();
            serde_json::to_writer(&mut text, st)
                .map_err(|e| IntelError::BadState(format!("state of {}: {e}", st.ip)))?;
            let state = String::from_utf8_lossy(&text).into_owned();
            let weight = st.weight(state.len());
            self.held_bytes = self.held_bytes.saturating_sub(st.weight) + weight;
            st.weight = weight;
            let attacker = st.attacker_row(self.config.min_deckies);
            st.lists_changed = false;
            attackers.push(AttackerUpdate {
                attacker,
                behavior: st.behavior_row(),
                identity_key: st.identity_key(),
                state,
            });
        }
        Ok(Changes {
            attackers,
            sessions: sorted_by_id(sessions),
            bounties,
        })
    }

    /// Forget written attackers idle longer than the session gap (no open session is left to
    /// end), and, while the cache holds more than [`Config::max_cached_attackers`] attackers or
    /// [`Config::max_cached_bytes`], the least recently active written ones until it is back
    /// to three quarters of both (call after committing). Those without open sessions go
    /// first; one with open sessions stays dormant, so its sessions still end on time. Memory
    /// then follows the attackers active within one gap, not the events seen.
    pub fn evict(&mut self) {
        self.taken.clear();
        self.evict_sparing_taken();
    }

    /// [`Self::evict`] while the last [`Self::take_changes`] is still being committed: its
    /// attackers stay too, since restoring one now would read its rows from before that batch.
    pub fn evict_sparing_taken(&mut self) {
        let idle_before = self.watermark_ns.saturating_sub(self.config.session_gap_ns);
        let (dirty, taken, open) = (&self.dirty, &self.taken, &self.with_open_sessions);
        let mut freed = 0;
        // Prober-only IPs (no events of their own) have no saved state yet: keep them.
        self.states.retain(|ip, st| {
            let keep = dirty.contains(ip)
                || taken.contains(ip)
                || open.contains(ip)
                || st.event_count == 0
                || st.last_seen_ns >= idle_before;
            if !keep {
                freed += st.weight;
            }
            keep
        });
        self.held_bytes = self.held_bytes.saturating_sub(freed);
        let (cap, budget) = (
            self.config.max_cached_attackers,
            self.config.max_cached_bytes,
        );
        if self.states.len() <= cap && self.held_bytes <= budget {
            return;
        }
        let (cap, budget) = (cap - cap / 4, budget - budget / 4);
        // Prober-only IPs go last: they weigh next to nothing and have no saved state to come
        // back from.
        let mut written: Vec<(bool, bool, i64, IpAddr)> = self
            .states
            .iter()
            .filter(|(ip, _)| !dirty.contains(*ip) && !taken.contains(*ip))
            .map(|(ip, st)| {
                let prober_only = st.event_count == 0;
                (prober_only, !st.sessions.is_empty(), st.last_seen_ns, *ip)
            })
            .collect();
        written.sort_unstable();
        for (_, _, _, ip) in written {
            if self.states.len() <= cap && self.held_bytes <= budget {
                break;
            }
            let Some(st) = self.states.remove(&ip) else {
                continue;
            };
            self.held_bytes = self.held_bytes.saturating_sub(st.weight);
            if let Some(end) = st.sessions.iter().map(|s| s.end_ns).max() {
                self.with_open_sessions.remove(&ip);
                self.remember_dormant(ip, end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use decnet_store::Severity;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn ev(ts_s: i64, ip: &str, kind: &str, fields: &[(&str, &str)]) -> Event {
        let mut e = Event::new(
            1_780_000_000 * S + ts_s * S,
            "decky-a",
            "ssh",
            kind,
            Severity::Info,
        );
        e.src_ip = Some(ip.parse().unwrap());
        e.dst_port = Some(22);
        for (k, v) in fields {
            e.push_field(k, v).unwrap();
        }
        e
    }

    /// What the repository holds of attacker `i` of `changes` (their first commit).
    fn saved_of(changes: &Changes, i: usize) -> SavedAttacker {
        let u = &changes.attackers[i];
        SavedAttacker {
            ip: u.attacker.ip.clone(),
            state: u.state.clone(),
            commands: u.attacker.commands.clone(),
            fingerprints: u.attacker.fingerprints.clone(),
        }
    }

    #[test]
    fn a_restored_attacker_continues_exactly_where_it_was() {
        let ip = "192.0.2.1";
        let events = [
            ev(0, ip, "connect", &[]),
            ev(
                2,
                ip,
                "auth_attempt",
                &[("username", "root"), ("password", "a")],
            ),
            ev(5, ip, "command", &[("cmd", "uname -a")]),
        ];
        let mut kept = Profiler::new(Config::default());
        for e in &events[..2] {
            kept.feed(e);
        }
        let saved = kept.take_changes().unwrap();
        let open: Vec<SessionRow> = saved
            .sessions
            .iter()
            .filter(|s| !s.closed)
            .cloned()
            .collect();
        assert_eq!(open.len(), 1);
        // The open session is its row, not part of the saved state.
        assert!(!saved.attackers[0].state.contains("\"credentials\""));

        let mut restored = Profiler::new(Config::default());
        restored.restore(&saved_of(&saved, 0), &open).unwrap();
        assert_eq!(restored.attacker(ip), kept.attacker(ip));
        kept.feed(&events[2]);
        restored.feed(&events[2]);
        let (a, b) = (
            kept.take_changes().unwrap(),
            restored.take_changes().unwrap(),
        );
        assert_eq!(a.sessions, b.sessions);
        assert_eq!(a.attackers, b.attackers);
        assert_eq!(a.sessions[0].commands, r#"["uname -a"]"#);
    }

    #[test]
    fn json_columns_keep_the_text_value_trees_gave() {
        let c = CommandRec {
            service: "ssh".into(),
            decky: "d\"1".into(),
            command: "ls ü".into(),
            ts_ns: -5,
        };
        assert_eq!(json_text(&[CommandJson::of(&c)]), json!([c]).to_string());
        let cred = SessionCredential {
            shape: "password".into(),
            username: "root".into(),
            secret: "a\nb".into(),
            success: true,
            ts_ns: 7,
        };
        assert_eq!(
            json_text(&[CredentialJson::of(&cred)]),
            json!([cred]).to_string()
        );
        assert_eq!(
            json_text(&[FingerprintJson {
                kind: "ja3",
                value: "x"
            }]),
            json!([{ "type": "ja3", "value": "x" }]).to_string()
        );
    }

    #[test]
    fn json_lists_hold_the_text_of_the_whole_list() {
        let commands = vec!["ls ü".to_owned(), "a\"b\n".to_owned()];
        assert_eq!(JsonList::default().as_str(), "[]");
        let list = JsonList::commands(&commands);
        assert_eq!(list.as_str(), json!(commands).to_string());
        assert_eq!(list.len(), 2);
        let creds = vec![
            SessionCredential {
                shape: "password".into(),
                username: "root".into(),
                secret: "a\nb".into(),
                success: true,
                ts_ns: 7,
            },
            SessionCredential {
                shape: "password".into(),
                username: "ü".into(),
                secret: String::new(),
                success: false,
                ts_ns: -1,
            },
        ];
        let list = JsonList::credentials(&creds);
        assert_eq!(list.as_str(), json!(creds).to_string());
        // A state saved with its open sessions inside (older builds) reads the same lists.
        let legacy = json!({
            "id": "s", "decky": "d", "service": "ssh", "dst_port": 22, "start_ns": 1,
            "end_ns": 2, "event_count": 3, "flow_count": 0, "commands": commands,
            "credentials": creds, "auth_success": true
        });
        let open: OpenSession = serde_json::from_value(legacy).unwrap();
        assert_eq!(open.commands, JsonList::commands(&commands));
        assert_eq!(open.credentials, list);
    }

    #[test]
    fn attackers_idle_past_the_gap_leave_memory() {
        let mut p = Profiler::new(Config::default());
        p.feed(&ev(0, "192.0.2.1", "connect", &[]));
        p.feed(&ev(0, "192.0.2.2", "connect", &[]));
        p.take_changes().unwrap();
        p.evict();
        assert_eq!(p.cached(), 2, "both active within the gap");
        p.feed(&ev(400, "192.0.2.2", "connect", &[]));
        let c = p.take_changes().unwrap();
        // The idle attacker's session ended and was written before it left.
        assert!(
            c.sessions
                .iter()
                .any(|s| s.attacker_ip == "192.0.2.1" && s.closed)
        );
        // Its rows may still be committing (the worker takes batch N+1 while N commits).
        p.evict_sparing_taken();
        assert!(p.attacker("192.0.2.1").is_some());
        p.evict();
        assert!(p.attacker("192.0.2.1").is_none());
        assert!(p.attacker("192.0.2.2").is_some());
        assert_eq!(
            p.missing(&[ev(401, "192.0.2.1", "connect", &[])]),
            vec!["192.0.2.1"]
        );
    }

    /// An event of the sniffer's: counted, but no session is opened.
    fn sniffed(ts_s: i64, ip: &str) -> Event {
        let mut e = ev(ts_s, ip, "tcp_syn_fingerprint", &[("ttl", "52")]);
        e.service = "sniffer".to_owned();
        e
    }

    #[test]
    fn an_attackers_weight_follows_what_it_holds() {
        let mut p = Profiler::new(Config::default());
        p.feed(&sniffed(1, "192.0.2.1"));
        let long = "x".repeat(1000);
        for t in 0..50 {
            p.feed(&ev(t, "192.0.2.9", "command", &[("cmd", &long)]));
        }
        p.take_changes().unwrap();
        let held: usize = p.states.values().map(|s| s.weight).sum();
        assert_eq!(p.cached_bytes(), held);
        // 50 commands of 1,000 bytes in the state and 50 in the open session.
        let big = p.attacker("192.0.2.9").unwrap().weight;
        let small = p.attacker("192.0.2.1").unwrap().weight;
        assert!(big > 100 * 1000 && small < 4096, "{big} {small}");
    }

    #[test]
    fn what_a_batch_adds_counts_before_it_is_written() {
        let mut p = Profiler::new(Config::default());
        assert_eq!(p.memory_estimate(), 0);
        let long = "x".repeat(1000);
        for t in 0..20 {
            p.feed(&ev(t, "192.0.2.9", "command", &[("cmd", &long)]));
        }
        // 20 commands in the state and 20 in the session, before any of it is saved.
        let before = p.memory_estimate();
        assert!(before > 40 * 1000, "{before}");
        assert_eq!(p.cached_bytes(), 0);
        p.take_changes().unwrap();
        // Once written, the measured weight replaces the estimate.
        assert_eq!(p.memory_estimate(), p.cached_bytes());
        assert!(p.cached_bytes() > 40 * 1000);
        assert!(
            p.cached_bytes() < 2 * before,
            "{} {before}",
            p.cached_bytes()
        );
    }

    #[test]
    fn past_the_byte_budget_the_least_recently_active_leave_first() {
        let mut p = Profiler::new(Config::default());
        for (t, ip) in [
            (4, "192.0.2.4"),
            (1, "192.0.2.1"),
            (3, "192.0.2.3"),
            (2, "192.0.2.2"),
        ] {
            p.feed(&sniffed(t, ip));
        }
        p.feed(&ev(0, "192.0.2.9", "connect", &[]));
        p.take_changes().unwrap();
        let held = p.cached_bytes();
        let w = p.attacker("192.0.2.1").unwrap().weight;
        let w9 = p.attacker("192.0.2.9").unwrap().weight;
        // Within budget nothing active leaves.
        p.evict();
        assert_eq!(p.cached(), 5);
        // Over it: down to three quarters of the budget, the least recently active first…
        p.config.max_cached_bytes = held - 1;
        p.evict();
        let mut left: Vec<String> = p.states.values().map(|s| s.ip.clone()).collect();
        left.sort();
        assert_eq!(left, ["192.0.2.3", "192.0.2.4", "192.0.2.9"]);
        assert_eq!(p.cached_bytes(), held - 2 * w);
        // …and one with an open session (192.0.2.9, the least recent) only after all without.
        p.config.max_cached_bytes = (w9 + w / 2) * 4 / 3;
        p.evict();
        assert_eq!(p.cached(), 1);
        assert!(p.attacker("192.0.2.9").is_some());
        assert_eq!(p.cached_bytes(), w9);
        assert_eq!(p.dormant(), 0);
        // Past it, it goes too, dormant: its session is still open.
        p.config.max_cached_bytes = w9 - 1;
        p.evict();
        assert_eq!((p.cached(), p.cached_bytes(), p.dormant()), (0, 0, 1));
        // And the attacker count bounds the cache the same way.
        p.config.max_cached_bytes = usize::MAX;
        p.config.max_cached_attackers = 4;
        for t in 10..15 {
            p.feed(&sniffed(t, &format!("192.0.2.{t}")));
        }
        p.take_changes().unwrap();
        p.evict();
        assert_eq!(p.cached(), 3);
        assert!(p.attacker("192.0.2.10").is_none() && p.attacker("192.0.2.11").is_none());
    }

    #[test]
    fn a_dormant_attacker_comes_back_when_its_sessions_are_due_to_end() {
        let mut p = Profiler::new(Config {
            max_cached_bytes: 0,
            ..Config::default()
        });
        p.feed(&ev(0, "192.0.2.1", "command", &[("cmd", "id")]));
        let saved = p.take_changes().unwrap();
        p.evict();
        assert_eq!((p.cached(), p.dormant()), (0, 1));
        // Time moves on through other attackers' events, up to the gap and past it.
        p.feed(&sniffed(300, "192.0.2.2"));
        assert!(
            p.take_dormant_due().is_empty(),
            "not idle for a whole gap yet"
        );
        p.feed(&sniffed(301, "192.0.2.2"));
        assert_eq!(p.take_dormant_due(), ["192.0.2.1"]);
        assert_eq!(p.dormant(), 0);
        // The caller restores it from what was written; the next changes end its session.
        p.restore(&saved_of(&saved, 0), &saved.sessions).unwrap();
        let c = p.take_changes().unwrap();
        let ended: Vec<_> = c.sessions.iter().filter(|s| s.closed).collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].attacker_ip, "192.0.2.1");
        // Its commands were written while it was open: the row keeps them.
        assert_eq!(ended[0].commands, "");
        // A dormant attacker that comes back on its own is no longer dormant.
        p.evict();
        p.feed(&ev(400, "192.0.2.3", "connect", &[]));
        p.take_changes().unwrap();
        p.evict();
        assert_eq!(p.dormant(), 1);
        assert_eq!(
            p.missing(&[ev(401, "192.0.2.3", "connect", &[])]),
            ["192.0.2.3"]
        );
        let saved = p.take_changes().unwrap();
        assert!(saved.attackers.is_empty());
    }

    #[test]
    fn lists_are_written_only_when_they_change() {
        let mut p = Profiler::new(Config::default());
        let ip = "192.0.2.1";
        p.feed(&ev(0, ip, "command", &[("cmd", "id")]));
        p.feed(&ev(
            1,
            ip,
            "auth_attempt",
            &[("username", "root"), ("password", "a")],
        ));
        let first = p.take_changes().unwrap();
        let row = &first.attackers[0].attacker;
        assert!(
            row.commands.contains(r#""command":"id""#),
            "{}",
            row.commands
        );
        assert_eq!(first.sessions[0].commands, r#"["id"]"#);
        // Neither the state nor a later batch that adds nothing to the lists repeats them.
        assert!(!first.attackers[0].state.contains("uname"));
        assert!(!first.attackers[0].state.contains(r#""id""#));
        p.feed(&ev(2, ip, "connect", &[]));
        let second = p.take_changes().unwrap();
        assert_eq!(second.attackers[0].attacker.event_count, 3);
        assert_eq!(second.attackers[0].attacker.commands, "");
        assert_eq!(second.attackers[0].attacker.fingerprints, "");
        assert_eq!(second.sessions[0].commands, "");
        assert_eq!(second.sessions[0].credentials, "");
        assert_eq!(second.sessions[0].event_count, 3);
        // A new entry writes the whole list again.
        p.feed(&ev(3, ip, "command", &[("cmd", "uname")]));
        let third = p.take_changes().unwrap();
        assert!(third.attackers[0].attacker.commands.contains("uname"));
        assert_eq!(third.sessions[0].commands, r#"["id","uname"]"#);
        assert!(third.sessions[0].credentials.contains("root"));
    }

    #[test]
    fn a_state_saved_with_its_lists_inside_restores_from_the_row() {
        let mut p = Profiler::new(Config::default());
        let ip = "192.0.2.1";
        p.feed(&ev(0, ip, "command", &[("cmd", "id")]));
        p.feed(&ev(0, ip, "kex", &[("hassh", "h1")]));
        let first = p.take_changes().unwrap();
        let mut saved = saved_of(&first, 0);
        // An older build saved the lists inside the state as well.
        let mut legacy: serde_json::Value = serde_json::from_str(&saved.state).unwrap();
        legacy["commands"] =
            json!([{"service": "ssh", "decky": "decky-a", "command": "old", "ts_ns": 0}]);
        legacy["fingerprints"] = json!([["hassh", "old"]]);
        saved.state = legacy.to_string();
        let mut restored = Profiler::new(Config::default());
        restored.restore(&saved, &[]).unwrap();
        let st = restored.attacker(ip).unwrap();
        assert_eq!(st.commands, p.attacker(ip).unwrap().commands);
        assert_eq!(st.fingerprints, vec![("hassh".to_owned(), "h1".to_owned())]);
        // A row whose lists do not read is written anew from what the state holds.
        saved.commands = "not json".into();
        let mut repaired = Profiler::new(Config::default());
        repaired.restore(&saved, &[]).unwrap();
        repaired.feed(&ev(1, ip, "connect", &[]));
        let c = repaired.take_changes().unwrap();
        assert!(c.attackers[0].attacker.commands.contains("old"));
    }
}
