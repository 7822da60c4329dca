//! Versioned migrations, one list for all backends with the types spelled per backend.
//!
//! A migration is applied once, inside a transaction where the backend allows DDL in one
//! (SQLite, PostgreSQL), and recorded in `schema_migrations`. New versions are appended; an
//! applied version is never edited (the checksum check refuses a database migrated by a
//! different definition of the same version).

use sha2::{Digest, Sha256};

use super::sql::Backend;

/// One schema change.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// Statements with type tokens: `{id}` auto-increment primary key, `{text}` long text,
    /// `{blob}` bytes, `{key}` an indexable short string, `{bigint}`. A statement starting with
    /// `{sqlite}`, `{postgres}` or `{mysql}` runs on that backend only.
    pub statements: &'static [&'static str],
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, bounties, attackers, behaviour, users, state, deckies, leases",
        statements: &[
            "CREATE TABLE events (
            id {id},
            segment_id {bigint} NOT NULL,
            seq {bigint} NOT NULL,
            ts_ns {bigint} NOT NULL,
            decky {key} NOT NULL,
            service {key} NOT NULL,
            kind {key} NOT NULL,
            severity SMALLINT NOT NULL,
            src_ip VARCHAR(45),
            src_port INTEGER,
            dst_ip VARCHAR(45),
            dst_port INTEGER,
            fields {text} NOT NULL,
            raw {blob} NOT NULL,
            truncated SMALLINT NOT NULL,
            UNIQUE (segment_id, seq)
        )",
            "CREATE INDEX events_ts ON events (ts_ns)",
            "CREATE INDEX events_decky ON events (decky)",
            "CREATE INDEX events_service ON events (service)",
            "CREATE INDEX events_kind ON events (kind)",
            "CREATE INDEX events_src_ip ON events (src_ip)",
            "CREATE TABLE bounties (
            id {id},
            ts_ns {bigint} NOT NULL,
            decky {key} NOT NULL,
            service {key} NOT NULL,
            attacker_ip VARCHAR(45) NOT NULL,
            bounty_type {key} NOT NULL,
            payload {text} NOT NULL,
            dedup_key VARCHAR(64) NOT NULL UNIQUE
        )",
            "CREATE INDEX bounties_ts ON bounties (ts_ns)",
            "CREATE INDEX bounties_ip ON bounties (attacker_ip)",
            "CREATE INDEX bounties_type ON bounties (bounty_type)",
            "CREATE TABLE attackers (
            uuid VARCHAR(36) PRIMARY KEY,
            ip VARCHAR(45) NOT NULL UNIQUE,
            first_seen_ns {bigint} NOT NULL,
            last_seen_ns {bigint} NOT NULL,
            event_count {bigint} NOT NULL,
            service_count {bigint} NOT NULL,
            decky_count {bigint} NOT NULL,
            services {text} NOT NULL,
            deckies {text} NOT NULL,
            fingerprints {text} NOT NULL,
            commands {text} NOT NULL,
            traversal_path {text} NOT NULL,
            is_traversal SMALLINT NOT NULL,
            bounty_count {bigint} NOT NULL,
            credential_count {bigint} NOT NULL,
            score SMALLINT NOT NULL,
            updated_ns {bigint} NOT NULL
        )",
            "CREATE INDEX attackers_last_seen ON attackers (last_seen_ns)",
            "CREATE INDEX attackers_updated ON attackers (updated_ns)",
            "CREATE TABLE attacker_behavior (
            attacker_uuid VARCHAR(36) PRIMARY KEY REFERENCES attackers (uuid) ON DELETE CASCADE,
            os_guess {key},
            hop_distance INTEGER,
            tcp_fingerprint {text} NOT NULL,
            retransmit_count {bigint} NOT NULL,
            behavior_class {key} NOT NULL,
            beacon_interval_s DOUBLE PRECISION,
            beacon_jitter_pct DOUBLE PRECISION,
            tool_guesses {text} NOT NULL,
            timing_stats {text} NOT NULL,
            phase_sequence {text} NOT NULL,
            updated_ns {bigint} NOT NULL
        )",
            "CREATE TABLE users (
            uuid VARCHAR(36) PRIMARY KEY,
            username {key} NOT NULL UNIQUE,
            password_hash {key} NOT NULL,
            role VARCHAR(16) NOT NULL,
            must_change_password SMALLINT NOT NULL,
            created_ns {bigint} NOT NULL
        )",
            "CREATE TABLE state (
            state_key {key} PRIMARY KEY,
            value {text} NOT NULL
        )",
            "CREATE TABLE deckies (
            name {key} PRIMARY KEY,
            spec {text} NOT NULL,
            state VARCHAR(32) NOT NULL,
            last_error {text},
            updated_ns {bigint} NOT NULL
        )",
            "CREATE TABLE leases (
            role {key} PRIMARY KEY,
            holder {key} NOT NULL,
            expires_ns {bigint} NOT NULL
        )",
        ],
    },
    Migration {
        version: 2,
        name: "intelligence: sessions, attacker profiler state, identity keys",
        statements: &[
            "CREATE TABLE sessions (
            id VARCHAR(64) PRIMARY KEY,
            attacker_ip VARCHAR(45) NOT NULL,
            decky {key} NOT NULL,
            service {key} NOT NULL,
            dst_port INTEGER,
            start_ns {bigint} NOT NULL,
            end_ns {bigint} NOT NULL,
            event_count {bigint} NOT NULL,
            flow_count {bigint} NOT NULL,
            commands {text} NOT NULL,
            credentials {text} NOT NULL,
            auth_success SMALLINT NOT NULL,
            closed SMALLINT NOT NULL,
            updated_ns {bigint} NOT NULL
        )",
            "CREATE INDEX sessions_ip ON sessions (attacker_ip)",
            "CREATE INDEX sessions_start ON sessions (start_ns)",
            "CREATE INDEX sessions_closed ON sessions (closed)",
            "CREATE TABLE attacker_state (
            ip VARCHAR(45) PRIMARY KEY,
            identity_key VARCHAR(64),
            state {text} NOT NULL,
            updated_ns {bigint} NOT NULL
        )",
            "CREATE INDEX attacker_state_identity ON attacker_state (identity_key)",
        ],
    },
    Migration {
        version: 3,
        name: "events: exactly-once per segment marker instead of a per-row unique index; fewer indexes",
        // Per-row work dominates the flush: every index is one more B-tree insert per event.
        // A segment is inserted in one transaction, so one marker row per segment gives the
        // same exactly-once guarantee as UNIQUE (segment_id, seq) without its index. service
        // and kind are low-cardinality columns searched together with others; their indexes
        // cost more on every insert than they save on those searches.
        statements: &[
            "CREATE TABLE flushed_segments (
            segment_id {bigint} PRIMARY KEY,
            events {bigint} NOT NULL,
            flushed_ns {bigint} NOT NULL
        )",
            "INSERT INTO flushed_segments (segment_id, events, flushed_ns)
            SELECT segment_id, COUNT(*), 0 FROM events GROUP BY segment_id",
            // SQLite cannot drop a table constraint: rebuild the table, keeping every id.
            "{sqlite}CREATE TABLE events_v3 (
            id {id},
            segment_id {bigint} NOT NULL,
            seq {bigint} NOT NULL,
            ts_ns {bigint} NOT NULL,
            decky {key} NOT NULL,
            service {key} NOT NULL,
            kind {key} NOT NULL,
            severity SMALLINT NOT NULL,
            src_ip VARCHAR(45),
            src_port INTEGER,
            dst_ip VARCHAR(45),
            dst_port INTEGER,
            fields {text} NOT NULL,
            raw {blob} NOT NULL,
            truncated SMALLINT NOT NULL
        )",
            "{sqlite}INSERT INTO events_v3 (id, segment_id, seq, ts_ns, decky, service, kind,
            severity, src_ip, src_port, dst_ip, dst_port, fields, raw, truncated)
            SELECT id, segment_id, seq, ts_ns, decky, service, kind, severity, src_ip, src_port,
            dst_ip, dst_port, fields, raw, truncated FROM events",
            "{sqlite}DROP TABLE events",
            "{sqlite}ALTER TABLE events_v3 RENAME TO events",
            "{sqlite}CREATE INDEX events_ts ON events (ts_ns)",
            "{sqlite}CREATE INDEX events_decky ON events (decky)",
            "{sqlite}CREATE INDEX events_src_ip ON events (src_ip)",
            // The names PostgreSQL and MariaDB gave the unnamed constraint of migration 1.
            "{postgres}ALTER TABLE events DROP CONSTRAINT events_segment_id_seq_key",
            "{postgres}DROP INDEX events_service",
            "{postgres}DROP INDEX events_kind",
            "{mysql}ALTER TABLE events DROP INDEX segment_id",
            "{mysql}DROP INDEX events_service ON events",
            "{mysql}DROP INDEX events_kind ON events",
        ],
    },
];

/// The statement text for `backend`, or `None` when the statement is for another backend.
pub fn render(statement: &str, backend: Backend) -> Option<String> {
    let statement = match statement.strip_prefix('{').and_then(|s| s.split_once('}')) {
        Some((only @ ("sqlite" | "postgres" | "mysql"), rest)) => {
            if only != backend.name() {
                return None;
            }
            rest
        }
        _ => statement,
    };
    let (id, text, blob, key) = match backend {
        // No AUTOINCREMENT: it costs a write to sqlite_sequence per row, and rowids stay
        // increasing anyway because retention only ever deletes the oldest rows.
        Backend::Sqlite => ("INTEGER PRIMARY KEY", "TEXT", "BLOB", "VARCHAR(255)"),
        Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT", "BYTEA", "VARCHAR(255)"),
        Backend::Mysql => (
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "LONGTEXT",
            "LONGBLOB",
            "VARCHAR(255)",
        ),
    };
    let mut sql = statement
        .replace("{id}", id)
        .replace("{text}", text)
        .replace("{blob}", blob)
        .replace("{key}", key)
        .replace("{bigint}", "BIGINT");
    // MariaDB's server default may still be latin1 on some installs; attacker text is not.
    if backend == Backend::Mysql && sql.starts_with("CREATE TABLE") {
        sql.push_str(" DEFAULT CHARSET=utf8mb4");
    }
    Some(sql)
}

/// A fingerprint of a migration's definition, so a database migrated by a different
/// definition of the same version is detected instead of silently diverging.
pub fn checksum(m: &Migration) -> String {
    let mut h = Sha256::new();
    for s in m.statements {
        h.update(s.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}
